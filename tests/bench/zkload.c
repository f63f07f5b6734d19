/* zkload: the one load generator for Apache ZooKeeper and zkfs alike, through the ZooKeeper C
 * client's asynchronous API (libzookeeper_mt 3.8). Modes load, populate, probe and notify; each
 * ends with one JSON object on stdout. A benchmark, never a test: it asserts nothing about speed.
 *
 * What the C client does that shapes this file:
 * - All completions and watcher calls of a handle run on that handle's one completion thread,
 *   so per-connection state written only from completions needs no lock. zookeeper_close() may
 *   still run leftover completions (rc ZCLOSING) on the caller's thread, or drop them: anything a
 *   completion points at must outlive zookeeper_close(), and a completion must not issue once
 *   the run is over.
 * - Issuing from a completion is fine: the request is queued and the IO thread woken by a pipe.
 *   path and value are serialized before zoo_a*() returns, so one value buffer serves all ops.
 * - Losing the connection fails everything queued or in flight with ZCONNECTIONLOSS, and so does
 *   each failed connect attempt while it reconnects: a request issued while disconnected is not
 *   held until the session is back, it can fail again before it is ever sent. After the whole
 *   server list has failed the client waits recv_timeout/60 before trying again, but every new
 *   request wakes its IO thread and cancels that wait; probe, which issues again at once, thus
 *   makes a connect attempt per failed request (hundreds of err lines per failover) and sees
 *   the new leader as soon as it serves rather than after the client's back-off.
 * - A watcher passed to zoo_awget() also receives every session event of the handle (type
 *   ZOO_SESSION_EVENT) and stays registered: check the type.
 * - zookeeper_init() shuffles a multi-server list; zookeeper_close() of a connected handle sends
 *   closeSession and waits up to 1.5 s for the answer.
 * - zoo_aset() on an expired session returns ZINVALIDSTATE at once; the handle is then dead and
 *   only a new zookeeper_init() helps. */
/* the multi-threaded library's declarations */
#define THREADED
#include <zookeeper/zookeeper.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define ZKL_CONNECT_US 10000000LL /* connecting, all sessions together */
#define ZKL_DRAIN_US 10000000LL   /* waiting for the ops in flight after the window */
#define ZKL_ROUND_US 5000000LL    /* one notify round */
#define ZKL_SETTLE_US 60000000LL  /* notify --file: the mount catching up before round 1 */
#define ZKL_GROUP 10000           /* populate: children per g<j> parent */
#define ZKL_SETUP_WINDOW 128      /* key setup: creates in flight per connection, at least */
#define ZKL_PATH_MAX 512

