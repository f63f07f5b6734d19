/* The durable store: RocksDB column families written by one group-committing writer thread. */
#include "store.h"

#include "frame.h"
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CF_DEFAULT, CF_LOG, CF_TREE, CF_SESSIONS, CF_META, CF_COUNT };
static const char *const cf_names[CF_COUNT] = {"default", "log", "tree", "sessions", "meta"};

/* One write bounds the memory a WriteBatch holds; a longer queue simply takes several. */
#define GROUP_MAX_BYTES ((size_t)16 << 20)
#define BLOCK_CACHE_BYTES ((size_t)64 << 20)
#define SCAN_READAHEAD_BYTES ((size_t)2 << 20)
#define META_APPLIED "applied"

enum item_kind { ITEM_APPEND, ITEM_APPLY, ITEM_TRIM, ITEM_META, ITEM_TRUNCATE, ITEM_INSTALL };
enum batch_op { OP_PUT_NODE, OP_DEL_NODE, OP_PUT_SESSION, OP_DEL_SESSION };

/* A queued write. Appends carry their record inline; a store_batch embeds its item. */
struct item {
    struct item *next;
    enum item_kind kind;
    zxid_t zxid;   /* append/apply: the txn; trim: the bound; meta: the value */
    uint8_t *data; /* append: the record; apply: encoded ops; meta: the key (borrowed) */
    size_t len, cap;
    store_done_cb cb;
    void *arg;
    int status;
    int done;                      /* meta, truncate, install: set by the writer, under the mutex */
    rocksdb_writebatch_t *install; /* install: the whole new state */
};

struct store_batch {
    struct item it;
};

struct meta_ent {
    char *key;
    uint64_t val;
};

struct store {
    uv_loop_t *loop;
    uv_async_t async;
    struct store_opts opts;
    char *dir;

    rocksdb_t *db;
    rocksdb_options_t *dbopts;
    rocksdb_block_based_table_options_t *tableopts;
    rocksdb_cache_t *cache;
    rocksdb_column_family_handle_t *cf[CF_COUNT];
    rocksdb_writeoptions_t *wo_sync, *wo_nosync;
    rocksdb_readoptions_t *ro;

    /* Loop thread only. */
    zxid_t applied, last_logged;
    struct meta_ent *meta;
    size_t nmeta;
    size_t pending_cbs; /* appends whose callback has not run: the async handle is ref'd */
    int closed;

    /* Writer thread only. */
    pthread_t thread;
    int thread_started;
    rocksdb_writebatch_t *wb;
    int failed; /* sticky: after one failed write nothing more is written, or the log has a hole */

    /* Shared, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t wake;     /* loop -> writer: work queued or stop */
    pthread_cond_t progress; /* writer -> loop: a write finished */
    struct item *head, *tail;
    struct item *done_head, *done_tail;
    int busy; /* the writer holds items taken from the queue */
    int stop;
    struct store_stats stats;
};

static void set_err(char **errmsg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **errmsg, const char *fmt, ...)
{
    if (!errmsg)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(errmsg, fmt, ap) < 0)
        *errmsg = NULL;
    va_end(ap);
}

/* A batch cannot report allocation failure (its API returns void), and silently dropping a
 * committed txn's effect would corrupt the tree: stopping the process is the safe outcome. */
static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        LOG_ERROR("store: out of memory (%zu bytes)", n);
        abort();
    }
    return q;
}

static void push(struct item **head, struct item **tail, struct item *it)
{
    it->next = NULL;
    if (*tail)
        (*tail)->next = it;
    else
        *head = it;
    *tail = it;
}

static void enqueue(struct store *s, struct item *it)
{
    pthread_mutex_lock(&s->mu);
    push(&s->head, &s->tail, it);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
}

static int is_sync_item(const struct item *it)
{
    return it->kind == ITEM_APPEND || it->kind == ITEM_META || it->kind == ITEM_TRUNCATE ||
           it->kind == ITEM_INSTALL;
}

/* Items whose caller blocks until the writer marks them done. */
static int is_waited_item(const struct item *it)
{
    return it->kind == ITEM_META || it->kind == ITEM_TRUNCATE || it->kind == ITEM_INSTALL;
}

/* Takes what the next write covers: everything queued (group commit), or up to and including
 * the first synced item, always in queue order. Called with mu held. */
static struct item *take(struct store *s)
{
    struct item *first = s->head, *last = s->head;
    size_t bytes = last->len;
    /* An install brings its own WriteBatch: it is written alone. */
    while (last->kind != ITEM_INSTALL && last->next && last->next->kind != ITEM_INSTALL) {
        if (!s->opts.group_commit && is_sync_item(last))
            break;
        if (bytes + last->next->len > GROUP_MAX_BYTES)
            break;
        last = last->next;
        bytes += last->len;
    }
    s->head = last->next;
    if (!s->head)
        s->tail = NULL;
    last->next = NULL;
    return first;
}

