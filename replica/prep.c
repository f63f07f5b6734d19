/* Request preparation: ZooKeeper's PrepRequestProcessor checks over a pending-change overlay. */
#include "prep.h"

#include "acl.h"
#include "err.h"
#include "path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a node will look like once every prepared txn is applied. */
struct pending {
    char *path;
    int exists;
    struct zstat stat;
    uint32_t kind, policy;
    struct acl *acls; /* owned, except in the scratch copy of a tree node (borrowed) */
    uint32_t n_acls;
    zxid_t zxid; /* the last txn that touched it */
    UT_hash_handle hh;
};

void prep_init(struct prep *p, struct tree *tree, uint32_t max_data, int extended_types)
{
    memset(p, 0, sizeof(*p));
    p->tree = tree;
    p->max_data = max_data;
    p->extended_types = extended_types;
}

static void pending_free(struct pending *e)
{
    acl_free(e->acls, e->n_acls);
    free(e->path);
    free(e);
}

static void table_clear(struct pending **table)
{
    struct pending *e, *tmp;
    HASH_ITER(hh, *table, e, tmp)
    {
        HASH_DEL(*table, e);
        pending_free(e);
    }
}

void prep_close(struct prep *p)
{
    table_clear(&p->pending);
}

/* The state seen by one request: its own earlier ops (local), then the overlay, then the tree. */
struct view {
    struct prep *p;
    struct pending *local;
    zxid_t zxid;
    const struct auth_info *auth; /* NULL: the server itself */
};

static int allowed(struct view *v, const struct pending *e, uint32_t perm)
{
    return acl_check(e->acls, e->n_acls, perm, v->auth);
}

static const struct pending *lookup(struct view *v, const char *path, struct pending *scratch)
{
    struct pending *e = NULL;
    HASH_FIND_STR(v->local, path, e);
    if (e)
        return e;
    HASH_FIND_STR(v->p->pending, path, e);
    if (e)
        return e;
    const struct node *n = tree_get(v->p->tree, path);
    memset(scratch, 0, sizeof(*scratch));
    if (n) {
        scratch->exists = 1;
        scratch->stat = n->stat;
        scratch->kind = n->kind;
        scratch->policy = n->policy;
        scratch->acls = n->acls;
        scratch->n_acls = n->n_acls;
    }
    return scratch;
}

/* The local entry for path, made from the current view if needed; NULL on ENOMEM. */
static struct pending *local_entry(struct view *v, const char *path)
{
    struct pending *e = NULL;
    HASH_FIND_STR(v->local, path, e);
    if (e)
        return e;
    struct pending scratch;
    const struct pending *cur = lookup(v, path, &scratch);
    e = calloc(1, sizeof(*e));
    if (!e || !(e->path = strdup(path))) {
        free(e);
        return NULL;
    }
    e->exists = cur->exists;
    e->stat = cur->stat;
    e->kind = cur->kind;
    e->policy = cur->policy;
    if (cur->n_acls && !(e->acls = acl_dup(cur->acls, cur->n_acls))) {
        free(e->path);
        free(e);
        return NULL;
    }
    e->n_acls = cur->n_acls;
    e->zxid = v->zxid;
    HASH_ADD_KEYPTR(hh, v->local, e->path, strlen(e->path), e);
    return e;
}

static char *parent_of(const char *path)
{
    size_t n = path_parent_len(path);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, path, n);
        s[n] = 0;
    }
    return s;
}

static struct txn_op *add_op(struct txn *t, enum txn_op_type type, const char *path)
{
    struct txn_op *ops = realloc(t->ops, (t->n_ops + 1) * sizeof(*ops));
    if (!ops)
        return NULL;
    t->ops = ops;
    struct txn_op *op = &ops[t->n_ops];
    memset(op, 0, sizeof(*op));
    op->type = type;
    if (path && !(op->path = strdup(path)))
        return NULL;
    t->n_ops++;
    return op;
}

static int check_version(int32_t expected, int32_t actual)
{
    return expected == -1 || expected == actual ? 0 : ZE_BADVERSION;
}

static int is_sequential(int mode)
{
    return mode == 2 || mode == 3 || mode == 6;
}

