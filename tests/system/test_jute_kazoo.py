"""kazoo (Debian's python3-kazoo, unchanged) against zkfs: CRUD with versions and every Stat
field, sequential and ephemeral nodes, session expiry, watches, transactions, the recipes,
and a session that survives its server's restart.

Tests named *across_servers* need several servers to mean all they say; on the standalone
replica they use separate connections to it (see jute.py)."""

import signal
import threading
import time

import pytest
from kazoo.exceptions import (BadVersionError, LockTimeout, NoChildrenForEphemeralsError,
                              NodeExistsError, NoNodeError, NotEmptyError, RolledBackError)
from kazoo.protocol.states import EventType, KazooState
from kazoo.recipe.barrier import Barrier
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lock import Lock
from kazoo.recipe.queue import LockingQueue, Queue
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

import jute
from harness import wait_for


@pytest.fixture
def ensemble(make_replica):
    yield from jute.ensemble_fixture(make_replica)


def test_crud_with_versions_and_every_stat_field(ensemble):
    zk = ensemble.kazoo()
    t0 = int(time.time() * 1000)
    assert zk.create("/crud", b"one") == "/crud"
    data, st = zk.get("/crud")
    assert data == b"one"
    assert st.czxid == st.mzxid == st.pzxid > 0
    assert abs(st.ctime - t0) < 60000 and st.mtime == st.ctime
    assert (st.version, st.cversion, st.aversion) == (0, 0, 0)
    assert (st.ephemeralOwner, st.dataLength, st.numChildren) == (0, 3, 0)
    with pytest.raises(NodeExistsError):
        zk.create("/crud")
    st1 = zk.set("/crud", b"three", version=0)
    assert st1.version == 1 and st1.mzxid > st.czxid and st1.czxid == st.czxid
    assert st1.mtime >= st.mtime and st1.dataLength == 5
    with pytest.raises(BadVersionError):
        zk.set("/crud", b"x", version=0)
    zk.create("/crud/kid")
    _, st2 = zk.get("/crud")
    kid = zk.exists("/crud/kid")
    assert (st2.cversion, st2.numChildren, st2.pzxid) == (1, 1, kid.czxid)
    assert st2.mzxid == st1.mzxid  # children do not touch the parent's data
    with pytest.raises(NotEmptyError):
        zk.delete("/crud")
    zk.delete("/crud/kid")
    _, st3 = zk.get("/crud")
    # a delete moves pzxid but not cversion (ZOOKEEPER-1046)
    assert st3.cversion == 1 and st3.numChildren == 0 and st3.pzxid > st2.pzxid
    st4 = zk.set_acls("/crud", zk.get_acls("/crud")[0], version=0)
    assert st4.aversion == 1 and st4.version == 1
    with pytest.raises(BadVersionError):
        zk.delete("/crud", version=0)
    zk.delete("/crud", version=1)
    assert zk.exists("/crud") is None
    with pytest.raises(NoNodeError):
        zk.get("/crud")
    zk.ensure_path("/deep/er/path")
    assert zk.get_children("/deep/er") == ["path"]
    children, st = zk.get_children("/deep", include_data=True)
    assert children == ["er"] and st.numChildren == 1


def test_sequential_and_ephemeral_nodes(ensemble):
    a, b = ensemble.kazoo(0), ensemble.kazoo(1)
    a.create("/seq")
    made = [a.create("/seq/n-", b"", sequence=True) for _ in range(3)]
    assert made == [f"/seq/n-{i:010d}" for i in range(3)]
    e = a.create("/seq/e-", b"", ephemeral=True, sequence=True)
    assert e == "/seq/e-0000000003"
    b.sync("/seq")  # b is on another server: sync before reading a's writes
    assert b.exists(e).ephemeralOwner == a.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        a.create(e + "/child")
    a.stop()  # closeSession: its ephemerals go at once
    b.sync("/seq")
    assert b.exists(e) is None
    assert sorted(b.get_children("/seq")) == [p.split("/")[-1] for p in made]


def test_session_expiry(ensemble):
    """A session whose client goes silent expires after its timeout: its ephemerals go, and a
    client coming back with it is told it expired (timeout 0 in the ConnectResponse)."""
    raw = jute.Jute(ensemble.server(0).port, timeout_ms=400)
    raw.create("/doomed", flags=1)
    sid, passwd = raw.session_id, raw.passwd
    zk = ensemble.kazoo(1)
    gone = threading.Event()
    zk.exists("/doomed", watch=lambda ev: ev.type == EventType.DELETED and gone.set())
    raw.close()  # no closeSession: the session just stops pinging
    assert gone.wait(10)
    back = ensemble.kazoo(0, client_id=(sid, passwd))
    # told the session expired, kazoo started a new one
    assert back.connected and back.client_id[0] != sid
    assert back.exists("/doomed") is None


