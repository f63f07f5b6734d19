/* The policy a directory gives files created in it (DESIGN §2): bits stored with the node,
 * and their names as mountctl and the user.zk.policy xattr show and take them:
 * "ephemeral,sequential", "ephemeral", "sequential" or "none". */
#ifndef ZKFS_POLICY_H
#define ZKFS_POLICY_H

#include <stddef.h>
#include <stdint.h>

enum { POLICY_EPHEMERAL = 1, POLICY_SEQUENTIAL = 2 };

#define POLICY_NAME_MAX 40 /* holds any name policy_format writes, with its NUL */

/* Writes the name of policy into buf (unknown bits in hex after the known names). */
void policy_format(uint32_t policy, char *buf, size_t len);

/* Parses len bytes of s (trailing newlines, spaces and NULs ignored, as `echo` and setfattr
 * leave them; empty is "none") into *out: 0, or -1 if it is not a policy name (*out is then
 * unchanged). */
int policy_parse(const char *s, size_t len, uint32_t *out);

#endif
