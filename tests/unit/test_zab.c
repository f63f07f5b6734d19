/* Unit tests for the replication core: scripted clusters for sync paths and durability orders. */
#include "test.h"
#include "zab.h"

#include <string.h>

#define HN 5
#define HMAX 4096

struct hact {
    enum zab_action_type type;
    uint32_t to;
    uint64_t seq;
    zxid_t zxid, zxid2;
    enum zab_epoch_kind kind;
    uint32_t epoch;
    enum zab_msg_type msg;
};

struct hnode {
    struct zab *z;
    int manual; /* persist only when the test says so */
    uint64_t issued, durable;
    struct hact acts[HMAX];
    size_t nacts;
    zxid_t applied[HMAX];
    size_t napplied;
};

struct hmsg {
    int from, to;
    struct zab_msg m;
    uint8_t payload[8];
};

struct harness {
    int n;
    struct zab_member members[HN];
    struct hnode node[HN];
    struct hmsg q[HMAX];
    size_t qh, qn;
    uint64_t now;
};

static void payload_of(zxid_t z, uint8_t out[8])
{
    memcpy(out, &z, 8);
}

/* A durable log of consecutive zxids given as (epoch, first, last) runs. */
struct hlog {
    struct zab_entry e[64];
    uint8_t bytes[64][8];
    size_t n;
};

static void hlog_add(struct hlog *l, uint32_t epoch, uint32_t first, uint32_t last)
{
    for (uint32_t c = first; c <= last; c++) {
        zxid_t z = ZXID(epoch, c);
        payload_of(z, l->bytes[l->n]);
        l->e[l->n].zxid = z;
        l->e[l->n].payload = l->bytes[l->n];
        l->e[l->n].len = 8;
        l->n++;
    }
}

static struct zab_config base_cfg(struct harness *h, uint32_t id)
{
    struct zab_config c = {
        .my_id = id,
        .members = h->members,
        .n_members = (size_t)h->n,
        .tick_ms = 100,
        .init_limit = 10,
        .sync_limit = 5,
        .seed = id,
    };
    return c;
}

static int idx_of(struct harness *h, uint32_t id)
{
    for (int i = 0; i < h->n; i++)
        if (h->members[i].id == id)
            return i;
    return -1;
}

static void h_start(struct harness *h, int i, const struct zab_config *cfg,
                    const struct zab_durable *d)
{
    struct hnode *nd = &h->node[i];
    CHECK_EQ(zab_new(&nd->z, cfg, d, h->now), 0);
    nd->issued = nd->durable = 0;
    for (int j = 0; j < h->n; j++)
        if (j != i && h->node[j].z) {
            zab_on_connected(nd->z, h->now, h->members[j].id);
            zab_on_connected(h->node[j].z, h->now, h->members[i].id);
        }
}

static void h_init(struct harness *h, int voters, int observers)
{
    memset(h, 0, sizeof(*h));
    h->n = voters + observers;
    for (int i = 0; i < h->n; i++) {
        h->members[i].id = (uint32_t)i + 1;
        h->members[i].observer = i >= voters;
    }
}

static void drain(struct harness *h, int i)
{
    struct hnode *nd = &h->node[i];
    struct zab_action a;
    while (nd->z && zab_pop_action(nd->z, &a)) {
        if (nd->nacts < HMAX) {
            struct hact *r = &nd->acts[nd->nacts++];
            r->type = a.type;
            r->to = a.to;
            r->seq = a.seq;
            r->zxid = a.zxid;
            r->zxid2 = a.zxid2;
            r->kind = a.epoch_kind;
            r->epoch = a.epoch;
            r->msg = a.type == ZAB_ACT_SEND ? a.msg.type : 0;
        }
        if (a.seq > nd->issued)
            nd->issued = a.seq;
        if (a.type == ZAB_ACT_APPLY && nd->napplied < HMAX)
            nd->applied[nd->napplied++] = a.zxid;
        if (a.type == ZAB_ACT_SEND && h->qn < HMAX) {
            struct hmsg *m = &h->q[(h->qh + h->qn++) % HMAX];
            m->from = i;
            m->to = idx_of(h, a.to);
            m->m = a.msg;
            if (a.msg.len == 8)
                memcpy(m->payload, a.msg.payload, 8);
            m->m.payload = m->payload;
        }
        if (a.type == ZAB_ACT_DISCONNECT) {
            /* instant redial: drop what was in flight on that pair, report down then up */
            int j = idx_of(h, a.to);
            size_t k = 0;
            for (size_t q = 0; q < h->qn; q++) {
                struct hmsg *m = &h->q[(h->qh + q) % HMAX];
                if (!((m->from == i && m->to == j) || (m->from == j && m->to == i)))
                    h->q[(h->qh + k++) % HMAX] = *m;
            }
            h->qn = k;
            zab_on_disconnected(nd->z, h->now, a.to);
            if (h->node[j].z) {
                zab_on_disconnected(h->node[j].z, h->now, h->members[i].id);
                zab_on_connected(h->node[j].z, h->now, h->members[i].id);
            }
            zab_on_connected(nd->z, h->now, a.to);
        }
    }
}

