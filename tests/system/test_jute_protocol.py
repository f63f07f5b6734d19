"""ZooKeeper's wire protocol byte by byte: the handshake and its refusals, every opcode's reply
format and error codes, special xids, notifications carrying their zxid, and malformed input
closing only the connection that sent it."""

import json

import pytest

import jute
from jute import Jute, acl, boolean, buf, connect_request, frame, i32, i64, ustr, vec

INT64_MIN = -(1 << 63)


@pytest.fixture
def conn(replica):
    c = Jute(replica.port)
    yield c
    c.close()


def test_handshake_with_and_without_the_readonly_flag(replica):
    a = Jute(replica.port, connect=False)
    r = a.handshake(timeout_ms=3000, readonly=False)
    assert r["protocol"] == 0 and r["timeout"] == 3000 and r["session_id"] != 0
    assert len(r["passwd"]) == 16 and r["readonly"] is False
    # a pre-3.4 client sends no readOnly and gets none back (ProtocolManager)
    b = Jute(replica.port, connect=False)
    r = b.handshake(timeout_ms=3000, readonly=None)
    assert r["timeout"] == 3000 and r["readonly"] is None
    assert b.exists("/")[1] == jute.OK


def test_timeout_is_clamped_to_the_tick_bounds(replica):
    # tickTime=200: [2, 20] ticks
    assert Jute(replica.port, connect=False).handshake(timeout_ms=10)["timeout"] == 400
    assert Jute(replica.port, connect=False).handshake(timeout_ms=10 ** 6)["timeout"] == 4000


def test_reconnect_with_session_id_and_password_keeps_the_session(replica, conn):
    zxid, err, r = conn.create("/eph", b"x", flags=1)
    assert err == jute.OK and r.string() == "/eph"
    conn.close()
    again = Jute(replica.port, connect=False)
    r = again.handshake(session_id=conn.session_id, passwd=conn.passwd, last_zxid=zxid)
    assert r["session_id"] == conn.session_id and r["passwd"] == conn.passwd
    _, err, body = again.exists("/eph")
    assert err == jute.OK and body.stat()["ephemeralOwner"] == conn.session_id


@pytest.mark.parametrize("how", ["wrong password", "unknown session"])
def test_expired_session_answered_as_zookeeper_then_closed(replica, conn, how):
    c = Jute(replica.port, connect=False)
    if how == "wrong password":
        r = c.handshake(session_id=conn.session_id, passwd=b"\1" * 16)
    else:
        r = c.handshake(session_id=0x1234, passwd=b"\0" * 16)
    assert (r["timeout"], r["session_id"], r["passwd"]) == (0, 0, b"\0" * 16)
    assert c.closed_by_server()
    assert conn.exists("/")[1] == jute.OK  # the real owner is unaffected


def test_client_ahead_of_the_server_is_refused(replica):
    c = Jute(replica.port, connect=False)
    c.send_raw(frame(connect_request(last_zxid=1 << 60)))
    with pytest.raises(jute.Closed):
        c.read_connect()
    assert "ahead of ours" in replica.log()


def test_ping_and_reply_order(conn):
    x1 = conn.send(jute.EXISTS, ustr("/") + boolean(False))
    conn.send(jute.PING, xid=jute.XID_PING)
    x3 = conn.send(jute.GET_CHILDREN, ustr("/") + boolean(False))
    got = [conn.read_message()[0] for _ in range(3)]
    assert got == [x1, jute.XID_PING, x3]


def test_notification_carries_the_triggering_zxid(replica, conn):
    other = Jute(replica.port)
    conn.create("/n", b"0")
    assert conn.get("/n", watch=True)[1] == jute.OK
    zxid, err, _ = other.set("/n", b"1")
    assert err == jute.OK
    ev = conn.wait_event()
    assert ev == {"type": jute.DATA_CHANGED, "state": 3, "path": "/n", "zxid": zxid}


