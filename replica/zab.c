/* The ZAB core's lifecycle, action queue, event dispatch and role changes. */
#include "zab_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- action queue ---- */

static struct zqact *q_push(struct zab *z)
{
    if (z->q_len == z->q_cap) {
        size_t cap = z->q_cap ? z->q_cap * 2 : 64;
        struct zqact *q = malloc(cap * sizeof(*q));
        if (!q)
            abort(); /* fail-stop: a dropped action would break the shell's contract */
        for (size_t i = 0; i < z->q_len; i++)
            q[i] = z->q[(z->q_head + i) % z->q_cap];
        free(z->q);
        z->q = q;
        z->q_head = 0;
        z->q_cap = cap;
    }
    struct zqact *qa = &z->q[(z->q_head + z->q_len++) % z->q_cap];
    memset(qa, 0, sizeof(*qa));
    return qa;
}

void act_send(struct zab *z, uint32_t to, const struct zab_msg *m, struct zbuf *buf)
{
    struct zqact *qa = q_push(z);
    qa->a.type = ZAB_ACT_SEND;
    qa->a.to = to;
    qa->a.msg = *m;
    qa->buf = zbuf_ref(buf);
}

void act_disconnect(struct zab *z, uint32_t to)
{
    struct zpeer *p = zab_peer(z, to);
    if (!p || !p->connected)
        return;
    p->connected = 0; /* whatever still arrives on that connection belongs to the old session */
    p->has_early_info = 0;
    struct zqact *qa = q_push(z);
    qa->a.type = ZAB_ACT_DISCONNECT;
    qa->a.to = to;
}

uint64_t act_persist_txn(struct zab *z, zxid_t zxid, struct zbuf *buf)
{
    struct zqact *qa = q_push(z);
    qa->a.type = ZAB_ACT_PERSIST_TXN;
    qa->a.seq = ++z->seq_issued;
    qa->a.zxid = zxid;
    qa->buf = zbuf_ref(buf);
    return qa->a.seq;
}

uint64_t act_persist_epoch(struct zab *z, enum zab_epoch_kind kind, uint32_t epoch)
{
    struct zqact *qa = q_push(z);
    qa->a.type = ZAB_ACT_PERSIST_EPOCH;
    qa->a.seq = ++z->seq_issued;
    qa->a.epoch_kind = kind;
    qa->a.epoch = epoch;
    return qa->a.seq;
}

uint64_t act_truncate(struct zab *z, zxid_t zxid)
{
    struct zqact *qa = q_push(z);
    qa->a.type = ZAB_ACT_TRUNCATE;
    qa->a.seq = ++z->seq_issued;
    qa->a.zxid = zxid;
    return qa->a.seq;
}

uint64_t act_install(struct zab *z, zxid_t snap, zxid_t keep)
{
    struct zqact *qa = q_push(z);
    qa->a.type = ZAB_ACT_INSTALL_SNAPSHOT;
    qa->a.seq = ++z->seq_issued;
    qa->a.zxid = snap;
    qa->a.zxid2 = keep;
    return qa->a.seq;
}

static void act_apply(struct zab *z, const struct zentry *e)
{
    struct zqact *qa = q_push(z);
    qa->a.type = ZAB_ACT_APPLY;
    qa->a.zxid = e->zxid;
    qa->buf = zbuf_ref(e->buf);
}

void act_role(struct zab *z)
{
    struct zqact *qa = q_push(z);
    qa->a.type = ZAB_ACT_ROLE;
    qa->a.role = z->role;
    qa->a.leader = z->leader;
    qa->a.epoch = z->role == ZAB_LEADING ? z->ld.epoch : z->ln.epoch;
    qa->a.serving = z->serving;
}

void act_abandon(struct zab *z, zxid_t from, zxid_t to, int reason)
{
    struct zqact *qa = q_push(z);
    qa->a.type = ZAB_ACT_ABANDON;
    qa->a.zxid = from;
    qa->a.zxid2 = to;
    qa->a.reason = reason;
}

static void release_popped(struct zab *z)
{
    zbuf_unref(z->popped);
    z->popped = NULL;
}

