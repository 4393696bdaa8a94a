#!/usr/bin/python3
"""soak.py — reliability figures for the whole stack (issue 12, part 3).

Not a test: it asserts nothing and prints what it saw, for docs and the
closing notes. It starts a private local stack (stack/corral-stack: the
gateway and two workers per runtime under s6, in a temp dir, on its own
ports and uids) and drives it through the gateway over loopback:

  soak    N connections (default 64, keep-alive) for --soak-s seconds
          (default 600), each sending a mix of runtimes and of good and
          hostile programs (CPU loops, memory hogs, fork bombs, floods,
          sleepers) at the default race 2. Every answer is classified:
          expected (the program's own status), a documented refusal (429,
          503 with Retry-After), or a failure (anything else, a dropped
          connection, a wrong stdout). RSS and fd counts of the gateway and
          every worker are printed at the start and the end.
  faults  for --fault-s seconds (default 60) each, one python worker is
          SIGKILLed every 2 s (s6 restarts it) under 16 connections of
          python runs: once with race 2, once with race 1 (the gateway's
          retries, default 2); then every python worker is taken down (s6
          -d): the answer must be a clear 502/503 at once; then up again:
          how long until service is back, on its own.

  /usr/bin/python3 bench/soak.py [--build build] [--soak-s 600] [--conns 64]
                                 [--fault-s 60] [--only soak|faults]
Writes BUILD/soak.json too.
"""
import argparse
import http.client
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
STACK = REPO / "stack" / "corral-stack"

# name: (request body, check(status, json) -> None or why it is wrong)
MIX = {
    "python_ok": ({"runtime": "python", "code": "print(sum(range(1000)))"},
                  lambda j: j["run"]["stdout"] == "499500\n"),
    "bash_ok": ({"runtime": "bash", "code": "echo $((6*7))"},
                lambda j: j["run"]["stdout"] == "42\n"),
    "node_ok": ({"runtime": "node", "code": "console.log([1,2,3].map(x=>x*2).join(','))"},
                lambda j: j["run"]["stdout"] == "2,4,6\n"),
    "python_stdin": ({"runtime": "python", "stdin": "5\n", "code": "print(int(input())**2)"},
                     lambda j: j["run"]["stdout"] == "25\n"),
    "cpu_loop": ({"runtime": "python", "code": "while True: pass", "limits": {"cpu_ms": 300}},
                 lambda j: j["run"]["status"] == "timeout"),
    "memory_hog": ({"runtime": "python", "code": "x = bytearray(512 << 20)",
                    "limits": {"memory_bytes": 64 << 20}},
                   lambda j: j["run"]["status"] in ("memory", "exit", "signal")),
    "fork_bomb": ({"runtime": "bash", "code": "f() { f | f & }; f; sleep 2",
                   "limits": {"pids": 32, "wall_ms": 1500}},
                  lambda j: j["run"]["status"] in ("timeout", "exit", "ok", "signal")),
    "flood": ({"runtime": "python", "code": "while True: print('x' * 4096)",
               "limits": {"output_bytes": 65536}},
              lambda j: j["run"]["status"] == "output"),
    # (on a box loaded enough, bash may not reach its echo within 500 ms of
    # wall time: "" is the program's, not a loss)
    "sleeper": ({"runtime": "bash", "code": "echo a; sleep 60", "limits": {"wall_ms": 500}},
                lambda j: j["run"]["status"] == "timeout" and j["run"]["stdout"] in ("a\n", "")),
}
WEIGHTS = {"python_ok": 6, "bash_ok": 3, "node_ok": 3, "python_stdin": 3, "cpu_loop": 1,
           "memory_hog": 1, "fork_bomb": 1, "flood": 1, "sleeper": 1}


