/* Unit tests for lib/client.c against a scripted fake server speaking the native protocol. */
#include "client.h"
#include "client.pb-c.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SESSION 0x1234ULL
#define PASSWD "0123456789abcdef"

/* ---- the fake server: one connection at a time, on its own thread ---- */

struct fake {
    int lfd, port;
    pthread_t th;
    pthread_mutex_t mu;
    int stop;
    int timeout_ms;  /* negotiated timeout it answers */
    int expire_next; /* answer the next connect with SESSIONEXPIRED */
    /* recorded */
    int connects, closes, pings;
    uint64_t last_session;
    int last_passwd_ok;
    int64_t last_zxid_seen;
    char seen[64][64];
    int n_seen;
    char watches[512]; /* the last set_watches, flattened */
    int64_t rel_zxid;
    int64_t zxid;
};

static void fake_seen(struct fake *f, const char *p)
{
    pthread_mutex_lock(&f->mu);
    if (f->n_seen < 64)
        snprintf(f->seen[f->n_seen++], 64, "%s", p);
    pthread_mutex_unlock(&f->mu);
}

static int read_full(struct fake *f, int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 50);
        if (__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE))
            return -1;
        if (r <= 0)
            continue;
        ssize_t k = read(fd, buf + got, n - got);
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}

static void send_msg(int fd, Zkfs__Cli__ServerMessage *m)
{
    size_t n = zkfs__cli__server_message__get_packed_size(m);
    uint8_t *buf = malloc(4 + n);
    frame_put_u32(buf, (uint32_t)n);
    zkfs__cli__server_message__pack(m, buf + 4);
    ssize_t w = write(fd, buf, 4 + n);
    (void)w;
    free(buf);
}

static void send_reply(int fd, Zkfs__Cli__Reply *r)
{
    Zkfs__Cli__ServerMessage m = ZKFS__CLI__SERVER_MESSAGE__INIT;
    m.msg_case = ZKFS__CLI__SERVER_MESSAGE__MSG_REPLY;
    m.reply = r;
    send_msg(fd, &m);
}

static void send_event(int fd, int type, const char *path, int64_t zxid)
{
    Zkfs__Cli__WatchEvent ev = ZKFS__CLI__WATCH_EVENT__INIT;
    ev.type = type;
    ev.state = 3;
    ev.path = (char *)path;
    ev.zxid = zxid;
    Zkfs__Cli__ServerMessage m = ZKFS__CLI__SERVER_MESSAGE__INIT;
    m.msg_case = ZKFS__CLI__SERVER_MESSAGE__MSG_EVENT;
    m.event = &ev;
    send_msg(fd, &m);
}

static void flatten(char *out, size_t len, const char *tag, char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t at = strlen(out);
        snprintf(out + at, len - at, "%s:%s;", tag, v[i]);
    }
}

