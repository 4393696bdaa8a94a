"""corral-gateway's HTTP API end to end: real gateway, real workers.

Every runtime's test cases (runtimes/<lang>/tests) go through POST /v1/run,
their hello case through the Piston route; then every error status the API
documents (docs/http-api.md), CORS, API keys, /v1/runtimes, the Piston
shapes, /healthz, /readyz and /metrics.
"""
import base64
import json
import os
import signal
import threading
import time

import pytest

from test_gateway_fixtures import Gateway, raw_http
from test_runtimes import Case, all_cases, require_installed, runtime_names


@pytest.fixture(scope="module")
def stack(module_workers, tmp_path_factory):
    """Two python workers and one of each other installed runtime behind
    one gateway."""
    workers = [("python", module_workers("python").url),
               ("python", module_workers("python", slots=3).url)]
    for rt in runtime_names():
        if rt == "python":
            continue
        try:
            require_installed(rt)
        except pytest.skip.Exception:
            continue
        workers.append((rt, module_workers(rt).url))
    gw = Gateway(workers, tmp=str(tmp_path_factory.mktemp("gw")))
    yield gw
    gw.stop()


def b64(b):
    return base64.b64encode(b).decode()


def stage_bytes(st, key):
    v = st[key]
    return base64.b64decode(v) if st[key + "_encoding"] == "base64" else v.encode()


def check_stage(where, got, exp):
    for key in ("status", "exit_code", "signal", "stdout_truncated", "stderr_truncated"):
        if key in exp:
            assert got[key] == exp[key], "%s: %s=%r, expected %r (%r)" % (where, key, got[key], exp[key], got)
    for key in ("stdout", "stderr"):
        data = stage_bytes(got, key)
        if key in exp:
            want = exp[key].encode() if isinstance(exp[key], str) else exp[key]
            assert data == want, "%s: %s=%r, expected %r" % (where, key, data, want)
        want = exp.get(key + "_contains", [])
        for piece in [want] if isinstance(want, str) else want:
            assert piece.encode() in data, "%s: %s lacks %r: %r" % (where, key, piece, data)
    for key in ("wall_ms", "cpu_ms", "memory_bytes"):
        assert isinstance(got[key], int) and got[key] >= 0, (where, key, got)


# ---- every runtime ---------------------------------------------------------

@pytest.mark.parametrize("rt,path", all_cases(), ids=lambda v: getattr(v, "name", v))
def test_every_runtime_case_through_v1_run(stack, rt, path):
    require_installed(rt)
    case = Case(rt, path)
    names = [case.entry] + [n for n in case.files if n != case.entry]
    body = {"runtime": rt, "entry": case.entry,
            "files": [{"name": n, "content": b64(case.files[n]), "encoding": "base64"} for n in names],
            "stdin": b64(case.stdin), "stdin_encoding": "base64"}
    for key in ("args", "env", "limits", "compile_limits"):
        if key in case.spec:
            body[key] = case.spec[key]
    st, _, j = stack.run(body)
    assert st == 200, (case.where, j)
    assert j["runtime"]["name"] == rt
    exp = case.spec["expect"]
    if "compile" in j:
        check_stage(case.where + " compile", j["compile"], exp.get("compile") or {"status": "ok"})
    if exp["run"] is None:
        assert j["run"] is None, (case.where, j)
    else:
        check_stage(case.where + " run", j["run"], exp["run"])
    assert j["worker"]["url"].startswith("tcp://")
    assert j["race"]["winner"] == j["worker"]["url"]


