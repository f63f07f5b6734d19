"""ZooKeeper's data model through mountctl: CRUD, versions, the Stat rules, sequential,
ephemeral, container and TTL nodes, path validation and the data size limit."""

import json
import os
import subprocess
import time

import pytest

import native
from harness import binary, free_port, wait_for

MiB = 1 << 20


def stat(mc, path):
    return json.loads(mc.ok("-w", "json", "stat", path))


def exists(mc, path):
    r = mc.run("stat", path)
    if r.returncode == 0:
        return True
    assert b"NONODE" in r.stderr, r.stderr
    return False


def test_create_get_set_rm(mc):
    assert mc.ok("create", "/app", "hello") == "/app"
    assert mc.ok("get", "/app") == "hello"
    mc.ok("set", "/app", "world")
    assert mc.ok("get", "/app") == "world"
    mc.ok("rm", "/app")
    mc.fail("get", "/app", error="NONODE")


def test_create_without_data_is_empty(mc):
    mc.ok("create", "/empty")
    assert mc.run("get", "/empty").stdout == b""
    assert stat(mc, "/empty")["dataLength"] == 0


def test_get_prints_raw_data(mc):
    mc.ok("create", "/raw", "no newline")
    assert mc.run("get", "/raw").stdout == b"no newline"


def test_errors(mc):
    mc.ok("create", "/e")
    mc.fail("create", "/e", error="NODEEXISTS")
    mc.fail("create", "/missing/child", error="NONODE")
    mc.fail("set", "/missing", "x", error="NONODE")
    mc.fail("rm", "/missing", error="NONODE")
    mc.fail("ls", "/missing", error="NONODE")
    mc.fail("stat", "/missing", error="NONODE")
    mc.ok("create", "/e/child")
    mc.fail("rm", "/e", error="NOTEMPTY")
    assert mc.ok("ls", "/e") == "child"


def test_versions(mc):
    mc.ok("create", "/v", "0")
    assert stat(mc, "/v")["version"] == 0
    mc.ok("set", "-v", "0", "/v", "1")
    assert stat(mc, "/v")["version"] == 1
    mc.fail("set", "-v", "0", "/v", "2", error="BADVERSION")
    assert mc.ok("get", "/v") == "1"
    mc.ok("set", "/v", "2")  # no -v: any version
    assert stat(mc, "/v")["version"] == 2
    mc.fail("rm", "-v", "1", "/v", error="BADVERSION")
    assert exists(mc, "/v")
    mc.ok("rm", "-v", "2", "/v")
    assert not exists(mc, "/v")


def test_stat_fields_follow_zookeeper(mc):
    t0 = int(time.time() * 1000)
    mc.ok("create", "/p", "abc")
    t1 = int(time.time() * 1000)
    s = stat(mc, "/p")
    for k in ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
              "ephemeralOwner", "dataLength", "numChildren", "pzxid"):
        assert k in s, f"stat has no {k}: {s}"
    assert s["czxid"] == s["mzxid"] == s["pzxid"]
    assert s["czxid"] > 0
    assert s["ctime"] == s["mtime"]
    assert t0 - 1000 <= s["ctime"] <= t1 + 1000, (t0, s["ctime"], t1)
    assert (s["version"], s["cversion"], s["aversion"]) == (0, 0, 0)
    assert s["ephemeralOwner"] == 0
    assert (s["dataLength"], s["numChildren"]) == (3, 0)

    # A data change moves mzxid and mtime only.
    time.sleep(0.01)  # not a wait: lets the clock move so that mtime can differ from ctime
    mc.ok("set", "/p", "abcdef")
    s2 = stat(mc, "/p")
    assert s2["mzxid"] > s["mzxid"]
    assert s2["czxid"] == s["czxid"] and s2["ctime"] == s["ctime"]
    assert s2["mtime"] > s["mtime"]
    assert s2["pzxid"] == s["pzxid"]
    assert (s2["version"], s2["dataLength"]) == (1, 6)

    # A child create: cversion +1, pzxid = the create's zxid, numChildren; the parent's own
    # version and mzxid stay.
    mc.ok("create", "/p/a")
    a = stat(mc, "/p/a")
    s3 = stat(mc, "/p")
    assert (s3["cversion"], s3["numChildren"]) == (1, 1)
    assert s3["pzxid"] == a["czxid"] > s2["mzxid"]
    assert s3["mzxid"] == s2["mzxid"] and s3["version"] == 1
    mc.ok("create", "/p/b")
    s4 = stat(mc, "/p")
    assert (s4["cversion"], s4["numChildren"]) == (2, 2)

    # A child delete: pzxid moves, numChildren drops, cversion does not grow.
    mc.ok("rm", "/p/a")
    s5 = stat(mc, "/p")
    assert (s5["cversion"], s5["numChildren"]) == (2, 1)
    assert s5["pzxid"] > s4["pzxid"]
    assert s5["mzxid"] == s2["mzxid"]

    # Changing a child's data is not a change of the parent.
    mc.ok("set", "/p/b", "x")
    assert stat(mc, "/p") == s5