def test_zkfs_meta_events_never_reach_jute_clients(replica, conn):
    conn.create("/m")
    assert conn.add_watch("/m", 0)[1] == jute.OK  # persistent
    assert conn.add_watch("/", 1)[1] == jute.OK   # persistent recursive
    # an ACL change (ZooKeeper fires nothing) and a zkfs policy change (SetMeta, native)
    body = ustr("/m") + acl(jute.OPEN_ACL) + i32(-1)
    assert conn.call(jute.SET_ACL, body)[1] == jute.OK
    replica.mc.ok("policy", "/m", "ephemeral")
    zxid, err, _ = Jute(replica.port).set("/m", b"after")
    first = conn.wait_event()
    assert (first["type"], first["path"], first["zxid"]) == (jute.DATA_CHANGED, "/m", zxid)
    assert conn.exists("/m")[1] == jute.OK  # a round trip: any other event came before it
    assert conn.events == []


def test_create_variants(conn):
    zxid, err, r = conn.create("/c2", b"abc", op=jute.CREATE2)
    assert err == jute.OK and r.string() == "/c2"
    st = r.stat()
    assert st["czxid"] == st["mzxid"] == st["pzxid"] == zxid and st["dataLength"] == 3
    _, err, r = conn.create("/ctr", flags=4, op=jute.CREATE_CONTAINER)
    assert err == jute.OK and r.string() == "/ctr" and r.stat()["ephemeralOwner"] == INT64_MIN
    _, err, r = conn.create("/ttl", flags=5, op=jute.CREATE_TTL, ttl=60000)
    assert err == jute.OK
    assert r.string() == "/ttl" and r.stat()["ephemeralOwner"] == (0xFF << 56 | 60000) - (1 << 64)
    _, err, r = conn.create("/ttl-s-", flags=6, op=jute.CREATE_TTL, ttl=60000)
    assert err == jute.OK and r.string() == "/ttl-s-0000000003"
    assert conn.create("/bad", flags=0, op=jute.CREATE_TTL, ttl=60000)[1] == jute.BADARGUMENTS
    assert conn.create("/bad", flags=0, op=jute.CREATE_CONTAINER)[1] == jute.BADARGUMENTS
    assert conn.create("/c2")[1] == jute.NODEEXISTS
    assert conn.create("/no/parent")[1] == jute.NONODE
    assert conn.create("/e", flags=1)[1] == jute.OK
    assert conn.create("/e/child")[1] == -108  # NOCHILDRENFOREPHEMERALS
    zxid, err, r = conn.create("/s-", flags=2)
    assert err == jute.OK and r.string() == "/s-0000000005"


def test_reads_and_their_reply_records(conn):
    conn.create("/r", b"data")
    conn.create("/r/a")
    conn.create("/r/b")
    conn.create("/r/b/c")
    conn.create("/r/e", flags=1)
    _, err, r = conn.get("/r")
    assert err == jute.OK and r.buffer() == b"data" and r.stat()["numChildren"] == 3
    _, err, r = conn.call(jute.GET_CHILDREN, ustr("/r") + boolean(False))
    assert err == jute.OK and r.strings() == ["a", "b", "e"] and r.left() == 0
    _, err, r = conn.call(jute.GET_CHILDREN2, ustr("/r") + boolean(False))
    assert r.strings() == ["a", "b", "e"] and r.stat()["numChildren"] == 3
    _, err, r = conn.exists("/nothing")
    assert err == jute.NONODE and r.left() == 0
    _, err, r = conn.call(jute.GET_ACL, ustr("/r"))
    assert err == jute.OK and r.int() == 1
    assert (r.int(), r.string(), r.string()) == (31, "world", "anyone")
    _, err, r = conn.call(jute.GET_ALL_CHILDREN_NUMBER, ustr("/r"))
    assert err == jute.OK and r.int() == 4
    _, err, r = conn.call(jute.GET_ALL_CHILDREN_NUMBER, ustr("/"))
    assert r.int() == 5
    _, err, r = conn.call(jute.GET_EPHEMERALS, ustr("/"))
    assert err == jute.OK and r.strings() == ["/r/e"]
    _, err, r = conn.call(jute.GET_EPHEMERALS, ustr("/x"))
    assert r.strings() == []
    _, err, r = conn.call(jute.SYNC, ustr("/r"))
    assert err == jute.OK and r.string() == "/r"
    # multiRead: each op answered on its own
    body = (i32(jute.GET_DATA) + boolean(False) + i32(-1) + ustr("/r") + boolean(False) +
            i32(jute.GET_CHILDREN) + boolean(False) + i32(-1) + ustr("/r/b") + boolean(False) +
            i32(jute.GET_DATA) + boolean(False) + i32(-1) + ustr("/none") + boolean(False) +
            i32(-1) + boolean(True) + i32(-1))
    _, err, r = conn.call(jute.MULTI_READ, body)
    assert err == jute.OK
    assert (r.int(), r.bool(), r.int()) == (jute.GET_DATA, False, 0)
    assert r.buffer() == b"data" and r.stat()["numChildren"] == 3
    assert (r.int(), r.bool(), r.int()) == (jute.GET_CHILDREN, False, 0) and r.strings() == ["c"]
    assert (r.int(), r.bool(), r.int(), r.int()) == (-1, False, jute.NONODE, jute.NONODE)
    assert (r.int(), r.bool(), r.int()) == (-1, True, -1)


