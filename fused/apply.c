/* fused's watch events applied on the replay thread: cache first, then kernel invalidations,
 * then the change replayed through the mount (mknod/mkdir, unlink/rmdir, open+ftruncate+close,
 * utimensat, rename) so that local inotify watchers see it. The replayed requests are answered
 * from the parked pre-state (replay.c), never from the cluster. */
#include "apply.h"

#include "err.h"
#include "fs.h"
#include "log.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers (fs->mu held where noted) ---- */

/* Node id of the directory at path if the kernel holds it (only there can an inotify watch
 * be, so only there is a replay useful); 0 otherwise. fs->mu held. */
static uint64_t known_dir(struct fs *fs, const char *path)
{
    if (!path)
        return 0;
    struct inode *ino = inode_at(&fs->inodes, path);
    if (!ino || !ino->is_dir)
        return 0;
    if (ino->nodeid != INODE_ROOT && ino->nlookup == 0)
        return 0;
    return ino->nodeid;
}

static void bump_seen(struct fs *fs, int64_t zxid)
{
    if (zxid > fs->cache.seen_zxid)
        fs->cache.seen_zxid = zxid;
}

static void inval_entry(struct fs *fs, uint64_t parent, const char *name)
{
    if (parent)
        fuse_lowlevel_notify_inval_entry(fs->se, parent, name, strlen(name));
}

static void inval_inode(struct fs *fs, uint64_t nodeid, int64_t off)
{
    if (nodeid)
        fuse_lowlevel_notify_inval_inode(fs->se, nodeid, off, 0);
}

/* The replays: syscalls on the mount, with no lock held. 0 or -errno. */
static int replayed(const char *what, const char *path, int rc)
{
    if (rc < 0) {
        int e = errno;
        LOG_DEBUG("replay %s %s: %s", what, path, strerror(e));
        return -e;
    }
    return 0;
}

/*
 * A directory fd on the mount's root for one replay (to close after it), or -1; *rel receives
 * path relative to it. In the thread's private namespace, a copy of the fd held on the private
 * copy of the mount; otherwise the mount point opened for the replay only (an fd kept on the
 * mount would make umount fail with EBUSY), checked to be the mount and not the directory
 * underneath after an unmount.
 */
static int mount_fd(struct fs *fs, const char *path, const char **rel)
{
    if (replay_stopping(fs) || !fs->rp.dev || fs->rp.dropped)
        return -1;
    *rel = strcmp(path, "/") == 0 ? "." : path + 1;
    if (fs->rp.dirfd >= 0)
        return dup(fs->rp.dirfd); /* the private copy (replay.c) */
    int fd = open(fs->o.mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != fs->rp.dev) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * A watcher that follows new directories (inotifywait -r) adds its watch on one after reading
 * the IN_CREATE: changes inside a directory just replayed wait for that a moment (replay
 * thread only).
 */
#define SETTLE_MS 50
static char settle_dir[4096];
static uint64_t settle_until;

static void settle(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t plen = slash ? (size_t)(slash - path) : 0;
    if (!settle_until || plen == 0 || plen != strlen(settle_dir) ||
        strncmp(path, settle_dir, plen) != 0)
        return;
    uint64_t now = now_ms();
    if (now < settle_until)
        usleep((useconds_t)(settle_until - now) * 1000);
    settle_until = 0;
}

static int rp_make(struct fs *fs, const char *path, int is_dir)
{
    const char *rel;
    settle(path);
    int dfd = mount_fd(fs, path, &rel);
    if (dfd < 0)
        return -ENOTCONN;
    int rc = is_dir ? replayed("mkdir", path, mkdirat(dfd, rel, 0755))
                    : replayed("mknod", path, mknodat(dfd, rel, S_IFREG | 0644, 0));
    close(dfd);
    if (rc == 0 && is_dir && strlen(path) < sizeof(settle_dir)) {
        snprintf(settle_dir, sizeof(settle_dir), "%s", path);
        settle_until = now_ms() + SETTLE_MS;
    }
    return rc;
}

static int rp_remove(struct fs *fs, const char *path, int is_dir)
{
    const char *rel;
    settle(path);
    int dfd = mount_fd(fs, path, &rel);
    if (dfd < 0)
        return -ENOTCONN;
    int rc =
        replayed(is_dir ? "rmdir" : "unlink", path, unlinkat(dfd, rel, is_dir ? AT_REMOVEDIR : 0));
    close(dfd);
    return rc;
}

/* open(O_WRONLY) + ftruncate(new size) + close: IN_MODIFY and IN_CLOSE_WRITE. */
static int rp_modify(struct fs *fs, const char *path, off_t size)
{
    const char *rel;
    settle(path);
    int dfd = mount_fd(fs, path, &rel);
    if (dfd < 0)
        return -ENOTCONN;
    int fd = openat(dfd, rel, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    int rc = replayed("open", path, fd);
    if (fd >= 0) {
        rc = replayed("ftruncate", path, ftruncate(fd, size));
        close(fd);
    }
    close(dfd);
    return rc;
}

/* utimensat: IN_MODIFY (mtime only) or IN_ATTRIB (both times). */
static int rp_touch(struct fs *fs, const char *path, int modify)
{
    const char *rel;
    settle(path);
    int dfd = mount_fd(fs, path, &rel);
    if (dfd < 0)
        return -ENOTCONN;
    struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_NOW}};
    int rc =
        replayed("utimensat", path, utimensat(dfd, rel, modify ? ts : NULL, AT_SYMLINK_NOFOLLOW));
    close(dfd);
    return rc;
}

