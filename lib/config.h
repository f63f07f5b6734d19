/* zoo.cfg-style configuration: ZooKeeper's key names where they exist, zkfs.* otherwise. */
#ifndef ZKFS_CONFIG_H
#define ZKFS_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_SERVERS 32

struct config_server {
    uint32_t id;
    char host[256];
    int quorum_port;
    int election_port;
    int observer;
};

struct config {
    int tick_time;            /* tickTime, ms (2000) */
    int init_limit;           /* initLimit, ticks (10) */
    int sync_limit;           /* syncLimit, ticks (5) */
    char data_dir[PATH_MAX];  /* dataDir (required) */
    int client_port;          /* clientPort (2181) */
    char client_addr[256];    /* clientPortAddress ("0.0.0.0") */
    int max_client_cnxns;     /* maxClientCnxns per client IP (60; 0 = no limit) */
    char whitelist[512];      /* 4lw.commands.whitelist ("srvr"; "*" = all) */
    int min_session_timeout;  /* minSessionTimeout ms (2 ticks) */
    int max_session_timeout;  /* maxSessionTimeout ms (20 ticks) */
    uint32_t max_data;        /* zkfs.maxDataSize / jute.maxbuffer: znode data limit (1 MiB) */
    int force_sync;           /* forceSync (yes) */
    int group_commit;         /* zkfs.groupCommit (true) */
    uint64_t log_retain;      /* zkfs.logRetain: log entries kept after apply (100000) */
    int extended_types;       /* extendedTypesEnabled: TTL nodes (true) */
    int container_check_ms;   /* znode.container.checkIntervalMs (60000) */
    int admin_port;           /* zkfs.adminPort: HTTP /metrics /health /ready (0 = off) */
    uint32_t myid;            /* dataDir/myid (0 when standalone and absent) */
    int observer;             /* peerType=observer */
    struct config_server servers[CONFIG_MAX_SERVERS];
    int n_servers;
};

/*
 * Reads file into cfg (defaults first). Unknown keys are logged as warnings. On error
 * returns -1 with a one-line reason in err. Also reads dataDir/myid when server.N lines are
 * present (it must then name one of them).
 */
int config_load(struct config *cfg, const char *file, char *err, size_t errlen);
/* Whether the four-letter word cmd is allowed by the whitelist. */
int config_4lw_allowed(const struct config *cfg, const char *cmd);

#endif