def test_writes_and_their_reply_records(conn):
    conn.create("/w", b"1")
    zxid, err, r = conn.set("/w", b"22", version=0)
    st = r.stat()
    assert err == jute.OK and st["version"] == 1 and st["mzxid"] == zxid and st["dataLength"] == 2
    assert conn.set("/w", b"x", version=0)[1] == jute.BADVERSION
    _, err, r = conn.call(jute.CHECK, ustr("/w") + i32(1))
    assert err == jute.OK and r.stat()["version"] == 1
    assert conn.call(jute.CHECK, ustr("/w") + i32(5))[1] == jute.BADVERSION
    _, err, r = conn.call(jute.SET_ACL, ustr("/w") + acl(jute.OPEN_ACL) + i32(0))
    assert err == jute.OK and r.stat()["aversion"] == 1
    assert conn.call(jute.SET_ACL, ustr("/w") + acl([]) + i32(-1))[1] == jute.INVALIDACL
    assert conn.delete("/w", version=0)[1] == jute.BADVERSION
    _, err, r = conn.delete("/w", version=1)
    assert err == jute.OK and r.left() == 0
    assert conn.call(jute.RECONFIG, ustr("") + ustr("") + ustr("server.1=h:1:2") + i64(-1))[1] \
        == jute.RECONFIGDISABLED


def multi_op(op, body):
    return i32(op) + boolean(False) + i32(-1) + body


END = i32(-1) + boolean(True) + i32(-1)


def test_multi_results_and_all_or_nothing(conn):
    conn.create("/t", b"0")
    body = (multi_op(jute.CREATE, ustr("/t/a") + buf(b"") + acl(jute.OPEN_ACL) + i32(0)) +
            multi_op(jute.CREATE2, ustr("/t/b") + buf(b"bb") + acl(jute.OPEN_ACL) + i32(0)) +
            multi_op(jute.SET_DATA, ustr("/t") + buf(b"1") + i32(0)) +
            multi_op(jute.CHECK, ustr("/t") + i32(1)) +
            multi_op(jute.DELETE, ustr("/t/a") + i32(-1)) + END)
    zxid, err, r = conn.call(jute.MULTI, body)
    assert err == jute.OK
    assert (r.int(), r.bool(), r.int(), r.string()) == (jute.CREATE, False, 0, "/t/a")
    assert (r.int(), r.bool(), r.int(), r.string()) == (jute.CREATE2, False, 0, "/t/b")
    assert r.stat()["czxid"] == zxid
    assert (r.int(), r.bool(), r.int()) == (jute.SET_DATA, False, 0) and r.stat()["version"] == 1
    assert (r.int(), r.bool(), r.int()) == (jute.CHECK, False, 0)
    assert (r.int(), r.bool(), r.int()) == (jute.DELETE, False, 0)
    assert (r.int(), r.bool(), r.int()) == (-1, True, -1) and r.left() == 0
    # a failing op: every result an ErrorResult, the header still OK (FinalRequestProcessor)
    body = (multi_op(jute.CREATE, ustr("/t/c") + buf(b"") + acl(jute.OPEN_ACL) + i32(0)) +
            multi_op(jute.CHECK, ustr("/t") + i32(9)) +
            multi_op(jute.DELETE, ustr("/t/b") + i32(-1)) + END)
    _, err, r = conn.call(jute.MULTI, body)
    assert err == jute.OK
    for code in (0, jute.BADVERSION, jute.RUNTIMEINCONSISTENCY):
        assert (r.int(), r.bool(), r.int(), r.int()) == (-1, False, code, code)
    assert (r.int(), r.bool(), r.int()) == (-1, True, -1)
    assert conn.exists("/t/c")[1] == jute.NONODE and conn.exists("/t/b")[1] == jute.OK
    # an empty multi
    _, err, r = conn.call(jute.MULTI, END)
    assert err == jute.OK and (r.int(), r.bool(), r.int()) == (-1, True, -1)


