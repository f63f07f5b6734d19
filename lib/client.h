/* The zkfs client library: one session with a cluster over the native protocol. */
#ifndef ZKFS_CLIENT_H
#define ZKFS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/*
 * A struct zc owns one session and one thread running a libuv loop that does all its I/O.
 * Every function here may be called from any thread. Requests are pipelined; replies come in
 * request order. Callbacks (request completions, events, state changes) run on the client
 * thread and must not block; they may submit further requests.
 *
 * Servers are a ZooKeeper connect string: "host:port,host:port[/chroot]". The client
 * connects to them in random order; when its connection fails it moves to the next one and
 * re-attaches the session (same id and password) as long as the session timeout allows,
 * then re-registers its watches. Requests in flight when a connection drops complete with
 * ZE_CONNECTIONLOSS; requests submitted while disconnected wait for a connection for at most
 * opts.request_timeout_ms (default: the session timeout) and then fail with
 * ZE_CONNECTIONLOSS. After the server declares the session expired every request fails with
 * ZE_SESSIONEXPIRED until zc_free.
 */
struct zc;

enum zc_state {
    ZC_CONNECTING = 0,
    ZC_CONNECTED = 3, /* ZooKeeper's SyncConnected */
    ZC_EXPIRED = -112,
    ZC_CLOSED = 7,
};

struct zc_stat {
    int64_t czxid, mzxid, ctime, mtime;
    int32_t version, cversion, aversion;
    int64_t ephemeral_owner;
    int32_t data_length, num_children;
    int64_t pzxid;
    uint32_t kind, policy; /* zkfs additions (NODE_KIND_*, POLICY_* of replica/txn.h) */
};

struct zc_acl {
    uint32_t perms;
    const char *scheme;
    const char *id;
};

/* A watch event; path is relative to the chroot. type/state are ZooKeeper's numbers. */
struct zc_event {
    int type;
    int state;
    const char *path;
    int64_t zxid;
};

typedef void (*zc_event_cb)(void *arg, const struct zc_event *ev);
typedef void (*zc_state_cb)(void *arg, enum zc_state state);

struct zc_opts {
    const char *servers;       /* copied */
    int session_timeout_ms;    /* requested; the server may clamp it */
    int request_timeout_ms;    /* 0: the session timeout */
    zc_event_cb on_event;      /* may be NULL */
    zc_state_cb on_state;      /* may be NULL */
    void *arg;
};

/* Creates the client and starts connecting. 0, or a negative code (ZE_BADARGUMENTS for a bad
 * server string). On failure nothing is left running. */
int zc_new(struct zc **out, const struct zc_opts *opts);
/* Waits until connected (0), the timeout passes (ZE_CONNECTIONLOSS), or the session expired. */
int zc_wait_connected(struct zc *c, int timeout_ms);
/* Closes the session (a closeSession request if connected, so ephemerals go at once), stops
 * the thread and frees everything. Callbacks of unfinished requests run with
 * ZE_CONNECTIONLOSS before it returns. */
void zc_free(struct zc *c);
/* Session id (0 before the first connect), negotiated timeout, and the current state. */
uint64_t zc_session_id(struct zc *c);
int zc_session_timeout(struct zc *c);
enum zc_state zc_get_state(struct zc *c);
/* "host:port" of the connected server, or "" (copied into buf). */
void zc_server(struct zc *c, char *buf, size_t len);

enum zc_op {
    ZC_OP_CREATE = 1,
    ZC_OP_DELETE,
    ZC_OP_SET_DATA,
    ZC_OP_GET_DATA,
    ZC_OP_EXISTS,
    ZC_OP_GET_CHILDREN,
    ZC_OP_SYNC,
    ZC_OP_CHECK, /* only inside a multi */
    ZC_OP_MULTI,
    ZC_OP_GET_ACL,
    ZC_OP_SET_ACL,
    ZC_OP_ADD_WATCH,
    ZC_OP_REMOVE_WATCHES,
    ZC_OP_SET_META,
    ZC_OP_GET_EPHEMERALS,
};

/* CreateMode numbers, as ZooKeeper's. */
enum {
    ZC_PERSISTENT = 0,
    ZC_EPHEMERAL = 1,
    ZC_PERSISTENT_SEQUENTIAL = 2,
    ZC_EPHEMERAL_SEQUENTIAL = 3,
    ZC_CONTAINER = 4,
    ZC_PERSISTENT_WITH_TTL = 5,
    ZC_PERSISTENT_SEQUENTIAL_WITH_TTL = 6,
};

/* A request. All pointers are borrowed for the duration of the submit call (copied). */
struct zc_req {
    enum zc_op op;
    const char *path; /* relative to the chroot */
    const uint8_t *data;
    size_t data_len;
    int32_t version; /* expected version for delete/set_data/check/set_acl; -1 = any */
    int mode;        /* create: ZC_PERSISTENT...; add_watch: 0 persistent, 1 recursive;
                        remove_watches: 1 children, 2 data, 3 any */
    int64_t ttl;     /* create with TTL modes */
    int watch;       /* get_data/exists/get_children: leave a one-shot watch */
    const struct zc_acl *acls; /* NULL: world:anyone:cdrwa */
    uint32_t n_acls;
    uint32_t kind, policy; /* create and set_meta (set_meta: policy set when has_policy) */
    int has_kind, has_policy;
    const struct zc_req *ops; /* multi */
    uint32_t n_ops;
};

struct zc_op_result {
    int err;
    const char *path; /* create: the path made (relative to the chroot) */
    struct zc_stat stat;
};

/* A reply. All pointers are owned by the library and valid during the callback only (or
 * until zc_result_free after zc_call). */
struct zc_result {
    int err;       /* 0 or a ZE_* code */
    int64_t zxid;  /* the server's zxid when it replied */
    struct zc_stat stat;
    int has_stat;
    const uint8_t *data;
    size_t data_len;
    const char *path;     /* create: the path made */
    const char **children; /* get_children: sorted names; get_ephemerals: paths */
    uint32_t n_children;
    const struct zc_acl *acls;
    uint32_t n_acls;
    const struct zc_op_result *results; /* multi */
    uint32_t n_results;
    void *priv_;
};

typedef void (*zc_cb)(void *arg, const struct zc_result *r);

/* Submits req; cb runs exactly once on the client thread if this returns 0, never if it
 * returns an error (ZE_BADARGUMENTS for an invalid path, ZE_SESSIONEXPIRED, -ENOMEM...). */
int zc_submit(struct zc *c, const struct zc_req *req, zc_cb cb, void *arg);
/* Synchronous form: fills *out (free with zc_result_free) and returns out->err. Must not be
 * called from the client thread. */
int zc_call(struct zc *c, const struct zc_req *req, struct zc_result *out);
void zc_result_free(struct zc_result *r);

#endif