/* Answers one request; returns 0 to keep the connection, -1 to close it. */
static int fake_handle(struct fake *f, int fd, Zkfs__Cli__Request *q)
{
    Zkfs__Cli__Reply r = ZKFS__CLI__REPLY__INIT;
    Zkfs__Cli__Stat st = ZKFS__CLI__STAT__INIT;
    st.version = 7;
    st.has_kind = 1;
    st.kind = 2;
    r.xid = q->xid;
    r.zxid = f->zxid;
    switch (q->op_case) {
    case ZKFS__CLI__REQUEST__OP_PING:
        pthread_mutex_lock(&f->mu);
        f->pings++;
        pthread_mutex_unlock(&f->mu);
        break;
    case ZKFS__CLI__REQUEST__OP_CLOSE:
        pthread_mutex_lock(&f->mu);
        f->closes++;
        pthread_mutex_unlock(&f->mu);
        send_reply(fd, &r);
        return -1;
    case ZKFS__CLI__REQUEST__OP_CREATE: {
        char made[80];
        fake_seen(f, q->create->path);
        int seq = q->create->mode == 2 || q->create->mode == 3;
        snprintf(made, sizeof(made), "%s%s", q->create->path, seq ? "0000000001" : "");
        r.path = made;
        r.stat = &st;
        r.zxid = ++f->zxid;
        send_reply(fd, &r);
        return 0;
    }
    case ZKFS__CLI__REQUEST__OP_DELETE:
        fake_seen(f, q->delete_->path);
        if (strstr(q->delete_->path, "/drop"))
            return -1; /* connection lost before the reply */
        break;
    case ZKFS__CLI__REQUEST__OP_GET_CHILDREN: {
        static char *kids[] = {"b", "a", "c"};
        fake_seen(f, q->get_children->path);
        r.children = kids;
        r.n_children = 3;
        r.stat = &st;
        break;
    }
    case ZKFS__CLI__REQUEST__OP_GET_DATA:
        fake_seen(f, q->get_data->path);
        r.has_data = 1;
        r.data.data = (uint8_t *)"hello";
        r.data.len = 5;
        r.stat = &st;
        send_reply(fd, &r);
        /* A change right after: the watch left by the read fires. */
        if (q->get_data->watch && strcmp(q->get_data->path, "/app/w") == 0)
            send_event(fd, 3, "/app/w", ++f->zxid);
        return 0;
    case ZKFS__CLI__REQUEST__OP_EXISTS:
        fake_seen(f, q->exists->path);
        r.err = -101;
        break;
    case ZKFS__CLI__REQUEST__OP_SYNC:
        r.path = q->sync->path;
        break;
    case ZKFS__CLI__REQUEST__OP_ADD_WATCH:
        fake_seen(f, q->add_watch->path);
        break;
    case ZKFS__CLI__REQUEST__OP_MULTI: {
        Zkfs__Cli__OpResult o[3] = {ZKFS__CLI__OP_RESULT__INIT, ZKFS__CLI__OP_RESULT__INIT,
                                    ZKFS__CLI__OP_RESULT__INIT};
        Zkfs__Cli__OpResult *op[3] = {&o[0], &o[1], &o[2]};
        o[0].path = "/app/m";
        o[1].err = -101;
        o[2].err = -2;
        r.err = -101;
        r.results = op;
        r.n_results = 3;
        send_reply(fd, &r);
        return 0;
    }
    case ZKFS__CLI__REQUEST__OP_GET_EPHEMERALS: {
        static char *eph[] = {"/app/e1", "/apple/x", "/app"};
        r.children = eph;
        r.n_children = 3;
        break;
    }
    case ZKFS__CLI__REQUEST__OP_SET_WATCHES: {
        Zkfs__Cli__SetWatchesRequest *w = q->set_watches;
        pthread_mutex_lock(&f->mu);
        f->watches[0] = 0;
        f->rel_zxid = w->relative_zxid;
        flatten(f->watches, sizeof(f->watches), "d", w->data_watches, w->n_data_watches);
        flatten(f->watches, sizeof(f->watches), "e", w->exist_watches, w->n_exist_watches);
        flatten(f->watches, sizeof(f->watches), "c", w->child_watches, w->n_child_watches);
        flatten(f->watches, sizeof(f->watches), "p", w->persistent_watches,
                w->n_persistent_watches);
        flatten(f->watches, sizeof(f->watches), "r", w->persistent_recursive_watches,
                w->n_persistent_recursive_watches);
        pthread_mutex_unlock(&f->mu);
        break;
    }
    default:
        r.err = -6;
        break;
    }
    send_reply(fd, &r);
    return 0;
}