def test_check_and_remove_watches(replica, conn):
    conn.create("/cw")
    assert conn.call(jute.CHECK_WATCHES, ustr("/cw") + i32(2))[1] == jute.NOWATCHER
    conn.get("/cw", watch=True)
    conn.call(jute.GET_CHILDREN, ustr("/cw") + boolean(True))
    assert conn.call(jute.CHECK_WATCHES, ustr("/cw") + i32(2))[1] == jute.OK
    assert conn.call(jute.CHECK_WATCHES, ustr("/cw") + i32(1))[1] == jute.OK
    assert conn.call(jute.REMOVE_WATCHES, ustr("/cw") + i32(2))[1] == jute.OK
    assert conn.call(jute.CHECK_WATCHES, ustr("/cw") + i32(2))[1] == jute.NOWATCHER
    assert conn.call(jute.CHECK_WATCHES, ustr("/cw") + i32(3))[1] == jute.OK  # child still
    conn.add_watch("/cw", 1)
    assert conn.call(jute.REMOVE_WATCHES, ustr("/cw") + i32(5))[1] == jute.OK
    assert conn.call(jute.REMOVE_WATCHES, ustr("/cw") + i32(3))[1] == jute.OK
    assert conn.call(jute.REMOVE_WATCHES, ustr("/cw") + i32(3))[1] == jute.NOWATCHER
    Jute(replica.port).set("/cw", b"changed")
    assert conn.get("/cw")[1] == jute.OK
    assert conn.events == []


def test_set_watches_fires_what_was_missed(replica, conn):
    zxid, _, _ = conn.create("/sw", b"0")
    conn.create("/sw/kid")
    conn.set("/sw", b"1")
    c = Jute(replica.port)
    body = (i64(zxid) + vec(["/sw"], ustr) + vec(["/sw-new"], ustr) + vec(["/sw"], ustr))
    _, err, _ = c.call(jute.SET_WATCHES, body, xid=jute.XID_SET_WATCHES)
    assert err == jute.OK
    got = {(e["type"], e["path"]) for e in (c.wait_event(), c.wait_event())}
    assert got == {(jute.DATA_CHANGED, "/sw"), (jute.CHILDREN_CHANGED, "/sw")}
    conn.create("/sw-new")
    assert c.wait_event()["type"] == jute.CREATED
    body = i64(1 << 40) + vec([], ustr) * 3 + vec([], ustr) + vec(["/sw"], ustr)
    assert c.call(jute.SET_WATCHES2, body, xid=jute.XID_SET_WATCHES)[1] == jute.OK
    conn.create("/sw/deep")
    assert (c.wait_event()["type"], c.events) == (jute.CREATED, [])