static int prep_create(struct view *v, const struct req_op_args *a, uint64_t session,
                       int64_t now_ms, struct txn *t, struct req_result *res)
{
    struct prep *p = v->p;
    if (a->mode < 0 || a->mode > 6)
        return ZE_BADARGUMENTS;
    int seq = is_sequential(a->mode);
    if (!a->path || path_validate(a->path, strlen(a->path), seq))
        return ZE_BADARGUMENTS;
    if (!strcmp(a->path, "/"))
        return ZE_NODEEXISTS;
    if (a->data_len > p->max_data)
        return ZE_BADARGUMENTS;
    int rc;
    int64_t owner = 0;
    switch (a->mode) {
    case 1:
    case 3:
        if (!session)
            return ZE_BADARGUMENTS;
        owner = (int64_t)session;
        break;
    case 4:
        owner = EPHEMERAL_CONTAINER;
        break;
    case 5:
    case 6:
        if (!p->extended_types)
            return ZE_UNIMPLEMENTED;
        if (a->ttl <= 0 || (uint64_t)a->ttl > EPHEMERAL_TTL_MAX)
            return ZE_BADARGUMENTS;
        owner = (int64_t)(EPHEMERAL_TTL_MASK | (uint64_t)a->ttl);
        break;
    default:
        if (a->ttl > 0)
            return ZE_BADARGUMENTS;
    }
    char *parent = parent_of(a->path);
    if (!parent)
        return -ENOMEM;
    struct pending scratch;
    const struct pending *pv = lookup(v, parent, &scratch);
    if (!pv->exists) {
        rc = ZE_NONODE;
        goto out;
    }
    if ((rc = allowed(v, pv, PERM_CREATE)))
        goto out;
    if (ephemeral_is_session(pv->stat.ephemeral_owner)) {
        rc = ZE_NOCHILDRENFOREPHEMERALS;
        goto out;
    }
    struct acl *acls = a->n_acls ? acl_dup(a->acls, a->n_acls) : NULL;
    uint32_t n_acls = a->n_acls;
    if (a->n_acls && !acls) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = acl_fixup(&acls, &n_acls, v->auth)))
        goto out;
    char *path;
    if (seq) {
        /* ZooKeeper's sequence suffix: the parent's cversion before this create, %010d of a
         * signed 32-bit value (so it wraps to negative numbers as ZooKeeper's does). */
        size_t n = strlen(a->path) + 12;
        path = malloc(n);
        if (!path) {
            acl_free(acls, n_acls);
            rc = -ENOMEM;
            goto out;
        }
        snprintf(path, n, "%s%010d", a->path, pv->stat.cversion);
    } else if (!(path = strdup(a->path))) {
        acl_free(acls, n_acls);
        rc = -ENOMEM;
        goto out;
    }
    const struct pending *nv = lookup(v, path, &scratch);
    if (nv->exists) {
        acl_free(acls, n_acls);
        free(path);
        rc = ZE_NODEEXISTS;
        goto out;
    }
    struct pending *pe = local_entry(v, parent);
    struct pending *ne = local_entry(v, path);
    struct txn_op *op = pe && ne ? add_op(t, TXN_CREATE, path) : NULL;
    if (!op) {
        acl_free(acls, n_acls);
        free(path);
        rc = -ENOMEM;
        goto out;
    }
    /* the txn op and the overlay entry each keep a copy */
    op->acls = acls;
    op->n_acls = n_acls;
    acl_free(ne->acls, ne->n_acls);
    ne->n_acls = 0;
    if (!(ne->acls = acl_dup(acls, n_acls))) {
        free(path);
        rc = -ENOMEM;
        goto out;
    }
    ne->n_acls = n_acls;
    pe->stat.cversion++;
    pe->stat.num_children++;
    pe->stat.pzxid = (int64_t)v->zxid;
    memset(&ne->stat, 0, sizeof(ne->stat));
    ne->exists = 1;
    ne->stat.czxid = ne->stat.mzxid = ne->stat.pzxid = (int64_t)v->zxid;
    ne->stat.ctime = ne->stat.mtime = now_ms;
    ne->stat.ephemeral_owner = owner;
    ne->stat.data_length = (int32_t)a->data_len;
    ne->kind = a->kind;
    ne->policy = a->policy;
    op->ephemeral_owner = owner;
    op->parent_cversion = pe->stat.cversion;
    op->kind = a->kind;
    op->policy = a->policy;
    if (a->data_len) {
        if (!(op->data = malloc(a->data_len))) {
            free(path);
            rc = -ENOMEM;
            goto out;
        }
        memcpy(op->data, a->data, a->data_len);
        op->data_len = a->data_len;
    }
    res->path = path;
    res->stat = ne->stat;
    res->has_stat = 1;
