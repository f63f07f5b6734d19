/* fused's cluster session: bounded calls, renewal after expiry, own-write bookkeeping, mntr. */
#include "sess.h"

#include "err.h"
#include "fs.h"
#include "log.h"
#include "replay.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void deadline_ts(struct timespec *ts, uint64_t deadline_ms)
{
    ts->tv_sec = (time_t)(deadline_ms / 1000);
    ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

/* ---- sessions ---- */

/* Client thread: state changes and watch events go to the replay thread. */
static void on_state(void *arg, enum zc_state state)
{
    struct sess *s = arg;
    struct fs *fs = s->fs;
    pthread_mutex_lock(&fs->sm.mu);
    int current = !s->retired;
    int first = 0;
    if (state == ZC_CONNECTED) {
        first = !s->ever_connected;
        s->ever_connected = 1;
    }
    pthread_cond_broadcast(&fs->sm.cv);
    pthread_mutex_unlock(&fs->sm.mu);
    if (current)
        replay_on_state(fs, s, state, first);
}

static void on_event(void *arg, const struct zc_event *ev)
{
    struct sess *s = arg;
    if (ev->type < 0)
        return; /* session states come through on_state */
    pthread_mutex_lock(&s->fs->sm.mu);
    int retired = s->retired;
    pthread_mutex_unlock(&s->fs->sm.mu);
    if (retired)
        return;
    replay_on_event(s->fs, s, ev->type, ev->path, ev->zxid, own_snapshot(s->fs));
}

static struct sess *sess_new(struct fs *fs)
{
    struct sess *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->fs = fs;
    s->refs = 1;
    struct zc_opts o = {
        .servers = fs->o.servers,
        .session_timeout_ms = fs->o.session_timeout_ms,
        .request_timeout_ms = fs->o.op_timeout_ms,
        .on_event = on_event,
        .on_state = on_state,
        .arg = s,
    };
    int rc = zc_new(&s->zc, &o);
    if (rc) {
        LOG_ERROR("cannot start a session with %s: %s", fs->o.servers, err_msg(rc));
        free(s);
        return NULL;
    }
    return s;
}

int sess_init(struct fs *fs)
{
    struct sess_mgr *m = &fs->sm;
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    m->next_ticket = 1;
    m->znodes = -1;
    return 0;
}

int sess_start(struct fs *fs)
{
    struct sess *s = sess_new(fs);
    if (!s)
        return ZE_BADARGUMENTS;
    pthread_mutex_lock(&fs->sm.mu);
    fs->sm.cur = s;
    pthread_mutex_unlock(&fs->sm.mu);
    return 0;
}

void sess_put(struct fs *fs, struct sess *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&fs->sm.mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&fs->sm.mu);
    if (last) {
        zc_free(s->zc);
        free(s);
    }
}

struct sess *sess_get(struct fs *fs)
{
    pthread_mutex_lock(&fs->sm.mu);
    struct sess *s = fs->sm.stopping ? NULL : fs->sm.cur;
    if (s)
        s->refs++;
    pthread_mutex_unlock(&fs->sm.mu);
    return s;
}

void sess_close(struct fs *fs)
{
    pthread_mutex_lock(&fs->sm.mu);
    struct sess *s = fs->sm.cur;
    fs->sm.cur = NULL;
    fs->sm.stopping = 1;
    if (s)
        s->retired = 1;
    pthread_cond_broadcast(&fs->sm.cv);
    pthread_mutex_unlock(&fs->sm.mu);
    sess_put(fs, s);
    free(fs->sm.inflight);
    free(fs->sm.own);
    fs->sm.inflight = NULL;
    fs->sm.own = NULL;
}

int sess_renew(struct fs *fs)
{
    struct sess *s = sess_new(fs);
    if (!s)
        return -ENOMEM;
    pthread_mutex_lock(&fs->sm.mu);
    if (fs->sm.stopping) {
        pthread_mutex_unlock(&fs->sm.mu);
        sess_put(fs, s);
        return ZE_CONNECTIONLOSS;
    }
    struct sess *old = fs->sm.cur;
    if (old)
        old->retired = 1;
    fs->sm.cur = s;
    pthread_cond_broadcast(&fs->sm.cv);
    pthread_mutex_unlock(&fs->sm.mu);
    sess_put(fs, old);
    return 0;
}

int sess_live(struct fs *fs)
{
    struct sess *s = sess_get(fs);
    int live = s && zc_get_state(s->zc) == ZC_CONNECTED;
    sess_put(fs, s);
    return live;
}

uint64_t sess_id(struct fs *fs)
{
    struct sess *s = sess_get(fs);
    uint64_t id = s ? zc_session_id(s->zc) : 0;
    sess_put(fs, s);
    return id;
}

/*
 * Waits until the current session can take requests: connected, or (after an expiry) replaced
 * by a new one. Returns the session with a reference, or NULL at the deadline.
 */
