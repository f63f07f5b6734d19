"""A small client of zkfs's native protocol (proto/client.proto), for system tests.

It speaks the protocol directly so that tests can do what mountctl does not expose: keep a
session across a replica restart, stop pinging, pipeline requests, send malformed frames and
watch the order of replies and events. Python code for client.proto is generated at import
time with Debian's protoc into a temporary directory (never committed).
"""

import atexit
import importlib
import importlib.util
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAGIC = b"zkfs"

# ZooKeeper's error codes, as carried in Reply.err.
OK = 0
SYSTEMERROR = -1
MARSHALLINGERROR = -5
UNIMPLEMENTED = -6
BADARGUMENTS = -8
NONODE = -101
BADVERSION = -103
NOCHILDRENFOREPHEMERALS = -108
NODEEXISTS = -110
NOTEMPTY = -111
SESSIONEXPIRED = -112

# CreateMode numbers.
PERSISTENT = 0
EPHEMERAL = 1
PERSISTENT_SEQUENTIAL = 2
EPHEMERAL_SEQUENTIAL = 3
CONTAINER = 4
PERSISTENT_WITH_TTL = 5

# WatchEvent.type numbers (ZooKeeper's EventType).
NODE_CREATED = 1
NODE_DELETED = 2
NODE_DATA_CHANGED = 3
NODE_CHILDREN_CHANGED = 4


def _have(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _load_pb2():
    if not _have("google.protobuf"):
        raise RuntimeError("the system tests need python3-protobuf (apt-get install "
                           "python3-protobuf protobuf-compiler)")
    protoc = shutil.which("protoc")
    if protoc is None:
        raise RuntimeError("the system tests need protoc (apt-get install protobuf-compiler)")
    out = tempfile.mkdtemp(prefix="zkfs-pb2-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.run([protoc, "--python_out=" + out, "-I", os.path.join(REPO, "proto"),
                    os.path.join(REPO, "proto", "client.proto")], check=True)
    sys.path.insert(0, out)
    try:
        return importlib.import_module("client_pb2")
    finally:
        sys.path.remove(out)


pb = _load_pb2()


def frame(msg):
    """A length-prefixed frame holding msg (a protobuf message or bytes)."""
    body = msg if isinstance(msg, (bytes, bytearray)) else msg.SerializeToString()
    return struct.pack(">I", len(body)) + body


def create_request(path, data=b"", mode=PERSISTENT):
    """A CreateRequest with ZooKeeper's OPEN_ACL_UNSAFE (an empty ACL list is INVALIDACL)."""
    return pb.CreateRequest(path=path, data=data, mode=mode,
                            acl=[pb.Acl(perms=31, scheme="world", id="anyone")])


class Closed(Exception):
    """The server closed the connection."""


