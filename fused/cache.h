/* fused's node cache: what the mount knows of each znode (Stat, data, children), by path. */
#ifndef ZKFS_FUSED_CACHE_H
#define ZKFS_FUSED_CACHE_H

#include "client.h"

#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

/* Immutable, reference-counted bytes: a znode's data shared by the cache, open handles and
 * replies in flight. */
struct blob {
    int refs; /* atomic */
    uint32_t len;
    uint8_t bytes[];
};

/* A copy of data (len may be 0); NULL on ENOMEM. */
struct blob *blob_new(const void *data, size_t len);
struct blob *blob_ref(struct blob *b);
void blob_unref(struct blob *b);

struct child {
    UT_hash_handle hh;
    char name[];
};

/*
 * One znode. Every field is valid "as of" a zxid: asof for the Stat and data, children_asof
 * for the child set. Information older than what the node already holds is never installed,
 * so replies and watch events, which reach the cache from different threads, can arrive in
 * any order without taking the cache back in time.
 */
struct node {
    UT_hash_handle hh;
    char *path;
    struct zc_stat st;
    int64_t asof;
    struct blob *data; /* NULL: not fetched */
    struct child *children;
    uint32_t n_children;
    int has_children; /* the child set is known */
    int64_t children_asof;
};

/*
 * All nodes by path, and seen_zxid: the zxid of the last watch event (or resync) applied.
 * A fetch answered at a zxid below seen_zxid may predate an event already applied and must
 * not be installed (cache_fresh). Every function here is called with fs->mu held.
 */
struct cache {
    struct node *nodes;
    size_t n_nodes;
    int64_t seen_zxid;
};

void cache_init(struct cache *c);
void cache_close(struct cache *c);

/* A znode is shown as a directory if it was made by mkdir or has children (DESIGN §3). */
int node_is_dir(const struct node *n);
int stat_is_dir(const struct zc_stat *st);

struct node *cache_get(struct cache *c, const char *path);
/* 1 if a fetch answered at reply_zxid may be installed. */
int cache_fresh(const struct cache *c, int64_t reply_zxid);

/*
 * Installs what was read (or written) as of zxid asof: the Stat, and the data if data is not
 * NULL (a new reference is taken). A newer incarnation (higher czxid) replaces the node; an
 * older one is ignored. Adds the name to the parent's child set. Returns the node (possibly
 * unchanged when the information was older), or NULL on ENOMEM.
 */
struct node *cache_put(struct cache *c, const char *path, const struct zc_stat *st,
                       struct blob *data, int64_t asof);
/* Installs the child set (names borrowed, copied) read as of asof. 0 or -ENOMEM. */
int cache_put_children(struct cache *c, struct node *n, const char *const *names, uint32_t count,
                       int64_t asof);
/* Forgets the node at path (no-op if absent). */
void cache_drop(struct cache *c, const char *path);
/*
 * A node was deleted at zxid: removes it unless the cache already holds something newer
 * (a later incarnation), and removes the name from the parent's child set. Returns 1 if the
 * node was removed (or absent).
 */
int cache_deleted(struct cache *c, const char *path, int64_t zxid);
/* A child was created (add=1) or deleted (add=0) under parent at zxid: updates the set and
 * numChildren if they are older than zxid. */
void cache_child_changed(struct cache *c, const char *parent, const char *name, int add,
                         int64_t zxid);
int cache_has_child(const struct node *n, const char *name);

/* Every cached path (malloc'd strings in a malloc'd array), for a resync. */
char **cache_paths(struct cache *c, size_t *count);

#endif
