/* zkfs-sim: clusters of the replication core under random faults; a seed is a replayable run. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEAL_LIMIT_MS 120000 /* after healing, convergence must come within this */

static void setup(struct sim *sim, uint64_t seed, int trace)
{
    memset(sim, 0, sizeof(*sim));
    sim->seed = seed;
    sim->rng.s = seed * 0x2545f4914f6cdd1dULL + 1;
    sim->trace = trace;
    sim->next_wid = 1;
    int r = (int)rng_range(&sim->rng, 0, 99);
    sim->n_voters = r < 50 ? 3 : r < 85 ? 5 : 7;
    int observers = rng_pct(&sim->rng, 30) ? (int)rng_range(&sim->rng, 1, 2) : 0;
    sim->n = sim->n_voters + observers;
    sim->quorum = sim->n_voters / 2 + 1;
    for (int i = 0; i < sim->n; i++) {
        struct server *s = &sim->s[i];
        s->idx = i;
        s->id = (uint32_t)i + 1;
        s->observer = i >= sim->n_voters;
        sim->members[i].id = s->id;
        sim->members[i].observer = s->observer;
    }
    /* short timers on a virtual clock; small windows and counters force SNAP and rollover */
    sim->cfg = (struct zab_config){
        .members = sim->members,
        .n_members = (size_t)sim->n,
        .tick_ms = 100,
        .init_limit = 10,
        .sync_limit = 5,
        .finalize_wait_ms = 100,
        .min_notify_ms = 100,
        .max_notify_ms = 800,
        .retain_log = rng_pct(&sim->rng, 50) ? (uint32_t)rng_range(&sim->rng, 1, 8)
                                             : (uint32_t)rng_range(&sim->rng, 20, 200),
        .max_outstanding = (uint32_t)rng_range(&sim->rng, 2, 64),
        .max_counter = rng_pct(&sim->rng, 25) ? (uint32_t)rng_range(&sim->rng, 20, 200) : 0,
    };
}

static void crash(struct sim *sim, struct server *s, uint64_t down_min, uint64_t down_max)
{
    server_crash(sim, s);
    heap_push(sim, sim->now + rng_range(&sim->rng, down_min, down_max), EV_RESTART, s->idx, 0, 0,
              NULL);
}

void chaos_crash_point(struct sim *sim, struct server *s)
{
    if (sim->phase == PH_CHAOS && s->alive && !sim->failed && rng_next(&sim->rng) % 1000 < 3)
        crash(sim, s, 20, 1500);
}

static void pause_server(struct sim *sim, struct server *s, uint64_t ms)
{
    uint64_t until = sim->now + ms;
    if (until > s->paused_until) /* only ever extended: held events keep their order */
        s->paused_until = until;
    sim_trace(sim, "server %u paused until %llu", s->id, (unsigned long long)s->paused_until);
}

static void burst(struct sim *sim, int lo, int hi)
{
    int n = (int)rng_range(&sim->rng, (uint64_t)lo, (uint64_t)hi);
    for (int w = 0; w < n && !sim->failed; w++)
        client_write(sim, NULL);
}

/* The classic way to make divergent logs: the leader takes writes nobody else can ack. */
static void leader_fault(struct sim *sim)
{
    struct server *l = NULL;
    for (int i = 0; i < sim->n; i++)
        if (sim->s[i].alive && sim->s[i].role == ZAB_LEADING && sim->s[i].serving)
            l = &sim->s[i];
    if (!l)
        return;
    int k = (int)rng_range(&sim->rng, 0, 2);
    if (k == 0) {
        sim_trace(sim, "leader %u: burst, then kill -9", l->id);
        burst(sim, 1, 20);
        crash(sim, l, 50, 2500);
    } else if (k == 1) {
        sim_trace(sim, "leader %u: burst, then cut off", l->id);
        burst(sim, 1, 20);
        net_isolate(sim, l->idx);
    } else {
        /* ZOOKEEPER-1154's shape: followers frozen, the leader logs alone, everything dies */
        sim_trace(sim, "followers of %u frozen; leader logs alone; everyone dies", l->id);
        for (int i = 0; i < sim->n; i++)
            if (&sim->s[i] != l)
                pause_server(sim, &sim->s[i], 300);
        burst(sim, 1, 10);
        for (int i = 0; i < sim->n && !sim->failed; i++)
            if (sim->s[i].alive)
                crash(sim, &sim->s[i], 20, 1500);
    }
}