static void fake_serve(struct fake *f, int fd)
{
    uint8_t magic[4], hdr[4];
    if (read_full(f, fd, magic, 4) || memcmp(magic, "zkfs", 4) != 0)
        return;
    int handshake = 1;
    for (;;) {
        if (read_full(f, fd, hdr, 4))
            return;
        uint32_t n = frame_get_u32(hdr);
        uint8_t *buf = malloc(n ? n : 1);
        if (read_full(f, fd, buf, n)) {
            free(buf);
            return;
        }
        Zkfs__Cli__Request *q = zkfs__cli__request__unpack(NULL, n, buf);
        free(buf);
        if (!q)
            return;
        int keep = 0;
        if (handshake) {
            Zkfs__Cli__ConnectRequest *c = q->connect;
            Zkfs__Cli__Reply r = ZKFS__CLI__REPLY__INIT;
            Zkfs__Cli__ConnectResponse cr = ZKFS__CLI__CONNECT_RESPONSE__INIT;
            pthread_mutex_lock(&f->mu);
            f->connects++;
            f->last_session = c && c->has_session_id ? c->session_id : 0;
            f->last_passwd_ok = c && c->has_passwd && c->passwd.len == 16 &&
                                memcmp(c->passwd.data, PASSWD, 16) == 0;
            f->last_zxid_seen = c ? c->last_zxid_seen : -1;
            int expire = f->expire_next;
            f->expire_next = 0;
            pthread_mutex_unlock(&f->mu);
            cr.timeout_ms = expire ? 0 : f->timeout_ms;
            cr.session_id = expire ? 0 : SESSION;
            cr.passwd.data = (uint8_t *)PASSWD;
            cr.passwd.len = 16;
            r.err = expire ? -112 : 0;
            r.connect = &cr;
            send_reply(fd, &r);
            handshake = 0;
            keep = expire ? -1 : 0;
        } else {
            keep = fake_handle(f, fd, q);
        }
        zkfs__cli__request__free_unpacked(q, NULL);
        if (keep < 0)
            return;
    }
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
        struct pollfd p = {f->lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        fake_serve(f, fd);
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f, int timeout_ms)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->timeout_ms = timeout_ms;
    f->zxid = 0x100000000LL;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(f->lfd, (struct sockaddr *)&a, sizeof(a));
    listen(f->lfd, 8);
    getsockname(f->lfd, (struct sockaddr *)&a, &len);
    f->port = ntohs(a.sin_port);
    pthread_create(&f->th, NULL, fake_main, f);
}

static void fake_stop(struct fake *f)
{
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
    pthread_join(f->th, NULL);
    close(f->lfd);
    pthread_mutex_destroy(&f->mu);
}

static int fake_get(struct fake *f, int *field)
{
    pthread_mutex_lock(&f->mu);
    int v = *field;
    pthread_mutex_unlock(&f->mu);
    return v;
}

/* ---- what the client reports ---- */

struct obs {
    pthread_mutex_t mu;
    int states[32];
    int n_states;
    char events[16][80];
    int n_events;
    int order[200];
    int n_order;
};

static struct obs obs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_state(void *arg, enum zc_state s)
{
    pthread_mutex_lock(&obs.mu);
    if (obs.n_states < 32)
        obs.states[obs.n_states++] = s;
    pthread_mutex_unlock(&obs.mu);
}

static void on_event(void *arg, const struct zc_event *ev)
{
    pthread_mutex_lock(&obs.mu);
    if (obs.n_events < 16)
        snprintf(obs.events[obs.n_events++], 80, "%d %d %s %llx", ev->type, ev->state, ev->path,
                 (unsigned long long)ev->zxid);
    pthread_mutex_unlock(&obs.mu);
}

static void on_order(void *arg, const struct zc_result *r)
{
    pthread_mutex_lock(&obs.mu);
    obs.order[obs.n_order++] = r->err ? -1 : (int)(intptr_t)arg;
    pthread_mutex_unlock(&obs.mu);
}

static int obs_count(int *field)
{
    pthread_mutex_lock(&obs.mu);
    int v = *field;
    pthread_mutex_unlock(&obs.mu);
    return v;
}

static int has_event(const char *s)
{
    pthread_mutex_lock(&obs.mu);
    int found = 0;
    for (int i = 0; i < obs.n_events; i++)
        found |= strcmp(obs.events[i], s) == 0;
    pthread_mutex_unlock(&obs.mu);
    return found;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls cond for up to 5 s. */
#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        for (int w_ = 0; w_ < 500 && !(cond); w_++)                                                \
            sleep_ms(10);                                                                          \
        CHECK(cond);                                                                               \
    } while (0)

static int seen(struct fake *f, const char *p)
{
    pthread_mutex_lock(&f->mu);
    int found = 0;
    for (int i = 0; i < f->n_seen; i++)
        found |= strcmp(f->seen[i], p) == 0;
    pthread_mutex_unlock(&f->mu);
    return found;
}

/* ---- tests ---- */

