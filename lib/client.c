/* The zkfs client: one session over the native protocol, driven by a libuv loop thread. */
#include "client.h"

#include "client.pb-c.h"
#include "client_msg.h"
#include "err.h"
#include "frame.h"
#include "log.h"
#include "path.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define XID_PING (-2)
#define PASSWD_MAX 64
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_PORT "2181"
#define SET_WATCHES_CHUNK (128 * 1024) /* path bytes per set_watches, as ClientCnxn */
#define CLOSE_WAIT_MS 2000             /* how long zc_free waits for the close reply */
#define BACKOFF_MAX_MS 1000
#define MAX_ADDRS 8
#define MAX_BATCH 256 /* frames per uv_write */
#define ADDR_LEN 320

struct server {
    char *host;
    char port[8];
};

enum pkind { P_USER, P_SET_WATCHES, P_CLOSE };

/* A request from submission to completion; it sits in one queue at a time. */
struct pending {
    struct pending *next;
    int32_t xid;
    enum pkind kind;
    enum zc_op op;
    uint8_t *frame; /* length-prefixed; handed to the write request when sent */
    size_t frame_len;
    char *watch_path; /* server path, for the watch bookkeeping of a few ops */
    int watch;        /* one-shot watch asked / add_watch mode / remove_watches type */
    uint64_t deadline;
    zc_cb cb;
    void *arg;
};

struct pqueue {
    struct pending *head, *tail;
};

/* A set of strings (watched server paths). */
struct sentry {
    struct sentry *next;
    char s[];
};

struct strset {
    struct sentry **b;
    size_t nb, n;
};

enum cphase { C_CONNECTING, C_HANDSHAKE, C_OPEN };

/* One TCP connection; freed in its close callback, after every request on it has finished. */
struct conn {
    struct zc *c;
    enum cphase phase;
    int dead; /* no longer c->conn: callbacks only clean up */
    uv_tcp_t tcp;
    uv_connect_t creq;
    struct frame_reader fr;
    char addr[ADDR_LEN];
    char rbuf[65536];
};

struct wreq {
    uv_write_t req;
    struct conn *conn;
    unsigned n;
    void *bufs[];
};

struct zc {
    /* Fixed by zc_new. */
    struct server *servers;
    int n_servers;
    struct client_msg_chroot root;
    int want_timeout_ms;
    int req_timeout_ms;
    zc_event_cb on_event;
    zc_state_cb on_state;
    void *arg;

    pthread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    uv_timer_t timer;
    uv_prepare_t prepare;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* Under mu. */
    struct pqueue submitted;
    int32_t next_xid;
    int stopping;
    int dead; /* expired or finished: submissions are refused */
    enum zc_state state;
    uint64_t session_id;
    int timeout_ms; /* negotiated; 0 before the first connect */
    char server[ADDR_LEN];

    /* Loop thread only. */
    struct conn *conn;
    struct pqueue waiting, inflight;
    int server_idx;
    int fails;
    uv_getaddrinfo_t gai;
    int resolving;
    struct sockaddr_storage addrs[MAX_ADDRS];
    int n_addrs, addr_idx;
    uint64_t next_attempt, attempt_start, last_send, last_recv, close_deadline;
    int64_t last_zxid;
    uint8_t passwd[PASSWD_MAX];
    size_t passwd_len;
    int expired, closing, finished;
    struct strset w_data, w_exist, w_child, w_pers, w_rec;
    uint64_t rng;
};

/* ---- small helpers ---- */

static uint32_t rnd(struct zc *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return (uint32_t)(c->rng >> 11);
}

static void pq_push(struct pqueue *q, struct pending *p)
{
    p->next = NULL;
    if (q->tail)
        q->tail->next = p;
    else
        q->head = p;
    q->tail = p;
}

static struct pending *pq_pop(struct pqueue *q)
{
    struct pending *p = q->head;
    if (p) {
        q->head = p->next;
        if (!q->head)
            q->tail = NULL;
        p->next = NULL;
    }
    return p;
}

static void pending_free(struct pending *p)
{
    if (!p)
        return;
    free(p->frame);
    free(p->watch_path);
    free(p);
}

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct sentry **strset_slot(struct strset *s, const char *str)
{
    if (!s->nb)
        return NULL;
    struct sentry **pp = &s->b[str_hash(str) & (s->nb - 1)];
    while (*pp && strcmp((*pp)->s, str) != 0)
        pp = &(*pp)->next;
    return pp;
}

static int strset_add(struct strset *s, const char *str)
{
    struct sentry **pp = strset_slot(s, str);
    if (pp && *pp)
        return 0;
    if (s->n + 1 > s->nb) {
        size_t nb = s->nb ? s->nb * 2 : 16;
        struct sentry **b = calloc(nb, sizeof(*b));
        if (!b)
            return -ENOMEM;
        for (size_t i = 0; i < s->nb; i++) {
            struct sentry *e = s->b[i], *next;
            for (; e; e = next) {
                next = e->next;
                struct sentry **slot = &b[str_hash(e->s) & (nb - 1)];
                e->next = *slot;
                *slot = e;
            }
        }
        free(s->b);
        s->b = b;
        s->nb = nb;
        pp = strset_slot(s, str);
    }
    size_t len = strlen(str);
    struct sentry *e = malloc(sizeof(*e) + len + 1);
    if (!e)
        return -ENOMEM;
    memcpy(e->s, str, len + 1);
    e->next = NULL;
    *pp = e;
    s->n++;
    return 0;
}

