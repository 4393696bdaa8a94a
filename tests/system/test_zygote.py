"""The fork server (`--zygote on`, docs/runtimes.md "zygote") through a
real worker.

Every test case of every runtime that has a zygote.sh runs again on a
zygote worker and must give exactly what the cold path gives; then what
the zygote must never change: each run in its own sandbox (pid namespace
holding only the run, the slot's uid, no capabilities, seccomp,
no_new_privs, no network, fresh /tmp, no interpreter state from the run
before), limits and usage of the run alone, its whole tree killed at the
end, the server out of reach of the code it forks; then a dead server
(runs go cold), and the refusals of the switch. The run tests go twice:
zygote alone, and with --prewarm on too (the server's child waits in a
prewarmed sandbox for its handoff). Each check runs for every runtime
with a zygote.sh, with the same program written in its language
(PROGRAMS). Nothing is timed here: bench/ measures.
"""
import os
import pathlib
import signal
import subprocess
import threading
import time

import pytest

import test_runtimes as tr

RUNTIMES = tr.RUNTIMES
ZYGOTE = [rt for rt in tr.runtime_names() if (RUNTIMES / rt / "zygote.sh").exists()]
ON = ("--zygote", "on")
MODES = {"zygote": ON, "prewarm+zygote": ON + ("--prewarm", "on")}


def zygote_cases():
    return [(rt, p) for rt, p in tr.all_cases() if rt in ZYGOTE]


def processor():
    b = os.environ.get("CORRAL_BUILD")
    return str(pathlib.Path(b) / "corral-processor" if b else
               RUNTIMES.parent / "build" / "corral-processor")


def level(w):
    return w.call({"v": 1, "op": "info"})["isolation"].split(":")[0]


@pytest.fixture(scope="module", params=sorted(MODES))
def zworker(module_workers, request):
    def get(rt, slots=2):
        tr.require_installed(rt)
        w = module_workers(rt, slots=slots, args=MODES[request.param])
        if level(w) not in ("namespaces", "full"):
            pytest.skip("the zygote needs isolation namespaces or full")
        w.mode = request.param
        return w
    return get


def used_zygote(w):
    """The ready line says the mode, the server never died, and (prewarm)
    no prewarmed sandbox was found unusable."""
    log = w.log()
    return ("accel=%s " % getattr(w, "mode", "zygote") in log and
            "zygote server is gone" not in log and "unusable" not in log)


