/* The client's protobuf edge: requests built from zc_req, replies and events converted to the
 * structs of client.h. Nothing here touches the connection or the session. */
#include "client_msg.h"

#include "err.h"
#include "frame.h"
#include "path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PERMS_ALL 31

/* ---- paths ---- */

char *client_msg_full_path(const struct client_msg_chroot *root, const char *path)
{
    if (root->len && strcmp(path, "/") == 0)
        path = "";
    size_t plen = strlen(path);
    char *s = malloc(root->len + plen + 1);
    if (!s)
        return NULL;
    memcpy(s, root->path, root->len);
    memcpy(s + root->len, path, plen + 1);
    return s;
}

const char *client_msg_strip_chroot(const struct client_msg_chroot *root, const char *p)
{
    if (!root->len)
        return p;
    if (strncmp(p, root->path, root->len) != 0)
        return NULL;
    if (p[root->len] == 0)
        return "/";
    if (p[root->len] == '/')
        return p + root->len;
    return NULL;
}

/* The client path for a server path, or the server path itself if it is outside the chroot. */
static const char *strip_or_keep(const struct client_msg_chroot *root, const char *p)
{
    const char *s = p ? client_msg_strip_chroot(root, p) : NULL;
    return s ? s : p;
}

/* ---- requests: zc_req -> protobuf -> frame ---- */

static void *scr_keep(struct client_msg_scratch *s, void *p)
{
    if (!p) {
        s->oom = 1;
        return NULL;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        void **np = realloc(s->p, cap * sizeof(*np));
        if (!np) {
            free(p);
            s->oom = 1;
            return NULL;
        }
        s->p = np;
        s->cap = cap;
    }
    s->p[s->n++] = p;
    return p;
}

static void *scr_calloc(struct client_msg_scratch *s, size_t n, size_t size)
{
    return scr_keep(s, calloc(n ? n : 1, size));
}

static void scr_free(struct client_msg_scratch *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->p[i]);
    free(s->p);
    memset(s, 0, sizeof(*s));
}

static char *scr_path(struct client_msg_scratch *s, const struct client_msg_chroot *root,
                      const char *path)
{
    return scr_keep(s, client_msg_full_path(root, path));
}

static int is_sequential(int mode)
{
    return mode == ZC_PERSISTENT_SEQUENTIAL || mode == ZC_EPHEMERAL_SEQUENTIAL ||
           mode == ZC_PERSISTENT_SEQUENTIAL_WITH_TTL;
}

static int check_path(const char *path, int sequential)
{
    if (!path)
        return ZE_BADARGUMENTS;
    return path_validate(path, strlen(path), sequential);
}

static int validate(const struct zc_req *r, int in_multi)
{
    switch (r->op) {
    case ZC_OP_CREATE:
        if (r->mode < ZC_PERSISTENT || r->mode > ZC_PERSISTENT_SEQUENTIAL_WITH_TTL)
            return ZE_BADARGUMENTS;
        if ((r->mode == ZC_PERSISTENT_WITH_TTL || r->mode == ZC_PERSISTENT_SEQUENTIAL_WITH_TTL) &&
            r->ttl <= 0)
            return ZE_BADARGUMENTS;
        if (r->n_acls && !r->acls)
            return ZE_BADARGUMENTS;
        for (uint32_t i = 0; i < r->n_acls; i++)
            if (!r->acls[i].scheme || !r->acls[i].id)
                return ZE_BADARGUMENTS;
        if (r->data_len && !r->data)
            return ZE_BADARGUMENTS;
        return check_path(r->path, is_sequential(r->mode));
    case ZC_OP_SET_DATA:
        if (r->data_len && !r->data)
            return ZE_BADARGUMENTS;
        return check_path(r->path, 0);
    case ZC_OP_DELETE:
        return check_path(r->path, 0);
    case ZC_OP_CHECK:
        return in_multi ? check_path(r->path, 0) : ZE_BADARGUMENTS;
    default:
        break;
    }
    if (in_multi)
        return ZE_BADARGUMENTS;
    switch (r->op) {
    case ZC_OP_MULTI:
        if (r->n_ops && !r->ops)
            return ZE_BADARGUMENTS;
        for (uint32_t i = 0; i < r->n_ops; i++) {
            int rc = validate(&r->ops[i], 1);
            if (rc)
                return rc;
        }
        return 0;
    case ZC_OP_SET_ACL:
        if (r->n_acls && !r->acls)
            return ZE_BADARGUMENTS;
        for (uint32_t i = 0; i < r->n_acls; i++)
            if (!r->acls[i].scheme || !r->acls[i].id)
                return ZE_BADARGUMENTS;
        return check_path(r->path, 0);
    case ZC_OP_ADD_WATCH:
        if (r->mode != 0 && r->mode != 1)
            return ZE_BADARGUMENTS;
        return check_path(r->path, 0);
    case ZC_OP_REMOVE_WATCHES:
        if (r->mode < 1 || r->mode > 5)
            return ZE_BADARGUMENTS;
        return check_path(r->path, 0);
    case ZC_OP_GET_DATA:
    case ZC_OP_EXISTS:
    case ZC_OP_GET_CHILDREN:
    case ZC_OP_SYNC:
    case ZC_OP_GET_ACL:
    case ZC_OP_SET_META:
    case ZC_OP_GET_EPHEMERALS:
        return check_path(r->path, 0);
    default:
        return ZE_BADARGUMENTS;
    }
}