static void strset_del(struct strset *s, const char *str)
{
    struct sentry **pp = strset_slot(s, str);
    if (!pp || !*pp)
        return;
    struct sentry *e = *pp;
    *pp = e->next;
    free(e);
    s->n--;
}

static void strset_clear(struct strset *s)
{
    for (size_t i = 0; i < s->nb; i++) {
        struct sentry *e = s->b[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(s->b);
    memset(s, 0, sizeof(*s));
}

/* ---- connect string ---- */

static void servers_free(struct server *s, int n)
{
    for (int i = 0; i < n; i++)
        free(s[i].host);
    free(s);
}

/* One "host[:port]" entry, as ZooKeeper's ConnectStringParser ("[v6]:port" too). */
static int parse_host(const char *s, size_t len, struct server *out)
{
    const char *host = s, *port = NULL;
    size_t hlen = len, plen = 0;
    if (len && s[0] == '[') {
        const char *end = memchr(s, ']', len);
        if (!end)
            return ZE_BADARGUMENTS;
        host = s + 1;
        hlen = (size_t)(end - host);
        size_t rest = len - (size_t)(end + 1 - s);
        if (rest) {
            if (end[1] != ':')
                return ZE_BADARGUMENTS;
            port = end + 2;
            plen = rest - 1;
        }
    } else {
        const char *colon = NULL;
        for (size_t i = 0; i < len; i++)
            if (s[i] == ':')
                colon = s + i;
        if (colon) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
            plen = len - hlen - 1;
        }
    }
    if (hlen == 0 || hlen > 253)
        return ZE_BADARGUMENTS;
    for (size_t i = 0; i < hlen; i++)
        if (host[i] <= ' ' || host[i] == ',' || host[i] == '/')
            return ZE_BADARGUMENTS;
    if (port) {
        if (plen == 0 || plen > 5)
            return ZE_BADARGUMENTS;
        int v = 0;
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9')
                return ZE_BADARGUMENTS;
            v = v * 10 + (port[i] - '0');
        }
        if (v < 1 || v > 65535)
            return ZE_BADARGUMENTS;
        snprintf(out->port, sizeof(out->port), "%d", v);
    } else {
        snprintf(out->port, sizeof(out->port), "%s", DEFAULT_PORT);
    }
    out->host = strndup(host, hlen);
    return out->host ? 0 : -ENOMEM;
}

static int parse_servers(struct zc *c, const char *str)
{
    const char *slash = strchr(str, '/');
    size_t hlen = slash ? (size_t)(slash - str) : strlen(str);
    if (slash && slash[1]) {
        if (path_validate(slash, strlen(slash), 0) != 0)
            return ZE_BADARGUMENTS;
        c->root.path = strdup(slash);
    } else {
        c->root.path = strdup("");
    }
    if (!c->root.path)
        return -ENOMEM;
    c->root.len = strlen(c->root.path);
    int n = 1;
    for (size_t i = 0; i < hlen; i++)
        n += str[i] == ',';
    c->servers = calloc((size_t)n, sizeof(*c->servers));
    if (!c->servers)
        return -ENOMEM;
    size_t start = 0;
    for (size_t i = 0; i <= hlen; i++) {
        if (i < hlen && str[i] != ',')
            continue;
        /* Entries may be padded with spaces ("a:1, b:2"). */
        size_t a = start, b = i;
        while (a < b && str[a] == ' ')
            a++;
        while (b > a && str[b - 1] == ' ')
            b--;
        start = i + 1;
        if (a == b)
            continue; /* tolerate "a:1,,b:2" and a trailing comma */
        int rc = parse_host(str + a, b - a, &c->servers[c->n_servers]);
        if (rc)
            return rc;
        c->n_servers++;
    }
    return c->n_servers ? 0 : ZE_BADARGUMENTS;
}

/* ---- xids ---- */

static int32_t new_xid_locked(struct zc *c)
{
    int32_t x = c->next_xid;
    c->next_xid = c->next_xid == INT32_MAX ? 1 : c->next_xid + 1;
    return x;
}

static int32_t new_xid(struct zc *c)
{
    pthread_mutex_lock(&c->mu);
    int32_t x = new_xid_locked(c);
    pthread_mutex_unlock(&c->mu);
    return x;
}

/* ---- completion ---- */

static void complete_err(struct pending *p, int err)
{
    if (p->cb) {
        struct zc_result r;
        memset(&r, 0, sizeof(r));
        r.err = err;
        p->cb(p->arg, &r);
    }
    pending_free(p);
}

static void fail_queue(struct pqueue *q, int err)
{
    struct pending *p;
    while ((p = pq_pop(q)))
        complete_err(p, err);
}

static void set_state(struct zc *c, enum zc_state st)
{
    pthread_mutex_lock(&c->mu);
    c->state = st;
    if (st != ZC_CONNECTED)
        c->server[0] = 0;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
}

static void notify_state(struct zc *c, enum zc_state st, int zk_state)
{
    if (c->on_state)
        c->on_state(c->arg, st);
    if (c->on_event) {
        struct zc_event ev = {-1, zk_state, "", 0};
        c->on_event(c->arg, &ev);
    }
}

/* Moves the requests submitted by other threads to the waiting queue. */
static void take_submitted(struct zc *c)
{
    pthread_mutex_lock(&c->mu);
    struct pending *p = c->submitted.head;
    c->submitted.head = c->submitted.tail = NULL;
    int timeout = c->req_timeout_ms ? c->req_timeout_ms
                                    : (c->timeout_ms ? c->timeout_ms : c->want_timeout_ms);
    pthread_mutex_unlock(&c->mu);
    uint64_t deadline = uv_now(&c->loop) + (uint64_t)timeout;
    struct pending *next;
    for (; p; p = next) {
        next = p->next;
        p->deadline = deadline;
        pq_push(&c->waiting, p);
    }
}

