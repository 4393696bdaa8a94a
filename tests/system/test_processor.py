"""corral-processor over real nng sockets: the protocol, malformed input,
busy, cancel, drain. Limits are in test_limits.py, per-language cases in
test_runtimes.py."""
import os
import random
import signal
import socket
import struct
import threading
import time

import msgpack
import pytest

import sp


def run_msg(id, files, **kw):
    m = {"v": 1, "op": "run", "id": id,
         "files": [{"name": n, "content": c} for n, c in files.items()]}
    m.update(kw)
    return m


@pytest.fixture(scope="module")
def bash(module_workers):
    return module_workers("bash", slots=2)


def assert_healthy(w):
    r = w.call({"v": 1, "op": "ping"})
    assert r["ok"] is True and r["slots"] >= 1
    assert w.alive()


def test_ping_and_info(bash):
    r = bash.call({"v": 1, "op": "ping", "id": "p1"})
    assert r["ok"] is True and r["id"] == "p1" and r["v"] == 1
    assert r["slots"] == 2 and r["busy"] == 0 and r["draining"] is False
    assert r["worker"].endswith("/-")
    i = bash.call({"v": 1, "op": "info"})
    assert i["ok"] is True
    assert i["runtime"]["name"] == "bash"
    assert i["runtime"]["version"][0].isdigit()
    assert i["runtime"]["compiled"] is False
    assert i["slots"] == 2
    for k in ("wall_ms", "cpu_ms", "memory_bytes", "pids", "output_bytes", "file_bytes"):
        assert i["limits"]["default"][k] <= i["limits"]["max"][k]
        assert k in i["compile_limits"]["max"]
    assert isinstance(i["isolation"], str) and i["isolation"]
    assert i["caps"]["max_files"] > 0


def test_run_hello(bash):
    r = bash.run({"main.sh": "echo hello; echo oops >&2; exit 0"}, id="hello-1")
    assert r["ok"] is True, r
    assert r["id"] == "hello-1"
    assert r["runtime"]["name"] == "bash"
    assert "compile" not in r
    run = r["run"]
    assert run["status"] == "ok" and run["exit_code"] == 0 and run["signal"] is None
    assert run["stdout"] == b"hello\n" and run["stderr"] == b"oops\n"
    assert run["stdout_truncated"] is False and run["stderr_truncated"] is False
    assert sum(c for c in run["chunks"] if c > 0) == 6 and sum(-c for c in run["chunks"] if c < 0) == 5
    assert run["wall_ms"] >= 0 and run["cpu_ms"] >= 0 and run["memory_bytes"] > 0
    host, slot = r["worker"].rsplit("/", 1)
    assert slot in ("0", "1")


def test_stdin_args_env_entry_subdirs(bash):
    r = bash.run({"lib/data.txt": "from-file\n",
                  "main.sh": 'cat lib/data.txt; cat; printf "[%s]" "$@"; echo; echo "$GREETING"'},
                 entry="main.sh", stdin=b"from-stdin\n", args=["a b", "", "c"],
                 env={"GREETING": "hi there"})
    assert r["ok"], r
    assert r["run"]["stdout"] == b"from-file\nfrom-stdin\n[a b][][c]\nhi there\n"


def test_exit_and_signal_statuses(bash):
    r = bash.run({"m.sh": "echo x; exit 3"})
    assert r["run"]["status"] == "exit" and r["run"]["exit_code"] == 3
    r = bash.run({"m.sh": "kill -SEGV $$"})
    assert r["run"]["status"] == "signal"
    assert r["run"]["signal"] == "SIGSEGV" and r["run"]["exit_code"] is None


def test_binary_output_kept_as_bytes(bash):
    r = bash.run({"m.sh": r"printf '\377\000\001ok'"})
    assert r["run"]["stdout"] == b"\xff\x00\x01ok"


