/* zkfs-replica CONFIG: parse the config, wire the server to a libuv loop, run. */
#include "config.h"
#include "log.h"
#include "server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: zkfs-replica CONFIG\n"
               "  CONFIG is a zoo.cfg-style file (tickTime, dataDir, clientPort, ...).\n");
}

int main(int argc, char **argv)
{
    log_init("zkfs-replica", LOG_LEVEL_INFO);
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 2) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    static struct config cfg;
    char err[512];
    if (config_load(&cfg, argv[1], err, sizeof(err))) {
        LOG_ERROR("%s", err);
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    static struct server srv;
    char *msg = NULL;
    if (server_init(&srv, loop, &cfg, &msg)) {
        LOG_ERROR("%s", msg ? msg : "cannot start");
        free(msg);
        return 2;
    }
    if (server_start(&srv, &msg)) {
        LOG_ERROR("%s", msg ? msg : "cannot start");
        free(msg);
        server_close(&srv);
        return 2;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    server_close(&srv);
    uv_run(loop, UV_RUN_DEFAULT); /* the store frees itself in a close callback */
    uv_loop_close(loop);
    LOG_INFO("stopped");
    return 0;
}
