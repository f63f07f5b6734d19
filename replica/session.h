/* Session liveness: who is attached where and when each session expires. */
#ifndef ZKFS_SESSION_H
#define ZKFS_SESSION_H

#include <stdint.h>
#include <uthash.h>

struct conn;

struct session {
    uint64_t id;
    int32_t timeout_ms;
    uint64_t expires_ms; /* monotonic ms */
    int closing;         /* close or expiry prepared: no new requests */
    struct conn *conn;   /* attached connection, or NULL */
    UT_hash_handle hh;
};

struct session_tracker {
    struct session *sessions;
    uint64_t next_id;
};

/* next_id seeded as ZooKeeper: ((now_ms << 24) >> 8) | (server_id << 56). */
void session_tracker_init(struct session_tracker *t, uint32_t server_id, uint64_t wall_ms);
void session_tracker_close(struct session_tracker *t);
uint64_t session_next_id(struct session_tracker *t);

/* Adds (or refreshes) a tracked session expiring timeout_ms after now. NULL on ENOMEM. */
struct session *session_add(struct session_tracker *t, uint64_t id, int32_t timeout_ms,
                            uint64_t now_ms);
struct session *session_get(struct session_tracker *t, uint64_t id);
void session_touch(struct session *s, uint64_t now_ms);
void session_remove(struct session_tracker *t, uint64_t id);
/* Calls cb for each session whose deadline has passed and is not already closing. */
void session_expired(struct session_tracker *t, uint64_t now_ms,
                     void (*cb)(void *arg, struct session *s), void *arg);
uint32_t session_count(const struct session_tracker *t);

#endif
