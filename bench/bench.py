#!/usr/bin/python3
"""bench.py — corral's benchmark harness (`make bench`).

For each mode — `cold` (every fast path off), `prewarm` (prewarmed
one-shot sandboxes, `--prewarm on`) and `zygote` (the fork server,
`--zygote on`, only for runtimes with a zygote.sh: python; and
`prewarm+zygote`, both on) — starts two
workers per runtime and a
gateway in front of them (when it is built), then for every runtime, mode
and path — straight to a worker over nng, through the gateway with race 1,
through the gateway with race 2 — runs corral-bench closed-loop at 1 and
at 8 connections, and reports latency p50/p90/p99, throughput, CPU
milliseconds per invocation (each worker runs in a cpuacct cgroup of the
bench's own, so its whole tree counts: processor, forker, keepers, fork
server, sandboxes; plus the gateway's, from /proc) and idle and loaded
RSS; the prewarmed runtimes' own RSS is reported apart (the processor's
does not include them). For --think-runtimes (python, node) one more row
runs race 1 at 1 connection with --think-ms (100) between a reply and the
next request: an interactive user, whose worker has time to get the next
sandbox ready, where a closed loop measures a worker that never has.

Everything is measured side by side in one run on the same machine, so
compare rows as ratios, not against numbers from another day: the table
is followed by the ratios of each fast mode against cold (p50 down, runs/s
up) and by the issue's targets with the figures of this run. It writes the
same figures as JSON (--json, default BUILD/bench.json). No assertion
here: tests do not time things.

Then the hedging scenario (see "the hedging scenario" below): three python
workers, one of them slow some of the time, race 1 / race 2 / hedged side
by side with p50, p99 and the extra invocations the workers ran.

    /usr/bin/python3 bench/bench.py [--build build] [--seconds 5]
        [--runtimes bash,python,node,ruby,php,c] [--conns 1,8]
        [--paths direct,race1,race2] [--modes cold,prewarm,zygote,prewarm+zygote]
        [--hedge on|off|only] [--hedge-mode prewarm|cold] [--slow-ms 300]
        [--slow-pct 10] [--hedge-seconds S] [--hop-reps 7]

Last, the gateway hop apart from the noise (see "the gateway hop" below).
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
    "ruby": ("main.rb", 'puts "OK"\n'),
    "php": ("main.php", '<?php echo "OK\\n";\n'),
    "c": ("main.c", '#include <stdio.h>\nint main(void) { puts("OK"); return 0; }\n'),
}
# The processor flags of each mode: every fast path is off in "cold".
MODES = {
    "cold": ["--prewarm", "off"],
    "prewarm": ["--prewarm", "on"],
    "zygote": ["--zygote", "on"],
    "prewarm+zygote": ["--prewarm", "on", "--zygote", "on"],
}
TICK = os.sysconf("SC_CLK_TCK")


def has_mode(rt, mode):
    """zygote: only runtimes with a fork server (a worker refuses the rest)."""
    return "zygote" not in mode or (REPO / "runtimes" / rt / "zygote.sh").exists()


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


class CpuGroup:
    """A cpuacct cgroup of the bench's own for one worker: the processor
    makes its slot cgroups below the one it starts in, so the group's
    usage is the worker's whole CPU — processor, forker, keepers, fork
    server, sandboxes — which /proc cannot tell while the fork server's
    children are not yet waited for. None when no cgroup is writable
    (CPU then comes from /proc, and undercounts such workers)."""
    V1, V2 = "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup"
    seq = 0

    @classmethod
    def make(cls):
        CpuGroup.seq += 1
        name = "corral-bench-%d-%d" % (os.getpid(), CpuGroup.seq)
        for base, v2 in ((cls.V1, False), (cls.V2, True)):
            if v2 and not os.path.exists(os.path.join(base, "cgroup.controllers")):
                continue
            try:
                os.mkdir(os.path.join(base, name))
                return cls(os.path.join(base, name), v2)
            except OSError:
                continue
        return None

    def __init__(self, path, v2):
        self.path, self.v2 = path, v2

    def wrap(self, cmd):
        """cmd, started inside the group."""
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path] + cmd

    def cpu(self):
        """CPU seconds used in the group so far."""
        if self.v2:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                return int(f.readline().split()[1]) / 1e6  # usage_usec
        with open(os.path.join(self.path, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


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


def descendants(pid):
    """Every process below pid (from /proc)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