static int rp_rename(struct fs *fs, const char *src, const char *dst)
{
    const char *a, *b;
    int dfd = mount_fd(fs, src, &a);
    if (dfd < 0)
        return -ENOTCONN;
    b = dst + 1;
    int rc = replayed("rename", src, renameat(dfd, a, dfd, b));
    close(dfd);
    return rc;
}

static void fetch(struct fs *fs, enum zc_op op, const char *path, struct zk_fetch *f)
{
    memset(f, 0, sizeof(*f));
    f->op = op;
    f->path = path;
    zk_fetch_all(fs, f, 1);
}

/* A stand-in Stat for a node the cluster no longer has. */
static void gone_stat(struct zc_stat *st, int64_t zxid)
{
    memset(st, 0, sizeof(*st));
    st->czxid = zxid;
    st->mzxid = zxid;
    st->mtime = st->ctime = (int64_t)time(NULL) * 1000;
}

/* ---- events ---- */

static void ev_deleted(struct fs *fs, const char *path, int64_t zxid);
static void ev_rename(struct fs *fs, const char *src, const char *dst, int64_t zxid,
                      int dst_existed, struct zk_fetch *f);

/*
 * The node at path is shown as the other file type now (a file gained a child, or was made a
 * directory): replayed as the old entry's removal and the new one's creation, so that watchers
 * follow (inotifywait -r watches a directory it sees created). pid: the parent, if known.
 */
static void flip(struct fs *fs, const char *path, uint64_t pid)
{
    const char *name = path_name(path);
    pthread_mutex_lock(&fs->mu);
    struct inode *old = inode_at(&fs->inodes, path);
    uint64_t old_id = old ? old->nodeid : 0;
    int old_dir = old ? old->is_dir : 0;
    if (old_id && pid) {
        struct parked p = {.op = PARK_DELETE, .parent = pid, .name = (char *)name, .ino = old_id};
        replay_park(fs, &p);
    }
    if (old)
        inode_detach(&fs->inodes, old);
    pthread_mutex_unlock(&fs->mu);
    if (!pid)
        return;
    inval_entry(fs, pid, name);
    if (old_id) {
        rp_remove(fs, path, old_dir);
        pthread_mutex_lock(&fs->mu);
        replay_unpark(fs);
        pthread_mutex_unlock(&fs->mu);
    }
    pthread_mutex_lock(&fs->mu);
    struct node *n = cache_get(&fs->cache, path);
    struct inode *ino = n ? inode_for(&fs->inodes, path, &n->st, node_is_dir(n)) : NULL;
    int is_dir = ino ? ino->is_dir : 0;
    if (ino) {
        struct parked p = {
            .op = PARK_CREATE, .parent = pid, .name = (char *)name, .ino = ino->nodeid};
        replay_park(fs, &p);
    }
    pthread_mutex_unlock(&fs->mu);
    if (!ino)
        return;
    inval_entry(fs, pid, name);
    rp_make(fs, path, is_dir);
    pthread_mutex_lock(&fs->mu);
    replay_unpark(fs);
    pthread_mutex_unlock(&fs->mu);
}

/* A node was created. pre: the node already fetched (or NULL); rename: look for the delete
 * that would make it the second half of a rename. */
