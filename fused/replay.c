/* fused's replay thread and its queue (watch events, session changes, deferred cache
 * invalidations), and the answers to the replay thread's own requests. */
#include "replay.h"
#include "mountinfo.h"

#include "apply.h"
#include "err.h"
#include "fs.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

enum rp_kind { RP_EVENT, RP_CONNECTED, RP_EXPIRED, RP_INVAL_INODE, RP_INVAL_ENTRY };

struct rp_item {
    struct rp_item *next;
    enum rp_kind kind;
    int type;
    int first;
    int64_t zxid;
    uint64_t snapshot;
    uint64_t nodeid;
    int64_t off;
    char path[]; /* event path, or the entry name */
};

int replay_init(struct fs *fs)
{
    struct replay *rp = &fs->rp;
    memset(rp, 0, sizeof(*rp));
    pthread_mutex_init(&rp->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rp->cv, &ca);
    pthread_condattr_destroy(&ca);
    rp->dirfd = -1;
    rp->minfo_fd = -1;
    return 0;
}

static void push(struct fs *fs, struct rp_item *it)
{
    struct replay *rp = &fs->rp;
    pthread_mutex_lock(&rp->mu);
    if (rp->stop) {
        pthread_mutex_unlock(&rp->mu);
        free(it);
        return;
    }
    it->next = NULL;
    if (rp->tail)
        rp->tail->next = it;
    else
        rp->head = it;
    rp->tail = it;
    pthread_cond_signal(&rp->cv);
    pthread_mutex_unlock(&rp->mu);
}

static struct rp_item *item_new(enum rp_kind kind, const char *path)
{
    size_t len = path ? strlen(path) : 0;
    struct rp_item *it = calloc(1, sizeof(*it) + len + 1);
    if (!it) {
        LOG_ERROR("out of memory: a change is not replayed");
        return NULL;
    }
    it->kind = kind;
    if (len)
        memcpy(it->path, path, len);
    return it;
}

void replay_on_event(struct fs *fs, struct sess *s, int type, const char *path, int64_t zxid,
                     uint64_t snapshot)
{
    (void)s;
    if (type == EV_CHILDREN)
        return; /* the children's own events say more */
    struct rp_item *it = item_new(RP_EVENT, path);
    if (!it)
        return;
    it->type = type;
    it->zxid = zxid;
    it->snapshot = snapshot;
    push(fs, it);
}

void replay_on_state(struct fs *fs, struct sess *s, int state, int first)
{
    (void)s;
    struct rp_item *it = NULL;
    if (state == ZC_CONNECTED) {
        it = item_new(RP_CONNECTED, NULL);
        if (it)
            it->first = first;
    } else if (state == ZC_EXPIRED) {
        it = item_new(RP_EXPIRED, NULL);
    } else if (state == ZC_CONNECTING) {
        LOG_WARN("lost the connection to the cluster: reconnecting (operations wait up to %d ms)",
                 fs->o.op_timeout_ms);
    }
    if (it)
        push(fs, it);
}

void replay_queue_inval_inode(struct fs *fs, uint64_t nodeid, int64_t off)
{
    struct rp_item *it = item_new(RP_INVAL_INODE, NULL);
    if (!it)
        return;
    it->nodeid = nodeid;
    it->off = off;
    push(fs, it);
}

void replay_queue_inval_entry(struct fs *fs, uint64_t parent, const char *name)
{
    struct rp_item *it = item_new(RP_INVAL_ENTRY, name);
    if (!it)
        return;
    it->nodeid = parent;
    push(fs, it);
}

int replay_take_delete(struct fs *fs, int64_t zxid, char **path_out)
{
    struct replay *rp = &fs->rp;
    *path_out = NULL;
    pthread_mutex_lock(&rp->mu);
    struct rp_item *it = rp->head;
    if (it && it->kind == RP_EVENT && it->type == EV_DELETED && it->zxid == zxid) {
        rp->head = it->next;
        if (!rp->head)
            rp->tail = NULL;
    } else {
        it = NULL;
    }
    pthread_mutex_unlock(&rp->mu);
    if (!it)
        return 0;
    *path_out = strdup(it->path);
    free(it);
    return *path_out != NULL;
}

/* ---- session changes ---- */

/* The session (re)connected: register the recursive watch if this session has none yet, and
 * catch up with what changed while no events could arrive. */
