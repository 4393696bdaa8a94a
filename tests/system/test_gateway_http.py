"""The gateway's HTTP side under abuse, over raw sockets: a connection cap,
a deadline for the request head, 431 for a too large head, chunked
bodies, keep-alive, and a client that goes away mid-run (its runs are
cancelled on the workers). No test times anything: each waits for a
behaviour, with generous limits only so that a broken gateway fails
rather than hangs.
"""
import json
import socket

import pytest

from test_gateway_fixtures import Gateway, SlowRuntime, pid_alive
from test_gateway_race import wait_until

PY1 = {"runtime": "python", "code": "print(1)"}


def connect(gw):
    return socket.create_connection(("127.0.0.1", gw.port), timeout=30)


def read_reply(s):
    """One reply (head and Content-Length body) from s; b"" when closed."""
    out = b""
    while True:
        if b"\r\n\r\n" in out:
            head, _, rest = out.partition(b"\r\n\r\n")
            n = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")]
            if not n or len(rest) >= n[0]:
                return out
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return out
        if not chunk:
            return out
        out += chunk


def status(out):
    return int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.") else None


def post(path, body, extra=b""):
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n%s\r\n%s" % (path, len(body), extra, body))


HALF = b"POST /v1/run HTTP/1.1\r\nHost: x\r\nX-Slow: "


@pytest.fixture(scope="module")
def python_url(module_workers):
    return module_workers("python").url


def test_connections_past_the_cap_wait_and_are_served_when_it_frees(python_url, tmp_path):
    cap = 50
    # (the settings by their environment twins: a gateway without them still starts)
    gw = Gateway([("python", python_url)], tmp=str(tmp_path),
                 env={"CORRAL_GW_MAX_CONNECTIONS": str(cap), "CORRAL_GW_HEADER_TIMEOUT_MS": "600000"})
    held = []
    try:
        for _ in range(cap + 20):  # half-sent heads: each holds its connection
            s = connect(gw)
            s.sendall(HALF)
            held.append(s)
        extra = connect(gw)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        extra.settimeout(1.0)
        try:
            got = extra.recv(100)
        except socket.timeout:
            got = None
        assert got is None, "a connection past --max-connections was served: %r" % got
        assert gw.alive()
        for s in held:
            s.close()
        extra.settimeout(30)
        out = read_reply(extra)  # accepted once the cap freed
        assert status(out) == 200, out
        st, _, j = gw.run(PY1)
        assert st == 200 and j["run"]["stdout"] == "1\n", j
    finally:
        for s in held:
            s.close()
        gw.stop()


def test_a_half_sent_head_is_closed_after_the_header_deadline(python_url, tmp_path):
    gw = Gateway([("python", python_url)], tmp=str(tmp_path),
                 env={"CORRAL_GW_HEADER_TIMEOUT_MS": "500"})
    try:
        fds0 = gw.fds()
        socks = [connect(gw) for _ in range(20)]
        for s in socks:
            s.sendall(HALF)  # and nothing more, but the connection stays open
        for s in socks:
            out = read_reply(s)
            assert out == b"" or status(out) == 408, out  # closed: 408 or reset
            if out:
                assert b"header_timeout" in out and b"Connection: close" in out
            s.close()
        assert wait_until(lambda: gw.fds() <= fds0, 20), (gw.fds(), fds0)
        st, _, j = gw.run(PY1)
        assert st == 200, j
        m = gw.metrics()
        assert m.get('corral_gateway_http_requests_total{route="other",code="408"}', 0) >= 1
    finally:
        gw.stop()


def test_a_64k_header_gets_431(python_url, tmp_path):
    gw = Gateway([("python", python_url)], tmp=str(tmp_path))
    try:
        s = connect(gw)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
        out = read_reply(s)
        s.close()
        assert status(out) == 431, out[:200]
        st, _, j = gw.request("GET", "/healthz", headers={"X-Fine": "a" * 8000})
        assert st == 200 and j["ok"] is True
    finally:
        gw.stop()


def test_a_chunked_post_runs(python_url, tmp_path):
    gw = Gateway([("python", python_url)], tmp=str(tmp_path))
    try:
        body = json.dumps({"runtime": "python", "code": "print(6*7)"}).encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                          for i in range(0, len(body), 7))
        s = connect(gw)
        s.sendall(b"POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        out = read_reply(s)
        s.close()
        assert status(out) == 200, out
        assert json.loads(out.split(b"\r\n\r\n", 1)[1])["run"]["stdout"] == "42\n"
        # past --max-body: 413, not a run
        s = connect(gw)
        s.sendall(b"POST /v1/run HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        big = b"x" * (1 << 20)
        try:
            for _ in range(9):
                s.sendall(b"%x\r\n%s\r\n" % (len(big), big))
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = read_reply(s)
        s.close()
        assert status(out) == 413 and b"too_large" in out, out[:300]
    finally:
        gw.stop()


def test_keep_alive_serves_several_requests_on_one_connection(python_url, tmp_path):
    gw = Gateway([("python", python_url)], tmp=str(tmp_path))
    try:
        s = connect(gw)
        for i in range(3):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            out = read_reply(s)
            assert status(out) == 200, (i, out)
            s.sendall(post(b"/v1/run", json.dumps({"runtime": "python",
                                                     "code": "print(%d)" % i}).encode()))
            out = read_reply(s)
            assert status(out) == 200, (i, out)
            assert json.loads(out.split(b"\r\n\r\n", 1)[1])["run"]["stdout"] == "%d\n" % i
            s.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")  # an error keeps it too
            assert status(read_reply(s)) == 404
        s.close()
    finally:
        gw.stop()


def test_a_client_that_closes_mid_run_cancels_its_runs(worker_factory, tmp_path):
    slow_rt = SlowRuntime("python", delay=30)
    try:
        w1 = worker_factory(slow_rt.dir, slots=2)
        w2 = worker_factory(slow_rt.dir, slots=2)
        gw = Gateway([("python", w1.url), ("python", w2.url)], tmp=str(tmp_path))
        try:
            s = connect(gw)
            # a deadline far beyond the wait below: only the client's leaving ends it
            s.sendall(post(b"/v1/run", json.dumps(dict(PY1, limits={"wall_ms": 60000})).encode()))
            # both racers' slow processes start...
            assert wait_until(lambda: len(slow_rt.pids()) >= 2, 30), slow_rt.pids()
            pids = slow_rt.pids()
            s.close()  # ...and the client goes away
            assert wait_until(lambda: not any(pid_alive(p) for p in pids), 20), \
                "runs still alive after the client left: %s" % [p for p in pids if pid_alive(p)]
            for w in (w1, w2):
                assert wait_until(lambda: w.call({"v": 1, "op": "ping"})["busy"] == 0, 20)
            assert wait_until(lambda: "error=client_closed" in gw.log(), 10), gw.log()[-2000:]
            assert gw.alive()
        finally:
            gw.stop()
    finally:
        slow_rt.cleanup()