static void ev_created(struct fs *fs, const char *path, int64_t zxid, struct zk_fetch *pre,
                       int rename)
{
    char *parent = fs_parent_path(path), *gparent = NULL;
    if (!parent)
        return;
    const char *name = path_name(path);
    struct zk_fetch own = {0}, *f = pre ? pre : &own;
    uint64_t pid = 0, gid = 0;
    pthread_mutex_lock(&fs->mu);
    bump_seen(fs, zxid);
    cache_child_changed(&fs->cache, parent, name, 1, zxid);
    struct inode *pino = inode_at(&fs->inodes, parent);
    if (pino && !pino->is_dir && pino->nodeid != INODE_ROOT) {
        /* A file gained a child: it is a directory now (under a new node id). */
        gparent = fs_parent_path(parent);
        gid = known_dir(fs, gparent);
        pthread_mutex_unlock(&fs->mu);
        flip(fs, parent, gid);
        pthread_mutex_lock(&fs->mu);
    }
    pid = known_dir(fs, parent);
    pthread_mutex_unlock(&fs->mu);
    if (!pid)
        goto out;
    if (!pre)
        fetch(fs, ZC_OP_GET_DATA, path, f);
    char *src;
    if (rename && f->err == 0 && replay_take_delete(fs, zxid, &src)) {
        ev_rename(fs, src, path, zxid, 0, f);
        free(src);
        goto out;
    }
    pthread_mutex_lock(&fs->mu);
    struct node *n = f->err == 0 ? cache_put(&fs->cache, path, &f->st, f->data, f->zxid)
                                 : cache_get(&fs->cache, path);
    struct inode *ino;
    if (n) {
        ino = inode_for(&fs->inodes, path, &n->st, node_is_dir(n));
    } else {
        struct zc_stat st;
        gone_stat(&st, zxid);
        ino = inode_new_detached(&fs->inodes, path, &st, 0, 0);
    }
    if (!ino) {
        pthread_mutex_unlock(&fs->mu);
        goto out;
    }
    int is_dir = ino->is_dir;
    struct parked p = {.op = PARK_CREATE, .parent = pid, .name = (char *)name, .ino = ino->nodeid};
    replay_park(fs, &p);
    pthread_mutex_unlock(&fs->mu);
    inval_entry(fs, pid, name);
    int rc = rp_make(fs, path, is_dir);
    pthread_mutex_lock(&fs->mu);
    replay_unpark(fs);
    pthread_mutex_unlock(&fs->mu);
    if (rc)
        inval_entry(fs, pid, name);
out:
    if (!pre)
        zk_fetch_clear(&own);
    free(parent);
    free(gparent);
}

static void ev_deleted(struct fs *fs, const char *path, int64_t zxid)
{
    char *parent = fs_parent_path(path);
    if (!parent)
        return;
    const char *name = path_name(path);
    pthread_mutex_lock(&fs->mu);
    bump_seen(fs, zxid);
    uint64_t pid = known_dir(fs, parent);
    struct inode *ino = inode_at(&fs->inodes, path);
    struct node *n = cache_get(&fs->cache, path);
    struct zc_stat st;
    if (n)
        st = n->st;
    else if (ino)
        st = ino->st;
    else
        gone_stat(&st, zxid);
    int is_dir = ino ? ino->is_dir : n ? node_is_dir(n) : 0;
    /* A node read after the delete is a later incarnation, which stays. */
    int removed = !n || n->asof < zxid;
    if (pid) {
        /* The kernel must find the old node to unlink it. */
        struct inode *pre =
            removed && ino ? ino : inode_new_detached(&fs->inodes, path, &st, is_dir, 0);
        if (pre) {
            struct parked p = {
                .op = PARK_DELETE, .parent = pid, .name = (char *)name, .ino = pre->nodeid};
            replay_park(fs, &p);
        } else {
            pid = 0;
        }
    }
    if (removed && ino)
        inode_detach(&fs->inodes, ino); /* first: it keeps the data for open files */
    cache_deleted(&fs->cache, path, zxid);
    pthread_mutex_unlock(&fs->mu);
    if (pid) {
        inval_entry(fs, pid, name);
        int rc = rp_remove(fs, path, is_dir);
        pthread_mutex_lock(&fs->mu);
        replay_unpark(fs);
        pthread_mutex_unlock(&fs->mu);
        if (rc)
            inval_entry(fs, pid, name);
    }
    free(parent);
}

