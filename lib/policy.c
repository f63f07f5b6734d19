/* Directory policy names to bits and back. */
#include "policy.h"

#include <stdio.h>
#include <string.h>

void policy_format(uint32_t policy, char *buf, size_t len)
{
    if (!policy) {
        snprintf(buf, len, "none");
        return;
    }
    size_t n = 0;
    buf[0] = 0;
    if (policy & POLICY_EPHEMERAL)
        n += (size_t)snprintf(buf, len, "ephemeral");
    if ((policy & POLICY_SEQUENTIAL) && n < len)
        n += (size_t)snprintf(buf + n, len - n, "%ssequential", n ? "," : "");
    uint32_t rest = policy & ~(uint32_t)(POLICY_EPHEMERAL | POLICY_SEQUENTIAL);
    if (rest && n < len)
        snprintf(buf + n, len - n, "%s0x%x", n ? "," : "", rest);
}

int policy_parse(const char *s, size_t len, uint32_t *out)
{
    char buf[64];
    while (len && (s[len - 1] == '\n' || s[len - 1] == ' ' || s[len - 1] == 0))
        len--;
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    uint32_t p = 0;
    if (len == 0 || strcmp(buf, "none") == 0) {
        *out = 0;
        return 0;
    }
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
