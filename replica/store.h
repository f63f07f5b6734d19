/* The durable store on RocksDB: the transaction log, the committed tree, sessions, epochs. */
#ifndef ZKFS_STORE_H
#define ZKFS_STORE_H

#include "txn.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/*
 * Column families:
 *   log      zxid (8 bytes big endian) -> record.proto Txn      (proposals, synced)
 *   tree     path                      -> record.proto Node     (committed tree only)
 *   sessions id (8 bytes big endian)   -> record.proto Session
 *   meta     "applied" | "acceptedEpoch" | "currentEpoch" -> 8 bytes big endian
 *
 * Threading: store calls are made on the loop thread. Writes go to one writer thread that
 * takes everything queued since its last write and writes it as one WriteBatch (group
 * commit; at most 16 MiB of records per write); done callbacks run on the loop thread, in
 * submission order, from a uv_async_t inside struct store. That handle keeps the loop alive
 * only while appends are in flight, so uv_run(UV_RUN_DEFAULT) returns once their callbacks ran.
 *
 * Failure: after one failed RocksDB write (logged), that write and every later one fail with a
 * negative status, so the log never gets a hole; the replica must fail-stop.
 */
struct store;

struct store_opts {
    int group_commit; /* 1: one fsync for everything queued; 0: one fsync per append */
    int sync;         /* 0 only for benchmarks of the unsafe mode: never fsync */
};

/* status: 0 once the entry is durable, or a negative error (the write failed: fail-stop). */
typedef void (*store_done_cb)(void *arg, int status);

/* Opens (creating if needed) the store in dir (borrowed; opts copied, NULL means group commit
 * and sync on). On failure *errmsg (malloc'd, caller frees; errmsg may be NULL) says why in
 * one line, and nothing is left to close. 0, or a negative code: -EIO when RocksDB refuses,
 * -EBADMSG when stored bytes are malformed (a damaged store refuses to start). */
int store_open(struct store **out, uv_loop_t *loop, const char *dir, const struct store_opts *opts,
               char **errmsg);
/* Waits for queued writes to finish, then closes. Done callbacks of queued writes run first,
 * and writes they queue are written too. Loop thread; may be called from a done callback.
 * The memory of s is released by the async handle's close callback: the caller must run the
 * loop once more (e.g. uv_run(loop, UV_RUN_DEFAULT)) before uv_loop_close. s is invalid after
 * the call. NULL is a no-op. */
void store_close(struct store *s);

/* Loading at startup (loop thread, before any write). Each callback returns 0 to go on or a
 * negative code to stop the iteration with that code. Bytes are borrowed for the call.
 * -EBADMSG for a malformed key (logged), -EIO for a read error. */
struct store_loader {
    void *arg;
    int (*node)(void *arg, const char *path, const uint8_t *rec, size_t len);
    int (*session)(void *arg, const uint8_t *rec, size_t len);
    /* log entries with zxid > after, in zxid order */
    int (*txn)(void *arg, zxid_t zxid, const uint8_t *rec, size_t len);
};
int store_load_tree(struct store *s, const struct store_loader *l);
int store_load_log(struct store *s, zxid_t after, const struct store_loader *l);

/* Metadata, read at startup (0 when absent), then as submitted: store_applied follows
 * store_apply, store_last_logged the highest zxid given to store_append, store_get_meta the
 * last successful store_set_meta_sync. */
zxid_t store_applied(struct store *s);
zxid_t store_last_logged(struct store *s);
uint64_t store_get_meta(struct store *s, const char *key);
/* Writes a meta key durably (synchronous, fsync'd), after every write queued before it, so
 * txns are on disk before the epoch that follows them (ZK-4643). key is borrowed, at most 255
 * bytes. Blocks the loop thread for one write. 0 or negative. */
int store_set_meta_sync(struct store *s, const char *key, uint64_t value);

/* Appends a txn record to the log; cb(arg, 0) once it is on disk. The record is copied.
 * If the call fails (-ENOMEM), cb never runs. */
int store_append(struct store *s, zxid_t zxid, const uint8_t *rec, size_t len, store_done_cb cb,
                 void *arg);

/*
 * The effect of one committed txn on the durable tree, written as one WriteBatch together with
 * applied=zxid (not itself fsync'd: the log entry already is, and replay covers the gap).
 */
struct store_batch;
/* Out of memory aborts the process (fail-stop): a lost apply would corrupt the durable tree. */
struct store_batch *store_batch_new(zxid_t zxid);
/* Paths and values are copied. */
void store_batch_put_node(struct store_batch *b, const char *path, const uint8_t *rec, size_t len);
void store_batch_del_node(struct store_batch *b, const char *path);
void store_batch_put_session(struct store_batch *b, uint64_t id, const uint8_t *rec, size_t len);
void store_batch_del_session(struct store_batch *b, uint64_t id);
/* Queues b (ownership passes to the store). Writes are applied in submission order. */
void store_apply(struct store *s, struct store_batch *b);

/* Deletes log entries with zxid < below (asynchronously, in order with other writes). Out of
 * memory skips the trim (logged): the next one deletes from 0 and covers it. */
void store_trim_log(struct store *s, zxid_t below);

/* ---- for ZAB's synchronisation ---- */

/* TRUNC: deletes every log entry after zxid `after`, durably, in order with earlier writes.
 * Blocks until written. 0 or negative. */
int store_truncate_log_sync(struct store *s, zxid_t after);

/*
 * SNAP, learner side: the new tree and sessions are gathered in memory and written, with the
 * old tree and sessions removed, the log cut to the entries in (zxid, keep] and applied=zxid,
 * as ONE synced WriteBatch, so a crash leaves the old state or the whole new one
 * (ZOOKEEPER-3642). Memory: the snapshot's size. commit blocks until written and frees in
 * (whatever it returns); abort frees an uncommitted one.
 */
struct store_install;
struct store_install *store_install_begin(struct store *s);
void store_install_put_node(struct store *s, struct store_install *in, const char *path,
                            const uint8_t *rec, size_t len);
void store_install_put_session(struct store *s, struct store_install *in, uint64_t id,
                               const uint8_t *rec, size_t len);
int store_install_commit(struct store *s, struct store_install *in, zxid_t zxid, zxid_t keep);
void store_install_abort(struct store_install *in);

/*
 * SNAP, leader side: a consistent view of the durable tree and sessions (a RocksDB snapshot)
 * and the zxid they are applied up to, read entry by entry with bounded memory while writes
 * go on. May be used from any one thread at a time. next returns 1 with an entry (pointers
 * valid until the next call), 0 at the end, or a negative code.
 */
enum store_snap_kind { STORE_SNAP_NODE, STORE_SNAP_SESSION };
struct store_snap;
int store_snap_open(struct store *s, struct store_snap **out, zxid_t *applied);
int store_snap_next(struct store_snap *sn, enum store_snap_kind *kind, const uint8_t **key,
                    size_t *klen, const uint8_t **val, size_t *vlen);
void store_snap_close(struct store_snap *sn);

/* Counters for metrics. */
struct store_stats {
    uint64_t syncs;         /* fsync'd writes */
    uint64_t appends;       /* log entries appended */
    uint64_t bytes_written; /* log record bytes */
};
void store_get_stats(struct store *s, struct store_stats *out);

#endif
