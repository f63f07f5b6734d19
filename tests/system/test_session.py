"""Sessions over the native protocol: timeouts clamped to [2, 20] ticks, pings keep a session,
close deletes its ephemerals at once, expiry deletes them after the timeout, re-attaching
with the id and password."""

import time

import native
from harness import wait_for


def gone(c, path):
    r = c.exists(path)
    assert r.err in (0, native.NONODE), r
    return r.err == native.NONODE


def test_timeout_clamped_to_ticks(make_replica):
    r = make_replica(tickTime=200)
    for asked, got in ((100, 400), (400, 400), (1000, 1000), (4000, 4000), (60000, 4000)):
        c = native.Native(r.port, timeout_ms=asked)
        assert c.connect_reply.err == 0
        assert c.timeout_ms == got, f"asked {asked}: got {c.timeout_ms}, expected {got}"
        c.close_session()


def test_min_max_session_timeout_keys(make_replica):
    r = make_replica(tickTime=200, minSessionTimeout=1000, maxSessionTimeout=3000)
    assert native.Native(r.port, timeout_ms=100).timeout_ms == 1000
    assert native.Native(r.port, timeout_ms=10000).timeout_ms == 3000


def test_sessions_are_distinct(replica):
    a = native.Native(replica.port)
    b = native.Native(replica.port)
    assert a.session_id != b.session_id
    assert a.session_id != 0 and len(a.passwd) > 0


def test_close_deletes_ephemerals_at_once(replica):
    a = native.Native(replica.port)
    watcher = native.Native(replica.port)
    assert a.create("/e", b"x", native.EPHEMERAL).err == 0
    r = a.create("/s-", b"", native.EPHEMERAL_SEQUENTIAL)
    assert r.err == 0 and r.path.startswith("/s-")
    assert watcher.exists("/e").stat.ephemeral_owner == a.session_id
    assert a.close_session().err == 0
    assert gone(watcher, "/e") and gone(watcher, r.path)


def test_expiry_deletes_ephemerals(replica):
    a = native.Native(replica.port, timeout_ms=1000)
    b = native.Native(replica.port, timeout_ms=4000)
    assert a.create("/mine", b"", native.EPHEMERAL).err == 0
    assert a.create("/keep", b"").err == 0
    t0 = time.monotonic()
    a.close()  # no close request: the session must time out
    # b keeps its own session alive while it polls.
    wait_for(lambda: gone(b, "/mine"), 15, what="the expired session's ephemeral to go")
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.5, f"session expired {elapsed:.2f}s after the client left (timeout 1s)"
    assert not gone(b, "/keep")
    mntr = replica.mntr()
    assert mntr.get("zk_ephemerals_count") == "0"


def test_pings_keep_a_session(replica):
    a = native.Native(replica.port, timeout_ms=400)  # 2 ticks
    assert a.create("/alive", b"", native.EPHEMERAL).err == 0
    b = native.Native(replica.port)
    deadline = time.monotonic() + 2.5  # several session timeouts
    while time.monotonic() < deadline:
        assert a.ping().err == 0
        assert not gone(b, "/alive")
        time.sleep(0.1)  # the ping interval of a client, not a wait for a condition
    assert a.exists("/alive").err == 0


def test_reattach_with_id_and_password(replica):
    a = native.Native(replica.port, timeout_ms=4000)
    assert a.create("/eph", b"", native.EPHEMERAL).err == 0
    sid, pw = a.session_id, a.passwd
    a.close()
    b = native.Native(replica.port, timeout_ms=4000, session_id=sid, passwd=pw)
    assert b.connect_reply.err == 0
    assert b.session_id == sid
    assert b.exists("/eph").stat.ephemeral_owner == sid
    # The session is b's now: closing it deletes the ephemeral.
    b.close_session()
    c = native.Native(replica.port)
    assert gone(c, "/eph")


def test_reattach_with_wrong_password_is_refused(replica):
    a = native.Native(replica.port, timeout_ms=4000)
    assert a.create("/eph", b"", native.EPHEMERAL).err == 0
    bad = bytes(x ^ 0xFF for x in a.passwd)
    b = native.Native(replica.port, timeout_ms=4000, session_id=a.session_id, passwd=bad)
    assert b.connect_reply.err != 0 or b.session_id != a.session_id
    # The real owner is unaffected.
    assert a.exists("/eph").err == 0


def test_reattach_after_expiry_is_refused(replica):
    a = native.Native(replica.port, timeout_ms=400)
    sid, pw = a.session_id, a.passwd
    assert a.create("/eph", b"", native.EPHEMERAL).err == 0
    a.close()
    b = native.Native(replica.port)
    wait_for(lambda: gone(b, "/eph"), 15, what="the session to expire")
    c = native.Native(replica.port, timeout_ms=400, session_id=sid, passwd=pw)
    assert c.connect_reply.err == native.SESSIONEXPIRED, c.connect_reply
    # The connection serves nothing for that session: it is closed (as ZooKeeper does), or
    # every request on it fails.
    try:
        r = c.exists("/")
        assert r.err == native.SESSIONEXPIRED, f"an expired session was served: {r}"
    except native.Closed:
        pass


def test_unknown_session_is_refused(replica):
    c = native.Native(replica.port, session_id=0x1234567890, passwd=b"0" * 16)
    assert c.connect_reply.err == native.SESSIONEXPIRED, c.connect_reply


def test_ephemeral_cannot_have_children(replica):
    a = native.Native(replica.port)
    assert a.create("/e", b"", native.EPHEMERAL).err == 0
    assert a.create("/e/c", b"").err == native.NOCHILDRENFOREPHEMERALS
