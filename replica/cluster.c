/* The replication shell. The core decides; this file carries out its actions (messages on the
 * peer mesh, log writes, applies) and feeds it events (messages, durability, links, time).
 * Client writes on the leader are prepared here and proposed; learners forward them to the
 * leader and answer their clients when the txn comes back committed (origin and cxid). */
#include "cluster.h"

#include "conn.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "peer.h"
#include "peer_msg.h"
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#define SNAP_CHUNK_BYTES (512u << 10)
#define SNAP_MAX_QUEUED (4u << 20) /* unsent bytes on the link before streaming pauses */

/* A request forwarded to the leader, waiting here for its txn, error or sync point. */
struct fwd {
    uint64_t cxid;
    struct request *req;
    zxid_t sync_zxid; /* sync: complete once applied up to it */
    int has_sync_point;
    UT_hash_handle hh;
};

/* A frame held back while a snapshot streams to the same peer (the stream comes first). */
struct held {
    uint8_t *buf;
    size_t len;
    struct held *next;
};

/* Leader side: a snapshot being streamed to one learner. */
struct snap_out {
    uint32_t to;
    struct store_snap *snap;
    zxid_t zxid;
    uint64_t count;
    struct held *held, *held_tail;
    struct snap_out *next;
};

struct cluster {
    struct server *srv;
    struct zab *zab;
    struct peer_net *net;
    uv_timer_t timer;
    uv_timer_t touch_timer;
    uv_idle_t stream_idle;
    int running;
    enum zab_role role;
    uint32_t leader;
    int serving;
    uint64_t persisted; /* highest seq known durable */
    int n_sync_points;  /* forwards waiting for a sync point to be applied */
    uint64_t reported;  /* highest seq told to the core */
    uint64_t next_cxid;
    struct fwd *fwds;
    struct snap_out *outs;
    /* Learner side: a snapshot being received, and the SNAP message it belongs to. */
    struct {
        int active;
        uint32_t from;
        struct zab_msg msg;
        struct store_install *inst;
        uint64_t count;
    } in;
    uint64_t *touched;
    size_t n_touched, cap_touched;
    int in_run;
};

struct persist_arg {
    struct cluster *c;
    uint64_t seq;
};

static void run(struct cluster *c);

static uint64_t now_ms(void)
{
    return server_now_ms();
}

/* ---- sending ---- */

static struct snap_out *out_for(struct cluster *c, uint32_t to)
{
    for (struct snap_out *o = c->outs; o; o = o->next)
        if (o->to == to)
            return o;
    return NULL;
}

/* Sends a frame (taking buf), or holds it while a snapshot streams to that peer. */
static void send_frame(struct cluster *c, uint32_t to, uint8_t *buf, size_t len)
{
    if (!c->running) {
        /* stopping: the store's last completions still run the core, the links are gone */
        free(buf);
        return;
    }
    struct snap_out *o = out_for(c, to);
    if (o) {
        struct held *h = malloc(sizeof(*h));
        if (!h) {
            free(buf);
            return;
        }
        *h = (struct held){buf, len, NULL};
        if (o->held_tail)
            o->held_tail->next = h;
        else
            o->held = h;
        o->held_tail = h;
        return;
    }
    peer_send(c->net, to, buf, len);
    free(buf);
}

static void out_free(struct cluster *c, struct snap_out *o, int flush)
{
    struct snap_out **pp = &c->outs;
    while (*pp && *pp != o)
        pp = &(*pp)->next;
    if (*pp)
        *pp = o->next;
    store_snap_close(o->snap);
    struct held *h = o->held;
    while (h) {
        struct held *next = h->next;
        if (flush)
            peer_send(c->net, o->to, h->buf, h->len);
        free(h->buf);
        free(h);
        h = next;
    }
    free(o);
    if (!c->outs)
        uv_idle_stop(&c->stream_idle);
}