class Stack:
    def __init__(self, build, port_base=17300, uid_base=400000):
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="corral-soak-", dir="/tmp"))
        os.chmod(self.dir, 0o711)
        self.scan = self.dir / "scan"
        self.gw_port = port_base + 90
        self.env = dict(os.environ, CORRAL_STACK_DIR=str(self.dir),
                        CORRAL_STACK_PORT_BASE=str(port_base),
                        CORRAL_STACK_UID_BASE=str(uid_base),
                        CORRAL_STACK_GATEWAY_PORT=str(self.gw_port))
        self.out = open(self.dir / "stack.out", "wb")
        self.proc = subprocess.Popen(["sh", str(STACK), "run", str(build)], env=self.env,
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.services() and all(self.svstat(s, "up,ready") == ["true", "true"]
                                       for s in self.services()):
                return
            time.sleep(0.2)
        raise RuntimeError("stack not ready: " + (self.dir / "stack.out").read_text())

    def services(self):
        try:
            return sorted(p.name for p in self.scan.iterdir()
                          if (p / "run").exists() and not p.name.startswith("."))
        except OSError:
            return []

    def svstat(self, svc, fields):
        r = subprocess.run(["s6-svstat", "-o", fields, str(self.scan / svc)],
                           capture_output=True, text=True)
        return r.stdout.split() if r.returncode == 0 else None

    def pid(self, svc):
        st = self.svstat(svc, "pid")
        return int(st[0]) if st and st[0] != "-1" else None

    def svc(self, flag, svc):
        subprocess.run(["s6-svc", flag, str(self.scan / svc)], check=True)

    def stop(self):
        subprocess.run(["sh", str(STACK), "stop"], env=self.env, capture_output=True, timeout=60)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def proc_figures(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        return {"rss_kb": rss, "fds": len(os.listdir("/proc/%d/fd" % pid))}
    except (OSError, StopIteration):
        return None


def snapshot(stack):
    return {svc: proc_figures(stack.pid(svc)) for svc in stack.services()
            if svc != "log" and stack.pid(svc)}


class Counter:
    def __init__(self):
        self.lock = threading.Lock()
        self.by = {}
        self.failures = []

    def add(self, kind, detail=None):
        with self.lock:
            self.by[kind] = self.by.get(kind, 0) + 1
            if detail is not None and len(self.failures) < 20:
                self.failures.append(detail)


def one(conn, body, check, count, latencies):
    t0 = time.monotonic()
    try:
        conn.request("POST", "/v1/run", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        st = resp.status
    except (OSError, http.client.HTTPException) as e:
        count.add("failed", "%s: %r" % (body["runtime"], e))
        return False
    latencies.append(time.monotonic() - t0)
    if st in (429, 503) and resp.getheader("Retry-After"):
        count.add("refused_%d" % st)
        return True
    try:
        j = json.loads(data)
    except ValueError:
        count.add("failed", "%d non-JSON: %r" % (st, data[:200]))
        return True
    if st == 200 and check(j):
        count.add("expected")
    else:
        count.add("failed", "%d %s" % (st, json.dumps(j)[:300]))
    return True


def load(port, names, conns, seconds, count, extra=None):
    latencies, stop_at = [], time.monotonic() + seconds

    def worker(seed):
        rnd = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < stop_at:
            name = rnd.choices(names, [WEIGHTS[n] for n in names])[0]
            body, check = MIX[name]
            if extra:
                body = dict(body, **extra)
            if not one(conn, body, check, count, latencies):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in ts:
        t.start()
    return ts, latencies


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))] * 1000, 1) if xs else None


def soak(stack, args):
    start = snapshot(stack)
    count = Counter()
    ts, lat = load(stack.gw_port, list(MIX), args.conns, args.soak_s, count)
    mid = None
    time.sleep(args.soak_s / 2)
    mid = snapshot(stack)
    for t in ts:
        t.join()
    time.sleep(2)
    end = snapshot(stack)
    return {"seconds": args.soak_s, "connections": args.conns, "answers": count.by,
            "failures": count.failures, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
            "start": start, "middle": mid, "end": end}


def killer(stack, svcs, every, stop_at, kills):
    while time.monotonic() < stop_at:
        time.sleep(every)
        svc = random.choice(svcs)
        pid = stack.pid(svc)
        if pid:
            os.kill(pid, signal.SIGKILL)
            kills.append(svc)


def faults(stack, args):
    py = [s for s in stack.services() if s.startswith("python-")]
    out = {}
    for label, extra in (("race2", {"race": 2}), ("race1_retries", {"race": 1})):
        count, kills = Counter(), []
        ts, lat = load(stack.gw_port, ["python_ok", "python_stdin"], 16, args.fault_s, count, extra)
        k = threading.Thread(target=killer, args=(stack, py, 2.0, time.monotonic() + args.fault_s, kills))
        k.start()
        for t in ts + [k]:
            t.join()
        out[label] = {"answers": count.by, "failures": count.failures, "kills": len(kills),
                      "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}
        time.sleep(3)
    for s in py:
        stack.svc("-d", s)
    while any(stack.svstat(s, "up") == ["true"] for s in py):
        time.sleep(0.05)
    time.sleep(1)
    conn = http.client.HTTPConnection("127.0.0.1", stack.gw_port, timeout=60)
    t0 = time.monotonic()
    conn.request("POST", "/v1/run", json.dumps(MIX["python_ok"][0]))
    r = conn.getresponse()
    body = r.read()
    out["all_down"] = {"status": r.status, "retry_after": r.getheader("Retry-After"),
                       "answered_ms": round((time.monotonic() - t0) * 1000, 1),
                       "body": body.decode(errors="replace")[:300]}
    for s in py:
        stack.svc("-u", s)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        conn = http.client.HTTPConnection("127.0.0.1", stack.gw_port, timeout=60)
        conn.request("POST", "/v1/run", json.dumps(MIX["python_ok"][0]))
        r = conn.getresponse()
        r.read()
        if r.status == 200:
            break
        time.sleep(0.05)
    out["back_after_up_ms"] = round((time.monotonic() - t0) * 1000, 1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--soak-s", type=float, default=600)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--fault-s", type=float, default=60)
    ap.add_argument("--only", choices=["soak", "faults"])
    args = ap.parse_args()
    build = (REPO / args.build).resolve()
    stack = Stack(build)
    result = {"build": str(build), "nproc": os.cpu_count()}
    try:
        if args.only != "faults":
            result["soak"] = soak(stack, args)
            print(json.dumps({"soak": result["soak"]}, indent=1), flush=True)
        if args.only != "soak":
            result["faults"] = faults(stack, args)
            print(json.dumps({"faults": result["faults"]}, indent=1), flush=True)
    finally:
        stack.stop()
    (build / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