/* Runs until nothing moves: actions drained, automatic persists reported, messages delivered. */
static void pump(struct harness *h)
{
    for (int guard = 0; guard < 100000; guard++) {
        for (int i = 0; i < h->n; i++)
            drain(h, i);
        int moved = 0;
        for (int i = 0; i < h->n; i++) {
            struct hnode *nd = &h->node[i];
            if (nd->z && !nd->manual && nd->issued > nd->durable) {
                nd->durable = nd->issued;
                zab_on_persisted(nd->z, h->now, nd->durable);
                moved = 1;
            }
        }
        if (h->qn) {
            struct hmsg m = h->q[h->qh];
            h->qh = (h->qh + 1) % HMAX;
            h->qn--;
            if (m.to >= 0 && h->node[m.to].z)
                zab_on_message(h->node[m.to].z, h->now, h->members[m.from].id, &m.m);
            moved = 1;
        }
        if (!moved)
            return;
    }
}

static void persist(struct harness *h, int i, uint64_t seq)
{
    h->node[i].durable = seq;
    zab_on_persisted(h->node[i].z, h->now, seq);
    pump(h);
}

static void run(struct harness *h, uint64_t ms)
{
    for (uint64_t t = 0; t < ms; t += 5) {
        h->now += 5;
        for (int i = 0; i < h->n; i++)
            if (h->node[i].z)
                zab_on_tick(h->node[i].z, h->now);
        pump(h);
    }
}

static struct zab_status status(struct harness *h, int i)
{
    struct zab_status st;
    zab_get_status(h->node[i].z, &st);
    return st;
}

static int find_act(struct hnode *nd, enum zab_action_type t, zxid_t zxid)
{
    for (size_t k = 0; k < nd->nacts; k++)
        if (nd->acts[k].type == t && (zxid == (zxid_t)-1 || nd->acts[k].zxid == zxid))
            return (int)k;
    return -1;
}

static int find_send(struct hnode *nd, enum zab_msg_type t)
{
    for (size_t k = 0; k < nd->nacts; k++)
        if (nd->acts[k].type == ZAB_ACT_SEND && nd->acts[k].msg == t)
            return (int)k;
    return -1;
}

static void h_free(struct harness *h)
{
    for (int i = 0; i < h->n; i++)
        zab_free(h->node[i].z);
}

static int propose(struct harness *h, int i)
{
    zxid_t z;
    uint8_t p[8];
    if (zab_next_zxid(h->node[i].z, &z) != 0)
        return 0;
    payload_of(z, p);
    CHECK_EQ(zab_propose(h->node[i].z, h->now, z, p, 8), 0);
    pump(h);
    return 1;
}

/* ---- tests ---- */

static void test_elects_most_recent(void)
{
    struct harness h;
    h_init(&h, 3, 1);
    struct hlog l1 = {0}, l2 = {0};
    hlog_add(&l1, 1, 1, 3);
    hlog_add(&l2, 1, 1, 5);
    struct zab_durable d1 = {1, 1, 0, 0, l1.e, l1.n}, d2 = {1, 1, 0, 0, l2.e, l2.n};
    for (int i = 0; i < 4; i++) {
        struct zab_config c = base_cfg(&h, (uint32_t)i + 1);
        h_start(&h, i, &c, i == 0 ? &d2 : &d1); /* server 1 has the longest log */
    }
    pump(&h);
    run(&h, 1000);
    CHECK_EQ(status(&h, 0).role, ZAB_LEADING);
    CHECK_EQ(status(&h, 0).serving, 1);
    CHECK_EQ(status(&h, 0).epoch, 2);
    CHECK_EQ(status(&h, 1).role, ZAB_FOLLOWING);
    CHECK_EQ(status(&h, 3).role, ZAB_OBSERVING); /* observers learn the leader */
    CHECK_EQ(status(&h, 3).serving, 1);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(status(&h, i).applied, ZXID(1, 5)); /* history committed on establishment */
    CHECK(propose(&h, 0));
    for (int i = 0; i < 4; i++)
        CHECK_EQ(status(&h, i).applied, ZXID(2, 1));
    h_free(&h);
}

