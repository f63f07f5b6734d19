/* ZooKeeper path rules: validation and parent/name splitting. */
#ifndef ZKFS_PATH_H
#define ZKFS_PATH_H

#include <stddef.h>

/*
 * 0 if path (len bytes, need not be NUL-terminated) is a valid ZooKeeper path, else
 * ZE_BADARGUMENTS. With sequential set, a trailing '/' is allowed because the server appends
 * the 10-digit suffix (as ZooKeeper validates path + "1"). Rules: absolute, no empty, "." or
 * ".." components, no trailing '/', no NUL, valid UTF-8 without the code points ZooKeeper
 * rejects (U+0001-U+001F, U+007F-U+009F, U+D800-U+F8FF, U+FFF0-U+FFFF).
 */
int path_validate(const char *path, size_t len, int sequential);

/* Length of the parent's path: "/a/b" -> 2 ("/a"), "/a" -> 1 ("/"), "/" -> 0. */
size_t path_parent_len(const char *path);

/* The last component: "/a/b" -> "b", "/" -> "". Borrowed from path. */
const char *path_name(const char *path);

#endif