static void test_connect_strings(void)
{
    static const char *bad[] = {"",       ",",         "h:0",       "h:65536",
                                "h:x",    "h:2181/a/", "h:2181//a", "[::1:2181",
                                "[::1]x", "h:1/a/./b", ":2181",     "h:"};
    static const char *good[] = {"127.0.0.1:1",  "[::1]:2181", "h1:1,h2:2/app", "localhost:1/",
                                 "a:1, b:2/x/y", "h",          "::1:2181"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct zc *c = (struct zc *)1;
        struct zc_opts o = {.servers = bad[i]};
        int rc = zc_new(&c, &o);
        if (rc != ZE_BADARGUMENTS)
            fprintf(stderr, "accepted bad connect string '%s'\n", bad[i]);
        CHECK_EQ(rc, ZE_BADARGUMENTS);
        CHECK(c == NULL);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct zc *c = NULL;
        struct zc_opts o = {.servers = good[i], .session_timeout_ms = 2000};
        int rc = zc_new(&c, &o);
        if (rc != 0)
            fprintf(stderr, "refused good connect string '%s'\n", good[i]);
        CHECK_EQ(rc, 0);
        CHECK_EQ(zc_get_state(c), ZC_CONNECTING);
        CHECK_EQ(zc_session_id(c), 0);
        zc_free(c);
    }
}

static void test_bad_requests(void)
{
    struct zc *c;
    struct zc_opts o = {.servers = "127.0.0.1:1", .session_timeout_ms = 2000};
    CHECK_EQ(zc_new(&c, &o), 0);
    struct zc_result r;
    struct zc_req q = {.op = ZC_OP_GET_DATA, .path = "a"};
    CHECK_EQ(zc_call(c, &q, &r), ZE_BADARGUMENTS);
    q.path = "/a/";
    CHECK_EQ(zc_submit(c, &q, on_order, NULL), ZE_BADARGUMENTS);
    struct zc_req chk = {.op = ZC_OP_CHECK, .path = "/a"};
    CHECK_EQ(zc_submit(c, &chk, on_order, NULL), ZE_BADARGUMENTS);
    struct zc_req inner[2] = {{.op = ZC_OP_CHECK, .path = "/a"}, {.op = ZC_OP_SYNC, .path = "/a"}};
    struct zc_req multi = {.op = ZC_OP_MULTI, .ops = inner, .n_ops = 2};
    CHECK_EQ(zc_submit(c, &multi, on_order, NULL), ZE_BADARGUMENTS);
    struct zc_req seq = {.op = ZC_OP_CREATE, .path = "/q/", .mode = ZC_PERSISTENT};
    CHECK_EQ(zc_submit(c, &seq, on_order, NULL), ZE_BADARGUMENTS);
    struct zc_req ttl = {.op = ZC_OP_CREATE, .path = "/t", .mode = ZC_PERSISTENT_WITH_TTL};
    CHECK_EQ(zc_submit(c, &ttl, on_order, NULL), ZE_BADARGUMENTS);
    zc_free(c);
}

/* Nothing listens: a request waits for request_timeout_ms, then fails; zc_free fails the
 * ones still waiting before it returns. */
static void test_unreachable(void)
{
    struct zc *c;
    struct zc_opts o = {
        .servers = "127.0.0.1:1", .session_timeout_ms = 5000, .request_timeout_ms = 300};
    CHECK_EQ(zc_new(&c, &o), 0);
    CHECK_EQ(zc_wait_connected(c, 100), ZE_CONNECTIONLOSS);
    struct zc_result r;
    struct zc_req q = {.op = ZC_OP_GET_DATA, .path = "/a"};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_EQ(zc_call(c, &q, &r), ZE_CONNECTIONLOSS);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    CHECK(ms >= 250 && ms < 2000);
    zc_result_free(&r);
    obs.n_order = 0;
    CHECK_EQ(zc_submit(c, &q, on_order, (void *)1), 0);
    zc_free(c);
    CHECK_EQ(obs.n_order, 1);
    CHECK_EQ(obs.order[0], -1);
}

