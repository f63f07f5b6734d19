"""The native protocol under bad and heavy input: malformed frames close that connection only,
memory stays bounded, many connections and pipelined requests are served."""

import os
import random
import socket
import struct

import pytest

import native
from harness import wait_for


@pytest.fixture
def bystander(replica):
    """A client with a session and an ephemeral, connected before the bad input arrives; it
    must be unaffected by it."""
    c = native.Native(replica.port, timeout_ms=4000)
    assert c.create("/bystander", b"here", native.EPHEMERAL).err == 0
    return c


def still_serving(replica, bystander):
    assert bystander.get("/bystander").data == b"here"
    assert replica.fourlw("ruok") == "imok"
    assert replica.mc.ok("get", "/bystander") == "here"
    fresh = native.Native(replica.port)
    assert fresh.exists("/bystander").err == 0
    fresh.close_session()


def raw(replica, data, magic=True):
    s = native.Native(replica.port, connect=False)
    s.send_bytes((native.MAGIC if magic else b"") + data)
    return s


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def connected(replica):
    """A connection with a session, for sending bad frames after the handshake."""
    return native.Native(replica.port)


CASES = {
    "garbage frame": struct.pack(">I", 10) + b"\xff" * 10,
    "not protobuf": struct.pack(">I", 5) + b"hello",
    "zero-length frame": struct.pack(">I", 0),
    "huge length": struct.pack(">I", 0xFFFFFFFF) + b"x" * 100,
    "length above the limit": struct.pack(">I", 64 << 20) + b"x" * 100,
    "request without op": native.frame(native.pb.Request(xid=0)),
    "not a connect first": native.frame(native.pb.Request(xid=1, get_data=native.pb.PathRequest(
        path="/bystander"))),
    # xid 1, then field 99 (not in the schema) = 1: the oneof is empty.
    "unknown field": struct.pack(">I", 5) + bytes([0x08, 0x01, 0x98, 0x06, 0x01]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_before_handshake_closes_connection(replica, bystander, case):
    s = raw(replica, CASES[case])
    assert s.closed_by_server(10), f"{case}: the connection stayed open"
    still_serving(replica, bystander)


@pytest.mark.parametrize("case", ["garbage frame", "zero-length frame", "huge length",
                                  "request without op", "unknown field", "second connect"])
def test_malformed_after_handshake_closes_connection(replica, bystander, case):
    c = connected(replica)
    assert c.create("/victim", b"", native.EPHEMERAL).err == 0
    if case == "request without op":
        c.send(native.pb.Request(xid=7))
    elif case == "second connect":
        c.send(native.pb.Request(xid=0, connect=native.pb.ConnectRequest(last_zxid_seen=0,
                                                                         timeout_ms=4000)))
    else:
        c.send_bytes(CASES[case])
    assert c.closed_by_server(10), f"{case}: the connection stayed open"
    still_serving(replica, bystander)
    # Only the connection ended: its session lives on until its timeout, as after any
    # connection loss.
    assert bystander.exists("/victim").err == 0


def test_truncated_frame_then_close(replica, bystander):
    req = native.frame(native.pb.Request(xid=0, connect=native.pb.ConnectRequest(
        last_zxid_seen=0, timeout_ms=4000)))
    for cut in (1, 3, 4, 5, len(req) - 1):
        s = raw(replica, req[:cut])
        s.close()
    s = raw(replica, struct.pack(">I", 1000) + b"x" * 500)
    s.close()
    still_serving(replica, bystander)


def test_truncated_magic(replica, bystander):
    s = native.Native(replica.port, connect=False)
    s.send_bytes(b"zk")
    s.close()
    still_serving(replica, bystander)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_bytes(replica, bystander, seed):
    rnd = random.Random(seed)
    data = bytes(rnd.getrandbits(8) for _ in range(8192))
    s = raw(replica, data, magic=bool(seed % 2))
    assert s.closed_by_server(10), "random bytes: the connection stayed open"
    still_serving(replica, bystander)


def test_random_frames_after_handshake(replica, bystander):
    rnd = random.Random(42)
    for _ in range(30):
        c = connected(replica)
        n = rnd.randrange(1, 300)
        c.send_bytes(struct.pack(">I", n) + bytes(rnd.getrandbits(8) for _ in range(n)))
        # Unless the bytes happen to form a valid request (then they get a reply), the
        # server closes the connection; it must not sit waiting.
        try:
            c.recv(5)
        except native.Closed:
            pass
        c.close()
    still_serving(replica, bystander)


def test_huge_length_does_not_grow_memory(replica, bystander):
    base = rss_kib(replica.proc.pid)
    chunk = b"\0" * (1 << 20)
    for _ in range(20):
        s = raw(replica, struct.pack(">I", 0x7FFFFFF0))
        try:
            for _ in range(32):  # up to 32 MiB each
                s.send_bytes(chunk)
        except OSError:
            pass  # closed by the server: good
        s.close()
    still_serving(replica, bystander)
    grown = rss_kib(replica.proc.pid) - base
    assert grown < 64 * 1024, f"RSS grew by {grown} KiB after oversized frames"


def test_slow_partial_frames_are_assembled(replica):
    c = native.Native(replica.port, connect=False)
    req = native.frame(native.pb.Request(xid=0, connect=native.pb.ConnectRequest(
        last_zxid_seen=0, timeout_ms=4000)))
    data = native.MAGIC + req
    for b in data:
        c.send_bytes(bytes([b]))
    r = c.wait_reply(0)
    assert r.err == 0 and r.connect.session_id != 0


def test_many_connections(replica):
    clients = [native.Native(replica.port, timeout_ms=10000) for _ in range(200)]
    assert len({c.session_id for c in clients}) == 200
    for i, c in enumerate(clients):
        assert c.create(f"/c{i}", str(i).encode(), native.EPHEMERAL).err == 0
    n = int(replica.mntr()["zk_num_alive_connections"])
    assert n >= 200
    assert replica.mntr()["zk_ephemerals_count"] == "200"
    for c in clients:
        c.close_session()
    wait_for(lambda: int(replica.mntr()["zk_num_alive_connections"]) <= 2, 10,
             what="connections to be released")
    assert replica.mntr()["zk_ephemerals_count"] == "0"


def test_max_client_cnxns(make_replica):
    r = make_replica(maxClientCnxns=5)
    clients = [native.Native(r.port) for _ in range(5)]
    extra = native.Native(r.port, connect=False)
    extra.send_bytes(native.MAGIC + native.frame(native.pb.Request(
        xid=0, connect=native.pb.ConnectRequest(last_zxid_seen=0, timeout_ms=4000))))
    assert extra.closed_by_server(10), "a 6th connection from one address was served"
    clients.pop().close_session()
    wait_for(lambda: _can_connect(r), 10, what="a free connection slot")


def _can_connect(r):
    try:
        c = native.Native(r.port)
    except (native.Closed, OSError):
        return False
    ok = c.connect_reply.err == 0
    c.close_session()
    return ok


def test_pipelining(replica):
    c = native.Native(replica.port)
    n = 1000
    reqs = []
    for i in range(n):
        reqs.append(c.request("create", native.create_request(path=f"/pl{i}",
                                                               data=str(i).encode())))
        reqs.append(c.request("get_data", native.pb.PathRequest(path=f"/pl{i}")))
    c.send_bytes(b"".join(native.frame(q) for q in reqs))
    got = []
    while len(got) < len(reqs):
        m = c.recv(30)
        assert m.HasField("reply")
        got.append(m.reply)
    assert [g.xid for g in got] == [q.xid for q in reqs], "replies out of request order"
    for i in range(n):
        cr, gr = got[2 * i], got[2 * i + 1]
        assert cr.err == 0 and cr.path == f"/pl{i}"
        assert gr.err == 0 and gr.data == str(i).encode(), "a read did not see the write " \
                                                           "pipelined before it"
    zx = [g.zxid for g in got[::2]]
    assert zx == sorted(zx) and len(set(zx)) == n


def test_pipelined_errors_do_not_stop_the_pipeline(replica):
    c = native.Native(replica.port)
    reqs = [c.request("create", native.create_request(path="/x", data=b"1")),
            c.request("create", native.create_request(path="/x", data=b"2")),
            c.request("get_data", native.pb.PathRequest(path="/nope")),
            c.request("create", native.create_request(path="bad//path")),
            c.request("set_data", native.pb.SetDataRequest(path="/x", data=b"3", version=5)),
            c.request("get_data", native.pb.PathRequest(path="/x"))]
    c.send_bytes(b"".join(native.frame(q) for q in reqs))
    got = [c.wait_reply(q.xid) for q in reqs]
    assert [g.err for g in got] == [0, native.NODEEXISTS, native.NONODE, native.BADARGUMENTS,
                                    native.BADVERSION, 0]
    assert got[-1].data == b"1"


def test_server_side_validation(replica):
    """The server checks what the client library would: bad paths and modes, oversize data."""
    c = native.Native(replica.port)
    for p in ("a", "/a/", "/a//b", "/a/./b", "", "/\x01x"):
        assert c.create(p, b"").err == native.BADARGUMENTS, p
        assert c.get(p).err == native.BADARGUMENTS, p
    assert c.create("/m", b"", mode=42).err == native.BADARGUMENTS
    assert c.create("/big", b"x" * ((1 << 20) + 1)).err != 0
    assert c.exists("/big").err == native.NONODE
    assert c.create("/ok", b"x" * (1 << 20)).err == 0


def test_nul_in_path_is_refused(replica):
    """A NUL inside a path is invalid (ZooKeeper: BADARGUMENTS); it must not be cut there,
    which would act on another node."""
    c = native.Native(replica.port)
    assert c.create("/a", b"a").err == 0
    assert c.create("/a\x00b", b"").err == native.BADARGUMENTS
    assert c.set("/a\x00b", b"changed").err == native.BADARGUMENTS
    assert c.delete("/a\x00b").err == native.BADARGUMENTS
    assert c.get("/a").data == b"a"


def test_close_in_the_middle_of_a_pipeline(replica, bystander):
    for _ in range(20):
        c = native.Native(replica.port)
        c.send_bytes(b"".join(native.frame(c.request("create", native.create_request(
            path=f"/mid-{os.getpid()}-{c.session_id}-{i}", data=b"x" * 1000)))
            for i in range(200)))
        c.close()
    still_serving(replica, bystander)


def test_fourlw_and_native_share_the_port(replica):
    c = native.Native(replica.port)
    assert replica.fourlw("ruok") == "imok"
    assert c.create("/both", b"").err == 0


def test_connection_without_bytes_is_harmless(replica, bystander):
    idle = [socket.create_connection(("127.0.0.1", replica.port)) for _ in range(20)]
    still_serving(replica, bystander)
    for s in idle:
        s.close()