static Zkfs__Cli__Acl **build_acls(struct client_msg_scratch *s, const struct zc_acl *acls,
                                   uint32_t n, size_t *n_out)
{
    static const struct zc_acl world = {PERMS_ALL, "world", "anyone"};
    if (!acls || !n) {
        acls = &world;
        n = 1;
    }
    Zkfs__Cli__Acl **arr = scr_calloc(s, n, sizeof(*arr));
    Zkfs__Cli__Acl *a = scr_calloc(s, n, sizeof(*a));
    if (!arr || !a)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        zkfs__cli__acl__init(&a[i]);
        a[i].perms = acls[i].perms;
        a[i].scheme = (char *)acls[i].scheme;
        a[i].id = (char *)acls[i].id;
        arr[i] = &a[i];
    }
    *n_out = n;
    return arr;
}

static Zkfs__Cli__CreateRequest *build_create(struct client_msg_scratch *s,
                                              const struct client_msg_chroot *root,
                                              const struct zc_req *r)
{
    Zkfs__Cli__CreateRequest *m = scr_calloc(s, 1, sizeof(*m));
    if (!m)
        return NULL;
    zkfs__cli__create_request__init(m);
    m->path = scr_path(s, root, r->path);
    m->has_data = 1;
    m->data.data = (uint8_t *)r->data;
    m->data.len = r->data_len;
    m->acl = build_acls(s, r->acls, r->n_acls, &m->n_acl);
    m->has_mode = 1;
    m->mode = r->mode;
    if (r->mode == ZC_PERSISTENT_WITH_TTL || r->mode == ZC_PERSISTENT_SEQUENTIAL_WITH_TTL) {
        m->has_ttl = 1;
        m->ttl = r->ttl;
    }
    if (r->has_kind) {
        m->has_kind = 1;
        m->kind = r->kind;
    }
    if (r->has_policy) {
        m->has_policy = 1;
        m->policy = r->policy;
    }
    return m;
}

static Zkfs__Cli__DeleteRequest *build_delete(struct client_msg_scratch *s,
                                              const struct client_msg_chroot *root,
                                              const struct zc_req *r)
{
    Zkfs__Cli__DeleteRequest *m = scr_calloc(s, 1, sizeof(*m));
    if (!m)
        return NULL;
    zkfs__cli__delete_request__init(m);
    m->path = scr_path(s, root, r->path);
    m->has_version = 1;
    m->version = r->version;
    return m;
}

static Zkfs__Cli__SetDataRequest *build_set_data(struct client_msg_scratch *s,
                                                 const struct client_msg_chroot *root,
                                                 const struct zc_req *r)
{
    Zkfs__Cli__SetDataRequest *m = scr_calloc(s, 1, sizeof(*m));
    if (!m)
        return NULL;
    zkfs__cli__set_data_request__init(m);
    m->path = scr_path(s, root, r->path);
    m->has_data = 1;
    m->data.data = (uint8_t *)r->data;
    m->data.len = r->data_len;
    m->has_version = 1;
    m->version = r->version;
    return m;
}

static Zkfs__Cli__CheckRequest *build_check(struct client_msg_scratch *s,
                                            const struct client_msg_chroot *root,
                                            const struct zc_req *r)
{
    Zkfs__Cli__CheckRequest *m = scr_calloc(s, 1, sizeof(*m));
    if (!m)
        return NULL;
    zkfs__cli__check_request__init(m);
    m->path = scr_path(s, root, r->path);
    m->has_version = 1;
    m->version = r->version;
    return m;
}

