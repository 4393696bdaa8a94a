"""Fixtures and helpers for the gateway's system tests (no tests here).

A Gateway is the real corral-gateway on a free port, in front of real
corral-processor workers (conftest.Worker); it is awaited through its
readiness fd and then until it reports the expected healthy workers.
slow_runtime() makes a copy of a runtime dir whose runtime.sh records its
PIDs and sleeps before running the program, so one worker can be made slow
without any test hook in the product.
"""
import contextlib
import http.client
import json
import os
import pathlib
import random
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import conftest
from conftest import BUILD, RUNTIMES, free_port


class Gateway:
    def __init__(self, workers, args=(), tmp=None, env=None, ready=None):
        """workers: [(label, url)]; ready: healthy workers to wait for
        (default: all of them)."""
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        rfd, wfd = os.pipe()
        cmd = [str(BUILD / "corral-gateway"), "--listen", self.url,
               "--notify-fd", str(wfd)]
        for label, url in workers:
            cmd += ["--workers", "%s=%s" % (label, url)]
        cmd += list(args)
        e = dict(os.environ)
        e.update(env or {})
        self.log_path = os.path.join(tmp or "/tmp", "gateway-%d.log" % self.port)
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, pass_fds=(wfd,), stdout=self.log_file,
                                     stderr=self.log_file, env=e)
        os.close(wfd)
        got = b""
        deadline = time.time() + 10
        while b"\n" not in got and time.time() < deadline and self.proc.poll() is None:
            r, _, _ = select.select([rfd], [], [], 0.2)
            if r:
                chunk = os.read(rfd, 16)
                if not chunk:
                    break
                got += chunk
        os.close(rfd)
        if b"\n" not in got:
            self.stop()
            raise RuntimeError("gateway did not become ready: " + self.log())
        try:
            self.wait_healthy(len(workers) if ready is None else ready)
        except BaseException:
            self.stop()  # never leave a gateway behind
            raise

    def log(self):
        if not self.log_file.closed:
            self.log_file.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def request(self, method, path, body=None, headers=None, timeout=60):
        """-> (status, headers dict (lower-case keys), parsed JSON or bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        if hdrs.get("content-type", "").startswith("application/json"):
            data = json.loads(data)
        return r.status, hdrs, data

    def run(self, body, **kw):
        return self.request("POST", "/v1/run", body, **kw)

    def piston(self, body, **kw):
        return self.request("POST", "/api/v2/execute", body, **kw)

    def healthy(self, runtime=None):
        if runtime is None:  # /readyz needs no API key
            return self.request("GET", "/readyz")[2]["healthy_workers"]
        st, _, j = self.request("GET", "/v1/runtimes")
        assert st == 200, j
        return sum(r["healthy_workers"] for r in j["runtimes"]
                   if runtime is None or r["name"] == runtime)

    def wait_healthy(self, n, timeout=10, runtime=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.healthy(runtime) == n:
                return
            time.sleep(0.05)
        raise AssertionError("gateway never saw %d healthy workers (has %d): %s"
                             % (n, self.healthy(runtime), self.log()[-3000:]))

    def metrics(self):
        st, _, text = self.request("GET", "/metrics")
        assert st == 200
        out = {}
        for line in text.decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def alive(self):
        return self.proc.poll() is None

    def sanitized(self):
        """True when the binary runs under ASan (its RSS means little)."""
        with open("/proc/%d/maps" % self.proc.pid) as f:
            return "libasan" in f.read()

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        log = self.log()
        # a sanitizer report (ASan/UBSan/LSan at exit) fails whoever stops us
        for needle in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            assert needle not in log, "gateway sanitizer report:\n" + log[-6000:]
        return self.proc.returncode


def worker_on_port(runtime, port, **kw):
    """A conftest.Worker on a given port (to restart one where it was)."""
    orig = conftest.free_port
    conftest.free_port = lambda: port
    try:
        return conftest.Worker(runtime, **kw)
    finally:
        conftest.free_port = orig


class SlowRuntime:
    """A copy of runtimes/<base> whose runtime.sh sleeps `delay` seconds
    before running the original script. The sandbox gives each stage its
    own pid namespace and /tmp, so the slow processes are found from the
    host by a marker in their command lines (the sleep's unique duration);
    watch() collects them while a request runs."""

    def __init__(self, base="python", delay=20):
        self.root = tempfile.mkdtemp(prefix="corral-slow-", dir="/tmp")
        os.chmod(self.root, 0o755)
        self.dir = os.path.join(self.root, base)
        shutil.copytree(RUNTIMES / base, self.dir)
        self.delay = delay
        self.marker = "%d.%06d" % (delay, random.randrange(10 ** 6))
        os.rename(os.path.join(self.dir, "runtime.sh"), os.path.join(self.dir, "runtime-orig.sh"))
        p = pathlib.Path(self.dir, "runtime.sh")
        p.write_text("#!/bin/sh\n"
                     "# slowed copy for the gateway's race tests\n"
                     "exec /bin/sh -c 'sleep %s && exec \"$0\" \"$@\"' "
                     "\"$(dirname \"$0\")/runtime-orig.sh\" \"$@\"\n" % self.marker)
        p.chmod(0o755)
        self.seen = set()

    def pids(self):
        """Host PIDs of processes running the slow runtime right now."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if self.marker.encode() in f.read():
                        out.append(int(d))
            except OSError:
                pass
        return out

    @contextlib.contextmanager
    def watch(self):
        """Collects into self.seen the slow PIDs that appear meanwhile."""
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                self.seen.update(p for p in self.pids() if pid_alive(p))
                time.sleep(0.01)

        t = threading.Thread(target=poll)
        t.start()
        try:
            yield self
        finally:
            stop.set()
            t.join()

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def pid_alive(pid):
    """True while /proc/pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def raw_http(port, data, timeout=10, shut=False):
    """Sends raw bytes, returns what came back before the server closed
    or the timeout ("" when it closed without a word)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(rest) >= int(line.split(b":")[1]):
                            return out
        return out
    finally:
        s.close()
