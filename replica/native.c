/* The native protocol codec: protobuf Request frames in, ServerMessage frames out. Reads are
 * answered straight from the tree while encoding, so the bytes sent are the committed state
 * at the moment the read reached the head of its connection's queue. */
#include "conn.h"

#include "cluster.h"

#include "client.pb-c.h"
#include "err.h"
#include "frame.h"
#include "read.h"
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- decoding ---- */

static int copy_str(const char *in, char **out)
{
    if (!in)
        return ZE_MARSHALLINGERROR;
    return (*out = strdup(in)) ? 0 : -ENOMEM;
}

static int copy_data(const ProtobufCBinaryData *d, int has, struct req_op_args *a)
{
    if (!has || d->len == 0)
        return 0;
    if (d->len > UINT32_MAX)
        return ZE_BADARGUMENTS;
    if (!(a->data = malloc(d->len)))
        return -ENOMEM;
    memcpy(a->data, d->data, d->len);
    a->data_len = (uint32_t)d->len;
    return 0;
}

static int copy_acls(Zkfs__Cli__Acl **in, size_t n, struct req_op_args *a)
{
    if (n == 0)
        return 0;
    if (n > 1024)
        return ZE_BADARGUMENTS;
    if (!(a->acls = calloc(n, sizeof(*a->acls))))
        return -ENOMEM;
    a->n_acls = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        a->acls[i].perms = in[i]->perms;
        if (!(a->acls[i].scheme = strdup(in[i]->scheme)) || !(a->acls[i].id = strdup(in[i]->id)))
            return -ENOMEM;
    }
    return 0;
}

static int decode_create(const Zkfs__Cli__CreateRequest *m, struct req_op_args *a)
{
    a->op = REQ_CREATE;
    a->mode = m->has_mode ? m->mode : 0;
    a->ttl = m->has_ttl ? m->ttl : 0;
    a->kind = m->has_kind ? m->kind : 0;
    a->policy = m->has_policy ? m->policy : 0;
    a->has_kind = m->has_kind;
    a->has_policy = m->has_policy;
    int rc = copy_str(m->path, &a->path);
    if (!rc)
        rc = copy_data(&m->data, m->has_data, a);
    if (!rc)
        rc = copy_acls(m->acl, m->n_acl, a);
    return rc;
}

static int decode_delete(const Zkfs__Cli__DeleteRequest *m, struct req_op_args *a)
{
    a->op = REQ_DELETE;
    a->version = m->has_version ? m->version : -1;
    return copy_str(m->path, &a->path);
}

static int decode_set_data(const Zkfs__Cli__SetDataRequest *m, struct req_op_args *a)
{
    a->op = REQ_SET_DATA;
    a->version = m->has_version ? m->version : -1;
    int rc = copy_str(m->path, &a->path);
    return rc ? rc : copy_data(&m->data, m->has_data, a);
}

static int decode_check(const Zkfs__Cli__CheckRequest *m, struct req_op_args *a)
{
    a->op = REQ_CHECK;
    a->version = m->has_version ? m->version : -1;
    return copy_str(m->path, &a->path);
}

static int decode_path(const Zkfs__Cli__PathRequest *m, enum req_op op, struct req_op_args *a)
{
    a->op = op;
    a->watch = m->has_watch && m->watch;
    return copy_str(m->path, &a->path);
}

#define MAX_MULTI_OPS 10000
#define MAX_SET_WATCHES 100000