static void add_apply(struct store *s, const struct item *it)
{
    const uint8_t *p = it->data, *end = it->data + it->len;
    while (p < end) {
        enum batch_op op = (enum batch_op)p[0];
        uint32_t klen = frame_get_u32(p + 1);
        const char *key = (const char *)p + 5;
        uint32_t vlen = frame_get_u32(p + 5 + klen);
        const char *val = key + klen + 4;
        p += 9 + (size_t)klen + vlen;
        switch (op) {
        case OP_PUT_NODE:
            rocksdb_writebatch_put_cf(s->wb, s->cf[CF_TREE], key, klen, val, vlen);
            break;
        case OP_DEL_NODE:
            rocksdb_writebatch_delete_cf(s->wb, s->cf[CF_TREE], key, klen);
            break;
        case OP_PUT_SESSION:
            rocksdb_writebatch_put_cf(s->wb, s->cf[CF_SESSIONS], key, klen, val, vlen);
            break;
        case OP_DEL_SESSION:
            rocksdb_writebatch_delete_cf(s->wb, s->cf[CF_SESSIONS], key, klen);
            break;
        }
    }
}

/* An installed snapshot: the old tree, sessions and log go and the new state comes in, in one
 * synced WriteBatch, so a crash leaves either the old state or the whole new one
 * (ZOOKEEPER-3642: never act on a half-installed snapshot). */
static int write_install(struct store *s, struct item *it, struct store_stats *st)
{
    uint8_t z[8];
    frame_put_u64(z, it->zxid);
    rocksdb_writebatch_put_cf(it->install, s->cf[CF_META], META_APPLIED, strlen(META_APPLIED),
                              (const char *)z, 8);
    char *err = NULL;
    rocksdb_write(s->db, s->opts.sync ? s->wo_sync : s->wo_nosync, it->install, &err);
    if (err) {
        LOG_ERROR("store: installing a snapshot in %s failed: %s", s->dir, err);
        rocksdb_free(err);
        s->failed = -EIO;
        return s->failed;
    }
    if (s->opts.sync)
        st->syncs++;
    return 0;
}

/* Writes the items as one WriteBatch. 0 or a negative code (then s->failed is set). */
static int write_items(struct store *s, struct item *list, struct store_stats *st)
{
    if (s->failed)
        return s->failed;
    if (list->kind == ITEM_INSTALL)
        return write_install(s, list, st);
    rocksdb_writebatch_clear(s->wb);
    int need_sync = 0;
    size_t n = 0;
    const struct item *last_apply = NULL;
    for (struct item *it = list; it; it = it->next, n++) {
        uint8_t k[8], k2[8], v[8];
        switch (it->kind) {
        case ITEM_APPEND:
            frame_put_u64(k, it->zxid);
            rocksdb_writebatch_put_cf(s->wb, s->cf[CF_LOG], (const char *)k, 8,
                                      (const char *)it->data, it->len);
            need_sync = 1;
            st->appends++;
            st->bytes_written += it->len;
            break;
        case ITEM_APPLY:
            add_apply(s, it);
            last_apply = it;
            break;
        case ITEM_TRIM:
            /* From 0, so that a trim skipped for lack of memory is covered by the next one. */
            frame_put_u64(k, 0);
            frame_put_u64(k2, it->zxid);
            rocksdb_writebatch_delete_range_cf(s->wb, s->cf[CF_LOG], (const char *)k, 8,
                                               (const char *)k2, 8);
            break;
        case ITEM_META:
            frame_put_u64(v, it->zxid);
            rocksdb_writebatch_put_cf(s->wb, s->cf[CF_META], (const char *)it->data,
                                      strlen((const char *)it->data), (const char *)v, 8);
            need_sync = 1;
            break;
        case ITEM_TRUNCATE:
            /* Everything after the zxid goes: ZAB's TRUNC to the common prefix. */
            frame_put_u64(k, it->zxid + 1);
            frame_put_u64(k2, UINT64_MAX);
            rocksdb_writebatch_delete_range_cf(s->wb, s->cf[CF_LOG], (const char *)k, 8,
                                               (const char *)k2, 8);
            need_sync = 1;
            break;
        case ITEM_INSTALL:
            break; /* never batched: see take() */
        }
    }
    if (last_apply) {
        /* Once per batch, not per txn: the batch is atomic, so only the last one counts */
        uint8_t z[8];
        frame_put_u64(z, last_apply->zxid);
        rocksdb_writebatch_put_cf(s->wb, s->cf[CF_META], META_APPLIED, strlen(META_APPLIED),
                                  (const char *)z, 8);
    }
    int sync = need_sync && s->opts.sync;
    char *err = NULL;
    rocksdb_write(s->db, sync ? s->wo_sync : s->wo_nosync, s->wb, &err);
    if (err) {
        LOG_ERROR("store: write of %zu entries to %s failed: %s", n, s->dir, err);
        rocksdb_free(err);
        s->failed = -EIO;
        return s->failed;
    }
    if (sync)
        st->syncs++;
    return 0;
}

