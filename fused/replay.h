/* fused's replay thread: watch events become local inotify events by replaying each change
 * through the mount, and the handlers answer the replayed requests from the known state. */
#ifndef ZKFS_FUSED_REPLAY_H
#define ZKFS_FUSED_REPLAY_H

#include "client.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

struct fs;
struct sess;
struct rp_item;

/* zkfs / ZooKeeper watch event types. */
enum {
    EV_CREATED = 1,
    EV_DELETED = 2,
    EV_DATA = 3,
    EV_CHILDREN = 4,
    EV_META = 100,
};

/*
 * The change being replayed, answered from the state before it (pre-state) when the
 * replay thread's own requests ask: a LOOKUP of a created name says "no such entry", a
 * LOOKUP of a deleted one returns its old inode; the replayed MKNOD/MKDIR/UNLINK/RMDIR/RENAME
 * succeed without asking the cluster. Under fs->mu. Inodes named here are pinned.
 */
enum park_op { PARK_NONE, PARK_CREATE, PARK_DELETE, PARK_RENAME };
struct parked {
    enum park_op op;
    uint64_t parent, parent2; /* node ids of the directories (for the callers) */
    char *name, *name2;
    char *dir, *dir2; /* the directories' paths: requests are matched by them, the kernel may
                         have looked a directory up again under a new node id meanwhile */
    uint64_t ino;     /* CREATE: the entry to give; DELETE/RENAME: the source's old inode */
    uint64_t ino2;    /* RENAME: the target's old inode, or 0 if there was none */
    char *path2;      /* RENAME: the target's path */
};

struct replay {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rp_item *head, *tail;
    int stop;
    int started;
    pthread_t thread;
    pid_t tid;           /* the replay thread's id: its requests are recognised by it */
    int64_t resync_zxid; /* events up to here are reflected by the last resync */
    dev_t dev;           /* the mount's st_dev (0 until known) */
    int private_ns;      /* the thread replays through a private copy of the mount */
    int dirfd;           /* ... through this fd on its copy of the mount (-1 if none) */
    int minfo_fd;        /* the daemon's /proc/PID/mountinfo, to see the users unmount */
    int dropped;         /* the users unmounted: no more replays */
};

int replay_init(struct fs *fs);
/* Starts the thread. 0 or -errno. */
int replay_start(struct fs *fs);
/* Tells the thread to stop (no further replays start); replay_stop also joins it. Queued
 * work is dropped. */
void replay_stop_begin(struct fs *fs);
void replay_stop(struct fs *fs);
void replay_close(struct fs *fs);
/* 1 once replay_stop was called. */
int replay_stopping(struct fs *fs);

/* Client thread: a watch event, with the own-write snapshot taken when it arrived. */
void replay_on_event(struct fs *fs, struct sess *s, int type, const char *path, int64_t zxid,
                     uint64_t snapshot);
/* Client thread: the session's state changed (first: its first connection). */
void replay_on_state(struct fs *fs, struct sess *s, int state, int first);
/* Any thread: the kernel should drop what it caches of nodeid (off < 0: attributes only),
 * or the entry name in parent. Done later by the replay thread (never from a handler). */
void replay_queue_inval_inode(struct fs *fs, uint64_t nodeid, int64_t off);
void replay_queue_inval_entry(struct fs *fs, uint64_t parent, const char *name);

/* 1 if req comes from the replay thread. */
int replay_caller(struct fs *fs, fuse_req_t req);
/* Answers for the replay thread's requests (never contacting the cluster). */
void replay_lookup(struct fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
void replay_make(struct fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
void replay_remove(struct fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name);
void replay_rename(struct fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name,
                   fuse_ino_t newparent, const char *newname);

/* Used by apply.c (replay thread): the next queued event if it is a delete of the same zxid
 * (a rename's second half), removed from the queue; NULL otherwise. *path_out is malloc'd. */
int replay_take_delete(struct fs *fs, int64_t zxid, char **path_out);
/* Sets and clears the parked change (replay thread). */
void replay_park(struct fs *fs, const struct parked *p);
void replay_unpark(struct fs *fs);

#endif