@pytest.mark.parametrize("rt", runtime_names())
def test_every_runtime_hello_through_piston(stack, rt):
    require_installed(rt)
    hello = [p for r, p in all_cases() if r == rt and p.name == "hello"]
    assert hello, "runtime %s has no hello case" % rt
    case = Case(rt, hello[0])
    files = [{"name": n, "content": c.decode()} for n, c in case.files.items()]
    st, _, j = stack.piston({"language": rt, "version": "*", "files": files})
    assert st == 200, j
    assert j["language"] == rt and j["version"]
    exp = case.spec["expect"]["run"]
    assert j["run"]["stdout"] == exp["stdout"]
    assert j["run"]["output"] == exp["stdout"] + exp.get("stderr", "")
    assert j["run"]["code"] == 0 and j["run"]["status"] is None and j["run"]["signal"] is None
    for key in ("cpu_time", "wall_time", "memory"):
        assert isinstance(j["run"][key], int)


# ---- /v1/run ---------------------------------------------------------------

def test_code_shorthand_and_race_report(stack):
    st, _, j = stack.run({"runtime": "python", "code": "print('OK')"})
    assert st == 200, j
    assert j["run"]["stdout"] == "OK\n" and j["run"]["status"] == "ok"
    assert j["run"]["exit_code"] == 0 and j["run"]["signal"] is None
    assert j["race"]["mode"] == "race" and j["race"]["width"] == 2
    outcomes = sorted(a["outcome"] for a in j["race"]["attempts"])
    assert outcomes[-1] == "won" and len(outcomes) == 2, j["race"]
    assert j["runtime"] == {"name": "python", "version": j["runtime"]["version"]}


def test_alias_version_prefix_stdin_args_env(stack):
    st, _, rts = stack.request("GET", "/v1/runtimes")
    py = [r for r in rts["runtimes"] if r["name"] == "python"][0]
    major = py["version"].split(".")[0]
    st, _, j = stack.run({
        "runtime": "py", "version": major, "race": 1,
        "code": "import sys,os; print(sys.stdin.read().upper(), sys.argv[1:], os.environ['GREETING'])",
        "stdin": "hello", "args": ["a", "b c"], "env": {"GREETING": "hi"}})
    assert st == 200, j
    assert j["run"]["stdout"] == "HELLO ['a', 'b c'] hi\n"
    assert j["race"]["mode"] == "single" and len(j["race"]["attempts"]) == 1


def test_exit_code_signal_timeout(stack):
    st, _, j = stack.run({"runtime": "python", "code": "import sys; sys.exit(3)"})
    assert st == 200 and j["run"]["status"] == "exit" and j["run"]["exit_code"] == 3
    st, _, j = stack.run({"runtime": "python", "code": "import os; os.kill(os.getpid(), 11)"})
    assert st == 200 and j["run"]["status"] == "signal" and j["run"]["signal"] == "SIGSEGV"
    assert j["run"]["exit_code"] is None
    st, _, j = stack.run({"runtime": "python", "code": "while True: pass",
                          "limits": {"wall_ms": 500}})
    assert st == 200 and j["run"]["status"] == "timeout", j


def test_output_not_utf8_comes_base64(stack):
    st, _, j = stack.run({"runtime": "python",
                          "code": "import sys; sys.stdout.buffer.write(b'\\xff\\x00ok'); print('é', file=sys.stderr)"})
    assert st == 200, j
    assert j["run"]["stdout_encoding"] == "base64"
    assert base64.b64decode(j["run"]["stdout"]) == b"\xff\x00ok"
    assert j["run"]["stderr_encoding"] == "utf8" and j["run"]["stderr"] == "é\n"


def test_output_truncation_flag(stack):
    st, _, j = stack.run({"runtime": "python", "code": "print('x' * 100000)",
                          "limits": {"output_bytes": 1000}})
    assert st == 200, j
    assert j["run"]["status"] == "output" and j["run"]["stdout_truncated"] is True
    assert len(j["run"]["stdout"]) == 1000


