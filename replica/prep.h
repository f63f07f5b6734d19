/* Turning a write request into a transaction: ZooKeeper's checks against the tree as it will
 * be once every transaction already prepared is applied (the pending-change overlay). */
#ifndef ZKFS_PREP_H
#define ZKFS_PREP_H

#include "request.h"
#include "tree.h"
#include "txn.h"

struct pending;

struct prep {
    struct tree *tree;       /* borrowed: the committed tree */
    struct pending *pending; /* uthash by path: effects of prepared, unapplied txns */
    uint32_t max_data;
    int extended_types;
};

void prep_init(struct prep *p, struct tree *tree, uint32_t max_data, int extended_types);
void prep_close(struct prep *p);

/*
 * Validates r (a write: create, delete, set_data, multi, set_acl, set_meta, close/expire
 * session, delete container) as if applied after every txn prepared so far, and fills *out
 * with zxid, time and ops (caller frees with txn_free_contents). r->results gets one entry
 * per op with its error (and, for a create, the path it will make). On success the txn's
 * effects join the overlay. Returns 0 or the first error (nothing joins the overlay then).
 * A multi made only of checks yields a txn with no ops.
 */
int prep_request(struct prep *p, struct request *r, zxid_t zxid, int64_t now_ms, struct txn *out);

/* Forgets the overlay entries that txn t (now applied to the tree) was the last to touch. */
void prep_applied(struct prep *p, const struct txn *t);

/* Nodes in the overlay (0 once every prepared txn is applied). */
uint32_t prep_pending_count(const struct prep *p);

#endif
