"""Replication with real processes on loopback: election, writes through any member, the
leader killed under load, whole-cluster restarts, a frozen majority, catch-up by DIFF and
SNAP, observers."""

import json
import os
import random
import signal
import threading

import pytest

import native
from cluster import Cluster, mode, wait_until


@pytest.fixture
def make_cluster(make_replica):
    def make(n=3, observers=0, **cfg):
        return Cluster(make_replica, n, observers, **cfg).start()
    return make


def get(r, path):
    c = native.Native(r.port)
    try:
        rep = c.get(path)
        return rep.data if rep.err == 0 else None
    finally:
        c.close()


@pytest.mark.parametrize("n", [3, 5])
def test_one_leader_and_writes_everywhere(make_cluster, n):
    cl = make_cluster(n)
    modes = sorted(mode(r) for r in cl.members)
    assert modes == ["follower"] * (n - 1) + ["leader"]
    for i, r in enumerate(cl.members):
        r.mc.ok("create", f"/via{i}", f"data{i}")
    for r in cl.members:
        r.mc.ok("sync", "/")
        assert r.mc.ok("ls", "/").split() == [f"via{i}" for i in range(n)]
        assert get(r, "/via1") == b"data1"


class Writers:
    """Clients on random members writing until stopped; records acknowledged paths."""

    def __init__(self, cl, n=3):
        self.cl, self.stop, self.acked, self.threads = cl, threading.Event(), [], []
        self.lock = threading.Lock()
        for k in range(n):
            t = threading.Thread(target=self.run, args=(k,), daemon=True)
            t.start()
            self.threads.append(t)

    def run(self, k):
        i = 0
        while not self.stop.is_set():
            r = random.choice([m for m in self.cl.members if m.running()])
            try:
                c = native.Native(r.port, io_timeout=5)
            except Exception:
                continue
            try:
                while not self.stop.is_set():
                    path = f"/w{k}-{i}"
                    i += 1
                    if c.create(path, path.encode()).err == 0:
                        with self.lock:
                            self.acked.append(path)
            except Exception:
                pass
            finally:
                try:
                    c.close()
                except Exception:
                    pass

    def count(self):
        with self.lock:
            return len(self.acked)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        return list(self.acked)


def assert_all_present(cl, paths):
    for r in cl.members:
        if not r.running():
            continue
        c = native.Native(r.port)
        try:
            c.call("sync", native.pb.PathRequest(path="/"))
            names = set(c.children("/").children)
        finally:
            c.close()
        missing = [p for p in paths if p[1:] not in names]
        assert not missing, f"{r.name} lost {len(missing)} acknowledged writes, e.g. {missing[:5]}"


@pytest.mark.parametrize("n", [3, 5])
def test_leader_killed_under_load(make_cluster, n):
    cl = make_cluster(n)
    w = Writers(cl)
    wait_until(lambda: w.count() >= 100, what="writes before the kill")
    old = cl.leader()
    old.kill()
    before = w.count()
    wait_until(lambda: w.count() >= before + 100, what="writes to resume under a new leader")
    old.start(wait=False)
    cl.wait_serving()
    acked = w.finish()
    assert cl.leader() is not None
    assert_all_present(cl, acked)


def test_everything_killed_and_restarted(make_cluster):
    cl = make_cluster(3)
    w = Writers(cl, 2)
    wait_until(lambda: w.count() >= 200, what="writes")
    acked = w.finish()
    for r in cl.members:
        r.kill()
    for r in cl.members:
        r.start(wait=False)
    cl.wait_serving()
    assert_all_present(cl, acked)


def test_frozen_majority_acknowledges_nothing(make_cluster):
    cl = make_cluster(3)
    cl.members[0].mc.ok("create", "/before", "x")
    leader = cl.leader()
    frozen = [r for r in cl.members if r is not leader]
    for r in frozen:
        os.kill(r.proc.pid, signal.SIGSTOP)
    try:
        c = native.Native(leader.port, io_timeout=10)
        rep = None
        try:
            rep = c.create("/during", b"x")
        except Exception:
            pass  # the leader gave up its quorum and closed the connection
        assert rep is None or rep.err != 0, "a write was acknowledged without a quorum"
    finally:
        for r in frozen:
            os.kill(r.proc.pid, signal.SIGCONT)
    cl.wait_serving()
    cl.members[1].mc.ok("create", "/after", "y")
    for r in cl.members:
        r.mc.ok("sync", "/")
        names = r.mc.ok("ls", "/").split()
        assert "before" in names and "after" in names