class Stack:
    def __init__(self, build, runtimes, tmp, slots, mode, uid):
        self.build, self.tmp, self.mode = build, tmp, mode
        self.log = open(os.path.join(tmp, "stack-%s.log" % mode), "ab")
        self.workers = {}  # runtime -> [(url, proc)]
        self.groups = []   # their CpuGroups (None: none)
        self.cpu_of = {}   # processor pid -> its CPU seconds so far
        self.gateway = None
        try:
            self._start(build, runtimes, slots, mode, uid)
        except BaseException:
            self.stop()
            raise

    def _start(self, build, runtimes, slots, mode, uid):
        for rt in [r for r in runtimes if has_mode(r, mode)]:
            for _ in range(2):
                url = "tcp://127.0.0.1:%d" % free_port()
                cmd = [str(build / "corral-processor"), "--runtime-dir", str(REPO / "runtimes" / rt),
                       "--listen", url, "--slots", str(slots), "--uid-base", str(uid)] + MODES[mode]
                uid += 64
                cg = CpuGroup.make()
                self.groups.append(cg)
                proc = start(cg.wrap(cmd) if cg else cmd, "worker " + rt, self.log)
                self.workers.setdefault(rt, []).append((url, proc))
                self.cpu_of[proc.pid] = cg.cpu if cg else (lambda pid=proc.pid: proc_cpu(pid))
        gw = build / "corral-gateway"
        if gw.exists() and self.workers:
            self.gw_url = "http://127.0.0.1:%d" % free_port()
            cmd = [str(gw), "--listen", self.gw_url]
            for rt, ws in self.workers.items():
                cmd += ["--workers", "%s=%s" % (rt, ",".join(u for u, _ in ws))]
            self.gateway = start(cmd, "gateway", self.log)
            time.sleep(1.0)  # first health checks

    def processor_pids(self, rt=None):
        return [p.pid for r, ws in self.workers.items() if rt in (None, r) for _, p in ws]

    def sandbox_rss(self):
        """RSS of everything the processors run (prewarmed runtimes when idle)."""
        total = 0
        for p in self.processor_pids():
            for d in descendants(p):
                try:
                    total += proc_rss(d)
                except OSError:
                    pass
        return total

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
        for g in self.groups:
            if g:
                g.remove()


def run_scenario(args, stack, rt, path, conns, progfile, think_ms=0):
    name, _ = PROGRAMS[rt]
    if path == "direct":
        target, extra = stack.workers[rt][0][0], []
    else:
        target = stack.gw_url + "/v1/run"
        extra = ["--runtime", rt, "--race", "1" if path == "race1" else "2"]
    cmd = [str(args.build / "corral-bench"), "--target", target, "--file", "%s=%s" % (name, progfile),
           "--conns", str(conns), "--duration-ms", str(int(args.seconds * 1000)),
           "--warmup", "2", "--think-ms", str(think_ms)] + extra
    pids = stack.processor_pids(rt)
    gw_pid = stack.gateway.pid if stack.gateway else None
    watched = pids + ([gw_pid] if gw_pid else [])
    cpu0 = {p: stack.cpu_of[p]() for p in pids}
    if gw_pid:
        cpu0[gw_pid] = proc_cpu(gw_pid)
    sampler = RssSampler(watched)
    sampler.start()
    out = subprocess.run(cmd, capture_output=True, text=True)
    sampler.stop = True
    sampler.join()
    if out.returncode != 0:
        raise SystemExit("bench: corral-bench failed: " + out.stderr)
    r = json.loads(out.stdout)
    good = max(r["good"], 1)
    r["cpu_ms_per_run_workers"] = round(sum(stack.cpu_of[p]() - cpu0[p] for p in pids) * 1000 / good, 3)
    if gw_pid:
        r["cpu_ms_per_run_gateway"] = round((proc_cpu(gw_pid) - cpu0[gw_pid]) * 1000 / good, 3)
        r["gateway_rss_peak"] = sampler.peak[gw_pid]
    r["processor_rss_peak"] = max(sampler.peak[p] for p in pids)
    r.update(runtime=rt, path=path + ("+think" if think_ms else ""), conns=conns, mode=stack.mode,
             think_ms=think_ms)
    return r


