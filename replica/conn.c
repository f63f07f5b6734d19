/* Client connections: protocol detection on the first bytes, requests queued and answered in
 * arrival order, back-pressure, and teardown that leaves in-flight writes to the server. */
#include "conn.h"

#include "cluster.h"
#include "err.h"
#include "jute.h"
#include "log.h"
#include "read.h"
#include "server.h"

#include <stdlib.h>
#include <string.h>

#define CONN_MAX_QUEUE 1024              /* requests queued before reading pauses */
#define CONN_MAX_WRITE_QUEUE (16u << 20) /* unsent reply bytes before reading pauses */
#define CONN_FRAME_OVERHEAD (64u << 10)  /* allowed above the data limit in one frame */
#define CONN_MAX_QUEUE_BYTES (16u << 20) /* request bytes queued before reading pauses */

struct write_req {
    uv_write_t req;
    struct conn *c;
    uint8_t data[];
};

static void on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    frame_reader_close(&c->rd);
    auth_info_free(&c->auth);
    free(c);
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    struct server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    if (c->session_id) {
        struct session *sess = session_get(&s->sessions, c->session_id);
        if (sess && sess->conn == c)
            sess->conn = NULL;
    }
    watch_remove_owner(&s->watches, &c->watches);
    struct request *r = c->q_head;
    while (r) {
        struct request *next = r->next;
        r->next = NULL;
        if (r->submitted && !r->done)
            r->conn = NULL; /* the server frees it when it completes */
        else
            request_free(r);
        r = next;
    }
    c->q_head = c->q_tail = NULL;
    outbuf_close(&c->out);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void maybe_resume(struct conn *c);

static void on_out_done(struct outbuf *b, int status)
{
    struct conn *c = (struct conn *)((char *)b - offsetof(struct conn, out));
    if (status < 0) {
        if (!c->closing)
            LOG_DEBUG("write to %s failed: %s", c->peer, uv_strerror(status));
        conn_close(c);
        return;
    }
    maybe_resume(c);
}

void conn_send(struct conn *c, const uint8_t *buf, size_t len)
{
    if (c->closing)
        return;
    /* On failure the connection is not closed here: callers may be walking the watch
     * table. It closes when the write or the read side fails. */
    if (outbuf_add(&c->out, buf, len, NULL, 0)) {
        LOG_ERROR("out of memory sending to %s", c->peer);
        return;
    }
    c->sent++;
    c->srv->stats.sent++;
}

static void send_owned(struct conn *c, uint8_t *buf, size_t len)
{
    conn_send(c, buf, len);
    free(buf);
}

void conn_deliver_event(struct watch_owner *o, int type, const char *path, int64_t zxid, void *arg)
{
    (void)arg;
    struct conn *c = (struct conn *)((char *)o - offsetof(struct conn, watches));
    uint8_t *buf;
    size_t len;
    int rc;
    if (c->proto == CONN_JUTE) {
        /* NodeMetaChanged is zkfs's own: ZooKeeper fires nothing for an ACL change, and
         * kind and policy do not exist for jute clients */
        if (type == EV_META_CHANGED)
            return;
        rc = jute_encode_event(type, path, zxid, &buf, &len);
    } else {
        rc = native_encode_event(type, path, zxid, &buf, &len);
    }
    if (rc == 0)
        send_owned(c, buf, len);
}

/* Answers every request at the head of the queue that can be answered: finished writes, and
 * reads once no earlier request of the connection is still in flight (so a client always
 * reads its own writes, and sees a watch event before the data that caused it). */