/* Streams snapshot chunks while the link drains; then the end marker and what was held. */
static void on_stream(uv_idle_t *h)
{
    struct cluster *c = h->data;
    struct snap_out *o = c->outs;
    while (o) {
        struct snap_out *next = o->next;
        if (!peer_up(c->net, o->to)) {
            out_free(c, o, 0);
            o = next;
            continue;
        }
        if (peer_queued(c->net, o->to) > SNAP_MAX_QUEUED) {
            o = next;
            continue;
        }
        /* store_snap_next's pointers last until its next call: copy into one arena, and
         * point into it only once it stops growing */
        struct peer_snap_entry e[1024];
        size_t off[1024], n = 0, used = 0, cap = SNAP_CHUNK_BYTES * 2;
        uint8_t *arena = malloc(cap);
        int rc = arena ? 1 : -ENOMEM;
        while (arena && n < 1024 && used < SNAP_CHUNK_BYTES) {
            enum store_snap_kind kind;
            const uint8_t *k, *v;
            size_t kl, vl;
            if ((rc = store_snap_next(o->snap, &kind, &k, &kl, &v, &vl)) != 1)
                break;
            if (used + kl + vl > cap) {
                while (used + kl + vl > cap)
                    cap *= 2;
                uint8_t *na = realloc(arena, cap);
                if (!na) {
                    rc = -ENOMEM;
                    break;
                }
                arena = na;
            }
            memcpy(arena + used, k, kl);
            memcpy(arena + used + kl, v, vl);
            off[n] = used;
            e[n++] = (struct peer_snap_entry){kind == STORE_SNAP_SESSION, NULL, kl, NULL, vl};
            used += kl + vl;
        }
        for (size_t i = 0; i < n; i++) {
            e[i].key = arena + off[i];
            e[i].rec = arena + off[i] + e[i].key_len;
        }
        uint8_t *buf;
        size_t len;
        if (n && peer_encode_snap_chunk(e, n, &buf, &len) == 0) {
            peer_send(c->net, o->to, buf, len);
            free(buf);
            o->count += n;
        }
        free(arena);
        if (rc < 0) {
            LOG_ERROR("snapshot read for peer %u failed; dropping the link", o->to);
            peer_drop(c->net, o->to);
            out_free(c, o, 0);
        } else if (rc == 0) {
            if (peer_encode_snap_end(o->zxid, o->count, &buf, &len) == 0) {
                peer_send(c->net, o->to, buf, len);
                free(buf);
            }
            LOG_INFO("snapshot at 0x%llx (%llu entries) sent to peer %u",
                     (unsigned long long)o->zxid, (unsigned long long)o->count, o->to);
            out_free(c, o, 1);
        }
        o = next;
    }
}

static void start_snapshot(struct cluster *c, uint32_t to, zxid_t zxid)
{
    struct server *s = c->srv;
    /* The durable tree must hold everything applied so far: a synced write after the queued
     * applies makes RocksDB's state the in-memory tree's (the writer keeps queue order). */
    if (store_set_meta_sync(s->store, "snapshotMark", zxid)) {
        LOG_ERROR("cannot prepare a snapshot for peer %u; stopping", to);
        abort();
    }
    struct snap_out *o = calloc(1, sizeof(*o));
    zxid_t at = 0;
    if (!o || store_snap_open(s->store, &o->snap, &at)) {
        LOG_ERROR("cannot open a snapshot for peer %u", to);
        free(o);
        peer_drop(c->net, to);
        return;
    }
    if (at != zxid) {
        LOG_ERROR("snapshot at 0x%llx, expected 0x%llx; stopping", (unsigned long long)at,
                  (unsigned long long)zxid);
        abort();
    }
    o->to = to;
    o->zxid = zxid;
    o->next = c->outs;
    c->outs = o;
    uv_idle_start(&c->stream_idle, on_stream);
}

/* ---- durability ---- */

static void persisted(struct cluster *c, uint64_t seq)
{
    if (seq > c->persisted)
        c->persisted = seq;
}

static void on_appended(void *arg, int status)
{
    struct persist_arg *p = arg;
    struct cluster *c = p->c;
    uint64_t seq = p->seq;
    free(p);
    if (status) {
        LOG_ERROR("log write failed: %s; stopping", err_msg(status)); /* ZOOKEEPER-4882 */
        abort();
    }
    persisted(c, seq);
    run(c);
}

