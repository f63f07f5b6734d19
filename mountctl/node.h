/* mountctl's commands on nodes: create, get, set, ls, stat, sync, rm and policy. */
#ifndef ZKFS_MOUNTCTL_NODE_H
#define ZKFS_MOUNTCTL_NODE_H

#include "cli.h"

/*
 * Each command runs on the connected session x->zc, with arguments that main.c has parsed
 * and checked against the command's synopsis (a->pos[0] is a valid path; -v, -t and the
 * policy value are parsed into a->version, a->ttl and a->policy). Both are borrowed. What it
 * prints goes to stdout (JSON with x->json), its errors to stderr; it returns the exit
 * status: 0, CLI_EXIT_ERR, or CLI_EXIT_UNREACHABLE when the cluster could not be reached.
 */

/* create [-e] [-s] [-c] [-t TTL_MS] PATH [DATA|-]: prints the path created. */
int node_create(struct cli *x, const struct cli_args *a);
/* get PATH: the node's data as is. */
int node_get(struct cli *x, const struct cli_args *a);
/* set [-v VERSION] PATH DATA|-: with -w json, the new Stat. */
int node_set(struct cli *x, const struct cli_args *a);
/* ls PATH: the children, sorted, one a line. */
int node_ls(struct cli *x, const struct cli_args *a);
/* stat PATH: the Stat, kind and policy. */
int node_stat(struct cli *x, const struct cli_args *a);
/* sync PATH: returns once the connected server is up to date with the leader. */
int node_sync(struct cli *x, const struct cli_args *a);
/* rm [-r] [-v VERSION] PATH: -r deletes everything under PATH too ("/" and /zookeeper
 * stay). */
int node_rm(struct cli *x, const struct cli_args *a);
/* policy DIR [VALUE]: prints DIR's policy, or sets it (making DIR a directory). */
int node_policy(struct cli *x, const struct cli_args *a);

#endif
