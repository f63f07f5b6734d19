/* Unit tests for the replica's pipeline pieces: watches, the session tracker, request
 * preparation over the pending-change overlay, and ACL checks. */
#include "acl.h"
#include "err.h"
#include "prep.h"
#include "session.h"
#include "test.h"
#include "tree.h"
#include "watch.h"

#include <string.h>

/* ---- watches ---- */

struct got {
    struct watch_owner *owner;
    int type;
    char path[64];
};
static struct got got[64];
static int n_got;

static void deliver(struct watch_owner *o, int type, const char *path, int64_t zxid, void *arg)
{
    (void)zxid, (void)arg;
    if (n_got < 64) {
        got[n_got].owner = o;
        got[n_got].type = type;
        snprintf(got[n_got].path, sizeof(got[n_got].path), "%s", path);
    }
    n_got++;
}

static void test_watches(void)
{
    struct watch_mgr m;
    struct watch_owner a = {0}, b = {0};
    watch_init(&m, deliver, NULL);

    /* one-shot data watch fires once */
    CHECK_EQ(watch_add(&m, &a, "/x", WATCH_DATA), 0);
    CHECK_EQ(watch_add(&m, &a, "/x", WATCH_DATA), 0); /* idempotent */
    CHECK_EQ(watch_count(&m), 1);
    n_got = 0;
    watch_trigger(&m, EV_DATA_CHANGED, "/x", 5);
    watch_trigger(&m, EV_DATA_CHANGED, "/x", 6);
    CHECK_EQ(n_got, 1);
    CHECK(got[0].owner == &a && got[0].type == EV_DATA_CHANGED && !strcmp(got[0].path, "/x"));
    CHECK_EQ(watch_count(&m), 0);

    /* a data watch does not fire for children; a child watch fires for children and delete */
    watch_add(&m, &a, "/p", WATCH_DATA);
    watch_add(&m, &b, "/p", WATCH_CHILD);
    n_got = 0;
    watch_trigger(&m, EV_CHILDREN_CHANGED, "/p", 7);
    CHECK_EQ(n_got, 1);
    CHECK(got[0].owner == &b);
    watch_add(&m, &b, "/p", WATCH_CHILD);
    n_got = 0;
    watch_trigger(&m, EV_DELETED, "/p", 8);
    CHECK_EQ(n_got, 2); /* a's data watch and b's child watch, once each */
    CHECK_EQ(watch_count(&m), 0);

    /* persistent watches stay; an owner gets one event per trigger */
    watch_add(&m, &a, "/q", WATCH_PERSISTENT);
    watch_add(&m, &a, "/q", WATCH_DATA);
    n_got = 0;
    watch_trigger(&m, EV_DATA_CHANGED, "/q", 9);
    watch_trigger(&m, EV_CHILDREN_CHANGED, "/q", 10);
    CHECK_EQ(n_got, 2);
    CHECK_EQ(watch_count(&m), 1);

    /* recursive: descendants, every type but children-changed */
    watch_add(&m, &b, "/r", WATCH_RECURSIVE);
    n_got = 0;
    watch_trigger(&m, EV_CREATED, "/r/s/t", 11);
    watch_trigger(&m, EV_CHILDREN_CHANGED, "/r/s", 12);
    watch_trigger(&m, EV_DATA_CHANGED, "/r", 13);
    watch_trigger(&m, EV_DATA_CHANGED, "/rx", 14); /* a sibling with a common prefix */
    CHECK_EQ(n_got, 2);
    CHECK(!strcmp(got[0].path, "/r/s/t") && got[0].type == EV_CREATED);
    CHECK(!strcmp(got[1].path, "/r"));

    /* a recursive watch on "/" sees everything */
    watch_add(&m, &a, "/", WATCH_RECURSIVE);
    n_got = 0;
    watch_trigger(&m, EV_DELETED, "/z", 15);
    CHECK_EQ(n_got, 1);

    /* metadata changes reach persistent and recursive watches only */
    watch_add(&m, &b, "/z", WATCH_DATA);
    n_got = 0;
    watch_trigger(&m, EV_META_CHANGED, "/z", 16);
    CHECK_EQ(n_got, 1); /* a's recursive watch on "/"; b's data watch stays armed */
    CHECK(got[0].owner == &a);
    CHECK_EQ(watch_remove(&m, &b, "/z", 1u << WATCH_DATA), 1);

    CHECK_EQ(watch_remove(&m, &b, "/r", 1u << WATCH_RECURSIVE), 1);
    CHECK_EQ(watch_remove(&m, &b, "/r", 1u << WATCH_RECURSIVE), 0);
    watch_remove_owner(&m, &a);
    watch_remove_owner(&m, &b);
    CHECK_EQ(watch_count(&m), 0);
    CHECK_EQ(watch_path_count(&m), 0);
    CHECK_EQ(a.count, 0);
    watch_close(&m);
}

/* ---- sessions ---- */

static int expired_ids[8], n_expired;
static void on_expired(void *arg, struct session *s)
{
    (void)arg;
    expired_ids[n_expired++ % 8] = (int)s->id;
    s->closing = 1;
}

