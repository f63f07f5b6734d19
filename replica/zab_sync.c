/* ZAB phase 2, synchronisation: DIFF/TRUNC/SNAP, NEWLEADER and its durable ack, establishment. */
#include "zab_internal.h"

/*
 * Every peer's log is a sequence of txns with unique zxids (one leader per epoch, counters
 * never reused), so two logs that both hold zxid X agree on everything up to X. The leader
 * picks a point P up to which the learner's log is known to agree with its own, then streams
 * what it has after P. The learner keeps those of its own entries that the stream repeats and
 * drops the first one that differs and everything after it: those were never committed, or the
 * leader (whose history holds every committed txn) would have them.
 */

/* The largest zxid below `zl`, in the same epoch, that I hold. A learner holding zl holds it
 * too, because within an epoch a log has no holes (LearnerHandler.syncFollower's TRUNC case). */
static int same_epoch_below(const struct zlog *l, zxid_t zl, zxid_t *out)
{
    size_t i = zlog_after(l, zl);
    zxid_t cand = i > 0 ? zlog_at(l, i - 1)->zxid : l->base;
    if (cand < zl && ZXID_EPOCH(cand) == ZXID_EPOCH(zl) && ZXID_COUNTER(cand) > 0) {
        *out = cand;
        return 1;
    }
    return 0;
}

static void send_entry(struct zab *z, struct zpeer *p, enum zab_msg_type t, const struct zentry *e)
{
    struct zab_msg m = {.type = t, .session = p->h.session, .zxid = e->zxid};
    act_send(z, p->id, &m, e->buf);
    p->h.sent = e->zxid;
}

void leader_sync(struct zab *z, struct zpeer *p)
{
    struct zhandler *h = &p->h;
    zxid_t zl = h->last_zxid, cl = h->applied, point, q;
    enum zab_msg_type mode;
    if (zlog_has(&z->log, zl)) {
        mode = ZAB_MSG_DIFF; /* its log is a prefix of mine */
        point = zl;
    } else if (same_epoch_below(&z->log, zl, &q) && q >= cl) {
        mode = ZAB_MSG_TRUNC; /* it has txns past my history in that epoch (ZOOKEEPER-1154) */
        point = q;
    } else if (zlog_has(&z->log, cl)) {
        /* It diverged in an epoch I do not hold; its committed prefix is mine for sure. Its
         * entries above that are checked one by one against the stream, not dropped wholesale,
         * so no committed txn ever leaves its disk (not even for an instant). */
        mode = ZAB_MSG_DIFF;
        point = cl;
    } else {
        mode = ZAB_MSG_SNAP; /* older than my retained window: my committed state at applied */
        point = z->applied;
    }
    zab_send_simple(z, p->id, mode, h->session, z->ld.epoch, point);
    h->sent = point;
    /* Observers get committed txns only (INFORM semantics); followers all of my history. */
    zxid_t end = p->observer ? z->applied : zlog_last(&z->log);
    for (size_t i = zlog_after(&z->log, point); i < z->log.len; i++) {
        const struct zentry *e = zlog_at(&z->log, i);
        if (e->zxid > end)
            break;
        send_entry(z, p, ZAB_MSG_PROPOSAL, e);
    }
    zab_send_simple(z, p->id, ZAB_MSG_COMMIT, h->session, z->ld.epoch, z->applied);
    zab_send_simple(z, p->id, ZAB_MSG_NEWLEADER, h->session, z->ld.epoch, h->sent);
    h->nl_zxid = h->sent;
    h->phase = H_SYNCING;
}

/* A learner that acked NEWLEADER after establishment catches up and starts serving. */
static void uptodate(struct zab *z, struct zpeer *p)
{
    if (p->observer)
        for (size_t i = zlog_after(&z->log, p->h.sent); i < z->log.len; i++) {
            const struct zentry *e = zlog_at(&z->log, i);
            if (e->zxid > z->applied)
                break;
            send_entry(z, p, ZAB_MSG_INFORM, e);
        }
    zab_send_simple(z, p->id, ZAB_MSG_UPTODATE, p->h.session, z->ld.epoch, z->applied);
    p->h.phase = H_BROADCAST;
}

