/* Reads against the committed tree and the session-local requests (watches, auth), run when
 * they reach the head of their connection's queue; the codecs only encode what they find. */
#include "read.h"

#include "acl.h"
#include "conn.h"
#include "digest.h"
#include "err.h"
#include "log.h"
#include "path.h"
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int valid_path(const char *p)
{
    return p && path_validate(p, strlen(p), 0) == 0;
}

static int needs_path(enum req_op op)
{
    switch (op) {
    case REQ_GET_DATA:
    case REQ_EXISTS:
    case REQ_GET_CHILDREN:
    case REQ_GET_ACL:
    case REQ_ADD_WATCH:
    case REQ_REMOVE_WATCHES:
    case REQ_CHECK_WATCHES:
    case REQ_GET_ALL_CHILDREN_NUMBER:
        return 1;
    default:
        return 0;
    }
}

/* getData, exists, getChildren, getACL. ZooKeeper checks the ACL before it registers the
 * watch (FinalRequestProcessor), and exists needs no permission and watches a missing node
 * for its creation. */
static int read_node(struct conn *c, const struct req_op_args *a, struct read_result *out)
{
    struct server *s = c->srv;
    const struct node *n = tree_get(&s->tree, a->path);
    if (!n) {
        if (a->watch && a->op == REQ_EXISTS)
            watch_add(&s->watches, &c->watches, a->path, WATCH_EXIST);
        out->err = ZE_NONODE;
        return 0;
    }
    if (a->op != REQ_EXISTS) {
        uint32_t perm = a->op == REQ_GET_ACL ? PERM_READ | PERM_ADMIN : PERM_READ;
        if ((out->err = acl_check(n->acls, n->n_acls, perm, &c->auth)))
            return 0;
    }
    if (a->watch)
        watch_add(&s->watches, &c->watches, a->path,
                  a->op == REQ_GET_CHILDREN ? WATCH_CHILD : WATCH_DATA);
    out->node = n;
    if (a->op == REQ_GET_CHILDREN && !(out->names = tree_children_sorted(n, &out->n_names)))
        return -ENOMEM;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* getEphemerals: the session's ephemerals whose path starts with the prefix, as a string
 * (ZooKeeper's FinalRequestProcessor: no prefix, or "/", means all of them). */
static int ephemerals(struct conn *c, const struct request *r, const char *prefix,
                      struct read_result *out)
{
    const struct tree_session *ts = tree_session_get(&c->srv->tree, r->session_id);
    size_t count = ts ? HASH_COUNT(ts->ephemerals) : 0, k = 0;
    const char **names = calloc(count + 1, sizeof(*names));
    if (!names)
        return -ENOMEM;
    size_t plen = prefix && strcmp(prefix, "/") ? strlen(prefix) : 0;
    if (ts) {
        struct tree_ephemeral *e, *tmp;
        HASH_ITER(hh, ts->ephemerals, e, tmp)
        {
            if (plen == 0 || strncmp(e->node->path, prefix, plen) == 0)
                names[k++] = e->node->path;
        }
    }
    qsort(names, k, sizeof(*names), cmp_str);
    out->names = names;
    out->n_names = (uint32_t)k;
    return 0;
}

/* getAllChildrenNumber: every node below path, at any depth (DataTree.getAllChildrenNumber). */
static void all_children_number(struct conn *c, const char *path, struct read_result *out)
{
    struct server *s = c->srv;
    const struct node *n = tree_get(&s->tree, path);
    if (!n) {
        out->err = ZE_NONODE;
        return;
    }
    if ((out->err = acl_check(n->acls, n->n_acls, PERM_READ, &c->auth)))
        return;
    if (!strcmp(path, "/")) {
        out->count = (int64_t)tree_count(&s->tree) - 1;
        return;
    }
    size_t plen = strlen(path);
    struct node *x, *tmp;
    HASH_ITER(hh, s->tree.nodes, x, tmp)
    {
        if (strncmp(x->path, path, plen) == 0 && x->path[plen] == '/')
            out->count++;
    }
}

/* ZooKeeper's WatcherType: 1 children, 2 data (and exists), 3 any, 4 persistent, 5 persistent
 * recursive. */
static int watch_kinds(int type, unsigned *kinds)
{
    switch (type) {
    case 1:
        *kinds = 1u << WATCH_CHILD;
        return 0;
    case 2:
        *kinds = (1u << WATCH_DATA) | (1u << WATCH_EXIST);
        return 0;
    case 3:
        *kinds = (1u << WATCH_KINDS) - 1;
        return 0;
    case 4:
        *kinds = 1u << WATCH_PERSISTENT;
        return 0;
    case 5:
        *kinds = 1u << WATCH_RECURSIVE;
        return 0;
    default:
        return ZE_BADARGUMENTS;
    }
}

/* removeWatches, or checkWatches (remove = 0): NOWATCHER when the connection has no watch of
 * that type on path. A check takes each kind out and puts it back, which leaves the watch
 * table as it was (a registration is just owner, path and kind). */
static int change_watches(struct conn *c, const char *path, int type, int remove)
{
    struct watch_mgr *m = &c->srv->watches;
    unsigned kinds;
    int rc = watch_kinds(type, &kinds);
    if (rc)
        return rc;
    int found = 0;
    for (int k = 0; k < WATCH_KINDS; k++) {
        if (!(kinds & (1u << k)) || watch_remove(m, &c->watches, path, 1u << k) == 0)
            continue;
        found = 1;
        if (!remove && watch_add(m, &c->watches, path, (enum watch_kind)k))
            rc = ZE_SYSTEMERROR;
    }
    return rc ? rc : found ? 0 : ZE_NOWATCHER;
}

/* setWatches after a reconnect: re-arm, and fire at once what changed since relative_zxid
 * (DataTree.setWatches). */
static void set_watches(struct conn *c, const struct request *r)
{
    static const enum watch_kind kinds[5] = {WATCH_DATA, WATCH_EXIST, WATCH_CHILD, WATCH_PERSISTENT,
                                             WATCH_RECURSIVE};
    struct server *s = c->srv;
    zxid_t rel = (zxid_t)r->relative_zxid;
    for (int k = 0; k < 5; k++) {
        for (uint32_t i = 0; i < r->n_watch_paths[k]; i++) {
            const char *p = r->watch_paths[k][i];
            if (!valid_path(p))
                continue;
            const struct node *n = tree_get(&s->tree, p);
            int fire = 0;
            switch (k) {
            case 0: /* data */
                fire = !n ? EV_DELETED : (zxid_t)n->stat.mzxid > rel ? EV_DATA_CHANGED : 0;
                break;
            case 1: /* exist */
                fire = n ? EV_CREATED : 0;
                break;
            case 2: /* child */
                fire = !n ? EV_DELETED : (zxid_t)n->stat.pzxid > rel ? EV_CHILDREN_CHANGED : 0;
                break;
            }
            if (fire) {
                conn_deliver_event(&c->watches, fire, p, (int64_t)s->tree.last_applied, s);
                continue;
            }
            watch_add(&s->watches, &c->watches, p, kinds[k]);
        }
    }
}

/* addauth: "digest" with "user:password" proves the id user:base64(sha1(user:password)). */
int read_auth(struct conn *c, const struct req_op_args *a)
{
    if (!a->path || strcmp(a->path, "digest") || !a->data) {
        LOG_INFO("%s: authentication with scheme '%s' refused", c->peer, a->path ? a->path : "");
        return ZE_AUTHFAILED;
    }
    char *id = digest_auth_id((const char *)a->data, a->data_len);
    if (!id)
        return ZE_AUTHFAILED;
    int rc = auth_add(&c->auth, "digest", id);
    free(id);
    return rc ? ZE_SYSTEMERROR : 0;
}

int read_run(struct conn *c, const struct request *r, const struct req_op_args *a,
             struct read_result *out)
{
    struct server *s = c->srv;
    memset(out, 0, sizeof(*out));
    if (needs_path(a->op) && !valid_path(a->path)) {
        out->err = ZE_BADARGUMENTS;
        return 0;
    }
    switch (a->op) {
    case REQ_GET_DATA:
    case REQ_EXISTS:
    case REQ_GET_CHILDREN:
    case REQ_GET_ACL:
        return read_node(c, a, out);
    case REQ_GET_EPHEMERALS:
        return ephemerals(c, r, a->path, out);
    case REQ_GET_ALL_CHILDREN_NUMBER:
        all_children_number(c, a->path, out);
        return 0;
    case REQ_ADD_WATCH:
        if (a->mode != 0 && a->mode != 1)
            out->err = ZE_BADARGUMENTS;
        else if (watch_add(&s->watches, &c->watches, a->path,
                           a->mode ? WATCH_RECURSIVE : WATCH_PERSISTENT))
            out->err = ZE_SYSTEMERROR;
        return 0;
    case REQ_REMOVE_WATCHES:
    case REQ_CHECK_WATCHES:
        out->err = change_watches(c, a->path, a->mode, a->op == REQ_REMOVE_WATCHES);
        return 0;
    case REQ_SET_WATCHES:
        set_watches(c, r);
        return 0;
    case REQ_PING:
    case REQ_WHO_AM_I:
        return 0;
    case REQ_AUTH:
        out->err = read_auth(c, a);
        return 0;
    case REQ_RECONFIG:
        /* a cluster without dynamic reconfiguration (PrepRequestProcessor) */
        out->err = ZE_RECONFIGDISABLED;
        return 0;
    default:
        out->err = ZE_UNIMPLEMENTED;
        return 0;
    }
}

void read_result_free(struct read_result *res)
{
    free(res->names);
    res->names = NULL;
    res->n_names = 0;
}
