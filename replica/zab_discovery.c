/* ZAB phase 1, discovery: FOLLOWERINFO -> new epoch -> LEADERINFO -> ACKEPOCH, both sides. */
#include "zab_internal.h"

#include <string.h>

static uint64_t next_rand(struct zab *z)
{
    /* splitmix64: the seed came in with the config; the core reads no random source */
    uint64_t x = (z->rng += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void leader_drop(struct zab *z, struct zpeer *p)
{
    act_disconnect(z, p->id);
    memset(&p->h, 0, sizeof(p->h));
}

void leader_start(struct zab *z)
{
    z->ld.phase = LD_INFO;
    z->ld.started = z->now;
    z->ld.next_ping = z->now + (z->tick_ms / 2 ? z->tick_ms / 2 : 1);
    leader_discovery_progress(z);
}

static void send_leaderinfo(struct zab *z, struct zpeer *p)
{
    zab_send_simple(z, p->id, ZAB_MSG_LEADERINFO, p->h.session, z->ld.epoch, ZXID(z->ld.epoch, 0));
    p->h.phase = H_LEADERINFO;
}

void leader_on_info(struct zab *z, struct zpeer *p, const struct zab_msg *m)
{
    if ((m->type == ZAB_MSG_OBSERVERINFO) != p->observer)
        return; /* its role disagrees with the static config: ignore it */
    if ((p->h.phase == H_INFO || p->h.phase == H_LEADERINFO) && p->h.session == m->session)
        return; /* a repeat of a FOLLOWERINFO already taken: LEADERINFO is on its way, or
                   follows once the epoch is durable */
    memset(&p->h, 0, sizeof(p->h));
    p->h.phase = H_INFO;
    p->h.session = m->session;
    p->h.accepted = m->epoch;
    p->h.last_heard = z->now;
    if (z->ld.phase >= LD_EPOCH_WAIT && !p->observer && m->epoch > z->ld.epoch) {
        /* This voter promised a newer epoch than mine, so it can never follow me (it refuses
         * LEADERINFO below its acceptedEpoch). ZooKeeper would leave it out for good; stepping
         * down lets the next discovery pick an epoch above its promise so it can rejoin. */
        zab_go_looking(z, ZAB_ENOTLEADER);
        return;
    }
    if (z->ld.phase >= LD_ACKEPOCH)
        send_leaderinfo(z, p);
    leader_discovery_progress(z);
}

void leader_on_ackepoch(struct zab *z, struct zpeer *p, const struct zab_msg *m)
{
    if (p->h.phase != H_LEADERINFO || m->zxid2 > m->zxid) {
        leader_drop(z, p);
        return;
    }
    /* Leader.waitForEpochAck: a learner with a newer history than mine (currentEpoch, then last
     * zxid) must not be synced to mine, or its txns (maybe committed) would be truncated. */
    if (m->epoch > z->current_epoch ||
        (m->epoch == z->current_epoch && m->zxid > zlog_last(&z->log))) {
        leader_drop(z, p);
        return;
    }
    p->h.phase = H_EPOCH_ACKED;
    if ((m->flags & ZAB_F_FRESH) && !p->observer) {
        /* A promise outlives the connection it came on (ZooKeeper keeps electingFollowers
         * across LearnerHandlers): a learner that reconnects re-acks without FRESH. */
        z->ld.promised |= 1ull << (p - z->peers);
    }
    p->h.last_zxid = m->zxid;
    p->h.applied = m->zxid2;
    if (z->ld.phase >= LD_SYNC)
        leader_sync(z, p);
    else
        leader_discovery_progress(z);
}

static size_t count_voters(struct zab *z, enum hphase at_least)
{
    size_t n = 1; /* myself */
    for (size_t i = 0; i < z->n_peers; i++) {
        struct zpeer *p = &z->peers[i];
        if (p->id != z->my_id && !p->observer && p->h.phase >= at_least)
            n++;
    }
    return n;
}

static size_t count_promised(struct zab *z)
{
    size_t n = 1; /* myself: my acceptedEpoch is durable */
    for (size_t i = 0; i < z->n_peers; i++)
        if ((z->ld.promised >> i) & 1)
            n++;
    return n;
}

void leader_discovery_progress(struct zab *z)
{
    if (z->role != ZAB_LEADING)
        return;
    if (z->ld.phase == LD_INFO && count_voters(z, H_INFO) >= zab_quorum(z)) {
        /* Leader.getEpochToPropose: one more than any acceptedEpoch seen, mine included, so
         * no two established leaders share an epoch and zxids stay unique (ZOOKEEPER-335) */
        uint32_t max = z->accepted_epoch;
        for (size_t i = 0; i < z->n_peers; i++)
            if (z->peers[i].h.phase >= H_INFO && z->peers[i].h.accepted > max)
                max = z->peers[i].h.accepted;
        if (max == UINT32_MAX) {
            zab_go_looking(z, ZAB_EROLLOVER);
            return;
        }
        z->ld.epoch = max + 1;
        z->accepted_epoch = z->ld.epoch;
        election_set_epoch(&z->el, z->ld.epoch);
        z->ld.epoch_seq = act_persist_epoch(z, ZAB_ACCEPTED_EPOCH, z->ld.epoch);
        z->ld.phase = LD_EPOCH_WAIT;
    }
    if (z->ld.phase == LD_EPOCH_WAIT && z->seq_durable >= z->ld.epoch_seq) {
        /* my own promise is on disk before anyone hears of the epoch */
        z->ld.phase = LD_ACKEPOCH;
        for (size_t i = 0; i < z->n_peers; i++)
            if (z->peers[i].h.phase == H_INFO)
                send_leaderinfo(z, &z->peers[i]);
    }
    if (z->ld.phase == LD_ACKEPOCH && count_promised(z) >= zab_quorum(z)) {
        /* A quorum promised this epoch and none of it is ahead of me: my history holds every
         * committed txn, so now (not before) learners may be synced, i.e. truncated, to it.
         * currentEpoch is queued after all my log writes, so it is durable only after them
         * (ZOOKEEPER-4643); I count myself as synced once it is. */
        z->ld.phase = LD_SYNC;
        z->current_epoch = z->ld.epoch;
        z->ld.cur_seq = act_persist_epoch(z, ZAB_CURRENT_EPOCH, z->ld.epoch);
        for (size_t i = 0; i < z->n_peers; i++)
            if (z->peers[i].h.phase == H_EPOCH_ACKED)
                leader_sync(z, &z->peers[i]);
        leader_sync_progress(z);
    }
}

/* ---- learner ---- */

void learner_start(struct zab *z)
{
    z->ln.phase = LN_CONNECT;
    do
        z->ln.session = next_rand(z);
    while (z->ln.session == 0);
    z->ln.started = z->now;
    z->ln.last_heard = z->now;
    z->ln.commit = z->applied;
    struct zpeer *p = zab_peer(z, z->leader);
    if (p && p->connected)
        learner_on_connected(z);
}

void learner_on_connected(struct zab *z)
{
    if (z->ln.phase != LN_CONNECT)
        return;
    /* Said once per session: a leader that has not decided yet keeps it (zab.c, early_info) */
    zab_send_simple(z, z->leader, z->observer ? ZAB_MSG_OBSERVERINFO : ZAB_MSG_FOLLOWERINFO,
                    z->ln.session, z->accepted_epoch, ZXID(z->accepted_epoch, 0));
    z->ln.phase = LN_LEADERINFO;
}

static void send_ackepoch(struct zab *z)
{
    struct zab_msg m = {
        .type = ZAB_MSG_ACKEPOCH,
        .session = z->ln.session,
        .epoch = z->current_epoch,
        .zxid = zlog_last(&z->log),
        .zxid2 = z->applied,
        .flags = z->ln.fresh ? ZAB_F_FRESH : 0,
    };
    act_send(z, z->leader, &m, NULL);
    z->ln.phase = LN_SYNC_WAIT;
}

void learner_on_leaderinfo(struct zab *z, const struct zab_msg *m)
{
    if (z->ln.phase != LN_LEADERINFO) {
        zab_go_looking(z, ZAB_ENOTLEADER);
        return;
    }
    uint32_t e = m->epoch;
    z->ln.epoch = e;
    election_set_epoch(&z->el, e);
    if (e > z->accepted_epoch) {
        /* the promise (acceptedEpoch) is durable before the leader may count it */
        z->accepted_epoch = e;
        z->ln.fresh = 1;
        z->ln.wait_seq = act_persist_epoch(z, ZAB_ACCEPTED_EPOCH, e);
        z->ln.phase = LN_EPOCH_WAIT;
        learner_discovery_progress(z);
    } else if (e == z->accepted_epoch || z->observer) {
        /* Already promised this epoch (to this leader, earlier): an ACKEPOCH that does not
         * count toward the epoch's quorum. Observers never vote, so their promise binds
         * nothing and they may follow any leader. */
        z->ln.fresh = 0;
        send_ackepoch(z);
    } else {
        /* Learner.registerWithLeader: a leader below my promise is stale */
        zab_go_looking(z, ZAB_ENOTLEADER);
    }
}

void learner_discovery_progress(struct zab *z)
{
    if (z->ln.phase == LN_EPOCH_WAIT && z->seq_durable >= z->ln.wait_seq)
        send_ackepoch(z);
}
