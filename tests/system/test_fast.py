"""The fast paths (issue 6) through a real worker: prewarmed one-shot
sandboxes (`--prewarm on`, docs/runtimes.md "warm").

Every test case of every runtime that has a warm entry (warm.sh) runs
again on a prewarm worker and must give exactly what the cold path gives;
then what prewarm must never change: one process per invocation (no state
of one run reaches the next), limits and usage of the invocation alone,
a runtime without warm.sh or a broken one still served (cold), and the
switch itself. Nothing here is timed: bench/ measures.
"""
import os
import pathlib
import time

import pytest

import test_runtimes as tr

RUNTIMES = tr.RUNTIMES
WARM = [rt for rt in tr.runtime_names() if (RUNTIMES / rt / "warm.sh").exists()]


def warm_cases():
    return [(rt, p) for rt, p in tr.all_cases() if rt in WARM]


@pytest.fixture(scope="module")
def warm_worker(module_workers):
    def get(rt, slots=2):
        tr.require_installed(rt)
        return module_workers(rt, slots=slots, args=("--prewarm", "on"))
    return get


def used_warm(w):
    """The worker took its runs from prewarmed sandboxes (the ready line
    says prewarm is in force, and no sandbox was found unusable)."""
    log = w.log()
    return "accel=prewarm" in log and "unusable" not in log


@pytest.mark.parametrize("rt", WARM)
def test_warm_entry_files(rt):
    """warm.sh follows the contract: executable, with a #! line."""
    p = RUNTIMES / rt / "warm.sh"
    assert os.access(p, os.X_OK), "%s is not executable" % p
    assert p.read_bytes().startswith(b"#!"), "%s has no #! line" % p
    assert not (RUNTIMES / rt / "compile.sh").exists(), "warm is for runtimes without compile.sh"


@pytest.mark.parametrize("rt,path", warm_cases(),
                         ids=["%s/%s" % (rt, p.name) for rt, p in warm_cases()])
def test_case_prewarmed(rt, path, warm_worker):
    w = warm_worker(rt)
    case = tr.Case(rt, path)
    reply = w.call(case.request())
    tr.check_reply(case, reply, False)
    assert used_warm(w), w.log()


PROBE = {
    # prints its pid and a counter kept in the interpreter; bumps it
    "python": ("main.py", "import os, builtins\n"
                          "n = getattr(builtins, 'corral_n', 0)\n"
                          "builtins.corral_n = n + 1\n"
                          "open('/tmp/left', 'a').write('x')\n"
                          "print(os.getpid(), n, os.path.getsize('/tmp/left'))\n"),
    "node": ("main.js", "const fs = require('fs');\n"
                        "const n = globalThis.corralN || 0; globalThis.corralN = n + 1;\n"
                        "fs.appendFileSync('/tmp/left', 'x');\n"
                        "console.log(process.pid, n, fs.statSync('/tmp/left').size);\n"),
    "ruby": ("main.rb", "n = $corral_n || 0\n$corral_n = n + 1\n"
                        "File.write('/tmp/left', 'x', mode: 'a')\n"
                        "puts [Process.pid, n, File.size('/tmp/left')].join(' ')\n"),
    "php": ("main.php", "<?php\n$n = getenv('CORRAL_N') ?: 0; putenv('CORRAL_N=' . ($n + 1));\n"
                        "file_put_contents('/tmp/left', 'x', FILE_APPEND);\n"
                        "clearstatcache();\n"
                        "echo getmypid(), ' ', $n, ' ', filesize('/tmp/left'), \"\\n\";\n"),
}


@pytest.mark.parametrize("rt", WARM)
def test_one_process_per_invocation(rt, warm_worker):
    """A warm process serves one invocation: nothing the program set in
    its interpreter, and no file it left in /tmp, is there for the next
    run on the same slot (one slot: every run on it)."""
    w = warm_worker(rt, slots=1)
    name, code = PROBE[rt]
    seen = set()
    for i in range(4):
        r = w.run({name: code.encode()}, id="probe-%s-%d" % (rt, i))
        assert r["ok"] and r["run"]["status"] == "ok", r
        pid, n, size = r["run"]["stdout"].split()
        assert n == b"0", "interpreter state survived a run: %r" % r["run"]["stdout"]
        if w.call({"v": 1, "op": "info"})["isolation"].split(":")[0] in ("namespaces", "full"):
            assert size == b"1", "/tmp survived a run: %r" % r["run"]["stdout"]
        seen.add(pid)
    assert used_warm(w), w.log()


