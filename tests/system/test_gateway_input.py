"""corral-gateway against hostile input, end to end: real gateway, real workers.

- bodies whose JSON would cost far more than their size once parsed (many
  tiny values, deep nesting) are refused with a 400 that says why, and the
  gateway keeps serving;
- request bodies held at once are bounded by --max-inflight-bodies (503
  with Retry-After past it, served again once they are gone);
- control-heavy output (NULs) comes back base64, byte for byte; output
  written one byte at a time on alternating streams comes back whole;
- limits are integers within the documented maxima, on /v1/run and on
  Piston's execute: huge, negative, fractional and string values are a 400
  naming the field (a huge wall_ms used to overflow the deadline: 504);
- the API-keys file: `#` starts a comment only at the start of a line, a
  long line is never split into keys (its tail alone used to authenticate),
  and a malformed file stops the gateway at start naming the line.
"""
import base64
import json
import socket
import subprocess
import time

import pytest

from conftest import BUILD
from test_gateway_fixtures import Gateway


@pytest.fixture(scope="module")
def gw(module_workers, tmp_path_factory):
    g = Gateway([("python", module_workers("python").url)],
                tmp=str(tmp_path_factory.mktemp("gwin")))
    yield g
    g.stop()


def post_raw(gw, path, raw):
    return gw.request("POST", path, raw, {"Content-Type": "application/json"})


def still_serves(gw):
    assert gw.alive()
    st, _, j = gw.run({"runtime": "python", "code": "print(6 * 7)"})
    assert st == 200 and j["run"]["stdout"] == "42\n", j


# ---- JSON bounds -------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/run", "/api/v2/execute"])
def test_a_million_tiny_values_is_400(gw, path):
    raw = (b'{"runtime":"python","language":"python","code":"print(1)","args":['
           + b",".join([b"0"] * 10 ** 6) + b"]}")
    st, _, j = post_raw(gw, path, raw)
    assert st == 400, j
    assert j["error"]["code"] == "bad_request"
    assert "more than 16384 JSON values" in j["error"]["message"], j
    still_serves(gw)


