/* mountctl: zkCli-like commands on a zkfs cluster for people (tables) and scripts (-w json).
 * This file parses the options and hands each command to its module. */
#include "cli.h"
#include "client.h"
#include "err.h"
#include "log.h"
#include "mounts.h"
#include "node.h"
#include "path.h"
#include "policy.h"
#include "status.h"
#include "watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SERVERS "127.0.0.1:2181"
#define DEFAULT_TIMEOUT_MS 10000
#define SESSION_TIMEOUT_MS 10000

struct command {
    const char *name;
    const char *flags; /* getopt-like: "esct:" */
    int min_pos, max_pos;
    int (*run)(struct cli *x, const struct cli_args *a);
    const char *synopsis;
    /* Commands that need no session take their arguments as they come. */
    int (*raw)(struct cli *x, char **argv, int argc);
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mountctl [--servers HOST:PORT,...[/CHROOT]] [-w table|json] [--timeout SEC]\n"
            "                COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  create [-e] [-s] [-c] [-t TTL_MS] PATH [DATA|-]\n"
            "                       create a node (-e ephemeral, -s sequential, -c container,\n"
            "                       -t TTL); prints the path created; '-' reads DATA from stdin\n"
            "  get PATH             print the node's data as is\n"
            "  set [-v VERSION] PATH DATA|-\n"
            "                       replace the node's data ('-' reads it from stdin)\n"
            "  ls PATH              list the children, sorted, one per line\n"
            "  rm [-r] [-v VERSION] PATH\n"
            "                       delete a node (-r: with everything under it)\n"
            "  stat PATH            print the node's Stat, kind and policy\n"
            "  sync PATH            wait until the connected server is up to date with the leader\n"
            "  watch [-r] PATH      print every change of PATH (-r: and of everything under it)\n"
            "                       until interrupted\n"
            "  policy DIR [ephemeral,sequential|ephemeral|sequential|none]\n"
            "                       set (or print) the policy of files created in DIR\n"
            "  mount SERVERS MOUNTPOINT [-o OPTION,...]\n"
            "                       mount the cluster SERVERS (HOST:PORT,...[/CHROOT]) with\n"
            "                       zkfs-fused; returns once the mount is there\n"
            "  umount [-z] MOUNTPOINT\n"
            "                       unmount (-z: lazily, even if busy)\n"
            "  status [SERVERS]     each replica: id, role, epoch, zxid, sessions, znodes, lag;\n"
            "                       exit 1 if any does not answer\n"
            "  lock: not yet implemented\n"
            "\n"
            "The cluster comes from --servers, else $ZKFS_SERVERS, else " DEFAULT_SERVERS ".\n"
            "-w json prints JSON (ls, stat, create, set, watch). Exit status: 0 ok, 1 error,\n"
            "2 usage error, 3 cluster unreachable.\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "mountctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see mountctl --help)\n");
    return CLI_EXIT_USAGE;
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 0);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* ---- commands that need no session ---- */

static int cmd_mount(struct cli *x, char **argv, int argc)
{
    const char *pos[2] = {0}, *opts = NULL;
    int npos = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            opts = argv[++i];
        else if (strncmp(argv[i], "-o", 2) == 0 && argv[i][2])
            opts = argv[i] + 2;
        else if (argv[i][0] == '-' && argv[i][1])
            return usage_error("unknown option '%s'", argv[i]);
        else if (npos < 2)
            pos[npos++] = argv[i];
        else
            return usage_error("%s", "usage: mountctl mount SERVERS MOUNTPOINT [-o OPTION,...]");
    }
    if (npos != 2)
        return usage_error("%s", "usage: mountctl mount SERVERS MOUNTPOINT [-o OPTION,...]");
    return mounts_mount(pos[0], pos[1], opts, x->timeout_ms);
}

static int cmd_umount(struct cli *x, char **argv, int argc)
{
    int lazy = 0;
    const char *mp = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-z") == 0 || strcmp(argv[i], "-l") == 0)
            lazy = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            return usage_error("unknown option '%s'", argv[i]);
        else if (!mp)
            mp = argv[i];
        else
            return usage_error("%s", "usage: mountctl umount [-z] MOUNTPOINT");
    }
    if (!mp)
        return usage_error("%s", "usage: mountctl umount [-z] MOUNTPOINT");
    return mounts_umount(mp, lazy);
}

