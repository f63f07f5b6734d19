/* The peer mesh: one TCP connection between each pair of replicas, carrying opaque frames. */
#ifndef ZKFS_PEER_H
#define ZKFS_PEER_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/*
 * Each replica listens on its quorumPort (the address of its own server.N line) and dials
 * every peer with a smaller id; a connection from a peer with a larger id is accepted after
 * its hello ("zkfp", version, server id). So each pair has exactly one connection, which
 * carries both election and ZAB traffic as length-prefixed frames (4-byte big-endian
 * length). Lost connections are redialled with backoff. At startup a replica also sends its
 * hello once to every peer with a larger id ("poke"): that peer closes the connection and
 * dials back at once, instead of at the end of a backoff grown while this one was down.
 * Connections are FIFO while up; frames queued on a connection that breaks are lost, as with
 * any TCP stream.
 *
 * A connection that sends a bad hello, an unknown id, an oversized frame or anything the
 * upper layer rejects is closed; nothing else is affected.
 */
struct peer_net;

#define PEER_MAX_FRAME (8u << 20)

/* A frame from peer `from` (bytes borrowed for the call). Return non-zero to drop that
 * connection (the frame was malformed). */
typedef int (*peer_recv_cb)(void *arg, uint32_t from, const uint8_t *frame, size_t len);
/* Peer `id`'s connection came up (up=1) or went down (up=0). */
typedef void (*peer_link_cb)(void *arg, uint32_t id, int up);

int peer_net_start(struct peer_net **out, uv_loop_t *loop, const struct config *cfg,
                   peer_recv_cb on_recv, peer_link_cb on_link, void *arg, char **err);
/* Queues a frame (copied) to peer `to`: 0, or -ENOTCONN when there is no live connection
 * (the frame is dropped: the protocol above resends what matters). */
int peer_send(struct peer_net *n, uint32_t to, const uint8_t *frame, size_t len);
/* Bytes queued on the connection to `id` and not yet written (0 when down). */
size_t peer_queued(struct peer_net *n, uint32_t id);
/* Whether the connection to `id` is up. */
int peer_up(struct peer_net *n, uint32_t id);
/* Drops the connection to `id` (it is redialled or re-accepted later). */
void peer_drop(struct peer_net *n, uint32_t id);
/* Closes everything; the memory goes once the loop has run the close callbacks. */
void peer_net_stop(struct peer_net *n);

#endif
