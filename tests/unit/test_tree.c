/* Unit tests for replica/tree.c and replica/txn.c: stat rules, atomicity, records, digest. */
#include "err.h"
#include "path.h"
#include "record.pb-c.h"
#include "test.h"
#include "tree.h"
#include "txn.h"

#include <stdint.h>
#include <string.h>

#define ONE_OP(...) ((struct txn_op[]){__VA_ARGS__})

static struct txn_op create_op(const char *path, const char *data, int64_t owner,
                               int32_t parent_cversion)
{
    struct txn_op op = {.type = TXN_CREATE, .path = (char *)path};
    if (data) {
        op.data = (uint8_t *)data;
        op.data_len = (uint32_t)strlen(data);
    }
    op.ephemeral_owner = owner;
    op.parent_cversion = parent_cversion;
    return op;
}

static struct txn_op delete_op(const char *path)
{
    return (struct txn_op){.type = TXN_DELETE, .path = (char *)path};
}

static struct txn_op set_data_op(const char *path, const char *data, int32_t version)
{
    return (struct txn_op){.type = TXN_SET_DATA,
                           .path = (char *)path,
                           .data = (uint8_t *)data,
                           .data_len = (uint32_t)strlen(data),
                           .version = version};
}

static struct txn_op session_op(enum txn_op_type type, uint64_t id)
{
    struct txn_op op = {.type = type, .session_id = id, .timeout_ms = 30000};
    for (int i = 0; i < PASSWD_LEN; i++)
        op.passwd[i] = (uint8_t)(id + (uint64_t)i);
    return op;
}

static int apply(struct tree *t, zxid_t zxid, int64_t time_ms, struct txn_op *ops, uint32_t n)
{
    struct txn txn = {.zxid = zxid, .time_ms = time_ms, .session_id = 0, .n_ops = n, .ops = ops};
    return tree_apply(t, &txn);
}

static int apply1(struct tree *t, zxid_t zxid, struct txn_op op)
{
    return apply(t, zxid, (int64_t)zxid * 10, &op, 1);
}

static void test_init(void)
{
    struct tree t;
    CHECK_EQ(tree_init(&t), 0);
    struct node *root = tree_get(&t, "/");
    CHECK(root != NULL);
    CHECK(root == t.root);
    CHECK_EQ(tree_count(&t), 1);
    CHECK_EQ(root->n_acls, 1);
    CHECK_EQ(root->acls[0].perms, 31);
    CHECK(strcmp(root->acls[0].scheme, "world") == 0);
    CHECK(strcmp(root->acls[0].id, "anyone") == 0);
    struct zstat zero = {0};
    CHECK(memcmp(&root->stat, &zero, sizeof zero) == 0);
    CHECK(strcmp(root->path, "/") == 0);
    CHECK(strcmp(path_name(root->path), "") == 0);
    CHECK(tree_get(&t, "/a") == NULL);
    CHECK_EQ(tree_ephemeral_count(&t), 0);
    tree_close(&t);
}

static void test_stat_rules(void)
{
    struct tree t;
    tree_init(&t);
    const zxid_t z1 = ZXID(1, 1), z2 = ZXID(1, 2), z3 = ZXID(1, 3), z4 = ZXID(1, 4);
    uint64_t bytes0 = t.data_bytes;

    CHECK_EQ(apply(&t, z1, 1000, ONE_OP(create_op("/a", "hello", 0, 1)), 1), 0);
    struct node *a = tree_get(&t, "/a");
    struct node *root = t.root;
    CHECK(a != NULL);
    CHECK(a->parent == root);
    CHECK(strcmp(a->path, "/a") == 0);
    CHECK_EQ(a->stat.czxid, z1);
    CHECK_EQ(a->stat.mzxid, z1);
    CHECK_EQ(a->stat.pzxid, z1);
    CHECK_EQ(a->stat.ctime, 1000);
    CHECK_EQ(a->stat.mtime, 1000);
    CHECK_EQ(a->stat.version, 0);
    CHECK_EQ(a->stat.cversion, 0);
    CHECK_EQ(a->stat.aversion, 0);
    CHECK_EQ(a->stat.ephemeral_owner, 0);
    CHECK_EQ(a->stat.data_length, 5);
    CHECK_EQ(a->stat.num_children, 0);
    CHECK(memcmp(a->data, "hello", 5) == 0);
    CHECK_EQ(root->stat.num_children, 1);
    CHECK_EQ(root->stat.cversion, 1);
    CHECK_EQ(root->stat.pzxid, z1);
    CHECK_EQ(root->stat.mzxid, 0);
    CHECK_EQ(t.last_applied, z1);
    CHECK_EQ(t.data_bytes, bytes0 + 2 + 5);

    CHECK_EQ(apply(&t, z2, 2000, ONE_OP(create_op("/a/b", NULL, 0, 1)), 1), 0);
    struct node *b = tree_get(&t, "/a/b");
    CHECK(b != NULL && b->parent == a);
    CHECK(b->data == NULL);
    CHECK_EQ(b->stat.data_length, 0);
    CHECK_EQ(a->stat.num_children, 1);
    CHECK_EQ(a->stat.cversion, 1);
    CHECK_EQ(a->stat.pzxid, z2);
    CHECK_EQ(a->stat.mzxid, z1); /* children do not change the parent's data */
    CHECK_EQ(root->stat.pzxid, z1);
    CHECK_EQ(t.data_bytes, bytes0 + 2 + 5 + 4);

    /* Deletes move pzxid and numChildren, never cversion. */
    CHECK_EQ(apply(&t, z3, 3000, ONE_OP(delete_op("/a/b")), 1), 0);
    CHECK(tree_get(&t, "/a/b") == NULL);
    CHECK_EQ(a->stat.num_children, 0);
    CHECK_EQ(a->stat.cversion, 1);
    CHECK_EQ(a->stat.pzxid, z3);
    CHECK_EQ(tree_count(&t), 2);
    CHECK_EQ(t.data_bytes, bytes0 + 2 + 5);

    CHECK_EQ(apply(&t, z4, 4000, ONE_OP(set_data_op("/a", "xy", 1)), 1), 0);
    CHECK_EQ(a->stat.mzxid, z4);
    CHECK_EQ(a->stat.mtime, 4000);
    CHECK_EQ(a->stat.czxid, z1);
    CHECK_EQ(a->stat.ctime, 1000);
    CHECK_EQ(a->stat.pzxid, z3);
    CHECK_EQ(a->stat.version, 1);
    CHECK_EQ(a->stat.data_length, 2);
    CHECK(memcmp(a->data, "xy", 2) == 0);
    CHECK_EQ(t.data_bytes, bytes0 + 2 + 2);

    /* Empty data is NULL with length 0. */
    CHECK_EQ(apply(&t, ZXID(1, 5), 5000, ONE_OP(set_data_op("/a", "", 2)), 1), 0);
    CHECK(a->data == NULL);
    CHECK_EQ(a->stat.data_length, 0);
    CHECK_EQ(a->stat.version, 2);
    CHECK_EQ(t.last_applied, ZXID(1, 5));
    tree_close(&t);
}

