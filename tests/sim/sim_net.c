/* The simulator's event queue and faulty network: per-connection FIFO streams that break. */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

/* ---- randomness and records ---- */

uint64_t rng_next(struct rng *r)
{
    uint64_t x = (r->s += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_next(r) % (hi - lo + 1);
}

int rng_pct(struct rng *r, int pct)
{
    return (int)(rng_next(r) % 100) < pct;
}

void recs_push(struct recs *r, zxid_t zxid, uint32_t wid)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 32;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        if (!r->v)
            abort();
    }
    r->v[r->n].zxid = zxid;
    r->v[r->n].wid = wid;
    r->n++;
}

size_t recs_after(const struct recs *r, zxid_t zxid)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->v[mid].zxid <= zxid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long recs_find(const struct recs *r, zxid_t zxid)
{
    size_t i = recs_after(r, zxid);
    return i > 0 && r->v[i - 1].zxid == zxid ? (long)(i - 1) : -1;
}

void recs_copy(struct recs *dst, const struct recs *src)
{
    dst->n = 0;
    for (size_t i = 0; i < src->n; i++)
        recs_push(dst, src->v[i].zxid, src->v[i].wid);
}

void recs_free(struct recs *r)
{
    free(r->v);
    memset(r, 0, sizeof(*r));
}

void snap_unref(struct snap *s)
{
    if (s && --s->refs == 0) {
        recs_free(&s->recs);
        free(s);
    }
}

/* ---- event heap, ordered by (time, insertion order): ties replay identically ---- */

static int ev_less(const struct event *a, const struct event *b)
{
    return a->t != b->t ? a->t < b->t : a->seq < b->seq;
}

static void heap_insert(struct sim *sim, struct event e)
{
    struct heap *h = &sim->heap;
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 256;
        h->v = realloc(h->v, h->cap * sizeof(*h->v));
        if (!h->v)
            abort();
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ev_less(&e, &h->v[parent]))
            break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = e;
}

void heap_push(struct sim *sim, uint64_t t, int type, int a, int b, uint64_t gen, void *p)
{
    struct event e = {
        .t = t, .seq = sim->ev_seq++, .type = type, .a = a, .b = b, .gen = gen, .p = p};
    heap_insert(sim, e);
}

void heap_repush(struct sim *sim, uint64_t t, const struct event *e)
{
    struct event held = *e;
    held.t = t;
    heap_insert(sim, held);
}

int heap_pop(struct sim *sim, struct event *out)
{
    struct heap *h = &sim->heap;
    if (h->n == 0)
        return 0;
    *out = h->v[0];
    struct event last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && ev_less(&h->v[c + 1], &h->v[c]))
            c++;
        if (!ev_less(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n)
        h->v[i] = last;
    return 1;
}

void msg_free(struct msg *m)
{
    if (!m)
        return;
    free(m->payload);
    snap_unref(m->snap);
    free(m);
}

void heap_free(struct sim *sim)
{
    for (size_t i = 0; i < sim->heap.n; i++)
        if (sim->heap.v[i].type == EV_DELIVER)
            msg_free(sim->heap.v[i].p);
    free(sim->heap.v);
    memset(&sim->heap, 0, sizeof(sim->heap));
}

/* ---- links: one TCP connection per pair of servers ---- */

struct link *link_of(struct sim *sim, int a, int b)
{
    return a < b ? &sim->link[a][b] : &sim->link[b][a];
}

static int dir(int from, int to)
{
    return from < to ? 0 : 1;
}

/* Random latency, now and then a long stall; FIFO per direction while the connection lives. */
static uint64_t latency(struct sim *sim)
{
    uint64_t d = rng_range(&sim->rng, 1, 8);
    if (rng_pct(&sim->rng, 4))
        d += rng_range(&sim->rng, 20, 250);
    return d;
}