def table(rows, idle):
    hdr = ("runtime", "mode", "path", "conns", "p50 ms", "p90 ms", "p99 ms", "runs/s", "busy",
           "err", "cpu ms/run", "proc RSS MB")
    fmt = "%-7s %-14s %-11s %5s %8s %8s %8s %8s %5s %4s %10s %11s"
    lines = [fmt % hdr]
    for r in rows:
        lines.append(fmt % (r["runtime"], r["mode"], r["path"], r["conns"],
                            "%.2f" % (r["p50_us"] / 1000),
                            "%.2f" % (r["p90_us"] / 1000), "%.2f" % (r["p99_us"] / 1000),
                            "%.1f" % r["rps"], r["busy"], r["errors"],
                            "%.2f" % (r["cpu_ms_per_run_workers"] + r.get("cpu_ms_per_run_gateway", 0)),
                            "%.1f" % (r["processor_rss_peak"] / 2**20)))
    for mode, i in sorted(idle.items()):
        lines.append("idle RSS (%s): processor %.1f MB, gateway %s, sandboxes of all workers %.1f MB" % (
            mode, i["processor"] / 2**20,
            "%.1f MB" % (i["gateway"] / 2**20) if i.get("gateway") else "not built",
            i["sandboxes"] / 2**20))
    by = {(r["runtime"], r["mode"], r["path"], r["conns"]): r for r in rows}
    lines.append("")
    lines.append("fast paths against cold, same run (p50: cold/fast, higher is better; "
                 "runs/s: fast/cold):")
    for (rt, mode, path, conns), r in sorted(by.items()):
        c = by.get((rt, "cold", path, conns))
        if mode != "cold" and c and r["p50_us"] and c["rps"]:
            lines.append("  %-7s %-14s %-11s c=%d: p50 %.2f -> %.2f ms (x%.1f lower), "
                         "%.1f -> %.1f runs/s (x%.1f)" % (
                             rt, mode, path, conns, c["p50_us"] / 1000, r["p50_us"] / 1000,
                             c["p50_us"] / r["p50_us"], c["rps"], r["rps"], r["rps"] / c["rps"]))
    lines.append("")
    lines.append("gateway hop (p50 through the gateway minus direct):")
    for (rt, mode, path, conns), r in sorted(by.items()):
        d = by.get((rt, mode, "direct", conns))
        if path.startswith("race") and "+" not in path and d and d["p50_us"]:
            lines.append("  %-7s %-14s %-7s c=%d: +%.2f ms" % (
                rt, mode, path, conns, (r["p50_us"] - d["p50_us"]) / 1000))
    lines += targets(by, idle)
    return "\n".join(lines)


def targets(by, idle):
    """The issue's targets, with this run's figures (printed, not asserted)."""
    out = ["", "issue 6 targets, this run:"]

    def ratio(rt, mode, path, conns, what):
        c, f = by.get((rt, "cold", path, conns)), by.get((rt, mode, path, conns))
        if not c or not f or not f["p50_us"] or not c["rps"]:
            return None
        return c["p50_us"] / f["p50_us"] if what == "p50" else f["rps"] / c["rps"]
    for label, rt, path, conns, what, goal in (
            ("python p50, gateway race 1, 1 conn: >= 8x lower", "python", "race1", 1, "p50", 8),
            ("python p50, same, with think time: >= 8x lower", "python", "race1+think", 1, "p50", 8),
            ("python runs/s at 8 conns (gateway race 1): >= 5x", "python", "race1", 8, "rps", 5),
            ("node p50 at 1 conn (gateway race 1): >= 15x lower", "node", "race1", 1, "p50", 15),
            ("node p50, same, with think time: >= 15x lower", "node", "race1+think", 1, "p50", 15)):
        for mode in ("prewarm", "zygote", "prewarm+zygote"):
            v = ratio(rt, mode, path, conns, what)
            if v is not None or mode == "prewarm":
                out.append("  %-52s %-14s %s" % (label, mode, "not measured" if v is None else
                                                "x%.1f (%s)" % (v, "met" if v >= goal else "NOT met")))
    # the hop target is judged on the stand-in worker (hop_table): between
    # two sandboxed rows it drowns in the runs' own noise
    for mode, i in sorted(idle.items()):
        out.append("  %-52s %.1f MB / %s" % ("idle RSS %s: processor < 8 MB / gateway < 16 MB" % mode,
                                            i["processor"] / 2**20,
                                            "%.1f MB" % (i["gateway"] / 2**20) if i.get("gateway") else "-"))
    return out


