"""The images, run for real with podman (or docker), offline.

Needs the images built first (`make images`, i.e. images/build.sh): the
base, corral/onbuild and one corral/runtime-LANG per runtimes/LANG/Dockerfile,
and corral/gateway. A missing image is a failure, not a skip.

What it checks, each against the running containers:
  - ONBUILD survives (docker format) and checks the runtime dir: a context
    without runtime.sh, or with a broken one, fails the build with a clear
    message; a three-line Dockerfile over a minimal runtime dir gives a
    working worker image.
  - Every runtime's test cases (tests/runtimes/LANG, the data the system
    tests use) through each worker container, run with --network none and
    a read-only root filesystem, reached over an ipc socket in a shared
    volume; then all of them again through the gateway container, as the
    gateway's own test suite sends them (POST /v1/run).
  - s6-svscan is PID 1, the logger runs unprivileged, container logs show
    the processor's structured lines.
  - kill -9 of the processor: s6 restarts it at once (its first start
    after the kill is the one that answers: the death tally holds the kill
    alone), and the orphans of the invocation it was running are reaped
    (no zombie, nothing left). How long it takes is a figure (recorded,
    against the 50 ms target), not a gate.
  - SIGTERM (podman stop): the in-flight invocation completes, the
    container exits 0 (drained, not SIGKILLed at the stop timeout).

CORRAL_IMAGE_RUNTIMES=python (space-separated) limits the runtime images
built and tested to those (CI tests one; a developer, all).
"""
import base64
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import threading
import time

import pytest
import requests

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "system"))
import sp  # noqa: E402
from test_runtimes import Case, all_cases, check_reply  # noqa: E402

ENGINE = os.environ.get("CORRAL_ENGINE") or ("podman" if shutil.which("podman") else "docker")
os.environ.setdefault("CONTAINERS_CONF", str(REPO / "images" / "containers.conf"))
TAG = os.environ.get("CORRAL_TAG", "dev")
PREFIX = "corral-test-%d" % os.getpid()  # names of everything this run makes
RESTART_TARGET_MS = 50  # a figure to report, not a bound
RESULTS = pathlib.Path(os.environ.get("CORRAL_IMAGE_RESULTS", "/tmp/corral-image-results.json"))


def engine(*args, check=True, timeout=300):
    p = subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s %s failed (%d):\n%s%s" % (
            ENGINE, " ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def image(name):
    ref = "corral/%s:%s" % (name, TAG)
    if engine("image", "inspect", ref, check=False).returncode != 0:
        pytest.fail("image %s is missing: run `make images` first" % ref)
    return ref


