/* mountctl: zkCli-like commands on a zkfs cluster for people (tables) and scripts (-w json). */
#include "client.h"
#include "status.h"
#include "err.h"
#include "log.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_ERR 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3
#define DEFAULT_SERVERS "127.0.0.1:2181"
#define DEFAULT_TIMEOUT_MS 10000
#define SESSION_TIMEOUT_MS 10000
#define MAX_DATA (1024 * 1024)
#define MAX_ARGS 64
#define WINDOW 256 /* requests in flight for rm -r */

/* zkfs node kinds and policy bits (replica/txn.h NODE_KIND_*, POLICY_*). */
#define KIND_FILE 1
#define KIND_DIR 2
#define POLICY_EPHEMERAL 1
#define POLICY_SEQUENTIAL 2

struct ctx {
    const char *servers;
    int json;
    int timeout_ms;
    struct zc *zc;
    const char *cmd;
    /* watch */
    int wake_fd[2];
    int expired;
    int stdout_gone;
};

/* Parsed command arguments: flags (by letter, with their values) and positionals. */
struct args {
    int flag[128];
    const char *val[128];
    const char *pos[MAX_ARGS];
    int npos;
    int32_t version; /* -v, else -1 */
    long long ttl;   /* create -t */
    uint32_t policy; /* policy DIR VALUE */
};

struct command {
    const char *name;
    const char *flags; /* getopt-like: "esct:" */
    int min_pos, max_pos;
    int (*run)(struct ctx *x, struct args *a);
    const char *synopsis;
    /* Commands that need no session take their arguments as they come. */
    int (*raw)(struct ctx *x, char **argv, int argc);
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
    return EXIT_USAGE;
}

static int fail(struct ctx *x, const char *what, int err)
{
    fprintf(stderr, "mountctl: %s %s: %s: %s\n", x->cmd, what, err_name(err), err_msg(err));
    return err == ZE_CONNECTIONLOSS ? EXIT_UNREACHABLE : EXIT_ERR;
}

/* ---- output helpers ---- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static const char *kind_name(uint32_t kind)
{
    switch (kind) {
    case 0:
        return "unset";
    case KIND_FILE:
        return "file";
    case KIND_DIR:
        return "directory";
    default:
        return "unknown";
    }
}

static void policy_name(uint32_t policy, char *buf, size_t len)
{
    buf[0] = 0;
    if (!policy) {
        snprintf(buf, len, "none");
        return;
    }
    size_t n = 0;
    if (policy & POLICY_EPHEMERAL)
        n += (size_t)snprintf(buf + n, len - n, "ephemeral");
    if (policy & POLICY_SEQUENTIAL)
        n += (size_t)snprintf(buf + n, len - n, "%ssequential", n ? "," : "");
    uint32_t rest = policy & ~(uint32_t)(POLICY_EPHEMERAL | POLICY_SEQUENTIAL);
    if (rest && n < len)
        snprintf(buf + n, len - n, "%s0x%x", n ? "," : "", rest);
}

static int parse_policy(const char *s, uint32_t *out)
{
    uint32_t p = 0;
    if (strcmp(s, "none") == 0 || *s == 0) {
        *out = 0;
        return 0;
    }
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "ephemeral") == 0)
            p |= POLICY_EPHEMERAL;
        else if (strcmp(t, "sequential") == 0)
            p |= POLICY_SEQUENTIAL;
        else
            return -1;
    }
    *out = p;
    return 0;
}

static void print_time(FILE *f, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[64];
    if (localtime_r(&t, &tm) && strftime(buf, sizeof(buf), "%a %b %d %H:%M:%S %Z %Y", &tm))
        fputs(buf, f);
    else
        fprintf(f, "%" PRId64, ms);
}

static void print_stat(struct ctx *x, const struct zc_stat *s)
{
    char pol[64];
    policy_name(s->policy, pol, sizeof(pol));
    if (x->json) {
        printf("{\"czxid\":%" PRId64 ",\"mzxid\":%" PRId64 ",\"ctime\":%" PRId64
               ",\"mtime\":%" PRId64 ",\"version\":%d,\"cversion\":%d,\"aversion\":%d"
               ",\"ephemeralOwner\":%" PRId64 ",\"dataLength\":%d,\"numChildren\":%d"
               ",\"pzxid\":%" PRId64 ",\"kind\":",
               s->czxid, s->mzxid, s->ctime, s->mtime, s->version, s->cversion, s->aversion,
               s->ephemeral_owner, s->data_length, s->num_children, s->pzxid);
        json_str(stdout, kind_name(s->kind));
        printf(",\"policy\":");
        json_str(stdout, pol);
        printf("}\n");
        return;
    }
    printf("czxid = 0x%" PRIx64 "\n", (uint64_t)s->czxid);
    printf("ctime = ");
    print_time(stdout, s->ctime);
    printf("\nmzxid = 0x%" PRIx64 "\n", (uint64_t)s->mzxid);
    printf("mtime = ");
    print_time(stdout, s->mtime);
    printf("\npzxid = 0x%" PRIx64 "\n", (uint64_t)s->pzxid);
    printf("cversion = %d\n", s->cversion);
    printf("version = %d\n", s->version);
    printf("aversion = %d\n", s->aversion);
    printf("ephemeralOwner = 0x%" PRIx64 "\n", (uint64_t)s->ephemeral_owner);
    printf("dataLength = %d\n", s->data_length);
    printf("numChildren = %d\n", s->num_children);
    printf("kind = %s\n", kind_name(s->kind));
    printf("policy = %s\n", pol);
}

/* ---- argument helpers ---- */

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