int zab_pop_action(struct zab *z, struct zab_action *out)
{
    release_popped(z);
    if (z->q_len == 0)
        return 0;
    struct zqact *qa = &z->q[z->q_head];
    z->q_head = (z->q_head + 1) % z->q_cap;
    z->q_len--;
    *out = qa->a;
    z->popped = qa->buf;
    if (qa->buf) {
        out->payload = qa->buf->data;
        out->len = qa->buf->len;
        if (out->type == ZAB_ACT_SEND) {
            out->msg.payload = qa->buf->data;
            out->msg.len = qa->buf->len;
        }
    }
    return 1;
}

/* ---- shared helpers ---- */

struct zpeer *zab_peer(struct zab *z, uint32_t id)
{
    for (size_t i = 0; i < z->n_peers; i++)
        if (z->peers[i].id == id)
            return &z->peers[i];
    return NULL;
}

size_t zab_quorum(const struct zab *z)
{
    return election_quorum(&z->el);
}

uint64_t zab_timeout_ms(const struct zab *z, uint32_t ticks)
{
    return (uint64_t)ticks * z->tick_ms;
}

void zab_send_simple(struct zab *z, uint32_t to, enum zab_msg_type t, uint64_t session,
                     uint32_t epoch, zxid_t zxid)
{
    struct zab_msg m = {.type = t, .session = session, .epoch = epoch, .zxid = zxid};
    act_send(z, to, &m, NULL);
}

zxid_t zab_durable_zxid(const struct zab *z)
{
    /* Persist sequence numbers grow along the log, so the durable entries are a prefix:
     * find its end by bisection (this runs for every ACK). */
    size_t lo = 0, hi = z->log.len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (zlog_at(&z->log, mid)->seq <= z->seq_durable)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0)
        return zlog_at(&z->log, lo - 1)->zxid;
    return z->log.base_seq <= z->seq_durable ? z->log.base : 0;
}

int zab_log_append(struct zab *z, zxid_t zxid, struct zbuf *buf)
{
    uint64_t seq = act_persist_txn(z, zxid, buf);
    if (zlog_push(&z->log, zxid, buf, seq) != 0)
        abort(); /* fail-stop: the txn is queued to disk but missing from memory */
    return 0;
}

/* Committed entries beyond the retained window are only on disk (DIFF from there is a SNAP). */
static void trim_log(struct zab *z)
{
    size_t n_applied = zlog_after(&z->log, z->applied);
    if (n_applied > z->retain_log) {
        zlog_drop_upto(&z->log, zlog_at(&z->log, n_applied - z->retain_log - 1)->zxid);
        z->log.base_seq = 0;
    }
}

void zab_apply_upto(struct zab *z, zxid_t limit)
{
    zxid_t durable = zab_durable_zxid(z);
    if (limit > durable)
        limit = durable; /* applied txns are always in the local durable log first */
    size_t i = zlog_after(&z->log, z->applied);
    for (; i < z->log.len; i++) {
        struct zentry *e = zlog_at(&z->log, i);
        if (e->zxid > limit)
            break;
        act_apply(z, e);
        z->applied = e->zxid;
    }
    trim_log(z);
}

static void reset_roles(struct zab *z)
{
    for (size_t i = 0; i < z->n_peers; i++)
        memset(&z->peers[i].h, 0, sizeof(z->peers[i].h));
    memset(&z->ld, 0, sizeof(z->ld));
    memset(&z->ln, 0, sizeof(z->ln));
}

void zab_go_looking(struct zab *z, int reason)
{
    if (z->role == ZAB_LEADING) {
        zxid_t last = zlog_last(&z->log);
        if (z->ld.phase == LD_BROADCAST && last > z->applied) {
            zxid_t from =
                ZXID_EPOCH(z->applied) == z->ld.epoch ? z->applied + 1 : ZXID(z->ld.epoch, 1);
            act_abandon(z, from, last, reason);
        }
        for (size_t i = 0; i < z->n_peers; i++)
            if (z->peers[i].h.phase != H_NONE)
                act_disconnect(z, z->peers[i].id);
    } else if (z->role == ZAB_FOLLOWING || z->role == ZAB_OBSERVING) {
        act_disconnect(z, z->leader);
    }
    reset_roles(z);
    z->role = ZAB_LOOKING;
    z->leader = 0;
    z->serving = 0;
    act_role(z);
    election_start(&z->el, z->now, zlog_last(&z->log), z->current_epoch);
}