static void fault(struct sim *sim)
{
    int k = (int)rng_range(&sim->rng, 0, 99);
    int i = (int)rng_range(&sim->rng, 0, (uint64_t)sim->n - 1);
    struct server *s = &sim->s[i];
    if (k < 14) {
        if (s->alive)
            crash(sim, s, 50, 2500);
    } else if (k < 17) {
        /* kill -9 of every server at once: only what is on disk survives anywhere */
        for (int j = 0; j < sim->n && !sim->failed; j++)
            if (sim->s[j].alive)
                crash(sim, &sim->s[j], 20, 1500);
    } else if (k < 22) {
        /* SIGSTOP, later SIGCONT: timers and messages wait; peers may give up on it */
        pause_server(sim, s, rng_range(&sim->rng, 50, 2500));
    } else if (k < 32) {
        net_partition(sim);
    } else if (k < 40) {
        leader_fault(sim);
    } else if (k < 54) {
        net_heal(sim);
    } else if (k < 64) {
        int j = (int)rng_range(&sim->rng, 0, (uint64_t)sim->n - 1);
        if (j != i) {
            struct link *l = link_of(sim, i, j);
            sim_trace(sim, "connection %u-%u reset", s->id, sim->s[j].id);
            net_break(sim, i, j, l->gen);
        }
    } else if (k < 79) {
        s->disk_slow = !s->disk_slow;
        sim_trace(sim, "server %u disk %s", s->id, s->disk_slow ? "slow" : "fast");
    } else {
        burst(sim, 2, 20); /* pipelining */
    }
}

static void heal_all(struct sim *sim)
{
    sim->phase = PH_HEAL_LOAD;
    sim->heal_deadline = sim->now + HEAL_LIMIT_MS;
    sim_trace(sim, "=== heal everything");
    for (int i = 0; i < sim->n; i++) {
        sim->s[i].disk_slow = 0; /* pauses just run out: events they hold keep their order */
        if (!sim->s[i].alive)
            heap_push(sim, sim->now + rng_range(&sim->rng, 1, 50), EV_RESTART, i, 0, 0, NULL);
    }
    net_heal(sim);
    heap_push(sim, sim->now + 100, EV_PHASE, 0, 0, 0, NULL);
}

/* Liveness: after healing, a leader exists, everyone converges, a new write commits everywhere. */
static void phase_check(struct sim *sim)
{
    if (sim->phase == PH_CHAOS) {
        heal_all(sim);
        return;
    }
    int l;
    if (sim->phase == PH_HEAL_LOAD) {
        /* under a steady write load, every server must join the leader and serve: a sync
         * that cannot finish while txns keep coming (ZOOKEEPER-4394's trap) fails here */
        int all = 1;
        l = -1;
        for (int i = 0; i < sim->n; i++)
            if (sim->s[i].alive && sim->s[i].role == ZAB_LEADING && sim->s[i].serving)
                l = i;
        for (int i = 0; i < sim->n && all; i++)
            all = l >= 0 && sim->s[i].alive &&
                  (i == l || (sim->s[i].serving && sim->s[i].leader == sim->s[l].id));
        if (all) {
            sim_trace(sim, "=== everyone serves under load; writes stop");
            sim->phase = PH_HEAL;
        }
    } else if (check_converged(sim, &l)) {
        if (!sim->final_sent || sim->now - sim->final_at > 10000) {
            /* (again, if leadership changed under the last one and it was abandoned) */
            sim->final_wid = (uint32_t)client_write(sim, &sim->s[l]);
            sim->final_sent = sim->final_wid != 0;
            sim->final_at = sim->now;
        } else if (sim->G.n && sim->G.v[sim->G.n - 1].wid == sim->final_wid) {
            check_final(sim);
            sim->phase = PH_DONE;
            return;
        }
    }
    if (sim->now > sim->heal_deadline) {
        char roles[256];
        size_t off = 0;
        for (int i = 0; i < sim->n && off < sizeof(roles) - 40; i++)
            off += (size_t)snprintf(roles + off, sizeof(roles) - off, " %u:%s%s/%zu", sim->s[i].id,
                                    zab_role_name(sim->s[i].role), sim->s[i].serving ? "+" : "",
                                    sim->s[i].applied.n);
        sim_fail(sim, "liveness: no convergence %d ms after healing:%s", HEAL_LIMIT_MS, roles);
        return;
    }
    heap_push(sim, sim->now + 100, EV_PHASE, 0, 0, 0, NULL);
}

