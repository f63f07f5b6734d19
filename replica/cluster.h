/* The replication shell: drives the election/ZAB core (zab.h) with the peer mesh, the store
 * and the request pipeline of a replica configured with server.N lines. */
#ifndef ZKFS_CLUSTER_H
#define ZKFS_CLUSTER_H

#include "request.h"
#include "txn.h"
#include "zab.h"

struct server;
struct cluster;

/* Builds the core from what the store holds (the tree must be loaded; the log is handed to
 * the core, never replayed into the tree here: only committed txns reach it). 0, or a
 * negative code with *err (malloc'd) saying why. */
int cluster_init(struct cluster **out, struct server *s, char **err);
/* Starts the peer mesh and the core's timers. */
int cluster_start(struct cluster *c, char **err);
void cluster_stop(struct cluster *c);
void cluster_free(struct cluster *c);

/* Whether this replica may serve clients now (a serving leader or an up-to-date learner). */
int cluster_serving(const struct cluster *c);
int cluster_is_leader(const struct cluster *c);
const char *cluster_role_name(const struct cluster *c);
void cluster_status(const struct cluster *c, struct zab_status *out);

/* A client's write, sync or new-session connect on this replica: the leader prepares and
 * proposes it, a learner forwards it. r completes through server_complete. */
void cluster_submit(struct cluster *c, struct request *r);
/* The leader's pipeline hands a prepared txn to the core. 0, or an error for the request. */
int cluster_propose(struct cluster *c, const struct txn *t);
/* The zxid the next proposal takes (0 and *zxid), or ZAB_ENOTLEADER/ZAB_EBUSY. */
int cluster_next_zxid(struct cluster *c, zxid_t *zxid);
/* Answers a learner's forwarded request that the leader's prepare refused (r->err). */
void cluster_forward_error(struct cluster *c, uint32_t to, uint64_t cxid, const struct request *r);
/* A client touched its session here (learners tell the leader, which tracks expiry). */
void cluster_touch(struct cluster *c, uint64_t session_id);

#endif
