"""`corral` (cli/) end to end against real workers: what a maintainer
types. invoke passes the program's stdout and stderr through, exits with
its exit code (or the documented codes for other endings), sends stdin,
args, env, limits; bad usage and unreachable workers give clear errors.
Also the round-trip time of `corral invoke` (median of 100), which the
issue asks for: printed (run with -s), with a loose bound that only
catches a gross regression.
"""
import os
import signal
import statistics
import subprocess
import threading
import time

import pytest

from conftest import BUILD, free_port

CORRAL = str(BUILD / "corral")


def corral(*args, stdin=b"", cwd=None, timeout=60):
    return subprocess.run([CORRAL] + [str(a) for a in args], input=stdin, cwd=cwd,
                          capture_output=True, timeout=timeout)


@pytest.fixture(scope="module")
def py(module_workers):
    return module_workers("python")


@pytest.fixture(scope="module")
def sh(module_workers):
    return module_workers("bash")


def write(d, name, text):
    p = d / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def invoke(worker, *args, **kw):
    return corral("invoke", "--worker", worker.url, *args, **kw)


def test_stdout_and_stderr_pass_through_separately(sh, tmp_path):
    write(tmp_path, "both.sh", "echo out1; echo err1 >&2; printf 'out2'; printf 'é✓' >&2\n")
    r = invoke(sh, "both.sh", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"out1\nout2"
    assert r.stderr == "err1\né✓".encode()


def test_exit_status_is_the_programs(sh, py, tmp_path):
    write(tmp_path, "e.sh", "echo bye; exit 42\n")
    r = invoke(sh, "e.sh", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (42, b"bye\n")
    write(tmp_path, "e.py", "raise SystemExit(7)\n")
    assert invoke(py, "e.py", cwd=tmp_path).returncode == 7
    write(tmp_path, "x.py", "1/0\n")
    r = invoke(py, "x.py", cwd=tmp_path)
    assert r.returncode == 1 and b"ZeroDivisionError" in r.stderr


def test_killed_by_signal_is_128_plus_n(sh, tmp_path):
    write(tmp_path, "k.sh", "echo before; kill -SEGV $$\n")
    r = invoke(sh, "k.sh", cwd=tmp_path)
    assert r.returncode == 128 + signal.SIGSEGV, r.stderr
    assert r.stdout == b"before\n"
    assert b"SIGSEGV" in r.stderr


def test_stdin_from_a_file_and_from_our_stdin(py, tmp_path):
    write(tmp_path, "cat.py", "import sys\nsys.stdout.write(sys.stdin.read().upper())\n")
    write(tmp_path, "in.txt", "from a file\n")
    r = invoke(py, "--stdin", "in.txt", "cat.py", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, b"FROM A FILE\n")
    r = invoke(py, "--stdin", "-", "cat.py", stdin=b"piped in\n", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, b"PIPED IN\n")
    # no --stdin: the program sees EOF at once
    r = invoke(py, "cat.py", stdin=b"ignored", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, b"")


def test_args_and_env(py, tmp_path):
    write(tmp_path, "a.py", "import os, sys\nprint(sys.argv[1:])\nprint(os.environ.get('WHO'))\n")
    r = invoke(py, "--arg", "one", "--arg", "two words", "--arg", "--dash", "--arg", "",
               "--env", "WHO=corral=yes", "a.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"['one', 'two words', '--dash', '']\ncorral=yes\n"


def test_several_files_with_sub_folders_and_entry(py, tmp_path):
    write(tmp_path, "main.py", "from pkg.mod import f\nprint(f())\n")
    write(tmp_path, "pkg/mod.py", "def f():\n    return 'from pkg/mod.py'\n")
    r = invoke(py, "main.py", "pkg/mod.py", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, b"from pkg/mod.py\n"), r.stderr
    # --entry picks another file than the first; NAME=PATH renames
    r = invoke(py, "--entry", "main.py", "pkg/mod.py=%s" % (tmp_path / "pkg/mod.py"),
               str(tmp_path / "main.py"))
    assert (r.returncode, r.stdout) == (0, b"from pkg/mod.py\n"), r.stderr


def test_wall_limit_is_124(sh, tmp_path):
    write(tmp_path, "s.sh", "echo start; sleep 30; echo end\n")
    r = invoke(sh, "--limits", "wall_ms=300", "s.sh", cwd=tmp_path)
    assert r.returncode == 124, r.stderr  # killed at its limit (the sleep is 30 s)
    assert r.stdout == b"start\n"
    assert b"timeout" in r.stderr


def test_output_limit_is_126(py, tmp_path):
    write(tmp_path, "o.py", "import sys\nwhile True:\n    sys.stdout.write('x' * 4096)\n")
    r = invoke(py, "--limits", "output_bytes=10K,wall_ms=5000", "o.py", cwd=tmp_path)
    assert r.returncode == 126, r.stderr
    assert len(r.stdout) == 10 * 1024
    assert b"output" in r.stderr


def test_memory_limit_is_125(py, tmp_path):
    write(tmp_path, "m.py", "b = bytearray(400 * 1024 * 1024)\nb[::4096] = b'x' * len(b[::4096])\n")
    r = invoke(py, "--limits", "memory_bytes=64M", "m.py", cwd=tmp_path)
    assert r.returncode == 125, (r.returncode, r.stderr)


def test_bad_limits_are_refused(py, tmp_path):
    write(tmp_path, "h.py", "print('hi')\n")
    r = invoke(py, "--limits", "wall_ms=soon", "h.py", cwd=tmp_path)
    assert r.returncode == 2 and b"wall_ms" in r.stderr, r.stderr
    r = invoke(py, "--limits", "bogus=1", "h.py", cwd=tmp_path)
    assert r.returncode == 2 and b"bogus" in r.stderr, r.stderr
    # above the worker's maximum: refused by the worker, naming the limit
    r = invoke(py, "--limits", "wall_ms=999999999", "h.py", cwd=tmp_path)
    assert r.returncode == 2 and b"bad_request" in r.stderr and b"wall_ms" in r.stderr, r.stderr


def test_compile_error_is_1_and_nothing_runs(module_workers, tmp_path):
    c = module_workers("c")
    write(tmp_path, "bad.c", "int main(void) { return nope; }\n")
    r = invoke(c, "bad.c", cwd=tmp_path)
    assert r.returncode == 1
    assert b"nope" in r.stderr and b"error" in r.stderr
    assert r.stdout == b""
    write(tmp_path, "ok.c", '#include <stdio.h>\nint main(int c, char **v) { printf("%s\\n", v[1]); return 5; }\n')
    r = invoke(c, "--arg", "hey", "ok.c", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (5, b"hey\n"), r.stderr


def test_cancel_stops_a_running_invocation(sh, tmp_path):
    write(tmp_path, "long.sh", "echo started; sleep 30\n")
    holder = {}

    def run():
        holder["r"] = invoke(sh, "--id", "cli-cancel-1", "long.sh", cwd=tmp_path)
    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    c = corral("cancel", "--worker", sh.url, "cli-cancel-1")
    t.join(20)
    assert not t.is_alive()
    assert c.returncode == 0, c.stderr
    assert b"cancelled" in c.stdout and b"true" in c.stdout, c.stdout
    r = holder["r"]
    assert r.returncode == 3 and b"cancelled" in r.stderr, r.stderr


def test_ping_info_json(py, tmp_path):
    r = corral("ping", "--worker", py.url)
    assert r.returncode == 0 and b"slots" in r.stdout, r.stderr
    r = corral("info", "--worker", py.url)
    assert r.returncode == 0 and b"python" in r.stdout and b"limits" in r.stdout, r.stderr
    write(tmp_path, "h.py", "print('hi')\n")
    r = invoke(py, "--json", "h.py", cwd=tmp_path)
    assert r.returncode == 0 and b'"run"' in r.stdout and b'"status"' in r.stdout, r.stdout
    # CORRAL_WORKER stands for --worker
    r = subprocess.run([CORRAL, "invoke", "h.py"], cwd=tmp_path, capture_output=True,
                       env=dict(os.environ, CORRAL_WORKER=py.url), timeout=60)
    assert (r.returncode, r.stdout) == (0, b"hi\n"), r.stderr


def test_usage_errors_are_2(py, tmp_path):
    assert corral().returncode == 2
    r = corral("invoke", "x.py", cwd=tmp_path)  # no worker
    assert r.returncode == 2 and b"--worker" in r.stderr
    r = invoke(py, cwd=tmp_path)  # no file
    assert r.returncode == 2 and b"FILE" in r.stderr
    r = invoke(py, "missing.py", cwd=tmp_path)
    assert r.returncode == 2 and b"missing.py" in r.stderr
    r = invoke(py, "--frobnicate", "x.py", cwd=tmp_path)
    assert r.returncode == 2 and b"frobnicate" in r.stderr
    r = corral("dance", "--worker", py.url)
    assert r.returncode == 2 and b"dance" in r.stderr
    write(tmp_path, "h.py", "print('hi')\n")
    r = invoke(py, "--entry", "other.py", "h.py", cwd=tmp_path)
    assert r.returncode == 2 and b"bad_request" in r.stderr, r.stderr


def test_unreachable_worker_is_3(tmp_path):
    write(tmp_path, "h.py", "print('hi')\n")
    r = corral("invoke", "--worker", "tcp://127.0.0.1:%d" % free_port(), "--timeout-ms", "2000",
               "h.py", cwd=tmp_path)
    assert r.returncode == 3 and b"127.0.0.1" in r.stderr, r.stderr
    r = corral("ping", "--worker", "nonsense://x")
    assert r.returncode == 3 and r.stderr, r.stderr


def round_trips(worker, tmp_path, name, source, n=100):
    write(tmp_path, name, source)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = invoke(worker, name, cwd=tmp_path)
        times.append(time.perf_counter() - t)
        assert (r.returncode, r.stdout) == (0, b"OK\n"), r.stderr
    return times


def test_round_trips(sh, py, tmp_path):
    rows = []
    for w, name, src in ((sh, "echo.sh", "echo OK\n"), (py, "ok.py", 'print("OK")\n')):
        ts = round_trips(w, tmp_path, name, src)
        ts.sort()
        rows.append((w.runtime, statistics.median(ts), ts[len(ts) * 9 // 10], ts[0], ts[-1]))
    print("\ncorral invoke round trip, 100 runs each (ms; a figure, not a gate):")
    for rt, med, p90, lo, hi in rows:
        print("  %-6s median %6.1f  p90 %6.1f  min %6.1f  max %6.1f" %
              (rt, med * 1000, p90 * 1000, lo * 1000, hi * 1000))
