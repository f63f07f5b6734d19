/* ZooKeeper's four-letter words on the client port, in ZooKeeper's output formats. */
#include "conn.h"

#include "cluster.h"
#include "server.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define ZKFS_VERSION "zkfs-0.1.0"

static const char *const words[] = {"ruok", "srvr", "stat", "mntr", "conf",
                                    "cons", "dump", "wchs", "envi", "isro"};

int fourlw_known(const char *cmd)
{
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (!strcmp(words[i], cmd))
            return 1;
    return 0;
}

/* A growing output buffer. */
struct out {
    char *buf;
    size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(o->buf ? o->buf + o->len : NULL, o->buf ? o->cap - o->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (o->buf && o->len + (size_t)n < o->cap) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap ? o->cap : 1024;
        while (cap <= o->len + (size_t)n)
            cap *= 2;
        char *nb = realloc(o->buf, cap);
        if (!nb)
            return;
        o->buf = nb;
        o->cap = cap;
    }
}

static const char *mode(const struct server *s)
{
    return s->cluster ? cluster_role_name(s->cluster) : "standalone";
}

static void latency(struct out *o, const struct server *s)
{
    const struct server_stats *st = &s->stats;
    double avg = st->lat_count ? (double)st->lat_sum_us / (double)st->lat_count / 1000.0 : 0;
    put(o, "Latency min/avg/max: %.3f/%.4f/%.3f\n", (double)st->lat_min_us / 1000.0, avg,
        (double)st->lat_max_us / 1000.0);
}

static void conn_line(struct out *o, const struct conn *c, uint64_t now)
{
    put(o, " /%s[1](queued=%u,recved=%llu,sent=%llu,sid=0x%llx,lzxid=0x%llx,to=%d,est=%llu)\n",
        c->peer, c->q_len, (unsigned long long)c->received, (unsigned long long)c->sent,
        (unsigned long long)c->session_id, (unsigned long long)c->last_zxid, c->timeout_ms,
        (unsigned long long)(now - c->established_ms));
}

