/* The peer mesh: dial lower ids, accept higher ids, frames both ways, redial with backoff. */
#include "peer.h"

#include "frame.h"
#include "outbuf.h"
#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEER_MAGIC "zkfp"
#define PEER_VERSION 1u
#define HELLO_LEN 12
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define MAX_WRITE_QUEUE (64u << 20) /* a peer that reads nothing loses its connection */

struct peer_net;
struct peer;

struct link {
    uv_tcp_t tcp;
    struct outbuf out; /* messages, written once per loop iteration */
    uv_connect_t connect;
    struct peer_net *net;
    struct peer *peer; /* accepted links: set by the hello */
    struct frame_reader rd;
    int up;
    int closing;
    int poke;                 /* only says hello to a larger id, which then dials me (see poke) */
    struct link *prev, *next; /* every open link, for stop */
};

struct peer {
    uint32_t id;
    struct sockaddr_storage addr;
    int dial; /* we dial it (its id is smaller) */
    struct link *link;
    uv_timer_t redial;
    int backoff_ms;
    int dialing; /* a connect is in flight */
    struct peer_net *net;
};

struct peer_net {
    uv_loop_t *loop;
    struct outq outq;
    uv_tcp_t listener;
    uint32_t myid;
    struct peer peers[CONFIG_MAX_SERVERS];
    int n_peers;
    peer_recv_cb on_recv;
    peer_link_cb on_link;
    void *arg;
    struct link *links;
    int handles; /* open uv handles: the struct goes with the last one */
    int stopping;
};

static void handle_closed(uv_handle_t *h)
{
    struct peer_net *n = h->data;
    if (--n->handles == 0 && n->stopping)
        free(n);
}

static struct peer *find_peer(struct peer_net *n, uint32_t id)
{
    for (int i = 0; i < n->n_peers; i++)
        if (n->peers[i].id == id)
            return &n->peers[i];
    return NULL;
}

static void schedule_redial(struct peer *p);
static void dial(struct peer *p);

static void link_closed(uv_handle_t *h)
{
    struct link *l = h->data;
    struct peer_net *n = l->net;
    frame_reader_close(&l->rd);
    free(l);
    if (--n->handles == 0 && n->stopping)
        free(n);
}

static void link_close(struct link *l)
{
    if (l->closing)
        return;
    l->closing = 1;
    if (l->prev)
        l->prev->next = l->next;
    else
        l->net->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    struct peer *p = l->peer;
    if (p && p->link == l) {
        p->link = NULL;
        if (l->up && !l->net->stopping) {
            LOG_INFO("peer %u: connection lost", p->id);
            l->net->on_link(l->net->arg, p->id, 0);
        }
        if (p->dial)
            schedule_redial(p);
    }
    outbuf_close(&l->out);
    uv_close((uv_handle_t *)&l->tcp, link_closed);
}

static void on_out_done(struct outbuf *b, int status)
{
    struct link *l = (struct link *)((char *)b - offsetof(struct link, out));
    if (status < 0 && !l->closing)
        link_close(l);
}

static int link_write(struct link *l, const uint8_t *prefix, size_t plen, const uint8_t *data,
                      size_t len)
{
    if (outbuf_queued(&l->out) > MAX_WRITE_QUEUE) {
        LOG_WARN("peer %u: not reading; dropping the connection", l->peer ? l->peer->id : 0);
        link_close(l);
        return -ENOTCONN;
    }
    return outbuf_add(&l->out, prefix, plen, data, len);
}

int peer_send(struct peer_net *n, uint32_t to, const uint8_t *frame, size_t len)
{
    struct peer *p = find_peer(n, to);
    if (!p || !p->link || !p->link->up || p->link->closing)
        return -ENOTCONN;
    if (len > PEER_MAX_FRAME)
        return -EMSGSIZE;
    uint8_t hdr[4];
    frame_put_u32(hdr, (uint32_t)len);
    return link_write(p->link, hdr, 4, frame, len);
}

size_t peer_queued(struct peer_net *n, uint32_t id)
{
    struct peer *p = find_peer(n, id);
    if (!p || !p->link || p->link->closing)
        return 0;
    return outbuf_queued(&p->link->out);
}

int peer_up(struct peer_net *n, uint32_t id)
{
    struct peer *p = find_peer(n, id);
    return p && p->link && p->link->up && !p->link->closing;
}

void peer_drop(struct peer_net *n, uint32_t id)
{
    struct peer *p = find_peer(n, id);
    if (p && p->link)
        link_close(p->link);
}

