/* The jute record encoding (BinaryInputArchive/BinaryOutputArchive) and the decoding of
 * ZooKeeper client requests into the pipeline's plain C requests. Every length and count is
 * checked against what is left of the frame, and counts against fixed limits, before any
 * allocation: a hostile frame costs at most a small multiple of its own size. */
#include "jute.h"

#include "err.h"
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading ---- */

void jute_in_init(struct jute_in *in, const uint8_t *buf, size_t len)
{
    in->p = buf;
    in->left = len;
    in->err = 0;
    in->cut = 0;
}

static const uint8_t *take(struct jute_in *in, size_t n)
{
    if (in->err || in->left < n) {
        in->err = ZE_MARSHALLINGERROR;
        return NULL;
    }
    const uint8_t *p = in->p;
    in->p += n;
    in->left -= n;
    return p;
}

int32_t jute_get_int(struct jute_in *in)
{
    const uint8_t *p = take(in, 4);
    return p ? (int32_t)frame_get_u32(p) : 0;
}

int64_t jute_get_long(struct jute_in *in)
{
    const uint8_t *p = take(in, 8);
    return p ? (int64_t)frame_get_u64(p) : 0;
}

int jute_get_bool(struct jute_in *in)
{
    const uint8_t *p = take(in, 1);
    return p ? *p != 0 : 0;
}

/* A length prefix: -1 is null (0 here); any other negative length, or one longer than what is
 * left, is malformed. */
static int get_len(struct jute_in *in, uint32_t *len)
{
    int32_t n = jute_get_int(in);
    *len = 0;
    if (in->err)
        return in->err;
    if (n == -1)
        return 0;
    if (n < 0 || (size_t)n > in->left)
        return in->err = ZE_MARSHALLINGERROR;
    *len = (uint32_t)n;
    return 0;
}

int jute_get_string(struct jute_in *in, char **out)
{
    uint32_t n;
    *out = NULL;
    int rc = get_len(in, &n);
    if (rc)
        return rc;
    const uint8_t *p = take(in, n);
    if (memchr(p, 0, n)) {
        in->cut = 1;
        n = 0;
    }
    if (!(*out = malloc((size_t)n + 1)))
        return -ENOMEM;
    memcpy(*out, p, n);
    (*out)[n] = 0;
    return 0;
}

int jute_get_buffer(struct jute_in *in, uint8_t **out, uint32_t *len)
{
    uint32_t n;
    *out = NULL;
    *len = 0;
    int rc = get_len(in, &n);
    if (rc || n == 0)
        return rc;
    const uint8_t *p = take(in, n);
    if (!(*out = malloc(n)))
        return -ENOMEM;
    memcpy(*out, p, n);
    *len = n;
    return 0;
}

int jute_get_count(struct jute_in *in, uint32_t min_size, uint32_t max, uint32_t *count)
{
    int32_t n = jute_get_int(in);
    *count = 0;
    if (in->err)
        return in->err;
    if (n == -1)
        return 0;
    if (n < 0 || (uint32_t)n > max || (uint64_t)(uint32_t)n * min_size > in->left)
        return in->err = ZE_MARSHALLINGERROR;
    *count = (uint32_t)n;
    return 0;
}

/* ---- writing ---- */

void jute_out_init(struct jute_out *o)
{
    o->cap = 256;
    o->buf = malloc(o->cap);
    o->len = 4;
    o->oom = o->buf == NULL;
}

static uint8_t *room(struct jute_out *o, size_t n)
{
    if (o->oom)
        return NULL;
    if (o->len + n > o->cap) {
        size_t cap = o->cap;
        while (cap < o->len + n)
            cap *= 2;
        uint8_t *b = realloc(o->buf, cap);
        if (!b) {
            o->oom = 1;
            return NULL;
        }
        o->buf = b;
        o->cap = cap;
    }
    uint8_t *p = o->buf + o->len;
    o->len += n;
    return p;
}

void jute_put_int(struct jute_out *o, int32_t v)
{
    uint8_t *p = room(o, 4);
    if (p)
        frame_put_u32(p, (uint32_t)v);
}

void jute_put_long(struct jute_out *o, int64_t v)
{
    uint8_t *p = room(o, 8);
    if (p)
        frame_put_u64(p, (uint64_t)v);
}

void jute_put_bool(struct jute_out *o, int v)
{
    uint8_t *p = room(o, 1);
    if (p)
        *p = v ? 1 : 0;
}