static void *writer_main(void *arg)
{
    struct store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stop)
            pthread_cond_wait(&s->wake, &s->mu);
        if (!s->head)
            break;
        struct item *list = take(s);
        s->busy = 1;
        pthread_mutex_unlock(&s->mu);

        struct store_stats st = {0};
        int status = write_items(s, list, &st);

        struct item *to_free = NULL;
        int notify = 0;
        pthread_mutex_lock(&s->mu);
        if (status == 0) {
            s->stats.syncs += st.syncs;
            s->stats.appends += st.appends;
            s->stats.bytes_written += st.bytes_written;
        }
        while (list) {
            struct item *it = list;
            list = it->next;
            it->status = status;
            if (it->kind == ITEM_APPEND) {
                push(&s->done_head, &s->done_tail, it);
                notify = 1;
            } else if (is_waited_item(it)) {
                it->done = 1; /* the waiter owns it from here: not touched again */
            } else {
                it->next = to_free;
                to_free = it;
            }
        }
        s->busy = 0;
        pthread_cond_broadcast(&s->progress);
        pthread_mutex_unlock(&s->mu);

        while (to_free) {
            struct item *it = to_free;
            to_free = it->next;
            free(it->data);
            free(it);
        }
        if (notify)
            uv_async_send(&s->async);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Pops the next finished append, or NULL. */
