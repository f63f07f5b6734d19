/* The admin HTTP endpoint: /metrics (Prometheus text), /health, /ready, /commands/<4lw>. */
#ifndef ZKFS_ADMIN_H
#define ZKFS_ADMIN_H

#include <uv.h>

struct server;

struct admin {
    struct server *srv;
    uv_tcp_t listener;
    int started;
};

/* Listens on the server's clientPortAddress:zkfs.adminPort. 0, or a negative code with a
 * one-line reason in *err (malloc'd). */
int admin_start(struct admin *a, struct server *srv, char **err);
void admin_stop(struct admin *a);

#endif