/* Data (or, meta, the kind/policy/ACL) changed. */
static void ev_changed(struct fs *fs, const char *path, int64_t zxid, int meta,
                       struct zk_fetch *pre, int rename)
{
    char *parent = fs_parent_path(path);
    struct zk_fetch own = {0}, *f = pre ? pre : &own;
    pthread_mutex_lock(&fs->mu);
    bump_seen(fs, zxid);
    uint64_t pid = known_dir(fs, parent);
    struct inode *ino = inode_at(&fs->inodes, path);
    if (!pid && !(ino && (ino->nlookup || ino->nodeid == INODE_ROOT))) {
        /* Nothing the kernel knows: just forget the old state. */
        struct node *n = cache_get(&fs->cache, path);
        if (n && n->asof < zxid)
            cache_drop(&fs->cache, path);
        pthread_mutex_unlock(&fs->mu);
        goto out;
    }
    pthread_mutex_unlock(&fs->mu);
    if (!pre)
        fetch(fs, meta ? ZC_OP_EXISTS : ZC_OP_GET_DATA, path, f);
    char *src;
    if (rename && f->err == 0 && replay_take_delete(fs, zxid, &src)) {
        ev_rename(fs, src, path, zxid, 1, f);
        free(src);
        goto out;
    }
    pthread_mutex_lock(&fs->mu);
    if (f->err == 0)
        cache_put(&fs->cache, path, &f->st, meta ? NULL : f->data, f->zxid);
    struct node *n = cache_get(&fs->cache, path);
    ino = inode_at(&fs->inodes, path);
    int is_dir = n ? node_is_dir(n) : ino ? ino->is_dir : 0;
    int flipped = ino && ino->is_dir != is_dir && ino->nodeid != INODE_ROOT;
    if (!flipped && ino && n)
        ino->st = n->st;
    uint64_t iid = ino ? ino->nodeid : 0;
    off_t size = n ? n->st.data_length : 0;
    pthread_mutex_unlock(&fs->mu);
    if (flipped) {
        flip(fs, path, pid);
        goto out;
    }
    /* Before the event: a read after it must not find the old pages or size. */
    inval_inode(fs, iid, meta ? -1 : 0);
    if (pid && f->err == 0) {
        if (meta)
            rp_touch(fs, path, 0);
        else if (is_dir)
            rp_touch(fs, path, 1);
        else
            rp_modify(fs, path, size);
        pthread_mutex_lock(&fs->mu);
        ino = inode_at(&fs->inodes, path);
        iid = ino ? ino->nodeid : 0;
        pthread_mutex_unlock(&fs->mu);
        inval_inode(fs, iid, meta ? -1 : 0);
    }
out:
    if (!pre)
        zk_fetch_clear(&own);
    free(parent);
}

/*
 * A rename made by a multi elsewhere: dst created (or given src's data) and src deleted in
 * one transaction. Replayed as one rename when the kernel knows both directories, so that
 * watchers see IN_MOVED_FROM/IN_MOVED_TO; otherwise as the two changes.
 */
static void ev_rename(struct fs *fs, const char *src, const char *dst, int64_t zxid,
                      int dst_existed, struct zk_fetch *f)
{
    char *sparent = fs_parent_path(src), *dparent = fs_parent_path(dst);
    const char *sname = path_name(src), *dname = path_name(dst);
    pthread_mutex_lock(&fs->mu);
    uint64_t spid = known_dir(fs, sparent), dpid = known_dir(fs, dparent);
    struct inode *sino = inode_at(&fs->inodes, src), *dino = inode_at(&fs->inodes, dst);
    struct node *sn = cache_get(&fs->cache, src);
    int src_dir = sino ? sino->is_dir : sn ? node_is_dir(sn) : 0;
    if (!spid || !dpid || f->err != 0 || src_dir != stat_is_dir(&f->st) ||
        (dino && dino->is_dir != src_dir)) {
        pthread_mutex_unlock(&fs->mu);
        if (dst_existed)
            ev_changed(fs, dst, zxid, 0, f, 0);
        else
            ev_created(fs, dst, zxid, f, 0);
        ev_deleted(fs, src, zxid);
        goto out;
    }
    struct zc_stat sst = sn ? sn->st : sino ? sino->st : f->st;
    cache_put(&fs->cache, dst, &f->st, f->data, f->zxid);
    if (!dst_existed)
        cache_child_changed(&fs->cache, dparent, dname, 1, zxid);
    cache_deleted(&fs->cache, src, zxid);
    struct inode *pre = sino ? sino : inode_new_detached(&fs->inodes, src, &sst, src_dir, 0);
    struct inode *pre2 = !dst_existed ? NULL
                         : dino       ? dino
                                      : inode_new_detached(&fs->inodes, dst, &f->st, src_dir, 0);
    if (!pre || (dst_existed && !pre2)) {
        pthread_mutex_unlock(&fs->mu);
        goto out;
    }
    uint64_t pre_id = pre->nodeid;
    struct parked p = {.op = PARK_RENAME,
                       .parent = spid,
                       .name = (char *)sname,
                       .ino = pre_id,
                       .parent2 = dpid,
                       .name2 = (char *)dname,
                       .ino2 = pre2 ? pre2->nodeid : 0,
                       .path2 = (char *)dst};
    replay_park(fs, &p);
    pthread_mutex_unlock(&fs->mu);
    inval_entry(fs, spid, sname);
    inval_entry(fs, dpid, dname);
    int rc = rp_rename(fs, src, dst);
    pthread_mutex_lock(&fs->mu);
    if (rc) {
        struct inode *s = inode_get(&fs->inodes, pre_id);
        if (s && s->bound && strcmp(s->path, src) == 0)
            inode_detach(&fs->inodes, s);
    }
    replay_unpark(fs);
    struct inode *now = inode_at(&fs->inodes, dst);
    uint64_t iid = now ? now->nodeid : 0;
    pthread_mutex_unlock(&fs->mu);
    if (rc) {
        inval_entry(fs, spid, sname);
        inval_entry(fs, dpid, dname);
    }
    inval_inode(fs, iid, 0);
out:
    free(sparent);
    free(dparent);
}

