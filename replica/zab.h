/* The replication core (election + ZAB) for one server: a pure state machine the shell drives. */
#ifndef ZKFS_ZAB_H
#define ZKFS_ZAB_H

#include "election.h"
#include "txn.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Shape (after canonical/raft): the core never blocks, never does I/O, never reads a clock or a
 * random source. The shell feeds it events, each carrying the current time in milliseconds
 * (any monotonic origin), then drains the actions it queued with zab_pop_action and carries
 * them out. See docs/replication.md for the protocol and the rules behind each ordering.
 *
 * Events in:   zab_on_message, zab_on_tick, zab_on_persisted, zab_on_connected,
 *              zab_on_disconnected, and client writes (zab_next_zxid + zab_propose).
 * Actions out: struct zab_action below.
 *
 * Threading: one thread at a time per struct zab; no callbacks into the shell.
 *
 * ---- The shell's contract ----
 *
 * Transport. The core assumes one reliable FIFO stream per peer (a TCP connection): while a
 * connection is up, messages arrive in the order sent, without gaps or duplicates. When it
 * breaks (DISCONNECT included), messages in flight are lost and the shell reports
 * zab_on_disconnected; when a new connection is up it reports zab_on_connected (the shell
 * redials on its own, as ZooKeeper's QuorumCnxManager does). For one peer, events are reported in
 * order: no message of a new connection before its zab_on_connected, none of an old one after its
 * zab_on_disconnected. SEND to a peer that is not connected is dropped silently. Election
 * notifications (ZAB_MSG_VOTE) may instead travel on a separate, lossy channel (ZooKeeper's
 * election port): they need no ordering with the rest.
 *
 * Disk. Every action with a nonzero `seq` (PERSIST_TXN, PERSIST_EPOCH, TRUNCATE,
 * INSTALL_SNAPSHOT) is a durable operation. The shell performs them in the order queued, each
 * one atomic, and calls zab_on_persisted(seq) once every operation up to and including `seq` is
 * on disk (fsync'd): one call may cover many (group commit). A crash may lose any suffix of the
 * operations not yet reported, never a middle one. After a restart the shell builds a new core
 * from what is on disk (struct zab_durable). On a write or fsync error the shell must stop the
 * process (fail-stop, ZOOKEEPER-4882): the core has no way to undo.
 *
 * Apply. APPLY actions come in strictly increasing zxid order, each committed txn exactly once
 * per core lifetime, and only once the txn is durable on this server. The shell applies them
 * to its tree (and durable tree, as store_apply) in that order; it need not report back.
 * After a restart the core re-applies committed txns above zab_durable.applied.
 *
 * Snapshots. A SEND of a ZAB_MSG_SNAP message (zxid Z) tells the shell to stream, right after
 * that message on the same connection, a snapshot of its committed state, which at that point
 * of the action queue is exactly the state after the last APPLY (zxid Z). The receiving shell
 * reads the whole snapshot into a staging area before handing the SNAP message to the core
 * (a broken connection discards it). INSTALL_SNAPSHOT(Z, keep) then asks the shell to make
 * the staged snapshot the committed state atomically and durably (ZOOKEEPER-3642).
 *
 * ---- Ownership ----
 *
 * Everything passed into the core is borrowed for the call and copied if kept (messages,
 * payloads, config, durable state). Pointers inside a popped action (payloads) are owned by
 * the core and stay valid until the next zab_pop_action, any other call on the same core, or
 * zab_free; the shell copies what it needs to keep (store_append already copies).
 */

#define ZAB_MAX_MEMBERS ELECTION_MAX_MEMBERS

/* Error codes (negative errno, as the rest of zkfs). */
#define ZAB_ENOTLEADER (-ENOTCONN) /* not an established leader: forward or fail the write */
#define ZAB_EBUSY (-EAGAIN)        /* too many proposals in flight: retry later */
#define ZAB_EROLLOVER (-EOVERFLOW) /* zxid counter exhausted: a new epoch is being forced */
#define ZAB_ENOQUORUM (-ETIMEDOUT) /* the leader lost its quorum of synced followers */

/* Peer protocol messages, as plain C structs (the shell encodes them for the wire). */
enum zab_msg_type {
    ZAB_MSG_VOTE = 1,     /* election notification: vote */
    ZAB_MSG_FOLLOWERINFO, /* learner -> leader: epoch = acceptedEpoch */
    ZAB_MSG_OBSERVERINFO, /* the same from an observer */
    ZAB_MSG_LEADERINFO,   /* leader -> learner: epoch = the new epoch */
    ZAB_MSG_ACKEPOCH,     /* learner -> leader: epoch = currentEpoch, zxid = last logged zxid,
                             zxid2 = last applied (committed) zxid, flags ZAB_F_FRESH */
    ZAB_MSG_DIFF,         /* leader -> learner: zxid = point the stream continues from */
    ZAB_MSG_TRUNC,        /* leader -> learner: drop the log above zxid, then as DIFF */
    ZAB_MSG_SNAP,         /* leader -> learner: snapshot at zxid follows (see Snapshots) */
    ZAB_MSG_PROPOSAL,     /* leader -> follower: txn zxid + payload */
    ZAB_MSG_COMMIT,       /* leader -> learner: everything <= zxid is committed */
    ZAB_MSG_NEWLEADER,    /* leader -> learner: epoch, zxid = last zxid of the sync stream */
    ZAB_MSG_ACKNEWLEADER, /* learner -> leader: synced and currentEpoch = epoch is durable */
    ZAB_MSG_UPTODATE,     /* leader -> learner: serving; zxid = committed so far */
    ZAB_MSG_ACK,          /* follower -> leader: durable up to zxid */
    ZAB_MSG_INFORM,       /* leader -> observer: committed txn zxid + payload */
    ZAB_MSG_PING,         /* both ways, liveness; zxid = sender's last zxid (informative) */
};

#define ZAB_F_FRESH 1u /* ACKEPOCH: the learner accepted this epoch just now (counts in quorum) */

struct zab_msg {
    enum zab_msg_type type;
    uint64_t session; /* ZAB messages: the learner's session with the leader (stale ones dropped) */
    uint32_t epoch;
    uint32_t flags;
    zxid_t zxid;
    zxid_t zxid2;
    const uint8_t *payload; /* PROPOSAL, INFORM; borrowed (see Ownership) */
    size_t len;
    struct election_vote vote; /* VOTE */
};

enum zab_role {
    ZAB_LOOKING = 0,
    ZAB_FOLLOWING = 1,
    ZAB_LEADING = 2,
    ZAB_OBSERVING = 3,
};

enum zab_epoch_kind {
    ZAB_ACCEPTED_EPOCH = 1, /* ZooKeeper's dataDir/acceptedEpoch */
    ZAB_CURRENT_EPOCH = 2,  /* dataDir/currentEpoch */
};

enum zab_action_type {
    ZAB_ACT_SEND = 1,         /* to, msg */
    ZAB_ACT_DISCONNECT,       /* to: close that connection (a session ended); redial later */
    ZAB_ACT_PERSIST_TXN,      /* seq, zxid, payload: append to the log */
    ZAB_ACT_PERSIST_EPOCH,    /* seq, epoch_kind, epoch */
    ZAB_ACT_TRUNCATE,         /* seq, zxid: delete log entries above zxid (never committed ones) */
    ZAB_ACT_INSTALL_SNAPSHOT, /* seq, zxid = Z, zxid2 = keep: committed state := the staged
                                 snapshot at Z; delete log entries <= Z and > keep (keep >= Z) */
    ZAB_ACT_APPLY,            /* zxid, payload: committed, apply now */
    ZAB_ACT_ROLE,             /* role, leader, epoch, serving */
    ZAB_ACT_ABANDON,          /* zxid..zxid2, reason: my proposals whose fate I no longer know */
};

struct zab_action {
    enum zab_action_type type;
    uint32_t to;
    uint64_t seq;
    zxid_t zxid;
    zxid_t zxid2;
    enum zab_epoch_kind epoch_kind;
    uint32_t epoch;
    const uint8_t *payload; /* owned by the core, see Ownership */
    size_t len;
    struct zab_msg msg; /* SEND; msg.payload as payload */
    /* ROLE: serving = 1 once a leader is established (it may take writes) or a learner got
     * UPTODATE (its state is the leader's committed prefix). leader = 0 while LOOKING. */
    enum zab_role role;
    uint32_t leader;
    int serving;
    int reason; /* ABANDON: ZAB_ENOTLEADER, ZAB_ENOQUORUM or ZAB_EROLLOVER (why I stepped down) */
};

struct zab_member {
    uint32_t id; /* >= 1, unique: ZooKeeper's server.N */
    int observer;
};

struct zab_config {
    uint32_t my_id;
    const struct zab_member *members; /* copied; includes my_id */
    size_t n_members;
    uint32_t tick_ms;    /* tickTime; 0 means 2000 */
    uint32_t init_limit; /* ticks to connect and sync; 0 means 10 */
    uint32_t sync_limit; /* ticks of silence tolerated once synced; 0 means 5 */
    uint32_t finalize_wait_ms, min_notify_ms, max_notify_ms; /* election; 0 = defaults */
    uint32_t retain_log;      /* committed txns kept in memory for DIFF; 0 means 500 */
    uint32_t max_outstanding; /* uncommitted proposals before ZAB_EBUSY; 0 means 1000 */
    uint32_t max_counter;     /* highest zxid counter a leader uses; 0 means 0xfffffffe (tests
                                 lower it to force epoch changes) */
    uint64_t seed;            /* randomness (learner session ids) */
};

/* One durable log entry handed to zab_new. */
struct zab_entry {
    zxid_t zxid;
    const uint8_t *payload; /* borrowed for the call */
    size_t len;
};

/* What the shell found on disk at startup. */
struct zab_durable {
    uint32_t accepted_epoch;
    uint32_t current_epoch;
    zxid_t applied; /* zxid of the committed state (tree), 0 if empty */
    /* Log entries in zxid order, contiguous (no gaps within an epoch), starting right after
     * log_base <= applied, ending at the last logged zxid: every entry above `applied`, plus as
     * many below it as the shell wants the leader to be able to DIFF from (retain_log). */
    zxid_t log_base;
    const struct zab_entry *log;
    size_t n_log;
};

struct zab;

/* Creates a core from its config and durable state (both copied), LOOKING, election started.
 * 0, -EINVAL (bad config, or a log with gaps or below applied), or -ENOMEM. */
int zab_new(struct zab **out, const struct zab_config *cfg, const struct zab_durable *d,
            uint64_t now);
/* Frees the core and any action not yet popped. NULL is a no-op. */
void zab_free(struct zab *z);

/* ---- Events. Each returns 0, or a negative code only for misuse (-EINVAL). Malformed or
 * unexpected peer messages are not errors: the core drops them or ends that session. ---- */

/* A message from peer `from` (m and its payload borrowed). */
int zab_on_message(struct zab *z, uint64_t now, uint32_t from, const struct zab_msg *m);
/* Timers; call at or soon after zab_deadline(), or at any time. */
int zab_on_tick(struct zab *z, uint64_t now);
/* Every durable operation with seq <= `seq` is on disk. */
int zab_on_persisted(struct zab *z, uint64_t now, uint64_t seq);
/* A connection to `peer` is up (while electing, my vote goes out on it at once) or down. */
int zab_on_connected(struct zab *z, uint64_t now, uint32_t peer);
int zab_on_disconnected(struct zab *z, uint64_t now, uint32_t peer);

/* Client writes, on the leader only. zab_next_zxid tells the zxid the next zab_propose will
 * take, so the shell can prepare the txn (czxid, mzxid...) first: 0, ZAB_ENOTLEADER,
 * ZAB_EBUSY or ZAB_EROLLOVER. zab_propose then takes the payload (copied) with that zxid: 0,
 * the same errors, or -EINVAL if zxid is not the one zab_next_zxid gives now. The shell learns
 * the outcome from APPLY (committed) or ABANDON (leadership lost first: unknown outcome, as
 * ZooKeeper's CONNECTIONLOSS). */
int zab_next_zxid(const struct zab *z, zxid_t *out);
int zab_propose(struct zab *z, uint64_t now, zxid_t zxid, const uint8_t *payload, size_t len);

/* Actions: 1 and *out filled, or 0 when the queue is empty. See Ownership for out's pointers. */
int zab_pop_action(struct zab *z, struct zab_action *out);

/* The earliest time zab_on_tick has work (election resend, pings, timeouts). */
uint64_t zab_deadline(const struct zab *z);

/* Introspection for status, metrics and tests. */
struct zab_status {
    enum zab_role role;
    uint32_t leader;
    uint32_t epoch; /* the epoch being led or followed, once known */
    int serving;
    uint32_t accepted_epoch, current_epoch; /* as queued to disk */
    zxid_t last_zxid;                       /* last logged (queued) */
    zxid_t applied;                         /* last APPLY emitted */
    uint64_t election_round;
    size_t synced_learners; /* leader: learners in broadcast */
};
void zab_get_status(const struct zab *z, struct zab_status *out);

const char *zab_msg_name(enum zab_msg_type t);
const char *zab_role_name(enum zab_role r);

#endif
