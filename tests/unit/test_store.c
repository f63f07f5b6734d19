/* Unit tests for the RocksDB store: ordering, group commit, reload, trim, meta, crashes. */
#include "test.h"

#include "frame.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <rocksdb/c.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* Deterministic record bytes for a zxid, so a reader can check any entry on its own. */
static size_t rec_fill(zxid_t z, uint8_t *buf, size_t max)
{
    size_t len = 1 + (size_t)((z * 2654435761u) % (max - 1));
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(z * 31 + i * 7 + (z >> 8));
    return len;
}

static int rec_ok(zxid_t z, const uint8_t *rec, size_t len, size_t max)
{
    uint8_t buf[4096];
    size_t n = rec_fill(z, buf, max);
    return n == len && memcmp(buf, rec, len) == 0;
}

#define REC_MAX 600

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmpdir(char *buf)
{
    strcpy(buf, "/tmp/test_store.XXXXXX");
    char *d = mkdtemp(buf);
    if (!d) {
        perror("mkdtemp");
        exit(1);
    }
    return d;
}

struct env {
    uv_loop_t loop;
    struct store *s;
    char dir[64];
    char db[96];
};

static int env_open(struct env *e, int group_commit, int sync)
{
    struct store_opts o = {.group_commit = group_commit, .sync = sync};
    char *msg = NULL;
    int rc = store_open(&e->s, &e->loop, e->db, &o, &msg);
    if (rc < 0) {
        fprintf(stderr, "store_open: %d %s\n", rc, msg ? msg : "(no message)");
        free(msg);
        e->s = NULL;
    }
    return rc;
}

static void env_init(struct env *e)
{
    memset(e, 0, sizeof(*e));
    tmpdir(e->dir);
    snprintf(e->db, sizeof(e->db), "%s/db", e->dir);
    CHECK_EQ(uv_loop_init(&e->loop), 0);
}

static void env_close_store(struct env *e)
{
    if (!e->s)
        return;
    store_close(e->s);
    e->s = NULL;
    /* The store's memory goes with the async handle's close callback. */
    uv_run(&e->loop, UV_RUN_DEFAULT);
}

static void env_fini(struct env *e)
{
    env_close_store(e);
    CHECK_EQ(uv_loop_close(&e->loop), 0);
    rm_rf(e->dir);
}

/* Appends with callbacks that check their order. */
struct order {
    int next;
    int errors;
    int count;
};
struct ticket {
    struct order *o;
    int idx;
};

static void order_cb(void *arg, int status)
{
    struct ticket *t = arg;
    if (status != 0 || t->idx != t->o->next)
        t->o->errors++;
    t->o->next++;
    t->o->count++;
}

static void append_n(struct env *e, zxid_t first, int n, struct ticket *tickets, struct order *o)
{
    uint8_t buf[REC_MAX];
    for (int i = 0; i < n; i++) {
        zxid_t z = first + (zxid_t)i;
        size_t len = rec_fill(z, buf, REC_MAX);
        tickets[i] = (struct ticket){o, i};
        CHECK_EQ(store_append(e->s, z, buf, len, order_cb, &tickets[i]), 0);
    }
}

/* Loader that records what it sees. */
struct seen {
    zxid_t first, last;
    int ntxn, bad_txn, gaps;
    int nnode, nsession;
    char paths[16][32];
    uint8_t node_val[16][8];
    uint8_t sess_val[16][8];
    int stop_after; /* node callback returns -42 at this count, if non-zero */
};

static int seen_node(void *arg, const char *path, const uint8_t *rec, size_t len)
{
    struct seen *w = arg;
    if (w->nnode < 16) {
        snprintf(w->paths[w->nnode], 32, "%s", path);
        memcpy(w->node_val[w->nnode], rec, len < 8 ? len : 8);
    }
    w->nnode++;
    if (w->stop_after && w->nnode == w->stop_after)
        return -42;
    return 0;
}

static int seen_session(void *arg, const uint8_t *rec, size_t len)
{
    struct seen *w = arg;
    if (w->nsession < 16)
        memcpy(w->sess_val[w->nsession], rec, len < 8 ? len : 8);
    w->nsession++;
    return 0;
}