/* DATA or '-' (stdin); *buf is malloc'd. */
static int read_data(struct ctx *x, const char *what, const char *arg, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (!arg)
        return 0;
    if (strcmp(arg, "-") != 0) {
        *len = strlen(arg);
        *buf = (uint8_t *)strdup(arg);
        return *buf ? 0 : fail(x, "data", -ENOMEM);
    }
    size_t cap = 65536, n = 0;
    uint8_t *b = malloc(cap);
    for (;;) {
        if (!b)
            return fail(x, "stdin", -ENOMEM);
        ssize_t r = read(STDIN_FILENO, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            free(b);
            return fail(x, "stdin", e);
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > MAX_DATA) {
            free(b);
            fprintf(stderr, "mountctl: %s %s: data larger than %d bytes\n", x->cmd, what, MAX_DATA);
            return EXIT_ERR;
        }
        if (n == cap) {
            cap *= 2;
            uint8_t *nb = realloc(b, cap);
            if (!nb)
                free(b);
            b = nb;
        }
    }
    *buf = b;
    *len = n;
    return 0;
}

/* ---- commands ---- */

static int cmd_create(struct ctx *x, struct args *a)
{
    const char *path = a->pos[0];
    int e = a->flag['e'], s = a->flag['s'], c = a->flag['c'], t = a->flag['t'];
    int mode = ZC_PERSISTENT;
    if (c)
        mode = ZC_CONTAINER;
    else if (t)
        mode = s ? ZC_PERSISTENT_SEQUENTIAL_WITH_TTL : ZC_PERSISTENT_WITH_TTL;
    else if (e)
        mode = s ? ZC_EPHEMERAL_SEQUENTIAL : ZC_EPHEMERAL;
    else if (s)
        mode = ZC_PERSISTENT_SEQUENTIAL;
    uint8_t *data;
    size_t len;
    int rc = read_data(x, path, a->npos > 1 ? a->pos[1] : NULL, &data, &len);
    if (rc)
        return rc;
    struct zc_req req = {.op = ZC_OP_CREATE,
                         .path = path,
                         .data = data,
                         .data_len = len,
                         .version = -1,
                         .mode = mode,
                         .ttl = a->ttl};
    struct zc_result r;
    rc = zc_call(x->zc, &req, &r);
    free(data);
    if (rc) {
        zc_result_free(&r);
        return fail(x, path, rc);
    }
    const char *made = r.path ? r.path : path;
    if (x->json) {
        printf("{\"path\":");
        json_str(stdout, made);
        printf("}\n");
    } else {
        printf("%s\n", made);
    }
    zc_result_free(&r);
    return 0;
}

