/* fused's watch events applied (replay thread): the cache is updated, the kernel's caches are
 * invalidated, and the change is replayed through the mount so that inotify reports it. */
#ifndef ZKFS_FUSED_APPLY_H
#define ZKFS_FUSED_APPLY_H

#include <stdint.h>

struct fs;

/*
 * One watch event (type EV_*), in zxid order. Events for the mount's own writes (recognised
 * with the own-write snapshot taken when the event arrived) only move the cache's clock;
 * events already reflected by a resync are skipped.
 */
void apply_event(struct fs *fs, int type, const char *path, int64_t zxid, uint64_t snapshot);

/*
 * After a reconnection or a new session, when events may have been lost: compares every cached
 * node with the cluster and applies the differences as events (deletes deepest first, then
 * creates, data and metadata changes).
 */
void apply_resync(struct fs *fs);

#endif
