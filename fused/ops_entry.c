/* zkfs-fused operations on names and attributes: init, lookup, forget, getattr, setattr,
 * directory listing, statfs. */
#include "ops.h"

#include "err.h"
#include "log.h"
#include "path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

static struct fs *req_fs(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

void op_init(void *userdata, struct fuse_conn_info *conn)
{
    struct fs *fs = userdata;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    /* Writes must reach the daemon as they happen (EFBIG, EIO at once): no writeback cache.
     * Locks stay local to this machine until cluster-wide locks exist. */
    conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_POSIX_LOCKS |
                    FUSE_CAP_READDIRPLUS | FUSE_CAP_EXPORT_SUPPORT);
    if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
        conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
    conn->time_gran = 1000000; /* ZooKeeper times are in milliseconds */
    LOG_INFO("mounted %s on %s%s", fs->o.servers, fs->o.mountpoint, fs->o.ro ? " (read-only)" : "");
}

/* ---- lookup ---- */

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = req_fs(req);
    if (replay_caller(fs, req)) {
        replay_lookup(fs, req, parent, name);
        return;
    }
    int bound;
    char *ppath = fs_ino_path(fs, parent, &bound);
    char *path = ppath ? fs_child_path(ppath, name) : NULL;
    struct fuse_entry_param e;
    if (!ppath || !bound || !path || path_validate(path, strlen(path), 0) != 0) {
        free(ppath);
        free(path);
        fuse_reply_err(req, ENOENT);
        return;
    }
    /* From the cache when it knows (the watch keeps it valid). */
    pthread_mutex_lock(&fs->mu);
    struct node *n = cache_get(&fs->cache, path);
    struct node *pn = cache_get(&fs->cache, ppath);
    int have_children = pn && pn->has_children;
    if (n) {
        struct inode *ino = inode_for(&fs->inodes, path, &n->st, node_is_dir(n));
        if (ino) {
            fs_entry(fs, ino, &e, fs->o.entry_timeout);
            pthread_mutex_unlock(&fs->mu);
            fuse_reply_entry(req, &e);
            goto out;
        }
    } else if (have_children && !cache_has_child(pn, name)) {
        pthread_mutex_unlock(&fs->mu);
        fs_negative(&e, fs->o.entry_timeout);
        fuse_reply_entry(req, &e);
        goto out;
    }
    pthread_mutex_unlock(&fs->mu);

    /* Ask the cluster: the node, and the parent's children so that later misses are known. */
    struct zk_fetch f[2];
    memset(f, 0, sizeof(f));
    f[0].op = ZC_OP_EXISTS;
    f[0].path = path;
    f[1].op = ZC_OP_GET_CHILDREN;
    f[1].path = ppath;
    zk_fetch_all(fs, f, have_children ? 1 : 2);
    int err = f[0].err;
    pthread_mutex_lock(&fs->mu);
    if (!have_children && f[1].err == 0 && cache_fresh(&fs->cache, f[1].zxid)) {
        pn = cache_get(&fs->cache, ppath);
        if (!pn && f[1].has_stat)
            pn = cache_put(&fs->cache, ppath, &f[1].st, NULL, f[1].zxid);
        if (pn)
            cache_put_children(&fs->cache, pn, (const char *const *)f[1].children, f[1].n_children,
                               f[1].zxid);
    }
    n = fs_install(fs, &f[0]);
    if (n || err == 0) {
        const struct zc_stat *st = n ? &n->st : &f[0].st;
        struct inode *ino = inode_for(&fs->inodes, path, st, n ? node_is_dir(n) : stat_is_dir(st));
        if (!ino) {
            pthread_mutex_unlock(&fs->mu);
            fuse_reply_err(req, ENOMEM);
            goto done;
        }
        fs_entry(fs, ino, &e, fs->o.entry_timeout);
        pthread_mutex_unlock(&fs->mu);
        fuse_reply_entry(req, &e);
    } else if (err == ZE_NONODE) {
        pn = cache_get(&fs->cache, ppath);
        double t = pn && pn->has_children ? fs->o.entry_timeout : 0;
        pthread_mutex_unlock(&fs->mu);
        fs_negative(&e, t);
        fuse_reply_entry(req, &e);
    } else {
        pthread_mutex_unlock(&fs->mu);
        fs_fail(req, "lookup", path, err);
    }
done:
    zk_fetch_clear(&f[0]);
    zk_fetch_clear(&f[1]);
out:
    free(ppath);
    free(path);
}

/* ---- forget ---- */

