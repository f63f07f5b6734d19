"""Changes made elsewhere reach local inotify watchers (DESIGN §3 "Watches -> inotify"): one
mount (or mountctl) changes, `inotifywait -m -r` on another mount observes IN_CREATE,
IN_DELETE, IN_MODIFY + IN_CLOSE_WRITE, IN_ATTRIB and IN_MOVED_*; a read after an event returns
the new data; events for a node come in order; a mount's own changes are not replayed."""

import os

from fs_harness import read, read_or_none, run, write
from harness import wait_for


def test_create_and_delete_a_file_from_another_mount(mounts2, make_inotify):
    a, b = mounts2
    w = make_inotify(b)
    run(f"echo hi > {a / 'f'}")
    w.expect("CREATE", "f")
    assert "f" in os.listdir(b.mountpoint)
    # `echo >` is a create (empty, as the shell's open makes it) and then a setData at close:
    # as on a local filesystem, the data is there once its IN_MODIFY is, not at IN_CREATE.
    w.expect("MODIFY", "f")
    assert read(b / "f") == b"hi\n"
    mark = w.mark()
    run(f"rm {a / 'f'}")
    w.expect("DELETE", "f", since=mark)
    assert "f" not in os.listdir(b.mountpoint)
    assert not os.path.exists(b / "f")


def test_mkdir_and_rmdir_from_another_mount(mounts2, make_inotify):
    a, b = mounts2
    w = make_inotify(b)
    os.mkdir(a / "d")
    ev = w.expect("CREATE", "d")
    assert "ISDIR" in ev.flags, ev
    assert os.path.isdir(b / "d")
    mark = w.mark()
    os.rmdir(a / "d")
    ev = w.expect("DELETE", "d", since=mark)
    assert "ISDIR" in ev.flags, ev


def test_modify_from_another_mount(mounts2, make_inotify):
    a, b = mounts2
    write(a / "f", "old")
    wait_for(lambda: read_or_none(b / "f") == b"old", 10)
    w = make_inotify(b)
    run(f"echo new > {a / 'f'}")
    w.expect("MODIFY", "f")
    assert read(b / "f") == b"new\n"
    w.expect("CLOSE_WRITE", "f")


def test_attrib_for_a_metadata_change(mounts2, mc, make_inotify):
    a, b = mounts2
    os.mkdir(a / "d")
    wait_for(lambda: os.path.isdir(b / "d"), 10)
    w = make_inotify(b)
    run(f"setfattr -n user.zk.policy -v sequential {a / 'd'}")
    w.expect("ATTRIB", "d")
    assert os.getxattr(b / "d", "user.zk.policy").strip() == b"sequential"
    mark = w.mark()
    mc.ok("policy", "/d", "ephemeral")
    w.expect("ATTRIB", "d", since=mark)


def test_rename_from_another_mount(mounts2, make_inotify):
    a, b = mounts2
    write(a / "f", "one")
    write(a / "target", "old")
    wait_for(lambda: os.path.exists(b / "f") and os.path.exists(b / "target"), 10)
    w = make_inotify(b)
    run(f"mv {a / 'f'} {a / 'g'}")
    w.expect("MOVED_FROM", "f")
    w.expect("MOVED_TO", "g")
    assert read(b / "g") == b"one" and not os.path.exists(b / "f")
    mark = w.mark()
    run(f"mv {a / 'g'} {a / 'target'}")
    w.expect("MOVED_FROM", "g", since=mark)
    w.expect("MOVED_TO", "target", since=mark)
    assert read(b / "target") == b"one"
    assert sorted(os.listdir(b.mountpoint)) == ["target"]
    # Across directories.
    os.mkdir(a / "sub")
    w.expect("CREATE", "sub", since=mark)
    wait_for(lambda: os.path.isdir(b / "sub"), 10)
    mark = w.mark()
    run(f"mv {a / 'target'} {a / 'sub/moved'}")
    w.expect("MOVED_FROM", "target", since=mark)
    w.expect("MOVED_TO", "sub/moved", since=mark)
    assert read(b / "sub/moved") == b"one"


def test_mountctl_changes_observed_through_a_mount(mc, mount, make_inotify):
    os.mkdir(mount / "d")  # a directory already (a childless znode would be a file)
    w = make_inotify(mount)
    mc.ok("create", "/d/x", "1")
    w.expect("CREATE", "d/x")
    assert read(mount / "d/x") == b"1"
    mark = w.mark()
    mc.ok("set", "/d/x", "22")
    w.expect("MODIFY", "d/x", since=mark)
    assert read(mount / "d/x") == b"22"
    mark = w.mark()
    mc.ok("rm", "/d/x")
    w.expect("DELETE", "d/x", since=mark)
    assert not os.path.exists(mount / "d/x")
    mark = w.mark()
    mc.ok("create", "/top", "t")
    w.expect("CREATE", "top", since=mark)


def test_change_deep_in_the_tree(mc, mount, make_inotify):
    mc.ok("create", "/a")
    mc.ok("create", "/a/b")
    mc.ok("create", "/a/b/c")
    mc.ok("create", "/a/b/c/leaf", "v1")
    wait_for(lambda: os.path.exists(mount / "a/b/c/leaf"), 10)
    w = make_inotify(mount)
    mc.ok("set", "/a/b/c/leaf", "v2")
    w.expect("MODIFY", "a/b/c/leaf")
    assert read(mount / "a/b/c/leaf") == b"v2"