def record(key, value):
    """Measurements for the report, kept in one JSON file."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[key] = value
    RESULTS.write_text(json.dumps(data, indent=1, sort_keys=True))


def runtimes_with_images():
    only = os.environ.get("CORRAL_IMAGE_RUNTIMES", "").split()
    return sorted(p.parent.name for p in (REPO / "runtimes").glob("*/Dockerfile")
                  if (p.parent / "runtime.sh").exists() and (not only or p.parent.name in only))


class Worker:
    """One runtime container: no network, read-only root, tmpfs for s6's
    scan dir and the work dirs, the processor also listening on an ipc
    socket in a host dir shared with the test (and the gateway)."""

    def __init__(self, lang, tmp, slots=2, env=(), img=None, suffix="", user=None, flags=()):
        self.lang = lang
        self.name = "%s-%s%s" % (PREFIX, lang, suffix)
        base = pathlib.Path(tmp) / (lang + suffix)
        self.sockdir = base / "sock"
        self.sockdir.mkdir(parents=True, exist_ok=True)
        self.url = "ipc://%s/worker.sock" % self.sockdir
        args = ["run", "-d", "--name", self.name, "--network", "none", "--read-only"]
        if user is None:
            args += ["--tmpfs", "/run/corral:rw,mode=0755",
                     "--tmpfs", "/var/lib/corral:rw,exec,mode=0755"]
        else:
            # podman 4.3 gives a --read-only container's tmpfs root's 0755
            # whatever the mode asked: host dirs stand in for emptyDirs.
            for d in ("run", "state"):
                (base / d).mkdir(exist_ok=True)
                (base / d).chmod(0o1777)
            self.sockdir.chmod(0o1777)
            args += ["--user", user, "-v", "%s:/run/corral" % (base / "run"),
                     "-v", "%s:/var/lib/corral" % (base / "state")]
        args += ["--tmpfs", "/tmp:rw,exec,mode=1777",
                 "-v", "%s:/run/corral/sock" % self.sockdir,
                 "-e", "CORRAL_LISTEN=tcp://0.0.0.0:7070 ipc:///run/corral/sock/worker.sock",
                 "-e", "CORRAL_SLOTS=%d" % slots, *flags]
        for e in env:
            args += ["-e", e]
        engine(*args, img or image("runtime-" + lang))
        self.wait_ready()

    def ping(self, timeout=1.0):
        try:
            return sp.call(self.url, {"v": 1, "op": "ping"}, timeout).get("ok") is True
        except (OSError, sp.SPError):
            return False

    def wait_ready(self, limit=30):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.ping():
                return
            state = engine("inspect", "--format", "{{.State.Running}}", self.name, check=False)
            if state.stdout.strip() == "false":
                break
            time.sleep(0.05)
        raise AssertionError("worker %s not ready:\n%s" % (self.name, self.logs()))

    def call(self, msg, timeout=60):
        return sp.call(self.url, msg, timeout)

    def logs(self):
        p = engine("logs", self.name, check=False)
        return p.stdout + p.stderr

    def top(self):
        """[(container pid, host pid, ppid, user, state, comm)]"""
        out = engine("top", self.name, "pid", "hpid", "ppid", "user", "stime", "comm").stdout
        rows = []
        for line in out.splitlines()[1:]:
            f = line.split()
            rows.append(f)
        return rows

    def processes(self):
        """Host view: {host pid: (state, comm)} of every process in the
        container, from /proc (podman top has no state column)."""
        out = {}
        for row in self.top():
            hpid = int(row[1])
            try:
                stat = pathlib.Path("/proc/%d/stat" % hpid).read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            out[hpid] = (stat[stat.rindex(")") + 2], comm)
        return out

    def processor_hpid(self):
        """The processor itself: its keepers (forks) share its name, but
        only it is a child of s6-supervise."""
        rows = self.top()
        comm = {r[0]: r[-1] for r in rows}
        pids = [int(r[1]) for r in rows
                if r[-1].startswith("corral-proc") and comm.get(r[2]) == "s6-supervise"]
        assert len(pids) == 1, rows
        return pids[0]

    def remove(self):
        engine("rm", "-f", "-t", "0", self.name, check=False)


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sock")
    started = {}
    try:
        for lang in runtimes_with_images():
            started[lang] = Worker(lang, tmp)
        yield started
    finally:
        for w in started.values():
            w.remove()


# ---- the images themselves ---------------------------------------------------

def test_sizes_and_onbuild_kept():
    sizes = {}
    refs = ["onbuild", "gateway"] + ["runtime-" + lang for lang in runtimes_with_images()]
    for name in refs:
        ref = image(name)
        sizes[ref] = int(engine("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())
    record("image_bytes", sizes)
    triggers = onbuild_triggers(image("onbuild"))
    assert len(triggers) == 2 and "check-runtime" in triggers[1], triggers
    # Small: no apt lists or docs left in the runtime images.
    for lang in runtimes_with_images():
        p = engine("run", "--rm", "--network", "none", image("runtime-" + lang), "sh", "-c",
                   "ls /var/lib/apt/lists | grep -v -e '^partial$' -e '^lock$' | wc -l;"
                   " find /usr/share/doc -type f ! -name copyright | wc -l;"
                   " ls /usr/share/man | wc -l")
        assert p.stdout.split() == ["0", "0", "0"], (lang, p.stdout)


def onbuild_triggers(ref):
    """The image's ONBUILD list, as the docker-format config stores it
    (podman's inspect does not show it; buildah's does)."""
    if ENGINE == "podman":
        p = subprocess.run(["buildah", "inspect", "--type", "image", "localhost/" + ref],
                           capture_output=True, text=True, check=True)
        return json.loads(p.stdout)["Docker"]["config"].get("OnBuild") or []
    out = engine("image", "inspect", "--format", "{{json .Config.OnBuild}}", ref).stdout
    return json.loads(out) or []


def build_runtime(tmp_path, files, tag):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for name, (content, mode) in files.items():
        (ctx / name).write_text(content)
        (ctx / name).chmod(mode)
    (ctx / "Dockerfile").write_text("FROM %s\n" % image("onbuild"))
    args = ["build", "-t", tag, str(ctx)]
    if ENGINE == "podman":
        args[1:1] = ["--format", "docker"]
    return engine(*args, check=False)


GOOD_SH = ("#!/bin/sh\nexec /bin/sh \"$@\"\n", 0o755)
GOOD_CONF = ("name = shx\nversion = echo 1.0\n", 0o644)


@pytest.mark.parametrize("files, message", [
    ({"runtime.conf": GOOD_CONF}, "no runtime.sh"),
    ({"runtime.sh": ("#!/bin/sh\nexec /bin/sh \"$@\"\n", 0o644), "runtime.conf": GOOD_CONF},
     "runtime.sh is not executable"),
    ({"runtime.sh": ("exec /bin/sh \"$@\"\n", 0o755), "runtime.conf": GOOD_CONF}, "#! line"),
    ({"runtime.sh": ("#!/bin/sh\nif then fi (\n", 0o755), "runtime.conf": GOOD_CONF}, "syntax error"),
    ({"runtime.sh": GOOD_SH}, "no runtime.conf"),
    ({"runtime.sh": GOOD_SH, "runtime.conf": ("version = x\n", 0o644)}, "no 'name = <language>'"),
], ids=["no-runtime.sh", "not-executable", "no-shebang", "syntax", "no-conf", "no-name"])
def test_onbuild_refuses_a_bad_runtime_dir(tmp_path, files, message):
    tag = "localhost/%s-bad:latest" % PREFIX
    p = build_runtime(tmp_path, files, tag)
    engine("rmi", "-f", tag, check=False)
    assert p.returncode != 0, "build succeeded:\n" + p.stdout
    assert message in p.stdout + p.stderr, p.stdout + p.stderr


def test_three_line_dockerfile_gives_a_worker(tmp_path):
    """A maintainer's minimal runtime dir + `FROM onbuild` = a worker."""
    tag = "localhost/%s-shx:latest" % PREFIX
    p = build_runtime(tmp_path, {"runtime.sh": GOOD_SH, "runtime.conf": GOOD_CONF}, tag)
    assert p.returncode == 0, p.stdout + p.stderr
    w = None
    try:
        w = Worker("shx", tmp_path, img=tag)
        r = w.call({"v": 1, "op": "run", "id": "x", "files": [{"name": "m.sh", "content": "echo hi $1"}],
                    "args": ["there"]})
        assert r["ok"] and r["runtime"] == {"name": "shx", "version": "1.0"}, r
        assert r["run"]["stdout"] == b"hi there\n", r
        ls = engine("exec", w.name, "ls", "-A", "/opt/corral/runtime").stdout.split()
        assert sorted(ls) == ["runtime.conf", "runtime.sh"], ls  # Dockerfile dropped
    finally:
        if w:
            w.remove()
        engine("rmi", "-f", tag, check=False)