static void forget_one(struct fs *fs, fuse_ino_t nodeid, uint64_t n)
{
    struct inode *ino = inode_get(&fs->inodes, nodeid);
    if (!ino)
        return;
    char *path = NULL;
    if (inode_forget(&fs->inodes, ino, n, &path) && path) {
        /* The kernel no longer knows the node: nothing needs its cached state (a directory's
         * child set backs the kernel's negative entries only while it knows the directory). */
        if (!inode_at(&fs->inodes, path))
            cache_drop(&fs->cache, path);
    }
    free(path);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    struct fs *fs = req_fs(req);
    pthread_mutex_lock(&fs->mu);
    forget_one(fs, ino, nlookup);
    pthread_mutex_unlock(&fs->mu);
    fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    struct fs *fs = req_fs(req);
    pthread_mutex_lock(&fs->mu);
    for (size_t i = 0; i < count; i++)
        forget_one(fs, forgets[i].ino, forgets[i].nlookup);
    pthread_mutex_unlock(&fs->mu);
    fuse_reply_none(req);
}

/* ---- attributes ---- */

/* Attributes of nodeid: from the cache, fetched if needed (never from the replay thread). */
static int get_attr(struct fs *fs, fuse_ino_t nodeid, int may_fetch, struct stat *st)
{
    pthread_mutex_lock(&fs->mu);
    struct inode *ino = inode_get(&fs->inodes, nodeid);
    if (!ino) {
        pthread_mutex_unlock(&fs->mu);
        return -ESTALE;
    }
    if (!ino->bound || ino->synthetic) {
        fs_attr(fs, ino, st);
        pthread_mutex_unlock(&fs->mu);
        return 0;
    }
    struct node *n = cache_get(&fs->cache, ino->path);
    if (n || !may_fetch) {
        if (n && node_is_dir(n) == ino->is_dir)
            ino->st = n->st;
        fs_attr(fs, ino, st);
        pthread_mutex_unlock(&fs->mu);
        return 0;
    }
    char *path = strdup(ino->path);
    pthread_mutex_unlock(&fs->mu);
    if (!path)
        return -ENOMEM;
    struct zc_stat zs;
    int rc = fs_get_node(fs, path, 0, &zs, NULL);
    pthread_mutex_lock(&fs->mu);
    ino = inode_get(&fs->inodes, nodeid);
    if (!ino) {
        rc = -ESTALE;
    } else {
        if (rc == 0 && stat_is_dir(&zs) == ino->is_dir)
            ino->st = zs;
        /* Gone, or unreachable: answer as for an unlinked file, from what was known (the
         * root always has attributes, even before the cluster answered). */
        if (rc == ZE_NONODE || ino->nodeid == INODE_ROOT || rc == 0)
            rc = 0;
        if (rc == 0)
            fs_attr(fs, ino, st);
    }
    pthread_mutex_unlock(&fs->mu);
    free(path);
    return rc;
}

void op_getattr(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi)
{
    struct fs *fs = req_fs(req);
    struct stat st;
    int replay = replay_caller(fs, req);
    int rc = get_attr(fs, nodeid, !replay, &st);
    if (rc) {
        fs_fail(req, "getattr", NULL, rc);
        return;
    }
    /* fstat of a file being written: the size of what it would commit now. */
    off_t size;
    int writing = fi && fi->fh && !replay && file_size(fi->fh, &size);
    if (writing) {
        st.st_size = size;
        st.st_blocks = (size + 511) / 512;
    }
    /* The replay thread gets what is known, which the kernel must not keep. */
    fuse_reply_attr(req, &st, replay || writing ? 0 : fs->o.attr_timeout);
}

/* truncate(2) without an open handle: one setData of the resized data. */
static int truncate_path(struct fs *fs, fuse_ino_t nodeid, off_t size)
{
    if ((uint64_t)size > fs->o.max_data)
        return -EFBIG;
    int bound;
    char *path = fs_ino_path(fs, nodeid, &bound);
    if (!path || !bound) {
        free(path);
        return ZE_NONODE;
    }
    struct zc_stat zs;
    struct blob *old = NULL;
    int rc = fs_get_node(fs, path, 1, &zs, &old);
    uint8_t *buf = NULL;
    if (rc == 0 && size > 0 && !(buf = calloc(1, (size_t)size)))
        rc = -ENOMEM;
    if (rc == 0) {
        size_t keep = old ? (old->len < (size_t)size ? old->len : (size_t)size) : 0;
        if (keep)
            memcpy(buf, old->bytes, keep);
        struct zc_req req = {.op = ZC_OP_SET_DATA,
                             .path = path,
                             .data = buf,
                             .data_len = (size_t)size,
                             .version = -1};
        struct zc_result r;
        uint64_t t = own_begin(fs);
        rc = zk_call(fs, &req, &r, 0);
        int64_t zxid = 0;
        if (rc == 0 && r.has_stat) {
            struct blob *b = blob_new(buf, (size_t)size);
            struct zc_stat nst = r.stat;
            nst.kind = zs.kind;
            nst.policy = zs.policy;
            pthread_mutex_lock(&fs->mu);
            cache_put(&fs->cache, path, &nst, b, r.zxid);
            struct inode *ino = inode_get(&fs->inodes, nodeid);
            if (ino && ino->bound)
                ino->st = nst;
            pthread_mutex_unlock(&fs->mu);
            blob_unref(b);
            zxid = r.zxid;
        }
        own_end(fs, t, zxid);
        zc_result_free(&r);
    }
    blob_unref(old);
    free(buf);
    free(path);
    return rc;
}

