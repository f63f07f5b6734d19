/* The replica: client port, request pipeline, sessions, watches, store and tree wired up. */
#ifndef ZKFS_SERVER_H
#define ZKFS_SERVER_H

#include "admin.h"
#include "config.h"
#include "outbuf.h"
#include "prep.h"
#include "request.h"
#include "session.h"
#include "store.h"
#include "tree.h"
#include "watch.h"

#include <uv.h>

struct conn;
struct inflight;
struct cluster;

struct server_stats {
    uint64_t received, sent;
    uint64_t lat_count, lat_sum_us, lat_min_us, lat_max_us;
    uint64_t commits;
};

struct server {
    struct config cfg;
    uv_loop_t *loop;
    struct tree tree;
    struct store *store;
    struct prep prep;
    struct watch_mgr watches;
    struct session_tracker sessions;
    uv_tcp_t listener;
    struct outq outq; /* the connections' coalesced writes */
    uv_timer_t tick_timer;
    uv_timer_t container_timer;
    uv_signal_t sig_term, sig_int;
    struct admin admin;
    struct conn *conns; /* doubly linked through conn->next/prev */
    uint32_t n_conns;
    uint32_t epoch;
    zxid_t last_zxid; /* last zxid handed to a prepared txn */
    struct inflight *inflight_head, *inflight_tail;
    uint32_t n_inflight;
    struct server_stats stats;
    struct cluster *cluster; /* NULL when standalone */
    uint64_t start_ms;
    int stopping;
};

/* Opens the store, loads the tree, replays the log. On failure *err (static or malloc'd
 * reason; print it) and a negative code: the caller exits 2. */
int server_init(struct server *s, uv_loop_t *loop, const struct config *cfg, char **err);
/* Binds the client port and starts serving. */
int server_start(struct server *s, char **err);
/* Stops accepting, closes connections and the store; the loop then ends. */
void server_stop(struct server *s);
void server_close(struct server *s);

/* Monotonic and wall-clock milliseconds. */
uint64_t server_now_ms(void);
int64_t server_wall_ms(void);

/* Submits a write (or sync or connect-with-new-session): prepared now; r completes through
 * conn_request_done (or is freed if r->conn is NULL by then). */
void server_submit(struct server *s, struct request *r);
/* Completes r with err (see conn_request_done), or frees it if it has no connection. */
void server_complete(struct server *s, struct request *r, int err, zxid_t zxid);

/* ---- for the replication shell (cluster.c) ---- */
/* Prepares and proposes a request of this replica (leader only). */
void server_submit_local(struct server *s, struct request *r);
/* Prepares and proposes a learner's forwarded request (taken over; leader only); a refusal
 * goes back to the learner in commit order. */
void server_propose(struct server *s, struct request *r, uint32_t origin, uint64_t cxid);
/* A committed txn: applied in order; 1 if it was this replica's own oldest proposal (whose
 * request is then completed), 0 otherwise. */
int server_commit(struct server *s, const struct txn *t);
/* The same for a committed zxid that is this replica's own oldest proposal (its txn is
 * already here): 1 if it was, and is now applied; 0 (nothing done) otherwise. */
int server_commit_own(struct server *s, zxid_t zxid);
/* Fills a forwarded request's results from its committed txn and the tree. */
void server_fill_results(struct server *s, struct request *r, const struct txn *t);
/* A refusal from the leader: the error and ZooKeeper per-op codes of a multi. */
void server_set_op_errors(struct request *r, int err, const int32_t *zk_errs, size_t n);
/* Drops every proposal in flight (their fate is unknown: CONNECTIONLOSS). */
void server_abandon(struct server *s, zxid_t from, zxid_t to);
void server_reset_prep(struct server *s);
void server_drop_clients(struct server *s);
void server_reset_session_clocks(struct server *s);
/* After a snapshot install: the tree and sessions again from the store. */
int server_reload_tree(struct server *s);

/* Expires/closes a session from inside the server (internal request). */
void server_close_session(struct server *s, uint64_t session_id, int expire);
/* Records a request's latency. */
void server_record_latency(struct server *s, uint64_t start_us);
uint64_t server_now_us(void);

#endif