static void test_atomicity(void)
{
    struct tree t;
    tree_init(&t);
    CHECK_EQ(apply1(&t, 1, create_op("/a", "x", 0, 1)), 0);
    CHECK_EQ(apply1(&t, 2, create_op("/a/b", NULL, 0, 1)), 0);
    CHECK_EQ(apply1(&t, 3, session_op(TXN_CREATE_SESSION, 7)), 0);
    CHECK_EQ(apply1(&t, 4, create_op("/eph", NULL, 7, 3)), 0);
    uint64_t d = tree_digest(&t);
    uint64_t bytes = t.data_bytes;

    /* Third op invalid: nothing of the first two may remain. */
    struct txn_op bad[] = {create_op("/x", "1", 0, 4), create_op("/x/y", NULL, 0, 1),
                           create_op("/nope/z", NULL, 0, 1)};
    CHECK_EQ(apply(&t, 5, 50, bad, 3), ZE_DATAINCONSISTENCY);
    CHECK(tree_get(&t, "/x") == NULL);
    CHECK(tree_get(&t, "/x/y") == NULL);
    CHECK_EQ(tree_count(&t), 4);
    CHECK_EQ(t.root->stat.cversion, 3);
    CHECK_EQ(t.root->stat.num_children, 2);
    CHECK_EQ(t.last_applied, 4);
    CHECK_EQ(t.data_bytes, bytes);
    CHECK(tree_digest(&t) == d);

    struct txn_op bad2[] = {set_data_op("/a", "new", 1), delete_op("/a/b"), delete_op("/a/b")};
    CHECK_EQ(apply(&t, 5, 50, bad2, 3), ZE_DATAINCONSISTENCY);
    CHECK(tree_get(&t, "/a/b") != NULL);
    CHECK(tree_digest(&t) == d);

    /* Each single-op failure the pipeline must never produce. */
    CHECK_EQ(apply1(&t, 5, create_op("/a", NULL, 0, 5)), ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, create_op("/q/r", NULL, 0, 1)), ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, create_op("/eph/c", NULL, 0, 1)), ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, create_op("/", NULL, 0, 1)), ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, create_op("//a", NULL, 0, 1)), ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, create_op("/a/", NULL, 0, 1)), ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, delete_op("/missing")), ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, delete_op("/a")), ZE_DATAINCONSISTENCY); /* not empty */
    CHECK_EQ(apply1(&t, 5, delete_op("/")), ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, set_data_op("/missing", "x", 1)), ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, ((struct txn_op){.type = TXN_SET_ACL, .path = "/missing"})),
             ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, ((struct txn_op){.type = TXN_SET_META, .path = "/missing"})),
             ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, session_op(TXN_CREATE_SESSION, 7)), ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, session_op(TXN_CLOSE_SESSION, 8)), ZE_DATAINCONSISTENCY);
    CHECK_EQ(apply1(&t, 5, ((struct txn_op){.type = (enum txn_op_type)99})), ZE_DATAINCONSISTENCY);
    CHECK(tree_digest(&t) == d);
    CHECK_EQ(t.last_applied, 4);

    /* Ops see their own txn's earlier effects. */
    struct txn_op good[] = {create_op("/m", NULL, 0, 4),
                            create_op("/m/n", "zz", 0, 1),
                            create_op("/m/n/o", NULL, 0, 1),
                            delete_op("/m/n/o"),
                            delete_op("/a/b"),
                            delete_op("/a"),
                            create_op("/a", "again", 0, 5)};
    CHECK_EQ(apply(&t, 6, 60, good, 7), 0);
    CHECK(tree_get(&t, "/m/n/o") == NULL);
    CHECK(tree_get(&t, "/a/b") == NULL);
    struct node *n = tree_get(&t, "/m/n");
    CHECK(n != NULL);
    CHECK_EQ(n->stat.num_children, 0);
    CHECK_EQ(n->stat.cversion, 1);
    CHECK_EQ(n->stat.pzxid, 6);
    struct node *a = tree_get(&t, "/a");
    CHECK(a != NULL);
    CHECK_EQ(a->stat.czxid, 6);
    CHECK_EQ(a->stat.num_children, 0);
    CHECK_EQ(a->stat.data_length, 5);
    CHECK_EQ(t.root->stat.cversion, 5);
    CHECK_EQ(t.root->stat.num_children, 3); /* /a, /eph, /m */
    CHECK_EQ(tree_count(&t), 5);
    CHECK_EQ(t.last_applied, 6);
    CHECK_EQ(t.data_bytes, 1 + (2 + 5) + 4 + 2 + (4 + 2));

    /* Deleting and recreating within a txn: the child validation follows the overlay. */
    struct txn_op redo[] = {delete_op("/m/n"), create_op("/m/n/x", NULL, 0, 1)};
    CHECK_EQ(apply(&t, 7, 70, redo, 2), ZE_DATAINCONSISTENCY);
    CHECK(tree_get(&t, "/m/n") != NULL);
    tree_close(&t);
}

