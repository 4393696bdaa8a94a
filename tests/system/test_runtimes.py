"""Runtimes through the real processor: every test case of every runtime.

A runtime's cases are data, not code (docs/runtimes.md, "Test cases"):

    tests/runtimes/<lang>/<case>/
        files/...     the program, sent with these relative paths
        stdin         optional: bytes given on stdin
        case.json     what to send (entry, args, env, limits) and `expect`

(They live outside runtimes/<lang>/ on purpose: a worker copies its whole
runtime dir at every start, and the cases made that copy, and so every
restart, several times slower.)

so a language maintainer adds a case by adding a folder, and this one
generic module runs it on a worker of that runtime. A runtime whose
toolchain is not installed here (its `version` command fails) is skipped
with the reason, never passed. Besides the cases, it checks each runtime's
files (runtime.conf, runtime.sh, the case folders themselves, so a typo in
an expectation is an error and not a silently weaker test) and that the
worker's `info` reports what runtime.conf says.
"""
import json
import os
import pathlib
import subprocess

import pytest

RUNTIMES = pathlib.Path(__file__).resolve().parents[2] / "runtimes"
CASES = pathlib.Path(__file__).resolve().parents[1] / "runtimes"

CONF_KEYS = {"name", "aliases", "version"}
CASE_KEYS = {"about", "entry", "args", "stdin", "env", "limits",
             "compile_limits", "expect"}
STAGE_KEYS = {"status", "exit_code", "signal", "stdout", "stderr",
              "stdout_contains", "stderr_contains", "stdout_lacks", "stderr_lacks",
              "stdout_truncated", "stderr_truncated"}
STATUSES = {"ok", "exit", "signal", "timeout", "memory", "output"}
# Every runtime carries at least these cases (its error case is named
# after the language's way to fail: exception, error, segfault...).
REQUIRED_CASES = {"hello", "stdin_echo", "args", "exit_code", "unicode",
                  "multifile"}
# The PATH the proxy gives a stage; the version command is run with it
# too, so that it names the interpreter runtime.sh will really exec.
STAGE_PATH = "/usr/local/bin:/usr/bin:/bin"


# ---- runtime.conf ----------------------------------------------------------

def parse_conf(path):
    """runtime.conf -> dict; ValueError naming the line for anything else
    than `key = value`, a comment or a blank line."""
    conf = {}
    for n, raw in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise ValueError("%s:%d: expected `key = value`: %r" % (path, n, raw))
        if key not in CONF_KEYS:
            raise ValueError("%s:%d: unknown key %r" % (path, n, key))
        if key in conf:
            raise ValueError("%s:%d: %r given twice" % (path, n, key))
        conf[key] = value
    for key in ("name", "version"):
        if key not in conf:
            raise ValueError("%s: no %r" % (path, key))
    return conf


def runtime_names():
    return sorted(p.name for p in RUNTIMES.iterdir() if (p / "runtime.conf").is_file())


_versions = {}


def host_version(rt):
    """The runtime's version as its `version` command prints it here, or
    None (with the reason) when the toolchain is missing."""
    if rt not in _versions:
        conf = parse_conf(RUNTIMES / rt / "runtime.conf")
        env = dict(os.environ, PATH=STAGE_PATH)
        p = subprocess.run(["/bin/sh", "-c", conf["version"]], env=env,
                           capture_output=True, timeout=60)
        out = p.stdout.decode(errors="replace").splitlines()
        if p.returncode != 0 or not out or not out[0].strip():
            _versions[rt] = (None, "version command %r failed (exit %d): %s" % (
                conf["version"], p.returncode, p.stderr.decode(errors="replace").strip()))
        else:
            _versions[rt] = (out[0].strip(), "")
    return _versions[rt]


def require_installed(rt):
    version, why = host_version(rt)
    if version is None:
        pytest.skip("runtime %s not installed on this host: %s" % (rt, why))
    return version


# ---- test cases ------------------------------------------------------------

