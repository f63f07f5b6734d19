"""Rename (DESIGN §3): a file rename is one atomic multi, so write-temp-then-mv is safe for
readers anywhere; a non-empty directory gives EXDEV (and coreutils mv falls back to copying)."""

import ctypes
import errno
import os
import re
import threading

import pytest

from fs_harness import (ename, oserror, read, read_or_none, run, write, zexists, zget, zls,
                        zstat)
from harness import wait_for

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def describe_mix(data, header_len=7):
    """Where data made of a header and runs of one filler letter per version changes letter:
    [(offset, letter, length)], to show which versions a torn read mixed."""
    runs, i = [], header_len
    while i < len(data):
        j = i
        while j < len(data) and data[j] == data[i]:
            j += 1
        runs.append((i, chr(data[i]) if 32 <= data[i] < 127 else hex(data[i]), j - i))
        i = j
    return runs[:8]


def renameat2(src, dst, flags):
    AT_FDCWD = -100
    rc = _libc.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags)
    return 0 if rc == 0 else ctypes.get_errno()


def test_mv_to_a_new_name(mc, mount):
    write(mount / "a", "data-a")
    run(f"mv {mount / 'a'} {mount / 'b'}")
    assert zget(mc, "/b") == b"data-a"
    assert not zexists(mc, "/a")
    assert zstat(mc, "/b")["kind"] == "file"
    assert sorted(os.listdir(mount.mountpoint)) == ["b"]
    assert read(mount / "b") == b"data-a"


def test_mv_onto_a_file_replaces_its_data_in_one_transaction(replica, mc, mount, make_mount):
    write(mount / "config", "old")
    write(mount / "config.new", "new")
    before = zstat(mc, "/config")
    run(f"mv {mount / 'config.new'} {mount / 'config'}")
    assert zget(mc, "/config") == b"new"
    assert not zexists(mc, "/config.new")
    after = zstat(mc, "/config")
    # The data moved to the target node (it keeps its identity), and the source's delete is
    # in the same transaction: the root's pzxid (moved by the delete) is the target's mzxid.
    assert after["czxid"] == before["czxid"], "the target was recreated, not given the data"
    assert after["version"] == before["version"] + 1
    assert zstat(mc, "/")["pzxid"] == after["mzxid"], \
        "the source delete and the target's setData are not one transaction"
    assert read(mount / "config") == b"new"
    assert os.listdir(mount.mountpoint) == ["config"]
    # The kernel moved the source's inode to the name; st_ino must still be the node's, as a
    # fresh mount sees it.
    fresh = make_mount(replica, "fresh")
    assert os.stat(mount / "config").st_ino == os.stat(fresh / "config").st_ino
    assert read(fresh / "config") == b"new"


def test_mv_across_directories(mc, mount):
    os.makedirs(mount / "d1")
    os.makedirs(mount / "d2")
    write(mount / "d1/f", "x")
    run(f"mv {mount / 'd1/f'} {mount / 'd2/g'}")
    assert zget(mc, "/d2/g") == b"x"
    assert zls(mc, "/d1") == []
    os.rename(mount / "d2/g", mount / "top")
    assert zget(mc, "/top") == b"x"


def test_rename_noreplace_and_exchange(mc, mount):
    write(mount / "a", "A")
    write(mount / "b", "B")
    assert ename(renameat2(mount / "a", mount / "b", RENAME_NOREPLACE)) == "EEXIST"
    assert (zget(mc, "/a"), zget(mc, "/b")) == (b"A", b"B")
    err = renameat2(mount / "a", mount / "b", RENAME_EXCHANGE)
    if err == 0:
        assert (zget(mc, "/a"), zget(mc, "/b")) == (b"B", b"A")
    else:
        assert ename(err) == "EINVAL", "RENAME_EXCHANGE: swap, or EINVAL if unsupported"
        assert (zget(mc, "/a"), zget(mc, "/b")) == (b"A", b"B")


def test_rename_of_a_nonempty_directory_is_exdev(mc, mount):
    os.makedirs(mount / "d/sub")
    write(mount / "d/f", "ff")
    write(mount / "d/sub/g", "gg")
    assert oserror(os.rename, mount / "d", mount / "e") == errno.EXDEV
    assert zget(mc, "/d/f") == b"ff" and not zexists(mc, "/e")
    # coreutils mv copies entry by entry and removes the source.
    run(f"mv {mount / 'd'} {mount / 'e'}")
    assert zget(mc, "/e/f") == b"ff" and zget(mc, "/e/sub/g") == b"gg"
    assert not zexists(mc, "/d")
    assert read(mount / "e/sub/g") == b"gg"