/* The server an event runs on, or -1. */
static int target(const struct event *e)
{
    switch (e->type) {
    case EV_DELIVER:
        return ((struct msg *)e->p)->to;
    case EV_DISK:
    case EV_TICK:
        return e->a;
    default:
        return -1;
    }
}

static void run_event(struct sim *sim, const struct event *e)
{
    int t = target(e);
    if (t >= 0 && sim->s[t].paused_until > sim->now) {
        /* A stopped process: the event waits until it runs again, keeping its original order.
         * A fresh sequence number would not: after a pause is extended, events held since
         * before the extension come back at the old end and would queue behind events that
         * arrived later (a FIFO stream reordered). */
        heap_repush(sim, sim->s[t].paused_until, e);
        return;
    }
    switch (e->type) {
    case EV_DELIVER:
        net_deliver(sim, e->p);
        break;
    case EV_DISK:
        if (sim->s[e->a].alive)
            server_disk_done(sim, &sim->s[e->a], e->gen);
        break;
    case EV_TICK:
        server_tick(sim, &sim->s[e->a], e->gen);
        break;
    case EV_CLIENT:
        if (sim->phase <= PH_HEAL_LOAD) {
            client_write(sim, NULL);
            /* bursts pipeline many proposals; after healing the load is heavy and steady */
            uint64_t gap = sim->phase == PH_HEAL_LOAD
                               ? (sim->cfg.max_counter ? rng_range(&sim->rng, 30, 80)
                                                       : rng_range(&sim->rng, 1, 3))
                           : rng_pct(&sim->rng, 20) ? rng_range(&sim->rng, 0, 2)
                                                    : rng_range(&sim->rng, 5, 60);
            heap_push(sim, sim->now + gap, EV_CLIENT, 0, 0, 0, NULL);
        }
        break;
    case EV_FAULT:
        if (sim->phase == PH_CHAOS) {
            fault(sim);
            heap_push(sim, sim->now + rng_range(&sim->rng, 30, 400), EV_FAULT, 0, 0, 0, NULL);
        }
        break;
    case EV_BREAK:
        net_break(sim, e->a, e->b, e->gen);
        break;
    case EV_RECONNECT:
        net_reconnect(sim, e->a, e->b);
        break;
    case EV_RESTART:
        if (!sim->s[e->a].alive && (sim->phase != PH_CHAOS || rng_pct(&sim->rng, 90))) {
            server_boot(sim, &sim->s[e->a]);
            for (int j = 0; j < sim->n; j++)
                if (j != e->a)
                    net_schedule_reconnect(sim, e->a, j);
        }
        break;
    case EV_PHASE:
        phase_check(sim);
        break;
    }
}