def test_limits_are_the_invocations(warm_worker, module_workers):
    """The warm process started under the worker's largest limits; the
    invocation's own replace them (memory, CPU, output) and its usage does
    not count the warm start (side by side with a cold worker, a one-line
    program's run costs well under half the CPU)."""
    w = warm_worker("python")
    hog = b"x = bytearray(200 * 1024 * 1024)\nprint(len(x))\n"
    r = w.run({"main.py": hog}, limits={"memory_bytes": 64 << 20})
    assert r["ok"] and r["run"]["status"] == "memory", r["run"]
    spin = b"while True:\n    pass\n"
    r = w.run({"main.py": spin}, limits={"cpu_ms": 300, "wall_ms": 30000})
    assert r["ok"] and r["run"]["status"] == "timeout", r["run"]
    # the CPU limit ended it, not the wall limit
    assert r["run"]["cpu_ms"] >= 250 and r["run"]["wall_ms"] < 30000, r["run"]
    r = w.run({"main.py": b"print('y' * 100000)\n"}, limits={"output_bytes": 1000})
    assert r["ok"] and r["run"]["status"] == "output", r["run"]
    r = w.run({"main.py": b"print('OK')\n"})
    assert r["ok"] and r["run"]["status"] == "ok" and r["run"]["stdout"] == b"OK\n", r
    from conftest import median_cpu_ms
    warm, cold = median_cpu_ms([w, module_workers("python", slots=2)], {"main.py": b"print('OK')\n"})
    assert warm * 2 < cold, "warm %d ms, cold %d ms: the warm start was charged" % (warm, cold)
    assert used_warm(w), w.log()


def test_env_and_stdin_are_the_invocations(warm_worker):
    w = warm_worker("python")
    code = (b"import os, sys\n"
            b"print(os.environ.get('GREETING'), os.environ['CORRAL_ENTRY'], "
            b"os.environ['HOME'] == os.getcwd(), sys.stdin.read())\n")
    r = w.run({"main.py": code}, env={"GREETING": "hi there"}, stdin=b"from stdin")
    assert r["ok"] and r["run"]["stdout"] == b"hi there main.py True from stdin\n", r


def test_cancel_a_prewarmed_run(warm_worker):
    w = warm_worker("python")
    import threading
    box = {}
    t = threading.Thread(target=lambda: box.update(r=w.run(
        {"main.py": b"import time\ntime.sleep(30)\n"}, id="cancel-me")))
    t.start()
    deadline = time.time() + 10
    while time.time() < deadline:
        if w.call({"v": 1, "op": "cancel", "id": "cancel-me"}).get("cancelled"):
            break
        time.sleep(0.05)
    t.join(20)
    assert not t.is_alive()
    assert box["r"]["ok"] is False and box["r"]["error"]["code"] == "cancelled", box["r"]
    r = w.run({"main.py": b"print('after')\n"})
    assert r["ok"] and r["run"]["stdout"] == b"after\n", r


def test_runtime_without_warm_entry_runs_cold(worker_factory):
    """--prewarm on for a runtime without warm.sh: served cold, and said so."""
    tr.require_installed("bash")
    w = worker_factory("bash", args=("--prewarm", "on"))
    r = w.run({"main.sh": b"echo OK\n"})
    assert r["ok"] and r["run"]["stdout"] == b"OK\n", r
    assert "has no warm.sh" in w.log()


def test_broken_warm_entry_falls_back_to_cold(worker_factory, tmp_path):
    """A warm.sh that dies is discarded: every invocation is still served
    (cold), and after three failures in a row the slot stops trying."""
    tr.require_installed("python")
    rt = tmp_path / "python"
    rt.mkdir()
    for f in ("runtime.conf", "runtime.sh"):
        (rt / f).write_bytes((RUNTIMES / "python" / f).read_bytes())
    (rt / "runtime.sh").chmod(0o755)
    (rt / "warm.sh").write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    (rt / "warm.sh").chmod(0o755)
    os.chmod(tmp_path, 0o755)
    w = worker_factory("python", slots=1, args=("--prewarm", "on", "--runtime-dir", str(rt)))
    for i in range(5):
        r = w.run({"main.py": b"print('cold', %d)\n" % i})
        assert r["ok"] and r["run"]["stdout"] == b"cold %d\n" % i, r
    log = w.log()
    assert "running cold" in log and "prewarm stops on this slot" in log, log


def test_prewarm_flag_is_checked(tmp_path):
    import subprocess
    p = subprocess.run([str(tr.RUNTIMES.parent / "build" / "corral-processor")
                        if not os.environ.get("CORRAL_BUILD") else
                        str(pathlib.Path(os.environ["CORRAL_BUILD"]) / "corral-processor"),
                        "--runtime-dir", str(RUNTIMES / "python"), "--prewarm", "maybe"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--prewarm" in p.stderr and "on or off" in p.stderr, p
