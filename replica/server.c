/* The replica's core loop: startup recovery, the write pipeline (prepare -> log -> apply),
 * session expiry and the client listener. */
#include "server.h"

#include "cluster.h"
#include "conn.h"
#include "err.h"
#include "log.h"
#include "path.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A txn between prepare and apply, in zxid order. is_marker: a sync, a check-only multi or a
 * write refused by prepare (err), which completes once everything before it has been applied. */
struct inflight {
    struct server *srv;
    struct txn txn;
    struct request *req;
    int durable;
    int is_marker;
    int err;         /* a marker's result */
    uint32_t fwd_to; /* a learner's forwarded request refused by prepare: answer it there */
    uint64_t fwd_cxid;
    struct inflight *next;
};

uint64_t server_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t server_now_ms(void)
{
    return server_now_us() / 1000u;
}

int64_t server_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void server_record_latency(struct server *s, uint64_t start_us)
{
    if (!start_us)
        return;
    uint64_t lat = server_now_us() - start_us;
    struct server_stats *st = &s->stats;
    if (st->lat_count == 0 || lat < st->lat_min_us)
        st->lat_min_us = lat;
    if (lat > st->lat_max_us)
        st->lat_max_us = lat;
    st->lat_sum_us += lat;
    st->lat_count++;
}

/* ---- applying committed transactions ---- */

static void put_node(struct server *s, struct store_batch *b, const char *path)
{
    const struct node *n = tree_get(&s->tree, path);
    if (!n)
        return;
    uint8_t *rec;
    size_t len;
    if (tree_node_encode(n, &rec, &len)) {
        LOG_ERROR("out of memory encoding %s", path);
        abort();
    }
    store_batch_put_node(b, path, rec, len);
    free(rec);
}

static char *parent_path(const char *path)
{
    size_t n = path_parent_len(path);
    char *p = malloc(n + 1);
    if (!p)
        abort();
    memcpy(p, path, n);
    p[n] = 0;
    return p;
}

/* Makes a committed txn part of the tree, the durable tree and the session table, then fires
 * its watches. A txn that does not fit the tree means the log or the code is wrong: stop
 * rather than serve a tree that differs from the other replicas. */
static void apply_txn(struct server *s, const struct txn *t, int replay)
{
    int rc = tree_apply(&s->tree, t);
    if (rc) {
        LOG_ERROR("cannot apply txn 0x%llx: %s; stopping", (unsigned long long)t->zxid,
                  err_msg(rc));
        abort();
    }
    struct store_batch *b = store_batch_new(t->zxid);
    if (!b)
        abort();
    for (uint32_t i = 0; i < t->n_ops; i++) {
        const struct txn_op *op = &t->ops[i];
        char *parent;
        switch (op->type) {
        case TXN_CREATE:
        case TXN_DELETE:
            parent = parent_path(op->path);
            if (op->type == TXN_CREATE)
                put_node(s, b, op->path);
            else
                store_batch_del_node(b, op->path);
            put_node(s, b, parent);
            free(parent);
            break;
        case TXN_SET_DATA:
        case TXN_SET_ACL:
        case TXN_SET_META:
            put_node(s, b, op->path);
            break;
        case TXN_CREATE_SESSION: {
            const struct tree_session *ts = tree_session_get(&s->tree, op->session_id);
            uint8_t *rec;
            size_t len;
            if (!ts || tree_session_encode(ts, &rec, &len))
                abort();
            store_batch_put_session(b, op->session_id, rec, len);
            free(rec);
            break;
        }
        case TXN_CLOSE_SESSION:
            store_batch_del_session(b, op->session_id);
            break;
        }
    }
    store_apply(s->store, b);
    s->stats.commits++;
    if (s->cfg.log_retain && t->zxid > s->cfg.log_retain && (s->stats.commits & 1023) == 0)
        store_trim_log(s->store, t->zxid - s->cfg.log_retain);
    if (replay)
        return;
    prep_applied(&s->prep, t);
    uint64_t now = server_now_ms();
    for (uint32_t i = 0; i < t->n_ops; i++) {
        const struct txn_op *op = &t->ops[i];
        switch (op->type) {
        case TXN_CREATE:
        case TXN_DELETE: {
            watch_trigger(&s->watches, op->type == TXN_CREATE ? EV_CREATED : EV_DELETED, op->path,
                          (int64_t)t->zxid);
            char *parent = parent_path(op->path);
            watch_trigger(&s->watches, EV_CHILDREN_CHANGED, parent, (int64_t)t->zxid);
            free(parent);
            break;
        }
        case TXN_SET_DATA:
            watch_trigger(&s->watches, EV_DATA_CHANGED, op->path, (int64_t)t->zxid);
            break;
        case TXN_SET_ACL:
        case TXN_SET_META:
            watch_trigger(&s->watches, EV_META_CHANGED, op->path, (int64_t)t->zxid);
            break;
        case TXN_CREATE_SESSION:
            if (!session_add(&s->sessions, op->session_id, op->timeout_ms, now))
                abort();
            break;
        case TXN_CLOSE_SESSION:
            session_remove(&s->sessions, op->session_id);
            break;
        default:
            break;
        }
    }
}