static struct sess *sess_wait(struct fs *fs, uint64_t deadline)
{
    for (;;) {
        struct sess *s = sess_get(fs);
        if (!s)
            return NULL;
        enum zc_state st = zc_get_state(s->zc);
        if (st != ZC_EXPIRED)
            return s;
        uint64_t now = now_ms();
        if (now >= deadline) {
            sess_put(fs, s);
            return NULL;
        }
        struct timespec ts;
        deadline_ts(&ts, deadline);
        pthread_mutex_lock(&fs->sm.mu);
        if (fs->sm.cur == s && !fs->sm.stopping)
            pthread_cond_timedwait(&fs->sm.cv, &fs->sm.mu, &ts);
        pthread_mutex_unlock(&fs->sm.mu);
        sess_put(fs, s);
    }
}

/* Waits for s to connect until the deadline; 1 if it did. */
static int wait_connected(struct sess *s, uint64_t deadline)
{
    uint64_t now = now_ms();
    if (now >= deadline)
        return 0;
    return zc_wait_connected(s->zc, (int)(deadline - now)) == 0;
}

int zk_call(struct fs *fs, const struct zc_req *req, struct zc_result *out, int flags)
{
    uint64_t deadline = now_ms() + (uint64_t)fs->o.op_timeout_ms;
    memset(out, 0, sizeof(*out));
    for (;;) {
        struct sess *s = sess_wait(fs, deadline);
        if (!s) {
            out->err = ZE_CONNECTIONLOSS;
            return out->err;
        }
        int rc = zc_call(s->zc, req, out);
        if (rc == ZE_SESSIONEXPIRED && now_ms() < deadline) {
            /* Refused (or lost) with the old session: the request never took effect there.
             * Go again with the new one. */
            sess_put(fs, s);
            zc_result_free(out);
            continue;
        }
        if (rc == ZE_CONNECTIONLOSS && (flags & ZK_RETRY) && wait_connected(s, deadline)) {
            sess_put(fs, s);
            zc_result_free(out);
            continue;
        }
        sess_put(fs, s);
        return rc;
    }
}

/* ---- pipelined reads ---- */

struct zk_batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t left;
};

static void fetch_done(void *arg, const struct zc_result *r)
{
    struct zk_fetch *f = arg;
    struct zk_batch *b = f->batch_;
    f->err = r->err;
    f->zxid = r->zxid;
    f->has_stat = r->has_stat;
    if (r->has_stat)
        f->st = r->stat;
    if (r->err == 0 && f->op == ZC_OP_GET_DATA) {
        f->data = blob_new(r->data, r->data_len);
        if (!f->data)
            f->err = -ENOMEM;
    }
    if (r->err == 0 && f->op == ZC_OP_GET_CHILDREN && r->n_children) {
        f->children = calloc(r->n_children, sizeof(char *));
        for (uint32_t i = 0; f->children && i < r->n_children; i++) {
            f->children[i] = strdup(r->children[i]);
            f->n_children = i + 1;
            if (!f->children[i]) {
                f->err = -ENOMEM;
                break;
            }
        }
        if (!f->children)
            f->err = -ENOMEM;
    }
    pthread_mutex_lock(&b->mu);
    if (--b->left == 0)
        pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

void zk_fetch_clear(struct zk_fetch *f)
{
    blob_unref(f->data);
    f->data = NULL;
    for (uint32_t i = 0; i < f->n_children; i++)
        free(f->children[i]);
    free(f->children);
    f->children = NULL;
    f->n_children = 0;
    f->has_stat = 0;
}

static int retryable(int err)
{
    return err == ZE_CONNECTIONLOSS || err == ZE_SESSIONEXPIRED;
}

void zk_fetch_all(struct fs *fs, struct zk_fetch *f, size_t n)
{
    uint64_t deadline = now_ms() + (uint64_t)fs->o.op_timeout_ms;
    struct zk_batch b;
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    for (size_t i = 0; i < n; i++)
        f[i].err = ZE_CONNECTIONLOSS;
    for (int round = 0;; round++) {
        struct sess *s = sess_wait(fs, deadline);
        if (!s)
            break;
        b.left = 1; /* held until every submit is done */
        for (size_t i = 0; i < n; i++) {
            if (!retryable(f[i].err))
                continue;
            zk_fetch_clear(&f[i]);
            f[i].batch_ = &b;
            struct zc_req req = {.op = f[i].op, .path = f[i].path};
            pthread_mutex_lock(&b.mu);
            b.left++;
            pthread_mutex_unlock(&b.mu);
            int rc = zc_submit(s->zc, &req, fetch_done, &f[i]);
            if (rc) {
                f[i].err = rc;
                pthread_mutex_lock(&b.mu);
                b.left--;
                pthread_mutex_unlock(&b.mu);
            }
        }
        pthread_mutex_lock(&b.mu);
        b.left--;
        while (b.left)
            pthread_cond_wait(&b.cv, &b.mu);
        pthread_mutex_unlock(&b.mu);
        int again = 0, expired = 0;
        for (size_t i = 0; i < n; i++) {
            again |= retryable(f[i].err);
            expired |= f[i].err == ZE_SESSIONEXPIRED;
        }
        int go = again && now_ms() < deadline && (expired || wait_connected(s, deadline));
        sess_put(fs, s);
        if (!go)
            break;
    }
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
}

/* ---- own writes ---- */

uint64_t own_begin(struct fs *fs)
{
    struct sess_mgr *m = &fs->sm;
    pthread_mutex_lock(&m->mu);
    uint64_t t = m->next_ticket++;
    if (m->n_inflight == m->cap_inflight) {
        size_t cap = m->cap_inflight ? m->cap_inflight * 2 : 64;
        uint64_t *v = realloc(m->inflight, cap * sizeof(*v));
        if (v) {
            m->inflight = v;
            m->cap_inflight = cap;
        }
    }
    if (m->n_inflight < m->cap_inflight)
        m->inflight[m->n_inflight++] = t;
    pthread_mutex_unlock(&m->mu);
    return t;
}

void own_end(struct fs *fs, uint64_t ticket, int64_t zxid)
{
    struct sess_mgr *m = &fs->sm;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_inflight; i++) {
        if (m->inflight[i] == ticket) {
            m->inflight[i] = m->inflight[--m->n_inflight];
            break;
        }
    }
    if (zxid > 0) {
        if (m->n_own == m->cap_own) {
            size_t cap = m->cap_own ? m->cap_own * 2 : 64;
            int64_t *v = realloc(m->own, cap * sizeof(*v));
            if (v) {
                m->own = v;
                m->cap_own = cap;
            }
        }
        if (m->n_own < m->cap_own)
            m->own[m->n_own++] = zxid;
    }
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

uint64_t own_snapshot(struct fs *fs)
{
    pthread_mutex_lock(&fs->sm.mu);
    uint64_t t = fs->sm.next_ticket - 1;
    pthread_mutex_unlock(&fs->sm.mu);
    return t;
}

void own_wait(struct fs *fs, uint64_t snapshot)
{
    struct sess_mgr *m = &fs->sm;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        int waiting = 0;
        for (size_t i = 0; i < m->n_inflight && !waiting; i++)
            waiting = m->inflight[i] <= snapshot;
        if (!waiting || m->stopping)
            break;
        pthread_cond_wait(&m->cv, &m->mu);
    }
    pthread_mutex_unlock(&m->mu);
}