static void link_up(struct link *l, struct peer *p)
{
    if (p->link && p->link != l) {
        /* A newer connection replaces the old one (the peer restarted or redialled). */
        struct link *old = p->link;
        old->peer = NULL;
        p->link = NULL;
        if (old->up)
            l->net->on_link(l->net->arg, p->id, 0);
        link_close(old);
    }
    l->peer = p;
    l->up = 1;
    p->link = l;
    p->backoff_ms = BACKOFF_MIN_MS;
    LOG_INFO("peer %u: connected", p->id);
    l->net->on_link(l->net->arg, p->id, 1);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h, (void)suggested;
    static char rbuf[64 * 1024];
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

/* The accepting side's first 12 bytes: magic, version, the dialer's id. -1 closes the link with
 * a warning, -2 quietly. */
static int read_hello(struct link *l)
{
    struct peer_net *n = l->net;
    if (l->rd.len < HELLO_LEN)
        return 0;
    const uint8_t *p = l->rd.buf + l->rd.start;
    uint32_t version = frame_get_u32(p + 4), id = frame_get_u32(p + 8);
    struct peer *peer = find_peer(n, id);
    if (memcmp(p, PEER_MAGIC, 4) != 0 || version != PEER_VERSION || !peer) {
        LOG_WARN("peer connection with a bad hello (id %u, version %u); closing", id, version);
        return -1;
    }
    if (peer->dial) {
        /* A poke: that peer has just started and I dial it, now rather than when my backoff
         * says (ZooKeeper's QuorumCnxManager also drops a connection from a smaller id and
         * dials back). */
        if (!peer->link && !peer->dialing && !n->stopping) {
            uv_timer_stop(&peer->redial);
            peer->backoff_ms = BACKOFF_MIN_MS;
            dial(peer);
        }
        return -2;
    }
    frame_reader_skip(&l->rd, HELLO_LEN);
    link_up(l, peer);
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct link *l = s->data;
    if (nread < 0) {
        link_close(l);
        return;
    }
    if (nread == 0 || l->closing || l->poke)
        return; /* a poke link carries nothing back; the peer closes it after my hello */
    if (frame_reader_feed(&l->rd, (const uint8_t *)buf->base, (size_t)nread)) {
        link_close(l);
        return;
    }
    if (!l->up && read_hello(l) < 0) {
        link_close(l);
        return;
    }
    const uint8_t *f;
    size_t len;
    int rc;
    while (l->up && !l->closing && (rc = frame_reader_next(&l->rd, &f, &len)) == 1) {
        if (l->net->on_recv(l->net->arg, l->peer->id, f, len)) {
            LOG_WARN("peer %u: malformed message; dropping the connection", l->peer->id);
            link_close(l);
            return;
        }
    }
    if (l->up && !l->closing && rc < 0) {
        LOG_WARN("peer %u: frame over the limit; dropping the connection", l->peer->id);
        link_close(l);
    }
}

static struct link *link_new(struct peer_net *n)
{
    struct link *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->net = n;
    l->next = n->links;
    if (n->links)
        n->links->prev = l;
    n->links = l;
    uv_tcp_init(n->loop, &l->tcp);
    l->tcp.data = l;
    outbuf_init(&l->out, &n->outq, (uv_stream_t *)&l->tcp, on_out_done);
    n->handles++;
    frame_reader_init(&l->rd, PEER_MAX_FRAME);
    return l;
}

static void on_connected(uv_connect_t *req, int status)
{
    struct link *l = req->data;
    struct peer *p = l->peer;
    if (l->poke) {
        l->peer = NULL; /* never up: nothing to report, never redialled */
        if (status < 0 || l->closing || l->net->stopping) {
            link_close(l);
            return;
        }
    } else if (p) {
        p->dialing = 0;
    }
    if (status < 0 || l->closing || l->net->stopping) {
        l->peer = NULL; /* never up: nothing to report */
        if (p && !l->net->stopping)
            schedule_redial(p);
        link_close(l);
        return;
    }
    uint8_t hello[HELLO_LEN];
    memcpy(hello, PEER_MAGIC, 4);
    frame_put_u32(hello + 4, PEER_VERSION);
    frame_put_u32(hello + 8, l->net->myid);
    uv_tcp_nodelay(&l->tcp, 1);
    if (link_write(l, hello, HELLO_LEN, NULL, 0)) {
        if (l->poke) {
            link_close(l);
            return;
        }
        schedule_redial(p);
        return;
    }
    if (l->poke) {
        uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, on_read); /* to see it close */
        return;
    }
    l->peer = NULL;
    link_up(l, p);
    uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, on_read);
}

static void dial(struct peer *p)
{
    struct peer_net *n = p->net;
    if (n->stopping || p->link)
        return;
    struct link *l = link_new(n);
    if (!l) {
        schedule_redial(p);
        return;
    }
    l->peer = p; /* remembered for on_connected; not p->link until up */
    l->connect.data = l;
    if (uv_tcp_connect(&l->connect, &l->tcp, (struct sockaddr *)&p->addr, on_connected)) {
        l->peer = NULL;
        link_close(l);
        schedule_redial(p);
        return;
    }
    p->dialing = 1;
}

