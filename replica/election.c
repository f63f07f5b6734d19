/* FastLeaderElection step functions: vote order, quorum + finalize wait, out-of-election joins. */
#include "election.h"

#include <errno.h>
#include <string.h>

static struct election_peer *peer(struct election *e, uint32_t id)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->peers[i].id == id)
            return &e->peers[i];
    return NULL;
}

int election_is_voter(const struct election *e, uint32_t id)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->peers[i].id == id)
            return !e->peers[i].observer;
    return 0;
}

size_t election_quorum(const struct election *e)
{
    return e->n_voters / 2 + 1;
}

int election_init(struct election *e, const struct election_config *cfg, election_send_fn send,
                  void *ctx)
{
    if (!cfg || !send || cfg->n_members == 0 || cfg->n_members > ELECTION_MAX_MEMBERS ||
        cfg->my_id == 0)
        return -EINVAL;
    memset(e, 0, sizeof(*e));
    int found = 0;
    for (size_t i = 0; i < cfg->n_members; i++) {
        const struct election_member *m = &cfg->members[i];
        if (m->id == 0)
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (cfg->members[j].id == m->id)
                return -EINVAL;
        e->peers[i].id = m->id;
        e->peers[i].observer = m->observer != 0;
        if (!m->observer)
            e->n_voters++;
        if (m->id == cfg->my_id) {
            found = 1;
            e->observer = m->observer != 0;
        }
    }
    if (!found || e->n_voters == 0)
        return -EINVAL;
    e->n = cfg->n_members;
    e->my_id = cfg->my_id;
    e->finalize_wait_ms = cfg->finalize_wait_ms ? cfg->finalize_wait_ms : 200;
    e->min_notify_ms = cfg->min_notify_ms ? cfg->min_notify_ms : 200;
    e->max_notify_ms = cfg->max_notify_ms ? cfg->max_notify_ms : 60000;
    if (e->max_notify_ms < e->min_notify_ms)
        e->max_notify_ms = e->min_notify_ms;
    e->send = send;
    e->ctx = ctx;
    e->state = ELECTION_LOOKING;
    return 0;
}

/* FastLeaderElection.totalOrderPredicate: only voters can win; then epoch, zxid, id. */
static int better(const struct election *e, uint32_t id, uint32_t epoch, zxid_t zxid,
                  const struct election_vote *cur)
{
    if (!election_is_voter(e, id))
        return 0;
    if (cur->leader == 0)
        return 1;
    if (epoch != cur->peer_epoch)
        return epoch > cur->peer_epoch;
    if (zxid != cur->zxid)
        return zxid > cur->zxid;
    return id > cur->leader;
}

/* Vote.equals: votes of servers out of the election agree when they name the same leader and
 * epoch (their zxids and rounds may differ); a LOOKING vote must match in every field. */
static int same_vote(const struct election_vote *a, const struct election_vote *b)
{
    if (a->leader != b->leader || a->peer_epoch != b->peer_epoch)
        return 0;
    if (a->state == ELECTION_LOOKING || b->state == ELECTION_LOOKING)
        return a->zxid == b->zxid && a->round == b->round;
    return 1;
}

/* Whether the voters whose recorded vote equals v make a quorum: this round's votes (recvset,
 * my own included once I am a voter) or the out-of-election ones. */
static int has_quorum(const struct election *e, int use_ooe, const struct election_vote *v)
{
    size_t count = 0;
    for (size_t i = 0; i < e->n; i++) {
        const struct election_peer *p = &e->peers[i];
        if (p->observer)
            continue;
        if (use_ooe ? (p->have_ooe && same_vote(&p->ooe, v))
                    : (p->have_recv && same_vote(&p->recv, v)))
            count++;
    }
    return count >= election_quorum(e);
}

/* FastLeaderElection.checkLeader: never follow a leader that does not itself claim to lead,
 * and only lead on others' word if it is about my current round. */
