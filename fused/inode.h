/* fused's inode table: FUSE node ids <-> znode paths, with the kernel's lookup counts. */
#ifndef ZKFS_FUSED_INODE_H
#define ZKFS_FUSED_INODE_H

#include "cache.h"
#include "client.h"

#include <stdint.h>
#include <sys/stat.h>
#include <uthash.h>

#define INODE_ROOT 1 /* FUSE_ROOT_ID */

/*
 * One kernel inode. A node id stands for one incarnation (czxid) of one znode shown as one
 * file type: when the znode at a path is replaced or turns from a file into a directory,
 * the path gets a new node id and the old one is "detached" (it keeps answering from its
 * last attributes, as an unlinked file does) until the kernel forgets it.
 */
struct inode {
    UT_hash_handle hh; /* by nodeid */
    UT_hash_handle hp; /* by path, while bound */
    uint64_t nodeid;
    char *path; /* where it is (bound) or was (detached) */
    int bound;
    uint64_t nlookup; /* references the kernel holds */
    int pins;         /* references fused holds (a replay in progress, an open handle) */
    int64_t czxid;
    int is_dir;
    int synthetic;     /* no znode behind it yet (a file in a sequential directory) */
    struct zc_stat st; /* the last attributes given to the kernel */
    struct blob *data; /* detached: the data it had, for the files still open on it */
    int commit_err;    /* a failed commit not yet reported by an fsync (positive errno) */
};

/* The data an inode had when it is detached (a new reference or NULL): an unlinked file
 * stays readable for whoever opened it, or looked it up just before. */
typedef struct blob *(*inode_data_cb)(void *arg, const char *path, int64_t czxid);

/* Called with fs->mu held. */
struct inodes {
    struct inode *by_id;
    struct inode *by_path;
    uint64_t next_id;
    inode_data_cb data_of;
    void *arg;
};

/* Creates the root inode (bound to "/", never forgotten). 0 or -ENOMEM. */
int inodes_init(struct inodes *in);
void inodes_close(struct inodes *in);

struct inode *inode_get(struct inodes *in, uint64_t nodeid);
/* The inode bound to path, or NULL. */
struct inode *inode_at(struct inodes *in, const char *path);
/*
 * The inode bound to path for this incarnation and file type (st, is_dir), made (and the
 * previous one detached) if needed; its attributes become st. NULL on ENOMEM.
 */
struct inode *inode_for(struct inodes *in, const char *path, const struct zc_stat *st, int is_dir);
/* A new detached inode standing for something the cluster does not have (now). */
struct inode *inode_new_detached(struct inodes *in, const char *path, const struct zc_stat *st,
                                 int is_dir, int synthetic);
void inode_detach(struct inodes *in, struct inode *ino);
/* Binds ino to path (detaching whatever was bound there), as a rename or a sequential
 * create does. 0 or -ENOMEM. */
int inode_bind(struct inodes *in, struct inode *ino, const char *path);
/* The kernel dropped n references. Returns 1 if the inode was freed; *was_bound_path (if not
 * NULL) then receives its malloc'd path when it was still bound (for the caller to let the
 * cache forget the node), else NULL. */
int inode_forget(struct inodes *in, struct inode *ino, uint64_t n, char **was_bound_path);
void inode_pin(struct inode *ino);
/* Drops a pin; frees the inode if nothing references it any more. */
void inode_unpin(struct inodes *in, struct inode *ino);

/* st_ino of a znode: its czxid, with a 16-bit hash of its path in the top bits (the nodes
 * one multi creates share a czxid). The same on every mount and machine. */
uint64_t inode_number(const char *path, int64_t czxid);

#endif