/* ---- connection ---- */

static void try_connect(struct zc *c);
static void finish(struct zc *c);
static void flush_waiting(struct zc *c);
static void send_close(struct zc *c);

static int timeout_now(struct zc *c)
{
    pthread_mutex_lock(&c->mu);
    int t = c->timeout_ms ? c->timeout_ms : c->want_timeout_ms;
    pthread_mutex_unlock(&c->mu);
    return t;
}

static uint64_t connect_timeout(struct zc *c)
{
    int t = timeout_now(c);
    int ct = t / c->n_servers;
    if (ct < 1000)
        ct = 1000;
    if (ct > t * 2 / 3 && t * 2 / 3 >= 1000)
        ct = t * 2 / 3;
    return (uint64_t)ct;
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *conn = h->data;
    frame_reader_close(&conn->fr);
    free(conn);
}

/* Marks conn dead and closes it; requests written on it finish through drop_conn. */
static void close_conn(struct conn *conn)
{
    conn->dead = 1;
    uv_close((uv_handle_t *)&conn->tcp, on_conn_closed);
}

/* Moves on to the next server: at once within a pass over the list, with a growing delay
 * (50 ms doubling to 1 s, plus jitter) after each full pass without a session. */
static void next_server(struct zc *c)
{
    c->n_addrs = c->addr_idx = 0;
    c->server_idx = (c->server_idx + 1) % c->n_servers;
    c->fails++;
    uint64_t delay = rnd(c) % 20;
    if (c->fails % c->n_servers == 0) {
        int pass = c->fails / c->n_servers;
        uint64_t d = (uint64_t)50 << (pass < 6 ? pass - 1 : 5);
        delay += d < BACKOFF_MAX_MS ? d : BACKOFF_MAX_MS;
    }
    c->next_attempt = uv_now(&c->loop) + delay;
}

/* Drops the current connection: in-flight requests fail, and the next attempt is planned. */
static void drop_conn(struct zc *c, const char *why)
{
    struct conn *conn = c->conn;
    if (!conn)
        return;
    int was_open = conn->phase == C_OPEN;
    if (was_open)
        LOG_INFO("client: connection to %s lost: %s", conn->addr, why);
    else
        LOG_DEBUG("client: connection to %s failed: %s", conn->addr, why);
    c->conn = NULL;
    close_conn(conn);
    if (was_open || c->addr_idx >= c->n_addrs) {
        next_server(c); /* its name is resolved again when its turn comes */
    } else {
        c->next_attempt = uv_now(&c->loop); /* another address of the same host */
    }
    /* Internal requests just go; user requests see the loss. */
    struct pqueue q = c->inflight;
    c->inflight.head = c->inflight.tail = NULL;
    int close_lost = 0;
    struct pending *p;
    while ((p = pq_pop(&q))) {
        if (p->kind == P_CLOSE)
            close_lost = 1;
        complete_err(p, ZE_CONNECTIONLOSS);
    }
    if (was_open && !c->closing) {
        set_state(c, ZC_CONNECTING);
        notify_state(c, ZC_CONNECTING, 0);
    }
    if (c->closing || close_lost)
        finish(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *conn = w->conn;
    for (unsigned i = 0; i < w->n; i++)
        free(w->bufs[i]);
    free(w);
    if (status < 0 && !conn->dead && conn->c->conn == conn)
        drop_conn(conn->c, uv_strerror(status));
}

/* Writes n frames (ownership of each taken, also on error). */
static int write_frames(struct zc *c, struct conn *conn, uint8_t **frames, size_t *lens, unsigned n)
{
    struct wreq *w = malloc(sizeof(*w) + n * sizeof(void *));
    uv_buf_t bufs[MAX_BATCH] = {{0}};
    assert(n <= MAX_BATCH);
    if (!w) {
        for (unsigned i = 0; i < n; i++)
            free(frames[i]);
        return -ENOMEM;
    }
    w->conn = conn;
    w->n = n;
    for (unsigned i = 0; i < n; i++) {
        w->bufs[i] = frames[i];
        bufs[i] = uv_buf_init((char *)frames[i], (unsigned)lens[i]);
    }
    int rc = uv_write(&w->req, (uv_stream_t *)&conn->tcp, bufs, n, on_write);
    if (rc < 0) {
        for (unsigned i = 0; i < n; i++)
            free(frames[i]);
        free(w);
        return rc;
    }
    c->last_send = uv_now(&c->loop);
    return 0;
}

static int write_frame(struct zc *c, struct conn *conn, uint8_t *frame, size_t len)
{
    return write_frames(c, conn, &frame, &len, 1);
}

/* Sends p (frame and all) on the open connection and puts it in flight. */
static void send_pending(struct zc *c, struct pending *p)
{
    uint8_t *frame = p->frame;
    size_t len = p->frame_len;
    p->frame = NULL;
    pq_push(&c->inflight, p);
    int rc = write_frame(c, c->conn, frame, len);
    if (rc < 0)
        drop_conn(c, uv_strerror(rc));
}

static void flush_waiting(struct zc *c)
{
    while (c->conn && c->conn->phase == C_OPEN && c->waiting.head) {
        uint8_t *frames[MAX_BATCH];
        size_t lens[MAX_BATCH];
        unsigned n = 0;
        struct pending *p;
        while (n < MAX_BATCH && (p = pq_pop(&c->waiting))) {
            frames[n] = p->frame;
            lens[n] = p->frame_len;
            p->frame = NULL;
            n++;
            pq_push(&c->inflight, p);
        }
        int rc = write_frames(c, c->conn, frames, lens, n);
        if (rc < 0) {
            drop_conn(c, uv_strerror(rc));
            return;
        }
    }
}

static int send_internal(struct zc *c, Zkfs__Cli__Request *m, enum pkind kind)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->kind = kind;
    p->xid = m->xid = new_xid(c);
    int rc = client_msg_pack(m, &p->frame, &p->frame_len);
    if (rc) {
        free(p);
        return rc;
    }
    send_pending(c, p);
    return 0;
}