void apply_event(struct fs *fs, int type, const char *path, int64_t zxid, uint64_t snapshot)
{
    if (zxid <= fs->rp.resync_zxid)
        return; /* the last resync already reflects it */
    own_wait(fs, snapshot);
    own_prune(fs, zxid);
    if (own_is(fs, zxid) || replay_stopping(fs)) {
        /* This mount's own change: its handler updated the cache and the kernel raised the
         * inotify events already. */
        pthread_mutex_lock(&fs->mu);
        bump_seen(fs, zxid);
        pthread_mutex_unlock(&fs->mu);
        return;
    }
    LOG_DEBUG("event %d %s zxid 0x%llx", type, path, (unsigned long long)zxid);
    switch (type) {
    case EV_CREATED:
        ev_created(fs, path, zxid, NULL, 1);
        break;
    case EV_DELETED:
        ev_deleted(fs, path, zxid);
        break;
    case EV_DATA:
        ev_changed(fs, path, zxid, 0, NULL, 1);
        break;
    case EV_META:
        ev_changed(fs, path, zxid, 1, NULL, 0);
        break;
    default:
        break;
    }
}

/* ---- resync ---- */

struct rs_node {
    char *path;
    struct zc_stat st;
    char **kids; /* the cached child set, NULL if unknown */
    uint32_t n_kids;
};

struct rs_event {
    int type;
    int depth;
    char *path;
};

static int depth(const char *path)
{
    int d = 0;
    for (; *path; path++)
        d += *path == '/';
    return d;
}

static int cmp_event(const void *a, const void *b)
{
    const struct rs_event *x = a, *y = b;
    /* Deletes first, deepest first; then creates, shallowest first; then changes. */
    int rx = x->type == EV_DELETED ? 0 : x->type == EV_CREATED ? 1 : 2;
    int ry = y->type == EV_DELETED ? 0 : y->type == EV_CREATED ? 1 : 2;
    if (rx != ry)
        return rx - ry;
    if (x->depth != y->depth)
        return rx == 0 ? y->depth - x->depth : x->depth - y->depth;
    return strcmp(x->path, y->path);
}