void jute_put_buffer(struct jute_out *o, const uint8_t *data, size_t n)
{
    if (n > INT32_MAX) {
        o->oom = 1;
        return;
    }
    jute_put_int(o, (int32_t)n);
    uint8_t *p = n ? room(o, n) : NULL;
    if (p)
        memcpy(p, data, n);
}

void jute_put_string(struct jute_out *o, const char *s)
{
    if (!s)
        jute_put_int(o, -1);
    else
        jute_put_buffer(o, (const uint8_t *)s, strlen(s));
}

void jute_put_stat(struct jute_out *o, const struct zstat *st)
{
    jute_put_long(o, st->czxid);
    jute_put_long(o, st->mzxid);
    jute_put_long(o, st->ctime);
    jute_put_long(o, st->mtime);
    jute_put_int(o, st->version);
    jute_put_int(o, st->cversion);
    jute_put_int(o, st->aversion);
    jute_put_long(o, st->ephemeral_owner);
    jute_put_int(o, st->data_length);
    jute_put_int(o, st->num_children);
    jute_put_long(o, st->pzxid);
}

int jute_out_finish(struct jute_out *o, uint8_t **buf, size_t *len)
{
    if (o->oom || o->len - 4 > UINT32_MAX) {
        free(o->buf);
        o->buf = NULL;
        return -ENOMEM;
    }
    frame_put_u32(o->buf, (uint32_t)(o->len - 4));
    *buf = o->buf;
    *len = o->len;
    o->buf = NULL;
    return 0;
}

/* ---- requests ---- */

/* The smallest encodings, for checking counts against what is left of the frame. */
#define MIN_STRING 4u
#define MIN_ACL 12u         /* int perms, ustring scheme, ustring id */
#define MIN_MULTI_HEADER 9u /* int type, bool done, int err */

static int get_acls(struct jute_in *in, struct req_op_args *a)
{
    uint32_t n;
    int rc = jute_get_count(in, MIN_ACL, JUTE_MAX_ACLS, &n);
    if (rc || n == 0)
        return rc;
    if (!(a->acls = calloc(n, sizeof(*a->acls))))
        return -ENOMEM;
    a->n_acls = n;
    for (uint32_t i = 0; i < n; i++) {
        a->acls[i].perms = (uint32_t)jute_get_int(in);
        if ((rc = jute_get_string(in, &a->acls[i].scheme)) ||
            (rc = jute_get_string(in, &a->acls[i].id)))
            return rc;
    }
    return 0;
}

/* create, create2, createContainer (CreateRequest) and createTTL (CreateTTLRequest). The
 * opcode decides the node type as in PrepRequestProcessor: createContainer needs the
 * CONTAINER flag, createTTL a TTL flag; anything else gets mode -1, i.e. BADARGUMENTS. */
static int get_create(struct jute_in *in, int32_t type, struct req_op_args *a)
{
    a->op = REQ_CREATE;
    int rc = jute_get_string(in, &a->path);
    if (!rc)
        rc = jute_get_buffer(in, &a->data, &a->data_len);
    if (!rc)
        rc = get_acls(in, a);
    if (rc)
        return rc;
    a->mode = jute_get_int(in);
    if (type == JUTE_OP_CREATE_TTL) {
        a->ttl = jute_get_long(in);
        if (a->mode != 5 && a->mode != 6)
            a->mode = -1;
    } else if (type == JUTE_OP_CREATE_CONTAINER && a->mode != 4) {
        a->mode = -1;
    }
    return in->err;
}

static int get_path_version(struct jute_in *in, enum req_op op, struct req_op_args *a)
{
    a->op = op;
    int rc = jute_get_string(in, &a->path);
    a->version = jute_get_int(in);
    return rc ? rc : in->err;
}

static int get_set_data(struct jute_in *in, struct req_op_args *a)
{
    a->op = REQ_SET_DATA;
    int rc = jute_get_string(in, &a->path);
    if (!rc)
        rc = jute_get_buffer(in, &a->data, &a->data_len);
    a->version = jute_get_int(in);
    return rc ? rc : in->err;
}

static int get_path_watch(struct jute_in *in, enum req_op op, struct req_op_args *a)
{
    a->op = op;
    int rc = jute_get_string(in, &a->path);
    a->watch = jute_get_bool(in);
    return rc ? rc : in->err;
}

static int get_path_int(struct jute_in *in, enum req_op op, struct req_op_args *a)
{
    a->op = op;
    int rc = jute_get_string(in, &a->path);
    a->mode = jute_get_int(in);
    return rc ? rc : in->err;
}

static int get_path_only(struct jute_in *in, enum req_op op, struct req_op_args *a)
{
    a->op = op;
    return jute_get_string(in, &a->path);
}

