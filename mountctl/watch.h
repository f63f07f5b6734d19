/* mountctl watch [-r] PATH: one line per change of PATH (or of everything under it) until
 * interrupted. */
#ifndef ZKFS_MOUNTCTL_WATCH_H
#define ZKFS_MOUNTCTL_WATCH_H

#include "cli.h"
#include "client.h"

/* Before connecting: makes x->wake_fd, the self-pipe watch_run waits on, and sends SIGINT and
 * SIGTERM to it. 0, or CLI_EXIT_ERR (reported on stderr) with nothing to undo. */
int watch_init(struct cli *x);
/* After the run (and zc_free): closes the pipe. The signal handlers stay. */
void watch_close(struct cli *x);

/* The zc_opts.on_event to connect with, arg being x: prints each event as a line (or a JSON
 * object) and flushes it; wakes watch_run when the session expires or stdout is gone. */
void watch_on_event(void *arg, const struct zc_event *ev);

/* Adds the persistent watch (-r: recursive) on a->pos[0] and waits for a signal, the
 * session's expiry (CLI_EXIT_ERR) or stdout to be gone (x->stdout_gone set); as the commands
 * of node.h otherwise. */
int watch_run(struct cli *x, const struct cli_args *a);

#endif
