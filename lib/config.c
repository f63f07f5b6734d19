/* The zoo.cfg parser: key=value lines, '#' comments, ZooKeeper's defaults. */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

static int parse_long(const char *v, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
        *out = 1;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0"))
        *out = 0;
    else
        return -1;
    return 0;
}

/* server.N=host:quorumPort:electionPort[:participant|:observer][;clientAddr] */
static int parse_server(struct config *cfg, const char *key, char *v, char *err, size_t errlen)
{
    long id;
    if (parse_long(key + 7, 0, 255, &id))
        return fail(err, errlen, "bad server id in '%s' (0-255)", key);
    if (cfg->n_servers == CONFIG_MAX_SERVERS)
        return fail(err, errlen, "too many server lines (max %d)", CONFIG_MAX_SERVERS);
    for (int i = 0; i < cfg->n_servers; i++)
        if (cfg->servers[i].id == (uint32_t)id)
            return fail(err, errlen, "duplicate %s", key);
    struct config_server *s = &cfg->servers[cfg->n_servers];
    memset(s, 0, sizeof(*s));
    s->id = (uint32_t)id;
    char *semi = strchr(v, ';');
    if (semi)
        *semi = 0;
    char *parts[4] = {0};
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(v, ":", &save); tok && n < 4; tok = strtok_r(NULL, ":", &save))
        parts[n++] = trim(tok);
    long qp, ep;
    if (n < 3 || !*parts[0] || parse_long(parts[1], 1, 65535, &qp) ||
        parse_long(parts[2], 1, 65535, &ep))
        return fail(err, errlen, "bad %s: want host:quorumPort:electionPort", key);
    if (n == 4) {
        if (!strcmp(parts[3], "observer"))
            s->observer = 1;
        else if (strcmp(parts[3], "participant"))
            return fail(err, errlen, "bad %s: role must be participant or observer", key);
    }
    snprintf(s->host, sizeof(s->host), "%s", parts[0]);
    s->quorum_port = (int)qp;
    s->election_port = (int)ep;
    cfg->n_servers++;
    return 0;
}

static int read_myid(struct config *cfg, char *err, size_t errlen)
{
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/myid", cfg->data_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
    char buf[64] = {0};
    char *line = fgets(buf, sizeof(buf), f);
    fclose(f);
    long id;
    if (!line || parse_long(trim(buf), 0, 255, &id))
        return fail(err, errlen, "%s must hold a server id (0-255)", path);
    cfg->myid = (uint32_t)id;
    for (int i = 0; i < cfg->n_servers; i++)
        if (cfg->servers[i].id == cfg->myid)
            return 0;
    return fail(err, errlen, "myid %u has no server.%u line", cfg->myid, cfg->myid);
}

int config_load(struct config *cfg, const char *file, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->tick_time = 2000;
    cfg->init_limit = 10;
    cfg->sync_limit = 5;
    cfg->client_port = 2181;
    snprintf(cfg->client_addr, sizeof(cfg->client_addr), "0.0.0.0");
    cfg->max_client_cnxns = 60;
    snprintf(cfg->whitelist, sizeof(cfg->whitelist), "srvr");
    cfg->min_session_timeout = -1;
    cfg->max_session_timeout = -1;
    cfg->max_data = 1024 * 1024;
    cfg->force_sync = 1;
    cfg->group_commit = 1;
    cfg->log_retain = 100000;
    cfg->extended_types = 1;
    cfg->container_check_ms = 60000;

    FILE *f = fopen(file, "r");
    if (!f)
        return fail(err, errlen, "cannot read config %s: %s", file, strerror(errno));
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = fail(err, errlen, "%s:%d: expected key=value", file, lineno);
            break;
        }
        *eq = 0;
        char *k = trim(s), *v = trim(eq + 1);
        long n;
        int b;