static void send_ping(struct zc *c)
{
    Zkfs__Cli__Request m = ZKFS__CLI__REQUEST__INIT;
    m.xid = XID_PING;
    m.op_case = ZKFS__CLI__REQUEST__OP_PING;
    m.ping = 1;
    uint8_t *frame;
    size_t len;
    if (client_msg_pack(&m, &frame, &len) < 0)
        return;
    int rc = write_frame(c, c->conn, frame, len);
    if (rc < 0)
        drop_conn(c, uv_strerror(rc));
}

static void send_close(struct zc *c)
{
    Zkfs__Cli__Request m = ZKFS__CLI__REQUEST__INIT;
    m.op_case = ZKFS__CLI__REQUEST__OP_CLOSE;
    m.close = 1;
    if (send_internal(c, &m, P_CLOSE) < 0)
        finish(c);
}

static void emit_set_watches(struct zc *c, char **lists[5], size_t counts[5])
{
    Zkfs__Cli__SetWatchesRequest sw = ZKFS__CLI__SET_WATCHES_REQUEST__INIT;
    sw.relative_zxid = c->last_zxid;
    sw.data_watches = lists[0], sw.n_data_watches = counts[0];
    sw.exist_watches = lists[1], sw.n_exist_watches = counts[1];
    sw.child_watches = lists[2], sw.n_child_watches = counts[2];
    sw.persistent_watches = lists[3], sw.n_persistent_watches = counts[3];
    sw.persistent_recursive_watches = lists[4], sw.n_persistent_recursive_watches = counts[4];
    Zkfs__Cli__Request m = ZKFS__CLI__REQUEST__INIT;
    m.op_case = ZKFS__CLI__REQUEST__OP_SET_WATCHES;
    m.set_watches = &sw;
    if (send_internal(c, &m, P_SET_WATCHES) < 0)
        LOG_WARN("client: cannot re-register watches: out of memory");
    for (int i = 0; i < 5; i++)
        counts[i] = 0;
}

/* Re-arms every watch on the new connection, in chunks that fit a frame. */
static void send_set_watches(struct zc *c)
{
    struct strset *sets[5] = {&c->w_data, &c->w_exist, &c->w_child, &c->w_pers, &c->w_rec};
    char **lists[5] = {0};
    size_t counts[5] = {0}, total = 0, bytes = 0;
    for (int i = 0; i < 5; i++)
        total += sets[i]->n;
    if (!total)
        return;
    for (int i = 0; i < 5; i++) {
        lists[i] = calloc(sets[i]->n + 1, sizeof(char *));
        if (!lists[i]) {
            LOG_WARN("client: cannot re-register watches: out of memory");
            goto out;
        }
    }
    for (int i = 0; i < 5; i++) {
        for (size_t b = 0; b < sets[i]->nb; b++) {
            for (struct sentry *e = sets[i]->b[b]; e; e = e->next) {
                lists[i][counts[i]++] = e->s;
                bytes += strlen(e->s) + 8;
                if (bytes >= SET_WATCHES_CHUNK) {
                    emit_set_watches(c, lists, counts);
                    bytes = 0;
                    if (!c->conn)
                        goto out;
                }
            }
        }
    }
    if (bytes)
        emit_set_watches(c, lists, counts);
out:
    for (int i = 0; i < 5; i++)
        free(lists[i]);
}

/* Ends the session for good in state st: the connection closes, zc_submit refuses from now
 * on, every request not yet answered fails with err, and the watches are forgotten. */
static void end_session(struct zc *c, enum zc_state st, int err)
{
    if (c->conn) {
        struct conn *conn = c->conn;
        c->conn = NULL;
        close_conn(conn);
    }
    pthread_mutex_lock(&c->mu);
    c->dead = 1;
    c->state = st;
    c->server[0] = 0;
    struct pqueue sub = c->submitted;
    c->submitted.head = c->submitted.tail = NULL;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    fail_queue(&c->inflight, err);
    fail_queue(&c->waiting, err);
    fail_queue(&sub, err);
    strset_clear(&c->w_data);
    strset_clear(&c->w_exist);
    strset_clear(&c->w_child);
    strset_clear(&c->w_pers);
    strset_clear(&c->w_rec);
}

static void expire(struct zc *c)
{
    LOG_WARN("client: session 0x%llx expired", (unsigned long long)c->session_id);
    c->expired = 1;
    end_session(c, ZC_EXPIRED, ZE_SESSIONEXPIRED);
    notify_state(c, ZC_EXPIRED, -112);
    if (c->closing)
        finish(c);
}

