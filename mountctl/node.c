/* mountctl: the commands that read and change nodes, one request each (rm -r: many). */
#include "node.h"

#include "err.h"
#include "policy.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_DATA (1024 * 1024)
#define WINDOW 256 /* requests in flight for rm -r */

/* zkfs node kinds (replica/txn.h NODE_KIND_*). */
#define KIND_FILE 1
#define KIND_DIR 2

/* ---- output ---- */

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

/* The reply's Stat, as zkCli's stat prints it (plus kind and policy), or as JSON. */
static int show_stat(struct cli *x, const struct zc_req *req, const struct zc_result *r)
{
    const struct zc_stat *s = &r->stat;
    char pol[POLICY_NAME_MAX];
    policy_format(s->policy, pol, sizeof(pol));
    if (x->json) {
        printf("{\"czxid\":%" PRId64 ",\"mzxid\":%" PRId64 ",\"ctime\":%" PRId64
               ",\"mtime\":%" PRId64 ",\"version\":%d,\"cversion\":%d,\"aversion\":%d"
               ",\"ephemeralOwner\":%" PRId64 ",\"dataLength\":%d,\"numChildren\":%d"
               ",\"pzxid\":%" PRId64 ",\"kind\":",
               s->czxid, s->mzxid, s->ctime, s->mtime, s->version, s->cversion, s->aversion,
               s->ephemeral_owner, s->data_length, s->num_children, s->pzxid);
        cli_json_str(stdout, kind_name(s->kind));
        printf(",\"policy\":");
        cli_json_str(stdout, pol);
        printf("}\n");
        return 0;
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
    return 0;
}

/* One string: {"key":value} with -w json, else a line. */
static void print_one(struct cli *x, const char *key, const char *value)
{
    if (x->json) {
        printf("{\"%s\":", key);
        cli_json_str(stdout, value);
        printf("}\n");
    } else {
        printf("%s\n", value);
    }
}

static int show_created(struct cli *x, const struct zc_req *req, const struct zc_result *r)
{
    print_one(x, "path", r->path ? r->path : req->path);
    return 0;
}

static int show_data(struct cli *x, const struct zc_req *req, const struct zc_result *r)
{
    if (r->data_len && fwrite(r->data, 1, r->data_len, stdout) != r->data_len)
        return cli_fail(x, "stdout", -errno);
    return 0;
}

static int show_set(struct cli *x, const struct zc_req *req, const struct zc_result *r)
{
    return x->json && r->has_stat ? show_stat(x, req, r) : 0;
}

static int show_children(struct cli *x, const struct zc_req *req, const struct zc_result *r)
{
    if (x->json) {
        printf("[");
        for (uint32_t i = 0; i < r->n_children; i++) {
            if (i)
                printf(",");
            cli_json_str(stdout, r->children[i]);
        }
        printf("]\n");
    } else {
        for (uint32_t i = 0; i < r->n_children; i++)
            printf("%s\n", r->children[i]);
    }
    return 0;
}

static int show_policy(struct cli *x, const struct zc_req *req, const struct zc_result *r)
{
    char pol[POLICY_NAME_MAX];
    policy_format(r->stat.policy, pol, sizeof(pol));
    print_one(x, "policy", pol);
    return 0;
}

/* ---- data from the command line or stdin ---- */

/* DATA or '-' (stdin); *buf is malloc'd. */
static int read_data(struct cli *x, const char *what, const char *arg, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (!arg)
        return 0;
    if (strcmp(arg, "-") != 0) {
        *len = strlen(arg);
        *buf = (uint8_t *)strdup(arg);
        return *buf ? 0 : cli_fail(x, "data", -ENOMEM);
    }
    size_t cap = 65536, n = 0;
    uint8_t *b = malloc(cap);
    for (;;) {
        if (!b)
            return cli_fail(x, "stdin", -ENOMEM);
        ssize_t r = read(STDIN_FILENO, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            free(b);
            return cli_fail(x, "stdin", e);
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > MAX_DATA) {
            free(b);
            fprintf(stderr, "mountctl: %s %s: data larger than %d bytes\n", x->cmd, what, MAX_DATA);
            return CLI_EXIT_ERR;
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

/* cli_call with req's data taken from arg (DATA, '-' for stdin, or NULL for none). */
static int call_with_data(struct cli *x, struct zc_req *req, const char *arg, cli_show_cb show)
{
    uint8_t *data;
    size_t len;
    int rc = read_data(x, req->path, arg, &data, &len);
    if (rc)
        return rc;
    req->data = data;
    req->data_len = len;
    rc = cli_call(x, req, show);
    free(data);
    return rc;
}

/* ---- commands ---- */

int node_create(struct cli *x, const struct cli_args *a)
{
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
    struct zc_req req = {
        .op = ZC_OP_CREATE, .path = a->pos[0], .version = -1, .mode = mode, .ttl = a->ttl};
    return call_with_data(x, &req, a->npos > 1 ? a->pos[1] : NULL, show_created);
}

int node_get(struct cli *x, const struct cli_args *a)
{
    struct zc_req req = {.op = ZC_OP_GET_DATA, .path = a->pos[0]};
    return cli_call(x, &req, show_data);
}

int node_set(struct cli *x, const struct cli_args *a)
{
    struct zc_req req = {.op = ZC_OP_SET_DATA, .path = a->pos[0], .version = a->version};
    return call_with_data(x, &req, a->pos[1], show_set);
}

int node_ls(struct cli *x, const struct cli_args *a)
{
    struct zc_req req = {.op = ZC_OP_GET_CHILDREN, .path = a->pos[0]};
    return cli_call(x, &req, show_children);
}

int node_stat(struct cli *x, const struct cli_args *a)
{
    struct zc_req req = {.op = ZC_OP_EXISTS, .path = a->pos[0]};
    return cli_call(x, &req, show_stat);
}

int node_sync(struct cli *x, const struct cli_args *a)
{
    struct zc_req req = {.op = ZC_OP_SYNC, .path = a->pos[0]};
    return cli_call(x, &req, NULL);
}

int node_policy(struct cli *x, const struct cli_args *a)
{
    if (a->npos == 1) {
        struct zc_req req = {.op = ZC_OP_EXISTS, .path = a->pos[0]};
        return cli_call(x, &req, show_policy);
    }
    /* A policy only means something on a directory, so the node becomes one. */
    struct zc_req req = {.op = ZC_OP_SET_META,
                         .path = a->pos[0],
                         .policy = a->policy,
                         .has_policy = 1,
                         .kind = KIND_DIR,
                         .has_kind = a->policy != 0};
    return cli_call(x, &req, NULL);
}

/* ---- rm -r ---- */

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
static int rm_tree(struct cli *x, const char *path, int32_t version)
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
                ret = cli_fail(x, p, items[i].err);
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
        ret = cli_fail(x, path, rc);
    size_t n = l.n;
    if (!ret && n) {
        struct zc_req *reqs = calloc(n, sizeof(*reqs));
        struct item *items = calloc(n, sizeof(*items));
        if (!reqs || !items) {
            ret = cli_fail(x, path, -ENOMEM);
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
                    ret = cli_fail(x, reqs[i].path, items[i].err);
        }
        free(reqs);
        free(items);
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.p[i]);
    free(l.p);
    return ret;
}

int node_rm(struct cli *x, const struct cli_args *a)
{
    if (a->flag['r'])
        return rm_tree(x, a->pos[0], a->version);
    struct zc_req req = {.op = ZC_OP_DELETE, .path = a->pos[0], .version = a->version};
    return cli_call(x, &req, NULL);
}