static int seen_txn(void *arg, zxid_t z, const uint8_t *rec, size_t len)
{
    struct seen *w = arg;
    if (w->ntxn == 0)
        w->first = z;
    else if (z != w->last + 1)
        w->gaps++;
    w->last = z;
    w->ntxn++;
    if (!rec_ok(z, rec, len, REC_MAX))
        w->bad_txn++;
    return 0;
}

static const struct store_loader *loader(struct seen *w)
{
    static struct store_loader l;
    memset(w, 0, sizeof(*w));
    l = (struct store_loader){w, seen_node, seen_session, seen_txn};
    return &l;
}

static void test_open_close_reopen(void)
{
    struct env e;
    env_init(&e);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_applied(e.s), 0);
    CHECK_EQ(store_last_logged(e.s), 0);
    CHECK_EQ(store_get_meta(e.s, "currentEpoch"), 0);

    /* A second open of the same directory is refused (RocksDB's LOCK file). */
    struct store *s2 = NULL;
    char *msg = NULL;
    CHECK(store_open(&s2, &e.loop, e.db, NULL, &msg) < 0);
    CHECK(msg && strstr(msg, "cannot open store in") && !strchr(msg, '\n'));
    free(msg);

    env_close_store(&e);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_last_logged(e.s), 0);
    struct seen w;
    CHECK_EQ(store_load_tree(e.s, loader(&w)), 0);
    CHECK_EQ(store_load_log(e.s, 0, loader(&w)), 0);
    CHECK_EQ(w.ntxn + w.nnode + w.nsession, 0);
    env_fini(&e);
}

static void test_append_order(void)
{
    struct env e;
    env_init(&e);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    enum { N = 300 };
    static struct ticket t[N];
    struct order o = {0};
    append_n(&e, 1, N, t, &o);
    CHECK_EQ(store_last_logged(e.s), N);
    /* Only in-flight appends keep the loop alive: this returns once all callbacks ran. */
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK_EQ(o.count, N);
    CHECK_EQ(o.errors, 0);

    struct store_stats st;
    store_get_stats(e.s, &st);
    CHECK_EQ(st.appends, N);
    uint64_t bytes = 0;
    uint8_t buf[REC_MAX];
    for (zxid_t z = 1; z <= N; z++)
        bytes += rec_fill(z, buf, REC_MAX);
    CHECK_EQ(st.bytes_written, bytes);
    CHECK(st.syncs >= 1);

    /* Callbacks still pending at close run before store_close returns. */
    struct order o2 = {0};
    static struct ticket t2[10];
    append_n(&e, N + 1, 10, t2, &o2);
    store_close(e.s);
    e.s = NULL;
    CHECK_EQ(o2.count, 10);
    CHECK_EQ(o2.errors, 0);
    uv_run(&e.loop, UV_RUN_DEFAULT);

    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_last_logged(e.s), N + 10);
    struct seen w;
    CHECK_EQ(store_load_log(e.s, 0, loader(&w)), 0);
    CHECK_EQ(w.ntxn, N + 10);
    CHECK_EQ(w.first, 1);
    CHECK_EQ(w.gaps, 0);
    CHECK_EQ(w.bad_txn, 0);
    CHECK_EQ(store_load_log(e.s, N, loader(&w)), 0);
    CHECK_EQ(w.ntxn, 10);
    CHECK_EQ(w.first, N + 1);
    env_fini(&e);
}

static void group_run(int group_commit, int sync, int n, struct store_stats *st)
{
    struct env e;
    env_init(&e);
    CHECK_EQ(env_open(&e, group_commit, sync), 0);
    struct ticket *t = calloc((size_t)n, sizeof(*t));
    struct order o = {0};
    append_n(&e, 1, n, t, &o);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK_EQ(o.count, n);
    CHECK_EQ(o.errors, 0);
    store_get_stats(e.s, st);
    free(t);
    env_fini(&e);
}

static void test_group_commit(void)
{
    struct store_stats st;
    group_run(1, 1, 1000, &st);
    fprintf(stderr, "   group commit on: %llu appends, %llu syncs\n",
            (unsigned long long)st.appends, (unsigned long long)st.syncs);
    CHECK_EQ(st.appends, 1000);
    CHECK(st.syncs >= 1 && st.syncs <= 50);

    group_run(0, 1, 1000, &st);
    fprintf(stderr, "   group commit off: %llu appends, %llu syncs\n",
            (unsigned long long)st.appends, (unsigned long long)st.syncs);
    CHECK_EQ(st.appends, 1000);
    CHECK_EQ(st.syncs, 1000);

    group_run(1, 0, 1000, &st);
    CHECK_EQ(st.appends, 1000);
    CHECK_EQ(st.syncs, 0);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    frame_put_u64(p, v);
}

