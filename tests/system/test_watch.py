"""Watches: `mountctl watch [-r]` against changes made by other clients, and one-shot and
persistent watches over the native protocol with ZooKeeper's event rules and ordering."""

import json
import queue
import signal
import threading

import pytest

import native
from harness import wait_for


class Watcher:
    """A running `mountctl watch` whose stdout lines are collected by a thread."""

    def __init__(self, replica, *args, json_lines=False):
        before = watch_count(replica)
        fmt = ("-w", "json") if json_lines else ()
        self.proc = replica.mc.popen(*fmt, "watch", *args)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(lambda: self.proc.poll() is not None or watch_count(replica) > before, 15,
                 what="mountctl watch to register its watch")
        assert self.proc.poll() is None, self.proc.stderr.read()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout=10):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("no event line from mountctl watch in time")
        assert line is not None, f"mountctl watch exited: {self.proc.stderr.read()!r}"
        return line

    def expect(self, events, timeout=10):
        """Reads len(events) lines; each must be "Type path zxid" with the given type and
        path. Returns their zxids."""
        got = [self.next(timeout).split() for _ in events]
        assert [g[:2] for g in got] == [list(e) for e in events]
        return [int(g[2], 16) for g in got]

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(10)


def watch_count(replica):
    return int(replica.mntr().get("zk_watch_count", "0"))


def stat(mc, path):
    return json.loads(mc.ok("-w", "json", "stat", path))


def test_watch_node(replica, mc):
    w = Watcher(replica, "/w")
    mc.ok("create", "/w", "1")
    mc.ok("set", "/w", "2")
    mc.ok("create", "/w/c")
    mc.ok("set", "/w/c", "x")     # not /w's data nor its child list: no event
    mc.ok("create", "/w/c/d")     # a grandchild: no event for a non-recursive watch
    mc.ok("rm", "/w/c/d")
    mc.ok("rm", "/w/c")
    mc.ok("set", "/w", "3")
    mc.ok("rm", "/w")
    zx = w.expect([("NodeCreated", "/w"), ("NodeDataChanged", "/w"),
                   ("NodeChildrenChanged", "/w"), ("NodeChildrenChanged", "/w"),
                   ("NodeDataChanged", "/w"), ("NodeDeleted", "/w")])
    assert zx == sorted(zx) and len(set(zx)) == len(zx)
    # The watch stays (persistent): a new /w is seen again.
    created = mc.ok("create", "/w")
    assert created == "/w"
    (z,) = w.expect([("NodeCreated", "/w")])
    assert z == stat(mc, "/w")["czxid"]
    assert w.stop() == 0


def test_event_zxid_is_the_change(replica, mc):
    mc.ok("create", "/z", "a")
    w = Watcher(replica, "/z")
    mc.ok("set", "/z", "b")
    (z,) = w.expect([("NodeDataChanged", "/z")])
    assert z == stat(mc, "/z")["mzxid"]
    w.stop()


def test_watch_recursive(replica, mc):
    mc.ok("create", "/r")
    w = Watcher(replica, "-r", "/r")
    mc.ok("create", "/r/a", "1")
    mc.ok("create", "/r/a/b")
    mc.ok("set", "/r/a/b", "deep")
    mc.ok("set", "/r", "top")
    mc.ok("create", "/other")     # outside the watched tree
    mc.ok("create", "/rr")        # a sibling sharing the prefix is not a descendant
    mc.ok("rm", "/r/a/b")
    mc.ok("rm", "-r", "/r")
    w.expect([("NodeCreated", "/r/a"), ("NodeCreated", "/r/a/b"),
              ("NodeDataChanged", "/r/a/b"), ("NodeDataChanged", "/r"),
              ("NodeDeleted", "/r/a/b"), ("NodeDeleted", "/r/a"), ("NodeDeleted", "/r")])
    mc.ok("create", "/r")
    w.expect([("NodeCreated", "/r")])
    w.stop()


def test_watch_json(replica, mc):
    w = Watcher(replica, "-r", "/j", json_lines=True)
    mc.ok("create", "/j", "x")
    mc.ok("create", "/j/k")
    evs = [json.loads(w.next()) for _ in range(2)]
    assert [(e["type"], e["path"]) for e in evs] == [("NodeCreated", "/j"),
                                                     ("NodeCreated", "/j/k")]
    assert evs[1]["zxid"] == stat(mc, "/j/k")["czxid"]
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(10) == 0


def test_watch_ends_on_sigint_and_releases_watch(replica, mc):
    w = Watcher(replica, "/gone")
    assert w.stop() == 0
    wait_for(lambda: watch_count(replica) == 0, 10, what="the watch to be released")


def test_watch_bad_path(mc):
    mc.fail("watch", "no/slash", error="BADARGUMENTS")


# --- the native protocol ----------------------------------------------------------------------