class Native:
    """One connection, optionally with a session. Not thread-safe.

    call() sends one request and reads until its reply; watch events read meanwhile are kept
    in self.events in arrival order, and self.log records every message in arrival order as
    ("reply", xid) or ("event", type, path).
    """

    def __init__(self, port, host="127.0.0.1", timeout_ms=4000, session_id=None, passwd=None,
                 last_zxid=0, connect=True, io_timeout=15.0):
        self.sock = socket.create_connection((host, port), timeout=io_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.xid = 0
        self.events = []
        self.log = []
        self.replies = {}
        self.session_id = None
        self.passwd = None
        self.timeout_ms = None
        self.connect_reply = None
        if connect:
            self.sock.sendall(MAGIC)
            self.connect(timeout_ms, session_id, passwd, last_zxid)

    # --- raw I/O ---------------------------------------------------------------------------

    def send_bytes(self, data):
        self.sock.sendall(data)

    def send(self, req):
        self.sock.sendall(frame(req))

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no message from the server in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise Closed()
        self.buf += chunk

    def recv(self, timeout=15.0):
        """The next ServerMessage. Raises Closed on EOF, TimeoutError if none comes."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < 4:
            self._fill(deadline)
        n = struct.unpack(">I", self.buf[:4])[0]
        while len(self.buf) < 4 + n:
            self._fill(deadline)
        body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        msg = pb.ServerMessage()
        msg.ParseFromString(body)
        if msg.HasField("event"):
            ev = msg.event
            self.events.append(ev)
            self.log.append(("event", ev.type, ev.path))
        else:
            self.log.append(("reply", msg.reply.xid))
        return msg

    def closed_by_server(self, timeout=10.0):
        """True if the server closes the connection within timeout (anything it sends before
        is discarded), False if it stays open."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                if not self.sock.recv(1 << 16):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        """Drops the connection without closing the session."""
        try:
            self.sock.close()
        except OSError:
            pass

    # --- requests --------------------------------------------------------------------------

    def next_xid(self):
        self.xid += 1
        return self.xid

    def request(self, op, msg=None, xid=None, **fields):
        """A Request with xid and the oneof field op set from msg or fields."""
        req = pb.Request(xid=self.next_xid() if xid is None else xid)
        if msg is None:
            getattr(req, op).SetInParent()
            for k, v in fields.items():
                setattr(getattr(req, op), k, v)
        elif isinstance(msg, bool):
            setattr(req, op, msg)
        else:
            getattr(req, op).CopyFrom(msg)
        return req

    def wait_reply(self, xid, timeout=15.0):
        deadline = time.monotonic() + timeout
        while xid not in self.replies:
            msg = self.recv(max(0.001, deadline - time.monotonic()))
            if msg.HasField("reply"):
                self.replies[msg.reply.xid] = msg.reply
        return self.replies.pop(xid)

    def call(self, op, msg=None, timeout=15.0, **fields):
        req = self.request(op, msg, **fields)
        self.send(req)
        return self.wait_reply(req.xid, timeout)

    def connect(self, timeout_ms, session_id=None, passwd=None, last_zxid=0):
        c = pb.ConnectRequest(last_zxid_seen=last_zxid, timeout_ms=timeout_ms)
        if session_id is not None:
            c.session_id = session_id
        if passwd is not None:
            c.passwd = passwd
        self.send(pb.Request(xid=0, connect=c))
        r = self.wait_reply(0)
        self.connect_reply = r
        if r.err == 0 and r.HasField("connect"):
            self.session_id = r.connect.session_id
            self.passwd = r.connect.passwd
            self.timeout_ms = r.connect.timeout_ms
        return r

    def create(self, path, data=b"", mode=PERSISTENT, ttl=None):
        req = create_request(path, data, mode)
        if ttl is not None:
            req.ttl = ttl
        return self.call("create", req)

    def get(self, path, watch=False):
        return self.call("get_data", pb.PathRequest(path=path, watch=watch))

    def exists(self, path, watch=False):
        return self.call("exists", pb.PathRequest(path=path, watch=watch))

    def children(self, path, watch=False):
        return self.call("get_children", pb.PathRequest(path=path, watch=watch))

    def set(self, path, data, version=-1):
        return self.call("set_data", pb.SetDataRequest(path=path, data=data, version=version))

    def delete(self, path, version=-1):
        return self.call("delete", pb.DeleteRequest(path=path, version=version))

    def add_watch(self, path, recursive=False):
        return self.call("add_watch", pb.AddWatchRequest(path=path, mode=1 if recursive else 0))

    def ping(self):
        return self.call("ping", True)

    def close_session(self):
        r = self.call("close", True)
        self.close()
        return r

    def wait_event(self, timeout=10.0, pred=lambda ev: True):
        """The first event not yet consumed that matches pred (removed from self.events)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if pred(ev):
                    return self.events.pop(i)
            msg = self.recv(max(0.001, deadline - time.monotonic()))
            if msg.HasField("reply"):
                self.replies[msg.reply.xid] = msg.reply
