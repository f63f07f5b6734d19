/* libFuzzer target for the jute (ZooKeeper wire protocol) decoder. An input whose first byte
 * is even is a connection's byte stream after that byte: frames of a 4-byte length and a
 * record, cut as the replica cuts them (same frame limit), the first decoded as a
 * ConnectRequest and the others as requests until one is malformed (the connection would
 * close). An odd first byte makes the rest one request frame's payload, so that the fuzzer
 * reaches deep into single records quickly. Each decoded request's strings and data are
 * written back with the encoder, which must accept whatever the decoder produced. */
#include "frame.h"
#include "jute.h"
#include "request.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FRAME ((1u << 20) + (64u << 10)) /* the replica's default data limit + overhead */

static void echo(const struct req_op_args *a, struct jute_out *o)
{
    jute_put_int(o, a->op);
    jute_put_string(o, a->path);
    jute_put_buffer(o, a->data, a->data_len);
    for (uint32_t i = 0; i < a->n_acls; i++) {
        jute_put_int(o, (int32_t)a->acls[i].perms);
        jute_put_string(o, a->acls[i].scheme);
        jute_put_string(o, a->acls[i].id);
    }
}

/* Re-encodes what was decoded; strings must be NUL-terminated and lengths consistent. */
static void check_request(const struct request *r)
{
    struct jute_out o;
    jute_out_init(&o);
    echo(&r->args, &o);
    for (uint32_t i = 0; i < r->n_ops; i++)
        echo(&r->ops[i], &o);
    for (int k = 0; k < 5; k++)
        for (uint32_t i = 0; i < r->n_watch_paths[k]; i++)
            jute_put_string(&o, r->watch_paths[k][i]);
    uint8_t *buf;
    size_t len;
    if (jute_out_finish(&o, &buf, &len) == 0) {
        assert(len >= 4 && frame_get_u32(buf) == len - 4);
        free(buf);
    }
}

static int decode_one(const uint8_t *p, size_t n, int first)
{
    struct request *r = NULL;
    int readonly = 0;
    int rc = first ? jute_decode_connect(p, n, &r, &readonly) : jute_decode(p, n, &r);
    if (rc == 0) {
        assert(r != NULL);
        check_request(r);
        request_free(r);
    } else {
        assert(r == NULL);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1) {
        decode_one(data + 1, size - 1, 0);
        return 0;
    }
    struct frame_reader rd;
    frame_reader_init(&rd, MAX_FRAME);
    if (frame_reader_feed(&rd, data + 1, size - 1) == 0) {
        const uint8_t *p;
        size_t n;
        int first = 1;
        while (frame_reader_next(&rd, &p, &n) == 1) {
            if (decode_one(p, n, first))
                break;
            first = 0;
        }
    }
    frame_reader_close(&rd);
    return 0;
}
