"""The system-test harness: real zkfs-replica processes on free ports and temporary dirs,
mountctl runs against them, four-letter words, and wait_for.

The build dir is $ZKFS_BUILD (default: build/ at the repo root).
"""

import os
import signal
import socket
import subprocess
import time

import pytest

# Lines that sanitizer builds print on a memory error, a leak or undefined behaviour.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    d = os.environ.get("ZKFS_BUILD", "build")
    return d if os.path.isabs(d) else os.path.join(REPO, d)


def binary(name):
    path = os.path.join(build_dir(), "bin", name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: build first (cmake -S . -B build && "
                    f"cmake --build build), or set ZKFS_BUILD")
    return path


def wait_for(cond, timeout=10.0, interval=0.02, what=None):
    """Polls cond() until it returns something truthy, which is returned. Fails the test
    after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or cond}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.2)


# Ports handed to servers come from below the kernel's ephemeral range (32768+ by default),
# so an outgoing connection (a peer link, a client) can never take a port a server is about
# to listen on, and no port is handed out twice in one run: binding to port 0 and closing
# can return the same port to two callers in a row. The start depends on the pid so that
# two runs side by side rarely meet.
_PORT_LOW, _PORT_HIGH = 10000, 32000
_next_port = _PORT_LOW + (os.getpid() * 97) % (_PORT_HIGH - _PORT_LOW)


def free_port():
    global _next_port
    for _ in range(_PORT_HIGH - _PORT_LOW):
        port = _next_port
        _next_port = _PORT_LOW + (_next_port + 1 - _PORT_LOW) % (_PORT_HIGH - _PORT_LOW)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def fourlw(port, word, timeout=5.0, host="127.0.0.1"):
    """Sends a four-letter word and returns everything read until the server closes, as
    text; None if the connection was refused or reset."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(word.encode())
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out.decode(errors="replace")
                out += chunk
    except (ConnectionRefusedError, ConnectionResetError, socket.timeout):
        return None


def parse_mntr(text):
    out = {}
    for line in text.splitlines():
        if "\t" in line:
            k, v = line.split("\t", 1)
            out[k] = v
    return out


class Mountctl:
    """Runs mountctl with --servers pointing at one replica."""

    def __init__(self, servers, registry):
        self.servers = servers
        self.registry = registry

    def argv(self, args):
        return [binary("mountctl"), "--servers", self.servers] + [str(a) for a in args]

    @staticmethod
    def env():
        env = dict(os.environ)
        env.pop("ZKFS_SERVERS", None)
        return env

    def run(self, *args, input=None, timeout=30):
        """A CompletedProcess with bytes stdout/stderr."""
        if isinstance(input, str):
            input = input.encode()
        r = subprocess.run(self.argv(args), input=input, capture_output=True, timeout=timeout,
                           env=self.env(), stdin=None if input is not None else subprocess.DEVNULL)
        err = r.stderr.decode(errors="replace")
        if any(m in err for m in SANITIZER_MARKS):
            pytest.fail(f"sanitizer report from mountctl {' '.join(map(str, args))}:\n{err}")
        return r

    def ok(self, *args, input=None, timeout=30):
        """Runs and asserts success; returns stdout as text without the final newline."""
        r = self.run(*args, input=input, timeout=timeout)
        assert r.returncode == 0, (f"mountctl {' '.join(map(str, args))}: exit "
                                   f"{r.returncode}, stderr {r.stderr.decode(errors='replace')!r}")
        return r.stdout.decode(errors="replace").rstrip("\n")

    def fail(self, *args, input=None, timeout=30, error=None):
        """Runs and asserts failure with one line on stderr (naming error if given);
        returns that line."""
        r = self.run(*args, input=input, timeout=timeout)
        err = r.stderr.decode(errors="replace")
        assert r.returncode != 0, (f"mountctl {' '.join(map(str, args))} succeeded, expected "
                                   f"{error or 'an error'}; stdout {r.stdout[:200]!r}")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, f"expected one line on stderr, got {err!r}"
        if error:
            assert error in lines[0], f"expected {error} in {lines[0]!r}"
        return lines[0]

    def popen(self, *args):
        p = subprocess.Popen(self.argv(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=self.env())
        self.registry.append(p)
        return p


class Replica:
    """One zkfs-replica process with its own config, dataDir and log file."""

    def __init__(self, tmp, registry, name="r1", whitelist="*", **cfg):
        self.dir = os.path.join(str(tmp), name)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.registry = registry
        self.port = free_port()
        self.data_dir = os.path.join(self.dir, "data")
        self.cfg_path = os.path.join(self.dir, "zoo.cfg")
        self.log_path = os.path.join(self.dir, "replica.log")
        self.whitelist = whitelist
        self.cfg = {
            "tickTime": 200,
            "dataDir": self.data_dir,
            "clientPort": self.port,
            "clientPortAddress": "127.0.0.1",
            "maxClientCnxns": 0,
        }
        if whitelist is not None:
            self.cfg["4lw.commands.whitelist"] = whitelist
        self.cfg.update({k.replace("__", "."): v for k, v in cfg.items()})
        self.proc = None
        self.runs = 0
        self.mc = Mountctl(f"127.0.0.1:{self.port}", registry)

    @property
    def servers(self):
        return f"127.0.0.1:{self.port}"

    def write_config(self):
        with open(self.cfg_path, "w") as f:
            for k, v in self.cfg.items():
                f.write(f"{k}={v}\n")

    def start(self, wait=True, timeout=30):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.write_config()
        self.runs += 1
        log = open(self.log_path, "ab")
        log.write(f"=== start #{self.runs}: zkfs-replica {self.cfg_path}\n".encode())
        log.flush()
        self.proc = subprocess.Popen([binary("zkfs-replica"), self.cfg_path], stdout=log,
                                     stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        self.registry.append(self.proc)
        if wait:
            self.wait_ready(timeout)
        return self

    def ready(self):
        if self.whitelist is None or (self.whitelist != "*" and "ruok" not in self.whitelist):
            out = self.fourlw("srvr")
            return out is not None and "Mode:" in out
        return self.fourlw("ruok") == "imok"

    def wait_ready(self, timeout=30):
        def up():
            if self.proc.poll() is not None:
                pytest.fail(f"zkfs-replica exited with status {self.proc.returncode} while "
                            f"starting; log:\n{self.log()}")
            return self.ready()
        wait_for(up, timeout, what=f"replica {self.name} on port {self.port} to answer")

    def fourlw(self, word, timeout=5.0):
        return fourlw(self.port, word, timeout)

    def mntr(self):
        return parse_mntr(self.fourlw("mntr") or "")

    def kill(self):
        """kill -9, and waits for the process to go."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout=15):
        """SIGTERM; returns the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def restart(self, timeout=30):
        if self.proc.poll() is None:
            self.stop()
        return self.start(timeout=timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