static int has_name(char **names, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

struct rs_list {
    struct rs_event *v;
    size_t n, cap;
};

static void add_event(struct rs_list *l, int type, char *path)
{
    if (!path)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct rs_event *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            free(path);
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (struct rs_event){type, depth(path), path};
}

void apply_resync(struct fs *fs)
{
    size_t n = 0;
    pthread_mutex_lock(&fs->mu);
    char **paths = cache_paths(&fs->cache, &n);
    struct rs_node *old = calloc(n + 1, sizeof(*old));
    for (size_t i = 0; old && paths && i < n; i++) {
        struct node *c = cache_get(&fs->cache, paths[i]);
        old[i].path = paths[i];
        old[i].st = c->st;
        if (c->has_children) {
            old[i].kids = calloc(c->n_children + 1, sizeof(char *));
            for (struct child *ch = c->children; old[i].kids && ch; ch = ch->hh.next)
                old[i].kids[old[i].n_kids++] = strdup(ch->name);
        }
    }
    pthread_mutex_unlock(&fs->mu);
    struct zk_fetch *f = calloc(2 * n + 1, sizeof(*f));
    struct rs_list ev = {0};
    if (!paths || !old || !f)
        goto out;
    for (size_t i = 0; i < n; i++) {
        f[2 * i].op = ZC_OP_EXISTS;
        f[2 * i].path = old[i].path;
        f[2 * i + 1].op = old[i].kids ? ZC_OP_GET_CHILDREN : ZC_OP_EXISTS;
        f[2 * i + 1].path = old[i].path;
    }
    zk_fetch_all(fs, f, 2 * n);
    int64_t top = 0;
    for (size_t i = 0; i < 2 * n; i++) {
        if (f[i].err == ZE_CONNECTIONLOSS || f[i].err == ZE_SESSIONEXPIRED) {
            LOG_INFO("resync interrupted (%s): again at the next connection", err_msg(f[i].err));
            goto out;
        }
        if (f[i].zxid > top)
            top = f[i].zxid;
    }
    for (size_t i = 0; i < n; i++) {
        const struct rs_node *o = &old[i];
        const struct zk_fetch *now = &f[2 * i], *kids = &f[2 * i + 1];
        const char *p = o->path;
        if (now->err == ZE_NONODE) {
            if (strcmp(p, "/") != 0)
                add_event(&ev, EV_DELETED, strdup(p));
            continue;
        }
        if (now->err)
            continue;
        if (now->st.czxid != o->st.czxid && strcmp(p, "/") != 0) {
            add_event(&ev, EV_DELETED, strdup(p));
            add_event(&ev, EV_CREATED, strdup(p));
            continue;
        }
        if (now->st.mzxid != o->st.mzxid)
            add_event(&ev, EV_DATA, strdup(p));
        if (now->st.kind != o->st.kind || now->st.policy != o->st.policy ||
            now->st.aversion != o->st.aversion)
            add_event(&ev, EV_META, strdup(p));
        if (!o->kids || kids->err)
            continue;
        /* Children the cache has no node for are only known by name: compare the sets. */
        pthread_mutex_lock(&fs->mu);
        for (uint32_t k = 0; k < kids->n_children; k++) {
            char *cp = fs_child_path(p, kids->children[k]);
            if (cp && !has_name(o->kids, o->n_kids, kids->children[k]) &&
                !cache_get(&fs->cache, cp)) {
                add_event(&ev, EV_CREATED, cp);
                cp = NULL;
            }
            free(cp);
        }
        for (uint32_t k = 0; k < o->n_kids; k++) {
            char *cp = fs_child_path(p, o->kids[k]);
            if (cp && !has_name(kids->children, kids->n_children, o->kids[k]) &&
                !cache_get(&fs->cache, cp)) {
                add_event(&ev, EV_DELETED, cp);
                cp = NULL;
            }
            free(cp);
        }
        pthread_mutex_unlock(&fs->mu);
    }
    pthread_mutex_lock(&fs->mu);
    bump_seen(fs, top);
    pthread_mutex_unlock(&fs->mu);
    if (top > fs->rp.resync_zxid)
        fs->rp.resync_zxid = top;
    if (ev.n)
        qsort(ev.v, ev.n, sizeof(*ev.v), cmp_event);
    LOG_INFO("resync at zxid 0x%llx: %zu nodes checked, %zu changes", (unsigned long long)top, n,
             ev.n);
    for (size_t i = 0; i < ev.n && !replay_stopping(fs); i++) {
        const struct rs_event *e = &ev.v[i];
        if (e->type == EV_CREATED)
            ev_created(fs, e->path, top, NULL, 0);
        else if (e->type == EV_DELETED)
            ev_deleted(fs, e->path, top);
        else
            ev_changed(fs, e->path, top, e->type == EV_META, NULL, 0);
    }
out:
    for (size_t i = 0; i < ev.n; i++)
        free(ev.v[i].path);
    free(ev.v);
    for (size_t i = 0; f && i < 2 * n; i++)
        zk_fetch_clear(&f[i]);
    free(f);
    for (size_t i = 0; old && i < n; i++) {
        for (uint32_t k = 0; k < old[i].n_kids; k++)
            free(old[i].kids[k]);
        free(old[i].kids);
    }
    free(old);
    for (size_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
}