static int cmd_get(struct ctx *x, struct args *a)
{
    const char *path = a->pos[0];
    struct zc_req req = {.op = ZC_OP_GET_DATA, .path = path};
    struct zc_result r;
    int rc = zc_call(x->zc, &req, &r);
    if (rc) {
        zc_result_free(&r);
        return fail(x, path, rc);
    }
    if (r.data_len && fwrite(r.data, 1, r.data_len, stdout) != r.data_len) {
        zc_result_free(&r);
        return fail(x, "stdout", -errno);
    }
    zc_result_free(&r);
    return 0;
}

static int cmd_set(struct ctx *x, struct args *a)
{
    const char *path = a->pos[0];
    int32_t version = a->version;
    int rc;
    uint8_t *data;
    size_t len;
    if ((rc = read_data(x, path, a->pos[1], &data, &len)))
        return rc;
    struct zc_req req = {
        .op = ZC_OP_SET_DATA, .path = path, .data = data, .data_len = len, .version = version};
    struct zc_result r;
    rc = zc_call(x->zc, &req, &r);
    free(data);
    if (rc) {
        zc_result_free(&r);
        return fail(x, path, rc);
    }
    if (x->json && r.has_stat)
        print_stat(x, &r.stat);
    zc_result_free(&r);
    return 0;
}

static int cmd_ls(struct ctx *x, struct args *a)
{
    const char *path = a->pos[0];
    struct zc_req req = {.op = ZC_OP_GET_CHILDREN, .path = path};
    struct zc_result r;
    int rc = zc_call(x->zc, &req, &r);
    if (rc) {
        zc_result_free(&r);
        return fail(x, path, rc);
    }
    if (x->json) {
        printf("[");
        for (uint32_t i = 0; i < r.n_children; i++) {
            if (i)
                printf(",");
            json_str(stdout, r.children[i]);
        }
        printf("]\n");
    } else {
        for (uint32_t i = 0; i < r.n_children; i++)
            printf("%s\n", r.children[i]);
    }
    zc_result_free(&r);
    return 0;
}

static int cmd_stat(struct ctx *x, struct args *a)
{
    const char *path = a->pos[0];
    struct zc_req req = {.op = ZC_OP_EXISTS, .path = path};
    struct zc_result r;
    int rc = zc_call(x->zc, &req, &r);
    if (rc) {
        zc_result_free(&r);
        return fail(x, path, rc);
    }
    print_stat(x, &r.stat);
    zc_result_free(&r);
    return 0;
}

static int cmd_sync(struct ctx *x, struct args *a)
{
    const char *path = a->pos[0];
    struct zc_req req = {.op = ZC_OP_SYNC, .path = path};
    struct zc_result r;
    int rc = zc_call(x->zc, &req, &r);
    zc_result_free(&r);
    return rc ? fail(x, path, rc) : 0;
}

static int cmd_policy(struct ctx *x, struct args *a)
{
    const char *path = a->pos[0];
    int rc;
    struct zc_result r;
    if (a->npos == 1) {
        struct zc_req req = {.op = ZC_OP_EXISTS, .path = path};
        rc = zc_call(x->zc, &req, &r);
        if (rc == 0) {
            char pol[64];
            policy_name(r.stat.policy, pol, sizeof(pol));
            if (x->json) {
                printf("{\"policy\":");
                json_str(stdout, pol);
                printf("}\n");
            } else {
                printf("%s\n", pol);
            }
        }
        zc_result_free(&r);
        return rc ? fail(x, path, rc) : 0;
    }
    uint32_t policy = a->policy;
    /* A policy only means something on a directory, so the node becomes one. */
    struct zc_req req = {.op = ZC_OP_SET_META,
                         .path = path,
                         .policy = policy,
                         .has_policy = 1,
                         .kind = KIND_DIR,
                         .has_kind = policy != 0};
    rc = zc_call(x->zc, &req, &r);
    zc_result_free(&r);
    return rc ? fail(x, path, rc) : 0;
}

/* Runs requests with at most WINDOW in flight (replies come in order); collects results. */
struct batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight;
};

struct item {
    struct batch *b;
    int err;
    int want_children;
    char **children;
    uint32_t n_children;
};