static struct item *pop_done(struct store *s)
{
    pthread_mutex_lock(&s->mu);
    struct item *it = s->done_head;
    if (it) {
        s->done_head = it->next;
        if (!s->done_head)
            s->done_tail = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    return it;
}

static void run_done(struct store *s, struct item *it)
{
    if (it->cb)
        it->cb(it->arg, it->status);
    free(it);
    /* Only in-flight appends keep the loop alive, so uv_run returns once they are done. */
    if (--s->pending_cbs == 0 && !s->closed)
        uv_unref((uv_handle_t *)&s->async);
}

/* One item at a time, so that a callback may call store_close: it then drains the rest. */
static void on_async(uv_async_t *h)
{
    struct store *s = h->data;
    struct item *it;
    while (!s->closed && (it = pop_done(s)))
        run_done(s, it);
}

/* Frees everything store_open acquired except the async handle and the writer thread. */
static void release(struct store *s)
{
    for (int i = 0; i < CF_COUNT; i++)
        if (s->cf[i])
            rocksdb_column_family_handle_destroy(s->cf[i]);
    if (s->db)
        rocksdb_close(s->db);
    if (s->wb)
        rocksdb_writebatch_destroy(s->wb);
    if (s->wo_sync)
        rocksdb_writeoptions_destroy(s->wo_sync);
    if (s->wo_nosync)
        rocksdb_writeoptions_destroy(s->wo_nosync);
    if (s->ro)
        rocksdb_readoptions_destroy(s->ro);
    if (s->dbopts)
        rocksdb_options_destroy(s->dbopts);
    if (s->tableopts)
        rocksdb_block_based_options_destroy(s->tableopts);
    if (s->cache)
        rocksdb_cache_destroy(s->cache);
    for (size_t i = 0; i < s->nmeta; i++)
        free(s->meta[i].key);
    free(s->meta);
    free(s->dir);
    pthread_cond_destroy(&s->progress);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void on_close(uv_handle_t *h)
{
    release(h->data);
}

static int set_options(struct store *s)
{
    s->cache = rocksdb_cache_create_lru(BLOCK_CACHE_BYTES);
    s->tableopts = rocksdb_block_based_options_create();
    s->dbopts = rocksdb_options_create();
    s->wo_sync = rocksdb_writeoptions_create();
    s->wo_nosync = rocksdb_writeoptions_create();
    s->ro = rocksdb_readoptions_create();
    s->wb = rocksdb_writebatch_create();
    if (!s->cache || !s->tableopts || !s->dbopts || !s->wo_sync || !s->wo_nosync || !s->ro ||
        !s->wb)
        return -ENOMEM;
    rocksdb_block_based_options_set_block_cache(s->tableopts, s->cache);
    /* Ownership of the policy passes to the table options. */
    rocksdb_block_based_options_set_filter_policy(s->tableopts,
                                                  rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(s->dbopts, s->tableopts);
    rocksdb_options_set_create_if_missing(s->dbopts, 1);
    rocksdb_options_set_create_missing_column_families(s->dbopts, 1);
    rocksdb_options_set_compaction_style(s->dbopts, rocksdb_level_compaction);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(s->dbopts, 1);
    rocksdb_options_set_max_background_jobs(s->dbopts, 2);
    rocksdb_options_set_keep_log_file_num(s->dbopts, 4);
    rocksdb_options_set_max_log_file_size(s->dbopts, 16 << 20);
    /* A torn unsynced tail is dropped; anything after a hole is never replayed. */
    rocksdb_options_set_wal_recovery_mode(s->dbopts, rocksdb_point_in_time_recovery);
    rocksdb_options_set_paranoid_checks(s->dbopts, 1);
    rocksdb_writeoptions_set_sync(s->wo_sync, 1);
    rocksdb_writeoptions_set_sync(s->wo_nosync, 0);
    return 0;
}

static struct meta_ent *meta_find(struct store *s, const char *key)
{
    for (size_t i = 0; i < s->nmeta; i++)
        if (strcmp(s->meta[i].key, key) == 0)
            return &s->meta[i];
    return NULL;
}

static int meta_set(struct store *s, const char *key, uint64_t val)
{
    struct meta_ent *e = meta_find(s, key);
    if (e) {
        e->val = val;
        return 0;
    }
    char *k = strdup(key);
    struct meta_ent *m = realloc(s->meta, (s->nmeta + 1) * sizeof(*m));
    if (!k || !m) {
        free(k);
        if (m)
            s->meta = m;
        return -ENOMEM;
    }
    s->meta = m;
    s->meta[s->nmeta++] = (struct meta_ent){k, val};
    return 0;
}

/* Caches the meta family, refusing values that are not 8 bytes: a damaged store must not
 * start with a wrong epoch or applied zxid. */
static int load_meta(struct store *s, char **errmsg)
{
    int rc = 0;
    char *err = NULL;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->ro, s->cf[CF_META]);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
        char key[256];
        if (klen == 0 || klen >= sizeof(key) || memchr(k, 0, klen)) {
            LOG_ERROR("store in %s is damaged: invalid meta key of %zu bytes", s->dir, klen);
            set_err(errmsg, "store in %s is damaged: invalid meta key of %zu bytes", s->dir, klen);
            rc = -EBADMSG;
            goto out;
        }
        if (vlen != 8) {
            LOG_ERROR("store in %s is damaged: meta \"%.*s\" has %zu bytes, expected 8", s->dir,
                      (int)klen, k, vlen);
            set_err(errmsg, "store in %s is damaged: meta \"%.*s\" has %zu bytes, expected 8",
                    s->dir, (int)klen, k, vlen);
            rc = -EBADMSG;
            goto out;
        }
        memcpy(key, k, klen);
        key[klen] = 0;
        if (strcmp(key, META_APPLIED) == 0)
            s->applied = frame_get_u64(v);
        else if ((rc = meta_set(s, key, frame_get_u64(v))) < 0) {
            set_err(errmsg, "cannot open store in %s: out of memory", s->dir);
            goto out;
        }
    }
    rocksdb_iter_get_error(it, &err);
    if (err) {
        LOG_ERROR("store: cannot read meta in %s: %s", s->dir, err);
        set_err(errmsg, "cannot read store in %s: %s", s->dir, err);
        rocksdb_free(err);
        rc = -EIO;
    }
out:
    rocksdb_iter_destroy(it);
    return rc;
}

static int load_last_logged(struct store *s, char **errmsg)
{
    int rc = 0;
    char *err = NULL;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->ro, s->cf[CF_LOG]);
    s->last_logged = 0;
    rocksdb_iter_seek_to_last(it);
    if (rocksdb_iter_valid(it)) {
        size_t klen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        if (klen != 8) {
            LOG_ERROR("store in %s is damaged: log key of %zu bytes, expected 8", s->dir, klen);
            set_err(errmsg, "store in %s is damaged: log key of %zu bytes, expected 8", s->dir,
                    klen);
            rc = -EBADMSG;
            goto out;
        }
        s->last_logged = frame_get_u64(k);
    }
    rocksdb_iter_get_error(it, &err);
    if (err) {
        LOG_ERROR("store: cannot read the log in %s: %s", s->dir, err);
        set_err(errmsg, "cannot read store in %s: %s", s->dir, err);
        rocksdb_free(err);
        rc = -EIO;
    }
out:
    rocksdb_iter_destroy(it);
    return rc;
}