void leader_on_acknewleader(struct zab *z, struct zpeer *p, const struct zab_msg *m)
{
    if (p->h.phase != H_SYNCING || m->epoch != z->ld.epoch) {
        leader_drop(z, p);
        return;
    }
    p->h.phase = H_SYNCED;
    if (!p->observer)
        p->h.acked = p->h.nl_zxid; /* its log equals mine up to NEWLEADER, durably */
    if (z->ld.phase == LD_BROADCAST) {
        uptodate(z, p);
        leader_commit_progress(z);
    } else {
        leader_sync_progress(z);
    }
}

void leader_sync_progress(struct zab *z)
{
    if (z->role != ZAB_LEADING || z->ld.phase != LD_SYNC)
        return;
    if (z->seq_durable < z->ld.cur_seq)
        return; /* my own currentEpoch (after my log) is not durable yet */
    size_t n = 1;
    for (size_t i = 0; i < z->n_peers; i++)
        if (!z->peers[i].observer && z->peers[i].h.phase == H_SYNCED)
            n++;
    if (n < zab_quorum(z))
        return;
    /* Established: a quorum holds my whole history durably under the new epoch, so all of it
     * is committed (ZAB's NEWLEADER rule), including what earlier epochs left uncommitted. */
    z->ld.phase = LD_BROADCAST;
    z->ld.next_counter = 1;
    z->serving = 1;
    leader_commit_to(z, zlog_last(&z->log));
    for (size_t i = 0; i < z->n_peers; i++)
        if (z->peers[i].h.phase == H_SYNCED)
            uptodate(z, &z->peers[i]);
    act_role(z);
}

/* ---- learner ---- */

zxid_t learner_apply_limit(const struct zab *z)
{
    if (z->ln.phase < LN_SYNC || z->ln.mode == SM_SNAP)
        return z->applied;
    zxid_t lim = z->ln.commit;
    if (z->ln.mode == SM_RECONCILE && z->ln.point < lim)
        lim = z->ln.point; /* my entries above point are not confirmed yet */
    return lim;
}

/* The staged snapshot becomes my committed state; my entries in (Z, point] were confirmed by
 * the stream and stay, the rest go, all in one durable step: a crash leaves either the old
 * state or the new one, never a snapshot without the txns that follow it (ZOOKEEPER-3642). */
static void install(struct zab *z)
{
    uint64_t seq = act_install(z, z->ln.snap_z, z->ln.point);
    zlog_truncate_after(&z->log, z->ln.point);
    zlog_drop_upto(&z->log, z->ln.snap_z);
    z->log.base = z->ln.snap_z;
    z->log.base_seq = seq;
    z->applied = z->ln.snap_z;
    if (z->ln.commit < z->applied)
        z->ln.commit = z->applied;
    z->ln.mode = SM_RECONCILE;
}

/* Drops my unconfirmed entries above point (never committed ones, see the top of the file). */
static void drop_unconfirmed(struct zab *z)
{
    if (zlog_last(&z->log) > z->ln.point) {
        zlog_truncate_after(&z->log, z->ln.point);
        act_truncate(z, z->ln.point);
    }
}

static int on_header(struct zab *z, const struct zab_msg *m)
{
    zxid_t p = m->zxid;
    z->ln.commit = z->applied; /* commit knowledge comes from this leader only */
    if (m->type == ZAB_MSG_SNAP) {
        if (p < z->applied)
            return -1; /* would take my committed state backwards */
        z->ln.mode = SM_SNAP;
        z->ln.snap_z = p;
    } else {
        /* DIFF/TRUNC from a point I hold, never below what I applied */
        if (p < z->applied || p > zlog_last(&z->log) || !zlog_has(&z->log, p))
            return -1;
        z->ln.mode = SM_RECONCILE;
    }
    z->ln.point = p;
    if (m->type == ZAB_MSG_TRUNC)
        drop_unconfirmed(z);
    z->ln.phase = LN_SYNC;
    return 1;
}