/* A peer takes me for its leader, and I follow someone else: breaking our connection sends it
 * back to the election now rather than after initLimit ticks, as a ZooKeeper learner gives up
 * after a few refused connections to a server that does not lead. */
static void refuse_learner(struct zab *z, struct zpeer *p)
{
    if (p->id == z->leader)
        zab_go_looking(z, ZAB_ENOTLEADER); /* my leader takes me for its own: start over */
    else
        act_disconnect(z, p->id);
}

static void on_decided(struct zab *z, const struct election_result *r)
{
    reset_roles(z);
    z->leader = r->leader;
    z->serving = 0;
    if (r->state == ELECTION_LEADING) {
        z->role = ZAB_LEADING;
        act_role(z);
        leader_start(z);
        /* Learners that decided before me have already said FOLLOWERINFO, once */
        for (size_t i = 0; i < z->n_peers && z->role == ZAB_LEADING; i++) {
            struct zpeer *p = &z->peers[i];
            if (p->has_early_info) {
                struct zab_msg m = p->early_info;
                p->has_early_info = 0;
                leader_on_info(z, p, &m);
            }
        }
    } else {
        z->role = r->state == ELECTION_OBSERVING ? ZAB_OBSERVING : ZAB_FOLLOWING;
        act_role(z);
        for (size_t i = 0; i < z->n_peers; i++) {
            struct zpeer *p = &z->peers[i];
            if (p->has_early_info && p->id != z->leader)
                refuse_learner(z, p);
            p->has_early_info = 0;
        }
        learner_start(z);
    }
}

static void election_send(void *ctx, uint32_t to, const struct election_vote *v)
{
    struct zab *z = ctx;
    struct zab_msg m = {.type = ZAB_MSG_VOTE, .vote = *v};
    act_send(z, to, &m, NULL);
}

/* ---- lifecycle ---- */

static int load_log(struct zab *z, const struct zab_durable *d)
{
    z->log.base = d->log_base;
    zxid_t prev = d->log_base;
    for (size_t i = 0; i < d->n_log; i++) {
        const struct zab_entry *e = &d->log[i];
        if (!zxid_follows(prev, e->zxid))
            return -EINVAL;
        struct zbuf *b = zbuf_new(e->payload, e->len);
        if (!b || zlog_push(&z->log, e->zxid, b, 0) != 0) {
            zbuf_unref(b);
            return -ENOMEM;
        }
        zbuf_unref(b);
        prev = e->zxid;
    }
    if (d->applied < d->log_base || !zlog_has(&z->log, d->applied))
        return -EINVAL;
    return 0;
}

int zab_new(struct zab **out, const struct zab_config *cfg, const struct zab_durable *d,
            uint64_t now)
{
    if (!out || !cfg || !d || cfg->n_members > ZAB_MAX_MEMBERS)
        return -EINVAL;
    struct zab *z = calloc(1, sizeof(*z));
    if (!z)
        return -ENOMEM;
    struct election_member em[ZAB_MAX_MEMBERS];
    for (size_t i = 0; i < cfg->n_members; i++) {
        em[i].id = cfg->members[i].id;
        em[i].observer = cfg->members[i].observer;
        z->peers[i].id = cfg->members[i].id;
        z->peers[i].observer = cfg->members[i].observer != 0;
    }
    struct election_config ec = {
        .my_id = cfg->my_id,
        .members = em,
        .n_members = cfg->n_members,
        .finalize_wait_ms = cfg->finalize_wait_ms,
        .min_notify_ms = cfg->min_notify_ms,
        .max_notify_ms = cfg->max_notify_ms,
    };
    int rc = election_init(&z->el, &ec, election_send, z);
    if (rc == 0)
        rc = load_log(z, d);
    if (rc != 0) {
        zlog_free(&z->log);
        free(z);
        return rc;
    }
    z->my_id = cfg->my_id;
    z->observer = z->el.observer;
    z->n_peers = cfg->n_members;
    z->tick_ms = cfg->tick_ms ? cfg->tick_ms : 2000;
    z->init_limit = cfg->init_limit ? cfg->init_limit : 10;
    z->sync_limit = cfg->sync_limit ? cfg->sync_limit : 5;
    z->retain_log = cfg->retain_log ? cfg->retain_log : 500;
    z->max_outstanding = cfg->max_outstanding ? cfg->max_outstanding : 1000;
    z->max_counter = cfg->max_counter ? cfg->max_counter : 0xfffffffeu;
    z->rng = cfg->seed ^ 0x9e3779b97f4a7c15ULL;
    z->now = now;
    z->accepted_epoch = d->accepted_epoch;
    z->current_epoch = d->current_epoch;
    z->applied = d->applied;
    z->role = ZAB_LOOKING;
    act_role(z);
    election_start(&z->el, now, zlog_last(&z->log), z->current_epoch);
    *out = z;
    return 0;
}

