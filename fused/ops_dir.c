/* zkfs-fused operations that make, remove and rename names: mknod, mkdir, unlink, rmdir,
 * rename (one multi), and the refusals (links, symlinks, devices, fifos). */
#include "ops.h"

#include "err.h"
#include "log.h"
#include "path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

static struct fs *req_fs(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

uint32_t dir_policy(struct fs *fs, const char *path, int *err)
{
    struct zc_stat st;
    int rc = fs_get_node(fs, path, 0, &st, NULL);
    if (err)
        *err = rc;
    return rc ? 0 : st.policy;
}

static int create_mode(uint32_t policy)
{
    int eph = (policy & POLICY_EPHEMERAL) != 0, seq = (policy & POLICY_SEQUENTIAL) != 0;
    if (eph)
        return seq ? ZC_EPHEMERAL_SEQUENTIAL : ZC_EPHEMERAL;
    return seq ? ZC_PERSISTENT_SEQUENTIAL : ZC_PERSISTENT;
}

int dir_create_node(struct fs *fs, const char *path, const uint8_t *data, size_t len, uint32_t kind,
                    uint32_t parent_policy, char **made, struct zc_stat *st)
{
    *made = NULL;
    struct zc_req req = {.op = ZC_OP_CREATE,
                         .path = path,
                         .data = data,
                         .data_len = len,
                         .version = -1,
                         .mode = create_mode(parent_policy),
                         .kind = kind,
                         .has_kind = 1};
    struct zc_result r;
    uint64_t t = own_begin(fs);
    int rc = zk_call(fs, &req, &r, 0);
    int64_t zxid = 0;
    if (rc == 0) {
        *made = strdup(r.path ? r.path : path);
        if (!*made) {
            rc = -ENOMEM;
        } else {
            memset(st, 0, sizeof(*st));
            if (r.has_stat)
                *st = r.stat;
            st->kind = kind;
            st->data_length = (int32_t)len;
            struct blob *b = blob_new(data, len);
            char *parent = fs_parent_path(*made);
            pthread_mutex_lock(&fs->mu);
            cache_put(&fs->cache, *made, st, b, r.zxid);
            if (parent)
                cache_child_changed(&fs->cache, parent, path_name(*made), 1, r.zxid);
            pthread_mutex_unlock(&fs->mu);
            free(parent);
            blob_unref(b);
            zxid = r.zxid;
        }
    }
    own_end(fs, t, zxid);
    zc_result_free(&r);
    return rc;
}

/* The parent's path and the new child's path for a make/remove; 0, or an errno to reply. */
static int child_paths(struct fs *fs, fuse_ino_t parent, const char *name, char **ppath,
                       char **path)
{
    int bound;
    *path = NULL;
    *ppath = fs_ino_path(fs, parent, &bound);
    if (!*ppath)
        return ESTALE;
    if (!bound)
        return ENOENT;
    *path = fs_child_path(*ppath, name);
    return *path ? 0 : ENOMEM;
}

/* mknod (regular files) and mkdir. */
static void make(fuse_req_t req, fuse_ino_t parent, const char *name, uint32_t kind, const char *op)
{
    struct fs *fs = req_fs(req);
    if (replay_caller(fs, req)) {
        replay_make(fs, req, parent, name);
        return;
    }
    if (fs->o.ro) {
        fuse_reply_err(req, EROFS);
        return;
    }
    char *ppath, *path, *made = NULL;
    int e = child_paths(fs, parent, name, &ppath, &path);
    if (e) {
        fuse_reply_err(req, e);
        goto out;
    }
    if (path_validate(path, strlen(path), 0) != 0) {
        fs_fail(req, op, path, ZE_BADARGUMENTS);
        goto out;
    }
    int rc;
    uint32_t policy = dir_policy(fs, ppath, &rc);
    struct zc_stat st;
    if (rc == 0)
        rc = dir_create_node(fs, path, NULL, 0, kind, policy, &made, &st);
    if (rc) {
        fs_fail(req, op, path, rc);
        goto out;
    }
    pthread_mutex_lock(&fs->mu);
    struct inode *ino = inode_for(&fs->inodes, made, &st, kind == KIND_DIR);
    if (!ino) {
        pthread_mutex_unlock(&fs->mu);
        fuse_reply_err(req, ENOMEM);
        goto out;
    }
    struct fuse_entry_param ent;
    /* In a sequential directory the requested name is not the node's: the kernel must not
     * keep it (notes/fuse-semantics.md). */
    fs_entry(fs, ino, &ent, (policy & POLICY_SEQUENTIAL) ? 0 : fs->o.entry_timeout);
    pthread_mutex_unlock(&fs->mu);
    fuse_reply_entry(req, &ent);
out:
    free(ppath);
    free(path);
    free(made);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)rdev;
    if (!S_ISREG(mode) && !replay_caller(req_fs(req), req)) {
        LOG_INFO("mknod %s: %s (only regular files)", name, strerror(EPERM));
        fuse_reply_err(req, EPERM);
        return;
    }
    make(req, parent, name, KIND_FILE, "mknod");
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)mode;
    make(req, parent, name, KIND_DIR, "mkdir");
}