def test_digest_auth_acls_and_who_am_i(replica, conn):
    assert conn.call(jute.AUTH, i32(0) + ustr("digest") + buf(b"alice:pw"),
                     xid=jute.XID_AUTH)[1] == jute.OK
    _, err, r = conn.call(jute.WHO_AM_I)
    ids = [(r.string(), r.string()) for _ in range(r.int())]
    assert ids == [("ip", "127.0.0.1"), ("digest", "alice")]
    body = (ustr("/private") + buf(b"s") + acl([(31, "auth", ""), (1, "world", "anyone")]) +
            i32(0))
    assert conn.call(jute.CREATE, body)[1] == jute.OK
    other = Jute(replica.port)
    assert other.set("/private", b"x")[1] == jute.NOAUTH
    _, err, r = other.call(jute.GET_ACL, ustr("/private"))
    assert err == jute.OK and r.int() == 2
    # without ADMIN a digest id is shown as user:x (FinalRequestProcessor)
    assert (r.int(), r.string(), r.string()) == (31, "digest", "alice:x")
    _, err, r = conn.call(jute.GET_ACL, ustr("/private"))
    assert (r.int(), r.int(), r.string()) == (2, 31, "digest")
    full = r.string()
    assert full.startswith("alice:") and full != "alice:x"
    # an unknown scheme: AUTHFAILED, then the connection closes (processPacket)
    _, err, _ = other.call(jute.AUTH, i32(0) + ustr("kerberos") + buf(b"x"), xid=jute.XID_AUTH)
    assert err == jute.AUTHFAILED and other.closed_by_server()


def test_requests_pipelined_before_the_connect_response(replica):
    """Java clients send setWatches and auth right after the ConnectRequest; writes sent that
    early get the new session too."""
    c = Jute(replica.port, connect=False)
    c.send_raw(frame(connect_request()) +
               frame(i32(1) + i32(jute.AUTH) + i32(0) + ustr("digest") + buf(b"bob:pw")) +
               frame(i32(2) + i32(jute.CREATE) + ustr("/early") + buf(b"") +
                     acl([(31, "auth", "")]) + i32(1)) +
               frame(i32(3) + i32(jute.GET_DATA) + ustr("/early") + boolean(False)))
    resp = c.read_connect()
    assert resp["timeout"] > 0
    assert c.read_message()[:3:2] == (1, jute.OK)
    assert c.read_message()[:3:2] == (2, jute.OK)
    xid, _, err, r = c.read_message()
    assert (xid, err, r.buffer()) == (3, jute.OK, b"")
    assert r.stat()["ephemeralOwner"] == resp["session_id"]


def test_refused_write_is_answered_after_the_writes_before_it(replica):
    """A create refused (NODEEXISTS) because of another client's create that is not applied
    yet is answered once that create is applied, as ZooKeeper's error txns keep their place
    in the commit order: the refused client then reads the node."""
    a, b = Jute(replica.port), Jute(replica.port)
    n = 300
    body = [ustr(f"/race{i}") + buf(b"") + acl(jute.OPEN_ACL) + i32(0) for i in range(n)]
    a.send_raw(b"".join(req(i + 1, jute.CREATE, body[i]) for i in range(n)))
    b.send_raw(b"".join(req(2 * i + 1, jute.CREATE, body[i]) +
                        req(2 * i + 2, jute.EXISTS, ustr(f"/race{i}") + boolean(False))
                        for i in range(n)))
    refused = 0
    for i in range(n):
        _, create_err, _ = b.wait_reply(2 * i + 1)
        _, exists_err, _ = b.wait_reply(2 * i + 2)
        assert exists_err == jute.OK, f"/race{i}: create said {create_err}, then NONODE"
        refused += create_err == jute.NODEEXISTS
    assert all(a.wait_reply(i + 1)[1] in (jute.OK, jute.NODEEXISTS) for i in range(n))
    assert refused > 0


@pytest.mark.parametrize("op", [999, jute.SASL, 20])
def test_unknown_opcode_is_unimplemented_then_closed(conn, op):
    _, err, _ = conn.call(op, b"whatever")
    assert err == jute.UNIMPLEMENTED
    assert conn.closed_by_server()


def test_close_session(replica, conn):
    conn.create("/bye", flags=1)
    assert conn.close_session()[1] == jute.OK
    assert conn.closed_by_server()
    assert Jute(replica.port).exists("/bye")[1] == jute.NONODE


