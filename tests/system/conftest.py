"""Fixtures shared by the system tests: they start the real binaries from
the build dir (CORRAL_BUILD, default ./build) on real sockets."""
import itertools
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import sp  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("CORRAL_BUILD", REPO / "build"))
RUNTIMES = REPO / "runtimes"
# Slot uids: a block of 1024 per pytest session (from its pid), 16 per
# worker, so that sessions running at once never share a uid (a run's
# end kills every process of its slot uid).
_UID_BLOCK = 1000000 + (os.getpid() % 8192) * 1024
_uid_bases = itertools.cycle(range(_UID_BLOCK, _UID_BLOCK + 1024, 16))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Worker:
    """One corral-processor on a tcp port, started and awaited through its
    readiness fd (the s6 notification protocol)."""

    def __init__(self, runtime, slots=2, args=(), env=None, tmp=None, as_uid=None):
        """as_uid: run the worker as that uid (and gid), not root: through
        setpriv, with a state dir of its own (tmp need not be readable by
        it); the build and runtime dirs must be."""
        self.runtime = runtime
        self.port = free_port()
        self.url = "tcp://127.0.0.1:%d" % self.port
        rfd, wfd = os.pipe()
        cmd = [str(BUILD / "corral-processor"),
               "--listen", self.url,
               "--runtime-dir", str(RUNTIMES / runtime),
               "--slots", str(slots),
               "--notify-fd", str(wfd)]
        self.as_uid = as_uid
        if as_uid is not None:
            import tempfile
            self.own_dir = tempfile.mkdtemp(prefix="corral-uid%d." % as_uid)
            os.chown(self.own_dir, as_uid, as_uid)
            cmd = ["setpriv", "--reuid=%d" % as_uid, "--regid=%d" % as_uid, "--clear-groups"] + \
                cmd + ["--state-dir", self.own_dir + "/state"]
        elif os.geteuid() == 0:
            cmd += ["--uid-base", str(next(_uid_bases))]
        cmd += list(args)
        e = dict(os.environ)
        e.update(env or {})
        self.stderr_path = os.path.join(tmp or "/tmp", "worker-%d.log" % self.port)
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, pass_fds=(wfd,), stdout=self.stderr,
                                     stderr=self.stderr, env=e)
        os.close(wfd)
        ready = b""
        deadline = time.time() + 20
        while b"\n" not in ready and time.time() < deadline:
            if self.proc.poll() is not None:
                break
            import select
            r, _, _ = select.select([rfd], [], [], 0.2)
            if r:
                chunk = os.read(rfd, 64)
                if not chunk:
                    break
                ready += chunk
        os.close(rfd)
        if b"\n" not in ready:
            self.stop()
            raise RuntimeError("worker did not become ready: " + self.log())

    def log(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def call(self, msg, timeout=60.0):
        return sp.call(self.url, msg, timeout)

    def run(self, files, **kw):
        """files: {name: content} (ordered: the first is the entry)."""
        msg = {"v": 1, "op": "run", "id": kw.pop("id", "t%d" % time.monotonic_ns()),
               "files": [{"name": n, "content": c} for n, c in files.items()]}
        msg.update(kw)
        return self.call(msg)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        if getattr(self, "own_dir", None):
            import shutil
            shutil.rmtree(self.own_dir, ignore_errors=True)
        return self.proc.returncode


def median_cpu_ms(workers, files, n=5):
    """Side by side: the median cpu_ms charged to n runs of files on each
    of workers (interleaved, so that the machine's load falls on all
    alike). What a test compares, never a figure it asserts alone."""
    got = [[] for _ in workers]
    for _ in range(n):
        for i, w in enumerate(workers):
            r = w.run(files)
            assert r["ok"] and r["run"]["status"] == "ok", r
            got[i].append(r["run"]["cpu_ms"])
    return [sorted(g)[n // 2] for g in got]


@pytest.fixture
def worker_factory(tmp_path):
    workers = []

    def make(runtime, **kw):
        w = Worker(runtime, tmp=str(tmp_path), **kw)
        workers.append(w)
        return w

    yield make
    for w in workers:
        w.stop()


@pytest.fixture(scope="module")
def module_workers(tmp_path_factory):
    """Workers shared by a module's tests: module_workers('python')."""
    tmp = tmp_path_factory.mktemp("workers")
    cache = {}

    def get(runtime, **kw):
        key = (runtime, tuple(sorted(kw.items())))
        if key not in cache:
            cache[key] = Worker(runtime, tmp=str(tmp), **kw)
        return cache[key]

    yield get
    for w in cache.values():
        w.stop()