void zab_free(struct zab *z)
{
    if (!z)
        return;
    release_popped(z);
    for (size_t i = 0; i < z->q_len; i++)
        zbuf_unref(z->q[(z->q_head + i) % z->q_cap].buf);
    free(z->q);
    zlog_free(&z->log);
    free(z);
}

/* ---- events ---- */

static void enter(struct zab *z, uint64_t now)
{
    release_popped(z);
    if (now > z->now)
        z->now = now;
}

static void leader_on_msg(struct zab *z, struct zpeer *p, const struct zab_msg *m)
{
    if (m->type == ZAB_MSG_FOLLOWERINFO || m->type == ZAB_MSG_OBSERVERINFO) {
        leader_on_info(z, p, m);
        return;
    }
    if (p->h.phase == H_NONE || m->session != p->h.session)
        return; /* a session that already ended */
    p->h.last_heard = z->now;
    switch (m->type) {
    case ZAB_MSG_ACKEPOCH:
        leader_on_ackepoch(z, p, m);
        break;
    case ZAB_MSG_ACKNEWLEADER:
        leader_on_acknewleader(z, p, m);
        break;
    case ZAB_MSG_ACK:
        leader_on_ack(z, p, m);
        break;
    case ZAB_MSG_PING:
        break;
    default:
        leader_drop(z, p); /* a learner sending leader messages is broken: end its session */
        break;
    }
}

static void learner_on_msg(struct zab *z, const struct zab_msg *m)
{
    if (z->ln.phase < LN_LEADERINFO || m->session != z->ln.session)
        return; /* not for this session */
    z->ln.last_heard = z->now;
    if (m->type == ZAB_MSG_LEADERINFO) {
        learner_on_leaderinfo(z, m);
        return;
    }
    int r = learner_on_sync_msg(z, m);
    if (r == 0)
        r = learner_on_broadcast_msg(z, m);
    if (r < 0)
        zab_go_looking(z, ZAB_ENOTLEADER); /* protocol violation: start over (ZOOKEEPER-5094) */
}

int zab_on_message(struct zab *z, uint64_t now, uint32_t from, const struct zab_msg *m)
{
    if (!z || !m)
        return -EINVAL;
    enter(z, now);
    struct zpeer *p = zab_peer(z, from);
    if (!p || from == z->my_id)
        return 0;
    if (m->type == ZAB_MSG_VOTE) {
        struct election_result r;
        if (election_on_vote(&z->el, z->now, from, &m->vote, &r))
            on_decided(z, &r);
        return 0;
    }
    if (!p->connected)
        return 0; /* left over from a connection we closed */
    if (z->role == ZAB_LOOKING &&
        (m->type == ZAB_MSG_FOLLOWERINFO || m->type == ZAB_MSG_OBSERVERINFO)) {
        /* The sender decided that I lead before I did (every decision waits out its own
         * finalize wait): keep its word for when I decide, as ZooKeeper's leader finds the
         * learner's connection waiting in its accept queue. The connection is a FIFO stream, so
         * the latest one is the sender's current session until the link drops. */
        p->has_early_info = 1;
        p->early_info = *m;
        p->early_info.payload = NULL;
        p->early_info.len = 0;
        return 0;
    }
    if (z->role != ZAB_LEADING &&
        (m->type == ZAB_MSG_FOLLOWERINFO || m->type == ZAB_MSG_OBSERVERINFO)) {
        refuse_learner(z, p);
        return 0;
    }
    if (z->role == ZAB_LEADING)
        leader_on_msg(z, p, m);
    else if ((z->role == ZAB_FOLLOWING || z->role == ZAB_OBSERVING) && from == z->leader)
        learner_on_msg(z, m);
    return 0;
}

