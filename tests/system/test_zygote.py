"""The fork server (`--zygote on`, docs/runtimes.md "zygote") through a
real worker.

Every test case of every runtime that has a zygote.sh runs again on a
zygote worker and must give exactly what the cold path gives; then what
the zygote must never change: each run in its own sandbox (pid namespace
holding only the run, the slot's uid, no capabilities, seccomp,
no_new_privs, no network, fresh /tmp, no interpreter state from the run
before), limits and usage of the run alone, its whole tree killed at the
end, the server out of reach of the code it forks; then a dead server
(runs go cold), and the refusals of the switch. The run tests go twice:
zygote alone, and with --prewarm on too (the server's child waits in a
prewarmed sandbox for its handoff). Nothing is timed here: bench/
measures.
"""
import os
import pathlib
import signal
import subprocess
import threading
import time

import pytest

import test_runtimes as tr

RUNTIMES = tr.RUNTIMES
ZYGOTE = [rt for rt in tr.runtime_names() if (RUNTIMES / rt / "zygote.sh").exists()]
ON = ("--zygote", "on")
MODES = {"zygote": ON, "prewarm+zygote": ON + ("--prewarm", "on")}


def zygote_cases():
    return [(rt, p) for rt, p in tr.all_cases() if rt in ZYGOTE]


def processor():
    b = os.environ.get("CORRAL_BUILD")
    return str(pathlib.Path(b) / "corral-processor" if b else
               RUNTIMES.parent / "build" / "corral-processor")


def level(w):
    return w.call({"v": 1, "op": "info"})["isolation"].split(":")[0]


@pytest.fixture(scope="module", params=sorted(MODES))
def zworker(module_workers, request):
    def get(rt="python", slots=2):
        tr.require_installed(rt)
        w = module_workers(rt, slots=slots, args=MODES[request.param])
        if level(w) not in ("namespaces", "full"):
            pytest.skip("the zygote needs isolation namespaces or full")
        w.mode = request.param
        return w
    return get


def used_zygote(w):
    """The ready line says the mode, the server never died, and (prewarm)
    no prewarmed sandbox was found unusable."""
    log = w.log()
    return ("accel=%s " % getattr(w, "mode", "zygote") in log and
            "zygote server is gone" not in log and "unusable" not in log)


