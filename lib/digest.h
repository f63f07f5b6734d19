/* ZooKeeper's digest authentication: ids are "user:" + base64(sha1("user:password")). */
#ifndef ZKFS_DIGEST_H
#define ZKFS_DIGEST_H

#include <stddef.h>
#include <stdint.h>

/* SHA-1 of len bytes into out[20]. */
void digest_sha1(const uint8_t *data, size_t len, uint8_t out[20]);
/* Standard base64 (with padding) of len bytes; malloc'd NUL-terminated string, NULL on ENOMEM. */
char *digest_base64(const uint8_t *data, size_t len);
/* From "user:password" (len bytes) the id "user:base64(sha1(user:password))", malloc'd.
 * NULL when there is no ':' or on ENOMEM. */
char *digest_auth_id(const char *cred, size_t len);

#endif