int zab_on_tick(struct zab *z, uint64_t now)
{
    if (!z)
        return -EINVAL;
    enter(z, now);
    if (z->role == ZAB_LOOKING) {
        struct election_result r;
        if (election_on_tick(&z->el, z->now, &r))
            on_decided(z, &r);
    } else if (z->role == ZAB_LEADING) {
        leader_tick(z);
    } else {
        learner_tick(z);
    }
    return 0;
}

int zab_on_persisted(struct zab *z, uint64_t now, uint64_t seq)
{
    if (!z || seq > z->seq_issued)
        return -EINVAL;
    enter(z, now);
    if (seq <= z->seq_durable)
        return 0;
    z->seq_durable = seq;
    if (z->role == ZAB_LEADING) {
        leader_discovery_progress(z);
        if (z->role == ZAB_LEADING)
            leader_sync_progress(z);
        if (z->role == ZAB_LEADING)
            leader_commit_progress(z);
    } else if (z->role != ZAB_LOOKING) {
        learner_discovery_progress(z);
        if (z->role != ZAB_LOOKING)
            learner_sync_progress(z);
        if (z->role != ZAB_LOOKING)
            learner_ack_progress(z);
    }
    return 0;
}

int zab_on_connected(struct zab *z, uint64_t now, uint32_t peer)
{
    if (!z)
        return -EINVAL;
    enter(z, now);
    struct zpeer *p = zab_peer(z, peer);
    if (!p || peer == z->my_id)
        return 0;
    p->connected = 1;
    p->has_early_info = 0;
    if (z->role == ZAB_LOOKING)
        election_on_connected(&z->el, peer);
    else if ((z->role == ZAB_FOLLOWING || z->role == ZAB_OBSERVING) && peer == z->leader)
        learner_on_connected(z);
    return 0;
}

int zab_on_disconnected(struct zab *z, uint64_t now, uint32_t peer)
{
    if (!z)
        return -EINVAL;
    enter(z, now);
    struct zpeer *p = zab_peer(z, peer);
    if (!p || peer == z->my_id)
        return 0;
    int was = p->connected;
    p->connected = 0;
    p->has_early_info = 0;
    if (!was)
        return 0;
    if (z->role == ZAB_LEADING && p->h.phase != H_NONE)
        leader_drop(z, p);
    else if ((z->role == ZAB_FOLLOWING || z->role == ZAB_OBSERVING) && peer == z->leader)
        zab_go_looking(z, ZAB_ENOTLEADER);
    return 0;
}

uint64_t zab_deadline(const struct zab *z)
{
    if (z->role == ZAB_LOOKING)
        return election_deadline(&z->el);
    if (z->role == ZAB_LEADING)
        return z->ld.next_ping;
    uint32_t ticks = z->ln.phase == LN_BROADCAST ? z->sync_limit : z->init_limit;
    return z->ln.last_heard + zab_timeout_ms(z, ticks) + 1;
}

void zab_get_status(const struct zab *z, struct zab_status *out)
{
    memset(out, 0, sizeof(*out));
    out->role = z->role;
    out->leader = z->leader;
    out->epoch = z->role == ZAB_LEADING ? z->ld.epoch : z->ln.epoch;
    out->serving = z->serving;
    out->accepted_epoch = z->accepted_epoch;
    out->current_epoch = z->current_epoch;
    out->last_zxid = zlog_last(&z->log);
    out->applied = z->applied;
    out->election_round = z->el.round;
    if (z->role == ZAB_LEADING)
        for (size_t i = 0; i < z->n_peers; i++)
            if (z->peers[i].h.phase == H_BROADCAST)
                out->synced_learners++;
}

const char *zab_msg_name(enum zab_msg_type t)
{
    static const char *names[] = {
        "?",     "VOTE",   "FOLLOWERINFO", "OBSERVERINFO", "LEADERINFO", "ACKEPOCH",     "DIFF",
        "TRUNC", "SNAP",   "PROPOSAL",     "COMMIT",       "NEWLEADER",  "ACKNEWLEADER", "UPTODATE",
        "ACK",   "INFORM", "PING",
    };
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

const char *zab_role_name(enum zab_role r)
{
    switch (r) {
    case ZAB_LOOKING:
        return "LOOKING";
    case ZAB_FOLLOWING:
        return "FOLLOWING";
    case ZAB_LEADING:
        return "LEADING";
    case ZAB_OBSERVING:
        return "OBSERVING";
    }
    return "?";
}
