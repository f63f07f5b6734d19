/* Private state of the ZAB core, shared by its phase files (zab*.c); the shell uses zab.h only. */
#ifndef ZKFS_ZAB_INTERNAL_H
#define ZKFS_ZAB_INTERNAL_H

#include "zab.h"

/* A payload shared by the log, queued actions and messages: reference counted, immutable. */
struct zbuf {
    uint32_t refs;
    size_t len;
    uint8_t data[];
};

struct zbuf *zbuf_new(const uint8_t *data, size_t len);
struct zbuf *zbuf_ref(struct zbuf *b);
void zbuf_unref(struct zbuf *b);

/* One log entry as queued to disk: durable once seq <= z->seq_durable (0 = loaded durable). */
struct zentry {
    zxid_t zxid;
    struct zbuf *buf;
    uint64_t seq;
};

/* In-memory log: entries (base, last], contiguous, zxids increasing. Everything <= base is
 * committed and covered by the applied state. */
struct zlog {
    struct zentry *v;
    size_t head, len, cap;
    zxid_t base;
    uint64_t base_seq; /* the INSTALL_SNAPSHOT op that set base (0 = durable) */
};

int zlog_push(struct zlog *l, zxid_t zxid, struct zbuf *buf, uint64_t seq); /* buf ref taken */
struct zentry *zlog_at(const struct zlog *l, size_t i);
zxid_t zlog_last(const struct zlog *l);
/* Index of the entry with this zxid, or -1. */
long zlog_find(const struct zlog *l, zxid_t zxid);
/* Index of the first entry above zxid (l->len if none). */
size_t zlog_after(const struct zlog *l, zxid_t zxid);
/* Whether the log (or its base) holds zxid: the history up to it is this log's. */
int zlog_has(const struct zlog *l, zxid_t zxid);
void zlog_truncate_after(struct zlog *l, zxid_t zxid);
/* Drops entries <= zxid from the front without applying them; base becomes zxid. */
void zlog_drop_upto(struct zlog *l, zxid_t zxid);
void zlog_free(struct zlog *l);

/* ZOOKEEPER-4925: a log never has holes. Within an epoch counters go up by one; a new epoch
 * starts at counter 1. */
int zxid_follows(zxid_t prev, zxid_t next);

/* Leader's view of one learner (ZooKeeper's LearnerHandler), one session at a time. */
enum hphase {
    H_NONE = 0,
    H_INFO,        /* FOLLOWERINFO received; LEADERINFO once the epoch is durable */
    H_LEADERINFO,  /* LEADERINFO sent; waiting for ACKEPOCH */
    H_EPOCH_ACKED, /* ACKEPOCH received; synced once the epoch has its quorum */
    H_SYNCING,     /* sync stream and NEWLEADER sent; waiting for ACKNEWLEADER */
    H_SYNCED,      /* ACKNEWLEADER received; UPTODATE when the leader is established */
    H_BROADCAST,   /* UPTODATE sent */
};

struct zhandler {
    enum hphase phase;
    uint64_t session;
    uint32_t accepted; /* learner's acceptedEpoch (FOLLOWERINFO) */
    zxid_t last_zxid;  /* ACKEPOCH: learner's last logged and applied zxids */
    zxid_t applied;
    zxid_t sent;    /* last txn zxid queued to it (PROPOSAL, or INFORM for observers) */
    zxid_t nl_zxid; /* NEWLEADER zxid sent to it */
    zxid_t acked;   /* durable on it up to here (followers, after ACKNEWLEADER) */
    uint64_t last_heard;
};

struct zpeer {
    uint32_t id;
    int observer;
    int connected;
    struct zhandler h;
    /* A FOLLOWERINFO/OBSERVERINFO that came on the current connection while I was LOOKING:
     * answered if I come to lead, refused if I follow, dropped with the connection. */
    int has_early_info;
    struct zab_msg early_info;
};

enum lphase {
    LD_INFO = 0,   /* waiting for FOLLOWERINFO from a quorum */
    LD_EPOCH_WAIT, /* acceptedEpoch = new epoch being persisted */
    LD_ACKEPOCH,   /* LEADERINFO sent; waiting for a quorum of ACKEPOCH */
    LD_SYNC,       /* syncing learners; waiting for a quorum of ACKNEWLEADER */
    LD_BROADCAST,  /* established */
};

struct leader_state {
    enum lphase phase;
    uint32_t epoch;
    uint64_t started;
    uint64_t epoch_seq; /* acceptedEpoch write */
    uint64_t cur_seq;   /* currentEpoch write */
    uint64_t promised;  /* voters (by peer index) whose fresh ACKEPOCH promised this epoch */
    uint32_t next_counter;
    uint64_t next_ping;
};