void op_setattr(fuse_req_t req, fuse_ino_t nodeid, struct stat *attr, int to_set,
                struct fuse_file_info *fi)
{
    struct fs *fs = req_fs(req);
    int replay = replay_caller(fs, req);
    int rc = 0;
    if (!replay && fs->o.ro) {
        fuse_reply_err(req, EROFS);
        return;
    }
    /* Mode, owner and times are not stored: accepted and left as they are. */
    if (!replay && (to_set & FUSE_SET_ATTR_SIZE)) {
        if (fi && fi->fh) {
            rc = file_truncate(fs, fi->fh, attr->st_size);
        } else {
            rc = truncate_path(fs, nodeid, attr->st_size);
        }
        if (rc) {
            char *p = fs_ino_path(fs, nodeid, NULL);
            fs_fail(req, "truncate", p, rc);
            free(p);
            return;
        }
    }
    struct stat st;
    rc = get_attr(fs, nodeid, 0, &st);
    if (rc) {
        fs_fail(req, "setattr", NULL, rc);
        return;
    }
    if (to_set & FUSE_SET_ATTR_SIZE)
        st.st_size = attr->st_size;
    fuse_reply_attr(req, &st, replay ? fs->o.attr_timeout : 0);
}

/* ---- directories ---- */

struct dirent_snap {
    char *name;
    uint64_t ino;
    mode_t type;
};

struct dir_handle {
    struct dirent_snap *e;
    size_t n;
    uint64_t ino; /* the directory's own st_ino */
};

static void dir_handle_free(struct dir_handle *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->e[i].name);
    free(d->e);
    free(d);
}

static int cmp_snap(const void *a, const void *b)
{
    return strcmp(((const struct dirent_snap *)a)->name, ((const struct dirent_snap *)b)->name);
}

/* Snapshot of the listing (sorted), with each child's type and st_ino. */
static int list_dir(struct fs *fs, const char *path, struct dir_handle *d)
{
    pthread_mutex_lock(&fs->mu);
    struct node *n = cache_get(&fs->cache, path);
    int have = n && n->has_children;
    pthread_mutex_unlock(&fs->mu);
    if (!have) {
        struct zk_fetch f = {.op = ZC_OP_GET_CHILDREN, .path = path};
        zk_fetch_all(fs, &f, 1);
        int rc = f.err;
        pthread_mutex_lock(&fs->mu);
        n = cache_get(&fs->cache, path);
        if (rc == 0 && !n && f.has_stat && cache_fresh(&fs->cache, f.zxid))
            n = cache_put(&fs->cache, path, &f.st, NULL, f.zxid);
        if (rc == 0 && n && cache_fresh(&fs->cache, f.zxid))
            cache_put_children(&fs->cache, n, (const char *const *)f.children, f.n_children,
                               f.zxid);
        /* A fetch too old to be cached still lists the directory as it was. */
        if (rc == 0 && !(n && n->has_children)) {
            d->e = calloc(f.n_children + 1, sizeof(*d->e));
            for (uint32_t i = 0; d->e && i < f.n_children; i++) {
                d->e[i].name = f.children[i];
                f.children[i] = NULL;
                d->n = i + 1;
            }
        }
        pthread_mutex_unlock(&fs->mu);
        zk_fetch_clear(&f);
        if (rc)
            return rc;
    }
    /* Types need each child's Stat: fetch the unknown ones in one pipelined round. */
    pthread_mutex_lock(&fs->mu);
    n = cache_get(&fs->cache, path);
    if (!d->e && n && n->has_children) {
        d->e = calloc(n->n_children + 1, sizeof(*d->e));
        size_t i = 0;
        for (struct child *ch = n->children; d->e && ch; ch = ch->hh.next)
            d->e[i++].name = strdup(ch->name);
        d->n = i;
    }
    pthread_mutex_unlock(&fs->mu);
    if (!d->e)
        return -ENOMEM;
    char **paths = calloc(d->n + 1, sizeof(*paths));
    struct zk_fetch *f = calloc(d->n + 1, sizeof(*f));
    size_t nf = 0;
    if (!paths || !f) {
        free(paths);
        free(f);
        return -ENOMEM;
    }
    pthread_mutex_lock(&fs->mu);
    for (size_t i = 0; i < d->n; i++) {
        if (!d->e[i].name)
            continue;
        paths[i] = fs_child_path(path, d->e[i].name);
        if (paths[i] && !cache_get(&fs->cache, paths[i])) {
            f[nf].op = ZC_OP_EXISTS;
            f[nf].path = paths[i];
            nf++;
        }
    }
    pthread_mutex_unlock(&fs->mu);
    if (nf)
        zk_fetch_all(fs, f, nf);
    pthread_mutex_lock(&fs->mu);
    for (size_t i = 0; i < nf; i++)
        fs_install(fs, &f[i]);
    for (size_t i = 0; i < d->n; i++) {
        d->e[i].type = 0; /* unknown */
        if (!paths[i])
            continue;
        struct node *c = cache_get(&fs->cache, paths[i]);
        if (c) {
            d->e[i].type = node_is_dir(c) ? S_IFDIR : S_IFREG;
            d->e[i].ino = inode_number(paths[i], c->st.czxid);
        }
        free(paths[i]);
    }
    pthread_mutex_unlock(&fs->mu);
    for (size_t i = 0; i < nf; i++)
        zk_fetch_clear(&f[i]);
    free(f);
    free(paths);
    size_t j = 0;
    for (size_t i = 0; i < d->n; i++)
        if (d->e[i].name)
            d->e[j++] = d->e[i];
    d->n = j;
    qsort(d->e, d->n, sizeof(*d->e), cmp_snap);
    return 0;
}