# ---- the hedging scenario (issue 6) -----------------------------------------
#
# Three python workers behind one gateway; one of them is made slow some
# of the time by configuration alone: bench.py writes a copy of
# runtimes/python that sleeps --slow-ms on --slow-pct % of invocations (a
# random draw from /dev/urandom), after the invocation arrived and before
# the user's code runs: its runtime.sh (cold runs) sleeps and then runs
# the real one; its warm.sh (prewarmed runs) starts warm-slow.py, which
# runs the real warm.py with the same sleep right after the hand-off.
# The workers run --hedge-mode (prewarm or cold). Race 1, race 2 and
# hedged mode (a fixed hedge_ms, and 0 = the runtime's observed p95) then
# run closed-loop side by side; the extra load is counted from the
# workers' own "invocation" log lines (every run a worker started, losers
# and cancelled ones included), per request sent.

HEDGE_MODES = (  # label, race, extra JSON of the request
    ("race1", 1, None),
    ("race2", 2, None),
    ("hedge50", 2, {"hedge_ms": 50}),
    ("hedge-p95", 2, {"hedge_ms": 0}),
)
SLOW_RUNTIME_SH = """#!/bin/sh
# Written by bench/bench.py: the slow worker of the hedging scenario. On
# %(pct)d%% of runs it sleeps %(ms)d ms first, then runs the real runtime.sh.
r=$(od -An -N2 -tu2 /dev/urandom) || exit 70
if [ $((r %% 100)) -lt %(pct)d ]; then sleep %(sec)s; fi
exec "${0%%/*}/runtime-fast.sh" "$@"
"""
SLOW_WARM_SH = """#!/bin/sh
# Written by bench/bench.py: the slow worker's warm entry (warm-slow.py).
exec python3 -B -- "$CORRAL_RUNTIME_DIR/warm-slow.py"
"""
SLOW_WARM_PY = """# Written by bench/bench.py: runs the real warm.py, but sleeps %(ms)d ms
# on %(pct)d%% of invocations right after one was handed over.
import os
import sys
import time

path = os.path.join(os.environ["CORRAL_RUNTIME_DIR"], "warm.py")
with open(path) as f:
    src = f.read().rstrip()
if src.endswith("\\nmain()"):  # an unguarded call at the end: ours comes below
    src = src[:-len("main()")]
g = {"__name__": "warm_slow_wrapped", "__file__": path}
exec(compile(src, path, "exec"), g)
if not callable(g.get("receive")) or not callable(g.get("main")):
    sys.stderr.write("warm-slow.py: warm.py has no receive() and main(); bench.py needs an update\\n")
    sys.exit(70)
fast_receive = g["receive"]


def slow_receive():
    got = fast_receive()
    if int.from_bytes(os.urandom(2), "little") %% 100 < %(pct)d:
        time.sleep(%(sec)s)
    return got


g["receive"] = slow_receive
g["main"]()
"""


def slow_runtime(tmp, ms, pct):
    """A copy of runtimes/python that is slow on pct %% of runs."""
    import shutil
    d = pathlib.Path(tmp) / "python-slow"
    shutil.copytree(REPO / "runtimes" / "python", d)
    v = {"pct": pct, "ms": ms, "sec": "%.3f" % (ms / 1000)}
    (d / "runtime.sh").rename(d / "runtime-fast.sh")
    (d / "runtime.sh").write_text(SLOW_RUNTIME_SH % v)
    if (d / "warm.sh").exists():
        (d / "warm.sh").write_text(SLOW_WARM_SH)
        (d / "warm-slow.py").write_text(SLOW_WARM_PY % v)
    for p in [d] + list(d.rglob("*")):
        os.chmod(p, 0o755 if p.is_dir() or p.suffix == ".sh" else 0o644)
    return d