static void test_ephemerals(void)
{
    struct tree t;
    tree_init(&t);
    const uint64_t sid = 0x0100000000000001ULL;

    /* A session and its first ephemeral in one txn. */
    struct txn_op open[] = {session_op(TXN_CREATE_SESSION, sid),
                            create_op("/e1", "v", (int64_t)sid, 1)};
    CHECK_EQ(apply(&t, 1, 10, open, 2), 0);
    struct tree_session *s = tree_session_get(&t, sid);
    CHECK(s != NULL);
    CHECK_EQ(s->timeout_ms, 30000);
    CHECK_EQ(s->passwd[3], (uint8_t)(sid + 3));
    CHECK_EQ(HASH_CNT(hh, s->ephemerals), 1);
    CHECK_EQ(apply1(&t, 2, create_op("/e2", NULL, (int64_t)sid, 2)), 0);
    CHECK_EQ(apply1(&t, 3, create_op("/dir", NULL, 0, 3)), 0);
    CHECK_EQ(apply1(&t, 4, create_op("/dir/e3", NULL, (int64_t)sid, 1)), 0);
    /* Containers and TTL nodes are not session ephemerals. */
    CHECK_EQ(apply1(&t, 5, create_op("/cont", NULL, EPHEMERAL_CONTAINER, 4)), 0);
    CHECK_EQ(apply1(&t, 6, create_op("/ttl", NULL, (int64_t)(EPHEMERAL_TTL_MASK | 1000), 5)), 0);
    CHECK_EQ(apply1(&t, 7, create_op("/cont/c", NULL, 0, 1)), 0);
    CHECK_EQ(tree_ephemeral_count(&t), 3);
    CHECK_EQ(tree_get(&t, "/e1")->stat.ephemeral_owner, (int64_t)sid);

    uint64_t d = tree_digest(&t);
    /* Closing a session that still owns ephemerals does not fit the tree. */
    CHECK_EQ(apply1(&t, 8, session_op(TXN_CLOSE_SESSION, sid)), ZE_DATAINCONSISTENCY);
    struct txn_op partial[] = {delete_op("/e1"), delete_op("/e2"),
                               session_op(TXN_CLOSE_SESSION, sid)};
    CHECK_EQ(apply(&t, 8, 80, partial, 3), ZE_DATAINCONSISTENCY);
    CHECK(tree_digest(&t) == d);
    CHECK_EQ(tree_ephemeral_count(&t), 3);
    CHECK(tree_session_get(&t, sid) != NULL);

    /* A create after the close in the same txn is not tracked under the closed session. */
    struct txn_op late[] = {delete_op("/e1"), delete_op("/e2"), delete_op("/dir/e3"),
                            session_op(TXN_CLOSE_SESSION, sid),
                            create_op("/e4", NULL, (int64_t)sid, 9)};
    CHECK_EQ(apply(&t, 8, 80, late, 5), 0);
    CHECK(tree_session_get(&t, sid) == NULL);
    CHECK(tree_get(&t, "/e4") != NULL);
    CHECK(tree_get(&t, "/e1") == NULL);
    CHECK(tree_get(&t, "/dir/e3") == NULL);
    CHECK_EQ(tree_get(&t, "/dir")->stat.num_children, 0);
    CHECK_EQ(tree_ephemeral_count(&t), 0);
    CHECK_EQ(t.root->stat.pzxid, 8);
    CHECK_EQ(t.root->stat.cversion, 9);
    tree_close(&t);
}

static void test_sequential(void)
{
    struct tree t;
    tree_init(&t);
    CHECK_EQ(apply1(&t, 1, create_op("/q", NULL, 0, 1)), 0);
    /* The pipeline names sequential nodes from the parent's cversion and sends the new one. */
    CHECK_EQ(apply1(&t, 2, create_op("/q/n0000000000", NULL, 0, 1)), 0);
    CHECK_EQ(apply1(&t, 3, create_op("/q/n0000000001", NULL, 0, 2)), 0);
    struct node *q = tree_get(&t, "/q");
    CHECK_EQ(q->stat.cversion, 2);
    CHECK_EQ(apply1(&t, 4, delete_op("/q/n0000000000")), 0);
    CHECK_EQ(q->stat.cversion, 2);
    CHECK_EQ(q->stat.num_children, 1);
    CHECK_EQ(q->stat.pzxid, 4);
    CHECK_EQ(apply1(&t, 5, create_op("/q/n0000000002", NULL, 0, 3)), 0);
    CHECK_EQ(q->stat.cversion, 3);
    CHECK_EQ(q->stat.num_children, 2);
    /* Two sequential creates in one multi. */
    struct txn_op two[] = {create_op("/q/n0000000003", NULL, 0, 4),
                           create_op("/q/n0000000004", NULL, 0, 5)};
    CHECK_EQ(apply(&t, 6, 60, two, 2), 0);
    CHECK_EQ(q->stat.cversion, 5);
    CHECK_EQ(q->stat.num_children, 4);
    /* cversion is a signed int that wraps, as ZooKeeper's. */
    CHECK_EQ(apply1(&t, 7, create_op("/q/w", NULL, 0, INT32_MIN)), 0);
    CHECK_EQ(q->stat.cversion, INT32_MIN);
    tree_close(&t);
}