struct opts {
    char **servers; /* split --servers */
    int nservers;
    const char *mode;
    int session_ms;
    const char *prefix;
    int log_level;
    const char *op;
    int window, conns, value_size, get_pct;
    double warmup, duration;
    long keys, count;
    int interval_ms;
    int rounds;
    const char *watch_server, *set_server, *file;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_until_us(int64_t t)
{
    struct timespec ts = {.tv_sec = t / 1000000, .tv_nsec = (t % 1000000) * 1000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* Waits on cv until deadline (CLOCK_MONOTONIC µs); ETIMEDOUT once it has passed. */
static int cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline)
{
    struct timespec ts = {.tv_sec = deadline / 1000000, .tv_nsec = (deadline % 1000000) * 1000};
    return pthread_cond_timedwait(cv, mu, &ts);
}

/* ---- sessions ---- */

struct session {
    zhandle_t *zh;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state; /* last ZOO_*_STATE of a session event */
};

static void session_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)path;
    struct session *s = ctx;
    if (type != ZOO_SESSION_EVENT)
        return;
    pthread_mutex_lock(&s->mu);
    s->state = state;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Starts a session to hosts (copied by the client); session_wait() tells when it is up. */
static int session_open(struct session *s, const char *hosts, int session_ms)
{
    s->state = 0;
    s->zh = zookeeper_init(hosts, session_watcher, session_ms, NULL, s, ZOO_NO_LOG_CLIENTENV);
    if (!s->zh) {
        fprintf(stderr, "zkload: zookeeper_init(%s): %s\n", hosts, strerror(errno));
        return -1;
    }
    return 0;
}

/* 0 once connected, -1 if the session failed or deadline passed first. */
static int session_wait(struct session *s, int64_t deadline)
{
    pthread_mutex_lock(&s->mu);
    while (s->state != ZOO_CONNECTED_STATE && s->state != ZOO_EXPIRED_SESSION_STATE &&
           s->state != ZOO_AUTH_FAILED_STATE && cond_wait_until(&s->cv, &s->mu, deadline) == 0)
        ;
    int ok = s->state == ZOO_CONNECTED_STATE;
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

static void session_init(struct session *s)
{
    s->zh = NULL;
    pthread_mutex_init(&s->mu, NULL);
    cond_init(&s->cv);
}

static void session_close(struct session *s)
{
    if (s->zh)
        zookeeper_close(s->zh);
    s->zh = NULL;
}

/* ---- one async call waited for ---- */

struct call {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
    int64_t t_done;
};

static void call_init(struct call *c)
{
    pthread_mutex_init(&c->mu, NULL);
    cond_init(&c->cv);
    c->done = 0;
}

static void call_finish(const void *data, int rc)
{
    struct call *c = (struct call *)data;
    int64_t t = now_us();
    pthread_mutex_lock(&c->mu);
    c->rc = rc;
    c->t_done = t;
    c->done = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void call_string_done(int rc, const char *value, const void *data)
{
    (void)value;
    call_finish(data, rc);
}

static void call_stat_done(int rc, const struct Stat *st, const void *data)
{
    (void)st;
    call_finish(data, rc);
}

/* The call's rc. The client completes every request sooner or later (at the latest with
 * ZCONNECTIONLOSS after 2/3 of the session timeout without an answer), so this is bounded. */
static int call_wait(struct call *c)
{
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        pthread_cond_wait(&c->cv, &c->mu);
    c->done = 0;
    int rc = c->rc;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* Creates path and its missing parents; an existing node is fine. 0 or the ZooKeeper rc. */
static int ensure_path(zhandle_t *zh, const char *path, const char *value, int len)
{
    char part[ZKL_PATH_MAX];
    struct call c;
    call_init(&c);
    size_t n = strlen(path);
    if (n >= sizeof(part))
        return ZBADARGUMENTS;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && path[i] != '/')
            continue;
        memcpy(part, path, i);
        part[i] = 0;
        int last = i == n;
        int rc = zoo_acreate(zh, part, last ? value : NULL, last ? len : -1, &ZOO_OPEN_ACL_UNSAFE,
                             ZOO_PERSISTENT, call_string_done, &c);
        if (rc == ZOK)
            rc = call_wait(&c);
        if (rc != ZOK && rc != ZNODEEXISTS) {
            fprintf(stderr, "zkload: create %s: %s\n", part, zerror(rc));
            return rc;
        }
    }
    return ZOK;
}

/* sync(path) on this handle: its server has caught up with the leader when it answers. */
static int sync_path(zhandle_t *zh, const char *path)
{
    struct call c;
    call_init(&c);
    int rc = zoo_async(zh, path, call_string_done, &c);
    return rc == ZOK ? call_wait(&c) : rc;
}

/* ---- latencies ---- */

struct lat {
    uint32_t *v;
    size_t n, cap;
    int oom;
};

static void lat_push(struct lat *l, int64_t us)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1 << 16;
        uint32_t *v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            l->oom = 1;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = us < 0 ? 0 : us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank of p percent in sorted v[0..n); 0 when there are no samples. */
static uint32_t pct(const uint32_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n - 1e-9);
    return v[rank ? rank - 1 : 0];
}

/* ---- pipelined runs: load and populate ---- */

enum zkl_op { ZKL_CREATE, ZKL_SET, ZKL_GET, ZKL_MIX, ZKL_FILL };
enum zkl_fill { ZKL_FILL_KEYS, ZKL_FILL_GROUPS, ZKL_FILL_NODES };

struct run {
    enum zkl_op op;
    const char *prefix;
    const char *value;
    int value_len;
    long keys;
    int get_pct;
    int64_t win_start, win_end; /* load: ops completing in [start, end) count */
    enum zkl_fill fill;         /* fill: creates items [0, fill_count) */
    long fill_count;
    atomic_long fill_next;
    atomic_int stop;
};

struct conn;

/* One request in flight; owned by whoever issues it until its completion runs. */
struct slot {
    struct conn *c;
    int64_t t_issue;
    uint64_t rng;
};

struct conn {
    struct run *run;
    struct session s;
    int id;
    struct slot *slots;
    long key_base;
    atomic_int inflight;
    atomic_long seq;
    atomic_long errors;
    long ops;       /* completion thread only while ops are in flight */
    struct lat lat; /* likewise */
};

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void fill_path(const struct run *r, long i, char *path, size_t size)
{
    switch (r->fill) {
    case ZKL_FILL_KEYS:
        snprintf(path, size, "%s/k%ld", r->prefix, i);
        break;
    case ZKL_FILL_GROUPS:
        snprintf(path, size, "%s/g%ld", r->prefix, i);
        break;
    case ZKL_FILL_NODES:
        snprintf(path, size, "%s/g%ld/p%ld", r->prefix, i / ZKL_GROUP, i);
        break;
    }
}

static void slot_idle(struct slot *s)
{
    atomic_fetch_sub(&s->c->inflight, 1);
}

static void note_error(struct conn *c, int rc, const char *what)
{
    if (atomic_fetch_add(&c->errors, 1) == 0)
        fprintf(stderr, "zkload: connection %d: first error: %s: %s\n", c->id, what, zerror(rc));
}

static void issue(struct slot *s);

/* Every completion: count it if it belongs, then issue the next op on the same slot. The slot's
 * last touch of the connection is slot_idle(), so a main thread that sees inflight == 0 may read
 * ops and lat. */
static void op_done(struct slot *s, int rc)
{
    int64_t t = now_us();
    struct conn *c = s->c;
    struct run *r = c->run;
    if (r->op == ZKL_FILL) {
        if (rc == ZOK || (rc == ZNODEEXISTS && r->fill != ZKL_FILL_NODES))
            c->ops++;
        else
            note_error(c, rc, "create");
    } else if (t >= r->win_start && t < r->win_end) {
        if (rc == ZOK) {
            c->ops++;
            lat_push(&c->lat, t - s->t_issue);
        } else {
            note_error(c, rc, "op");
        }
    }
    if (rc == ZCLOSING || atomic_load(&r->stop) || (r->op != ZKL_FILL && t >= r->win_end))
        slot_idle(s);
    else
        issue(s);
}

static void create_done(int rc, const char *value, const void *data)
{
    (void)value;
    op_done((struct slot *)data, rc);
}

static void set_done(int rc, const struct Stat *st, const void *data)
{
    (void)st;
    op_done((struct slot *)data, rc);
}

static void get_done(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
    (void)value;
    (void)len;
    (void)st;
    op_done((struct slot *)data, rc);
}

static void issue(struct slot *s)
{
    struct conn *c = s->c;
    struct run *r = c->run;
    zhandle_t *zh = c->s.zh;
    char path[ZKL_PATH_MAX];
    int rc;
    if (r->op == ZKL_FILL) {
        long i = atomic_fetch_add(&r->fill_next, 1);
        if (i >= r->fill_count) {
            slot_idle(s);
            return;
        }
        fill_path(r, i, path, sizeof(path));
        int groups = r->fill == ZKL_FILL_GROUPS;
        s->t_issue = now_us();
        rc = zoo_acreate(zh, path, groups ? NULL : r->value, groups ? -1 : r->value_len,
                         &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, create_done, s);
    } else if (r->op == ZKL_CREATE) {
        long n = atomic_fetch_add_explicit(&c->seq, 1, memory_order_relaxed);
        snprintf(path, sizeof(path), "%s/c%d-%ld", r->prefix, c->id, n);
        s->t_issue = now_us();
        rc = zoo_acreate(zh, path, r->value, r->value_len, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
                         create_done, s);
    } else {
        long n = atomic_fetch_add_explicit(&c->seq, 1, memory_order_relaxed);
        snprintf(path, sizeof(path), "%s/k%ld", r->prefix, (c->key_base + n) % r->keys);
        int get =
            r->op == ZKL_GET || (r->op == ZKL_MIX && (int)(rng_next(&s->rng) % 100) < r->get_pct);
        s->t_issue = now_us();
        if (get)
            rc = zoo_aget(zh, path, 0, get_done, s);
        else
            rc = zoo_aset(zh, path, r->value, r->value_len, -1, set_done, s);
    }
    if (rc != ZOK) {
        note_error(c, rc, "issue");
        slot_idle(s);
    }
}

static long inflight_total(struct conn *cs, int n)
{
    long t = 0;
    for (int i = 0; i < n; i++)
        t += atomic_load(&cs[i].inflight);
    return t;
}

/* Fills every connection's window from the main thread; completions keep it full. */
static void start_run(struct conn *cs, int n, struct run *r, int window)
{
    for (int i = 0; i < n; i++) {
        struct conn *c = &cs[i];
        c->run = r;
        c->ops = 0;
        c->lat.n = 0;
        atomic_store(&c->errors, 0);
        atomic_store(&c->inflight, window);
    }
    for (int k = 0; k < window; k++)
        for (int i = 0; i < n; i++)
            issue(&cs[i].slots[k]);
}

/* Waits until nothing is in flight, or deadline (0: none). 0 when drained. */
static int drain(struct conn *cs, int n, int64_t deadline)
{
    while (inflight_total(cs, n) > 0) {
        if (deadline && now_us() >= deadline)
            return -1;
        usleep(1000);
    }
    return 0;
}

static long total_errors(struct conn *cs, int n)
{
    long e = 0;
    for (int i = 0; i < n; i++)
        e += atomic_load(&cs[i].errors);
    return e;
}

/* Creates fill_count items of kind fill across all connections. Returns the errors. */
static long run_fill(struct conn *cs, int n, struct run *r, enum zkl_fill fill, long count,
                     int window)
{
    r->op = ZKL_FILL;
    r->fill = fill;
    r->fill_count = count;
    atomic_store(&r->fill_next, 0);
    start_run(cs, n, r, window);
    drain(cs, n, 0);
    return total_errors(cs, n);
}

/* Opens C sessions, connection i to server i mod nservers, each with window slots. */
static struct conn *conns_open(const struct opts *o, int window)
{
    struct conn *cs = calloc((size_t)o->conns, sizeof(*cs));
    if (!cs)
        return NULL;
    int64_t deadline = now_us() + ZKL_CONNECT_US;
    int ok = 1;
    for (int i = 0; i < o->conns && ok; i++) {
        struct conn *c = &cs[i];
        c->id = i;
        c->slots = calloc((size_t)window, sizeof(*c->slots));
        session_init(&c->s);
        if (!c->slots || session_open(&c->s, o->servers[i % o->nservers], o->session_ms))
            ok = 0;
        for (int k = 0; c->slots && k < window; k++) {
            c->slots[k].c = c;
            c->slots[k].rng =
                0x9E3779B97F4A7C15ULL * (uint64_t)(i * window + k + 1) ^ (uint64_t)now_us();
        }
    }
    for (int i = 0; i < o->conns && ok; i++) {
        if (session_wait(&cs[i].s, deadline)) {
            fprintf(stderr, "zkload: cannot connect to %s within 10 s\n",
                    o->servers[i % o->nservers]);
            ok = 0;
        }
    }
    if (ok)
        return cs;
    for (int i = 0; i < o->conns; i++) {
        session_close(&cs[i].s);
        free(cs[i].slots);
    }
    free(cs);
    return NULL;
}

static void conns_close(struct conn *cs, int n)
{
    for (int i = 0; i < n; i++)
        session_close(&cs[i].s);
    for (int i = 0; i < n; i++) {
        free(cs[i].slots);
        free(cs[i].lat.v);
    }
    free(cs);
}

static char *value_new(int size)
{
    char *v = malloc((size_t)size + 1);
    if (v)
        memset(v, 'v', (size_t)size + 1);
    return v;
}

static int mode_load(const struct opts *o)
{
    enum zkl_op op;
    if (!strcmp(o->op, "create"))
        op = ZKL_CREATE;
    else if (!strcmp(o->op, "set"))
        op = ZKL_SET;
    else if (!strcmp(o->op, "get"))
        op = ZKL_GET;
    else if (!strcmp(o->op, "mix"))
        op = ZKL_MIX;
    else {
        fprintf(stderr, "zkload: --op is create, set, get or mix\n");
        return 1;
    }
    int setup_window = o->window > ZKL_SETUP_WINDOW ? o->window : ZKL_SETUP_WINDOW;
    char *value = value_new(o->value_size);
    struct conn *cs = value ? conns_open(o, setup_window) : NULL;
    if (!cs) {
        free(value);
        return 1;
    }
    struct run r = {.prefix = o->prefix,
                    .value = value,
                    .value_len = o->value_size,
                    .keys = o->keys,
                    .get_pct = o->get_pct};
    int ret = 1;
    if (ensure_path(cs[0].s.zh, o->prefix, NULL, -1) != ZOK)
        goto out;
    if (op != ZKL_CREATE) {
        long e = run_fill(cs, o->conns, &r, ZKL_FILL_KEYS, o->keys, setup_window);
        if (e) {
            fprintf(stderr, "zkload: %ld errors creating the keys\n", e);
            goto out;
        }
        /* Each server must hold the keys before the gets start. */
        for (int i = 0; i < o->conns; i++) {
            int rc = sync_path(cs[i].s.zh, o->prefix);
            if (rc != ZOK) {
                fprintf(stderr, "zkload: sync %s: %s\n", o->prefix, zerror(rc));
                goto out;
            }
        }
    }
    for (int i = 0; i < o->conns; i++) {
        cs[i].key_base = o->keys * i / o->conns;
        atomic_store(&cs[i].seq, 0);
    }
    r.op = op;
    r.win_start = now_us() + (int64_t)(o->warmup * 1e6);
    r.win_end = r.win_start + (int64_t)(o->duration * 1e6);
    start_run(cs, o->conns, &r, o->window);
    sleep_until_us(r.win_end);
    if (drain(cs, o->conns, now_us() + ZKL_DRAIN_US))
        fprintf(stderr, "zkload: %ld ops still in flight after 10 s; closing anyway\n",
                inflight_total(cs, o->conns));
    atomic_store(&r.stop, 1);
    for (int i = 0; i < o->conns; i++)
        session_close(&cs[i].s);

    long ops = 0;
    size_t n = 0;
    for (int i = 0; i < o->conns; i++) {
        ops += cs[i].ops;
        n += cs[i].lat.n;
        if (cs[i].lat.oom)
            fprintf(stderr, "zkload: out of memory for latencies; the percentiles miss some\n");
    }
    uint32_t *all = malloc((n ? n : 1) * sizeof(*all));
    if (!all)
        goto out;
    size_t k = 0;
    for (int i = 0; i < o->conns; i++) {
        memcpy(all + k, cs[i].lat.v, cs[i].lat.n * sizeof(*all));
        k += cs[i].lat.n;
    }
    qsort(all, n, sizeof(*all), cmp_u32);
    double secs = (double)(r.win_end - r.win_start) / 1e6;
    printf("{\"mode\":\"load\",\"op\":\"%s\",\"window\":%d,\"connections\":%d,\"value_size\":%d,"
           "\"duration_s\":%.6f,\"ops\":%ld,\"errors\":%ld,\"ops_per_s\":%.1f,\"p50_us\":%u,"
           "\"p90_us\":%u,\"p99_us\":%u,\"p999_us\":%u,\"max_us\":%u}\n",
           o->op, o->window, o->conns, o->value_size, secs, ops, total_errors(cs, o->conns),
           (double)ops / secs, pct(all, n, 50), pct(all, n, 90), pct(all, n, 99), pct(all, n, 99.9),
           n ? all[n - 1] : 0);
    free(all);
    ret = 0;
out:
    conns_close(cs, o->conns);
    free(value);
    return ret;
}

static int mode_populate(const struct opts *o)
{
    char *value = value_new(o->value_size);
    struct conn *cs = value ? conns_open(o, o->window) : NULL;
    if (!cs) {
        free(value);
        return 1;
    }
    struct run r = {.prefix = o->prefix, .value = value, .value_len = o->value_size};
    int ret = 1;
    if (ensure_path(cs[0].s.zh, o->prefix, NULL, -1) != ZOK)
        goto out;
    long groups = (o->count + ZKL_GROUP - 1) / ZKL_GROUP;
    long e = run_fill(cs, o->conns, &r, ZKL_FILL_GROUPS, groups, o->window);
    if (e) {
        fprintf(stderr, "zkload: %ld errors creating the g<j> parents\n", e);
        goto out;
    }
    int64_t t0 = now_us();
    e = run_fill(cs, o->conns, &r, ZKL_FILL_NODES, o->count, o->window);
    double secs = (double)(now_us() - t0) / 1e6;
    printf("{\"mode\":\"populate\",\"count\":%ld,\"errors\":%ld,\"seconds\":%.6f,"
           "\"ops_per_s\":%.1f}\n",
           o->count, e, secs, secs > 0 ? (double)(o->count - e) / secs : 0.0);
    ret = 0;
out:
    conns_close(cs, o->conns);
    free(value);
    return ret;
}

/* ---- probe ---- */

static atomic_int stop_signal;
static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv;

/* Takes SIGTERM and SIGINT (blocked in every other thread) and wakes the main thread. */
static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    int sig;
    while (sigwait(set, &sig) != 0)
        ;
    pthread_mutex_lock(&stop_mu);
    atomic_store(&stop_signal, 1);
    pthread_cond_broadcast(&stop_cv);
    pthread_mutex_unlock(&stop_mu);
    return NULL;
}

