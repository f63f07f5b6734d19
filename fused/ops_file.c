/* zkfs-fused open files: reads from the cache, writes buffered per open handle and committed
 * as one setData (or one create) when the handle is flushed or fsync'd. */
#include "ops.h"

#include "err.h"
#include "log.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

/*
 * An open file. Writable handles hold the whole new content in buf (the node's data at open,
 * or nothing with O_TRUNC) and commit it when dirty. A handle made by O_CREAT in a sequential
 * directory has no znode until its first commit, which creates NAME + suffix with the
 * content in one request.
 */
struct handle {
    UT_hash_handle hh;
    uint64_t id; /* fi->fh: ids are never reused, so a late request cannot reach a new file */
    int refs;    /* under handles_mu: the table's, and one per request using it */
    pthread_mutex_t mu;
    uint64_t nodeid;
    char *path;     /* the node's path at open (or the directory, for a pending create) */
    char *seq_name; /* pending sequential create: the requested name */
    int flags;
    int writable;
    uint8_t *buf;
    size_t len, cap;
    int dirty;         /* written since the last commit */
    int trunc_pending; /* O_TRUNC emptied a node with data and nothing was committed since */
    int failed;        /* a write or a commit failed: nothing is published at release */
    uint32_t policy;   /* of the parent directory, for creates */
    /* Who wrote (the kernel's lock owner: one per fd table). FLUSH comes at every close of
     * every copy of the fd, a forked child's included; only a writer's close commits. */
    uint64_t owners[8];
    int n_owners;      /* -1: too many to track, any close commits */
    struct blob *snap; /* read-only handles: the data at open */
    int snapshot;      /* reads come from snap, bypassing the page cache */
};

static struct fs *req_fs(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* Open handles by id. The kernel may send RELEASE while a request on the same file is still
 * being answered (direct I/O): requests hold a reference, RELEASE removes the handle from the
 * table, and the last reference frees it. */
static pthread_mutex_t handles_mu = PTHREAD_MUTEX_INITIALIZER;
static struct handle *handles;
static uint64_t next_handle_id = 1;

static void handle_free(struct handle *h);

static void handle_register(struct handle *h)
{
    pthread_mutex_lock(&handles_mu);
    h->id = next_handle_id++;
    h->refs = 1;
    HASH_ADD(hh, handles, id, sizeof(h->id), h);
    pthread_mutex_unlock(&handles_mu);
}

/* The handle for fh with a reference (handle_put it), or NULL (fh 0, or released). With
 * take, it also leaves the table (RELEASE): the reference returned is the table's. */
static struct handle *handle_get(uint64_t fh, int take)
{
    struct handle *h = NULL;
    if (!fh)
        return NULL;
    pthread_mutex_lock(&handles_mu);
    HASH_FIND(hh, handles, &fh, sizeof(fh), h);
    if (h && take)
        HASH_DEL(handles, h);
    else if (h)
        h->refs++;
    pthread_mutex_unlock(&handles_mu);
    return h;
}

static void handle_put(struct handle *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&handles_mu);
    int last = --h->refs == 0;
    pthread_mutex_unlock(&handles_mu);
    if (last)
        handle_free(h);
}

/* Undoes handle_register when the open could not be answered. */
static void handle_drop(uint64_t fh)
{
    handle_put(handle_get(fh, 1));
}

static struct handle *handle_new(uint64_t nodeid, const char *path, int flags)
{
    struct handle *h = calloc(1, sizeof(*h));
    if (!h || !(h->path = strdup(path))) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->nodeid = nodeid;
    h->flags = flags;
    h->writable = (flags & O_ACCMODE) != O_RDONLY;
    return h;
}

static void handle_free(struct handle *h)
{
    if (!h)
        return;
    pthread_mutex_destroy(&h->mu);
    blob_unref(h->snap);
    free(h->buf);
    free(h->path);
    free(h->seq_name);
    free(h);
}