class Case:
    """One folder of tests/runtimes/<rt>/, loaded and validated."""

    def __init__(self, rt, path):
        self.rt, self.path, self.name = rt, pathlib.Path(path), pathlib.Path(path).name
        spec = json.loads((self.path / "case.json").read_text())
        self.spec = spec
        bad = set(spec) - CASE_KEYS
        if bad:
            raise ValueError("%s: unknown keys %s" % (self.where, sorted(bad)))
        if "expect" not in spec or not isinstance(spec["expect"], dict):
            raise ValueError("%s: no `expect` map" % self.where)
        for stage, exp in spec["expect"].items():
            if stage not in ("compile", "run"):
                raise ValueError("%s: expect.%s: only compile and run" % (self.where, stage))
            if exp is None:
                continue
            bad = set(exp) - STAGE_KEYS
            if bad:
                raise ValueError("%s: expect.%s: unknown keys %s" % (self.where, stage, sorted(bad)))
            if "status" in exp and exp["status"] not in STATUSES:
                raise ValueError("%s: expect.%s.status %r" % (self.where, stage, exp["status"]))
        if "run" not in spec["expect"]:
            raise ValueError("%s: expect.run missing (null: the run must not happen)" % self.where)
        self.files = self._load_files()
        self.entry = spec.get("entry")
        if self.entry is None:
            if len(self.files) != 1:
                raise ValueError("%s: several files: say which is the `entry`" % self.where)
            self.entry = next(iter(self.files))
        if self.entry not in self.files:
            raise ValueError("%s: entry %r is not in files/" % (self.where, self.entry))
        stdin_file = self.path / "stdin"
        if stdin_file.exists() and "stdin" in spec:
            raise ValueError("%s: stdin both as a file and in case.json" % self.where)
        self.stdin = stdin_file.read_bytes() if stdin_file.exists() else \
            spec.get("stdin", "").encode()

    @property
    def where(self):
        return "tests/runtimes/%s/%s" % (self.rt, self.name)

    def _load_files(self):
        root = self.path / "files"
        if not root.is_dir():
            raise ValueError("%s: no files/ folder" % self.where)
        files = {}
        for p in sorted(root.rglob("*")):
            if p.is_file():
                files[p.relative_to(root).as_posix()] = p.read_bytes()
        if not files:
            raise ValueError("%s: files/ is empty" % self.where)
        return files

    def request(self):
        """The run request, entry first (the protocol's default entry)."""
        names = [self.entry] + [n for n in self.files if n != self.entry]
        msg = {"v": 1, "op": "run", "id": "case-%s-%s" % (self.rt, self.name),
               "files": [{"name": n, "content": self.files[n]} for n in names],
               "entry": self.entry, "stdin": self.stdin}
        for key in ("args", "env", "limits", "compile_limits"):
            if key in self.spec:
                msg[key] = self.spec[key]
        return msg


def all_cases():
    """(runtime, case folder) for every case folder of every runtime."""
    out = []
    for rt in runtime_names():
        tests = CASES / rt
        if tests.is_dir():
            out += [(rt, p) for p in sorted(tests.iterdir()) if p.is_dir()]
    return out


def _text(v):
    return v.encode() if isinstance(v, str) else v


def check_stage(where, stage, got, exp):
    """Assert one stage map of a reply against its expectation; the
    message shows what ran, so a failure explains itself."""
    shown = "%s: %s stage was %r" % (where, stage, {
        k: got.get(k) for k in ("status", "exit_code", "signal", "stdout", "stderr")})
    for key in ("status", "exit_code", "signal", "stdout_truncated", "stderr_truncated"):
        if key in exp:
            assert got.get(key) == exp[key], "%s; expected %s=%r" % (shown, key, exp[key])
    for key in ("stdout", "stderr"):
        if key in exp:
            assert got[key] == _text(exp[key]), "%s; expected %s=%r" % (shown, key, exp[key])
        want = exp.get(key + "_contains", [])
        for piece in [want] if isinstance(want, str) else want:
            assert _text(piece) in got[key], "%s; expected %s to contain %r" % (shown, key, piece)
        unwanted = exp.get(key + "_lacks", [])
        for piece in [unwanted] if isinstance(unwanted, str) else unwanted:
            assert _text(piece) not in got[key], "%s; expected %s without %r" % (shown, key, piece)
    # Whatever the case: chunks account for exactly the bytes kept.
    chunks = got.get("chunks", [])
    assert sum(c for c in chunks if c > 0) == len(got["stdout"]), shown
    assert -sum(c for c in chunks if c < 0) == len(got["stderr"]), shown


def check_reply(case, reply, compiled):
    where = case.where
    assert reply.get("ok") is True, "%s: reply not ok: %r" % (where, reply.get("error"))
    exp = case.spec["expect"]
    if compiled:
        assert "compile" in reply, "%s: compiled runtime but no compile stage" % where
        check_stage(where, "compile", reply["compile"],
                    exp.get("compile") or {"status": "ok"})
    else:
        assert "compile" not in reply, "%s: compile stage from a runtime without compile.sh" % where
        assert "compile" not in exp, "%s: expects a compile stage; runtime has no compile.sh" % where
    if exp["run"] is None:
        assert "run" not in reply, "%s: run stage present: %r" % (where, reply.get("run"))
    else:
        assert "run" in reply, "%s: no run stage (compile: %r)" % (where, reply.get("compile"))
        check_stage(where, "run", reply["run"], exp["run"])