static void test_children_sorted(void)
{
    struct tree t;
    tree_init(&t);
    CHECK_EQ(apply1(&t, 1, create_op("/s", NULL, 0, 1)), 0);
    const char *names[] = {"b", "c2", "a", "c10", "B", "aa"};
    const char *want[] = {"B", "a", "aa", "b", "c10", "c2"};
    char path[32];
    for (int i = 0; i < 6; i++) {
        struct txn_op op = create_op(path, NULL, 0, i + 1);
        snprintf(path, sizeof path, "/s/%s", names[i]);
        CHECK_EQ(apply1(&t, (zxid_t)(2 + i), op), 0);
    }
    uint32_t count = 99;
    const char **got = tree_children_sorted(tree_get(&t, "/s"), &count);
    CHECK(got != NULL);
    CHECK_EQ(count, 6);
    for (int i = 0; i < 6; i++)
        CHECK(got && strcmp(got[i], want[i]) == 0);
    CHECK(got && got[6] == NULL);
    free(got);

    got = tree_children_sorted(tree_get(&t, "/s/a"), &count);
    CHECK(got != NULL && got[0] == NULL);
    CHECK_EQ(count, 0);
    free(got);
    tree_close(&t);
}

static void test_set_meta_acl(void)
{
    struct tree t;
    tree_init(&t);
    CHECK_EQ(apply1(&t, 1, create_op("/f", "data", 0, 1)), 0);
    struct node *f = tree_get(&t, "/f");
    CHECK_EQ(f->kind, NODE_KIND_UNSET);
    struct zstat before = f->stat;

    struct txn_op meta = {.type = TXN_SET_META,
                          .path = "/f",
                          .kind = NODE_KIND_DIR,
                          .policy = POLICY_EPHEMERAL | POLICY_SEQUENTIAL};
    uint64_t d = tree_digest(&t);
    CHECK_EQ(apply1(&t, 2, meta), 0);
    CHECK_EQ(f->kind, NODE_KIND_DIR);
    CHECK_EQ(f->policy, POLICY_EPHEMERAL | POLICY_SEQUENTIAL);
    CHECK(memcmp(&f->stat, &before, sizeof before) == 0);
    CHECK(tree_digest(&t) != d);

    struct acl acls[] = {{.perms = 1, .scheme = "digest", .id = "u:hash"},
                         {.perms = 31, .scheme = "ip", .id = "10.0.0.0/8"}};
    struct txn_op set_acl = {
        .type = TXN_SET_ACL, .path = "/f", .acls = acls, .n_acls = 2, .version = 1};
    CHECK_EQ(apply1(&t, 3, set_acl), 0);
    CHECK_EQ(f->n_acls, 2);
    CHECK(f->acls != acls); /* copied */
    CHECK_EQ(f->acls[0].perms, 1);
    CHECK(strcmp(f->acls[0].scheme, "digest") == 0);
    CHECK(strcmp(f->acls[1].id, "10.0.0.0/8") == 0);
    CHECK_EQ(f->stat.aversion, 1);
    CHECK_EQ(f->stat.version, 0);
    CHECK_EQ(f->stat.mzxid, 1);
    CHECK_EQ(f->stat.pzxid, 1);

    set_acl.n_acls = 0;
    set_acl.acls = NULL;
    set_acl.version = 2;
    CHECK_EQ(apply1(&t, 4, set_acl), 0);
    CHECK_EQ(f->n_acls, 0);
    CHECK(f->acls == NULL);
    CHECK_EQ(f->stat.aversion, 2);

    /* The root can be changed too. */
    CHECK_EQ(apply1(&t, 5, set_data_op("/", "r", 1)), 0);
    CHECK_EQ(t.root->stat.version, 1);
    tree_close(&t);
}