/* ZOOKEEPER-1732: a restarted follower joins the established leader; no new epoch. */
static void test_rejoin_without_new_epoch(void)
{
    struct harness h;
    h_init(&h, 3, 0);
    struct zab_durable d = {0};
    for (int i = 0; i < 3; i++) {
        struct zab_config c = base_cfg(&h, (uint32_t)i + 1);
        h_start(&h, i, &c, &d);
    }
    pump(&h);
    run(&h, 1000);
    CHECK_EQ(status(&h, 2).role, ZAB_LEADING);
    uint32_t epoch = status(&h, 2).epoch;
    uint64_t round = status(&h, 2).election_round;
    CHECK(propose(&h, 2));
    /* restart server 1 from its disk: epochs as persisted, log as written */
    struct zab_status st = status(&h, 0);
    struct hlog l = {0};
    hlog_add(&l, epoch, 1, 1);
    struct zab_durable d0 = {st.accepted_epoch, st.current_epoch, ZXID(epoch, 1), 0, l.e, l.n};
    zab_free(h.node[0].z);
    h.node[0].z = NULL;
    struct zab_config c = base_cfg(&h, 1);
    h_start(&h, 0, &c, &d0);
    pump(&h);
    run(&h, 1000);
    CHECK_EQ(status(&h, 0).role, ZAB_FOLLOWING);
    CHECK_EQ(status(&h, 0).serving, 1);
    CHECK_EQ(status(&h, 2).epoch, epoch);
    CHECK_EQ(status(&h, 2).election_round, round);
    h_free(&h);
}

static size_t count_sends(struct hnode *nd, enum zab_msg_type t, uint32_t to)
{
    size_t n = 0;
    for (size_t k = 0; k < nd->nacts; k++)
        n += nd->acts[k].type == ZAB_ACT_SEND && nd->acts[k].msg == t && nd->acts[k].to == to;
    return n;
}

/* A vote sent before the link was up is lost: the link coming up sends it again at once. Here
 * the best candidate starts first; nothing it sent reached anyone, and without this the others
 * would elect among themselves before its resend timer fired. */
static void test_vote_on_connect(void)
{
    struct harness h;
    struct zab_durable d = {0};
    h_init(&h, 3, 0);
    struct zab_config c3 = base_cfg(&h, 3);
    h_start(&h, 2, &c3, &d);
    pump(&h); /* its first votes go nowhere: nobody else is up */
    size_t before = count_sends(&h.node[2], ZAB_MSG_VOTE, 1);
    for (int i = 0; i < 2; i++) {
        struct zab_config c = base_cfg(&h, (uint32_t)i + 1);
        h_start(&h, i, &c, &d);
    }
    pump(&h); /* no time passes: no timer fires */
    CHECK(count_sends(&h.node[2], ZAB_MSG_VOTE, 1) > before);
    run(&h, 1000);
    CHECK_EQ(status(&h, 2).role, ZAB_LEADING);
    CHECK_EQ(status(&h, 0).election_round, 1);
    CHECK_EQ(status(&h, 2).election_round, 1);
    h_free(&h);
}

/* Learners that decide before their leader (each decision ends its own finalize wait) say
 * FOLLOWERINFO once; the leader keeps it and answers when it decides. */
