/* The in-memory znode tree: uthash indexes by path, by child name and by session. */

/*
 * uthash cannot report a failed allocation from HASH_ADD, and a replica that cannot grow its
 * tree cannot go on applying committed txns (it would diverge from the ensemble), so running
 * out of memory while changing the tree aborts: the replica restarts and reloads from its store.
 */
#include <stdlib.h>
#define uthash_fatal(msg) abort()

#include "tree.h"

#include "err.h"
#include "path.h"
#include "record.pb-c.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static void *must(void *p)
{
    if (!p)
        abort(); /* see uthash_fatal above */
    return p;
}

/* One allocation holds the node and its path: a lookup then touches one block. */
static struct node *node_new(const char *path, size_t len)
{
    size_t size = offsetof(struct node, path) + len + 1;
    struct node *n = calloc(1, size < sizeof *n ? sizeof *n : size); /* whole struct for "/" */
    if (!n)
        return NULL;
    memcpy(n->path, path, len);
    n->path[len] = 0;
    return n;
}

/* The node's name, the last component of its path ("" for the root). */
static const char *node_name(const struct node *n)
{
    return path_name(n->path);
}

/*
 * The ACL cache, as ZooKeeper's ReferenceCountedACLCache: nearly every node has the same list
 * (world:anyone, or one digest), and a copy per node costs three small allocations (the array,
 * scheme, id: ~100 bytes) for the same few bytes. Each distinct list is kept once, with a count
 * of the nodes pointing at it. One allocation holds the entry, its array and its key, the list
 * serialized as (perms, scheme NUL, id NUL) per entry; the array's strings point into the key.
 * Nodes point at the array, whose entry is found again by its offset.
 */
struct tree_acl {
    UT_hash_handle hh; /* in tree->acl_cache, by key */
    uint64_t refs;     /* nodes pointing at acls */
    uint32_t n;
    struct acl acls[]; /* n entries, then the key */
};

static struct tree_acl *acl_entry(struct acl *acls)
{
    return (struct tree_acl *)(void *)((char *)acls - offsetof(struct tree_acl, acls));
}

/* A reference to the cached list equal to acls[0..n), n > 0: the caller's pointer to put in
 * node->acls, released by acl_unref. NULL on ENOMEM. acls is copied. */
static struct acl *acl_ref(struct tree *t, const struct acl *acls, uint32_t n)
{
    assert(n > 0 && acls);
    size_t key_len = 0;
    for (uint32_t i = 0; i < n; i++)
        key_len += sizeof acls[i].perms + strlen(acls[i].scheme) + 1 + strlen(acls[i].id) + 1;
    /* Built in its final place: on a hit (the usual case) it is freed again. */
    struct tree_acl *e = malloc(offsetof(struct tree_acl, acls) + n * sizeof *acls + key_len);
    if (!e)
        return NULL;
    char *key = (char *)&e->acls[n], *p = key;
    for (uint32_t i = 0; i < n; i++) {
        size_t ls = strlen(acls[i].scheme) + 1, li = strlen(acls[i].id) + 1;
        memcpy(p, &acls[i].perms, sizeof acls[i].perms);
        p += sizeof acls[i].perms;
        e->acls[i].perms = acls[i].perms;
        e->acls[i].scheme = memcpy(p, acls[i].scheme, ls);
        p += ls;
        e->acls[i].id = memcpy(p, acls[i].id, li);
        p += li;
    }
    struct tree_acl *found;
    HASH_FIND(hh, t->acl_cache, key, key_len, found);
    if (found) {
        free(e);
        found->refs++;
        return found->acls;
    }
    e->refs = 1;
    e->n = n;
    HASH_ADD_KEYPTR(hh, t->acl_cache, key, key_len, e);
    return e->acls;
}

/* Drops a reference taken by acl_ref; NULL is none. */
static void acl_unref(struct tree *t, struct acl *acls)
{
    if (!acls)
        return;
    struct tree_acl *e = acl_entry(acls);
    assert(e->refs > 0);
    if (--e->refs == 0) {
        HASH_DEL(t->acl_cache, e);
        free(e);
    }
}

static void node_free(struct tree *t, struct node *n)
{
    free(n->data);
    acl_unref(t, n->acls);
    free(n);
}

static struct node *find_node(const struct tree *t, const char *path, size_t len)
{
    struct node *n;
    HASH_FIND(hh, t->nodes, path, len, n);
    return n;
}