@pytest.mark.parametrize("writes", [50, 1500])  # within the leader's DIFF window, and beyond
def test_member_catches_up(make_cluster, writes):
    cl = make_cluster(3)
    lagging = cl.followers()[0]
    lagging.kill()
    leader = cl.leader()
    c = native.Native(leader.port)
    for i in range(writes):
        c.send(c.request("create", native.create_request(f"/n{i}", b"v")))
    replies = [c.recv() for _ in range(writes)]
    assert all(m.reply.err == 0 for m in replies)
    c.close()
    before = lagging.log().count("installed")
    lagging.start(wait=False)
    cl.wait_serving()
    lagging.mc.ok("sync", "/")
    assert len(lagging.mc.ok("ls", "/").split()) == writes
    # the leader keeps 500 committed txns for DIFF: beyond that the member gets a SNAP
    snapped = lagging.log().count("installed") > before
    assert snapped == (writes > 500), lagging.log()[-2000:]


def test_observer_serves_reads_and_does_not_vote(make_cluster):
    cl = make_cluster(3, observers=1)
    obs = cl.members[3]
    assert mode(obs) == "observer"
    obs.mc.ok("create", "/from-observer", "o")
    cl.members[0].mc.ok("sync", "/")
    assert cl.members[0].mc.ok("get", "/from-observer") == "o"
    # two participants down: the observer does not make a quorum with the third
    for r in cl.followers()[:2] or []:
        r.kill()
    downs = [r for r in cl.members[:3] if not r.running()]
    if len(downs) < 2:
        for r in cl.members[:3]:
            if r.running() and len(downs) < 2:
                r.kill()
                downs.append(r)
    wait_until(lambda: mode(obs) not in ("observer",), what="the observer to stop serving")


def test_mountctl_status(make_cluster):
    cl = make_cluster(3)
    cl.members[0].mc.ok("create", "/s", "x")
    rows = json.loads(cl.members[0].mc.ok("-w", "json", "status", cl.servers))
    assert sorted(r["role"] for r in rows) == ["follower", "follower", "leader"]
    assert {r["id"] for r in rows} == {1, 2, 3}
    assert all(r["serving"] and r["znodes"] >= 2 and r["epoch"] >= 1 for r in rows)
    cl.members[2].kill()
    r = cl.members[0].mc.run("status", cl.servers)
    assert r.returncode != 0
    assert "unreachable" in r.stdout.decode()


def test_mount_keeps_session_and_ephemerals_when_its_replica_dies(make_replica, make_mount):
    """A mount of the whole cluster: the replica it is attached to is killed with -9; the
    mount moves to another replica keeping its session, so its ephemeral files stay."""
    cl = Cluster(make_replica, 3).start()
    cl.members[0].mc.ok("create", "/eph", "")
    cl.members[0].mc.ok("policy", "/eph", "ephemeral")
    m = make_mount(cl.servers, opts=("session_timeout=4000",))
    with open(m.path("eph", "mine"), "w") as f:
        f.write("alive")
    sid = None
    for r in cl.members:
        out = r.mc.run("-w", "json", "stat", "/eph/mine")
        if out.returncode == 0:
            sid = json.loads(out.stdout)["ephemeralOwner"]
            break
    assert sid
    # kill the replica holding the mount's connection (the one whose cons lists the session)
    victim = next(r for r in cl.members if f"sid=0x{sid:x}" in (r.fourlw("cons") or ""))
    victim.kill()
    survivor = next(r for r in cl.members if r is not victim)
    cl.wait_serving(members=[r for r in cl.members if r.running()])
    # the mount still works and its ephemeral file is still there, everywhere
    wait_until(lambda: os.path.exists(m.path("eph", "mine")), what="the mount to come back")
    with open(m.path("eph", "after"), "w") as f:
        f.write("still me")
    survivor.mc.ok("sync", "/")
    names = survivor.mc.ok("ls", "/eph").split()
    assert names == ["after", "mine"]
    st = json.loads(survivor.mc.ok("-w", "json", "stat", "/eph/after"))
    assert st["ephemeralOwner"] == sid