static int on_stream_txn(struct zab *z, const struct zab_msg *m)
{
    if (!zxid_follows(z->ln.point, m->zxid))
        return -1; /* a hole in the stream (ZOOKEEPER-4925) */
    size_t i = zlog_after(&z->log, z->ln.point);
    if (i < z->log.len && zlog_at(&z->log, i)->zxid == m->zxid) {
        z->ln.point = m->zxid; /* I have it already: same zxid, same txn */
        return 1;
    }
    if (z->ln.mode == SM_SNAP)
        install(z);
    else
        drop_unconfirmed(z);
    struct zbuf *b = zbuf_new(m->payload, m->len);
    if (!b)
        return -1;
    zab_log_append(z, m->zxid, b);
    zbuf_unref(b);
    z->ln.point = m->zxid;
    return 1;
}

static int on_newleader(struct zab *z, const struct zab_msg *m)
{
    if (m->epoch != z->ln.epoch)
        return -1;
    if (z->ln.mode == SM_SNAP)
        install(z);
    if (z->ln.point != m->zxid)
        return -1; /* the stream did not end where the leader says it did */
    drop_unconfirmed(z);
    z->ln.mode = SM_NONE;
    z->ln.nl_zxid = m->zxid;
    /* ZOOKEEPER-3911/4646/4643: the synced txns (and truncations, installs) are durable
     * first, then currentEpoch, then the ack. Everything queued so far must be on disk. */
    z->ln.wait_seq = z->seq_issued;
    z->ln.phase = LN_NL_DURABLE;
    learner_sync_progress(z);
    return 1;
}

int learner_on_sync_msg(struct zab *z, const struct zab_msg *m)
{
    if (m->type == ZAB_MSG_PING)
        return 0;
    switch (z->ln.phase) {
    case LN_SYNC_WAIT:
        if (m->type == ZAB_MSG_DIFF || m->type == ZAB_MSG_TRUNC || m->type == ZAB_MSG_SNAP)
            return on_header(z, m);
        return -1;
    case LN_SYNC:
        switch (m->type) {
        case ZAB_MSG_PROPOSAL:
            return on_stream_txn(z, m);
        case ZAB_MSG_COMMIT:
            if (m->zxid > z->ln.commit)
                z->ln.commit = m->zxid;
            zab_apply_upto(z, learner_apply_limit(z));
            return 1;
        case ZAB_MSG_NEWLEADER:
            return on_newleader(z, m);
        default:
            return -1;
        }
    case LN_NL_DURABLE:
    case LN_NL_EPOCH:
    case LN_UPTODATE:
    case LN_BROADCAST:
        return 0; /* the broadcast handlers take it (late COMMITs included: ZOOKEEPER-4394) */
    default:
        return -1;
    }
}

void learner_sync_progress(struct zab *z)
{
    if (z->ln.phase == LN_NL_DURABLE && z->seq_durable >= z->ln.wait_seq) {
        z->current_epoch = z->ln.epoch;
        z->ln.wait_seq = act_persist_epoch(z, ZAB_CURRENT_EPOCH, z->ln.epoch);
        z->ln.phase = LN_NL_EPOCH;
    }
    if (z->ln.phase == LN_NL_EPOCH && z->seq_durable >= z->ln.wait_seq) {
        zab_send_simple(z, z->leader, ZAB_MSG_ACKNEWLEADER, z->ln.session, z->ln.epoch,
                        z->ln.nl_zxid);
        z->ln.acked_sent = z->ln.nl_zxid;
        z->ln.phase = LN_UPTODATE;
    }
    zab_apply_upto(z, learner_apply_limit(z));
}
