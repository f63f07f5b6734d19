/* The peer protocol codec: protobuf-c messages never leave this file. */
#include "peer_msg.h"

#include "err.h"
#include "peer.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPS 10000
#define MAX_AUTH 64
#define MAX_ACLS 1024

static int pack(Zkfs__Peer__PeerMessage *m, uint8_t **buf, size_t *len)
{
    size_t n = zkfs__peer__peer_message__get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return -ENOMEM;
    zkfs__peer__peer_message__pack(m, b);
    *buf = b;
    *len = n;
    return 0;
}

int peer_encode_zab(const struct zab_msg *m, uint8_t **buf, size_t *len)
{
    Zkfs__Peer__Zab z = ZKFS__PEER__ZAB__INIT;
    Zkfs__Peer__Vote v = ZKFS__PEER__VOTE__INIT;
    z.type = (uint32_t)m->type;
    z.has_session = z.has_epoch = z.has_flags = z.has_zxid = z.has_zxid2 = 1;
    z.session = m->session;
    z.epoch = m->epoch;
    z.flags = m->flags;
    z.zxid = m->zxid;
    z.zxid2 = m->zxid2;
    if (m->len) {
        z.has_payload = 1;
        z.payload.data = (uint8_t *)m->payload;
        z.payload.len = m->len;
    }
    if (m->type == ZAB_MSG_VOTE) {
        v.leader = m->vote.leader;
        v.zxid = m->vote.zxid;
        v.round = m->vote.round;
        v.peer_epoch = m->vote.peer_epoch;
        v.state = (uint32_t)m->vote.state;
        z.vote = &v;
    }
    Zkfs__Peer__PeerMessage pm = ZKFS__PEER__PEER_MESSAGE__INIT;
    pm.msg_case = ZKFS__PEER__PEER_MESSAGE__MSG_ZAB;
    pm.zab = &z;
    return pack(&pm, buf, len);
}

static void fill_op(Zkfs__Peer__Op *o, Zkfs__Peer__Acl *acls, Zkfs__Peer__Acl **acl_ptrs,
                    const struct req_op_args *a)
{
    zkfs__peer__op__init(o);
    o->op = (uint32_t)a->op;
    if (a->path) {
        o->has_path = 1;
        o->path.data = (uint8_t *)a->path;
        o->path.len = strlen(a->path);
    }
    if (a->data_len) {
        o->has_data = 1;
        o->data.data = a->data;
        o->data.len = a->data_len;
    }
    o->has_version = o->has_mode = o->has_ttl = 1;
    o->version = a->version;
    o->mode = a->mode;
    o->ttl = a->ttl;
    for (uint32_t i = 0; i < a->n_acls; i++) {
        zkfs__peer__acl__init(&acls[i]);
        acls[i].perms = a->acls[i].perms;
        acls[i].scheme = a->acls[i].scheme;
        acls[i].id = a->acls[i].id;
        acl_ptrs[i] = &acls[i];
    }
    o->n_acl = a->n_acls;
    o->acl = acl_ptrs;
    /* create carries kind and policy always; set_meta only those it sets */
    o->has_kind = a->op == REQ_CREATE || a->has_kind;
    o->kind = a->kind;
    o->has_policy = a->op == REQ_CREATE || a->has_policy;
    o->policy = a->policy;
}

int peer_encode_forward(uint64_t cxid, const struct request *r, const struct auth_info *auth,
                        uint8_t **buf, size_t *len)
{
    const struct req_op_args *ops = r->args.op == REQ_MULTI ? r->ops : &r->args;
    size_t n = r->args.op == REQ_MULTI ? r->n_ops : 1, n_acls = 0;
    for (size_t i = 0; i < n; i++)
        n_acls += ops[i].n_acls;
    Zkfs__Peer__Op *o = calloc(n + 1, sizeof(*o));
    Zkfs__Peer__Op **optrs = calloc(n + 1, sizeof(*optrs));
    Zkfs__Peer__Acl *acls = calloc(n_acls + 1, sizeof(*acls));
    Zkfs__Peer__Acl **acl_ptrs = calloc(n_acls + 1, sizeof(*acl_ptrs));
    uint32_t n_auth = auth ? auth->n : 0;
    Zkfs__Peer__AuthId *ids = calloc(n_auth + 1, sizeof(*ids));
    Zkfs__Peer__AuthId **id_ptrs = calloc(n_auth + 1, sizeof(*id_ptrs));
    int rc = -ENOMEM;
    if (!o || !optrs || !acls || !acl_ptrs || !ids || !id_ptrs)
        goto out;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        fill_op(&o[i], acls + k, acl_ptrs + k, &ops[i]);
        k += ops[i].n_acls;
        optrs[i] = &o[i];
    }
    for (uint32_t i = 0; i < n_auth; i++) {
        zkfs__peer__auth_id__init(&ids[i]);
        ids[i].scheme = auth->ids[i].scheme;
        ids[i].id = auth->ids[i].id;
        id_ptrs[i] = &ids[i];
    }
    Zkfs__Peer__Forward f = ZKFS__PEER__FORWARD__INIT;
    f.cxid = cxid;
    f.session_id = r->session_id;
    f.op = (uint32_t)r->args.op;
    f.n_ops = r->args.op == REQ_CONNECT || r->args.op == REQ_CLOSE_SESSION ? 0 : n;
    f.ops = optrs;
    f.n_auth = n_auth;
    f.auth = id_ptrs;
    if (r->args.op == REQ_CONNECT) {
        f.has_timeout_ms = 1;
        f.timeout_ms = r->timeout_ms;
    }
    Zkfs__Peer__PeerMessage pm = ZKFS__PEER__PEER_MESSAGE__INIT;
    pm.msg_case = ZKFS__PEER__PEER_MESSAGE__MSG_FORWARD;
    pm.forward = &f;
    rc = pack(&pm, buf, len);
