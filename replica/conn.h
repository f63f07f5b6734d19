/* One client connection on the client port: protocol detection, the ordered request queue. */
#ifndef ZKFS_CONN_H
#define ZKFS_CONN_H

#include "acl.h"
#include "frame.h"
#include "outbuf.h"
#include "request.h"
#include "watch.h"

#include <uv.h>

struct server;

enum conn_proto { CONN_UNKNOWN = 0, CONN_NATIVE, CONN_JUTE, CONN_4LW };

struct conn {
    struct server *srv;
    uv_tcp_t tcp;
    struct outbuf out; /* replies and events, written once per loop iteration */
    enum conn_proto proto;
    struct frame_reader rd;
    struct watch_owner watches;
    struct auth_info auth;
    uint64_t session_id; /* 0 until connected */
    int32_t timeout_ms;
    struct request *q_head, *q_tail; /* requests in arrival order, replied in that order */
    uint32_t q_len;
    size_t q_bytes; /* wire bytes of the queued requests */
    char peer[64];
    uint64_t received, sent;
    uint64_t established_ms;
    int64_t last_zxid;
    int closing;
    int paused;
    struct {
        int connected;      /* the ConnectRequest has been read */
        int readonly_field; /* it carried readOnly: the ConnectResponse does too */
    } jute;
    struct conn *prev, *next;
};

/* Accepts a connection from the listener. */
void conn_accept(struct server *s, uv_stream_t *listener);
/* The server finished r (a write, sync or connect): send what can be sent in order. */
void conn_request_done(struct conn *c, struct request *r);
/* Watch delivery (watch_deliver_cb). */
void conn_deliver_event(struct watch_owner *o, int type, const char *path, int64_t zxid, void *arg);
/* Closes the connection (idempotent); its session stays until it expires. */
void conn_close(struct conn *c);
/* Sends bytes (copied) on the connection. */
void conn_send(struct conn *c, const uint8_t *buf, size_t len);

/* Native protocol codec (native.c). */
int native_decode(struct server *s, const uint8_t *buf, size_t len, struct request **out);
/* Encodes the reply to r: for reads it runs the read against the tree (and registers watches
 * through c); writes use r->results. *buf is malloc'd with the 4-byte frame length. */
int native_encode_reply(struct conn *c, struct request *r, uint8_t **buf, size_t *len);
int native_encode_event(int type, const char *path, int64_t zxid, uint8_t **buf, size_t *len);

/* Four-letter words (fourlw.c): the answer to cmd, malloc'd; NULL if cmd is not one. */
char *fourlw_answer(struct server *s, const char *cmd);
int fourlw_known(const char *cmd);

#endif