void net_send(struct sim *sim, int from, const struct zab_action *a)
{
    int to = -1;
    for (int i = 0; i < sim->n; i++)
        if (sim->s[i].id == a->to)
            to = i;
    if (to < 0 || to == from) {
        sim_fail(sim, "server %u sends to unknown peer %u", sim->s[from].id, a->to);
        return;
    }
    struct link *l = link_of(sim, from, to);
    int d = dir(from, to);
    if (!l->up || l->stalled[d])
        return; /* no connection: TCP would not have taken it */
    if (sim->blocked[from][to]) {
        /* packets go nowhere: this stream stalls, and TCP gives up on it after a while */
        l->stalled[d] = 1;
        heap_push(sim, sim->now + rng_range(&sim->rng, 10, 150), EV_BREAK, from, to, l->gen, NULL);
        return;
    }
    struct msg *m = calloc(1, sizeof(*m));
    if (!m)
        abort();
    m->from = from;
    m->to = to;
    m->gen = l->gen;
    m->m = a->msg;
    if (a->msg.len) {
        m->payload = malloc(a->msg.len);
        if (!m->payload)
            abort();
        memcpy(m->payload, a->msg.payload, a->msg.len);
    }
    m->m.payload = m->payload;
    if (a->msg.type == ZAB_MSG_SNAP) {
        /* the shell streams its committed state right behind the SNAP message */
        struct server *s = &sim->s[from];
        zxid_t have = s->applied.n ? s->applied.v[s->applied.n - 1].zxid : 0;
        if (have != a->msg.zxid)
            sim_fail(sim, "server %u sends SNAP at %#llx but its state is at %#llx", s->id,
                     (unsigned long long)a->msg.zxid, (unsigned long long)have);
        m->snap = calloc(1, sizeof(*m->snap));
        if (!m->snap)
            abort();
        m->snap->refs = 1;
        m->snap->zxid = a->msg.zxid;
        recs_copy(&m->snap->recs, &s->applied);
    }
    if (a->msg.type == ZAB_MSG_VOTE) {
        /* Election notifications may take their own lossy channel (ZooKeeper's election
         * port): some are lost, some come twice, they overtake each other. */
        if (rng_pct(&sim->rng, 3)) {
            msg_free(m);
            return;
        }
        if (rng_pct(&sim->rng, 3)) {
            struct msg *dup = calloc(1, sizeof(*dup));
            if (!dup)
                abort();
            *dup = *m;
            heap_push(sim, sim->now + latency(sim), EV_DELIVER, from, to, 0, dup);
        }
        heap_push(sim, sim->now + latency(sim), EV_DELIVER, from, to, 0, m);
        return;
    }
    uint64_t t = sim->now + latency(sim);
    if (t < l->last[d])
        t = l->last[d];
    l->last[d] = t;
    m->fifo = ++l->sent[d];
    heap_push(sim, t, EV_DELIVER, from, to, 0, m);
}

void net_deliver(struct sim *sim, struct msg *m)
{
    struct link *l = link_of(sim, m->from, m->to);
    struct server *s = &sim->s[m->to];
    if (!l->up || l->gen != m->gen || l->stalled[dir(m->from, m->to)] || !s->alive) {
        msg_free(m);
        return;
    }
    if (m->fifo) {
        /* the core is promised FIFO streams: a reordering is the simulator's own bug */
        uint64_t *last = &l->delivered[dir(m->from, m->to)];
        if (m->fifo <= *last)
            sim_fail(sim, "simulator: stream %u->%u reordered", sim->s[m->from].id, s->id);
        *last = m->fifo;
    }
    if (m->m.type == ZAB_MSG_VOTE)
        sim_trace(sim, "deliver %u->%u VOTE state=%d leader=%u zxid=%#llx round=%llu epoch=%u",
                  sim->s[m->from].id, s->id, m->m.vote.state, m->m.vote.leader,
                  (unsigned long long)m->m.vote.zxid, (unsigned long long)m->m.vote.round,
                  m->m.vote.peer_epoch);
    else
        sim_trace(sim, "deliver %u->%u %s zxid=%#llx epoch=%u", sim->s[m->from].id, s->id,
                  zab_msg_name(m->m.type), (unsigned long long)m->m.zxid, m->m.epoch);
    if (m->snap) {
        snap_unref(s->staged); /* the receiving shell stages the streamed snapshot */
        s->staged = m->snap;
        m->snap = NULL;
    }
    zab_on_message(s->core, sim->now, sim->s[m->from].id, &m->m);
    int crash_point = m->m.type != ZAB_MSG_VOTE && m->m.type != ZAB_MSG_PING;
    msg_free(m);
    server_drain(sim, s);
    if (crash_point)
        chaos_crash_point(sim, s);
}

