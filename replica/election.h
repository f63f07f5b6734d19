/* FastLeaderElection as a pure state machine: notifications in, notifications and decision out. */
#ifndef ZKFS_ELECTION_H
#define ZKFS_ELECTION_H

#include "txn.h"

#include <stddef.h>
#include <stdint.h>

/*
 * The rules are ZooKeeper's FastLeaderElection (notes §1), written as a step function so the
 * simulator can drive it: no clock, no sockets, no threads. Time comes in with every call
 * (milliseconds, any monotonic origin); notifications go out through a send callback that must
 * only queue them (it must not call back into the election).
 *
 * Votes are ordered by (peer_epoch, zxid, leader id): the candidate with the newest currentEpoch,
 * then the longest log, then the highest id wins. Only participants (voters) can be proposed;
 * observers take part only to learn who leads, from the FOLLOWING/LEADING answers of others.
 *
 * Delivery: notifications may be lost, duplicated, delayed or reordered; every one is a full
 * statement of the sender's current vote, so the newest one received from a peer replaces
 * the previous one. Lost ones are made up by the resend timer (min_notify_ms doubling up to
 * max_notify_ms, as zookeeper.fastleader.{min,max}NotificationInterval).
 */

#define ELECTION_MAX_MEMBERS 32

/* Wire values are ZooKeeper's (Notification.state). */
enum election_state {
    ELECTION_LOOKING = 0,
    ELECTION_FOLLOWING = 1,
    ELECTION_LEADING = 2,
    ELECTION_OBSERVING = 3,
};

/* One notification: the sender's vote and state. */
struct election_vote {
    uint32_t leader;     /* proposed (or followed) leader; 0 = nobody (observers' own vote) */
    zxid_t zxid;         /* the proposed leader's last logged zxid */
    uint64_t round;      /* the sender's election round (ZooKeeper's logicalclock) */
    uint32_t peer_epoch; /* the proposed leader's currentEpoch */
    enum election_state state;
};

struct election_member {
    uint32_t id; /* >= 1, unique */
    int observer;
};

struct election_config {
    uint32_t my_id;
    const struct election_member *members; /* borrowed for the call, copied; includes my_id */
    size_t n_members;                      /* <= ELECTION_MAX_MEMBERS */
    uint32_t finalize_wait_ms;             /* 0 means 200 (ZooKeeper's finalizeWait) */
    uint32_t min_notify_ms;                /* 0 means 200 */
    uint32_t max_notify_ms;                /* 0 means 60000 */
};

/* Queues one notification to peer `to`. v is borrowed for the call. */
typedef void (*election_send_fn)(void *ctx, uint32_t to, const struct election_vote *v);

/* What a decision means for this server. */
struct election_result {
    uint32_t leader;           /* the elected leader */
    enum election_state state; /* LEADING (leader is me), FOLLOWING, or OBSERVING */
    struct election_vote vote; /* the vote decided on; advertised until the next start */
};

struct election_peer {
    uint32_t id;
    int observer;
    int have_recv, have_ooe;   /* recv/ooe below hold a notification */
    struct election_vote recv; /* this round's vote (ZooKeeper's recvset) */
    struct election_vote ooe;  /* last FOLLOWING/LEADING vote, any round (outofelection) */
};

/* Caller-allocated; election_init fills it. Fields are private to election.c. */
struct election {
    uint32_t my_id;
    int observer;
    size_t n;
    size_t n_voters;
    struct election_peer peers[ELECTION_MAX_MEMBERS];
    uint32_t finalize_wait_ms, min_notify_ms, max_notify_ms;
    election_send_fn send;
    void *ctx;

    enum election_state state;     /* LOOKING while electing; else what the decision made us */
    uint64_t round;                /* logicalclock */
    struct election_vote initial;  /* my own candidacy for this round */
    struct election_vote proposal; /* my current vote (LOOKING), or the decided one */
    uint64_t finalize_at;          /* 0, or when to decide if no better vote came */
    uint64_t next_send_at;         /* resend deadline while LOOKING */
    uint32_t notify_ms;            /* current resend interval */
};

/* 0, or -EINVAL for a bad config (my_id missing, duplicate or zero ids, too many members, no
 * voter). Nothing to free. */
int election_init(struct election *e, const struct election_config *cfg, election_send_fn send,
                  void *ctx);

/* Starts a new round (LOOKING): bumps the round and proposes myself with my last logged zxid
 * and currentEpoch (observers propose nobody), and sends that to every voter. */
void election_start(struct election *e, uint64_t now, zxid_t last_zxid, uint32_t current_epoch);

/* A notification from peer `from` (borrowed). Returns 1 and fills *out when this decides the
 * election (the election then advertises the decided vote with out->state until the next
 * election_start), 0 otherwise. Notifications from unknown ids are ignored. */
int election_on_vote(struct election *e, uint64_t now, uint32_t from, const struct election_vote *v,
                     struct election_result *out);

/* A connection to peer `id` came up. While LOOKING, it gets my current vote at once: what I sent
 * before the link existed was dropped, and my vote must not wait for a resend timer (that only
 * fires after a quiet interval, which votes from the others keep postponing). ZooKeeper's
 * QuorumCnxManager has the same effect: it keeps the last notification for a peer until a
 * connection takes it, and sends it again on every new connection. */
void election_on_connected(struct election *e, uint32_t id);

/* Timers: resend with backoff, and the end of the finalize wait. Same return as above. */
int election_on_tick(struct election *e, uint64_t now, struct election_result *out);

/* Out of the election: the ZAB epoch of the leader I lead or follow, once known. LOOKING peers
 * join an established leader when a quorum's FOLLOWING/LEADING votes agree on (leader, epoch);
 * advertising the established epoch, not the one each of us elected with in its own round,
 * makes them agree however each server got there. No-op while LOOKING. */
void election_set_epoch(struct election *e, uint32_t epoch);

/* The earliest time election_on_tick has something to do; UINT64_MAX when not LOOKING. */
uint64_t election_deadline(const struct election *e);

/* Quorum arithmetic shared with ZAB: more than half of the voters. */
int election_is_voter(const struct election *e, uint32_t id);
size_t election_quorum(const struct election *e);

#endif
