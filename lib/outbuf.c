/* Coalesced stream writes, flushed from a uv_prepare handle (see outbuf.h). */
#include "outbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OUTBUF_MIN_CAP 4096

struct outbuf_write {
    uv_write_t req;
    struct outbuf *b;
    unsigned char *data;
};

static void on_written(uv_write_t *req, int status)
{
    struct outbuf_write *w = (struct outbuf_write *)req;
    struct outbuf *b = w->b;
    free(w->data);
    free(w);
    b->on_done(b, status);
}

static void unqueue(struct outbuf *b)
{
    if (!b->queued)
        return;
    if (b->prev)
        b->prev->next = b->next;
    else
        b->q->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
    b->queued = 0;
    if (!b->q->head)
        uv_prepare_stop(&b->q->prepare);
}

void outbuf_flush(struct outbuf *b)
{
    unqueue(b);
    if (!b->len)
        return;
    struct outbuf_write *w = malloc(sizeof(*w));
    if (!w) {
        /* No memory to track the write: the stream cannot go on without these bytes. */
        b->len = 0;
        b->on_done(b, UV_ENOMEM);
        return;
    }
    w->b = b;
    w->data = b->data;
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)b->len);
    b->data = NULL;
    b->len = b->cap = 0;
    int rc = uv_write(&w->req, b->stream, &buf, 1, on_written);
    if (rc) {
        free(w->data);
        free(w);
        b->on_done(b, rc);
    }
}

static void on_prepare(uv_prepare_t *h)
{
    struct outq *q = h->data;
    while (q->head)
        outbuf_flush(q->head);
}

void outq_init(struct outq *q, uv_loop_t *loop)
{
    uv_prepare_init(loop, &q->prepare);
    q->prepare.data = q;
    q->head = NULL;
}

void outq_close(struct outq *q, uv_close_cb close_cb)
{
    uv_close((uv_handle_t *)&q->prepare, close_cb);
}

void outbuf_init(struct outbuf *b, struct outq *q, uv_stream_t *stream, outbuf_done_cb on_done)
{
    memset(b, 0, sizeof(*b));
    b->q = q;
    b->stream = stream;
    b->on_done = on_done;
}

void outbuf_close(struct outbuf *b)
{
    outbuf_flush(b);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int outbuf_add(struct outbuf *b, const void *a, size_t alen, const void *c, size_t clen)
{
    size_t need = b->len + alen + clen;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : OUTBUF_MIN_CAP;
        while (cap < need)
            cap *= 2;
        unsigned char *p = realloc(b->data, cap);
        if (!p)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    if (alen)
        memcpy(b->data + b->len, a, alen);
    if (clen)
        memcpy(b->data + b->len + alen, c, clen);
    b->len = need;
    if (!b->queued) {
        b->queued = 1;
        b->prev = NULL;
        b->next = b->q->head;
        if (b->q->head)
            b->q->head->prev = b;
        else
            uv_prepare_start(&b->q->prepare, on_prepare);
        b->q->head = b;
    }
    return 0;
}

size_t outbuf_queued(const struct outbuf *b)
{
    return b->len + uv_stream_get_write_queue_size(b->stream);
}