static void connected(struct fs *fs, int first)
{
    struct sess *s = sess_get(fs);
    if (!s)
        return;
    int resync = !first;
    if (!s->watching) {
        struct zc_req req = {.op = ZC_OP_ADD_WATCH, .path = "/", .mode = 1};
        struct zc_result r;
        int rc = zc_call(s->zc, &req, &r);
        zc_result_free(&r);
        if (rc == 0) {
            s->watching = 1;
            resync = 1;
            LOG_INFO("session 0x%" PRIx64 ": watching the tree", zc_session_id(s->zc));
        } else {
            LOG_WARN("cannot watch the tree: %s; retrying at the next connection", err_msg(rc));
        }
    }
    sess_put(fs, s);
    if (resync)
        apply_resync(fs);
    /* The root's attributes, so that the first stat of the mount point has them. */
    struct zc_stat st;
    fs_get_node(fs, "/", 0, &st, NULL);
}

static void expired(struct fs *fs)
{
    struct sess *s = sess_get(fs);
    if (!s)
        return;
    int is_expired = zc_get_state(s->zc) == ZC_EXPIRED;
    uint64_t id = zc_session_id(s->zc);
    sess_put(fs, s);
    if (!is_expired)
        return;
    LOG_WARN("session 0x%" PRIx64 " expired (its ephemeral nodes are gone): opening a new session",
             id);
    int rc = sess_renew(fs);
    if (rc)
        LOG_ERROR("cannot open a new session: %s", err_msg(rc));
}

/* ---- a private mount namespace for the replays ---- */

/*
 * A replay is a syscall on the mount, and while it runs the mount is busy: a `fusermount3 -u`
 * at that instant would fail with EBUSY. So the replay thread works through an fd on a
 * private copy of the mount (a mount of the same filesystem that belongs to no namespace):
 * its syscalls pin the copy, never the mount its users see. The copy keeps the filesystem
 * alive after the users unmount it: the thread watches the daemon's mount table
 * (/proc/PID/mountinfo) and closes its fd once the mount is gone there, and the session loop
 * then ends as after any unmount. Without the privilege to make the copy (a daemon not run as
 * root), the replays go through the mount point.
 */
#define NS_CHECK_MS 100

static int longer_first(const void *a, const void *b)
{
    size_t x = strlen(*(char *const *)a), y = strlen(*(char *const *)b);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Lazily detaches every mount of this thread's namespace but "/" (deepest first). */
static void detach_all(void)
{
    FILE *f = fopen("/proc/thread-self/mountinfo", "re");
    if (!f)
        return;
    char *line = NULL, **v = NULL;
    size_t cap = 0, n = 0, vcap = 0;
    while (getline(&line, &cap, f) > 0) {
        char *save = NULL, *field = strtok_r(line, " ", &save);
        for (int i = 0; field && i < 4; i++)
            field = strtok_r(NULL, " ", &save);
        if (!field || strcmp(field, "/") == 0)
            continue;
        mountinfo_unescape(field);
        if (n == vcap) {
            vcap = vcap ? vcap * 2 : 64;
            char **nv = realloc(v, vcap * sizeof(*nv));
            if (!nv)
                break;
            v = nv;
        }
        if (!(v[n] = strdup(field)))
            break;
        n++;
    }
    free(line);
    fclose(f);
    if (n)
        qsort(v, n, sizeof(*v), longer_first);
    for (size_t i = 0; i < n; i++) {
        umount2(v[i], MNT_DETACH); /* fails harmlessly for those gone with a parent */
        free(v[i]);
    }
    free(v);
}

/*
 * Takes a private copy of the mount: in a new mount namespace, opens the mount point there,
 * then goes back to the daemon's namespace. The new namespace, left by its only task, goes
 * away with all its mounts but the copy, which the fd keeps (detached, as after a lazy
 * unmount, and still usable through the fd). So this thread stays in the daemon's namespace
 * (for everything else it does, and the threads it starts), and its replays pin nothing
 * anyone else sees. 0 and the fd, or -errno.
 */
static int private_copy(const char *mountpoint, int *dirfd)
{
    *dirfd = -1;
    int orig = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (orig < 0)
        return -errno;
    int rc = 0;
    if (unshare(CLONE_FS | CLONE_NEWNS) != 0) {
        rc = -errno;
        close(orig);
        return rc;
    }
    /* Nothing done in the copy propagates back, nor the users' unmount into it. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        rc = -errno;
    int fd = rc ? -1 : open(mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!rc && fd < 0)
        rc = -errno;
    if (setns(orig, CLONE_NEWNS) != 0) {
        /* Stuck in the copy: at least let go of every other mount in it. */
        LOG_WARN("cannot return to the daemon's mount namespace: %s", strerror(errno));
        detach_all();
    }
    close(orig);
    if (rc)
        return rc;
    *dirfd = fd;
    return 0;
}