/* One seed: 0 on success, 1 on an invariant or liveness failure (reported on stderr). */
static int run_seed(uint64_t seed, int trace, struct sim_stats *total)
{
    struct sim *sim = malloc(sizeof(*sim));
    if (!sim)
        abort();
    setup(sim, seed, trace);
    sim_trace(sim, "seed %llu: %d voters, %d observers, retain=%u outstanding=%u maxcounter=%u",
              (unsigned long long)seed, sim->n_voters, sim->n - sim->n_voters, sim->cfg.retain_log,
              sim->cfg.max_outstanding, sim->cfg.max_counter);
    for (int i = 0; i < sim->n && !sim->failed; i++)
        server_boot(sim, &sim->s[i]);
    for (int i = 0; i < sim->n; i++)
        for (int j = i + 1; j < sim->n; j++)
            net_schedule_reconnect(sim, i, j);
    uint64_t chaos = rng_range(&sim->rng, 1500, 4000);
    heap_push(sim, rng_range(&sim->rng, 100, 600), EV_FAULT, 0, 0, 0, NULL);
    heap_push(sim, rng_range(&sim->rng, 50, 300), EV_CLIENT, 0, 0, 0, NULL);
    heap_push(sim, chaos, EV_PHASE, 0, 0, 0, NULL);

    struct event e;
    while (!sim->failed && sim->phase != PH_DONE && heap_pop(sim, &e)) {
        sim->now = e.t;
        sim->step++;
        run_event(sim, &e);
    }
    if (!sim->failed && sim->phase != PH_DONE)
        sim_fail(sim, "event queue ran dry");
    int rc = sim->failed;
    if (rc) {
        fprintf(stderr, "FAIL seed=%llu step=%llu t=%llums: %s\n", (unsigned long long)seed,
                (unsigned long long)sim->step, (unsigned long long)sim->now, sim->why);
        fprintf(stderr, "  replay: zkfs-sim --seed %llu --trace\n", (unsigned long long)seed);
    }
    sim->st.runs = 1;
    sim->st.steps = sim->step;
    sim->st.virtual_ms = sim->now;
    total->runs += sim->st.runs;
    total->steps += sim->st.steps;
    total->acked += sim->st.acked;
    total->leaders += sim->st.leaders;
    total->snaps += sim->st.snaps;
    total->truncs += sim->st.truncs;
    total->crashes += sim->st.crashes;
    total->rollovers += sim->st.rollovers;
    total->virtual_ms += sim->st.virtual_ms;
    total->diffs += sim->st.diffs;
    total->truncs_sent += sim->st.truncs_sent;
    total->snaps_sent += sim->st.snaps_sent;
    total->snap_keeps += sim->st.snap_keeps;
    total->observers_runs += sim->n > sim->n_voters;

    for (int i = 0; i < sim->n; i++)
        server_free(&sim->s[i]);
    heap_free(sim);
    oracle_free(sim);
    free(sim);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: zkfs-sim [--seed S | --seeds N [--base B]] [--trace] [--keep-going]\n"
                    "  --seed S      replay one seed (add --trace for every event)\n"
                    "  --seeds N     run seeds B..B+N-1 (default B=1); stops at the first failure\n"
                    "  --keep-going  run all seeds, report every failing one\n");
}

int main(int argc, char **argv)
{
    uint64_t seed = 0, base = 1, count = 0;
    int trace = 0, one = 0, keep_going = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
            one = 1;
        } else if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
            count = strtoull(argv[++i], NULL, 0);
        } else if (!strcmp(argv[i], "--base") && i + 1 < argc) {
            base = strtoull(argv[++i], NULL, 0);
        } else if (!strcmp(argv[i], "--trace")) {
            trace = 1;
        } else if (!strcmp(argv[i], "--keep-going")) {
            keep_going = 1;
        } else {
            usage();
            return 2;
        }
    }
    if (!one && !count) {
        usage();
        return 2;
    }
    struct sim_stats total = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int failures = 0;
    if (one) {
        failures = run_seed(seed, trace, &total);
    } else {
        for (uint64_t k = 0; k < count; k++) {
            failures += run_seed(base + k, trace, &total);
            if (failures && !keep_going)
                break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr,
            "%llu runs, %d failed, %.1f s (%.0f seeds/s); %llu steps, %llu virtual s; "
            "%llu acked writes, %llu leaders established, %llu snapshots installed, %llu "
            "truncations, %llu crashes, %llu zxid rollovers\n",
            (unsigned long long)total.runs, failures, secs,
            secs > 0 ? (double)total.runs / secs : 0, (unsigned long long)total.steps,
            (unsigned long long)(total.virtual_ms / 1000), (unsigned long long)total.acked,
            (unsigned long long)total.leaders, (unsigned long long)total.snaps,
            (unsigned long long)total.truncs, (unsigned long long)total.crashes,
            (unsigned long long)total.rollovers);
    fprintf(stderr,
            "sync streams: %llu DIFF, %llu TRUNC, %llu SNAP (%llu installs kept log entries); "
            "%llu runs with observers\n",
            (unsigned long long)total.diffs, (unsigned long long)total.truncs_sent,
            (unsigned long long)total.snaps_sent, (unsigned long long)total.snap_keeps,
            (unsigned long long)total.observers_runs);
    return failures ? 1 : 0;
}
