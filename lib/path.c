/* ZooKeeper's path validation (PathUtils.validatePath) over UTF-8 bytes. */
#include "path.h"

#include "err.h"

#include <stdint.h>
#include <string.h>

/* Decodes one UTF-8 code point at s (n bytes left); returns its length or 0 if invalid. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2, c = s[0] & 0x1f, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, c = s[0] & 0x0f, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, c = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff)
        return 0;
    *cp = c;
    return len;
}

static int bad_code_point(uint32_t c)
{
    return (c >= 0x01 && c <= 0x1f) || (c >= 0x7f && c <= 0x9f) || (c >= 0xd800 && c <= 0xf8ff) ||
           (c >= 0xfff0 && c <= 0xffff);
}

int path_validate(const char *path, size_t len, int sequential)
{
    if (!path || len == 0 || path[0] != '/')
        return ZE_BADARGUMENTS;
    if (len == 1)
        return sequential ? 0 : 0;
    if (path[len - 1] == '/' && !sequential)
        return ZE_BADARGUMENTS;
    const unsigned char *p = (const unsigned char *)path;
    size_t comp_start = 1;
    for (size_t i = 1; i <= len; i++) {
        if (i == len || p[i] == '/') {
            size_t clen = i - comp_start;
            const char *comp = path + comp_start;
            if (clen == 0 && !(i == len && sequential))
                return ZE_BADARGUMENTS;
            /* "." and ".." are not allowed; with a sequential suffix the last one becomes
             * ".0000000001", which ZooKeeper accepts. */
            int last_seq = (i == len && sequential);
            if (!last_seq && ((clen == 1 && comp[0] == '.') ||
                              (clen == 2 && comp[0] == '.' && comp[1] == '.')))
                return ZE_BADARGUMENTS;
            comp_start = i + 1;
            continue;
        }
        if (p[i] == 0)
            return ZE_BADARGUMENTS;
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (n == 0 || bad_code_point(cp))
            return ZE_BADARGUMENTS;
        i += n - 1;
    }
    return 0;
}

size_t path_parent_len(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || path[1] == 0)
        return 0;
    return slash == path ? 1 : (size_t)(slash - path);
}

const char *path_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}