int own_is(struct fs *fs, int64_t zxid)
{
    int found = 0;
    pthread_mutex_lock(&fs->sm.mu);
    for (size_t i = 0; i < fs->sm.n_own && !found; i++)
        found = fs->sm.own[i] == zxid;
    pthread_mutex_unlock(&fs->sm.mu);
    return found;
}

void own_prune(struct fs *fs, int64_t zxid)
{
    struct sess_mgr *m = &fs->sm;
    pthread_mutex_lock(&m->mu);
    size_t j = 0;
    for (size_t i = 0; i < m->n_own; i++)
        if (m->own[i] >= zxid)
            m->own[j++] = m->own[i];
    m->n_own = j;
    pthread_mutex_unlock(&m->mu);
}

/* ---- statfs: mntr ---- */

/* Sends "mntr" to host:port and returns zk_znode_count, or -1; waits at most ~1 s. */
static long long mntr_znodes(const char *server)
{
    char host[256];
    snprintf(host, sizeof(host), "%s", server);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    *colon = 0;
    const char *port = colon + 1;
    char *h = host;
    if (*h == '[') {
        h++;
        char *end = strchr(h, ']');
        if (end)
            *end = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(h, port, &hints, &res) != 0 || !res)
        return -1;
    long long count = -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto out;
    uint64_t deadline = now_ms() + 1000;
    if (connect(fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS)
        goto out;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, 1000) != 1)
        goto out;
    if (send(fd, "mntr", 4, MSG_NOSIGNAL) != 4)
        goto out;
    char buf[8192];
    size_t len = 0;
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline || len >= sizeof(buf) - 1)
            break;
        p = (struct pollfd){.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now)) != 1)
            break;
        ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = 0;
    const char *k = strstr(buf, "zk_znode_count\t");
    if (k)
        count = strtoll(k + strlen("zk_znode_count\t"), NULL, 10);
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return count;
}

long long sess_znode_count(struct fs *fs)
{
    uint64_t now = now_ms();
    pthread_mutex_lock(&fs->sm.mu);
    long long cached = fs->sm.znodes;
    int fresh = cached >= 0 && now - fs->sm.znodes_at_ms < 2000;
    pthread_mutex_unlock(&fs->sm.mu);
    if (fresh)
        return cached;
    char server[300] = "";
    struct sess *s = sess_get(fs);
    if (s)
        zc_server(s->zc, server, sizeof(server));
    sess_put(fs, s);
    long long count = server[0] ? mntr_znodes(server) : -1;
    pthread_mutex_lock(&fs->sm.mu);
    if (count >= 0) {
        fs->sm.znodes = count;
        fs->sm.znodes_at_ms = now;
    } else {
        count = fs->sm.znodes;
    }
    pthread_mutex_unlock(&fs->sm.mu);
    return count;
}