static struct tree_session *find_session(const struct tree *t, uint64_t id)
{
    struct tree_session *s;
    HASH_FIND(hh, t->sessions, &id, sizeof id, s);
    return s;
}

struct node *tree_get(const struct tree *t, const char *path)
{
    return find_node(t, path, strlen(path));
}

struct tree_session *tree_session_get(const struct tree *t, uint64_t id)
{
    return find_session(t, id);
}

static struct tree_ephemeral *find_ephemeral(const struct tree_session *s, const struct node *n)
{
    struct tree_ephemeral *e;
    HASH_FIND(hh, s->ephemerals, &n, sizeof n, e);
    return e;
}

/* An ephemeral whose session is not in the tree stays out of every set: the pipeline never
 * makes one, and tree_load_finish adopts it if its session shows up by then. */
static void track(struct tree *t, struct node *n)
{
    if (!ephemeral_is_session(n->stat.ephemeral_owner))
        return;
    struct tree_session *s = find_session(t, (uint64_t)n->stat.ephemeral_owner);
    if (!s)
        return;
    struct tree_ephemeral *e = must(malloc(sizeof *e));
    e->node = n;
    HASH_ADD(hh, s->ephemerals, node, sizeof e->node, e);
}

static void untrack(struct tree *t, struct node *n)
{
    if (!ephemeral_is_session(n->stat.ephemeral_owner))
        return;
    struct tree_session *s = find_session(t, (uint64_t)n->stat.ephemeral_owner);
    struct tree_ephemeral *e = s ? find_ephemeral(s, n) : NULL;
    if (!e)
        return;
    HASH_DEL(s->ephemerals, e);
    free(e);
}

static int is_tracked(const struct tree *t, const struct node *n)
{
    if (!ephemeral_is_session(n->stat.ephemeral_owner))
        return 0;
    struct tree_session *s = find_session(t, (uint64_t)n->stat.ephemeral_owner);
    return s && find_ephemeral(s, n);
}

static void clear_ephemerals(struct tree_session *s)
{
    struct tree_ephemeral *e, *tmp;
    HASH_ITER(hh, s->ephemerals, e, tmp)
    {
        HASH_DEL(s->ephemerals, e);
        free(e);
    }
}

int tree_init(struct tree *t)
{
    static const struct acl world_anyone = {.perms = 31, .scheme = "world", .id = "anyone"};

    memset(t, 0, sizeof *t);
    struct node *root = node_new("/", 1);
    if (!root)
        return -ENOMEM;
    root->acls = acl_ref(t, &world_anyone, 1);
    if (!root->acls) {
        free(root);
        return -ENOMEM;
    }
    root->n_acls = 1;
    HASH_ADD_KEYPTR(hh, t->nodes, root->path, 1, root);
    t->root = root;
    t->data_bytes = 1;
    return 0;
}

void tree_close(struct tree *t)
{
    struct node *n, *ntmp;
    struct tree_session *s, *stmp;

    /* Children tables first: clearing one reads its first child, so no node is freed yet. */
    HASH_ITER(hh, t->nodes, n, ntmp)
    {
        HASH_CLEAR(hh_child, n->children);
    }
    HASH_ITER(hh, t->nodes, n, ntmp)
    {
        HASH_DEL(t->nodes, n);
        node_free(t, n);
    }
    assert(!t->acl_cache); /* every list went with its last node */
    HASH_ITER(hh, t->sessions, s, stmp)
    {
        clear_ephemerals(s);
        HASH_DEL(t->sessions, s);
        free(s);
    }
    memset(t, 0, sizeof *t);
}

/*
 * Validation pass. A txn is checked against the tree as its own earlier ops leave it; those
 * effects go into a small overlay ("shadow") keyed by path and by session id, so the tree is
 * not touched until the whole txn is known to fit. Only paths and sessions that an earlier op
 * of the txn changed are in the overlay, so single-op txns allocate nothing.
 */
struct shadow_node {
    const char *path; /* borrowed from the txn; not NUL-terminated at len for parents */
    size_t len;
    int exists;
    int32_t num_children;
    int64_t owner;
    int tracked; /* in (or, created in this txn, going into) its session's ephemeral set */
    UT_hash_handle hh;
};

struct shadow_session {
    uint64_t id;
    int exists;
    uint32_t n_ephemerals;
    UT_hash_handle hh;
};

struct shadow {
    struct shadow_node *nodes;
    struct shadow_session *sessions;
};