static void remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, const char *op)
{
    struct fs *fs = req_fs(req);
    if (replay_caller(fs, req)) {
        replay_remove(fs, req, parent, name);
        return;
    }
    if (fs->o.ro) {
        fuse_reply_err(req, EROFS);
        return;
    }
    char *ppath, *path;
    int e = child_paths(fs, parent, name, &ppath, &path);
    if (e) {
        fuse_reply_err(req, e);
        goto out;
    }
    if (path_validate(path, strlen(path), 0) != 0) {
        fuse_reply_err(req, ENOENT);
        goto out;
    }
    struct zc_req zr = {.op = ZC_OP_DELETE, .path = path, .version = -1};
    struct zc_result r;
    uint64_t t = own_begin(fs);
    int rc = zk_call(fs, &zr, &r, 0);
    if (rc == 0) {
        pthread_mutex_lock(&fs->mu);
        struct inode *ino = inode_at(&fs->inodes, path);
        if (ino)
            inode_detach(&fs->inodes, ino); /* first: it keeps the data for open files */
        cache_deleted(&fs->cache, path, r.zxid);
        pthread_mutex_unlock(&fs->mu);
    }
    own_end(fs, t, rc == 0 ? r.zxid : 0);
    zc_result_free(&r);
    if (rc)
        fs_fail(req, op, path, rc);
    else
        fuse_reply_err(req, 0);
out:
    free(ppath);
    free(path);
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_name(req, parent, name, "unlink");
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_name(req, parent, name, "rmdir");
}

void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    (void)link;
    (void)parent;
    LOG_INFO("symlink %s: %s", name, strerror(EPERM));
    fuse_reply_err(req, EPERM);
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    (void)ino;
    (void)newparent;
    LOG_INFO("link %s: %s", newname, strerror(EPERM));
    fuse_reply_err(req, EPERM);
}

/* ---- rename ---- */

/*
 * One attempt: reads the source (data, version) and the target, then moves the data with one
 * multi: [setData target | create target] + delete source (checked at the version read).
 * Returns 0, a ZE_* code, or a negative errno; ZE_BADVERSION etc. mean "changed meanwhile".
 */