/* At startup, a hello to each peer with a larger id: those dial me, and may be waiting out a
 * backoff grown while I was down. One try; if it is not up yet, it dials me when it starts. */
static void poke(struct peer *p)
{
    struct link *l = link_new(p->net);
    if (!l)
        return;
    l->poke = 1;
    l->peer = p;
    l->connect.data = l;
    if (uv_tcp_connect(&l->connect, &l->tcp, (struct sockaddr *)&p->addr, on_connected)) {
        l->peer = NULL;
        link_close(l);
    }
}

static void on_redial(uv_timer_t *t)
{
    dial(t->data);
}

static void schedule_redial(struct peer *p)
{
    if (p->net->stopping || uv_is_active((uv_handle_t *)&p->redial))
        return;
    uv_timer_start(&p->redial, on_redial, (uint64_t)p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct peer_net *n = listener->data;
    if (status < 0)
        return;
    struct link *l = link_new(n);
    if (!l)
        return;
    if (uv_accept(listener, (uv_stream_t *)&l->tcp)) {
        link_close(l);
        return;
    }
    uv_tcp_nodelay(&l->tcp, 1);
    uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, on_read);
}

static int resolve(const char *host, int port, struct sockaddr_storage *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    if (getaddrinfo(host, ps, &hints, &res) || !res)
        return -EHOSTUNREACH;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

int peer_net_start(struct peer_net **out, uv_loop_t *loop, const struct config *cfg,
                   peer_recv_cb on_recv, peer_link_cb on_link, void *arg, char **err)
{
    struct peer_net *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    n->loop = loop;
    n->myid = cfg->myid;
    n->on_recv = on_recv;
    n->on_link = on_link;
    n->arg = arg;
    struct sockaddr_storage self;
    int rc = -EINVAL, have_self = 0;
    for (int i = 0; i < cfg->n_servers; i++) {
        const struct config_server *cs = &cfg->servers[i];
        struct sockaddr_storage addr;
        if ((rc = resolve(cs->host, cs->quorum_port, &addr))) {
            if (asprintf(err, "cannot resolve server.%u host %s", cs->id, cs->host) < 0)
                *err = NULL;
            free(n);
            return rc;
        }
        if (cs->id == cfg->myid) {
            self = addr;
            have_self = 1;
            continue;
        }
        struct peer *p = &n->peers[n->n_peers++];
        p->id = cs->id;
        p->addr = addr;
        p->dial = cs->id < cfg->myid;
        p->net = n;
        p->backoff_ms = BACKOFF_MIN_MS;
        uv_timer_init(loop, &p->redial);
        p->redial.data = p;
        n->handles++;
    }
    if (!have_self) {
        if (asprintf(err, "no server.%u line for this replica", cfg->myid) < 0)
            *err = NULL;
        rc = -EINVAL;
        goto fail;
    }
    outq_init(&n->outq, loop);
    n->handles++;
    uv_tcp_init(loop, &n->listener);
    n->listener.data = n;
    n->handles++;
    if ((rc = uv_tcp_bind(&n->listener, (struct sockaddr *)&self, 0)) ||
        (rc = uv_listen((uv_stream_t *)&n->listener, 64, on_connection))) {
        if (asprintf(err, "cannot listen on the quorum port: %s", uv_strerror(rc)) < 0)
            *err = NULL;
        goto fail;
    }
    for (int i = 0; i < n->n_peers; i++) {
        if (n->peers[i].dial)
            dial(&n->peers[i]);
        else
            poke(&n->peers[i]);
    }
    *out = n;
    return 0;
fail:
    peer_net_stop(n);
    return rc;
}

void peer_net_stop(struct peer_net *n)
{
    n->stopping = 1;
    for (int i = 0; i < n->n_peers; i++) {
        struct peer *p = &n->peers[i];
        p->redial.data = n;
        uv_close((uv_handle_t *)&p->redial, handle_closed);
        p->link = NULL;
    }
    while (n->links) {
        n->links->peer = NULL;
        link_close(n->links);
    }
    if (uv_is_active((uv_handle_t *)&n->listener) || n->listener.loop) {
        if (!uv_is_closing((uv_handle_t *)&n->listener)) {
            n->listener.data = n;
            uv_close((uv_handle_t *)&n->listener, handle_closed);
        }
    }
    if (n->outq.prepare.loop && !uv_is_closing((uv_handle_t *)&n->outq.prepare)) {
        n->outq.prepare.data = n;
        outq_close(&n->outq, handle_closed);
    }
    if (n->handles == 0)
        free(n);
}