void server_complete(struct server *s, struct request *r, int err, zxid_t zxid)
{
    (void)s;
    r->done = 1;
    r->err = err;
    r->zxid = zxid;
    if (r->conn)
        conn_request_done(r->conn, r);
    else
        request_free(r);
}

/* Applies, in zxid order, every txn at the head of the pipeline that is durable. */
static void drain(struct server *s)
{
    struct inflight *f;
    while ((f = s->inflight_head) && (f->durable || f->is_marker)) {
        s->inflight_head = f->next;
        if (!s->inflight_head)
            s->inflight_tail = NULL;
        s->n_inflight--;
        if (!f->is_marker)
            apply_txn(s, &f->txn, 0);
        if (f->fwd_to) {
            f->req->err = f->err;
            cluster_forward_error(s->cluster, f->fwd_to, f->fwd_cxid, f->req);
            request_free(f->req);
        } else if (f->req) {
            server_complete(s, f->req, f->err, f->is_marker ? s->tree.last_applied : f->txn.zxid);
        }
        txn_free_contents(&f->txn);
        free(f);
    }
    if (s->stopping && !s->inflight_head && s->store) {
        store_close(s->store);
        s->store = NULL;
    }
}

static void on_durable(void *arg, int status)
{
    struct inflight *f = arg;
    struct server *s = f->srv;
    if (status) {
        /* ZOOKEEPER-4882: never go on after a failed log write. */
        LOG_ERROR("log write of txn 0x%llx failed: %s; stopping", (unsigned long long)f->txn.zxid,
                  err_msg(status));
        abort();
    }
    f->durable = 1;
    drain(s);
}

static void enqueue(struct server *s, struct inflight *f)
{
    if (s->inflight_tail)
        s->inflight_tail->next = f;
    else
        s->inflight_head = f;
    s->inflight_tail = f;
    s->n_inflight++;
}

/* Logs a prepared txn; it is applied once durable (standalone) or committed (cluster) and
 * everything before it is applied. */
static void log_txn(struct server *s, struct inflight *f)
{
    if (s->cluster) {
        enqueue(s, f);
        int rc = cluster_propose(s->cluster, &f->txn);
        if (rc) {
            /* zab_next_zxid said yes a moment ago on the same thread: this is a bug */
            LOG_ERROR("proposal of 0x%llx refused: %d; stopping", (unsigned long long)f->txn.zxid,
                      rc);
            abort();
        }
        return;
    }
    uint8_t *rec;
    size_t len;
    if (txn_encode(&f->txn, &rec, &len)) {
        LOG_ERROR("out of memory encoding txn");
        abort();
    }
    enqueue(s, f);
    int rc = store_append(s->store, f->txn.zxid, rec, len, on_durable, f);
    free(rec);
    if (rc) {
        LOG_ERROR("cannot queue txn 0x%llx: %s; stopping", (unsigned long long)f->txn.zxid,
                  err_msg(rc));
        abort();
    }
}