/* Nodes with equal ACL lists share one copy, counted; the last node to drop it frees it. */
static void test_acl_cache(void)
{
    struct tree t;
    CHECK_EQ(tree_init(&t), 0);
    CHECK_EQ(tree_acl_count(&t), 1); /* the root's world:anyone */

    /* Equal lists from other buffers: the root's copy */
    char scheme[] = "world", id[] = "anyone";
    struct acl world[] = {{.perms = 31, .scheme = scheme, .id = id}};
    struct txn_op c = create_op("/a", "x", 0, 1);
    c.acls = world;
    c.n_acls = 1;
    CHECK_EQ(apply1(&t, 1, c), 0);
    struct node *a = tree_get(&t, "/a");
    CHECK(a->acls == t.root->acls);
    CHECK(a->acls != world);
    CHECK_EQ(a->n_acls, 1);
    CHECK_EQ(tree_acl_count(&t), 1);
    memcpy(scheme, "xxxxx", 5); /* copied, not borrowed */
    CHECK(strcmp(a->acls[0].scheme, "world") == 0);

    /* Lists differing in perms, order, or where one string ends are different lists. */
    struct acl two[] = {{.perms = 1, .scheme = "digest", .id = "u:h"},
                        {.perms = 31, .scheme = "ip", .id = "10.0.0.1"}};
    struct acl swapped[] = {two[1], two[0]};
    struct acl perms[] = {{.perms = 3, .scheme = "digest", .id = "u:h"}, two[1]};
    struct acl split[] = {{.perms = 1, .scheme = "digestu", .id = ":h"}, two[1]};
    struct acl *lists[] = {two, swapped, perms, split, two};
    const char *paths[] = {"/b", "/c", "/d", "/e", "/f"};
    for (int i = 0; i < 5; i++) {
        c = create_op(paths[i], NULL, 0, i + 2);
        c.acls = lists[i];
        c.n_acls = 2;
        CHECK_EQ(apply1(&t, (zxid_t)(2 + i), c), 0);
    }
    CHECK_EQ(tree_acl_count(&t), 5);
    struct node *b = tree_get(&t, "/b"), *f = tree_get(&t, "/f");
    CHECK(b->acls == f->acls);
    CHECK(tree_get(&t, "/c")->acls != b->acls);
    CHECK(tree_get(&t, "/d")->acls != b->acls);
    CHECK(tree_get(&t, "/e")->acls != b->acls);
    CHECK(strcmp(tree_get(&t, "/e")->acls[0].scheme, "digestu") == 0);

    /* A txn that fails takes no reference. */
    struct acl fresh[] = {{.perms = 1, .scheme = "auth", .id = ""}};
    struct txn_op multi[2] = {create_op("/g", NULL, 0, 7), create_op("/a", NULL, 0, 8)};
    multi[0].acls = multi[1].acls = fresh;
    multi[0].n_acls = multi[1].n_acls = 1;
    uint64_t digest = tree_digest(&t);
    CHECK_EQ(apply(&t, 10, 100, multi, 2), ZE_DATAINCONSISTENCY);
    CHECK_EQ(tree_acl_count(&t), 5);
    CHECK(tree_digest(&t) == digest);

    /* setACL to the list a node already has, to a shared one, to a new one, to none */
    struct txn_op set = {.type = TXN_SET_ACL, .path = "/b", .acls = two, .n_acls = 2};
    set.version = 1;
    CHECK_EQ(apply1(&t, 11, set), 0);
    CHECK(b->acls == f->acls);
    CHECK_EQ(tree_acl_count(&t), 5);
    set.path = "/c";
    CHECK_EQ(apply1(&t, 12, set), 0); /* the swapped list goes with its only node */
    CHECK(tree_get(&t, "/c")->acls == b->acls);
    CHECK_EQ(tree_acl_count(&t), 4);
    set.path = "/a";
    set.acls = fresh;
    set.n_acls = 1;
    CHECK_EQ(apply1(&t, 13, set), 0); /* world:anyone stays: the root has it */
    CHECK_EQ(tree_acl_count(&t), 5);
    CHECK(strcmp(a->acls[0].scheme, "auth") == 0 && a->acls[0].id[0] == 0);
    set.path = "/";
    set.acls = NULL;
    set.n_acls = 0;
    CHECK_EQ(apply1(&t, 14, set), 0);
    CHECK(t.root->acls == NULL && t.root->n_acls == 0);
    CHECK_EQ(tree_acl_count(&t), 4);

    /* Deletes drop references: "two" is held by /b, /c, /f until the last goes. */
    CHECK_EQ(apply1(&t, 15, delete_op("/b")), 0);
    CHECK_EQ(apply1(&t, 16, delete_op("/c")), 0);
    CHECK_EQ(tree_acl_count(&t), 4);
    CHECK(strcmp(f->acls[1].id, "10.0.0.1") == 0);
    CHECK_EQ(apply1(&t, 17, delete_op("/f")), 0);
    CHECK_EQ(tree_acl_count(&t), 3);
    CHECK_EQ(apply1(&t, 18, delete_op("/d")), 0);
    CHECK_EQ(apply1(&t, 19, delete_op("/e")), 0);
    CHECK_EQ(tree_acl_count(&t), 1);
    CHECK_EQ(apply1(&t, 20, delete_op("/a")), 0);
    CHECK_EQ(tree_acl_count(&t), 0);

    /* Loading shares too, and a node loaded over one drops its old list (the root). */
    c = create_op("/h", NULL, 0, 9);
    c.acls = two;
    c.n_acls = 2;
    CHECK_EQ(apply1(&t, 21, c), 0);
    uint8_t *buf;
    size_t len;
    CHECK_EQ(tree_node_encode(tree_get(&t, "/h"), &buf, &len), 0);
    struct tree u;
    CHECK_EQ(tree_init(&u), 0);
    CHECK_EQ(tree_load_node(&u, "/", buf, len), 0); /* the root, now with "two" */
    CHECK_EQ(tree_acl_count(&u), 1);
    CHECK_EQ(tree_load_node(&u, "/x", buf, len), 0);
    CHECK_EQ(tree_load_node(&u, "/y", buf, len), 0);
    CHECK_EQ(tree_load_node(&u, "/x", buf, len), ZE_DATAINCONSISTENCY);
    CHECK_EQ(tree_load_finish(&u), 0);
    CHECK_EQ(tree_acl_count(&u), 1);
    CHECK(tree_get(&u, "/x")->acls == u.root->acls);
    CHECK(tree_get(&u, "/y")->acls == u.root->acls);
    CHECK_EQ(u.root->n_acls, 2);
    free(buf);
    tree_close(&u);
    tree_close(&t);
}

/* A tree with a bit of everything, for the record and digest tests. */
static void build_sample(struct tree *t)
{
    tree_init(t);
    struct acl acls[] = {{.perms = 3, .scheme = "digest", .id = "bob:xyz"}};
    struct txn_op c = create_op("/d", "dir", 0, 1);
    c.kind = NODE_KIND_DIR;
    c.policy = POLICY_SEQUENTIAL;
    c.acls = acls;
    c.n_acls = 1;
    CHECK_EQ(apply1(t, 1, c), 0);
    CHECK_EQ(apply1(t, 2, session_op(TXN_CREATE_SESSION, 42)), 0);
    CHECK_EQ(apply1(t, 3, session_op(TXN_CREATE_SESSION, 43)), 0);
    char path[32];
    for (int i = 0; i < 20; i++) {
        snprintf(path, sizeof path, "/d/f%d", i);
        struct txn_op op = create_op(path, i % 3 ? "payload" : NULL, i % 4 == 0 ? 42 : 0, i + 1);
        op.kind = NODE_KIND_FILE;
        CHECK_EQ(apply1(t, (zxid_t)(10 + 2 * i), op), 0);
        if (i % 4 == 1) {
            snprintf(path, sizeof path, "/d/f%d/g", i);
            CHECK_EQ(apply1(t, (zxid_t)(11 + 2 * i), create_op(path, "g", 0, 1)), 0);
        }
    }
    CHECK_EQ(apply1(t, 70, delete_op("/d/f2")), 0);
    CHECK_EQ(apply1(t, 71, set_data_op("/d/f3", "changed", 1)), 0);
    CHECK_EQ(apply1(t, 72, set_data_op("/", "rootdata", 1)), 0);
    CHECK_EQ(apply1(t, 73, create_op("/d/f1/g/eph", NULL, 43, 1)), 0);
    /* more than the loader's stack arena holds; "/d-x" sorts between "/d" and "/d/..." */
    static char big[5000];
    memset(big, 'b', sizeof big - 1);
    CHECK_EQ(apply1(t, 74, create_op("/d-x", big, 0, 2)), 0);
}

