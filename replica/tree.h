/* The in-memory znode tree: ZooKeeper's data model, applied one committed txn at a time. */
#ifndef ZKFS_TREE_H
#define ZKFS_TREE_H

#include "txn.h"

#include <stdint.h>
#include <uthash.h>

/* ZooKeeper's Stat; data_length and num_children are kept current by the tree. */
struct zstat {
    int64_t czxid;
    int64_t mzxid;
    int64_t ctime;
    int64_t mtime;
    int32_t version;
    int32_t cversion;
    int32_t aversion;
    int64_t ephemeral_owner;
    int32_t data_length;
    int32_t num_children;
    int64_t pzxid;
};

/* One allocation holds the node and its path. At a million znodes every byte here counts a
 * megabyte: keep fields ordered so that the struct has no holes. */
struct node {
    struct zstat stat;
    uint8_t *data; /* owned; stat.data_length bytes, NULL when empty */
    /* Read-only, shared by every node with the same list (the tree's ACL cache); NULL when
     * n_acls is 0. Copy it (acl_dup) to keep it past the next tree_apply. */
    struct acl *acls;
    struct node *parent;
    struct node *children;   /* uthash head, hashed by name through hh_child */
    UT_hash_handle hh;       /* in tree->nodes, by path */
    UT_hash_handle hh_child; /* in parent->children, by name (the last component of path) */
    uint32_t n_acls;
    uint32_t kind;   /* NODE_KIND_* */
    uint32_t policy; /* POLICY_* bits */
    char path[];     /* full path, "/" for the root */
};

struct tree_session {
    uint64_t id;
    int32_t timeout_ms;
    uint8_t passwd[PASSWD_LEN];
    struct tree_ephemeral *ephemerals; /* uthash set of this session's ephemeral nodes */
    UT_hash_handle hh;
};

struct tree_ephemeral {
    struct node *node;
    UT_hash_handle hh; /* keyed by the node pointer */
};

struct tree {
    struct node *nodes; /* uthash by path; always holds "/" */
    struct node *root;
    struct tree_session *sessions; /* uthash by id: sessions made durable by txns */
    struct tree_acl *acl_cache;    /* uthash of the distinct ACL lists nodes point to */
    zxid_t last_applied;
    uint64_t data_bytes; /* sum of data lengths plus path lengths, for mntr */
    /* While loading (tree_load_node): the node with the greatest path so far, the last node
     * loaded, and how many loaded nodes wait for a parent that came later */
    struct node *load_max, *load_prev;
    size_t load_unlinked;
};

/* Creates the empty tree (just "/", world:anyone ACL). 0 or -ENOMEM. */
int tree_init(struct tree *t);
void tree_close(struct tree *t);

/* Borrowed pointers valid until the next tree_apply or tree_close; NULL if absent. */
struct node *tree_get(const struct tree *t, const char *path);
struct tree_session *tree_session_get(const struct tree *t, uint64_t id);

/*
 * Applies a committed transaction, which the request pipeline has already validated against
 * the tree. Stat rules as ZooKeeper's: create sets czxid=mzxid=pzxid=zxid, ctime=mtime=time,
 * increments the parent's numChildren and sets its cversion to op->parent_cversion and its
 * pzxid to zxid; delete decrements numChildren and sets the parent's pzxid (cversion is not
 * changed by deletes); setData sets mzxid, mtime, version=op->version; setACL sets aversion.
 * Returns 0, or ZE_DATAINCONSISTENCY if the txn does not fit the tree (a bug or a corrupt
 * log, or a zxid not above last_applied: the caller must stop), leaving the tree as it was
 * before the txn. Updates
 * last_applied. Ops are applied in order, so a txn may create /a and then /a/b.
 */
int tree_apply(struct tree *t, const struct txn *txn);

/* Sorted, NULL-terminated array of borrowed child names of n (malloc'd array: free() it). */
const char **tree_children_sorted(const struct node *n, uint32_t *count);

/* Serializes n as a record.proto Node (the value of the tree column family). */
int tree_node_encode(const struct node *n, uint8_t **buf, size_t *len);
/* Loading from the store, into a tree fresh from tree_init: adds the node at path from a Node
 * record. Nodes may come in any order; call tree_load_finish once all are added to link the
 * remaining parents, recount children and the session ephemeral sets. The store's order (paths
 * sorted bytewise, so every parent before its children) is the fast one: a path above every
 * path so far needs no duplicate lookup, and its parent is the previous node or one of its
 * ancestors. ZE_MARSHALLINGERROR for a bad record, ZE_DATAINCONSISTENCY for a path loaded
 * twice or a node that has no parent after loading. */
int tree_load_node(struct tree *t, const char *path, const uint8_t *buf, size_t len);
int tree_load_session(struct tree *t, const uint8_t *buf, size_t len);
int tree_load_finish(struct tree *t);
/* Serializes a session as a record.proto Session. */
int tree_session_encode(const struct tree_session *s, uint8_t **buf, size_t *len);

/* Number of nodes, including "/". */
uint32_t tree_count(const struct tree *t);
/* Number of distinct ACL lists the nodes share (ZooKeeper's ReferenceCountedACLCache). */
uint32_t tree_acl_count(const struct tree *t);
/* Number of nodes with a session as ephemeral owner. */
uint32_t tree_ephemeral_count(const struct tree *t);

/* A digest of the whole tree (paths, data, stats, acls, sessions): equal trees, equal digests. */
uint64_t tree_digest(const struct tree *t);

#endif
