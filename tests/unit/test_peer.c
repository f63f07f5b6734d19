/* Unit test for the peer mesh: three meshes on loopback in one loop exchange frames, lose a
 * member, and reconnect when it comes back. */
#include "peer.h"
#include "test.h"

#include <string.h>
#include <unistd.h>

struct node {
    struct peer_net *net;
    struct config cfg;
    int up[4];
    int downs[4];
    int got[4];
    int bad;
};

static struct node nodes[4];
static uv_loop_t loop;

static int on_recv(void *arg, uint32_t from, const uint8_t *f, size_t len)
{
    struct node *n = arg;
    if (len >= 6 && !memcmp(f, "hello", 5) && f[5] == (uint8_t)from)
        n->got[from]++;
    else if (len == 3 && !memcmp(f, "bad", 3))
        return 1; /* the upper layer rejects it: the link must drop */
    else
        n->bad++;
    return 0;
}

static void on_link(void *arg, uint32_t id, int up)
{
    struct node *n = arg;
    n->up[id] += up ? 1 : -1;
    if (!up)
        n->downs[id]++;
}

static void make_cfg(struct config *c, uint32_t myid, int base)
{
    memset(c, 0, sizeof(*c));
    c->myid = myid;
    c->n_servers = 3;
    for (int i = 0; i < 3; i++) {
        c->servers[i].id = (uint32_t)i + 1;
        snprintf(c->servers[i].host, sizeof(c->servers[i].host), "127.0.0.1");
        c->servers[i].quorum_port = base + i;
        c->servers[i].election_port = base + 10 + i;
    }
}

static int run_until(int (*cond)(void), int ms)
{
    for (int i = 0; i < ms / 5 && !cond(); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
    return cond();
}

static int all_up(void)
{
    for (int a = 1; a <= 3; a++)
        for (int b = 1; b <= 3; b++)
            if (a != b && (!nodes[a].net || nodes[a].up[b] != 1))
                return 0;
    return 1;
}

static int all_got(void)
{
    for (int a = 1; a <= 3; a++)
        for (int b = 1; b <= 3; b++)
            if (a != b && nodes[a].got[b] < 100)
                return 0;
    return 1;
}

static int three_down(void)
{
    return nodes[1].up[3] == 0 && nodes[2].up[3] == 0;
}

static int one_down(void)
{
    return nodes[2].up[1] == 0 && nodes[3].up[1] == 0;
}

static int one_two_dropped_and_back(void)
{
    return nodes[2].downs[1] > 0 && nodes[1].downs[2] > 0 && nodes[1].up[2] == 1 &&
           nodes[2].up[1] == 1 && peer_up(nodes[1].net, 2);
}

static void start(uint32_t id, int base)
{
    make_cfg(&nodes[id].cfg, id, base);
    char *err = NULL;
    CHECK_EQ(
        peer_net_start(&nodes[id].net, &loop, &nodes[id].cfg, on_recv, on_link, &nodes[id], &err),
        0);
    free(err);
}

static void test_mesh(void)
{
    int base = 20000 + (int)(getpid() % 20000) * 2 % 40000;
    uv_loop_init(&loop);
    for (uint32_t id = 1; id <= 3; id++)
        start(id, base);
    CHECK(run_until(all_up, 5000));
    /* Frames arrive whole and in order, each way. */
    uint8_t msg[6] = {'h', 'e', 'l', 'l', 'o', 0};
    for (int k = 0; k < 100; k++)
        for (uint32_t a = 1; a <= 3; a++)
            for (uint32_t b = 1; b <= 3; b++)
                if (a != b) {
                    msg[5] = (uint8_t)a;
                    CHECK_EQ(peer_send(nodes[a].net, b, msg, sizeof(msg)), 0);
                }
    CHECK(run_until(all_got, 5000));
    CHECK_EQ(nodes[1].bad + nodes[2].bad + nodes[3].bad, 0);

    /* A member goes away: the others see its link drop and cannot send to it. */
    peer_net_stop(nodes[3].net);
    nodes[3].net = NULL;
    memset(nodes[3].up, 0, sizeof(nodes[3].up));
    CHECK(run_until(three_down, 5000));
    CHECK_EQ(peer_send(nodes[1].net, 3, msg, sizeof(msg)), -ENOTCONN);
    /* ... and when it comes back, the mesh heals by itself. */
    start(3, base);
    CHECK(run_until(all_up, 5000));

    /* A member with the smallest id comes back: it is dialled, and its startup hello to the
     * larger ids (a poke, answered by dialling it) adds no connection of its own. */
    for (int id = 1; id <= 3; id++)
        memset(nodes[id].downs, 0, sizeof(nodes[id].downs));
    peer_net_stop(nodes[1].net);
    nodes[1].net = NULL;
    memset(nodes[1].up, 0, sizeof(nodes[1].up));
    CHECK(run_until(one_down, 5000));
    start(1, base);
    CHECK(run_until(all_up, 5000));
    CHECK_EQ(nodes[2].downs[1], 1);
    CHECK_EQ(nodes[3].downs[1], 1);
    CHECK_EQ(nodes[1].downs[2] + nodes[1].downs[3] + nodes[2].downs[3] + nodes[3].downs[2], 0);
    for (int id = 1; id <= 3; id++)
        memset(nodes[id].downs, 0, sizeof(nodes[id].downs));

    /* A frame the upper layer rejects drops that link only; it comes back. */
    CHECK_EQ(peer_send(nodes[1].net, 2, (const uint8_t *)"bad", 3), 0);
    CHECK(run_until(one_two_dropped_and_back, 5000));
    CHECK(peer_up(nodes[1].net, 3) && peer_up(nodes[2].net, 3));

    for (uint32_t id = 1; id <= 3; id++)
        peer_net_stop(nodes[id].net);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

int main(void)
{
    RUN(test_mesh);
    return TEST_EXIT();
}