static void view_node(const struct tree *t, const struct shadow *sh, const char *path, size_t len,
                      struct shadow_node *v)
{
    struct shadow_node *s;
    HASH_FIND(hh, sh->nodes, path, len, s);
    if (s) {
        *v = *s;
        return;
    }
    memset(v, 0, sizeof *v);
    v->path = path;
    v->len = len;
    struct node *n = find_node(t, path, len);
    if (n) {
        v->exists = 1;
        v->num_children = n->stat.num_children;
        v->owner = n->stat.ephemeral_owner;
        v->tracked = is_tracked(t, n);
    }
}

static void view_session(const struct tree *t, const struct shadow *sh, uint64_t id,
                         struct shadow_session *v)
{
    struct shadow_session *s;
    HASH_FIND(hh, sh->sessions, &id, sizeof id, s);
    if (s) {
        *v = *s;
        return;
    }
    memset(v, 0, sizeof *v);
    v->id = id;
    struct tree_session *ts = find_session(t, id);
    if (ts) {
        v->exists = 1;
        v->n_ephemerals = HASH_CNT(hh, ts->ephemerals);
    }
}

static void put_node(struct shadow *sh, const struct shadow_node *v)
{
    struct shadow_node *s;
    HASH_FIND(hh, sh->nodes, v->path, v->len, s);
    if (!s) {
        s = must(malloc(sizeof *s));
        *s = *v;
        HASH_ADD_KEYPTR(hh, sh->nodes, s->path, s->len, s);
        return;
    }
    s->exists = v->exists;
    s->num_children = v->num_children;
    s->owner = v->owner;
    s->tracked = v->tracked;
}

static void put_session(struct shadow *sh, const struct shadow_session *v)
{
    struct shadow_session *s;
    HASH_FIND(hh, sh->sessions, &v->id, sizeof v->id, s);
    if (!s) {
        s = must(malloc(sizeof *s));
        *s = *v;
        HASH_ADD(hh, sh->sessions, id, sizeof s->id, s);
        return;
    }
    s->exists = v->exists;
    s->n_ephemerals = v->n_ephemerals;
}

static void shadow_free(struct shadow *sh)
{
    struct shadow_node *n, *ntmp;
    struct shadow_session *s, *stmp;
    HASH_ITER(hh, sh->nodes, n, ntmp)
    {
        HASH_DEL(sh->nodes, n);
        free(n);
    }
    HASH_ITER(hh, sh->sessions, s, stmp)
    {
        HASH_DEL(sh->sessions, s);
        free(s);
    }
}

/* A malformed path ("//a", "/a/") would alias another node's name in its parent's table. */
static int path_ok(const char *path, int allow_root)
{
    if (!path || path_validate(path, strlen(path), 0) != 0)
        return 0;
    return allow_root || path[1] != 0;
}

