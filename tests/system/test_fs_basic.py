"""The filesystem with everyday tools: cat, echo, mkdir, rm, ls, stat, truncate, getfattr and
setfattr on a zkfs-fused mount, checked against the znodes through mountctl (DESIGN §3)."""

import errno
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from fs_harness import (mountinfo, oserror, pids_mentioning, pid_alive, read, read_or_none, run,
                        run_fails, write, zexists, zget, zstat)
from harness import binary, wait_for

MiB = 1 << 20
ZK_STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
                  "ephemeralOwner", "dataLength", "numChildren", "pzxid")


def test_mounted_as_fuse_zkfs(mount):
    e = mountinfo(mount.mountpoint)
    assert e is not None and e["fstype"] == "fuse.zkfs", e
    run(f"df {mount.mountpoint}")
    os.statvfs(mount.mountpoint)


def test_statfs_reports_the_znode_count(replica, mc, mount):
    for i in range(7):
        mc.ok("create", f"/n{i}")

    def used():
        v = os.statvfs(mount.mountpoint)
        return v.f_files - v.f_ffree
    want = int(replica.mntr()["zk_znode_count"])
    wait_for(lambda: used() == want, 10, what=f"df -i to count {want} znodes (got {used()})")
    out = run(f"df -i {mount.mountpoint}").stdout.splitlines()[-1].split()
    assert int(out[2]) == want, out


def test_foreground_daemon_exits_after_fusermount_u(mount):
    assert mount.unmount() == 0, "zkfs-fused -f should exit 0 by itself after fusermount3 -u"
    assert not mount.mounted()


def test_cat_reads_what_mountctl_wrote(mc, mount):
    mc.ok("create", "/app")
    mc.ok("create", "/app/config", "-", input=b"db=10.0.0.5\n")
    path = mount / "app/config"
    wait_for(lambda: read_or_none(path) == b"db=10.0.0.5\n", 10, what="the node in the mount")
    assert run(f"cat {path}").stdout == "db=10.0.0.5\n"


def test_nodes_present_before_mounting(replica, mc, make_mount):
    mc.ok("create", "/app")
    mc.ok("create", "/app/config", "x=1")
    m = make_mount(replica)
    assert read(m / "app/config") == b"x=1"
    assert os.path.isdir(m / "app")


def test_echo_creates_then_replaces_with_one_setdata(mc, mount):
    f = mount / "config"
    run(f"echo 'db=10.0.0.5' > {f}")
    assert zget(mc, "/config") == b"db=10.0.0.5\n"
    s = zstat(mc, "/config")
    assert s["kind"] == "file" and s["dataLength"] == 12
    v0 = s["version"]
    run(f"echo 'db=10.0.0.6' > {f}")
    assert zget(mc, "/config") == b"db=10.0.0.6\n"
    # O_TRUNC then one commit at close: exactly one setData, never an empty version.
    assert zstat(mc, "/config")["version"] == v0 + 1
    assert run(f"cat {f}").stdout == "db=10.0.0.6\n"


def test_write_is_committed_at_close_and_trunc_publishes_nothing(mc, mount):
    mc.ok("create", "/f", "old")
    path = mount / "f"
    wait_for(lambda: read_or_none(path) == b"old", 10)
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        assert zget(mc, "/f") == b"old", "O_TRUNC published empty data before the close"
        os.write(fd, b"new-1")
        os.write(fd, b"-2")
        assert zget(mc, "/f") == b"old", "data published before the close"
    finally:
        os.close(fd)
    assert zget(mc, "/f") == b"new-1-2"
    assert zstat(mc, "/f")["version"] == 1
    assert read(path) == b"new-1-2"


def test_fsync_commits(mc, mount):
    path = mount / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"synced")
        os.fsync(fd)
        assert zget(mc, "/f") == b"synced"
        os.write(fd, b"+more")
    finally:
        os.close(fd)
    assert zget(mc, "/f") == b"synced+more"


