"""Failures (DESIGN §3 "Failure"): with no replica, operations fail with EIO within the bound
(op_timeout) instead of hanging, a failed commit is returned by close/fsync, the mount recovers
when a replica comes back, a dead server listed first in SERVERS is skipped, kill -9 of the
daemon is cleaned up by auto_unmount, and a session expiry gives a new session without the old
ephemerals."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from fs_harness import read, read_or_none, run, write, zexists, zget, zstat
from harness import free_port, wait_for

OP_TIMEOUT_MS = 2000
SLACK_S = 10  # scheduling, process start-up, a slow CI machine; not a performance claim

# One filesystem operation in a child process (so that a hang cannot take the test runner
# with it); prints the errno name (or OK) and the seconds the operation took.
PROBE = r"""
import errno, os, sys, time
op, path = sys.argv[1], sys.argv[2]
t = time.monotonic()
try:
    if op == "mkdir":
        os.mkdir(path)
    elif op == "create":
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
    elif op == "overwrite":
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, b"y")
        finally:
            os.close(fd)
    elif op == "write":
        fd = os.open(path, os.O_WRONLY)
        t = time.monotonic()
        try:
            os.write(fd, b"w")
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
    elif op == "unlink":
        os.unlink(path)
    elif op == "rename":
        os.rename(path, path + ".moved")
    elif op == "setxattr":
        os.setxattr(path, "user.zk.data", b"z")
    res = "OK"
except OSError as e:
    res = errno.errorcode.get(e.errno, str(e.errno))
print(res, round(time.monotonic() - t, 3))
"""


def probe(op, path, bound_s):
    """Runs one operation in a child; returns (errno name or "OK", seconds). Fails the test
    if the child is still blocked well past the bound."""
    t = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-c", PROBE, op, str(path)], capture_output=True,
                           text=True, timeout=bound_s + 30, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{op} {path}: still blocked {bound_s + 30:.0f}s after it started (hang)")
    assert r.returncode == 0, r.stderr
    res, secs = r.stdout.split()
    return res, float(secs), time.monotonic() - t


def test_dead_replica_gives_eio_within_the_bound_then_recovers(make_replica, make_mount):
    r = make_replica()
    m = make_mount(r, opts=[f"op_timeout={OP_TIMEOUT_MS}", "session_timeout=2000"])
    mc = r.mc
    write(m / "f", "v1")
    write(m / "g", "g")
    os.mkdir(m / "d")
    bound = OP_TIMEOUT_MS / 1000 + SLACK_S
    r.kill()

    res, secs, wall = probe("mkdir", m / "newdir", bound)
    assert res == "EIO" and wall < bound, (f"mkdir with no replica: {res} after {wall:.1f}s; "
                                           f"expected EIO within {bound}s")
    results = {}

    def one(op, path):
        results[(op, os.path.basename(path))] = probe(op, path, bound)

    ops = [("create", m / "newfile"), ("overwrite", m / "f"), ("write", m / "g"),
           ("unlink", m / "g"), ("rename", m / "f"), ("mkdir", m / "d/sub"),
           ("setxattr", m / "d")]
    threads = [threading.Thread(target=one, args=op) for op in ops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(bound + 40)
    bad = {k: v for k, v in results.items() if v[0] != "EIO" or v[2] >= bound}
    assert len(results) == len(ops) and not bad, (f"expected EIO within {bound}s from each; "
                                                  f"got {bad or results}")

    # The mount comes back with the replica (same port, same store).
    r.start()
    wait_for(lambda: probe("mkdir", m / "back", bound)[0] == "OK", 30,
             what="the mount to work again after the replica restarted")
    assert zstat(mc, "/back")["kind"] == "directory"
    # What failed with EIO was never sent (the replica was down throughout): it must not
    # happen later behind the caller's back.
    for p in ("/newdir", "/newfile", "/d/sub", "/f.moved"):
        assert not zexists(mc, p), f"{p}: the operation failed with EIO but was applied later"
    assert zget(mc, "/g") == b"g", "/g: the operations failed with EIO but one was applied later"
    assert zget(mc, "/d") == b"", "/d: setxattr failed with EIO but was applied later"
    assert read(m / "f") == b"v1" and zget(mc, "/f") == b"v1"
    write(m / "f", "v2")
    assert zget(mc, "/f") == b"v2"


CLOSER = r"""
import errno, os, sys, time
path, how = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"never committed")
print("written", flush=True)
sys.stdin.readline()
t = time.monotonic()
try:
    if how == "fsync":
        os.fsync(fd)
    os.close(fd)
    res = "OK"