def test_no_state_between_invocations(bash):
    r1 = bash.run({"m.sh": "echo secret > mine.txt; mkdir -p d; echo x > d/y; pwd"})
    assert r1["run"]["status"] == "ok"
    wd = r1["run"]["stdout"].strip().decode()
    for _ in range(3):
        r2 = bash.run({"m.sh": "ls -A; pwd"})
        lines = r2["run"]["stdout"].decode().split()
        assert lines[:-1] == ["m.sh"]  # exactly the request's files
    # the work dir itself is gone after the reply
    assert not os.path.exists(wd)


@pytest.mark.parametrize("body,needle", [
    (b"", "truncated"),
    (b"\xc1", "not valid msgpack"),
    (b"\x93\x01\x02\x03", "must be a msgpack map"),
    (b"\xdd\xff\xff\xff\xff", "truncated"),
    (msgpack.packb({"v": 1, "op": "run"}), "id: missing"),
    (msgpack.packb({"v": 1, "op": "run", "id": "x"}), "files: missing"),
    (msgpack.packb({"v": 1, "op": "run", "id": "x", "files": []}), "at least one file"),
    (msgpack.packb({"v": 1, "op": "run", "id": "x", "files": [{"name": "../etc/passwd", "content": ""}]}), "relative path"),
    (msgpack.packb({"v": 1, "op": "run", "id": "x", "files": [{"name": "/etc/passwd", "content": ""}]}), "relative path"),
    (msgpack.packb({"v": 1, "op": "run", "id": "x", "files": [{"name": "a\0b", "content": ""}]}), "NUL"),
    (msgpack.packb({"v": 1, "op": "run", "id": "x", "files": [{"name": "a", "content": 5}]}), "content"),
    (msgpack.packb({"v": 1, "op": "run", "id": "x", "files": [{"name": "a", "content": ""}], "args": "no"}), "args: must be an array"),
    (msgpack.packb({"v": 1, "op": "run", "id": "x", "files": [{"name": "a", "content": ""}], "limits": {"wall_ms": -5}}), "non-negative"),
    (msgpack.packb({"v": 1, "op": "run", "id": "bad id!", "files": []}), "id: must be"),
])
def test_malformed_requests_get_bad_request(bash, body, needle):
    with sp.Req(bash.url) as r:
        reply = msgpack.unpackb(r.call_raw(body), raw=False)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "bad_request"
    assert needle in reply["error"]["message"]
    assert_healthy(bash)


def test_hostile_headers_get_bad_request(bash):
    """Declared sizes past the bytes left or the caps: refused, worker up."""
    cases = [
        (b"\xdd\xff\xff\xff\xff" + b"\xc0" * 5, "truncated"),
        (b"\x81\xa1a" * 20 + b"\xc0", "nested deeper than 8"),
        (b"\x82\xa1v\x01\xa1x\xdc\x07\xd0" + b"\xc0" * 2000, "more than the maximum 1024"),
        (b"\x82\xa1v\x01\xa1x\x94" + (b"\xdc\x03\xe8" + b"\xc0" * 1000) * 4,
         "more objects in all"),
    ]
    with sp.Req(bash.url) as r:
        for body, needle in cases:
            reply = msgpack.unpackb(r.call_raw(body), raw=False)
            assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
            assert needle in reply["error"]["message"], (needle, reply)
    assert_healthy(bash)


def _vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_hostile_32mib_message_is_refused_before_unpacking(worker_factory):
    """32 MiB declaring 32 Mi one-byte elements: msgpack-c would allocate a
    24-byte object for each (800 MB of RSS). The declared count is refused
    on the raw bytes first, so the worker holds little more than the
    message, answers bad_request and stays healthy."""
    w = worker_factory("bash", slots=1)
    before = _vm_hwm_kb(w.proc.pid)
    n = 32 * 1024 * 1024 - 5
    body = b"\xdd" + struct.pack(">I", n) + b"\xc0" * n
    with sp.Req(w.url, 120) as r:
        reply = msgpack.unpackb(r.call_raw(body), raw=False)
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
    assert "more than the maximum" in reply["error"]["message"]
    assert_healthy(w)
    grown_mb = (_vm_hwm_kb(w.proc.pid) - before) / 1024
    assert grown_mb < 200, "peak RSS grew by %d MB for a 32 MiB message" % grown_mb


