#!/usr/bin/env python3
"""Writes a seed corpus for fuzz_jute into DIR: one well-formed example of every request a
ZooKeeper client sends, as a single frame payload (first byte 1) and as a connection stream
after a ConnectRequest (first byte 0). Usage: jute_seeds.py DIR"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system"))

from jute import (OPEN_ACL, acl, boolean, buf, connect_request, frame, i32, i64,  # noqa: E402
                  ustr, vec)
import jute  # noqa: E402


def create(path, flags=0):
    return ustr(path) + buf(b"data") + acl(OPEN_ACL) + i32(flags)


def op(t, body):
    return i32(t) + boolean(False) + i32(-1) + body


END = i32(-1) + boolean(True) + i32(-1)

REQUESTS = {
    "create": (jute.CREATE, create("/a")),
    "create2": (jute.CREATE2, create("/a-", 3)),
    "container": (jute.CREATE_CONTAINER, create("/c", 4)),
    "ttl": (jute.CREATE_TTL, create("/t", 5) + i64(1000)),
    "delete": (jute.DELETE, ustr("/a") + i32(-1)),
    "exists": (jute.EXISTS, ustr("/a") + boolean(True)),
    "get": (jute.GET_DATA, ustr("/a") + boolean(True)),
    "set": (jute.SET_DATA, ustr("/a") + buf(b"x") + i32(0)),
    "getacl": (jute.GET_ACL, ustr("/a")),
    "setacl": (jute.SET_ACL, ustr("/a") + acl([(31, "digest", "u:h"), (1, "auth", "")]) +
               i32(-1)),
    "children": (jute.GET_CHILDREN, ustr("/") + boolean(True)),
    "children2": (jute.GET_CHILDREN2, ustr("/") + boolean(False)),
    "sync": (jute.SYNC, ustr("/")),
    "ping": (jute.PING, b""),
    "check": (jute.CHECK, ustr("/a") + i32(0)),
    "multi": (jute.MULTI, op(jute.CREATE, create("/m")) + op(jute.SET_DATA, ustr("/m") +
              buf(b"y") + i32(-1)) + op(jute.CHECK, ustr("/m") + i32(1)) +
              op(jute.DELETE, ustr("/m") + i32(-1)) + END),
    "multiread": (jute.MULTI_READ, op(jute.GET_DATA, ustr("/a") + boolean(False)) +
                  op(jute.GET_CHILDREN, ustr("/") + boolean(False)) + END),
    "reconfig": (jute.RECONFIG, ustr("") + ustr("") + ustr("server.1=h:1:2") + i64(-1)),
    "checkwatches": (jute.CHECK_WATCHES, ustr("/a") + i32(3)),
    "removewatches": (jute.REMOVE_WATCHES, ustr("/a") + i32(1)),
    "auth": (jute.AUTH, i32(0) + ustr("digest") + buf(b"user:pw")),
    "setwatches": (jute.SET_WATCHES, i64(5) + vec(["/a"], ustr) + vec(["/b"], ustr) +
                   vec(["/"], ustr)),
    "setwatches2": (jute.SET_WATCHES2, i64(5) + vec(["/a"], ustr) * 4 + vec(["/r"], ustr)),
    "ephemerals": (jute.GET_EPHEMERALS, ustr("/")),
    "allchildren": (jute.GET_ALL_CHILDREN_NUMBER, ustr("/")),
    "addwatch": (jute.ADD_WATCH, ustr("/") + i32(1)),
    "whoami": (jute.WHO_AM_I, b""),
    "close": (jute.CLOSE_SESSION, b""),
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    stream = frame(connect_request(readonly=False))
    for name, (t, body) in REQUESTS.items():
        payload = i32(7) + i32(t) + body
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"\x01" + payload)
        stream += frame(payload)
    with open(os.path.join(out, "stream"), "wb") as f:
        f.write(b"\x00" + stream)
    with open(os.path.join(out, "connect-old"), "wb") as f:
        f.write(b"\x00" + frame(connect_request(readonly=None)))


if __name__ == "__main__":
    main()
