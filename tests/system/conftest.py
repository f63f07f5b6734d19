"""Fixtures for the system tests. Every process a test starts is killed by PID at teardown;
a failing test gets the replicas' logs in its report."""

import signal
import subprocess

import pytest

from harness import SANITIZER_MARKS, Replica


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for r in getattr(item, "_zkfs_replicas", []):
            log = r.log()
            if len(log) > 40000:
                log = "[... cut ...]\n" + log[-40000:]
            rep.sections.append((f"zkfs-replica {r.name} log ({r.log_path})", log))


@pytest.fixture
def procs():
    """Every process a test starts; killed by PID at teardown."""
    registry = []
    yield registry
    for p in registry:
        if p.poll() is None:
            p.kill()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
    for p in registry:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()


@pytest.fixture
def make_replica(tmp_path, procs, request):
    """make_replica(name="r1", whitelist="*", start=True, **config) -> Replica. Config keys
    with dots are written with "__" (zkfs__maxDataSize=...), or passed in a dict as cfg=."""
    made = []
    request.node._zkfs_replicas = made

    def make(name=None, whitelist="*", start=True, cfg=None, **kw):
        r = Replica(tmp_path, procs, name or f"r{len(made) + 1}", whitelist, **kw)
        if cfg:
            r.cfg.update(cfg)
        made.append(r)
        if start:
            r.start()
        return r

    yield make
    # A clean stop (so that sanitizer builds can report leaks), kill -9 if it hangs; the
    # procs fixture kills whatever is left.
    for r in made:
        if r.running():
            r.proc.send_signal(signal.SIGTERM)
            try:
                r.proc.wait(10)
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait(10)
    for r in made:
        bad = [ln for ln in r.log().splitlines() if any(m in ln for m in SANITIZER_MARKS)]
        if bad:
            pytest.fail(f"sanitizer report in {r.name}'s log: {bad[0]}")


@pytest.fixture
def replica(make_replica):
    """A running standalone replica with every four-letter word allowed."""
    return make_replica()


@pytest.fixture
def mc(replica):
    """mountctl against the replica fixture."""
    return replica.mc


# ---- Filesystem (zkfs-fused) fixtures: see fs_harness.py ----

import fs_harness  # noqa: E402


@pytest.fixture
def make_mount(make_replica, procs, tmp_path, request):
    """make_mount(replica_or_servers, name=None, opts=(), start=True, root=tmp_path) ->
    fs_harness.Mount (mountpoint ROOT/fs-NAME/mnt):
    zkfs-fused in the foreground with -o auto_unmount. At teardown every mount is unmounted
    (fusermount3 -u, -uz if busy) and its daemon killed by PID if it does not exit, even when
    the test failed; leftovers are reported. A guard kills the daemons of a test that hangs."""
    fs_harness.register_report_plugin(request.config)
    made = []
    request.node._zkfs_mounts = made
    guard = fs_harness.Guard(made)

    def make(target, name=None, opts=(), start=True, timeout=20, root=None):
        servers = target if isinstance(target, str) else target.servers
        name = name or ("abcdefgh"[len(made)] if len(made) < 8 else f"m{len(made)}")
        m = fs_harness.Mount(servers, root or tmp_path, procs, name, opts)
        made.append(m)
        if start:
            m.start(timeout=timeout)
        return m

    yield make
    guard.cancel()
    problems = []
    for m in reversed(made):
        problems += m.cleanup()
    if guard.fired:
        problems.insert(0, f"the test ran over {fs_harness.HANG_GUARD_S}s: its zkfs-fused "
                           f"daemons were killed by the hang guard")
    for m in made:
        bad = fs_harness.sanitizer_lines(m.log())
        if bad:
            problems.append(f"sanitizer report in {m.label}'s log: {bad[0]}")
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def mount(replica, make_mount):
    """One mount of the replica fixture."""
    return make_mount(replica)


@pytest.fixture
def mounts2(replica, make_mount):
    """Two mounts (a, b) of the same replica, as two machines would have."""
    return make_mount(replica, "a"), make_mount(replica, "b")


@pytest.fixture
def make_inotify(make_mount, procs, request):
    """make_inotify(mount_or_dir, events=DEFAULT_EVENTS) -> a started fs_harness.Inotify
    (`inotifywait -m -r` after an `ls -R`, once it printed "Watches established"); stopped
    before the mounts are unmounted."""
    made = []
    request.node._zkfs_inotify = made

    def make(target, events=fs_harness.DEFAULT_EVENTS, name=None):
        root = target.mountpoint if isinstance(target, fs_harness.Mount) else str(target)
        w = fs_harness.Inotify(root, procs, events, name or f"w{len(made) + 1}")
        made.append(w)
        return w.start()

    yield make
    for w in made:
        w.stop()
