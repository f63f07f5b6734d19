/* The simulator's oracle: every safety invariant, checked as the step that could break it runs. */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sim_fail(struct sim *sim, const char *fmt, ...)
{
    if (sim->failed)
        return;
    sim->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sim->why, sizeof(sim->why), fmt, ap);
    va_end(ap);
}

void sim_trace(struct sim *sim, const char *fmt, ...)
{
    if (!sim->trace)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%8llu %7llu] ", (unsigned long long)sim->now, (unsigned long long)sim->step);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- zxid -> write map: open addressing ---- */

static size_t zhash(zxid_t z, size_t cap)
{
    return (size_t)((z * 0x9e3779b97f4a7c15ULL) >> 20) & (cap - 1);
}

struct zslot *zmap_get(struct sim *sim, zxid_t zxid, int create)
{
    if (create && (sim->zmap_n + 1) * 2 > sim->zmap_cap) {
        size_t cap = sim->zmap_cap ? sim->zmap_cap * 2 : 1024;
        struct zslot *m = calloc(cap, sizeof(*m));
        if (!m)
            abort();
        for (size_t i = 0; i < sim->zmap_cap; i++)
            if (sim->zmap[i].zxid) {
                size_t j = zhash(sim->zmap[i].zxid, cap);
                while (m[j].zxid)
                    j = (j + 1) & (cap - 1);
                m[j] = sim->zmap[i];
            }
        free(sim->zmap);
        sim->zmap = m;
        sim->zmap_cap = cap;
    }
    if (!sim->zmap_cap)
        return NULL;
    size_t j = zhash(zxid, sim->zmap_cap);
    while (sim->zmap[j].zxid) {
        if (sim->zmap[j].zxid == zxid)
            return &sim->zmap[j];
        j = (j + 1) & (sim->zmap_cap - 1);
    }
    if (!create)
        return NULL;
    sim->zmap[j].zxid = zxid;
    sim->zmap_n++;
    return &sim->zmap[j];
}

/* A zxid names one txn forever (ZOOKEEPER-335: epochs, hence zxids, are never reused). */
void check_proposed(struct sim *sim, zxid_t zxid, uint32_t wid)
{
    struct zslot *z = zmap_get(sim, zxid, 1);
    if (z->wid && z->wid != wid) {
        sim_fail(sim, "zxid %#llx proposed twice: writes %u and %u", (unsigned long long)zxid,
                 z->wid, wid);
        return;
    }
    z->wid = wid;
}

void check_logged(struct sim *sim, struct server *s, zxid_t zxid, uint32_t wid)
{
    struct zslot *z = zmap_get(sim, zxid, 0);
    if (!z || z->wid != wid)
        sim_fail(sim, "server %u logs %#llx = write %u, never proposed as such", s->id,
                 (unsigned long long)zxid, wid);
}

static int popcount(uint32_t x)
{
    int n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
}

/* Applied sequences are all prefixes of one sequence G; each txn was durable on a quorum of
 * voters before anyone applied it; zxids only go up; no write twice. */
void check_applied(struct sim *sim, struct server *s, zxid_t zxid, uint32_t wid)
{
    struct zslot *z = zmap_get(sim, zxid, 0);
    if (!z || z->wid != wid) {
        sim_fail(sim, "server %u applies %#llx = write %u, never proposed as such", s->id,
                 (unsigned long long)zxid, wid);
        return;
    }
    if (popcount(z->durable_on) < sim->quorum) {
        sim_fail(sim, "server %u applies %#llx, durable on only %d voters (uncommitted)", s->id,
                 (unsigned long long)zxid, popcount(z->durable_on));
        return;
    }
    size_t i = s->applied.n;
    if (i && s->applied.v[i - 1].zxid >= zxid) {
        sim_fail(sim, "server %u applies %#llx after %#llx", s->id, (unsigned long long)zxid,
                 (unsigned long long)s->applied.v[i - 1].zxid);
        return;
    }
    if (i < sim->G.n) {
        if (sim->G.v[i].zxid != zxid || sim->G.v[i].wid != wid)
            sim_fail(sim, "server %u applies #%zu = %#llx/write %u, others applied %#llx/write %u",
                     s->id, i, (unsigned long long)zxid, wid, (unsigned long long)sim->G.v[i].zxid,
                     sim->G.v[i].wid);
        return;
    }
    if (wid >= sim->in_g_cap) {
        size_t cap = sim->in_g_cap ? sim->in_g_cap : 1024;
        while (cap <= wid)
            cap *= 2;
        sim->in_g = realloc(sim->in_g, cap);
        if (!sim->in_g)
            abort();
        memset(sim->in_g + sim->in_g_cap, 0, cap - sim->in_g_cap);
        sim->in_g_cap = cap;
    }
    if (sim->in_g[wid]) {
        sim_fail(sim, "write %u committed twice (again at %#llx)", wid, (unsigned long long)zxid);
        return;
    }
    sim->in_g[wid] = 1;
    recs_push(&sim->G, zxid, wid);
}

