"""Four-letter words on the client port, with ZooKeeper's output shapes and whitelist."""

import re

import pytest

import native
from harness import parse_mntr, wait_for


def srvr_fields(text):
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def test_ruok(replica):
    assert replica.fourlw("ruok") == "imok"


def test_srvr(replica, mc):
    f = srvr_fields(replica.fourlw("srvr"))
    assert f["Mode"] == "standalone"
    z0 = int(f["Zxid"], 16)
    n0 = int(f["Node count"])
    mc.ok("create", "/a")
    mc.ok("create", "/a/b")
    f = srvr_fields(replica.fourlw("srvr"))
    assert int(f["Node count"]) == n0 + 2
    assert int(f["Zxid"], 16) > z0
    assert f["Zxid"].startswith("0x")
    assert "Latency min/avg/max" in f


def test_stat_lists_clients(replica):
    c = native.Native(replica.port)
    out = replica.fourlw("stat")
    f = srvr_fields(out)
    assert f["Mode"] == "standalone"
    assert "Node count" in f
    assert "Clients" in f
    port = c.sock.getsockname()[1]
    assert f"127.0.0.1:{port}" in out, out


def test_mntr(replica, mc):
    m = parse_mntr(replica.fourlw("mntr"))
    assert m["zk_server_state"] == "standalone"
    for k in ("zk_version", "zk_avg_latency", "zk_max_latency", "zk_min_latency",
              "zk_packets_received", "zk_packets_sent", "zk_num_alive_connections",
              "zk_outstanding_requests", "zk_znode_count", "zk_watch_count",
              "zk_ephemerals_count", "zk_approximate_data_size"):
        assert k in m, f"mntr has no {k}: {sorted(m)}"
    assert int(m["zk_znode_count"]) == int(srvr_fields(replica.fourlw("srvr"))["Node count"])

    size0 = int(m["zk_approximate_data_size"])
    c = native.Native(replica.port)
    assert c.create("/e", b"x" * 1000, native.EPHEMERAL).err == 0
    c.get("/e", watch=True)
    m2 = parse_mntr(replica.fourlw("mntr"))
    assert int(m2["zk_znode_count"]) == int(m["zk_znode_count"]) + 1
    assert m2["zk_ephemerals_count"] == "1"
    assert int(m2["zk_watch_count"]) >= 1
    assert int(m2["zk_num_alive_connections"]) >= 1
    assert int(m2["zk_approximate_data_size"]) >= size0 + 1000
    c.close_session()
    m3 = parse_mntr(replica.fourlw("mntr"))
    assert m3["zk_ephemerals_count"] == "0"
    assert m3["zk_znode_count"] == m["zk_znode_count"]


def test_conf(replica):
    conf = replica.fourlw("conf")
    kv = dict(line.split("=", 1) for line in conf.splitlines() if "=" in line)
    assert kv.get("clientPort") == str(replica.port)
    assert kv.get("tickTime") == "200"
    assert kv.get("dataDir", "").rstrip("/").startswith(replica.data_dir.rstrip("/"))
    assert kv.get("maxSessionTimeout") == "4000"
    assert kv.get("minSessionTimeout") == "400"


def test_cons(replica):
    c = native.Native(replica.port)
    c.get("/")
    out = replica.fourlw("cons")
    port = c.sock.getsockname()[1]
    line = [ln for ln in out.splitlines() if f"127.0.0.1:{port}" in ln]
    assert line, out
    assert f"sid=0x{c.session_id:x}" in line[0], line[0]


def test_dump_lists_sessions_with_ephemerals(replica):
    c = native.Native(replica.port)
    assert c.create("/eph1", b"", native.EPHEMERAL).err == 0
    out = replica.fourlw("dump")
    assert f"0x{c.session_id:x}" in out, out
    assert "/eph1" in out


def test_wchs(replica):
    c = native.Native(replica.port)
    c.create("/w1", b"")
    c.create("/w2", b"")
    c.get("/w1", watch=True)
    c.exists("/w2", watch=True)
    out = replica.fourlw("wchs")
    m = re.search(r"(\d+) connections watching (\d+) paths", out)
    assert m, out
    assert (int(m.group(1)), int(m.group(2))) == (1, 2)
    assert re.search(r"Total watches:\s*2", out), out


@pytest.mark.parametrize("word", ["ruok", "stat", "mntr", "conf", "cons", "dump", "wchs"])
def test_not_whitelisted_gets_no_answer(make_replica, word):
    r = make_replica(whitelist="srvr")
    assert r.fourlw(word) == "", f"{word} answered though not whitelisted"
    assert "Mode: standalone" in r.fourlw("srvr")


def test_default_whitelist_is_srvr(make_replica):
    r = make_replica(whitelist=None)
    assert "Mode: standalone" in r.fourlw("srvr")
    assert r.fourlw("ruok") == ""
    assert r.fourlw("mntr") == ""


def test_whitelist_list(make_replica):
    r = make_replica(whitelist="ruok, mntr")
    assert r.fourlw("ruok") == "imok"
    assert "zk_server_state\tstandalone" in r.fourlw("mntr")
    assert r.fourlw("srvr") == ""


def test_unknown_word_gets_no_answer(replica):
    assert replica.fourlw("abcd") == ""
    assert replica.fourlw("ruok") == "imok"


def test_many_4lw_in_a_row(replica):
    for _ in range(200):
        assert replica.fourlw("ruok") == "imok"
    wait_for(lambda: int(replica.mntr()["zk_num_alive_connections"]) <= 1, 10,
             what="4lw connections to be released")
