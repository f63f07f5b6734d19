/* A client request as the replica's pipeline sees it, whatever protocol it came in on. */
#ifndef ZKFS_REQUEST_H
#define ZKFS_REQUEST_H

#include "tree.h"
#include "txn.h"

#include <stdint.h>

enum req_op {
    REQ_CONNECT = 1,
    REQ_CREATE,
    REQ_DELETE,
    REQ_SET_DATA,
    REQ_CHECK,
    REQ_MULTI,
    REQ_SET_ACL,
    REQ_SET_META,
    REQ_CLOSE_SESSION,
    REQ_EXPIRE_SESSION,   /* internal: the session tracker's expiry */
    REQ_DELETE_CONTAINER, /* internal: an empty container or an expired TTL node */
    REQ_SYNC,
    /* reads: served from the tree when they reach the head of their connection's queue */
    REQ_GET_DATA,
    REQ_EXISTS,
    REQ_GET_CHILDREN,
    REQ_GET_ACL,
    REQ_GET_EPHEMERALS,
    REQ_ADD_WATCH,
    REQ_REMOVE_WATCHES,
    REQ_SET_WATCHES,
    REQ_PING,
    REQ_AUTH,
    REQ_SERVER_INFO, /* native only: what this replica says of itself; no session needed */
    REQ_CHECK_WATCHES,
    REQ_GET_ALL_CHILDREN_NUMBER,
    REQ_WHO_AM_I,
    REQ_MULTI_READ, /* ops: get_data / get_children, each answered on its own */
    REQ_RECONFIG,   /* answered RECONFIGDISABLED */
    REQ_UNKNOWN,    /* an opcode the server does not know: UNIMPLEMENTED */
};

static inline int req_is_write(enum req_op op)
{
    return op >= REQ_CREATE && op <= REQ_SYNC;
}

/* One operation of a request; a multi has several, other requests one. */
struct req_op_args {
    enum req_op op;
    int32_t wire_op; /* the ZooKeeper opcode a jute client sent (create vs create2...); 0 for
                        the native protocol */
    char *path;
    uint8_t *data;
    uint32_t data_len;
    int32_t version; /* expected version, -1 = any */
    int mode; /* create: CreateMode; add_watch: 0/1; remove/check_watches: WatcherType 1..5 */
    int64_t ttl;
    int watch;
    struct acl *acls;
    uint32_t n_acls;
    uint32_t kind, policy;
    int has_kind, has_policy;
};

struct conn;
struct auth_info;

/* Result of one op, filled when the request completes. */
struct req_result {
    int err;
    char *path; /* create: the created path (owned) */
    struct zstat stat;
    uint32_t kind, policy;
    int has_stat;
};

struct request {
    struct conn *conn; /* NULL for internal requests; cleared if the connection goes away */
    const struct auth_info *auth; /* the connection's ids, valid while it is prepared or read;
                                     NULL for the server's own requests (no ACL checks) */
    int32_t xid;
    uint64_t session_id;
    struct req_op_args args; /* the op itself (for a multi: op = REQ_MULTI) */
    struct req_op_args *ops; /* multi's ops */
    uint32_t n_ops;
    /* connect */
    int64_t last_zxid_seen;
    int32_t timeout_ms;
    uint8_t passwd[PASSWD_LEN];
    int has_passwd;
    /* set_watches */
    int64_t relative_zxid;
    char **watch_paths[5]; /* data, exist, child, persistent, recursive */
    uint32_t n_watch_paths[5];
    /* completion */
    int submitted; /* handed to server_submit: the server owns it until done */
    int done;
    int err;
    zxid_t zxid;
    struct req_result *results; /* one per op (n_ops, or 1) */
    uint32_t n_results;
    struct request *next; /* in the connection's queue */
    uint32_t wire_len;    /* size of the frame it came in, for the connection's memory bound */
    uint64_t start_us;
};

struct request *request_new(void);
void request_free(struct request *r);
void req_op_args_free(struct req_op_args *a);

#endif