# ---- runtime containers --------------------------------------------------------

@pytest.mark.parametrize("lang", runtimes_with_images())
def test_runtime_cases_in_container(workers, lang):
    cases = [p for rt, p in all_cases() if rt == lang]
    assert cases, "no test cases for %s" % lang
    compiled = (REPO / "runtimes" / lang / "compile.sh").exists()
    for path in cases:
        case = Case(lang, path)
        check_reply(case, workers[lang].call(case.request()), compiled)
    info = workers[lang].call({"v": 1, "op": "info"})
    assert info["runtime"]["name"] == lang
    record("isolation_in_container", info["isolation"])


def test_s6_is_pid1_and_logs_reach_the_container_log(workers):
    w = workers[runtimes_with_images()[0]]
    rows = {int(r[0]): r for r in w.top()}
    assert rows[1][-1] == "s6-svscan", rows
    by_comm = {r[-1]: r for r in rows.values()}
    proc, log = by_comm["corral-processor"[:15]], by_comm["s6-log"]
    assert rows[int(proc[2])][-1] == "s6-supervise" and proc[3] == "root"
    assert log[3] == "corral", log  # the logger runs unprivileged
    logs = w.logs()
    assert "prog=corral-processor msg=ready runtime=%s" % w.lang in logs, logs