def test_sync_write_option_commits_every_write(replica, mc, make_mount):
    m = make_mount(replica, opts=["sync_write"])
    fd = os.open(m / "f", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"abc")
        assert zget(mc, "/f") == b"abc"
        os.write(fd, b"def")
        assert zget(mc, "/f") == b"abcdef"
    finally:
        os.close(fd)
    assert zget(mc, "/f") == b"abcdef"


def test_mkdir_rmdir(mc, mount):
    d = mount / "d"
    run(f"mkdir {d}")
    assert zstat(mc, "/d")["kind"] == "directory"
    assert run(f"stat -c %F {d}").stdout.strip() == "directory"
    run(f"mkdir -p {mount / 'a/b/c'}")
    assert zexists(mc, "/a/b/c")
    assert os.path.isdir(mount / "a/b/c")
    run(f"rmdir {d}")
    assert not zexists(mc, "/d")
    assert not os.path.exists(d)


def test_files_and_directories_follow_the_mapping(mc, mount):
    mc.ok("create", "/plain", "p")  # childless, not made by mkdir: a file
    mc.ok("create", "/parent", "own data")
    mc.ok("create", "/parent/child", "c")  # has children: a directory
    os.mkdir(mount / "made")  # made by mkdir, childless: still a directory
    wait_for(lambda: os.path.exists(mount / "parent/child"), 10)
    assert os.path.isfile(mount / "plain") and read(mount / "plain") == b"p"
    assert os.path.isdir(mount / "parent")
    assert os.listdir(mount / "parent") == ["child"]
    assert os.getxattr(mount / "parent", "user.zk.data") == b"own data"
    assert os.path.isdir(mount / "made")
    assert run(f"stat -c %F {mount / 'plain'}").stdout.strip() == "regular file"
    # A file that gains a child elsewhere becomes a directory.
    mc.ok("create", "/plain/kid", "k")
    wait_for(lambda: os.path.isdir(mount / "plain"), 10, what="/plain to turn into a directory")
    assert os.getxattr(mount / "plain", "user.zk.data") == b"p"
    assert read(mount / "plain/kid") == b"k"


def test_ls_lists_children(mc, mount):
    mc.ok("create", "/dir")
    names = [f"n{i:02d}" for i in range(40)]
    for n in names:
        mc.ok("create", f"/dir/{n}", n)
    wait_for(lambda: sorted(os.listdir(mount / "dir")) == names, 10, what="all 40 children")
    assert run(f"ls -1 {mount / 'dir'}").stdout.split() == names
    assert run(f"ls -1 {mount}").stdout.split() == ["dir"]


def test_rm_and_rm_r(mc, mount):
    run(f"echo x > {mount / 'f'}")
    run(f"rm {mount / 'f'}")
    assert not zexists(mc, "/f")
    run(f"mkdir -p {mount / 't/u/v'} && echo 1 > {mount / 't/u/v/f'} && echo 2 > {mount / 't/g'}")
    assert zexists(mc, "/t/u/v/f")
    run(f"rm -r {mount / 't'}")
    assert not zexists(mc, "/t")
    assert not os.path.exists(mount / "t")


@pytest.mark.parametrize("size", [0, 1, 100, 4096, 65537, MiB])
def test_stat_size_is_data_length(mc, mount, size):
    data = bytes((i * 7 + 3) % 256 for i in range(size))  # binary, with NULs
    mc.ok("create", "/n", "-", input=data)
    path = mount / "n"
    wait_for(lambda: os.path.exists(path), 10)
    assert os.stat(path).st_size == size == zstat(mc, "/n")["dataLength"]
    assert run(f"stat -c %s {path}").stdout.strip() == str(size)
    assert read(path) == data


def test_size_follows_remote_changes(mc, mount):
    mc.ok("create", "/n", "12345")
    path = mount / "n"
    wait_for(lambda: read_or_none(path) == b"12345", 10)
    assert os.stat(path).st_size == 5
    mc.ok("set", "/n", "1234567890")
    wait_for(lambda: os.stat(path).st_size == 10, 10, what="st_size to follow the remote set")
    assert read(path) == b"1234567890"
    mc.ok("set", "/n", "1")
    wait_for(lambda: read(path) == b"1", 10, what="the shorter data")
    assert os.stat(path).st_size == 1


