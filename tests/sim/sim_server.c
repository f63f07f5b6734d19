/* One simulated server: the core, a disk that loses unsynced writes on crash, and its clients. */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

/* A write's payload is its id plus filler derived from it, so corruption is detectable. */
void payload_make(uint32_t wid, uint8_t *buf, size_t *len)
{
    size_t n = 4 + (wid * 7u) % 23u;
    memcpy(buf, &wid, 4);
    for (size_t i = 4; i < n; i++)
        buf[i] = (uint8_t)(wid + i);
    *len = n;
}

static uint32_t payload_wid(struct sim *sim, struct server *s, const uint8_t *p, size_t len)
{
    uint8_t want[32];
    size_t n;
    uint32_t wid = 0;
    if (len >= 4)
        memcpy(&wid, p, 4);
    payload_make(wid, want, &n);
    if (len != n || memcmp(p, want, n) != 0) {
        sim_fail(sim, "server %u: corrupted payload (%zu bytes)", s->id, len);
        return 0;
    }
    return wid;
}

/* ---- disk ---- */

static struct dop *disk_push(struct sim *sim, struct server *s)
{
    if (s->op_n == s->op_cap) {
        size_t cap = s->op_cap ? s->op_cap * 2 : 64;
        struct dop *v = malloc(cap * sizeof(*v));
        if (!v)
            abort();
        for (size_t i = 0; i < s->op_n; i++)
            v[i] = s->ops[(s->op_head + i) % s->op_cap];
        free(s->ops);
        s->ops = v;
        s->op_head = 0;
        s->op_cap = cap;
    }
    struct dop *d = &s->ops[(s->op_head + s->op_n++) % s->op_cap];
    memset(d, 0, sizeof(*d));
    /* in order, one after another; a slow disk takes its time (group commit emerges from the
     * shell reporting the highest completed seq) */
    uint64_t lat;
    if (s->disk_free_at > sim->now)
        lat = rng_range(&sim->rng, 0, 1); /* joins the flush in progress: group commit */
    else
        lat = s->disk_slow ? rng_range(&sim->rng, 20, 400) : rng_range(&sim->rng, 1, 12);
    uint64_t start = s->disk_free_at > sim->now ? s->disk_free_at : sim->now;
    d->done_at = start + lat;
    s->disk_free_at = d->done_at;
    heap_push(sim, d->done_at, EV_DISK, s->idx, 0, s->disk_gen, NULL);
    return d;
}

static void drop_disk_queue(struct server *s)
{
    for (size_t i = 0; i < s->op_n; i++)
        snap_unref(s->ops[(s->op_head + i) % s->op_cap].snap);
    s->op_n = 0;
    s->op_head = 0;
    s->disk_gen++;
}

void server_disk_done(struct sim *sim, struct server *s, uint64_t gen)
{
    if (gen != s->disk_gen || s->op_n == 0)
        return;
    struct dop d = s->ops[s->op_head];
    s->op_head = (s->op_head + 1) % s->op_cap;
    s->op_n--;
    switch (d.type) {
    case ZAB_ACT_PERSIST_TXN: {
        zxid_t last = s->d_log.n ? s->d_log.v[s->d_log.n - 1].zxid : s->d_log_base;
        if (d.zxid <= last)
            sim_fail(sim, "server %u: log append %#llx after %#llx", s->id,
                     (unsigned long long)d.zxid, (unsigned long long)last);
        recs_push(&s->d_log, d.zxid, d.wid);
        struct zslot *z = zmap_get(sim, d.zxid, 0);
        if (z && !s->observer)
            z->durable_on |= 1u << s->idx;
        break;
    }
    case ZAB_ACT_PERSIST_EPOCH:
        if (d.kind == ZAB_ACCEPTED_EPOCH)
            s->d_accepted = d.epoch;
        else
            s->d_current = d.epoch;
        break;
    case ZAB_ACT_TRUNCATE:
        s->d_log.n = recs_after(&s->d_log, d.zxid);
        sim->st.truncs++;
        check_durability(sim);
        break;
    case ZAB_ACT_INSTALL_SNAPSHOT: {
        recs_copy(&s->d_applied, &d.snap->recs);
        struct recs kept = {0};
        for (size_t i = 0; i < s->d_log.n; i++)
            if (s->d_log.v[i].zxid > d.zxid && s->d_log.v[i].zxid <= d.zxid2)
                recs_push(&kept, s->d_log.v[i].zxid, s->d_log.v[i].wid);
        recs_free(&s->d_log);
        s->d_log = kept;
        s->d_log_base = d.zxid;
        snap_unref(d.snap);
        sim->st.snaps++;
        check_durability(sim);
        break;
    }
    case ZAB_ACT_APPLY:
        recs_push(&s->d_applied, d.zxid, d.wid);
        break;
    default:
        break;
    }
    if (d.seq && !sim->failed) {
        zab_on_persisted(s->core, sim->now, d.seq);
        server_drain(sim, s);
        chaos_crash_point(sim, s);
    }
}