out:
    free(o);
    free(optrs);
    free(acls);
    free(acl_ptrs);
    free(ids);
    free(id_ptrs);
    return rc;
}

int peer_encode_forward_error(uint64_t cxid, const struct request *r, uint8_t **buf, size_t *len)
{
    Zkfs__Peer__ForwardError fe = ZKFS__PEER__FORWARD_ERROR__INIT;
    fe.cxid = cxid;
    fe.err = err_to_zk(r->err);
    int32_t *errs = NULL;
    if (r->args.op == REQ_MULTI && r->n_results) {
        errs = calloc(r->n_results, sizeof(*errs));
        if (!errs)
            return -ENOMEM;
        for (uint32_t i = 0; i < r->n_results; i++)
            errs[i] = err_to_zk(r->results[i].err);
        fe.n_op_errs = r->n_results;
        fe.op_errs = errs;
    }
    Zkfs__Peer__PeerMessage pm = ZKFS__PEER__PEER_MESSAGE__INIT;
    pm.msg_case = ZKFS__PEER__PEER_MESSAGE__MSG_FORWARD_ERROR;
    pm.forward_error = &fe;
    int rc = pack(&pm, buf, len);
    free(errs);
    return rc;
}

int peer_encode_sync_point(uint64_t cxid, zxid_t zxid, uint8_t **buf, size_t *len)
{
    Zkfs__Peer__SyncPoint sp = ZKFS__PEER__SYNC_POINT__INIT;
    sp.cxid = cxid;
    sp.zxid = zxid;
    Zkfs__Peer__PeerMessage pm = ZKFS__PEER__PEER_MESSAGE__INIT;
    pm.msg_case = ZKFS__PEER__PEER_MESSAGE__MSG_SYNC_POINT;
    pm.sync_point = &sp;
    return pack(&pm, buf, len);
}

int peer_encode_touch(const uint64_t *sessions, size_t n, uint8_t **buf, size_t *len)
{
    Zkfs__Peer__Touch t = ZKFS__PEER__TOUCH__INIT;
    t.sessions = (uint64_t *)sessions;
    t.n_sessions = n;
    Zkfs__Peer__PeerMessage pm = ZKFS__PEER__PEER_MESSAGE__INIT;
    pm.msg_case = ZKFS__PEER__PEER_MESSAGE__MSG_TOUCH;
    pm.touch = &t;
    return pack(&pm, buf, len);
}

int peer_encode_snap_chunk(const struct peer_snap_entry *e, size_t n, uint8_t **buf, size_t *len)
{
    ProtobufCBinaryData *v = calloc(2 * n + 2, sizeof(*v));
    if (!v)
        return -ENOMEM;
    size_t n_sess = 0;
    for (size_t i = 0; i < n; i++)
        n_sess += e[i].is_session != 0;
    /* nodes' keys and records, then sessions' keys and records, in one allocation */
    ProtobufCBinaryData *paths = v, *nodes = v + (n - n_sess), *skeys = v + 2 * (n - n_sess),
                        *sess = skeys + n_sess;
    size_t a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        ProtobufCBinaryData key = {e[i].key_len, (uint8_t *)e[i].key};
        ProtobufCBinaryData rec = {e[i].rec_len, (uint8_t *)e[i].rec};
        if (e[i].is_session) {
            skeys[b] = key;
            sess[b++] = rec;
        } else {
            paths[a] = key;
            nodes[a++] = rec;
        }
    }
    Zkfs__Peer__SnapChunk c = ZKFS__PEER__SNAP_CHUNK__INIT;
    c.n_paths = c.n_nodes = a;
    c.paths = paths;
    c.nodes = nodes;
    c.n_session_keys = c.n_sessions = b;
    c.session_keys = skeys;
    c.sessions = sess;
    Zkfs__Peer__PeerMessage pm = ZKFS__PEER__PEER_MESSAGE__INIT;
    pm.msg_case = ZKFS__PEER__PEER_MESSAGE__MSG_SNAP_CHUNK;
    pm.snap_chunk = &c;
    int rc = pack(&pm, buf, len);
    free(v);
    return rc;
}