# ---- the tests -------------------------------------------------------------

@pytest.mark.parametrize("rt", runtime_names())
def test_runtime_files(rt):
    """The runtime dir follows the contract, whether or not installed."""
    d = RUNTIMES / rt
    conf = parse_conf(d / "runtime.conf")
    assert conf["name"] == rt, "runtime.conf name %r but dir %s" % (conf["name"], rt)
    for script in ("runtime.sh", "compile.sh"):
        p = d / script
        if script == "compile.sh" and not p.exists():
            continue
        assert os.access(p, os.X_OK), "%s is not executable" % p
        assert p.read_bytes().startswith(b"#!"), "%s has no #! line" % p
    assert not (d / "tests").exists(), "test cases belong in tests/runtimes/%s" % rt
    cases = {p.name for p in (CASES / rt).iterdir() if p.is_dir()} if (CASES / rt).is_dir() else set()
    missing = REQUIRED_CASES - cases
    assert not missing, "tests/runtimes/%s lacks cases %s" % (rt, sorted(missing))
    for p in sorted((CASES / rt).iterdir()):
        Case(rt, p)  # raises on a malformed case


@pytest.mark.parametrize("rt", runtime_names())
def test_info_matches_conf(rt, module_workers):
    version = require_installed(rt)
    conf = parse_conf(RUNTIMES / rt / "runtime.conf")
    reply = module_workers(rt).call({"v": 1, "op": "info"})
    assert reply["ok"] is True, reply
    info = reply["runtime"]
    assert info["name"] == conf["name"]
    assert info["version"] == version
    assert info["aliases"] == conf.get("aliases", "").split()
    assert info["compiled"] == (RUNTIMES / rt / "compile.sh").exists()


@pytest.mark.parametrize("rt,path", all_cases(),
                         ids=["%s/%s" % (rt, p.name) for rt, p in all_cases()])
def test_case(rt, path, module_workers):
    require_installed(rt)
    case = Case(rt, path)
    reply = module_workers(rt).call(case.request())
    check_reply(case, reply, (RUNTIMES / rt / "compile.sh").exists())


def test_conf_parser_rejects_what_the_contract_does_not_allow(tmp_path):
    """The checker of runtime.conf itself: a bad file must not pass."""
    good = "# c\n\nname = x\naliases = a b\nversion = PATH=/bin; echo 1\n"
    (tmp_path / "runtime.conf").write_text(good)
    assert parse_conf(tmp_path / "runtime.conf") == {
        "name": "x", "aliases": "a b", "version": "PATH=/bin; echo 1"}
    for bad, why in (("name x\nversion = v\n", "key = value"),
                     ("name = x\nversion = v\ncolour = red\n", "unknown key"),
                     ("name = x\nname = y\nversion = v\n", "given twice"),
                     ("name = x\n", "'version'"),
                     ("= x\nname = x\nversion = v\n", "key = value")):
        (tmp_path / "runtime.conf").write_text(bad)
        with pytest.raises(ValueError, match=why):
            parse_conf(tmp_path / "runtime.conf")


def test_case_loader_rejects_typos(tmp_path):
    """A misspelt expectation must be an error, not a weaker test."""
    d = tmp_path / "typo"
    (d / "files").mkdir(parents=True)
    (d / "files" / "a.sh").write_text("echo hi\n")
    for spec, why in (({"expect": {"run": {"stdout_contain": "hi"}}}, "unknown keys"),
                      ({"expect": {"run": {"status": "fine"}}}, "status"),
                      ({"expect": {"compile": {}}}, "expect.run missing"),
                      ({"args": [], "expekt": {}}, "unknown keys"),
                      ({"entry": "b.sh", "expect": {"run": None}}, "not in files")):
        (d / "case.json").write_text(json.dumps(spec))
        with pytest.raises(ValueError, match=why):
            Case("bash", d)
    (d / "case.json").write_text(json.dumps({"expect": {"run": {"stdout": "hi\n"}}}))
    case = Case("bash", d)
    assert case.entry == "a.sh" and case.request()["files"][0]["name"] == "a.sh"