/* Sleeps until deadline or a stop signal. */
static void sleep_or_stop(int64_t deadline)
{
    pthread_mutex_lock(&stop_mu);
    while (!atomic_load(&stop_signal) && cond_wait_until(&stop_cv, &stop_mu, deadline) == 0)
        ;
    pthread_mutex_unlock(&stop_mu);
}

static void probe_done(int rc, const struct Stat *st, const void *data)
{
    (void)st;
    struct call *c = (struct call *)data;
    int64_t t = now_us();
    pthread_mutex_lock(&stop_mu);
    c->rc = rc;
    c->t_done = t;
    c->done = 1;
    pthread_cond_broadcast(&stop_cv);
    pthread_mutex_unlock(&stop_mu);
}

/* (Re)connects with the whole server list, waiting as long as it takes or until a stop. */
static int probe_connect(struct session *s, const struct opts *o, const char *hosts)
{
    while (!atomic_load(&stop_signal)) {
        if (session_open(s, hosts, o->session_ms))
            return -1;
        if (session_wait(s, now_us() + ZKL_CONNECT_US) == 0)
            return 0;
        session_close(s);
    }
    return -1;
}

static int mode_probe(const struct opts *o, const char *hosts)
{
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    cond_init(&stop_cv);
    pthread_t th;
    if (pthread_create(&th, NULL, signal_thread, &set)) {
        fprintf(stderr, "zkload: pthread_create failed\n");
        return 1;
    }
    pthread_detach(th);

    struct session s;
    session_init(&s);
    if (session_open(&s, hosts, o->session_ms))
        return 1;
    if (session_wait(&s, now_us() + ZKL_CONNECT_US)) {
        fprintf(stderr, "zkload: cannot connect to %s within 10 s\n", hosts);
        session_close(&s);
        return 1;
    }
    char path[ZKL_PATH_MAX];
    snprintf(path, sizeof(path), "%s/probe", o->prefix);
    if (ensure_path(s.zh, path, "0", 1) != ZOK) {
        session_close(&s);
        return 1;
    }
    /* Outlives every zookeeper_close() below, which may still complete it. */
    static struct call c;
    long acks = 0, errors = 0;
    while (!atomic_load(&stop_signal)) {
        pthread_mutex_lock(&stop_mu);
        c.done = 0;
        pthread_mutex_unlock(&stop_mu);
        int rc = zoo_aset(s.zh, path, "p", 1, -1, probe_done, &c);
        if (rc == ZOK) {
            pthread_mutex_lock(&stop_mu);
            while (!c.done && !atomic_load(&stop_signal))
                pthread_cond_wait(&stop_cv, &stop_mu);
            int done = c.done;
            rc = c.rc;
            int64_t t = c.t_done;
            pthread_mutex_unlock(&stop_mu);
            if (!done)
                break;
            if (rc == ZOK) {
                acks++;
                printf("ack %.6f\n", (double)t / 1e6);
            } else {
                errors++;
                printf("err %.6f %d\n", (double)t / 1e6, rc);
            }
        } else {
            errors++;
            printf("err %.6f %d\n", (double)now_us() / 1e6, rc);
        }
        fflush(stdout);
        /* Connection loss and timeouts are retried at once (see the top of the file); only an
         * expired session needs a new handle. */
        if (rc == ZSESSIONEXPIRED || rc == ZINVALIDSTATE ||
            zoo_state(s.zh) == ZOO_EXPIRED_SESSION_STATE) {
            session_close(&s);
            if (probe_connect(&s, o, hosts))
                break;
        }
        if (o->interval_ms > 0)
            sleep_or_stop(now_us() + (int64_t)o->interval_ms * 1000);
    }
    session_close(&s);
    printf("{\"mode\":\"probe\",\"acks\":%ld,\"errors\":%ld}\n", acks, errors);
    fflush(stdout);
    return 0;
}