static Zkfs__Cli__PathRequest *build_path_req(struct client_msg_scratch *s,
                                              const struct client_msg_chroot *root,
                                              const struct zc_req *r, int watch)
{
    Zkfs__Cli__PathRequest *m = scr_calloc(s, 1, sizeof(*m));
    if (!m)
        return NULL;
    zkfs__cli__path_request__init(m);
    m->path = scr_path(s, root, r->path);
    if (watch) {
        m->has_watch = 1;
        m->watch = r->watch != 0;
    }
    return m;
}

static int build_multi(struct client_msg_scratch *s, const struct client_msg_chroot *root,
                       const struct zc_req *r, Zkfs__Cli__MultiRequest **out)
{
    Zkfs__Cli__MultiRequest *m = scr_calloc(s, 1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    zkfs__cli__multi_request__init(m);
    m->ops = scr_calloc(s, r->n_ops, sizeof(*m->ops));
    Zkfs__Cli__Op *ops = scr_calloc(s, r->n_ops, sizeof(*ops));
    if (!m->ops || !ops)
        return -ENOMEM;
    m->n_ops = r->n_ops;
    for (uint32_t i = 0; i < r->n_ops; i++) {
        const struct zc_req *o = &r->ops[i];
        zkfs__cli__op__init(&ops[i]);
        switch (o->op) {
        case ZC_OP_CREATE:
            ops[i].op_case = ZKFS__CLI__OP__OP_CREATE;
            ops[i].create = build_create(s, root, o);
            break;
        case ZC_OP_DELETE:
            ops[i].op_case = ZKFS__CLI__OP__OP_DELETE;
            ops[i].delete_ = build_delete(s, root, o);
            break;
        case ZC_OP_SET_DATA:
            ops[i].op_case = ZKFS__CLI__OP__OP_SET_DATA;
            ops[i].set_data = build_set_data(s, root, o);
            break;
        default:
            ops[i].op_case = ZKFS__CLI__OP__OP_CHECK;
            ops[i].check = build_check(s, root, o);
            break;
        }
        m->ops[i] = &ops[i];
    }
    *out = m;
    return 0;
}

/* Fills m from r (pointers into s or borrowed from r). */
static int build_request(struct client_msg_scratch *s, const struct client_msg_chroot *root,
                         const struct zc_req *r, Zkfs__Cli__Request *m)
{
    switch (r->op) {
    case ZC_OP_CREATE:
        m->op_case = ZKFS__CLI__REQUEST__OP_CREATE;
        m->create = build_create(s, root, r);
        break;
    case ZC_OP_DELETE:
        m->op_case = ZKFS__CLI__REQUEST__OP_DELETE;
        m->delete_ = build_delete(s, root, r);
        break;
    case ZC_OP_SET_DATA:
        m->op_case = ZKFS__CLI__REQUEST__OP_SET_DATA;
        m->set_data = build_set_data(s, root, r);
        break;
    case ZC_OP_GET_DATA:
        m->op_case = ZKFS__CLI__REQUEST__OP_GET_DATA;
        m->get_data = build_path_req(s, root, r, 1);
        break;
    case ZC_OP_EXISTS:
        m->op_case = ZKFS__CLI__REQUEST__OP_EXISTS;
        m->exists = build_path_req(s, root, r, 1);
        break;
    case ZC_OP_GET_CHILDREN:
        m->op_case = ZKFS__CLI__REQUEST__OP_GET_CHILDREN;
        m->get_children = build_path_req(s, root, r, 1);
        break;
    case ZC_OP_SYNC:
        m->op_case = ZKFS__CLI__REQUEST__OP_SYNC;
        m->sync = build_path_req(s, root, r, 0);
        break;
    case ZC_OP_GET_ACL:
        m->op_case = ZKFS__CLI__REQUEST__OP_GET_ACL;
        m->get_acl = build_path_req(s, root, r, 0);
        break;
    case ZC_OP_GET_EPHEMERALS:
        m->op_case = ZKFS__CLI__REQUEST__OP_GET_EPHEMERALS;
        m->get_ephemerals = build_path_req(s, root, r, 0);
        break;
    case ZC_OP_MULTI: {
        m->op_case = ZKFS__CLI__REQUEST__OP_MULTI;
        int rc = build_multi(s, root, r, &m->multi);
        if (rc)
            return rc;
        break;
    }
    case ZC_OP_SET_ACL: {
        Zkfs__Cli__SetAclRequest *a = scr_calloc(s, 1, sizeof(*a));
        if (!a)
            return -ENOMEM;
        zkfs__cli__set_acl_request__init(a);
        a->path = scr_path(s, root, r->path);
        a->acl = build_acls(s, r->acls, r->n_acls, &a->n_acl);
        a->has_version = 1;
        a->version = r->version;
        m->op_case = ZKFS__CLI__REQUEST__OP_SET_ACL;
        m->set_acl = a;
        break;
    }
    case ZC_OP_ADD_WATCH: {
        Zkfs__Cli__AddWatchRequest *a = scr_calloc(s, 1, sizeof(*a));
        if (!a)
            return -ENOMEM;
        zkfs__cli__add_watch_request__init(a);
        a->path = scr_path(s, root, r->path);
        a->mode = r->mode;
        m->op_case = ZKFS__CLI__REQUEST__OP_ADD_WATCH;
        m->add_watch = a;
        break;
    }
    case ZC_OP_REMOVE_WATCHES: {
        Zkfs__Cli__RemoveWatchesRequest *a = scr_calloc(s, 1, sizeof(*a));
        if (!a)
            return -ENOMEM;
        zkfs__cli__remove_watches_request__init(a);
        a->path = scr_path(s, root, r->path);
        a->type = r->mode;
        m->op_case = ZKFS__CLI__REQUEST__OP_REMOVE_WATCHES;
        m->remove_watches = a;
        break;
    }
    case ZC_OP_SET_META: {
        Zkfs__Cli__SetMetaRequest *a = scr_calloc(s, 1, sizeof(*a));
        if (!a)
            return -ENOMEM;
        zkfs__cli__set_meta_request__init(a);
        a->path = scr_path(s, root, r->path);
        a->has_kind = r->has_kind != 0;
        a->kind = r->kind;
        a->has_policy = r->has_policy != 0;
        a->policy = r->policy;
        m->op_case = ZKFS__CLI__REQUEST__OP_SET_META;
        m->set_meta = a;
        break;
    }
    default:
        return ZE_BADARGUMENTS;
    }
    return s->oom ? -ENOMEM : 0;
}

int client_msg_validate(const struct zc_req *r)
{
    return validate(r, 0);
}

int client_msg_req_init(struct client_msg_req *b, const struct client_msg_chroot *root,
                        const struct zc_req *r)
{
    memset(&b->s, 0, sizeof(b->s));
    zkfs__cli__request__init(&b->m);
    return build_request(&b->s, root, r, &b->m);
}

void client_msg_req_close(struct client_msg_req *b)
{
    scr_free(&b->s);
}

int client_msg_pack(const Zkfs__Cli__Request *m, uint8_t **out, size_t *len)
{
    size_t n = zkfs__cli__request__get_packed_size(m);
    if (n > CLIENT_MSG_MAX_FRAME)
        return -EMSGSIZE;
    uint8_t *buf = malloc(4 + n);
    if (!buf)
        return -ENOMEM;
    frame_put_u32(buf, (uint32_t)n);
    zkfs__cli__request__pack(m, buf + 4);
    *out = buf;
    *len = 4 + n;
    return 0;
}

/* ---- replies and events ---- */

static void stat_from_pb(struct zc_stat *d, const Zkfs__Cli__Stat *s)
{
    d->czxid = s->czxid;
    d->mzxid = s->mzxid;
    d->ctime = s->ctime;
    d->mtime = s->mtime;
    d->version = s->version;
    d->cversion = s->cversion;
    d->aversion = s->aversion;
    d->ephemeral_owner = s->ephemeral_owner;
    d->data_length = s->data_length;
    d->num_children = s->num_children;
    d->pzxid = s->pzxid;
    d->kind = s->has_kind ? s->kind : 0;
    d->policy = s->has_policy ? s->policy : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void client_msg_result_close(struct client_msg_result *m)
{
    free(m->children);
    free(m->acls);
    free(m->results);
}

void client_msg_result_init(struct client_msg_result *m, const struct client_msg_chroot *root,
                            enum zc_op op, const Zkfs__Cli__Reply *rep)
{
    struct zc_result *r = &m->r;
    memset(m, 0, sizeof(*m));
    r->err = err_from_zk(rep->err);
    r->zxid = rep->zxid;
    if (rep->stat) {
        r->has_stat = 1;
        stat_from_pb(&r->stat, rep->stat);
    }
    if (rep->has_data) {
        r->data = rep->data.data;
        r->data_len = rep->data.len;
    }
    if (rep->path)
        r->path = strip_or_keep(root, rep->path);
    if (rep->n_children) {
        m->children = calloc(rep->n_children, sizeof(*m->children));
        if (!m->children)
            goto oom;
        uint32_t n = 0;
        for (size_t i = 0; i < rep->n_children; i++) {
            const char *s = rep->children[i];
            if (op == ZC_OP_GET_EPHEMERALS && !(s = client_msg_strip_chroot(root, s)))
                continue;
            m->children[n++] = s;
        }
        qsort(m->children, n, sizeof(*m->children), cmp_str);
        r->children = m->children;
        r->n_children = n;
    }
    if (rep->n_acl) {
        m->acls = calloc(rep->n_acl, sizeof(*m->acls));
        if (!m->acls)
            goto oom;
        for (size_t i = 0; i < rep->n_acl; i++) {
            m->acls[i].perms = rep->acl[i]->perms;
            m->acls[i].scheme = rep->acl[i]->scheme;
            m->acls[i].id = rep->acl[i]->id;
        }
        r->acls = m->acls;
        r->n_acls = (uint32_t)rep->n_acl;
    }
    if (rep->n_results) {
        m->results = calloc(rep->n_results, sizeof(*m->results));
        if (!m->results)
            goto oom;
        for (size_t i = 0; i < rep->n_results; i++) {
            const Zkfs__Cli__OpResult *o = rep->results[i];
            m->results[i].err = err_from_zk(o->err);
            m->results[i].path = o->path ? strip_or_keep(root, o->path) : NULL;
            if (o->stat)
                stat_from_pb(&m->results[i].stat, o->stat);
        }
        r->results = m->results;
        r->n_results = (uint32_t)rep->n_results;
    }
    return;
oom:
    client_msg_result_close(m);
    memset(m, 0, sizeof(*m));
    r->err = -ENOMEM;
}

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

/* Copies s into the byte area at *pos; returns the copy. */
static const char *put_str(char *base, size_t *pos, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    memcpy(base + *pos, s, n);
    const char *out = base + *pos;
    *pos += n;
    return out;
}

int client_msg_result_dup(const struct zc_result *src, struct zc_result *d)
{
    *d = *src;
    d->priv_ = NULL;
    size_t head = src->n_acls * sizeof(struct zc_acl) +
                  src->n_results * sizeof(struct zc_op_result) + src->n_children * sizeof(char *);
    size_t bytes = src->data_len + str_size(src->path);
    for (uint32_t i = 0; i < src->n_children; i++)
        bytes += str_size(src->children[i]);
    for (uint32_t i = 0; i < src->n_acls; i++)
        bytes += str_size(src->acls[i].scheme) + str_size(src->acls[i].id);
    for (uint32_t i = 0; i < src->n_results; i++)
        bytes += str_size(src->results[i].path);
    if (head + bytes == 0)
        return 0;
    char *blk = malloc(head + bytes);
    if (!blk)
        return -ENOMEM;
    struct zc_acl *acls = (struct zc_acl *)blk;
    struct zc_op_result *results = (struct zc_op_result *)(acls + src->n_acls);
    const char **children = (const char **)(results + src->n_results);
    char *area = (char *)(children + src->n_children);
    size_t pos = 0;
    if (src->data_len) {
        memcpy(area, src->data, src->data_len);
        d->data = (const uint8_t *)area;
        pos = src->data_len;
    } else {
        d->data = NULL;
    }
    d->path = put_str(area, &pos, src->path);
    for (uint32_t i = 0; i < src->n_children; i++)
        children[i] = put_str(area, &pos, src->children[i]);
    d->children = src->n_children ? children : NULL;
    for (uint32_t i = 0; i < src->n_acls; i++) {
        acls[i].perms = src->acls[i].perms;
        acls[i].scheme = put_str(area, &pos, src->acls[i].scheme);
        acls[i].id = put_str(area, &pos, src->acls[i].id);
    }
    d->acls = src->n_acls ? acls : NULL;
    for (uint32_t i = 0; i < src->n_results; i++) {
        results[i] = src->results[i];
        results[i].path = put_str(area, &pos, src->results[i].path);
    }
    d->results = src->n_results ? results : NULL;
    d->priv_ = blk;
    return 0;
}

void zc_result_free(struct zc_result *r)
{
    if (!r)
        return;
    free(r->priv_);
    memset(r, 0, sizeof(*r));
}

int client_msg_event(const struct client_msg_chroot *root, const Zkfs__Cli__WatchEvent *we,
                     struct zc_event *ev)
{
    const char *path = client_msg_strip_chroot(root, we->path);
    if (!path)
        return -ENOENT;
    *ev = (struct zc_event){we->type, we->state, path, we->zxid};
    return 0;
}