/* 1 while the daemon's namespace (its /proc/PID/mountinfo, open as fd) still has the mount
 * (dev), or when that cannot be told. */
static int still_mounted(int fd, dev_t dev)
{
    char want[32];
    snprintf(want, sizeof(want), " %u:%u ", major(dev), minor(dev));
    if (fd < 0 || lseek(fd, 0, SEEK_SET) != 0)
        return 1;
    /* Lines look like "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw": the
     * device is the third field; a chunk boundary may cut a line, so keep a tail. */
    char buf[8192 + 64];
    size_t keep = 0;
    for (;;) {
        ssize_t n = read(fd, buf + keep, sizeof(buf) - 1 - keep);
        if (n < 0)
            return 1;
        if (n == 0)
            return 0;
        buf[keep + (size_t)n] = 0;
        if (strstr(buf, want))
            return 1;
        size_t len = keep + (size_t)n;
        keep = len < 40 ? len : 40;
        memmove(buf, buf + len - keep, keep);
    }
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The users unmounted: let go of the copy, so that the filesystem ends. */
static void check_unmounted(struct fs *fs)
{
    struct replay *rp = &fs->rp;
    if (!rp->private_ns || rp->dropped || !rp->dev || still_mounted(rp->minfo_fd, rp->dev))
        return;
    rp->dropped = 1;
    close(rp->dirfd);
    rp->dirfd = -1;
    LOG_INFO("%s was unmounted", fs->o.mountpoint);
}

/* ---- the thread ---- */

static void *replay_main(void *arg)
{
    struct fs *fs = arg;
    struct replay *rp = &fs->rp;
    /* First: requests from this thread are answered as the replay thread's, without
     * waiting for the session loop's start (replay_start waits for this). */
    pthread_mutex_lock(&rp->mu);
    rp->tid = (pid_t)syscall(SYS_gettid);
    pthread_cond_broadcast(&rp->cv);
    pthread_mutex_unlock(&rp->mu);
    char minfo[64];
    snprintf(minfo, sizeof(minfo), "/proc/%d/mountinfo", (int)getpid());
    rp->minfo_fd = open(minfo, O_RDONLY | O_CLOEXEC);
    int rc = private_copy(fs->o.mountpoint, &rp->dirfd);
    rp->private_ns = rc == 0;
    if (rc)
        LOG_INFO("replays go through the mount point (no private copy of the mount: %s): an "
                 "unmount at the instant of a replay may fail with EBUSY",
                 strerror(-rc));
    /* The mount's device, to tell it from the directory underneath once unmounted (a stat
     * from this thread is answered without the cluster, once the session loop runs). */
    struct stat st;
    if (rp->dirfd >= 0 ? fstat(rp->dirfd, &st) == 0 : stat(fs->o.mountpoint, &st) == 0)
        rp->dev = st.st_dev;
    uint64_t next_check = mono_ms() + NS_CHECK_MS;
    pthread_mutex_lock(&rp->mu);
    for (;;) {
        while (!rp->head && !rp->stop && (!rp->private_ns || mono_ms() < next_check)) {
            if (!rp->private_ns) {
                pthread_cond_wait(&rp->cv, &rp->mu);
                continue;
            }
            struct timespec ts = {.tv_sec = (time_t)(next_check / 1000),
                                  .tv_nsec = (long)(next_check % 1000) * 1000000L};
            pthread_cond_timedwait(&rp->cv, &rp->mu, &ts);
        }
        if (rp->stop)
            break;
        if (rp->private_ns && mono_ms() >= next_check) {
            pthread_mutex_unlock(&rp->mu);
            check_unmounted(fs);
            next_check = mono_ms() + NS_CHECK_MS;
            pthread_mutex_lock(&rp->mu);
            continue;
        }
        struct rp_item *it = rp->head;
        rp->head = it->next;
        if (!rp->head)
            rp->tail = NULL;
        pthread_mutex_unlock(&rp->mu);
        switch (it->kind) {
        case RP_EVENT:
            apply_event(fs, it->type, it->path, it->zxid, it->snapshot);
            break;
        case RP_CONNECTED:
            connected(fs, it->first);
            break;
        case RP_EXPIRED:
            expired(fs);
            break;
        case RP_INVAL_INODE:
            fuse_lowlevel_notify_inval_inode(fs->se, it->nodeid, it->off, 0);
            break;
        case RP_INVAL_ENTRY:
            fuse_lowlevel_notify_inval_entry(fs->se, it->nodeid, it->path, strlen(it->path));
            break;
        }
        free(it);
        pthread_mutex_lock(&rp->mu);
    }
    pthread_mutex_unlock(&rp->mu);
    if (rp->dirfd >= 0)
        close(rp->dirfd);
    if (rp->minfo_fd >= 0)
        close(rp->minfo_fd);
    rp->dirfd = rp->minfo_fd = -1;
    return NULL;
}

int replay_start(struct fs *fs)
{
    struct replay *rp = &fs->rp;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = -pthread_create(&rp->thread, NULL, replay_main, fs);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        return rc;
    rp->started = 1;
    pthread_mutex_lock(&rp->mu);
    while (!rp->tid)
        pthread_cond_wait(&rp->cv, &rp->mu);
    pthread_mutex_unlock(&rp->mu);
    return 0;
}

void replay_stop_begin(struct fs *fs)
{
    struct replay *rp = &fs->rp;
    pthread_mutex_lock(&rp->mu);
    rp->stop = 1;
    pthread_cond_broadcast(&rp->cv);
    pthread_mutex_unlock(&rp->mu);
}

void replay_stop(struct fs *fs)
{
    struct replay *rp = &fs->rp;
    replay_stop_begin(fs);
    if (rp->started)
        pthread_join(rp->thread, NULL);
    rp->started = 0;
}

void replay_close(struct fs *fs)
{
    struct replay *rp = &fs->rp;
    struct rp_item *it = rp->head, *next;
    for (; it; it = next) {
        next = it->next;
        free(it);
    }
    rp->head = rp->tail = NULL;
    pthread_mutex_destroy(&rp->mu);
    pthread_cond_destroy(&rp->cv);
}

int replay_stopping(struct fs *fs)
{
    pthread_mutex_lock(&fs->rp.mu);
    int stop = fs->rp.stop;
    pthread_mutex_unlock(&fs->rp.mu);
    return stop;
}

/* ---- the parked change and the answers to the replay thread ---- */

int replay_caller(struct fs *fs, fuse_req_t req)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    pid_t tid = __atomic_load_n(&fs->rp.tid, __ATOMIC_RELAXED);
    return ctx && tid && ctx->pid == tid;
}