static void process_queue(struct conn *c)
{
    struct server *s = c->srv;
    struct request *r;
    while (!c->closing && (r = c->q_head)) {
        if (r->submitted && !r->done)
            break;
        uint8_t *buf;
        size_t len;
        int rc, close_after = 0;
        if (c->proto == CONN_JUTE)
            rc = jute_encode_reply(c, r, &buf, &len, &close_after);
        else
            rc = native_encode_reply(c, r, &buf, &len);
        c->q_head = r->next;
        if (!c->q_head)
            c->q_tail = NULL;
        c->q_len--;
        c->q_bytes -= r->wire_len;
        /* after closeSession, or a connect refused as expired (as ZooKeeper), hang up */
        int closing_session = close_after || r->args.op == REQ_CLOSE_SESSION ||
                              (r->args.op == REQ_CONNECT && r->err != 0);
        server_record_latency(s, r->start_us);
        if (r->zxid > (zxid_t)c->last_zxid)
            c->last_zxid = (int64_t)r->zxid;
        request_free(r);
        if (rc) {
            LOG_WARN("cannot encode a reply to %s: %s; closing", c->peer, err_msg(rc));
            conn_close(c);
            return;
        }
        send_owned(c, buf, len);
        if (closing_session) {
            c->session_id = 0;
            conn_close(c);
            return;
        }
    }
    maybe_resume(c);
}

/* Requests pipelined behind a connect that made a new session (ZooKeeper clients send
 * setWatches and auth before the ConnectResponse comes) learn their session now; writes
 * among them go to the server only now. Submitting may complete a request and answer part
 * of the queue at once, so the scan starts again from the head each time. */
static void release_held(struct conn *c)
{
    struct request *r;
    for (r = c->q_head; r; r = r->next)
        if (!r->submitted)
            r->session_id = c->session_id;
    for (;;) {
        for (r = c->q_head; r; r = r->next)
            if (!r->submitted && !r->done &&
                (req_is_write(r->args.op) || r->args.op == REQ_CLOSE_SESSION))
                break;
        if (!r || c->closing)
            return;
        r->submitted = 1;
        server_submit(c->srv, r);
    }
}