def test_session_expiry_seen_by_a_connected_client(ensemble):
    """The server hears nothing from the client for longer than the session timeout (here it
    is frozen meanwhile, and the client knows no other server): the session expires, and
    when kazoo reconnects it is told so, reports LOST and starts a new session."""
    zk = ensemble.kazoo(0, timeout=0.4)
    states = []
    zk.add_listener(states.append)
    zk.create("/doomed", ephemeral=True)
    sid = zk.client_id[0]
    server = ensemble.server(0)
    server.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(1.5)
    finally:
        server.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: KazooState.LOST in states and zk.connected, 30,
             what="LOST, then a new session")
    assert zk.client_id[0] != sid
    assert zk.exists("/doomed") is None


def test_data_and_child_watches_across_servers(ensemble):
    watcher, writer = ensemble.kazoo(0), ensemble.kazoo(1)
    writer.create("/w", b"0")
    watcher.sync("/w")  # the watcher is on another server: sync before reading the writer's
    events = []
    got = threading.Condition()

    def record(ev):
        with got:
            events.append((ev.type, ev.path))
            got.notify_all()

    def wait_events(n):
        with got:
            assert got.wait_for(lambda: len(events) >= n, 10), events
            return list(events)

    watcher.get("/w", watch=record)
    watcher.get_children("/w", watch=record)
    writer.set("/w", b"1")
    assert wait_events(1) == [(EventType.CHANGED, "/w")]
    writer.create("/w/kid")
    assert wait_events(2)[1] == (EventType.CHILD, "/w")
    # one-shot: no more events until set again
    writer.set("/w", b"2")
    watcher.exists("/w/kid", watch=record)
    writer.delete("/w/kid")
    assert wait_events(3)[2] == (EventType.DELETED, "/w/kid")
    assert len(events) == 3


def test_transactions(ensemble):
    zk = ensemble.kazoo()
    zk.create("/tx", b"0")
    t = zk.transaction()
    t.create("/tx/a", b"a")
    t.set_data("/tx", b"1", version=0)
    t.check("/tx", 1)
    t.delete("/tx/a")
    results = t.commit()
    assert results[0] == "/tx/a" and results[1].version == 1 and results[2:] == [True, True]
    assert zk.get("/tx")[0] == b"1" and zk.exists("/tx/a") is None
    t = zk.transaction()
    t.create("/tx/b")
    t.check("/tx", 7)
    t.delete("/tx")
    results = t.commit()
    assert isinstance(results[0], RolledBackError) and isinstance(results[1], BadVersionError)
    assert zk.exists("/tx/b") is None and zk.exists("/tx") is not None


def test_lock_with_several_clients_across_servers(ensemble):
    clients = [ensemble.kazoo(i) for i in range(3)]
    inside, overlaps, rounds = [0], [0], []
    guard = threading.Lock()

    def work(i, zk):
        lock = Lock(zk, "/locks/res", identifier=f"client-{i}")
        for _ in range(3):
            with lock:
                with guard:
                    inside[0] += 1
                    overlaps[0] += inside[0] > 1
                time.sleep(0.01)
                rounds.append(i)
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=work, args=(i, zk)) for i, zk in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert overlaps[0] == 0 and sorted(rounds) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # a holder's death frees the lock for the others
    holder = Lock(clients[0], "/locks/res", identifier="holder")
    assert holder.acquire(timeout=10)
    other = Lock(clients[1], "/locks/res", identifier="waiter")
    with pytest.raises(LockTimeout):
        other.acquire(timeout=0.3)
    assert Lock(clients[2], "/locks/res").contenders() == ["holder"]
    clients[0].stop()
    assert other.acquire(timeout=10)
    other.release()