/* ---- applying ---- */

static void complete_fwd(struct cluster *c, struct fwd *f, int err, zxid_t zxid)
{
    HASH_DEL(c->fwds, f);
    c->n_sync_points -= f->has_sync_point;
    struct request *r = f->req;
    free(f);
    server_complete(c->srv, r, err, zxid);
}

static void check_syncs(struct cluster *c)
{
    struct fwd *f, *tmp;
    HASH_ITER(hh, c->fwds, f, tmp)
    {
        if (f->has_sync_point && f->sync_zxid <= c->srv->tree.last_applied)
            complete_fwd(c, f, 0, c->srv->tree.last_applied);
    }
}

static void apply(struct cluster *c, zxid_t zxid, const uint8_t *payload, size_t len)
{
    if (server_commit_own(c->srv, zxid)) {
        /* the leader's own proposal: its txn is at hand, no need to decode the payload */
        if (c->n_sync_points)
            check_syncs(c);
        return;
    }
    struct txn t;
    int rc = txn_decode(payload, len, &t);
    if (rc || t.zxid != zxid) {
        LOG_ERROR("committed txn 0x%llx does not decode (%s); stopping", (unsigned long long)zxid,
                  err_msg(rc ? rc : ZE_DATAINCONSISTENCY));
        abort();
    }
    int mine = server_commit(c->srv, &t);
    if (!mine && t.origin == c->srv->cfg.myid && t.cxid) {
        struct fwd *f = NULL;
        HASH_FIND(hh, c->fwds, &t.cxid, sizeof(t.cxid), f);
        if (f) {
            server_fill_results(c->srv, f->req, &t);
            complete_fwd(c, f, 0, t.zxid);
        }
    }
    txn_free_contents(&t);
    if (c->n_sync_points) /* not a walk of every forward per txn when there is no sync */
        check_syncs(c);
}

static void fail_forwards(struct cluster *c, int err)
{
    struct fwd *f, *tmp;
    HASH_ITER(hh, c->fwds, f, tmp)
    complete_fwd(c, f, err, 0);
}

static void role_changed(struct cluster *c, const struct zab_action *a)
{
    struct server *s = c->srv;
    int was_serving = c->serving, was_leader = c->role == ZAB_LEADING;
    c->role = a->role;
    c->leader = a->leader;
    c->serving = a->serving;
    LOG_INFO("role %s, leader %u, epoch %u%s", zab_role_name(a->role), a->leader, a->epoch,
             a->serving ? ", serving" : "");
    if (was_leader && (a->role != ZAB_LEADING || !a->serving))
        server_reset_prep(s);
    if (was_serving && !a->serving) {
        /* As ZooKeeper: out of quorum, clients go elsewhere; their sessions live on. */
        fail_forwards(c, ZE_CONNECTIONLOSS);
        server_drop_clients(s);
    }
    if (a->role == ZAB_LEADING && a->serving && !(was_leader && was_serving))
        server_reset_session_clocks(s);
}