#define NUM(key, field, min, max)                                                                  \
    if (!strcmp(k, key)) {                                                                         \
        if (parse_long(v, min, max, &n))                                                           \
            rc = fail(err, errlen, "%s:%d: %s must be a number in [%ld, %ld]", file, lineno, key,  \
                      (long)(min), (long)(max));                                                   \
        else                                                                                       \
            cfg->field = n;                                                                        \
        continue;                                                                                  \
    }
#define BOOL(key, field)                                                                           \
    if (!strcmp(k, key)) {                                                                         \
        if (parse_bool(v, &b))                                                                     \
            rc = fail(err, errlen, "%s:%d: %s must be true or false", file, lineno, key);          \
        else                                                                                       \
            cfg->field = b;                                                                        \
        continue;                                                                                  \
    }
        NUM("tickTime", tick_time, 1, 600000)
        NUM("initLimit", init_limit, 1, 100000)
        NUM("syncLimit", sync_limit, 1, 100000)
        NUM("clientPort", client_port, 0, 65535)
        NUM("maxClientCnxns", max_client_cnxns, 0, 1000000)
        NUM("minSessionTimeout", min_session_timeout, 1, 1L << 30)
        NUM("maxSessionTimeout", max_session_timeout, 1, 1L << 30)
        NUM("zkfs.maxDataSize", max_data, 1, 64L << 20)
        NUM("jute.maxbuffer", max_data, 1, 64L << 20)
        NUM("zkfs.logRetain", log_retain, 0, 1L << 40)
        NUM("znode.container.checkIntervalMs", container_check_ms, 10, 1L << 30)
        NUM("zkfs.adminPort", admin_port, 0, 65535)
        BOOL("forceSync", force_sync)
        BOOL("zkfs.groupCommit", group_commit)
        BOOL("extendedTypesEnabled", extended_types)
#undef NUM
#undef BOOL
        if (!strcmp(k, "dataDir")) {
            if (!*v || strlen(v) >= sizeof(cfg->data_dir))
                rc = fail(err, errlen, "%s:%d: bad dataDir", file, lineno);
            snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", v);
        } else if (!strcmp(k, "clientPortAddress")) {
            snprintf(cfg->client_addr, sizeof(cfg->client_addr), "%s", v);
        } else if (!strcmp(k, "4lw.commands.whitelist")) {
            snprintf(cfg->whitelist, sizeof(cfg->whitelist), "%s", v);
        } else if (!strcmp(k, "peerType")) {
            if (!strcmp(v, "observer"))
                cfg->observer = 1;
            else if (strcmp(v, "participant"))
                rc = fail(err, errlen, "%s:%d: peerType must be participant or observer", file,
                          lineno);
        } else if (!strncmp(k, "server.", 7)) {
            rc = parse_server(cfg, k, v, err, errlen);
        } else {
            LOG_WARN("config %s:%d: unknown key '%s' ignored", file, lineno, k);
        }
    }
    fclose(f);
    if (rc)
        return rc;
    if (!cfg->data_dir[0])
        return fail(err, errlen, "config %s: dataDir is required", file);
    if (cfg->min_session_timeout < 0)
        cfg->min_session_timeout = 2 * cfg->tick_time;
    if (cfg->max_session_timeout < 0)
        cfg->max_session_timeout = 20 * cfg->tick_time;
    if (cfg->min_session_timeout > cfg->max_session_timeout)
        return fail(err, errlen, "config %s: minSessionTimeout is above maxSessionTimeout", file);
    struct stat st;
    if (stat(cfg->data_dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return fail(err, errlen, "dataDir %s is not a directory", cfg->data_dir);
    if (cfg->n_servers > 0)
        return read_myid(cfg, err, errlen);
    return 0;
}

int config_4lw_allowed(const struct config *cfg, const char *cmd)
{
    char list[sizeof(cfg->whitelist)];
    snprintf(list, sizeof(list), "%s", cfg->whitelist);
    char *save = NULL;
    for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
        if (!strcmp(tok, "*") || !strcmp(tok, cmd))
            return 1;
    return 0;
}