struct rec {
    char *path;
    uint8_t *buf;
    size_t len;
};

static int rec_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rec *)a)->path, ((const struct rec *)b)->path);
}

static void test_round_trip(void)
{
    struct tree t, u;
    build_sample(&t);
    uint32_t n = tree_count(&t);
    struct rec *recs = calloc(n, sizeof *recs);
    uint32_t i = 0;
    for (struct node *nd = t.nodes; nd; nd = nd->hh.next, i++) {
        recs[i].path = strdup(nd->path);
        CHECK_EQ(tree_node_encode(nd, &recs[i].buf, &recs[i].len), 0);
    }
    /* Load in a scrambled order (deterministic Fisher-Yates with an LCG). */
    uint32_t seed = 12345;
    for (i = n - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        uint32_t j = (seed >> 8) % (i + 1);
        struct rec tmp = recs[i];
        recs[i] = recs[j];
        recs[j] = tmp;
    }
    CHECK_EQ(tree_init(&u), 0);
    for (i = 0; i < n; i++)
        CHECK_EQ(tree_load_node(&u, recs[i].path, recs[i].buf, recs[i].len), 0);
    /* Sessions after their ephemerals: tree_load_finish links them up. */
    for (struct tree_session *s = t.sessions; s; s = s->hh.next) {
        uint8_t *buf;
        size_t len;
        CHECK_EQ(tree_session_encode(s, &buf, &len), 0);
        CHECK_EQ(tree_load_session(&u, buf, len), 0);
        free(buf);
    }
    CHECK_EQ(tree_load_finish(&u), 0);

    CHECK_EQ(tree_count(&u), tree_count(&t));
    CHECK_EQ(u.data_bytes, t.data_bytes);
    CHECK_EQ(tree_ephemeral_count(&u), tree_ephemeral_count(&t));
    CHECK_EQ(tree_ephemeral_count(&u), 6);
    CHECK(tree_digest(&u) == tree_digest(&t));
    for (struct node *a = t.nodes; a; a = a->hh.next) {
        struct node *b = tree_get(&u, a->path);
        CHECK(b != NULL);
        if (!b)
            continue;
        CHECK(memcmp(&a->stat, &b->stat, sizeof a->stat) == 0);
        CHECK_EQ(a->kind, b->kind);
        CHECK_EQ(a->policy, b->policy);
        CHECK(a->parent == NULL ? b->parent == NULL
                                : (b->parent && strcmp(a->parent->path, b->parent->path) == 0));
    }
    struct node *d = tree_get(&u, "/d");
    CHECK(d && d->n_acls == 1 && strcmp(d->acls[0].id, "bob:xyz") == 0);
    /* Loaded lists go through the ACL cache too: the same distinct lists, shared. */
    CHECK_EQ(tree_acl_count(&u), tree_acl_count(&t));
    CHECK_EQ(tree_acl_count(&u), 2);
    CHECK(tree_get(&u, "/d/f0")->acls == NULL);

    /* The store's order (sorted paths): every parent is linked as its children come. */
    struct rec *sorted = calloc(n, sizeof *sorted);
    memcpy(sorted, recs, n * sizeof *recs);
    qsort(sorted, n, sizeof *sorted, rec_cmp);
    struct tree w;
    CHECK_EQ(tree_init(&w), 0);
    for (i = 0; i < n; i++)
        CHECK_EQ(tree_load_node(&w, sorted[i].path, sorted[i].buf, sorted[i].len), 0);
    CHECK_EQ(w.load_unlinked, 0);
    CHECK_EQ(tree_load_node(&w, "/d/f5", sorted[0].buf, sorted[0].len), ZE_DATAINCONSISTENCY);
    for (struct tree_session *s = t.sessions; s; s = s->hh.next) {
        uint8_t *buf;
        size_t len;
        CHECK_EQ(tree_session_encode(s, &buf, &len), 0);
        CHECK_EQ(tree_load_session(&w, buf, len), 0);
        free(buf);
    }
    CHECK_EQ(tree_load_finish(&w), 0);
    CHECK(tree_digest(&w) == tree_digest(&t));
    CHECK_EQ(w.data_bytes, t.data_bytes);
    CHECK_EQ(tree_ephemeral_count(&w), tree_ephemeral_count(&t));
    for (struct node *a = t.nodes; a; a = a->hh.next) {
        struct node *b = tree_get(&w, a->path);
        CHECK(b && b->stat.num_children == a->stat.num_children);
    }
    tree_close(&w);
    free(sorted);
    CHECK(memcmp(u.root->data, "rootdata", 8) == 0);
    struct tree_session *s = tree_session_get(&u, 42);
    CHECK(s && s->timeout_ms == 30000 && s->passwd[15] == 42 + 15);
    CHECK(s && HASH_CNT(hh, s->ephemerals) == 5);

    /* The reloaded tree goes on applying txns like the original. */
    struct txn_op close[] = {delete_op("/d/f1/g/eph"), session_op(TXN_CLOSE_SESSION, 43)};
    CHECK_EQ(apply(&t, 80, 800, close, 2), 0);
    CHECK_EQ(apply(&u, 80, 800, close, 2), 0);
    CHECK(tree_digest(&u) == tree_digest(&t));
    CHECK_EQ(apply1(&u, 81, set_data_op("/d/f5", "x", 1)), 0);
    CHECK(tree_digest(&u) != tree_digest(&t));

    /* A record without its parent, and records that are not records. */
    struct tree v;
    tree_init(&v);
    for (i = 0; i < n; i++)
        if (strcmp(recs[i].path, "/d") != 0)
            CHECK_EQ(tree_load_node(&v, recs[i].path, recs[i].buf, recs[i].len), 0);
    CHECK_EQ(tree_load_finish(&v), ZE_DATAINCONSISTENCY);
    CHECK_EQ(tree_load_node(&v, "/d/f5", recs[0].buf, recs[0].len), ZE_DATAINCONSISTENCY);
    CHECK_EQ(tree_load_node(&v, "/new", (const uint8_t *)"\xff\xff\xff", 3), ZE_MARSHALLINGERROR);
    CHECK_EQ(tree_load_node(&v, "/new", (const uint8_t *)"", 0), ZE_MARSHALLINGERROR);
    CHECK_EQ(tree_load_node(&v, "bad", recs[0].buf, recs[0].len), ZE_MARSHALLINGERROR);
    CHECK_EQ(tree_load_session(&v, (const uint8_t *)"\x08\x01", 2), ZE_MARSHALLINGERROR);
    Zkfs__Rec__Session short_pw = ZKFS__REC__SESSION__INIT;
    uint8_t pw[4] = {0}, out[64];
    short_pw.passwd.len = 4;
    short_pw.passwd.data = pw;
    size_t len = zkfs__rec__session__pack(&short_pw, out);
    CHECK_EQ(tree_load_session(&v, out, len), ZE_MARSHALLINGERROR);
    tree_close(&v);

    for (i = 0; i < n; i++) {
        free(recs[i].path);
        free(recs[i].buf);
    }
    free(recs);
    tree_close(&u);
    tree_close(&t);
}

