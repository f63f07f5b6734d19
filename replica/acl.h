/* ZooKeeper's ACL checks: which authenticated ids may do what to a node. */
#ifndef ZKFS_ACL_H
#define ZKFS_ACL_H

#include "txn.h"

#include <stdint.h>

enum { PERM_READ = 1, PERM_WRITE = 2, PERM_CREATE = 4, PERM_DELETE = 8, PERM_ADMIN = 16 };
#define PERM_ALL 31u

struct auth_id {
    char *scheme;
    char *id;
};

/* The ids a connection has proved: ("ip", its address) at first, then digest ids. */
struct auth_info {
    struct auth_id *ids;
    uint32_t n;
};

/* Adds an id (copied) unless present. 0 or -ENOMEM. */
int auth_add(struct auth_info *a, const char *scheme, const char *id);
void auth_info_free(struct auth_info *a);

/* Whether auth may use perm (any of its bits) on a node with these ACLs. auth NULL means
 * the server itself (session expiry, container cleanup): always allowed. ZE_NOAUTH or 0. */
int acl_check(const struct acl *acls, uint32_t n, uint32_t perm, const struct auth_info *auth);

/* Validates an ACL list as ZooKeeper does and replaces "auth" entries with the connection's
 * authenticated (digest) ids. *acls is replaced by a new list the caller owns. 0,
 * ZE_INVALIDACL or -ENOMEM. */
int acl_fixup(struct acl **acls, uint32_t *n, const struct auth_info *auth);

#endif