void conn_request_done(struct conn *c, struct request *r)
{
    if (r->args.op == REQ_CONNECT && r->err == 0) {
        struct session *sess = session_get(&c->srv->sessions, r->session_id);
        if (sess)
            sess->conn = c;
        c->session_id = r->session_id;
        c->timeout_ms = r->timeout_ms;
        LOG_DEBUG("session 0x%llx established for %s (timeout %d ms)",
                  (unsigned long long)r->session_id, c->peer, r->timeout_ms);
        release_held(c);
    }
    process_queue(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    static char rbuf[64 * 1024];
    (void)h;
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void maybe_pause(struct conn *c)
{
    if (!c->paused && (c->q_len >= CONN_MAX_QUEUE || c->q_bytes >= CONN_MAX_QUEUE_BYTES ||
                       outbuf_queued(&c->out) > CONN_MAX_WRITE_QUEUE)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->paused = 1;
    }
}

static void maybe_resume(struct conn *c)
{
    if (c->paused && !c->closing && c->q_len < CONN_MAX_QUEUE / 2 &&
        c->q_bytes < CONN_MAX_QUEUE_BYTES / 2 &&
        outbuf_queued(&c->out) <= CONN_MAX_WRITE_QUEUE / 2) {
        c->paused = 0;
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
    }
}

/* A connect on an existing session: re-attach it if id and password match. */
static void reattach(struct conn *c, struct request *r)
{
    struct server *s = c->srv;
    struct session *sess = session_get(&s->sessions, r->session_id);
    const struct tree_session *ts = tree_session_get(&s->tree, r->session_id);
    r->done = 1;
    if (!sess || !ts || sess->closing || !r->has_passwd ||
        memcmp(ts->passwd, r->passwd, PASSWD_LEN) != 0) {
        r->err = ZE_SESSIONEXPIRED;
        r->timeout_ms = 0;
        return;
    }
    if (sess->conn && sess->conn != c) {
        LOG_INFO("session 0x%llx moved from %s to %s", (unsigned long long)sess->id,
                 sess->conn->peer, c->peer);
        conn_close(sess->conn);
    }
    sess->conn = c;
    session_touch(sess, server_now_ms());
    c->session_id = sess->id;
    c->timeout_ms = sess->timeout_ms;
    r->timeout_ms = sess->timeout_ms;
    memcpy(r->passwd, ts->passwd, PASSWD_LEN);
    r->has_passwd = 1;
}

static void enqueue(struct conn *c, struct request *r)
{
    r->conn = c;
    r->next = NULL;
    if (c->q_tail)
        c->q_tail->next = r;
    else
        c->q_head = r;
    c->q_tail = r;
    c->q_len++;
    c->q_bytes += r->wire_len;
}

/* Takes one decoded request; 0, or an error that closes the connection. */
static int handle_request(struct conn *c, struct request *r)
{
    struct server *s = c->srv;
    r->start_us = server_now_us();
    r->auth = &c->auth;
    if (r->args.op == REQ_CONNECT) {
        if (s->cluster && !cluster_serving(s->cluster)) {
            /* as ZooKeeper: a replica outside a quorum takes no clients; they try another */
            LOG_INFO("%s: not serving (no quorum); closing", c->peer);
            return ZE_CONNECTIONLOSS;
        }
        if (c->session_id || c->q_head) {
            LOG_WARN("%s: connect on an established connection; closing", c->peer);
            return ZE_MARSHALLINGERROR;
        }
        if (r->last_zxid_seen > (int64_t)s->tree.last_applied) {
            LOG_WARN("%s has seen zxid 0x%llx, ahead of ours 0x%llx; closing", c->peer,
                     (unsigned long long)r->last_zxid_seen,
                     (unsigned long long)s->tree.last_applied);
            return ZE_MARSHALLINGERROR;
        }
        enqueue(c, r);
        if (r->session_id) {
            reattach(c, r);
        } else {
            r->submitted = 1;
            server_submit(s, r);
            return 0;
        }
        return 0;
    }
    /* behind a connect still making its session: held until it is made (release_held) */
    int held = !c->session_id && c->q_head && c->q_head->args.op == REQ_CONNECT;
    if (r->args.op == REQ_SERVER_INFO && !c->session_id && !c->q_head) {
        enqueue(c, r); /* answered at once: a status probe needs no session */
        return 0;
    }
    if (!c->session_id && !held) {
        LOG_WARN("%s: request before connect; closing", c->peer);
        return ZE_MARSHALLINGERROR;
    }
    struct session *sess = session_get(&s->sessions, c->session_id);
    if (sess)
        session_touch(sess, server_now_ms());
    if (s->cluster && c->session_id)
        cluster_touch(s->cluster, c->session_id);
    r->session_id = c->session_id;
    if (r->args.op == REQ_AUTH) {
        /* on arrival: later writes are prepared (ACL-checked) as soon as they arrive */
        r->err = read_auth(c, &r->args);
        r->done = 1;
    }
    enqueue(c, r);
    if (!held && (req_is_write(r->args.op) || r->args.op == REQ_CLOSE_SESSION)) {
        r->submitted = 1;
        server_submit(s, r);
    }
    return 0;
}

static int decode_native(struct conn *c, const uint8_t *p, size_t n, struct request **r)
{
    return native_decode(c->srv, p, n, r);
}

/* ZooKeeper's wire protocol: the first frame is a ConnectRequest, every later one a
 * RequestHeader and a record. */
static int decode_jute(struct conn *c, const uint8_t *p, size_t n, struct request **r)
{
    if (c->jute.connected)
        return jute_decode(p, n, r);
    int rc = jute_decode_connect(p, n, r, &c->jute.readonly_field);
    c->jute.connected = rc == 0;
    return rc;
}

/* Takes every whole frame buffered; malformed input closes this connection only. */
static void handle_frames(struct conn *c,
                          int (*decode)(struct conn *, const uint8_t *, size_t, struct request **))
{
    struct server *s = c->srv;
    const uint8_t *p;
    size_t n;
    int rc;
    while (!c->closing && (rc = frame_reader_next(&c->rd, &p, &n)) == 1) {
        struct request *r = NULL;
        c->received++;
        s->stats.received++;
        rc = decode(c, p, n, &r);
        if (rc == 0) {
            r->wire_len = (uint32_t)n;
            rc = handle_request(c, r);
        } else {
            LOG_WARN("%s: malformed %srequest (%s); closing", c->peer,
                     c->proto == CONN_JUTE ? "ZooKeeper " : "", err_msg(rc));
        }
        if (rc) {
            if (r && !r->conn)
                request_free(r);
            conn_close(c);
            return;
        }
    }
    if (rc < 0 && !c->closing) {
        LOG_WARN("%s: frame length over the limit; closing", c->peer);
        conn_close(c);
        return;
    }
    process_queue(c);
    if (!c->closing)
        maybe_pause(c);
}

static void on_4lw_written(uv_write_t *req, int status)
{
    (void)status;
    struct write_req *w = (struct write_req *)req;
    struct conn *c = w->c;
    free(w);
    conn_close(c);
}

static void answer_4lw(struct conn *c, const char *cmd)
{
    char *out = fourlw_answer(c->srv, cmd);
    if (!out) {
        conn_close(c);
        return;
    }
    size_t len = strlen(out);
    struct write_req *w = malloc(sizeof(*w) + len);
    if (!w) {
        free(out);
        conn_close(c);
        return;
    }
    w->c = c;
    memcpy(w->data, out, len);
    free(out);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_4lw_written)) {
        free(w);
        conn_close(c);
    }
}