out:
    free(parent);
    return rc;
}

static int prep_delete(struct view *v, const struct req_op_args *a, int containers_only,
                       struct txn *t)
{
    if (!a->path || path_validate(a->path, strlen(a->path), 0))
        return ZE_BADARGUMENTS;
    if (!strcmp(a->path, "/"))
        return ZE_BADARGUMENTS;
    struct pending scratch;
    const struct pending *nv = lookup(v, a->path, &scratch);
    if (!nv->exists)
        return ZE_NONODE;
    int rc = check_version(a->version, nv->stat.version);
    if (rc)
        return rc;
    if (nv->stat.num_children > 0)
        return ZE_NOTEMPTY;
    if (containers_only && nv->stat.ephemeral_owner != EPHEMERAL_CONTAINER &&
        !ephemeral_is_ttl(nv->stat.ephemeral_owner))
        return ZE_BADARGUMENTS;
    char *parent = parent_of(a->path);
    if (!parent)
        return -ENOMEM;
    if ((rc = allowed(v, lookup(v, parent, &scratch), PERM_DELETE))) {
        free(parent);
        return rc;
    }
    struct pending *pe = local_entry(v, parent);
    struct pending *ne = local_entry(v, a->path);
    free(parent);
    if (!pe || !ne || !add_op(t, TXN_DELETE, a->path))
        return -ENOMEM;
    pe->stat.num_children--;
    pe->stat.pzxid = (int64_t)v->zxid;
    ne->exists = 0;
    return 0;
}

/* The existing node an op acts on, if the path is valid and auth may use perm on it. */
static int target(struct view *v, const struct req_op_args *a, uint32_t perm,
                  struct pending *scratch, const struct pending **out)
{
    if (!a->path || path_validate(a->path, strlen(a->path), 0))
        return ZE_BADARGUMENTS;
    *out = lookup(v, a->path, scratch);
    if (!(*out)->exists)
        return ZE_NONODE;
    return allowed(v, *out, perm);
}

static int prep_set_data(struct view *v, const struct req_op_args *a, int64_t now_ms, struct txn *t,
                         struct req_result *res)
{
    if (a->data_len > v->p->max_data)
        return ZE_BADARGUMENTS;
    struct pending scratch;
    const struct pending *nv;
    int rc = target(v, a, PERM_WRITE, &scratch, &nv);
    if (rc || (rc = check_version(a->version, nv->stat.version)))
        return rc;
    struct pending *ne = local_entry(v, a->path);
    struct txn_op *op = ne ? add_op(t, TXN_SET_DATA, a->path) : NULL;
    if (!op)
        return -ENOMEM;
    ne->stat.version++;
    ne->stat.mzxid = (int64_t)v->zxid;
    ne->stat.mtime = now_ms;
    ne->stat.data_length = (int32_t)a->data_len;
    op->version = ne->stat.version;
    if (a->data_len) {
        if (!(op->data = malloc(a->data_len)))
            return -ENOMEM;
        memcpy(op->data, a->data, a->data_len);
        op->data_len = a->data_len;
    }
    res->stat = ne->stat;
    res->has_stat = 1;
    return 0;
}

static int prep_check(struct view *v, const struct req_op_args *a)
{
    struct pending scratch;
    const struct pending *nv;
    int rc = target(v, a, PERM_READ, &scratch, &nv);
    return rc ? rc : check_version(a->version, nv->stat.version);
}

