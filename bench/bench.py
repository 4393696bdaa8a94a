#!/usr/bin/python3
"""bench.py — corral's benchmark harness (`make bench`).

Starts two workers per runtime (and a gateway in front of them when it is
built), then for every runtime and every path — straight to a worker over
nng, through the gateway with race 1, through the gateway with race 2 —
runs corral-bench closed-loop at 1 and at 8 connections, and reports
latency p50/p90/p99, throughput, CPU seconds per invocation (processors,
their sandboxes and the gateway, from /proc) and idle and loaded RSS.

Everything is measured side by side in one run on the same machine, so
compare rows as ratios, not against numbers from another day. It prints a
table and writes the same figures as JSON (--json, default
BUILD/bench.json). No assertion here: tests do not time things.

    /usr/bin/python3 bench/bench.py [--build build] [--seconds 5]
        [--runtimes bash,python,node,c] [--conns 1,8] [--paths direct,race1,race2]
"""
import argparse
import json
import os
import pathlib
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[1]

PROGRAMS = {
    "bash": ("main.sh", "echo OK\n"),
    "python": ("main.py", 'print("OK")\n'),
    "node": ("main.js", 'console.log("OK")\n'),
    "c": ("main.c", '#include <stdio.h>\nint main(void) { puts("OK"); return 0; }\n'),
}
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc, rfd, what, timeout=30):
    buf = b""
    deadline = time.time() + timeout
    while b"\n" not in buf and time.time() < deadline and proc.poll() is None:
        r, _, _ = select.select([rfd], [], [], 0.2)
        if r:
            chunk = os.read(rfd, 64)
            if not chunk:
                break
            buf += chunk
    os.close(rfd)
    if b"\n" not in buf:
        raise SystemExit("bench: %s did not become ready" % what)


def start(cmd, what, log):
    rfd, wfd = os.pipe()
    proc = subprocess.Popen(cmd + ["--notify-fd", str(wfd)], pass_fds=(wfd,),
                            stdout=log, stderr=log)
    os.close(wfd)
    wait_ready(proc, rfd, what)
    return proc


