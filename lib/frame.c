/* Frame reader: consumed bytes are dropped by moving an offset; compaction happens on feed. */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void frame_reader_init(struct frame_reader *r, size_t max_frame)
{
    memset(r, 0, sizeof(*r));
    r->max_frame = max_frame;
}

void frame_reader_close(struct frame_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof(*r));
}

static void drop_handed(struct frame_reader *r)
{
    r->start += r->handed;
    r->len -= r->handed;
    r->handed = 0;
    if (r->len == 0)
        r->start = 0;
}

int frame_reader_feed(struct frame_reader *r, const uint8_t *p, size_t n)
{
    drop_handed(r);
    if (r->start > 0 && r->start + r->len + n > r->cap) {
        memmove(r->buf, r->buf + r->start, r->len);
        r->start = 0;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n)
            cap *= 2;
        uint8_t *nb = realloc(r->buf, cap);
        if (!nb)
            return -ENOMEM;
        r->buf = nb;
        r->cap = cap;
    }
    memcpy(r->buf + r->start + r->len, p, n);
    r->len += n;
    return 0;
}

void frame_reader_skip(struct frame_reader *r, size_t n)
{
    drop_handed(r);
    if (n > r->len)
        n = r->len;
    r->start += n;
    r->len -= n;
}

int frame_reader_next(struct frame_reader *r, const uint8_t **payload, size_t *len)
{
    drop_handed(r);
    if (r->len < 4)
        return 0;
    const uint8_t *p = r->buf + r->start;
    uint32_t flen = frame_get_u32(p);
    if (flen > r->max_frame)
        return -EMSGSIZE;
    if (r->len < 4 + (size_t)flen)
        return 0;
    *payload = p + 4;
    *len = flen;
    r->handed = 4 + (size_t)flen;
    return 1;
}