static void handle_connect_reply(struct zc *c, const Zkfs__Cli__Reply *rep)
{
    struct conn *conn = c->conn;
    if (rep->xid != 0 || (!rep->connect && rep->err == 0)) {
        drop_conn(c, "bad handshake reply");
        return;
    }
    const Zkfs__Cli__ConnectResponse *cr = rep->connect;
    if (rep->err == -112 || (cr && cr->timeout_ms <= 0) ||
        (cr && c->session_id && cr->session_id != c->session_id)) {
        expire(c);
        return;
    }
    if (rep->err != 0) {
        drop_conn(c, err_msg(err_from_zk(rep->err)));
        return;
    }
    if (cr->passwd.len > PASSWD_MAX) {
        drop_conn(c, "bad session password");
        return;
    }
    int resumed = c->session_id != 0;
    memcpy(c->passwd, cr->passwd.data, cr->passwd.len);
    c->passwd_len = cr->passwd.len;
    conn->phase = C_OPEN;
    c->fails = 0;
    c->last_recv = uv_now(&c->loop);
    pthread_mutex_lock(&c->mu);
    c->session_id = cr->session_id;
    c->timeout_ms = cr->timeout_ms;
    c->state = ZC_CONNECTED;
    snprintf(c->server, sizeof(c->server), "%s", conn->addr);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    LOG_INFO("client: %s session 0x%llx at %s (timeout %d ms)", resumed ? "resumed" : "opened",
             (unsigned long long)cr->session_id, conn->addr, cr->timeout_ms);
    send_set_watches(c);
    flush_waiting(c);
    if (c->closing && c->conn)
        send_close(c);
    if (c->conn && !c->closing)
        notify_state(c, ZC_CONNECTED, 3);
}

/* Updates the watch bookkeeping for a reply, as ZooKeeper's client registers watches. */
static void track_reply(struct zc *c, const struct pending *p, int err)
{
    if (!p->watch_path)
        return;
    int rc = 0;
    switch (p->op) {
    case ZC_OP_GET_DATA:
        if (err == 0)
            rc = strset_add(&c->w_data, p->watch_path);
        break;
    case ZC_OP_EXISTS:
        if (err == 0)
            rc = strset_add(&c->w_data, p->watch_path);
        else if (err == ZE_NONODE)
            rc = strset_add(&c->w_exist, p->watch_path);
        break;
    case ZC_OP_GET_CHILDREN:
        if (err == 0)
            rc = strset_add(&c->w_child, p->watch_path);
        break;
    case ZC_OP_ADD_WATCH:
        if (err == 0)
            rc = strset_add(p->watch ? &c->w_rec : &c->w_pers, p->watch_path);
        break;
    case ZC_OP_REMOVE_WATCHES:
        if (err != 0 && err != ZE_NOWATCHER)
            break;
        if (p->watch == 1 || p->watch == 3)
            strset_del(&c->w_child, p->watch_path);
        if (p->watch == 2 || p->watch == 3) {
            strset_del(&c->w_data, p->watch_path);
            strset_del(&c->w_exist, p->watch_path);
        }
        if (p->watch == 3 || p->watch == 4)
            strset_del(&c->w_pers, p->watch_path);
        if (p->watch == 3 || p->watch == 5)
            strset_del(&c->w_rec, p->watch_path);
        break;
    default:
        break;
    }
    if (rc)
        LOG_WARN("client: cannot record a watch on %s: out of memory", p->watch_path);
}

static void handle_reply(struct zc *c, const Zkfs__Cli__Reply *rep)
{
    if (rep->xid == XID_PING)
        return;
    struct pending *p = c->inflight.head;
    if (!p || p->xid != rep->xid) {
        LOG_WARN("client: reply xid %d does not match request xid %d", rep->xid, p ? p->xid : 0);
        drop_conn(c, "protocol error");
        return;
    }
    pq_pop(&c->inflight);
    if (rep->zxid > c->last_zxid)
        c->last_zxid = rep->zxid;
    int err = err_from_zk(rep->err);
    switch (p->kind) {
    case P_CLOSE:
        pending_free(p);
        finish(c);
        return;
    case P_SET_WATCHES:
        if (err)
            LOG_WARN("client: re-registering watches failed: %s", err_name(err));
        pending_free(p);
        return;
    case P_USER:
        break;
    }
    track_reply(c, p, err);
    if (p->cb) {
        struct client_msg_result r;
        client_msg_result_init(&r, &c->root, p->op, rep);
        p->cb(p->arg, &r.r);
        client_msg_result_close(&r);
    }
    pending_free(p);
}

static void handle_event(struct zc *c, const Zkfs__Cli__WatchEvent *we)
{
    if (we->zxid > c->last_zxid)
        c->last_zxid = we->zxid;
    switch (we->type) {
    case 1: /* NodeCreated */
    case 3: /* NodeDataChanged */
        strset_del(&c->w_data, we->path);
        strset_del(&c->w_exist, we->path);
        break;
    case 2: /* NodeDeleted */
        strset_del(&c->w_data, we->path);
        strset_del(&c->w_exist, we->path);
        strset_del(&c->w_child, we->path);
        break;
    case 4: /* NodeChildrenChanged */
        strset_del(&c->w_child, we->path);
        break;
    default:
        break;
    }
    if (!c->on_event)
        return;
    struct zc_event ev;
    if (client_msg_event(&c->root, we, &ev) < 0) {
        LOG_DEBUG("client: event for %s outside the chroot", we->path);
        return;
    }
    c->on_event(c->arg, &ev);
}

