/* zkfs-fused's shared state and the helpers every operation uses: paths, attributes,
 * entries, errors. */
#include "fs.h"

#include "err.h"
#include "log.h"
#include "path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fs *the_fs;

static struct blob *data_of(void *arg, const char *path, int64_t czxid)
{
    struct fs *fs = arg;
    struct node *n = cache_get(&fs->cache, path);
    return n && n->st.czxid == czxid ? blob_ref(n->data) : NULL;
}

int fs_init(struct fs *fs)
{
    pthread_mutex_init(&fs->mu, NULL);
    cache_init(&fs->cache);
    memset(&fs->parked, 0, sizeof(fs->parked));
    int rc = inodes_init(&fs->inodes);
    if (rc)
        return rc;
    fs->inodes.data_of = data_of;
    fs->inodes.arg = fs;
    if ((rc = sess_init(fs)) || (rc = replay_init(fs))) {
        inodes_close(&fs->inodes);
        return rc;
    }
    return 0;
}

void fs_close(struct fs *fs)
{
    replay_close(fs);
    cache_close(&fs->cache);
    inodes_close(&fs->inodes);
    pthread_mutex_destroy(&fs->mu);
}

char *fs_child_path(const char *parent, const char *name)
{
    char *s;
    if (asprintf(&s, "%s/%s", strcmp(parent, "/") == 0 ? "" : parent, name) < 0)
        return NULL;
    return s;
}

char *fs_parent_path(const char *path)
{
    size_t plen = path_parent_len(path);
    return plen ? strndup(path, plen) : NULL;
}

static void ms_to_ts(int64_t ms, struct timespec *ts)
{
    if (ms < 0)
        ms = 0;
    ts->tv_sec = (time_t)(ms / 1000);
    ts->tv_nsec = (long)(ms % 1000) * 1000000L;
}

void fs_attr(const struct fs *fs, const struct inode *ino, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    if (ino->nodeid == INODE_ROOT)
        st->st_ino = INODE_ROOT;
    else if (ino->synthetic || ino->czxid == 0)
        st->st_ino = (1ULL << 63) | ino->nodeid;
    else
        st->st_ino = inode_number(ino->path, ino->czxid);
    st->st_mode = ino->is_dir ? (S_IFDIR | fs->o.dir_mode) : (S_IFREG | fs->o.file_mode);
    st->st_nlink = ino->is_dir ? 2 : 1;
    st->st_uid = fs->o.uid;
    st->st_gid = fs->o.gid;
    st->st_size = ino->st.data_length > 0 ? ino->st.data_length : 0;
    st->st_blksize = 4096;
    st->st_blocks = (st->st_size + 511) / 512;
    ms_to_ts(ino->st.mtime, &st->st_mtim);
    st->st_ctim = st->st_mtim;
    st->st_atim = st->st_mtim;
}

void fs_entry(struct fs *fs, struct inode *ino, struct fuse_entry_param *e, double timeout)
{
    memset(e, 0, sizeof(*e));
    e->ino = ino->nodeid;
    e->generation = 1;
    fs_attr(fs, ino, &e->attr);
    e->attr_timeout = ino->synthetic ? 0 : fs->o.attr_timeout;
    e->entry_timeout = timeout;
    ino->nlookup++;
}

void fs_negative(struct fuse_entry_param *e, double timeout)
{
    memset(e, 0, sizeof(*e));
    e->ino = 0;
    e->entry_timeout = timeout;
}

int fs_errno(int code)
{
    if (code == 0)
        return 0;
    return err_to_errno(code);
}

void fs_fail(fuse_req_t req, const char *op, const char *path, int code)
{
    int e = fs_errno(code);
    if (e == EIO)
        LOG_WARN("%s %s: %s (%s)", op, path ? path : "?", strerror(e), err_name(code));
    else
        LOG_INFO("%s %s: %s", op, path ? path : "?", strerror(e));
    fuse_reply_err(req, e);
}

struct node *fs_install(struct fs *fs, const struct zk_fetch *f)
{
    if (f->err == 0 && f->has_stat && cache_fresh(&fs->cache, f->zxid))
        cache_put(&fs->cache, f->path, &f->st, f->op == ZC_OP_GET_DATA ? f->data : NULL, f->zxid);
    if (f->err == ZE_NONODE && cache_fresh(&fs->cache, f->zxid)) {
        struct node *n = cache_get(&fs->cache, f->path);
        if (n && n->asof < f->zxid)
            cache_drop(&fs->cache, f->path);
    }
    return cache_get(&fs->cache, f->path);
}

char *fs_ino_path(struct fs *fs, fuse_ino_t nodeid, int *bound)
{
    pthread_mutex_lock(&fs->mu);
    struct inode *ino = inode_get(&fs->inodes, nodeid);
    char *p = ino ? strdup(ino->path) : NULL;
    if (bound)
        *bound = ino ? ino->bound : 0;
    pthread_mutex_unlock(&fs->mu);
    return p;
}

int fs_get_node(struct fs *fs, const char *path, int want_data, struct zc_stat *st,
                struct blob **data)
{
    if (data)
        *data = NULL;
    pthread_mutex_lock(&fs->mu);
    struct node *n = cache_get(&fs->cache, path);
    if (n && (!want_data || n->data)) {
        *st = n->st;
        if (data)
            *data = blob_ref(n->data);
        pthread_mutex_unlock(&fs->mu);
        return 0;
    }
    pthread_mutex_unlock(&fs->mu);
    struct zk_fetch f = {.op = want_data ? ZC_OP_GET_DATA : ZC_OP_EXISTS, .path = path};
    zk_fetch_all(fs, &f, 1);
    pthread_mutex_lock(&fs->mu);
    n = fs_install(fs, &f);
    if (f.err == 0) {
        /* What the cache holds now is at least as new as what was fetched. */
        if (n && (!want_data || n->data)) {
            *st = n->st;
            if (data)
                *data = blob_ref(n->data);
        } else {
            *st = f.st;
            if (data)
                *data = blob_ref(f.data);
        }
    }
    pthread_mutex_unlock(&fs->mu);
    int rc = f.err;
    zk_fetch_clear(&f);
    return rc;
}