int store_open(struct store **out, uv_loop_t *loop, const char *dir, const struct store_opts *opts,
               char **errmsg)
{
    static const struct store_opts defaults = {.group_commit = 1, .sync = 1};
    char *err = NULL;
    int rc;

    if (errmsg)
        *errmsg = NULL;
    struct store *s = calloc(1, sizeof(*s));
    if (!s) {
        set_err(errmsg, "cannot open store in %s: out of memory", dir);
        return -ENOMEM;
    }
    if (pthread_mutex_init(&s->mu, NULL) || pthread_cond_init(&s->wake, NULL) ||
        pthread_cond_init(&s->progress, NULL)) {
        /* glibc's init never fails; the destroys in release() are then harmless. */
        set_err(errmsg, "cannot open store in %s: cannot create a lock", dir);
        rc = -ENOMEM;
        goto fail;
    }
    s->loop = loop;
    s->opts = opts ? *opts : defaults;
    s->dir = strdup(dir);
    if (!s->dir || set_options(s) < 0) {
        set_err(errmsg, "cannot open store in %s: out of memory", dir);
        rc = -ENOMEM;
        goto fail;
    }

    const rocksdb_options_t *cfopts[CF_COUNT];
    for (int i = 0; i < CF_COUNT; i++)
        cfopts[i] = s->dbopts;
    s->db = rocksdb_open_column_families(s->dbopts, dir, CF_COUNT, cf_names, cfopts, s->cf, &err);
    if (err) {
        /* Not logged: the caller reports *errmsg. */
        set_err(errmsg, "cannot open store in %s: %s", dir, err);
        rocksdb_free(err);
        s->db = NULL;
        memset(s->cf, 0, sizeof(s->cf));
        rc = -EIO;
        goto fail;
    }
    if ((rc = load_meta(s, errmsg)) < 0 || (rc = load_last_logged(s, errmsg)) < 0)
        goto fail;

    /* The thread only touches the async handle once items are queued, so it may start first;
     * that keeps every failure here synchronous (no close callback to wait for). */
    if ((rc = pthread_create(&s->thread, NULL, writer_main, s)) != 0) {
        set_err(errmsg, "cannot open store in %s: cannot start the writer thread: %s", dir,
                strerror(rc));
        rc = -rc;
        goto fail;
    }
    s->thread_started = 1;
    if ((rc = uv_async_init(loop, &s->async, on_async)) < 0) {
        set_err(errmsg, "cannot open store in %s: %s", dir, uv_strerror(rc));
        goto fail;
    }
    s->async.data = s;
    uv_unref((uv_handle_t *)&s->async);
    *out = s;
    return 0;

fail:
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    release(s);
    return rc;
}

/* A clean stop writes the memtables out, so that the next start has no WAL to replay (after
 * a million writes that replay doubled the restart). Everything is durable already: a failure
 * here costs only that replay. */
static void flush_memtables(struct store *s)
{
    if (s->failed)
        return;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    if (!fo)
        return;
    rocksdb_flushoptions_set_wait(fo, 1);
    for (int i = 0; i < CF_COUNT; i++) {
        char *err = NULL;
        rocksdb_flush_cf(s->db, fo, s->cf[i], &err);
        if (err) {
            LOG_WARN("store: flushing %s at close failed: %s", s->dir, err);
            rocksdb_free(err);
            break;
        }
    }
    rocksdb_flushoptions_destroy(fo);
}

void store_close(struct store *s)
{
    if (!s || s->closed)
        return;
    /* Callbacks run here may queue more writes: keep going until nothing is left. */
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->head || s->busy)
            pthread_cond_wait(&s->progress, &s->mu);
        pthread_mutex_unlock(&s->mu);
        struct item *it = pop_done(s);
        if (!it)
            break;
        run_done(s, it);
        if (s->closed) /* a callback closed the store itself */
            return;
    }
    s->closed = 1;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    flush_memtables(s);
    /* The handle keeps its memory (this struct) until the loop runs its close callback. */
    uv_close((uv_handle_t *)&s->async, on_close);
}

/* Iterates one column family, handing each entry to fn. A whole-column scan (the tree at
 * startup) reads ahead and leaves the block cache alone: every block is read once. */