static void item_done(void *arg, const struct zc_result *r)
{
    struct item *it = arg;
    it->err = r->err;
    if (it->want_children && r->err == 0 && r->n_children) {
        it->children = calloc(r->n_children, sizeof(char *));
        for (uint32_t i = 0; it->children && i < r->n_children; i++) {
            it->children[i] = strdup(r->children[i]);
            if (!it->children[i])
                it->err = -ENOMEM;
            it->n_children = i + 1;
        }
        if (!it->children)
            it->err = -ENOMEM;
    }
    pthread_mutex_lock(&it->b->mu);
    it->b->inflight--;
    pthread_cond_signal(&it->b->cv);
    pthread_mutex_unlock(&it->b->mu);
}

static void run_batch(struct zc *zc, const struct zc_req *reqs, struct item *items, size_t n)
{
    struct batch b = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    for (size_t i = 0; i < n; i++) {
        items[i].b = &b;
        pthread_mutex_lock(&b.mu);
        while (b.inflight >= WINDOW)
            pthread_cond_wait(&b.cv, &b.mu);
        b.inflight++;
        pthread_mutex_unlock(&b.mu);
        int rc = zc_submit(zc, &reqs[i], item_done, &items[i]);
        if (rc) {
            items[i].err = rc;
            pthread_mutex_lock(&b.mu);
            b.inflight--;
            pthread_mutex_unlock(&b.mu);
        }
    }
    pthread_mutex_lock(&b.mu);
    while (b.inflight)
        pthread_cond_wait(&b.cv, &b.mu);
    pthread_mutex_unlock(&b.mu);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
}

struct plist {
    char **p;
    size_t n, cap;
};

static int plist_add(struct plist *l, char *s)
{
    if (!s)
        return -ENOMEM;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **np = realloc(l->p, cap * sizeof(*np));
        if (!np) {
            free(s);
            return -ENOMEM;
        }
        l->p = np;
        l->cap = cap;
    }
    l->p[l->n++] = s;
    return 0;
}

static char *child_path(const char *parent, const char *name)
{
    char *s;
    if (asprintf(&s, "%s/%s", strcmp(parent, "/") == 0 ? "" : parent, name) < 0)
        return NULL;
    return s;
}

/* Deletes path and everything under it, deepest first: the tree is listed level by level,
 * then deleted in reverse order, so every child's delete reaches the server before its
 * parent's. Nodes already gone are skipped. "/" itself (and /zookeeper) is kept. */
static int rm_tree(struct ctx *x, const char *path, int32_t version)
{
    struct plist l = {0};
    int rc = plist_add(&l, strdup(path)), ret = 0;
    size_t level = 0;
    while (rc == 0 && level < l.n) {
        size_t end = l.n, n = end - level;
        struct zc_req *reqs = calloc(n, sizeof(*reqs));
        struct item *items = calloc(n, sizeof(*items));
        if (!reqs || !items) {
            free(reqs);
            free(items);
            rc = -ENOMEM;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            reqs[i] = (struct zc_req){.op = ZC_OP_GET_CHILDREN, .path = l.p[level + i]};
            items[i].want_children = 1;
        }
        run_batch(x->zc, reqs, items, n);
        for (size_t i = 0; i < n; i++) {
            const char *p = l.p[level + i];
            if (items[i].err && !(items[i].err == ZE_NONODE && level + i > 0) && !ret)
                ret = fail(x, p, items[i].err);
            for (uint32_t j = 0; j < items[i].n_children; j++) {
                if (!ret && !rc &&
                    !(strcmp(p, "/") == 0 && strcmp(items[i].children[j], "zookeeper") == 0))
                    rc = plist_add(&l, child_path(p, items[i].children[j]));
                free(items[i].children[j]);
            }
            free(items[i].children);
        }
        free(reqs);
        free(items);
        level = end;
        if (ret)
            break;
    }
    if (rc && !ret)
        ret = fail(x, path, rc);
    size_t n = l.n;
    if (!ret && n) {
        struct zc_req *reqs = calloc(n, sizeof(*reqs));
        struct item *items = calloc(n, sizeof(*items));
        if (!reqs || !items) {
            ret = fail(x, path, -ENOMEM);
        } else {
            size_t k = 0;
            for (size_t i = n; i-- > 0;) {
                if (strcmp(l.p[i], "/") == 0)
                    continue;
                reqs[k++] = (struct zc_req){
                    .op = ZC_OP_DELETE, .path = l.p[i], .version = i == 0 ? version : -1};
            }
            run_batch(x->zc, reqs, items, k);
            for (size_t i = 0; i < k && !ret; i++)
                if (items[i].err && !(items[i].err == ZE_NONODE && reqs[i].path != l.p[0]))
                    ret = fail(x, reqs[i].path, items[i].err);
        }
        free(reqs);
        free(items);
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.p[i]);
    free(l.p);
    return ret;
}