/* ---- notify ---- */

/* The receiving side of notify through a data watch on a second session. */
struct rx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    zhandle_t *zh;
    const char *path;
    int64_t t_event; /* first NodeDataChanged since have_event was cleared */
    int have_event;
    int armed;   /* the last zoo_awget() succeeded: the watch is set */
    int pending; /* a zoo_awget() is in flight */
    char data[32];
    int data_len;
};

static void rx_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx);

static void rx_got(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
    (void)st;
    struct rx *x = (struct rx *)data;
    pthread_mutex_lock(&x->mu);
    x->pending = 0;
    x->armed = rc == ZOK;
    x->data_len = 0;
    if (rc == ZOK && value && len > 0) {
        x->data_len = len < (int)sizeof(x->data) ? len : (int)sizeof(x->data);
        memcpy(x->data, value, (size_t)x->data_len);
    }
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

/* Sends the zoo_awget() that sets the watch again and reads the data in the same request, so a
 * change between the event and the read cannot slip through unseen. x->pending is set. */
static void rx_send(struct rx *x)
{
    int rc = zoo_awget(x->zh, x->path, rx_watch, x, rx_got, x);
    if (rc != ZOK) {
        fprintf(stderr, "zkload: zoo_awget %s: %s\n", x->path, zerror(rc));
        pthread_mutex_lock(&x->mu);
        x->pending = 0;
        pthread_cond_broadcast(&x->cv);
        pthread_mutex_unlock(&x->mu);
    }
}

static void rx_arm(struct rx *x)
{
    pthread_mutex_lock(&x->mu);
    x->armed = 0;
    x->pending = 1;
    pthread_mutex_unlock(&x->mu);
    rx_send(x);
}

static void rx_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)state;
    (void)path;
    struct rx *x = ctx;
    if (type != ZOO_CHANGED_EVENT)
        return; /* session events reach this watcher too */
    int64_t t = now_us();
    pthread_mutex_lock(&x->mu);
    if (!x->have_event) {
        x->have_event = 1;
        x->t_event = t;
    }
    /* In the same critical section, or the main thread could take the previous read's data. */
    x->armed = 0;
    x->pending = 1;
    pthread_mutex_unlock(&x->mu);
    rx_send(x);
}

