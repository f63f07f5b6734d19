"""Ephemeral files (DESIGN §3): in a directory whose policy says `ephemeral`, what a mount
creates is an ephemeral znode of its session, gone when removed, when the mount is unmounted,
or when its daemon dies and the session times out; ephemeral nodes have no children (EPERM)."""

import errno
import os

from fs_harness import oserror, read_or_none, run, run_fails, write, zexists, zget, zstat
from harness import wait_for


def make_ephemeral_dir(m, name="eph"):
    os.mkdir(m / name)
    run(f"setfattr -n user.zk.policy -v ephemeral {m / name}")


def test_setfattr_policy_makes_children_ephemeral(mc, mounts2):
    a, b = mounts2
    make_ephemeral_dir(a)
    assert zstat(mc, "/eph")["policy"] == "ephemeral"
    assert zstat(mc, "/eph")["ephemeralOwner"] == 0
    run(f"echo x > {a / 'eph/f'}")
    os.mkdir(a / "eph/sub")
    owner_a = zstat(mc, "/eph/f")["ephemeralOwner"]
    assert owner_a != 0, "a file created in an ephemeral directory is not ephemeral"
    assert zstat(mc, "/eph/sub")["ephemeralOwner"] == owner_a
    assert zget(mc, "/eph/f") == b"x\n"
    # Every mount applies the stored policy, with its own session.
    wait_for(lambda: read_or_none(b / "eph/f") == b"x\n", 10)
    assert os.getxattr(b / "eph", "user.zk.policy").strip() == b"ephemeral"
    run(f"echo y > {b / 'eph/g'}")
    owner_b = zstat(mc, "/eph/g")["ephemeralOwner"]
    assert owner_b not in (0, owner_a)
    # A plain directory next to it is unaffected.
    write(a / "plain", "p")
    assert zstat(mc, "/plain")["ephemeralOwner"] == 0


def test_policy_set_with_mountctl(mc, mount):
    mc.ok("create", "/e2")
    mc.ok("policy", "/e2", "ephemeral")
    wait_for(lambda: os.path.exists(mount / "e2") and
             os.getxattr(mount / "e2", "user.zk.policy").strip() == b"ephemeral", 10,
             what="the mountctl policy to reach the mount")
    write(mount / "e2/f", "x")
    assert zstat(mc, "/e2/f")["ephemeralOwner"] != 0


def test_rm_of_an_ephemeral_file(mc, mount):
    make_ephemeral_dir(mount)
    write(mount / "eph/f", "x")
    assert zexists(mc, "/eph/f")
    run(f"rm {mount / 'eph/f'}")
    assert not zexists(mc, "/eph/f")


def test_ephemeral_vanishes_from_b_when_a_is_unmounted(mc, mounts2, make_inotify):
    a, b = mounts2
    make_ephemeral_dir(a)
    write(a / "eph/f", "from a")
    write(b / "eph/g", "from b")
    wait_for(lambda: read_or_none(b / "eph/f") == b"from a", 10)
    w = make_inotify(b)
    assert a.unmount() == 0
    w.expect("DELETE", "eph/f")
    assert not os.path.exists(b / "eph/f")
    assert not zexists(mc, "/eph/f")
    assert zexists(mc, "/eph/g") and read_or_none(b / "eph/g") == b"from b"
    assert zexists(mc, "/eph"), "the ephemeral-policy directory itself is persistent"


def test_ephemeral_vanishes_after_kill9_and_session_timeout(replica, mc, make_mount,
                                                          make_inotify):
    # The replica's tickTime is 200 ms: session timeouts from 400 ms to 4 s.
    a = make_mount(replica, "a", opts=["session_timeout=1000"])
    b = make_mount(replica, "b")
    make_ephemeral_dir(a)
    write(a / "eph/f", "from a")
    owner = zstat(mc, "/eph/f")["ephemeralOwner"]
    assert owner != 0
    wait_for(lambda: read_or_none(b / "eph/f") == b"from a", 10)
    w = make_inotify(b)
    a.kill9()
    # auto_unmount cleans the dead mount by itself.
    wait_for(lambda: not a.mounted(), 10, what="auto_unmount after kill -9")
    w.expect("DELETE", "eph/f", timeout=20)
    assert not os.path.exists(b / "eph/f")
    assert not zexists(mc, "/eph/f")


def test_ephemeral_nodes_cannot_have_children(mc, mount):
    make_ephemeral_dir(mount)
    os.mkdir(mount / "eph/sub")
    assert zstat(mc, "/eph/sub")["ephemeralOwner"] != 0
    assert oserror(os.open, mount / "eph/sub/x", os.O_WRONLY | os.O_CREAT, 0o644) == errno.EPERM
    assert oserror(os.mkdir, mount / "eph/sub/y") == errno.EPERM
    run_fails(f"touch {mount / 'eph/sub/z'}", "Operation not permitted")
    assert zstat(mc, "/eph/sub")["numChildren"] == 0
    assert os.listdir(mount / "eph/sub") == []