except OSError as e:
    res = errno.errorcode.get(e.errno, str(e.errno))
print(res, round(time.monotonic() - t, 3), flush=True)
"""


def test_failed_commit_is_returned_by_close_and_fsync(make_replica, make_mount, procs):
    r = make_replica()
    m = make_mount(r, opts=[f"op_timeout={OP_TIMEOUT_MS}", "session_timeout=2000"])
    bound = OP_TIMEOUT_MS / 1000 + SLACK_S
    children = {}
    for how in ("close", "fsync"):
        write(m / how, "old")
        p = subprocess.Popen([sys.executable, "-c", CLOSER, str(m / how), how],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "written", p.stderr.read()
        children[how] = p
    r.kill()
    for how, p in children.items():
        try:
            out, err = p.communicate("go\n", timeout=bound + 30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{how} of a dirty file with no replica: still blocked after "
                        f"{bound + 30:.0f}s")
        res, secs = out.split()
        assert res == "EIO" and float(secs) < bound, \
            f"{how} of a dirty file with no replica: {res} after {secs}s; expected EIO"
    r.start()
    for how in children:
        assert zget(r.mc, f"/{how}") == b"old"


def test_dead_server_listed_first_is_skipped(replica, mc, make_mount):
    dead = f"127.0.0.1:{free_port()}"
    m = make_mount(f"{dead},{replica.servers}")
    mc.ok("create", "/x", "1")
    wait_for(lambda: read_or_none(m / "x") == b"1", 15)
    run(f"echo 2 > {m / 'x'} && mkdir {m / 'd'}")
    assert zget(mc, "/x") == b"2\n"
    assert zstat(mc, "/d")["kind"] == "directory"


def test_kill9_of_the_daemon_is_cleaned_up_by_auto_unmount(mount):
    write(mount / "f", "x")
    mount.kill9()
    wait_for(lambda: not mount.mounted(), 10, what="auto_unmount to remove the dead mount")
    # The mountpoint is a plain empty directory again, not an ENOTCONN one.
    assert os.listdir(mount.mountpoint) == []


def test_session_expiry_gives_a_new_session_without_the_old_ephemerals(replica, mc,
                                                                      make_mount):
    a = make_mount(replica, opts=["session_timeout=1000"])
    os.mkdir(a / "eph")
    run(f"setfattr -n user.zk.policy -v ephemeral {a / 'eph'}")
    write(a / "eph/f", "x")
    old_owner = zstat(mc, "/eph/f")["ephemeralOwner"]
    assert old_owner != 0
    # Freeze the daemon (no pings) past its session timeout; touch nothing on the mount
    # meanwhile (it would block).
    os.kill(a.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: not zexists(mc, "/eph/f"), 20, what="the session to expire")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    wait_for(lambda: probe("create", a / "eph/g", 10)[0] == "OK", 30,
             what="the mount to open a new session and work again")
    new_owner = zstat(mc, "/eph/g")["ephemeralOwner"]
    assert new_owner not in (0, old_owner)
    wait_for(lambda: not os.path.exists(a / "eph/f"), 10,
             what="the old session's ephemeral to disappear from the mount too")
    assert any("expire" in ln.lower() for ln in a.log().splitlines()), \
        "the daemon logged nothing about the session expiry"


def test_sync_write_makes_builtin_echo_fail_with_no_replica(make_replica, make_mount):
    """Bash's builtin echo ignores errors from close; with -o sync_write the commit happens at
    the write, so the script sees the failure."""
    r = make_replica()
    m = make_mount(r, opts=["sync_write", f"op_timeout={OP_TIMEOUT_MS}", "session_timeout=2000"])
    write(m / "f", "v1")
    bound = OP_TIMEOUT_MS / 1000 + SLACK_S
    r.kill()
    t = time.monotonic()
    res = run(f"echo v2 > {m / 'f'}", check=False, timeout=bound + 30)
    took = time.monotonic() - t
    assert res.returncode != 0 and took < bound, \
        f"builtin echo on a sync_write mount with no replica: exit {res.returncode} " \
        f"after {took:.1f}s, stderr {res.stderr!r}"
    r.start()
    assert zget(r.mc, "/f") == b"v1"