static int prep_set_acl(struct view *v, const struct req_op_args *a, struct txn *t,
                        struct req_result *res)
{
    struct pending scratch;
    const struct pending *nv;
    int rc = target(v, a, PERM_ADMIN, &scratch, &nv);
    if (rc || (rc = check_version(a->version, nv->stat.aversion)))
        return rc;
    struct acl *acls = a->n_acls ? acl_dup(a->acls, a->n_acls) : NULL;
    uint32_t n_acls = a->n_acls;
    if (a->n_acls && !acls)
        return -ENOMEM;
    if ((rc = acl_fixup(&acls, &n_acls, v->auth)))
        return rc;
    struct pending *ne = local_entry(v, a->path);
    struct txn_op *op = ne ? add_op(t, TXN_SET_ACL, a->path) : NULL;
    if (!op) {
        acl_free(acls, n_acls);
        return -ENOMEM;
    }
    op->acls = acls;
    op->n_acls = n_acls;
    acl_free(ne->acls, ne->n_acls);
    ne->n_acls = 0;
    if (!(ne->acls = acl_dup(acls, n_acls)))
        return -ENOMEM;
    ne->n_acls = n_acls;
    ne->stat.aversion++;
    op->version = ne->stat.aversion;
    res->stat = ne->stat;
    res->has_stat = 1;
    return 0;
}