static void handle_frame(struct zc *c, const uint8_t *buf, size_t len)
{
    Zkfs__Cli__ServerMessage *m = zkfs__cli__server_message__unpack(NULL, len, buf);
    if (!m) {
        drop_conn(c, "undecodable message");
        return;
    }
    if (c->conn->phase == C_HANDSHAKE) {
        if (m->msg_case == ZKFS__CLI__SERVER_MESSAGE__MSG_REPLY)
            handle_connect_reply(c, m->reply);
        else
            drop_conn(c, "event before the handshake");
    } else if (m->msg_case == ZKFS__CLI__SERVER_MESSAGE__MSG_REPLY) {
        handle_reply(c, m->reply);
    } else if (m->msg_case == ZKFS__CLI__SERVER_MESSAGE__MSG_EVENT) {
        handle_event(c, m->event);
    } else {
        drop_conn(c, "empty message");
    }
    zkfs__cli__server_message__free_unpacked(m, NULL);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *conn = h->data;
    *buf = uv_buf_init(conn->rbuf, sizeof(conn->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *conn = s->data;
    struct zc *c = conn->c;
    if (conn->dead || nread == 0)
        return;
    if (nread < 0) {
        drop_conn(c, nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread));
        return;
    }
    c->last_recv = uv_now(&c->loop);
    if (frame_reader_feed(&conn->fr, (const uint8_t *)buf->base, (size_t)nread) < 0) {
        drop_conn(c, "out of memory");
        return;
    }
    const uint8_t *payload;
    size_t len;
    int rc = 0;
    while (!conn->dead && (rc = frame_reader_next(&conn->fr, &payload, &len)) == 1)
        handle_frame(c, payload, len);
    if (!conn->dead && rc < 0)
        drop_conn(c, "frame too large");
}

static void on_connected(uv_connect_t *req, int status)
{
    struct conn *conn = req->data;
    struct zc *c = conn->c;
    if (conn->dead)
        return;
    if (status < 0) {
        drop_conn(c, uv_strerror(status));
        return;
    }
    conn->phase = C_HANDSHAKE;
    uv_tcp_nodelay(&conn->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    if (rc < 0) {
        drop_conn(c, uv_strerror(rc));
        return;
    }
    Zkfs__Cli__ConnectRequest cr = ZKFS__CLI__CONNECT_REQUEST__INIT;
    cr.last_zxid_seen = c->last_zxid;
    cr.timeout_ms = c->want_timeout_ms;
    if (c->session_id) {
        cr.has_session_id = 1;
        cr.session_id = c->session_id;
        cr.has_passwd = 1;
        cr.passwd.data = c->passwd;
        cr.passwd.len = c->passwd_len;
    }
    Zkfs__Cli__Request m = ZKFS__CLI__REQUEST__INIT;
    m.xid = 0;
    m.op_case = ZKFS__CLI__REQUEST__OP_CONNECT;
    m.connect = &cr;
    size_t n = zkfs__cli__request__get_packed_size(&m);
    uint8_t *buf = malloc(8 + n);
    if (!buf) {
        drop_conn(c, "out of memory");
        return;
    }
    memcpy(buf, "zkfs", 4);
    frame_put_u32(buf + 4, (uint32_t)n);
    zkfs__cli__request__pack(&m, buf + 8);
    rc = write_frame(c, conn, buf, 8 + n);
    if (rc < 0)
        drop_conn(c, uv_strerror(rc));
}

static void connect_next_addr(struct zc *c)
{
    const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[c->addr_idx++];
    struct conn *conn = calloc(1, sizeof(*conn));
    c->attempt_start = uv_now(&c->loop);
    if (!conn) {
        c->next_attempt = uv_now(&c->loop) + BACKOFF_MAX_MS;
        return;
    }
    conn->c = c;
    conn->phase = C_CONNECTING;
    frame_reader_init(&conn->fr, CLIENT_MSG_MAX_FRAME);
    const struct server *srv = &c->servers[c->server_idx];
    snprintf(conn->addr, sizeof(conn->addr), strchr(srv->host, ':') ? "[%s]:%s" : "%s:%s",
             srv->host, srv->port);
    uv_tcp_init(&c->loop, &conn->tcp);
    conn->tcp.data = conn;
    conn->creq.data = conn;
    c->conn = conn;
    int rc = uv_tcp_connect(&conn->creq, &conn->tcp, sa, on_connected);
    if (rc < 0)
        drop_conn(c, uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct zc *c = req->data;
    c->resolving = 0;
    if (c->finished || c->expired || c->closing) {
        uv_freeaddrinfo(res);
        return;
    }
    const struct server *s = &c->servers[c->server_idx];
    c->n_addrs = c->addr_idx = 0;
    for (struct addrinfo *ai = res; status == 0 && ai && c->n_addrs < MAX_ADDRS; ai = ai->ai_next)
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof(c->addrs[0]))
            memcpy(&c->addrs[c->n_addrs++], ai->ai_addr, ai->ai_addrlen);
    uv_freeaddrinfo(res);
    if (!c->n_addrs) {
        LOG_DEBUG("client: cannot resolve %s: %s", s->host,
                  status ? uv_strerror(status) : "no address");
        next_server(c);
        return;
    }
    connect_next_addr(c);
}

static void try_connect(struct zc *c)
{
    if (c->addr_idx < c->n_addrs) {
        connect_next_addr(c);
        return;
    }
    const struct server *s = &c->servers[c->server_idx];
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    c->gai.data = c;
    int rc = uv_getaddrinfo(&c->loop, &c->gai, on_resolved, s->host, s->port, &hints);
    if (rc < 0) {
        LOG_DEBUG("client: cannot resolve %s: %s", s->host, uv_strerror(rc));
        next_server(c);
        return;
    }
    c->resolving = 1;
}

/* ---- shutdown ---- */

static void on_handle_closed(uv_handle_t *h) {}

/* Ends everything: callbacks of unfinished requests run, then the loop's handles close. */
static void finish(struct zc *c)
{
    if (c->finished)
        return;
    c->finished = 1;
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->gai);
    end_session(c, ZC_CLOSED, c->expired ? ZE_SESSIONEXPIRED : ZE_CONNECTIONLOSS);
    notify_state(c, ZC_CLOSED, 7);
    uv_close((uv_handle_t *)&c->async, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->prepare, on_handle_closed);
}

/* zc_free: queued requests still go out, then a close request, whose reply ends the loop. */
static void begin_close(struct zc *c)
{
    c->closing = 1;
    c->close_deadline = uv_now(&c->loop) + CLOSE_WAIT_MS;
    /* Without a session there is nothing to close: a handshake still in flight is dropped
     * (a session it creates expires on its own). */
    if (c->expired || !c->conn || (c->conn->phase != C_OPEN && !c->session_id)) {
        finish(c);
        return;
    }
    if (c->conn->phase == C_OPEN) {
        flush_waiting(c);
        if (c->conn)
            send_close(c);
    }
    /* Otherwise the handshake in progress sends the close when it completes. */
}

/* ---- loop callbacks ---- */

static void on_async(uv_async_t *a)
{
    struct zc *c = a->data;
    if (c->finished)
        return;
    take_submitted(c);
    if (c->expired)
        fail_queue(&c->waiting, ZE_SESSIONEXPIRED);
    flush_waiting(c);
    pthread_mutex_lock(&c->mu);
    int stopping = c->stopping;
    pthread_mutex_unlock(&c->mu);
    if (stopping && !c->closing)
        begin_close(c);
}

static void on_timer(uv_timer_t *t)
{
    struct zc *c = t->data;
    if (c->finished)
        return;
    uint64_t now = uv_now(&c->loop);
    if (c->closing && now >= c->close_deadline) {
        finish(c);
        return;
    }
    if (c->conn && c->conn->phase == C_OPEN) {
        int to = timeout_now(c);
        if (now >= c->last_recv + (uint64_t)(to * 2 / 3))
            drop_conn(c, "no message from the server within 2/3 of the session timeout");
        else if (now >= c->last_send + (uint64_t)(to / 3))
            send_ping(c);
    } else if (c->conn && now >= c->attempt_start + connect_timeout(c)) {
        drop_conn(c, "timed out");
    }
    if (c->finished)
        return;
    while (c->waiting.head && c->waiting.head->deadline <= now)
        complete_err(pq_pop(&c->waiting), ZE_CONNECTIONLOSS);
    if (!c->conn && !c->resolving && !c->expired && !c->closing && now >= c->next_attempt)
        try_connect(c);
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Runs before the loop blocks: sets the timer to the next deadline of any kind. */
static void on_prepare(uv_prepare_t *pr)
{
    struct zc *c = pr->data;
    if (c->finished)
        return;
    uint64_t now = uv_now(&c->loop), next = UINT64_MAX;
    if (c->closing)
        next = c->close_deadline;
    if (c->conn && c->conn->phase == C_OPEN) {
        int to = timeout_now(c);
        next = min64(next, c->last_recv + (uint64_t)(to * 2 / 3));
        next = min64(next, c->last_send + (uint64_t)(to / 3));
    } else if (c->conn) {
        next = min64(next, c->attempt_start + connect_timeout(c));
    } else if (!c->resolving && !c->expired && !c->closing) {
        next = min64(next, c->next_attempt);
    }
    if (c->waiting.head)
        next = min64(next, c->waiting.head->deadline);
    if (next == UINT64_MAX)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, next > now ? next - now : 0, 0);
}

static void *thread_main(void *arg)
{
    struct zc *c = arg;
    uv_run(&c->loop, UV_RUN_DEFAULT);
    while (uv_loop_close(&c->loop) == UV_EBUSY)
        uv_run(&c->loop, UV_RUN_ONCE);
    return NULL;
}

/* ---- public API (zc_result_free: client_msg.c, beside the copy it frees) ---- */

int zc_new(struct zc **out, const struct zc_opts *opts)
{
    *out = NULL;
    if (!opts || !opts->servers)
        return ZE_BADARGUMENTS;
    struct zc *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int rc = parse_servers(c, opts->servers);
    if (rc)
        goto fail_parse;
    c->want_timeout_ms =
        opts->session_timeout_ms > 0 ? opts->session_timeout_ms : DEFAULT_TIMEOUT_MS;
    c->req_timeout_ms = opts->request_timeout_ms > 0 ? opts->request_timeout_ms : 0;
    c->on_event = opts->on_event;
    c->on_state = opts->on_state;
    c->arg = opts->arg;
    c->next_xid = 1;
    c->state = ZC_CONNECTING;
    c->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)c;
    if (!c->rng)
        c->rng = 88172645463325252ULL;
    for (int i = c->n_servers - 1; i > 0; i--) {
        int j = (int)(rnd(c) % (uint32_t)(i + 1));
        struct server t = c->servers[i];
        c->servers[i] = c->servers[j];
        c->servers[j] = t;
    }

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->mu, NULL);

    rc = uv_loop_init(&c->loop);
    if (rc < 0)
        goto fail_sync;
    rc = uv_async_init(&c->loop, &c->async, on_async);
    if (rc < 0)
        goto fail_loop;
    c->async.data = c;
    uv_timer_init(&c->loop, &c->timer);
    c->timer.data = c;
    uv_prepare_init(&c->loop, &c->prepare);
    c->prepare.data = c;
    uv_prepare_start(&c->prepare, on_prepare);
    c->next_attempt = uv_now(&c->loop);

    /* The client thread takes no signals (SIGPIPE included: writes then fail with EPIPE). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&c->thread, NULL, thread_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0)
        goto fail_handles;
    *out = c;
    return 0;

fail_handles:
    uv_close((uv_handle_t *)&c->async, NULL);
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_close((uv_handle_t *)&c->prepare, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
fail_loop:
    uv_loop_close(&c->loop);
fail_sync:
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
fail_parse:
    servers_free(c->servers, c->n_servers);
    free(c->root.path);
    free(c);
    return rc;
}

int zc_wait_connected(struct zc *c, int timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (c->state == ZC_CONNECTED) {
            rc = 0;
            break;
        }
        if (c->state == ZC_EXPIRED) {
            rc = ZE_SESSIONEXPIRED;
            break;
        }
        if (c->dead) {
            rc = ZE_CONNECTIONLOSS;
            break;
        }
        if (pthread_cond_timedwait(&c->cond, &c->mu, &dl) == ETIMEDOUT) {
            rc = c->state == ZC_CONNECTED ? 0 : ZE_CONNECTIONLOSS;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void zc_free(struct zc *c)
{
    if (!c)
        return;
    assert(!pthread_equal(pthread_self(), c->thread));
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    uv_async_send(&c->async); /* the handle lives until the loop sees stopping */
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    servers_free(c->servers, c->n_servers);
    free(c->root.path);
    free(c);
}