static int decode_multi(const Zkfs__Cli__MultiRequest *m, struct request *r)
{
    r->args.op = REQ_MULTI;
    if (m->n_ops > MAX_MULTI_OPS)
        return ZE_BADARGUMENTS;
    if (m->n_ops == 0)
        return 0;
    if (!(r->ops = calloc(m->n_ops, sizeof(*r->ops))))
        return -ENOMEM;
    r->n_ops = (uint32_t)m->n_ops;
    for (size_t i = 0; i < m->n_ops; i++) {
        const Zkfs__Cli__Op *op = m->ops[i];
        int rc;
        switch (op->op_case) {
        case ZKFS__CLI__OP__OP_CREATE:
            rc = decode_create(op->create, &r->ops[i]);
            break;
        case ZKFS__CLI__OP__OP_DELETE:
            rc = decode_delete(op->delete_, &r->ops[i]);
            break;
        case ZKFS__CLI__OP__OP_SET_DATA:
            rc = decode_set_data(op->set_data, &r->ops[i]);
            break;
        case ZKFS__CLI__OP__OP_CHECK:
            rc = decode_check(op->check, &r->ops[i]);
            break;
        default:
            rc = ZE_MARSHALLINGERROR;
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int copy_list(char **in, size_t n, char ***out, uint32_t *n_out)
{
    if (n == 0)
        return 0;
    if (n > MAX_SET_WATCHES)
        return ZE_BADARGUMENTS;
    if (!(*out = calloc(n, sizeof(**out))))
        return -ENOMEM;
    *n_out = (uint32_t)n;
    for (size_t i = 0; i < n; i++)
        if (!((*out)[i] = strdup(in[i])))
            return -ENOMEM;
    return 0;
}

static int decode_op(const Zkfs__Cli__Request *m, struct request *r)
{
    struct req_op_args *a = &r->args;
    switch (m->op_case) {
    case ZKFS__CLI__REQUEST__OP_CONNECT: {
        const Zkfs__Cli__ConnectRequest *c = m->connect;
        a->op = REQ_CONNECT;
        r->last_zxid_seen = c->last_zxid_seen;
        r->timeout_ms = c->timeout_ms;
        r->session_id = c->has_session_id ? c->session_id : 0;
        if (c->has_passwd) {
            if (c->passwd.len != PASSWD_LEN)
                return ZE_MARSHALLINGERROR;
            memcpy(r->passwd, c->passwd.data, PASSWD_LEN);
            r->has_passwd = 1;
        }
        return 0;
    }
    case ZKFS__CLI__REQUEST__OP_CREATE:
        return decode_create(m->create, a);
    case ZKFS__CLI__REQUEST__OP_DELETE:
        return decode_delete(m->delete_, a);
    case ZKFS__CLI__REQUEST__OP_SET_DATA:
        return decode_set_data(m->set_data, a);
    case ZKFS__CLI__REQUEST__OP_GET_DATA:
        return decode_path(m->get_data, REQ_GET_DATA, a);
    case ZKFS__CLI__REQUEST__OP_EXISTS:
        return decode_path(m->exists, REQ_EXISTS, a);
    case ZKFS__CLI__REQUEST__OP_GET_CHILDREN:
        return decode_path(m->get_children, REQ_GET_CHILDREN, a);
    case ZKFS__CLI__REQUEST__OP_SYNC:
        return decode_path(m->sync, REQ_SYNC, a);
    case ZKFS__CLI__REQUEST__OP_MULTI:
        return decode_multi(m->multi, r);
    case ZKFS__CLI__REQUEST__OP_GET_ACL:
        return decode_path(m->get_acl, REQ_GET_ACL, a);
    case ZKFS__CLI__REQUEST__OP_SET_ACL:
        a->op = REQ_SET_ACL;
        a->version = m->set_acl->has_version ? m->set_acl->version : -1;
        if (copy_str(m->set_acl->path, &a->path))
            return -ENOMEM;
        return copy_acls(m->set_acl->acl, m->set_acl->n_acl, a);
    case ZKFS__CLI__REQUEST__OP_ADD_WATCH:
        a->op = REQ_ADD_WATCH;
        a->mode = m->add_watch->mode;
        return copy_str(m->add_watch->path, &a->path);
    case ZKFS__CLI__REQUEST__OP_REMOVE_WATCHES:
        a->op = REQ_REMOVE_WATCHES;
        a->mode = m->remove_watches->type;
        return copy_str(m->remove_watches->path, &a->path);
    case ZKFS__CLI__REQUEST__OP_SET_META:
        a->op = REQ_SET_META;
        a->has_kind = m->set_meta->has_kind;
        a->kind = m->set_meta->kind;
        a->has_policy = m->set_meta->has_policy;
        a->policy = m->set_meta->policy;
        return copy_str(m->set_meta->path, &a->path);
    case ZKFS__CLI__REQUEST__OP_SERVER_INFO:
        a->op = REQ_SERVER_INFO;
        return 0;
    case ZKFS__CLI__REQUEST__OP_PING:
        a->op = REQ_PING;
        return 0;
    case ZKFS__CLI__REQUEST__OP_CLOSE:
        a->op = REQ_CLOSE_SESSION;
        return 0;
    case ZKFS__CLI__REQUEST__OP_AUTH:
        a->op = REQ_AUTH;
        if (copy_str(m->auth->scheme, &a->path))
            return -ENOMEM;
        return copy_data(&m->auth->auth, 1, a);
    case ZKFS__CLI__REQUEST__OP_GET_EPHEMERALS:
        return decode_path(m->get_ephemerals, REQ_GET_EPHEMERALS, a);
    case ZKFS__CLI__REQUEST__OP_SET_WATCHES: {
        const Zkfs__Cli__SetWatchesRequest *w = m->set_watches;
        a->op = REQ_SET_WATCHES;
        r->relative_zxid = w->relative_zxid;
        int rc =
            copy_list(w->data_watches, w->n_data_watches, &r->watch_paths[0], &r->n_watch_paths[0]);
        if (!rc)
            rc = copy_list(w->exist_watches, w->n_exist_watches, &r->watch_paths[1],
                           &r->n_watch_paths[1]);
        if (!rc)
            rc = copy_list(w->child_watches, w->n_child_watches, &r->watch_paths[2],
                           &r->n_watch_paths[2]);
        if (!rc)
            rc = copy_list(w->persistent_watches, w->n_persistent_watches, &r->watch_paths[3],
                           &r->n_watch_paths[3]);
        if (!rc)
            rc = copy_list(w->persistent_recursive_watches, w->n_persistent_recursive_watches,
                           &r->watch_paths[4], &r->n_watch_paths[4]);
        return rc;
    }
    default:
        return ZE_MARSHALLINGERROR;
    }
}

/* A request whose strings were cut at a NUL: its paths become "" so that it is answered with
 * BADARGUMENTS as ZooKeeper would; with no path to blame, it is refused as malformed. */
static int poison_paths(struct request *r)
{
    int any = 0;
    if (r->args.path) {
        r->args.path[0] = 0;
        any = 1;
    }
    for (uint32_t i = 0; i < r->n_ops; i++)
        if (r->ops[i].path) {
            r->ops[i].path[0] = 0;
            any = 1;
        }
    return any ? 0 : ZE_MARSHALLINGERROR;
}

int native_decode(struct server *s, const uint8_t *buf, size_t len, struct request **out)
{
    (void)s;
    *out = NULL;
    Zkfs__Cli__Request *m = zkfs__cli__request__unpack(NULL, len, buf);
    if (!m)
        return ZE_MARSHALLINGERROR;
    /* protobuf-c hands string fields over NUL-terminated, so "/a\0b" would arrive as "/a" and
     * act on another node. Such a string re-encodes shorter than it came. */
    int cut = zkfs__cli__request__get_packed_size(m) != len;
    struct request *r = request_new();
    int rc = r ? 0 : -ENOMEM;
    if (r) {
        r->xid = m->xid;
        rc = decode_op(m, r);
    }
    zkfs__cli__request__free_unpacked(m, NULL);
    if (rc == 0 && cut)
        rc = poison_paths(r);
    if (rc) {
        request_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---- encoding ---- */

static void fill_stat(Zkfs__Cli__Stat *out, const struct zstat *st, uint32_t kind, uint32_t policy)
{
    zkfs__cli__stat__init(out);
    out->czxid = st->czxid;
    out->mzxid = st->mzxid;
    out->ctime = st->ctime;
    out->mtime = st->mtime;
    out->version = st->version;
    out->cversion = st->cversion;
    out->aversion = st->aversion;
    out->ephemeral_owner = st->ephemeral_owner;
    out->data_length = st->data_length;
    out->num_children = st->num_children;
    out->pzxid = st->pzxid;
    out->has_kind = out->has_policy = 1;
    out->kind = kind;
    out->policy = policy;
}

static int pack(const Zkfs__Cli__ServerMessage *msg, uint8_t **buf, size_t *len)
{
    size_t n = zkfs__cli__server_message__get_packed_size(msg);
    uint8_t *b = malloc(n + 4);
    if (!b)
        return -ENOMEM;
    frame_put_u32(b, (uint32_t)n);
    zkfs__cli__server_message__pack(msg, b + 4);
    *buf = b;
    *len = n + 4;
    return 0;
}

int native_encode_event(int type, const char *path, int64_t zxid, uint8_t **buf, size_t *len)
{
    Zkfs__Cli__WatchEvent ev = ZKFS__CLI__WATCH_EVENT__INIT;
    ev.type = type;
    ev.state = 3; /* SyncConnected */
    ev.path = (char *)path;
    ev.zxid = zxid;
    Zkfs__Cli__ServerMessage msg = ZKFS__CLI__SERVER_MESSAGE__INIT;
    msg.msg_case = ZKFS__CLI__SERVER_MESSAGE__MSG_EVENT;
    msg.event = &ev;
    return pack(&msg, buf, len);
}

static void server_info(struct server *s, Zkfs__Cli__ServerInfo *info)
{
    info->id = s->cfg.myid;
    info->sessions = session_count(&s->sessions);
    info->znodes = tree_count(&s->tree);
    info->applied = s->tree.last_applied;
    if (!s->cluster) {
        info->role = "standalone";
        info->serving = 1;
        info->epoch = s->epoch;
        info->last_zxid = s->last_zxid > s->tree.last_applied ? s->last_zxid : s->tree.last_applied;
        return;
    }
    struct zab_status st;
    cluster_status(s->cluster, &st);
    info->role = (char *)cluster_role_name(s->cluster);
    info->serving = st.serving;
    info->epoch = st.epoch;
    info->last_zxid = st.last_zxid;
    info->leader = st.leader;
    info->synced_learners = (uint32_t)st.synced_learners;
}

int native_encode_reply(struct conn *c, struct request *r, uint8_t **buf, size_t *len)
{
    struct server *s = c->srv;
    Zkfs__Cli__Reply rep = ZKFS__CLI__REPLY__INIT;
    Zkfs__Cli__Stat stat;
    Zkfs__Cli__ConnectResponse cr = ZKFS__CLI__CONNECT_RESPONSE__INIT;
    Zkfs__Cli__Acl *acl_msgs = NULL, **acl_ptrs = NULL;
    Zkfs__Cli__OpResult *res_msgs = NULL, **res_ptrs = NULL;
    Zkfs__Cli__Stat *res_stats = NULL;
    struct read_result rd = {0};
    int rc = 0;
    rep.xid = r->xid;
    int err = r->done ? r->err : 0;
    zxid_t zxid = r->done && r->zxid ? r->zxid : s->tree.last_applied;
    const struct req_op_args *a = &r->args;
    const struct node *n = NULL;

    Zkfs__Cli__ServerInfo info = ZKFS__CLI__SERVER_INFO__INIT;
    if (!r->done && a->op == REQ_SERVER_INFO) {
        server_info(s, &info);
        rep.info = &info;
        goto reply;
    }
    if (!r->done) {
        /* a read, run now */
        if ((rc = read_run(c, r, a, &rd)))
            goto out;
        err = rd.err;
        n = rd.node;
        if (err)
            goto reply;
        if (n) {
            fill_stat(&stat, &n->stat, n->kind, n->policy);
            rep.stat = &stat;
        }
        if (a->op == REQ_GET_DATA && n->stat.data_length > 0) {
            rep.has_data = 1;
            rep.data.data = n->data;
            rep.data.len = (size_t)n->stat.data_length;
        } else if (a->op == REQ_GET_CHILDREN || a->op == REQ_GET_EPHEMERALS) {
            rep.children = (char **)rd.names;
            rep.n_children = rd.n_names;
        } else if (a->op == REQ_GET_ACL && n->n_acls) {
            acl_msgs = calloc(n->n_acls, sizeof(*acl_msgs));
            acl_ptrs = calloc(n->n_acls, sizeof(*acl_ptrs));
            if (!acl_msgs || !acl_ptrs) {
                rc = -ENOMEM;
                goto out;
            }
            for (uint32_t i = 0; i < n->n_acls; i++) {
                zkfs__cli__acl__init(&acl_msgs[i]);
                acl_msgs[i].perms = n->acls[i].perms;
                acl_msgs[i].scheme = n->acls[i].scheme;
                acl_msgs[i].id = n->acls[i].id;
                acl_ptrs[i] = &acl_msgs[i];
            }
            rep.acl = acl_ptrs;
            rep.n_acl = n->n_acls;
        }
        goto reply;
    }

    /* a finished write */
    if (a->op == REQ_CONNECT) {
        cr.timeout_ms = err ? 0 : r->timeout_ms;
        cr.session_id = err ? 0 : r->session_id;
        cr.passwd.data = r->passwd;
        cr.passwd.len = r->has_passwd && !err ? PASSWD_LEN : 0;
        cr.has_server_id = 1;
        cr.server_id = s->cfg.myid;
        rep.connect = &cr;
    } else if (a->op == REQ_SYNC) {
        rep.path = a->path;
    } else if (a->op == REQ_MULTI) {
        uint32_t k = r->n_results;
        res_msgs = calloc(k + 1, sizeof(*res_msgs));
        res_ptrs = calloc(k + 1, sizeof(*res_ptrs));
        res_stats = calloc(k + 1, sizeof(*res_stats));
        if (!res_msgs || !res_ptrs || !res_stats) {
            rc = -ENOMEM;
            goto out;
        }
        for (uint32_t i = 0; i < k; i++) {
            const struct req_result *x = &r->results[i];
            zkfs__cli__op_result__init(&res_msgs[i]);
            res_msgs[i].err = err_to_zk(x->err);
            res_msgs[i].path = x->path;
            if (x->has_stat && !err) {
                fill_stat(&res_stats[i], &x->stat, r->ops[i].kind, r->ops[i].policy);
                res_msgs[i].stat = &res_stats[i];
            }
            res_ptrs[i] = &res_msgs[i];
        }
        rep.results = res_ptrs;
        rep.n_results = k;
    } else if (!err && r->n_results > 0) {
        const struct req_result *x = &r->results[0];
        rep.path = x->path;
        if (x->has_stat) {
            uint32_t kind = a->op == REQ_SET_META ? x->kind : a->kind;
            uint32_t policy = a->op == REQ_SET_META ? x->policy : a->policy;
            if (a->op == REQ_SET_DATA || a->op == REQ_SET_ACL) {
                const struct node *cur = tree_get(&s->tree, a->path);
                kind = cur ? cur->kind : 0;
                policy = cur ? cur->policy : 0;
            }
            fill_stat(&stat, &x->stat, kind, policy);
            rep.stat = &stat;
        }
    }
reply:
    rep.err = err_to_zk(err);
    rep.zxid = (int64_t)zxid;
    r->zxid = zxid;
    {
        Zkfs__Cli__ServerMessage msg = ZKFS__CLI__SERVER_MESSAGE__INIT;
        msg.msg_case = ZKFS__CLI__SERVER_MESSAGE__MSG_REPLY;
        msg.reply = &rep;
        rc = pack(&msg, buf, len);
    }
out:
    read_result_free(&rd);
    free(acl_msgs);
    free(acl_ptrs);
    free(res_msgs);
    free(res_ptrs);
    free(res_stats);
    return rc;
}
