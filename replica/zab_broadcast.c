/* ZAB phase 3, broadcast: proposals, durable ACKs, in-order COMMIT/INFORM, pings and liveness. */
#include "zab_internal.h"

#include <stdlib.h>

/* ---- leader ---- */

static int established(const struct zab *z)
{
    return z->role == ZAB_LEADING && z->ld.phase == LD_BROADCAST;
}

static uint32_t outstanding(const struct zab *z)
{
    zxid_t last = zlog_last(&z->log);
    if (ZXID_EPOCH(last) != z->ld.epoch)
        return 0;
    uint32_t done = ZXID_EPOCH(z->applied) == z->ld.epoch ? ZXID_COUNTER(z->applied) : 0;
    return ZXID_COUNTER(last) - done;
}

int zab_next_zxid(const struct zab *z, zxid_t *out)
{
    if (!established(z))
        return ZAB_ENOTLEADER;
    /* Leader.propose: the counter must not wrap into the next epoch's zxids */
    if (z->ld.next_counter > z->max_counter)
        return ZAB_EROLLOVER;
    if (outstanding(z) >= z->max_outstanding)
        return ZAB_EBUSY;
    *out = ZXID(z->ld.epoch, z->ld.next_counter);
    return 0;
}

int zab_propose(struct zab *z, uint64_t now, zxid_t zxid, const uint8_t *payload, size_t len)
{
    zxid_t want;
    int rc = zab_next_zxid(z, &want);
    if (rc != 0)
        return rc;
    if (zxid != want || (len && !payload))
        return -EINVAL;
    if (now > z->now)
        z->now = now;
    struct zbuf *b = zbuf_new(payload, len);
    if (!b)
        return -ENOMEM;
    /* my own ACK is my durable write: counted in leader_commit_progress once persisted */
    zab_log_append(z, zxid, b);
    z->ld.next_counter++;
    for (size_t i = 0; i < z->n_peers; i++) {
        struct zpeer *p = &z->peers[i];
        if (!p->observer && p->h.phase >= H_SYNCING) {
            struct zab_msg m = {.type = ZAB_MSG_PROPOSAL, .session = p->h.session, .zxid = zxid};
            act_send(z, p->id, &m, b);
            p->h.sent = zxid;
        }
    }
    zbuf_unref(b);
    return 0;
}

void leader_on_ack(struct zab *z, struct zpeer *p, const struct zab_msg *m)
{
    if (p->observer || (p->h.phase != H_SYNCED && p->h.phase != H_BROADCAST) ||
        m->zxid > p->h.sent) {
        leader_drop(z, p); /* acking what it was never sent, or out of turn */
        return;
    }
    if (m->zxid > p->h.acked)
        p->h.acked = m->zxid;
    leader_commit_progress(z);
}

/* Commits (applied, c]: applies here (durable here by construction), then COMMIT to followers
 * and INFORM (txn + commit in one) to observers, all in zxid order. */
void leader_commit_to(struct zab *z, zxid_t c)
{
    zab_apply_upto(z, c);
    c = z->applied;
    for (size_t i = 0; i < z->n_peers; i++) {
        struct zpeer *p = &z->peers[i];
        if (p->h.phase < H_SYNCING)
            continue;
        if (!p->observer) {
            zab_send_simple(z, p->id, ZAB_MSG_COMMIT, p->h.session, z->ld.epoch, c);
            continue;
        }
        for (size_t j = zlog_after(&z->log, p->h.sent); j < z->log.len; j++) {
            const struct zentry *e = zlog_at(&z->log, j);
            if (e->zxid > c)
                break;
            struct zab_msg m = {.type = ZAB_MSG_INFORM, .session = p->h.session, .zxid = e->zxid};
            act_send(z, p->id, &m, e->buf);
            p->h.sent = e->zxid;
        }
    }
}