static int buf_reserve(struct handle *h, size_t need)
{
    if (need <= h->cap)
        return 0;
    size_t cap = h->cap ? h->cap : 4096;
    while (cap < need)
        cap *= 2;
    uint8_t *b = realloc(h->buf, cap);
    if (!b)
        return -ENOMEM;
    h->buf = b;
    h->cap = cap;
    return 0;
}

/* Sets the content's length, zero-filling what grows. */
static int buf_resize(struct handle *h, size_t len)
{
    if (buf_reserve(h, len))
        return -ENOMEM;
    if (len > h->len)
        memset(h->buf + h->len, 0, len - h->len);
    h->len = len;
    return 0;
}

/*
 * Publishes the handle's content (h->mu held): one setData of the node (created if it went
 * missing), or, for a pending sequential create, one create of NAME + suffix. After a
 * failure the content is dropped, as the kernel drops dirty pages after a writeback error,
 * so nothing is published later behind the writer's back.
 */
static int commit(struct fs *fs, struct handle *h)
{
    struct zc_stat st;
    char *path = NULL, *made = NULL;
    int rc = 0;
    pthread_mutex_lock(&fs->mu);
    struct inode *ino = inode_get(&fs->inodes, h->nodeid);
    path = strdup(ino && ino->bound ? ino->path : h->path);
    pthread_mutex_unlock(&fs->mu);
    if (!path)
        return -ENOMEM;
    if (h->len > fs->o.max_data) {
        rc = -EFBIG;
        goto done;
    }
    if (h->seq_name) {
        char *want = fs_child_path(path, h->seq_name);
        rc = want ? dir_create_node(fs, want, h->buf, h->len, KIND_FILE, h->policy, &made, &st)
                  : -ENOMEM;
        free(want);
        if (rc == 0) {
            pthread_mutex_lock(&fs->mu);
            ino = inode_get(&fs->inodes, h->nodeid);
            if (ino && inode_bind(&fs->inodes, ino, made) == 0) {
                ino->czxid = st.czxid;
                ino->st = st;
            }
            pthread_mutex_unlock(&fs->mu);
            free(h->seq_name);
            h->seq_name = NULL;
        }
        goto done;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        struct zc_req req = {
            .op = ZC_OP_SET_DATA, .path = path, .data = h->buf, .data_len = h->len, .version = -1};
        struct zc_result r;
        uint64_t t = own_begin(fs);
        rc = zk_call(fs, &req, &r, ZK_RETRY);
        int64_t zxid = 0;
        if (rc == 0) {
            struct blob *b = blob_new(h->buf, h->len);
            pthread_mutex_lock(&fs->mu);
            struct node *n = cache_get(&fs->cache, path);
            st = r.stat;
            if (n && n->st.czxid == st.czxid) {
                st.kind = n->st.kind;
                st.policy = n->st.policy;
            }
            cache_put(&fs->cache, path, &st, b, r.zxid);
            ino = inode_get(&fs->inodes, h->nodeid);
            if (ino && ino->bound && ino->czxid == st.czxid)
                ino->st = st;
            pthread_mutex_unlock(&fs->mu);
            blob_unref(b);
            zxid = r.zxid;
        }
        own_end(fs, t, zxid);
        zc_result_free(&r);
        if (rc != ZE_NONODE)
            break;
        /* Deleted meanwhile: create it again, as its directory's policy says. */
        char *parent = fs_parent_path(path);
        uint32_t policy = parent ? dir_policy(fs, parent, &rc) : 0;
        free(parent);
        if (rc == 0)
            rc = dir_create_node(fs, path, h->buf, h->len, KIND_FILE, policy, &made, &st);
        if (rc == 0) {
            pthread_mutex_lock(&fs->mu);
            ino = inode_get(&fs->inodes, h->nodeid);
            if (ino && ino->bound) {
                ino->czxid = st.czxid;
                ino->st = st;
            }
            pthread_mutex_unlock(&fs->mu);
        }
        if (rc != ZE_NODEEXISTS)
            break;
    }
done:
    if ((rc == ZE_BADARGUMENTS || rc == -EMSGSIZE) && h->len > 0)
        rc = -EFBIG; /* the cluster's data limit is below ours */
    /* A failed commit is also reported by the next fsync of the file, from any descriptor:
     * `echo x > f; sync f` tells a script what bash's echo could not. */
    pthread_mutex_lock(&fs->mu);
    ino = inode_get(&fs->inodes, h->nodeid);
    if (ino)
        ino->commit_err = rc ? fs_errno(rc) : 0;
    pthread_mutex_unlock(&fs->mu);
    if (rc) {
        LOG_WARN("commit %s (%zu bytes): %s (%s)", path, h->len, strerror(fs_errno(rc)),
                 err_name(rc));
        h->failed = 1;
    }
    h->dirty = 0;
    h->trunc_pending = 0;
    /* Drop what the kernel caches for the file: the new data, or the old after a failure. */
    fuse_lowlevel_notify_inval_inode(fs->se, h->nodeid, 0, 0);
    free(path);
    free(made);
    return rc;
}