class HedgeStack:
    """Three python workers, the first one slow, and a gateway."""

    def __init__(self, args, tmp):
        self.procs, self.logs = [], []
        try:
            slow = slow_runtime(tmp, args.slow_ms, args.slow_pct)
            urls = []
            for i, rdir in enumerate([slow, REPO / "runtimes" / "python", REPO / "runtimes" / "python"]):
                url = "tcp://127.0.0.1:%d" % free_port()
                logp = os.path.join(tmp, "hedge-worker-%d.log" % i)
                with open(logp, "ab") as log:
                    self.procs.append(start([str(args.build / "corral-processor"), "--runtime-dir", str(rdir),
                                             "--listen", url, "--slots", str(args.slots)] + MODES[args.hedge_mode] + [
                                             "--uid-base", str(62000 + 64 * i),
                                             "--name", "slow" if i == 0 else "w%d" % i], "hedge worker", log))
                urls.append(url)
                self.logs.append(logp)
            self.gw_url = "http://127.0.0.1:%d" % free_port()
            with open(os.path.join(tmp, "hedge-gateway.log"), "ab") as log:
                self.procs.append(start([str(args.build / "corral-gateway"), "--listen", self.gw_url,
                                         "--workers", "python=" + ",".join(urls)], "hedge gateway", log))
            time.sleep(1.0)  # first health checks
        except BaseException:
            self.stop()
            raise

    def runs_logged(self):
        """Invocations the workers started for the gateway, so far."""
        n = 0
        for p in self.logs:
            with open(p, errors="replace") as f:
                n += sum(1 for line in f if "msg=invocation " in line and " id=gw" in line)
        return n

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for p in self.logs:  # e.g. a warm entry that failed: say so, the figures lie then
            with open(p, errors="replace") as f:
                bad = [line for line in f if "level=warn" in line or "level=error" in line]
            if bad:
                print("bench: %s: %d warnings, first: %s" % (p, len(bad), bad[0].strip()),
                      file=sys.stderr)


def run_hedge_scenario(args, hs, label, race, extra, conns, progfile):
    cmd = [str(args.build / "corral-bench"), "--target", hs.gw_url + "/v1/run",
           "--file", "main.py=" + progfile, "--runtime", "python", "--race", str(race),
           "--conns", str(conns), "--duration-ms", str(int(args.hedge_seconds * 1000)), "--warmup", "2"]
    if extra:
        cmd += ["--extra-json", json.dumps(extra)]
    runs0 = hs.runs_logged()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("bench: corral-bench failed: " + out.stderr)
    time.sleep(1.0)  # the losers' cancelled replies and their log lines land
    r = json.loads(out.stdout)
    sent = r["n"] + 2 * conns  # the warm-up requests ran on the workers too
    r["worker_runs"] = hs.runs_logged() - runs0
    r["extra_pct"] = round(100.0 * (r["worker_runs"] - sent) / max(sent, 1), 1)
    r.update(scenario=label, conns=conns, mode=args.hedge_mode, slow_ms=args.slow_ms,
             slow_pct=args.slow_pct)
    return r


def hedge_bench(args, tmp):
    progfile = os.path.join(tmp, "hedge-main.py")
    with open(progfile, "w") as f:
        f.write(PROGRAMS["python"][1])
    os.chmod(progfile, 0o644)
    hs = HedgeStack(args, tmp)
    rows = []
    try:
        for conns in [int(c) for c in args.conns.split(",")]:
            for label, race, extra in HEDGE_MODES:
                r = run_hedge_scenario(args, hs, label, race, extra, conns, progfile)
                rows.append(r)
                print("  hedge   %-9s c=%-2d p50 %.2f ms, p99 %.2f ms, extra %.1f%%" % (
                    label, conns, r["p50_us"] / 1000, r["p99_us"] / 1000, r["extra_pct"]), file=sys.stderr)
    finally:
        hs.stop()
    return rows


def hedge_table(rows, mode, slow_ms, slow_pct):
    lines = ["", "hedging: 3 python workers (%s), one slow by %d ms on %d%% of its runs "
             "(p99 ratio: race 1 / this, higher is better):" % (mode, slow_ms, slow_pct)]
    fmt = "  %-9s %5s %8s %8s %8s %8s %5s %9s %9s"
    lines.append(fmt % ("mode", "conns", "p50 ms", "p99 ms", "max ms", "runs/s", "err",
                        "extra %", "p99 x"))
    base = {r["conns"]: r for r in rows if r["scenario"] == "race1"}
    for r in rows:
        b = base.get(r["conns"])
        lines.append(fmt % (r["scenario"], r["conns"], "%.2f" % (r["p50_us"] / 1000),
                            "%.2f" % (r["p99_us"] / 1000), "%.2f" % (r["max_us"] / 1000),
                            "%.1f" % r["rps"], r["errors"] + r["busy"], "%.1f" % r["extra_pct"],
                            "x%.1f" % (b["p99_us"] / r["p99_us"]) if b and r["p99_us"] else "-"))
    lines.append("  target: hedged p99 >= 5x lower than race 1, <= 10% extra invocations:")
    for r in rows:
        b = base.get(r["conns"])
        if r["scenario"].startswith("hedge") and b and r["p99_us"]:
            x = b["p99_us"] / r["p99_us"]
            lines.append("    %-9s c=%d: p99 x%.1f, extra %.1f%% (%s)" % (
                r["scenario"], r["conns"], x, r["extra_pct"],
                "met" if x >= 5 and r["extra_pct"] <= 10 else "NOT met"))
    return lines