static void test_apply_reload(void)
{
    struct env e;
    env_init(&e);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    static struct ticket t[10];
    struct order o = {0};
    append_n(&e, 1, 10, t, &o);

    /* Committed effects of txns 1..6; interleaved with appends queued around them. */
    uint8_t v[8];
    for (zxid_t z = 1; z <= 6; z++) {
        struct store_batch *b = store_batch_new(z);
        put_u64(v, z);
        switch (z) {
        case 1:
            store_batch_put_node(b, "/a", v, 8);
            store_batch_put_session(b, 100, v, 8);
            break;
        case 2:
            store_batch_put_node(b, "/a/b", v, 8);
            store_batch_put_node(b, "/gone", v, 8);
            store_batch_put_session(b, 200, v, 8);
            break;
        case 3:
            store_batch_del_node(b, "/gone");
            store_batch_put_node(b, "/a", v, 8); /* setData */
            break;
        case 4:
            store_batch_del_session(b, 100);
            break;
        case 5:
            break; /* a txn with no tree effect still advances applied */
        case 6:
            store_batch_put_node(b, "/c", v, 8);
            break;
        }
        store_apply(e.s, b);
    }
    CHECK_EQ(store_applied(e.s), 6);
    CHECK_EQ(store_get_meta(e.s, "applied"), 6);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK_EQ(o.count, 10);
    env_close_store(&e);

    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_applied(e.s), 6);
    CHECK_EQ(store_last_logged(e.s), 10);
    struct seen w;
    CHECK_EQ(store_load_tree(e.s, loader(&w)), 0);
    CHECK_EQ(w.nnode, 3);
    CHECK(strcmp(w.paths[0], "/a") == 0 && frame_get_u64(w.node_val[0]) == 3);
    CHECK(strcmp(w.paths[1], "/a/b") == 0 && frame_get_u64(w.node_val[1]) == 2);
    CHECK(strcmp(w.paths[2], "/c") == 0 && frame_get_u64(w.node_val[2]) == 6);
    CHECK_EQ(w.nsession, 1);
    CHECK_EQ(frame_get_u64(w.sess_val[0]), 2);

    CHECK_EQ(store_load_log(e.s, store_applied(e.s), loader(&w)), 0);
    CHECK_EQ(w.ntxn, 4);
    CHECK_EQ(w.first, 7);
    CHECK_EQ(w.last, 10);
    CHECK_EQ(w.bad_txn, 0);

    /* A loader callback's error stops the iteration and is returned. */
    loader(&w);
    w.stop_after = 2;
    struct store_loader l = {&w, seen_node, seen_session, seen_txn};
    CHECK_EQ(store_load_tree(e.s, &l), -42);
    CHECK_EQ(w.nnode, 2);
    CHECK_EQ(w.nsession, 0);
    env_fini(&e);
}

static void test_trim(void)
{
    struct env e;
    env_init(&e);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    static struct ticket t[100];
    struct order o = {0};
    append_n(&e, 1, 100, t, &o);
    store_trim_log(e.s, 50);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    env_close_store(&e);

    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_last_logged(e.s), 100);
    struct seen w;
    CHECK_EQ(store_load_log(e.s, 0, loader(&w)), 0);
    CHECK_EQ(w.first, 50);
    CHECK_EQ(w.last, 100);
    CHECK_EQ(w.ntxn, 51);
    CHECK_EQ(w.gaps, 0);

    /* Trimming everything, in order after appends queued before it. */
    struct order o2 = {0};
    static struct ticket t2[5];
    append_n(&e, 101, 5, t2, &o2);
    store_trim_log(e.s, 106);
    env_close_store(&e);
    CHECK_EQ(o2.count, 5);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_last_logged(e.s), 0);
    CHECK_EQ(store_load_log(e.s, 0, loader(&w)), 0);
    CHECK_EQ(w.ntxn, 0);
    env_fini(&e);
}

