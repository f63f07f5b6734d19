/* Transactions: the record.proto Txn encoding, decoded at the edge into plain C structs. */
#include "txn.h"

#include "err.h"
#include "path.h"
#include "record.pb-c.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct acl *acl_dup(const struct acl *acls, uint32_t n)
{
    if (n == 0)
        return NULL;
    struct acl *out = calloc(n, sizeof *out);
    if (!out)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        out[i].perms = acls[i].perms;
        out[i].scheme = strdup(acls[i].scheme ? acls[i].scheme : "");
        out[i].id = strdup(acls[i].id ? acls[i].id : "");
        if (!out[i].scheme || !out[i].id) {
            acl_free(out, n);
            return NULL;
        }
    }
    return out;
}

void acl_free(struct acl *acls, uint32_t n)
{
    if (!acls)
        return;
    for (uint32_t i = 0; i < n; i++) {
        free(acls[i].scheme);
        free(acls[i].id);
    }
    free(acls);
}

void txn_free_contents(struct txn *t)
{
    for (uint32_t i = 0; i < t->n_ops; i++) {
        struct txn_op *op = &t->ops[i];
        free(op->path);
        free(op->data);
        acl_free(op->acls, op->n_acls);
    }
    free(t->ops);
    memset(t, 0, sizeof *t);
}

/* The record borrows op's strings and bytes: it lives only until the pack below. */
static void op_to_rec(const struct txn_op *op, Zkfs__Rec__TxnOp *r, Zkfs__Rec__Acl *acls,
                      Zkfs__Rec__Acl **acl_ptrs)
{
    zkfs__rec__txn_op__init(r);
    r->type = (Zkfs__Rec__TxnOpType)op->type;
    /* Only the fields the type uses go on the wire (see txn.h), so has_* means "set". */
    switch (op->type) {
    case TXN_CREATE:
    case TXN_SET_DATA:
    case TXN_SET_ACL:
    case TXN_SET_META:
    case TXN_DELETE:
        r->path = op->path;
        break;
    case TXN_CREATE_SESSION:
    case TXN_CLOSE_SESSION:
        r->has_session_id = 1;
        r->session_id = op->session_id;
        break;
    }
    if ((op->type == TXN_CREATE || op->type == TXN_SET_DATA) && op->data_len > 0) {
        r->has_data = 1;
        r->data.len = op->data_len;
        r->data.data = op->data;
    }
    if (op->type == TXN_CREATE || op->type == TXN_SET_ACL) {
        for (uint32_t i = 0; i < op->n_acls; i++) {
            zkfs__rec__acl__init(&acls[i]);
            acls[i].perms = op->acls[i].perms;
            acls[i].scheme = op->acls[i].scheme ? op->acls[i].scheme : "";
            acls[i].id = op->acls[i].id ? op->acls[i].id : "";
            acl_ptrs[i] = &acls[i];
        }
        r->n_acl = op->n_acls;
        r->acl = op->n_acls ? acl_ptrs : NULL;
    }
    if (op->type == TXN_CREATE) {
        r->has_ephemeral_owner = op->ephemeral_owner != 0;
        r->ephemeral_owner = op->ephemeral_owner;
        r->has_parent_cversion = 1;
        r->parent_cversion = op->parent_cversion;
    }
    if (op->type == TXN_SET_DATA || op->type == TXN_SET_ACL) {
        r->has_version = 1;
        r->version = op->version;
    }
    if (op->type == TXN_CREATE || op->type == TXN_SET_META) {
        /* SET_META replaces both, so it always carries them; a create omits zeros. */
        r->has_kind = op->type == TXN_SET_META || op->kind != 0;
        r->kind = op->kind;
        r->has_policy = op->type == TXN_SET_META || op->policy != 0;
        r->policy = op->policy;
    }
    if (op->type == TXN_CREATE_SESSION) {
        r->has_timeout_ms = 1;
        r->timeout_ms = op->timeout_ms;
        r->has_passwd = 1;
        r->passwd.len = PASSWD_LEN;
        r->passwd.data = (uint8_t *)op->passwd;
    }
}