static void test_followerinfo_before_leader_decides(void)
{
    struct harness h;
    struct zab_durable d = {0};
    h_init(&h, 3, 0);
    for (int i = 0; i < 3; i++) {
        struct zab_config c = base_cfg(&h, (uint32_t)i + 1);
        h_start(&h, i, &c, &d);
    }
    pump(&h);
    /* only the future learners' timers run: they decide, the leader is still looking */
    for (int guard = 0;
         guard < 100 && (status(&h, 0).role == ZAB_LOOKING || status(&h, 1).role == ZAB_LOOKING);
         guard++) {
        uint64_t t = zab_deadline(h.node[0].z);
        if (zab_deadline(h.node[1].z) < t)
            t = zab_deadline(h.node[1].z);
        h.now = t;
        zab_on_tick(h.node[0].z, h.now);
        zab_on_tick(h.node[1].z, h.now);
        pump(&h);
    }
    CHECK_EQ(status(&h, 0).role, ZAB_FOLLOWING);
    CHECK_EQ(status(&h, 1).role, ZAB_FOLLOWING);
    CHECK_EQ(status(&h, 2).role, ZAB_LOOKING);
    CHECK_EQ(count_sends(&h.node[0], ZAB_MSG_FOLLOWERINFO, 3), 1);
    h.now = zab_deadline(h.node[2].z);
    zab_on_tick(h.node[2].z, h.now);
    pump(&h); /* no more time passes: everything after the decision is event-driven */
    CHECK_EQ(status(&h, 2).role, ZAB_LEADING);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(status(&h, i).serving, 1);
    CHECK_EQ(count_sends(&h.node[0], ZAB_MSG_FOLLOWERINFO, 3), 1);
    CHECK_EQ(count_sends(&h.node[1], ZAB_MSG_FOLLOWERINFO, 3), 1);
    h_free(&h);
}

/* Three voters where server 3 leads with `lead` and server 1 is the learner under test. */
static void start_sync_case(struct harness *h, const struct zab_durable *lead,
                            const struct zab_durable *learner, uint32_t retain)
{
    h_init(h, 3, 0);
    for (int i = 0; i < 3; i++) {
        struct zab_config c = base_cfg(h, (uint32_t)i + 1);
        c.retain_log = retain;
        h_start(h, i, &c, i == 0 ? learner : lead);
    }
    pump(h);
    run(h, 1000);
    CHECK_EQ(status(h, 2).role, ZAB_LEADING);
    CHECK_EQ(status(h, 0).serving, 1);
}

/* The learner diverged in an epoch the leader never saw: DIFF from its committed point, and it
 * keeps (never even briefly drops) the entries the stream repeats. */
static void test_diff_keeps_matching_entries(void)
{
    struct hlog ll = {0}, bl = {0};
    hlog_add(&ll, 1, 1, 2);
    hlog_add(&ll, 3, 1, 1);
    hlog_add(&bl, 1, 1, 2);
    hlog_add(&bl, 2, 1, 1);
    struct zab_durable lead = {3, 3, ZXID(1, 1), 0, ll.e, ll.n};
    struct zab_durable learner = {2, 1, ZXID(1, 1), 0, bl.e, bl.n};
    struct harness h;
    start_sync_case(&h, &lead, &learner, 500);
    struct hnode *b = &h.node[0];
    int t = find_act(b, ZAB_ACT_TRUNCATE, (zxid_t)-1);
    CHECK(t >= 0);
    CHECK_EQ(b->acts[t].zxid, ZXID(1, 2)); /* not (1,1): (1,2) matched the stream */
    CHECK_EQ(find_act(b, ZAB_ACT_PERSIST_TXN, ZXID(1, 2)), -1);
    CHECK(find_act(b, ZAB_ACT_PERSIST_TXN, ZXID(3, 1)) > t);
    CHECK_EQ(status(&h, 0).applied, ZXID(3, 1));
    h_free(&h);
}

/* ZOOKEEPER-1154: txns past the leader's history in the same epoch are truncated. */
static void test_trunc_same_epoch(void)
{
    struct hlog ll = {0}, bl = {0};
    hlog_add(&ll, 1, 1, 2);
    hlog_add(&bl, 1, 1, 3);
    struct zab_durable lead = {3, 3, ZXID(1, 2), 0, ll.e, ll.n};
    struct zab_durable learner = {1, 1, ZXID(1, 1), 0, bl.e, bl.n};
    struct harness h;
    start_sync_case(&h, &lead, &learner, 500);
    struct hnode *b = &h.node[0];
    CHECK(find_act(b, ZAB_ACT_TRUNCATE, ZXID(1, 2)) >= 0);
    CHECK_EQ(status(&h, 0).last_zxid, ZXID(1, 2));
    for (size_t k = 0; k < b->napplied; k++)
        CHECK(b->applied[k] != ZXID(1, 3));
    h_free(&h);
}