static void test_meta(void)
{
    struct env e;
    env_init(&e);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_set_meta_sync(e.s, "acceptedEpoch", 5), 0);
    CHECK_EQ(store_set_meta_sync(e.s, "currentEpoch", 4), 0);
    CHECK_EQ(store_set_meta_sync(e.s, "currentEpoch", 5), 0);
    CHECK_EQ(store_get_meta(e.s, "acceptedEpoch"), 5);
    CHECK_EQ(store_get_meta(e.s, "currentEpoch"), 5);
    CHECK_EQ(store_get_meta(e.s, "nothing"), 0);

    /* Txns queued before an epoch write are durable before it (ZK-4643), even though their
     * callbacks have not run yet. */
    static struct ticket t[200];
    struct order o = {0};
    append_n(&e, ZXID(5, 1), 200, t, &o);
    CHECK_EQ(store_set_meta_sync(e.s, "currentEpoch", 6), 0);
    struct store_stats st;
    store_get_stats(e.s, &st);
    CHECK_EQ(st.appends, 200);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK_EQ(o.count, 200);
    CHECK_EQ(o.errors, 0);
    env_close_store(&e);

    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_get_meta(e.s, "acceptedEpoch"), 5);
    CHECK_EQ(store_get_meta(e.s, "currentEpoch"), 6);
    CHECK_EQ(store_last_logged(e.s), ZXID(5, 200));
    env_fini(&e);
}

/* Writes to the store's column families behind its back, as damage would. */
static void plant(const char *db, int cf, const char *k, size_t klen, const char *v, size_t vlen)
{
    static const char *names[] = {"default", "log", "tree", "sessions", "meta"};
    const rocksdb_options_t *cfo[5];
    rocksdb_column_family_handle_t *h[5];
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    for (int i = 0; i < 5; i++)
        cfo[i] = o;
    char *err = NULL;
    rocksdb_t *d = rocksdb_open_column_families(o, db, 5, names, cfo, h, &err);
    CHECK(err == NULL);
    if (err) {
        rocksdb_free(err);
        rocksdb_options_destroy(o);
        return;
    }
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put_cf(d, wo, h[cf], k, klen, v, vlen, &err);
    CHECK(err == NULL);
    rocksdb_writeoptions_destroy(wo);
    for (int i = 0; i < 5; i++)
        rocksdb_column_family_handle_destroy(h[i]);
    rocksdb_close(d);
    rocksdb_options_destroy(o);
}

static void expect_open_fails(struct env *e, const char *what)
{
    char *msg = NULL;
    struct store *s = NULL;
    int rc = store_open(&s, &e->loop, e->db, NULL, &msg);
    CHECK(rc < 0);
    CHECK(msg && strstr(msg, what) && !strchr(msg, '\n'));
    if (rc == 0) {
        store_close(s);
        uv_run(&e->loop, UV_RUN_DEFAULT);
    }
    free(msg);
}

static void test_damaged(void)
{
    struct env e;
    uint8_t k[9] = {0}, v[8] = {0};

    /* A meta value that is not 8 bytes. */
    env_init(&e);
    plant(e.db, 4, "applied", 7, "abc", 3);
    expect_open_fails(&e, "damaged");
    env_fini(&e);

    /* A log key that is not 8 bytes, at the end of the log. */
    env_init(&e);
    plant(e.db, 1, "\xff\xff\xff\xff", 4, "x", 1);
    expect_open_fails(&e, "log key");
    env_fini(&e);

    /* One in the middle: open succeeds, loading refuses. */
    env_init(&e);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    static struct ticket t[3];
    struct order o = {0};
    append_n(&e, 1, 3, t, &o);
    env_close_store(&e);
    put_u64(k, 2);
    plant(e.db, 1, (const char *)k, 9, "x", 1);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_last_logged(e.s), 3);
    struct seen w;
    CHECK_EQ(store_load_log(e.s, 0, loader(&w)), -EBADMSG);
    CHECK_EQ(w.ntxn, 2);
    env_close_store(&e);

    /* A session key that is not 8 bytes; a tree key with a NUL in it. */
    plant(e.db, 3, "abc", 3, (const char *)v, 8);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_load_tree(e.s, loader(&w)), -EBADMSG);
    env_close_store(&e);
    env_fini(&e);

    env_init(&e);
    plant(e.db, 2, "/a\0b", 4, "x", 1);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_load_tree(e.s, loader(&w)), -EBADMSG);
    env_fini(&e);
}