static int clamp_timeout(const struct server *s, int32_t t)
{
    if (t < s->cfg.min_session_timeout)
        return s->cfg.min_session_timeout;
    if (t > s->cfg.max_session_timeout)
        return s->cfg.max_session_timeout;
    return t;
}

static int prep_new_session(struct server *s, struct request *r, struct txn *t)
{
    memset(t, 0, sizeof(*t));
    t->ops = calloc(1, sizeof(*t->ops));
    if (!t->ops)
        return -ENOMEM;
    t->n_ops = 1;
    struct txn_op *op = &t->ops[0];
    op->type = TXN_CREATE_SESSION;
    op->session_id = session_next_id(&s->sessions);
    op->timeout_ms = clamp_timeout(s, r->timeout_ms);
    if (getrandom(op->passwd, PASSWD_LEN, 0) != PASSWD_LEN)
        return -EIO;
    r->session_id = op->session_id;
    r->timeout_ms = op->timeout_ms;
    memcpy(r->passwd, op->passwd, PASSWD_LEN);
    r->has_passwd = 1;
    /* Track it at once so that its expiry clock runs even before the txn is applied. */
    if (!session_add(&s->sessions, op->session_id, op->timeout_ms, server_now_ms()))
        return -ENOMEM;
    return 0;
}

static int load_node(void *arg, const char *path, const uint8_t *rec, size_t len);
static int load_session(void *arg, const uint8_t *rec, size_t len);

/* Prepares r and hands the txn to the log (standalone) or the leader's core (cluster).
 * origin/cxid: a learner's forwarded request (0 for one of ours). A refusal is answered in
 * commit order (ZooKeeper's error txns): through r's connection, or back to the learner. */
static void prepare(struct server *s, struct request *r, uint32_t origin, uint64_t cxid)
{
    struct inflight *f = calloc(1, sizeof(*f));
    if (!f) {
        if (origin) {
            r->err = -ENOMEM;
            cluster_forward_error(s->cluster, origin, cxid, r);
            request_free(r);
        } else {
            server_complete(s, r, -ENOMEM, 0);
        }
        return;
    }
    f->srv = s;
    f->req = r;
    f->fwd_to = origin;
    f->fwd_cxid = cxid;
    if (r->args.op == REQ_SYNC) {
        f->is_marker = 1;
        enqueue(s, f);
        drain(s);
        return;
    }
    int rc = 0;
    if (r->args.op != REQ_CONNECT && r->args.op != REQ_EXPIRE_SESSION &&
        r->args.op != REQ_DELETE_CONTAINER) {
        struct session *sess = session_get(&s->sessions, r->session_id);
        if (!sess || sess->closing)
            rc = ZE_SESSIONEXPIRED;
        else if (r->args.op == REQ_CLOSE_SESSION)
            sess->closing = 1;
    }
    zxid_t zxid = s->last_zxid + 1;
    if (!rc && s->cluster) {
        rc = cluster_next_zxid(s->cluster, &zxid);
        if (rc)
            rc = ZE_CONNECTIONLOSS; /* not leading, or too much in flight: the client retries */
    } else if (!rc && ZXID_COUNTER(zxid) == 0) {
        /* The counter is exhausted: ZooKeeper forces an election; a standalone replica
         * moves to the next epoch. */
        s->epoch++;
        store_set_meta_sync(s->store, "acceptedEpoch", s->epoch);
        store_set_meta_sync(s->store, "currentEpoch", s->epoch);
        zxid = ZXID(s->epoch, 1);
    }
    if (!rc && r->args.op == REQ_CONNECT) {
        rc = prep_new_session(s, r, &f->txn);
        f->txn.zxid = zxid;
        f->txn.time_ms = server_wall_ms();
        f->txn.session_id = r->session_id;
    } else if (!rc) {
        rc = prep_request(&s->prep, r, zxid, server_wall_ms(), &f->txn);
    }
    if (origin)
        r->auth = NULL; /* borrowed from the learner's message, gone after this call */
    if (rc) {
        /* A refused write is answered after the txns prepared before it are applied, as
         * ZooKeeper's error txns take their place in the commit order: a client told
         * NODEEXISTS because of a pending create then reads that node. */
        txn_free_contents(&f->txn);
        memset(&f->txn, 0, sizeof(f->txn));
        f->is_marker = 1;
        f->err = rc;
        enqueue(s, f);
        drain(s);
        return;
    }
    s->last_zxid = zxid;
    f->txn.origin = origin ? origin : s->cfg.myid;
    f->txn.cxid = cxid;
    if (origin) {
        /* the learner answers its client when the txn comes back committed */
        request_free(r);
        f->req = NULL;
        f->fwd_to = 0;
    }
    if (f->txn.n_ops == 0) {
        f->is_marker = 1;
        enqueue(s, f);
        drain(s);
        return;
    }
    log_txn(s, f);
}