static int cmd_rm(struct ctx *x, struct args *a)
{
    const char *path = a->pos[0];
    int32_t version = a->version;
    int rc;
    if (a->flag['r'])
        return rm_tree(x, path, version);
    struct zc_req req = {.op = ZC_OP_DELETE, .path = path, .version = version};
    struct zc_result r;
    rc = zc_call(x->zc, &req, &r);
    zc_result_free(&r);
    return rc ? fail(x, path, rc) : 0;
}

/* ---- watch ---- */

static int sig_fd = -1;

static void on_signal(int sig)
{
    char b = 'i';
    if (sig_fd >= 0 && write(sig_fd, &b, 1) < 0) {
    }
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
static void on_watch_event(void *arg, const struct zc_event *ev)
{
    struct ctx *x = arg;
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
        json_str(stdout, name);
        printf(",\"path\":");
        json_str(stdout, ev->path);
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

static int cmd_watch(struct ctx *x, struct args *a)
{
    const char *path = a->pos[0];
    struct zc_req req = {.op = ZC_OP_ADD_WATCH, .path = path, .mode = a->flag['r'] ? 1 : 0};
    struct zc_result r;
    int rc = zc_call(x->zc, &req, &r);
    zc_result_free(&r);
    if (rc)
        return fail(x, path, rc);
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
        return EXIT_ERR;
    }
    return 0;
}

/* ---- mount / umount ---- */

#define MOUNT_WAIT_MS 10000

/* The zkfs-fused installed next to this mountctl, else the one on PATH. */
static void fused_path(char *buf, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, len, "%s/zkfs-fused", self);
            if (access(buf, X_OK) == 0)
                return;
        }
    }
    snprintf(buf, len, "zkfs-fused");
}

/* /proc/self/mountinfo writes space, tab, newline and backslash as \\ooo. */
static void unescape(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *out++ = *s;
        }
    }
    *out = 0;
}

/* The filesystem type mounted at path (canonical), copied into type; 0 if none. */
static int mounted_type(const char *path, char *type, size_t len)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    while (getline(&line, &cap, f) > 0) {
        char *sep = strstr(line, " - ");
        if (!sep)
            continue;
        *sep = 0;
        char *save = NULL, *fields[6] = {0};
        char *t = strtok_r(line, " ", &save);
        for (int i = 0; t && i < 6; i++, t = strtok_r(NULL, " ", &save))
            fields[i] = t;
        if (!fields[4])
            continue;
        unescape(fields[4]);
        if (strcmp(fields[4], path) != 0)
            continue;
        char *fstype = sep + 3, *sp = strchr(fstype, ' ');
        if (sp)
            *sp = 0;
        snprintf(type, len, "%s", fstype);
        found = 1; /* the last one wins: it is on top */
    }
    free(line);
    fclose(f);
    return found;
}

/* Runs argv and waits for it; what it writes on stderr before exiting is passed on, but its
 * descendants (a daemon, fusermount3's auto-unmount helper) are not waited for. Returns the
 * exit status, or -1 if it could not run. */