def test_unsupported(bash):
    r = bash.call({"v": 2, "op": "ping"})
    assert r["error"]["code"] == "unsupported"
    r = bash.call({"v": 1, "op": "explode"})
    assert r["error"]["code"] == "unsupported"


def test_limit_above_max_is_refused_not_clamped(bash):
    info = bash.call({"v": 1, "op": "info"})
    mx = info["limits"]["max"]["wall_ms"]
    r = bash.run({"m.sh": "echo hi"}, limits={"wall_ms": mx + 1})
    assert r["ok"] is False and r["error"]["code"] == "bad_request"
    assert "limits.wall_ms" in r["error"]["message"] and str(mx) in r["error"]["message"]
    r = bash.run({"m.sh": "echo hi"}, limits={"wall_ms": mx})
    assert r["ok"] is True


def test_random_garbage_keeps_worker_up(bash):
    rnd = random.Random(7)
    with sp.Req(bash.url) as r:
        for i in range(300):
            body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 200)))
            reply = msgpack.unpackb(r.call_raw(body), raw=False)
            assert reply["ok"] is False
            assert reply["error"]["code"] in ("bad_request", "unsupported")
    assert_healthy(bash)


def test_oversize_file_refused(bash):
    info = bash.call({"v": 1, "op": "info"})
    big = b"x" * (info["caps"]["max_file_bytes"] + 1)
    r = bash.run({"m.sh": big})
    assert r["ok"] is False and r["error"]["code"] == "bad_request"
    assert "maximum" in r["error"]["message"]
    assert_healthy(bash)


def test_message_over_transport_cap_drops_connection_only(worker_factory):
    w = worker_factory("bash", slots=1, args=["--max-message", "64K"])
    with sp.Req(w.url) as r:
        r.send_raw(msgpack.packb(run_msg("big", {"m.sh": b"x" * 100000})))
        with pytest.raises((sp.SPError, OSError)):
            r.recv_raw()
    assert_healthy(w)


def test_busy_when_all_slots_taken(worker_factory):
    w = worker_factory("bash", slots=2)
    conns = [sp.Req(w.url) for _ in range(3)]
    try:
        for i, c in enumerate(conns[:2]):
            c.send_raw(msgpack.packb(run_msg("slow%d" % i, {"m.sh": "echo started; sleep 100"})))
        # ping answers while every slot is busy: it says so (busy 2), which
        # it could not if it waited for a slot (the runs sleep 100 s)
        p = wait_busy(w, 2)
        assert p["busy"] == 2, p
        third = msgpack.unpackb(conns[2].call_raw(msgpack.packb(run_msg("third", {"m.sh": "echo x"}))), raw=False)
        assert third["ok"] is False and third["error"]["code"] == "busy"
        # the refusal did not disturb the two runs: they run on until cancelled
        for i, c in enumerate(conns[:2]):
            assert cancel_when_running(w, "slow%d" % i)["cancelled"] is True
            _, body = c.recv_raw()
            rep = msgpack.unpackb(body, raw=False)
            assert rep["ok"] is False and rep["error"]["code"] == "cancelled", rep
        assert w.run({"m.sh": "echo again"})["run"]["stdout"] == b"again\n"
    finally:
        for c in conns:
            c.close()