/* One op of a multi (write ops) or a multiRead (getData/getChildren), by its MultiHeader type
 * (MultiOperationRecord). Another type is malformed, as ZooKeeper's "Invalid type of op". */
static int get_multi_op(struct jute_in *in, int32_t type, int reads, struct req_op_args *a)
{
    a->wire_op = type;
    if (reads) {
        if (type == JUTE_OP_GET_DATA)
            return get_path_watch(in, REQ_GET_DATA, a);
        if (type == JUTE_OP_GET_CHILDREN)
            return get_path_watch(in, REQ_GET_CHILDREN, a);
        return in->err = ZE_MARSHALLINGERROR;
    }
    switch (type) {
    case JUTE_OP_CREATE:
    case JUTE_OP_CREATE2:
    case JUTE_OP_CREATE_CONTAINER:
    case JUTE_OP_CREATE_TTL:
        return get_create(in, type, a);
    case JUTE_OP_DELETE:
        return get_path_version(in, REQ_DELETE, a);
    case JUTE_OP_SET_DATA:
        return get_set_data(in, a);
    case JUTE_OP_CHECK:
        return get_path_version(in, REQ_CHECK, a);
    default:
        return in->err = ZE_MARSHALLINGERROR;
    }
}

/* MultiRequest: MultiHeader{type, done, err} + op, until a header with done set. */
static int get_multi(struct jute_in *in, struct request *r, int reads)
{
    uint32_t cap = 0;
    for (;;) {
        if (in->left < MIN_MULTI_HEADER)
            return in->err = ZE_MARSHALLINGERROR;
        int32_t type = jute_get_int(in);
        int done = jute_get_bool(in);
        (void)jute_get_int(in);
        if (done)
            return 0;
        if (r->n_ops >= JUTE_MAX_MULTI_OPS)
            return in->err = ZE_MARSHALLINGERROR;
        if (r->n_ops == cap) {
            cap = cap ? cap * 2 : 8;
            struct req_op_args *ops = realloc(r->ops, cap * sizeof(*ops));
            if (!ops)
                return -ENOMEM;
            r->ops = ops;
        }
        struct req_op_args *a = &r->ops[r->n_ops++];
        memset(a, 0, sizeof(*a));
        int rc = get_multi_op(in, type, reads, a);
        if (rc)
            return rc;
    }
}

/* SetWatches (3 lists) or SetWatches2 (5): relativeZxid, then data, exist, child,
 * persistent and persistent-recursive paths. */
static int get_set_watches(struct jute_in *in, struct request *r, int lists)
{
    r->args.op = REQ_SET_WATCHES;
    r->relative_zxid = jute_get_long(in);
    uint32_t total = 0;
    for (int k = 0; k < lists; k++) {
        uint32_t n;
        int rc = jute_get_count(in, MIN_STRING, JUTE_MAX_WATCHES - total, &n);
        if (rc)
            return rc;
        total += n;
        if (n == 0)
            continue;
        if (!(r->watch_paths[k] = calloc(n, sizeof(char *))))
            return -ENOMEM;
        for (uint32_t i = 0; i < n; i++) {
            r->n_watch_paths[k] = i + 1;
            if ((rc = jute_get_string(in, &r->watch_paths[k][i])))
                return rc;
        }
    }
    return 0;
}

/* ReconfigRequest{joiningServers, leavingServers, newMembers, curConfigId}: read to check
 * the frame, then answered RECONFIGDISABLED. */
static int get_reconfig(struct jute_in *in, struct request *r)
{
    r->args.op = REQ_RECONFIG;
    for (int i = 0; i < 3; i++) {
        char *s;
        int rc = jute_get_string(in, &s);
        free(s);
        if (rc)
            return rc;
    }
    (void)jute_get_long(in);
    return in->err;
}

