/* Coalesced stream writes: bytes sent to a stream during one loop iteration go out in one
 * uv_write just before the loop next waits for I/O, so a burst of replies, proposals or
 * acks costs one system call and one wake-up of the reader instead of one per message. */
#ifndef ZKFS_OUTBUF_H
#define ZKFS_OUTBUF_H

#include <stddef.h>
#include <uv.h>

struct outbuf;

/* One per loop (or per owner on a loop): the prepare handle and the streams with bytes
 * waiting for it. Caller-allocated. */
struct outq {
    uv_prepare_t prepare;
    struct outbuf *head; /* streams with pending bytes */
};

/*
 * Called once per completed uv_write of the stream (status 0, or a negative libuv error:
 * the stream is broken and its owner should close it). May close the stream.
 */
typedef void (*outbuf_done_cb)(struct outbuf *b, int status);

/* The bytes waiting for one stream. Lives inside the struct that owns the stream. */
struct outbuf {
    struct outq *q;
    uv_stream_t *stream; /* borrowed */
    outbuf_done_cb on_done;
    unsigned char *data; /* pending bytes, not yet handed to uv_write */
    size_t len, cap;
    struct outbuf *prev, *next; /* in q's list while len > 0 */
    int queued;
};

void outq_init(struct outq *q, uv_loop_t *loop);
/* Closes the prepare handle; close_cb as for uv_close (may be NULL). Every outbuf of q
 * must have been closed. */
void outq_close(struct outq *q, uv_close_cb close_cb);

void outbuf_init(struct outbuf *b, struct outq *q, uv_stream_t *stream, outbuf_done_cb on_done);
/* Hands pending bytes to uv_write (which writes what the socket takes at once, so a reply
 * sent just before closing still goes out) and leaves q's list; call before uv_close of the
 * stream. Every write handed to libuv completes through on_done (UV_ECANCELED if the stream
 * closed first), before the stream's close callback. */
void outbuf_close(struct outbuf *b);
/* Appends a then b (either may be empty; both copied). 0 or -ENOMEM. */
int outbuf_add(struct outbuf *b, const void *a, size_t alen, const void *c, size_t clen);
/* Bytes not yet written: pending here plus libuv's write queue. */
size_t outbuf_queued(const struct outbuf *b);
/* Hands the pending bytes to uv_write now rather than before the next poll. */
void outbuf_flush(struct outbuf *b);

#endif
