"""Every limit of a run, enforced and reported, through the real processor.
The hostile-code suite (tests/hostile/) goes further on isolation."""
import os
import time
import uuid

import pytest


def procs_with(marker):
    """PIDs on the host whose command line contains marker."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture(scope="module")
def bash(module_workers):
    return module_workers("bash", slots=2)


@pytest.fixture(scope="module")
def python(module_workers):
    return module_workers("python", slots=2)


def healthy(w):
    assert w.alive()
    r = w.run({"m": "echo still-fine"} if w.runtime == "bash" else {"m.py": "print('still-fine')"})
    assert r["ok"] and r["run"]["stdout"] == b"still-fine\n", r


def test_wall_timeout_keeps_earlier_output(bash):
    r = bash.run({"m.sh": "echo before; sleep 30; echo after"}, limits={"wall_ms": 500})
    run = r["run"]
    assert run["status"] == "timeout", run
    assert run["stdout"] == b"before\n"
    # not before its limit; killed, not waited for (the sleep is 30 s)
    assert 400 <= run["wall_ms"] < 30000
    healthy(bash)


def test_cpu_limit_busy_loop(python):
    r = python.run({"m.py": "while True: pass"}, limits={"cpu_ms": 500, "wall_ms": 20000})
    run = r["run"]
    assert run["status"] == "timeout", run
    assert run["cpu_ms"] >= 400
    assert run["wall_ms"] < 20000  # the CPU limit ended it, not the wall limit
    healthy(python)


def test_memory_hog(python):
    code = "x = bytearray(400 * 1024 * 1024)\nprint('survived')\n"
    r = python.run({"m.py": code}, limits={"memory_bytes": 64 << 20})
    run = r["run"]
    assert run["status"] == "memory", run
    assert b"survived" not in run["stdout"]
    healthy(python)


def test_memory_within_limit_is_measured(python):
    code = "x = bytearray(60 * 1024 * 1024)\nprint(len(x))\n"
    r = python.run({"m.py": code}, limits={"memory_bytes": 256 << 20})
    run = r["run"]
    assert run["status"] == "ok", run
    assert run["memory_bytes"] >= 60 << 20


def test_fork_bomb_contained(bash):
    marker = "bomb" + uuid.uuid4().hex[:8]
    code = ": %s; f() { f | f & }; f; sleep 5" % marker
    r = bash.run({"m.sh": code}, limits={"pids": 32, "wall_ms": 2000})
    assert r["ok"], r
    assert r["run"]["status"] in ("timeout", "exit", "ok", "signal")
    deadline = time.monotonic() + 10  # killed; the kernel may still be reaping
    while procs_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert procs_with(marker) == []
    healthy(bash)


def test_output_flood_stdout(bash):
    r = bash.run({"m.sh": "head -c 10000000 /dev/zero | tr '\\0' 'a'; echo never-here >&2"},
                 limits={"output_bytes": 65536})
    run = r["run"]
    assert run["status"] == "output", {k: v for k, v in run.items() if k not in ("stdout", "stderr")}
    assert run["stdout_truncated"] is True
    assert run["stdout"] == b"a" * 65536
    healthy(bash)


def test_output_flood_stderr_endless(bash):
    r = bash.run({"m.sh": "echo first >&2; while :; do echo spam >&2; done"},
                 limits={"output_bytes": 1000, "wall_ms": 30000})
    run = r["run"]
    assert run["status"] == "output"  # the output limit ended it, not the wall limit
    assert run["stderr_truncated"] is True and run["stdout_truncated"] is False
    assert run["stderr"].startswith(b"first\nspam\n") and len(run["stderr"]) == 1000
    healthy(bash)


def test_double_fork_daemon_is_gone_after_reply(bash):
    marker = "%d.%s" % (4000, uuid.uuid4().int % 10**6)  # a unique sleep argument
    code = "( setsid sh -c 'sleep %s' >/dev/null 2>&1 & ) ; echo spawned" % marker
    r = bash.run({"m.sh": code})
    assert r["run"]["status"] == "ok" and r["run"]["stdout"] == b"spawned\n"
    assert procs_with("sleep\0" + marker) == []


def test_daemon_holding_stdout_does_not_hang_the_reply(bash):
    marker = "%d.%s" % (4001, uuid.uuid4().int % 10**6)
    code = "( setsid sleep %s & ) ; echo done" % marker
    r = bash.run({"m.sh": code}, limits={"wall_ms": 30000})
    # the reply came when the program ended, not when the daemon (4001 s)
    # or the wall limit (30 s) would have: it is ok, not timeout
    assert r["run"]["status"] == "ok" and r["run"]["stdout"] == b"done\n", r["run"]
    assert r["run"]["wall_ms"] < 30000
    assert procs_with("sleep\0" + marker) == []


def test_file_size_limit(bash):
    r = bash.run({"m.sh": "head -c 2000000 /dev/zero > big; echo rc=$?; stat -c %s big"},
                 limits={"file_bytes": 100000})
    out = r["run"]["stdout"]
    assert b"rc=0" not in out
    assert out.strip().endswith(b"100000")


def test_stdin_larger_than_a_pipe_is_delivered(bash):
    data = bytes(range(256)) * 4096  # 1 MiB
    r = bash.run({"m.sh": "wc -c"}, stdin=data)
    assert r["run"]["stdout"].strip() == b"1048576"


def test_program_ignoring_stdin(bash):
    r = bash.run({"m.sh": "echo ignored"}, stdin=b"x" * (4 << 20))
    assert r["run"]["status"] == "ok" and r["run"]["stdout"] == b"ignored\n"
