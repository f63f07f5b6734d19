/* Watches: ZooKeeper's one-shot data/child watches and persistent (recursive) watches. */
#ifndef ZKFS_WATCH_H
#define ZKFS_WATCH_H

#include <stdint.h>
#include <uthash.h>

/* ZooKeeper's EventType numbers. */
enum {
    EV_NONE = -1,
    EV_CREATED = 1,
    EV_DELETED = 2,
    EV_DATA_CHANGED = 3,
    EV_CHILDREN_CHANGED = 4,
    /* zkfs only, never sent to ZooKeeper clients: the node's ACL, kind or policy changed.
     * Fires persistent and recursive watches only (the filesystem's IN_ATTRIB). */
    EV_META_CHANGED = 100,
};

enum watch_kind { WATCH_DATA = 0, WATCH_EXIST, WATCH_CHILD, WATCH_PERSISTENT, WATCH_RECURSIVE };
#define WATCH_KINDS 5

struct watch_reg;
struct watch_path;

/* Embedded in whoever receives events (a connection); owns its registrations. */
struct watch_owner {
    struct watch_reg *regs;
    uint32_t count;
};

/* Delivers one event to owner; called during watch_trigger. */
typedef void (*watch_deliver_cb)(struct watch_owner *owner, int type, const char *path,
                                 int64_t zxid, void *arg);

struct watch_mgr {
    struct watch_path *paths; /* uthash by path */
    uint32_t n_recursive;     /* recursive registrations: ancestors are walked only if > 0 */
    uint64_t total;
    watch_deliver_cb deliver;
    void *arg;
};

void watch_init(struct watch_mgr *m, watch_deliver_cb deliver, void *arg);
void watch_close(struct watch_mgr *m);

/* Registers (idempotent). 0 or -ENOMEM. path is copied. */
int watch_add(struct watch_mgr *m, struct watch_owner *o, const char *path, enum watch_kind kind);
/* Removes owner's watches on path: kinds is a bitmask of (1 << WATCH_*). Returns the number
 * removed. */
int watch_remove(struct watch_mgr *m, struct watch_owner *o, const char *path, unsigned kinds);
/* Drops every registration of owner (connection closed). */
void watch_remove_owner(struct watch_mgr *m, struct watch_owner *o);

/*
 * An event of ZooKeeper's type at path, from the txn zxid: fires one-shot data/exist watches
 * at path (created, deleted, data changed), one-shot child watches at path (children changed,
 * deleted), persistent watches at path (any type) and recursive watches at path or above
 * (any type but children changed). Each owner gets the event once.
 */
void watch_trigger(struct watch_mgr *m, int type, const char *path, int64_t zxid);

/* Counts for wchs/mntr: paths watched and owners with watches are computed on demand. */
uint64_t watch_count(const struct watch_mgr *m);
uint32_t watch_path_count(const struct watch_mgr *m);

#endif