def test_rename_of_an_empty_directory(mc, mount):
    os.mkdir(mount / "d")
    os.rename(mount / "d", mount / "e")
    assert not zexists(mc, "/d")
    assert zstat(mc, "/e")["kind"] == "directory"
    assert os.path.isdir(mount / "e")


@pytest.mark.parametrize("size", [4000, 150 * 1024], ids=["4KB", "150KiB"])
def test_write_temp_then_mv_readers_never_see_partial_or_missing(mounts2, tmp_path, size):
    """Readers on both mounts (the writer's and another) while mount a runs `cp new tmp; mv
    tmp config` a few hundred times: every read is one whole version, never a missing file,
    a prefix or a mix of two versions, and versions never go back. 150 KiB spans several
    FUSE READs."""
    a, b = mounts2
    n = 300 if size < 65536 else 150
    src = tmp_path / "versions"
    src.mkdir()

    def content(i):
        return f"v{i:05d}\n".encode() + bytes([97 + i % 26]) * size + b"\n"

    for i in range(n + 1):
        (src / str(i)).write_bytes(content(i))
    write(a / "config", content(0))
    wait_for(lambda: read_or_none(b / "config") == content(0), 10)
    assert read(a / "config") == content(0)

    pat = re.compile(rb"v(\d{5})\n")
    problems = []
    counts = {}
    stop = threading.Event()

    def reader(m):
        last = -1
        seen = set()
        reads = 0
        while not stop.is_set() and len(problems) < 5:
            try:
                with open(m / "config", "rb") as f:
                    data = f.read()
            except OSError as e:
                problems.append(f"{m.name}: read failed: {ename(e.errno)}")
                continue
            reads += 1
            mo = pat.match(data)
            if not mo or data != content(int(mo.group(1))):
                problems.append(f"{m.name}: partial or mixed data: {data[:7]!r}, "
                                f"{len(data)} bytes, runs (offset, letter, length) "
                                f"{describe_mix(data)}")
                continue
            v = int(mo.group(1))
            if v < last:
                problems.append(f"{m.name}: went back from v{last} to v{v}")
            last = v
            seen.add(v)
        counts[m.name] = (reads, len(seen))

    threads = [threading.Thread(target=reader, args=(m,), daemon=True) for m in (b, a)]
    for t in threads:
        t.start()
    try:
        run(f"for i in $(seq 1 {n}); do cp {src}/$i config.tmp && mv -f config.tmp config "
            f"|| exit 1; done", cwd=a.mountpoint, timeout=150)
        wait_for(lambda: read_or_none(b / "config") == content(n) or problems, 15,
                 what="mount b to see the last version")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not problems, problems
    assert read(b / "config") == content(n)
    assert not os.path.exists(b / "config.tmp")
    # The readers really overlapped the writer.
    assert counts["b"][0] > 50 and counts["b"][1] > 5, counts


def test_in_place_overwrite_remote_readers_never_see_partial_or_empty(mounts2, tmp_path):
    """`cp new config` (O_TRUNC, several writes, close) on mount a: a reader on mount b only
    ever sees whole versions, never the empty file O_TRUNC makes locally nor a prefix."""
    a, b = mounts2
    n = 300
    src = tmp_path / "versions"
    src.mkdir()

    def content(i):
        return f"v{i:05d}\n".encode() + bytes([97 + i % 26]) * (150 * 1024) + b"\n"

    for i in range(n + 1):
        (src / str(i)).write_bytes(content(i))
    write(a / "config", content(0))
    wait_for(lambda: read_or_none(b / "config") == content(0), 10)
    pat = re.compile(rb"v(\d{5})\n")
    problems, reads = [], [0]
    stop = threading.Event()

    def reader():
        last = -1
        while not stop.is_set() and len(problems) < 5:
            try:
                data = read(b / "config")
            except OSError as e:
                problems.append(f"read failed: {ename(e.errno)}")
                continue
            reads[0] += 1
            mo = pat.match(data)
            if not mo or data != content(int(mo.group(1))):
                problems.append(f"partial, empty or mixed data: {data[:7]!r}, {len(data)} "
                                f"bytes, runs (offset, letter, length) {describe_mix(data)}")
                continue
            v = int(mo.group(1))
            if v < last:
                problems.append(f"went back from v{last} to v{v}")
            last = v

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        # cp copies in 128 KiB chunks: several write(2)s per version.
        run(f"for i in $(seq 1 {n}); do cp {src}/$i {a / 'config'} || exit 1; done",
            timeout=150)
        wait_for(lambda: read_or_none(b / "config") == content(n) or problems, 15,
                 what="mount b to see the last version")
    finally:
        stop.set()
        t.join(30)
    assert not problems, problems
    assert reads[0] > 20, reads