/* At most one established leader per epoch. */
void check_role(struct sim *sim, struct server *s)
{
    if (s->role != ZAB_LEADING || !s->serving)
        return;
    sim->st.leaders++;
    for (size_t i = 0; i < sim->n_leaders; i++)
        if (sim->leaders[i].epoch == s->epoch) {
            if (sim->leaders[i].leader != s->id)
                sim_fail(sim, "epoch %u established by both %u and %u", s->epoch,
                         sim->leaders[i].leader, s->id);
            return;
        }
    if (sim->n_leaders < sizeof(sim->leaders) / sizeof(sim->leaders[0])) {
        sim->leaders[sim->n_leaders].epoch = s->epoch;
        sim->leaders[sim->n_leaders].leader = s->id;
        sim->n_leaders++;
    }
}

/* A snapshot is a committed prefix, and never takes a server's applied state backwards. */
void check_install(struct sim *sim, struct server *s, const struct snap *snap)
{
    const struct recs *r = &snap->recs;
    if (r->n < s->applied.n) {
        sim_fail(sim, "server %u: snapshot %#llx is behind its applied state", s->id,
                 (unsigned long long)snap->zxid);
        return;
    }
    for (size_t i = 0; i < r->n; i++)
        if (i >= sim->G.n || sim->G.v[i].zxid != r->v[i].zxid || sim->G.v[i].wid != r->v[i].wid) {
            sim_fail(sim, "server %u: snapshot %#llx is not a committed prefix", s->id,
                     (unsigned long long)snap->zxid);
            return;
        }
}

static int durably_holds(const struct server *s, zxid_t zxid)
{
    return recs_find(&s->d_log, zxid) >= 0 || recs_find(&s->d_applied, zxid) >= 0;
}

/* No acknowledged write is ever lost: each stays on the disks of a quorum of voters, whatever
 * crashed, truncated or installed. Checked after every step that can remove durable data. */
void check_durability(struct sim *sim)
{
    for (size_t k = 0; k < sim->acked.n && !sim->failed; k++) {
        zxid_t zxid = sim->acked.v[k].zxid;
        int n = 0;
        for (int i = 0; i < sim->n; i++)
            if (!sim->s[i].observer && durably_holds(&sim->s[i], zxid))
                n++;
        if (n < sim->quorum)
            sim_fail(sim, "acknowledged write %u (%#llx) durable on only %d voters",
                     sim->acked.v[k].wid, (unsigned long long)zxid, n);
    }
}

/* What a server applied survives its crash: in the durable tree, or in its log for replay.
 * Only a snapshot whose install is still queued may vanish (the server is not serving yet: it
 * acks NEWLEADER, and so gets UPTODATE, only once the install is durable). */
void check_crash(struct sim *sim, struct server *s)
{
    zxid_t exempt = 0;
    for (size_t k = 0; k < s->op_n; k++) {
        const struct dop *d = &s->ops[(s->op_head + k) % s->op_cap];
        if (d->type == ZAB_ACT_INSTALL_SNAPSHOT && d->zxid > exempt)
            exempt = d->zxid;
    }
    if (exempt && s->serving)
        sim_fail(sim, "server %u serves before its snapshot install is durable", s->id);
    for (size_t i = 0; i < s->applied.n; i++) {
        zxid_t zxid = s->applied.v[i].zxid;
        if (zxid > exempt && !durably_holds(s, zxid)) {
            sim_fail(sim, "server %u crashes with applied %#llx neither in its tree nor its log",
                     s->id, (unsigned long long)zxid);
            return;
        }
    }
}

/* Converged: one serving leader, everyone else serving under it, all applied the same. */
int check_converged(struct sim *sim, int *leader)
{
    int l = -1;
    for (int i = 0; i < sim->n; i++)
        if (sim->s[i].alive && sim->s[i].role == ZAB_LEADING && sim->s[i].serving)
            l = i;
    if (l < 0)
        return 0;
    for (int i = 0; i < sim->n; i++) {
        struct server *s = &sim->s[i];
        if (!s->alive || (i != l && (!s->serving || s->leader != sim->s[l].id)))
            return 0;
        if (s->applied.n != sim->s[l].applied.n)
            return 0;
    }
    *leader = l;
    return 1;
}

/* End of a healed run: every acknowledged write, and all of G, is applied everywhere. */
void check_final(struct sim *sim)
{
    for (int i = 0; i < sim->n && !sim->failed; i++) {
        struct server *s = &sim->s[i];
        if (s->applied.n != sim->G.n)
            sim_fail(sim, "server %u applied %zu txns, %zu were committed", s->id, s->applied.n,
                     sim->G.n);
    }
    for (size_t k = 0; k < sim->acked.n && !sim->failed; k++)
        if (sim->acked.v[k].wid >= sim->in_g_cap || !sim->in_g[sim->acked.v[k].wid])
            sim_fail(sim, "acknowledged write %u lost", sim->acked.v[k].wid);
}

void oracle_free(struct sim *sim)
{
    free(sim->zmap);
    free(sim->in_g);
    recs_free(&sim->G);
    recs_free(&sim->acked);
    sim->zmap = NULL;
    sim->in_g = NULL;
    sim->zmap_cap = sim->zmap_n = sim->in_g_cap = 0;
}