void server_submit(struct server *s, struct request *r)
{
    if (s->cluster)
        cluster_submit(s->cluster, r);
    else
        prepare(s, r, 0, 0);
}

void server_submit_local(struct server *s, struct request *r)
{
    prepare(s, r, 0, 0);
}

void server_propose(struct server *s, struct request *r, uint32_t origin, uint64_t cxid)
{
    prepare(s, r, origin, cxid);
}

int server_commit_own(struct server *s, zxid_t zxid)
{
    struct inflight *f = s->inflight_head;
    if (!f || f->is_marker || f->txn.zxid != zxid)
        return 0;
    f->durable = 1;
    drain(s);
    return 1;
}

int server_commit(struct server *s, const struct txn *t)
{
    if (server_commit_own(s, t->zxid))
        return 1;
    struct inflight *f = s->inflight_head;
    if (f && !f->is_marker)
        LOG_WARN("committed 0x%llx while 0x%llx is the oldest proposal here",
                 (unsigned long long)t->zxid, (unsigned long long)f->txn.zxid);
    apply_txn(s, t, 0);
    return 0;
}

/* What a learner's client gets for a write it forwarded: computed from the committed txn
 * and the tree right after applying it, as the leader's prepare would have said. */
void server_fill_results(struct server *s, struct request *r, const struct txn *t)
{
    if (r->args.op == REQ_CONNECT) {
        for (uint32_t i = 0; i < t->n_ops; i++)
            if (t->ops[i].type == TXN_CREATE_SESSION) {
                r->session_id = t->ops[i].session_id;
                r->timeout_ms = t->ops[i].timeout_ms;
                memcpy(r->passwd, t->ops[i].passwd, PASSWD_LEN);
                r->has_passwd = 1;
            }
        return;
    }
    uint32_t n = r->args.op == REQ_MULTI ? r->n_ops : 1;
    const struct req_op_args *ops = r->args.op == REQ_MULTI ? r->ops : &r->args;
    free(r->results);
    r->results = calloc(n ? n : 1, sizeof(*r->results));
    if (!r->results) {
        r->n_results = 0;
        return;
    }
    r->n_results = n;
    uint32_t k = 0; /* the txn op of request op i: a check has none */
    for (uint32_t i = 0; i < n; i++) {
        struct req_result *res = &r->results[i];
        if (ops[i].op == REQ_CHECK || k >= t->n_ops)
            continue;
        const struct txn_op *op = &t->ops[k++];
        if (op->type == TXN_DELETE || !op->path)
            continue;
        if (op->type == TXN_CREATE)
            res->path = strdup(op->path);
        const struct node *node = tree_get(&s->tree, op->path);
        if (node) {
            res->stat = node->stat;
            res->kind = node->kind;
            res->policy = node->policy;
            res->has_stat = 1;
        }
    }
}

void server_set_op_errors(struct request *r, int err, const int32_t *zk_errs, size_t n)
{
    r->err = err;
    if (!n)
        return;
    free(r->results);
    r->results = calloc(n, sizeof(*r->results));
    r->n_results = r->results ? (uint32_t)n : 0;
    for (uint32_t i = 0; i < r->n_results; i++)
        r->results[i].err = err_from_zk(zk_errs[i]);
}