static void test_sessions(void)
{
    struct session_tracker t;
    session_tracker_init(&t, 3, 1000);
    uint64_t id = session_next_id(&t);
    CHECK_EQ(id >> 56, 3); /* the server id is in the top byte, as ZooKeeper's */
    CHECK(session_next_id(&t) == id + 1);
    session_add(&t, 1, 100, 0);
    session_add(&t, 2, 300, 0);
    n_expired = 0;
    session_expired(&t, 99, on_expired, NULL);
    CHECK_EQ(n_expired, 0);
    session_touch(session_get(&t, 1), 50);
    session_expired(&t, 120, on_expired, NULL);
    CHECK_EQ(n_expired, 0); /* touched at 50: expires at 150 */
    session_expired(&t, 160, on_expired, NULL);
    CHECK_EQ(n_expired, 1);
    CHECK_EQ(expired_ids[0], 1);
    session_expired(&t, 170, on_expired, NULL);
    CHECK_EQ(n_expired, 1); /* closing sessions are reported once */
    session_remove(&t, 1);
    CHECK_EQ(session_count(&t), 1);
    session_tracker_close(&t);
}

/* ---- preparation ---- */

static struct acl open_acl[] = {{.perms = 31, .scheme = "world", .id = "anyone"}};

static struct request *req(enum req_op op, const char *path, int mode)
{
    struct request *r = request_new();
    r->args.op = op;
    r->args.path = path ? strdup(path) : NULL;
    r->args.mode = mode;
    r->args.version = -1;
    r->session_id = 77;
    if (op == REQ_CREATE) {
        r->args.acls = acl_dup(open_acl, 1);
        r->args.n_acls = 1;
    }
    return r;
}

/* Prepares r at zxid; returns the error; keeps the txn in *t for apply. */
static int prep1(struct prep *p, struct request *r, zxid_t zxid, struct txn *t)
{
    int rc = prep_request(p, r, zxid, 1000 + (int64_t)zxid, t);
    return rc;
}

static void apply_and_forget(struct tree *tree, struct prep *p, struct txn *t)
{
    CHECK_EQ(tree_apply(tree, t), 0);
    prep_applied(p, t);
    txn_free_contents(t);
}

