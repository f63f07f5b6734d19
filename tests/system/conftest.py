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
