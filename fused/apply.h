/* fused's watch events applied (replay thread): the cache is updated, the kernel's caches are
 * invalidated, and the change is replayed through the mount so that inotify reports it. */
#ifndef ZKFS_FUSED_APPLY_H
#define ZKFS_FUSED_APPLY_H

#include <stdint.h>

struct fs;

struct zk_fetch;

/*
 * One watch event (type EV_*), in zxid order. Events for the mount's own writes (recognised
 * with the own-write snapshot taken when the event arrived) only move the cache's clock;
 * events already reflected by a resync are skipped. pre: the node as read after the event
 * arrived, with the op apply_fetch_op gave (borrowed; the caller clears it), or NULL: then it
 * is read here if needed.
 */
void apply_event(struct fs *fs, int type, const char *path, int64_t zxid, uint64_t snapshot,
                 struct zk_fetch *pre);

/*
 * The read apply_event will want for this event (ZC_OP_GET_DATA or ZC_OP_EXISTS), or 0 if it
 * will likely want none (nothing the kernel knows is concerned): the replay thread starts it
 * ahead, while it applies the events before. *size receives the node's data size as cached,
 * or stays as it is if not cached. Takes fs->mu.
 */
int apply_fetch_op(struct fs *fs, int type, const char *path, int64_t zxid, int64_t *size);

/*
 * After a reconnection or a new session, when events may have been lost: compares every cached
 * node with the cluster and applies the differences as events (deletes deepest first, then
 * creates, data and metadata changes).
 */
void apply_resync(struct fs *fs);

#endif