static int prep_set_meta(struct view *v, const struct req_op_args *a, struct txn *t,
                         struct req_result *res)
{
    if ((a->has_kind && a->kind > NODE_KIND_DIR) ||
        (a->has_policy && (a->policy & ~(uint32_t)(POLICY_EPHEMERAL | POLICY_SEQUENTIAL))))
        return ZE_BADARGUMENTS;
    struct pending scratch;
    const struct pending *nv;
    int rc = target(v, a, PERM_WRITE, &scratch, &nv);
    if (rc)
        return rc;
    struct pending *ne = local_entry(v, a->path);
    struct txn_op *op = ne ? add_op(t, TXN_SET_META, a->path) : NULL;
    if (!op)
        return -ENOMEM;
    if (a->has_kind)
        ne->kind = a->kind;
    if (a->has_policy)
        ne->policy = a->policy;
    op->kind = ne->kind;
    op->policy = ne->policy;
    res->stat = ne->stat;
    res->kind = ne->kind;
    res->policy = ne->policy;
    res->has_stat = 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* closeSession: delete every ephemeral the session owns or will own, then the session. */
static int prep_close_session(struct view *v, uint64_t session, struct txn *t)
{
    v->auth = NULL; /* the session's own ephemerals go whatever the parents' ACLs say */
    struct prep *p = v->p;
    struct tree_session *ts = tree_session_get(p->tree, session);
    size_t n = 0, cap = 16;
    char **paths = malloc(cap * sizeof(*paths));
    if (!paths)
        return -ENOMEM;
    int rc = 0;
    if (ts) {
        struct tree_ephemeral *e, *tmp;
        HASH_ITER(hh, ts->ephemerals, e, tmp)
        {
            struct pending *pe = NULL;
            HASH_FIND_STR(p->pending, e->node->path, pe);
            if (pe && (!pe->exists || pe->stat.ephemeral_owner != (int64_t)session))
                continue;
            if (n == cap) {
                char **np = realloc(paths, (cap *= 2) * sizeof(*paths));
                if (!np) {
                    rc = -ENOMEM;
                    goto out;
                }
                paths = np;
            }
            paths[n++] = e->node->path;
        }
    }
    struct pending *pe, *tmp;
    HASH_ITER(hh, p->pending, pe, tmp)
    {
        if (!pe->exists || pe->stat.ephemeral_owner != (int64_t)session)
            continue;
        const struct node *node = tree_get(p->tree, pe->path);
        if (node && node->stat.ephemeral_owner == (int64_t)session)
            continue; /* already listed from the tree */
        if (n == cap) {
            char **np = realloc(paths, (cap *= 2) * sizeof(*paths));
            if (!np) {
                rc = -ENOMEM;
                goto out;
            }
            paths = np;
        }
        paths[n++] = pe->path;
    }
    qsort(paths, n, sizeof(*paths), cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct req_op_args a = {.op = REQ_DELETE, .path = paths[i], .version = -1};
        rc = prep_delete(v, &a, 0, t);
    }
    if (rc == 0) {
        struct txn_op *op = add_op(t, TXN_CLOSE_SESSION, NULL);
        if (!op)
            rc = -ENOMEM;
        else
            op->session_id = session;
    }
out:
    free(paths);
    return rc;
}

static int prep_op(struct view *v, const struct request *r, const struct req_op_args *a,
                   int64_t now_ms, struct txn *t, struct req_result *res)
{
    switch (a->op) {
    case REQ_CREATE:
        return prep_create(v, a, r->session_id, now_ms, t, res);
    case REQ_DELETE:
        return prep_delete(v, a, 0, t);
    case REQ_DELETE_CONTAINER:
        return prep_delete(v, a, 1, t);
    case REQ_SET_DATA:
        return prep_set_data(v, a, now_ms, t, res);
    case REQ_CHECK:
        return prep_check(v, a);
    case REQ_SET_ACL:
        return prep_set_acl(v, a, t, res);
    case REQ_SET_META:
        return prep_set_meta(v, a, t, res);
    default:
        return ZE_UNIMPLEMENTED;
    }
}

int prep_request(struct prep *p, struct request *r, zxid_t zxid, int64_t now_ms, struct txn *out)
{
    struct view v = {.p = p, .zxid = zxid, .auth = r->auth};
    memset(out, 0, sizeof(*out));
    out->zxid = zxid;
    out->time_ms = now_ms;
    out->session_id = r->session_id;
    uint32_t n = r->args.op == REQ_MULTI ? r->n_ops : 1;
    const struct req_op_args *ops = r->args.op == REQ_MULTI ? r->ops : &r->args;
    r->results = calloc(n ? n : 1, sizeof(*r->results));
    if (!r->results)
        return -ENOMEM;
    r->n_results = n;
    int rc = 0;
    if (r->args.op == REQ_CLOSE_SESSION || r->args.op == REQ_EXPIRE_SESSION) {
        rc = prep_close_session(&v, r->session_id, out);
    } else {
        uint32_t failed = n;
        for (uint32_t i = 0; i < n; i++) {
            if (r->args.op == REQ_MULTI && ops[i].op != REQ_CREATE && ops[i].op != REQ_DELETE &&
                ops[i].op != REQ_SET_DATA && ops[i].op != REQ_CHECK) {
                rc = ZE_BADARGUMENTS;
            } else {
                rc = prep_op(&v, r, &ops[i], now_ms, out, &r->results[i]);
            }
            if (rc) {
                failed = i;
                break;
            }
        }
        if (rc) {
            /* ZooKeeper's multi: ops before the failure report 0 (rolled back), the failed
             * one its error, the ones after it RUNTIMEINCONSISTENCY. */
            for (uint32_t i = 0; i < n; i++) {
                free(r->results[i].path);
                memset(&r->results[i], 0, sizeof(r->results[i]));
                r->results[i].err = i < failed ? 0 : i == failed ? rc : ZE_RUNTIMEINCONSISTENCY;
            }
        }
    }
    if (rc) {
        table_clear(&v.local);
        txn_free_contents(out);
        memset(out, 0, sizeof(*out));
        return rc;
    }
    /* Success: the local view becomes part of the overlay. */
    struct pending *e, *tmp;
    HASH_ITER(hh, v.local, e, tmp)
    {
        HASH_DEL(v.local, e);
        struct pending *old = NULL;
        HASH_FIND_STR(p->pending, e->path, old);
        if (old) {
            HASH_DEL(p->pending, old);
            pending_free(old);
        }
        e->zxid = zxid;
        HASH_ADD_KEYPTR(hh, p->pending, e->path, strlen(e->path), e);
    }
    return 0;
}

static void forget(struct prep *p, const char *path, zxid_t zxid)
{
    struct pending *e = NULL;
    HASH_FIND_STR(p->pending, path, e);
    if (e && e->zxid <= zxid) {
        HASH_DEL(p->pending, e);
        pending_free(e);
    }
}

void prep_applied(struct prep *p, const struct txn *t)
{
    if (!p->pending)
        return;
    for (uint32_t i = 0; i < t->n_ops; i++) {
        const char *path = t->ops[i].path;
        if (!path)
            continue;
        forget(p, path, t->zxid);
        if (path_parent_len(path) > 0) {
            char *parent = parent_of(path);
            if (parent)
                forget(p, parent, t->zxid);
            free(parent);
        }
    }
}

uint32_t prep_pending_count(const struct prep *p)
{
    return HASH_COUNT(p->pending);
}
