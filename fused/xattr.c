/* zkfs-fused extended attributes: user.zk.data (a node's own data), user.zk.stat (the Stat
 * as JSON), one attribute per Stat field, user.zk.kind and user.zk.policy (read and write). */
#include "ops.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#define PREFIX "user.zk."

static struct fs *req_fs(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* Every name listxattr gives, in order. */
static const char *const names[] = {
    "data",       "stat",        "czxid",    "mzxid",    "ctime",
    "mtime",      "version",     "cversion", "aversion", "ephemeralOwner",
    "dataLength", "numChildren", "pzxid",    "kind",     "policy",
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

static int known(const char *field)
{
    for (size_t i = 0; i < N_NAMES; i++)
        if (strcmp(names[i], field) == 0)
            return 1;
    return 0;
}

static const char *kind_name(uint32_t kind)
{
    return kind == KIND_FILE ? "file" : kind == KIND_DIR ? "directory" : "unset";
}

/* The value of a Stat field (or the JSON), as text, in buf; -1 if not a Stat field. */
static int stat_value(const struct zc_stat *s, const char *field, char *buf, size_t len)
{
    char pol[POLICY_NAME_MAX];
    policy_format(s->policy, pol, sizeof(pol));
    if (strcmp(field, "stat") == 0)
        return snprintf(buf, len,
                        "{\"czxid\":%" PRId64 ",\"mzxid\":%" PRId64 ",\"ctime\":%" PRId64
                        ",\"mtime\":%" PRId64 ",\"version\":%d,\"cversion\":%d,\"aversion\":%d"
                        ",\"ephemeralOwner\":%" PRId64 ",\"dataLength\":%d,\"numChildren\":%d"
                        ",\"pzxid\":%" PRId64 ",\"kind\":\"%s\",\"policy\":\"%s\"}\n",
                        s->czxid, s->mzxid, s->ctime, s->mtime, s->version, s->cversion,
                        s->aversion, s->ephemeral_owner, s->data_length, s->num_children, s->pzxid,
                        kind_name(s->kind), pol);
    const struct {
        const char *name;
        int64_t v;
    } nums[] = {{"czxid", s->czxid},
                {"mzxid", s->mzxid},
                {"ctime", s->ctime},
                {"mtime", s->mtime},
                {"version", s->version},
                {"cversion", s->cversion},
                {"aversion", s->aversion},
                {"ephemeralOwner", s->ephemeral_owner},
                {"dataLength", s->data_length},
                {"numChildren", s->num_children},
                {"pzxid", s->pzxid}};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
        if (strcmp(nums[i].name, field) == 0)
            return snprintf(buf, len, "%" PRId64, nums[i].v);
    if (strcmp(field, "kind") == 0)
        return snprintf(buf, len, "%s", kind_name(s->kind));
    if (strcmp(field, "policy") == 0)
        return snprintf(buf, len, "%s", pol);
    return -1;
}

static void reply_value(fuse_req_t req, const void *v, size_t len, size_t size)
{
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (len > size)
        fuse_reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, v, len);
}

void op_getxattr(fuse_req_t req, fuse_ino_t nodeid, const char *name, size_t size)
{
    struct fs *fs = req_fs(req);
    if (strncmp(name, "user.", 5) != 0) {
        fuse_reply_err(req, EOPNOTSUPP); /* never ENOSYS: that disables xattrs for the mount */
        return;
    }
    if (strncmp(name, PREFIX, strlen(PREFIX)) != 0 || !known(name + strlen(PREFIX))) {
        fuse_reply_err(req, ENODATA);
        return;
    }
    const char *field = name + strlen(PREFIX);
    int want_data = strcmp(field, "data") == 0;
    int bound;
    char *path = fs_ino_path(fs, nodeid, &bound);
    struct zc_stat st;
    struct blob *data = NULL;
    int rc = 0;
    if (!path) {
        rc = -ESTALE;
    } else if (!bound || replay_caller(fs, req)) {
        /* From what is known: an unlinked file's last Stat; no data. */
        pthread_mutex_lock(&fs->mu);
        struct inode *ino = inode_get(&fs->inodes, nodeid);
        if (ino)
            st = ino->st;
        pthread_mutex_unlock(&fs->mu);
        rc = !ino ? -ESTALE : want_data ? -ENODATA : 0;
    } else {
        rc = fs_get_node(fs, path, want_data, &st, want_data ? &data : NULL);
    }
    if (rc) {
        if (rc == -ENODATA)
            fuse_reply_err(req, ENODATA);
        else
            fs_fail(req, "getxattr", path, rc);
    } else if (want_data) {
        reply_value(req, data ? data->bytes : NULL, data ? data->len : 0, size);
    } else {
        char buf[1024];
        int n = stat_value(&st, field, buf, sizeof(buf));
        if (n < 0)
            fuse_reply_err(req, ENODATA);
        else
            reply_value(req, buf, (size_t)n, size);
    }
    blob_unref(data);
    free(path);
}

void op_listxattr(fuse_req_t req, fuse_ino_t nodeid, size_t size)
{
    (void)nodeid;
    char buf[512];
    size_t len = 0;
    for (size_t i = 0; i < N_NAMES; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", PREFIX, names[i]) + 1;
    reply_value(req, buf, len, size);
}

/* One write of the node's data or policy, installed in the cache. */
static int set_node(struct fs *fs, fuse_ino_t nodeid, const char *path, const struct zc_req *zr)
{
    struct zc_result r;
    uint64_t t = own_begin(fs);
    int rc = zk_call(fs, zr, &r, 0);
    int64_t zxid = 0;
    if (rc == 0 && r.has_stat) {
        struct blob *b = zr->op == ZC_OP_SET_DATA ? blob_new(zr->data, zr->data_len) : NULL;
        pthread_mutex_lock(&fs->mu);
        struct node *n = cache_get(&fs->cache, path);
        struct zc_stat st = r.stat;
        if (zr->op == ZC_OP_SET_DATA && n && n->st.czxid == st.czxid) {
            st.kind = n->st.kind;
            st.policy = n->st.policy;
        }
        if (zr->op == ZC_OP_SET_META && n && n->data && n->st.czxid == st.czxid &&
            n->st.mzxid == st.mzxid)
            b = blob_ref(n->data);
        cache_put(&fs->cache, path, &st, b, r.zxid);
        struct inode *ino = inode_get(&fs->inodes, nodeid);
        if (ino && ino->bound && ino->czxid == st.czxid && stat_is_dir(&st) == ino->is_dir)
            ino->st = st;
        pthread_mutex_unlock(&fs->mu);
        blob_unref(b);
        zxid = r.zxid;
    }
    own_end(fs, t, zxid);
    zc_result_free(&r);
    return rc;
}

static void change(fuse_req_t req, fuse_ino_t nodeid, const char *name, const char *value,
                   size_t size, int flags, int remove)
{
    struct fs *fs = req_fs(req);
    const char *op = remove ? "removexattr" : "setxattr";
    if (strncmp(name, "user.", 5) != 0) {
        fuse_reply_err(req, EOPNOTSUPP);
        return;
    }
    const char *field = strncmp(name, PREFIX, strlen(PREFIX)) == 0 ? name + strlen(PREFIX) : "";
    int is_data = strcmp(field, "data") == 0, is_policy = strcmp(field, "policy") == 0;
    if (!is_data && !is_policy) {
        /* Stat fields are read-only; other names cannot be stored. */
        int e = known(field) ? EPERM : remove ? ENODATA : EOPNOTSUPP;
        LOG_INFO("%s %s: %s", op, name, strerror(e));
        fuse_reply_err(req, e);
        return;
    }
    if (fs->o.ro) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (flags & XATTR_CREATE) {
        fuse_reply_err(req, EEXIST); /* user.zk.data and user.zk.policy always exist */
        return;
    }
    int bound;
    char *path = fs_ino_path(fs, nodeid, &bound);
    if (!path || !bound) {
        free(path);
        fuse_reply_err(req, path ? ENOENT : ESTALE);
        return;
    }
    int rc;
    if (is_data) {
        if (!remove && size > fs->o.max_data) {
            rc = -EFBIG;
        } else {
            struct zc_req zr = {.op = ZC_OP_SET_DATA,
                                .path = path,
                                .data = remove ? NULL : (const uint8_t *)value,
                                .data_len = remove ? 0 : size,
                                .version = -1};
            rc = set_node(fs, nodeid, path, &zr);
        }
    } else {
        uint32_t policy = 0;
        pthread_mutex_lock(&fs->mu);
        struct inode *ino = inode_get(&fs->inodes, nodeid);
        int is_dir = ino && ino->is_dir;
        pthread_mutex_unlock(&fs->mu);
        if (!remove && policy_parse(value, size, &policy) < 0) {
            rc = ZE_BADARGUMENTS;
        } else if (policy && !is_dir) {
            rc = ZE_BADARGUMENTS; /* a policy is for the files made in a directory */
        } else {
            struct zc_req zr = {.op = ZC_OP_SET_META,
                                .path = path,
                                .policy = policy,
                                .has_policy = 1,
                                .kind = KIND_DIR,
                                .has_kind = policy != 0};
            rc = set_node(fs, nodeid, path, &zr);
        }
    }
    if (rc)
        fs_fail(req, op, path, rc);
    else
        fuse_reply_err(req, 0);
    free(path);
}

void op_setxattr(fuse_req_t req, fuse_ino_t nodeid, const char *name, const char *value,
                 size_t size, int flags)
{
    change(req, nodeid, name, value, size, flags, 0);
}

void op_removexattr(fuse_req_t req, fuse_ino_t nodeid, const char *name)
{
    change(req, nodeid, name, NULL, 0, 0, 1);
}