static int iterate(struct store *s, int cf, const char *start, size_t slen,
                   int (*fn)(struct store *s, const struct store_loader *l, const char *k,
                             size_t klen, const char *v, size_t vlen),
                   const struct store_loader *l)
{
    int rc = 0;
    char *err = NULL;
    rocksdb_readoptions_t *scan = rocksdb_readoptions_create();
    if (scan) {
        rocksdb_readoptions_set_fill_cache(scan, 0);
        rocksdb_readoptions_set_readahead_size(scan, SCAN_READAHEAD_BYTES);
    }
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, scan ? scan : s->ro, s->cf[cf]);
    if (start)
        rocksdb_iter_seek(it, start, slen);
    else
        rocksdb_iter_seek_to_first(it);
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if ((rc = fn(s, l, k, klen, v, vlen)) < 0)
            goto out;
    }
    rocksdb_iter_get_error(it, &err);
    if (err) {
        LOG_ERROR("store: cannot read %s in %s: %s", cf_names[cf], s->dir, err);
        rocksdb_free(err);
        rc = -EIO;
    }
out:
    rocksdb_iter_destroy(it);
    if (scan)
        rocksdb_readoptions_destroy(scan);
    return rc;
}

static int load_node(struct store *s, const struct store_loader *l, const char *k, size_t klen,
                     const char *v, size_t vlen)
{
    if (klen == 0 || memchr(k, 0, klen)) {
        LOG_ERROR("store in %s is damaged: tree key of %zu bytes is not a path", s->dir, klen);
        return -EBADMSG;
    }
    if (!l->node)
        return 0;
    char small[256], *path = klen < sizeof(small) ? small : malloc(klen + 1);
    if (!path)
        return -ENOMEM;
    memcpy(path, k, klen);
    path[klen] = 0;
    int rc = l->node(l->arg, path, (const uint8_t *)v, vlen);
    if (path != small)
        free(path);
    return rc;
}

static int load_session(struct store *s, const struct store_loader *l, const char *k, size_t klen,
                        const char *v, size_t vlen)
{
    if (klen != 8) {
        LOG_ERROR("store in %s is damaged: session key of %zu bytes, expected 8", s->dir, klen);
        return -EBADMSG;
    }
    return l->session ? l->session(l->arg, (const uint8_t *)v, vlen) : 0;
}

static int load_txn(struct store *s, const struct store_loader *l, const char *k, size_t klen,
                    const char *v, size_t vlen)
{
    if (klen != 8) {
        LOG_ERROR("store in %s is damaged: log key of %zu bytes, expected 8", s->dir, klen);
        return -EBADMSG;
    }
    return l->txn ? l->txn(l->arg, frame_get_u64((const uint8_t *)k), (const uint8_t *)v, vlen) : 0;
}

int store_load_tree(struct store *s, const struct store_loader *l)
{
    int rc = iterate(s, CF_TREE, NULL, 0, load_node, l);
    return rc < 0 ? rc : iterate(s, CF_SESSIONS, NULL, 0, load_session, l);
}

int store_load_log(struct store *s, zxid_t after, const struct store_loader *l)
{
    if (after == UINT64_MAX)
        return 0;
    uint8_t k[8];
    frame_put_u64(k, after + 1);
    return iterate(s, CF_LOG, (const char *)k, 8, load_txn, l);
}

zxid_t store_applied(struct store *s)
{
    return s->applied;
}

zxid_t store_last_logged(struct store *s)
{
    return s->last_logged;
}

uint64_t store_get_meta(struct store *s, const char *key)
{
    if (strcmp(key, META_APPLIED) == 0)
        return s->applied;
    struct meta_ent *e = meta_find(s, key);
    return e ? e->val : 0;
}

