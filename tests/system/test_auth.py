"""The optional shared secret between clients and workers (--secret-file,
docs/protocol.md "Authentication"): real corral-processor, corral and
corral-gateway processes; requests are signed here by an independent
implementation of the documented scheme (Python's hmac)."""
import hashlib
import hmac
import os
import subprocess
import time

import msgpack
import pytest

import sp
from conftest import BUILD, RUNTIMES
from test_gateway_fixtures import Gateway

SECRET = b"correct horse battery staple 42"


def sign(msg, secret=SECRET, ts=None, nonce=None):
    """The wire scheme: "auth" = {ts, nonce, mac} last, mac = HMAC-SHA256 of
    the whole message with the mac's 32 bytes zeroed."""
    m = dict(msg)
    m["auth"] = {"ts": int(time.time() * 1000) if ts is None else ts,
                 "nonce": os.urandom(16) if nonce is None else nonce, "mac": b"\0" * 32}
    body = msgpack.packb(m, use_bin_type=True)
    assert body.endswith(b"\0" * 32)
    return body[:-32] + hmac.new(secret, body, hashlib.sha256).digest()


def call_raw(w, body):
    with sp.Req(w.url) as r:
        return msgpack.unpackb(r.call_raw(body), raw=False)


@pytest.fixture
def secret_file(tmp_path):
    p = tmp_path / "secret"
    p.write_bytes(SECRET + b"\n")
    p.chmod(0o600)
    return p


@pytest.fixture
def worker(worker_factory, secret_file):
    return worker_factory("bash", slots=1, args=["--secret-file", str(secret_file)])


def assert_unauthorized(reply, needle):
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == "unauthorized", reply
    assert needle in reply["error"]["message"], reply


def test_signed_requests_run_and_others_are_refused(worker, tmp_path):
    ping = {"v": 1, "op": "ping"}
    r = call_raw(worker, sign(ping))
    assert r["ok"] is True and r["slots"] == 1
    run = {"v": 1, "op": "run", "id": "a1", "files": [{"name": "m.sh", "content": "echo hi"}]}
    r = call_raw(worker, sign(run))
    assert r["ok"] is True and r["run"]["stdout"] == b"hi\n"
    run["id"] = "refused"
    # no auth, another secret, a tampered body, a stale ts, a replay
    assert_unauthorized(call_raw(worker, msgpack.packb(run, use_bin_type=True)), "auth: missing")
    assert_unauthorized(call_raw(worker, sign(run, secret=b"another secret of 32 bytes....")),
                        "wrong mac")
    good = sign(dict(run, id="a2"))
    assert_unauthorized(call_raw(worker, good.replace(b"echo hi", b"echo HI")), "wrong mac")
    assert_unauthorized(call_raw(worker, sign(run, ts=int(time.time() * 1000) - 120000)),
                        "60 s")
    assert_unauthorized(call_raw(worker, sign(ping, ts=int(time.time() * 1000) + 120000)),
                        "60 s")
    nonce = os.urandom(16)
    assert call_raw(worker, sign(ping, nonce=nonce))["ok"] is True
    assert_unauthorized(call_raw(worker, sign(ping, nonce=nonce)), "replayed")
    assert_unauthorized(call_raw(worker, msgpack.packb(dict(run, auth="x"), use_bin_type=True)),
                        "auth: must be")
    time.sleep(0.1)
    ran = [l for l in worker.log().splitlines() if "msg=invocation" in l]
    assert len(ran) == 1 and "id=a1" in ran[0]  # nothing refused ran
    assert call_raw(worker, sign(ping))["ok"] is True and worker.alive()


def test_cli_signs_with_secret_file(worker, secret_file, tmp_path):
    corral = str(BUILD / "corral")
    script = tmp_path / "s.sh"
    script.write_text("echo signed\n")
    p = subprocess.run([corral, "invoke", "--worker", worker.url, "--secret-file",
                        str(secret_file), str(script)], capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stdout == b"signed\n", p.stderr
    env = dict(os.environ, CORRAL_SECRET_FILE=str(secret_file))
    p = subprocess.run([corral, "ping", "--worker", worker.url], capture_output=True,
                       timeout=60, env=env)
    assert p.returncode == 0 and b'"ok": true' in p.stdout.replace(b'"ok":true', b'"ok": true')
    p = subprocess.run([corral, "ping", "--worker", worker.url], capture_output=True, timeout=60)
    assert p.returncode != 0 and b"unauthorized" in p.stdout + p.stderr
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"not the workers' secret at all")
    p = subprocess.run([corral, "invoke", "--worker", worker.url, "--secret-file", str(wrong),
                        str(script)], capture_output=True, timeout=60)
    assert p.returncode != 0 and b"unauthorized" in p.stdout + p.stderr
    assert b"signed" not in p.stdout


@pytest.mark.parametrize("content,needle", [(None, "cannot read the secret file"),
                                            (b"short\n", "must be 16 to 4096 bytes")])
def test_bad_secret_file_fails_clearly(tmp_path, content, needle):
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    for cmd in ([str(BUILD / "corral-processor"), "--runtime-dir", str(RUNTIMES / "bash")],
                [str(BUILD / "corral-gateway"), "--workers", "bash=tcp://127.0.0.1:1"],
                [str(BUILD / "corral"), "ping", "--worker", "tcp://127.0.0.1:1"]):
        p = subprocess.run(cmd + ["--secret-file", str(path)], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2, (cmd, p.stderr)
        assert "--secret-file" in p.stderr and needle in p.stderr, p.stderr


def test_gateway_with_the_workers_secret(worker, secret_file, tmp_path):
    gw = Gateway([("bash", worker.url)], args=["--secret-file", str(secret_file)],
                 tmp=str(tmp_path))
    try:
        st, _, j = gw.run({"runtime": "bash", "code": "echo via gateway"})
        assert st == 200 and j["run"]["stdout"] == "via gateway\n", j
    finally:
        gw.stop()


def test_gateway_without_the_secret_is_refused(worker, tmp_path):
    gw = Gateway([("bash", worker.url)], tmp=str(tmp_path), ready=0)
    try:
        deadline = time.time() + 10
        while "unauthorized" not in gw.log() and time.time() < deadline:
            time.sleep(0.1)
        assert "unauthorized" in gw.log() and "--secret-file" in gw.log()
        assert gw.healthy() == 0
        st, _, _ = gw.run({"runtime": "bash", "code": "echo no"})
        assert st != 200
        assert "refused" in worker.log() and "code=unauthorized" in worker.log()
    finally:
        gw.stop()