static void server_summary(struct out *o, const struct server *s)
{
    latency(o, s);
    put(o, "Received: %llu\n", (unsigned long long)s->stats.received);
    put(o, "Sent: %llu\n", (unsigned long long)s->stats.sent);
    put(o, "Connections: %u\n", s->n_conns);
    put(o, "Outstanding: %u\n", s->n_inflight);
    put(o, "Zxid: 0x%llx\n", (unsigned long long)s->tree.last_applied);
    put(o, "Mode: %s\n", mode(s));
    put(o, "Node count: %u\n", tree_count(&s->tree));
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

static void mntr(struct out *o, const struct server *s)
{
    const struct server_stats *st = &s->stats;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    struct store_stats ss;
    store_get_stats(s->store, &ss);
    put(o, "zk_version\t%s\n", ZKFS_VERSION);
    put(o, "zk_server_state\t%s\n", mode(s));
    put(o, "zk_avg_latency\t%.4f\n",
        st->lat_count ? (double)st->lat_sum_us / (double)st->lat_count / 1000.0 : 0.0);
    put(o, "zk_max_latency\t%.3f\n", (double)st->lat_max_us / 1000.0);
    put(o, "zk_min_latency\t%.3f\n", (double)st->lat_min_us / 1000.0);
    put(o, "zk_packets_received\t%llu\n", (unsigned long long)st->received);
    put(o, "zk_packets_sent\t%llu\n", (unsigned long long)st->sent);
    put(o, "zk_num_alive_connections\t%u\n", s->n_conns);
    put(o, "zk_outstanding_requests\t%u\n", s->n_inflight);
    put(o, "zk_znode_count\t%u\n", tree_count(&s->tree));
    put(o, "zk_watch_count\t%llu\n", (unsigned long long)watch_count(&s->watches));
    put(o, "zk_ephemerals_count\t%u\n", tree_ephemeral_count(&s->tree));
    put(o, "zk_approximate_data_size\t%llu\n", (unsigned long long)s->tree.data_bytes);
    put(o, "zk_open_file_descriptor_count\t%d\n", count_fds());
    put(o, "zk_max_file_descriptor_count\t%llu\n", (unsigned long long)rl.rlim_cur);
    put(o, "zk_global_sessions\t%u\n", session_count(&s->sessions));
    put(o, "zk_last_zxid\t0x%llx\n", (unsigned long long)s->tree.last_applied);
    put(o, "zk_uptime\t%llu\n", (unsigned long long)(server_now_ms() - s->start_ms));
    put(o, "zkfs_commits\t%llu\n", (unsigned long long)st->commits);
    put(o, "zkfs_log_appends\t%llu\n", (unsigned long long)ss.appends);
    put(o, "zkfs_log_syncs\t%llu\n", (unsigned long long)ss.syncs);
    put(o, "zkfs_log_bytes\t%llu\n", (unsigned long long)ss.bytes_written);
}

static void conf(struct out *o, const struct server *s)
{
    const struct config *c = &s->cfg;
    put(o, "clientPort=%d\n", c->client_port);
    put(o, "clientPortAddress=%s\n", c->client_addr);
    put(o, "dataDir=%s\n", c->data_dir);
    put(o, "tickTime=%d\n", c->tick_time);
    put(o, "maxClientCnxns=%d\n", c->max_client_cnxns);
    put(o, "minSessionTimeout=%d\n", c->min_session_timeout);
    put(o, "maxSessionTimeout=%d\n", c->max_session_timeout);
    put(o, "serverId=%u\n", c->myid);
    put(o, "initLimit=%d\n", c->init_limit);
    put(o, "syncLimit=%d\n", c->sync_limit);
    put(o, "zkfs.maxDataSize=%u\n", c->max_data);
    put(o, "zkfs.groupCommit=%s\n", c->group_commit ? "true" : "false");
    put(o, "forceSync=%s\n", c->force_sync ? "yes" : "no");
    for (int i = 0; i < c->n_servers; i++)
        put(o, "server.%u=%s:%d:%d:%s\n", c->servers[i].id, c->servers[i].host,
            c->servers[i].quorum_port, c->servers[i].election_port,
            c->servers[i].observer ? "observer" : "participant");
}

static void dump(struct out *o, const struct server *s)
{
    put(o, "SessionTracker dump:\nGlobal Sessions(%u):\n", session_count(&s->sessions));
    uint64_t now = server_now_ms();
    for (const struct session *x = s->sessions.sessions; x; x = x->hh.next)
        put(o, "0x%llx\t%dms\t%s\n", (unsigned long long)x->id, x->timeout_ms,
            x->expires_ms > now ? "live" : "expiring");
    put(o, "ephemeral nodes dump:\n");
    uint32_t with = 0;
    for (const struct tree_session *ts = s->tree.sessions; ts; ts = ts->hh.next)
        with += ts->ephemerals != NULL;
    put(o, "Sessions with Ephemerals (%u):\n", with);
    for (const struct tree_session *ts = s->tree.sessions; ts; ts = ts->hh.next) {
        if (!ts->ephemerals)
            continue;
        put(o, "0x%llx:\n", (unsigned long long)ts->id);
        for (const struct tree_ephemeral *e = ts->ephemerals; e; e = e->hh.next)
            put(o, "\t%s\n", e->node->path);
    }
}

char *fourlw_answer(struct server *s, const char *cmd)
{
    struct out o = {0};
    uint64_t now = server_now_ms();
    if (!strcmp(cmd, "ruok")) {
        put(&o, "imok");
    } else if (s->cluster && !cluster_serving(s->cluster) &&
               (!strcmp(cmd, "srvr") || !strcmp(cmd, "stat") || !strcmp(cmd, "cons") ||
                !strcmp(cmd, "wchs") || !strcmp(cmd, "dump"))) {
        /* ZooKeeper's answer while outside a quorum */
        put(&o, "This ZooKeeper instance is not currently serving requests\n");
    } else if (!strcmp(cmd, "srvr")) {
        put(&o, "Zookeeper version: %s (zkfs)\n", ZKFS_VERSION);
        server_summary(&o, s);
    } else if (!strcmp(cmd, "stat")) {
        put(&o, "Zookeeper version: %s (zkfs)\nClients:\n", ZKFS_VERSION);
        for (const struct conn *c = s->conns; c; c = c->next)
            conn_line(&o, c, now);
        put(&o, "\n");
        server_summary(&o, s);
    } else if (!strcmp(cmd, "mntr")) {
        mntr(&o, s);
    } else if (!strcmp(cmd, "conf")) {
        conf(&o, s);
    } else if (!strcmp(cmd, "cons")) {
        for (const struct conn *c = s->conns; c; c = c->next)
            conn_line(&o, c, now);
        put(&o, "\n");
    } else if (!strcmp(cmd, "dump")) {
        dump(&o, s);
    } else if (!strcmp(cmd, "wchs")) {
        uint32_t owners = 0;
        for (const struct conn *c = s->conns; c; c = c->next)
            owners += c->watches.count > 0;
        put(&o, "%u connections watching %u paths\nTotal watches:%llu\n", owners,
            watch_path_count(&s->watches), (unsigned long long)watch_count(&s->watches));
    } else if (!strcmp(cmd, "envi")) {
        put(&o, "Environment:\nzookeeper.version=%s\n", ZKFS_VERSION);
    } else if (!strcmp(cmd, "isro")) {
        put(&o, "rw");
    } else {
        return NULL;
    }
    if (!o.buf)
        o.buf = strdup("");
    return o.buf;
}