/* status [SERVERS]: one row per replica; needs no session, so it works without a quorum. */
static int cmd_status(struct cli *x, char **argv, int argc)
{
    if (argc > 1)
        return usage_error("%s", "status takes at most one server list");
    return status_run(argc == 1 ? argv[0] : x->servers, x->json);
}

static int not_implemented(struct cli *x, const struct cli_args *a)
{
    fprintf(stderr, "mountctl: %s: not yet implemented\n", x->cmd);
    return CLI_EXIT_USAGE;
}

static const struct command commands[] = {
    {"create", "esct:", 1, 2, node_create, "create [-e] [-s] [-c] [-t TTL_MS] PATH [DATA|-]", NULL},
    {"get", "", 1, 1, node_get, "get PATH", NULL},
    {"set", "v:", 2, 2, node_set, "set [-v VERSION] PATH DATA|-", NULL},
    {"ls", "", 1, 1, node_ls, "ls PATH", NULL},
    {"rm", "rv:", 1, 1, node_rm, "rm [-r] [-v VERSION] PATH", NULL},
    {"stat", "", 1, 1, node_stat, "stat PATH", NULL},
    {"sync", "", 1, 1, node_sync, "sync PATH", NULL},
    {"watch", "r", 1, 1, watch_run, "watch [-r] PATH", NULL},
    {"policy", "", 1, 2, node_policy, "policy DIR [ephemeral,sequential|none]", NULL},
    {"mount", NULL, 0, 0, NULL, "mount SERVERS MOUNTPOINT [-o OPTION,...]", cmd_mount},
    {"umount", NULL, 0, 0, NULL, "umount [-z] MOUNTPOINT", cmd_umount},
    {"status", NULL, 0, 0, NULL, "status [SERVERS]", cmd_status},
    {"lock", NULL, 0, 0, not_implemented, NULL, NULL},
};

/* Command flags (bundled or not, values attached or next) and positionals; after "--" all
 * are positionals. */
static int parse_args(const struct command *cmd, char **argv, int argc, int dashdash,
                      struct cli_args *a)
{
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (i >= dashdash || s[0] != '-' || s[1] == 0) {
            if (a->npos == CLI_MAX_ARGS)
                return usage_error("%s", "too many arguments");
            a->pos[a->npos++] = s;
            continue;
        }
        for (const char *f = s + 1; *f; f++) {
            const char *spec = (unsigned char)*f < 128 && *f != ':' ? strchr(cmd->flags, *f) : NULL;
            if (!spec) {
                char opt[3] = {'-', *f, 0};
                return usage_error("unknown option '%s'", opt);
            }
            a->flag[(int)*f] = 1;
            if (spec[1] != ':')
                continue;
            if (f[1]) {
                a->val[(int)*f] = f + 1;
            } else if (i + 1 < argc) {
                a->val[(int)*f] = argv[++i];
            } else {
                char opt[3] = {'-', *f, 0};
                return usage_error("option '%s' needs a value", opt);
            }
            break;
        }
    }
    if (a->npos < cmd->min_pos || a->npos > cmd->max_pos)
        return usage_error("usage: mountctl %s", cmd->synopsis);
    /* Everything is checked here, so that a usage error never waits for the cluster. */
    const char *path = a->pos[0];
    if (path_validate(path, strlen(path), cmd->run == node_create && a->flag['s']) != 0) {
        /* One line whatever the path holds. */
        char shown[256];
        size_t n = 0;
        for (const char *p = path; *p && n < sizeof(shown) - 1; p++)
            shown[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
        shown[n] = 0;
        fprintf(stderr, "mountctl: %s '%s': %s: invalid path (absolute, as /a/b)\n", cmd->name,
                shown, err_name(ZE_BADARGUMENTS));
        return CLI_EXIT_USAGE;
    }
    long long v = -1;
    if (a->flag['v'] && parse_int(a->val['v'], -1, INT32_MAX, &v) < 0)
        return usage_error("invalid version '%s'", a->val['v']);
    a->version = (int32_t)v;
    if (cmd->run == node_create) {
        int e = a->flag['e'], s = a->flag['s'], c = a->flag['c'], t = a->flag['t'];
        if (c && (e || s || t))
            return usage_error("%s", "-c cannot be combined with -e, -s or -t");
        if (t && e)
            return usage_error("%s", "-t cannot be combined with -e");
        if (t && parse_int(a->val['t'], 1, INT64_MAX, &a->ttl) < 0)
            return usage_error("invalid TTL '%s' (milliseconds)", a->val['t']);
    }
    if (cmd->run == node_policy && a->npos == 2 &&
        policy_parse(a->pos[1], strlen(a->pos[1]), &a->policy) < 0)
        return usage_error("invalid policy '%s' (ephemeral,sequential|ephemeral|sequential|none)",
                           a->pos[1]);
    return 0;
}