def test_one_shot_data_watch(replica):
    a = native.Native(replica.port)
    b = native.Native(replica.port)
    assert a.create("/d", b"1").err == 0
    assert a.get("/d", watch=True).data == b"1"
    assert b.set("/d", b"2").err == 0
    ev = a.wait_event()
    assert (ev.type, ev.path) == (native.NODE_DATA_CHANGED, "/d")
    assert ev.state == 3  # SyncConnected
    assert b.set("/d", b"3").err == 0
    # One-shot: no second event. A ping round trip orders it after anything pending.
    assert a.ping().err == 0
    assert a.events == []


def test_exists_watch_on_missing_node(replica):
    a = native.Native(replica.port)
    b = native.Native(replica.port)
    assert a.exists("/later", watch=True).err == native.NONODE
    assert b.create("/later", b"").err == 0
    ev = a.wait_event()
    assert (ev.type, ev.path) == (native.NODE_CREATED, "/later")
    assert ev.zxid == b.exists("/later").stat.czxid


def test_child_watch(replica):
    a = native.Native(replica.port)
    b = native.Native(replica.port)
    assert a.create("/kids", b"").err == 0
    r = a.children("/kids", watch=True)
    assert r.err == 0 and list(r.children) == []
    assert b.set("/kids", b"data").err == 0  # data change: not a child event
    assert b.create("/kids/x", b"").err == 0
    ev = a.wait_event()
    assert (ev.type, ev.path) == (native.NODE_CHILDREN_CHANGED, "/kids")
    assert a.ping().err == 0 and a.events == []


def test_delete_fires_data_and_child_watches(replica):
    a = native.Native(replica.port)
    b = native.Native(replica.port)
    assert a.create("/del", b"").err == 0
    a.get("/del", watch=True)
    a.children("/del", watch=True)
    assert b.delete("/del").err == 0
    ev = a.wait_event()
    assert (ev.type, ev.path) == (native.NODE_DELETED, "/del")
    assert a.ping().err == 0
    # ZooKeeper delivers one NodeDeleted per client and path, whatever watches it had.
    assert a.events == []


def test_event_before_the_read_that_sees_the_change(replica):
    """ZooKeeper's ordering guarantee: a client sees the watch event before any reply that
    shows the new data."""
    a = native.Native(replica.port)
    b = native.Native(replica.port)
    assert a.create("/ord", b"0").err == 0
    for i in range(1, 50):
        assert a.get("/ord", watch=True).err == 0
        a.log.clear()
        assert b.set("/ord", str(i).encode()).err == 0
        while a.get("/ord").data != str(i).encode():
            pass
        # The reply that showed the new data is the last message read; the event must
        # have come before it.
        assert ("event", native.NODE_DATA_CHANGED, "/ord") in a.log, \
            f"round {i}: a read returned the new data before the watch event: {a.log}"
        a.events.clear()


def test_persistent_recursive_watch(replica):
    a = native.Native(replica.port)
    b = native.Native(replica.port)
    assert a.add_watch("/tree", recursive=True).err == 0
    b.create("/tree", b"")
    b.create("/tree/x", b"")
    b.set("/tree/x", b"1")
    b.delete("/tree/x")
    got = []
    for _ in range(4):
        ev = a.wait_event()
        got.append((ev.type, ev.path))
    assert got == [(native.NODE_CREATED, "/tree"), (native.NODE_CREATED, "/tree/x"),
                   (native.NODE_DATA_CHANGED, "/tree/x"), (native.NODE_DELETED, "/tree/x")]
    assert a.ping().err == 0 and a.events == []


def test_watches_survive_session_reattach(replica):
    """A client that re-attaches its session on a new connection and sends SetWatches is told
    of changes it missed."""
    a = native.Native(replica.port, timeout_ms=4000)
    assert a.create("/sw", b"1").err == 0
    r = a.get("/sw", watch=True)
    last = r.zxid
    sid, pw = a.session_id, a.passwd
    a.close()
    b = native.Native(replica.port)
    assert b.set("/sw", b"2").err == 0
    a2 = native.Native(replica.port, timeout_ms=4000, session_id=sid, passwd=pw, last_zxid=last)
    assert a2.connect_reply.err == 0
    sw = a2.call("set_watches", native.pb.SetWatchesRequest(relative_zxid=last,
                                                           data_watches=["/sw"]))
    assert sw.err == 0
    ev = a2.wait_event()
    assert (ev.type, ev.path) == (native.NODE_DATA_CHANGED, "/sw")


def test_wchs_and_mntr_count_watches(replica):
    a = native.Native(replica.port)
    a.create("/cw", b"")
    before = watch_count(replica)
    a.get("/cw", watch=True)
    a.children("/cw", watch=True)
    assert watch_count(replica) == before + 2
    out = replica.fourlw("wchs")
    assert "Total watches:" in out
    a.close_session()
    wait_for(lambda: watch_count(replica) == before, 10, what="the watches to go with the "
             "session")
