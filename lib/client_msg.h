/* The client library's protobuf edge: zc_req arguments to Request frames, and decoded Replies,
 * Stats and WatchEvents to the plain structs of client.h. Internal to zkfs_client (client.c
 * includes it); not installed and not part of the client.h API. */
#ifndef ZKFS_CLIENT_MSG_H
#define ZKFS_CLIENT_MSG_H

#include "client.h"
#include "client.pb-c.h"

#include <stddef.h>
#include <stdint.h>

/* The largest frame either side sends: 1 MiB of data plus room for the rest. */
#define CLIENT_MSG_MAX_FRAME (1024 * 1024 + 64 * 1024)

/* The chroot of a connect string, which every path goes through. */
struct client_msg_chroot {
    char *path; /* "" for none, else a valid path such as "/a/b"; owned by the struct zc */
    size_t len;
};

/* The server path for a client path: the chroot prepended ("/" is the chroot itself).
 * Malloc'd (the caller frees it), or NULL without memory. */
char *client_msg_full_path(const struct client_msg_chroot *root, const char *path);
/* The client path for the server path p (borrowed from p, or the static "/"), or NULL if p is
 * outside the chroot. */
const char *client_msg_strip_chroot(const struct client_msg_chroot *root, const char *p);

/* ---- requests ---- */

/* 0 if r (borrowed) is a request zc_submit may send: a known op with valid paths and
 * arguments in range (CHECK only inside a MULTI, no MULTI inside one); else ZE_BADARGUMENTS
 * or path_validate's code. */
int client_msg_validate(const struct zc_req *r);

/* Allocations a request message points into; client_msg.c's business. */
struct client_msg_scratch {
    void **p;
    size_t n, cap;
    int oom;
};

/* A Request message built from a zc_req (caller-allocated). */
struct client_msg_req {
    Zkfs__Cli__Request m; /* everything but m.xid, which the caller sets before packing */
    struct client_msg_scratch s;
};

/* Builds b->m from r, which client_msg_validate accepted; paths get the chroot. b->m points
 * into b and into r's data and ACL strings (borrowed: r must outlive b). 0, -ENOMEM, or
 * ZE_BADARGUMENTS for an op it cannot send. Call client_msg_req_close on success and on
 * failure alike. */
int client_msg_req_init(struct client_msg_req *b, const struct client_msg_chroot *root,
                        const struct zc_req *r);
void client_msg_req_close(struct client_msg_req *b);

/* Packs m into a length-prefixed frame, malloc'd into *out (the caller frees it) with its
 * length in *len. 0, -EMSGSIZE above CLIENT_MSG_MAX_FRAME, or -ENOMEM (*out then untouched). */
int client_msg_pack(const Zkfs__Cli__Request *m, uint8_t **out, size_t *len);

/* ---- replies and events ---- */

/* A zc_result over a decoded Reply (caller-allocated): the arrays it needs are its own. */
struct client_msg_result {
    struct zc_result r;
    const char **children;
    struct zc_acl *acls;
    struct zc_op_result *results;
};

/* Fills m->r from rep, the reply to a request of op: err as a ZE_* code, the Stat, sorted
 * children (get_ephemerals: those inside the chroot, without it), ACLs, multi results; paths
 * relative to the chroot. Data and strings are borrowed from rep, which must outlive m->r.
 * Without memory m->r has err -ENOMEM and nothing else. Call client_msg_result_close after
 * either. */
void client_msg_result_init(struct client_msg_result *m, const struct client_msg_chroot *root,
                            enum zc_op op, const Zkfs__Cli__Reply *rep);
void client_msg_result_close(struct client_msg_result *m);

/* Deep-copies src (borrowed) into d, in one heap block (d->priv_) that zc_result_free frees.
 * 0, or -ENOMEM with nothing allocated. */
int client_msg_result_dup(const struct zc_result *src, struct zc_result *d);

/* Fills ev from we: the path relative to the chroot (borrowed from we). 0, or -ENOENT if
 * the path is outside the chroot (the event is not the client's to see). */
int client_msg_event(const struct client_msg_chroot *root, const Zkfs__Cli__WatchEvent *we,
                     struct zc_event *ev);

#endif