def server_pids(w):
    """The worker's zygote server(s): its children running zygote.py."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % d).read()
            cmd = open("/proc/%s/cmdline" % d, "rb").read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == w.proc.pid and b"zygote.py" in cmd:
            out.append(int(d))
    return out


@pytest.mark.parametrize("rt", ZYGOTE)
def test_zygote_entry_files(rt):
    p = RUNTIMES / rt / "zygote.sh"
    assert os.access(p, os.X_OK), "%s is not executable" % p
    assert p.read_bytes().startswith(b"#!"), "%s has no #! line" % p
    assert not (RUNTIMES / rt / "compile.sh").exists()


@pytest.mark.parametrize("rt,path", zygote_cases(),
                         ids=["%s/%s" % (rt, p.name) for rt, p in zygote_cases()])
def test_case_through_zygote(rt, path, zworker):
    w = zworker(rt)
    case = tr.Case(rt, path)
    reply = w.call(case.request())
    if path.name == "env_contract":
        return parent_not_visible(case, reply)
    tr.check_reply(case, reply, False)
    assert used_zygote(w), w.log()


def parent_not_visible(case, reply):
    """The one difference a program can see (docs/runtimes.md, "zygote"):
    its parent, the server's runner, is outside its pid namespace, so
    getppid() is 0 (a cold run's is the keeper, 1) and this case stops
    where it opens /proc/<ppid>; all it printed before is the cold run's."""
    run = reply["run"]
    assert reply["ok"] and run["exit_code"] == 1, reply
    assert b"No such file or directory: '/proc/0/comm'" in run["stderr"], run
    want = case.spec["expect"]["run"]["stdout"].split("wrapped=")[0].encode()
    assert run["stdout"] == want, run


PROBE = (b"import builtins, os\n"
         b"n = getattr(builtins, 'corral_n', 0)\n"
         b"builtins.corral_n = n + 1\n"
         b"open('/tmp/left', 'a').write('x')\n"
         b"st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines()"
         b" if ':\\t' in l)\n"
         b"pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
         b"print(n, os.path.getsize('/tmp/left'), os.getuid(), os.getgid(), pids,"
         b" st['Seccomp'], st['NoNewPrivs'], st['CapEff'], st['CapPrm'], st['CapBnd'],"
         b" os.getsid(0) == os.getpid())\n")


def test_each_run_in_its_own_sandbox(zworker):
    """Every run on one slot: no interpreter state or /tmp file of the run
    before, a pid namespace holding only the keeper and the run, the
    slot's uid, seccomp, no_new_privs, no capability, its own session."""
    w = zworker(slots=1)
    uids = set()
    for i in range(4):
        r = w.run({"main.py": PROBE}, id="zprobe-%d" % i)
        assert r["ok"] and r["run"]["status"] == "ok", r
        out = r["run"]["stdout"].decode()
        n, size, uid, gid, rest = out.split(" ", 4)
        assert n == "0", "interpreter state survived a run: %r" % out
        assert size == "1", "/tmp survived a run: %r" % out
        assert rest.startswith("[1, 2] 2 1 0000000000000000 0000000000000000 "
                               "0000000000000000 True"), out
        if os.geteuid() == 0:
            assert int(uid) >= 60000 and uid != "0" and gid != "0", out
        uids.add(uid)
    assert len(uids) == 1
    assert used_zygote(w), w.log()


def test_no_network(zworker):
    w = zworker()
    code = (b"import socket\n"
            b"s = socket.socket()\ns.settimeout(2)\n"
            b"try:\n    s.connect(('127.0.0.1', %d)); print('reached')\n"
            b"except OSError as e:\n    print('refused', e.errno)\n" % w.port)
    r = w.run({"main.py": code})
    assert r["ok"] and r["run"]["stdout"].startswith(b"refused"), r


def test_limits_and_usage_are_the_runs(zworker):
    """Memory, CPU and output limits hold; the interpreter start, paid once
    by the server, is not charged to the run."""
    w = zworker()
    r = w.run({"main.py": b"x = bytearray(200 * 1024 * 1024)\nprint(len(x))\n"},
              limits={"memory_bytes": 64 << 20})
    assert r["ok"] and r["run"]["status"] == "memory", r["run"]
    r = w.run({"main.py": b"while True:\n    pass\n"}, limits={"cpu_ms": 300, "wall_ms": 5000})
    assert r["ok"] and r["run"]["status"] == "timeout", r["run"]
    assert r["run"]["wall_ms"] < 4000, r["run"]
    r = w.run({"main.py": b"print('y' * 100000)\n"}, limits={"output_bytes": 1000})
    assert r["ok"] and r["run"]["status"] == "output", r["run"]
    r = w.run({"main.py": b"print('OK')\n"})
    assert r["ok"] and r["run"]["status"] == "ok" and r["run"]["stdout"] == b"OK\n", r
    assert r["run"]["cpu_ms"] < 15, "the interpreter start was charged: %r" % r["run"]
    assert used_zygote(w), w.log()


def test_exit_codes_and_errors(zworker):
    w = zworker()
    r = w.run({"main.py": b"import sys\nsys.exit(7)\n"})
    assert r["ok"] and r["run"]["exit_code"] == 7, r
    r = w.run({"main.py": b"raise ValueError('boom')\n"})
    assert r["ok"] and r["run"]["exit_code"] == 1, r
    assert b"ValueError: boom" in r["run"]["stderr"] and b"zygote" not in r["run"]["stderr"], r
    r = w.run({"main.py": b"import os\nos.kill(os.getpid(), 9)\n"})
    assert r["ok"] and r["run"]["status"] == "signal" and r["run"]["signal"] == "SIGKILL", r


def test_env_args_and_stdin_are_the_runs(zworker):
    w = zworker()
    code = (b"import os, sys\n"
            b"print(os.environ.get('GREETING'), os.environ['CORRAL_ENTRY'], sys.argv[1:], "
            b"os.environ['HOME'] == os.getcwd(), sys.stdin.read())\n")
    r = w.run({"main.py": code}, env={"GREETING": "hi there"}, args=["a", "b c"],
              stdin=b"from stdin")
    assert r["ok"], r
    assert r["run"]["stdout"] == b"hi there main.py ['a', 'b c'] True from stdin\n", r


def test_daemon_is_killed_with_the_run(zworker):
    """A double-forked, setsid'd child dies with the run: nothing of the
    slot's uid is left on the host (but, with prewarm, the slot's next
    sandbox waiting: the server's child, zygote.py; the daemon execs
    sleep), and the next run's pid namespace is empty but for itself."""
    w = zworker(slots=1)
    code = (b"import os\n"
            b"if os.fork() == 0:\n"
            b"    os.setsid()\n"
            b"    if os.fork() == 0:\n"
            b"        os.execvp('sleep', ['sleep', '60'])\n"
            b"    os._exit(0)\n"
            b"print(os.getuid())\n")
    r = w.run({"main.py": code})
    assert r["ok"] and r["run"]["status"] == "ok", r
    uid = int(r["run"]["stdout"])
    time.sleep(0.2)
    left = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and os.stat("/proc/" + d).st_uid == uid and uid != os.geteuid():
                cmd = open("/proc/%s/cmdline" % d, "rb").read()
                if not (w.mode == "prewarm+zygote" and b"zygote.py" in cmd):
                    left.append((d, cmd))
        except OSError:
            pass
    assert not left, "processes of uid %d outlived the run: %s" % (uid, left)
    r = w.run({"main.py": PROBE})
    assert b" [1, 2] " in r["run"]["stdout"], r


def test_server_out_of_reach(zworker):
    """The code a server forked cannot see or signal it: kill(-1) and a
    scan of /proc find nothing but the run, and the server still forks
    for the next runs."""
    w = zworker()
    before = server_pids(w)
    assert len(before) == 1, before
    code = (b"import os, signal\n"
            b"print(os.getppid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
            b"try:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n")
    r = w.run({"main.py": code})
    assert r["ok"], r
    assert r["run"]["stdout"].startswith(b"0 [1, 2]"), r
    r = w.run({"main.py": b"print('still')\n"})
    assert r["ok"] and r["run"]["stdout"] == b"still\n", r
    assert server_pids(w) == before
    assert used_zygote(w), w.log()


def test_cancel_a_zygote_run(zworker):
    w = zworker()
    box = {}
    t = threading.Thread(target=lambda: box.update(r=w.run(
        {"main.py": b"import time\ntime.sleep(30)\n"}, id="zcancel-me")))
    t.start()
    deadline = time.time() + 10
    while time.time() < deadline:
        if w.call({"v": 1, "op": "cancel", "id": "zcancel-me"}).get("cancelled"):
            break
        time.sleep(0.05)
    t.join(20)
    assert not t.is_alive()
    assert box["r"]["ok"] is False and box["r"]["error"]["code"] == "cancelled", box["r"]
    r = w.run({"main.py": b"print('after')\n"})
    assert r["ok"] and r["run"]["stdout"] == b"after\n", r


def test_dead_server_runs_cold(worker_factory):
    """The server killed from outside: logged once, every run still served
    (cold)."""
    tr.require_installed("python")
    w = worker_factory("python", slots=1, args=ON)
    if level(w) not in ("namespaces", "full"):
        pytest.skip("the zygote needs isolation namespaces or full")
    pids = server_pids(w)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    time.sleep(0.2)
    for i in range(3):
        r = w.run({"main.py": b"print('cold', %d)\n" % i})
        assert r["ok"] and r["run"]["stdout"] == b"cold %d\n" % i, r
    assert w.log().count("zygote server is gone") == 1, w.log()
    assert w.alive()


@pytest.mark.parametrize("args,says", [
    (("--zygote", "maybe"), "on or off"),
    (ON + ("--isolation", "seccomp"), "needs isolation level namespaces or full"),
    (ON + ("--isolation", "none", "--prewarm", "on"), "needs isolation level namespaces or full"),
])
def test_zygote_flag_is_checked(args, says, tmp_path):
    p = subprocess.run([processor(), "--runtime-dir", str(RUNTIMES / "python"),
                        "--listen", "ipc://%s/w" % tmp_path] + list(args),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and says in p.stderr, p


def test_runtime_without_zygote_refused(tmp_path):
    p = subprocess.run([processor(), "--runtime-dir", str(RUNTIMES / "bash"),
                        "--listen", "ipc://%s/w" % tmp_path] + list(ON),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "has no fork server" in p.stderr, p


def test_info_says_zygote(zworker):
    w = zworker()
    assert w.call({"v": 1, "op": "info"})["accel"] == w.mode


def test_unprivileged_worker():
    """Without root (namespaces through a user namespace) the server's
    child joins the keeper's user namespace first: a run is in its own
    pid namespace, seccomp'd, without capabilities or network."""
    import select
    import shutil
    import tempfile
    import sp
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to run the worker as another user")
    d = tempfile.mkdtemp(prefix="corral-zygote-nobody.")
    os.chmod(d, 0o777)
    rfd, wfd = os.pipe()
    log = open(os.path.join(d, "log"), "wb")
    proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             processor(), "--runtime-dir", str(RUNTIMES / "python"),
                             "--state-dir", d + "/state", "--isolation", "namespaces",
                             "--listen", "ipc://%s/w" % d, "--slots", "1",
                             "--notify-fd", str(wfd)] + list(ON),
                            pass_fds=(wfd,), stdout=log, stderr=log)
    os.close(wfd)
    try:
        ready = select.select([rfd], [], [], 20)[0] and os.read(rfd, 8)
        text = open(os.path.join(d, "log")).read()
        if not ready and "namespaces" in text and "--zygote" not in text:
            pytest.skip("level namespaces is not available without root here: " + text)
        assert ready == b"\n", text
        assert "accel=zygote" in text and "ns(pid,mnt,net,ipc,uts,user)" in text, text
        msg = {"v": 1, "op": "run", "id": "nobody", "files": [{"name": "main.py",
                                                                 "content": PROBE}]}
        for _ in range(2):
            r = sp.call("ipc://%s/w" % d, msg, 30)
            assert r["ok"] and r["run"]["status"] == "ok", r
            out = r["run"]["stdout"].decode()
            assert out.startswith("0 1 0 0 [1, 2] 2 1 0000000000000000 0000000000000000 "
                                  "0000000000000000 True"), out
    finally:
        os.close(rfd)
        proc.terminate()
        proc.wait(30)
        log.close()
        shutil.rmtree(d, ignore_errors=True)