/* Leadership lost or the epoch forced over: proposals still here have an unknown fate. */
void server_abandon(struct server *s, zxid_t from, zxid_t to)
{
    (void)from, (void)to;
    struct inflight *f = s->inflight_head;
    s->inflight_head = s->inflight_tail = NULL;
    s->n_inflight = 0;
    while (f) {
        struct inflight *next = f->next;
        if (f->fwd_to)
            request_free(f->req);
        else if (f->req)
            server_complete(s, f->req, ZE_CONNECTIONLOSS, 0);
        txn_free_contents(&f->txn);
        free(f);
        f = next;
    }
    server_reset_prep(s);
}

void server_reset_prep(struct server *s)
{
    prep_close(&s->prep);
    prep_init(&s->prep, &s->tree, s->cfg.max_data, s->cfg.extended_types);
}

void server_drop_clients(struct server *s)
{
    while (s->conns)
        conn_close(s->conns);
}

void server_reset_session_clocks(struct server *s)
{
    uint64_t now = server_now_ms();
    for (struct session *x = s->sessions.sessions; x; x = x->hh.next)
        session_touch(x, now);
}

static int load_sessions(struct server *s)
{
    session_tracker_close(&s->sessions);
    session_tracker_init(&s->sessions, s->cfg.myid, (uint64_t)server_wall_ms());
    uint64_t now = server_now_ms();
    struct tree_session *ts, *tmp;
    HASH_ITER(hh, s->tree.sessions, ts, tmp)
    {
        /* Sessions are durable: after a restart each gets a full timeout to come back. */
        if (!session_add(&s->sessions, ts->id, ts->timeout_ms, now))
            return -ENOMEM;
    }
    return 0;
}

static int load_tree(struct server *s)
{
    struct store_loader l = {.arg = &s->tree, .node = load_node, .session = load_session};
    int rc = tree_init(&s->tree);
    if (!rc && !(rc = store_load_tree(s->store, &l)))
        rc = tree_load_finish(&s->tree);
    s->tree.last_applied = store_applied(s->store);
    return rc;
}

int server_reload_tree(struct server *s)
{
    tree_close(&s->tree);
    int rc = load_tree(s);
    if (!rc)
        rc = load_sessions(s);
    server_reset_prep(s);
    return rc;
}

void server_close_session(struct server *s, uint64_t session_id, int expire)
{
    struct session *sess = session_get(&s->sessions, session_id);
    if (!sess || sess->closing)
        return;
    sess->closing = 1;
    struct request *r = request_new();
    if (!r)
        return;
    r->args.op = expire ? REQ_EXPIRE_SESSION : REQ_CLOSE_SESSION;
    r->session_id = session_id;
    server_submit(s, r);
}

/* ---- timers ---- */

static void expire_one(void *arg, struct session *sess)
{
    struct server *s = arg;
    LOG_INFO("session 0x%llx expired (timeout %d ms)", (unsigned long long)sess->id,
             sess->timeout_ms);
    struct conn *c = sess->conn;
    server_close_session(s, sess->id, 1);
    if (c)
        conn_close(c);
}

static void on_tick(uv_timer_t *t)
{
    struct server *s = t->data;
    if (s->cluster && !(cluster_is_leader(s->cluster) && cluster_serving(s->cluster)))
        return; /* the leader tracks expiry; learners relay activity (cluster_touch) */
    session_expired(&s->sessions, server_now_ms(), expire_one, s);
}

/* Containers that had children and have none, and TTL nodes unchanged for their TTL, are
 * deleted as ZooKeeper's ContainerManager does. */
static void on_container_check(uv_timer_t *t)
{
    struct server *s = t->data;
    if (s->cluster && !(cluster_is_leader(s->cluster) && cluster_serving(s->cluster)))
        return;
    int64_t now = server_wall_ms();
    struct node *n, *tmp;
    size_t count = 0;
    HASH_ITER(hh, s->tree.nodes, n, tmp)
    {
        int64_t owner = n->stat.ephemeral_owner;
        if (n->stat.num_children != 0)
            continue;
        int due = 0;
        if (owner == EPHEMERAL_CONTAINER)
            due = n->stat.cversion > 0;
        else if (ephemeral_is_ttl(owner))
            due = now - n->stat.mtime > (int64_t)((uint64_t)owner & EPHEMERAL_TTL_MAX);
        if (!due)
            continue;
        struct request *r = request_new();
        if (!r || !(r->args.path = strdup(n->path))) {
            request_free(r);
            return;
        }
        r->args.op = REQ_DELETE_CONTAINER;
        r->args.version = -1;
        server_submit(s, r);
        if (++count >= 1000)
            break; /* bound the work per check */
    }
}

