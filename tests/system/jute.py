"""ZooKeeper's wire protocol (jute) for the system tests: a raw client that speaks it byte by
byte (for what real clients never send: malformed frames, pipelining before the handshake,
reading header zxids), and the ensemble of servers that real clients (kazoo, zkCli, the C
client, Curator) connect to, which test modules take as their `ensemble` fixture.

The ensemble is a three-node cluster (ZKFS_JUTE_SERVERS=1 makes it one standalone
replica): the tests named *across_servers* really use different servers (watch set through
one, triggered through another; lock clients on different servers; a session moving).
"""

import os
import socket
import struct
import time

import pytest

# Opcodes (ZooDefs.OpCode) and special xids (ClientCnxn).
CREATE, DELETE, EXISTS, GET_DATA, SET_DATA, GET_ACL, SET_ACL, GET_CHILDREN = 1, 2, 3, 4, 5, 6, 7, 8
SYNC, PING, GET_CHILDREN2, CHECK, MULTI, CREATE2, RECONFIG = 9, 11, 12, 13, 14, 15, 16
CHECK_WATCHES, REMOVE_WATCHES, CREATE_CONTAINER, CREATE_TTL, MULTI_READ = 17, 18, 19, 21, 22
AUTH, SET_WATCHES, SASL, GET_EPHEMERALS, GET_ALL_CHILDREN_NUMBER = 100, 101, 102, 103, 104
SET_WATCHES2, ADD_WATCH, WHO_AM_I, CLOSE_SESSION = 105, 106, 107, -11
XID_NOTIFICATION, XID_PING, XID_AUTH, XID_SET_WATCHES = -1, -2, -4, -8

# Error codes (KeeperException.Code).
OK, UNIMPLEMENTED, BADARGUMENTS, NONODE, NOAUTH, BADVERSION = 0, -6, -8, -101, -102, -103
NODEEXISTS, NOTEMPTY, INVALIDACL, AUTHFAILED, NOWATCHER = -110, -111, -114, -115, -121
RUNTIMEINCONSISTENCY, RECONFIGDISABLED = -2, -123

# EventType.
CREATED, DELETED, DATA_CHANGED, CHILDREN_CHANGED = 1, 2, 3, 4

OPEN_ACL = [(31, "world", "anyone")]

SERVERS = int(os.environ.get("ZKFS_JUTE_SERVERS", "3"))


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def boolean(v):
    return b"\x01" if v else b"\x00"


def buf(b):
    return i32(-1) if b is None else i32(len(b)) + b


def ustr(s):
    return buf(None if s is None else s.encode())


def vec(items, enc):
    return i32(len(items)) + b"".join(enc(x) for x in items)


def acl(entries):
    return vec(entries, lambda e: i32(e[0]) + ustr(e[1]) + ustr(e[2]))


def frame(body):
    return i32(len(body)) + body


def connect_request(session_id=0, passwd=b"\0" * 16, timeout_ms=4000, last_zxid=0,
                    readonly=False):
    body = i32(0) + i64(last_zxid) + i32(timeout_ms) + i64(session_id) + buf(passwd)
    if readonly is not None:
        body += boolean(readonly)
    return body


class Reader:
    """Reads jute fields from a reply body."""

    def __init__(self, data):
        self.data, self.off = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.off)[0]
        self.off += struct.calcsize(fmt)
        return v

    def int(self):
        return self.take(">i")

    def long(self):
        return self.take(">q")

    def bool(self):
        return self.take(">?")

    def buffer(self):
        n = self.int()
        if n < 0:
            return None
        v = self.data[self.off:self.off + n]
        self.off += n
        return v

    def string(self):
        b = self.buffer()
        return None if b is None else b.decode()

    def stat(self):
        keys = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
                "ephemeralOwner", "dataLength", "numChildren", "pzxid")
        fmts = ">q >q >q >q >i >i >i >q >i >i >q".split()
        return {k: self.take(f) for k, f in zip(keys, fmts)}

    def strings(self):
        return [self.string() for _ in range(self.int())]

    def left(self):
        return len(self.data) - self.off


class Closed(Exception):
    """The server closed the connection."""