/* Waits until the round's event came and the watch is set again; its latency from t0, or -1. */
static int64_t rx_round(struct rx *x, int64_t t0, const char *value)
{
    int64_t lat = -1;
    pthread_mutex_lock(&x->mu);
    while (!(x->have_event && !x->pending) &&
           cond_wait_until(&x->cv, &x->mu, t0 + ZKL_ROUND_US) == 0)
        ;
    if (x->have_event && x->armed && x->t_event >= t0 && x->data_len == (int)strlen(value) &&
        !memcmp(x->data, value, (size_t)x->data_len))
        lat = x->t_event - t0;
    int rearm = !x->armed && !x->pending;
    pthread_mutex_unlock(&x->mu);
    if (rearm)
        rx_arm(x);
    return lat;
}

/* Waits until the watch is set (at most 5 s) and clears the event for the next round. */
static int rx_ready(struct rx *x)
{
    int64_t deadline = now_us() + ZKL_ROUND_US;
    pthread_mutex_lock(&x->mu);
    while (x->pending && cond_wait_until(&x->cv, &x->mu, deadline) == 0)
        ;
    int ok = x->armed;
    x->have_event = 0;
    pthread_mutex_unlock(&x->mu);
    return ok ? 0 : -1;
}

static void drain_inotify(int fd)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

