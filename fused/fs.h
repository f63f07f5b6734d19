/* zkfs-fused: the state every module shares (options, locks, tables) and small helpers. */
#ifndef ZKFS_FUSED_FS_H
#define ZKFS_FUSED_FS_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

#include "cache.h"
#include "inode.h"
#include "replay.h"
#include "sess.h"

#include "policy.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

/* zkfs node kinds (replica/txn.h NODE_KIND_*); policy bits are in policy.h. */
#define KIND_FILE 1
#define KIND_DIR 2

struct fs_opts {
    char *servers;    /* connect string, "host:port,...[/chroot]" */
    char *mountpoint; /* absolute */
    int session_timeout_ms;
    int op_timeout_ms; /* bounded wait for a server; default the session timeout */
    int sync_write;    /* commit at every write */
    int ro;            /* refuse every change (the kernel mount stays rw for replays) */
    unsigned max_data; /* znode data limit; EFBIG past it */
    double entry_timeout, attr_timeout;
    uid_t uid;
    gid_t gid;
    mode_t file_mode, dir_mode;
};

struct fs {
    struct fs_opts o;
    struct fuse_session *se;
    pthread_mutex_t mu; /* cache, inodes, parked */
    struct cache cache;
    struct inodes inodes;
    struct parked parked;
    struct sess_mgr sm;
    struct replay rp;
};

/* The one instance (set by main before the session starts). */
extern struct fs *the_fs;

int fs_init(struct fs *fs);
void fs_close(struct fs *fs);

/* parent + "/" + name, malloc'd ("/" + name under the root); NULL on ENOMEM. */
char *fs_child_path(const char *parent, const char *name);
/* The parent's path (malloc'd; NULL for "/"). */
char *fs_parent_path(const char *path);

/* Attributes of an inode, from its last Stat (under fs->mu). */
void fs_attr(const struct fs *fs, const struct inode *ino, struct stat *st);
/* Fills an entry reply for ino and counts the kernel's new reference (under fs->mu). */
void fs_entry(struct fs *fs, struct inode *ino, struct fuse_entry_param *e, double timeout);
/* A negative entry the kernel may cache for timeout seconds. */
void fs_negative(struct fuse_entry_param *e, double timeout);

/* Positive errno for a zkfs code (ZE_* or negative errno). */
int fs_errno(int code);
/* Replies with the error for code and logs the failure in one line (op, path, errno). */
void fs_fail(fuse_req_t req, const char *op, const char *path, int code);

/* The path of a node id (malloc'd; NULL if unknown); *bound says whether it still stands for
 * a znode there. */
char *fs_ino_path(struct fs *fs, fuse_ino_t nodeid, int *bound);
/* The Stat (and data, a new reference, if want_data) of the znode at path: from the cache, or
 * fetched (and cached) with the bounded wait. 0 or a ZE_* code. */
int fs_get_node(struct fs *fs, const char *path, int want_data, struct zc_stat *st,
                struct blob **data);

/* Installs a fetched node (under fs->mu), if fresh; returns the cached node or NULL. */
struct node *fs_install(struct fs *fs, const struct zk_fetch *f);

#endif