@pytest.mark.parametrize("body,needle", [
    ({"code": "x"}, "runtime must be"),
    ({"runtime": 3, "code": "x"}, "runtime must be"),
    ({"runtime": "python"}, "missing files"),
    ({"runtime": "python", "code": "x", "files": []}, "either files or code"),
    ({"runtime": "python", "files": []}, "must not be empty"),
    ({"runtime": "python", "files": "main.py"}, "files must be an array"),
    ({"runtime": "python", "files": [{"name": "a.py"}]}, "needs a \"content\""),
    ({"runtime": "python", "files": [{"name": "/etc/passwd", "content": ""}]}, "not an acceptable relative path"),
    ({"runtime": "python", "files": [{"name": "a/../b", "content": ""}]}, "not an acceptable relative path"),
    ({"runtime": "python", "files": [{"name": "a", "content": "!!", "encoding": "base64"}]}, "not valid base64"),
    ({"runtime": "python", "files": [{"name": "a", "content": "x", "encoding": "rot13"}]}, "encoding must be"),
    ({"runtime": "python", "code": "x", "args": "a b"}, "args must be an array"),
    ({"runtime": "python", "code": "x", "args": [1]}, "args[0] must be a string"),
    ({"runtime": "python", "code": "x", "env": {"A": 1}}, "env.A must be a string"),
    ({"runtime": "python", "code": "x", "env": {"CORRAL_X": "1"}}, "CORRAL_"),
    ({"runtime": "python", "code": "x", "limits": {"wall": 5}}, "is not a limit"),
    ({"runtime": "python", "code": "x", "limits": {"wall_ms": -1}}, "non-negative integer"),
    ({"runtime": "python", "code": "x", "limits": {"wall_ms": "5"}}, "non-negative integer"),
    ({"runtime": "python", "code": "x", "limits": {"wall_ms": 10 ** 9}}, "maximum"),
    ({"runtime": "python", "code": "x", "race": 3}, "race must be 1 or 2"),
    ({"runtime": "python", "code": "x", "hedge_ms": -5}, "hedge_ms must be"),
    ({"runtime": "python", "code": "x", "entry": "nope.py"}, "not one of the files"),
    ({"runtime": "python", "code": "x", "colour": "blue"}, "unknown field \"colour\""),
    ([1, 2], "must be a JSON object"),
    ("just a string", "must be a JSON object"),
])
def test_bad_requests_are_400_with_the_reason(stack, body, needle):
    st, _, j = stack.run(json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert st == 400, j
    assert j["error"]["code"] == "bad_request"
    assert needle in j["error"]["message"], j


@pytest.mark.parametrize("raw,needle", [
    (b'{"runtime": "python", "code": "x"', "invalid JSON"),
    (b'{"runtime": "python", "runtime": "python", "code": "x"}', "duplicate"),
    (b'{"runtime": "python", "code": "\xff\xfe"}', "invalid JSON"),
    (b"[" * 5000 + b"]" * 5000, "nests deeper than 32"),
    (b"", "no body"),
])
def test_malformed_json_is_400(stack, raw, needle):
    st, _, j = stack.request("POST", "/v1/run", raw, {"Content-Type": "application/json"})
    assert st == 400, j
    assert needle in j["error"]["message"], j


def test_unknown_runtime_404(stack):
    st, _, j = stack.run({"runtime": "cobol", "code": "x"})
    assert st == 404 and j["error"]["code"] == "unknown_runtime"
    assert "cobol" in j["error"]["message"] and "python" in j["error"]["message"]
    st, _, j = stack.run({"runtime": "python", "version": "1.0", "code": "x"})
    assert st == 404 and "version 1.0" in j["error"]["message"]


def test_routes_and_methods(stack):
    st, _, j = stack.request("GET", "/v2/nothing")
    assert st == 404 and j["error"]["code"] == "not_found"
    st, h, j = stack.request("GET", "/v1/run")
    assert st == 405 and j["error"]["code"] == "method_not_allowed" and "POST" in h["allow"]
    st, _, j = stack.request("DELETE", "/v1/runtimes")
    assert st == 405
    st, _, j = stack.request("GET", "/v1/runtimes/?x=1")
    assert st == 200 and j["runtimes"]


def test_body_too_large_413(stack):
    # as curl sends a large body: headers, then the body only after "100 Continue"
    out = raw_http(stack.port, b"POST /v1/run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 9437184\r\nExpect: 100-continue\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 "), out
    j = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert j["error"]["code"] == "too_large" and "8388608" in j["error"]["message"]
    # a body within the limit after "100 Continue"
    body = json.dumps({"runtime": "python", "code": "print(len('%s'))" % ("x" * (2 << 20))}).encode()
    st, _, j = stack.request("POST", "/v1/run", body, {"Content-Type": "application/json",
                                                        "Expect": "100-continue"})
    assert st == 200 and j["run"]["stdout"] == "%d\n" % (2 << 20), j
    assert stack.healthy() >= 2


def test_not_json_415_but_json_with_any_type_accepted(stack):
    st, _, j = stack.request("POST", "/v1/run", b"runtime=python&code=print(1)",
                             {"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 415 and j["error"]["code"] == "unsupported_media_type"
    # what `curl -d '{...}'` sends: a JSON body labelled as a form
    st, _, j = stack.request("POST", "/v1/run", b'{"runtime":"python","code":"print(1)"}',
                             {"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 200 and j["run"]["stdout"] == "1\n"


def test_runtimes_list(stack):
    st, _, j = stack.request("GET", "/v1/runtimes")
    assert st == 200
    by = {r["name"]: r for r in j["runtimes"]}
    assert by["python"]["healthy_workers"] == 2 and by["python"]["workers"] == 2
    assert "py" in by["python"]["aliases"] and by["python"]["compiled"] is False
    for rt in by.values():
        assert rt["version"] and rt["healthy_workers"] >= 1
    if "c" in by:
        assert by["c"]["compiled"] is True


# ---- Piston ----------------------------------------------------------------

def test_piston_shapes(stack):
    st, _, j = stack.request("GET", "/api/v2/runtimes")
    assert st == 200 and isinstance(j, list)
    py = [r for r in j if r["language"] == "python"][0]
    assert set(py) >= {"language", "version", "aliases"}
    # text/plain body, alias, version prefix, base64 file, stdin, args
    body = {"language": "python3", "version": py["version"][:1],
            "files": [{"name": "m.py", "content": b64(b"import sys\nprint(sys.argv[1:], sys.stdin.read())\nsys.stderr.write('e\\n')\n"), "encoding": "base64"}],
            "stdin": "in", "args": ["x"], "run_timeout": 3000, "run_memory_limit": -1,
            "compile_timeout": 10000, "some_future_field": True}
    st, _, j = stack.request("POST", "/api/v2/execute", json.dumps(body).encode(),
                             {"Content-Type": "text/plain"})
    assert st == 200, j
    assert j["run"]["stdout"] == "['x'] in\n" and j["run"]["stderr"] == "e\n"
    assert j["run"]["code"] == 0 and j["run"]["status"] is None and j["run"]["message"] is None
    assert "compile" not in j


def test_piston_statuses(stack):
    st, _, j = stack.piston({"language": "python", "version": "*",
                             "files": [{"content": "raise SystemExit(2)"}]})
    assert st == 200 and j["run"]["status"] == "RE" and j["run"]["code"] == 2
    st, _, j = stack.piston({"language": "python", "version": "*",
                             "files": [{"content": "import os; os.kill(os.getpid(), 9)"}]})
    assert j["run"]["status"] == "SG" and j["run"]["signal"] == "SIGKILL" and j["run"]["code"] is None
    st, _, j = stack.piston({"language": "python", "version": "*", "run_timeout": 300,
                             "files": [{"content": "while 1: pass"}]})
    assert j["run"]["status"] == "TO", j
    st, _, j = stack.piston({"language": "python", "version": "*",
                             "files": [{"content": "import sys, time\nprint('a', flush=True)\ntime.sleep(0.1)\n"
                                                    "print('b', file=sys.stderr, flush=True)\ntime.sleep(0.1)\nprint('c', flush=True)"}]})
    assert j["run"]["output"] == "a\nb\nc\n", j


def test_piston_compiled_runtime(stack):
    require_installed("c")
    st, _, j = stack.piston({"language": "gcc", "version": "*",
                             "files": [{"name": "main.c", "content": "int main(void) { return 4; }"}]})
    assert st == 200, j
    assert j["compile"]["code"] == 0 and j["run"]["code"] == 4 and j["run"]["status"] == "RE"
    st, _, j = stack.piston({"language": "c", "version": "*",
                             "files": [{"name": "main.c", "content": "int main(void) { syntax error }"}]})
    assert st == 200, j
    assert j["compile"]["code"] != 0 and j["compile"]["status"] == "RE" and "error" in j["compile"]["stderr"]
    assert j["run"] is None


def test_piston_errors(stack):
    st, _, j = stack.piston({"language": "brainfuck", "version": "*", "files": [{"content": "+"}]})
    assert st == 400 and "brainfuck" in j["message"]
    st, _, j = stack.piston({"language": "python", "version": "*"})
    assert st == 400 and "files" in j["message"]
    st, _, j = stack.piston({"language": "python", "files": [{"content": "x"}], "run_timeout": "soon"})
    assert st == 400 and "run_timeout" in j["message"]


# ---- probes and metrics ----------------------------------------------------

def test_healthz_readyz_metrics(stack):
    assert stack.request("GET", "/healthz")[0] == 200
    st, _, j = stack.request("GET", "/readyz")
    assert st == 200 and j["ready"] is True and j["healthy_workers"] >= 2
    stack.run({"runtime": "python", "code": "print(1)"})
    m = stack.metrics()
    assert m['corral_gateway_http_requests_total{route="/v1/run",code="200"}'] >= 1
    assert m['corral_gateway_http_requests_total{route="/v1/run",code="400"}'] >= 1
    assert any(k.startswith("corral_gateway_invocation_seconds_bucket{runtime=\"python\"") for k in m)
    assert sum(v for k, v in m.items() if k.startswith("corral_gateway_worker_healthy{")) >= 2
    for name in ("races_won_total", "races_lost_total", "retries_total", "cancels_total",
                 "in_flight", "worker_ejections_total"):
        assert "corral_gateway_" + name in m, name
    assert m["corral_gateway_cancels_total"] >= 1  # every race so far sent one


# ---- CORS and keys ---------------------------------------------------------

def test_cors(module_workers, tmp_path):
    gw = Gateway([("python", module_workers("python").url)], tmp=str(tmp_path),
                 args=["--cors-origins", "https://ok.example,https://two.example"])
    try:
        st, h, _ = gw.request("OPTIONS", "/v1/run", headers={
            "Origin": "https://ok.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})
        assert st == 204
        assert h["access-control-allow-origin"] == "https://ok.example"
        assert "POST" in h["access-control-allow-methods"]
        assert h["access-control-allow-headers"] == "content-type"
        st, h, j = gw.request("OPTIONS", "/v1/run", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert st == 403 and "access-control-allow-origin" not in h
        st, h, j = gw.run({"runtime": "python", "code": "print(2)"},
                          headers={"Origin": "https://two.example"})
        assert st == 200 and h["access-control-allow-origin"] == "https://two.example"
        st, h, j = gw.run({"runtime": "python", "code": "print(2)"},
                          headers={"Origin": "https://evil.example"})
        assert st == 200 and "access-control-allow-origin" not in h
        # errors carry CORS headers too, so a browser can read them
        st, h, j = gw.run({"runtime": "nope", "code": ""}, headers={"Origin": "https://ok.example"})
        assert st == 404 and h["access-control-allow-origin"] == "https://ok.example"
    finally:
        gw.stop()


def test_api_keys(module_workers, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nsecret-one\n\n  secret-two  \n  # ci\n")
    gw = Gateway([("python", module_workers("python").url)], tmp=str(tmp_path),
                 args=["--api-keys", str(keys)])
    try:
        body = {"runtime": "python", "code": "print(3)"}
        st, h, j = gw.run(body)
        assert st == 401 and j["error"]["code"] == "unauthorized" and h["www-authenticate"] == "Bearer"
        st, _, j = gw.run(body, headers={"Authorization": "Bearer wrong"})
        assert st == 401
        st, _, j = gw.run(body, headers={"Authorization": "Bearer secret-one2"})
        assert st == 401
        st, _, j = gw.run(body, headers={"Authorization": "Bearer secret-two"})
        assert st == 200 and j["run"]["stdout"] == "3\n"
        st, _, j = gw.request("GET", "/api/v2/runtimes", headers={"Authorization": "Bearer x"})
        assert st == 401
        assert gw.request("GET", "/healthz")[0] == 200
        assert gw.request("GET", "/metrics")[0] == 200
    finally:
        gw.stop()


def test_beyond_loopback_needs_keys_and_bad_flags(tmp_path):
    import subprocess
    from conftest import BUILD
    gw = str(BUILD / "corral-gateway")
    p = subprocess.run([gw, "--listen", "http://0.0.0.0:0", "--workers", "python=tcp://127.0.0.1:1"],
                       capture_output=True, timeout=10)
    assert p.returncode != 0 and b"--api-keys" in p.stderr
    for args, needle in [([], b"no workers"),
                         (["--workers", "python"], b"RUNTIME=URL"),
                         (["--workers", "python=http://x"], b"not tcp:// or ipc://"),
                         (["--workers", "p=tcp://127.0.0.1:1", "--race", "3"], b"--race"),
                         (["--workers", "p=tcp://127.0.0.1:1", "--max-body", "lots"], b"--max-body"),
                         (["--workers", "p=tcp://127.0.0.1:1", "--api-keys", str(tmp_path / "none")], b"api-keys"),
                         (["--bogus"], b"bogus")]:
        p = subprocess.run([gw] + args, capture_output=True, timeout=10)
        assert p.returncode != 0 and needle in p.stderr, (args, p.stderr)
    p = subprocess.run([gw, "--help"], capture_output=True, timeout=10)
    assert p.returncode == 0 and b"--hedge-ms" in p.stdout and b"CORRAL_GW_WORKERS" in p.stdout


# ---- overload, no worker, deadline -----------------------------------------

def _occupy(gw, seconds):
    """A request that holds a worker slot for `seconds`; returns once the
    gateway has it in flight on a worker."""
    t = threading.Thread(target=gw.run, args=({"runtime": "python", "race": 1,
                                               "code": "import time; time.sleep(%s)" % seconds},))
    t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
            k.startswith("corral_gateway_worker_in_flight") and v >= 1
            for k, v in gw.metrics().items()):
        time.sleep(0.02)
    return t


def test_queue_full_429_and_queue_timeout_503(worker_factory, tmp_path):
    w = worker_factory("python", slots=1)
    gw = Gateway([("python", w.url)], tmp=str(tmp_path), args=["--queue", "0"])
    try:
        t = _occupy(gw, 3)
        st, h, j = gw.run({"runtime": "python", "code": "print(1)"})
        assert st == 429 and j["error"]["code"] == "queue_full" and h["retry-after"] == "1", j
        t.join()
        assert gw.run({"runtime": "python", "code": "print(1)"})[0] == 200
    finally:
        gw.stop()
    gw = Gateway([("python", w.url)], tmp=str(tmp_path), args=["--queue", "4", "--queue-ms", "300"])
    try:
        t = _occupy(gw, 5)
        t0 = time.monotonic()
        st, h, j = gw.run({"runtime": "python", "code": "print(1)"})
        took = time.monotonic() - t0
        assert st == 503 and j["error"]["code"] == "overloaded" and h["retry-after"] == "1", j
        assert took > 0.25, took  # it waited its --queue-ms, then gave up (the slot was not free)
        t.join()
        assert gw.metrics()["corral_gateway_overload_rejections_total"] >= 1
    finally:
        gw.stop()
    gw = Gateway([("python", w.url)], tmp=str(tmp_path), args=["--queue", "4", "--queue-ms", "10000"])
    try:
        # a queued request that gets its slot in time just waits
        t = _occupy(gw, 1)
        st, _, j = gw.run({"runtime": "python", "code": "print(1)"})
        assert st == 200 and j["race"]["queued_ms"] > 0, j
        t.join()
        assert gw.metrics()["corral_gateway_queued_total"] >= 1
    finally:
        gw.stop()


def test_no_worker_502_and_readyz(tmp_path):
    from conftest import free_port
    gw = Gateway([("python", "tcp://127.0.0.1:%d" % free_port())], tmp=str(tmp_path), ready=0)
    try:
        st, h, j = gw.request("GET", "/readyz")
        assert st == 503 and j["ready"] is False and h["retry-after"]
        # never reached: the runtime is not known yet
        st, _, j = gw.run({"runtime": "python", "code": "print(1)"})
        assert st == 404 and "none yet" in j["error"]["message"]
        assert gw.request("GET", "/healthz")[0] == 200
    finally:
        gw.stop()


def test_deadline_504(worker_factory, tmp_path):
    w = worker_factory("python", slots=2)
    gw = Gateway([("python", w.url)], tmp=str(tmp_path),
                 args=["--deadline-slack-ms", "300", "--ping-ms", "60000", "--ping-timeout-ms", "60000"])
    try:
        os.kill(w.proc.pid, signal.SIGSTOP)  # accepts nothing, answers nothing
        t0 = time.monotonic()
        st, _, j = gw.run({"runtime": "python", "code": "print(1)", "limits": {"wall_ms": 500}})
        took = time.monotonic() - t0
        assert st == 504 and j["error"]["code"] == "deadline", j
        assert took > 0.7, took  # wall_ms + slack: the worker never answers, so only the deadline ends it
    finally:
        os.kill(w.proc.pid, signal.SIGCONT)
        gw.stop()


def test_documented_routes_are_served(stack):
    """docs/openapi.yaml and the gateway agree on the routes."""
    import re
    spec = (os.path.dirname(__file__) + "/../../docs/openapi.yaml")
    with open(spec) as f:
        text = f.read()
    paths = re.findall(r"^  (/\S*):\n    (get|post):", text, re.M)
    assert len(paths) == 7, paths
    for path, method in paths:
        body = {"runtime": "python", "code": "print(1)"} if path == "/v1/run" else \
            {"language": "python", "version": "*", "files": [{"content": "print(1)"}]} \
            if path == "/api/v2/execute" else None
        st, _, _ = stack.request(method.upper(), path, body)
        assert st == 200, (path, st)


def test_sigterm_drains(worker_factory, tmp_path):
    w = worker_factory("python", slots=2)
    gw = Gateway([("python", w.url)], tmp=str(tmp_path), args=["--drain-ms", "10000"])
    out = {}
    t = threading.Thread(target=lambda: out.update(r=gw.run({
        "runtime": "python", "race": 1, "code": "import time; time.sleep(1.5); print('late')"})))
    t.start()
    time.sleep(0.5)
    gw.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    st, h, j = gw.request("GET", "/readyz")
    assert st == 503 and j["draining"] is True
    st, h, j = gw.run({"runtime": "python", "code": "print(1)"})
    assert st == 503 and j["error"]["code"] == "draining" and h["retry-after"] == "1"
    t.join(10)
    st, _, j = out["r"]
    assert st == 200 and j["run"]["stdout"] == "late\n"
    assert gw.proc.wait(10) == 0
    gw.stop()
    assert "msg=stop signal=15 in_flight_left=0" in gw.log()
