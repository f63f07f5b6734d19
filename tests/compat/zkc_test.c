/* Apache ZooKeeper's C client (libzookeeper_mt) against a zkfs replica: CRUD with versions,
 * sequential and ephemeral nodes, data/child/exists watches, multi, digest auth, reconfig.
 * Usage: zkc_test HOST:PORT. Prints one line per check; exit 0 when all pass. */
/* the synchronous API is declared only for the multi-threaded library */
#define THREADED
#include <zookeeper/zookeeper.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_EVENTS 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int connected;
static struct {
    int type;
    char path[256];
} events[MAX_EVENTS];
static int n_events;
static int failures;

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)ctx;
    pthread_mutex_lock(&mu);
    if (type == ZOO_SESSION_EVENT) {
        connected = state == ZOO_CONNECTED_STATE;
    } else if (n_events < MAX_EVENTS) {
        events[n_events].type = type;
        snprintf(events[n_events].path, sizeof(events[0].path), "%s", path ? path : "");
        n_events++;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits up to 10 s for an event of this type on path and consumes it. */
static int wait_event(int type, const char *path)
{
    struct timespec ts;
    deadline_in(&ts, 10000);
    pthread_mutex_lock(&mu);
    for (;;) {
        for (int i = 0; i < n_events; i++) {
            if (events[i].type == type && !strcmp(events[i].path, path)) {
                memmove(&events[i], &events[i + 1], (size_t)(n_events - i - 1) * sizeof(events[0]));
                n_events--;
                pthread_mutex_unlock(&mu);
                return 1;
            }
        }
        if (pthread_cond_timedwait(&cv, &mu, &ts)) {
            pthread_mutex_unlock(&mu);
            return 0;
        }
    }
}

static void check(int ok, const char *what, int rc)
{
    printf("%s: %s (rc %d %s)\n", ok ? "ok" : "FAIL", what, rc, zerror(rc));
    if (!ok)
        failures++;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s HOST:PORT\n", argv[0]);
        return 2;
    }
    zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
    zhandle_t *zh = zookeeper_init(argv[1], watcher, 6000, NULL, NULL, 0);
    if (!zh) {
        perror("zookeeper_init");
        return 1;
    }
    struct timespec ts;
    deadline_in(&ts, 10000);
    pthread_mutex_lock(&mu);
    while (!connected && pthread_cond_timedwait(&cv, &mu, &ts) == 0)
        ;
    int up = connected;
    pthread_mutex_unlock(&mu);
    check(up, "connected", 0);
    if (!up)
        return 1;
    int64_t session = zoo_client_id(zh)->client_id;

    char path[256], buf[256];
    int rc = zoo_create(zh, "/zkc", "v1", 2, &ZOO_OPEN_ACL_UNSAFE, 0, path, sizeof(path));
    check(rc == ZOK && !strcmp(path, "/zkc"), "create /zkc", rc);
    rc = zoo_create(zh, "/zkc", "v1", 2, &ZOO_OPEN_ACL_UNSAFE, 0, path, sizeof(path));
    check(rc == ZNODEEXISTS, "create again is NODEEXISTS", rc);

    struct Stat st;
    int len = sizeof(buf);
    rc = zoo_wget(zh, "/zkc", watcher, NULL, buf, &len, &st);
    check(rc == ZOK && len == 2 && !memcmp(buf, "v1", 2) && st.version == 0 && st.dataLength == 2 &&
              st.czxid == st.mzxid && st.czxid > 0,
          "get /zkc with a data watch", rc);
    rc = zoo_set(zh, "/zkc", "v2", 2, 0);
    check(rc == ZOK, "set /zkc at version 0", rc);
    check(wait_event(ZOO_CHANGED_EVENT, "/zkc"), "data watch fired (NodeDataChanged)", 0);
    rc = zoo_set(zh, "/zkc", "v3", 2, 0);
    check(rc == ZBADVERSION, "set at a stale version is BADVERSION", rc);

    rc = zoo_create2(zh, "/zkc/e-", "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL_SEQUENTIAL, path,
                     sizeof(path), &st);
    check(rc == ZOK && strlen(path) == strlen("/zkc/e-") + 10 && st.ephemeralOwner == session,
          "create2 ephemeral sequential", rc);
    struct String_vector kids;
    rc = zoo_wget_children(zh, "/zkc", watcher, NULL, &kids);
    check(rc == ZOK && kids.count == 1, "get children with a child watch", rc);
    if (rc == ZOK)
        deallocate_String_vector(&kids);
    rc = zoo_create(zh, "/zkc/p", "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, path, sizeof(path));
    check(rc == ZOK, "create /zkc/p", rc);
    check(wait_event(ZOO_CHILD_EVENT, "/zkc"), "child watch fired (NodeChildrenChanged)", 0);

    rc = zoo_exists(zh, "/zkc/new", 0, &st);
    check(rc == ZNONODE, "exists on a missing node is NONODE", rc);
    rc = zoo_wexists(zh, "/zkc/new", watcher, NULL, &st);
    check(rc == ZNONODE, "exists watch on a missing node", rc);
    rc = zoo_create(zh, "/zkc/new", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, path, sizeof(path));
    check(rc == ZOK, "create /zkc/new", rc);
    check(wait_event(ZOO_CREATED_EVENT, "/zkc/new"), "exists watch fired (NodeCreated)", 0);

    zoo_op_t ops[3];
    zoo_op_result_t res[3];
    zoo_create_op_init(&ops[0], "/zkc/m", "m", 1, &ZOO_OPEN_ACL_UNSAFE, 0, path, sizeof(path));
    zoo_set_op_init(&ops[1], "/zkc/p", "y", 1, 0, &st);
    zoo_check_op_init(&ops[2], "/zkc/p", 1);
    rc = zoo_multi(zh, 3, ops, res);
    check(rc == ZOK && res[0].err == ZOK && res[1].err == ZOK && res[2].err == ZOK,
          "multi create + set + check", rc);
    zoo_delete_op_init(&ops[0], "/zkc/m", -1);
    zoo_check_op_init(&ops[1], "/zkc/p", 7);
    rc = zoo_multi(zh, 2, ops, res);
    check(rc == ZBADVERSION && res[0].err == ZOK && res[1].err == ZBADVERSION,
          "failed multi reports per-op errors", rc);
    rc = zoo_exists(zh, "/zkc/m", 0, &st);
    check(rc == ZOK, "failed multi changed nothing", rc);

    rc = zoo_add_auth(zh, "digest", "alice:secret", 12, NULL, NULL);
    check(rc == ZOK, "add digest auth", rc);
    rc = zoo_create(zh, "/zkc/private", "s", 1, &ZOO_CREATOR_ALL_ACL, 0, path, sizeof(path));
    check(rc == ZOK, "create with CREATOR_ALL_ACL", rc);
    struct ACL_vector acl;
    rc = zoo_get_acl(zh, "/zkc/private", &acl, &st);
    check(rc == ZOK && acl.count == 1 && !strcmp(acl.data[0].id.scheme, "digest") &&
              !strncmp(acl.data[0].id.id, "alice:", 6),
          "get ACL shows the digest id", rc);
    if (rc == ZOK)
        deallocate_ACL_vector(&acl);

    len = sizeof(buf);
    rc = zoo_reconfig(zh, NULL, NULL, "server.1=127.0.0.1:2888:3888", -1, buf, &len, &st);
    check(rc == ZRECONFIGDISABLED, "reconfig is RECONFIGDISABLED", rc);

    rc = zoo_delete(zh, "/zkc", -1);
    check(rc == ZNOTEMPTY, "delete a parent is NOTEMPTY", rc);
    const char *doomed[] = {"/zkc/p", "/zkc/m", "/zkc/new", "/zkc/private"};
    for (size_t i = 0; i < sizeof(doomed) / sizeof(doomed[0]); i++) {
        rc = zoo_delete(zh, doomed[i], -1);
        check(rc == ZOK, doomed[i], rc);
    }
    zookeeper_close(zh); /* closeSession: the ephemeral goes */
    zh = zookeeper_init(argv[1], NULL, 6000, NULL, NULL, 0);
    for (int i = 0; zh && i < 100 && zoo_state(zh) != ZOO_CONNECTED_STATE; i++) {
        struct timespec nap = {0, 50 * 1000000L};
        nanosleep(&nap, NULL);
    }
    rc = zh ? zoo_get_children(zh, "/zkc", 0, &kids) : ZSYSTEMERROR;
    check(rc == ZOK && kids.count == 0, "closeSession removed the ephemeral", rc);
    if (rc == ZOK)
        deallocate_String_vector(&kids);
    rc = zh ? zoo_delete(zh, "/zkc", -1) : ZSYSTEMERROR;
    check(rc == ZOK, "delete /zkc", rc);
    if (zh)
        zookeeper_close(zh);
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