static int check_leader(const struct election *e, int use_ooe, uint32_t leader, uint64_t round)
{
    if (leader != e->my_id) {
        const struct election_peer *p = NULL;
        for (size_t i = 0; i < e->n; i++)
            if (e->peers[i].id == leader)
                p = &e->peers[i];
        if (!p)
            return 0;
        if (use_ooe)
            return p->have_ooe && p->ooe.state == ELECTION_LEADING;
        return p->have_recv && p->recv.state == ELECTION_LEADING;
    }
    return round == e->round;
}

static void send_to_voters(struct election *e)
{
    struct election_vote v = e->proposal;
    v.round = e->round;
    v.state = ELECTION_LOOKING;
    for (size_t i = 0; i < e->n; i++)
        if (!e->peers[i].observer && e->peers[i].id != e->my_id)
            e->send(e->ctx, e->peers[i].id, &v);
}

/* My own vote counts in recvset like anybody else's (ZooKeeper sends it to itself). */
static void record_own(struct election *e)
{
    struct election_peer *me = peer(e, e->my_id);
    if (me->observer)
        return;
    me->have_recv = 1;
    me->recv = e->proposal;
    me->recv.round = e->round;
    me->recv.state = ELECTION_LOOKING;
}

static void propose(struct election *e, uint64_t now, const struct election_vote *v)
{
    e->proposal.leader = v->leader;
    e->proposal.zxid = v->zxid;
    e->proposal.peer_epoch = v->peer_epoch;
    e->proposal.round = e->round;
    e->proposal.state = ELECTION_LOOKING;
    e->finalize_at = 0;
    record_own(e);
    send_to_voters(e);
    e->next_send_at = now + e->notify_ms;
}

static int decide(struct election *e, const struct election_vote *v, struct election_result *out)
{
    enum election_state st = v->leader == e->my_id ? ELECTION_LEADING
                             : e->observer         ? ELECTION_OBSERVING
                                                   : ELECTION_FOLLOWING;
    e->state = st;
    e->proposal = *v;
    e->proposal.state = st;
    e->finalize_at = 0;
    out->leader = v->leader;
    out->state = st;
    out->vote = e->proposal;
    return 1;
}

void election_start(struct election *e, uint64_t now, zxid_t last_zxid, uint32_t current_epoch)
{
    e->state = ELECTION_LOOKING;
    e->round++;
    /* recvset and outofelection live for one lookForLeader call in ZooKeeper: a LEADING
     * notification kept from an earlier election would let us follow a leader that has since
     * stepped down, forever */
    for (size_t i = 0; i < e->n; i++)
        e->peers[i].have_recv = e->peers[i].have_ooe = 0;
    e->notify_ms = e->min_notify_ms;
    memset(&e->initial, 0, sizeof(e->initial));
    if (!e->observer) {
        e->initial.leader = e->my_id;
        e->initial.zxid = last_zxid;
        e->initial.peer_epoch = current_epoch;
    }
    e->initial.round = e->round;
    e->initial.state = ELECTION_LOOKING;
    propose(e, now, &e->initial);
}

/* A notification while I am out of the election: tell a LOOKING sender whom we follow. */
static void answer_decided(struct election *e, uint32_t from, const struct election_vote *v)
{
    if (v->state != ELECTION_LOOKING)
        return;
    struct election_vote cur = e->proposal;
    cur.state = e->state;
    e->send(e->ctx, from, &cur);
}

static int on_looking(struct election *e, uint64_t now, struct election_peer *p,
                      const struct election_vote *v, struct election_result *out)
{
    if (e->observer)
        return 0; /* observers learn only from servers already out of the election */
    if (v->round < e->round) {
        /* WorkerReceiver: a sender in an older round gets my vote so it catches up */
        struct election_vote cur = e->proposal;
        cur.round = e->round;
        cur.state = ELECTION_LOOKING;
        e->send(e->ctx, p->id, &cur);
        return 0;
    }
    if (v->round > e->round) {
        /* a newer round: join it, forget the old round's votes, re-vote from scratch */
        e->round = v->round;
        for (size_t i = 0; i < e->n; i++)
            e->peers[i].have_recv = 0;
        if (better(e, v->leader, v->peer_epoch, v->zxid, &e->initial))
            propose(e, now, v);
        else
            propose(e, now, &e->initial);
    } else if (better(e, v->leader, v->peer_epoch, v->zxid, &e->proposal)) {
        propose(e, now, v);
    }
    p->have_recv = 1;
    p->recv = *v;
    if (e->finalize_at == 0 && e->proposal.leader != 0 && has_quorum(e, 0, &e->proposal))
        e->finalize_at = now + e->finalize_wait_ms; /* wait for a better vote before deciding */
    return 0;
}

