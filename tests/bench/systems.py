"""The two systems the benchmark runner compares, started the same way on loopback: a zkfs
cluster (zkfs-replica processes) and an Apache ZooKeeper ensemble (Debian's `zookeeper`
package, QuorumPeerMain on the JDK). Both get the same zoo.cfg settings; each member has its
own directory holding zoo.cfg, data/myid and its log."""

import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))
from harness import build_dir, fourlw, free_port  # noqa: E402

# Settings both systems share: ZooKeeper's sample zoo.cfg timing, fsync on (both default),
# four-letter words on, no limit on connections per client address.
COMMON = {"tickTime": 2000, "initLimit": 10, "syncLimit": 5, "maxClientCnxns": 0,
          "4lw.commands.whitelist": "*"}

ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"
ZOOKEEPER_LOG4J = "/etc/zookeeper/conf"


class Member:
    def __init__(self, system, sid, root, cfg):
        self.system, self.sid = system, sid
        self.dir = os.path.join(root, f"{system.name}{sid}")
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data, exist_ok=True)
        with open(os.path.join(self.data, "myid"), "w") as f:
            f.write(f"{sid}\n")
        self.port = free_port()
        self.cfg_path = os.path.join(self.dir, "zoo.cfg")
        cfg = dict(cfg, dataDir=self.data, clientPort=self.port, clientPortAddress="127.0.0.1")
        with open(self.cfg_path, "w") as f:
            f.writelines(f"{k}={v}\n" for k, v in cfg.items())
        self.proc = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(self.system.command(self), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig):
        if self.running():
            self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if not self.running():
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def mode(self):
        out = fourlw(self.port, "srvr", timeout=2) if self.running() else None
        m = re.search(r"^Mode: (\w+)", out or "", re.M)
        return m.group(1) if m else None

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


class System:
    name = None

    def __init__(self, root, size=3, extra=None):
        ports = [(free_port(), free_port()) for _ in range(size)]
        cfg = dict(COMMON)
        cfg.update(self.extra_cfg)
        cfg.update(extra or {})
        for i, (q, e) in enumerate(ports, 1):
            cfg[f"server.{i}"] = f"127.0.0.1:{q}:{e}"
        self.members = [Member(self, i, root, cfg) for i in range(1, size + 1)]

    extra_cfg = {}

    @property
    def servers(self):
        return ",".join(m.address for m in self.members)

    def start(self, timeout=120):
        for m in self.members:
            m.start()
        return self.wait_serving(timeout)

    def wait_serving(self, timeout=120):
        """Waits for one leader and every running member serving; returns the seconds it
        took."""
        t0 = time.monotonic()
        while True:
            live = [m for m in self.members if m.running()]
            modes = [m.mode() for m in live]
            if modes.count("leader") == 1 and all(x in ("leader", "follower") for x in modes):
                return time.monotonic() - t0
            dead = [m for m in self.members if m.proc is not None and not m.running()]
            if dead or time.monotonic() - t0 > timeout:
                why = f"member {dead[0].sid} exited" if dead else f"not serving in {timeout}s"
                raise RuntimeError(f"{self.name}: {why}; see {self.members[0].dir}/log")
            time.sleep(0.02)

    def leader(self):
        for m in self.members:
            if m.mode() == "leader":
                return m
        return None

    def stop(self, sig=signal.SIGTERM):
        for m in self.members:
            m.stop(sig)

    def command(self, member):
        raise NotImplementedError


class Zkfs(System):
    name = "zkfs"

    def command(self, member):
        return [os.path.join(build_dir(), "bin", "zkfs-replica"), member.cfg_path]


class ZooKeeper(System):
    name = "zookeeper"
    # The admin server would take port 8080 on every member; zkfs's admin port is off too
    # unless zkfs.adminPort is set.
    extra_cfg = {"admin.enableServer": "false"}

    def command(self, member):
        # As Debian's zkServer.sh runs it (no heap flags: the JVM's default maximum heap).
        return ["java", "-cp", f"{ZOOKEEPER_JAR}:{ZOOKEEPER_LOG4J}",
                f"-Dzookeeper.log.dir={member.dir}", "-Dzookeeper.root.logger=INFO,ROLLINGFILE",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", member.cfg_path]