void net_schedule_reconnect(struct sim *sim, int a, int b)
{
    struct link *l = link_of(sim, a, b);
    if (l->up || l->reconnecting || !sim->s[a].alive || !sim->s[b].alive)
        return;
    l->reconnecting = 1;
    heap_push(sim, sim->now + rng_range(&sim->rng, 5, 200), EV_RECONNECT, a, b, 0, NULL);
}

/* The connection dies: whatever is in flight is lost, both ends are told. */
void net_break(struct sim *sim, int a, int b, uint64_t gen)
{
    struct link *l = link_of(sim, a, b);
    if (!l->up || l->gen != gen)
        return;
    l->up = 0;
    l->gen++;
    l->stalled[0] = l->stalled[1] = 0;
    sim_trace(sim, "link %u-%u down", sim->s[a].id, sim->s[b].id);
    int ends[2] = {a, b};
    for (int k = 0; k < 2 && !sim->failed; k++) {
        struct server *s = &sim->s[ends[k]];
        if (s->alive) {
            zab_on_disconnected(s->core, sim->now, sim->s[ends[1 - k]].id);
            server_drain(sim, s);
        }
    }
    net_schedule_reconnect(sim, a, b);
}

void net_reconnect(struct sim *sim, int a, int b)
{
    struct link *l = link_of(sim, a, b);
    l->reconnecting = 0;
    if (l->up || !sim->s[a].alive || !sim->s[b].alive)
        return;
    if (sim->blocked[a][b] || sim->blocked[b][a]) {
        net_schedule_reconnect(sim, a, b); /* the handshake needs both directions */
        return;
    }
    l->up = 1;
    l->last[0] = l->last[1] = sim->now;
    sim_trace(sim, "link %u-%u up", sim->s[a].id, sim->s[b].id);
    int ends[2] = {a, b};
    for (int k = 0; k < 2 && !sim->failed; k++) {
        struct server *s = &sim->s[ends[k]];
        zab_on_connected(s->core, sim->now, sim->s[ends[1 - k]].id);
        server_drain(sim, s);
    }
}

static void cut(struct sim *sim, int from, int to)
{
    sim->blocked[from][to] = 1;
    struct link *l = link_of(sim, from, to);
    if (l->up && !l->stalled[dir(from, to)]) {
        l->stalled[dir(from, to)] = 1;
        heap_push(sim, sim->now + rng_range(&sim->rng, 10, 150), EV_BREAK, from, to, l->gen, NULL);
    }
}

/* A symmetric split into two sides, or a one-way cut of some pairs. */
void net_partition(struct sim *sim)
{
    if (rng_pct(&sim->rng, 60)) {
        uint32_t side = (uint32_t)rng_next(&sim->rng);
        sim_trace(sim, "partition %#x", side & ((1u << sim->n) - 1));
        for (int i = 0; i < sim->n; i++)
            for (int j = 0; j < sim->n; j++)
                if (i != j && ((side >> i) & 1) != ((side >> j) & 1))
                    cut(sim, i, j);
    } else {
        int k = (int)rng_range(&sim->rng, 1, (uint64_t)sim->n);
        for (int c = 0; c < k; c++) {
            int i = (int)rng_range(&sim->rng, 0, (uint64_t)sim->n - 1);
            int j = (int)rng_range(&sim->rng, 0, (uint64_t)sim->n - 1);
            if (i != j) {
                sim_trace(sim, "one-way cut %u->%u", sim->s[i].id, sim->s[j].id);
                cut(sim, i, j);
            }
        }
    }
}

void net_heal(struct sim *sim)
{
    sim_trace(sim, "heal network");
    memset(sim->blocked, 0, sizeof(sim->blocked));
    for (int i = 0; i < sim->n; i++)
        for (int j = i + 1; j < sim->n; j++)
            net_schedule_reconnect(sim, i, j);
}

void net_isolate(struct sim *sim, int a)
{
    sim_trace(sim, "isolate %u", sim->s[a].id);
    for (int j = 0; j < sim->n; j++)
        if (j != a) {
            cut(sim, a, j);
            cut(sim, j, a);
        }
}