def test_many_small_bodies_of_many_values_in_parallel(gw):
    import threading
    raw = b"[" + b",".join([b"{}"] * ((4 << 20) // 3)) + b"]"
    got = []
    ts = [threading.Thread(target=lambda: got.append(post_raw(gw, "/v1/run", raw)))
          for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert [g[0] for g in got] == [400] * 6
    assert all("more than 16384 JSON values" in g[2]["error"]["message"] for g in got), got
    still_serves(gw)


def test_deep_nesting_is_400(gw):
    st, _, j = post_raw(gw, "/v1/run", b'{"runtime":"python","code":"x","env":' + b"[" * 40
                        + b"]" * 40 + b"}")
    assert st == 400 and "nests deeper than 32" in j["error"]["message"], j
    # a legitimate body with many (escaped) commas and brackets in its strings
    code = "print(len(%r))" % ("[,{\\\"" * 20000)
    st, _, j = gw.run({"runtime": "python", "code": code})
    assert st == 200 and j["run"]["stdout"] == "100000\n", j


# ---- bodies in flight -------------------------------------------------------

def test_bodies_in_flight_are_bounded(module_workers, tmp_path):
    g = Gateway([("python", module_workers("python").url)], tmp=str(tmp_path),
                args=["--max-body", "1M", "--max-inflight-bodies", "1M"])
    try:
        # a client that announced a 1 MiB body and got "100 Continue" holds all of it
        s = socket.create_connection(("127.0.0.1", g.port), timeout=10)
        s.sendall(b"POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1048576\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 "), "no 100 Continue"
        st, h, j = g.run({"runtime": "python", "code": "print(1)"})
        assert st == 503 and j["error"]["code"] == "overloaded", j
        assert "--max-inflight-bodies" in j["error"]["message"] and h["retry-after"] == "1"
        s.close()  # the body never comes: its share is given back
        deadline = time.time() + 20
        while time.time() < deadline:
            st, _, j = g.run({"runtime": "python", "code": "print(1)"})
            if st == 200:
                break
            time.sleep(0.2)
        assert st == 200 and j["run"]["stdout"] == "1\n", j
    finally:
        g.stop()


def test_inflight_budget_below_max_body_is_refused(tmp_path):
    p = subprocess.run([str(BUILD / "corral-gateway"), "--workers", "p=tcp://127.0.0.1:1",
                        "--max-body", "8M", "--max-inflight-bodies", "4M"],
                       capture_output=True, timeout=10)
    assert p.returncode == 2 and b"--max-inflight-bodies" in p.stderr, p.stderr


# ---- output ------------------------------------------------------------------

def test_nul_output_comes_base64_exactly(gw):
    st, _, j = gw.run({"runtime": "python", "limits": {"output_bytes": 2 << 20},
                       "code": "import sys; sys.stdout.buffer.write(bytes(1 << 20))\n"
                               "sys.stderr.write('a\\x00b\\n')"})
    assert st == 200, j
    assert j["run"]["stdout_encoding"] == "base64"
    assert base64.b64decode(j["run"]["stdout"]) == bytes(1 << 20)
    # short output stays text, escaped (under 4 KiB: coloured reports)
    assert j["run"]["stderr_encoding"] == "utf8"
    assert j["run"]["stderr"] == "a\x00b\n"
    # text with tabs and newlines stays text
    st, _, j = gw.run({"runtime": "python", "code": "print('a\\tb\\n' * 1000)"})
    assert st == 200 and j["run"]["stdout_encoding"] == "utf8"
    assert j["run"]["stdout"] == "a\tb\n" * 1000 + "\n"


def test_one_byte_writes_on_alternating_streams_come_back_whole(gw):
    code = ("import os\nfor i in range(100000):\n"
            " os.write(1, b'%c' % (48 + i % 10)); os.write(2, b'%c' % (97 + i % 26))\n")
    want_out = bytes(48 + i % 10 for i in range(100000))
    want_err = bytes(97 + i % 26 for i in range(100000))
    st, _, j = gw.run({"runtime": "python", "code": code})
    assert st == 200, j
    assert j["run"]["stdout"].encode() == want_out and j["run"]["stderr"].encode() == want_err
    st, _, j = gw.piston({"language": "python", "files": [{"content": code}]})
    assert st == 200, j
    out = j["run"]["output"].encode()
    assert j["run"]["stdout"].encode() == want_out and len(out) == 200000
    # every byte of each stream is there, in its order
    assert bytes(c for c in out if c < 64) == want_out
    assert bytes(c for c in out if c >= 97) == want_err


# ---- limits ------------------------------------------------------------------

@pytest.mark.parametrize("limits,field", [
    ({"wall_ms": 9223372036854775807}, "limits.wall_ms"),
    ({"wall_ms": 86400001}, "limits.wall_ms"),
    ({"cpu_ms": -1}, "limits.cpu_ms"),
    ({"memory_bytes": 1.5}, "limits.memory_bytes"),
    ({"pids": "64"}, "limits.pids"),
    ({"output_bytes": 2 ** 62}, "limits.output_bytes"),
    ({"file_bytes": [1]}, "limits.file_bytes"),
])
def test_v1_limits_out_of_range_are_400(gw, limits, field):
    for key in ("limits", "compile_limits"):
        st, _, j = gw.run({"runtime": "python", "code": "print(1)", key: limits})
        assert st == 400 and j["error"]["code"] == "bad_request", j
        want = field.replace("limits", key, 1) + " must be a non-negative integer, at most "
        assert want in j["error"]["message"], j
    still_serves(gw)


@pytest.mark.parametrize("field", ["run_timeout", "compile_timeout", "run_cpu_time",
                                   "compile_cpu_time", "run_memory_limit",
                                   "compile_memory_limit"])
@pytest.mark.parametrize("value", [9223372036854775807, 2 ** 41, -2, 2500.5, "3s"])
def test_piston_limits_out_of_range_are_400(gw, field, value):
    st, _, j = gw.piston({"language": "python", "files": [{"content": "print(1)"}],
                          field: value})
    assert st == 400 and j["error"]["code"] == "bad_request", j
    assert j["message"].startswith(field + " must be an integer in [0, "), j


def test_limits_at_the_maximum_reach_the_worker(gw):
    # the gateway passes them on (its deadline is then far away); the
    # worker's own maximum refuses them
    st, _, j = gw.run({"runtime": "python", "code": "print(1)", "limits": {"wall_ms": 86400000}})
    assert st == 400 and "above this worker's maximum" in j["error"]["message"], j
    st, _, j = gw.piston({"language": "python", "files": [{"content": "print(1)"}],
                          "run_timeout": 3000, "run_memory_limit": -1})
    assert st == 200 and j["run"]["stdout"] == "1\n", j


# ---- API keys ----------------------------------------------------------------

def test_api_key_tail_and_hash(module_workers, tmp_path):
    long_key = "k" * 600 + "TAIL"
    keys = tmp_path / "keys"
    keys.write_text("# ops\n%s\n  abc#def\n" % long_key)
    g = Gateway([("python", module_workers("python").url)], tmp=str(tmp_path),
                args=["--api-keys", str(keys)])
    try:
        body = {"runtime": "python", "code": "print(5)"}

        def status(key):
            return g.run(body, headers={"Authorization": "Bearer " + key})[0]

        assert status(long_key) == 200
        assert status("abc#def") == 200
        # a long key's tail or head (the old parser read 511 bytes at a
        # time), or a key cut at '#', are no keys
        assert status(long_key[511:]) == 401
        assert status("TAIL") == 401
        assert status(long_key[:511]) == 401
        assert status("abc") == 401
    finally:
        g.stop()


@pytest.mark.parametrize("text,needle", [
    ("good\nsecret-two  # ci\n", b"line 2: a key is printable ASCII without spaces"),
    ("x" * 1025 + "\n", b"line 1: a key is at most 1024 bytes"),
    ("# only a comment\n\n", b"holds no key"),
])
def test_bad_api_keys_file_stops_the_gateway(tmp_path, text, needle):
    keys = tmp_path / "keys"
    keys.write_text(text)
    p = subprocess.run([str(BUILD / "corral-gateway"), "--workers", "p=tcp://127.0.0.1:1",
                        "--api-keys", str(keys)], capture_output=True, timeout=10)
    assert p.returncode == 2 and needle in p.stderr and str(keys).encode() in p.stderr, p.stderr
