"""multi over the native protocol: all-or-nothing, one zxid, ZooKeeper's per-op results."""

import native

pb = native.pb
RUNTIMEINCONSISTENCY = -2


def op(**kw):
    return pb.Op(**kw)


def multi(c, *ops):
    return c.call("multi", pb.MultiRequest(ops=list(ops)))


def test_multi_commits_all_with_one_zxid(replica):
    c = native.Native(replica.port)
    r = multi(c,
              op(create=native.create_request("/m", b"0")),
              op(create=native.create_request("/m/a", b"a")),
              op(set_data=pb.SetDataRequest(path="/m", data=b"1", version=0)),
              op(check=pb.CheckRequest(path="/m", version=1)),
              op(create=native.create_request("/m/s-", b"", native.PERSISTENT_SEQUENTIAL)))
    assert r.err == 0, r
    assert [x.err for x in r.results] == [0, 0, 0, 0, 0]
    assert r.results[0].path == "/m"
    assert r.results[4].path == "/m/s-0000000001"
    m, a = c.exists("/m").stat, c.exists("/m/a").stat
    assert m.czxid == m.mzxid == a.czxid == m.pzxid
    assert m.version == 1 and m.cversion == 2
    assert c.get("/m").data == b"1"


def test_failed_multi_changes_nothing(replica):
    c = native.Native(replica.port)
    assert c.create("/x", b"keep").err == 0
    before = c.exists("/x").stat
    r = multi(c,
              op(create=native.create_request("/new1", b"")),
              op(set_data=pb.SetDataRequest(path="/x", data=b"changed")),
              op(create=native.create_request("/x", b"")),  # NODEEXISTS
              op(create=native.create_request("/new2", b"")))
    assert r.err == native.NODEEXISTS, r
    # ZooKeeper: ops before the failure report OK, the failed op its error, later ones
    # RUNTIMEINCONSISTENCY.
    assert [x.err for x in r.results] == [0, 0, native.NODEEXISTS, RUNTIMEINCONSISTENCY]
    assert c.exists("/new1").err == native.NONODE
    assert c.exists("/new2").err == native.NONODE
    assert c.get("/x").data == b"keep"
    assert c.exists("/x").stat == before


def test_multi_check_version(replica):
    c = native.Native(replica.port)
    assert c.create("/v", b"").err == 0
    r = multi(c, op(check=pb.CheckRequest(path="/v", version=3)),
              op(delete=pb.DeleteRequest(path="/v")))
    assert r.err == native.BADVERSION
    assert c.exists("/v").err == 0
    r = multi(c, op(check=pb.CheckRequest(path="/v", version=0)),
              op(delete=pb.DeleteRequest(path="/v")))
    assert r.err == 0
    assert c.exists("/v").err == native.NONODE


def test_multi_sees_its_own_earlier_ops(replica):
    c = native.Native(replica.port)
    r = multi(c, op(create=native.create_request("/t", b"")),
              op(create=native.create_request("/t/u", b"")),
              op(delete=pb.DeleteRequest(path="/t/u")),
              op(delete=pb.DeleteRequest(path="/t")))
    assert r.err == 0, r
    assert c.exists("/t").err == native.NONODE


def test_multi_watch_events(replica):
    a = native.Native(replica.port)
    b = native.Native(replica.port)
    assert a.add_watch("/w", recursive=True).err == 0
    r = multi(b, op(create=native.create_request("/w", b"")),
              op(create=native.create_request("/w/x", b"")))
    assert r.err == 0
    evs = [a.wait_event() for _ in range(2)]
    assert [(e.type, e.path) for e in evs] == [(native.NODE_CREATED, "/w"),
                                               (native.NODE_CREATED, "/w/x")]
    assert evs[0].zxid == evs[1].zxid


def test_empty_multi(replica):
    c = native.Native(replica.port)
    r = multi(c)
    assert r.err == 0 and len(r.results) == 0
