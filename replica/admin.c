/* A small HTTP/1.0 responder for operators: one request per connection, bounded input. */
#include "admin.h"

#include "conn.h"
#include "log.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADMIN_MAX_REQUEST 8192

struct admin_conn {
    uv_tcp_t tcp;
    struct admin *a;
    char buf[ADMIN_MAX_REQUEST];
    size_t len;
    int replied;
};

struct admin_write {
    uv_write_t req;
    struct admin_conn *c;
    char data[];
};

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void close_conn(struct admin_conn *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    struct admin_write *w = (struct admin_write *)req;
    close_conn(w->c);
    free(w);
}

static void reply(struct admin_conn *c, int code, const char *reason, const char *type,
                  const char *body)
{
    size_t blen = strlen(body);
    char head[256];
    int hlen = snprintf(head, sizeof(head),
                        "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Connection: close\r\n\r\n",
                        code, reason, type, blen);
    struct admin_write *w = malloc(sizeof(*w) + (size_t)hlen + blen);
    if (!w) {
        close_conn(c);
        return;
    }
    w->c = c;
    memcpy(w->data, head, (size_t)hlen);
    memcpy(w->data + hlen, body, blen);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)((size_t)hlen + blen));
    c->replied = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written)) {
        free(w);
        close_conn(c);
    }
}

/* mntr's "key\tvalue" lines as Prometheus samples: numbers as they are, text as a label. */
static char *metrics(struct server *s)
{
    char *mntr = fourlw_answer(s, "mntr");
    if (!mntr)
        return NULL;
    size_t cap = strlen(mntr) * 2 + 256, len = 0;
    char *out = malloc(cap);
    if (!out) {
        free(mntr);
        return NULL;
    }
    char *save = NULL;
    for (char *line = strtok_r(mntr, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = 0;
        const char *key = line, *val = tab + 1;
        char *end;
        strtod(val, &end);
        int n;
        if (*val && *end == 0 && strncmp(val, "0x", 2) != 0)
            n = snprintf(out + len, cap - len, "%s %s\n", key, val);
        else
            n = snprintf(out + len, cap - len, "%s{value=\"%s\"} 1\n", key, val);
        if (n > 0 && (size_t)n < cap - len)
            len += (size_t)n;
    }
    out[len] = 0;
    free(mntr);
    return out;
}

static void handle(struct admin_conn *c)
{
    struct server *s = c->a->srv;
    char method[8], path[128];
    if (sscanf(c->buf, "%7s %127s", method, path) != 2) {
        reply(c, 400, "Bad Request", "text/plain", "bad request\n");
        return;
    }
    if (strcmp(method, "GET") != 0) {
        reply(c, 405, "Method Not Allowed", "text/plain", "only GET\n");
        return;
    }
    if (!strcmp(path, "/health")) {
        reply(c, 200, "OK", "text/plain", "ok\n");
    } else if (!strcmp(path, "/ready")) {
        /* Standalone: ready once serving. A cluster member will be ready once synced. */
        if (s->stopping)
            reply(c, 503, "Service Unavailable", "text/plain", "stopping\n");
        else
            reply(c, 200, "OK", "text/plain", "ready\n");
    } else if (!strcmp(path, "/metrics")) {
        char *m = metrics(s);
        reply(c, m ? 200 : 500, m ? "OK" : "Internal Server Error", "text/plain; version=0.0.4",
              m ? m : "out of memory\n");
        free(m);
    } else if (!strncmp(path, "/commands/", 10) && fourlw_known(path + 10)) {
        /* The four-letter words, also when the whitelist keeps them off the client port. */
        char *out = fourlw_answer(s, path + 10);
        reply(c, out ? 200 : 500, out ? "OK" : "Internal Server Error", "text/plain",
              out ? out : "");
        free(out);
    } else {
        reply(c, 404, "Not Found", "text/plain", "not found\n");
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct admin_conn *c = h->data;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - 1 - c->len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct admin_conn *c = stream->data;
    if (nread < 0) {
        close_conn(c);
        return;
    }
    c->len += (size_t)nread;
    c->buf[c->len] = 0;
    if (strstr(c->buf, "\r\n\r\n") || strstr(c->buf, "\n\n"))
        handle(c);
    else if (c->len >= sizeof(c->buf) - 1)
        reply(c, 431, "Request Header Fields Too Large", "text/plain", "too large\n");
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct admin *a = listener->data;
    if (status)
        return;
    struct admin_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->a = a;
    uv_tcp_init(listener->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp)) {
        close_conn(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

int admin_start(struct admin *a, struct server *srv, char **err)
{
    memset(a, 0, sizeof(*a));
    a->srv = srv;
    struct sockaddr_storage addr;
    const char *host = srv->cfg.client_addr;
    int port = srv->cfg.admin_port;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)) {
        if (asprintf(err, "admin address %s is not an IP address", host) < 0)
            *err = NULL;
        return -EINVAL;
    }
    uv_tcp_init(srv->loop, &a->listener);
    a->listener.data = a;
    int rc = uv_tcp_bind(&a->listener, (struct sockaddr *)&addr, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&a->listener, 64, on_connection);
    if (rc) {
        if (asprintf(err, "cannot listen on admin port %s:%d: %s", host, port, uv_strerror(rc)) < 0)
            *err = NULL;
        uv_close((uv_handle_t *)&a->listener, NULL);
        return rc;
    }
    a->started = 1;
    LOG_INFO("admin endpoint on http://%s:%d/ (metrics, health, ready)", host, port);
    return 0;
}

void admin_stop(struct admin *a)
{
    if (a->started)
        uv_close((uv_handle_t *)&a->listener, NULL);
    a->started = 0;
}