int file_truncate(struct fs *fs, uint64_t fh, off_t size)
{
    struct handle *h = handle_get(fh, 0);
    if (!h || !h->writable) {
        handle_put(h);
        return -EBADF;
    }
    if ((uint64_t)size > fs->o.max_data) {
        handle_put(h);
        return -EFBIG;
    }
    pthread_mutex_lock(&h->mu);
    int rc = buf_resize(h, (size_t)size);
    if (rc == 0) {
        h->dirty = 1;
        h->trunc_pending = 0;
        if (fs->o.sync_write)
            rc = commit(fs, h);
    }
    pthread_mutex_unlock(&h->mu);
    handle_put(h);
    return rc;
}

int file_size(uint64_t fh, off_t *size)
{
    struct handle *h = handle_get(fh, 0);
    int writable = h && h->writable;
    if (writable) {
        pthread_mutex_lock(&h->mu);
        *size = (off_t)h->len;
        pthread_mutex_unlock(&h->mu);
    }
    handle_put(h);
    return writable;
}

/* ---- open / create ---- */

/*
 * A file of more than one page is read in several requests, between which the node may
 * change: such a file is read from the version it had at open (bypassing the page cache,
 * which is one per inode), so that a reader never gets the head of one version and the tail
 * of the next. A one-page file is read whole by one request: it uses the page cache, which
 * the watch keeps valid.
 */
#define SNAPSHOT_MIN 4096

static void set_open_flags(struct fs *fs, struct handle *h, struct fuse_file_info *fi)
{
    (void)fs;
    if (h->writable) {
        /* Writes never enter the shared page cache: readers see committed data only. */
        fi->direct_io = 1;
        fi->keep_cache = 0;
    } else if (h->snap && h->snap->len > SNAPSHOT_MIN) {
        h->snapshot = 1;
        fi->direct_io = 1;
        fi->keep_cache = 0;
    } else {
        fi->keep_cache = 1; /* the watch invalidates it */
    }
    handle_register(h);
    fi->fh = h->id;
}

