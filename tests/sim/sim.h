/* The deterministic simulator's shared state: virtual clock, faulty network, disks, oracle. */
#ifndef ZKFS_SIM_H
#define ZKFS_SIM_H

#include "zab.h"

#include <stddef.h>
#include <stdint.h>

#define SIM_MAX 9 /* up to 7 voters and 2 observers */

/* ---- randomness: everything derives from the seed ---- */
struct rng {
    uint64_t s;
};
uint64_t rng_next(struct rng *r);
uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi); /* inclusive */
int rng_pct(struct rng *r, int pct);

/* ---- records: (zxid, write id) sequences, sorted by zxid ---- */
struct rec {
    zxid_t zxid;
    uint32_t wid;
};
struct recs {
    struct rec *v;
    size_t n, cap;
};
void recs_push(struct recs *r, zxid_t zxid, uint32_t wid);
long recs_find(const struct recs *r, zxid_t zxid);
size_t recs_after(const struct recs *r, zxid_t zxid); /* first index above zxid */
void recs_copy(struct recs *dst, const struct recs *src);
void recs_free(struct recs *r);

/* A snapshot of a server's applied sequence, shared by the message carrying it. */
struct snap {
    int refs;
    zxid_t zxid;
    struct recs recs;
};
void snap_unref(struct snap *s);

/* ---- events ---- */
enum ev_type {
    EV_DELIVER = 1, /* p = struct msg */
    EV_DISK,        /* a = server, gen = disk generation */
    EV_TICK,        /* a = server, gen = tick generation */
    EV_CLIENT,
    EV_FAULT,
    EV_BREAK,     /* a, b = link ends, gen = link generation */
    EV_RECONNECT, /* a, b */
    EV_RESTART,   /* a */
    EV_PHASE,     /* end of chaos, then convergence checks */
};

struct event {
    uint64_t t, seq;
    int type;
    int a, b;
    uint64_t gen;
    void *p;
};

struct heap {
    struct event *v;
    size_t n, cap;
};

struct msg {
    int from, to;
    uint64_t gen;
    uint64_t fifo; /* stream messages: place in its direction's sending order (votes: 0) */
    struct zab_msg m;
    uint8_t *payload;  /* owned copy */
    struct snap *snap; /* SNAP: the sender's applied state, owned reference */
};

/* One queued disk operation. */
struct dop {
    enum zab_action_type type;
    uint64_t seq;
    zxid_t zxid, zxid2;
    enum zab_epoch_kind kind;
    uint32_t epoch;
    uint32_t wid;
    struct snap *snap;
    uint64_t done_at;
};

struct server {
    int idx;
    uint32_t id;
    int observer;
    int alive;
    uint64_t paused_until; /* SIGSTOP: nothing runs until then */
    uint32_t rollover_epoch;
    struct zab *core;
    uint64_t tick_at, tick_gen;

    /* disk: durable state, and the FIFO of operations not yet durable */
    uint32_t d_accepted, d_current;
    struct recs d_log;
    zxid_t d_log_base;
    struct recs d_applied;
    struct dop *ops;
    size_t op_head, op_n, op_cap;
    uint64_t disk_free_at, disk_gen;
    int disk_slow;

    /* memory: what the server serves */
    struct recs applied;
    struct snap *staged;
    struct recs pending; /* client writes this server proposed and still waits for */
    enum zab_role role;
    uint32_t leader, epoch;
    int serving;
};

struct link {
    int up;
    uint64_t gen;
    uint64_t last[2];               /* per direction: FIFO delivery time */
    uint64_t sent[2], delivered[2]; /* per direction: stream messages numbered, the last handed
                                       over (the simulator checks its own FIFO promise) */
    int stalled[2];                 /* per direction: blocked, the connection is about to break */
    int reconnecting;               /* an EV_RECONNECT is pending */
};

struct zslot {
    zxid_t zxid; /* 0 = empty */
    uint32_t wid;
    uint32_t durable_on; /* voters that ever held it durably (bitmask of server index) */
};