/* Checks op against tree + overlay; with record set, adds op's effects to the overlay. */
static int validate_op(const struct tree *t, struct shadow *sh, const struct txn_op *op, int record)
{
    struct shadow_node v, p;
    struct shadow_session s;

    switch (op->type) {
    case TXN_CREATE: {
        if (!path_ok(op->path, 0) || op->data_len > INT32_MAX || (op->data_len && !op->data) ||
            (op->n_acls && !op->acls))
            return ZE_DATAINCONSISTENCY;
        size_t len = strlen(op->path);
        view_node(t, sh, op->path, len, &v);
        if (v.exists)
            return ZE_DATAINCONSISTENCY;
        view_node(t, sh, op->path, path_parent_len(op->path), &p);
        /* ZooKeeper: NOCHILDRENFOREPHEMERALS, for session ephemerals only (not containers
         * or TTL nodes). */
        if (!p.exists || ephemeral_is_session(p.owner))
            return ZE_DATAINCONSISTENCY;
        if (!record)
            return 0;
        v.exists = 1;
        v.num_children = 0;
        v.owner = op->ephemeral_owner;
        v.tracked = 0;
        if (ephemeral_is_session(op->ephemeral_owner)) {
            view_session(t, sh, (uint64_t)op->ephemeral_owner, &s);
            if (s.exists) {
                v.tracked = 1;
                s.n_ephemerals++;
                put_session(sh, &s);
            }
        }
        put_node(sh, &v);
        p.num_children++;
        put_node(sh, &p);
        return 0;
    }
    case TXN_DELETE: {
        if (!path_ok(op->path, 0))
            return ZE_DATAINCONSISTENCY;
        view_node(t, sh, op->path, strlen(op->path), &v);
        if (!v.exists || v.num_children != 0)
            return ZE_DATAINCONSISTENCY;
        if (!record)
            return 0;
        if (v.tracked) {
            view_session(t, sh, (uint64_t)v.owner, &s);
            s.n_ephemerals--;
            put_session(sh, &s);
        }
        v.exists = 0;
        v.owner = 0;
        v.tracked = 0;
        put_node(sh, &v);
        /* The parent exists: v did, and nothing deletes a node with children. */
        view_node(t, sh, op->path, path_parent_len(op->path), &p);
        p.num_children--;
        put_node(sh, &p);
        return 0;
    }
    case TXN_SET_DATA:
    case TXN_SET_ACL:
    case TXN_SET_META:
        if (!path_ok(op->path, 1))
            return ZE_DATAINCONSISTENCY;
        if (op->type == TXN_SET_DATA && (op->data_len > INT32_MAX || (op->data_len && !op->data)))
            return ZE_DATAINCONSISTENCY;
        if (op->type == TXN_SET_ACL && op->n_acls && !op->acls)
            return ZE_DATAINCONSISTENCY;
        view_node(t, sh, op->path, strlen(op->path), &v);
        return v.exists ? 0 : ZE_DATAINCONSISTENCY;
    case TXN_CREATE_SESSION:
        view_session(t, sh, op->session_id, &s);
        if (s.exists)
            return ZE_DATAINCONSISTENCY;
        if (record) {
            s.exists = 1;
            s.n_ephemerals = 0;
            put_session(sh, &s);
        }
        return 0;
    case TXN_CLOSE_SESSION:
        view_session(t, sh, op->session_id, &s);
        /* The txn must delete the session's ephemerals before closing it. */
        if (!s.exists || s.n_ephemerals != 0)
            return ZE_DATAINCONSISTENCY;
        if (record) {
            s.exists = 0;
            put_session(sh, &s);
        }
        return 0;
    }
    return ZE_DATAINCONSISTENCY;
}

/* Apply pass: validate_op has checked everything, so this only fails on ENOMEM (abort). */
static void apply_create(struct tree *t, const struct txn *txn, const struct txn_op *op)
{
    size_t len = strlen(op->path);
    struct node *parent = find_node(t, op->path, path_parent_len(op->path));
    assert(parent);
    struct node *n = must(node_new(op->path, len));
    if (op->data_len > 0) {
        n->data = must(malloc(op->data_len));
        memcpy(n->data, op->data, op->data_len);
    }
    if (op->n_acls > 0)
        n->acls = must(acl_ref(t, op->acls, op->n_acls));
    n->n_acls = op->n_acls;
    n->kind = op->kind;
    n->policy = op->policy;
    n->stat.czxid = n->stat.mzxid = n->stat.pzxid = (int64_t)txn->zxid;
    n->stat.ctime = n->stat.mtime = txn->time_ms;
    n->stat.ephemeral_owner = op->ephemeral_owner;
    n->stat.data_length = (int32_t)op->data_len;

    HASH_ADD_KEYPTR(hh, t->nodes, n->path, len, n);
    n->parent = parent;
    const char *name = node_name(n);
    HASH_ADD_KEYPTR(hh_child, parent->children, name, strlen(name), n);
    parent->stat.num_children++;
    /* The txn carries the parent's new cversion so that every replica agrees on it. */
    parent->stat.cversion = op->parent_cversion;
    parent->stat.pzxid = (int64_t)txn->zxid;
    track(t, n);
    t->data_bytes += len + op->data_len;
}

static void apply_delete(struct tree *t, const struct txn *txn, const struct txn_op *op)
{
    size_t len = strlen(op->path);
    struct node *n = find_node(t, op->path, len);
    assert(n && n->parent && !n->children);
    struct node *parent = n->parent;
    untrack(t, n);
    HASH_DELETE(hh_child, parent->children, n);
    HASH_DELETE(hh, t->nodes, n);
    parent->stat.num_children--;
    /* Deletes move pzxid only; cversion counts creates (ZOOKEEPER-1046). */
    parent->stat.pzxid = (int64_t)txn->zxid;
    t->data_bytes -= len + (uint32_t)n->stat.data_length;
    node_free(t, n);
}