def test_mtime_is_the_znode_mtime(mc, mount):
    mc.ok("create", "/t", "a")
    path = mount / "t"
    wait_for(lambda: os.path.exists(path), 10)
    assert abs(os.stat(path).st_mtime - zstat(mc, "/t")["mtime"] / 1000) < 1.0
    mc.ok("set", "/t", "b")
    want = zstat(mc, "/t")["mtime"] / 1000
    wait_for(lambda: abs(os.stat(path).st_mtime - want) < 1.0 and read(path) == b"b", 10)


def test_st_ino_stable_across_mounts(replica, mc, make_mount):
    a = make_mount(replica, "a")
    b = make_mount(replica, "b")
    write(a / "f", "x")
    os.mkdir(a / "d")
    write(a / "d/g", "y")
    wait_for(lambda: os.path.exists(b / "d/g"), 10)
    inos = {}
    for p in ("f", "d", "d/g"):
        ia, ib = os.stat(a / p).st_ino, os.stat(b / p).st_ino
        assert ia == ib, f"st_ino of {p}: {ia} on mount a, {ib} on mount b"
        assert run(f"stat -c %i {b / p}").stdout.strip() == str(ia)
        inos[p] = ia
    assert len(set(inos.values())) == 3, inos
    # A data change keeps the inode; a new mount of the same cluster gives the same numbers.
    write(a / "f", "changed")
    assert os.stat(a / "f").st_ino == inos["f"]
    b.unmount()
    c = make_mount(replica, "c")
    for p, ino in inos.items():
        assert os.stat(c / p).st_ino == ino, p


def test_xattr_stat_json_and_fields(mc, mount):
    f = mount / "f"
    run(f"echo hello > {f}")
    want = zstat(mc, "/f")
    out = run(f"getfattr -n user.zk.stat --only-values {f}").stdout
    got = json.loads(out)
    for k in ZK_STAT_FIELDS:
        assert k in got, f"user.zk.stat has no {k}: {out}"
        assert got[k] == want[k], f"user.zk.stat {k}={got[k]}, znode has {want[k]}"
    for k in ZK_STAT_FIELDS:
        v = os.getxattr(f, f"user.zk.{k}").decode().strip()
        assert int(v, 0) == want[k], f"user.zk.{k} = {v!r}, znode has {want[k]}"
    assert run(f"getfattr -n user.zk.dataLength --only-values {f}").stdout.strip() in ("6",
                                                                                        "0x6")
    # The stat follows changes.
    run(f"echo hello again > {f}")
    assert json.loads(os.getxattr(f, "user.zk.stat"))["version"] == want["version"] + 1
    # The root's too.
    root = json.loads(os.getxattr(mount.mountpoint, "user.zk.stat"))
    assert root["numChildren"] == zstat(mc, "/")["numChildren"] == 1


def test_xattr_data_of_a_directory(mc, mount):
    d = mount / "d"
    os.mkdir(d)
    run(f"setfattr -n user.zk.data -v hello {d}")
    assert zget(mc, "/d") == b"hello"
    assert run(f"getfattr -n user.zk.data --only-values {d}").stdout == "hello"
    os.setxattr(d, "user.zk.data", b"\x00bin\xff")
    assert zget(mc, "/d") == b"\x00bin\xff"
    mc.ok("set", "/d", "remote")
    wait_for(lambda: os.getxattr(d, "user.zk.data") == b"remote", 10,
             what="user.zk.data to follow a remote set")