def server_pids(w):
    """The worker's zygote server(s): its children running zygote.*."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % d).read()
            cmd = open("/proc/%s/cmdline" % d, "rb").read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == w.proc.pid and is_server(cmd):
            out.append(int(d))
    return out


@pytest.mark.parametrize("rt", ZYGOTE)
def test_zygote_entry_files(rt):
    p = RUNTIMES / rt / "zygote.sh"
    assert os.access(p, os.X_OK), "%s is not executable" % p
    assert p.read_bytes().startswith(b"#!"), "%s has no #! line" % p
    assert not (RUNTIMES / rt / "compile.sh").exists()


@pytest.mark.parametrize("rt,path", zygote_cases(),
                         ids=["%s/%s" % (rt, p.name) for rt, p in zygote_cases()])
def test_case_through_zygote(rt, path, zworker):
    w = zworker(rt)
    case = tr.Case(rt, path)
    reply = w.call(case.request())
    if path.name == "env_contract":
        return parent_not_visible(case, reply)
    tr.check_reply(case, reply, False)
    assert used_zygote(w), w.log()


def parent_not_visible(case, reply):
    """The one difference a program can see (docs/runtimes.md, "zygote"):
    its parent, the server's runner, is outside its pid namespace, so
    getppid() is 0 (a cold run's is the keeper, 1) and this case stops
    where it opens /proc/<ppid>; all it printed before is the cold run's."""
    run = reply["run"]
    assert reply["ok"] and run["exit_code"] == 1, reply
    assert b"No such file or directory: '/proc/0/comm'" in run["stderr"], run
    want = case.spec["expect"]["run"]["stdout"].split("wrapped=")[0].encode()
    assert run["stdout"] == want, run


# The programs the tests below run, in each language with a zygote.sh.
# Each prints plain words so that one check fits all; %(port)d is the
# worker's port.
PROGRAMS = {
    "python": ("main.py", {
        # interpreter state and /tmp left by the run before, then the sandbox
        "probe": "import builtins, os\n"
                 "n = getattr(builtins, 'corral_n', 0)\n"
                 "builtins.corral_n = n + 1\n"
                 "open('/tmp/left', 'a').write('x')\n"
                 "st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines()"
                 " if ':\\t' in l)\n"
                 "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
                 "print(n, os.path.getsize('/tmp/left'), os.getuid(), os.getgid(),"
                 " ','.join(map(str, pids)), st['Seccomp'], st['NoNewPrivs'], st['CapEff'],"
                 " st['CapPrm'], st['CapBnd'], 'yes' if os.getsid(0) == os.getpid() else 'no')\n",
        "connect": "import socket\n"
                   "s = socket.socket()\ns.settimeout(2)\n"
                   "try:\n    s.connect(('127.0.0.1', %(port)d)); print('reached')\n"
                   "except OSError as e:\n    print('refused', e.errno)\n",
        "hog": "x = bytearray(200 * 1024 * 1024)\nprint(len(x))\n",
        "spin": "while True:\n    pass\n",
        "flood": "print('y' * 100000)\n",
        "ok": "print('OK')\n",
        "exit7": "import sys\nsys.exit(7)\n",
        "raise": "raise ValueError('boom')\n",
        "kill9": "import os\nos.kill(os.getpid(), 9)\n",
        "env": "import os, sys\n"
               "print(os.environ.get('GREETING'), os.environ['CORRAL_ENTRY'], '|'.join(sys.argv[1:]),"
               " 'yes' if os.environ['HOME'] == os.getcwd() else 'no', sys.stdin.read())\n",
        "daemon": "import os\n"
                  "if os.fork() == 0:\n"
                  "    os.setsid()\n"
                  "    if os.fork() == 0:\n"
                  "        os.execvp('sleep', ['sleep', '60'])\n"
                  "    os._exit(0)\n"
                  "print(os.getuid())\n",
        "reach": "import os, signal\n"
                 "print(os.getppid(), ','.join(sorted(p for p in os.listdir('/proc') if p.isdigit())),"
                 " flush=True)\n"
                 "try:\n    os.kill(-1, signal.SIGKILL)\nexcept OSError:\n    pass\n",
        "sleep": "import time\ntime.sleep(30)\n",
        "say": "print('%(word)s')\n",
    }),
    "ruby": ("main.rb", {
        "probe": "n = $corral_n || 0\n$corral_n = n + 1\n"
                 "File.write('/tmp/left', 'x', mode: 'a')\n"
                 "st = File.read('/proc/self/status').lines.map { |l| l.chomp.split(\":\\t\", 2) }"
                 ".select { |kv| kv.size == 2 }.to_h\n"
                 "pids = Dir.children('/proc').grep(/\\A\\d+\\z/).map(&:to_i).sort\n"
                 "puts [n, File.size('/tmp/left'), Process.uid, Process.gid, pids.join(','),"
                 " st['Seccomp'], st['NoNewPrivs'], st['CapEff'], st['CapPrm'], st['CapBnd'],"
                 " Process.getsid == Process.pid ? 'yes' : 'no'].join(' ')\n",
        "connect": "require 'socket'\n"
                   "begin\n  Socket.tcp('127.0.0.1', %(port)d, connect_timeout: 2)\n  puts 'reached'\n"
                   "rescue SystemCallError => e\n  puts \"refused #{e.errno}\"\nend\n",
        "hog": "x = 'x' * (200 * 1024 * 1024)\nputs x.size\n",
        "spin": "loop {}\n",
        "flood": "puts 'y' * 100000\n",
        "ok": "puts 'OK'\n",
        "exit7": "exit 7\n",
        "raise": "raise ArgumentError, 'boom'\n",
        "kill9": "Process.kill(9, Process.pid)\n",
        "env": "puts [ENV['GREETING'], ENV['CORRAL_ENTRY'], ARGV.join('|'),"
               " ENV['HOME'] == Dir.pwd ? 'yes' : 'no', $stdin.read].join(' ')\n",
        "daemon": "if fork.nil?\n  Process.setsid\n  exec('sleep', '60') if fork.nil?\n  exit!(0)\nend\n"
                  "puts Process.uid\n",
        "reach": "puts \"#{Process.ppid} #{Dir.children('/proc').grep(/\\A\\d+\\z/).sort.join(',')}\"\n"
                 "$stdout.flush\n"
                 "begin\n  Process.kill(:KILL, -1)\nrescue SystemCallError\nend\n",
        "sleep": "sleep 30\n",
        "say": "puts '%(word)s'\n",
    }),
    "php": ("main.php", {
        "probe": "<?php\n$n = $GLOBALS['corral_n'] ?? 0;\n$GLOBALS['corral_n'] = $n + 1;\n"
                 "file_put_contents('/tmp/left', 'x', FILE_APPEND);\nclearstatcache();\n"
                 "$st = [];\nforeach (file('/proc/self/status', FILE_IGNORE_NEW_LINES) as $l) {\n"
                 "    $kv = explode(\":\\t\", $l, 2);\n    if (count($kv) == 2) $st[$kv[0]] = $kv[1];\n}\n"
                 "$pids = array_values(array_filter(scandir('/proc'), 'ctype_digit'));\n"
                 "sort($pids, SORT_NUMERIC);\n"
                 "echo implode(' ', [$n, filesize('/tmp/left'), posix_getuid(), posix_getgid(),"
                 " implode(',', $pids), $st['Seccomp'], $st['NoNewPrivs'], $st['CapEff'],"
                 " $st['CapPrm'], $st['CapBnd'], posix_getsid(0) == posix_getpid() ? 'yes' : 'no']),"
                 " \"\\n\";\n",
        "connect": "<?php\n$s = @fsockopen('127.0.0.1', %(port)d, $errno, $errstr, 2);\n"
                   "echo $s ? 'reached' : \"refused $errno\", \"\\n\";\n",
        "hog": "<?php\n$x = str_repeat('x', 200 * 1024 * 1024);\necho strlen($x), \"\\n\";\n",
        "spin": "<?php\nwhile (true) {}\n",
        "flood": "<?php\necho str_repeat('y', 100000), \"\\n\";\n",
        "ok": "<?php\necho \"OK\\n\";\n",
        "exit7": "<?php\nexit(7);\n",
        "raise": "<?php\nthrow new RuntimeException('boom');\n",
        "kill9": "<?php\nposix_kill(posix_getpid(), 9);\n",
        "env": "<?php\necho implode(' ', [getenv('GREETING'), getenv('CORRAL_ENTRY'),"
               " implode('|', array_slice($argv, 1)), getenv('HOME') == getcwd() ? 'yes' : 'no',"
               " stream_get_contents(STDIN)]), \"\\n\";\n",
        "daemon": "<?php\nif (pcntl_fork() == 0) {\n    posix_setsid();\n"
                  "    if (pcntl_fork() == 0) pcntl_exec('/bin/sleep', ['60']);\n    exit(0);\n}\n"
                  "echo posix_getuid(), \"\\n\";\n",
        "reach": "<?php\n$p = array_filter(scandir('/proc'), 'ctype_digit');\nsort($p, SORT_STRING);\n"
                 "echo posix_getppid(), ' ', implode(',', $p), \"\\n\";\n"
                 "posix_kill(-1, 9);\n",
        "sleep": "<?php\nsleep(30);\n",
        "say": "<?php\necho \"%(word)s\\n\";\n",
    }),
}
# What each language's uncaught error ends with: exit code, stderr piece.
RAISED = {"python": (1, b"ValueError: boom"), "ruby": (1, b"boom (ArgumentError)"),
          "php": (255, b"PHP Fatal error:  Uncaught RuntimeException: boom")}


def prog(rt, name, **fmt):
    """{entry: code} of one of PROGRAMS."""
    entry, progs = PROGRAMS[rt]
    return {entry: (progs[name] % fmt if fmt else progs[name]).encode()}


def sandboxed(out):
    """A probe's line after n, size, uid, gid: pids [1, 2], seccomp filter,
    no_new_privs, no capability, its own session."""
    return out.split(" ", 4)[4] == ("1,2 2 1 0000000000000000 0000000000000000 "
                                     "0000000000000000 yes\n")


def test_programs_cover_every_zygote():
    assert set(ZYGOTE) <= set(PROGRAMS), "no test programs for %s" % (set(ZYGOTE) - set(PROGRAMS))


@pytest.mark.parametrize("rt", ZYGOTE)
def test_each_run_in_its_own_sandbox(rt, zworker):
    """Every run on one slot: no interpreter state or /tmp file of the run
    before, a pid namespace holding only the keeper and the run, the
    slot's uid, seccomp, no_new_privs, no capability, its own session."""
    w = zworker(rt, slots=1)
    uids = set()
    for i in range(4):
        r = w.run(prog(rt, "probe"), id="zprobe-%d" % i)
        assert r["ok"] and r["run"]["status"] == "ok", r
        out = r["run"]["stdout"].decode()
        n, size, uid, gid, _ = out.split(" ", 4)
        assert n == "0", "interpreter state survived a run: %r" % out
        assert size == "1", "/tmp survived a run: %r" % out
        assert sandboxed(out), out
        if os.geteuid() == 0:
            assert int(uid) >= 60000 and uid != "0" and gid != "0", out
        uids.add(uid)
    assert len(uids) == 1
    assert used_zygote(w), w.log()


@pytest.mark.parametrize("rt", ZYGOTE)
def test_no_network(rt, zworker):
    w = zworker(rt)
    r = w.run(prog(rt, "connect", port=w.port))
    assert r["ok"] and r["run"]["stdout"].startswith(b"refused"), r


@pytest.mark.parametrize("rt", ZYGOTE)
def test_limits_and_usage_are_the_runs(rt, zworker):
    """Memory, CPU and output limits hold."""
    w = zworker(rt)
    r = w.run(prog(rt, "hog"), limits={"memory_bytes": 64 << 20})
    assert r["ok"] and r["run"]["status"] == "memory", r["run"]
    r = w.run(prog(rt, "spin"), limits={"cpu_ms": 300, "wall_ms": 30000})
    assert r["ok"] and r["run"]["status"] == "timeout", r["run"]
    # the CPU limit ended it, not the wall limit
    assert r["run"]["cpu_ms"] >= 250 and r["run"]["wall_ms"] < 30000, r["run"]
    r = w.run(prog(rt, "flood"), limits={"output_bytes": 1000})
    assert r["ok"] and r["run"]["status"] == "output", r["run"]
    r = w.run(prog(rt, "ok"))
    assert r["ok"] and r["run"]["status"] == "ok" and r["run"]["stdout"] == b"OK\n", r
    assert used_zygote(w), w.log()


@pytest.mark.parametrize("rt", ZYGOTE)
def test_interpreter_start_is_not_charged(rt, zworker, module_workers):
    """The interpreter start, paid once by the server, is not charged to
    the run: side by side with a cold worker of the same runtime, a
    one-line program's run costs well under half the CPU (a cold run of
    it is mostly the interpreter's start and end)."""
    from conftest import median_cpu_ms
    w = zworker(rt)
    zy, cold = median_cpu_ms([w, module_workers(rt, slots=2)], prog(rt, "ok"))
    assert zy * 2 < cold, "zygote %d ms, cold %d ms: the interpreter start was charged" % (zy, cold)
    assert used_zygote(w), w.log()


@pytest.mark.parametrize("rt", ZYGOTE)
def test_exit_codes_and_errors(rt, zworker):
    w = zworker(rt)
    r = w.run(prog(rt, "exit7"))
    assert r["ok"] and r["run"]["exit_code"] == 7, r
    r = w.run(prog(rt, "raise"))
    code, says = RAISED[rt]
    assert r["ok"] and r["run"]["exit_code"] == code and says in r["run"]["stderr"], r
    assert b"zygote" not in r["run"]["stderr"], r  # the server's frames are not the program's
    r = w.run(prog(rt, "kill9"))
    assert r["ok"] and r["run"]["status"] == "signal" and r["run"]["signal"] == "SIGKILL", r


@pytest.mark.parametrize("rt", ZYGOTE)
def test_env_args_and_stdin_are_the_runs(rt, zworker):
    w = zworker(rt)
    entry = PROGRAMS[rt][0]
    r = w.run(prog(rt, "env"), env={"GREETING": "hi there"}, args=["a", "b c"],
              stdin=b"from stdin")
    assert r["ok"], r
    assert r["run"]["stdout"] == b"hi there %s a|b c yes from stdin\n" % entry.encode(), r


def is_server(cmd):
    """The cmdline of a zygote server, or of its child still waiting in a
    prewarmed sandbox."""
    return any(b"/zygote." in a for a in cmd.split(b"\0"))


@pytest.mark.parametrize("rt", ZYGOTE)
def test_daemon_is_killed_with_the_run(rt, zworker):
    """A double-forked, setsid'd child dies with the run: nothing of the
    slot's uid is left on the host (but, with prewarm, the slot's next
    sandbox waiting: the server's child; the daemon execs sleep), and the
    next run's pid namespace is empty but for itself."""
    w = zworker(rt, slots=1)
    r = w.run(prog(rt, "daemon"))
    assert r["ok"] and r["run"]["status"] == "ok", r
    uid = int(r["run"]["stdout"])
    time.sleep(0.2)
    left = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and os.stat("/proc/" + d).st_uid == uid and uid != os.geteuid():
                cmd = open("/proc/%s/cmdline" % d, "rb").read()
                if not (w.mode == "prewarm+zygote" and is_server(cmd)):
                    left.append((d, cmd))
        except OSError:
            pass
    assert not left, "processes of uid %d outlived the run: %s" % (uid, left)
    r = w.run(prog(rt, "probe"))
    assert sandboxed(r["run"]["stdout"].decode()), r


@pytest.mark.parametrize("rt", ZYGOTE)
def test_server_out_of_reach(rt, zworker):
    """The code a server forked cannot see or signal it: kill(-1) and a
    scan of /proc find nothing but the run, and the server still forks
    for the next runs."""
    w = zworker(rt)
    before = server_pids(w)
    assert len(before) == 1, before
    r = w.run(prog(rt, "reach"))
    assert r["ok"], r
    assert r["run"]["stdout"].startswith(b"0 1,2\n"), r
    r = w.run(prog(rt, "say", word="still"))
    assert r["ok"] and r["run"]["stdout"] == b"still\n", r
    assert server_pids(w) == before
    assert used_zygote(w), w.log()


@pytest.mark.parametrize("rt", ZYGOTE)
def test_cancel_a_zygote_run(rt, zworker):
    w = zworker(rt)
    box = {}
    t = threading.Thread(target=lambda: box.update(r=w.run(prog(rt, "sleep"), id="zcancel-me")))
    t.start()
    deadline = time.time() + 10
    while time.time() < deadline:
        if w.call({"v": 1, "op": "cancel", "id": "zcancel-me"}).get("cancelled"):
            break
        time.sleep(0.05)
    t.join(20)
    assert not t.is_alive()
    assert box["r"]["ok"] is False and box["r"]["error"]["code"] == "cancelled", box["r"]
    r = w.run(prog(rt, "say", word="after"))
    assert r["ok"] and r["run"]["stdout"] == b"after\n", r


@pytest.mark.parametrize("rt", ZYGOTE)
def test_dead_server_runs_cold(rt, worker_factory):
    """The server killed from outside: logged once, every run still served
    (cold while there is none), and a new server started in the background
    serves the runs after it."""
    tr.require_installed(rt)
    w = worker_factory(rt, slots=1, args=ON)
    if level(w) not in ("namespaces", "full"):
        pytest.skip("the zygote needs isolation namespaces or full")
    pids = server_pids(w)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    time.sleep(0.2)
    for i in range(3):
        r = w.run(prog(rt, "say", word="cold %d" % i))
        assert r["ok"] and r["run"]["stdout"] == b"cold %d\n" % i, r
    assert w.log().count("zygote server is gone") == 1, w.log()
    deadline = time.time() + 15
    while "zygote server is back" not in w.log() and time.time() < deadline:
        w.run(prog(rt, "say", word="waiting"))  # a run is what looks for it
        time.sleep(0.1)
    assert "zygote server is back" in w.log(), w.log()
    after = server_pids(w)
    assert len(after) == 1 and after != pids, (pids, after)
    r = w.run(prog(rt, "reach"))
    assert r["ok"] and r["run"]["stdout"].startswith(b"0 1,2\n"), r  # forked: ppid 0
    assert w.alive()


class Server:
    """A runtime's zygote.sh started the way proxy/zygote.c starts it, fed
    jobs by hand: the protocol and the server's failure paths, without a
    worker."""

    def __init__(self, rt, tmp):
        import socket
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.err = open(os.path.join(tmp, "server.err"), "wb+")
        self.proc = subprocess.Popen(
            [str(RUNTIMES / rt / "zygote.sh")], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.err, pass_fds=(3,), start_new_session=True,
            preexec_fn=lambda: os.dup2(theirs.fileno(), 3),
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                 "CORRAL_RUNTIME_DIR": str(RUNTIMES / rt)})
        theirs.close()
        self.sock.settimeout(20)
        assert self.sock.recv(16) == b"ready", self.stderr()

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def job(self, ns, spec, head=None):
        """Sends one job; returns its status (kind, a, b) or None (status
        fd closed without one), and what the run wrote."""
        import socket
        import struct
        fds = [os.open(p, os.O_RDONLY) for p in ns]
        out_r, out_w = os.pipe()
        st_r, st_w = os.pipe()
        spec_fd = os.memfd_create("spec")
        os.write(spec_fd, spec)
        stdin = os.open("/dev/null", os.O_RDONLY)
        fds += [stdin, out_w, out_w, st_w, spec_fd]
        head = head or b"Z\0\0\0" + bytes([len(ns)])
        self.sock.sendmsg([head], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(
            "%di" % len(fds), *fds))])
        for fd in set(fds):
            os.close(fd)
        st, out = read_to_eof(st_r), read_to_eof(out_r)
        return (struct.unpack("=iiiiqq", st)[:3] if st else None), out

    def close(self):
        self.sock.close()
        rc = self.proc.wait(20)
        self.err.close()
        return rc