static void pin_id(struct fs *fs, uint64_t nodeid)
{
    struct inode *ino = nodeid ? inode_get(&fs->inodes, nodeid) : NULL;
    if (ino)
        inode_pin(ino);
}

static void unpin_id(struct fs *fs, uint64_t nodeid)
{
    struct inode *ino = nodeid ? inode_get(&fs->inodes, nodeid) : NULL;
    if (ino)
        inode_unpin(&fs->inodes, ino);
}

void replay_park(struct fs *fs, const struct parked *p)
{
    struct parked *q = &fs->parked;
    *q = *p;
    q->name = p->name ? strdup(p->name) : NULL;
    q->name2 = p->name2 ? strdup(p->name2) : NULL;
    q->path2 = p->path2 ? strdup(p->path2) : NULL;
    struct inode *d = inode_get(&fs->inodes, p->parent);
    struct inode *d2 = p->parent2 ? inode_get(&fs->inodes, p->parent2) : NULL;
    q->dir = d ? strdup(d->path) : NULL;
    q->dir2 = d2 ? strdup(d2->path) : NULL;
    pin_id(fs, q->ino);
    pin_id(fs, q->ino2);
}

void replay_unpark(struct fs *fs)
{
    struct parked *q = &fs->parked;
    unpin_id(fs, q->ino);
    unpin_id(fs, q->ino2);
    free(q->name);
    free(q->name2);
    free(q->path2);
    free(q->dir);
    free(q->dir2);
    memset(q, 0, sizeof(*q));
}