def test_xattr_policy_read_and_write(mc, mount):
    q = mount / "q"
    os.mkdir(q)
    run(f"setfattr -n user.zk.policy -v ephemeral,sequential {q}")
    assert zstat(mc, "/q")["policy"] == "ephemeral,sequential"
    run_fails(f"setfattr -n user.zk.policy -v no-such-policy {q}")
    assert zstat(mc, "/q")["policy"] == "ephemeral,sequential"
    assert run(f"getfattr -n user.zk.policy --only-values {q}").stdout.strip() == \
        "ephemeral,sequential"
    mc.ok("create", "/q2")
    mc.ok("policy", "/q2", "sequential")
    wait_for(lambda: os.path.exists(mount / "q2") and
             os.getxattr(mount / "q2", "user.zk.policy").strip() == b"sequential", 10,
             what="a policy set with mountctl to show in user.zk.policy")


def test_getfattr_dump(mount):
    # Not spelled out in DESIGN, but what a user of a good FUSE filesystem expects: listxattr
    # names the attributes, so `getfattr -d` shows them.
    f = mount / "f"
    write(f, "x")
    out = run(f"getfattr -d -m user.zk {f}").stdout
    assert "user.zk.stat=" in out, out


def test_truncate(mc, mount):
    f = mount / "f"
    write(f, "hello world")
    run(f"truncate -s 5 {f}")
    assert zget(mc, "/f") == b"hello"
    run(f"truncate -s 8 {f}")
    assert zget(mc, "/f") == b"hello\0\0\0"
    assert os.stat(f).st_size == 8
    os.truncate(f, 2)
    assert zget(mc, "/f") == b"he"
    with open(f, "r+b") as h:
        h.write(b"HEL")
        h.truncate(1)
    assert zget(mc, "/f") == b"H"
    run(f"truncate -s 0 {f}")
    assert zget(mc, "/f") == b""
    assert os.stat(f).st_size == 0


def test_offsets_as_on_a_local_file(mc, mount):
    f = mount / "f"
    write(f, "0123456789")
    with open(f, "r+b") as h:
        h.seek(3)
        h.write(b"abc")
    assert zget(mc, "/f") == b"012abc6789"
    with open(f, "r+b") as h:
        h.seek(12)
        h.write(b"Z")
    assert zget(mc, "/f") == b"012abc6789\0\0Z"
    run(f"printf XY | dd of={f} bs=1 seek=1 conv=notrunc status=none")
    assert zget(mc, "/f") == b"0XYabc6789\0\0Z"
    with open(f, "rb") as h:
        h.seek(3)
        assert h.read(3) == b"abc"


def test_append(mc, mount):
    f = mount / "f"
    run(f"echo a > {f}")
    run(f"echo b >> {f}")
    run(f"/bin/echo c >> {f}")
    assert zget(mc, "/f") == b"a\nb\nc\n"
    assert read(f) == b"a\nb\nc\n"


def test_append_at_the_real_end_after_remote_changes(mc, mount, make_inotify):
    f = mount / "f"
    run(f"echo local > {f}")
    assert read(f) == b"local\n"  # the kernel now caches size 6
    w = make_inotify(mount)
    for remote, add in ((b"a longer remote value\n", "x"), (b"s", "y")):
        mark = w.mark()
        mc.ok("set", "/f", "-", input=remote)
        # The event says the mount has the change; no read or stat in between, which would
        # refresh the kernel's size by themselves.
        w.expect("MODIFY", "f", since=mark)
        run(f"echo {add} >> {f}")
        assert zget(mc, "/f") == remote + add.encode() + b"\n", \
            "O_APPEND wrote at the kernel's stale size instead of the node's end"


def test_read_only_mount(replica, mc, make_mount):
    mc.ok("create", "/c", "v1")
    m = make_mount(replica, opts=["ro"])
    assert read(m / "c") == b"v1"
    run_fails(f"echo x > {m / 'c'}", "Read-only file system")
    run_fails(f"mkdir {m / 'd'}", "Read-only file system")
    assert oserror(os.open, m / "new", os.O_WRONLY | os.O_CREAT) == errno.EROFS
    assert zget(mc, "/c") == b"v1" and not zexists(mc, "/d")
    mc.ok("set", "/c", "v2")
    wait_for(lambda: read(m / "c") == b"v2", 10, what="a read-only mount to follow changes")


