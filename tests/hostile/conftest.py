"""Fixtures of the hostile-code suite: real corral-processor workers (the
system tests' Worker), one per isolation level, chosen through the
CORRAL_ISOLATION environment variable that px_init reads. A level this
machine cannot give is skipped with the worker's own error as reason."""
import importlib.util
import pathlib

import pytest

_sys = pathlib.Path(__file__).resolve().parents[1] / "system" / "conftest.py"
_spec = importlib.util.spec_from_file_location("corral_system_conftest", _sys)
system = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(system)
Worker = system.Worker
sp = system.sp
import os  # noqa: E402
# Our own slot uids: the system tests' range (62000+) is the same in every
# pytest session, and a concurrent session's processes would look like ours.
system._uid_bases = iter(range(64000 + (os.getpid() % 400) * 32, 90000, 16))

LEVELS = ["none", "seccomp", "namespaces", "full"]
ORDER = {l: i for i, l in enumerate(LEVELS)}


# Each level cold and with prewarmed sandboxes (--prewarm on): a warm
# process serves one invocation, so every case must hold the same way.
# And with the fork server (--zygote on; with --prewarm on too, its child
# waits in the prewarmed sandbox), which exists only at the namespace
# levels (the worker refuses it below them).
MODES = ["cold", "prewarm", "zygote", "prewarm+zygote"]
PARAMS = [(l, m) for m in MODES for l in LEVELS
          if "zygote" not in m or ORDER[l] >= ORDER["namespaces"]]
# And a worker that is not root (uid 65534: an unprivileged pod), at level
# namespaces (a user namespace), cold and with its fork server: the level
# docs/isolation.md recommends there. Not every mode: the non-root path
# differs from root's in the sandbox's making (user namespace, no slot
# uid, no cgroup here), which cold and zygote runs cover; prewarm adds
# nothing of its own to it and would make the suite a third longer. Below
# namespaces a non-root worker refuses runs with memory or pids limits
# (tests/system/test_processor.py, test_isolation_nonroot_limits), so the
# cases here cannot run there.
NONROOT_UID = 65534
PARAMS += [("namespaces", m, "nonroot") for m in ("cold", "zygote")]


def param_id(p):
    return "-".join(p)


@pytest.fixture(scope="module", params=PARAMS, ids=[param_id(p) for p in PARAMS])
def hw(request, tmp_path_factory):
    """A python worker (2 slots) at one isolation level, shared by a module."""
    level, mode = request.param[:2]
    nonroot = request.param[2:] == ("nonroot",)
    if nonroot and os.geteuid() != 0:
        pytest.skip("needs root to start a worker as uid %d" % NONROOT_UID)
    tmp = tmp_path_factory.mktemp("hostile-%s" % param_id(request.param))
    env = {"CORRAL_ISOLATION": level, "CORRAL_WORKDIR_BYTES": "32M",
           "CORRAL_PREWARM": "on" if "prewarm" in mode else "off",
           "CORRAL_ZYGOTE": "on" if "zygote" in mode else "off"}
    try:
        w = Worker("python", slots=2, env=env, tmp=str(tmp),
                   as_uid=NONROOT_UID if nonroot else None)
    except RuntimeError as e:
        pytest.skip("isolation level %s is not available here%s: %s"
                    % (level, " as uid %d" % NONROOT_UID if nonroot else "", e))
    info = w.call({"v": 1, "op": "info"})
    assert info["isolation"].startswith(level + ":"), info["isolation"]
    w.level = level
    w.rank = ORDER[level]
    w.prewarm = "prewarm" in mode
    assert "accel=%s " % (mode if mode != "cold" else "none") in w.log(), w.log()
    args = w.proc.args
    w.uid_base = int(args[args.index("--uid-base") + 1]) if "--uid-base" in args else None
    w.nonroot = nonroot
    yield w
    w.stop()


# The other fork servers (ruby, php): their representative cases
# (test_hostile_zygotes.py) at the namespace levels, zygote alone and with
# prewarm.
ZYGOTE_RUNTIMES = ["ruby", "php"]
ZPARAMS = [(rt, l, m) for rt in ZYGOTE_RUNTIMES for m in MODES if "zygote" in m
           for l in LEVELS if ORDER[l] >= ORDER["namespaces"]]


@pytest.fixture(scope="module", params=ZPARAMS, ids=["%s-%s-%s" % p for p in ZPARAMS])
def zhw(request, tmp_path_factory):
    """A ruby or php worker (2 slots) with its fork server, at one level."""
    rt, level, mode = request.param
    if system_runtime_missing(rt):
        pytest.skip("%s is not installed here" % rt)
    tmp = tmp_path_factory.mktemp("hostile-%s-%s-%s" % request.param)
    env = {"CORRAL_ISOLATION": level, "CORRAL_WORKDIR_BYTES": "32M",
           "CORRAL_PREWARM": "on" if "prewarm" in mode else "off", "CORRAL_ZYGOTE": "on"}
    try:
        w = Worker(rt, slots=2, env=env, tmp=str(tmp))
    except RuntimeError as e:
        pytest.skip("isolation level %s is not available here: %s" % (level, e))
    assert "accel=%s " % mode in w.log(), w.log()
    w.rt, w.level, w.rank, w.prewarm = rt, level, ORDER[level], "prewarm" in mode
    args = w.proc.args
    w.uid_base = int(args[args.index("--uid-base") + 1]) if "--uid-base" in args else None
    yield w
    w.stop()


def system_runtime_missing(rt):
    """True when the runtime's version command fails here (as the system
    tests tell an installed runtime)."""
    import subprocess
    conf = pathlib.Path(__file__).resolve().parents[2] / "runtimes" / rt / "runtime.conf"
    cmd = [l.split("=", 1)[1].strip() for l in conf.read_text().splitlines()
           if l.strip().startswith("version")][0]
    return subprocess.run(["/bin/sh", "-c", cmd], capture_output=True).returncode != 0