static int cmp_desc(const void *a, const void *b)
{
    zxid_t x = *(const zxid_t *)a, y = *(const zxid_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

void leader_commit_progress(struct zab *z)
{
    if (!established(z))
        return;
    /* Leader.tryToCommit: the highest zxid durable on a quorum of synced voters, me included
     * (my share is what my own disk has confirmed). ACKs are cumulative: a follower's log is
     * written in order, so durable up to X means everything up to X. */
    zxid_t acks[ZAB_MAX_MEMBERS];
    size_t n = 0;
    acks[n++] = zab_durable_zxid(z);
    for (size_t i = 0; i < z->n_peers; i++) {
        struct zpeer *p = &z->peers[i];
        if (!p->observer && p->id != z->my_id &&
            (p->h.phase == H_SYNCED || p->h.phase == H_BROADCAST))
            acks[n++] = p->h.acked;
    }
    size_t q = zab_quorum(z);
    if (n < q)
        return;
    qsort(acks, n, sizeof(acks[0]), cmp_desc);
    if (acks[q - 1] > z->applied)
        leader_commit_to(z, acks[q - 1]);
}

void leader_tick(struct zab *z)
{
    uint64_t now = z->now;
    if (now >= z->ld.next_ping) {
        /* every tickTime/2, as Leader.lead */
        for (size_t i = 0; i < z->n_peers; i++) {
            struct zpeer *p = &z->peers[i];
            if (p->h.phase >= H_LEADERINFO)
                zab_send_simple(z, p->id, ZAB_MSG_PING, p->h.session, z->ld.epoch,
                                zlog_last(&z->log));
        }
        z->ld.next_ping = now + (z->tick_ms / 2 ? z->tick_ms / 2 : 1);
    }
    for (size_t i = 0; i < z->n_peers; i++) {
        struct zpeer *p = &z->peers[i];
        if (p->h.phase == H_NONE)
            continue;
        uint32_t ticks = p->h.phase >= H_SYNCED ? z->sync_limit : z->init_limit;
        if (now - p->h.last_heard > zab_timeout_ms(z, ticks))
            leader_drop(z, p);
    }
    if (!established(z)) {
        if (now - z->ld.started > zab_timeout_ms(z, z->init_limit))
            zab_go_looking(z, ZAB_ENOTLEADER); /* no quorum came to sync within initLimit */
        return;
    }
    /* Leader.lead: step down when the voters heard from within syncLimit are no quorum */
    size_t synced = 1;
    for (size_t i = 0; i < z->n_peers; i++) {
        struct zpeer *p = &z->peers[i];
        if (!p->observer && p->id != z->my_id &&
            (p->h.phase == H_SYNCED || p->h.phase == H_BROADCAST))
            synced++;
    }
    if (synced < zab_quorum(z)) {
        zab_go_looking(z, ZAB_ENOQUORUM);
        return;
    }
    /* counter exhausted: once nothing is in flight, force a new epoch (Leader.propose) */
    if (z->ld.next_counter > z->max_counter && z->applied == zlog_last(&z->log))
        zab_go_looking(z, ZAB_EROLLOVER);
}

/* ---- learner ---- */

static int append_txn(struct zab *z, const struct zab_msg *m)
{
    if (!zxid_follows(zlog_last(&z->log), m->zxid))
        return -1; /* never a hole in the log (ZOOKEEPER-4925) */
    struct zbuf *b = zbuf_new(m->payload, m->len);
    if (!b)
        return -1;
    zab_log_append(z, m->zxid, b);
    zbuf_unref(b);
    return 1;
}

int learner_on_broadcast_msg(struct zab *z, const struct zab_msg *m)
{
    int after_nl = z->ln.phase >= LN_NL_DURABLE;
    int r;
    switch (m->type) {
    case ZAB_MSG_PING:
        zab_send_simple(z, z->leader, ZAB_MSG_PING, z->ln.session, z->ln.epoch, zlog_last(&z->log));
        return 1;
    case ZAB_MSG_PROPOSAL:
        if (!after_nl || z->observer)
            return -1;
        /* written now, ACKed once durable (learner_ack_progress): never the other way round */
        return append_txn(z, m);
    case ZAB_MSG_INFORM:
        if (!after_nl || !z->observer)
            return -1;
        r = append_txn(z, m);
        if (r > 0 && m->zxid > z->ln.commit)
            z->ln.commit = m->zxid;
        zab_apply_upto(z, learner_apply_limit(z));
        return r;
    case ZAB_MSG_COMMIT:
        if (!after_nl)
            return -1;
        if (m->zxid > z->ln.commit)
            z->ln.commit = m->zxid;
        zab_apply_upto(z, learner_apply_limit(z));
        return 1;
    case ZAB_MSG_UPTODATE:
        if (z->ln.phase != LN_UPTODATE)
            return -1;
        z->ln.phase = LN_BROADCAST;
        if (m->zxid > z->ln.commit)
            z->ln.commit = m->zxid;
        z->serving = 1;
        act_role(z);
        zab_apply_upto(z, learner_apply_limit(z));
        return 1;
    default:
        return -1;
    }
}

void learner_ack_progress(struct zab *z)
{
    if (z->ln.phase >= LN_UPTODATE && !z->observer) {
        /* SendAckRequestProcessor: ACK what the disk has confirmed, one cumulative ACK for a
         * whole group commit */
        zxid_t d = zab_durable_zxid(z);
        if (d > z->ln.acked_sent) {
            zab_send_simple(z, z->leader, ZAB_MSG_ACK, z->ln.session, z->ln.epoch, d);
            z->ln.acked_sent = d;
        }
    }
    if (z->ln.phase >= LN_SYNC)
        zab_apply_upto(z, learner_apply_limit(z));
}

void learner_tick(struct zab *z)
{
    uint32_t ticks = z->ln.phase == LN_BROADCAST ? z->sync_limit : z->init_limit;
    if (z->now - z->ln.last_heard > zab_timeout_ms(z, ticks)) {
        zab_go_looking(z, ZAB_ENOTLEADER); /* the leader went silent: back to election */
        return;
    }
}