def s6_times(w):
    """(up since, ready since) of the processor service, as Unix times,
    from s6-svstat's TAI64N stamps (s6-tai64nlocal applies leap seconds;
    the container's clock is the host's, its zone UTC)."""
    out = engine("exec", w.name, "sh", "-c",
                 "s6-svstat -o updownsince,readysince /run/corral/service/processor"
                 " | tr ' ' '\\n' | s6-tai64nlocal").stdout.split("\n")
    stamps = []
    for line in out:
        if line.strip():
            day, clock = line.split()
            secs, _, frac = clock.partition(".")
            t = time.mktime(time.strptime(day + " " + secs, "%Y-%m-%d %H:%M:%S")) - time.timezone
            stamps.append(t + float("0." + (frac or "0")))
    return stamps[0], stamps[1]


def test_kill9_processor_back_at_once(workers):
    """kill -9 of the processor, 15 times: each time s6 starts it again at
    once and that first start is the one that answers (the service's death
    tally holds our SIGKILL alone: no failed start, so no wait for
    s6-supervise's 1 s restart throttle). Measured per kill, as figures for
    the report (against the 50 ms target), not gates: s6's restart (kill ->
    the new processor started, s6-svstat's "up since"), the processor's own
    start-up (up -> ready) and what a client sees (kill -> first answered
    ping, polled every ms over the ipc socket)."""
    w = workers["python"] if "python" in workers else next(iter(workers.values()))
    svc = "/run/corral/service/processor"
    answer, restart, startup = [], [], []
    for _ in range(15):
        time.sleep(1.1)  # s6-supervise delays a restart of a run younger than 1 s
        pid = w.processor_hpid()
        engine("exec", w.name, "s6-svdt-clear", svc)
        wall0, t0 = time.time(), time.monotonic()
        os.kill(pid, 9)
        while not w.ping(timeout=0.2):
            assert time.monotonic() - t0 < 60, "processor not back after 60 s:\n" + w.logs()
            time.sleep(0.001)
        answer.append((time.monotonic() - t0) * 1000)
        assert w.processor_hpid() != pid
        deaths = engine("exec", w.name, "s6-svdt", svc).stdout.splitlines()
        assert len(deaths) == 1 and deaths[0].endswith("signal SIGKILL"), (deaths, w.logs())
        up, ready = s6_times(w)
        restart.append((up - wall0) * 1000)
        startup.append((ready - up) * 1000)

    def summary(xs):
        return {"median": round(statistics.median(xs), 1), "max": round(max(xs), 1),
                "all": [round(x, 1) for x in xs]}
    record("kill9_ms", {"lang": w.lang, "kill_to_answer": summary(answer),
                        "kill_to_s6_restart": summary(restart),
                        "processor_startup": summary(startup),
                        "target_ms": RESTART_TARGET_MS})