enum lnphase {
    LN_CONNECT = 0, /* waiting for a connection to the leader */
    LN_LEADERINFO,  /* FOLLOWERINFO sent */
    LN_EPOCH_WAIT,  /* acceptedEpoch being persisted, then ACKEPOCH */
    LN_SYNC_WAIT,   /* ACKEPOCH sent; waiting for DIFF/TRUNC/SNAP */
    LN_SYNC,        /* receiving the sync stream */
    LN_NL_DURABLE,  /* NEWLEADER received: waiting for the synced txns to be durable */
    LN_NL_EPOCH,    /* ... then for currentEpoch to be durable, then ACKNEWLEADER */
    LN_UPTODATE,    /* ACKNEWLEADER sent; waiting for UPTODATE */
    LN_BROADCAST,   /* serving */
};

enum sync_mode {
    SM_NONE = 0,
    SM_RECONCILE, /* stream continues from `point`; my entries above it are unconfirmed */
    SM_SNAP,      /* snapshot staged at snap_z, not installed; my entries above it unconfirmed */
};

struct learner_state {
    enum lnphase phase;
    uint64_t session;
    uint64_t started, last_heard;
    uint32_t epoch;    /* the leader's epoch (LEADERINFO) */
    int fresh;         /* I accepted the epoch in this session */
    uint64_t wait_seq; /* durable op the current phase waits for */
    enum sync_mode mode;
    zxid_t point; /* last zxid of the sync stream so far; my log agrees up to it */
    zxid_t snap_z;
    zxid_t nl_zxid;    /* NEWLEADER zxid */
    zxid_t commit;     /* the leader says everything <= commit is committed */
    zxid_t acked_sent; /* last ACK sent */
};

struct zqact {
    struct zab_action a;
    struct zbuf *buf; /* reference held while queued */
};

struct zab {
    uint32_t my_id;
    int observer;
    size_t n_peers;
    struct zpeer peers[ZAB_MAX_MEMBERS];
    uint32_t tick_ms, init_limit, sync_limit, retain_log, max_outstanding, max_counter;
    uint64_t rng;
    uint64_t now;

    struct election el;

    /* State as queued to disk; durable up to seq_durable. */
    uint32_t accepted_epoch, current_epoch;
    struct zlog log;
    zxid_t applied;
    uint64_t seq_issued, seq_durable;

    enum zab_role role;
    uint32_t leader;
    int serving;
    struct leader_state ld;
    struct learner_state ln;

    struct zqact *q;
    size_t q_head, q_len, q_cap;
    struct zbuf *popped; /* reference behind the last popped action */
};

/* zab.c: actions */
void act_send(struct zab *z, uint32_t to, const struct zab_msg *m, struct zbuf *buf);
void act_disconnect(struct zab *z, uint32_t to);
uint64_t act_persist_txn(struct zab *z, zxid_t zxid, struct zbuf *buf);
uint64_t act_persist_epoch(struct zab *z, enum zab_epoch_kind kind, uint32_t epoch);
uint64_t act_truncate(struct zab *z, zxid_t zxid);
uint64_t act_install(struct zab *z, zxid_t snap, zxid_t keep);
void act_role(struct zab *z);
void act_abandon(struct zab *z, zxid_t from, zxid_t to, int reason);

/* zab.c: shared helpers */
struct zpeer *zab_peer(struct zab *z, uint32_t id);
size_t zab_quorum(const struct zab *z);
void zab_go_looking(struct zab *z, int reason);
zxid_t zab_durable_zxid(const struct zab *z);
/* Appends a txn to the log and queues its write. */
int zab_log_append(struct zab *z, zxid_t zxid, struct zbuf *buf);
/* Applies committed entries up to limit (never past what is durable here). */
void zab_apply_upto(struct zab *z, zxid_t limit);
void zab_send_simple(struct zab *z, uint32_t to, enum zab_msg_type t, uint64_t session,
                     uint32_t epoch, zxid_t zxid);
uint64_t zab_timeout_ms(const struct zab *z, uint32_t ticks);

/* zab_discovery.c */
void leader_start(struct zab *z);
void leader_on_info(struct zab *z, struct zpeer *p, const struct zab_msg *m);
void leader_on_ackepoch(struct zab *z, struct zpeer *p, const struct zab_msg *m);
void leader_discovery_progress(struct zab *z);
void learner_start(struct zab *z);
void learner_on_connected(struct zab *z);
void learner_on_leaderinfo(struct zab *z, const struct zab_msg *m);
void learner_discovery_progress(struct zab *z);
void leader_drop(struct zab *z, struct zpeer *p);

/* zab_sync.c */
void leader_sync(struct zab *z, struct zpeer *p);
void leader_on_acknewleader(struct zab *z, struct zpeer *p, const struct zab_msg *m);
void leader_sync_progress(struct zab *z);
int learner_on_sync_msg(struct zab *z, const struct zab_msg *m);
void learner_sync_progress(struct zab *z);
zxid_t learner_apply_limit(const struct zab *z);

/* zab_broadcast.c */
void leader_on_ack(struct zab *z, struct zpeer *p, const struct zab_msg *m);
void leader_commit_progress(struct zab *z);
void leader_commit_to(struct zab *z, zxid_t c);
void leader_tick(struct zab *z);
int learner_on_broadcast_msg(struct zab *z, const struct zab_msg *m);
void learner_ack_progress(struct zab *z);
void learner_tick(struct zab *z);

#endif