def proc_cpu(pid):
    """utime+stime of pid and of its waited-for children, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def proc_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler(threading.Thread):
    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak, self.stop = pids, {p: 0 for p in pids}, False

    def run(self):
        while not self.stop:
            for p in self.pids:
                try:
                    self.peak[p] = max(self.peak[p], proc_rss(p))
                except OSError:
                    pass
            time.sleep(0.05)


class Stack:
    def __init__(self, build, runtimes, tmp, slots):
        self.build, self.tmp = build, tmp
        self.log = open(os.path.join(tmp, "stack.log"), "ab")
        self.workers = {}  # runtime -> [(url, proc)]
        uid = 63000
        for rt in runtimes:
            for _ in range(2):
                url = "tcp://127.0.0.1:%d" % free_port()
                cmd = [str(build / "corral-processor"), "--runtime-dir", str(REPO / "runtimes" / rt),
                       "--listen", url, "--slots", str(slots), "--uid-base", str(uid)]
                uid += 64
                self.workers.setdefault(rt, []).append((url, start(cmd, "worker " + rt, self.log)))
        self.gateway = None
        gw = build / "corral-gateway"
        if gw.exists():
            self.gw_url = "http://127.0.0.1:%d" % free_port()
            cmd = [str(gw), "--listen", self.gw_url]
            for rt, ws in self.workers.items():
                cmd += ["--workers", "%s=%s" % (rt, ",".join(u for u, _ in ws))]
            self.gateway = start(cmd, "gateway", self.log)
            time.sleep(1.0)  # first health checks

    def processor_pids(self, rt=None):
        return [p.pid for r, ws in self.workers.items() if rt in (None, r) for _, p in ws]

    def stop(self):
        procs = [p for ws in self.workers.values() for _, p in ws]
        if self.gateway:
            procs.append(self.gateway)
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def run_scenario(args, stack, rt, path, conns, progfile):
    name, _ = PROGRAMS[rt]
    if path == "direct":
        target, extra = stack.workers[rt][0][0], []
    else:
        target = stack.gw_url + "/v1/run"
        extra = ["--runtime", rt, "--race", "1" if path == "race1" else "2"]
    cmd = [str(args.build / "corral-bench"), "--target", target, "--file", "%s=%s" % (name, progfile),
           "--conns", str(conns), "--duration-ms", str(int(args.seconds * 1000)),
           "--warmup", "2"] + extra
    pids = stack.processor_pids(rt)
    gw_pid = stack.gateway.pid if stack.gateway else None
    watched = pids + ([gw_pid] if gw_pid else [])
    cpu0 = {p: proc_cpu(p) for p in watched}
    sampler = RssSampler(watched)
    sampler.start()
    out = subprocess.run(cmd, capture_output=True, text=True)
    sampler.stop = True
    sampler.join()
    if out.returncode != 0:
        raise SystemExit("bench: corral-bench failed: " + out.stderr)
    r = json.loads(out.stdout)
    good = max(r["good"], 1)
    r["cpu_ms_per_run_workers"] = round(sum(proc_cpu(p) - cpu0[p] for p in pids) * 1000 / good, 3)
    if gw_pid:
        r["cpu_ms_per_run_gateway"] = round((proc_cpu(gw_pid) - cpu0[gw_pid]) * 1000 / good, 3)
        r["gateway_rss_peak"] = sampler.peak[gw_pid]
    r["processor_rss_peak"] = max(sampler.peak[p] for p in pids)
    r.update(runtime=rt, path=path, conns=conns)
    return r


def table(rows, idle):
    hdr = ("runtime", "path", "conns", "p50 ms", "p90 ms", "p99 ms", "runs/s", "busy", "err",
           "cpu ms/run", "proc RSS MB")
    fmt = "%-7s %-7s %5s %8s %8s %8s %8s %5s %4s %10s %11s"
    lines = [fmt % hdr]
    for r in rows:
        lines.append(fmt % (r["runtime"], r["path"], r["conns"], "%.2f" % (r["p50_us"] / 1000),
                            "%.2f" % (r["p90_us"] / 1000), "%.2f" % (r["p99_us"] / 1000),
                            "%.1f" % r["rps"], r["busy"], r["errors"],
                            "%.2f" % (r["cpu_ms_per_run_workers"] + r.get("cpu_ms_per_run_gateway", 0)),
                            "%.1f" % (r["processor_rss_peak"] / 2**20)))
    lines.append("idle RSS: processor %.1f MB, gateway %s" % (
        idle["processor"] / 2**20,
        "%.1f MB" % (idle["gateway"] / 2**20) if idle.get("gateway") else "not built"))
    by = {(r["runtime"], r["path"], r["conns"]): r for r in rows}
    for (rt, path, conns), r in sorted(by.items()):
        d = by.get((rt, "direct", conns))
        if path != "direct" and d and d["p50_us"]:
            lines.append("gateway hop %s %s c=%d: p50 +%.2f ms (x%.2f of direct)" % (
                rt, path, conns, (r["p50_us"] - d["p50_us"]) / 1000, r["p50_us"] / d["p50_us"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", type=pathlib.Path, default=REPO / "build")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--runtimes", default="bash,python,node,c")
    ap.add_argument("--conns", default="1,8")
    ap.add_argument("--paths", default="direct,race1,race2")
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    args.build = args.build.resolve()
    runtimes = [r for r in args.runtimes.split(",") if r]
    with tempfile.TemporaryDirectory(prefix="corral-bench.") as tmp:
        stack = Stack(args.build, runtimes, tmp, args.slots)
        try:
            time.sleep(0.5)
            idle = {"processor": max(proc_rss(p) for p in stack.processor_pids())}
            if stack.gateway:
                idle["gateway"] = proc_rss(stack.gateway.pid)
            paths = [p for p in args.paths.split(",") if p == "direct" or stack.gateway]
            rows = []
            for rt in runtimes:
                progfile = os.path.join(tmp, PROGRAMS[rt][0])
                with open(progfile, "w") as f:
                    f.write(PROGRAMS[rt][1])
                for path in paths:
                    for conns in [int(c) for c in args.conns.split(",")]:
                        r = run_scenario(args, stack, rt, path, conns, progfile)
                        rows.append(r)
                        print("  %-7s %-7s c=%-2d p50 %.2f ms, %.1f runs/s" % (
                            rt, path, conns, r["p50_us"] / 1000, r["rps"]), file=sys.stderr)
        finally:
            stack.stop()
    report = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "nproc": os.cpu_count(),
              "load_before": os.getloadavg()[0], "idle_rss": idle, "rows": rows}
    out = args.json or (args.build / "bench.json")
    out.write_text(json.dumps(report, indent=1))
    print(table(rows, idle))
    print("json: %s" % out)


if __name__ == "__main__":
    main()