/* ---- actions ---- */

static void on_apply(struct sim *sim, struct server *s, const struct zab_action *a)
{
    uint32_t wid = payload_wid(sim, s, a->payload, a->len);
    check_applied(sim, s, a->zxid, wid);
    recs_push(&s->applied, a->zxid, wid);
    struct dop *d = disk_push(sim, s); /* the tree write goes unsynced behind the log */
    d->type = ZAB_ACT_APPLY;
    d->zxid = a->zxid;
    d->wid = wid;
    long i = recs_find(&s->pending, a->zxid);
    if (i >= 0) {
        if (s->pending.v[i].wid != wid)
            sim_fail(sim, "server %u: proposed write %u at %#llx but applied %u", s->id,
                     s->pending.v[i].wid, (unsigned long long)a->zxid, wid);
        recs_push(&sim->acked, a->zxid, wid); /* the client hears OK */
        sim->st.acked++;
        memmove(&s->pending.v[i], &s->pending.v[i + 1],
                (s->pending.n - (size_t)i - 1) * sizeof(struct rec));
        s->pending.n--;
    }
}

static void on_action(struct sim *sim, struct server *s, const struct zab_action *a)
{
    struct dop *d;
    switch (a->type) {
    case ZAB_ACT_SEND:
        sim->st.diffs += a->msg.type == ZAB_MSG_DIFF;
        sim->st.truncs_sent += a->msg.type == ZAB_MSG_TRUNC;
        sim->st.snaps_sent += a->msg.type == ZAB_MSG_SNAP;
        net_send(sim, s->idx, a);
        break;
    case ZAB_ACT_DISCONNECT:
        for (int i = 0; i < sim->n; i++)
            if (sim->s[i].id == a->to)
                heap_push(sim, sim->now, EV_BREAK, s->idx, i, link_of(sim, s->idx, i)->gen, NULL);
        break;
    case ZAB_ACT_PERSIST_TXN: {
        uint32_t wid = payload_wid(sim, s, a->payload, a->len);
        check_logged(sim, s, a->zxid, wid);
        d = disk_push(sim, s);
        d->type = a->type;
        d->seq = a->seq;
        d->zxid = a->zxid;
        d->wid = wid;
        break;
    }
    case ZAB_ACT_PERSIST_EPOCH:
        d = disk_push(sim, s);
        d->type = a->type;
        d->seq = a->seq;
        d->kind = a->epoch_kind;
        d->epoch = a->epoch;
        break;
    case ZAB_ACT_TRUNCATE:
        if (s->applied.n && s->applied.v[s->applied.n - 1].zxid > a->zxid)
            sim_fail(sim, "server %u truncates below its applied state", s->id);
        d = disk_push(sim, s);
        d->type = a->type;
        d->seq = a->seq;
        d->zxid = a->zxid;
        break;
    case ZAB_ACT_INSTALL_SNAPSHOT:
        if (!s->staged || s->staged->zxid != a->zxid) {
            sim_fail(sim, "server %u installs snapshot %#llx it never received", s->id,
                     (unsigned long long)a->zxid);
            break;
        }
        check_install(sim, s, s->staged);
        sim->st.snap_keeps += a->zxid2 > a->zxid;
        recs_copy(&s->applied, &s->staged->recs);
        d = disk_push(sim, s);
        d->type = a->type;
        d->seq = a->seq;
        d->zxid = a->zxid;
        d->zxid2 = a->zxid2;
        d->snap = s->staged;
        s->staged = NULL;
        break;
    case ZAB_ACT_APPLY:
        on_apply(sim, s, a);
        break;
    case ZAB_ACT_ROLE:
        s->role = a->role;
        s->leader = a->leader;
        s->epoch = a->epoch;
        s->serving = a->serving;
        sim_trace(sim, "server %u: %s leader=%u epoch=%u serving=%d", s->id, zab_role_name(a->role),
                  a->leader, a->epoch, a->serving);
        check_role(sim, s);
        break;
    case ZAB_ACT_ABANDON: {
        size_t k = 0;
        for (size_t i = 0; i < s->pending.n; i++)
            if (s->pending.v[i].zxid < a->zxid || s->pending.v[i].zxid > a->zxid2)
                s->pending.v[k++] = s->pending.v[i];
        s->pending.n = k;
        break;
    }
    }
}

static void schedule_tick(struct sim *sim, struct server *s)
{
    uint64_t d = zab_deadline(s->core);
    if (d <= sim->now)
        d = sim->now + 1;
    if (d < s->tick_at) {
        s->tick_at = d;
        heap_push(sim, d, EV_TICK, s->idx, 0, ++s->tick_gen, NULL);
    }
}

void server_drain(struct sim *sim, struct server *s)
{
    struct zab_action a;
    while (!sim->failed && s->alive && zab_pop_action(s->core, &a))
        on_action(sim, s, &a);
    if (s->alive)
        schedule_tick(sim, s);
}