static int get_body(struct jute_in *in, int32_t type, struct request *r)
{
    struct req_op_args *a = &r->args;
    switch (type) {
    case JUTE_OP_CREATE:
    case JUTE_OP_CREATE2:
    case JUTE_OP_CREATE_CONTAINER:
    case JUTE_OP_CREATE_TTL:
        return get_create(in, type, a);
    case JUTE_OP_DELETE:
        return get_path_version(in, REQ_DELETE, a);
    case JUTE_OP_EXISTS:
        return get_path_watch(in, REQ_EXISTS, a);
    case JUTE_OP_GET_DATA:
        return get_path_watch(in, REQ_GET_DATA, a);
    case JUTE_OP_SET_DATA:
        return get_set_data(in, a);
    case JUTE_OP_GET_ACL:
        return get_path_only(in, REQ_GET_ACL, a);
    case JUTE_OP_SET_ACL: {
        a->op = REQ_SET_ACL;
        int rc = jute_get_string(in, &a->path);
        if (!rc)
            rc = get_acls(in, a);
        a->version = jute_get_int(in);
        return rc ? rc : in->err;
    }
    case JUTE_OP_GET_CHILDREN:
    case JUTE_OP_GET_CHILDREN2:
        return get_path_watch(in, REQ_GET_CHILDREN, a);
    case JUTE_OP_SYNC:
        return get_path_only(in, REQ_SYNC, a);
    case JUTE_OP_PING:
        a->op = REQ_PING;
        return 0;
    case JUTE_OP_CHECK:
        return get_path_version(in, REQ_CHECK, a);
    case JUTE_OP_MULTI:
        a->op = REQ_MULTI;
        return get_multi(in, r, 0);
    case JUTE_OP_MULTI_READ:
        a->op = REQ_MULTI_READ;
        return get_multi(in, r, 1);
    case JUTE_OP_RECONFIG:
        return get_reconfig(in, r);
    case JUTE_OP_CHECK_WATCHES:
        return get_path_int(in, REQ_CHECK_WATCHES, a);
    case JUTE_OP_REMOVE_WATCHES:
        return get_path_int(in, REQ_REMOVE_WATCHES, a);
    case JUTE_OP_ADD_WATCH:
        return get_path_int(in, REQ_ADD_WATCH, a);
    case JUTE_OP_AUTH: {
        /* AuthPacket{type, scheme, auth}: the scheme travels in path, the credential in data */
        a->op = REQ_AUTH;
        (void)jute_get_int(in);
        int rc = jute_get_string(in, &a->path);
        if (!rc)
            rc = jute_get_buffer(in, &a->data, &a->data_len);
        return rc;
    }
    case JUTE_OP_SET_WATCHES:
        return get_set_watches(in, r, 3);
    case JUTE_OP_SET_WATCHES2:
        return get_set_watches(in, r, 5);
    case JUTE_OP_GET_EPHEMERALS:
        return get_path_only(in, REQ_GET_EPHEMERALS, a);
    case JUTE_OP_GET_ALL_CHILDREN_NUMBER:
        return get_path_only(in, REQ_GET_ALL_CHILDREN_NUMBER, a);
    case JUTE_OP_WHO_AM_I:
        a->op = REQ_WHO_AM_I;
        return 0;
    case JUTE_OP_CLOSE_SESSION:
        a->op = REQ_CLOSE_SESSION;
        return 0;
    default:
        /* sasl (no SASL here), deleteContainer and createSession (server-internal) too */
        a->op = REQ_UNKNOWN;
        return 0;
    }
}

int jute_decode(const uint8_t *buf, size_t len, struct request **out)
{
    struct jute_in in;
    *out = NULL;
    jute_in_init(&in, buf, len);
    struct request *r = request_new();
    if (!r)
        return -ENOMEM;
    r->xid = jute_get_int(&in);
    int32_t type = jute_get_int(&in);
    r->args.wire_op = type;
    int rc = in.err ? in.err : get_body(&in, type, r);
    if (rc == 0)
        rc = in.err;
    if (rc) {
        request_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int jute_decode_connect(const uint8_t *buf, size_t len, struct request **out, int *readonly_field)
{
    struct jute_in in;
    *out = NULL;
    *readonly_field = 0;
    jute_in_init(&in, buf, len);
    struct request *r = request_new();
    if (!r)
        return -ENOMEM;
    r->args.op = REQ_CONNECT;
    (void)jute_get_int(&in); /* protocolVersion: 0 for every client so far */
    r->last_zxid_seen = jute_get_long(&in);
    r->timeout_ms = jute_get_int(&in);
    r->session_id = (uint64_t)jute_get_long(&in);
    uint8_t *passwd;
    uint32_t plen;
    int rc = in.err ? in.err : jute_get_buffer(&in, &passwd, &plen);
    if (rc == 0 && plen == PASSWD_LEN) {
        memcpy(r->passwd, passwd, PASSWD_LEN);
        r->has_passwd = 1;
    }
    if (rc == 0) {
        free(passwd);
        /* readOnly came with ZooKeeper 3.4; older clients stop after passwd */
        if (in.left > 0) {
            (void)jute_get_bool(&in);
            *readonly_field = 1;
        }
    }
    if (rc) {
        request_free(r);
        return rc;
    }
    *out = r;
    return 0;
}