/* Connects x->zc, with on_event for the session's events (may be NULL). */
static int connect_cluster(struct cli *x, zc_event_cb on_event)
{
    struct zc_opts o = {
        .servers = x->servers,
        .session_timeout_ms = SESSION_TIMEOUT_MS,
        .request_timeout_ms = x->timeout_ms,
        .on_event = on_event,
        .arg = x,
    };
    int rc = zc_new(&x->zc, &o);
    if (rc == ZE_BADARGUMENTS)
        return usage_error("invalid server list '%s' (HOST:PORT,...[/CHROOT])", x->servers);
    if (rc) {
        fprintf(stderr, "mountctl: %s\n", err_msg(rc));
        return CLI_EXIT_ERR;
    }
    rc = zc_wait_connected(x->zc, x->timeout_ms);
    if (rc == ZE_CONNECTIONLOSS) {
        fprintf(stderr, "mountctl: cannot reach the cluster at %s within %d s\n", x->servers,
                (x->timeout_ms + 999) / 1000);
        return CLI_EXIT_UNREACHABLE;
    }
    if (rc) {
        fprintf(stderr, "mountctl: %s: %s\n", x->servers, err_msg(rc));
        return CLI_EXIT_ERR;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cli x = {.timeout_ms = DEFAULT_TIMEOUT_MS, .wake_fd = {-1, -1}};
    char *rest[argc > 0 ? argc : 1];
    int nrest = 0, dashdash = -1;
    const char *cmdname = NULL;

    log_init("mountctl", LOG_LEVEL_ERROR);
    x.servers = getenv("ZKFS_SERVERS");
    if (!x.servers || !*x.servers)
        x.servers = DEFAULT_SERVERS;
    /* Global options may come anywhere before "--". */
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (dashdash < 0 && strcmp(s, "--") == 0) {
            dashdash = nrest;
            continue;
        }
        if (dashdash < 0 && (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0)) {
            usage(stdout);
            return 0;
        }
        if (dashdash < 0 &&
            (strcmp(s, "--servers") == 0 || strcmp(s, "-w") == 0 || strcmp(s, "--timeout") == 0)) {
            if (i + 1 >= argc)
                return usage_error("option '%s' needs a value", s);
            const char *v = argv[++i];
            if (s[1] == 'w') {
                if (strcmp(v, "json") == 0)
                    x.json = 1;
                else if (strcmp(v, "table") == 0)
                    x.json = 0;
                else
                    return usage_error("unknown output format '%s' (table or json)", v);
            } else if (s[2] == 's') {
                x.servers = v;
            } else {
                long long t;
                if (parse_int(v, 1, 3600, &t) < 0)
                    return usage_error("invalid timeout '%s' (seconds)", v);
                x.timeout_ms = (int)t * 1000;
            }
            continue;
        }
        if (dashdash < 0 && strncmp(s, "--servers=", 10) == 0) {
            x.servers = s + 10;
            continue;
        }
        if (!cmdname && dashdash < 0) {
            if (s[0] == '-')
                return usage_error("unknown option '%s'", s);
            cmdname = s;
            continue;
        }
        rest[nrest++] = argv[i];
    }
    if (!cmdname) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const struct command *cmd = NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, cmdname) == 0)
            cmd = &commands[i];
    if (!cmd)
        return usage_error("unknown command '%s'", cmdname);
    x.cmd = cmd->name;
    if (cmd->raw)
        return cmd->raw(&x, rest, nrest);
    if (!cmd->flags)
        return cmd->run(&x, NULL);
    static struct cli_args a;
    int rc = parse_args(cmd, rest, nrest, dashdash < 0 ? nrest : dashdash, &a);
    if (rc)
        return rc;

    int watching = cmd->run == watch_run;
    if (watching && (rc = watch_init(&x)))
        return rc;
    rc = connect_cluster(&x, watching ? watch_on_event : NULL);
    if (rc == 0)
        rc = cmd->run(&x, &a);
    if (!x.stdout_gone && fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "mountctl: stdout: %s\n", strerror(errno));
        rc = CLI_EXIT_ERR;
    }
    zc_free(x.zc);
    if (watching)
        watch_close(&x);
    return rc;
}