static void test_session(void)
{
    struct fake f;
    fake_start(&f, 4000);
    char servers[64];
    snprintf(servers, sizeof(servers), "127.0.0.1:%d/app", f.port);
    struct zc *c;
    struct zc_opts o = {
        .servers = servers, .session_timeout_ms = 6000, .on_event = on_event, .on_state = on_state};
    memset(obs.events, 0, sizeof(obs.events));
    obs.n_events = obs.n_states = obs.n_order = 0;
    CHECK_EQ(zc_new(&c, &o), 0);
    CHECK_EQ(zc_wait_connected(c, 5000), 0);
    CHECK_EQ(zc_session_id(c), SESSION);
    CHECK_EQ(zc_session_timeout(c), 4000);
    char addr[64], want[64];
    zc_server(c, addr, sizeof(addr));
    snprintf(want, sizeof(want), "127.0.0.1:%d", f.port);
    CHECK(strcmp(addr, want) == 0);
    WAIT_FOR(obs_count(&obs.n_states) == 1 && has_event("-1 3  0"));
    CHECK_EQ(obs.states[0], ZC_CONNECTED);

    /* chroot on the way out and on the way in */
    struct zc_result r;
    struct zc_req q = {
        .op = ZC_OP_CREATE, .path = "/x", .data = (const uint8_t *)"d", .data_len = 1};
    CHECK_EQ(zc_call(c, &q, &r), 0);
    CHECK(seen(&f, "/app/x"));
    CHECK(r.path && strcmp(r.path, "/x") == 0);
    CHECK(r.has_stat && r.stat.version == 7 && r.stat.kind == 2);
    zc_result_free(&r);
    q = (struct zc_req){.op = ZC_OP_CREATE, .path = "/q/", .mode = ZC_EPHEMERAL_SEQUENTIAL};
    CHECK_EQ(zc_call(c, &q, &r), 0);
    CHECK(r.path && strcmp(r.path, "/q/0000000001") == 0);
    zc_result_free(&r);

    /* children sorted; "/" is the chroot */
    q = (struct zc_req){.op = ZC_OP_GET_CHILDREN, .path = "/"};
    CHECK_EQ(zc_call(c, &q, &r), 0);
    CHECK(seen(&f, "/app"));
    CHECK_EQ(r.n_children, 3);
    if (r.n_children == 3)
        CHECK(strcmp(r.children[0], "a") == 0 && strcmp(r.children[2], "c") == 0);
    zc_result_free(&r);

    /* watches: one fires (chroot stripped), the others are kept for set_watches */
    q = (struct zc_req){.op = ZC_OP_GET_DATA, .path = "/w", .watch = 1};
    CHECK_EQ(zc_call(c, &q, &r), 0);
    CHECK(r.data_len == 5 && memcmp(r.data, "hello", 5) == 0);
    zc_result_free(&r);
    WAIT_FOR(has_event("3 3 /w 100000003"));
    q = (struct zc_req){.op = ZC_OP_GET_DATA, .path = "/w2", .watch = 1};
    CHECK_EQ(zc_call(c, &q, &r), 0);
    zc_result_free(&r);
    q = (struct zc_req){.op = ZC_OP_EXISTS, .path = "/e", .watch = 1};
    CHECK_EQ(zc_call(c, &q, &r), ZE_NONODE);
    zc_result_free(&r);
    q = (struct zc_req){.op = ZC_OP_ADD_WATCH, .path = "/", .mode = 1};
    CHECK_EQ(zc_call(c, &q, &r), 0);
    zc_result_free(&r);

    /* multi: per-op errors as ZooKeeper */
    struct zc_req ops[3] = {{.op = ZC_OP_CREATE, .path = "/m"},
                            {.op = ZC_OP_DELETE, .path = "/n", .version = -1},
                            {.op = ZC_OP_CHECK, .path = "/o", .version = 3}};
    q = (struct zc_req){.op = ZC_OP_MULTI, .ops = ops, .n_ops = 3};
    CHECK_EQ(zc_call(c, &q, &r), ZE_NONODE);
    CHECK_EQ(r.n_results, 3);
    if (r.n_results == 3) {
        CHECK(r.results[0].err == 0 && strcmp(r.results[0].path, "/m") == 0);
        CHECK_EQ(r.results[1].err, ZE_NONODE);
        CHECK_EQ(r.results[2].err, ZE_RUNTIMEINCONSISTENCY);
    }
    zc_result_free(&r);

    /* get_ephemerals: full paths, chroot stripped, others dropped */
    q = (struct zc_req){.op = ZC_OP_GET_EPHEMERALS, .path = "/"};
    CHECK_EQ(zc_call(c, &q, &r), 0);
    CHECK_EQ(r.n_children, 2);
    if (r.n_children == 2)
        CHECK(strcmp(r.children[0], "/") == 0 && strcmp(r.children[1], "/e1") == 0);
    zc_result_free(&r);

    /* pipelining: callbacks in submission order */
    obs.n_order = 0;
    for (int i = 0; i < 100; i++) {
        q = (struct zc_req){.op = ZC_OP_SYNC, .path = "/"};
        CHECK_EQ(zc_submit(c, &q, on_order, (void *)(intptr_t)i), 0);
    }
    WAIT_FOR(obs_count(&obs.n_order) == 100);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(obs.order[i], i);

    /* connection loss: in-flight request fails, session and watches come back */
    q = (struct zc_req){.op = ZC_OP_DELETE, .path = "/drop", .version = -1};
    CHECK_EQ(zc_call(c, &q, &r), ZE_CONNECTIONLOSS);
    zc_result_free(&r);
    WAIT_FOR(fake_get(&f, &f.connects) == 2 && zc_get_state(c) == ZC_CONNECTED);
    CHECK_EQ(f.last_session, SESSION);
    CHECK(f.last_passwd_ok);
    CHECK_EQ(f.last_zxid_seen, 0x100000003LL);
    WAIT_FOR(has_event("-1 0  0"));
    q = (struct zc_req){.op = ZC_OP_SYNC, .path = "/"};
    CHECK_EQ(zc_call(c, &q, &r), 0); /* set_watches was answered before this */
    CHECK(r.path && strcmp(r.path, "/") == 0);
    zc_result_free(&r);
    pthread_mutex_lock(&f.mu);
    CHECK(strcmp(f.watches, "d:/app/w2;e:/app/e;r:/app;") == 0);
    if (strcmp(f.watches, "d:/app/w2;e:/app/e;r:/app;") != 0)
        fprintf(stderr, "set_watches: %s\n", f.watches);
    CHECK_EQ(f.rel_zxid, 0x100000003LL);
    pthread_mutex_unlock(&f.mu);
    pthread_mutex_lock(&obs.mu);
    CHECK(obs.n_states >= 3 && obs.states[1] == ZC_CONNECTING && obs.states[2] == ZC_CONNECTED);
    pthread_mutex_unlock(&obs.mu);

    /* liveness: pings keep an idle connection up (timeout 4 s: a ping every 1.33 s) */
    sleep_ms(2000);
    CHECK(fake_get(&f, &f.pings) >= 1);
    CHECK_EQ(fake_get(&f, &f.connects), 2);

    /* expiry: the server refuses the session on the next connection */
    pthread_mutex_lock(&f.mu);
    f.expire_next = 1;
    pthread_mutex_unlock(&f.mu);
    q = (struct zc_req){.op = ZC_OP_DELETE, .path = "/drop", .version = -1};
    CHECK_EQ(zc_call(c, &q, &r), ZE_CONNECTIONLOSS);
    zc_result_free(&r);
    WAIT_FOR(zc_get_state(c) == ZC_EXPIRED);
    WAIT_FOR(has_event("-1 -112  0"));
    CHECK_EQ(zc_wait_connected(c, 10), ZE_SESSIONEXPIRED);
    q = (struct zc_req){.op = ZC_OP_SYNC, .path = "/"};
    CHECK_EQ(zc_submit(c, &q, on_order, NULL), ZE_SESSIONEXPIRED);
    zc_free(c);
    pthread_mutex_lock(&obs.mu);
    CHECK_EQ(obs.states[obs.n_states - 1], ZC_CLOSED);
    pthread_mutex_unlock(&obs.mu);
    fake_stop(&f);
}

/* zc_free closes the session with a close request. */
static void test_close(void)
{
    struct fake f;
    fake_start(&f, 4000);
    char servers[64];
    snprintf(servers, sizeof(servers), "localhost:%d", f.port);
    struct zc *c;
    struct zc_opts o = {.servers = servers, .session_timeout_ms = 6000};
    CHECK_EQ(zc_new(&c, &o), 0);
    CHECK_EQ(zc_wait_connected(c, 5000), 0);
    obs.n_order = 0;
    struct zc_req q = {.op = ZC_OP_SYNC, .path = "/"};
    CHECK_EQ(zc_submit(c, &q, on_order, (void *)7), 0);
    zc_free(c);
    CHECK_EQ(obs.n_order, 1);
    CHECK_EQ(obs.order[0], 7); /* sent before the close, answered */
    WAIT_FOR(fake_get(&f, &f.closes) == 1);
    fake_stop(&f);
}

int main(void)
{
    log_init("test_client", LOG_LEVEL_WARN);
    RUN(test_connect_strings);
    RUN(test_bad_requests);
    RUN(test_unreachable);
    RUN(test_session);
    RUN(test_close);
    return TEST_EXIT();
}