int peer_encode_snap_end(zxid_t zxid, uint64_t count, uint8_t **buf, size_t *len)
{
    Zkfs__Peer__SnapEnd se = ZKFS__PEER__SNAP_END__INIT;
    se.zxid = zxid;
    se.count = count;
    Zkfs__Peer__PeerMessage pm = ZKFS__PEER__PEER_MESSAGE__INIT;
    pm.msg_case = ZKFS__PEER__PEER_MESSAGE__MSG_SNAP_END;
    pm.snap_end = &se;
    return pack(&pm, buf, len);
}

/* ---- decoding ---- */

/* A NUL-terminated copy of a path, refusing embedded NULs. */
static int copy_path(const ProtobufCBinaryData *b, int has, char **out)
{
    if (!has)
        return 0;
    if (memchr(b->data, 0, b->len))
        return ZE_MARSHALLINGERROR;
    char *s = malloc(b->len + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s, b->data, b->len);
    s[b->len] = 0;
    *out = s;
    return 0;
}

static int decode_op(const Zkfs__Peer__Op *o, struct req_op_args *a)
{
    a->op = (enum req_op)o->op;
    if (o->op < REQ_CREATE || o->op > REQ_SET_META || o->n_acl > MAX_ACLS)
        return ZE_MARSHALLINGERROR;
    int rc = copy_path(&o->path, o->has_path, &a->path);
    if (rc)
        return rc;
    if (o->has_data && o->data.len) {
        if (o->data.len > UINT32_MAX || !(a->data = malloc(o->data.len)))
            return -ENOMEM;
        memcpy(a->data, o->data.data, o->data.len);
        a->data_len = (uint32_t)o->data.len;
    }
    a->version = o->has_version ? o->version : -1;
    a->mode = o->mode;
    a->ttl = o->ttl;
    a->has_kind = o->has_kind;
    a->kind = o->kind;
    a->has_policy = o->has_policy;
    a->policy = o->policy;
    if (o->n_acl) {
        if (!(a->acls = calloc(o->n_acl, sizeof(*a->acls))))
            return -ENOMEM;
        a->n_acls = (uint32_t)o->n_acl;
        for (size_t i = 0; i < o->n_acl; i++) {
            a->acls[i].perms = o->acl[i]->perms;
            if (!(a->acls[i].scheme = strdup(o->acl[i]->scheme)) ||
                !(a->acls[i].id = strdup(o->acl[i]->id)))
                return -ENOMEM;
        }
    }
    return 0;
}

static int decode_forward(const Zkfs__Peer__Forward *f, struct peer_msg *out)
{
    if (f->n_ops > MAX_OPS || f->n_auth > MAX_AUTH)
        return ZE_MARSHALLINGERROR;
    struct request *r = request_new();
    if (!r)
        return -ENOMEM;
    out->req = r;
    out->cxid = f->cxid;
    r->session_id = f->session_id;
    r->args.op = (enum req_op)f->op;
    int rc = 0;
    switch (r->args.op) {
    case REQ_CONNECT:
        r->timeout_ms = f->has_timeout_ms ? f->timeout_ms : 0;
        break;
    case REQ_CLOSE_SESSION:
    case REQ_SYNC:
        break;
    case REQ_MULTI:
        if (f->n_ops) {
            if (!(r->ops = calloc(f->n_ops, sizeof(*r->ops))))
                return -ENOMEM;
            r->n_ops = (uint32_t)f->n_ops;
            for (size_t i = 0; i < f->n_ops && !rc; i++)
                rc = decode_op(f->ops[i], &r->ops[i]);
        }
        break;
    default:
        if (f->n_ops != 1 || !req_is_write(r->args.op))
            return ZE_MARSHALLINGERROR;
        rc = decode_op(f->ops[0], &r->args);
        if (!rc && r->args.op != (enum req_op)f->op)
            rc = ZE_MARSHALLINGERROR;
    }
    for (size_t i = 0; i < f->n_auth && !rc; i++)
        rc = auth_add(&out->auth, f->auth[i]->scheme, f->auth[i]->id);
    return rc;
}

