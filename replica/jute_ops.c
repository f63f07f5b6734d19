/* Replies and watch notifications for jute (ZooKeeper wire protocol) clients: the response
 * record each opcode gets (FinalRequestProcessor), multi results (MultiResponse), the
 * ConnectResponse. Reads run now, when the request reaches the head of its queue. */
#include "jute.h"

#include "acl.h"
#include "conn.h"
#include "err.h"
#include "read.h"
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define STATE_SYNC_CONNECTED 3 /* Watcher.Event.KeeperState */

int jute_encode_event(int type, const char *path, int64_t zxid, uint8_t **buf, size_t *len)
{
    struct jute_out o;
    jute_out_init(&o);
    /* ReplyHeader{xid -1, zxid, 0} + WatcherEvent{type, state, path} */
    jute_put_int(&o, JUTE_XID_NOTIFICATION);
    jute_put_long(&o, zxid);
    jute_put_int(&o, 0);
    jute_put_int(&o, type);
    jute_put_int(&o, STATE_SYNC_CONNECTED);
    jute_put_string(&o, path);
    return jute_out_finish(&o, buf, len);
}

static void put_header(struct jute_out *o, int32_t xid, zxid_t zxid, int err)
{
    jute_put_int(o, xid);
    jute_put_long(o, (int64_t)zxid);
    jute_put_int(o, err_to_zk(err));
}

static void put_names(struct jute_out *o, const char *const *names, uint32_t n)
{
    jute_put_int(o, (int32_t)n);
    for (uint32_t i = 0; i < n; i++)
        jute_put_string(o, names[i]);
}

/* GetACLResponse{acl, stat}. Without ADMIN the digest ids are shown as "user:x", as
 * ZooKeeper's getACL does (FinalRequestProcessor). */
static void put_acl_reply(struct jute_out *o, struct conn *c, const struct node *n)
{
    int admin = acl_check(n->acls, n->n_acls, PERM_ADMIN, &c->auth) == 0;
    jute_put_int(o, (int32_t)n->n_acls);
    for (uint32_t i = 0; i < n->n_acls; i++) {
        const struct acl *a = &n->acls[i];
        jute_put_int(o, (int32_t)a->perms);
        jute_put_string(o, a->scheme);
        const char *colon = strchr(a->id, ':');
        if (admin || strcmp(a->scheme, "digest") || !colon) {
            jute_put_string(o, a->id);
            continue;
        }
        size_t user = (size_t)(colon - a->id);
        char *masked = malloc(user + 3);
        if (!masked) {
            o->oom = 1;
            return;
        }
        memcpy(masked, a->id, user);
        memcpy(masked + user, ":x", 3);
        jute_put_string(o, masked);
        free(masked);
    }
    jute_put_stat(o, &n->stat);
}

/* WhoAmIResponse: one ClientInfo{authScheme, user} per id the connection holds; the user of a
 * digest id is its name (AuthUtil.getClientInfos). */
static void put_who_am_i(struct jute_out *o, struct conn *c)
{
    jute_put_int(o, (int32_t)c->auth.n);
    for (uint32_t i = 0; i < c->auth.n; i++) {
        const struct auth_id *id = &c->auth.ids[i];
        jute_put_string(o, id->scheme);
        const char *colon = strcmp(id->scheme, "digest") ? NULL : strchr(id->id, ':');
        jute_put_buffer(o, (const uint8_t *)id->id,
                        colon ? (size_t)(colon - id->id) : strlen(id->id));
    }
}

/* The body of a successful read's reply. */
static void put_read_body(struct jute_out *o, struct conn *c, const struct req_op_args *a,
                          const struct read_result *rd)
{
    const struct node *n = rd->node;
    switch (a->op) {
    case REQ_GET_DATA:
        jute_put_buffer(o, n->data, (size_t)n->stat.data_length);
        jute_put_stat(o, &n->stat);
        break;
    case REQ_EXISTS:
        jute_put_stat(o, &n->stat);
        break;
    case REQ_GET_CHILDREN:
        put_names(o, rd->names, rd->n_names);
        if (a->wire_op == JUTE_OP_GET_CHILDREN2)
            jute_put_stat(o, &n->stat);
        break;
    case REQ_GET_ACL:
        put_acl_reply(o, c, n);
        break;
    case REQ_GET_EPHEMERALS:
        put_names(o, rd->names, rd->n_names);
        break;
    case REQ_GET_ALL_CHILDREN_NUMBER:
        jute_put_int(o, (int32_t)rd->count);
        break;
    case REQ_ADD_WATCH:
        jute_put_int(o, 0); /* ErrorResponse{0} */
        break;
    case REQ_WHO_AM_I:
        put_who_am_i(o, c);
        break;
    default: /* ping, auth, setWatches, checkWatches, removeWatches: header only */
        break;
    }
}

static void put_multi_header(struct jute_out *o, int32_t type, int done, int32_t err)
{
    jute_put_int(o, type);
    jute_put_bool(o, done);
    jute_put_int(o, err);
}

static void put_error_result(struct jute_out *o, int err)
{
    int zk = err_to_zk(err);
    put_multi_header(o, JUTE_OP_ERROR, 0, zk);
    jute_put_int(o, zk); /* ErrorResponse */
}

