/* fused's cluster session: calls with a bounded wait, a new session after an expiry, and the
 * bookkeeping that tells the mount's own writes from changes made elsewhere. */
#ifndef ZKFS_FUSED_SESS_H
#define ZKFS_FUSED_SESS_H

#include "cache.h"
#include "client.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct fs;

/* One client session; replaced by a new one when the cluster expires it. */
struct sess {
    struct zc *zc;
    struct fs *fs;
    int refs;           /* under sess_mgr.mu */
    int ever_connected; /* under sess_mgr.mu */
    int retired;        /* replaced or closed: its callbacks are ignored (under sess_mgr.mu) */
    int watching;       /* the recursive watch is registered (replay thread only) */
};

struct sess_mgr {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sess *cur;
    int stopping;
    /* Own writes: tickets of writes in flight, zxids of the finished ones. */
    uint64_t next_ticket;
    uint64_t *inflight;
    size_t n_inflight, cap_inflight;
    int64_t *own;
    size_t n_own, cap_own;
    /* statfs: the cluster's node count from mntr, cached briefly. */
    long long znodes;
    uint64_t znodes_at_ms;
};

int sess_init(struct fs *fs);
/* Opens the first session (connecting in the background). 0 or a negative code. */
int sess_start(struct fs *fs);
/* Closes the session (ephemerals go at once) and frees everything. */
void sess_close(struct fs *fs);
/* Replaces an expired session by a new one (replay thread). 0 or a negative code. */
int sess_renew(struct fs *fs);

/* The current session with a reference (sess_put it), or NULL when stopping. */
struct sess *sess_get(struct fs *fs);
void sess_put(struct fs *fs, struct sess *s);
/* 1 if the mount has a live session right now (writes fail with EIO otherwise). */
int sess_live(struct fs *fs);
uint64_t sess_id(struct fs *fs);

/* zk_call flags. */
enum {
    ZK_RETRY = 1, /* safe to resend after a connection loss (reads, idempotent writes) */
};

/*
 * One request, waiting at most op_timeout for a server (and for a new session after an
 * expiry). out is filled as by zc_call (free it with zc_result_free, even on error).
 * Returns 0 or a ZE_* / negative errno code.
 */
int zk_call(struct fs *fs, const struct zc_req *req, struct zc_result *out, int flags);

/* A read for zk_fetch_all: op is ZC_OP_GET_DATA, ZC_OP_EXISTS or ZC_OP_GET_CHILDREN. */
struct zk_fetch {
    enum zc_op op;
    const char *path; /* borrowed */
    int err;
    int64_t zxid; /* the server's zxid when it answered */
    struct zc_stat st;
    int has_stat;
    struct blob *data; /* GET_DATA: owned, release with zk_fetch_clear */
    char **children;   /* GET_CHILDREN: owned */
    uint32_t n_children;
    struct zk_batch *batch_;
};

/* Runs the reads pipelined (one round trip for all), retrying those lost with a connection
 * within op_timeout. The caller zeroes f[] and sets op and path; each f[i].err tells its
 * outcome. */
void zk_fetch_all(struct fs *fs, struct zk_fetch *f, size_t n);
void zk_fetch_clear(struct zk_fetch *f);

/*
 * Own writes. A writer takes a ticket before sending (own_begin) and, once its result is in
 * the cache, ends it with the zxid it got (own_end; 0 if none). The watch event for a write
 * arrives before its reply, so the replay thread, before deciding whether an event is the
 * mount's own, waits for the writes that were in flight when the event arrived (own_wait with
 * the snapshot taken then) and asks own_is.
 */
uint64_t own_begin(struct fs *fs);
void own_end(struct fs *fs, uint64_t ticket, int64_t zxid);
uint64_t own_snapshot(struct fs *fs);
void own_wait(struct fs *fs, uint64_t snapshot);
int own_is(struct fs *fs, int64_t zxid);
/* Forgets own zxids below zxid (their events have passed). */
void own_prune(struct fs *fs, int64_t zxid);

/* The cluster's znode count (mntr on the connected server, cached for 2 s); -1 if unknown. */
long long sess_znode_count(struct fs *fs);

/* Milliseconds on the monotonic clock. */
uint64_t now_ms(void);

#endif