/* FOLLOWING/LEADING: the sender is out of the election. A quorum in this round, or a quorum of
 * out-of-election votes in any round, lets me join the established leader without a new epoch
 * (ZOOKEEPER-1732). */
static int on_decided_vote(struct election *e, struct election_peer *p,
                           const struct election_vote *v, struct election_result *out)
{
    if (v->round == e->round) {
        p->have_recv = 1;
        p->recv = *v;
        if (has_quorum(e, 0, v) && check_leader(e, 0, v->leader, v->round))
            return decide(e, v, out);
    }
    p->have_ooe = 1;
    p->ooe = *v;
    if (has_quorum(e, 1, v) && check_leader(e, 1, v->leader, v->round)) {
        e->round = v->round;
        return decide(e, v, out);
    }
    return 0;
}

int election_on_vote(struct election *e, uint64_t now, uint32_t from, const struct election_vote *v,
                     struct election_result *out)
{
    struct election_peer *p = peer(e, from);
    if (!p || from == e->my_id)
        return 0;
    if (e->state != ELECTION_LOOKING) {
        answer_decided(e, from, v);
        return 0;
    }
    e->next_send_at = now + e->notify_ms; /* ZooKeeper resends only after a quiet interval */
    if (p->observer) {
        /* a non-voter asks: answer with my current vote; its own vote never counts */
        struct election_vote cur = e->proposal;
        cur.round = e->round;
        cur.state = ELECTION_LOOKING;
        if (v->state == ELECTION_LOOKING)
            e->send(e->ctx, from, &cur);
        return 0;
    }
    switch (v->state) {
    case ELECTION_LOOKING:
        return on_looking(e, now, p, v, out);
    case ELECTION_FOLLOWING:
    case ELECTION_LEADING:
        return on_decided_vote(e, p, v, out);
    default:
        return 0; /* OBSERVING notifications carry nothing for the election */
    }
}

void election_on_connected(struct election *e, uint32_t id)
{
    struct election_peer *p = peer(e, id);
    if (e->state != ELECTION_LOOKING || !p || p->observer || id == e->my_id)
        return; /* as send_to_voters; decided servers answer the LOOKING peer's own vote */
    struct election_vote v = e->proposal;
    v.round = e->round;
    v.state = ELECTION_LOOKING;
    e->send(e->ctx, id, &v);
}

int election_on_tick(struct election *e, uint64_t now, struct election_result *out)
{
    if (e->state != ELECTION_LOOKING)
        return 0;
    if (e->finalize_at && now >= e->finalize_at) {
        e->finalize_at = 0;
        if (has_quorum(e, 0, &e->proposal))
            return decide(e, &e->proposal, out);
    }
    if (now >= e->next_send_at) {
        send_to_voters(e);
        e->notify_ms = e->notify_ms * 2 > e->max_notify_ms ? e->max_notify_ms : e->notify_ms * 2;
        e->next_send_at = now + e->notify_ms;
    }
    return 0;
}

uint64_t election_deadline(const struct election *e)
{
    if (e->state != ELECTION_LOOKING)
        return UINT64_MAX;
    if (e->finalize_at && e->finalize_at < e->next_send_at)
        return e->finalize_at;
    return e->next_send_at;
}

void election_set_epoch(struct election *e, uint32_t epoch)
{
    if (e->state != ELECTION_LOOKING)
        e->proposal.peer_epoch = epoch;
}