static void test_prep(void)
{
    struct tree tree;
    struct prep p;
    tree_init(&tree);
    prep_init(&p, &tree, 10, 1);
    struct txn t1, t2, t3, t4;

    /* A create session for 77 so ephemerals can be made. */
    struct txn_op sop = {.type = TXN_CREATE_SESSION, .session_id = 77, .timeout_ms = 1000};
    struct txn st = {.zxid = 1, .n_ops = 1, .ops = &sop};
    CHECK_EQ(tree_apply(&tree, &st), 0);

    /* Pipelined: /a then /a/b before /a is applied, both seen through the overlay. */
    struct request *ra = req(REQ_CREATE, "/a", 0);
    struct request *rb = req(REQ_CREATE, "/a/b", 1);
    struct request *rs1 = req(REQ_CREATE, "/a/s-", 2);
    struct request *rs2 = req(REQ_CREATE, "/a/s-", 2);
    CHECK_EQ(prep1(&p, ra, 2, &t1), 0);
    CHECK_EQ(prep1(&p, rb, 3, &t2), 0);
    CHECK_EQ(prep1(&p, rs1, 4, &t3), 0);
    CHECK_EQ(prep1(&p, rs2, 5, &t4), 0);
    /* sequence numbers come from the parent's cversion, counting pending creates */
    CHECK(!strcmp(rs1->results[0].path, "/a/s-0000000001"));
    CHECK(!strcmp(rs2->results[0].path, "/a/s-0000000002"));
    CHECK_EQ(t2.ops[0].parent_cversion, 1);
    CHECK_EQ(t2.ops[0].ephemeral_owner, 77);

    struct request *dup = req(REQ_CREATE, "/a", 0);
    struct txn tx;
    CHECK_EQ(prep1(&p, dup, 6, &tx), ZE_NODEEXISTS);
    struct request *under_eph = req(REQ_CREATE, "/a/b/c", 0);
    CHECK_EQ(prep1(&p, under_eph, 6, &tx), ZE_NOCHILDRENFOREPHEMERALS);
    struct request *del_a = req(REQ_DELETE, "/a", 0);
    CHECK_EQ(prep1(&p, del_a, 6, &tx), ZE_NOTEMPTY);
    struct request *big = req(REQ_SET_DATA, "/a", 0);
    big->args.data = (uint8_t *)strdup("01234567890");
    big->args.data_len = 11;
    CHECK_EQ(prep1(&p, big, 6, &tx), ZE_BADARGUMENTS); /* over the 10-byte limit */
    struct request *bad = req(REQ_CREATE, "/a//x", 0);
    CHECK_EQ(prep1(&p, bad, 6, &tx), ZE_BADARGUMENTS);

    apply_and_forget(&tree, &p, &t1);
    apply_and_forget(&tree, &p, &t2);
    apply_and_forget(&tree, &p, &t3);
    apply_and_forget(&tree, &p, &t4);
    CHECK_EQ(prep_pending_count(&p), 0);
    CHECK_EQ(tree_get(&tree, "/a")->stat.cversion, 3);
    CHECK(tree_get(&tree, "/a/s-0000000002") != NULL);

    /* multi: all or nothing, ZooKeeper's per-op results */
    struct request *m = req(REQ_MULTI, NULL, 0);
    m->n_ops = 3;
    m->ops = calloc(3, sizeof(*m->ops));
    m->ops[0] = (struct req_op_args){.op = REQ_CREATE,
                                     .path = strdup("/m"),
                                     .version = -1,
                                     .acls = acl_dup(open_acl, 1),
                                     .n_acls = 1};
    m->ops[1] = (struct req_op_args){.op = REQ_CHECK, .path = strdup("/a"), .version = 5};
    m->ops[2] = (struct req_op_args){.op = REQ_DELETE, .path = strdup("/a/b"), .version = -1};
    CHECK_EQ(prep1(&p, m, 6, &tx), ZE_BADVERSION);
    CHECK_EQ(m->results[0].err, 0);
    CHECK_EQ(m->results[1].err, ZE_BADVERSION);
    CHECK_EQ(m->results[2].err, ZE_RUNTIMEINCONSISTENCY);
    CHECK_EQ(prep_pending_count(&p), 0); /* nothing of a failed multi stays */
    m->ops[1].version = 0;
    for (uint32_t i = 0; i < 3; i++)
        free(m->results[i].path);
    free(m->results);
    m->results = NULL;
    CHECK_EQ(prep1(&p, m, 6, &tx), 0);
    CHECK_EQ(tx.n_ops, 2); /* a check is no change */
    apply_and_forget(&tree, &p, &tx);
    CHECK(tree_get(&tree, "/m") && !tree_get(&tree, "/a/b"));

    /* closing a session deletes its ephemerals, including one not yet applied */
    struct request *e1 = req(REQ_CREATE, "/a/e1", 1);
    struct request *e2 = req(REQ_CREATE, "/a/e2", 1);
    CHECK_EQ(prep1(&p, e1, 7, &t1), 0);
    apply_and_forget(&tree, &p, &t1);
    CHECK_EQ(prep1(&p, e2, 8, &t2), 0);
    struct request *cl = req(REQ_CLOSE_SESSION, NULL, 0);
    CHECK_EQ(prep1(&p, cl, 9, &t3), 0);
    CHECK_EQ(t3.n_ops, 3);
    CHECK(t3.ops[0].type == TXN_DELETE && !strcmp(t3.ops[0].path, "/a/e1"));
    CHECK(t3.ops[1].type == TXN_DELETE && !strcmp(t3.ops[1].path, "/a/e2"));
    CHECK(t3.ops[2].type == TXN_CLOSE_SESSION);
    apply_and_forget(&tree, &p, &t2);
    apply_and_forget(&tree, &p, &t3);
    CHECK(!tree_get(&tree, "/a/e1") && !tree_get(&tree, "/a/e2"));
    CHECK(tree_session_get(&tree, 77) == NULL);

    /* ACLs: a node only bob may write */
    struct auth_info anon = {0}, bob = {0};
    auth_add(&anon, "ip", "127.0.0.1");
    auth_add(&bob, "ip", "127.0.0.1");
    auth_add(&bob, "digest", "bob:hash");
    struct acl bob_acl[] = {{.perms = PERM_READ | PERM_WRITE, .scheme = "digest", .id = "bob:hash"},
                            {.perms = PERM_READ, .scheme = "ip", .id = "127.0.0.0/8"}};
    CHECK_EQ(acl_check(bob_acl, 2, PERM_WRITE, &anon), ZE_NOAUTH);
    CHECK_EQ(acl_check(bob_acl, 2, PERM_WRITE, &bob), 0);
    CHECK_EQ(acl_check(bob_acl, 2, PERM_READ, &anon), 0);
    CHECK_EQ(acl_check(bob_acl, 2, PERM_DELETE, &bob), ZE_NOAUTH);
    CHECK_EQ(acl_check(bob_acl, 2, PERM_DELETE, NULL), 0); /* the server itself */
    struct acl *fx = acl_dup(&(struct acl){.perms = 31, .scheme = "auth", .id = ""}, 1);
    uint32_t nfx = 1;
    CHECK_EQ(acl_fixup(&fx, &nfx, &anon), ZE_INVALIDACL); /* nobody authenticated */
    CHECK_EQ(acl_fixup(&fx, &nfx, &bob), 0);
    CHECK(nfx == 1 && !strcmp(fx[0].scheme, "digest") && !strcmp(fx[0].id, "bob:hash"));
    acl_free(fx, nfx);
    auth_info_free(&anon);
    auth_info_free(&bob);

    struct request *all[] = {ra, rb, rs1, rs2, dup, under_eph, del_a, big, bad, m, e1, e2, cl};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        request_free(all[i]);
    prep_close(&p);
    tree_close(&tree);
}

int main(void)
{
    RUN(test_watches);
    RUN(test_sessions);
    RUN(test_prep);
    return TEST_EXIT();
}