int txn_encode(const struct txn *t, uint8_t **buf, size_t *len)
{
    Zkfs__Rec__Txn rec = ZKFS__REC__TXN__INIT;
    Zkfs__Rec__TxnOp *ops = NULL, **op_ptrs = NULL;
    Zkfs__Rec__Acl *acls = NULL, **acl_ptrs = NULL;
    size_t n_acls = 0;
    int rc = -ENOMEM;

    for (uint32_t i = 0; i < t->n_ops; i++) {
        assert(t->ops[i].type >= TXN_CREATE && t->ops[i].type <= TXN_CLOSE_SESSION);
        n_acls += t->ops[i].n_acls;
    }
    if (t->n_ops > 0) {
        ops = calloc(t->n_ops, sizeof *ops);
        op_ptrs = calloc(t->n_ops, sizeof *op_ptrs);
        if (!ops || !op_ptrs)
            goto out;
    }
    if (n_acls > 0) {
        acls = calloc(n_acls, sizeof *acls);
        acl_ptrs = calloc(n_acls, sizeof *acl_ptrs);
        if (!acls || !acl_ptrs)
            goto out;
    }
    size_t a = 0;
    for (uint32_t i = 0; i < t->n_ops; i++) {
        op_to_rec(&t->ops[i], &ops[i], acls ? &acls[a] : NULL, acl_ptrs ? &acl_ptrs[a] : NULL);
        op_ptrs[i] = &ops[i];
        a += t->ops[i].n_acls;
    }
    rec.zxid = t->zxid;
    rec.time_ms = t->time_ms;
    rec.session_id = t->session_id;
    rec.has_origin = t->origin != 0;
    rec.origin = t->origin;
    rec.has_cxid = t->cxid != 0;
    rec.cxid = t->cxid;
    rec.n_ops = t->n_ops;
    rec.ops = op_ptrs;

    size_t size = zkfs__rec__txn__get_packed_size(&rec);
    uint8_t *out = malloc(size ? size : 1);
    if (!out)
        goto out;
    zkfs__rec__txn__pack(&rec, out);
    *buf = out;
    *len = size;
    rc = 0;
out:
    free(acl_ptrs);
    free(acls);
    free(op_ptrs);
    free(ops);
    return rc;
}

/* protobuf-c's unpack returns NULL both for bad bytes and for ENOMEM; this tells them apart,
 * so an allocation failure is not reported as a corrupt log. */
void *txn_oom_alloc(void *data, size_t size)
{
    void *p = malloc(size);
    if (!p)
        *(int *)data = 1;
    return p;
}

void txn_oom_free(void *data, void *p)
{
    free(p);
}