uint64_t zc_session_id(struct zc *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t id = c->session_id;
    pthread_mutex_unlock(&c->mu);
    return id;
}

int zc_session_timeout(struct zc *c)
{
    pthread_mutex_lock(&c->mu);
    int t = c->timeout_ms ? c->timeout_ms : c->want_timeout_ms;
    pthread_mutex_unlock(&c->mu);
    return t;
}

enum zc_state zc_get_state(struct zc *c)
{
    pthread_mutex_lock(&c->mu);
    enum zc_state s = c->state;
    pthread_mutex_unlock(&c->mu);
    return s;
}

void zc_server(struct zc *c, char *buf, size_t len)
{
    if (!len)
        return;
    pthread_mutex_lock(&c->mu);
    snprintf(buf, len, "%s", c->server);
    pthread_mutex_unlock(&c->mu);
}

int zc_submit(struct zc *c, const struct zc_req *req, zc_cb cb, void *arg)
{
    if (!req)
        return ZE_BADARGUMENTS;
    int rc = client_msg_validate(req);
    if (rc)
        return rc;
    struct pending *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->kind = P_USER;
    p->op = req->op;
    p->cb = cb;
    p->arg = arg;
    switch (req->op) {
    case ZC_OP_GET_DATA:
    case ZC_OP_EXISTS:
    case ZC_OP_GET_CHILDREN:
        p->watch = req->watch != 0;
        if (!p->watch)
            break;
        /* fall through */
    case ZC_OP_ADD_WATCH:
    case ZC_OP_REMOVE_WATCHES:
        if (req->op == ZC_OP_ADD_WATCH || req->op == ZC_OP_REMOVE_WATCHES)
            p->watch = req->mode;
        p->watch_path = client_msg_full_path(&c->root, req->path);
        if (!p->watch_path) {
            free(p);
            return -ENOMEM;
        }
        break;
    default:
        break;
    }

    struct client_msg_req m;
    rc = client_msg_req_init(&m, &c->root, req);
    pthread_mutex_lock(&c->mu);
    if (rc == 0 && c->dead)
        rc = c->state == ZC_EXPIRED ? ZE_SESSIONEXPIRED : ZE_CONNECTIONLOSS;
    else if (rc == 0 && c->stopping)
        rc = ZE_CONNECTIONLOSS;
    if (rc == 0) {
        p->xid = m.m.xid = new_xid_locked(c);
        rc = client_msg_pack(&m.m, &p->frame, &p->frame_len);
    }
    if (rc == 0) {
        pq_push(&c->submitted, p);
        uv_async_send(&c->async);
    }
    pthread_mutex_unlock(&c->mu);
    client_msg_req_close(&m);
    if (rc)
        pending_free(p);
    return rc;
}

/* zc_call's rendezvous lives on the caller's stack, so a waiter never touches the zc again
 * once its result is in. */
struct call {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct zc_result *out;
    int done;
};

static void call_done(void *arg, const struct zc_result *r)
{
    struct call *k = arg;
    struct zc_result copy;
    if (client_msg_result_dup(r, &copy) < 0) {
        memset(&copy, 0, sizeof(copy));
        copy.err = -ENOMEM;
    }
    pthread_mutex_lock(&k->mu);
    *k->out = copy;
    k->done = 1;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

int zc_call(struct zc *c, const struct zc_req *req, struct zc_result *out)
{
    assert(!pthread_equal(pthread_self(), c->thread));
    memset(out, 0, sizeof(*out));
    struct call k = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, out, 0};
    int rc = zc_submit(c, req, call_done, &k);
    if (rc == 0) {
        pthread_mutex_lock(&k.mu);
        while (!k.done)
            pthread_cond_wait(&k.cv, &k.mu);
        pthread_mutex_unlock(&k.mu);
        rc = out->err;
    } else {
        out->err = rc;
    }
    pthread_mutex_destroy(&k.mu);
    pthread_cond_destroy(&k.cv);
    return rc;
}