def read_to_eof(fd, timeout=20):
    """All of a pipe, to EOF (every writer gone); closes it."""
    import select
    data, end = b"", time.time() + timeout
    while True:
        assert select.select([fd], [], [], max(0, end - time.time()))[0], \
            "a writer is still open after %d s: %r" % (timeout, data)
        b = os.read(fd, 4096)
        if not b:
            os.close(fd)
            return data
        data += b


def spec(workdir, entry=None, code=None, drop=0, uid=-1):
    """A run's spec (proxy/zygote.c, px_zygote_spec), no rlimits; with an
    entry, its handoff."""
    head = b"\0".join([b"corral-zygote 1", b"0", b"0", b"%d" % drop, b"%d" % uid, b"%d" % uid,
                       os.fsencode(workdir), b"0"]) + b"\0"
    if entry is None:
        return head
    (pathlib.Path(workdir) / entry).write_bytes(code)
    return head + b"corral-warm 1\0%s\0" % entry.encode() + b"0\0PATH=/usr/bin:/bin\0"


@pytest.mark.parametrize("rt", ZYGOTE)
def test_server_reports_each_failure_and_goes_on(rt, tmp_path):
    """A job that cannot start (namespaces that are not namespaces, a
    malformed spec or header, a work dir that is not there) is reported
    on its own status fd, or dropped with a line on stderr, and the server
    forks the next one; the server holds none of the jobs' fds after them
    (each status fd closes when its run ended)."""
    if os.geteuid() != 0:
        pytest.skip("joins this process's namespaces: needs root")
    tr.require_installed(rt)
    srv = Server(rt, str(tmp_path))
    ours = ["/proc/self/ns/" + n for n in ("mnt", "pid", "net", "ipc", "uts")]
    entry, progs = PROGRAMS[rt]
    try:
        assert srv.job(["/dev/null"] * 5, spec(tmp_path))[0] == (1, 10, 22)  # setns: EINVAL
        assert srv.job(["/dev/null"] * 6, spec(tmp_path))[0] == (1, 10, 22)  # the runner's
        assert srv.job(ours, b"not a spec")[0] == (1, 10, 22)
        assert srv.job(ours, spec(tmp_path / "gone"))[0] == (1, 5, 2)  # chdir: ENOENT
        assert srv.job(ours, spec(tmp_path), head=b"Y\0\0\0\5")[0] is None
        assert "malformed job" in srv.stderr()
        st, out = srv.job(ours, spec(tmp_path, entry, progs["ok"].encode()))
        assert st == (0, 0, 0) and out == b"OK\n", (st, out, srv.stderr())
        st, out = srv.job(ours, spec(tmp_path, entry, progs["exit7"].encode()))
        assert st == (0, 7 << 8, 0), (st, out, srv.stderr())
    finally:
        assert srv.close() == 0, srv.stderr()