def test_read_right_after_each_modify_returns_the_new_data(mounts2, mc, make_inotify):
    a, b = mounts2
    write(a / "cfg", "v0")
    wait_for(lambda: read_or_none(b / "cfg") == b"v0", 10)
    w = make_inotify(b, events=("modify",))
    for i in range(1, 121):
        # Half of the changes keep the size (nothing but the event can tell the kernel's
        # caches), half change it (a stale cached size would show).
        data = f"same-{i:05d}" if i % 4 < 2 else f"v{i}-" + "x" * ((i * 37) % 300)
        assert read(b / "cfg")  # keeps the old data in b's caches
        mark = w.mark()
        if i % 2:
            write(a / "cfg", data)
        else:
            mc.ok("set", "/cfg", data)
        w.expect("MODIFY", "cfg", since=mark)
        size = os.stat(b / "cfg").st_size
        got = read(b / "cfg")
        assert size == len(data), f"iteration {i}: st_size {size} after IN_MODIFY, not {len(data)}"
        assert got == data.encode(), f"iteration {i}: read after IN_MODIFY gave {got[:40]!r}"


def test_events_for_a_node_arrive_in_order(mc, mount, make_inotify):
    w = make_inotify(mount)
    m = mc.argv([])  # mountctl --servers ... as a prefix
    prefix = " ".join(m)
    run(f"{prefix} create /o 1 && {prefix} set /o 2 && {prefix} rm /o && "
        f"{prefix} create /o 3 && {prefix} rm /o && {prefix} create /o 4")
    want = [("CREATE", "o"), ("MODIFY", "o"), ("DELETE", "o"), ("CREATE", "o"),
            ("DELETE", "o"), ("CREATE", "o")]

    def complete():
        evs = [e for e in w.since() if e.path == "o"]
        i = 0
        for e in evs:
            if i < len(want) and want[i][0] in e.flags:
                i += 1
        return i == len(want)

    wait_for(complete, 15, what=f"events {want} in this order; got {w.since()!r}")
    # Nothing for o out of order: every DELETE follows a CREATE, and the last one is a CREATE.
    kinds = [k for e in w.since() if e.path == "o" for k in ("CREATE", "DELETE") if k in e.flags]
    assert kinds == ["CREATE", "DELETE", "CREATE", "DELETE", "CREATE"], kinds
    assert read(mount / "o") == b"4"


def test_own_changes_are_not_replayed(mounts2, mc, make_inotify):
    a, b = mounts2
    wa = make_inotify(a, name="on-a")
    wb = make_inotify(b, name="on-b")
    run(f"echo x > {a / 'own'} && mkdir {a / 'owndir'} && echo y > {a / 'own'}")
    # A later change from elsewhere: once both mounts reported it, the earlier ones are in.
    mc.ok("create", "/sentinel")
    wa.expect("CREATE", "sentinel")
    wb.expect("CREATE", "sentinel")
    for w in (wa, wb):
        assert len(w.find("CREATE", "own")) == 1, (w.name, w.since())
        assert len(w.find("CREATE", "owndir")) == 1, (w.name, w.since())
    # Two writes on a: the local ones only (the replayed remote ones would be extra).
    assert len(wa.find("CLOSE_WRITE", "own")) == 2, wa.since()


def test_kazoo_changes_observed_through_a_mount(replica, mount, make_inotify):
    """A ZooKeeper client (kazoo, jute protocol) changes the tree; the mount reports it."""
    from kazoo.client import KazooClient
    os.mkdir(mount / "k")
    w = make_inotify(mount)
    zk = KazooClient(hosts=replica.servers, timeout=10)
    zk.start(timeout=15)
    try:
        zk.create("/k/node", b"one")
        w.expect("CREATE", "k/node")
        assert read(mount / "k/node") == b"one"
        mark = w.mark()
        zk.set("/k/node", b"two!")
        w.expect("MODIFY", "k/node", since=mark)
        assert read(mount / "k/node") == b"two!"
        zk.create("/k/eph", b"e", ephemeral=True)
        w.expect("CREATE", "k/eph")
        mark = w.mark()
        zk.delete("/k/node")
        w.expect("DELETE", "k/node", since=mark)
        assert not os.path.exists(mount / "k/node")
    finally:
        zk.stop()
        zk.close()
    # kazoo's session ended: its ephemeral goes, and the mount says so.
    w.expect("DELETE", "k/eph")
    assert not os.path.exists(mount / "k/eph")


def test_old_open_file_leaves_no_stale_pages_behind(mounts2, make_inotify):
    """A reader that opened the file before a remote change may go on reading the version it
    opened, but what it reads must not end up in the page cache for later opens: a file
    opened after IN_MODIFY reads the new data in full."""
    a, b = mounts2
    size = 160 * 1024
    old, new = b"o" * size, b"n" * size
    write(a / "cfg", old)
    wait_for(lambda: read_or_none(b / "cfg") == old, 10)
    w = make_inotify(b, events=("modify",))
    fd = os.open(b / "cfg", os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no readahead: page by page
        assert os.pread(fd, 4096, 0) == b"o" * 4096
        mark = w.mark()
        write(a / "cfg", new)
        w.expect("MODIFY", "cfg", since=mark)
        # The old descriptor reads on (whatever version it gives, one version only).
        tail = os.pread(fd, 4096, 100 * 1024)
        assert tail in (b"o" * 4096, b"n" * 4096), tail[:16]
    finally:
        os.close(fd)
    got = read(b / "cfg")
    bad = [i for i in range(0, size, 4096) if got[i:i + 4096] != new[i:i + 4096]]
    assert not bad, (f"a file opened after IN_MODIFY read old bytes at pages "
                     f"{[i // 4096 for i in bad][:10]}")
