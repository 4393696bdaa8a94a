"""sp.py — a minimal nng REQ client in pure Python, for the system tests.

Debian ships no nng binding for Python, and the tests want raw control
(truncated or garbage messages), so this speaks the SP wire format itself:
an 8-byte handshake b"\\0SP\\0" + protocol id (REQ 48, REP 49) + 2 zero
bytes, then each message as a big-endian u64 length + payload (ipc adds a
0x01 type byte before the length). A REQ payload starts with a 4-byte
request id whose top bit is set; the REP reply echoes it.
"""
import itertools
import socket
import struct

import msgpack

PROTO_REQ, PROTO_REP = 48, 49
_ids = itertools.count(1)


class SPError(Exception):
    pass


class Req:
    def __init__(self, url, timeout=30.0):
        self.url = url
        self.ipc = url.startswith("ipc://")
        if self.ipc:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(url[len("ipc://"):])
        else:
            hostport = url[len("tcp://"):]
            host, port = hostport.rsplit(":", 1)
            s = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        self.sock = s
        s.sendall(b"\0SP\0" + struct.pack(">H", PROTO_REQ) + b"\0\0")
        peer = self._recv_exact(8)
        if peer[:4] != b"\0SP\0" or struct.unpack(">H", peer[4:6])[0] != PROTO_REP:
            raise SPError("bad SP handshake: %r" % peer)

    def settimeout(self, t):
        self.sock.settimeout(t)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise SPError("connection closed")
            buf += chunk
        return buf

    def send_raw(self, body):
        """Send one request carrying body bytes; returns the request id."""
        rid = (next(_ids) & 0x7FFFFFFF) | 0x80000000
        payload = struct.pack(">I", rid) + body
        frame = struct.pack(">Q", len(payload)) + payload
        if self.ipc:
            frame = b"\x01" + frame
        self.sock.sendall(frame)
        return rid

    def recv_raw(self):
        """Receive one reply; returns (request id, body bytes)."""
        if self.ipc:
            self._recv_exact(1)
        (n,) = struct.unpack(">Q", self._recv_exact(8))
        payload = self._recv_exact(n)
        # backtrace: 4-byte words until one with the top bit set
        i = 0
        while True:
            (w,) = struct.unpack(">I", payload[i:i + 4])
            i += 4
            if w & 0x80000000:
                return w, payload[i:]

    def call_raw(self, body):
        rid = self.send_raw(body)
        while True:
            got, reply = self.recv_raw()
            if got == rid:
                return reply

    def call(self, msg):
        """Send a dict as msgpack, return the decoded reply dict."""
        return msgpack.unpackb(self.call_raw(msgpack.packb(msg, use_bin_type=True)), raw=False)


def call(url, msg, timeout=30.0):
    with Req(url, timeout) as r:
        return r.call(msg)