def test_election(ensemble):
    a, b = ensemble.kazoo(0), ensemble.kazoo(1)
    leading = {"a": threading.Event(), "b": threading.Event()}
    release = {"a": threading.Event(), "b": threading.Event()}

    def lead(name):
        leading[name].set()
        release[name].wait(30)

    ea, eb = Election(a, "/election", "a"), Election(b, "/election", "b")
    ta = threading.Thread(target=ea.run, args=(lead, "a"))
    ta.start()
    assert leading["a"].wait(10)
    tb = threading.Thread(target=eb.run, args=(lead, "b"))
    tb.start()
    wait_for(lambda: len(ea.contenders()) == 2, 10, what="two contenders")
    assert ea.contenders() == ["a", "b"] and not leading["b"].is_set()
    release["a"].set()  # a steps down
    ta.join(10)
    assert leading["b"].wait(10)
    release["b"].set()
    tb.join(10)


def test_counter(ensemble):
    clients = [ensemble.kazoo(i) for i in range(2)]
    counters = [Counter(zk, "/counter") for zk in clients]

    def bump(c):
        for _ in range(20):
            c += 1

    threads = [threading.Thread(target=bump, args=(c,)) for c in counters]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert Counter(clients[0], "/counter").value == 40
    c = Counter(clients[1], "/counter")
    c -= 5
    assert c.value == 35 and c.pre_value == 40 and c.post_value == 35


def test_barrier(ensemble):
    a, b = ensemble.kazoo(0), ensemble.kazoo(1)
    barrier = Barrier(a, "/barrier")
    barrier.create()
    b.sync("/barrier")  # b is on another server: ZooKeeper promises nothing across clients
    assert not Barrier(b, "/barrier").wait(timeout=0.2)
    passed = []
    t = threading.Thread(target=lambda: passed.append(Barrier(b, "/barrier").wait(timeout=10)))
    t.start()
    time.sleep(0.1)
    barrier.remove()
    t.join(15)
    assert passed == [True]


def test_queue_and_locking_queue(ensemble):
    a, b = ensemble.kazoo(0), ensemble.kazoo(1)
    q = Queue(a, "/queue")
    for item in (b"one", b"two", b"three"):
        q.put(item)
    q.put(b"urgent", priority=1)
    qb = Queue(b, "/queue")
    b.sync("/queue")
    assert len(qb) == 4
    assert [qb.get() for _ in range(4)] == [b"urgent", b"one", b"two", b"three"]
    assert qb.get() is None
    lq = LockingQueue(a, "/lqueue")
    lq.put_all([b"x", b"y"])
    lb = LockingQueue(b, "/lqueue")
    b.sync("/lqueue")
    assert lb.get(timeout=5) == b"x"
    assert lb.consume()
    assert lb.get(timeout=5) == b"y" and lb.consume()
    assert len(lb) == 0


def test_data_watch_and_children_watch(ensemble):
    watcher, writer = ensemble.kazoo(0), ensemble.kazoo(1)
    seen, kids = [], []
    DataWatch(watcher, "/dw", lambda data, stat: seen.append((data, stat and stat.version)))
    wait_for(lambda: seen == [(None, None)], 10, what="DataWatch's first call")
    writer.create("/dw", b"a")
    wait_for(lambda: seen[-1:] == [(b"a", 0)], 10, what="DataWatch to see the create")
    writer.set("/dw", b"b")
    wait_for(lambda: seen[-1:] == [(b"b", 1)], 10, what="DataWatch to see the set")
    ChildrenWatch(watcher, "/dw", lambda children: kids.append(sorted(children)))
    writer.create("/dw/x")
    writer.create("/dw/y")
    wait_for(lambda: kids and kids[-1] == ["x", "y"], 10, what="ChildrenWatch")
    writer.delete("/dw/x")
    wait_for(lambda: kids[-1] == ["y"], 10, what="ChildrenWatch to see the delete")


def test_reconnect_keeps_the_session_across_a_restart(ensemble):
    """The client loses its server, comes back with its session id and password, and finds
    its session, ephemerals and watches as they were. With several servers it would move to
    another one; on one replica that replica restarts in between."""
    zk = ensemble.kazoo(timeout=4.0)
    sid = zk.client_id[0]
    zk.create("/mine", b"e", ephemeral=True)
    states = []
    zk.add_listener(states.append)
    # restart the server the client is on: in a cluster it moves to another one meanwhile
    port = zk._connection._socket.getpeername()[1]
    ensemble.restart([r.port for r in ensemble.replicas].index(port))
    wait_for(lambda: zk.connected and KazooState.SUSPENDED in states, 15,
             what="kazoo to reconnect")
    assert KazooState.LOST not in states and zk.client_id[0] == sid
    assert zk.exists("/mine").ephemeralOwner == sid
    zk.set("/mine", b"still mine")
    other = ensemble.kazoo()
    assert other.get("/mine")[0] == b"still mine"