static int same_dir(struct fs *fs, uint64_t parent, const char *dir)
{
    struct inode *d = inode_get(&fs->inodes, parent);
    return d && d->bound && dir && strcmp(d->path, dir) == 0;
}

static int is(struct fs *fs, enum park_op op, uint64_t parent, const char *name)
{
    const struct parked *p = &fs->parked;
    return p->op == op && p->name && strcmp(p->name, name) == 0 && same_dir(fs, parent, p->dir);
}

static int is2(struct fs *fs, uint64_t parent, const char *name)
{
    const struct parked *p = &fs->parked;
    return p->op == PARK_RENAME && p->name2 && strcmp(p->name2, name) == 0 &&
           same_dir(fs, parent, p->dir2);
}

/* Entry reply for nodeid (fs->mu held; released). */
static void reply_entry_locked(struct fs *fs, fuse_req_t req, uint64_t nodeid, double timeout)
{
    struct inode *ino = inode_get(&fs->inodes, nodeid);
    if (!ino) {
        pthread_mutex_unlock(&fs->mu);
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct fuse_entry_param e;
    fs_entry(fs, ino, &e, timeout);
    pthread_mutex_unlock(&fs->mu);
    fuse_reply_entry(req, &e);
}

void replay_lookup(struct fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fuse_entry_param e;
    pthread_mutex_lock(&fs->mu);
    const struct parked *p = &fs->parked;
    if (is(fs, PARK_CREATE, parent, name) || (is2(fs, parent, name) && !p->ino2)) {
        pthread_mutex_unlock(&fs->mu);
        fs_negative(&e, 0); /* not there yet: the replayed create makes it */
        fuse_reply_entry(req, &e);
        return;
    }
    if (is(fs, PARK_DELETE, parent, name) || is(fs, PARK_RENAME, parent, name)) {
        reply_entry_locked(fs, req, p->ino, 0);
        return;
    }
    if (is2(fs, parent, name)) {
        reply_entry_locked(fs, req, p->ino2, 0);
        return;
    }
    /* Anything else on the way: what the cache knows, never a request to the cluster. */
    struct inode *pino = inode_get(&fs->inodes, parent);
    char *path = pino && pino->bound ? fs_child_path(pino->path, name) : NULL;
    struct node *n = path ? cache_get(&fs->cache, path) : NULL;
    struct inode *ino = n ? inode_for(&fs->inodes, path, &n->st, node_is_dir(n)) : NULL;
    free(path);
    if (!ino) {
        pthread_mutex_unlock(&fs->mu);
        fuse_reply_err(req, ENOENT);
        return;
    }
    reply_entry_locked(fs, req, ino->nodeid, fs->o.entry_timeout);
}

void replay_make(struct fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name)
{
    pthread_mutex_lock(&fs->mu);
    const struct parked *p = &fs->parked;
    if (!is(fs, PARK_CREATE, parent, name)) {
        pthread_mutex_unlock(&fs->mu);
        fuse_reply_err(req, EIO);
        return;
    }
    reply_entry_locked(fs, req, p->ino, fs->o.entry_timeout);
}

void replay_remove(struct fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name)
{
    pthread_mutex_lock(&fs->mu);
    int ok = is(fs, PARK_DELETE, parent, name);
    pthread_mutex_unlock(&fs->mu);
    fuse_reply_err(req, ok ? 0 : EIO);
}

void replay_rename(struct fs *fs, fuse_req_t req, fuse_ino_t parent, const char *name,
                   fuse_ino_t newparent, const char *newname)
{
    pthread_mutex_lock(&fs->mu);
    const struct parked *p = &fs->parked;
    if (!is(fs, PARK_RENAME, parent, name) || !is2(fs, newparent, newname)) {
        pthread_mutex_unlock(&fs->mu);
        fuse_reply_err(req, EIO);
        return;
    }
    /* The kernel now has the source's inode under the target's name: so do we. */
    struct inode *ino = inode_get(&fs->inodes, p->ino);
    struct node *n = cache_get(&fs->cache, p->path2);
    if (ino && inode_bind(&fs->inodes, ino, p->path2) == 0 && n) {
        ino->czxid = n->st.czxid;
        ino->st = n->st;
    }
    pthread_mutex_unlock(&fs->mu);
    fuse_reply_err(req, 0);
}