struct sim_stats {
    uint64_t runs, steps, acked, leaders, snaps, truncs, crashes, rollovers;
    uint64_t diffs, truncs_sent, snaps_sent, snap_keeps, observers_runs;
    uint64_t virtual_ms;
};

enum sim_phase {
    PH_CHAOS = 0, /* faults and writes */
    PH_HEAL_LOAD, /* faults healed, writes go on: everyone must get in and serve under load */
    PH_HEAL,      /* writes stopped: everyone must converge, then one more write commits */
    PH_DONE,
};

struct sim {
    uint64_t seed;
    struct rng rng;
    int trace;
    uint64_t now, step;
    struct heap heap;
    uint64_t ev_seq;

    int n, n_voters, quorum;
    struct server s[SIM_MAX];
    struct link link[SIM_MAX][SIM_MAX]; /* [lo][hi] */
    int blocked[SIM_MAX][SIM_MAX];      /* [from][to] */
    struct zab_member members[SIM_MAX];
    struct zab_config cfg;

    /* oracle */
    struct zslot *zmap;
    size_t zmap_cap, zmap_n;
    struct recs G; /* the one committed sequence every applied sequence is a prefix of */
    uint8_t *in_g; /* by write id */
    size_t in_g_cap;
    uint32_t next_wid;
    struct recs acked;
    struct {
        uint32_t epoch;
        uint32_t leader;
    } leaders[256];
    size_t n_leaders;

    enum sim_phase phase;
    uint64_t heal_deadline;
    uint32_t final_wid;
    int final_sent;
    uint64_t final_at;

    int failed;
    char why[512];
    struct sim_stats st;
};

/* sim_net.c: event queue, links, messages */
void heap_push(struct sim *sim, uint64_t t, int type, int a, int b, uint64_t gen, void *p);
/* Puts a popped event back for time t, keeping its place among events of equal time. */
void heap_repush(struct sim *sim, uint64_t t, const struct event *e);
int heap_pop(struct sim *sim, struct event *out);
void heap_free(struct sim *sim);
struct link *link_of(struct sim *sim, int a, int b);
void net_send(struct sim *sim, int from, const struct zab_action *a);
void net_deliver(struct sim *sim, struct msg *m);
void net_break(struct sim *sim, int a, int b, uint64_t gen);
void net_schedule_reconnect(struct sim *sim, int a, int b);
void net_reconnect(struct sim *sim, int a, int b);
void net_partition(struct sim *sim);
void net_heal(struct sim *sim);
void net_isolate(struct sim *sim, int a);
void msg_free(struct msg *m);

/* sim_server.c: driving one core, its disk and its clients */
void server_boot(struct sim *sim, struct server *s);
void server_crash(struct sim *sim, struct server *s);
void server_drain(struct sim *sim, struct server *s);
void server_tick(struct sim *sim, struct server *s, uint64_t gen);
void server_disk_done(struct sim *sim, struct server *s, uint64_t gen);
void server_free(struct server *s);
int client_write(struct sim *sim, struct server *only);
void payload_make(uint32_t wid, uint8_t *buf, size_t *len);

/* sim_main.c: now and then, crash s right after it handled a message or a disk completion,
 * when its next disk writes are queued and not yet durable */
void chaos_crash_point(struct sim *sim, struct server *s);

/* sim_check.c: the oracle */
void sim_fail(struct sim *sim, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_trace(struct sim *sim, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct zslot *zmap_get(struct sim *sim, zxid_t zxid, int create);
void check_proposed(struct sim *sim, zxid_t zxid, uint32_t wid);
void check_logged(struct sim *sim, struct server *s, zxid_t zxid, uint32_t wid);
void check_applied(struct sim *sim, struct server *s, zxid_t zxid, uint32_t wid);
void check_role(struct sim *sim, struct server *s);
void check_install(struct sim *sim, struct server *s, const struct snap *snap);
void check_durability(struct sim *sim);
void check_crash(struct sim *sim, struct server *s);
int check_converged(struct sim *sim, int *leader);
void check_final(struct sim *sim);
void oracle_free(struct sim *sim);

#endif
