"""zkfs-replica's configuration: bad configs and unusable dataDirs are refused with one line
and exit status 2; unknown keys only warn."""

import os
import socket
import subprocess

import pytest

from harness import binary, free_port, fourlw, wait_for


def run_replica(cfg_text, tmp_path, timeout=20):
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(cfg_text)
    return subprocess.run([binary("zkfs-replica"), str(cfg)], capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def assert_refused(r):
    err = r.stderr.decode(errors="replace")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert r.returncode == 2, f"exit {r.returncode}, stderr {err!r}"
    assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
    return lines[0]


def good_config(tmp_path, **extra):
    lines = {"tickTime": "200", "dataDir": str(tmp_path / "data"), "clientPort": str(free_port()),
             "clientPortAddress": "127.0.0.1"}
    lines.update(extra)
    return "".join(f"{k}={v}\n" for k, v in lines.items() if v is not None)


def test_missing_config_file(tmp_path):
    r = subprocess.run([binary("zkfs-replica"), str(tmp_path / "nope.cfg")],
                       capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    line = assert_refused(r)
    assert "nope.cfg" in line


def test_no_arguments_is_a_usage_error():
    r = subprocess.run([binary("zkfs-replica")], capture_output=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    assert r.stderr.strip()


@pytest.mark.parametrize("key,value", [
    ("tickTime", "abc"),
    ("tickTime", "0"),
    ("clientPort", "70000"),
    ("clientPort", "12x"),
    ("maxClientCnxns", "-3"),
    ("zkfs.maxDataSize", "lots"),
])
def test_bad_number(tmp_path, key, value):
    line = assert_refused(run_replica(good_config(tmp_path, **{key: value}), tmp_path))
    assert key in line, f"the error should name {key}: {line!r}"


def test_missing_data_dir(tmp_path):
    line = assert_refused(run_replica(good_config(tmp_path, dataDir=None), tmp_path))
    assert "dataDir" in line


def test_line_without_equals(tmp_path):
    assert_refused(run_replica(good_config(tmp_path) + "this is not a key value pair\n",
                               tmp_path))


def test_data_dir_is_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("not a directory\n")
    line = assert_refused(run_replica(good_config(tmp_path, dataDir=str(f)), tmp_path))
    assert str(f) in line


def test_data_dir_under_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("not a directory\n")
    assert_refused(run_replica(good_config(tmp_path, dataDir=str(f / "data")), tmp_path))


def test_data_dir_not_writable(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    # Root ignores permission bits but not the immutable attribute.
    r = subprocess.run(["chattr", "+i", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("chattr +i is not supported on this filesystem")
    try:
        assert_refused(run_replica(good_config(tmp_path, dataDir=str(d)), tmp_path))
    finally:
        subprocess.run(["chattr", "-i", str(d)])


def test_unknown_key_warns_and_serves(tmp_path, procs):
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(good_config(tmp_path, clientPort=str(port), **{
        "4lw.commands.whitelist": "ruok", "someFutureKey": "42"}))
    log = tmp_path / "log"
    with open(log, "wb") as f:
        p = subprocess.Popen([binary("zkfs-replica"), str(cfg)], stdout=f, stderr=f,
                             stdin=subprocess.DEVNULL)
    procs.append(p)
    wait_for(lambda: p.poll() is not None or fourlw(port, "ruok") == "imok", 20,
             what="the replica to answer ruok")
    assert p.poll() is None, f"exited {p.returncode}: {log.read_text()}"
    warn = [ln for ln in log.read_text().splitlines() if "someFutureKey" in ln]
    assert len(warn) == 1, log.read_text()
    assert "warn" in warn[0].lower()


def test_my_data_dir_is_created(tmp_path, make_replica):
    r = make_replica(start=False)
    r.cfg["dataDir"] = os.path.join(r.dir, "deep", "er", "data")
    r.start()
    assert os.path.isdir(r.cfg["dataDir"])


def test_port_in_use_fails(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_replica(good_config(tmp_path, clientPort=str(port)), tmp_path)
    assert r.returncode != 0
    assert str(port) in r.stderr.decode(errors="replace")


def test_client_port_address_is_honoured(make_replica):
    r = make_replica()
    # Listening on 127.0.0.1 only: the port must not answer on another local address.
    assert r.fourlw("ruok") == "imok"
    with socket.socket() as s:
        s.settimeout(2)
        try:
            s.connect(("127.0.0.2", r.port))
            connected = True
        except OSError:
            connected = False
    assert not connected, "clientPortAddress=127.0.0.1 but 127.0.0.2 was accepted"


def test_sigterm_stops_cleanly(replica):
    assert replica.stop() == 0