/* SNAP when the learner is older than the retained window; its own entries that the stream
 * repeats stay on disk across the install (keep), the rest go. */
static void test_snap_keeps_matching_entries(void)
{
    struct hlog ll = {0}, bl = {0};
    hlog_add(&ll, 1, 5, 7);
    hlog_add(&bl, 1, 1, 6);
    hlog_add(&bl, 2, 1, 1);
    struct zab_durable lead = {3, 3, ZXID(1, 5), ZXID(1, 4), ll.e, ll.n};
    struct zab_durable learner = {2, 1, ZXID(1, 1), 0, bl.e, bl.n};
    struct harness h;
    start_sync_case(&h, &lead, &learner, 1);
    struct hnode *b = &h.node[0];
    int k = find_act(b, ZAB_ACT_INSTALL_SNAPSHOT, ZXID(1, 5));
    CHECK(k >= 0);
    if (k >= 0)
        CHECK_EQ(b->acts[k].zxid2, ZXID(1, 6));
    CHECK_EQ(find_act(b, ZAB_ACT_PERSIST_TXN, ZXID(1, 6)), -1);
    CHECK(find_act(b, ZAB_ACT_PERSIST_TXN, ZXID(1, 7)) > k);
    CHECK_EQ(status(&h, 0).applied, ZXID(1, 7));
    h_free(&h);
}

/* ZOOKEEPER-3911/4643: synced txns durable, then currentEpoch, then ACKNEWLEADER. */
static void test_newleader_ack_order(void)
{
    struct hlog ll = {0};
    hlog_add(&ll, 1, 1, 4);
    struct zab_durable lead = {1, 1, ZXID(1, 2), 0, ll.e, ll.n};
    struct zab_durable empty = {0};
    struct harness h;
    h_init(&h, 3, 0);
    h.node[0].manual = 1;
    for (int i = 0; i < 3; i++) {
        struct zab_config c = base_cfg(&h, (uint32_t)i + 1);
        h_start(&h, i, &c, i == 0 ? &empty : &lead);
    }
    pump(&h);
    run(&h, 300); /* election over; learner 1 waits on its acceptedEpoch write */
    struct hnode *b = &h.node[0];
    for (int step = 0; step < 20 && find_send(b, ZAB_MSG_ACKEPOCH) < 0; step++)
        persist(&h, 0, b->issued);
    int last_txn = find_act(b, ZAB_ACT_PERSIST_TXN, ZXID(1, 4));
    CHECK(last_txn >= 0);
    CHECK_EQ(find_send(b, ZAB_MSG_ACKNEWLEADER), -1);
    for (size_t k = 0; k < b->nacts; k++)
        CHECK(!(b->acts[k].type == ZAB_ACT_PERSIST_EPOCH && b->acts[k].kind == ZAB_CURRENT_EPOCH));
    if (last_txn < 0)
        goto out;
    persist(&h, 0, b->acts[last_txn].seq - 1); /* not all of them yet */
    CHECK_EQ(find_send(b, ZAB_MSG_ACKNEWLEADER), -1);
    persist(&h, 0, b->acts[last_txn].seq);
    int ep = -1;
    for (size_t k = 0; k < b->nacts; k++)
        if (b->acts[k].type == ZAB_ACT_PERSIST_EPOCH && b->acts[k].kind == ZAB_CURRENT_EPOCH)
            ep = (int)k;
    CHECK(ep > last_txn);
    CHECK_EQ(find_send(b, ZAB_MSG_ACKNEWLEADER), -1);
    if (ep >= 0)
        persist(&h, 0, b->acts[ep].seq);
    CHECK(find_send(b, ZAB_MSG_ACKNEWLEADER) > ep);
out:
    h_free(&h);
}

/* A follower ACKs only what its disk confirmed; the leader commits only once its own write is
 * durable too. */