class Jute:
    """One raw jute connection. call() sends a request and returns (zxid, err, Reader) of
    its reply; notifications read meanwhile land in self.events as dicts."""

    def __init__(self, port, host="127.0.0.1", connect=True, io_timeout=15.0, **kw):
        self.sock = socket.create_connection((host, port), timeout=io_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inbuf = b""
        self.xid = 0
        self.events = []
        self.session_id = self.passwd = self.timeout_ms = None
        if connect:
            self.handshake(**kw)

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("nothing from the server in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed()
        self.inbuf += chunk

    def read_frame(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while len(self.inbuf) < 4:
            self._fill(deadline)
        n = struct.unpack(">i", self.inbuf[:4])[0]
        while len(self.inbuf) < 4 + n:
            self._fill(deadline)
        body, self.inbuf = self.inbuf[4:4 + n], self.inbuf[4 + n:]
        return body

    def handshake(self, **kw):
        """Sends a ConnectRequest and returns the ConnectResponse as a dict."""
        self.send_raw(frame(connect_request(**kw)))
        return self.read_connect()

    def read_connect(self):
        r = Reader(self.read_frame())
        resp = {"protocol": r.int(), "timeout": r.int(), "session_id": r.long(),
                "passwd": r.buffer()}
        resp["readonly"] = r.bool() if r.left() else None
        if resp["timeout"] > 0:
            self.session_id, self.passwd = resp["session_id"], resp["passwd"]
            self.timeout_ms = resp["timeout"]
        return resp

    def read_message(self, timeout=15.0):
        """The next reply or notification: (xid, zxid, err, Reader)."""
        r = Reader(self.read_frame(timeout))
        xid, zxid, err = r.int(), r.long(), r.int()
        if xid == XID_NOTIFICATION:
            self.events.append({"type": r.int(), "state": r.int(), "path": r.string(),
                                "zxid": zxid})
        return xid, zxid, err, r

    def send(self, op, body=b"", xid=None):
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.send_raw(frame(i32(xid) + i32(op) + body))
        return xid

    def wait_reply(self, xid, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            rxid, zxid, err, r = self.read_message(max(0.001, deadline - time.monotonic()))
            if rxid == xid:
                return zxid, err, r
            assert rxid == XID_NOTIFICATION, f"reply {rxid} while waiting for {xid}"

    def call(self, op, body=b"", xid=None, timeout=15.0):
        return self.wait_reply(self.send(op, body, xid), timeout)

    def wait_event(self, pred=lambda e: True, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if pred(e):
                    self.events.remove(e)
                    return e
            self.read_message(max(0.001, deadline - time.monotonic()))

    def closed_by_server(self, timeout=10.0):
        """True if the server closes the connection within timeout."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except Closed:
            return True
        except (TimeoutError, socket.timeout):
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # --- a few requests -------------------------------------------------------------------

    def create(self, path, data=b"", flags=0, op=CREATE, ttl=None):
        body = ustr(path) + buf(data) + acl(OPEN_ACL) + i32(flags)
        if ttl is not None:
            body += i64(ttl)
        return self.call(op, body)

    def get(self, path, watch=False):
        return self.call(GET_DATA, ustr(path) + boolean(watch))

    def exists(self, path, watch=False):
        return self.call(EXISTS, ustr(path) + boolean(watch))

    def set(self, path, data, version=-1):
        return self.call(SET_DATA, ustr(path) + buf(data) + i32(version))

    def delete(self, path, version=-1):
        return self.call(DELETE, ustr(path) + i32(version))

    def add_watch(self, path, mode):
        return self.call(ADD_WATCH, ustr(path) + i32(mode))

    def close_session(self):
        return self.call(CLOSE_SESSION)


class Ensemble:
    """The servers ZooKeeper clients connect to (see the module docstring)."""

    def __init__(self, make_replica, size):
        if size == 1:
            self.replicas = [make_replica("z1")]
        else:
            from cluster import Cluster
            self.replicas = Cluster(make_replica, size).start().members
        self.clients = []

    def server(self, i=0):
        """The i-th server, cycling: on one replica every i is that replica."""
        return self.replicas[i % len(self.replicas)]

    def hosts(self, i=None):
        """A connect string: every server, or just the i-th."""
        rs = self.replicas if i is None else [self.server(i)]
        return ",".join(r.servers for r in rs)

    def kazoo(self, server=None, timeout=4.0, start=True, **kw):
        """A KazooClient (stopped and closed at teardown) for one server (server=i) or any,
        started unless start=False."""
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry

        retry = KazooRetry(max_tries=-1, delay=0.05, max_delay=0.5)
        c = KazooClient(hosts=self.hosts(server), timeout=timeout, connection_retry=retry,
                        command_retry=KazooRetry(max_tries=20, delay=0.05, max_delay=0.5),
                        **kw)
        self.clients.append(c)
        if start:
            c.start(timeout=15)
        return c

    def restart(self, i=0):
        """Stops the i-th server (SIGTERM) and starts it again on the same port and data."""
        self.server(i).restart()

    def close(self):
        for c in self.clients:
            try:
                c.stop()
                c.close()
            except Exception:  # a client already stopped, or one whose server is gone
                pass


def ensemble_fixture(make_replica):
    """The body of each test module's `ensemble` fixture: yield from it."""
    e = Ensemble(make_replica, SERVERS)
    yield e
    e.close()