/* The first inotify event on fd before t0 + 5 s, as latency from t0; -1 on a timeout or when
 * the set (c) failed first. */
static int64_t inotify_round(int fd, int64_t t0, struct call *c)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        int64_t left = t0 + ZKL_ROUND_US - now_us();
        if (left <= 0)
            return -1;
        int n = poll(&p, 1, left > 10000 ? 10 : (int)(left / 1000) + 1);
        int64_t t = now_us();
        if (n > 0) {
            drain_inotify(fd);
            return t - t0;
        }
        pthread_mutex_lock(&c->mu);
        int failed = c->done && c->rc != ZOK;
        pthread_mutex_unlock(&c->mu);
        if (failed)
            return -1;
    }
}

/* Waits until the file reads value: the mount has then applied every change before it, so the
 * rounds do not wait behind its backlog of watch events from an earlier load. */
static int file_settle(const char *file, const char *value, int64_t deadline)
{
    char buf[64];
    size_t len = strlen(value);
    for (;;) {
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
        if (fd >= 0)
            close(fd);
        if (n == (ssize_t)len && !memcmp(buf, value, len))
            return 0;
        if (now_us() >= deadline)
            return -1;
        usleep(10000);
    }
}

static int mode_notify(const struct opts *o)
{
    const char *set_server = o->set_server ? o->set_server : o->servers[0];
    const char *watch_server = o->watch_server ? o->watch_server : o->servers[o->nservers - 1];
    char path[ZKL_PATH_MAX];
    snprintf(path, sizeof(path), "%s/notify", o->prefix);
    struct session tx, rs;
    session_init(&tx);
    session_init(&rs);
    static struct rx x; /* outlives zookeeper_close() */
    static struct call c;
    pthread_mutex_init(&x.mu, NULL);
    cond_init(&x.cv);
    x.path = path;
    call_init(&c);
    int ifd = -1, ret = 1;
    uint32_t *lat = calloc((size_t)o->rounds, sizeof(*lat));
    if (!lat || session_open(&tx, set_server, o->session_ms))
        goto out;
    if (!o->file && session_open(&rs, watch_server, o->session_ms))
        goto out;
    int64_t deadline = now_us() + ZKL_CONNECT_US;
    if (session_wait(&tx, deadline) || (!o->file && session_wait(&rs, deadline))) {
        fprintf(stderr, "zkload: cannot connect to %s within 10 s\n",
                tx.state == ZOO_CONNECTED_STATE ? watch_server : set_server);
        goto out;
    }
    if (ensure_path(tx.zh, path, "0", 1) != ZOK)
        goto out;
    if (o->file) {
        /* A mount learns of a node it did not create from its watch, a little later. */
        ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        int64_t until = now_us() + ZKL_ROUND_US;
        int wd = -1;
        while (ifd >= 0 &&
               (wd = inotify_add_watch(ifd, o->file, IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB)) < 0 &&
               errno == ENOENT && now_us() < until)
            usleep(10000);
        if (ifd < 0 || wd < 0) {
            fprintf(stderr, "zkload: inotify on %s: %s\n", o->file, strerror(errno));
            goto out;
        }
        char mark[32];
        snprintf(mark, sizeof(mark), "settle-%d", (int)getpid());
        int rc = zoo_aset(tx.zh, path, mark, (int)strlen(mark), -1, call_stat_done, &c);
        rc = rc == ZOK ? call_wait(&c) : rc;
        int64_t t = now_us();
        if (rc != ZOK || file_settle(o->file, mark, t + ZKL_SETTLE_US))
            fprintf(stderr, "zkload: %s did not show the latest value within 60 s\n", o->file);
        else if (now_us() - t > 100000)
            fprintf(stderr, "zkload: the mount took %.1f s to catch up\n",
                    (double)(now_us() - t) / 1e6);
    } else {
        /* The watch server must have the node before the first watch is set. */
        if (sync_path(rs.zh, path) != ZOK)
            goto out;
        x.zh = rs.zh;
        rx_arm(&x);
    }
    long errors = 0;
    size_t n = 0;
    for (int round = 1; round <= o->rounds; round++) {
        char value[32];
        snprintf(value, sizeof(value), "%d", round);
        if (o->file) {
            drain_inotify(ifd);
        } else if (rx_ready(&x)) {
            fprintf(stderr, "zkload: round %d: the data watch is not set\n", round);
            errors++;
            rx_arm(&x);
            continue;
        }
        int64_t t0 = now_us();
        int rc = zoo_aset(tx.zh, path, value, (int)strlen(value), -1, call_stat_done, &c);
        if (rc != ZOK) {
            fprintf(stderr, "zkload: round %d: set: %s\n", round, zerror(rc));
            errors++;
            continue;
        }
        int64_t l = o->file ? inotify_round(ifd, t0, &c) : rx_round(&x, t0, value);
        rc = call_wait(&c);
        if (rc != ZOK || l < 0) {
            fprintf(stderr, "zkload: round %d: %s\n", round,
                    rc != ZOK ? zerror(rc) : "no notification within 5 s");
            errors++;
        } else {
            lat[n++] = l > UINT32_MAX ? UINT32_MAX : (uint32_t)l;
        }
        sleep_until_us(now_us() + 10000);
    }
    qsort(lat, n, sizeof(*lat), cmp_u32);
    printf("{\"mode\":\"notify\",\"rounds\":%d,\"errors\":%ld,\"p50_us\":%u,\"p90_us\":%u,"
           "\"p99_us\":%u,\"max_us\":%u}\n",
           o->rounds, errors, pct(lat, n, 50), pct(lat, n, 90), pct(lat, n, 99),
           n ? lat[n - 1] : 0);
    ret = 0;
out:
    if (ifd >= 0)
        close(ifd);
    session_close(&rs);
    session_close(&tx);
    free(lat);
    return ret;
}