# ---- the gateway hop (issue 6: <= 300 us at p50) ----------------------------
#
# What the gateway adds, apart from the milliseconds of noise a sandbox
# brings on a shared machine: a stand-in worker (corral-bench --serve,
# which answers every run at once) is called directly over nng and
# through a gateway in front of it (race 1), alternately, --hop-reps
# times; the medians of the p50s and of their differences are reported.


def hop_bench(args, tmp):
    url = "tcp://127.0.0.1:%d" % free_port()
    gw_url = "http://127.0.0.1:%d" % free_port()
    prog = os.path.join(tmp, "hop-main.sh")
    with open(prog, "w") as f:
        f.write(PROGRAMS["bash"][1])
    procs = []
    try:
        with open(os.path.join(tmp, "hop.log"), "ab") as log:
            procs.append(start([str(args.build / "corral-bench"), "--serve", url, "--runtime", "bash"],
                               "stand-in worker", log))
            procs.append(start([str(args.build / "corral-gateway"), "--listen", gw_url,
                                "--workers", "bash=" + url], "hop gateway", log))
        time.sleep(1.0)  # first health check
        reps = []
        for _ in range(args.hop_reps):
            pair = []
            for target, extra in ((url, []), (gw_url + "/v1/run", ["--runtime", "bash", "--race", "1"])):
                out = subprocess.run([str(args.build / "corral-bench"), "--target", target,
                                      "--file", "main.sh=" + prog, "--conns", "1",
                                      "--duration-ms", "1000", "--warmup", "20"] + extra,
                                     capture_output=True, text=True)
                r = json.loads(out.stdout) if out.returncode == 0 else None
                if not r or r["errors"] or not r["good"]:
                    raise SystemExit("bench: hop run against %s failed: %s %s" % (
                        target, out.stderr, r and r.get("last_error")))
                pair.append(r["p50_us"])
            reps.append(pair)
            print("  hop     direct p50 %d us, gateway p50 %d us" % tuple(pair), file=sys.stderr)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    return {"reps": reps, "direct_p50_us": med([d for d, _ in reps]),
            "gateway_p50_us": med([g for _, g in reps]), "hop_us": med([g - d for d, g in reps])}


def hop_table(h):
    return ["", "gateway hop, stand-in worker (answers at once), 1 conn, %d alternating reps:" % len(h["reps"]),
            "  median p50: direct %d us, through the gateway (race 1) %d us; median hop %d us "
            "(target <= 300 us: %s)" % (h["direct_p50_us"], h["gateway_p50_us"], h["hop_us"],
                                        "met" if h["hop_us"] <= 300 else "NOT met")]