def test_embedded_nul_is_bad_arguments(conn):
    assert conn.create("/a\0b")[1] == jute.BADARGUMENTS
    assert conn.exists("/a")[1] == jute.NONODE
    assert conn.get("/a\0b")[1] == jute.BADARGUMENTS


def test_data_over_the_limit(conn):
    assert conn.create("/big", b"x" * (1 << 20))[1] == jute.OK
    assert conn.create("/big2", b"x" * ((1 << 20) + 1))[1] == jute.BADARGUMENTS


def req(xid, op, body=b""):
    return frame(i32(xid) + i32(op) + body)


BAD_AFTER_HANDSHAKE = {
    "header cut short": frame(b"\0\0\0"),
    "empty frame": frame(b""),
    "string longer than the frame": req(1, jute.GET_DATA, i32(1000) + b"/x"),
    "negative string length": req(1, jute.GET_DATA, i32(-5) + b"/x" + boolean(False)),
    "body missing": req(1, jute.SET_DATA, ustr("/x")),
    "huge ACL count": req(1, jute.CREATE, ustr("/x") + buf(b"") + i32(1 << 30) + b"\0" * 64),
    "watch count above the frame": req(1, jute.SET_WATCHES, i64(0) + i32(1 << 20) + b"\0" * 40),
    "watch count above the limit": req(1, jute.SET_WATCHES, i64(0) + i32(200000) +
                                       b"\0\0\0\0" * 200000),
    "multi without its end": req(1, jute.MULTI, multi_op(jute.DELETE, ustr("/x") + i32(-1))),
    "multi with a read op": req(1, jute.MULTI, multi_op(jute.GET_DATA, ustr("/x") + b"\0") + END),
    "multiRead with a write op": req(1, jute.MULTI_READ,
                                     multi_op(jute.DELETE, ustr("/x") + i32(-1)) + END),
    "frame over the limit": i32(64 << 20) + b"\0" * 1000,
    "negative frame length": i32(-2) + b"\0" * 100,
}

BAD_HANDSHAKES = {
    "connect cut short": frame(b"\0" * 10),
    "connect passwd longer than the frame": frame(i32(0) + i64(0) + i32(4000) + i64(0) +
                                                  i32(1 << 20) + b"\0" * 8),
}


@pytest.fixture
def bystander(replica):
    """A session with an ephemeral, there before the bad input, untouched by it."""
    b = Jute(replica.port)
    b.create("/bystander", b"here", flags=1)
    yield b
    b.close()


@pytest.mark.parametrize("case", sorted(BAD_AFTER_HANDSHAKE) + sorted(BAD_HANDSHAKES))
def test_malformed_input_closes_only_that_connection(replica, bystander, case):
    if case in BAD_HANDSHAKES:
        c = Jute(replica.port, connect=False)
        c.send_raw(BAD_HANDSHAKES[case])
    else:
        c = Jute(replica.port)
        c.send_raw(BAD_AFTER_HANDSHAKE[case])
    assert c.closed_by_server()
    _, err, r = bystander.get("/bystander")
    assert err == jute.OK and r.buffer() == b"here"
    assert replica.fourlw("ruok") == "imok"
    assert Jute(replica.port).exists("/bystander")[1] == jute.OK


def test_four_letter_words_share_the_port(replica, conn):
    conn.create("/fl")
    assert replica.fourlw("ruok") == "imok"
    assert "Mode: standalone" in replica.fourlw("srvr")
    assert conn.exists("/fl")[1] == jute.OK


def test_frames_split_across_packets(replica):
    c = Jute(replica.port, connect=False)
    data = frame(connect_request()) + req(1, jute.EXISTS, ustr("/") + boolean(False))
    for i in range(len(data)):
        c.send_raw(data[i:i + 1])
    assert c.read_connect()["timeout"] > 0
    assert c.read_message()[:3:2] == (1, jute.OK)


def test_stat_is_the_same_as_mountctl_sees(replica, conn):
    conn.create("/same", b"abc")
    conn.set("/same", b"abcd")
    _, _, r = conn.exists("/same")
    st = r.stat()
    mst = json.loads(replica.mc.ok("-w", "json", "stat", "/same"))
    for k, v in st.items():
        assert mst[k] == v, k