/* multiRead: each op answered on its own, an error as an ErrorResult (FinalRequestProcessor). */
static int put_multi_read(struct jute_out *o, struct conn *c, struct request *r)
{
    for (uint32_t i = 0; i < r->n_ops; i++) {
        const struct req_op_args *a = &r->ops[i];
        struct read_result rd;
        int rc = read_run(c, r, a, &rd);
        if (rc)
            return rc;
        if (rd.err) {
            put_error_result(o, rd.err);
        } else {
            put_multi_header(o, a->wire_op, 0, 0);
            put_read_body(o, c, a, &rd);
        }
        read_result_free(&rd);
    }
    put_multi_header(o, -1, 1, -1);
    return 0;
}

static int is_create2(int32_t wire_op)
{
    return wire_op == JUTE_OP_CREATE2 || wire_op == JUTE_OP_CREATE_CONTAINER ||
           wire_op == JUTE_OP_CREATE_TTL;
}

/* MultiResponse: a result per op, then MultiHeader{-1, true, -1}. A multi that failed has an
 * ErrorResult for every op (0 before the failed one, RUNTIMEINCONSISTENCY after it), and the
 * reply header then still says OK, so that clients get the per-op errors. */
static void put_multi(struct jute_out *o, const struct request *r)
{
    for (uint32_t i = 0; i < r->n_results && i < r->n_ops; i++) {
        const struct req_op_args *a = &r->ops[i];
        const struct req_result *x = &r->results[i];
        if (r->err) {
            put_error_result(o, x->err);
            continue;
        }
        put_multi_header(o, a->wire_op, 0, 0);
        switch (a->op) {
        case REQ_CREATE:
            jute_put_string(o, x->path);
            if (is_create2(a->wire_op))
                jute_put_stat(o, &x->stat);
            break;
        case REQ_SET_DATA:
            jute_put_stat(o, &x->stat);
            break;
        default: /* delete, check */
            break;
        }
    }
    put_multi_header(o, -1, 1, -1);
}

/* The body of a successful write's reply. */
static void put_write_body(struct jute_out *o, struct conn *c, const struct request *r)
{
    const struct req_op_args *a = &r->args;
    const struct req_result *x = r->n_results ? &r->results[0] : NULL;
    static const struct zstat zero;
    switch (a->op) {
    case REQ_CREATE:
        jute_put_string(o, x ? x->path : a->path);
        if (is_create2(a->wire_op))
            jute_put_stat(o, x ? &x->stat : &zero);
        break;
    case REQ_SET_DATA:
    case REQ_SET_ACL:
        jute_put_stat(o, x && x->has_stat ? &x->stat : &zero);
        break;
    case REQ_CHECK: {
        /* SetDataResponse with the node's stat */
        const struct node *n = tree_get(&c->srv->tree, a->path);
        jute_put_stat(o, n ? &n->stat : &zero);
        break;
    }
    case REQ_SYNC:
        jute_put_string(o, a->path);
        break;
    default: /* delete, closeSession */
        break;
    }
}

/* ConnectResponse{protocolVersion, timeOut, sessionId, passwd[, readOnly]}: a refused session
 * gets timeOut 0, sessionId 0 and a zero password (ZooKeeperServer.finishSessionInit). */
static void put_connect(struct jute_out *o, struct conn *c, const struct request *r)
{
    static const uint8_t zero[PASSWD_LEN];
    int ok = r->err == 0;
    jute_put_int(o, 0);
    jute_put_int(o, ok ? r->timeout_ms : 0);
    jute_put_long(o, ok ? (int64_t)r->session_id : 0);
    jute_put_buffer(o, ok && r->has_passwd ? r->passwd : zero, PASSWD_LEN);
    if (c->jute.readonly_field)
        jute_put_bool(o, 0);
}

int jute_encode_reply(struct conn *c, struct request *r, uint8_t **buf, size_t *len,
                      int *close_after)
{
    struct server *s = c->srv;
    const struct req_op_args *a = &r->args;
    struct jute_out o;
    int rc = 0;
    *close_after = 0;
    jute_out_init(&o);
    if (a->op == REQ_CONNECT) {
        put_connect(&o, c, r);
        *close_after = r->err != 0;
        return jute_out_finish(&o, buf, len);
    }
    if (!r->done) {
        zxid_t zxid = s->tree.last_applied;
        r->zxid = zxid;
        if (a->op == REQ_MULTI_READ) {
            put_header(&o, r->xid, zxid, 0);
            rc = put_multi_read(&o, c, r);
        } else {
            struct read_result rd;
            if ((rc = read_run(c, r, a, &rd)) == 0) {
                put_header(&o, r->xid, zxid, rd.err);
                if (!rd.err)
                    put_read_body(&o, c, a, &rd);
                *close_after = a->op == REQ_UNKNOWN;
                read_result_free(&rd);
            }
        }
    } else {
        zxid_t zxid = r->zxid ? r->zxid : s->tree.last_applied;
        if (a->op == REQ_MULTI && (r->err == 0 || r->n_results > 0)) {
            put_header(&o, r->xid, zxid, 0);
            put_multi(&o, r);
        } else {
            put_header(&o, r->xid, zxid, r->err);
            if (!r->err)
                put_write_body(&o, c, r);
        }
        /* a failed auth is answered, then the connection closes (processPacket) */
        *close_after = a->op == REQ_CLOSE_SESSION || (a->op == REQ_AUTH && r->err);
    }
    if (rc) {
        free(o.buf);
        return rc;
    }
    return jute_out_finish(&o, buf, len);
}