static int run_child(char *const argv[])
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
        }
        dup2(pfd[1], STDERR_FILENO);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    int status = 0;
    for (;;) {
        char buf[4096];
        ssize_t n;
        while ((n = read(pfd[0], buf, sizeof(buf))) > 0)
            if (fwrite(buf, 1, (size_t)n, stderr) != (size_t)n)
                break;
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        poll(&p, 1, 50);
    }
    char buf[4096];
    ssize_t n;
    while ((n = read(pfd[0], buf, sizeof(buf))) > 0)
        if (fwrite(buf, 1, (size_t)n, stderr) != (size_t)n)
            break;
    close(pfd[0]);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int cmd_mount(struct ctx *x, char **argv, int argc)
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
    char real[PATH_MAX], type[64];
    if (!realpath(pos[1], real)) {
        fprintf(stderr, "mountctl: mount: %s: %s\n", pos[1], strerror(errno));
        return EXIT_ERR;
    }
    if (mounted_type(real, type, sizeof(type)) && strcmp(type, "fuse.zkfs") == 0) {
        fprintf(stderr, "mountctl: mount: %s is already a zkfs mount\n", real);
        return EXIT_ERR;
    }
    char prog[PATH_MAX + 16];
    fused_path(prog, sizeof(prog));
    char *av[6] = {prog, (char *)pos[0], real, NULL, NULL, NULL};
    if (opts) {
        av[3] = "-o";
        av[4] = (char *)opts;
    }
    int rc = run_child(av);
    if (rc != 0) {
        fprintf(stderr, "mountctl: mount: %s exited with status %d\n", prog, rc);
        return EXIT_ERR;
    }
    /* The daemon mounts before it goes to the background; check anyway. */
    for (int waited = 0;; waited += 20) {
        if (mounted_type(real, type, sizeof(type)) && strncmp(type, "fuse", 4) == 0)
            return 0;
        if (waited >= x->timeout_ms || waited >= MOUNT_WAIT_MS)
            break;
        usleep(20000);
    }
    fprintf(stderr, "mountctl: mount: %s did not appear as a mount\n", real);
    return EXIT_ERR;
}

static int cmd_umount(struct ctx *x, char **argv, int argc)
{
    (void)x;
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
    char real[PATH_MAX], type[64];
    /* realpath would stat the mount point, which hangs or fails on a dead mount. */
    if (mp[0] == '/')
        snprintf(real, sizeof(real), "%s", mp);
    else if (!realpath(mp, real))
        snprintf(real, sizeof(real), "%s", mp);
    if (!mounted_type(real, type, sizeof(type))) {
        fprintf(stderr, "mountctl: umount: %s is not mounted\n", real);
        return EXIT_ERR;
    }
    char *av[] = {"fusermount3", lazy ? "-uz" : "-u", real, NULL};
    int rc = run_child(av);
    if (rc != 0) {
        fprintf(stderr, "mountctl: umount: fusermount3 exited with status %d%s\n", rc,
                lazy ? "" : " (busy? -z unmounts lazily)");
        return EXIT_ERR;
    }
    return 0;
}

static int not_implemented(struct ctx *x, struct args *a)
{
    fprintf(stderr, "mountctl: %s: not yet implemented\n", x->cmd);
    return EXIT_USAGE;
}

/* status [SERVERS]: one row per replica; needs no session, so it works without a quorum. */
static int cmd_status(struct ctx *x, char **argv, int argc)
{
    if (argc > 1)
        return usage_error("%s", "status takes at most one server list");
    return status_run(argc == 1 ? argv[0] : x->servers, x->json);
}

static const struct command commands[] = {
    {"create", "esct:", 1, 2, cmd_create, "create [-e] [-s] [-c] [-t TTL_MS] PATH [DATA|-]", NULL},
    {"get", "", 1, 1, cmd_get, "get PATH", NULL},
    {"set", "v:", 2, 2, cmd_set, "set [-v VERSION] PATH DATA|-", NULL},
    {"ls", "", 1, 1, cmd_ls, "ls PATH", NULL},
    {"rm", "rv:", 1, 1, cmd_rm, "rm [-r] [-v VERSION] PATH", NULL},
    {"stat", "", 1, 1, cmd_stat, "stat PATH", NULL},
    {"sync", "", 1, 1, cmd_sync, "sync PATH", NULL},
    {"watch", "r", 1, 1, cmd_watch, "watch [-r] PATH", NULL},
    {"policy", "", 1, 2, cmd_policy, "policy DIR [ephemeral,sequential|none]", NULL},
    {"mount", NULL, 0, 0, NULL, "mount SERVERS MOUNTPOINT [-o OPTION,...]", cmd_mount},
    {"umount", NULL, 0, 0, NULL, "umount [-z] MOUNTPOINT", cmd_umount},
    {"status", NULL, 0, 0, NULL, "status [SERVERS]", cmd_status},
    {"lock", NULL, 0, 0, not_implemented, NULL, NULL},
};

