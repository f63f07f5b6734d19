/* Length-prefixed frames: a 4-byte big-endian length, then that many bytes. */
#ifndef ZKFS_FRAME_H
#define ZKFS_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Accumulates bytes read from a stream and cuts them into frames. */
struct frame_reader {
    uint8_t *buf;
    size_t start; /* offset of the first unconsumed byte */
    size_t len;   /* unconsumed bytes from start */
    size_t cap;
    size_t handed; /* bytes of the frame handed out last, dropped at the next call */
    size_t max_frame; /* a length prefix above this is an error */
};

void frame_reader_init(struct frame_reader *r, size_t max_frame);
void frame_reader_close(struct frame_reader *r);
/* Appends n bytes (copied). 0 or -ENOMEM. Memory held never exceeds max_frame + 4 + n. */
int frame_reader_feed(struct frame_reader *r, const uint8_t *p, size_t n);
/*
 * Next complete frame: 1 with *payload and *len set (borrowed until the next call to
 * frame_reader_next or feed), 0 if more bytes are needed, or -EMSGSIZE if the length prefix
 * exceeds max_frame (the stream cannot be trusted any more: close it).
 */
int frame_reader_next(struct frame_reader *r, const uint8_t **payload, size_t *len);
/* Discards n bytes from the front (used after a non-frame prefix such as a magic). */
void frame_reader_skip(struct frame_reader *r, size_t n);

static inline void frame_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}
static inline uint32_t frame_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void frame_put_u64(uint8_t *p, uint64_t v)
{
    frame_put_u32(p, (uint32_t)(v >> 32));
    frame_put_u32(p + 4, (uint32_t)v);
}
static inline uint64_t frame_get_u64(const uint8_t *p)
{
    return ((uint64_t)frame_get_u32(p) << 32) | frame_get_u32(p + 4);
}

#endif
