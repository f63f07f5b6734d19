"""ZooKeeper's own tools and client libraries, unchanged, against zkfs: zkCli.sh from Debian's
zookeeper package, the C client (libzookeeper-mt, tests/compat/zkc_test.c) and Curator
(Debian's libcurator-*-java, tests/compat/CuratorCompat.java compiled at test time)."""

import os
import re
import shutil
import subprocess

import pytest

from harness import REPO, build_dir
import jute


@pytest.fixture
def ensemble(make_replica):
    yield from jute.ensemble_fixture(make_replica)


ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
CURATOR_JARS = ["curator-recipes.jar", "curator-framework.jar", "curator-client.jar",
                "slf4j-nop.jar"]


def need(path, package):
    if not os.path.exists(path):
        pytest.skip(f"{path} is missing: apt-get install {package} (scripts/install-deps)")


def run(argv, timeout=120, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)
    return r


def test_zkcli_script(ensemble):
    need(ZKCLI, "zookeeper")
    script = "\n".join([
        "create /cli hello",
        "get /cli",
        "set /cli world",
        "get -s /cli",
        "create -e /cli/eph e",
        "create -s /cli/seq- s",
        "ls /cli",
        "stat /cli",
        "getAllChildrenNumber /cli",
        "getEphemerals /cli",
        "sync /cli",
        "whoami",
        "addWatch -m PERSISTENT_RECURSIVE /cli",
        "create /cli/new n",
        "set /cli/new n2",
        "delete /cli/new",
        "set -v 0 /cli stale",
        "delete /cli",
        "deleteall /cli",
        "ls /",
        "quit",
    ]) + "\n"
    env = dict(os.environ, ZOO_LOG4J_PROP="ERROR,CONSOLE", CLIENT_JVMFLAGS="-Xshare:auto")
    r = subprocess.run([ZKCLI, "-server", ensemble.hosts()], input=script, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120, env=env)
    out = r.stdout
    lines = [ln.strip() for ln in out.splitlines()]
    assert "Created /cli" in lines, out
    assert "hello" in lines and "world" in lines
    assert "dataVersion = 1" in lines and "dataLength = 5" in lines
    assert "Created /cli/eph" in lines and "Created /cli/seq-0000000001" in lines
    assert "[eph, seq-0000000001]" in lines
    assert "numChildren = 2" in lines
    assert "[/cli/eph]" in lines and "Sync is OK" in lines and "ip: 127.0.0.1" in lines
    events = re.findall(r"WatchedEvent state:SyncConnected type:(\w+) path:(\S+)", out)
    assert ("NodeCreated", "/cli/new") in events
    assert ("NodeDataChanged", "/cli/new") in events
    assert ("NodeDeleted", "/cli/new") in events
    assert "NodeChildrenChanged" not in [e[0] for e in events]  # recursive watches never send it
    assert "version No is not valid : /cli" in out  # BADVERSION
    assert "Node not empty: /cli" in out  # NOTEMPTY
    assert lines.count("[]") >= 1  # after deleteall, / is empty


def test_c_client(ensemble):
    prog = os.path.join(build_dir(), "bin", "zkc_test")
    need("/usr/include/zookeeper/zookeeper.h", "libzookeeper-mt-dev")
    if not os.access(prog, os.X_OK):
        pytest.fail(f"{prog} is missing although libzookeeper-mt-dev is installed: rebuild")
    # the library is not built with ASan; its own leaks at exit are not ours
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    r = run([prog, ensemble.hosts()], timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failed" in r.stdout


def test_curator(ensemble, tmp_path):
    javac = shutil.which("javac")
    if javac is None:
        pytest.skip("javac is missing: apt-get install default-jdk-headless")
    for jar in CURATOR_JARS:
        need(os.path.join("/usr/share/java", jar),
             "libcurator-recipes-java" if jar.startswith("curator") else "libslf4j-java")
    cp = ":".join(os.path.join("/usr/share/java", j) for j in CURATOR_JARS)
    src = os.path.join(REPO, "tests", "compat", "CuratorCompat.java")
    r = run([javac, "-d", str(tmp_path), "-cp", cp, src])
    assert r.returncode == 0, r.stderr
    r = run(["java", "-cp", f"{tmp_path}:{cp}", "CuratorCompat", ensemble.hosts()], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failed" in r.stdout