def test_zxids_increase(mc):
    zxids = []
    for i in range(5):
        mc.ok("create", f"/z{i}")
        zxids.append(stat(mc, f"/z{i}")["czxid"])
    assert zxids == sorted(set(zxids))


def test_sequential_names(mc):
    mc.ok("create", "/q")
    assert mc.ok("create", "-s", "/q/job-", "a") == "/q/job-0000000000"
    assert mc.ok("create", "-s", "/q/job-", "b") == "/q/job-0000000001"
    mc.ok("create", "/q/plain")  # cversion 2 -> 3
    mc.ok("rm", "/q/job-0000000000")  # a delete does not move cversion
    assert mc.ok("create", "-s", "/q/job-") == "/q/job-0000000003"
    # A sequential child may end in '/': the name is just the suffix.
    assert mc.ok("create", "-s", "/q/") == "/q/0000000004"
    assert mc.ok("get", "/q/job-0000000001") == "b"
    assert mc.ok("ls", "/q").split("\n") == [
        "0000000004", "job-0000000001", "job-0000000003", "plain"]


def test_ephemeral_gone_when_creator_exits(mc):
    mc.ok("create", "/eph")
    assert mc.ok("create", "-e", "/eph/me", "x") == "/eph/me"
    # mountctl closed its session on exit: the node is gone at once.
    assert not exists(mc, "/eph/me")
    out = mc.ok("create", "-e", "-s", "/eph/n-")
    assert out.startswith("/eph/n-") and len(out) == len("/eph/n-") + 10
    assert not exists(mc, out)
    assert mc.ok("ls", "/eph") == ""


def test_ephemeral_owner_while_alive(replica, mc):
    # An ephemeral made by a session that stays open (the native client; see
    # test_session.py) shows its owner in stat and cannot have children.
    c = native.Native(replica.port)
    assert c.create("/e1", b"", native.EPHEMERAL).err == 0
    s = stat(mc, "/e1")
    assert s["ephemeralOwner"] == c.session_id
    mc.fail("create", "/e1/child", error="NOCHILDRENFOREPHEMERALS")
    c.close_session()
    assert not exists(mc, "/e1")


def test_container_deleted_when_last_child_goes(make_replica):
    r = make_replica(cfg={"znode.container.checkIntervalMs": 100})
    mc = r.mc
    assert mc.ok("create", "-c", "/ctr") == "/ctr"
    s = stat(mc, "/ctr")
    assert s["ephemeralOwner"] == -(1 << 63), s  # ZooKeeper's container marker
    mc.ok("create", "/ctr/lock")
    mc.ok("rm", "/ctr/lock")
    wait_for(lambda: not exists(mc, "/ctr"), 15, what="the empty container to be deleted")
    # A container that never had a child stays.
    mc.ok("create", "-c", "/fresh")
    mc.ok("create", "-c", "/ctr2")
    mc.ok("create", "/ctr2/x")
    mc.ok("rm", "/ctr2/x")
    wait_for(lambda: not exists(mc, "/ctr2"), 15, what="the second container to go")
    assert exists(mc, "/fresh")


def test_ttl_node_expires(make_replica):
    r = make_replica(cfg={"znode.container.checkIntervalMs": 100})
    mc = r.mc
    assert mc.ok("create", "-t", "300", "/ttl", "x") == "/ttl"
    s = stat(mc, "/ttl")
    owner = s["ephemeralOwner"] & ((1 << 64) - 1)
    assert owner >> 56 == 0xFF, hex(owner)  # ZooKeeper's TTL marker
    assert owner & ((1 << 40) - 1) == 300
    # A TTL node with a child stays; once empty and older than the TTL it goes.
    mc.ok("create", "-t", "300", "/ttl2")
    mc.ok("create", "/ttl2/kid")
    wait_for(lambda: not exists(mc, "/ttl"), 15, what="the TTL node to expire")
    assert exists(mc, "/ttl2")
    seq = mc.ok("create", "-s", "-t", "200", "/tseq-")
    assert seq.startswith("/tseq-") and seq[6:].isdigit() and len(seq[6:]) == 10, seq
    wait_for(lambda: not exists(mc, seq), 15, what="the sequential TTL node to expire")


def test_ttl_refused_when_disabled(make_replica):
    r = make_replica(cfg={"extendedTypesEnabled": "false"})
    r.mc.fail("create", "-t", "1000", "/ttl", error="UNIMPLEMENTED")
    assert not exists(r.mc, "/ttl")


def test_bad_ttl(mc):
    # ZooKeeper allows TTLs only on persistent nodes, and only above 0.
    for args in (("-t", "0"), ("-t", "-5"), ("-e", "-t", "1000")):
        r = mc.run("create", *args, "/ttl")
        assert r.returncode != 0 and r.stderr.strip(), args
    assert not exists(mc, "/ttl")


@pytest.mark.parametrize("path", [
    "relative", "/trailing/", "//double", "/a//b", "/a/./b", "/a/../b", "/.", "/..",
    "/bad\x01char", "/bad\u007fdel", "",
])
def test_invalid_paths(mc, path):
    mc.fail("create", path, "x", error="BADARGUMENTS")


