"""The filesystem test harness: zkfs-fused mounts run in the foreground (the test owns the PID),
inotifywait watchers collecting events in the background, and a guard that turns a hung mount
into a failed test instead of a stuck suite.

Every Mount is unmounted (fusermount3 -u, then -uz if busy) and its daemon killed by PID at
teardown, whatever happened in the test; see the make_mount fixture in conftest.py.
"""

import ctypes
import errno
import os
import signal
import subprocess
import threading
import time

import pytest

from harness import SANITIZER_MARKS, binary, wait_for

FUSERMOUNT = "fusermount3"
# How long one test may run before the guard kills its daemons (a FUSE request that never
# gets an answer blocks its caller in the kernel; killing the daemon aborts the connection and
# the caller gets ENOTCONN). Generous: the whole fs suite is meant to take < 4 minutes.
HANG_GUARD_S = float(os.environ.get("ZKFS_FS_HANG_GUARD", "120"))

# Events collected by default: what a remote change may raise, without the OPEN/ACCESS/CLOSE
# noise of the test's own reads.
DEFAULT_EVENTS = ("create", "delete", "modify", "close_write", "attrib", "moved_from",
                  "moved_to", "move_self", "delete_self")


def unescape_mountinfo(s):
    """/proc/self/mountinfo writes space, tab, newline and backslash as octal escapes."""
    out, i = [], 0
    while i < len(s):
        esc = s[i + 1:i + 4]
        if s[i] == "\\" and len(esc) == 3 and all(c in "01234567" for c in esc):
            out.append(chr(int(esc, 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def mountinfo(path):
    """The last /proc/self/mountinfo entry mounted at path (after realpath), as a dict with
    mountpoint, fstype, source, dev ("major:minor") and options; None if nothing is mounted
    there. Reads no file under path, so it never blocks on a hung mount."""
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            lf, rf = left.split(" "), right.split(" ")
            if len(lf) < 6 or len(rf) < 2:
                continue
            if unescape_mountinfo(lf[4]) == path:
                found = {"mountpoint": path, "dev": lf[2], "options": lf[5], "fstype": rf[0],
                         "source": unescape_mountinfo(rf[1]),
                         "superopts": rf[2] if len(rf) > 2 else ""}
    return found


def pids_mentioning(arg):
    """PIDs (other than ours) of processes with arg as one of their argv words: finds the
    `fusermount3 --auto-unmount` helper libfuse starts for a mount, and daemons started by
    mountctl mount, by the test's own unique mountpoint path."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if arg.encode() in argv:
            out.append(int(d))
    return out


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


def run(cmd, timeout=30, check=True, input=None, cwd=None):
    """Runs a shell command line with bash; returns the CompletedProcess (text). With check,
    fails the test on a non-zero exit, showing stderr."""
    try:
        r = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=timeout,
                           input=input, cwd=cwd, text=True, errors="replace",
                           stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{cmd}` did not finish within {timeout}s (hang?)")
    if check and r.returncode != 0:
        pytest.fail(f"`{cmd}` exited {r.returncode}; stderr {r.stderr!r}; stdout "
                    f"{r.stdout[:500]!r}")
    return r


def run_fails(cmd, message=None, timeout=30):
    """Runs a command that must fail; asserts a non-zero exit and, if given, that message
    (e.g. strerror text like "File too large") appears on stderr. Returns the
    CompletedProcess."""
    r = run(cmd, timeout=timeout, check=False)
    assert r.returncode != 0, f"`{cmd}` succeeded; expected {message or 'a failure'}"
    if message:
        assert message in r.stderr, f"`{cmd}`: expected {message!r} on stderr, got {r.stderr!r}"
    return r


def oserror(fn, *args, **kw):
    """Calls fn and returns the errno of the OSError it raises; fails if it returns."""
    try:
        v = fn(*args, **kw)
    except OSError as e:
        return e.errno
    pytest.fail(f"{getattr(fn, '__name__', fn)}{args!r} returned {v!r}; expected an error")


def ename(e):
    return errno.errorcode.get(e, str(e))


_libc = ctypes.CDLL(None, use_errno=True)
_libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.getxattr.restype = ctypes.c_ssize_t
_libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.listxattr.restype = ctypes.c_ssize_t


def raw_getxattr(path, name, size):
    """getxattr(2) with a buffer of exactly size bytes: (return value, errno)."""
    buf = ctypes.create_string_buffer(max(size, 1))
    n = _libc.getxattr(os.fsencode(path), name.encode(), buf if size else None, size)
    return n, (ctypes.get_errno() if n < 0 else 0)


def raw_listxattr(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = _libc.listxattr(os.fsencode(path), buf if size else None, size)
    return n, (ctypes.get_errno() if n < 0 else 0)


class Mount:
    """One zkfs-fused process run with -f (so the test owns its PID) and -o auto_unmount."""

    def __init__(self, servers, root, registry, name="a", opts=()):
        self.servers = servers
        self.name = name
        self.registry = registry
        self.dir = os.path.join(os.path.realpath(str(root)), f"fs-{name}")
        os.makedirs(self.dir, exist_ok=True)
        self.mountpoint = os.path.join(self.dir, "mnt")
        os.makedirs(self.mountpoint, exist_ok=True)
        self.log_path = os.path.join(self.dir, "fused.log")
        self.opts = ["auto_unmount"] + [o for o in opts if o != "auto_unmount"]
        self.proc = None
        self.runs = 0

    def __str__(self):
        return self.mountpoint

    def __fspath__(self):
        return self.mountpoint

    @property
    def label(self):
        return f"mount {self.name} ({self.mountpoint})"

    def argv(self):
        return [binary("zkfs-fused"), self.servers, self.mountpoint, "-f", "-o",
                ",".join(self.opts)]

    def path(self, *parts):
        """The absolute path of a node under the mount: m.path("app", "config")."""
        parts = [p.lstrip("/") for p in parts]
        return os.path.join(self.mountpoint, *parts)

    __truediv__ = path

    def start(self, wait=True, timeout=20):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        log = open(self.log_path, "ab")
        log.write(f"=== start #{self.runs}: {' '.join(self.argv())}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        self.registry.append(self.proc)
        if wait:
            self.wait_mounted(timeout)
        return self

    def mounted(self):
        e = mountinfo(self.mountpoint)
        return e is not None and e["fstype"] == "fuse.zkfs"

    def wait_mounted(self, timeout=20):
        def up():
            if self.proc.poll() is not None:
                pytest.fail(f"zkfs-fused ({self.name}) exited with status "
                            f"{self.proc.returncode} before mounting; log:\n{self.log()}")
            e = mountinfo(self.mountpoint)
            if e is not None and e["fstype"] != "fuse.zkfs":
                pytest.fail(f"{self.mountpoint} is mounted as {e['fstype']}, not fuse.zkfs")
            return e is not None
        wait_for(up, timeout, what=f"{self.label} to appear in /proc/self/mountinfo as fuse.zkfs")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def kill9(self):
        """kill -9 of the daemon; waits for it to go. With auto_unmount, fusermount3's helper
        then unmounts by itself."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def fusermount(self, *flags, timeout=15):
        try:
            return subprocess.run([FUSERMOUNT, *flags, self.mountpoint], capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess([], 124, "", "fusermount3 timed out")

    def fusermount_u(self, tries=20, interval=0.1):
        """fusermount3 -u, tried again while it fails with EBUSY (up to tries times); the
        busy ones are noted in the daemon's log. test_unmount_right_after_remote_changes is
        the test that a single -u must succeed; elsewhere a transient EBUSY is not what the
        test is about. Returns the last CompletedProcess."""
        for i in range(tries):
            r = self.fusermount("-u")
            if r.returncode == 0 or not self.mounted():
                break
            with open(self.log_path, "a") as log:
                log.write(f"=== harness: fusermount3 -u attempt {i + 1}: {r.stderr.strip()}\n")
            if "busy" not in r.stderr:
                break
            time.sleep(interval)
        return r

    def unmount(self, timeout=15, strict=True):
        """fusermount3 -u (retried a little while busy), then -uz (lazy) if the mount is still
        busy; waits for the foreground daemon to exit by itself, which it must after an
        unmount. Returns the daemon's exit status (None if it had to be killed). With strict,
        a mount that stayed busy fails the test (after the lazy unmount, so nothing stays
        mounted)."""
        failed = None
        if self.mounted():
            r = self.fusermount_u()
            if r.returncode != 0 and self.mounted():
                failed = r.stderr.strip()
                self.fusermount("-uz")
        if strict and failed:
            pytest.fail(f"{self.label}: fusermount3 -u failed: {failed}")
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def cleanup(self):
        """Teardown: always leaves nothing mounted and no process behind. Returns a list of
        problems to report (a helper left behind, a daemon that had to be killed)."""
        problems = []
        if self.mounted():
            r = self.fusermount_u()
            if r.returncode != 0 and self.mounted():
                problems.append(f"{self.label}: fusermount3 -u still failed after 2 s of retries ({r.stderr.strip()}); "
                                f"unmounted lazily")
                self.fusermount("-uz")
        if self.running():
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                problems.append(f"{self.label}: zkfs-fused still running 10 s after the unmount; "
                                f"killed")
                self.proc.kill()
                self.proc.wait(10)
        # libfuse's `fusermount3 --auto-unmount` helper (and a daemon started by mountctl
        # mount) carry our unique mountpoint in argv; they must be gone once the daemon is.
        deadline = time.monotonic() + 5
        left = [p for p in pids_mentioning(self.mountpoint) if pid_alive(p)]
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [p for p in left if pid_alive(p)]
        for p in left:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                os.kill(p, signal.SIGKILL)
            except OSError:
                continue
            problems.append(f"{self.label}: process {p} ({cmd.strip()}) left behind; killed")
        if self.mounted():
            self.fusermount("-uz")
            if self.mounted():
                problems.append(f"{self.label}: still mounted after teardown")
        return problems

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


class Event:
    __slots__ = ("flags", "dir", "name", "path", "t", "line")

    def __init__(self, flags, dir, name, path, t, line):
        self.flags, self.dir, self.name, self.path, self.t, self.line = (flags, dir, name, path,
                                                                         t, line)

    def __repr__(self):
        return f"<{','.join(sorted(self.flags))} {self.path}>"


class Inotify:
    """`inotifywait -m -r` on a directory in the background. Events are parsed into Event
    objects (flags: a set such as {"CREATE", "ISDIR"}; path: relative to the watched root,
    "d/f"; name: the entry name, "" for an event on a watched directory itself)."""

    SEP = "\x1f"

    def __init__(self, root, registry, events=DEFAULT_EVENTS, name="inotify"):
        self.root = os.path.realpath(root)
        self.registry = registry
        self.events_wanted = events
        self.name = name
        self.proc = None
        self.events = []
        self.stderr_lines = []
        self.cond = threading.Condition()
        self.established = threading.Event()
        self.threads = []

    def start(self, timeout=20):
        # inotifywait can only watch what the kernel has looked up: walk the tree first.
        subprocess.run(["ls", "-R", self.root], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=timeout)
        fmt = self.SEP.join(["%e", "%w", "%f"])
        argv = ["inotifywait", "-m", "-r", "--format", fmt]
        for e in self.events_wanted or ():
            argv += ["-e", e]
        argv.append(self.root)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        self.registry.append(self.proc)
        for target in (self._read_out, self._read_err):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self.threads.append(t)
        if not self.established.wait(timeout):
            pytest.fail(f"inotifywait on {self.root} printed no 'Watches established' within "
                        f"{timeout}s; stderr {self.stderr_lines!r}")
        if self.proc.poll() is not None:
            pytest.fail(f"inotifywait exited {self.proc.returncode}: {self.stderr_lines!r}")
        return self

    def _read_err(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stderr_lines.append(line)
            if "Watches established" in line:
                self.established.set()
        self.established.set()

    def _read_out(self):
        for raw in self.proc.stdout:
            t = time.monotonic()
            line = raw.decode(errors="surrogateescape").rstrip("\n")
            parts = line.split(self.SEP)
            if len(parts) != 3:
                continue
            flags, w, f = parts
            full = os.path.join(w, f) if f else w.rstrip("/")
            rel = os.path.relpath(full, self.root)
            ev = Event(frozenset(flags.split(",")), os.path.relpath(w, self.root), f,
                       "" if rel == "." else rel, t, line)
            with self.cond:
                self.events.append(ev)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def mark(self):
        """An index to pass as since= to only look at events after this point."""
        with self.cond:
            return len(self.events)

    def since(self, mark=0):
        with self.cond:
            return list(self.events[mark:])

    def find(self, flag, path, since=0):
        return [e for e in self.since(since) if flag in e.flags and e.path == path]

    def wait_for(self, cond, timeout=10.0, since=0, what=None):
        """Waits until some event at or after index since satisfies cond(event); returns it.
        Fails the test with every event seen so far on timeout."""
        deadline = time.monotonic() + timeout
        i = since
        with self.cond:
            while True:
                while i < len(self.events):
                    if cond(self.events[i]):
                        return self.events[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self.proc.poll() is not None and not self.threads[0].is_alive():
                    break
                self.cond.wait(min(left, 0.5))
            seen = self.events[since:]
        pytest.fail(f"timed out after {timeout}s waiting for {what or cond} from inotifywait "
                    f"on {self.root}; events since mark: {seen!r}; stderr "
                    f"{self.stderr_lines[-5:]!r}")

    def expect(self, flag, path, timeout=10.0, since=0):
        """Waits for an event with flag (e.g. "CREATE") on path (relative to the root)."""
        return self.wait_for(lambda e: flag in e.flags and e.path == path, timeout, since,
                             what=f"{flag} on {path!r}")

    def watch_count(self):
        """How many inotify watches the process holds (from /proc/PID/fdinfo)."""
        n = 0
        try:
            for fd in os.listdir(f"/proc/{self.proc.pid}/fdinfo"):
                with open(f"/proc/{self.proc.pid}/fdinfo/{fd}") as f:
                    n += sum(1 for ln in f if ln.startswith("inotify wd:"))
        except OSError:
            pass
        return n

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self.threads:
            t.join(2)

    def log(self):
        return "\n".join(self.stderr_lines + [e.line for e in self.since()])


class Guard:
    """Kills a test's daemons (by PID) if the test runs longer than HANG_GUARD_S, so that a
    FUSE request that never gets an answer ends in ENOTCONN and a failed test instead of a
    stuck suite."""

    def __init__(self, mounts, seconds=HANG_GUARD_S):
        self.mounts = mounts
        self.fired = False
        self.timer = threading.Timer(seconds, self.fire)
        self.timer.daemon = True
        self.timer.start()

    def fire(self):
        self.fired = True
        for m in list(self.mounts):
            if m.running():
                m.proc.send_signal(signal.SIGKILL)

    def cancel(self):
        self.timer.cancel()


class ReportPlugin:
    """Adds the fused logs and inotifywait output of a failed test to its report."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        rep = outcome.get_result()
        if not rep.failed:
            return
        for m in getattr(item, "_zkfs_mounts", []):
            log = m.log()
            if len(log) > 40000:
                log = "[... cut ...]\n" + log[-40000:]
            rep.sections.append((f"zkfs-fused {m.name} log ({m.log_path})", log))
        for w in getattr(item, "_zkfs_inotify", []):
            log = w.log()
            if len(log) > 20000:
                log = "[... cut ...]\n" + log[-20000:]
            rep.sections.append((f"inotifywait {w.name} on {w.root}", log))


def register_report_plugin(config):
    if not config.pluginmanager.has_plugin("zkfs-fs-report"):
        config.pluginmanager.register(ReportPlugin(), "zkfs-fs-report")


def sanitizer_lines(text):
    return [ln for ln in text.splitlines() if any(m in ln for m in SANITIZER_MARKS)]


# ---- small helpers shared by the test_fs_* files ----

def zstat(mc, path):
    """mountctl's Stat of a znode as a dict (ZooKeeper field names, plus kind and policy)."""
    import json
    return json.loads(mc.ok("-w", "json", "stat", path))


def zexists(mc, path):
    r = mc.run("stat", path)
    if r.returncode == 0:
        return True
    assert b"NONODE" in r.stderr, r.stderr
    return False


def zget(mc, path):
    """The znode's data as bytes, through mountctl."""
    r = mc.run("get", path)
    assert r.returncode == 0, f"mountctl get {path}: {r.stderr!r}"
    return r.stdout


def zls(mc, path):
    out = mc.ok("ls", path)
    return sorted(out.split()) if out else []


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data, mode="wb"):
    """Writes and closes (the commit); an error at close raises."""
    if isinstance(data, str):
        data = data.encode()
    with open(path, mode) as f:
        f.write(data)


def read_or_none(path):
    try:
        return read(path)
    except FileNotFoundError:
        return None