void op_opendir(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi)
{
    struct fs *fs = req_fs(req);
    int bound;
    char *path = fs_ino_path(fs, nodeid, &bound);
    struct dir_handle *d = calloc(1, sizeof(*d));
    if (!path || !d) {
        free(path);
        free(d);
        fuse_reply_err(req, path ? ENOMEM : ESTALE);
        return;
    }
    if (bound && !replay_caller(fs, req)) {
        int rc = list_dir(fs, path, d);
        if (rc) {
            dir_handle_free(d);
            fs_fail(req, "opendir", path, rc);
            free(path);
            return;
        }
    }
    free(path);
    struct stat st;
    d->ino = get_attr(fs, nodeid, 0, &st) == 0 ? st.st_ino : INODE_ROOT;
    fi->fh = (uintptr_t)d;
    if (fuse_reply_open(req, fi) != 0)
        dir_handle_free(d);
}

void op_readdir(fuse_req_t req, fuse_ino_t nodeid, size_t size, off_t off,
                struct fuse_file_info *fi)
{
    struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    /* Offsets: 1 ".", 2 "..", 3 + i the i-th child. */
    for (off_t i = off; d; i++) {
        struct stat st = {0};
        const char *name;
        if (i == 0) {
            name = ".";
            st.st_ino = d->ino;
            st.st_mode = S_IFDIR;
        } else if (i == 1) {
            name = "..";
            st.st_ino = INODE_ROOT; /* not known here; never 0, which means "no entry" */
            st.st_mode = S_IFDIR;
        } else if ((size_t)(i - 2) < d->n) {
            const struct dirent_snap *e = &d->e[i - 2];
            name = e->name;
            st.st_ino = e->ino;
            st.st_mode = e->type;
        } else {
            break;
        }
        size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, i + 1);
        if (need > size - used)
            break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

void op_releasedir(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi)
{
    (void)nodeid;
    dir_handle_free((struct dir_handle *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

/* ---- statfs ---- */

#define STATFS_FREE_FILES (1ULL << 20)

void op_statfs(fuse_req_t req, fuse_ino_t nodeid)
{
    (void)nodeid;
    struct fs *fs = req_fs(req);
    long long count = replay_caller(fs, req) ? -1 : sess_znode_count(fs);
    if (count < 0) {
        pthread_mutex_lock(&fs->mu);
        count = (long long)fs->cache.n_nodes;
        pthread_mutex_unlock(&fs->mu);
    }
    struct statvfs sv;
    memset(&sv, 0, sizeof(sv));
    sv.f_bsize = 4096;
    sv.f_frsize = 4096;
    sv.f_namemax = 255;
    /* Used inodes (df -i) = the cluster's znodes; blocks are not meaningful. */
    sv.f_files = (fsfilcnt_t)count + STATFS_FREE_FILES;
    sv.f_ffree = STATFS_FREE_FILES;
    sv.f_favail = STATFS_FREE_FILES;
    sv.f_flag = fs->o.ro ? ST_RDONLY : 0;
    fuse_reply_statfs(req, &sv);
}
