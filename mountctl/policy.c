/* mountctl: policy names to bits and back. */
#include "policy.h"

#include <stdio.h>
#include <string.h>

/* zkfs policy bits (replica/txn.h POLICY_*). */
#define POLICY_EPHEMERAL 1
#define POLICY_SEQUENTIAL 2

void policy_name(uint32_t policy, char *buf, size_t len)
{
    buf[0] = 0;
    if (!policy) {
        snprintf(buf, len, "none");
        return;
    }
    size_t n = 0;
    if (policy & POLICY_EPHEMERAL)
        n += (size_t)snprintf(buf + n, len - n, "ephemeral");
    if (policy & POLICY_SEQUENTIAL)
        n += (size_t)snprintf(buf + n, len - n, "%ssequential", n ? "," : "");
    uint32_t rest = policy & ~(uint32_t)(POLICY_EPHEMERAL | POLICY_SEQUENTIAL);
    if (rest && n < len)
        snprintf(buf + n, len - n, "%s0x%x", n ? "," : "", rest);
}

int parse_policy(const char *s, uint32_t *out)
{
    uint32_t p = 0;
    if (strcmp(s, "none") == 0 || *s == 0) {
        *out = 0;
        return 0;
    }
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "ephemeral") == 0)
            p |= POLICY_EPHEMERAL;
        else if (strcmp(t, "sequential") == 0)
            p |= POLICY_SEQUENTIAL;
        else
            return -1;
    }
    *out = p;
    return 0;
}
