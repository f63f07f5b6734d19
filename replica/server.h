/* The replica: client port, request pipeline, sessions, watches, store and tree wired up. */
#ifndef ZKFS_SERVER_H
#define ZKFS_SERVER_H

#include "admin.h"
#include "config.h"
#include "prep.h"
#include "request.h"
#include "session.h"
#include "store.h"
#include "tree.h"
#include "watch.h"

#include <uv.h>

struct conn;
struct inflight;

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
/* Expires/closes a session from inside the server (internal request). */
void server_close_session(struct server *s, uint64_t session_id, int expire);
/* Records a request's latency. */
void server_record_latency(struct server *s, uint64_t start_us);
uint64_t server_now_us(void);

#endif