def test_orphans_of_a_killed_processor_are_reaped(workers):
    w = workers["python"] if "python" in workers else None
    if w is None:
        pytest.fail("the python runtime image is needed for this test")
    time.sleep(1.1)
    code = "import os,time\nif os.fork()==0:\n  os.setsid(); time.sleep(30)\ntime.sleep(30)\n"
    box = {}
    t = threading.Thread(target=lambda: box.update(r=_call_quiet(w, code)))
    t.start()
    time.sleep(1.0)
    before = w.processes()
    assert any(c.startswith("python") for _, c in before.values()), before
    os.kill(w.processor_hpid(), 9)
    t.join(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        procs = w.processes()
        left = {p: v for p, v in procs.items() if v[1].startswith("python") or v[0] == "Z"}
        if not left:
            break
        time.sleep(0.05)
    assert not left, "left behind after the processor died: %r" % left
    w.wait_ready()


def _call_quiet(w, code):
    try:
        return w.call({"v": 1, "op": "run", "id": "orphan", "files": [{"name": "o.py", "content": code}]},
                      timeout=40)
    except (OSError, sp.SPError) as e:
        return e


# ---- isolation profiles of the chart ------------------------------------------

SLOT_CAPS = "SETUID,SETGID,SETPCAP,KILL,CHOWN,FOWNER,DAC_OVERRIDE"
# The chart's worker.isolation profiles (charts/corral/templates/_helpers.tpl)
# as podman flags: (flags, user, the level the processor must reach, the
# uid user code runs as).
PROFILES = {
    "full": (["--privileged"], None, "full", "60000"),
    "namespaces": (["--cap-drop", "ALL", "--cap-add", SLOT_CAPS + ",SYS_ADMIN,NET_ADMIN",
                    "--security-opt", "apparmor=unconfined"], None, "namespaces", "60000"),
    "seccomp": (["--cap-drop", "ALL", "--cap-add", SLOT_CAPS], None, "seccomp", "60000"),
    "unprivileged": (["--cap-drop", "ALL"], "999:999", "seccomp", "999"),
}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_isolation_profiles(profile, tmp_path):
    """Each profile the chart offers reaches its level, with the worker
    told to refuse anything less (CORRAL_MIN_ISOLATION, as the chart
    sets it), and runs user code as the expected uid."""
    if "python" not in runtimes_with_images():
        pytest.fail("the python runtime image is needed for this test")
    flags, user, level, uid = PROFILES[profile]
    # as the chart (corral.unenforcedLimits): what these profiles cannot enforce
    extra = {"seccomp": ["CORRAL_UNENFORCED_LIMITS=memory"],
             "unprivileged": ["CORRAL_UNENFORCED_LIMITS=memory,pids"]}.get(profile, [])
    w = Worker("python", tmp_path, slots=1, suffix="-" + profile, user=user, flags=flags,
               env=["CORRAL_MIN_ISOLATION=" + level] + extra)
    try:
        info = w.call({"v": 1, "op": "info"})
        assert info["isolation"].split(":")[0] == level, info["isolation"]
        r = w.call({"v": 1, "op": "run", "id": "p", "files": [
            {"name": "u.py", "content": "import os\nprint(os.getuid())\nprint(len(os.listdir('/proc')))"}]})
        assert r["ok"] and r["run"]["status"] == "ok", r
        out = r["run"]["stdout"].split()
        assert out[0] == uid.encode(), r
        data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        record("isolation_profiles", dict(data.get("isolation_profiles", {}), **{profile: info["isolation"]}))
    finally:
        w.remove()


# ---- through the gateway container ------------------------------------------------

def b64(b):
    return base64.b64encode(b).decode()


@pytest.fixture(scope="module")
def gateway(workers, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gw")
    (tmp / "api-keys").write_text("test-key-0123456789abcdef\n")
    name = "%s-gateway" % PREFIX
    # The workers' ipc sockets are made 0755 root by the processor, so the
    # gateway joins them as uid 0 — with every capability dropped and a
    # read-only root; on a cluster it uses TCP and runs as uid 10001.
    args = ["run", "-d", "--name", name, "--user", "0", "--cap-drop", "ALL", "--read-only",
            "-p", "127.0.0.1::8080", "-v", "%s:/keys:ro" % tmp]
    urls = []
    for lang, w in workers.items():
        args += ["-v", "%s:/sock/%s" % (w.sockdir, lang)]
        urls.append("--workers=%s=ipc:///sock/%s/worker.sock" % (lang, lang))
    engine(*args, image("gateway"), "--listen", "http://0.0.0.0:8080",
           "--api-keys", "/keys/api-keys", *urls)
    try:
        port = engine("port", name, "8080").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
        base = "http://127.0.0.1:%s" % port
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("gateway not ready:\n" + engine("logs", name, check=False).stderr)
        yield base
    finally:
        engine("rm", "-f", "-t", "0", name, check=False)


def test_every_case_through_the_gateway_container(gateway, workers):
    from test_gateway import check_stage  # the gateway suite's own check
    auth = {"Authorization": "Bearer test-key-0123456789abcdef"}
    assert requests.post(gateway + "/v1/run", json={"runtime": "python", "code": "print(1)"},
                         timeout=30).status_code == 401
    ran = 0
    for lang in workers:
        for path in [p for rt, p in all_cases() if rt == lang]:
            case = Case(lang, path)
            names = [case.entry] + [n for n in case.files if n != case.entry]
            body = {"runtime": lang, "entry": case.entry,
                    "files": [{"name": n, "content": b64(case.files[n]), "encoding": "base64"}
                              for n in names],
                    "stdin": b64(case.stdin), "stdin_encoding": "base64"}
            for key in ("args", "env", "limits", "compile_limits"):
                if key in case.spec:
                    body[key] = case.spec[key]
            r = requests.post(gateway + "/v1/run", json=body, headers=auth, timeout=60)
            assert r.status_code == 200, (case.where, r.text)
            j = r.json()
            assert j["runtime"]["name"] == lang
            exp = case.spec["expect"]
            if "compile" in j:
                check_stage(case.where + " compile", j["compile"], exp.get("compile") or {"status": "ok"})
            if exp["run"] is None:
                assert j["run"] is None, (case.where, j)
            else:
                check_stage(case.where + " run", j["run"], exp["run"])
            ran += 1
    assert ran >= 3 * 6
    record("gateway_cases_passed", ran)
    m = requests.get(gateway + "/metrics", timeout=5).text
    assert "corral" in m


def test_chart_gateway_command_line_runs(tmp_path):
    """The gateway container as the chart renders it (args, env, the API
    key Secret mounted 0440 with group fsGroup) starts and stays up: the
    real binary accepts every flag and variable the chart passes, and the
    key file is readable by the gateway's uid."""
    import yaml
    tools = pathlib.Path(subprocess.run(["sh", str(REPO / "images" / "tools.sh")], check=True,
                                        capture_output=True, text=True).stdout.split()[-1])
    docs = [d for d in yaml.safe_load_all(subprocess.run(
        [str(tools / "bin" / "helm"), "template", "rel", str(REPO / "charts" / "corral"),
         "-f", str(HERE / "values-full.yaml")], check=True, capture_output=True, text=True).stdout) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-gateway"))
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    secret = next(d for d in docs if d["kind"] == "Secret")
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "api-keys").write_bytes(base64.b64decode(secret["data"]["api-keys"]))
    mount = next(m for m in c["volumeMounts"] if m["name"] == "api-keys")
    vol = next(v for v in pod["volumes"] if v["name"] == "api-keys")
    group = pod["securityContext"]["fsGroup"]
    os.chown(keys / "api-keys", 0, group)
    os.chmod(keys / "api-keys", vol["secret"]["defaultMode"])
    os.chmod(keys, 0o755)
    name = "%s-gw-chart" % PREFIX
    args = ["run", "-d", "--name", name, "--network", "none", "--read-only",
            "--user", "%d:%d" % (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]),
            "--group-add", str(group), "--cap-drop", "ALL",
            "-v", "%s:%s:ro" % (keys, mount["mountPath"])]
    for e in c["env"]:
        args += ["-e", "%s=%s" % (e["name"], e["value"])]
    try:
        engine(*args, image("gateway"), *c["args"])
        time.sleep(2)
        running = engine("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        logs = engine("logs", name).stderr
        assert running == "true", logs
        assert "level=error" not in logs, logs
    finally:
        engine("rm", "-f", "-t", "0", name, check=False)


# ---- SIGTERM: drain, then a clean exit ---------------------------------------------

def test_sigterm_drains_and_exits_cleanly(tmp_path):
    lang = "python" if "python" in runtimes_with_images() else None
    if lang is None:
        pytest.fail("the python runtime image is needed for this test")
    w = Worker(lang, tmp_path, env=["CORRAL_DRAIN_MS=20000"], suffix="-drain")
    try:
        box = {}
        code = "import time\ntime.sleep(3)\nprint('finished')\n"
        t = threading.Thread(target=lambda: box.update(r=w.call(
            {"v": 1, "op": "run", "id": "long", "files": [{"name": "s.py", "content": code}]}, timeout=40)))
        t.start()
        time.sleep(0.7)
        t0 = time.monotonic()
        stopper = threading.Thread(target=lambda: box.update(stop=engine(
            "stop", "-t", "30", w.name, timeout=60), took=time.monotonic() - t0))
        stopper.start()
        # Draining: new work is refused (busy, so a gateway retries elsewhere).
        time.sleep(0.5)
        late = w.call({"v": 1, "op": "run", "id": "late",
                       "files": [{"name": "l.py", "content": "print(1)"}]}, timeout=10)
        assert late["ok"] is False and late["error"]["code"] == "busy", late
        stopper.join(60)
        stop, took = box["stop"], box["took"]
        t.join(10)
        r = box.get("r")
        assert r and r["ok"] and r["run"]["status"] == "ok" and r["run"]["stdout"] == b"finished\n", r
        code_ = engine("inspect", "--format", "{{.State.ExitCode}}", w.name).stdout.strip()
        logs = w.logs()
        record("sigterm_stop_seconds", round(took, 2))
        assert stop.returncode == 0
        assert code_ == "0", (code_, logs)
        assert took > 1.5, took  # waited for the run (exit 0: not SIGKILLed at the timeout)
        assert "all services down" in logs and "msg=draining" in logs, logs
    finally:
        w.remove()