static int op_from_rec(const Zkfs__Rec__TxnOp *r, struct txn_op *op)
{
    int needs_path = 0;

    switch (r->type) {
    case ZKFS__REC__TXN_OP_TYPE__TXN_CREATE:
        needs_path = 1;
        if (!r->has_parent_cversion)
            return ZE_MARSHALLINGERROR;
        break;
    case ZKFS__REC__TXN_OP_TYPE__TXN_DELETE:
    case ZKFS__REC__TXN_OP_TYPE__TXN_SET_META:
        needs_path = 1;
        break;
    case ZKFS__REC__TXN_OP_TYPE__TXN_SET_DATA:
    case ZKFS__REC__TXN_OP_TYPE__TXN_SET_ACL:
        needs_path = 1;
        if (!r->has_version)
            return ZE_MARSHALLINGERROR;
        break;
    case ZKFS__REC__TXN_OP_TYPE__TXN_CREATE_SESSION:
        if (!r->has_session_id || !r->has_timeout_ms || !r->has_passwd)
            return ZE_MARSHALLINGERROR;
        break;
    case ZKFS__REC__TXN_OP_TYPE__TXN_CLOSE_SESSION:
        if (!r->has_session_id)
            return ZE_MARSHALLINGERROR;
        break;
    default:
        /* protobuf-c keeps unknown enum numbers as they are. */
        return ZE_MARSHALLINGERROR;
    }
    if (needs_path && (!r->path || path_validate(r->path, strlen(r->path), 0) != 0))
        return ZE_MARSHALLINGERROR;
    if (r->has_passwd && r->passwd.len != PASSWD_LEN)
        return ZE_MARSHALLINGERROR;
    /* Stat.dataLength is a signed 32-bit int. */
    if (r->has_data && r->data.len > INT32_MAX)
        return ZE_MARSHALLINGERROR;
    if (r->n_acl > UINT32_MAX)
        return ZE_MARSHALLINGERROR;

    op->type = (enum txn_op_type)r->type;
    op->ephemeral_owner = r->has_ephemeral_owner ? r->ephemeral_owner : 0;
    op->parent_cversion = r->has_parent_cversion ? r->parent_cversion : 0;
    op->version = r->has_version ? r->version : 0;
    op->kind = r->has_kind ? r->kind : 0;
    op->policy = r->has_policy ? r->policy : 0;
    op->session_id = r->has_session_id ? r->session_id : 0;
    op->timeout_ms = r->has_timeout_ms ? r->timeout_ms : 0;
    if (r->has_passwd)
        memcpy(op->passwd, r->passwd.data, PASSWD_LEN);

    if (r->path) {
        op->path = strdup(r->path);
        if (!op->path)
            return -ENOMEM;
    }
    if (r->has_data && r->data.len > 0) {
        op->data = malloc(r->data.len);
        if (!op->data)
            return -ENOMEM;
        memcpy(op->data, r->data.data, r->data.len);
        op->data_len = (uint32_t)r->data.len;
    }
    if (r->n_acl > 0) {
        op->acls = calloc(r->n_acl, sizeof *op->acls);
        if (!op->acls)
            return -ENOMEM;
        op->n_acls = (uint32_t)r->n_acl;
        for (size_t i = 0; i < r->n_acl; i++) {
            op->acls[i].perms = r->acl[i]->perms;
            op->acls[i].scheme = strdup(r->acl[i]->scheme ? r->acl[i]->scheme : "");
            op->acls[i].id = strdup(r->acl[i]->id ? r->acl[i]->id : "");
            if (!op->acls[i].scheme || !op->acls[i].id)
                return -ENOMEM;
        }
    }
    return 0;
}

int txn_decode(const uint8_t *buf, size_t len, struct txn *t)
{
    int oom = 0;
    ProtobufCAllocator allocator = {
        .alloc = txn_oom_alloc, .free = txn_oom_free, .allocator_data = &oom};
    int rc;

    memset(t, 0, sizeof *t);
    Zkfs__Rec__Txn *rec = zkfs__rec__txn__unpack(&allocator, len, buf);
    if (!rec)
        return oom ? -ENOMEM : ZE_MARSHALLINGERROR;
    if (rec->n_ops > UINT32_MAX) {
        rc = ZE_MARSHALLINGERROR;
        goto out;
    }
    t->zxid = rec->zxid;
    t->time_ms = rec->time_ms;
    t->session_id = rec->session_id;
    t->origin = rec->has_origin ? rec->origin : 0;
    t->cxid = rec->has_cxid ? rec->cxid : 0;
    if (rec->n_ops > 0) {
        t->ops = calloc(rec->n_ops, sizeof *t->ops);
        if (!t->ops) {
            rc = -ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < rec->n_ops; i++) {
        /* Counted before the copy so that txn_free_contents frees a half-copied op too. */
        t->n_ops = (uint32_t)i + 1;
        rc = op_from_rec(rec->ops[i], &t->ops[i]);
        if (rc != 0)
            goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        txn_free_contents(t);
    zkfs__rec__txn__free_unpacked(rec, &allocator);
    return rc;
}
