/* What every mountctl command shares: the run's context, its parsed arguments, exit statuses,
 * error reports and JSON strings. */
#ifndef ZKFS_MOUNTCTL_CLI_H
#define ZKFS_MOUNTCTL_CLI_H

#include "client.h"

#include <stdint.h>
#include <stdio.h>

/* Exit statuses (mountctl --help). */
#define CLI_EXIT_ERR 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_UNREACHABLE 3

#define CLI_MAX_ARGS 64

/* One run of mountctl; main.c fills it in, the commands borrow it. */
struct cli {
    const char *servers;
    int json;
    int timeout_ms;
    struct zc *zc;   /* connected, for the commands that need a session */
    const char *cmd; /* the command's name, for messages */
    int stdout_gone; /* stdout was closed under the command: nothing left to flush */
    /* watch.c's: the self-pipe it waits on, and whether the session expired. */
    int wake_fd[2];
    int expired;
};

/* A command's arguments as main.c parsed and checked them: flags (by letter, with their
 * values) and positionals. Every pointer is borrowed from argv. */
struct cli_args {
    int flag[128];
    const char *val[128];
    const char *pos[CLI_MAX_ARGS];
    int npos;
    int32_t version; /* -v, else -1 */
    long long ttl;   /* create -t */
    uint32_t policy; /* policy DIR VALUE */
};

/* Reports "mountctl CMD WHAT: NAME: message" for the error code err on stderr; returns the
 * exit status for it (CLI_EXIT_UNREACHABLE for a connection loss, else CLI_EXIT_ERR). */
int cli_fail(struct cli *x, const char *what, int err);

/* Writes s as a JSON string (quoted and escaped) to f. */
void cli_json_str(FILE *f, const char *s);

/* Prints what the successful reply r to req has to show; returns 0 or an exit status. req
 * and r are borrowed for the duration of the call. */
typedef int (*cli_show_cb)(struct cli *x, const struct zc_req *req, const struct zc_result *r);

/* Runs req (borrowed) on x->zc and waits for its reply. On success show (if not NULL) gets
 * the result and its return is returned; on failure the error is reported against
 * req->path (cli_fail) and its exit status returned. The result is freed either way. */
int cli_call(struct cli *x, const struct zc_req *req, cli_show_cb show);

#endif
