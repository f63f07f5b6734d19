"""No acknowledged write is lost: kill -9 in the middle of write streams, clean restarts, and
sessions that outlive a restart."""

import json
import socket
import threading
import time

import pytest

import native
from harness import wait_for


def payload(tag, i):
    return f"{tag}-{i}-" + "x" * (i % 97)


def check_all_present(port, acked):
    """Every (path, data) in acked reads back equal, checked over the native protocol."""
    c = native.Native(port)
    missing, wrong = [], []
    for path, data in acked:
        r = c.get(path)
        if r.err != 0:
            missing.append(path)
        elif r.data != data:
            wrong.append((path, r.data[:40], data[:40]))
    c.close_session()
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged creates lost: {missing[:10]}"
    assert not wrong, f"acknowledged data differs: {wrong[:5]}"


@pytest.mark.parametrize("group_commit", ["true", "false"])
def test_concurrent_mountctl_writes_survive_kill9(make_replica, group_commit):
    r = make_replica(cfg={"zkfs.groupCommit": group_commit})
    r.mc.ok("create", "/d")
    acked = []
    lock = threading.Lock()
    killed = threading.Event()
    errors = []

    def writer(w):
        for i in range(10_000):
            path, data = f"/d/w{w}-{i:05d}", payload(f"w{w}", i)
            # --timeout: once the replica is gone, fail after 2 s instead of waiting longer.
            res = r.mc.run("--timeout", "2", "create", path, data, timeout=120)
            if res.returncode != 0:
                if not killed.is_set():
                    errors.append(f"create {path} failed before the kill: {res.stderr!r}")
                return
            if res.stdout.decode().strip() != path:
                errors.append(f"create {path} printed {res.stdout!r}")
            with lock:
                acked.append((path, data.encode()))

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(6)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 600 or errors, 120, what="600 acknowledged creates")
    assert not errors, errors
    killed.set()
    r.kill()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a mountctl writer hung after the replica was killed"
    n = len(acked)
    assert n >= 600
    assert not errors, errors
    r.start()
    check_all_present(r.port, acked)
    # The tree is consistent with the creates: numChildren counts them all.
    st = json.loads(r.mc.ok("-w", "json", "stat", "/d"))
    assert st["numChildren"] >= n
    assert st["numChildren"] <= n + 6  # at most one unacknowledged create per writer


def test_pipelined_writes_survive_kill9(make_replica):
    """One client streams up to 20000 pipelined creates; the replica is killed after 2000
    replies, while requests are still arriving. Every create that got an OK reply must be
    there after the restart."""
    r = make_replica()
    c = native.Native(r.port)
    assert c.create("/p", b"").err == 0
    total = 20000
    reqs = [c.request("create", native.create_request(path=f"/p/n{i:05d}",
                                                         data=payload("p", i).encode()))
            for i in range(total)]
    by_xid = {q.xid: q.create for q in reqs}

    def send_all():
        try:
            for q in reqs:
                c.send(q)
        except OSError:
            pass  # the replica was killed

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    acked = []
    killed = False
    try:
        while True:
            msg = c.recv(30)
            assert msg.HasField("reply")
            rep = msg.reply
            q = by_xid[rep.xid]
            assert rep.err == 0, (rep.xid, rep.err)
            acked.append((q.path, q.data))
            if len(acked) == 2000 and not killed:
                r.kill()
                killed = True
            if len(acked) == total:
                break
    except native.Closed:
        pass
    sender.join(30)
    assert killed, "all replies came before the kill"
    assert len(acked) < total, "the whole stream was acknowledged before the kill"
    r.start()
    check_all_present(r.port, acked)


def test_clean_restart_keeps_everything(make_replica):
    r = make_replica()
    mc = r.mc
    mc.ok("create", "/cfg", "v0")
    for i in range(1, 4):
        mc.ok("set", "/cfg", f"v{i}")
    mc.ok("create", "/cfg/a", "A")
    mc.ok("create", "/cfg/b", "B")
    mc.ok("rm", "/cfg/a")
    mc.ok("create", "-s", "/cfg/seq-", "S")
    mc.ok("create", "-c", "/ctr")
    mc.ok("create", "-t", "600000", "/ttl", "T")
    mc.ok("create", "/bin", "-", input=bytes(range(256)))
    paths = ["/cfg", "/cfg/b", "/cfg/seq-0000000002", "/ctr", "/ttl", "/bin"]
    before = {p: (json.loads(mc.ok("-w", "json", "stat", p)), mc.run("get", p).stdout)
              for p in paths}
    srvr = r.fourlw("srvr")
    assert r.stop() == 0
    r.start()
    # Before any client comes (each mountctl run is a session: two txns).
    assert zxid_of(r.fourlw("srvr")) == zxid_of(srvr)
    after = {p: (json.loads(mc.ok("-w", "json", "stat", p)), mc.run("get", p).stdout)
             for p in paths}
    assert after == before
    # New writes continue after the old zxids, and sequence numbers go on.
    assert mc.ok("create", "-s", "/cfg/seq-") == "/cfg/seq-0000000003"
    st = json.loads(mc.ok("-w", "json", "stat", "/cfg/seq-0000000003"))
    assert st["czxid"] > max(s["mzxid"] for s, _ in before.values())
    assert mc.ok("ls", "/cfg").split("\n") == ["b", "seq-0000000002", "seq-0000000003"]


def zxid_of(srvr):
    for line in srvr.splitlines():
        if line.startswith("Zxid:"):
            return int(line.split(":", 1)[1].strip(), 16)
    raise AssertionError(f"no Zxid line in {srvr!r}")


def test_many_restarts(make_replica):
    r = make_replica()
    acked = []
    c = native.Native(r.port)
    assert c.create("/r", b"").err == 0
    c.close()
    for round_ in range(5):
        c = native.Native(r.port)
        for i in range(40):
            p, d = f"/r/{round_}-{i}", payload("r", i).encode()
            assert c.create(p, d).err == 0
            acked.append((p, d))
        c.close()
        if round_ % 2:
            r.kill()
        else:
            r.stop()
        r.start()
    check_all_present(r.port, acked)


@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_session_survives_restart_then_expires(make_replica, how):
    r = make_replica(tickTime=300)  # sessions of up to 6 s
    a = native.Native(r.port, timeout_ms=6000)
    assert a.timeout_ms == 6000
    sid, pw = a.session_id, a.passwd
    assert a.create("/lock", b"held", native.EPHEMERAL).err == 0
    a.close()
    if how == "kill9":
        r.kill()
    else:
        r.stop()
    r.start()
    b = native.Native(r.port, timeout_ms=6000, session_id=sid, passwd=pw)
    assert b.connect_reply.err == 0, b.connect_reply
    assert b.session_id == sid
    st = b.exists("/lock")
    assert st.err == 0, "the ephemeral did not survive the restart"
    assert st.stat.ephemeral_owner == sid
    # The client goes away for good: after the timeout the session expires.
    b.close()
    t0 = time.monotonic()
    other = native.Native(r.port)
    wait_for(lambda: other.exists("/lock").err == native.NONODE, 30,
             what="the abandoned session to expire")
    assert time.monotonic() - t0 >= 3, "the session expired well before its 6 s timeout"


def test_port_refused_while_down_then_served_again(make_replica):
    """While the replica is down, connects are refused rather than hang; after a restart it
    serves on the same port."""
    r = make_replica()
    r.kill()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", r.port), timeout=5).close()
    r.start()
    assert r.fourlw("ruok") == "imok"