/* The first four bytes tell the protocol: "zkfs" native, a zero byte (the high byte of a
 * jute length: a ConnectRequest is far below 16 MiB) ZooKeeper's wire protocol, otherwise a
 * four-letter word. */
static void detect(struct conn *c)
{
    struct server *s = c->srv;
    if (c->rd.len < 4)
        return;
    const char *p = (const char *)c->rd.buf + c->rd.start;
    if (memcmp(p, "zkfs", 4) == 0) {
        c->proto = CONN_NATIVE;
        frame_reader_skip(&c->rd, 4);
        return;
    }
    if (p[0] == 0) {
        c->proto = CONN_JUTE;
        return;
    }
    char cmd[5];
    memcpy(cmd, p, 4);
    cmd[4] = 0;
    c->proto = CONN_4LW;
    if (!fourlw_known(cmd) || !config_4lw_allowed(&s->cfg, cmd)) {
        LOG_INFO("%s: four-letter word '%.4s' is unknown or not whitelisted; closing", c->peer,
                 fourlw_known(cmd) ? cmd : "????");
        conn_close(c);
        return;
    }
    answer_4lw(c, cmd);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread < 0) {
        if (nread != UV_EOF)
            LOG_DEBUG("%s: read failed: %s", c->peer, uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    if (nread == 0 || c->proto == CONN_4LW)
        return;
    if (frame_reader_feed(&c->rd, (const uint8_t *)buf->base, (size_t)nread)) {
        LOG_ERROR("%s: out of memory; closing", c->peer);
        conn_close(c);
        return;
    }
    if (c->proto == CONN_UNKNOWN)
        detect(c);
    if (c->proto == CONN_NATIVE && !c->closing)
        handle_frames(c, decode_native);
    else if (c->proto == CONN_JUTE && !c->closing)
        handle_frames(c, decode_jute);
}

static void peer_name(struct conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    snprintf(c->peer, sizeof(c->peer), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len))
        return;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof(ip));
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
    auth_add(&c->auth, "ip", ip);
}

static int same_ip(const char *a, const char *b)
{
    const char *ca = strrchr(a, ':'), *cb = strrchr(b, ':');
    return ca && cb && ca - a == cb - b && memcmp(a, b, (size_t)(ca - a)) == 0;
}

void conn_accept(struct server *s, uv_stream_t *listener)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        LOG_ERROR("out of memory accepting a connection");
        return;
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    outbuf_init(&c->out, &s->outq, (uv_stream_t *)&c->tcp, on_out_done);
    frame_reader_init(&c->rd, s->cfg.max_data + CONN_FRAME_OVERHEAD);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    c->established_ms = server_now_ms();
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (s->cfg.max_client_cnxns > 0) {
        int same = 0;
        for (struct conn *o = s->conns; o; o = o->next)
            same += same_ip(o->peer, c->peer);
        if (same > s->cfg.max_client_cnxns) {
            LOG_WARN("too many connections from %s (maxClientCnxns=%d); closing", c->peer,
                     s->cfg.max_client_cnxns);
            conn_close(c);
            return;
        }
    }
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}