/* Runs this binary with args in a child process; its exit status, or -1. */
static int run_child(const char *mode, const char *arg)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* exec, so the child does not inherit RocksDB's threads as dead copies. */
        execl("/proc/self/exe", "test_store", mode, arg, (char *)NULL);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* Child: as nobody, opening db must fail with a one-line message. */
static int open_fails_child(const char *db)
{
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        return 2;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct store *s;
    char *msg = NULL;
    int rc = store_open(&s, &loop, db, NULL, &msg);
    if (rc == 0)
        return 3;
    int ok = msg && strstr(msg, "cannot open store in") && !strchr(msg, '\n');
    fprintf(stderr, "   as nobody: %s\n", msg ? msg : "(null)");
    free(msg);
    uv_loop_close(&loop);
    return ok ? 0 : 4;
}

static void test_bad_paths(void)
{
    struct env e;
    env_init(&e);

    /* The path is a regular file. */
    int fd = open(e.db, O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0);
    close(fd);
    expect_open_fails(&e, "cannot open store in");

    /* Its parent is a regular file. */
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/db/store", e.dir);
    strcpy(e.db, sub);
    expect_open_fails(&e, "cannot open store in");

    /* Not writable: procfs refuses even root. */
    strcpy(e.db, "/proc/zkfs-test-store");
    expect_open_fails(&e, "cannot open store in");

    /* A directory this user cannot write. Root bypasses permissions, so as root a child
     * process drops to nobody first. */
    CHECK_EQ(chmod(e.dir, 0755), 0);
    snprintf(e.db, sizeof(e.db), "%s/ro", e.dir);
    CHECK_EQ(mkdir(e.db, 0555), 0);
    char db2[128];
    snprintf(db2, sizeof(db2), "%s/db", e.db);
    if (geteuid() != 0) {
        expect_open_fails(&e, "cannot open store in");
        strcpy(e.db, db2);
        expect_open_fails(&e, "cannot open store in");
    } else {
        CHECK_EQ(run_child("--open-fails", e.db), 0);
        CHECK_EQ(run_child("--open-fails", db2), 0);
    }
    chmod(e.dir, 0700);
    strcpy(e.db, e.dir);
    env_fini(&e);
}

/* Callbacks of a failed write, and of every write after it, get a negative status: the log must
 * not get a hole. The failure is a file-size limit (EFBIG on the WAL), set in a child process
 * because it is process-wide; a full disk would also fail RocksDB's own LOG file, where the
 * distribution's RocksDB build trips an internal assertion. */
struct fail_count {
    int ok, failed, bad_order;
};

static void fail_cb(void *arg, int status)
{
    struct fail_count *f = arg;
    if (status == 0 && f->failed)
        f->bad_order++;
    if (status == 0)
        f->ok++;
    else
        f->failed++;
}