void server_tick(struct sim *sim, struct server *s, uint64_t gen)
{
    if (!s->alive || gen != s->tick_gen)
        return;
    s->tick_at = UINT64_MAX;
    zab_on_tick(s->core, sim->now);
    server_drain(sim, s);
}

/* ---- lifecycle ---- */

/* Starts a core from what the disk holds, as the shell does at startup. */
void server_boot(struct sim *sim, struct server *s)
{
    zxid_t applied = s->d_applied.n ? s->d_applied.v[s->d_applied.n - 1].zxid : 0;
    size_t first = recs_after(&s->d_log, applied);
    size_t keep = sim->cfg.retain_log;
    size_t start = first > keep ? first - keep : 0;
    size_t n = s->d_log.n - start;
    struct zab_entry *ents = calloc(n ? n : 1, sizeof(*ents));
    uint8_t *bufs = malloc((n ? n : 1) * 32);
    if (!ents || !bufs)
        abort();
    for (size_t i = 0; i < n; i++) {
        ents[i].zxid = s->d_log.v[start + i].zxid;
        payload_make(s->d_log.v[start + i].wid, bufs + i * 32, &ents[i].len);
        ents[i].payload = bufs + i * 32;
    }
    struct zab_durable d = {
        .accepted_epoch = s->d_accepted,
        .current_epoch = s->d_current,
        .applied = applied,
        .log_base = start > 0 ? s->d_log.v[start - 1].zxid : s->d_log_base,
        .log = ents,
        .n_log = n,
    };
    struct zab_config cfg = sim->cfg;
    cfg.my_id = s->id;
    cfg.seed = rng_next(&sim->rng);
    int rc = zab_new(&s->core, &cfg, &d, sim->now);
    free(ents);
    free(bufs);
    if (rc != 0) {
        sim_fail(sim, "server %u: zab_new refused its own disk (%d)", s->id, rc);
        return;
    }
    recs_copy(&s->applied, &s->d_applied);
    s->alive = 1;
    s->tick_at = UINT64_MAX;
    s->role = ZAB_LOOKING;
    s->serving = 0;
    sim_trace(sim, "server %u boots: applied=%#llx log=%zu", s->id, (unsigned long long)applied,
              s->d_log.n);
    server_drain(sim, s);
}

void server_crash(struct sim *sim, struct server *s)
{
    sim_trace(sim, "server %u crashes (%zu disk ops lost)", s->id, s->op_n);
    sim->st.crashes++;
    check_crash(sim, s);
    s->alive = 0;
    s->paused_until = 0;
    zab_free(s->core);
    s->core = NULL;
    drop_disk_queue(s);
    snap_unref(s->staged);
    s->staged = NULL;
    s->pending.n = 0; /* its clients see the connection drop: outcome unknown */
    s->role = ZAB_LOOKING;
    s->serving = 0;
    s->tick_gen++;
    for (int i = 0; i < sim->n && !sim->failed; i++) {
        if (i == s->idx)
            continue;
        struct link *l = link_of(sim, s->idx, i);
        net_break(sim, s->idx, i, l->gen);
    }
    check_durability(sim);
}

void server_free(struct server *s)
{
    zab_free(s->core);
    s->core = NULL;
    drop_disk_queue(s);
    free(s->ops);
    snap_unref(s->staged);
    recs_free(&s->d_log);
    recs_free(&s->d_applied);
    recs_free(&s->applied);
    recs_free(&s->pending);
}

/* A client write: tried on each server in a random order, as a follower would forward it;
 * only an established leader takes it. `only` restricts it to one server. */
int client_write(struct sim *sim, struct server *only)
{
    int start = (int)rng_range(&sim->rng, 0, (uint64_t)sim->n - 1);
    for (int k = 0; k < sim->n; k++) {
        struct server *s = only ? only : &sim->s[(start + k) % sim->n];
        zxid_t zxid;
        int rc = s->alive && s->paused_until <= sim->now ? zab_next_zxid(s->core, &zxid) : -1;
        if (rc == ZAB_EROLLOVER && s->rollover_epoch != s->epoch) {
            s->rollover_epoch = s->epoch; /* counted once per exhausted epoch */
            sim->st.rollovers++;
        }
        if (rc == 0) {
            uint32_t wid = sim->next_wid++;
            uint8_t buf[32];
            size_t len;
            payload_make(wid, buf, &len);
            check_proposed(sim, zxid, wid);
            if (zab_propose(s->core, sim->now, zxid, buf, len) != 0) {
                sim_fail(sim, "server %u: zab_propose refused the zxid it offered", s->id);
                return 0;
            }
            recs_push(&s->pending, zxid, wid);
            sim_trace(sim, "client write %u -> server %u at %#llx", wid, s->id,
                      (unsigned long long)zxid);
            server_drain(sim, s);
            return (int)wid;
        }
        if (only)
            break;
    }
    return 0;
}
