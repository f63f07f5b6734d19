/* Session tracker. Expiry is found by a scan each tick: simple, and cheap for the session
 * counts a coordination service sees (thousands); buckets can replace it if that changes. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

void session_tracker_init(struct session_tracker *t, uint32_t server_id, uint64_t wall_ms)
{
    memset(t, 0, sizeof(*t));
    t->next_id = ((wall_ms << 24) >> 8) | ((uint64_t)server_id << 56);
    if (t->next_id == 0)
        t->next_id = 1;
}

void session_tracker_close(struct session_tracker *t)
{
    struct session *s, *tmp;
    HASH_ITER(hh, t->sessions, s, tmp)
    {
        HASH_DEL(t->sessions, s);
        free(s);
    }
}

uint64_t session_next_id(struct session_tracker *t)
{
    uint64_t id;
    do {
        id = t->next_id++;
    } while (id == 0 || session_get(t, id));
    return id;
}

struct session *session_add(struct session_tracker *t, uint64_t id, int32_t timeout_ms,
                            uint64_t now_ms)
{
    struct session *s = session_get(t, id);
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return NULL;
        s->id = id;
        HASH_ADD(hh, t->sessions, id, sizeof(s->id), s);
    }
    s->timeout_ms = timeout_ms;
    session_touch(s, now_ms);
    return s;
}

struct session *session_get(struct session_tracker *t, uint64_t id)
{
    struct session *s = NULL;
    HASH_FIND(hh, t->sessions, &id, sizeof(id), s);
    return s;
}

void session_touch(struct session *s, uint64_t now_ms)
{
    s->expires_ms = now_ms + (uint64_t)s->timeout_ms;
}

void session_remove(struct session_tracker *t, uint64_t id)
{
    struct session *s = session_get(t, id);
    if (s) {
        HASH_DEL(t->sessions, s);
        free(s);
    }
}

void session_expired(struct session_tracker *t, uint64_t now_ms,
                     void (*cb)(void *arg, struct session *s), void *arg)
{
    struct session *s, *tmp;
    HASH_ITER(hh, t->sessions, s, tmp)
    {
        if (!s->closing && s->expires_ms <= now_ms)
            cb(arg, s);
    }
}

uint32_t session_count(const struct session_tracker *t)
{
    return HASH_COUNT(t->sessions);
}
