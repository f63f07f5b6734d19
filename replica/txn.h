/* Transactions as plain C structs, and their record encoding (proto/record.proto Txn). */
#ifndef ZKFS_TXN_H
#define ZKFS_TXN_H

#include "policy.h"

#include <stddef.h>
#include <stdint.h>

typedef uint64_t zxid_t;

#define ZXID(epoch, counter) (((zxid_t)(epoch) << 32) | (uint32_t)(counter))
#define ZXID_EPOCH(z) ((uint32_t)((z) >> 32))
#define ZXID_COUNTER(z) ((uint32_t)(z))

/* zkfs node kinds and directory policy bits (stored with the node, see DESIGN §2). */
enum { NODE_KIND_UNSET = 0, NODE_KIND_FILE = 1, NODE_KIND_DIR = 2 };

/* ephemeralOwner encodings, as ZooKeeper's EphemeralType. */
#define EPHEMERAL_CONTAINER ((int64_t)INT64_MIN)
#define EPHEMERAL_TTL_MASK 0xff00000000000000ULL
#define EPHEMERAL_TTL_MAX 0x000000ffffffffffULL /* ZooKeeper's extended-type TTL bound */
static inline int ephemeral_is_ttl(int64_t owner)
{
    return owner != EPHEMERAL_CONTAINER &&
           ((uint64_t)owner & EPHEMERAL_TTL_MASK) == EPHEMERAL_TTL_MASK;
}
static inline int ephemeral_is_session(int64_t owner)
{
    return owner != 0 && owner != EPHEMERAL_CONTAINER && !ephemeral_is_ttl(owner);
}

enum txn_op_type {
    TXN_CREATE = 1,
    TXN_DELETE = 2,
    TXN_SET_DATA = 3,
    TXN_SET_ACL = 4,
    TXN_SET_META = 5,
    TXN_CREATE_SESSION = 6,
    TXN_CLOSE_SESSION = 7,
};

struct acl {
    uint32_t perms;
    char *scheme;
    char *id;
};

#define PASSWD_LEN 16

/*
 * One change. Which fields matter depends on type:
 *  CREATE: path, data, acls, ephemeral_owner, parent_cversion (the parent's cversion after
 *          the create), kind, policy.
 *  DELETE: path.
 *  SET_DATA: path, data, version (the node's version after the change).
 *  SET_ACL: path, acls, version (the node's aversion after the change).
 *  SET_META: path, kind, policy.
 *  CREATE_SESSION: session_id, timeout_ms, passwd.
 *  CLOSE_SESSION: session_id (the session's ephemerals are deleted by DELETE ops placed
 *          before it in the same txn).
 */
struct txn_op {
    enum txn_op_type type;
    char *path;
    uint8_t *data;
    uint32_t data_len;
    struct acl *acls;
    uint32_t n_acls;
    int64_t ephemeral_owner;
    int32_t parent_cversion;
    int32_t version;
    uint32_t kind;
    uint32_t policy;
    uint64_t session_id;
    int32_t timeout_ms;
    uint8_t passwd[PASSWD_LEN];
};

/* A transaction: all ops share one zxid and are applied all together. */
struct txn {
    zxid_t zxid;
    int64_t time_ms;
    uint64_t session_id;
    uint32_t n_ops;
    struct txn_op *ops;
    uint32_t origin; /* server the client's request came in on (0: the server itself) */
    uint64_t cxid;   /* that server's id for the request */
};

/* Encodes t; *buf is malloc'd and owned by the caller. 0 or -ENOMEM. */
int txn_encode(const struct txn *t, uint8_t **buf, size_t *len);
/* Decodes into t (whose contents the caller frees with txn_free_contents). 0 or
 * ZE_MARSHALLINGERROR for bytes that are not a valid Txn record. */
int txn_decode(const uint8_t *buf, size_t len, struct txn *t);
/* Frees everything t points to (not t itself); safe on a zeroed txn. */
void txn_free_contents(struct txn *t);
/* A protobuf-c allocator pair whose allocator_data is an int set to 1 when malloc fails:
 * protobuf-c's unpack returns NULL both for bad bytes and for ENOMEM, and a corrupt record
 * must not be confused with an allocation failure. */
void *txn_oom_alloc(void *data, size_t size);
void txn_oom_free(void *data, void *p);

/* Deep-copies acls (n of them); NULL on ENOMEM (or when n is 0). */
struct acl *acl_dup(const struct acl *acls, uint32_t n);
void acl_free(struct acl *acls, uint32_t n);

#endif