/* ---- command line ---- */

_Noreturn static void usage(void)
{
    fprintf(stderr,
            "usage: zkload --servers HOST:PORT[,HOST:PORT...] MODE [options]\n"
            "  common:   --session-timeout MS (10000) --prefix PATH (/bench)\n"
            "            --zk-log off|error|warn|info|debug (error) --quiet-zk\n"
            "  load      --op create|set|get|mix --window W (16) --connections C (3)\n"
            "            --value-size B (100) --warmup S (2) --duration S (5) --keys K (1000)\n"
            "            --get-percent P (90)\n"
            "  populate  --count N --value-size B --window W --connections C\n"
            "  probe     --interval-ms M (0)\n"
            "  notify    --rounds R (100) --set-server HOST:PORT --watch-server HOST:PORT\n"
            "            --file PATH\n");
    exit(1);
}

static int parse_log_level(const char *s)
{
    static const char *names[] = {"off", "error", "warn", "info", "debug"};
    for (int i = 0; i < 5; i++)
        if (!strcasecmp(s, names[i]))
            return i;
    int l = atoi(s);
    return l >= 0 && l <= 4 ? l : -1;
}

static int split_servers(struct opts *o, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        return -1;
    o->servers = calloc(strlen(list) / 2 + 2, sizeof(char *));
    if (!o->servers)
        return -1;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        o->servers[o->nservers++] = t;
    return o->nservers ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct opts o = {.session_ms = 10000,
                     .prefix = "/bench",
                     .log_level = ZOO_LOG_LEVEL_ERROR,
                     .op = "create",
                     .window = 16,
                     .conns = 3,
                     .value_size = 100,
                     .get_pct = 90,
                     .warmup = 2,
                     .duration = 5,
                     .keys = 1000,
                     .count = 10000,
                     .rounds = 100};
    const char *servers = NULL;
    enum {
        O_SERVERS = 256,
        O_SESSION,
        O_PREFIX,
        O_QUIET,
        O_ZKLOG,
        O_OP,
        O_WINDOW,
        O_CONNS,
        O_VSIZE,
        O_WARMUP,
        O_DURATION,
        O_KEYS,
        O_GETPCT,
        O_COUNT,
        O_INTERVAL,
        O_ROUNDS,
        O_WATCH,
        O_SET,
        O_FILE
    };
    static const struct option lopts[] = {{"servers", 1, 0, O_SERVERS},
                                          {"session-timeout", 1, 0, O_SESSION},
                                          {"prefix", 1, 0, O_PREFIX},
                                          {"quiet-zk", 0, 0, O_QUIET},
                                          {"zk-log", 1, 0, O_ZKLOG},
                                          {"op", 1, 0, O_OP},
                                          {"window", 1, 0, O_WINDOW},
                                          {"connections", 1, 0, O_CONNS},
                                          {"value-size", 1, 0, O_VSIZE},
                                          {"warmup", 1, 0, O_WARMUP},
                                          {"duration", 1, 0, O_DURATION},
                                          {"keys", 1, 0, O_KEYS},
                                          {"get-percent", 1, 0, O_GETPCT},
                                          {"count", 1, 0, O_COUNT},
                                          {"interval-ms", 1, 0, O_INTERVAL},
                                          {"rounds", 1, 0, O_ROUNDS},
                                          {"watch-server", 1, 0, O_WATCH},
                                          {"set-server", 1, 0, O_SET},
                                          {"file", 1, 0, O_FILE},
                                          {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (ch) {
        case O_SERVERS:
            servers = optarg;
            break;
        case O_SESSION:
            o.session_ms = atoi(optarg);
            break;
        case O_PREFIX:
            o.prefix = optarg;
            break;
        case O_QUIET:
            o.log_level = ZOO_LOG_LEVEL_ERROR;
            break;
        case O_ZKLOG:
            o.log_level = parse_log_level(optarg);
            break;
        case O_OP:
            o.op = optarg;
            break;
        case O_WINDOW:
            o.window = atoi(optarg);
            break;
        case O_CONNS:
            o.conns = atoi(optarg);
            break;
        case O_VSIZE:
            o.value_size = atoi(optarg);
            break;
        case O_WARMUP:
            o.warmup = strtod(optarg, NULL);
            break;
        case O_DURATION:
            o.duration = strtod(optarg, NULL);
            break;
        case O_KEYS:
            o.keys = atol(optarg);
            break;
        case O_GETPCT:
            o.get_pct = atoi(optarg);
            break;
        case O_COUNT:
            o.count = atol(optarg);
            break;
        case O_INTERVAL:
            o.interval_ms = atoi(optarg);
            break;
        case O_ROUNDS:
            o.rounds = atoi(optarg);
            break;
        case O_WATCH:
            o.watch_server = optarg;
            break;
        case O_SET:
            o.set_server = optarg;
            break;
        case O_FILE:
            o.file = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1 || !servers || split_servers(&o, servers))
        usage();
    o.mode = argv[optind];
    size_t plen = strlen(o.prefix);
    if (o.prefix[0] != '/' || plen < 2 || o.prefix[plen - 1] == '/' || plen > 200) {
        fprintf(stderr, "zkload: --prefix is an absolute znode path other than /\n");
        return 1;
    }
    if (o.log_level < 0 || o.session_ms <= 0 || o.window < 1 || o.conns < 1 || o.value_size < 0 ||
        o.value_size > (1 << 20) || o.warmup < 0 || o.duration <= 0 || o.keys < 1 ||
        o.get_pct < 0 || o.get_pct > 100 || o.count < 0 || o.interval_ms < 0 || o.rounds < 1)
        usage();
    /* The client has no level below ERROR, which still reports every refused connect. */
    if (o.log_level == 0)
        zoo_set_log_stream(fopen("/dev/null", "w"));
    zoo_set_debug_level(o.log_level ? (ZooLogLevel)o.log_level : ZOO_LOG_LEVEL_ERROR);
    int ret;
    if (!strcmp(o.mode, "load"))
        ret = mode_load(&o);
    else if (!strcmp(o.mode, "populate"))
        ret = mode_populate(&o);
    else if (!strcmp(o.mode, "probe"))
        ret = mode_probe(&o, servers);
    else if (!strcmp(o.mode, "notify"))
        ret = mode_notify(&o);
    else
        usage();
    fflush(stdout);
    free(o.servers[0]);
    free(o.servers);
    return ret;
}