static void test_digest_order(void)
{
    /* Same content reached through different hash-table insertion orders. */
    struct tree a, b;
    tree_init(&a);
    tree_init(&b);
    const char *paths[] = {"/p1", "/p2", "/p3", "/p4"};
    for (int i = 0; i < 4; i++) {
        /* the same zxid on purpose, so the stats match: let it be applied again */
        a.last_applied = b.last_applied = 0;
        CHECK_EQ(apply1(&a, 1, create_op(paths[i], paths[i], 0, 0)), 0);
        CHECK_EQ(apply1(&b, 1, create_op(paths[3 - i], paths[3 - i], 0, 0)), 0);
    }
    CHECK(tree_digest(&a) == tree_digest(&b));
    CHECK_EQ(apply1(&a, 2, set_data_op("/p1", "x", 1)), 0);
    CHECK(tree_digest(&a) != tree_digest(&b));
    CHECK_EQ(apply1(&b, 2, set_data_op("/p1", "x", 1)), 0);
    CHECK(tree_digest(&a) == tree_digest(&b));
    CHECK_EQ(apply1(&a, 3, session_op(TXN_CREATE_SESSION, 5)), 0);
    CHECK(tree_digest(&a) != tree_digest(&b));
    tree_close(&a);
    tree_close(&b);
}