static void do_action(struct cluster *c, struct zab_action *a)
{
    struct server *s = c->srv;
    switch (a->type) {
    case ZAB_ACT_SEND: {
        uint8_t *buf;
        size_t len;
        LOG_DEBUG("peer %u <- %s zxid 0x%llx epoch %u", a->to, zab_msg_name(a->msg.type),
                  (unsigned long long)a->msg.zxid, a->msg.epoch);
        if (peer_encode_zab(&a->msg, &buf, &len))
            break;
        send_frame(c, a->to, buf, len);
        if (a->msg.type == ZAB_MSG_SNAP && c->running && !out_for(c, a->to))
            start_snapshot(c, a->to, a->msg.zxid);
        break;
    }
    case ZAB_ACT_DISCONNECT:
        if (c->running)
            peer_drop(c->net, a->to);
        break;
    case ZAB_ACT_PERSIST_TXN: {
        struct persist_arg *p = malloc(sizeof(*p));
        if (!p)
            abort();
        *p = (struct persist_arg){c, a->seq};
        if (store_append(s->store, a->zxid, a->payload, a->len, on_appended, p)) {
            LOG_ERROR("cannot queue a log write; stopping");
            abort();
        }
        break;
    }
    case ZAB_ACT_PERSIST_EPOCH:
        if (store_set_meta_sync(
                s->store, a->epoch_kind == ZAB_ACCEPTED_EPOCH ? "acceptedEpoch" : "currentEpoch",
                a->epoch)) {
            LOG_ERROR("cannot write the epoch; stopping");
            abort();
        }
        persisted(c, a->seq);
        break;
    case ZAB_ACT_TRUNCATE:
        if (store_truncate_log_sync(s->store, a->zxid)) {
            LOG_ERROR("cannot truncate the log; stopping");
            abort();
        }
        LOG_INFO("log truncated after 0x%llx", (unsigned long long)a->zxid);
        persisted(c, a->seq);
        break;
    case ZAB_ACT_INSTALL_SNAPSHOT:
        if (!c->in.inst) {
            LOG_ERROR("asked to install a snapshot that was not received; stopping");
            abort();
        }
        if (store_install_commit(s->store, c->in.inst, a->zxid, a->zxid2)) {
            LOG_ERROR("cannot install the snapshot; stopping");
            abort();
        }
        c->in.inst = NULL;
        if (server_reload_tree(s)) {
            LOG_ERROR("cannot load the installed snapshot; stopping");
            abort();
        }
        LOG_INFO("snapshot at 0x%llx installed", (unsigned long long)a->zxid);
        persisted(c, a->seq);
        break;
    case ZAB_ACT_APPLY:
        apply(c, a->zxid, a->payload, a->len);
        break;
    case ZAB_ACT_ROLE:
        role_changed(c, a);
        break;
    case ZAB_ACT_ABANDON:
        LOG_WARN("proposals 0x%llx..0x%llx abandoned (%s)", (unsigned long long)a->zxid,
                 (unsigned long long)a->zxid2, a->reason == ZAB_EROLLOVER ? "new epoch" : "lost");
        server_abandon(s, a->zxid, a->zxid2);
        break;
    }
}

static void on_timer(uv_timer_t *t);

