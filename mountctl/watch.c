/* mountctl watch: a persistent watch whose events are printed by the client thread while the
 * main thread sleeps on a self-pipe. */
#include "watch.h"

#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int sig_fd = -1;

static void on_signal(int sig)
{
    char b = 'i';
    if (sig_fd >= 0 && write(sig_fd, &b, 1) < 0) {
    }
}

int watch_init(struct cli *x)
{
    if (pipe2(x->wake_fd, O_CLOEXEC) < 0) {
        perror("mountctl: pipe");
        return CLI_EXIT_ERR;
    }
    sig_fd = x->wake_fd[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return 0;
}

void watch_close(struct cli *x)
{
    close(x->wake_fd[0]);
    close(x->wake_fd[1]);
}

static const char *event_name(int type, char *buf, size_t len)
{
    static const char *names[] = {NULL,
                                  "NodeCreated",
                                  "NodeDeleted",
                                  "NodeDataChanged",
                                  "NodeChildrenChanged",
                                  "DataWatchRemoved",
                                  "ChildWatchRemoved",
                                  "PersistentWatchRemoved"};
    if (type >= 1 && type <= 7)
        return names[type];
    if (type == 100)
        return "NodeMetaChanged"; /* zkfs: ACL, kind or policy changed */
    snprintf(buf, len, "Unknown(%d)", type);
    return buf;
}

/* Runs on the client thread: one line per event, flushed at once. */
void watch_on_event(void *arg, const struct zc_event *ev)
{
    struct cli *x = arg;
    if (ev->type == -1) {
        if (ev->state == ZC_EXPIRED && !x->expired) {
            char b = 'x';
            x->expired = 1;
            if (write(x->wake_fd[1], &b, 1) < 0) {
            }
        }
        return;
    }
    char buf[32];
    const char *name = event_name(ev->type, buf, sizeof(buf));
    if (x->json) {
        printf("{\"type\":");
        cli_json_str(stdout, name);
        printf(",\"path\":");
        cli_json_str(stdout, ev->path);
        printf(",\"zxid\":%" PRId64 "}\n", ev->zxid);
    } else {
        printf("%s %s 0x%" PRIx64 "\n", name, ev->path, (uint64_t)ev->zxid);
    }
    if (fflush(stdout) != 0) {
        char b = 'p'; /* stdout is gone (a closed pipe): stop quietly */
        if (write(x->wake_fd[1], &b, 1) < 0) {
        }
    }
}

int watch_run(struct cli *x, const struct cli_args *a)
{
    const char *path = a->pos[0];
    struct zc_req req = {.op = ZC_OP_ADD_WATCH, .path = path, .mode = a->flag['r'] ? 1 : 0};
    int rc = cli_call(x, &req, NULL);
    if (rc)
        return rc;
    char b = 0;
    for (;;) {
        ssize_t n = read(x->wake_fd[0], &b, 1);
        if (n == 1 || (n < 0 && errno != EINTR))
            break;
    }
    if (b == 'p')
        x->stdout_gone = 1;
    if (b == 'x') {
        fprintf(stderr, "mountctl: watch %s: %s: %s\n", path, err_name(ZE_SESSIONEXPIRED),
                err_msg(ZE_SESSIONEXPIRED));
        return CLI_EXIT_ERR;
    }
    return 0;
}