void op_open(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi)
{
    struct fs *fs = req_fs(req);
    if (fs->o.ro) {
        fuse_reply_err(req, ENOSYS); /* no_open: the kernel stops sending OPEN */
        return;
    }
    if (replay_caller(fs, req)) {
        fi->fh = 0;
        fi->keep_cache = 1;
        fuse_reply_open(req, fi);
        return;
    }
    int bound;
    char *path = fs_ino_path(fs, nodeid, &bound);
    if (!path) {
        fuse_reply_err(req, ESTALE);
        return;
    }
    struct handle *h = handle_new(nodeid, path, fi->flags);
    if (!h) {
        free(path);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    if (!bound) {
        /* Unlinked (or replaced) after the kernel looked it up: readable as it was. */
        pthread_mutex_lock(&fs->mu);
        struct inode *ino = inode_get(&fs->inodes, nodeid);
        h->snap = ino && !h->writable ? blob_ref(ino->data) : NULL;
        pthread_mutex_unlock(&fs->mu);
        free(path);
        if (!h->snap) {
            handle_free(h);
            fuse_reply_err(req, ENOENT);
            return;
        }
        set_open_flags(fs, h, fi);
        if (fuse_reply_open(req, fi) != 0)
            handle_drop(fi->fh);
        return;
    }
    int rc = 0;
    struct zc_stat st;
    struct blob *data = NULL;
    if (h->writable && (fi->flags & O_TRUNC)) {
        /* Nothing to read: the new content starts empty. */
        pthread_mutex_lock(&fs->mu);
        struct node *n = cache_get(&fs->cache, path);
        struct inode *ino = inode_get(&fs->inodes, nodeid);
        h->trunc_pending = (n ? n->st.data_length : ino ? ino->st.data_length : 1) > 0;
        pthread_mutex_unlock(&fs->mu);
    } else {
        rc = fs_get_node(fs, path, 1, &st, &data);
        if (rc == 0 && h->writable) {
            /* The node's real data, not the kernel's idea of it: O_APPEND appends there. */
            if (data && data->len && (rc = buf_resize(h, data->len)) == 0)
                memcpy(h->buf, data->bytes, data->len);
        } else if (rc == 0) {
            h->snap = blob_ref(data);
        }
    }
    blob_unref(data);
    if (rc) {
        handle_free(h);
        fs_fail(req, "open", path, rc);
        free(path);
        return;
    }
    free(path);
    set_open_flags(fs, h, fi);
    if (fuse_reply_open(req, fi) != 0)
        handle_drop(fi->fh);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               struct fuse_file_info *fi)
{
    (void)mode;
    struct fs *fs = req_fs(req);
    if (fs->o.ro || replay_caller(fs, req)) {
        fuse_reply_err(req, fs->o.ro ? EROFS : EIO);
        return;
    }
    int bound;
    char *ppath = fs_ino_path(fs, parent, &bound);
    char *path = ppath && bound ? fs_child_path(ppath, name) : NULL;
    char *made = NULL;
    struct handle *h = NULL;
    if (!path) {
        fuse_reply_err(req, !ppath ? ESTALE : bound ? ENOMEM : ENOENT);
        goto out;
    }
    if (path_validate(path, strlen(path), 0) != 0) {
        fs_fail(req, "create", path, ZE_BADARGUMENTS);
        goto out;
    }
    int rc;
    uint32_t policy = dir_policy(fs, ppath, &rc);
    if (rc) {
        fs_fail(req, "create", path, rc);
        goto out;
    }
    struct zc_stat st;
    struct fuse_entry_param e;
    if (policy & POLICY_SEQUENTIAL) {
        /* Made at the first commit, with its content: the name is NAME + suffix then. */
        memset(&st, 0, sizeof(st));
        st.kind = KIND_FILE;
        st.mtime = st.ctime = (int64_t)time(NULL) * 1000;
        pthread_mutex_lock(&fs->mu);
        struct inode *ino = inode_new_detached(&fs->inodes, path, &st, 0, 1);
        h = ino ? handle_new(ino->nodeid, ppath, fi->flags) : NULL;
        if (h && !(h->seq_name = strdup(name))) {
            handle_free(h);
            h = NULL;
        }
        if (!h) {
            pthread_mutex_unlock(&fs->mu);
            fuse_reply_err(req, ENOMEM);
            goto out;
        }
        h->policy = policy;
        fs_entry(fs, ino, &e, 0);
        pthread_mutex_unlock(&fs->mu);
    } else {
        rc = dir_create_node(fs, path, NULL, 0, KIND_FILE, policy, &made, &st);
        struct blob *data = NULL;
        if (rc == ZE_NODEEXISTS && !(fi->flags & O_EXCL)) {
            /* Made meanwhile elsewhere: open it as it is. */
            rc = fs_get_node(fs, path, 1, &st, &data);
        }
        pthread_mutex_lock(&fs->mu);
        struct inode *ino = rc ? NULL : inode_for(&fs->inodes, path, &st, stat_is_dir(&st));
        if (ino && ino->is_dir)
            rc = -EISDIR;
        h = ino && !rc ? handle_new(ino->nodeid, path, fi->flags) : NULL;
        if (h) {
            if (data && !(fi->flags & O_TRUNC) && data->len && buf_resize(h, data->len) == 0)
                memcpy(h->buf, data->bytes, data->len);
            h->trunc_pending = data && (fi->flags & O_TRUNC) && data->len > 0;
            fs_entry(fs, ino, &e, fs->o.entry_timeout);
        }
        pthread_mutex_unlock(&fs->mu);
        blob_unref(data);
        if (!h) {
            if (rc)
                fs_fail(req, "create", path, rc);
            else
                fuse_reply_err(req, ENOMEM);
            goto out;
        }
    }
    set_open_flags(fs, h, fi);
    if (fuse_reply_create(req, &e, fi) != 0)
        handle_drop(fi->fh);
out:
    free(ppath);
    free(path);
    free(made);
}

/* ---- read / write ---- */

static void add_owner(struct handle *h, uint64_t owner)
{
    if (h->n_owners < 0)
        return;
    for (int i = 0; i < h->n_owners; i++)
        if (h->owners[i] == owner)
            return;
    if (h->n_owners == (int)(sizeof(h->owners) / sizeof(h->owners[0])))
        h->n_owners = -1;
    else
        h->owners[h->n_owners++] = owner;
}

static int is_writer(const struct handle *h, uint64_t owner)
{
    if (h->n_owners <= 0)
        return 1; /* dirty by truncate only, or too many writers */
    for (int i = 0; i < h->n_owners; i++)
        if (h->owners[i] == owner)
            return 1;
    return 0;
}

void op_read(fuse_req_t req, fuse_ino_t nodeid, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct fs *fs = req_fs(req);
    struct handle *h = handle_get(fi->fh, 0);
    if (h && h->writable) {
        pthread_mutex_lock(&h->mu);
        size_t n = (size_t)off < h->len ? h->len - (size_t)off : 0;
        if (n > size)
            n = size;
        fuse_reply_buf(req, n ? (const char *)h->buf + off : NULL, n);
        pthread_mutex_unlock(&h->mu);
        handle_put(h);
        return;
    }
    if (h && h->snapshot) {
        size_t n = (size_t)off < h->snap->len ? h->snap->len - (size_t)off : 0;
        if (n > size)
            n = size;
        fuse_reply_buf(req, n ? (const char *)h->snap->bytes + off : NULL, n);
        handle_put(h);
        return;
    }
    /* The node's current data (kept valid by the watch); an unlinked file's from its open. */
    struct blob *b = NULL;
    int bound;
    char *path = fs_ino_path(fs, nodeid, &bound);
    int rc = 0;
    if (path && bound) {
        struct zc_stat st;
        rc = fs_get_node(fs, path, 1, &st, &b);
    } else if (!h) {
        pthread_mutex_lock(&fs->mu);
        struct inode *ino = inode_get(&fs->inodes, nodeid);
        b = ino ? blob_ref(ino->data) : NULL;
        pthread_mutex_unlock(&fs->mu);
    }
    if ((!b || rc) && h && h->snap) {
        blob_unref(b);
        b = blob_ref(h->snap);
        rc = 0;
    }
    handle_put(h);
    if (!b && !rc)
        rc = ZE_NONODE;
    if (rc) {
        fs_fail(req, "read", path, rc);
    } else {
        size_t n = (size_t)off < b->len ? b->len - (size_t)off : 0;
        if (n > size)
            n = size;
        fuse_reply_buf(req, n ? (const char *)b->bytes + off : NULL, n);
    }
    blob_unref(b);
    free(path);
}

void op_write(fuse_req_t req, fuse_ino_t nodeid, const char *buf, size_t size, off_t off,
              struct fuse_file_info *fi)
{
    (void)nodeid;
    struct fs *fs = req_fs(req);
    struct handle *h = handle_get(fi->fh, 0);
    if (fs->o.ro || !h || !h->writable) {
        handle_put(h);
        fuse_reply_err(req, fs->o.ro ? EROFS : EBADF);
        return;
    }
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    if (!sess_live(fs)) {
        LOG_WARN("write %s: %s (no live session)", h->path, strerror(EIO));
        h->failed = 1;
        rc = -EIO;
    } else {
        if (h->flags & O_APPEND)
            off = (off_t)h->len;
        if (off < 0) {
            rc = -EINVAL;
        } else if ((uint64_t)off >= fs->o.max_data && size > 0) {
            rc = -EFBIG;
        } else {
            if ((uint64_t)off + size > fs->o.max_data)
                size = fs->o.max_data - (size_t)off; /* a short write; the next one fails */
            size_t end = (size_t)off + size;
            if (end > h->len)
                rc = buf_resize(h, end);
            if (rc == 0) {
                memcpy(h->buf + off, buf, size);
                add_owner(h, fi->lock_owner);
                h->dirty = 1;
                h->trunc_pending = 0;
                if (fs->o.sync_write)
                    rc = commit(fs, h);
            }
        }
        if (rc && rc != -EFBIG)
            h->failed = 1;
        if (rc)
            LOG_INFO("write %s: %s", h->path, strerror(fs_errno(rc)));
    }
    pthread_mutex_unlock(&h->mu);
    handle_put(h);
    if (rc)
        fuse_reply_err(req, fs_errno(rc));
    else
        fuse_reply_write(req, size);
}

void op_flush(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi)
{
    (void)nodeid;
    struct fs *fs = req_fs(req);
    if (fs->o.ro) {
        fuse_reply_err(req, ENOSYS); /* the kernel stops sending FLUSH */
        return;
    }
    struct handle *h = handle_get(fi->fh, 0);
    int rc = 0;
    if (h) {
        pthread_mutex_lock(&h->mu);
        if (h->dirty && is_writer(h, fi->lock_owner))
            rc = commit(fs, h);
        pthread_mutex_unlock(&h->mu);
        handle_put(h);
    }
    fuse_reply_err(req, fs_errno(rc));
}

void op_fsync(fuse_req_t req, fuse_ino_t nodeid, int datasync, struct fuse_file_info *fi)
{
    (void)datasync;
    struct fs *fs = req_fs(req);
    struct handle *h = handle_get(fi->fh, 0);
    int rc = 0;
    if (h) {
        pthread_mutex_lock(&h->mu);
        if (h->dirty || (h->seq_name && !h->failed))
            rc = commit(fs, h);
        pthread_mutex_unlock(&h->mu);
        handle_put(h);
    }
    int e = fs_errno(rc);
    pthread_mutex_lock(&fs->mu);
    struct inode *ino = inode_get(&fs->inodes, nodeid);
    if (ino && !e)
        e = ino->commit_err;
    if (ino)
        ino->commit_err = 0;
    pthread_mutex_unlock(&fs->mu);
    fuse_reply_err(req, e);
}

void op_release(fuse_req_t req, fuse_ino_t nodeid, struct fuse_file_info *fi)
{
    (void)nodeid;
    struct fs *fs = req_fs(req);
    struct handle *h = handle_get(fi->fh, 1);
    if (h) {
        pthread_mutex_lock(&h->mu);
        /* What no flush published: a file made in a sequential directory and never written
         * (touch), or an O_TRUNC with nothing written after it (": > f"). */
        if (!h->failed && (h->dirty || h->seq_name || h->trunc_pending))
            commit(fs, h);
        else if (h->failed)
            replay_queue_inval_inode(fs, h->nodeid, 0);
        pthread_mutex_unlock(&h->mu);
        handle_put(h);
    }
    fuse_reply_err(req, 0);
}