/* Drains the core's actions, tells it what became durable, and rearms its timer. */
static void run(struct cluster *c)
{
    if (c->in_run || !c->zab)
        return;
    c->in_run = 1;
    for (;;) {
        struct zab_action a;
        while (zab_pop_action(c->zab, &a))
            do_action(c, &a);
        if (c->persisted <= c->reported)
            break;
        c->reported = c->persisted;
        zab_on_persisted(c->zab, now_ms(), c->reported);
    }
    c->in_run = 0;
    if (c->running) {
        uint64_t d = zab_deadline(c->zab), now = now_ms();
        uv_timer_start(&c->timer, on_timer, d > now ? d - now : 0, 0);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct cluster *c = t->data;
    zab_on_tick(c->zab, now_ms());
    run(c);
}

/* ---- peer messages ---- */

void cluster_forward_error(struct cluster *c, uint32_t to, uint64_t cxid, const struct request *r)
{
    uint8_t *buf;
    size_t len;
    if (c && peer_encode_forward_error(cxid, r, &buf, &len) == 0)
        send_frame(c, to, buf, len);
}

/* The leader takes a learner's forwarded request. */
static void on_forward(struct cluster *c, uint32_t from, struct peer_msg *m)
{
    struct request *r = m->req;
    m->req = NULL;
    if (!cluster_is_leader(c) || !c->serving) {
        r->err = ZE_CONNECTIONLOSS;
        cluster_forward_error(c, from, m->cxid, r);
        request_free(r);
        return;
    }
    if (r->args.op == REQ_SYNC) {
        /* sync: the learner has everything once it applied what is proposed now */
        struct zab_status st;
        zab_get_status(c->zab, &st);
        uint8_t *buf;
        size_t len;
        if (peer_encode_sync_point(m->cxid, st.last_zxid, &buf, &len) == 0)
            send_frame(c, from, buf, len);
        request_free(r);
        return;
    }
    r->auth = &m->auth; /* the client's ids, for the ACL checks of prepare */
    server_propose(c->srv, r, from, m->cxid);
}

static void stage_abort(struct cluster *c)
{
    store_install_abort(c->in.inst);
    free((void *)c->in.msg.payload);
    memset(&c->in, 0, sizeof(c->in));
}

static int on_recv(void *arg, uint32_t from, const uint8_t *frame, size_t len)
{
    struct cluster *c = arg;
    struct server *s = c->srv;
    struct peer_msg m;
    int rc = peer_msg_decode(frame, len, &m);
    if (rc) {
        LOG_WARN("peer %u: undecodable message of %zu bytes", from, len);
        return rc;
    }
    switch (m.kind) {
    case PEER_ZAB:
        LOG_DEBUG("peer %u -> %s zxid 0x%llx epoch %u", from, zab_msg_name(m.zab.type),
                  (unsigned long long)m.zab.zxid, m.zab.epoch);
        if (m.zab.type == ZAB_MSG_SNAP) {
            /* Stage the whole snapshot before the core hears of it (zab.h, Snapshots). */
            stage_abort(c);
            c->in.active = 1;
            c->in.from = from;
            c->in.msg = m.zab;
            c->in.msg.payload = NULL;
            c->in.msg.len = 0;
            c->in.inst = store_install_begin(s->store);
            break;
        }
        zab_on_message(c->zab, now_ms(), from, &m.zab);
        break;
    case PEER_SNAP_CHUNK:
        if (!c->in.active || c->in.from != from) {
            LOG_WARN("peer %u: snapshot data without a SNAP", from);
            rc = ZE_MARSHALLINGERROR;
            break;
        }
        for (size_t i = 0; i < m.n_entries; i++) {
            const struct peer_snap_entry *e = &m.entries[i];
            if (e->is_session) {
                store_install_put_session(s->store, c->in.inst, frame_get_u64(e->key), e->rec,
                                          e->rec_len);
            } else {
                char *p = strndup((const char *)e->key, e->key_len);
                if (!p)
                    abort();
                store_install_put_node(s->store, c->in.inst, p, e->rec, e->rec_len);
                free(p);
            }
        }
        c->in.count += m.n_entries;
        break;
    case PEER_SNAP_END:
        if (!c->in.active || c->in.from != from || m.count != c->in.count ||
            m.zxid != c->in.msg.zxid) {
            LOG_WARN("peer %u: snapshot end does not match (active %d, %llu/%llu entries, "
                     "0x%llx/0x%llx)",
                     from, c->in.active, (unsigned long long)m.count,
                     (unsigned long long)c->in.count, (unsigned long long)m.zxid,
                     (unsigned long long)c->in.msg.zxid);
            rc = ZE_MARSHALLINGERROR;
            break;
        }
        LOG_INFO("snapshot at 0x%llx received from peer %u (%llu entries)",
                 (unsigned long long)m.zxid, from, (unsigned long long)m.count);
        c->in.active = 0;
        zab_on_message(c->zab, now_ms(), from, &c->in.msg);
        break;
    case PEER_FORWARD:
        on_forward(c, from, &m);
        break;
    case PEER_FORWARD_ERROR: {
        struct fwd *f = NULL;
        HASH_FIND(hh, c->fwds, &m.cxid, sizeof(m.cxid), f);
        if (f) {
            server_set_op_errors(f->req, m.err, m.op_errs, m.n_op_errs);
            complete_fwd(c, f, m.err, 0);
        }
        break;
    }
    case PEER_SYNC_POINT: {
        struct fwd *f = NULL;
        HASH_FIND(hh, c->fwds, &m.cxid, sizeof(m.cxid), f);
        if (f && !f->has_sync_point) {
            f->has_sync_point = 1;
            c->n_sync_points++;
            f->sync_zxid = m.zxid;
            check_syncs(c);
        }
        break;
    }
    case PEER_TOUCH:
        if (cluster_is_leader(c))
            for (size_t i = 0; i < m.n_sessions; i++) {
                struct session *sess = session_get(&s->sessions, m.sessions[i]);
                if (sess)
                    session_touch(sess, now_ms());
            }
        break;
    }
    peer_msg_free(&m);
    if (rc == 0)
        run(c);
    return rc;
}

static void on_link(void *arg, uint32_t id, int up)
{
    struct cluster *c = arg;
    if (up) {
        zab_on_connected(c->zab, now_ms(), id);
    } else {
        struct snap_out *o = out_for(c, id);
        if (o)
            out_free(c, o, 0);
        if (c->in.active && c->in.from == id)
            stage_abort(c);
        zab_on_disconnected(c->zab, now_ms(), id);
    }
    run(c);
}

/* ---- sessions ---- */

void cluster_touch(struct cluster *c, uint64_t session_id)
{
    if (cluster_is_leader(c))
        return;
    for (size_t i = 0; i < c->n_touched; i++)
        if (c->touched[i] == session_id)
            return;
    if (c->n_touched == c->cap_touched) {
        size_t cap = c->cap_touched ? c->cap_touched * 2 : 64;
        uint64_t *t = realloc(c->touched, cap * sizeof(*t));
        if (!t)
            return;
        c->touched = t;
        c->cap_touched = cap;
    }
    c->touched[c->n_touched++] = session_id;
}

/* Learners tell the leader every half tick which sessions were active (ZooKeeper's PING). */
static void on_touch_timer(uv_timer_t *t)
{
    struct cluster *c = t->data;
    if (!c->n_touched || cluster_is_leader(c) || !c->leader)
        return;
    uint8_t *buf;
    size_t len;
    if (peer_encode_touch(c->touched, c->n_touched, &buf, &len) == 0)
        send_frame(c, c->leader, buf, len);
    c->n_touched = 0;
}

/* ---- requests ---- */

int cluster_serving(const struct cluster *c)
{
    return c->serving;
}

int cluster_is_leader(const struct cluster *c)
{
    return c->role == ZAB_LEADING;
}

const char *cluster_role_name(const struct cluster *c)
{
    switch (c->role) {
    case ZAB_LEADING:
        return "leader";
    case ZAB_FOLLOWING:
        return "follower";
    case ZAB_OBSERVING:
        return "observer";
    default:
        return "looking";
    }
}

void cluster_status(const struct cluster *c, struct zab_status *out)
{
    zab_get_status(c->zab, out);
}

int cluster_next_zxid(struct cluster *c, zxid_t *zxid)
{
    return zab_next_zxid(c->zab, zxid);
}

int cluster_propose(struct cluster *c, const struct txn *t)
{
    uint8_t *rec;
    size_t len;
    if (txn_encode(t, &rec, &len))
        return -ENOMEM;
    int rc = zab_propose(c->zab, now_ms(), t->zxid, rec, len);
    free(rec);
    if (rc == 0)
        run(c);
    return rc;
}

void cluster_submit(struct cluster *c, struct request *r)
{
    struct server *s = c->srv;
    if (!c->serving) {
        server_complete(s, r, ZE_CONNECTIONLOSS, 0);
        return;
    }
    if (cluster_is_leader(c)) {
        server_submit_local(s, r);
        return;
    }
    struct fwd *f = calloc(1, sizeof(*f));
    uint8_t *buf;
    size_t len;
    if (!f || peer_encode_forward(++c->next_cxid, r, r->auth, &buf, &len)) {
        free(f);
        server_complete(s, r, -ENOMEM, 0);
        return;
    }
    f->cxid = c->next_cxid;
    f->req = r;
    HASH_ADD(hh, c->fwds, cxid, sizeof(f->cxid), f);
    send_frame(c, c->leader, buf, len);
}

/* ---- lifecycle ---- */

struct log_gather {
    struct zab_entry *v;
    uint8_t **bufs;
    size_t n, cap;
};

static int gather(void *arg, zxid_t zxid, const uint8_t *rec, size_t len)
{
    struct log_gather *g = arg;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 256;
        struct zab_entry *v = realloc(g->v, cap * sizeof(*v));
        uint8_t **b = realloc(g->bufs, cap * sizeof(*b));
        if (v)
            g->v = v;
        if (b)
            g->bufs = b;
        if (!v || !b)
            return -ENOMEM;
        g->cap = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, rec, len);
    g->bufs[g->n] = copy;
    g->v[g->n++] = (struct zab_entry){zxid, copy, len};
    return 0;
}

