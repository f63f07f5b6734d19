/* ACL evaluation: world:anyone, ip (address or IPv4 CIDR), digest, auth, as ZooKeeper's. */
#include "acl.h"

#include "err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int auth_add(struct auth_info *a, const char *scheme, const char *id)
{
    for (uint32_t i = 0; i < a->n; i++)
        if (!strcmp(a->ids[i].scheme, scheme) && !strcmp(a->ids[i].id, id))
            return 0;
    struct auth_id *ids = realloc(a->ids, (a->n + 1) * sizeof(*ids));
    if (!ids)
        return -ENOMEM;
    a->ids = ids;
    ids[a->n].scheme = strdup(scheme);
    ids[a->n].id = strdup(id);
    if (!ids[a->n].scheme || !ids[a->n].id) {
        free(ids[a->n].scheme);
        free(ids[a->n].id);
        return -ENOMEM;
    }
    a->n++;
    return 0;
}

void auth_info_free(struct auth_info *a)
{
    for (uint32_t i = 0; i < a->n; i++) {
        free(a->ids[i].scheme);
        free(a->ids[i].id);
    }
    free(a->ids);
    a->ids = NULL;
    a->n = 0;
}

/* ip scheme: "10.1.2.3", "10.0.0.0/8" or an IPv6 address, against the client's address. */
static int ip_matches(const char *client, const char *pattern)
{
    char addr[64];
    int bits = -1;
    const char *slash = strchr(pattern, '/');
    size_t n = slash ? (size_t)(slash - pattern) : strlen(pattern);
    if (n >= sizeof(addr))
        return 0;
    memcpy(addr, pattern, n);
    addr[n] = 0;
    if (slash)
        bits = atoi(slash + 1);
    struct in_addr a, c;
    if (inet_pton(AF_INET, addr, &a) == 1 && inet_pton(AF_INET, client, &c) == 1) {
        if (bits < 0 || bits > 32)
            bits = 32;
        uint32_t mask = bits == 0 ? 0 : htonl(~0u << (32 - bits));
        return (a.s_addr & mask) == (c.s_addr & mask);
    }
    struct in6_addr a6, c6;
    if (inet_pton(AF_INET6, addr, &a6) == 1 && inet_pton(AF_INET6, client, &c6) == 1) {
        if (bits < 0 || bits > 128)
            bits = 128;
        for (int i = 0; i < 16; i++) {
            int b = bits - 8 * i;
            uint8_t mask = b >= 8 ? 0xff : b <= 0 ? 0 : (uint8_t)(0xff << (8 - b));
            if ((a6.s6_addr[i] & mask) != (c6.s6_addr[i] & mask))
                return 0;
        }
        return 1;
    }
    return 0;
}

int acl_check(const struct acl *acls, uint32_t n, uint32_t perm, const struct auth_info *auth)
{
    if (!auth || n == 0)
        return 0;
    for (uint32_t i = 0; i < auth->n; i++)
        if (!strcmp(auth->ids[i].scheme, "super"))
            return 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct acl *a = &acls[i];
        if (!(a->perms & perm))
            continue;
        if (!strcmp(a->scheme, "world") && !strcmp(a->id, "anyone"))
            return 0;
        for (uint32_t k = 0; k < auth->n; k++) {
            const struct auth_id *id = &auth->ids[k];
            if (strcmp(id->scheme, a->scheme))
                continue;
            if (!strcmp(a->scheme, "ip") ? ip_matches(id->id, a->id) : !strcmp(id->id, a->id))
                return 0;
        }
    }
    return ZE_NOAUTH;
}

int acl_fixup(struct acl **acls, uint32_t *n, const struct auth_info *auth)
{
    if (*n == 0)
        return ZE_INVALIDACL;
    struct acl *out = NULL;
    uint32_t m = 0;
    int rc = 0;
    for (uint32_t i = 0; i < *n && rc == 0; i++) {
        const struct acl *a = &(*acls)[i];
        if (!a->scheme || !a->id || (a->perms & ~PERM_ALL)) {
            rc = ZE_INVALIDACL;
            break;
        }
        uint32_t k0 = 0, k1 = 1;
        int expand = !strcmp(a->scheme, "auth");
        if (expand) {
            if (!auth) {
                rc = ZE_INVALIDACL;
                break;
            }
            k1 = auth->n;
        } else if (!strcmp(a->scheme, "world")) {
            if (strcmp(a->id, "anyone"))
                rc = ZE_INVALIDACL;
        } else if (!strcmp(a->scheme, "digest")) {
            if (!strchr(a->id, ':'))
                rc = ZE_INVALIDACL;
        } else if (!strcmp(a->scheme, "ip")) {
            if (!ip_matches(a->id, a->id) && !strchr(a->id, '/'))
                rc = ZE_INVALIDACL;
        } else if (strcmp(a->scheme, "x509") && strcmp(a->scheme, "sasl")) {
            rc = ZE_INVALIDACL;
        }
        int added = 0;
        for (uint32_t k = k0; k < k1 && rc == 0; k++) {
            const char *scheme = a->scheme, *id = a->id;
            if (expand) {
                /* "auth" means every id the client has authenticated with; ip is not one */
                if (!strcmp(auth->ids[k].scheme, "ip"))
                    continue;
                scheme = auth->ids[k].scheme;
                id = auth->ids[k].id;
            }
            struct acl *grown = realloc(out, (m + 1) * sizeof(*out));
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            out = grown;
            out[m].perms = a->perms;
            out[m].scheme = strdup(scheme);
            out[m].id = strdup(id);
            m++;
            if (!out[m - 1].scheme || !out[m - 1].id)
                rc = -ENOMEM;
            added++;
        }
        if (rc == 0 && expand && added == 0)
            rc = ZE_INVALIDACL;
    }
    if (rc) {
        acl_free(out, m);
        return rc;
    }
    acl_free(*acls, *n);
    *acls = out;
    *n = m;
    return 0;
}
