"""Both protocols on one tree: nodes made through ZooKeeper's wire protocol are seen by
mountctl (native protocol) and the other way round, watches fire across protocols, and the
zkfs-only parts of a node (kind, policy, NodeMetaChanged) stay invisible to ZooKeeper
clients."""

import json
import threading

import pytest
from kazoo.protocol.states import EventType

import jute
import native


@pytest.fixture
def ensemble(make_replica):
    yield from jute.ensemble_fixture(make_replica)


STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
               "ephemeralOwner", "dataLength", "numChildren", "pzxid")


def test_nodes_cross_protocols(ensemble):
    mc = ensemble.server(0).mc
    zk = ensemble.kazoo(0)  # the same server: this is about protocols, not replication lag
    zk.create("/mix/from-jute", b"jute data", makepath=True)
    zk.set("/mix/from-jute", b"jute data 2")
    assert mc.ok("get", "/mix/from-jute") == "jute data 2"
    assert mc.ok("ls", "/mix") == "from-jute"
    mst = json.loads(mc.ok("-w", "json", "stat", "/mix/from-jute"))
    zst = zk.exists("/mix/from-jute")
    assert {k: mst[k] for k in STAT_FIELDS} == {k: getattr(zst, k) for k in STAT_FIELDS}
    assert mc.ok("create", "/mix/from-native", "native data") == "/mix/from-native"
    seq = mc.ok("create", "-s", "/mix/seq-", "s")
    assert zk.get("/mix/from-native")[0] == b"native data"
    assert sorted(zk.get_children("/mix")) == ["from-jute", "from-native", seq.split("/")[-1]]
    # sequence numbers come from one counter, whoever creates
    assert zk.create("/mix/seq-", sequence=True) == "/mix/seq-0000000003"
    mc.ok("rm", "/mix/from-jute")
    assert zk.exists("/mix/from-jute") is None
    eph = zk.create("/mix/eph", ephemeral=True)
    assert json.loads(mc.ok("-w", "json", "stat", eph))["ephemeralOwner"] == zk.client_id[0]
    zk.stop()
    mc.fail("get", eph, error="NONODE")


def test_jute_watch_fires_on_a_native_change(ensemble):
    mc = ensemble.server(1).mc
    zk = ensemble.kazoo(0)
    zk.create("/wx", b"0")
    got = []
    fired = threading.Event()

    def watch(ev):
        got.append((ev.type, ev.path))
        fired.set()

    zk.get("/wx", watch=watch)
    mc.ok("set", "/wx", "1")
    assert fired.wait(10) and got == [(EventType.CHANGED, "/wx")]
    fired.clear()
    zk.get_children("/wx", watch=watch)
    mc.ok("create", "/wx/kid", "")
    assert fired.wait(10) and got[-1] == (EventType.CHILD, "/wx")


def test_native_watch_fires_on_a_jute_change(ensemble):
    n = native.Native(ensemble.server(0).port)
    zk = ensemble.kazoo(1)
    assert n.add_watch("/nw", recursive=True).err == 0
    path = zk.create("/nw", b"a")
    ev = n.wait_event()
    assert (ev.type, ev.path) == (native.NODE_CREATED, path)
    assert ev.zxid == zk.exists("/nw").czxid
    zk.set("/nw", b"b")
    assert n.wait_event().type == native.NODE_DATA_CHANGED
    zk.delete("/nw")
    assert n.wait_event().type == native.NODE_DELETED
    n.close_session()


def test_zkfs_metadata_is_invisible_to_jute(ensemble):
    mc = ensemble.server(0).mc
    raw = jute.Jute(ensemble.server(0).port)
    raw.create("/dir")
    assert raw.add_watch("/dir", 0)[1] == jute.OK
    _, _, r = raw.exists("/dir")
    before = r.stat()
    mc.ok("policy", "/dir", "ephemeral,sequential")
    assert mc.ok("policy", "/dir") == "ephemeral,sequential"
    _, _, r = raw.exists("/dir")
    assert r.stat() == before and r.left() == 0 and raw.events == []
    zxid, err, _ = raw.set("/dir", b"x")
    ev = raw.wait_event()
    assert (ev["type"], ev["zxid"]) == (jute.DATA_CHANGED, zxid)