@pytest.mark.parametrize("args,says", [
    (("--zygote", "maybe"), "expected on, off or auto"),
    (ON + ("--isolation", "seccomp"), "needs isolation level namespaces or full"),
    (ON + ("--isolation", "none", "--prewarm", "on"), "needs isolation level namespaces or full"),
])
def test_zygote_flag_is_checked(args, says, tmp_path):
    p = subprocess.run([processor(), "--runtime-dir", str(RUNTIMES / "python"),
                        "--listen", "ipc://%s/w" % tmp_path] + list(args),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and says in p.stderr, p


def test_runtime_without_zygote_refused(tmp_path):
    p = subprocess.run([processor(), "--runtime-dir", str(RUNTIMES / "bash"),
                        "--listen", "ipc://%s/w" % tmp_path] + list(ON),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "has no fork server" in p.stderr, p


@pytest.mark.parametrize("rt", ZYGOTE)
def test_info_says_zygote(rt, zworker):
    w = zworker(rt)
    assert w.call({"v": 1, "op": "info"})["accel"] == w.mode


@pytest.mark.parametrize("rt", ZYGOTE)
def test_unprivileged_worker(rt):
    """Without root (namespaces through a user namespace) the server's
    child joins the keeper's user namespace first: a run is in its own
    pid namespace, seccomp'd, without capabilities or network."""
    import select
    import shutil
    import tempfile
    import sp
    tr.require_installed(rt)
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to run the worker as another user")
    d = tempfile.mkdtemp(prefix="corral-zygote-nobody.")
    os.chmod(d, 0o777)
    rfd, wfd = os.pipe()
    log = open(os.path.join(d, "log"), "wb")
    proc = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             processor(), "--runtime-dir", str(RUNTIMES / rt),
                             "--state-dir", d + "/state", "--isolation", "namespaces",
                             "--listen", "ipc://%s/w" % d, "--slots", "1",
                             "--notify-fd", str(wfd)] + list(ON),
                            pass_fds=(wfd,), stdout=log, stderr=log)
    os.close(wfd)
    try:
        ready = select.select([rfd], [], [], 20)[0] and os.read(rfd, 8)
        text = open(os.path.join(d, "log")).read()
        if not ready and "namespaces" in text and "--zygote" not in text:
            pytest.skip("level namespaces is not available without root here: " + text)
        assert ready == b"\n", text
        assert "accel=zygote" in text and "ns(pid,mnt,net,ipc,uts,user)" in text, text
        (name, code), = prog(rt, "probe").items()
        msg = {"v": 1, "op": "run", "id": "nobody", "files": [{"name": name, "content": code}]}
        for _ in range(2):
            r = sp.call("ipc://%s/w" % d, msg, 30)
            assert r["ok"] and r["run"]["status"] == "ok", r
            out = r["run"]["stdout"].decode()
            assert out.startswith("0 1 0 0 ") and sandboxed(out), out
    finally:
        os.close(rfd)
        proc.terminate()
        proc.wait(30)
        log.close()
        shutil.rmtree(d, ignore_errors=True)