/* ---- startup ---- */

static int load_node(void *arg, const char *path, const uint8_t *rec, size_t len)
{
    return tree_load_node(arg, path, rec, len);
}

static int load_session(void *arg, const uint8_t *rec, size_t len)
{
    return tree_load_session(arg, rec, len);
}

static int replay_txn(void *arg, zxid_t zxid, const uint8_t *rec, size_t len)
{
    struct server *s = arg;
    struct txn t;
    int rc = txn_decode(rec, len, &t);
    if (rc == 0 && t.zxid != zxid)
        rc = ZE_DATAINCONSISTENCY;
    if (rc) {
        LOG_ERROR("log entry 0x%llx is damaged: %s", (unsigned long long)zxid, err_msg(rc));
        txn_free_contents(&t);
        return rc;
    }
    apply_txn(s, &t, 1);
    txn_free_contents(&t);
    return 0;
}

static int mkdirs(const char *dir)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST)
        return -errno;
    return 0;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *out = NULL;
    if (vasprintf(&out, f, ap) < 0)
        out = NULL;
    va_end(ap);
    return out;
}

int server_init(struct server *s, uv_loop_t *loop, const struct config *cfg, char **err)
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->loop = loop;
    s->start_ms = server_now_ms();
    int rc = mkdirs(cfg->data_dir);
    if (rc) {
        *err = fmt("cannot create dataDir %s: %s", cfg->data_dir, strerror(-rc));
        return rc;
    }
    if (access(cfg->data_dir, W_OK | X_OK)) {
        rc = -errno;
        *err = fmt("dataDir %s is not writable: %s", cfg->data_dir, strerror(errno));
        return rc;
    }
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/store", cfg->data_dir);
    struct store_opts so = {.group_commit = cfg->group_commit, .sync = cfg->force_sync};
    rc = store_open(&s->store, loop, dir, &so, err);
    if (rc)
        return rc;
    if ((rc = load_tree(s))) {
        *err = fmt("the stored tree in %s is damaged (%s): refusing to start", dir, err_msg(rc));
        goto fail_tree;
    }
    zxid_t applied = s->tree.last_applied;
    uint64_t cur = store_get_meta(s->store, "currentEpoch");
    uint64_t acc = store_get_meta(s->store, "acceptedEpoch");
    if (ZXID_EPOCH(applied) > cur) {
        *err = fmt("the tree in %s is ahead of its epoch: refusing to start", dir);
        rc = ZE_DATAINCONSISTENCY;
        goto fail_tree;
    }
    if (cfg->n_servers == 0) {
        /* Standalone, everything logged is committed: replay what the tree lacks. */
        struct store_loader rl = {.arg = s, .txn = replay_txn};
        if ((rc = store_load_log(s->store, applied, &rl))) {
            *err = fmt("the log in %s is damaged (%s): refusing to start", dir, err_msg(rc));
            goto fail_tree;
        }
        zxid_t last = store_last_logged(s->store);
        if (ZXID_EPOCH(last) > cur) {
            *err = fmt("the log in %s is ahead of its epoch: refusing to start", dir);
            rc = ZE_DATAINCONSISTENCY;
            goto fail_tree;
        }
        /* A standalone replica leads itself: each start is a new epoch, as after an election. */
        s->epoch = (uint32_t)((acc > cur ? acc : cur) + 1);
        if ((rc = store_set_meta_sync(s->store, "acceptedEpoch", s->epoch)) ||
            (rc = store_set_meta_sync(s->store, "currentEpoch", s->epoch))) {
            *err = fmt("cannot write the epoch in %s: %s", dir, err_msg(rc));
            goto fail_tree;
        }
        s->last_zxid = ZXID(s->epoch, 0);
    }
    if ((rc = load_sessions(s))) {
        *err = fmt("out of memory");
        goto fail_tree;
    }
    prep_init(&s->prep, &s->tree, cfg->max_data, cfg->extended_types);
    watch_init(&s->watches, conn_deliver_event, s);
    /* In a cluster the log goes to the core: only committed txns may reach the tree. */
    if (cfg->n_servers > 0 && (rc = cluster_init(&s->cluster, s, err)))
        goto fail_prep;
    LOG_INFO("loaded %u znodes and %u sessions up to zxid 0x%llx", tree_count(&s->tree),
             session_count(&s->sessions), (unsigned long long)s->tree.last_applied);
    return 0;