/* Queues a caller-owned item and waits until the writer has written it (in queue order). */
static int run_waited(struct store *s, struct item *it)
{
    enqueue(s, it);
    pthread_mutex_lock(&s->mu);
    while (!it->done)
        pthread_cond_wait(&s->progress, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return it->status;
}

int store_set_meta_sync(struct store *s, const char *key, uint64_t value)
{
    /* Through the queue, so that writes submitted earlier (txns) are durable before the
     * epoch that depends on them (ZK-4643). */
    struct item it = {.kind = ITEM_META, .zxid = value, .data = (uint8_t *)key};
    size_t klen = strlen(key);
    if (klen == 0 || klen >= 256)
        return -EINVAL;
    if (strcmp(key, META_APPLIED) != 0 && !meta_find(s, key)) {
        int rc = meta_set(s, key, 0); /* reserve the slot so the update below cannot fail */
        if (rc < 0)
            return rc;
    }
    int rc = run_waited(s, &it);
    if (rc < 0)
        return rc;
    if (strcmp(key, META_APPLIED) == 0)
        s->applied = value;
    else
        meta_find(s, key)->val = value;
    return 0;
}

int store_append(struct store *s, zxid_t zxid, const uint8_t *rec, size_t len, store_done_cb cb,
                 void *arg)
{
    if (s->closed)
        return -ECANCELED;
    struct item *it = malloc(sizeof(*it) + len);
    if (!it)
        return -ENOMEM;
    *it = (struct item){.kind = ITEM_APPEND, .zxid = zxid, .len = len, .cb = cb, .arg = arg};
    it->data = (uint8_t *)(it + 1);
    if (len)
        memcpy(it->data, rec, len);
    if (zxid > s->last_logged)
        s->last_logged = zxid;
    if (s->pending_cbs++ == 0)
        uv_ref((uv_handle_t *)&s->async);
    enqueue(s, it);
    return 0;
}

struct store_batch *store_batch_new(zxid_t zxid)
{
    struct store_batch *b = xrealloc(NULL, sizeof(*b));
    *b = (struct store_batch){.it = {.kind = ITEM_APPLY, .zxid = zxid}};
    return b;
}

static void batch_op(struct store_batch *b, enum batch_op op, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    struct item *it = &b->it;
    size_t need = it->len + 9 + klen + vlen;
    if (klen > UINT32_MAX || vlen > UINT32_MAX) {
        LOG_ERROR("store: batch entry too large (%zu + %zu bytes)", klen, vlen);
        abort();
    }
    if (need > it->cap) {
        size_t cap = it->cap ? it->cap * 2 : 256;
        while (cap < need)
            cap *= 2;
        it->data = xrealloc(it->data, cap);
        it->cap = cap;
    }
    uint8_t *p = it->data + it->len;
    p[0] = (uint8_t)op;
    frame_put_u32(p + 1, (uint32_t)klen);
    if (klen)
        memcpy(p + 5, key, klen);
    frame_put_u32(p + 5 + klen, (uint32_t)vlen);
    if (vlen)
        memcpy(p + 9 + klen, val, vlen);
    it->len = need;
}

void store_batch_put_node(struct store_batch *b, const char *path, const uint8_t *rec, size_t len)
{
    batch_op(b, OP_PUT_NODE, path, strlen(path), rec, len);
}

void store_batch_del_node(struct store_batch *b, const char *path)
{
    batch_op(b, OP_DEL_NODE, path, strlen(path), NULL, 0);
}

void store_batch_put_session(struct store_batch *b, uint64_t id, const uint8_t *rec, size_t len)
{
    uint8_t k[8];
    frame_put_u64(k, id);
    batch_op(b, OP_PUT_SESSION, k, 8, rec, len);
}

void store_batch_del_session(struct store_batch *b, uint64_t id)
{
    uint8_t k[8];
    frame_put_u64(k, id);
    batch_op(b, OP_DEL_SESSION, k, 8, NULL, 0);
}

void store_apply(struct store *s, struct store_batch *b)
{
    assert(!s->closed);
    if (b->it.zxid > s->applied)
        s->applied = b->it.zxid;
    enqueue(s, &b->it);
}

void store_trim_log(struct store *s, zxid_t below)
{
    assert(!s->closed);
    if (below == 0)
        return;
    struct item *it = malloc(sizeof(*it));
    if (!it) {
        /* Harmless: the log keeps a few more entries, and the next trim starts from 0. */
        LOG_WARN("store: out of memory, log trim below %llu skipped", (unsigned long long)below);
        return;
    }
    *it = (struct item){.kind = ITEM_TRIM, .zxid = below};
    enqueue(s, it);
}

void store_get_stats(struct store *s, struct store_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

int store_truncate_log_sync(struct store *s, zxid_t after)
{
    if (after == UINT64_MAX)
        return 0;
    struct item it = {.kind = ITEM_TRUNCATE, .zxid = after};
    int rc = run_waited(s, &it);
    if (rc < 0)
        return rc;
    if (s->last_logged > after)
        rc = load_last_logged(s, NULL);
    return rc;
}

/* ---- snapshots: streaming out (leader) and installing (learner) ---- */

struct store_install {
    rocksdb_writebatch_t *wb;
};

struct store_install *store_install_begin(struct store *s)
{
    struct store_install *in = xrealloc(NULL, sizeof(*in));
    in->wb = rocksdb_writebatch_create();
    /* Tree keys are UTF-8 paths, which never hold the byte 0xff. */
    static const char none[1] = {0}, tree_end[1] = {(char)0xff};
    static const char lo[8] = {0}, hi[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    rocksdb_writebatch_delete_range_cf(in->wb, s->cf[CF_TREE], none, 0, tree_end, 1);
    rocksdb_writebatch_delete_range_cf(in->wb, s->cf[CF_SESSIONS], lo, 8, hi, 8);
    return in;
}

void store_install_put_node(struct store *s, struct store_install *in, const char *path,
                            const uint8_t *rec, size_t len)
{
    rocksdb_writebatch_put_cf(in->wb, s->cf[CF_TREE], path, strlen(path), (const char *)rec, len);
}

void store_install_put_session(struct store *s, struct store_install *in, uint64_t id,
                               const uint8_t *rec, size_t len)
{
    uint8_t k[8];
    frame_put_u64(k, id);
    rocksdb_writebatch_put_cf(in->wb, s->cf[CF_SESSIONS], (const char *)k, 8, (const char *)rec,
                              len);
}

int store_install_commit(struct store *s, struct store_install *in, zxid_t zxid, zxid_t keep)
{
    /* The log keeps (zxid, keep]: entries the sync stream confirmed after the snapshot. */
    uint8_t lo[8], z1[8], k1[8], hi[8];
    frame_put_u64(lo, 0);
    frame_put_u64(z1, zxid + 1);
    frame_put_u64(k1, keep < zxid ? zxid + 1 : keep + 1);
    frame_put_u64(hi, UINT64_MAX);
    rocksdb_writebatch_delete_range_cf(in->wb, s->cf[CF_LOG], (const char *)lo, 8, (const char *)z1,
                                       8);
    rocksdb_writebatch_delete_range_cf(in->wb, s->cf[CF_LOG], (const char *)k1, 8, (const char *)hi,
                                       8);
    struct item it = {.kind = ITEM_INSTALL, .zxid = zxid, .install = in->wb};
    int rc = run_waited(s, &it);
    store_install_abort(in);
    if (rc < 0)
        return rc;
    s->applied = zxid;
    return load_last_logged(s, NULL);
}

void store_install_abort(struct store_install *in)
{
    if (!in)
        return;
    rocksdb_writebatch_destroy(in->wb);
    free(in);
}

struct store_snap {
    struct store *s;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    int cf;      /* CF_TREE, then CF_SESSIONS */
    int advance; /* the entry handed out last is still current: step past it first */
};

int store_snap_open(struct store *s, struct store_snap **out, zxid_t *applied)
{
    struct store_snap *sn = xrealloc(NULL, sizeof(*sn));
    *sn = (struct store_snap){.s = s, .cf = CF_TREE};
    sn->snap = rocksdb_create_snapshot(s->db);
    sn->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(sn->ro, sn->snap);
    /* A scan reads every block once: do not push the hot tree out of the block cache. */
    rocksdb_readoptions_set_fill_cache(sn->ro, 0);
    char *err = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(s->db, sn->ro, s->cf[CF_META], META_APPLIED, strlen(META_APPLIED),
                             &vlen, &err);
    if (err || (v && vlen != 8)) {
        LOG_ERROR("store: cannot read the applied zxid in %s: %s", s->dir,
                  err ? err : "damaged value");
        rocksdb_free(err);
        rocksdb_free(v);
        store_snap_close(sn);
        return err ? -EIO : -EBADMSG;
    }
    *applied = v ? frame_get_u64((const uint8_t *)v) : 0;
    rocksdb_free(v);
    sn->it = rocksdb_create_iterator_cf(s->db, sn->ro, s->cf[CF_TREE]);
    rocksdb_iter_seek_to_first(sn->it);
    *out = sn;
    return 0;
}

int store_snap_next(struct store_snap *sn, enum store_snap_kind *kind, const uint8_t **key,
                    size_t *klen, const uint8_t **val, size_t *vlen)
{
    if (sn->it && sn->advance)
        rocksdb_iter_next(sn->it);
    sn->advance = 0;
    for (;;) {
        if (!sn->it)
            return 0;
        if (rocksdb_iter_valid(sn->it))
            break;
        char *err = NULL;
        rocksdb_iter_get_error(sn->it, &err);
        if (err) {
            LOG_ERROR("store: snapshot read in %s failed: %s", sn->s->dir, err);
            rocksdb_free(err);
            return -EIO;
        }
        rocksdb_iter_destroy(sn->it);
        sn->it = NULL;
        if (sn->cf == CF_TREE) {
            sn->cf = CF_SESSIONS;
            sn->it = rocksdb_create_iterator_cf(sn->s->db, sn->ro, sn->s->cf[CF_SESSIONS]);
            rocksdb_iter_seek_to_first(sn->it);
        }
    }
    *kind = sn->cf == CF_TREE ? STORE_SNAP_NODE : STORE_SNAP_SESSION;
    *key = (const uint8_t *)rocksdb_iter_key(sn->it, klen);
    *val = (const uint8_t *)rocksdb_iter_value(sn->it, vlen);
    sn->advance = 1; /* the pointers stay valid until the next call */
    return 1;
}

void store_snap_close(struct store_snap *sn)
{
    if (!sn)
        return;
    if (sn->it)
        rocksdb_iter_destroy(sn->it);
    rocksdb_readoptions_destroy(sn->ro);
    rocksdb_release_snapshot(sn->s->db, sn->snap);
    free(sn);
}