static int write_failure_child(const char *db)
{
    struct rlimit rl = {1 << 20, 1 << 20};
    signal(SIGXFSZ, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct store *s;
    char *msg = NULL;
    if (store_open(&s, &loop, db, NULL, &msg) < 0) {
        fprintf(stderr, "child: %s\n", msg);
        return 2;
    }
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 2;
    enum { N = 100, LEN = 32 << 10 };
    static uint8_t buf[LEN];
    struct fail_count f = {0}, g = {0};
    /* Ten that fit, run to completion; then more than fit, in groups of any size. */
    for (int i = 1; i <= N; i++) {
        if (store_append(s, (zxid_t)i, buf, LEN, fail_cb, &f) < 0)
            return 2;
        if (i == 10)
            uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    /* Later writes fail too, meta included. */
    if (store_append(s, N + 1, buf, 1, fail_cb, &g) < 0)
        return 2;
    uv_run(&loop, UV_RUN_DEFAULT);
    int meta = store_set_meta_sync(s, "currentEpoch", 1);
    fprintf(stderr, "   %d appends durable, %d failed; then %d failed, meta %d\n", f.ok, f.failed,
            g.failed, meta);
    store_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    int ok = f.ok + f.failed == N && f.ok >= 10 && f.failed > 0 && f.bad_order == 0 &&
             g.failed == 1 && meta < 0;
    return ok ? 100 + f.ok : 3; /* the parent learns how many were acknowledged */
}

static void test_write_failure(void)
{
    struct env e;
    env_init(&e);
    int rc = run_child("--write-failure", e.db);
    CHECK(rc > 100);
    /* What was acknowledged is there, and nothing after a failed write. */
    CHECK_EQ(env_open(&e, 1, 1), 0);
    if (e.s && rc > 100)
        CHECK_EQ(store_last_logged(e.s), rc - 100);
    env_fini(&e);
}

/* A callback that queues the next append: store_close must write and deliver all of them. */
struct chain {
    struct store *s;
    zxid_t next, end;
    int done;
};

static void chain_cb(void *arg, int status)
{
    struct chain *c = arg;
    c->done++;
    if (status == 0 && c->next <= c->end) {
        uint8_t buf[REC_MAX];
        size_t len = rec_fill(c->next, buf, REC_MAX);
        CHECK_EQ(store_append(c->s, c->next, buf, len, chain_cb, c), 0);
        c->next++;
    }
}

static void test_close_drains_chain(void)
{
    struct env e;
    env_init(&e);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    struct chain c = {e.s, 2, 20, 0};
    uint8_t buf[REC_MAX];
    size_t len = rec_fill(1, buf, REC_MAX);
    CHECK_EQ(store_append(e.s, 1, buf, len, chain_cb, &c), 0);
    store_close(e.s);
    e.s = NULL;
    CHECK_EQ(c.done, 20);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_last_logged(e.s), 20);
    env_fini(&e);
}

/* The crash child: appends forever from the last logged zxid, applying each acked txn, and
 * reports every acknowledged zxid on fd. */
struct crash {
    struct store *s;
    int fd;
    zxid_t next;
};

struct crash_ticket {
    struct crash *c;
    zxid_t zxid;
};

static void crash_append(struct crash *c);

static void crash_cb(void *arg, int status)
{
    struct crash_ticket *t = arg;
    struct crash *c = t->c;
    zxid_t z = t->zxid;
    free(t);
    if (status != 0)
        _exit(3);
    uint8_t b[8];
    frame_put_u64(b, z);
    if (write(c->fd, b, 8) != 8)
        _exit(4);
    /* The tree records the applied zxid in the same batch as applied itself. */
    struct store_batch *batch = store_batch_new(z);
    store_batch_put_node(batch, "/k", b, 8);
    store_apply(c->s, batch);
    crash_append(c);
}

static void crash_append(struct crash *c)
{
    uint8_t buf[REC_MAX];
    struct crash_ticket *t = malloc(sizeof(*t));
    if (!t)
        _exit(5);
    *t = (struct crash_ticket){c, c->next};
    size_t len = rec_fill(c->next, buf, REC_MAX);
    if (store_append(c->s, c->next, buf, len, crash_cb, t) < 0)
        _exit(5);
    c->next++;
}

static int crash_child(const char *db, int fd, int group_commit)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct crash c = {.fd = fd};
    struct store_opts o = {.group_commit = group_commit, .sync = 1};
    char *msg = NULL;
    if (store_open(&c.s, &loop, db, &o, &msg) < 0) {
        fprintf(stderr, "child: %s\n", msg);
        return 2;
    }
    c.next = store_last_logged(c.s) + 1;
    for (int i = 0; i < 32; i++) /* keep a window in flight, as a leader would */
        crash_append(&c);
    uv_run(&loop, UV_RUN_DEFAULT);
    return 1;
}