static void test_ack_and_commit_after_durable(void)
{
    struct harness h;
    struct zab_durable d = {0};
    h_init(&h, 3, 0);
    for (int i = 0; i < 3; i++) {
        struct zab_config c = base_cfg(&h, (uint32_t)i + 1);
        h_start(&h, i, &c, &d);
    }
    pump(&h);
    run(&h, 1000);
    CHECK_EQ(status(&h, 2).serving, 1);
    h.node[0].manual = h.node[1].manual = h.node[2].manual = 1;
    CHECK(propose(&h, 2));
    CHECK_EQ(find_send(&h.node[0], ZAB_MSG_ACK), -1);
    persist(&h, 0, h.node[0].issued); /* follower 1 durable: ACKs */
    CHECK(find_send(&h.node[0], ZAB_MSG_ACK) >= 0);
    CHECK_EQ(status(&h, 2).applied, 0); /* a quorum acked, but not my own disk */
    CHECK_EQ(status(&h, 0).applied, 0); /* so no COMMIT went out either */
    persist(&h, 2, h.node[2].issued);
    CHECK_EQ(status(&h, 2).applied, ZXID(1, 1));
    CHECK_EQ(status(&h, 0).applied, ZXID(1, 1));
    CHECK_EQ(status(&h, 1).applied, 0); /* follower 2 never wrote it: not applied there yet */
    persist(&h, 1, h.node[1].issued);
    CHECK_EQ(status(&h, 1).applied, ZXID(1, 1));
    h_free(&h);
}

/* Counter exhaustion forces a new epoch once the old one is drained; writes elsewhere fail. */
static void test_rollover_and_write_errors(void)
{
    struct harness h;
    struct zab_durable d = {0};
    h_init(&h, 3, 0);
    for (int i = 0; i < 3; i++) {
        struct zab_config c = base_cfg(&h, (uint32_t)i + 1);
        c.max_counter = 2;
        h_start(&h, i, &c, &d);
    }
    pump(&h);
    zxid_t z;
    CHECK_EQ(zab_next_zxid(h.node[2].z, &z), ZAB_ENOTLEADER); /* not elected yet */
    run(&h, 1000);
    CHECK_EQ(zab_next_zxid(h.node[0].z, &z), ZAB_ENOTLEADER);
    CHECK_EQ(zab_propose(h.node[0].z, h.now, ZXID(1, 1), (const uint8_t *)"x", 1), ZAB_ENOTLEADER);
    CHECK_EQ(zab_propose(h.node[2].z, h.now, ZXID(1, 7), (const uint8_t *)"x", 1), -EINVAL);
    CHECK(propose(&h, 2));
    CHECK(propose(&h, 2));
    CHECK_EQ(zab_next_zxid(h.node[2].z, &z), ZAB_EROLLOVER);
    run(&h, 1500);
    struct zab_status st = status(&h, 2);
    CHECK_EQ(st.serving, 1);
    CHECK_EQ(st.epoch, 2);
    CHECK_EQ(zab_next_zxid(h.node[2].z, &z), 0);
    CHECK_EQ(z, ZXID(2, 1));
    h_free(&h);
}

static void test_rejects_bad_durable_state(void)
{
    struct zab_member m[3] = {{1, 0}, {2, 0}, {3, 1}};
    struct zab_config c = {.my_id = 1, .members = m, .n_members = 3};
    struct hlog l = {0};
    hlog_add(&l, 1, 1, 2);
    hlog_add(&l, 1, 4, 4); /* a hole (ZOOKEEPER-4925) */
    struct zab_durable d = {1, 1, 0, 0, l.e, l.n};
    struct zab *z = NULL;
    CHECK_EQ(zab_new(&z, &c, &d, 0), -EINVAL);
    struct zab_durable d2 = {1, 1, ZXID(1, 9), 0, l.e, 2}; /* applied beyond the log */
    CHECK_EQ(zab_new(&z, &c, &d2, 0), -EINVAL);
    c.my_id = 9;
    struct zab_durable d3 = {0};
    CHECK_EQ(zab_new(&z, &c, &d3, 0), -EINVAL);
    CHECK(z == NULL);
}

int main(void)
{
    RUN(test_elects_most_recent);
    RUN(test_vote_on_connect);
    RUN(test_followerinfo_before_leader_decides);
    RUN(test_rejoin_without_new_epoch);
    RUN(test_diff_keeps_matching_entries);
    RUN(test_trunc_same_epoch);
    RUN(test_snap_keeps_matching_entries);
    RUN(test_newleader_ack_order);
    RUN(test_ack_and_commit_after_durable);
    RUN(test_rollover_and_write_errors);
    RUN(test_rejects_bad_durable_state);
    return TEST_EXIT();
}
