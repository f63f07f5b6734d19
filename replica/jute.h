/* ZooKeeper's client wire protocol (jute): records, request decoding, reply and event encoding.
 * The format is apache/zookeeper's zookeeper.jute (records), ZooDefs.OpCode (opcodes) and
 * ClientCnxn (special xids); every frame is a 4-byte big-endian length and one record. */
#ifndef ZKFS_JUTE_H
#define ZKFS_JUTE_H

#include "request.h"
#include "tree.h"

#include <stddef.h>
#include <stdint.h>

struct conn;

/* ZooDefs.OpCode */
enum jute_op {
    JUTE_OP_NOTIFICATION = 0,
    JUTE_OP_CREATE = 1,
    JUTE_OP_DELETE = 2,
    JUTE_OP_EXISTS = 3,
    JUTE_OP_GET_DATA = 4,
    JUTE_OP_SET_DATA = 5,
    JUTE_OP_GET_ACL = 6,
    JUTE_OP_SET_ACL = 7,
    JUTE_OP_GET_CHILDREN = 8,
    JUTE_OP_SYNC = 9,
    JUTE_OP_PING = 11,
    JUTE_OP_GET_CHILDREN2 = 12,
    JUTE_OP_CHECK = 13,
    JUTE_OP_MULTI = 14,
    JUTE_OP_CREATE2 = 15,
    JUTE_OP_RECONFIG = 16,
    JUTE_OP_CHECK_WATCHES = 17,
    JUTE_OP_REMOVE_WATCHES = 18,
    JUTE_OP_CREATE_CONTAINER = 19,
    JUTE_OP_DELETE_CONTAINER = 20,
    JUTE_OP_CREATE_TTL = 21,
    JUTE_OP_MULTI_READ = 22,
    JUTE_OP_AUTH = 100,
    JUTE_OP_SET_WATCHES = 101,
    JUTE_OP_SASL = 102,
    JUTE_OP_GET_EPHEMERALS = 103,
    JUTE_OP_GET_ALL_CHILDREN_NUMBER = 104,
    JUTE_OP_SET_WATCHES2 = 105,
    JUTE_OP_ADD_WATCH = 106,
    JUTE_OP_WHO_AM_I = 107,
    JUTE_OP_CREATE_SESSION = -10,
    JUTE_OP_CLOSE_SESSION = -11,
    JUTE_OP_ERROR = -1,
};

/* ClientCnxn's special xids. */
#define JUTE_XID_NOTIFICATION (-1)
#define JUTE_XID_PING (-2)
#define JUTE_XID_AUTH (-4)
#define JUTE_XID_SET_WATCHES (-8)

/* Count limits; byte lengths are bounded by what is left of the frame. */
#define JUTE_MAX_MULTI_OPS 10000
#define JUTE_MAX_ACLS 1024
#define JUTE_MAX_WATCHES 100000 /* paths in one setWatches, all kinds together */

/* ---- reading: a cursor over one frame ---- */

/* After the first error every get returns 0 (or an empty value) and err stays set, so a
 * decoder may read a whole record and check err once. */
struct jute_in {
    const uint8_t *p;
    size_t left;
    int err; /* 0, or ZE_MARSHALLINGERROR once a field did not fit */
    int cut; /* a string held a NUL byte (it reads as "") */
};

void jute_in_init(struct jute_in *in, const uint8_t *buf, size_t len);
int32_t jute_get_int(struct jute_in *in);
int64_t jute_get_long(struct jute_in *in);
int jute_get_bool(struct jute_in *in);
/* ustring: a malloc'd NUL-terminated copy in *out (caller frees). A null string (length -1)
 * reads as "", and so does one holding a NUL byte (which could otherwise name another node).
 * 0, ZE_MARSHALLINGERROR or -ENOMEM (then *out is NULL). */
int jute_get_string(struct jute_in *in, char **out);
/* buffer: malloc'd copy in *out (NULL when empty or null), caller frees. Same returns. */
int jute_get_buffer(struct jute_in *in, uint8_t **out, uint32_t *len);
/* A vector's count: null (-1) reads as 0. A count above max, or one whose elements (each at
 * least min_size bytes) cannot fit in what is left, is ZE_MARSHALLINGERROR: checked before
 * the caller allocates. */
int jute_get_count(struct jute_in *in, uint32_t min_size, uint32_t max, uint32_t *count);

/* ---- writing: a growable frame ---- */

struct jute_out {
    uint8_t *buf; /* starts with 4 bytes kept for the frame length */
    size_t len, cap;
    int oom;
};

void jute_out_init(struct jute_out *o);
void jute_put_int(struct jute_out *o, int32_t v);
void jute_put_long(struct jute_out *o, int64_t v);
void jute_put_bool(struct jute_out *o, int v);
void jute_put_buffer(struct jute_out *o, const uint8_t *p, size_t n);
/* NULL writes a null string (-1). */
void jute_put_string(struct jute_out *o, const char *s);
/* Stat in zookeeper.jute's field order (czxid ... pzxid). */
void jute_put_stat(struct jute_out *o, const struct zstat *st);
/* Fills in the frame length and hands the frame over in *buf (malloc'd, caller frees).
 * 0, or -ENOMEM if any put failed (nothing is handed over then). */
int jute_out_finish(struct jute_out *o, uint8_t **buf, size_t *len);

/* ---- requests (jute.c) ---- */

/* The first frame of a connection: ConnectRequest, which has no RequestHeader. *out is a new
 * REQ_CONNECT request (caller frees); *readonly_field says whether the client sent the
 * trailing readOnly flag (ZooKeeper's ProtocolManager answers in the same form). 0,
 * ZE_MARSHALLINGERROR (close the connection) or -ENOMEM. */
int jute_decode_connect(const uint8_t *buf, size_t len, struct request **out, int *readonly_field);
/* Every later frame: RequestHeader and the opcode's record, as a new request (caller frees).
 * Unknown opcodes decode as REQ_UNKNOWN (answered UNIMPLEMENTED, then the connection closes,
 * as ZooKeeper's UnimplementedRequestProcessor). Trailing bytes are ignored, as ZooKeeper
 * does. 0, ZE_MARSHALLINGERROR (close the connection) or -ENOMEM. */
int jute_decode(const uint8_t *buf, size_t len, struct request **out);

/* ---- replies and events (jute_ops.c) ---- */

/* The reply to r, the request at the head of c's queue: a read is run now against the tree
 * (watches registered through c). *buf is a malloc'd frame; *close_after says the connection
 * must close once it is sent (a refused connect, closeSession, failed auth, unknown opcode).
 * 0 or -ENOMEM. */
int jute_encode_reply(struct conn *c, struct request *r, uint8_t **buf, size_t *len,
                      int *close_after);
/* A watch notification (xid -1) whose header carries the triggering zxid (ZOOKEEPER-4655). */
int jute_encode_event(int type, const char *path, int64_t zxid, uint8_t **buf, size_t *len);

#endif