static void apply_op(struct tree *t, const struct txn *txn, const struct txn_op *op)
{
    struct node *n = NULL;
    struct tree_session *s;

    if (op->type == TXN_SET_DATA || op->type == TXN_SET_ACL || op->type == TXN_SET_META) {
        n = find_node(t, op->path, strlen(op->path));
        assert(n);
    }
    switch (op->type) {
    case TXN_CREATE:
        apply_create(t, txn, op);
        break;
    case TXN_DELETE:
        apply_delete(t, txn, op);
        break;
    case TXN_SET_DATA: {
        uint8_t *data = NULL;
        if (op->data_len > 0) {
            data = must(malloc(op->data_len));
            memcpy(data, op->data, op->data_len);
        }
        free(n->data);
        t->data_bytes = t->data_bytes - (uint32_t)n->stat.data_length + op->data_len;
        n->data = data;
        n->stat.data_length = (int32_t)op->data_len;
        n->stat.mzxid = (int64_t)txn->zxid;
        n->stat.mtime = txn->time_ms;
        n->stat.version = op->version;
        break;
    }
    case TXN_SET_ACL: {
        /* Referenced before the old list is released: the same list stays cached. */
        struct acl *acls = op->n_acls > 0 ? must(acl_ref(t, op->acls, op->n_acls)) : NULL;
        acl_unref(t, n->acls);
        n->acls = acls;
        n->n_acls = op->n_acls;
        n->stat.aversion = op->version;
        break;
    }
    case TXN_SET_META:
        n->kind = op->kind;
        n->policy = op->policy;
        break;
    case TXN_CREATE_SESSION:
        s = must(calloc(1, sizeof *s));
        s->id = op->session_id;
        s->timeout_ms = op->timeout_ms;
        memcpy(s->passwd, op->passwd, PASSWD_LEN);
        HASH_ADD(hh, t->sessions, id, sizeof s->id, s);
        break;
    case TXN_CLOSE_SESSION:
        s = find_session(t, op->session_id);
        assert(s && !s->ephemerals);
        HASH_DEL(t->sessions, s);
        clear_ephemerals(s);
        free(s);
        break;
    }
}

int tree_apply(struct tree *t, const struct txn *txn)
{
    struct shadow sh = {0};
    int rc = 0;

    if (txn->n_ops > 0 && !txn->ops)
        return ZE_DATAINCONSISTENCY;
    /* Nothing is applied twice and zxids only grow. */
    if (txn->zxid <= t->last_applied)
        return ZE_DATAINCONSISTENCY;
    for (uint32_t i = 0; i < txn->n_ops && rc == 0; i++)
        rc = validate_op(t, &sh, &txn->ops[i], i + 1 < txn->n_ops);
    shadow_free(&sh);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < txn->n_ops; i++)
        apply_op(t, txn, &txn->ops[i]);
    t->last_applied = txn->zxid;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **tree_children_sorted(const struct node *n, uint32_t *count)
{
    uint32_t cnt = HASH_CNT(hh_child, n->children);
    const char **names = malloc((cnt + 1) * sizeof *names);
    if (!names)
        return NULL;
    uint32_t i = 0;
    for (const struct node *c = n->children; c; c = c->hh_child.next)
        names[i++] = c->hh_child.key;
    qsort(names, cnt, sizeof *names, cmp_names);
    names[cnt] = NULL;
    if (count)
        *count = cnt;
    return names;
}

uint32_t tree_acl_count(const struct tree *t)
{
    return HASH_CNT(hh, t->acl_cache);
}

uint32_t tree_count(const struct tree *t)
{
    return HASH_CNT(hh, t->nodes);
}

uint32_t tree_ephemeral_count(const struct tree *t)
{
    uint32_t n = 0;
    for (const struct tree_session *s = t->sessions; s; s = s->hh.next)
        n += HASH_CNT(hh, s->ephemerals);
    return n;
}

/* Records: the Node and Session values of the store's column families. */

