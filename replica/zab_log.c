/* The core's in-memory log window and shared payload buffers. */
#include "zab_internal.h"

#include <stdlib.h>
#include <string.h>

struct zbuf *zbuf_new(const uint8_t *data, size_t len)
{
    struct zbuf *b = malloc(sizeof(*b) + (len ? len : 1));
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    return b;
}

struct zbuf *zbuf_ref(struct zbuf *b)
{
    if (b)
        b->refs++;
    return b;
}

void zbuf_unref(struct zbuf *b)
{
    if (b && --b->refs == 0)
        free(b);
}

int zxid_follows(zxid_t prev, zxid_t next)
{
    if (ZXID_EPOCH(next) == ZXID_EPOCH(prev))
        return ZXID_COUNTER(next) == ZXID_COUNTER(prev) + 1;
    return ZXID_EPOCH(next) > ZXID_EPOCH(prev) && ZXID_COUNTER(next) == 1;
}

struct zentry *zlog_at(const struct zlog *l, size_t i)
{
    return &l->v[l->head + i];
}

zxid_t zlog_last(const struct zlog *l)
{
    return l->len ? zlog_at(l, l->len - 1)->zxid : l->base;
}

int zlog_push(struct zlog *l, zxid_t zxid, struct zbuf *buf, uint64_t seq)
{
    if (l->head + l->len == l->cap) {
        if (l->head > l->cap / 2) {
            memmove(l->v, l->v + l->head, l->len * sizeof(*l->v));
            l->head = 0;
        } else {
            size_t cap = l->cap ? l->cap * 2 : 64;
            struct zentry *v = realloc(l->v, cap * sizeof(*v));
            if (!v)
                return -1;
            l->v = v;
            l->cap = cap;
        }
    }
    struct zentry *e = &l->v[l->head + l->len++];
    e->zxid = zxid;
    e->buf = zbuf_ref(buf);
    e->seq = seq;
    return 0;
}

size_t zlog_after(const struct zlog *l, zxid_t zxid)
{
    size_t lo = 0, hi = l->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (zlog_at(l, mid)->zxid <= zxid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

long zlog_find(const struct zlog *l, zxid_t zxid)
{
    size_t i = zlog_after(l, zxid);
    if (i > 0 && zlog_at(l, i - 1)->zxid == zxid)
        return (long)(i - 1);
    return -1;
}

int zlog_has(const struct zlog *l, zxid_t zxid)
{
    return zxid == l->base || zlog_find(l, zxid) >= 0;
}

void zlog_truncate_after(struct zlog *l, zxid_t zxid)
{
    size_t keep = zlog_after(l, zxid);
    for (size_t i = keep; i < l->len; i++)
        zbuf_unref(zlog_at(l, i)->buf);
    l->len = keep;
}

void zlog_drop_upto(struct zlog *l, zxid_t zxid)
{
    size_t n = zlog_after(l, zxid);
    for (size_t i = 0; i < n; i++)
        zbuf_unref(zlog_at(l, i)->buf);
    l->head += n;
    l->len -= n;
    if (l->len == 0)
        l->head = 0;
    if (zxid > l->base)
        l->base = zxid;
}

void zlog_free(struct zlog *l)
{
    for (size_t i = 0; i < l->len; i++)
        zbuf_unref(zlog_at(l, i)->buf);
    free(l->v);
    memset(l, 0, sizeof(*l));
}