int cluster_init(struct cluster **out, struct server *s, char **err)
{
    const struct config *cfg = &s->cfg;
    struct cluster *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->srv = s;
    struct zab_member members[CONFIG_MAX_SERVERS];
    for (int i = 0; i < cfg->n_servers; i++)
        members[i] = (struct zab_member){cfg->servers[i].id, cfg->servers[i].observer};
    struct zab_config zc = {
        .my_id = cfg->myid,
        .members = members,
        .n_members = (size_t)cfg->n_servers,
        .tick_ms = (uint32_t)cfg->tick_time,
        .init_limit = (uint32_t)cfg->init_limit,
        .sync_limit = (uint32_t)cfg->sync_limit,
        .seed = (uint64_t)server_wall_ms() ^ ((uint64_t)cfg->myid << 48),
        /* Back-pressure comes from the connections (each pauses at 1,024 queued requests),
         * so the core's own bound only guards against a runaway. */
        .max_outstanding = 100000,
    };
    /* The whole retained log goes to the core: entries above `applied` may or may not be
     * committed, and only the core (with the leader) can tell. */
    struct log_gather g = {0};
    struct store_loader l = {.arg = &g, .txn = gather};
    zxid_t applied = store_applied(s->store);
    int rc = store_load_log(s->store, 0, &l);
    struct zab_durable d = {
        .accepted_epoch = (uint32_t)store_get_meta(s->store, "acceptedEpoch"),
        .current_epoch = (uint32_t)store_get_meta(s->store, "currentEpoch"),
        .applied = applied,
        .log_base = g.n ? g.v[0].zxid - 1 : applied,
        .log = g.v,
        .n_log = g.n,
    };
    if (d.log_base > applied)
        d.log_base = applied; /* trimmed log: the core DIFFs only from what it has */
    if (rc == 0)
        rc = zab_new(&c->zab, &zc, &d, now_ms());
    for (size_t i = 0; i < g.n; i++)
        free(g.bufs[i]);
    free(g.v);
    free(g.bufs);
    if (rc) {
        if (asprintf(err, "cannot start replication from the stored state (%s)", err_msg(rc)) < 0)
            *err = NULL;
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int cluster_start(struct cluster *c, char **err)
{
    struct server *s = c->srv;
    int rc = peer_net_start(&c->net, s->loop, &s->cfg, on_recv, on_link, c, err);
    if (rc)
        return rc;
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    uv_timer_init(s->loop, &c->touch_timer);
    c->touch_timer.data = c;
    uint64_t half = (uint64_t)(s->cfg.tick_time / 2 > 0 ? s->cfg.tick_time / 2 : 1);
    uv_timer_start(&c->touch_timer, on_touch_timer, half, half);
    uv_idle_init(s->loop, &c->stream_idle);
    c->stream_idle.data = c;
    c->running = 1;
    run(c);
    return 0;
}

void cluster_stop(struct cluster *c)
{
    if (!c->running)
        return;
    c->running = 0;
    while (c->outs)
        out_free(c, c->outs, 0);
    stage_abort(c);
    fail_forwards(c, ZE_CONNECTIONLOSS);
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_close((uv_handle_t *)&c->touch_timer, NULL);
    uv_close((uv_handle_t *)&c->stream_idle, NULL);
    peer_net_stop(c->net);
    c->net = NULL;
}

void cluster_free(struct cluster *c)
{
    if (!c)
        return;
    zab_free(c->zab);
    free(c->touched);
    free(c);
}