static int read_full(int fd, uint8_t *p, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (timeout_ms >= 0 && poll(&pfd, 1, timeout_ms) <= 0)
            return -1;
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static void test_crash(void)
{
    struct env e;
    env_init(&e);
    static const struct {
        int acks, group_commit, delay_us;
    } rounds[] = {{1, 1, 0},    {40, 1, 300},  {700, 1, 0}, {3000, 1, 1500},
                  {60, 0, 200}, {2000, 1, 50}, {150, 0, 0}, {5000, 1, 700}};
    zxid_t acked = 0;
    for (size_t r = 0; r < sizeof(rounds) / sizeof(rounds[0]); r++) {
        int p[2];
        CHECK_EQ(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
            /* exec, so the child does not inherit RocksDB's threads as dead copies. */
            char fdarg[16], gcarg[4];
            snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
            snprintf(gcarg, sizeof(gcarg), "%d", rounds[r].group_commit);
            close(p[0]);
            execl("/proc/self/exe", "test_store", "--crash-child", e.db, fdarg, gcarg,
                  (char *)NULL);
            _exit(127);
        }
        close(p[1]);
        int n = 0;
        uint8_t b[8];
        while (n < rounds[r].acks && read_full(p[0], b, 8, 10000) == 0) {
            zxid_t z = frame_get_u64(b);
            CHECK_EQ(z, acked + 1); /* acks come in order, without holes */
            acked = z;
            n++;
        }
        CHECK_EQ(n, rounds[r].acks);
        if (rounds[r].delay_us)
            usleep((useconds_t)rounds[r].delay_us);
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        /* Acks written before the kill count too. */
        while (read_full(p[0], b, 8, -1) == 0) {
            CHECK_EQ(frame_get_u64(b), acked + 1);
            acked = frame_get_u64(b);
        }
        close(p[0]);

        CHECK_EQ(env_open(&e, 1, 1), 0);
        if (!e.s)
            break;
        struct seen w;
        CHECK_EQ(store_load_log(e.s, 0, loader(&w)), 0);
        CHECK_EQ(w.first, 1);
        CHECK_EQ(w.gaps, 0);
        CHECK_EQ(w.bad_txn, 0);
        CHECK(w.last >= acked);
        CHECK_EQ(store_last_logged(e.s), w.last);
        zxid_t logged = w.last;
        zxid_t applied = store_applied(e.s);
        CHECK(applied <= logged);
        CHECK_EQ(store_load_tree(e.s, loader(&w)), 0);
        if (applied) {
            CHECK_EQ(w.nnode, 1);
            CHECK_EQ(frame_get_u64(w.node_val[0]), applied);
        }
        fprintf(stderr, "   round %zu (group_commit=%d): %llu acked, %llu logged, %llu applied\n",
                r, rounds[r].group_commit, (unsigned long long)acked, (unsigned long long)logged,
                (unsigned long long)applied);
        env_close_store(&e);
        /* The next child continues after the durable log, unacked entries included. */
        acked = logged;
    }
    env_fini(&e);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A window of appends kept in flight: each completion submits the next, as a leader would. */
struct window {
    struct store *s;
    zxid_t next, end;
    int done;
};

static void window_cb(void *arg, int status)
{
    struct window *w = arg;
    w->done++;
    if (status == 0 && w->next <= w->end) {
        uint8_t buf[REC_MAX];
        size_t len = rec_fill(w->next, buf, REC_MAX);
        if (store_append(w->s, w->next, buf, len, window_cb, w) == 0)
            w->next++;
    }
}

/* Not a test: `test_store --bench N [WINDOW]` measures N appends, queued back-to-back or with
 * WINDOW in flight. */
static int bench(int n, int window)
{
    for (int gc = 1; gc >= 0; gc--) {
        struct env e;
        env_init(&e);
        if (env_open(&e, gc, 1) < 0)
            return 1;
        struct ticket *t = calloc((size_t)n, sizeof(*t));
        struct order o = {0};
        struct window w = {e.s, 1, (zxid_t)n, 0};
        double t0 = now_s();
        if (window > 0) {
            for (int i = 0; i < window && i < n; i++)
                window_cb(&w, 0);
            w.done = 0;
        } else {
            append_n(&e, 1, n, t, &o);
        }
        uv_run(&e.loop, UV_RUN_DEFAULT);
        double dt = now_s() - t0;
        struct store_stats st;
        store_get_stats(e.s, &st);
        printf("group_commit=%d window=%d: %llu appends in %.3f s = %.0f appends/s, %llu syncs\n",
               gc, window, (unsigned long long)st.appends, dt, (double)st.appends / dt,
               (unsigned long long)st.syncs);
        free(t);
        env_fini(&e);
    }
    return TEST_EXIT();
}

static void put_node_batch(struct env *e, zxid_t z, const char *path, uint64_t val)
{
    uint8_t v[8];
    put_u64(v, val);
    struct store_batch *b = store_batch_new(z);
    store_batch_put_node(b, path, v, 8);
    if (z == 3)
        store_batch_put_session(b, 7, v, 8);
    store_apply(e->s, b);
}

/* TRUNC, a snapshot read while writes go on, and installing it on another store. */
static void test_sync_support(void)
{
    struct env e, f;
    env_init(&e);
    env_init(&f);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    static struct ticket t[20];
    struct order o = {0};
    append_n(&e, 1, 20, t, &o);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    char path[32];
    for (zxid_t z = 1; z <= 10; z++) {
        snprintf(path, sizeof(path), "/n%02d", (int)z);
        put_node_batch(&e, z, path, z);
    }
    CHECK_EQ(store_truncate_log_sync(e.s, 15), 0);
    CHECK_EQ(store_last_logged(e.s), 15);

    /* The snapshot stays at applied 10 while more is applied. */
    struct store_snap *sn;
    zxid_t at = 0;
    CHECK_EQ(store_snap_open(e.s, &sn, &at), 0);
    CHECK_EQ(at, 10);
    put_node_batch(&e, 11, "/n11", 11);
    CHECK_EQ(store_set_meta_sync(e.s, "x", 1), 0); /* a synced write after the apply */

    /* The learner side had its own, older state: it must all be replaced. */
    CHECK_EQ(env_open(&f, 1, 1), 0);
    static struct ticket t2[3], t3[3];
    struct order o2 = {0}, o3 = {0};
    append_n(&f, 1, 3, t2, &o2);
    append_n(&f, 11, 3, t3, &o3); /* 11 and 12 are confirmed by the stream, 13 is not */
    uv_run(&f.loop, UV_RUN_DEFAULT);
    put_node_batch(&f, 1, "/old", 1);
    struct store_install *in = store_install_begin(f.s);
    enum store_snap_kind kind;
    const uint8_t *k, *v;
    size_t kl, vl;
    int nodes = 0, sessions = 0, rc;
    while ((rc = store_snap_next(sn, &kind, &k, &kl, &v, &vl)) == 1) {
        if (kind == STORE_SNAP_NODE) {
            char p[64];
            snprintf(p, sizeof(p), "%.*s", (int)kl, (const char *)k);
            store_install_put_node(f.s, in, p, v, vl);
            nodes++;
        } else {
            CHECK_EQ(kl, 8);
            store_install_put_session(f.s, in, frame_get_u64(k), v, vl);
            sessions++;
        }
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(nodes, 10);
    CHECK_EQ(sessions, 1);
    store_snap_close(sn);
    CHECK_EQ(store_install_commit(f.s, in, at, 12), 0);
    CHECK_EQ(store_applied(f.s), 10);
    CHECK_EQ(store_last_logged(f.s), 12);
    env_close_store(&f);

    CHECK_EQ(env_open(&f, 1, 1), 0);
    struct seen w;
    CHECK_EQ(store_load_tree(f.s, loader(&w)), 0);
    CHECK_EQ(w.nnode, 10);
    CHECK_EQ(w.nsession, 1);
    CHECK(strcmp(w.paths[0], "/n01") == 0 && strcmp(w.paths[9], "/n10") == 0);
    CHECK_EQ(store_applied(f.s), 10);
    CHECK_EQ(store_load_log(f.s, 0, loader(&w)), 0);
    CHECK_EQ(w.ntxn, 2);
    CHECK_EQ(w.first, 11);
    CHECK_EQ(w.last, 12);
    env_fini(&f);

    /* The truncation is durable: entries 16..20 do not come back. */
    env_close_store(&e);
    CHECK_EQ(env_open(&e, 1, 1), 0);
    CHECK_EQ(store_last_logged(e.s), 15);
    CHECK_EQ(store_load_log(e.s, 0, loader(&w)), 0);
    CHECK_EQ(w.ntxn, 15);
    CHECK_EQ(w.gaps, 0);
    CHECK_EQ(store_applied(e.s), 11);
    env_fini(&e);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--crash-child") == 0)
        return crash_child(argv[2], atoi(argv[3]), atoi(argv[4]));
    if (argc == 3 && strcmp(argv[1], "--open-fails") == 0)
        return open_fails_child(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--write-failure") == 0)
        return write_failure_child(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "--bench") == 0)
        return bench(atoi(argv[2]), argc > 3 ? atoi(argv[3]) : 0);
    signal(SIGPIPE, SIG_IGN);
    RUN(test_open_close_reopen);
    RUN(test_append_order);
    RUN(test_group_commit);
    RUN(test_apply_reload);
    RUN(test_trim);
    RUN(test_sync_support);
    RUN(test_meta);
    RUN(test_damaged);
    RUN(test_bad_paths);
    RUN(test_write_failure);
    RUN(test_close_drains_chain);
    RUN(test_crash);
    return TEST_EXIT();
}