def tune(how):
    """The kernel setting `make run` makes (see stack/corral-stack, Tuning),
    so that the bench measures what the stack gives; whether it is on."""
    if how == "on":
        env = dict(os.environ, CORRAL_STACK_FAVORDYNMODS="on")
        subprocess.run(["sh", str(REPO / "stack" / "corral-stack"), "tune"], env=env,
                       stdout=sys.stderr, check=False)
    with open("/proc/self/mountinfo") as f:
        on = any(" - cgroup" in line and "favordynmods" in line.split(" - ")[1] for line in f)
    print("bench: cgroup favordynmods %s" % ("on" if on else "off (runs after idle pay 5-15 ms)"),
          file=sys.stderr)
    return on


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", type=pathlib.Path, default=REPO / "build")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--runtimes", default="bash,python,node,ruby,php,c")
    ap.add_argument("--conns", default="1,8")
    ap.add_argument("--paths", default="direct,race1,race2")
    ap.add_argument("--modes", default="cold,prewarm,zygote,prewarm+zygote")
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--json", type=pathlib.Path)
    ap.add_argument("--hedge", choices=("on", "off", "only"), default="on",
                    help="the hedging scenario (python, gateway): after the others, skipped, or alone")
    ap.add_argument("--hedge-mode", choices=("cold", "prewarm"), default="prewarm",
                    help="hedging: the workers' mode")
    ap.add_argument("--slow-ms", type=int, default=300, help="hedging: the slow worker's delay")
    ap.add_argument("--slow-pct", type=int, default=10, help="hedging: %% of its runs it is slow on")
    ap.add_argument("--hedge-seconds", type=float, help="hedging: seconds per scenario (2x --seconds)")
    ap.add_argument("--think-ms", type=int, default=100,
                    help="one more row per runtime of --think-runtimes: gateway race 1, 1 conn, "
                         "this pause after each reply (an interactive user); 0: none")
    ap.add_argument("--think-runtimes", default="python,node")
    ap.add_argument("--hop-reps", type=int, default=7,
                    help="gateway hop against a stand-in worker: repetitions (0: skip)")
    ap.add_argument("--favordynmods", choices=("on", "keep"), default="on",
                    help="on: tune the kernel as `make run` does (stack/corral-stack tune: "
                         "fast cgroup moves after idle); keep: leave it as it is")
    args = ap.parse_args()
    args.build = args.build.resolve()
    runtimes = [r for r in args.runtimes.split(",") if r]
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            raise SystemExit("bench: unknown mode %r (%s)" % (m, ", ".join(MODES)))
    if args.hedge_seconds is None:
        args.hedge_seconds = 2 * args.seconds
    if not 0 <= args.slow_pct <= 100 or args.slow_ms < 0:
        raise SystemExit("bench: --slow-pct is 0..100 and --slow-ms >= 0")
    hedge = args.hedge != "off" and (args.build / "corral-gateway").exists()
    if args.hedge == "only":
        runtimes, modes = [], []
    stacks, rows, idle, hedge_rows, hop = {}, [], {}, [], None
    tuned = tune(args.favordynmods)
    with tempfile.TemporaryDirectory(prefix="corral-bench.") as tmp:
        os.chmod(tmp, 0o755)
        try:
            for i, m in enumerate(modes):
                stacks[m] = Stack(args.build, runtimes, tmp, args.slots, m, 63000 + i * 4096)
            time.sleep(2.0)  # prewarmed sandboxes start
            idle = {}
            for m, st in stacks.items():
                idle[m] = {"processor": max(proc_rss(p) for p in st.processor_pids()),
                           "sandboxes": st.sandbox_rss()}
                if st.gateway:
                    idle[m]["gateway"] = proc_rss(st.gateway.pid)
            rows = []
            for rt in runtimes:
                progfile = os.path.join(tmp, PROGRAMS[rt][0])
                with open(progfile, "w") as f:
                    f.write(PROGRAMS[rt][1])
                os.chmod(progfile, 0o644)
                scenarios = [(path, int(c), 0) for path in args.paths.split(",")
                             for c in args.conns.split(",")]
                if rt in args.think_runtimes.split(",") and args.think_ms > 0:
                    scenarios.append(("race1", 1, args.think_ms))
                for path, conns, think in scenarios:
                    for m, st in stacks.items():
                        if (path != "direct" and not st.gateway) or rt not in st.workers:
                            continue
                        r = run_scenario(args, st, rt, path, conns, progfile, think)
                        rows.append(r)
                        print("  %-7s %-14s %-12s c=%-2d p50 %.2f ms, %.1f runs/s" % (
                            rt, m, r["path"], conns, r["p50_us"] / 1000, r["rps"]),
                            file=sys.stderr)
        finally:
            for st in stacks.values():
                st.stop()
        if hedge:
            hedge_rows = hedge_bench(args, tmp)
        if args.hop_reps > 0 and (args.build / "corral-gateway").exists():
            hop = hop_bench(args, tmp)
    report = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "nproc": os.cpu_count(),
              "load_before": os.getloadavg()[0], "idle_rss": idle, "rows": rows,
              "hedge": hedge_rows, "hop": hop, "favordynmods": tuned}
    out = args.json or (args.build / "bench.json")
    out.write_text(json.dumps(report, indent=1))
    if rows:
        print(table(rows, idle))
    if hedge_rows:
        print("\n".join(hedge_table(hedge_rows, args.hedge_mode, args.slow_ms, args.slow_pct)))
    if hop:
        print("\n".join(hop_table(hop)))
    print("json: %s" % out)


if __name__ == "__main__":
    main()