static void test_txn_codec(void)
{
    struct acl acls[] = {{.perms = 31, .scheme = "world", .id = "anyone"},
                         {.perms = 1, .scheme = "auth", .id = ""}};
    struct txn_op ops[] = {
        create_op("/a", "hello", -5, 7),
        delete_op("/b"),
        set_data_op("/c", "", 3),
        {.type = TXN_SET_ACL, .path = "/d", .acls = acls, .n_acls = 2, .version = 9},
        {.type = TXN_SET_META, .path = "/e", .kind = NODE_KIND_FILE, .policy = 0},
        session_op(TXN_CREATE_SESSION, 0xdeadbeefcafeULL),
        session_op(TXN_CLOSE_SESSION, 0xdeadbeefcafeULL),
    };
    ops[0].acls = acls;
    ops[0].n_acls = 1;
    ops[0].kind = NODE_KIND_DIR;
    ops[0].policy = POLICY_EPHEMERAL;
    struct txn in = {.zxid = ZXID(3, 17),
                     .time_ms = 1700000000123,
                     .session_id = 99,
                     .origin = 3,
                     .cxid = 77,
                     .n_ops = 7,
                     .ops = ops};
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK_EQ(txn_encode(&in, &buf, &len), 0);
    struct txn out;
    CHECK_EQ(txn_decode(buf, len, &out), 0);
    CHECK_EQ(out.zxid, ZXID(3, 17));
    CHECK_EQ(out.origin, 3);
    CHECK_EQ(out.cxid, 77);
    CHECK_EQ(ZXID_EPOCH(out.zxid), 3);
    CHECK_EQ(ZXID_COUNTER(out.zxid), 17);
    CHECK_EQ(out.time_ms, 1700000000123);
    CHECK_EQ(out.session_id, 99);
    CHECK_EQ(out.n_ops, 7);
    if (out.n_ops == 7) {
        struct txn_op *o = out.ops;
        CHECK_EQ(o[0].type, TXN_CREATE);
        CHECK(strcmp(o[0].path, "/a") == 0);
        CHECK_EQ(o[0].data_len, 5);
        CHECK(memcmp(o[0].data, "hello", 5) == 0);
        CHECK_EQ(o[0].ephemeral_owner, -5);
        CHECK_EQ(o[0].parent_cversion, 7);
        CHECK_EQ(o[0].kind, NODE_KIND_DIR);
        CHECK_EQ(o[0].policy, POLICY_EPHEMERAL);
        CHECK_EQ(o[0].n_acls, 1);
        CHECK(strcmp(o[0].acls[0].scheme, "world") == 0);
        CHECK_EQ(o[1].type, TXN_DELETE);
        CHECK(strcmp(o[1].path, "/b") == 0);
        CHECK_EQ(o[2].type, TXN_SET_DATA);
        CHECK_EQ(o[2].data_len, 0);
        CHECK(o[2].data == NULL);
        CHECK_EQ(o[2].version, 3);
        CHECK_EQ(o[3].type, TXN_SET_ACL);
        CHECK_EQ(o[3].n_acls, 2);
        CHECK_EQ(o[3].acls[1].perms, 1);
        CHECK(strcmp(o[3].acls[1].id, "") == 0);
        CHECK_EQ(o[3].version, 9);
        CHECK_EQ(o[4].type, TXN_SET_META);
        CHECK_EQ(o[4].kind, NODE_KIND_FILE);
        CHECK_EQ(o[5].type, TXN_CREATE_SESSION);
        CHECK_EQ(o[5].session_id, 0xdeadbeefcafeULL);
        CHECK_EQ(o[5].timeout_ms, 30000);
        CHECK(memcmp(o[5].passwd, ops[5].passwd, PASSWD_LEN) == 0);
        CHECK(o[5].path == NULL);
        CHECK_EQ(o[6].type, TXN_CLOSE_SESSION);
        CHECK_EQ(o[6].session_id, 0xdeadbeefcafeULL);
    }
    /* Re-encoding the decoded txn gives the same bytes. */
    uint8_t *buf2 = NULL;
    size_t len2 = 0;
    CHECK_EQ(txn_encode(&out, &buf2, &len2), 0);
    CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
    free(buf2);
    txn_free_contents(&out);
    CHECK(out.ops == NULL && out.n_ops == 0);
    txn_free_contents(&out); /* safe twice, and on a zeroed txn */

    /* Garbage, truncation and an empty txn. */
    CHECK_EQ(txn_decode((const uint8_t *)"\xff\xff\xff\xff", 4, &out), ZE_MARSHALLINGERROR);
    CHECK(out.ops == NULL);
    CHECK_EQ(txn_decode(buf, len - 3, &out), ZE_MARSHALLINGERROR);
    CHECK_EQ(txn_decode((const uint8_t *)"", 0, &out), ZE_MARSHALLINGERROR);
    free(buf);
    struct txn empty = {.zxid = 1};
    CHECK_EQ(txn_encode(&empty, &buf, &len), 0);
    CHECK_EQ(txn_decode(buf, len, &out), 0);
    CHECK_EQ(out.n_ops, 0);
    CHECK_EQ(out.zxid, 1);
    txn_free_contents(&out);
    free(buf);

    /* Well-formed protobuf that is not a valid Txn: each must be rejected. */
    Zkfs__Rec__TxnOp op = ZKFS__REC__TXN_OP__INIT, *opp = &op;
    Zkfs__Rec__Txn rec = ZKFS__REC__TXN__INIT;
    rec.n_ops = 1;
    rec.ops = &opp;
    uint8_t wire[256], pw[5] = {0};
    size_t n;

    op.type = (Zkfs__Rec__TxnOpType)42; /* unknown type */
    op.path = "/x";
    n = zkfs__rec__txn__pack(&rec, wire);
    CHECK_EQ(txn_decode(wire, n, &out), ZE_MARSHALLINGERROR);

    op.type = ZKFS__REC__TXN_OP_TYPE__TXN_DELETE;
    n = zkfs__rec__txn__pack(&rec, wire);
    CHECK_EQ(txn_decode(wire, n, &out), 0);
    txn_free_contents(&out);

    op.path = NULL; /* delete without a path */
    n = zkfs__rec__txn__pack(&rec, wire);
    CHECK_EQ(txn_decode(wire, n, &out), ZE_MARSHALLINGERROR);

    op.path = "x/"; /* not a path */
    n = zkfs__rec__txn__pack(&rec, wire);
    CHECK_EQ(txn_decode(wire, n, &out), ZE_MARSHALLINGERROR);

    op.path = "/x";
    op.type = ZKFS__REC__TXN_OP_TYPE__TXN_CREATE; /* without parent_cversion */
    n = zkfs__rec__txn__pack(&rec, wire);
    CHECK_EQ(txn_decode(wire, n, &out), ZE_MARSHALLINGERROR);

    op.type = ZKFS__REC__TXN_OP_TYPE__TXN_CREATE_SESSION;
    op.has_session_id = op.has_timeout_ms = op.has_passwd = 1;
    op.passwd.len = 5; /* short password */
    op.passwd.data = pw;
    n = zkfs__rec__txn__pack(&rec, wire);
    CHECK_EQ(txn_decode(wire, n, &out), ZE_MARSHALLINGERROR);

    op.has_passwd = 0; /* no password */
    n = zkfs__rec__txn__pack(&rec, wire);
    CHECK_EQ(txn_decode(wire, n, &out), ZE_MARSHALLINGERROR);

    /* A decoded txn applies like the original. */
    struct tree t1, t2;
    tree_init(&t1);
    tree_init(&t2);
    struct txn_op mk[] = {create_op("/a", "hello", 0, 1), create_op("/a/b", NULL, 0, 1),
                          session_op(TXN_CREATE_SESSION, 3)};
    struct txn tx = {.zxid = 5, .time_ms = 55, .n_ops = 3, .ops = mk};
    CHECK_EQ(txn_encode(&tx, &buf, &len), 0);
    CHECK_EQ(txn_decode(buf, len, &out), 0);
    CHECK_EQ(tree_apply(&t1, &tx), 0);
    CHECK_EQ(tree_apply(&t2, &out), 0);
    CHECK(tree_digest(&t1) == tree_digest(&t2));
    txn_free_contents(&out);
    free(buf);
    tree_close(&t1);
    tree_close(&t2);

    /* acl_dup / acl_free */
    struct acl *dup = acl_dup(acls, 2);
    CHECK(dup != NULL && dup != acls);
    CHECK(dup && dup[0].scheme != acls[0].scheme && strcmp(dup[0].scheme, "world") == 0);
    acl_free(dup, 2);
    CHECK(acl_dup(acls, 0) == NULL);
    acl_free(NULL, 0);
}

int main(void)
{
    RUN(test_init);
    RUN(test_stat_rules);
    RUN(test_atomicity);
    RUN(test_ephemerals);
    RUN(test_sequential);
    RUN(test_children_sorted);
    RUN(test_set_meta_acl);
    RUN(test_acl_cache);
    RUN(test_round_trip);
    RUN(test_digest_order);
    RUN(test_txn_codec);
    return TEST_EXIT();
}