int peer_msg_decode(const uint8_t *buf, size_t len, struct peer_msg *out)
{
    memset(out, 0, sizeof(*out));
    Zkfs__Peer__PeerMessage *pm = zkfs__peer__peer_message__unpack(NULL, len, buf);
    if (!pm)
        return ZE_MARSHALLINGERROR;
    out->pb_ = pm;
    int rc = 0;
    switch (pm->msg_case) {
    case ZKFS__PEER__PEER_MESSAGE__MSG_ZAB: {
        const Zkfs__Peer__Zab *z = pm->zab;
        out->kind = PEER_ZAB;
        if (z->type < ZAB_MSG_VOTE || z->type > ZAB_MSG_PING ||
            (z->type == ZAB_MSG_VOTE && !z->vote)) {
            rc = ZE_MARSHALLINGERROR;
            break;
        }
        struct zab_msg *m = &out->zab;
        m->type = (enum zab_msg_type)z->type;
        m->session = z->session;
        m->epoch = z->epoch;
        m->flags = z->flags;
        m->zxid = z->zxid;
        m->zxid2 = z->zxid2;
        m->payload = z->has_payload ? z->payload.data : NULL;
        m->len = z->has_payload ? z->payload.len : 0;
        if (z->vote) {
            m->vote.leader = z->vote->leader;
            m->vote.zxid = z->vote->zxid;
            m->vote.round = z->vote->round;
            m->vote.peer_epoch = z->vote->peer_epoch;
            m->vote.state = (enum election_state)z->vote->state;
        }
        break;
    }
    case ZKFS__PEER__PEER_MESSAGE__MSG_FORWARD:
        out->kind = PEER_FORWARD;
        rc = decode_forward(pm->forward, out);
        break;
    case ZKFS__PEER__PEER_MESSAGE__MSG_FORWARD_ERROR:
        out->kind = PEER_FORWARD_ERROR;
        out->cxid = pm->forward_error->cxid;
        out->err = err_from_zk(pm->forward_error->err);
        out->op_errs = pm->forward_error->op_errs;
        out->n_op_errs = pm->forward_error->n_op_errs;
        break;
    case ZKFS__PEER__PEER_MESSAGE__MSG_SYNC_POINT:
        out->kind = PEER_SYNC_POINT;
        out->cxid = pm->sync_point->cxid;
        out->zxid = pm->sync_point->zxid;
        break;
    case ZKFS__PEER__PEER_MESSAGE__MSG_TOUCH:
        out->kind = PEER_TOUCH;
        out->sessions = pm->touch->sessions;
        out->n_sessions = pm->touch->n_sessions;
        break;
    case ZKFS__PEER__PEER_MESSAGE__MSG_SNAP_CHUNK: {
        const Zkfs__Peer__SnapChunk *c = pm->snap_chunk;
        out->kind = PEER_SNAP_CHUNK;
        if (c->n_paths != c->n_nodes || c->n_session_keys != c->n_sessions) {
            rc = ZE_MARSHALLINGERROR;
            break;
        }
        size_t n = c->n_nodes + c->n_sessions;
        out->entries = calloc(n + 1, sizeof(*out->entries));
        if (!out->entries) {
            rc = -ENOMEM;
            break;
        }
        for (size_t i = 0; i < c->n_nodes && !rc; i++) {
            if (c->paths[i].len == 0 || memchr(c->paths[i].data, 0, c->paths[i].len))
                rc = ZE_MARSHALLINGERROR;
            out->entries[i] = (struct peer_snap_entry){0, c->paths[i].data, c->paths[i].len,
                                                       c->nodes[i].data, c->nodes[i].len};
        }
        for (size_t i = 0; i < c->n_sessions && !rc; i++) {
            if (c->session_keys[i].len != 8)
                rc = ZE_MARSHALLINGERROR;
            out->entries[c->n_nodes + i] = (struct peer_snap_entry){
                1, c->session_keys[i].data, 8, c->sessions[i].data, c->sessions[i].len};
        }
        out->n_entries = n;
        break;
    }
    case ZKFS__PEER__PEER_MESSAGE__MSG_SNAP_END:
        out->kind = PEER_SNAP_END;
        out->zxid = pm->snap_end->zxid;
        out->count = pm->snap_end->count;
        break;
    default:
        rc = ZE_MARSHALLINGERROR;
    }
    if (rc)
        peer_msg_free(out);
    return rc;
}

void peer_msg_free(struct peer_msg *m)
{
    request_free(m->req);
    m->req = NULL;
    auth_info_free(&m->auth);
    free(m->entries);
    m->entries = NULL;
    if (m->pb_)
        zkfs__peer__peer_message__free_unpacked(m->pb_, NULL);
    m->pb_ = NULL;
}