def test_invalid_path_for_reads(mc):
    mc.fail("get", "/a//b", error="BADARGUMENTS")
    mc.fail("ls", "/a/", error="BADARGUMENTS")
    mc.fail("rm", "/a/../b", error="BADARGUMENTS")


def test_root_cannot_be_removed_or_created(mc):
    mc.fail("create", "/")
    mc.fail("rm", "/")
    assert mc.run("ls", "/").returncode == 0


def test_unicode_names(mc):
    mc.ok("create", "/ünï", "ok")
    mc.ok("create", "/ünï/日本")
    assert mc.ok("ls", "/ünï") == "日本"
    assert mc.ok("get", "/ünï") == "ok"


def test_rm_recursive(mc):
    mc.ok("create", "/tree")
    for p in ("/tree/a", "/tree/a/b", "/tree/a/b/c", "/tree/d"):
        mc.ok("create", p, p)
    mc.ok("create", "/tree2")
    mc.fail("rm", "/tree", error="NOTEMPTY")
    mc.ok("rm", "-r", "/tree")
    assert not exists(mc, "/tree")
    assert exists(mc, "/tree2")
    mc.fail("rm", "-r", "/tree", error="NONODE")


def test_ls_sorted(mc):
    mc.ok("create", "/dir")
    names = ["zeta", "alpha", "Beta", "m10", "m9", "_x", "a.b"]
    for n in names:
        mc.ok("create", f"/dir/{n}")
    out = mc.ok("ls", "/dir").split("\n")
    assert out == sorted(names)
    assert json.loads(mc.ok("-w", "json", "ls", "/dir")) == sorted(names)
    mc.ok("create", "/dir2")
    assert mc.ok("ls", "/dir2") == ""
    assert json.loads(mc.ok("-w", "json", "ls", "/dir2")) == []


def test_stat_table_for_people(mc):
    mc.ok("create", "/human", "abc")
    out = mc.ok("stat", "/human")
    assert "dataLength" in out and "3" in out


def test_data_limit(replica, mc):
    mc.ok("create", "/big", "-", input=b"a" * MiB)
    mc.ok("set", "/big", "-", input=b"b" * MiB)
    assert stat(mc, "/big")["dataLength"] == MiB
    assert mc.run("get", "/big").stdout == b"b" * MiB
    mc.fail("set", "/big", "-", input=b"c" * (MiB + 1))
    mc.fail("create", "/big2", "-", input=b"c" * (MiB + 1))
    assert not exists(mc, "/big2")
    # Nothing else was hurt.
    assert mc.run("get", "/big").stdout == b"b" * MiB
    assert stat(mc, "/big")["version"] == 1
    mc.ok("create", "/after", "fine")
    assert replica.fourlw("ruok") == "imok"


def test_configured_data_limit(make_replica):
    r = make_replica(cfg={"zkfs.maxDataSize": 1000})
    r.mc.ok("create", "/ok", "-", input=b"x" * 1000)
    r.mc.fail("create", "/no", "-", input=b"x" * 1001)
    r.mc.fail("set", "/ok", "-", input=b"x" * 1001)
    assert r.mc.run("get", "/ok").stdout == b"x" * 1000


def test_binary_data_round_trip(mc):
    blob = bytes(range(256)) * 64 + b"\0\n\r\xff"
    assert mc.ok("create", "/bin", "-", input=blob) == "/bin"
    assert mc.run("get", "/bin").stdout == blob
    blob2 = os.urandom(70000)
    mc.ok("set", "/bin", "-", input=blob2)
    assert mc.run("get", "/bin").stdout == blob2
    assert stat(mc, "/bin")["dataLength"] == len(blob2)


def test_sync(mc):
    mc.ok("create", "/s")
    mc.ok("sync", "/s")
    mc.fail("sync", "relative", error="BADARGUMENTS")


def test_servers_from_environment(replica):
    env = dict(os.environ, ZKFS_SERVERS=replica.servers)
    r = subprocess.run([binary("mountctl"), "create", "/fromenv", "x"], capture_output=True,
                       env=env, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert replica.mc.ok("get", "/fromenv") == "x"


def test_unreachable_server(tmp_path):
    port = free_port()
    t0 = time.monotonic()
    r = subprocess.run([binary("mountctl"), "--servers", f"127.0.0.1:{port}", "--timeout", "1",
                        "get", "/x"], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 3, (r.returncode, r.stderr)  # 3: cluster unreachable
    assert len(r.stderr.decode().strip().splitlines()) == 1, r.stderr
    assert time.monotonic() - t0 < 10


def test_policy(mc):
    mc.ok("create", "/jobs")
    assert stat(mc, "/jobs")["policy"] == "none"
    mc.ok("policy", "/jobs", "ephemeral,sequential")
    assert mc.ok("policy", "/jobs") == "ephemeral,sequential"
    assert stat(mc, "/jobs")["policy"] == "ephemeral,sequential"
    mc.ok("policy", "/jobs", "sequential")
    assert stat(mc, "/jobs")["policy"] == "sequential"
    mc.fail("policy", "/nope", "ephemeral", error="NONODE")
