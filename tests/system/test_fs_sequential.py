"""Sequential directories (DESIGN §3): `mkdir DIR/NAME` makes NAME + ZooKeeper's 10-digit
suffix and leaves no NAME; `echo job > DIR/item-` enqueues atomically, created with its content
at close, and a run of them never overwrites an earlier item (the kernel must not reuse a cached
`item-` dentry: notes/fuse-semantics.md)."""

import os
import re
import threading

from fs_harness import read_or_none, run, zexists, zget, zls, zstat
from harness import wait_for

SEQ = re.compile(r"^(?P<name>.*)(?P<seq>\d{10})$")


def make_seq_dir(m, name="q", policy="sequential"):
    os.mkdir(m / name)
    run(f"setfattr -n user.zk.policy -v {policy} {m / name}")


def check_items(mc, parent, prefix, want_data):
    """Every child of parent is prefix + 10 digits, none is bare prefix, version 0 (created
    with its content), and the data are exactly want_data (a list, in any order)."""
    names = zls(mc, parent)
    bad = [n for n in names if not (n.startswith(prefix) and SEQ.match(n) and
                                    SEQ.match(n).group("name") == prefix)]
    assert not bad, f"unexpected names in {parent}: {bad}"
    datas = []
    for n in names:
        datas.append(zget(mc, f"{parent}/{n}"))
        assert zstat(mc, f"{parent}/{n}")["version"] == 0, \
            f"{parent}/{n} was created and then set, not created with its content"
    assert sorted(datas) == sorted(want_data), (f"{len(names)} items for {len(want_data)} "
                                                 f"writes; lost or overwritten ones")
    return names


def test_echo_builtin_in_a_row_makes_as_many_items(mc, mount):
    make_seq_dir(mount)
    n = 60
    run(f"for i in $(seq 1 {n}); do echo job$i > {mount / 'q/item-'}; done")
    names = check_items(mc, "/q", "item-", [f"job{i}\n".encode() for i in range(1, n + 1)])
    assert sorted(os.listdir(mount / "q")) == sorted(names)
    assert not os.path.exists(mount / "q/item-")


def test_bin_echo_in_a_row_makes_as_many_items(mc, mount):
    make_seq_dir(mount)
    n = 60
    run(f"for i in $(seq 1 {n}); do /bin/echo job$i > {mount / 'q/item-'} || exit 1; done")
    check_items(mc, "/q", "item-", [f"job{i}\n".encode() for i in range(1, n + 1)])


def test_two_mounts_enqueue_concurrently(mc, mounts2):
    a, b = mounts2
    make_seq_dir(a)
    wait_for(lambda: os.path.exists(b / "q"), 10)
    n = 40
    errors = []

    def enqueue(m):
        r = run(f"for i in $(seq 1 {n}); do echo {m.name}-$i > {m / 'q/job-'}; done",
                check=False, timeout=120)
        if r.returncode:
            errors.append((m.name, r.stderr))

    threads = [threading.Thread(target=enqueue, args=(m,)) for m in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(150)
    assert not errors, errors
    check_items(mc, "/q", "job-",
                [f"{m}-{i}\n".encode() for m in ("a", "b") for i in range(1, n + 1)])


def test_item_is_created_with_its_content_at_close(mc, mount):
    make_seq_dir(mount)
    fd = os.open(mount / "q/item-", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"part1,")
        os.write(fd, b"part2")
        assert zls(mc, "/q") == [], "the item appeared before its content was complete"
    finally:
        os.close(fd)
    names = check_items(mc, "/q", "item-", [b"part1,part2"])
    assert len(names) == 1


def test_mkdir_makes_a_ten_digit_name_and_no_bare_name(mc, mount):
    make_seq_dir(mount)
    made = []
    for i in range(10):
        before = set(zls(mc, "/q"))
        run(f"mkdir {mount / 'q/job-'}")
        new = set(zls(mc, "/q")) - before
        assert len(new) == 1, f"mkdir #{i} made {sorted(new)}"
        made.append(new.pop())
    for n in made:
        assert re.fullmatch(r"job-\d{10}", n), n
        assert zstat(mc, f"/q/{n}")["kind"] == "directory"
        assert os.path.isdir(mount / f"q/{n}")
    seqs = [int(n[-10:]) for n in made]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10, made
    assert "job-" not in os.listdir(mount / "q")
    assert not zexists(mc, "/q/job-")
    # Names with a unique token let a creator find its node.
    run(f"mkdir {mount / 'q'}/host1-$$-")
    assert any(re.fullmatch(r"host1-\d+-\d{10}", n) for n in os.listdir(mount / "q"))


def test_sequential_ephemeral_lock_directories(mc, mounts2):
    a, b = mounts2
    make_seq_dir(a, "locks", "ephemeral,sequential")
    for _ in range(3):
        os.mkdir(a / "locks/lock-")
    names = zls(mc, "/locks")
    assert len(names) == 3 and all(re.fullmatch(r"lock-\d{10}", n) for n in names), names
    owners = {zstat(mc, f"/locks/{n}")["ephemeralOwner"] for n in names}
    assert len(owners) == 1 and 0 not in owners
    wait_for(lambda: sorted(os.listdir(b / "locks")) == names, 10)
    a.unmount()
    wait_for(lambda: os.listdir(b / "locks") == [], 10,
             what="the ephemeral sequential nodes to go with mount a")
    assert zls(mc, "/locks") == []


def test_mountctl_create_s_visible_in_the_mount(mc, mount):
    make_seq_dir(mount)
    name = mc.ok("create", "-s", "/q/x-", "payload")
    assert re.fullmatch(r"/q/x-\d{10}", name), name
    wait_for(lambda: read_or_none(mount / name) == b"payload", 10)