int tree_node_encode(const struct node *n, uint8_t **buf, size_t *len)
{
    Zkfs__Rec__Node rec = ZKFS__REC__NODE__INIT;
    Zkfs__Rec__NodeStat stat = ZKFS__REC__NODE_STAT__INIT;
    Zkfs__Rec__Acl *acls = NULL, **acl_ptrs = NULL;
    int rc = -ENOMEM;

    stat.czxid = n->stat.czxid;
    stat.mzxid = n->stat.mzxid;
    stat.ctime = n->stat.ctime;
    stat.mtime = n->stat.mtime;
    stat.version = n->stat.version;
    stat.cversion = n->stat.cversion;
    stat.aversion = n->stat.aversion;
    stat.ephemeral_owner = n->stat.ephemeral_owner;
    stat.pzxid = n->stat.pzxid;
    rec.stat = &stat;
    if (n->stat.data_length > 0) {
        rec.has_data = 1;
        rec.data.len = (size_t)n->stat.data_length;
        rec.data.data = n->data;
    }
    if (n->n_acls > 0) {
        acls = calloc(n->n_acls, sizeof *acls);
        acl_ptrs = calloc(n->n_acls, sizeof *acl_ptrs);
        if (!acls || !acl_ptrs)
            goto out;
        for (uint32_t i = 0; i < n->n_acls; i++) {
            zkfs__rec__acl__init(&acls[i]);
            acls[i].perms = n->acls[i].perms;
            acls[i].scheme = n->acls[i].scheme;
            acls[i].id = n->acls[i].id;
            acl_ptrs[i] = &acls[i];
        }
        rec.n_acl = n->n_acls;
        rec.acl = acl_ptrs;
    }
    rec.has_kind = n->kind != 0;
    rec.kind = n->kind;
    rec.has_policy = n->policy != 0;
    rec.policy = n->policy;

    size_t size = zkfs__rec__node__get_packed_size(&rec);
    uint8_t *out = malloc(size ? size : 1);
    if (!out)
        goto out;
    zkfs__rec__node__pack(&rec, out);
    *buf = out;
    *len = size;
    rc = 0;
out:
    free(acl_ptrs);
    free(acls);
    return rc;
}

/* The blocks protobuf-c allocates to unpack one record live only for that call: a stack arena
 * serves them (a store holds millions of records), malloc what does not fit. */
struct arena {
    _Alignas(16) uint8_t buf[2048];
    size_t used;
    int spilled; /* blocks that came from malloc */
    int oom;
};

static void *arena_alloc(void *data, size_t size)
{
    struct arena *a = data;
    size_t need = (size + 15) & ~(size_t)15;
    if (need >= size && sizeof(a->buf) - a->used >= need) {
        void *p = a->buf + a->used;
        a->used += need;
        return p;
    }
    void *p = malloc(size);
    if (!p)
        a->oom = 1;
    a->spilled += p != NULL;
    return p;
}

static void arena_free(void *data, void *p)
{
    struct arena *a = data;
    uintptr_t u = (uintptr_t)p, lo = (uintptr_t)a->buf;
    if (u < lo || u >= lo + sizeof(a->buf))
        free(p);
}

/* Loading: the node whose path is path's parent, or NULL if not loaded yet. In the store's
 * order it is the previous node or one of its ancestors, which are in cache. */
static struct node *loaded_parent(const struct tree *t, const char *path)
{
    size_t plen = path_parent_len(path);
    for (const struct node *c = t->load_prev; c; c = c->parent)
        if (strlen(c->path) == plen && memcmp(c->path, path, plen) == 0)
            return (struct node *)c;
    return find_node(t, path, plen);
}

