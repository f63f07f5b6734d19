/* Reads against the committed tree, shared by every client protocol (native and jute). */
#ifndef ZKFS_READ_H
#define ZKFS_READ_H

#include "request.h"
#include "tree.h"

#include <stdint.h>

struct conn;

/* What a read found; the codec turns it into its own reply format. */
struct read_result {
    int err;                 /* 0 or the ZE_* code the client gets */
    const struct node *node; /* get_data/exists/get_children/get_acl: borrowed from the tree,
                                valid until the next txn is applied */
    const char **names;      /* get_children (sorted names) or get_ephemerals (sorted paths):
                                malloc'd array of borrowed strings; NULL otherwise */
    uint32_t n_names;
    int64_t count; /* get_all_children_number */
};

/*
 * Runs the read a (r->args, or one op of a multiRead) of request r for connection c, as it
 * reaches the head of c's queue: path checks, ACL checks with c's ids, watch registration
 * through c (after the ACL check, as ZooKeeper's FinalRequestProcessor), and the side effects
 * of addWatch, removeWatches, setWatches and auth. Ops that are not reads get UNIMPLEMENTED,
 * reconfig RECONFIGDISABLED. Returns 0 with *out filled (free it with read_result_free), or
 * -ENOMEM when no reply can be built.
 */
int read_run(struct conn *c, const struct request *r, const struct req_op_args *a,
             struct read_result *out);
void read_result_free(struct read_result *res);

/* auth (scheme in a->path, credential in a->data): adds the proved id to c's ids. Run when the
 * request arrives, not when it reaches the head of the queue, so that writes sent after it
 * are checked with the new id (ZooKeeper handles auth packets on receipt). 0, ZE_AUTHFAILED
 * (only "digest" with "user:password" is known) or ZE_SYSTEMERROR. */
int read_auth(struct conn *c, const struct req_op_args *a);

#endif