/* Command flags (bundled or not, values attached or next) and positionals; after "--" all
 * are positionals. */
static int parse_args(const struct command *cmd, char **argv, int argc, int dashdash,
                      struct args *a)
{
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (i >= dashdash || s[0] != '-' || s[1] == 0) {
            if (a->npos == MAX_ARGS)
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
    if (path_validate(path, strlen(path), cmd->run == cmd_create && a->flag['s']) != 0) {
        /* One line whatever the path holds. */
        char shown[256];
        size_t n = 0;
        for (const char *p = path; *p && n < sizeof(shown) - 1; p++)
            shown[n++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
        shown[n] = 0;
        fprintf(stderr, "mountctl: %s '%s': %s: invalid path (absolute, as /a/b)\n", cmd->name,
                shown, err_name(ZE_BADARGUMENTS));
        return EXIT_USAGE;
    }
    long long v = -1;
    if (a->flag['v'] && parse_int(a->val['v'], -1, INT32_MAX, &v) < 0)
        return usage_error("invalid version '%s'", a->val['v']);
    a->version = (int32_t)v;
    if (cmd->run == cmd_create) {
        int e = a->flag['e'], s = a->flag['s'], c = a->flag['c'], t = a->flag['t'];
        if (c && (e || s || t))
            return usage_error("%s", "-c cannot be combined with -e, -s or -t");
        if (t && e)
            return usage_error("%s", "-t cannot be combined with -e");
        if (t && parse_int(a->val['t'], 1, INT64_MAX, &a->ttl) < 0)
            return usage_error("invalid TTL '%s' (milliseconds)", a->val['t']);
    }
    if (cmd->run == cmd_policy && a->npos == 2 && parse_policy(a->pos[1], &a->policy) < 0)
        return usage_error("invalid policy '%s' (ephemeral,sequential|ephemeral|sequential|none)",
                           a->pos[1]);
    return 0;
}

static int connect_cluster(struct ctx *x, int watching)
{
    struct zc_opts o = {
        .servers = x->servers,
        .session_timeout_ms = SESSION_TIMEOUT_MS,
        .request_timeout_ms = x->timeout_ms,
        .on_event = watching ? on_watch_event : NULL,
        .arg = x,
    };
    int rc = zc_new(&x->zc, &o);
    if (rc == ZE_BADARGUMENTS)
        return usage_error("invalid server list '%s' (HOST:PORT,...[/CHROOT])", x->servers);
    if (rc) {
        fprintf(stderr, "mountctl: %s\n", err_msg(rc));
        return EXIT_ERR;
    }
    rc = zc_wait_connected(x->zc, x->timeout_ms);
    if (rc == ZE_CONNECTIONLOSS) {
        fprintf(stderr, "mountctl: cannot reach the cluster at %s within %d s\n", x->servers,
                (x->timeout_ms + 999) / 1000);
        return EXIT_UNREACHABLE;
    }
    if (rc) {
        fprintf(stderr, "mountctl: %s: %s\n", x->servers, err_msg(rc));
        return EXIT_ERR;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct ctx x = {.timeout_ms = DEFAULT_TIMEOUT_MS, .wake_fd = {-1, -1}};
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
        return EXIT_USAGE;
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
    static struct args a;
    int rc = parse_args(cmd, rest, nrest, dashdash < 0 ? nrest : dashdash, &a);
    if (rc)
        return rc;

    int watching = cmd->run == cmd_watch;
    if (watching) {
        if (pipe2(x.wake_fd, O_CLOEXEC) < 0) {
            perror("mountctl: pipe");
            return EXIT_ERR;
        }
        sig_fd = x.wake_fd[1];
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
    }
    rc = connect_cluster(&x, watching);
    if (rc == 0)
        rc = cmd->run(&x, &a);
    if (!x.stdout_gone && fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "mountctl: stdout: %s\n", strerror(errno));
        rc = EXIT_ERR;
    }
    zc_free(x.zc);
    if (watching) {
        close(x.wake_fd[0]);
        close(x.wake_fd[1]);
    }
    return rc;
}