static int rename_once(struct fs *fs, const char *src, const char *dst, const char *dparent,
                       unsigned flags)
{
    struct zk_fetch f[2];
    memset(f, 0, sizeof(f));
    f[0].op = ZC_OP_GET_DATA;
    f[0].path = src;
    f[1].op = ZC_OP_EXISTS;
    f[1].path = dst;
    zk_fetch_all(fs, f, 2);
    int rc = f[0].err;
    if (rc == 0 && f[1].err != 0 && f[1].err != ZE_NONODE)
        rc = f[1].err;
    if (rc)
        goto out;
    const struct zc_stat *ss = &f[0].st, *ds = &f[1].st;
    int src_dir = stat_is_dir(ss), dst_exists = f[1].err == 0;
    int dst_dir = dst_exists && stat_is_dir(ds);
    if (ss->num_children > 0) {
        rc = -EXDEV; /* mv copies entry by entry */
        goto out;
    }
    if (dst_exists) {
        if (flags & RENAME_NOREPLACE)
            rc = -EEXIST;
        else if (src_dir && !dst_dir)
            rc = -ENOTDIR;
        else if (!src_dir && dst_dir)
            rc = -EISDIR;
        else if (dst_dir && ds->num_children > 0)
            rc = -ENOTEMPTY;
        if (rc)
            goto out;
    }
    uint32_t policy = dir_policy(fs, dparent, &rc);
    if (rc)
        goto out;
    const uint8_t *data = f[0].data ? f[0].data->bytes : NULL;
    size_t len = f[0].data ? f[0].data->len : 0;
    uint32_t kind = src_dir ? KIND_DIR : KIND_FILE;
    struct zc_req ops[3];
    uint32_t n = 0;
    int mode = (policy & POLICY_EPHEMERAL) ? ZC_EPHEMERAL : ZC_PERSISTENT;
    int set_idx = -1, create_idx = -1;
    if (dst_exists && !src_dir) {
        set_idx = (int)n;
        ops[n++] = (struct zc_req){
            .op = ZC_OP_SET_DATA, .path = dst, .data = data, .data_len = len, .version = -1};
    } else {
        if (dst_exists)
            ops[n++] = (struct zc_req){.op = ZC_OP_DELETE, .path = dst, .version = ds->version};
        create_idx = (int)n;
        ops[n++] = (struct zc_req){.op = ZC_OP_CREATE,
                                   .path = dst,
                                   .data = data,
                                   .data_len = len,
                                   .version = -1,
                                   .mode = mode,
                                   .kind = kind,
                                   .has_kind = 1,
                                   .policy = src_dir ? ss->policy : 0,
                                   .has_policy = src_dir};
    }
    ops[n++] = (struct zc_req){.op = ZC_OP_DELETE, .path = src, .version = ss->version};
    struct zc_req multi = {.op = ZC_OP_MULTI, .ops = ops, .n_ops = n};
    struct zc_result r;
    uint64_t t = own_begin(fs);
    rc = zk_call(fs, &multi, &r, 0);
    int64_t zxid = 0;
    if (rc == 0) {
        zxid = r.zxid;
        int idx = set_idx >= 0 ? set_idx : create_idx;
        struct zc_stat st = *ds;
        if ((uint32_t)idx < r.n_results && r.results[idx].err == 0)
            st = r.results[idx].stat;
        if (set_idx >= 0) {
            st.kind = ds->kind;
            st.policy = ds->policy;
        } else {
            st.kind = kind;
            st.policy = src_dir ? ss->policy : 0;
        }
        st.data_length = (int32_t)len;
        pthread_mutex_lock(&fs->mu);
        /* The kernel moves the source's dentry (and inode) to the target's name; the target's
         * old inode, detached, keeps its data for whoever has it open. */
        struct inode *sino = inode_at(&fs->inodes, src);
        if (sino && inode_bind(&fs->inodes, sino, dst) == 0) {
            sino->czxid = st.czxid;
            sino->st = st;
            sino->is_dir = src_dir;
        } else if ((sino = inode_at(&fs->inodes, dst))) {
            inode_detach(&fs->inodes, sino);
        }
        cache_deleted(&fs->cache, src, zxid);
        if (create_idx >= 0) {
            if (dst_exists)
                cache_drop(&fs->cache, dst);
            cache_child_changed(&fs->cache, dparent, path_name(dst), 1, zxid);
        }
        cache_put(&fs->cache, dst, &st, f[0].data, zxid);
        pthread_mutex_unlock(&fs->mu);
    }
    own_end(fs, t, zxid);
    zc_result_free(&r);
out:
    zk_fetch_clear(&f[0]);
    zk_fetch_clear(&f[1]);
    return rc;
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
               const char *newname, unsigned int flags)
{
    struct fs *fs = req_fs(req);
    if (replay_caller(fs, req)) {
        replay_rename(fs, req, parent, name, newparent, newname);
        return;
    }
    if (fs->o.ro) {
        fuse_reply_err(req, EROFS);
        return;
    }
    if (flags & ~(unsigned)RENAME_NOREPLACE) {
        LOG_INFO("rename %s: flags 0x%x: %s", name, flags, strerror(EINVAL));
        fuse_reply_err(req, EINVAL);
        return;
    }
    char *ppath, *src, *npath = NULL, *dst = NULL;
    int e = child_paths(fs, parent, name, &ppath, &src);
    if (!e)
        e = child_paths(fs, newparent, newname, &npath, &dst);
    if (e) {
        fuse_reply_err(req, e);
        goto out;
    }
    if (path_validate(dst, strlen(dst), 0) != 0) {
        fs_fail(req, "rename", dst, ZE_BADARGUMENTS);
        goto out;
    }
    if (path_validate(src, strlen(src), 0) != 0) {
        fuse_reply_err(req, ENOENT);
        goto out;
    }
    if (strcmp(src, dst) == 0) {
        fuse_reply_err(req, 0);
        goto out;
    }
    int rc = 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        rc = rename_once(fs, src, dst, npath, flags);
        if (rc != ZE_BADVERSION && rc != ZE_NODEEXISTS && !(rc == ZE_NONODE && attempt == 0))
            break;
    }
    if (rc)
        fs_fail(req, "rename", src, rc);
    else
        fuse_reply_err(req, 0);
out:
    free(ppath);
    free(src);
    free(npath);
    free(dst);
}
