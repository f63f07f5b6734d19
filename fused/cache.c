/* fused's node cache: znodes by path, each valid as of a zxid, never taken back in time. */
#include "cache.h"

#include "path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KIND_DIR 2 /* replica/txn.h NODE_KIND_DIR */

struct blob *blob_new(const void *data, size_t len)
{
    struct blob *b = malloc(sizeof(*b) + (len ? len : 1));
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = (uint32_t)len;
    if (len)
        memcpy(b->bytes, data, len);
    return b;
}

struct blob *blob_ref(struct blob *b)
{
    if (b)
        __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
    return b;
}

void blob_unref(struct blob *b)
{
    if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(b);
}

static void children_free(struct node *n)
{
    struct child *ch, *tmp;
    HASH_ITER(hh, n->children, ch, tmp)
    {
        HASH_DEL(n->children, ch);
        free(ch);
    }
    n->n_children = 0;
    n->has_children = 0;
}

static void node_free(struct node *n)
{
    children_free(n);
    blob_unref(n->data);
    free(n->path);
    free(n);
}

void cache_init(struct cache *c)
{
    memset(c, 0, sizeof(*c));
}

void cache_close(struct cache *c)
{
    struct node *n, *tmp;
    HASH_ITER(hh, c->nodes, n, tmp)
    {
        HASH_DEL(c->nodes, n);
        node_free(n);
    }
    c->n_nodes = 0;
}

int stat_is_dir(const struct zc_stat *st)
{
    return st->kind == KIND_DIR || st->num_children > 0;
}

int node_is_dir(const struct node *n)
{
    return stat_is_dir(&n->st) || (n->has_children && n->n_children > 0);
}

struct node *cache_get(struct cache *c, const char *path)
{
    struct node *n = NULL;
    HASH_FIND_STR(c->nodes, path, n);
    return n;
}

int cache_fresh(const struct cache *c, int64_t reply_zxid)
{
    return reply_zxid >= c->seen_zxid;
}

int cache_has_child(const struct node *n, const char *name)
{
    struct child *ch = NULL;
    HASH_FIND_STR(n->children, name, ch);
    return ch != NULL;
}

static int child_add(struct node *n, const char *name)
{
    if (cache_has_child(n, name))
        return 0;
    size_t len = strlen(name);
    struct child *ch = malloc(sizeof(*ch) + len + 1);
    if (!ch)
        return -ENOMEM;
    memcpy(ch->name, name, len + 1);
    HASH_ADD_KEYPTR(hh, n->children, ch->name, len, ch);
    n->n_children++;
    return 1;
}

static int child_del(struct node *n, const char *name)
{
    struct child *ch = NULL;
    HASH_FIND_STR(n->children, name, ch);
    if (!ch)
        return 0;
    HASH_DEL(n->children, ch);
    free(ch);
    n->n_children--;
    return 1;
}

/* The parent's path (malloc'd), or NULL for "/" or on ENOMEM. */
static char *parent_of(const char *path)
{
    size_t plen = path_parent_len(path);
    if (plen == 0)
        return NULL;
    return strndup(path, plen);
}

void cache_child_changed(struct cache *c, const char *parent, const char *name, int add,
                         int64_t zxid)
{
    struct node *p = cache_get(c, parent);
    if (!p)
        return;
    /* Adding or removing a name is idempotent: a read answered at this very zxid already
     * reflects the change, and applying it again is harmless. */
    if (p->has_children && zxid >= p->children_asof) {
        if (add)
            child_add(p, name);
        else
            child_del(p, name);
        p->children_asof = zxid;
    }
    if (zxid >= p->asof) {
        /* The parent's Stat as ZooKeeper changes it for a child created or deleted. */
        if (p->has_children) {
            p->st.num_children = (int32_t)p->n_children;
        } else if (zxid > p->asof) {
            if (add)
                p->st.num_children++;
            else if (p->st.num_children > 0)
                p->st.num_children--;
        }
        if (add && zxid > p->asof)
            p->st.cversion++;
        p->st.pzxid = zxid;
        p->asof = zxid;
    }
}

struct node *cache_put(struct cache *c, const char *path, const struct zc_stat *st,
                       struct blob *data, int64_t asof)
{
    struct node *n = cache_get(c, path);
    if (n) {
        if (st->czxid < n->st.czxid)
            return n; /* an older incarnation */
        if (st->czxid == n->st.czxid && asof < n->asof)
            return n;
        if (st->czxid != n->st.czxid) {
            children_free(n);
            blob_unref(n->data);
            n->data = NULL;
            n->children_asof = 0;
        }
        if (data || n->st.mzxid != st->mzxid) {
            blob_unref(n->data);
            n->data = blob_ref(data);
        }
        n->st = *st;
        n->asof = asof;
        return n;
    }
    n = calloc(1, sizeof(*n));
    if (!n || !(n->path = strdup(path))) {
        free(n);
        return NULL;
    }
    n->st = *st;
    n->asof = asof;
    n->data = blob_ref(data);
    HASH_ADD_KEYPTR(hh, c->nodes, n->path, strlen(n->path), n);
    c->n_nodes++;
    char *parent = parent_of(path);
    if (parent) {
        struct node *p = cache_get(c, parent);
        if (p && p->has_children && asof >= p->children_asof)
            child_add(p, path_name(path));
        free(parent);
    }
    return n;
}

int cache_put_children(struct cache *c, struct node *n, const char *const *names, uint32_t count,
                       int64_t asof)
{
    (void)c;
    if (n->has_children && asof < n->children_asof)
        return 0;
    children_free(n);
    for (uint32_t i = 0; i < count; i++) {
        if (child_add(n, names[i]) < 0) {
            children_free(n);
            return -ENOMEM;
        }
    }
    n->has_children = 1;
    n->children_asof = asof;
    if (asof >= n->asof)
        n->st.num_children = (int32_t)n->n_children;
    return 0;
}

void cache_drop(struct cache *c, const char *path)
{
    struct node *n = cache_get(c, path);
    if (!n)
        return;
    HASH_DEL(c->nodes, n);
    c->n_nodes--;
    node_free(n);
}

int cache_deleted(struct cache *c, const char *path, int64_t zxid)
{
    char *parent = parent_of(path);
    if (parent) {
        cache_child_changed(c, parent, path_name(path), 0, zxid);
        free(parent);
    }
    struct node *n = cache_get(c, path);
    if (!n)
        return 1;
    if (n->asof >= zxid)
        return 0; /* read after the delete: a later incarnation */
    cache_drop(c, path);
    return 1;
}

char **cache_paths(struct cache *c, size_t *count)
{
    char **v = calloc(c->n_nodes + 1, sizeof(*v));
    size_t i = 0;
    *count = 0;
    if (!v)
        return NULL;
    for (struct node *n = c->nodes; n; n = n->hh.next) {
        if (i >= c->n_nodes)
            break;
        v[i] = strdup(n->path);
        if (!v[i])
            break;
        i++;
    }
    *count = i;
    return v;
}
