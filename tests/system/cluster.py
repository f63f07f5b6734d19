"""A cluster of zkfs replicas on loopback for the replication tests: N participants (and
observers), each a harness.Replica with server.N lines and a myid file."""

import os
import re
import time

from harness import free_port, wait_for


def mode(replica):
    out = replica.fourlw("srvr") if replica.running() else None
    m = re.search(r"^Mode: (\w+)", out or "", re.M)
    return m.group(1) if m else None


class Cluster:
    def __init__(self, make_replica, n, observers=0, **cfg):
        self.members = []
        ids = list(range(1, n + observers + 1))
        ports = {i: (free_port(), free_port()) for i in ids}
        lines = {}
        for i in ids:
            role = ":observer" if i > n else ""
            lines[f"server.{i}"] = f"127.0.0.1:{ports[i][0]}:{ports[i][1]}{role}"
        for i in ids:
            extra = dict(lines)
            extra.update({"initLimit": 10, "syncLimit": 5})
            if i > n:
                extra["peerType"] = "observer"
            extra.update(cfg)
            r = make_replica(name=f"s{i}", start=False, cfg=extra)
            r.sid = i
            os.makedirs(r.data_dir, exist_ok=True)
            with open(os.path.join(r.data_dir, "myid"), "w") as f:
                f.write(f"{i}\n")
            self.members.append(r)

    @property
    def servers(self):
        return ",".join(r.servers for r in self.members)

    def start(self, timeout=60):
        for r in self.members:
            r.start(wait=False)
        self.wait_serving(timeout)
        return self

    def serving(self):
        return [r for r in self.members if mode(r) in ("leader", "follower", "observer")]

    def wait_serving(self, timeout=60, members=None):
        members = members or [r for r in self.members if r.running()]

        def all_serving():
            modes = [mode(r) for r in members]
            return modes.count("leader") == 1 and all(
                m in ("leader", "follower", "observer") for m in modes)
        wait_for(all_serving, timeout, what="a leader and every member serving")

    def leader(self):
        leaders = [r for r in self.members if r.running() and mode(r) == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    def followers(self):
        return [r for r in self.members if r.running() and mode(r) == "follower"]


def wait_until(cond, timeout=60, what=None):
    return wait_for(cond, timeout, interval=0.05, what=what)


def now():
    return time.monotonic()
