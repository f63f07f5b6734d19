"""Errors the filesystem returns (DESIGN §3, notes/fuse-semantics.md): EFBIG past the data
limit, ENOTEMPTY, EPERM for links/devices/fifos, EINVAL for names ZooKeeper rejects, and
ENODATA / ERANGE / EOPNOTSUPP from the xattr calls."""

import errno
import json
import os
import stat

import pytest

from fs_harness import (ename, oserror, raw_getxattr, raw_listxattr, read, run_fails, write,
                        zexists, zget, zls)
from harness import wait_for

MiB = 1 << 20


def write_all(fd, data, chunk=256 * 1024):
    """Writes data in chunks; returns (bytes written, errno of the first failing write or 0)."""
    done = 0
    while done < len(data):
        try:
            n = os.write(fd, data[done:done + chunk])
        except OSError as e:
            return done, e.errno
        done += n
    return done, 0


def test_exactly_one_mib_is_allowed(mc, mount):
    f = mount / "big"
    write(f, b"a" * MiB)
    assert len(zget(mc, "/big")) == MiB
    assert os.stat(f).st_size == MiB


def test_efbig_at_the_write_past_the_limit(mc, mount):
    f = mount / "big"
    write(f, "old")
    fd = os.open(f, os.O_WRONLY | os.O_TRUNC)
    try:
        done, err = write_all(fd, b"b" * (MiB + 1))
        assert err == errno.EFBIG, (f"writing {MiB + 1} bytes: {done} written, then "
                                    f"{ename(err) if err else 'no error'}; expected EFBIG from "
                                    f"the write itself")
        assert done <= MiB
        # Later writes past the limit fail too.
        assert oserror(os.pwrite, fd, b"c", MiB) == errno.EFBIG
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    assert len(zget(mc, "/big")) <= MiB


def test_efbig_from_shell_tools(mc, mount):
    f = mount / "big"
    run_fails(f"head -c {MiB + 1} /dev/zero > {f}", "File too large")
    run_fails(f"head -c {MiB} /dev/zero > {f} && echo more >> {f}", "File too large")
    assert len(zget(mc, "/big")) <= MiB


def test_enotempty(mc, mount):
    d = mount / "d"
    os.mkdir(d)
    write(mount / "d/f", "x")
    assert oserror(os.rmdir, d) == errno.ENOTEMPTY
    run_fails(f"rmdir {d}", "Directory not empty")
    assert zexists(mc, "/d/f")
    # Non-empty because of a child created elsewhere.
    os.mkdir(mount / "e")
    mc.ok("create", "/e/remote")
    wait_for(lambda: os.path.exists(mount / "e/remote"), 10)
    assert oserror(os.rmdir, mount / "e") == errno.ENOTEMPTY


def test_eexist(mc, mount):
    os.mkdir(mount / "d")
    assert oserror(os.mkdir, mount / "d") == errno.EEXIST
    write(mount / "f", "x")
    assert oserror(os.open, mount / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL) == errno.EEXIST
    run_fails(f"mkdir {mount / 'f'}", "File exists")


def test_eperm_for_links_devices_and_fifos(mc, mount):
    f = mount / "f"
    write(f, "x")
    assert oserror(os.link, f, mount / "hard") == errno.EPERM
    assert oserror(os.symlink, "f", mount / "soft") == errno.EPERM
    assert oserror(os.mkfifo, mount / "fifo") == errno.EPERM
    assert oserror(os.mknod, mount / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3)) == \
        errno.EPERM
    run_fails(f"ln {f} {mount / 'hard2'}", "Operation not permitted")
    run_fails(f"ln -s f {mount / 'soft2'}", "Operation not permitted")
    run_fails(f"mkfifo {mount / 'fifo2'}", "Operation not permitted")
    assert [n for n in zls(mc, "/") if n != "zookeeper"] == ["f"]
    assert [n for n in os.listdir(mount.mountpoint) if n != "zookeeper"] == ["f"]


# Names the kernel passes through but ZooKeeper's path rules reject.
BAD_NAMES = [
    b"ctl\x01char",    # U+0001
    b"tab\tname",      # U+0009
    b"del\x7f",        # U+007F
    b"c1\xc2\x85",     # U+0085 (C1 control)
    b"noncha\xef\xbf\xbf",  # U+FFFF
    b"surr\xee\x80\x80",    # U+E000 (private use, rejected by ZooKeeper)
    b"bad\xffutf8",    # not UTF-8
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: n.decode(errors="backslashreplace"))
def test_einval_for_names_zookeeper_rejects(mc, mount, name):
    root = os.fsencode(mount.mountpoint)
    p = os.path.join(root, name)
    assert ename(oserror(os.open, p, os.O_WRONLY | os.O_CREAT, 0o644)) == "EINVAL"
    assert ename(oserror(os.mkdir, p)) == "EINVAL"
    src = os.path.join(root, b"ok")
    write(src, "x")
    assert ename(oserror(os.rename, src, p)) == "EINVAL"
    assert read(src) == b"x"
    assert sorted(os.listdir(root)) == [b"ok"]


def test_einval_from_shell_tools(mount):
    run_fails(f"touch {mount.mountpoint}/$'a\\x01b'", "Invalid argument")
    run_fails(f"mkdir {mount.mountpoint}/$'a\\x02b'", "Invalid argument")
    assert os.listdir(mount.mountpoint) == []


def test_xattr_enodata(mount):
    f = mount / "f"
    write(f, "x")
    os.mkdir(mount / "d")
    for p in (f, mount / "d"):
        assert oserror(os.getxattr, p, "user.zk.nosuchfield") == errno.ENODATA
        assert oserror(os.getxattr, p, "user.other") == errno.ENODATA
    run_fails(f"getfattr -n user.zk.nosuchfield {f}", "No such attribute")


def test_xattr_erange_with_a_small_buffer(mount):
    f = mount / "f"
    write(f, "some data")
    size, err = raw_getxattr(f, "user.zk.stat", 0)  # size query
    assert err == 0 and size > 2, (size, ename(err))
    n, err = raw_getxattr(f, "user.zk.stat", 1)
    assert (n, ename(err)) == (-1, "ERANGE")
    n, err = raw_getxattr(f, "user.zk.stat", size - 1)
    assert (n, ename(err)) == (-1, "ERANGE")
    n, err = raw_getxattr(f, "user.zk.stat", size)
    assert (n, err) == (size, 0)
    json.loads(os.getxattr(f, "user.zk.stat"))
    lsize, err = raw_listxattr(f, 0)
    assert err == 0
    if lsize > 1:
        n, err = raw_listxattr(f, 1)
        assert (n, ename(err)) == (-1, "ERANGE")


def test_xattr_eopnotsupp_outside_user(mount):
    f = mount / "f"
    write(f, "x")
    for name in ("trusted.zk", "security.zk", "trusted.overlay.opaque"):
        e = oserror(os.setxattr, f, name, b"v")
        assert e == errno.EOPNOTSUPP, f"setxattr {name}: {ename(e)}, expected EOPNOTSUPP"
        # Reading one that cannot exist: no value, or not supported; never ENOSYS.
        e = oserror(os.getxattr, f, name)
        assert e in (errno.EOPNOTSUPP, errno.ENODATA), f"getxattr {name}: {ename(e)}"
    run_fails(f"setfattr -n trusted.zk -v 1 {f}", "Operation not supported")
    # Nothing above disabled xattrs for the mount (an ENOSYS reply would).
    json.loads(os.getxattr(f, "user.zk.stat"))
    # And writes, which make the kernel ask for security.capability, still work.
    write(f, "y")
    assert read(f) == b"y"