def test_two_mounts_see_each_others_writes(mounts2):
    a, b = mounts2
    run(f"echo from-a > {a / 'f'}")
    wait_for(lambda: read_or_none(b / "f") == b"from-a\n", 10)
    run(f"mkdir {b / 'd'} && echo from-b > {b / 'd/g'}")
    wait_for(lambda: read_or_none(a / "d/g") == b"from-b\n", 10)
    run(f"echo again > {b / 'f'}")
    wait_for(lambda: read(a / "f") == b"again\n", 10)
    run(f"rm {a / 'f'}")
    wait_for(lambda: not os.path.exists(b / "f"), 10)


def test_chroot_in_servers(replica, mc, make_mount):
    mc.ok("create", "/jail")
    mc.ok("create", "/jail/x", "1")
    m = make_mount(f"{replica.servers}/jail")
    assert os.listdir(m.mountpoint) == ["x"]
    assert read(m / "x") == b"1"
    write(m / "y", "2")
    assert zget(mc, "/jail/y") == b"2"
    assert not zexists(mc, "/y")


def test_mountctl_mount_and_umount(replica, mc, make_mount):
    m = make_mount(replica, "m", start=False)  # only for its mountpoint and its cleanup
    mc.ok("create", "/hello", "world")
    r = subprocess.run([binary("mountctl"), "mount", replica.servers, m.mountpoint],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"mountctl mount: exit {r.returncode}, stderr {r.stderr!r}"
    assert m.mounted(), "mountctl mount returned before the mount was there"
    assert read(m / "hello") == b"world"
    daemons = [p for p in pids_mentioning(m.mountpoint) if pid_alive(p)]
    assert daemons, "no daemon process serves the mount"
    r = subprocess.run([binary("mountctl"), "umount", m.mountpoint], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"mountctl umount: exit {r.returncode}, stderr {r.stderr!r}"
    assert not m.mounted()
    wait_for(lambda: not any(pid_alive(p) for p in daemons), 10,
             what="the daemon to exit after mountctl umount")


def test_unknown_daemon_option_fails_cleanly(replica, make_mount):
    m = make_mount(replica, "bad", start=False)
    r = subprocess.run([binary("zkfs-fused"), replica.servers, m.mountpoint, "-f", "-o",
                        "auto_unmount,no_such_option_xyz"], capture_output=True, text=True,
                       timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert not m.mounted()


def test_unmount_right_after_remote_changes(mounts2, replica, make_mount):
    # The daemon replays remote changes through its own mountpoint; that must never make a
    # plain `fusermount3 -u` fail with EBUSY.
    a, _ = mounts2
    for i in range(20):
        m = make_mount(replica, f"u{i}")
        os.mkdir(a / f"d{i}")
        write(a / f"d{i}/f", "0")
        wait_for(lambda: read_or_none(m / f"d{i}/f") == b"0", 10)
        for k in range(1, 6):  # data changes, a create and a delete, as fast as they come
            write(a / f"d{i}/f", str(k) * (k * 100))
        write(a / f"d{i}/g", "g")
        os.unlink(a / f"d{i}/g")
        r = m.fusermount("-u")
        assert r.returncode == 0, (f"round {i}: fusermount3 -u right after remote changes: "
                                   f"{r.stderr.strip()}")
        assert m.unmount() == 0


def test_large_directory_listing(mounts2):
    a, b = mounts2
    os.mkdir(a / "big")
    names = sorted(f"entry-{i:04d}-" + "n" * 60 for i in range(300))
    for n in names:
        with open(a / f"big/{n}", "wb") as f:
            f.write(n[:10].encode())
    assert sorted(os.listdir(a / "big")) == names
    wait_for(lambda: sorted(os.listdir(b / "big")) == names, 15,
             what="mount b to list all 300 entries")
    assert run(f"ls {b / 'big'} | wc -l").stdout.strip() == "300"
    assert read(b / f"big/{names[-1]}") == names[-1][:10].encode()


@pytest.mark.parametrize("name", ["café", "日本語", "with space", ".hidden", "a-b_c.d~",
                                  "x" * 255])
def test_names_zookeeper_accepts(mc, mounts2, name):
    a, b = mounts2
    write(a / name, name)
    assert zget(mc, "/" + name) == name.encode()
    os.mkdir(a / (name[:250] + ".d"))
    wait_for(lambda: read_or_none(b / name) == name.encode(), 10)
    assert sorted(os.listdir(b.mountpoint)) == sorted([name, name[:250] + ".d"])


def test_copy_a_tree_in_and_compare(mounts2, tmp_path):
    a, b = mounts2
    src = tmp_path / "src"
    for i in range(12):
        d = src / f"d{i % 3}" / f"e{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.bin").write_bytes(os.urandom(37 * i * i + 1))
    (src / "empty").write_bytes(b"")
    (src / "big.bin").write_bytes(os.urandom(700 * 1024))
    run(f"cp -r {src} {a / 'copy'}")
    run(f"diff -r {src} {a / 'copy'}")
    wait_for(lambda: run(f"diff -r {src} {b / 'copy'}", check=False).returncode == 0, 15,
             what="mount b to hold an identical copy")


@pytest.fixture
def world_dir():
    """A directory everyone may traverse (pytest's tmp_path is 0700); removed at teardown
    unless something is still mounted under it."""
    d = tempfile.mkdtemp(prefix="zkfs-fs-test-")
    os.chmod(d, 0o755)
    yield d
    with open("/proc/self/mountinfo") as f:
        if any(f" {d}/" in line for line in f):
            return
    shutil.rmtree(d, ignore_errors=True)


def test_allow_other_lets_other_users_read(world_dir, replica, mc, make_mount):
    mc.ok("create", "/pub", "shared")
    as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups"
    private = make_mount(replica, "private", root=world_dir)
    shared = make_mount(replica, "shared", opts=["allow_other", "default_permissions"],
                        root=world_dir)
    assert run(f"{as_nobody} cat {shared / 'pub'}").stdout == "shared"
    run_fails(f"{as_nobody} cat {private / 'pub'}", "Permission denied")


def test_daemon_logs_one_line_per_event_with_levels(replica, mc, make_mount):
    m = make_mount(replica)
    write(m / "f", "x")
    mc.ok("set", "/f", "y")
    wait_for(lambda: read(m / "f") == b"y", 10)
    assert m.unmount() == 0
    line_re = re.compile(r"^\S+ (TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|FATAL) "
                         r"zkfs-fused\[\d+\]: \S")
    bad = [ln for ln in m.log().splitlines()
           if not ln.startswith("=== start #") and "Ignoring invalid max threads" not in ln
           and not line_re.match(ln)]
    assert not bad, f"log lines without the one-line format: {bad[:5]}"


def test_touch_creates_and_keeps_data(mc, mount):
    run(f"touch {mount / 'new'}")
    assert zexists(mc, "/new") and zget(mc, "/new") == b""
    write(mount / "f", "keep")
    run(f"touch {mount / 'f'}")
    assert zget(mc, "/f") == b"keep"


STD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_mount_t_fuse_zkfs(replica, mc, make_mount):
    """`mount -t fuse.zkfs SERVERS DIR` through mount.fuse3, which runs zkfs-fused from a
    standard directory (the install target puts it there); the daemon must daemonize."""
    installed = shutil.which("zkfs-fused", path=STD_PATH)
    if not installed:
        pytest.skip("zkfs-fused is not installed in a standard directory (cmake --install)")
    m = make_mount(replica, "t", start=False)  # for its mountpoint and its cleanup
    mc.ok("create", "/hello", "world")
    r = subprocess.run(["mount", "-t", "fuse.zkfs", replica.servers, m.mountpoint],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"mount -t fuse.zkfs: exit {r.returncode}, {r.stderr!r}"
    assert m.mounted()
    assert read(m / "hello") == b"world"
    run(f"umount {m.mountpoint}")
    assert not m.mounted()
