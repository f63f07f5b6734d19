/* The policy of files created in a directory, as mountctl prints and reads it:
 * "ephemeral,sequential", "ephemeral", "sequential" or "none". */
#ifndef ZKFS_MOUNTCTL_POLICY_H
#define ZKFS_MOUNTCTL_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* Writes the name of policy (POLICY_* bits of replica/txn.h; unknown bits in hex) into buf;
 * len must be at least 32, which holds any name. */
void policy_name(uint32_t policy, char *buf, size_t len);

/* Parses a name as policy_name writes it ("" is none) into *out; 0, or -1 if s is not one
 * (*out is then unchanged). */
int parse_policy(const char *s, uint32_t *out);

#endif
