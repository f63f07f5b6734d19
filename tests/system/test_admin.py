"""The admin HTTP endpoint: /health, /ready, /metrics (Prometheus text), /commands/<word>."""

import urllib.error
import urllib.request

import pytest

from harness import free_port


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, "", e.read().decode()


@pytest.fixture
def admin(make_replica):
    port = free_port()
    r = make_replica(whitelist="ruok", cfg={"zkfs.adminPort": port})
    return r, port


def test_health_and_ready(admin):
    _, port = admin
    assert get(port, "/health")[0] == 200
    assert get(port, "/ready")[0] == 200


def test_metrics_follow_the_tree(admin):
    r, port = admin
    status, ctype, body = get(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    samples = dict(line.rsplit(" ", 1) for line in body.splitlines() if line)
    before = int(samples["zk_znode_count"])
    for i in range(3):
        r.mc.ok("create", f"/m{i}", "x")
    samples = dict(line.rsplit(" ", 1) for line in get(port, "/metrics")[2].splitlines())
    assert int(samples["zk_znode_count"]) == before + 3
    assert samples['zk_server_state{value="standalone"}'] == "1"
    # every sample is "name value" with a number, as Prometheus parses it
    for name, value in samples.items():
        float(value)


def test_commands_answer_even_when_not_whitelisted(admin):
    r, port = admin
    status, _, body = get(port, "/commands/srvr")
    assert status == 200 and "Mode: standalone" in body
    assert r.fourlw("srvr") == ""  # the client port keeps to the whitelist


def test_unknown_paths_and_methods(admin):
    _, port = admin
    assert get(port, "/nope")[0] == 404
    assert get(port, "/commands/nope")[0] == 404
    req = urllib.request.Request(f"http://127.0.0.1:{port}/health", method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 405
