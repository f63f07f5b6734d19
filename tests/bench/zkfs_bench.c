/* zkfs-bench: N client sessions each keeping a window of requests in flight; reports ops/s
 * and latency percentiles. A benchmark, never a test: it asserts nothing about speed. */
#include "client.h"
#include "err.h"
#include "log.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum bench_op { OP_CREATE, OP_SET, OP_GET };

struct worker;

struct slot {
    struct worker *w;
    uint64_t start_us;
};

struct worker {
    struct zc *zc;
    int id;
    long next;  /* next op number to issue */
    long total; /* ops this worker issues */
    long done;
    long failed;
    uint64_t *lat_us; /* one entry per completed op */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static enum bench_op op = OP_CREATE;
static int value_size = 100;
static uint8_t *value;
static const char *prefix = "/bench";

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void issue(struct worker *w);

static void on_done(void *arg, const struct zc_result *r)
{
    struct slot *s = arg;
    struct worker *w = s->w;
    uint64_t lat = now_us() - s->start_us;
    free(s);
    pthread_mutex_lock(&w->mu);
    if (r->err)
        w->failed++;
    else
        w->lat_us[w->done - w->failed] = lat;
    w->done++;
    int more = w->next < w->total;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (more)
        issue(w);
}

/* Runs on the caller's thread at start and on the client thread afterwards. */
static void issue(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->next >= w->total) {
        pthread_mutex_unlock(&w->mu);
        return;
    }
    long n = w->next++;
    pthread_mutex_unlock(&w->mu);
    char path[128];
    struct zc_req req = {.version = -1};
    switch (op) {
    case OP_CREATE:
        snprintf(path, sizeof(path), "%s/c%d-%ld", prefix, w->id, n);
        req.op = ZC_OP_CREATE;
        req.data = value;
        req.data_len = (size_t)value_size;
        break;
    case OP_SET:
        snprintf(path, sizeof(path), "%s/k%d", prefix, w->id);
        req.op = ZC_OP_SET_DATA;
        req.data = value;
        req.data_len = (size_t)value_size;
        break;
    case OP_GET:
        snprintf(path, sizeof(path), "%s/k%d", prefix, w->id);
        req.op = ZC_OP_GET_DATA;
        break;
    }
    req.path = path;
    struct slot *s = malloc(sizeof(*s));
    s->w = w;
    s->start_us = now_us();
    if (zc_submit(w->zc, &req, on_done, s)) {
        free(s);
        pthread_mutex_lock(&w->mu);
        w->failed++;
        w->done++;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: zkfs-bench [--servers S] [--clients N] [--ops N] [--window W]\n"
                    "                  [--size BYTES] [--op create|set|get] [--json]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *servers = getenv("ZKFS_SERVERS") ? getenv("ZKFS_SERVERS") : "127.0.0.1:2181";
    int clients = 8, window = 16, json = 0;
    log_init("zkfs-bench", LOG_LEVEL_WARN);
    long ops = 20000;
    static const struct option lopts[] = {
        {"servers", 1, 0, 's'}, {"clients", 1, 0, 'c'}, {"ops", 1, 0, 'n'}, {"window", 1, 0, 'w'},
        {"size", 1, 0, 'z'},    {"op", 1, 0, 'o'},      {"json", 0, 0, 'j'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (ch) {
        case 's': servers = optarg; break;
        case 'c': clients = atoi(optarg); break;
        case 'n': ops = atol(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 'z': value_size = atoi(optarg); break;
        case 'o':
            op = !strcmp(optarg, "set") ? OP_SET : !strcmp(optarg, "get") ? OP_GET : OP_CREATE;
            break;
        case 'j': json = 1; break;
        default: usage();
        }
    }
    if (clients < 1 || window < 1 || ops < clients || value_size < 0)
        usage();
    value = calloc(1, (size_t)value_size + 1);
    memset(value, 'v', (size_t)value_size);
    struct worker *ws = calloc((size_t)clients, sizeof(*ws));
    for (int i = 0; i < clients; i++) {
        struct worker *w = &ws[i];
        w->id = i;
        w->total = ops / clients;
        w->lat_us = calloc((size_t)w->total, sizeof(uint64_t));
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        struct zc_opts o = {.servers = servers, .session_timeout_ms = 10000};
        if (zc_new(&w->zc, &o) || zc_wait_connected(w->zc, 10000)) {
            fprintf(stderr, "zkfs-bench: cannot connect to %s\n", servers);
            return 3;
        }
    }
    /* Setup: the parent and, for set/get, one node per client. */
    struct zc_req mk = {.op = ZC_OP_CREATE, .path = prefix, .version = -1};
    struct zc_result res;
    zc_call(ws[0].zc, &mk, &res);
    zc_result_free(&res);
    if (op != OP_CREATE) {
        for (int i = 0; i < clients; i++) {
            char path[128];
            snprintf(path, sizeof(path), "%s/k%d", prefix, i);
            struct zc_req k = {.op = ZC_OP_CREATE, .path = path, .data = value,
                               .data_len = (size_t)value_size, .version = -1};
            zc_call(ws[0].zc, &k, &res);
            zc_result_free(&res);
        }
    }
    uint64_t t0 = now_us();
    for (int i = 0; i < clients; i++)
        for (int k = 0; k < window; k++)
            issue(&ws[i]);
    long total = 0, failed = 0;
    for (int i = 0; i < clients; i++) {
        struct worker *w = &ws[i];
        pthread_mutex_lock(&w->mu);
        while (w->done < w->total)
            pthread_cond_wait(&w->cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
        total += w->done;
        failed += w->failed;
    }
    double secs = (double)(now_us() - t0) / 1e6;
    long ok = total - failed;
    uint64_t *all = calloc((size_t)(ok ? ok : 1), sizeof(uint64_t));
    long k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, ws[i].lat_us, (size_t)(ws[i].done - ws[i].failed) * sizeof(uint64_t));
        k += ws[i].done - ws[i].failed;
    }
    qsort(all, (size_t)k, sizeof(uint64_t), cmp_u64);
    uint64_t p50 = k ? all[k / 2] : 0, p99 = k ? all[(k * 99) / 100] : 0;
    const char *opname = op == OP_CREATE ? "create" : op == OP_SET ? "set" : "get";
    if (json)
        printf("{\"system\":\"zkfs\",\"workload\":\"%s\",\"clients\":%d,\"window\":%d,"
               "\"value_size\":%d,\"ops\":%ld,\"failed\":%ld,\"ops_per_s\":%.0f,\"p50_us\":%llu,"
               "\"p99_us\":%llu}\n",
               opname, clients, window, value_size, ok, failed, (double)ok / secs,
               (unsigned long long)p50, (unsigned long long)p99);
    else
        printf("%-6s clients=%d window=%d size=%d: %ld ok, %ld failed, %.0f ops/s, p50 %llu us, "
               "p99 %llu us\n",
               opname, clients, window, value_size, ok, failed, (double)ok / secs,
               (unsigned long long)p50, (unsigned long long)p99);
    for (int i = 0; i < clients; i++) {
        zc_free(ws[i].zc);
        free(ws[i].lat_us);
    }
    free(ws);
    free(all);
    free(value);
    return failed ? 1 : 0;
}