int tree_load_node(struct tree *t, const char *path, const uint8_t *buf, size_t len)
{
    struct arena arena;
    arena.used = 0;
    arena.spilled = arena.oom = 0;
    ProtobufCAllocator allocator = {
        .alloc = arena_alloc, .free = arena_free, .allocator_data = &arena};
    uint8_t *data = NULL;
    struct acl *acls = NULL;
    uint32_t n_acls = 0;
    int rc;

    if (!path || path_validate(path, strlen(path), 0) != 0)
        return ZE_MARSHALLINGERROR;
    Zkfs__Rec__Node *rec = zkfs__rec__node__unpack(&allocator, len, buf);
    if (!rec)
        return arena.oom ? -ENOMEM : ZE_MARSHALLINGERROR;
    if ((rec->has_data && rec->data.len > INT32_MAX) || rec->n_acl > UINT32_MAX) {
        rc = ZE_MARSHALLINGERROR;
        goto out;
    }
    size_t plen = strlen(path);
    struct node *n;
    if (plen == 1)
        n = t->root;
    else if (!t->load_max || strcmp(path, t->load_max->path) > 0)
        n = NULL; /* above every path loaded so far: not one of them */
    else
        n = find_node(t, path, plen);
    if (n && n != t->root) {
        rc = ZE_DATAINCONSISTENCY; /* the store holds one record per path */
        goto out;
    }

    rc = -ENOMEM;
    uint32_t data_len = rec->has_data ? (uint32_t)rec->data.len : 0;
    if (data_len > 0) {
        data = malloc(data_len);
        if (!data)
            goto out;
        memcpy(data, rec->data.data, data_len);
    }
    if (rec->n_acl > 0) {
        /* The record's strings, borrowed just long enough to look the list up */
        struct acl few[4], *view = rec->n_acl <= 4 ? few : calloc(rec->n_acl, sizeof *view);
        if (!view)
            goto out;
        for (size_t i = 0; i < rec->n_acl; i++) {
            view[i].perms = rec->acl[i]->perms;
            view[i].scheme = rec->acl[i]->scheme ? rec->acl[i]->scheme : (char *)"";
            view[i].id = rec->acl[i]->id ? rec->acl[i]->id : (char *)"";
        }
        acls = acl_ref(t, view, (uint32_t)rec->n_acl);
        if (view != few)
            free(view);
        if (!acls)
            goto out;
        n_acls = (uint32_t)rec->n_acl;
    }
    if (!n) {
        n = node_new(path, plen);
        if (!n)
            goto out;
        HASH_ADD_KEYPTR(hh, t->nodes, n->path, plen, n);
        if (!t->load_max || strcmp(path, t->load_max->path) > 0)
            t->load_max = n;
        /* A parent that comes later is linked by tree_load_finish. */
        n->parent = loaded_parent(t, n->path);
        if (n->parent)
            HASH_ADD_KEYPTR(hh_child, n->parent->children, node_name(n), strlen(node_name(n)), n);
        else
            t->load_unlinked++;
    }
    t->load_prev = n;
    free(n->data);
    acl_unref(t, n->acls);
    n->data = data;
    n->acls = acls;
    n->n_acls = n_acls;
    data = NULL;
    acls = NULL;
    n->stat.czxid = rec->stat->czxid;
    n->stat.mzxid = rec->stat->mzxid;
    n->stat.ctime = rec->stat->ctime;
    n->stat.mtime = rec->stat->mtime;
    n->stat.version = rec->stat->version;
    n->stat.cversion = rec->stat->cversion;
    n->stat.aversion = rec->stat->aversion;
    n->stat.ephemeral_owner = rec->stat->ephemeral_owner;
    n->stat.pzxid = rec->stat->pzxid;
    n->stat.data_length = (int32_t)data_len;
    n->kind = rec->has_kind ? rec->kind : 0;
    n->policy = rec->has_policy ? rec->policy : 0;
    rc = 0;
out:
    free(data);
    acl_unref(t, acls);
    if (arena.spilled)
        zkfs__rec__node__free_unpacked(rec, &allocator); /* else the arena held it all */
    return rc;
}

int tree_session_encode(const struct tree_session *s, uint8_t **buf, size_t *len)
{
    Zkfs__Rec__Session rec = ZKFS__REC__SESSION__INIT;
    rec.id = s->id;
    rec.timeout_ms = s->timeout_ms;
    rec.passwd.len = PASSWD_LEN;
    rec.passwd.data = (uint8_t *)s->passwd;
    size_t size = zkfs__rec__session__get_packed_size(&rec);
    uint8_t *out = malloc(size);
    if (!out)
        return -ENOMEM;
    zkfs__rec__session__pack(&rec, out);
    *buf = out;
    *len = size;
    return 0;
}

int tree_load_session(struct tree *t, const uint8_t *buf, size_t len)
{
    int oom = 0;
    ProtobufCAllocator allocator = {
        .alloc = txn_oom_alloc, .free = txn_oom_free, .allocator_data = &oom};
    int rc = 0;

    Zkfs__Rec__Session *rec = zkfs__rec__session__unpack(&allocator, len, buf);
    if (!rec)
        return oom ? -ENOMEM : ZE_MARSHALLINGERROR;
    if (rec->passwd.len != PASSWD_LEN) {
        rc = ZE_MARSHALLINGERROR;
        goto out;
    }
    struct tree_session *s = find_session(t, rec->id);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) {
            rc = -ENOMEM;
            goto out;
        }
        s->id = rec->id;
        HASH_ADD(hh, t->sessions, id, sizeof s->id, s);
    }
    s->timeout_ms = rec->timeout_ms;
    memcpy(s->passwd, rec->passwd.data, PASSWD_LEN);
out:
    zkfs__rec__session__free_unpacked(rec, &allocator);
    return rc;
}