fail_prep:
    prep_close(&s->prep);
    session_tracker_close(&s->sessions);
fail_tree:
    tree_close(&s->tree);
    store_close(s->store);
    s->store = NULL;
    return rc;
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct server *s = listener->data;
    if (status) {
        LOG_WARN("accept failed: %s", uv_strerror(status));
        return;
    }
    conn_accept(s, listener);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct server *s = h->data;
    LOG_INFO("signal %d: shutting down", signum);
    server_stop(s);
}

int server_start(struct server *s, char **err)
{
    struct sockaddr_storage addr;
    int rc;
    if (uv_ip4_addr(s->cfg.client_addr, s->cfg.client_port, (struct sockaddr_in *)&addr) &&
        uv_ip6_addr(s->cfg.client_addr, s->cfg.client_port, (struct sockaddr_in6 *)&addr)) {
        *err = fmt("clientPortAddress %s is not an IP address", s->cfg.client_addr);
        return -EINVAL;
    }
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0)) ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection))) {
        *err = fmt("cannot listen on %s:%d: %s", s->cfg.client_addr, s->cfg.client_port,
                   uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, NULL);
        return rc;
    }
    outq_init(&s->outq, s->loop);
    uv_timer_init(s->loop, &s->tick_timer);
    s->tick_timer.data = s;
    uint64_t half_tick = (uint64_t)(s->cfg.tick_time / 2 > 0 ? s->cfg.tick_time / 2 : 1);
    uv_timer_start(&s->tick_timer, on_tick, half_tick, half_tick);
    uv_timer_init(s->loop, &s->container_timer);
    s->container_timer.data = s;
    uv_timer_start(&s->container_timer, on_container_check, (uint64_t)s->cfg.container_check_ms,
                   (uint64_t)s->cfg.container_check_ms);
    uv_signal_init(s->loop, &s->sig_term);
    uv_signal_init(s->loop, &s->sig_int);
    s->sig_term.data = s->sig_int.data = s;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    if (s->cfg.admin_port > 0 && (rc = admin_start(&s->admin, s, err))) {
        server_stop(s);
        return rc;
    }
    if (s->cluster && (rc = cluster_start(s->cluster, err))) {
        server_stop(s);
        return rc;
    }
    LOG_INFO("serving on %s:%d (%s, dataDir %s)", s->cfg.client_addr, s->cfg.client_port,
             s->cluster ? "replicated" : "standalone", s->cfg.data_dir);
    return 0;
}

void server_stop(struct server *s)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    admin_stop(&s->admin);
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->tick_timer, NULL);
    uv_close((uv_handle_t *)&s->container_timer, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    while (s->conns)
        conn_close(s->conns);
    outq_close(&s->outq, NULL);
    if (s->cluster) {
        /* proposals not yet committed stay in the log; their clients are gone */
        cluster_stop(s->cluster);
        server_abandon(s, 0, UINT64_MAX);
    }
    /* The store closes once the last prepared txn is applied (see drain). */
    drain(s);
}

void server_close(struct server *s)
{
    cluster_free(s->cluster);
    s->cluster = NULL;
    if (s->store) {
        store_close(s->store);
        s->store = NULL;
    }
    struct inflight *f = s->inflight_head;
    while (f) {
        struct inflight *next = f->next;
        if (f->req)
            request_free(f->req);
        txn_free_contents(&f->txn);
        free(f);
        f = next;
    }
    s->inflight_head = s->inflight_tail = NULL;
    watch_close(&s->watches);
    prep_close(&s->prep);
    session_tracker_close(&s->sessions);
    tree_close(&s->tree);
}
