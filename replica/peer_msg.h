/* The peer protocol codec (proto/peer.proto): ZAB messages and the cluster's request plumbing
 * as plain structs on one side, frames on the other. */
#ifndef ZKFS_PEER_MSG_H
#define ZKFS_PEER_MSG_H

#include "acl.h"
#include "request.h"
#include "zab.h"

#include <stddef.h>
#include <stdint.h>

enum peer_msg_kind {
    PEER_ZAB = 1,
    PEER_FORWARD,
    PEER_FORWARD_ERROR,
    PEER_SYNC_POINT,
    PEER_TOUCH,
    PEER_SNAP_CHUNK,
    PEER_SNAP_END,
};

/* One entry of a snapshot: a node (key = its path) or a session (key = 8-byte id). */
struct peer_snap_entry {
    int is_session;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *rec;
    size_t rec_len;
};

/*
 * A decoded message. Every pointer is owned by the struct (or by the protobuf message it was
 * decoded from) and valid until peer_msg_free. For PEER_FORWARD, req is a request_new()'d
 * request the receiver takes over (set it to NULL to keep it); auth holds the client's ids.
 */
struct peer_msg {
    enum peer_msg_kind kind;
    struct zab_msg zab;
    uint64_t cxid;
    struct request *req;
    struct auth_info auth;
    int err;
    int32_t *op_errs;
    size_t n_op_errs;
    zxid_t zxid;
    uint64_t *sessions;
    size_t n_sessions;
    struct peer_snap_entry *entries;
    size_t n_entries;
    uint64_t count;
    void *pb_; /* the decoded protobuf message */
};

/* Decodes a frame. 0, or ZE_MARSHALLINGERROR for anything malformed (drop the link), or
 * -ENOMEM. */
int peer_msg_decode(const uint8_t *buf, size_t len, struct peer_msg *out);
void peer_msg_free(struct peer_msg *m);

/* Encoders: *buf malloc'd (no length prefix: the mesh adds it). 0 or -ENOMEM. */
int peer_encode_zab(const struct zab_msg *m, uint8_t **buf, size_t *len);
int peer_encode_forward(uint64_t cxid, const struct request *r, const struct auth_info *auth,
                        uint8_t **buf, size_t *len);
int peer_encode_forward_error(uint64_t cxid, const struct request *r, uint8_t **buf, size_t *len);
int peer_encode_sync_point(uint64_t cxid, zxid_t zxid, uint8_t **buf, size_t *len);
int peer_encode_touch(const uint64_t *sessions, size_t n, uint8_t **buf, size_t *len);
int peer_encode_snap_chunk(const struct peer_snap_entry *e, size_t n, uint8_t **buf, size_t *len);
int peer_encode_snap_end(zxid_t zxid, uint64_t count, uint8_t **buf, size_t *len);

#endif