def test_slots_plus_one_concurrent(worker_factory):
    slots = 3
    w = worker_factory("bash", slots=slots)
    results = [None] * (slots + 1)
    barrier = threading.Barrier(slots + 1)

    def go(i):
        with sp.Req(w.url) as r:
            barrier.wait()
            results[i] = r.call(run_msg("c%d" % i, {"m.sh": "sleep 3; echo ok%d" % i}))

    ts = [threading.Thread(target=go, args=(i,)) for i in range(slots + 1)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    busy = [r for r in results if not r["ok"]]
    served = [r for r in results if r["ok"]]
    assert len(busy) == 1 and busy[0]["error"]["code"] == "busy"
    assert len(served) == slots
    assert all(r["run"]["status"] == "ok" for r in served)


def wait_busy(w, n, **want):
    """Ping until the worker has n runs (and the fields in want): it may
    not have read the requests sent just before yet. Returns the ping."""
    deadline = time.monotonic() + 30
    while True:
        p = w.call({"v": 1, "op": "ping"})
        if (p["busy"] >= n and all(p.get(k) == v for k, v in want.items())) or \
                time.monotonic() > deadline:
            return p
        time.sleep(0.02)


def cancel_when_running(w, rid):
    """Cancel rid as soon as the worker has it (it may not have read the
    request yet): the first answer that cancelled something, or the last."""
    deadline = time.monotonic() + 30
    while True:
        c = w.call({"v": 1, "op": "cancel", "id": rid})
        if c.get("cancelled") or time.monotonic() > deadline:
            return c
        time.sleep(0.05)


def test_cancel_stops_the_run(worker_factory, tmp_path):
    w = worker_factory("bash", slots=2)
    with sp.Req(w.url) as r:
        r.send_raw(msgpack.packb(run_msg("victim", {
            "m.sh": "echo started; (sleep 100 & echo $! > /dev/null; wait) & sleep 100"})))
        c = cancel_when_running(w, "victim")
        assert c["ok"] is True and c["cancelled"] is True
        _, body = r.recv_raw()
    # (the run sleeps 100 s: a reply at all, and this one, is the cancel)
    rep = msgpack.unpackb(body, raw=False)
    assert rep["ok"] is False and rep["error"]["code"] == "cancelled"
    assert rep["id"] == "victim"
    # an unknown id: nothing to cancel
    c = w.call({"v": 1, "op": "cancel", "id": "nobody"})
    assert c["ok"] is True and c["cancelled"] is False
    assert w.call({"v": 1, "op": "ping"})["busy"] == 0
    r2 = w.run({"m.sh": "echo after"})
    assert r2["run"]["stdout"] == b"after\n"


def test_duplicate_running_id_refused(worker_factory):
    w = worker_factory("bash", slots=2)
    with sp.Req(w.url) as r:
        r.send_raw(msgpack.packb(run_msg("twice", {"m.sh": "sleep 3; echo first"})))
        assert wait_busy(w, 1)["busy"] == 1
        d = w.run({"m.sh": "echo second"}, id="twice")
        assert d["ok"] is False and d["error"]["code"] == "bad_request"
        assert "already running" in d["error"]["message"]
        _, body = r.recv_raw()
    assert msgpack.unpackb(body, raw=False)["run"]["stdout"] == b"first\n"
    # once it is over, the id may be used again
    assert w.run({"m.sh": "echo again"}, id="twice")["run"]["stdout"] == b"again\n"


def test_sigterm_drains_running_work(worker_factory):
    w = worker_factory("bash", slots=2)
    with sp.Req(w.url) as r:
        r.send_raw(msgpack.packb(run_msg("drain1", {"m.sh": "sleep 3; echo finished"})))
        assert wait_busy(w, 1)["busy"] == 1
        w.proc.send_signal(signal.SIGTERM)
        # still up and answering, but refusing new runs
        p = wait_busy(w, 1, draining=True)
        assert p["draining"] is True
        n = w.run({"m.sh": "echo new"})
        assert n["ok"] is False and n["error"]["code"] == "busy"
        assert "draining" in n["error"]["message"]
        _, body = r.recv_raw()
    rep = msgpack.unpackb(body, raw=False)
    assert rep["ok"] is True and rep["run"]["stdout"] == b"finished\n"
    assert w.proc.wait(10) == 0
    assert "stopped" in w.log()


def test_drain_deadline_cancels(worker_factory):
    w = worker_factory("bash", slots=1, args=["--drain-ms", "300"])
    with sp.Req(w.url) as r:
        r.send_raw(msgpack.packb(run_msg("long", {"m.sh": "sleep 30"})))
        assert wait_busy(w, 1)["busy"] == 1
        w.proc.send_signal(signal.SIGTERM)
        _, body = r.recv_raw()
    rep = msgpack.unpackb(body, raw=False)
    assert rep["ok"] is False and rep["error"]["code"] == "cancelled"
    assert w.proc.wait(10) == 0


def test_ipc_listener(worker_factory, tmp_path):
    path = str(tmp_path / "w.sock")
    w = worker_factory("bash", slots=1, args=["--listen", "ipc://" + path])
    r = sp.call("ipc://" + path, {"v": 1, "op": "ping"})
    assert r["ok"] is True
    rr = sp.call("ipc://" + path, run_msg("i1", {"m.sh": "echo via-ipc"}))
    assert rr["run"]["stdout"] == b"via-ipc\n"


def test_ipc_permissions(worker_factory, tmp_path):
    path = str(tmp_path / "p.sock")
    worker_factory("bash", slots=1, args=["--listen", "ipc://" + path, "--ipc-permissions", "0660"])
    assert os.stat(path).st_mode & 0o777 == 0o660


@pytest.fixture
def reachable_tmp():
    """A temp dir the slot uids can traverse (pytest's tmp_path is 0700)."""
    import pathlib
    import shutil
    import tempfile
    d = pathlib.Path(tempfile.mkdtemp(prefix="corral-test."))
    d.chmod(0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_state_dir_is_emptied_not_replaced(worker_factory, reachable_tmp):
    state = reachable_tmp / "state"
    state.mkdir()
    (state / "stale.txt").write_text("from a previous life")
    ino = state.stat().st_ino
    w = worker_factory("bash", slots=1, args=["--state-dir", str(state)])
    assert not (state / "stale.txt").exists()
    assert state.stat().st_ino == ino  # the same folder (it may be a mount point)
    assert w.run({"m.sh": "echo ok"})["run"]["stdout"] == b"ok\n"
    w.stop()
    assert not state.exists() or list(state.iterdir()) == []


def test_dead_workers_default_state_dir_removed(worker_factory, reachable_tmp):
    tmpdir = reachable_tmp

    def default_dir(w):
        dirs = list(tmpdir.glob("corral.%d.*" % w.proc.pid))
        assert len(dirs) == 1, dirs
        return dirs[0]

    w1 = worker_factory("bash", slots=1, env={"TMPDIR": str(tmpdir)})
    dead = default_dir(w1)
    assert dead.is_dir()
    w1.proc.kill()
    w1.proc.wait()
    assert dead.is_dir()  # SIGKILL: nothing cleaned
    w2 = worker_factory("bash", slots=1, env={"TMPDIR": str(tmpdir)})
    assert not dead.exists()
    assert default_dir(w2).is_dir()


def test_default_state_dir_is_new_and_private(worker_factory, reachable_tmp):
    """The default state dir has an unguessable name (mkdtemp): a folder
    another user made at the worker's old predictable name is not used."""
    import pathlib
    planted = reachable_tmp / "planted"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    w = worker_factory("bash", slots=1, env={"TMPDIR": str(reachable_tmp)})
    d = [p for p in reachable_tmp.iterdir() if p.name.startswith("corral.%d" % w.proc.pid)]
    assert len(d) == 1 and d[0].name != "corral.%d" % w.proc.pid
    st = d[0].lstat()
    assert pathlib.Path(d[0]).is_dir() and not d[0].is_symlink()
    assert st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o711
    assert w.run({"m.sh": "echo ok"})["run"]["stdout"] == b"ok\n"
    assert list(planted.iterdir()) == []


def _refused_state_dir(tmp, state):
    import subprocess
    from conftest import BUILD, RUNTIMES
    p = subprocess.run([str(BUILD / "corral-processor"), "--runtime-dir", str(RUNTIMES / "bash"),
                        "--listen", "ipc://%s/w.sock" % tmp, "--slots", "1",
                        "--state-dir", str(state)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p.stderr
    assert "cannot use the state dir" in p.stderr
    return p.stderr


@pytest.mark.parametrize("kind", ["other_uid", "symlink", "mode_0777", "file"])
def test_unsafe_state_dir_refused(reachable_tmp, kind):
    """An existing --state-dir (or CORRAL_STATE_DIR) that another user could
    have made or can write is refused, and nothing in it is touched."""
    target = reachable_tmp / "victim"
    target.mkdir()
    (target / "keep.txt").write_text("not the worker's")
    state = reachable_tmp / "state"
    if kind == "other_uid":
        if os.geteuid() != 0:
            pytest.skip("needs root to make a folder of another uid")
        state.mkdir(mode=0o700)
        os.chown(state, 65534, 65534)
        (state / "keep.txt").write_text("not the worker's")
        why = "owned by uid 65534"
    elif kind == "symlink":
        state.symlink_to(target)
        why = "symlink"
    elif kind == "mode_0777":
        state.mkdir()
        state.chmod(0o777)
        (state / "keep.txt").write_text("not the worker's")
        why = "writable by group or others (mode 0777)"
    else:
        state.write_text("a file")
        why = "not a folder"
    err = _refused_state_dir(reachable_tmp, state)
    assert why in err
    assert (target / "keep.txt").exists()
    if state.is_dir() and not state.is_symlink():
        assert (state / "keep.txt").exists()
        assert not (state / "work").exists()


def test_one_log_line_per_invocation(worker_factory):
    w = worker_factory("bash", slots=1)
    w.run({"m.sh": "exit 4"}, id="logged-1")
    deadline = time.monotonic() + 10  # the line may follow the reply
    while True:
        lines = [l for l in w.log().splitlines() if "id=logged-1" in l]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(lines) == 1
    line = lines[0]
    for kv in ("msg=invocation", "runtime=bash", "status=exit", "exit_code=4", "wall_ms="):
        assert kv in line


def test_bad_flags_fail_clearly(tmp_path):
    import subprocess
    from conftest import BUILD, RUNTIMES
    p = subprocess.run([str(BUILD / "corral-processor"), "--slots", "zero",
                        "--runtime-dir", str(RUNTIMES / "bash")], capture_output=True, text=True)
    assert p.returncode == 2 and "--slots" in p.stderr
    p = subprocess.run([str(BUILD / "corral-processor")], capture_output=True, text=True)
    assert p.returncode == 2 and "--runtime-dir" in p.stderr
    p = subprocess.run([str(BUILD / "corral-processor"), "--runtime-dir", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "runtime.sh" in p.stderr
    p = subprocess.run([str(BUILD / "corral-processor"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    for flag in ("--listen", "--slots", "--limits", "--max-limits", "--notify-fd", "--drain-ms",
                 "CORRAL_LISTEN"):
        assert flag in p.stdout


def _slot_work_dirs(w):
    import glob
    # the worker's default state dir: made by mkdtemp, corral.<pid>.XXXXXX
    (state,) = glob.glob("%s/corral.%d.*" % (os.environ.get("TMPDIR", "/tmp"), w.proc.pid))
    root = os.path.join(state, "work")
    for slot in os.listdir(root):
        for d in os.listdir(os.path.join(root, slot)):
            yield os.path.join(root, slot, d)


def _poison_a_slot(w):
    """Runs a program that makes folder m in its work dir and waits; mounts
    a tmpfs on m from the host (a mount point the cleanup must neither
    enter nor remove), lets the run end: the mount point and the slot the
    run was on."""
    box = {}
    t = threading.Thread(target=lambda: box.update(r=w.run(
        {"main.sh": "mkdir m; while [ ! -e go ]; do sleep 0.05; done; echo done"},
        id="stuck", limits={"wall_ms": 20000})))
    t.start()
    m = None
    deadline = time.time() + 10
    while m is None and time.time() < deadline:
        m = next((d + "/m" for d in _slot_work_dirs(w) if os.path.isdir(d + "/m")), None)
        time.sleep(0.05)
    assert m, "the run's work dir never showed up"
    assert os.system("mount -t tmpfs -o size=64k corral-test %s" % m) == 0
    try:
        open(os.path.join(os.path.dirname(m), "go"), "w").close()
        t.join(30)
        assert box["r"]["ok"] is True and box["r"]["run"]["stdout"] == b"done\n", box
        deadline = time.time() + 10
        while w.call({"v": 1, "op": "ping"})["out_of_service"] == 0 and time.time() < deadline:
            time.sleep(0.05)
    except BaseException:
        os.system("umount -l %s" % m)
        raise
    return m, int(box["r"]["worker"].rsplit("/", 1)[1])


def _back_in_service(w, bad):
    deadline = time.time() + 15
    while w.call({"v": 1, "op": "ping"})["out_of_service"] and time.time() < deadline:
        time.sleep(0.1)
    p = w.call({"v": 1, "op": "ping"})
    assert p["out_of_service"] == 0 and p["health"] == "ok", p
    assert w.call({"v": 1, "op": "info"})["out_of_service"] == []
    assert 'msg="slot back in service" slot=%d' % bad in w.log()
    assert list(_slot_work_dirs(w)) == []
    for k in range(4):
        r = w.run({"main.sh": "echo ok"}, id="back-%d" % k)
        assert r["ok"] is True and r["run"]["stdout"] == b"ok\n", r


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount inside a work dir")
def test_slot_that_cannot_be_cleaned_leaves_service(worker_factory):
    """A slot whose work dir cannot be removed goes out of service (info,
    ping, a warn line), runs go to the other slot; once the cause is gone
    the slot's retry cleans it and it serves again."""
    w = worker_factory("bash", slots=2)
    m, bad = _poison_a_slot(w)
    try:
        p = w.call({"v": 1, "op": "ping"})
        assert p["ok"] is True and p["out_of_service"] == 1 and p["health"] == "degraded", p
        i = w.call({"v": 1, "op": "info"})
        assert [o["slot"] for o in i["out_of_service"]] == [bad], i
        assert "Device or resource busy" in i["out_of_service"][0]["error"], i
        assert [l for l in w.log().splitlines() if "level=warn" in l and
                'msg="slot out of service" slot=%d error=' % bad in l], w.log()
        # every run goes to the other slot, and succeeds
        for k in range(4):
            r = w.run({"main.sh": "ls -A; echo ok"}, id="after-%d" % k)
            assert r["ok"] is True and r["run"]["stdout"] == b"main.sh\nok\n", r
            assert r["worker"].endswith("/%d" % (1 - bad)), r
        # with the one usable slot taken, the next run is refused as busy, saying why
        hold = threading.Thread(target=lambda: w.run({"main.sh": "sleep 2"}, id="hold"))
        hold.start()
        while w.call({"v": 1, "op": "ping"})["busy"] == 0:
            time.sleep(0.02)
        r = w.run({"main.sh": "echo no"}, id="refused")
        hold.join()
        assert r["ok"] is False and r["error"]["code"] == "busy", r
        assert "out of service" in r["error"]["message"], r
    finally:
        os.system("umount -l %s" % m)
    _back_in_service(w, bad)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount inside a work dir")
def test_no_slot_left_is_unhealthy(worker_factory):
    w = worker_factory("bash", slots=1)
    m, bad = _poison_a_slot(w)
    try:
        p = w.call({"v": 1, "op": "ping"})
        assert p["out_of_service"] == 1 and p["health"] == "unhealthy", p
        r = w.run({"main.sh": "echo no"}, id="refused")
        assert r["ok"] is False and r["error"]["code"] == "busy", r
        assert "1 of 1 are out of service" in r["error"]["message"], r
    finally:
        os.system("umount -l %s" % m)
    _back_in_service(w, bad)


def test_isolation_says_how_limits_are_enforced(bash):
    """`info`'s isolation string ends with how memory_bytes and pids are
    enforced; a root worker here has both cgroups."""
    iso = bash.call({"v": 1, "op": "info"})["isolation"]
    if os.geteuid() == 0 and os.path.isdir("/sys/fs/cgroup/memory"):
        assert iso.split(" [")[0].endswith(" memory=cgroup pids=cgroup"), iso
    assert " memory=" in iso and " pids=" in iso, iso


def test_isolation_nonroot_limits(tmp_path):
    """A worker that is not root (uid 65534) and has no cgroup of its own:
    at level namespaces it enforces memory_bytes (RLIMIT_DATA, shared
    memory refused, size-capped tmpfs) and pids (RLIMIT_NPROC of the
    run's user namespace); at level seccomp it can enforce neither, so a
    run that sets them is refused (bad_request naming the limit and why)
    unless the operator accepts them unenforced (--unenforced-limits)."""
    import shutil
    from conftest import Worker
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to start a worker as uid 65534")
    try:
        w = Worker("bash", slots=1, env={"CORRAL_ISOLATION": "namespaces"}, tmp=str(tmp_path),
                   as_uid=65534)
    except RuntimeError as e:
        pytest.skip("level namespaces is not available as uid 65534 here: %s" % e)
    try:
        iso = w.call({"v": 1, "op": "info"})["isolation"]
        if "pids=none" in iso:
            pytest.skip("this kernel counts RLIMIT_NPROC per uid, not per user namespace: " + iso)
        assert " memory=rlimit(data,stack)+no-shared-anon+tmpfs(/tmp,/dev/shm) " \
               "pids=rlimit(nproc,userns)" in iso, iso
        r = w.run({"main.sh": "echo hi"}, limits={"memory_bytes": 64 << 20, "pids": 8})
        assert r["ok"] and r["run"]["status"] == "ok" and r["run"]["stdout"] == b"hi\n", r
    finally:
        w.stop()
    w = Worker("bash", slots=1, env={"CORRAL_ISOLATION": "seccomp"}, tmp=str(tmp_path),
               as_uid=65534)
    try:
        iso = w.call({"v": 1, "op": "info"})["isolation"]
        assert "memory=rlimit(data,stack):private-only(runs-refused) pids=none(runs-refused)" \
            in iso, iso
        r = w.run({"main.sh": "echo hi"})  # the worker's default limits set both
        assert r["ok"] is False and r["error"]["code"] == "bad_request", r
        msg = r["error"]["message"]
        assert msg.startswith("limits.memory_bytes cannot be enforced") and \
            "--unenforced-limits memory" in msg, msg
        assert w.call({"v": 1, "op": "ping"})["ok"] is True
    finally:
        w.stop()
    w = Worker("bash", slots=1, tmp=str(tmp_path), as_uid=65534,
               env={"CORRAL_ISOLATION": "seccomp", "CORRAL_UNENFORCED_LIMITS": "memory"})
    try:
        r = w.run({"main.sh": "echo hi"})
        assert r["ok"] is False and r["error"]["code"] == "bad_request" and \
            r["error"]["message"].startswith("limits.pids cannot be enforced by this worker "
                                             "(isolation level seccomp, uid 65534): no pids cgroup"), r
    finally:
        w.stop()
    w = Worker("bash", slots=1, tmp=str(tmp_path), as_uid=65534,
               env={"CORRAL_ISOLATION": "seccomp", "CORRAL_UNENFORCED_LIMITS": "memory,pids"})
    try:
        iso = w.call({"v": 1, "op": "info"})["isolation"]
        assert "memory=rlimit(data,stack):private-only(accepted) pids=none(accepted)" in iso, iso
        r = w.run({"main.sh": "echo hi"})
        assert r["ok"] and r["run"]["stdout"] == b"hi\n", r
    finally:
        w.stop()


def test_unenforced_limits_flag_checked(tmp_path):
    import subprocess
    from conftest import BUILD, RUNTIMES
    p = subprocess.run([str(BUILD / "corral-processor"), "--runtime-dir", str(RUNTIMES / "bash"),
                        "--unenforced-limits", "memory,cpu"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and "--unenforced-limits" in p.stderr and \
        "expected memory, pids or memory,pids" in p.stderr, p