int tree_load_finish(struct tree *t)
{
    struct node *n;
    struct tree_session *s;

    /* Check every missing parent before linking any, so a bad store changes nothing more here
     * (the caller discards the tree). Loaded in the store's order, none is missing. */
    if (t->load_unlinked) {
        for (n = t->nodes; n; n = n->hh.next)
            if (n != t->root && !n->parent && !find_node(t, n->path, path_parent_len(n->path)))
                return ZE_DATAINCONSISTENCY;
        for (n = t->nodes; n; n = n->hh.next) {
            if (n == t->root || n->parent)
                continue;
            n->parent = find_node(t, n->path, path_parent_len(n->path));
            HASH_ADD_KEYPTR(hh_child, n->parent->children, node_name(n), strlen(node_name(n)), n);
        }
        t->load_unlinked = 0;
    }
    for (s = t->sessions; s; s = s->hh.next)
        clear_ephemerals(s);
    t->data_bytes = 0;
    for (n = t->nodes; n; n = n->hh.next) {
        n->stat.num_children = (int32_t)HASH_CNT(hh_child, n->children);
        t->data_bytes += strlen(n->path) + (uint32_t)n->stat.data_length;
        track(t, n);
    }
    t->load_max = t->load_prev = NULL; /* tree_apply may delete them from now on */
    return 0;
}

/*
 * Digest: each node and session is hashed on its own (FNV-1a, then a 64-bit finalizer so that
 * the sums below spread well) and the hashes are added up, as ZooKeeper's DigestCalculator
 * does: the result does not depend on hash-table order, and needs no sort or allocation.
 */
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* Fixed little-endian bytes, so the digest is the same on every host. */
static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return fnv(h, b, sizeof b);
}

/* Length-prefixed, so that ("ab", "c") and ("a", "bc") differ. */
static uint64_t fnv_bytes(uint64_t h, const void *p, size_t len)
{
    return fnv(fnv_u64(h, len), p, len);
}

static uint64_t fnv_str(uint64_t h, const char *s)
{
    return s ? fnv_bytes(h, s, strlen(s)) : fnv_u64(h, UINT64_MAX);
}

/* splitmix64's finalizer. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t node_digest(const struct node *n)
{
    uint64_t h = fnv_u64(FNV_OFFSET, 'N');
    h = fnv_str(h, n->path);
    h = fnv_u64(h, (uint64_t)n->stat.czxid);
    h = fnv_u64(h, (uint64_t)n->stat.mzxid);
    h = fnv_u64(h, (uint64_t)n->stat.ctime);
    h = fnv_u64(h, (uint64_t)n->stat.mtime);
    h = fnv_u64(h, (uint64_t)(int64_t)n->stat.version);
    h = fnv_u64(h, (uint64_t)(int64_t)n->stat.cversion);
    h = fnv_u64(h, (uint64_t)(int64_t)n->stat.aversion);
    h = fnv_u64(h, (uint64_t)n->stat.ephemeral_owner);
    h = fnv_u64(h, (uint64_t)(int64_t)n->stat.num_children);
    h = fnv_u64(h, (uint64_t)n->stat.pzxid);
    h = fnv_bytes(h, n->data, n->data ? (size_t)n->stat.data_length : 0);
    h = fnv_u64(h, n->n_acls);
    for (uint32_t i = 0; i < n->n_acls; i++) {
        h = fnv_u64(h, n->acls[i].perms);
        h = fnv_str(h, n->acls[i].scheme);
        h = fnv_str(h, n->acls[i].id);
    }
    h = fnv_u64(h, n->kind);
    h = fnv_u64(h, n->policy);
    return mix(h);
}

static uint64_t session_digest(const struct tree_session *s)
{
    uint64_t h = fnv_u64(FNV_OFFSET, 'S');
    h = fnv_u64(h, s->id);
    h = fnv_u64(h, (uint64_t)(int64_t)s->timeout_ms);
    h = fnv(h, s->passwd, PASSWD_LEN);
    return mix(h);
}

uint64_t tree_digest(const struct tree *t)
{
    uint64_t nodes = 0, sessions = 0, n_nodes = 0, n_sessions = 0;
    for (const struct node *n = t->nodes; n; n = n->hh.next) {
        nodes += node_digest(n);
        n_nodes++;
    }
    for (const struct tree_session *s = t->sessions; s; s = s->hh.next) {
        sessions += session_digest(s);
        n_sessions++;
    }
    uint64_t h = fnv_u64(FNV_OFFSET, n_nodes);
    h = fnv_u64(h, nodes);
    h = fnv_u64(h, n_sessions);
    h = fnv_u64(h, sessions);
    return mix(h);
}
