"""Hostile code against a real worker, at every isolation level this
machine allows (see conftest.py). Each case is a real program of a shipped
runtime (python); each asserts the status reported and that the worker is
healthy and clean afterwards: it still answers, the next invocation runs
and sees nothing of this one, and no process of the slot is left.

Network cases only ever target loopback, or TEST-NET-1 (192.0.2.1) from
inside an empty network namespace; they are not run at the levels without
one, so no real traffic leaves the host."""
import ast
import glob
import hashlib
import os
import socket
import threading
import time

import pytest

LIM = {"wall_ms": 5000, "cpu_ms": 5000, "memory_bytes": 128 << 20, "pids": 64,
       "output_bytes": 1 << 20, "file_bytes": 16 << 20}


def run(w, code, limits=None, **kw):
    lim = dict(LIM)
    lim.update(limits or {})
    r = w.run({"main.py": code}, limits=lim, **kw)
    assert r["ok"] is True, r
    return r["run"]


def is_warm(pid):
    """A prewarmed sandbox's interpreter, waiting for its one invocation
    (it runs as the slot uid between runs, by design; with the fork server
    it is the server's child, zygote.py, .rb or .php), or that sandbox
    being started: the stage process before its exec (still the
    processor's image) or warm.sh before it execs python3."""
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
        with open("/proc/%s/comm" % pid) as f:
            comm = f.read().strip()
    except OSError:
        return False
    # comm, not /proc/PID/exe: the stage is not dumpable, so its exe link
    # may not be readable; comm is the processor's (the keeper's, at the
    # namespace levels) until the exec.
    return ((argv[:3] == [b"python3", b"-B", b"--"] and
             (argv[3].endswith(b"/runtime/warm.py") or argv[3].endswith(b"/runtime/zygote.py")))
            or (argv[:2] == [b"ruby", b"--"] and argv[2].endswith(b"/runtime/zygote.rb"))
            or (argv[:2] == [b"php", b"-f"] and argv[2].endswith(b"/runtime/zygote.php"))
            or any(a.endswith(b"/runtime/warm.sh") for a in argv[:2])
            or comm in ("corral-processo", "corral-keeper", "warm.sh"))


def slot_processes(w, settle_s=1.0):
    """Processes of the worker's slot uids (root); a prewarm worker's
    waiting sandboxes (one per slot at most) left out. A sandbox being
    started or replaced while we look (it execs into its interpreter or
    goes away within moments) is not a leftover: what remains after
    settle_s is."""
    deadline = time.monotonic() + settle_s
    while True:
        found = slot_processes_now(w)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def descendants(root):
    """{pid: status text} of root's descendants."""
    procs = {}
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/status" % pid) as f:
                procs[pid] = f.read()
        except OSError:
            continue
    ppid = {p: st.split("PPid:")[1].split()[0] for p, st in procs.items() if "PPid:" in st}
    out, todo = {}, [str(root)]
    while todo:
        parent = todo.pop()
        for p, pp in ppid.items():
            if pp == parent and p not in out:
                out[p] = procs[p]
                todo.append(p)
    return out


def slot_processes_now(w):
    if getattr(w, "nonroot", False):
        # no slot uid: what runs below the worker but its own helpers (the
        # forker, keepers and stages before their exec: its image), its
        # fork server or a waiting prewarmed sandbox
        return [(p, st.split("\n")[0]) for p, st in descendants(w.proc.pid).items()
                if not st.split()[1].startswith("corral-") and not is_warm(p)]
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/status" % pid) as f:
                st = f.read()
        except OSError:
            continue
        uid = int(st.split("Uid:")[1].split()[0])
        if w.uid_base is not None and w.uid_base <= uid < w.uid_base + 2:
            found.append((pid, uid, st.split("\n")[0]))
    if getattr(w, "prewarm", False):
        warm = [p for p in found if is_warm(p[0])]
        assert len({p[1] for p in warm}) == len(warm), "two warm sandboxes on a slot: %r" % warm
        found = [p for p in found if p not in warm]
    return [(p[0], p[2]) for p in found]


def healthy(w):
    assert w.alive(), w.log()
    assert w.call({"v": 1, "op": "ping"})["ok"] is True
    r = run(w, "import os\nprint('OK', sorted(os.listdir('.')))")
    assert r["status"] == "ok", r
    assert r["stdout"] == b"OK ['main.py']\n", r
    deadline = time.time() + 15
    while slot_processes(w) and time.time() < deadline:
        time.sleep(0.05)
    assert slot_processes(w) == []


def need(w, level, why):
    """Skips (visibly) a case that the worker's level does not cover."""
    if w.rank < ["none", "seccomp", "namespaces", "full"].index(level):
        pytest.skip("level %s: %s" % (w.level, why))


# ---- resources ---------------------------------------------------------------

def test_fork_bomb(hw):
    r = run(hw, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
            {"wall_ms": 2000, "pids": 32})
    # contained: by the pids limit (exit, signal, ok), the wall limit, or
    # the memory limit (32 copies of an interpreter can outgrow 128 MiB)
    assert r["status"] in ("timeout", "ok", "exit", "signal", "memory"), r
    healthy(hw)


def test_memory_hog(hw):
    r = run(hw, "b = bytearray(512 << 20)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nprint('survived')",
            {"memory_bytes": 64 << 20})
    assert r["stdout"] == b""
    if hw.uid_base is not None:
        assert r["status"] == "memory", r
        assert r["memory_bytes"] <= 64 << 20
    else:
        assert r["status"] in ("memory", "exit"), r  # RLIMIT_DATA: MemoryError
    healthy(hw)


# Memory a run shares rather than owns: RLIMIT_DATA does not count it. A
# memory cgroup charges it (status memory); without one (a non-root
# worker here) it is refused: anonymous shared mappings get ENOMEM (12),
# /dev/zero cannot be mapped (ENODEV, 19: it is /dev/full), memfd_create
# is ENOSYS (38), /dev/shm is a 16 MiB tmpfs (ENOSPC, 28). Never may the
# 256 MiB be had under a 64 MiB limit.
SHARED = {
    "anon": "import mmap\nm = mmap.mmap(-1, 256 << 20, flags=mmap.MAP_SHARED)\n",
    "devzero": "import mmap, os\nm = mmap.mmap(os.open('/dev/zero', os.O_RDWR), 256 << 20,"
               " flags=mmap.MAP_SHARED)\n",
    "memfd": "import mmap, os\nfd = os.memfd_create('x')\nos.ftruncate(fd, 256 << 20)\n"
             "m = mmap.mmap(fd, 256 << 20, flags=mmap.MAP_SHARED)\n",
}
TOUCH = "for i in range(0, len(m), 4096):\n    m[i] = 1\nprint('survived')\n"


@pytest.mark.parametrize("how", sorted(SHARED))
def test_shared_memory_hog(hw, how):
    r = run(hw, SHARED[how] + TOUCH, {"memory_bytes": 64 << 20, "file_bytes": 256 << 20})
    assert r["stdout"] == b"", r
    if r["status"] != "memory":
        errno = {"anon": 12, "devzero": 19, "memfd": 38}[how]
        assert r["status"] == "exit" and b"[Errno %d]" % errno in r["stderr"], r
    healthy(hw)


def test_shm_file_hog(hw):
    need(hw, "namespaces", "/dev/shm is the host's (no mount namespace): not filled")
    r = run(hw, "f = open('/dev/shm/hog', 'wb')\nfor i in range(256):\n    f.write(b'x' * (1 << 20))\n"
                "    f.flush()\nprint('survived')\n",
            {"memory_bytes": 64 << 20, "file_bytes": 256 << 20})
    assert r["stdout"] == b"", r
    assert r["status"] == "memory" or (r["status"] == "exit" and b"[Errno 28]" in r["stderr"]), r
    healthy(hw)


def test_fork_bomb_counted(hw):
    """pids 32: at most 31 children beside the program, whatever enforces
    it (pids cgroup, RLIMIT_NPROC of a slot uid or of the run's user
    namespace). Stops at 200 by itself, so an unenforced limit fails the
    test rather than the machine."""
    r = run(hw, "import os, time\nn = 0\nwhile n < 200:\n    try:\n        pid = os.fork()\n"
                "    except OSError as e:\n        print('refused', e.errno)\n        break\n"
                "    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n    n += 1\n"
                "print('forked', n)\n", {"pids": 32, "wall_ms": 10000})
    assert r["status"] == "ok", r
    out = r["stdout"].decode().split()
    assert out[:2] == ["refused", "11"] and int(out[-1]) <= 31, r  # EAGAIN
    healthy(hw)


def test_tmpfs_fill(hw):
    need(hw, "namespaces", "/tmp is the host's (no mount namespace): not filled")
    r = run(hw, "import os\nf = open('/tmp/fill', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n    f.flush()\n",
            {"memory_bytes": 48 << 20, "file_bytes": 128 << 20})
    assert r["status"] in ("memory", "exit"), r  # memcg charge, or ENOSPC
    healthy(hw)


def test_cpu_loop(hw):
    r = run(hw, "while True:\n    pass", {"cpu_ms": 500, "wall_ms": 30000})
    # the CPU limit ended it, not the wall limit
    assert r["status"] == "timeout" and r["cpu_ms"] >= 400 and r["wall_ms"] < 30000, r
    healthy(hw)


def test_sleep_forever(hw):
    r = run(hw, "import time\nprint('zz', flush=True)\ntime.sleep(3600)", {"wall_ms": 800})
    assert r["status"] == "timeout" and r["stdout"] == b"zz\n", r
    assert 800 <= r["wall_ms"] < 3600 * 1000  # at its limit, not before; killed, not waited for
    healthy(hw)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_flood(hw, stream):
    r = run(hw, "import sys\nwhile True:\n    sys.%s.write('A' * 65536)\n" % stream,
            {"output_bytes": 100000})
    assert r["status"] == "output", r
    assert r[stream] == b"A" * 100000 and r[stream + "_truncated"] is True
    healthy(hw)


def test_disk_fill_workdir(hw):
    if hw.uid_base is None:
        pytest.skip("not root: work dirs are plain folders on the host disk, not filled")
    r = run(hw, "import os\ni = 0\ntry:\n    while True:\n        with open('f%d' % i, 'wb') as f:\n"
                "            f.write(b'x' * (4 << 20))\n        i += 1\nexcept OSError as e:\n"
                "    print(e.errno, i)\n", {"memory_bytes": 256 << 20})
    # the slot's 32 MiB tmpfs ends it: ENOSPC (28), or the memory limit
    assert r["status"] in ("ok", "memory"), r
    if r["status"] == "ok":
        assert r["stdout"].startswith(b"28 "), r
    healthy(hw)


def test_many_open_files(hw):
    r = run(hw, "fs = []\ntry:\n    while True:\n        fs.append(open('/dev/null'))\n"
                "except OSError as e:\n    print(e.errno, len(fs) > 1000)\n")
    assert r["status"] == "ok" and r["stdout"] == b"24 True\n", r  # EMFILE
    healthy(hw)


def test_zombie_factory(hw):
    r = run(hw, "import os, time\nfor i in range(300):\n    if os.fork() == 0:\n        os._exit(0)\n"
                "time.sleep(0.3)\nprint('made')", {"pids": 64})
    assert r["status"] in ("ok", "exit"), r  # pids limit may stop the forks
    healthy(hw)


def test_closed_stdout_keeps_running(hw):
    r = run(hw, "import os, time\nos.close(1)\nos.close(2)\ntime.sleep(3600)", {"wall_ms": 700})
    assert r["status"] == "timeout", r
    healthy(hw)


def test_binary_garbage(hw):
    r = run(hw, "import os, sys, hashlib\nb = os.urandom(200000) + 'é\\u2603\\udcff'.encode('utf-8', 'surrogatepass')\n"
                "sys.stdout.buffer.write(b)\nsys.stderr.write(hashlib.sha256(b).hexdigest())")
    assert r["status"] == "ok", r
    assert hashlib.sha256(r["stdout"]).hexdigest().encode() == r["stderr"]
    healthy(hw)


def test_daemon_outliving_the_run(hw):
    r = run(hw, "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                "        time.sleep(3600)\n    os._exit(0)\nprint('parent done')")
    assert r["status"] == "ok", r
    healthy(hw)  # includes: no process of the slot left


# ---- the next user -----------------------------------------------------------

def test_no_persistence(hw):
    r = run(hw, "import os\nfor p in [os.environ['HOME'] + '/planted', os.environ['TMPDIR'] + '/planted',"
                " '/tmp/planted-corral', '/dev/shm/planted-corral']:\n    try:\n"
                "        open(p, 'w').write('x')\n        print('wrote', p)\n    except OSError as e:\n"
                "        print('no', p, e.errno)\n")
    assert r["status"] == "ok", r
    r2 = run(hw, "import os\nfor p in [os.environ['HOME'] + '/planted', os.environ['TMPDIR'] + '/planted',"
                 " '/tmp/planted-corral', '/dev/shm/planted-corral']:\n    print(p, os.path.exists(p))\n")
    seen = [l for l in r2["stdout"].decode().splitlines() if l.endswith("True")]
    if hw.rank < 2:
        # no mount namespace: the host's /tmp and /dev/shm are shared
        seen = [l for l in seen if "/tmp/planted-corral" not in l and "/dev/shm/" not in l]
        for p in ("/tmp/planted-corral", "/dev/shm/planted-corral"):
            if os.path.exists(p):
                os.unlink(p)
    assert seen == [], r2
    healthy(hw)


def test_other_work_dirs(hw):
    """Slot 0 holds a secret in its work dir; slot 1 tries to read it."""
    box = {}

    def holder():
        box["r"] = run(hw, "import os, time\nopen('secret', 'w').write('s3cr3t')\n"
                           "print(os.getcwd(), flush=True)\ntime.sleep(2)", {"wall_ms": 4000})
    t = threading.Thread(target=holder)
    t.start()
    time.sleep(0.7)
    r = run(hw, "import glob, os\nhits = []\nbase = os.path.dirname(os.path.dirname(os.getcwd()))\n"
                "base = '/tmp/nothing-here' if base == '/' else base  # /box: the work root is not there\n"
                "for p in glob.glob(base + '/**/secret', recursive=True) + glob.glob('/tmp/**/secret', recursive=True):\n"
                "    try:\n        hits.append(open(p).read())\n    except OSError:\n        pass\n"
                "print(hits)")
    t.join()
    assert box["r"]["status"] == "ok", box
    if hw.uid_base is None and hw.rank < 2:
        pytest.skip("level %s without root: one uid for all slots, no mount namespace" % hw.level)
    assert r["stdout"] == b"[]\n", r
    # and the holder's path, told outright, is not readable either
    path = box["r"]["stdout"].decode().strip() + "/secret"
    r = run(hw, "try:\n    print(open(%r).read())\nexcept OSError as e:\n    print('no', e.errno)" % path)
    assert r["stdout"].startswith(b"no "), r
    healthy(hw)


# ---- the host and the worker -------------------------------------------------

def test_read_shadow(hw):
    r = run(hw, "try:\n    d = open('/etc/shadow').read()\n    print('read', 'root:' in d)\n"
                "except OSError as e:\n    print('no', e.errno)")
    assert r["stdout"] in (b"no 13\n", b"no 2\n", b"read False\n"), r
    healthy(hw)


def test_processor_environment(hw):
    if hw.uid_base is None and hw.rank < 2:
        pytest.skip("level %s without root: the stage shares the processor's uid" % hw.level)
    r = run(hw, "import os\nout = []\nfor p in ['/proc/1/environ', '/proc/%d/environ', '/proc/%d/cmdline']:\n"
                "    try:\n        out.append(b'CORRAL_ISOLATION' in open(p, 'rb').read())\n"
                "    except OSError as e:\n        out.append(e.errno)\nprint(out)"
            .replace("%d", str(hw.proc.pid)))
    assert b"True" not in r["stdout"], r
    healthy(hw)


HOSTVIEW = r"""import os, sys
print('cwd', os.getcwd())
print('env', os.environ['HOME'], os.environ['CORRAL_WORKDIR'], os.environ['CORRAL_RUNTIME_DIR'])
for p in ('/proc/1/cmdline', '/proc/1/comm', '/proc/1/environ', '/proc/self/mountinfo'):
    try:
        print(p, repr(open(p, 'rb').read()))
    except OSError as e:
        print(p, 'errno', e.errno)
sys.stdout.flush()
def deep():
    raise RuntimeError('where am I')
deep()
"""


def host_paths(w):
    """What names the worker's layout on the host: its state dir (the
    default, $TMPDIR/corral.<pid>.XXXXXX, holding the work dirs) and its
    runtime dir, as given and resolved."""
    args = w.proc.args
    rt = args[args.index("--runtime-dir") + 1]
    if "--state-dir" in args:  # a non-root worker's, given
        state = [args[args.index("--state-dir") + 1]]
    else:
        state = glob.glob(os.path.join(os.environ.get("TMPDIR", "/tmp"), "corral.%d.*" % w.proc.pid))
    assert len(state) == 1, state
    return {state[0], os.path.realpath(state[0]), "corral.%d." % w.proc.pid, rt,
            os.path.realpath(rt)}


def check_host_view(w, r):
    """At the namespace levels a run sees the fixed paths /box (its work
    dir, cwd, HOME) and /runtime, and nothing of the host's layout: not
    in its cwd, its environment, PID 1's cmdline, comm and environ (the
    keeper, a fork of the processor), its mountinfo, or a traceback."""
    out = r["stdout"] + r["stderr"]
    if getattr(w, "nonroot", False):
        # a non-root worker has no --workdir-bytes tmpfs: /box's line in
        # mountinfo names the work dir's path in its filesystem (known
        # limit, docs/isolation.md); everything else must hide it
        out = b"\n".join(l for l in out.split(b"\n") if not l.startswith(b"/proc/self/mountinfo"))
    for h in host_paths(w):
        assert h.encode() not in out, (h, r)
    assert b"cwd /box\n" in r["stdout"], r
    assert b"env /box /box /runtime\n" in r["stdout"], r
    pid1 = [l for l in r["stdout"].splitlines() if l.startswith(b"/proc/1/")]
    assert len(pid1) == 3, r
    for l in pid1:
        for word in (b"corral-processor", b"--listen", b"--runtime-dir", b"CORRAL_", b"tcp://"):
            assert word not in l, (word, r)
    assert b" /box " in r["stdout"] and b" /runtime " in r["stdout"], r  # the mount points


def test_host_paths_hidden(hw):
    need(hw, "namespaces", "no mount namespace: the run sees the host's paths (docs/isolation.md)")
    r = run(hw, HOSTVIEW)
    assert r["status"] == "exit" and r["exit_code"] == 1, r
    assert b'File "/box/main.py", line 12' in r["stderr"], r
    check_host_view(hw, r)
    healthy(hw)


def test_kill_the_processor(hw):
    r = run(hw, "import os, signal\nres = []\nfor pid in (-1, %d, 1):\n    try:\n"
                "        os.kill(pid, signal.SIGKILL)\n        res.append('sent')\n"
                "    except OSError as e:\n        res.append(e.errno)\nprint(res)" % hw.proc.pid)
    assert hw.alive(), hw.log()
    assert r["status"] in ("ok", "signal"), r  # kill(-1) may take the program itself
    healthy(hw)


def test_ptrace(hw):
    if hw.uid_base is None and hw.rank < 1:
        pytest.skip("level none without root: ptrace of one's own uid is not stopped")
    r = run(hw, "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                "rc = libc.ptrace(16, %d, 0, 0)\nprint(rc, ctypes.get_errno())" % hw.proc.pid)
    assert r["stdout"].startswith(b"-1 "), r  # PTRACE_ATTACH refused
    healthy(hw)


def test_setuid_binary(hw):
    r = run(hw, "import subprocess\np = subprocess.run(['/bin/su', 'root', '-c', 'id -u'], input=b'',"
                " capture_output=True, timeout=5)\nprint(p.returncode, p.stdout)")
    assert r["status"] == "ok", r
    assert not r["stdout"].startswith(b"0 "), r
    assert b"b'0\\n'" not in r["stdout"], r
    healthy(hw)


def test_namespaces_and_mounts_refused(hw):
    need(hw, "seccomp", "no seccomp filter at this level")
    r = run(hw, "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nres = []\n"
                "for call in (lambda: libc.unshare(0x10000000), lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None),"
                " lambda: libc.syscall(425, 1, None)):\n"
                "    rc = call()\n    res.append((rc, ctypes.get_errno()))\nprint(res)")
    # unshare(CLONE_NEWUSER), mount, io_uring_setup: all EPERM (1)
    assert r["stdout"] in (b"[(-1, 1), (-1, 1), (-1, 1)]\n",), r
    healthy(hw)


# Each ABI's write(1, msg, len) as machine code that returns eax; msg at a
# 32-bit address (MAP_32BIT): int 0x80 takes 32-bit pointers.
COMPAT_PROG = r"""
import ctypes, mmap, os, struct
CODE = {
    # native write (1) through syscall: the control, it must print
    "native": lambda a, n: b"\xb8\x01\x00\x00\x00\xbf\x01\x00\x00\x00\xbe" + struct.pack("<I", a)
                           + b"\xba" + struct.pack("<I", n) + b"\x0f\x05\xc3",
    # i386 write (4) through int 0x80; rbx is callee-saved: push/pop
    "i386": lambda a, n: b"\x53\xb8\x04\x00\x00\x00\xbb\x01\x00\x00\x00\xb9" + struct.pack("<I", a)
                         + b"\xba" + struct.pack("<I", n) + b"\xcd\x80\x5b\xc3",
    # x32 write (0x40000000 | 1) through syscall
    "x32": lambda a, n: b"\xb8\x01\x00\x00\x40\xbf\x01\x00\x00\x00\xbe" + struct.pack("<I", a)
                        + b"\xba" + struct.pack("<I", n) + b"\x0f\x05\xc3",
}
def call(abi):
    # in a child, which a kernel without that entry may kill
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        msg = ("[%s wrote]\n" % abi).encode()
        m = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | 0x40,
                      prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
        m[256:256 + len(msg)] = msg
        code = CODE[abi](addr + 256, len(msg))
        m[0:len(code)] = code
        os.write(w, str(ctypes.CFUNCTYPE(ctypes.c_int)(addr)()).encode())
        os._exit(0)
    os.close(w)
    _, st = os.waitpid(pid, 0)
    got = os.read(r, 64).decode()
    return got if os.WIFEXITED(st) else "signal %d" % os.WTERMSIG(st)
for abi in ("native", "i386", "x32"):
    print(abi, call(abi), flush=True)
"""


def test_compat_syscalls_refused(hw):
    """A syscall through another ABI — x86's int 0x80 and x32 — never
    runs: each tries write(1, ...) and what matters is that nothing is
    written. The filter's bad-arch case answers ENOSYS (-38); a kernel
    without the i386 entry (some VM hosts fault on int 0x80 even outside
    any sandbox) kills the caller with SIGSEGV: both are safe, and so is
    SIGSYS. The native write through the same code is the control: it
    writes, so the harness works and an absent line is a refusal."""
    need(hw, "seccomp", "no seccomp filter at this level")
    if os.uname().machine != "x86_64":
        pytest.skip("x86_64 only")
    r = run(hw, COMPAT_PROG)
    out = r["stdout"].decode()
    assert "[native wrote]\nnative 15\n" in out, r
    assert "i386 wrote" not in out and "x32 wrote" not in out, r
    ends = dict(line.split(" ", 1) for line in out.splitlines() if not line.startswith("["))
    assert ends["i386"] in ("-38", "signal 11", "signal 31"), r
    assert ends["x32"] in ("-38", "signal 31"), r
    healthy(hw)


# Raw syscalls with 64-bit arguments, as hostile code makes them (libc's
# wrappers would clean the upper half): a run prints [(name, result)] with
# result "ok" or the errno.
RAW = """import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
NR = %r
def sc(call, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(NR[call]), *[ctypes.c_ulong(a & (1 << 64) - 1) for a in args])
    if rc < 0:
        return ctypes.get_errno()
    if call == 'socketpair':
        os.close(sv[0]), os.close(sv[1])
    elif call == 'socket':
        os.close(rc)
    return 'ok'
sv = (ctypes.c_int * 2)()
buf = ctypes.create_string_buffer(64)
HI = 1 << 32  # upper garbage: the kernel reads these arguments as 32 bits
res = []
"""
SYSCALL_NR = {"x86_64": {"socket": 41, "socketpair": 53, "ioctl": 16},
              "aarch64": {"socket": 198, "socketpair": 199, "ioctl": 29}}


def raw(hw, calls):
    """Runs [(name, "sc('call', args...)")] and returns {name: result}."""
    nr = SYSCALL_NR.get(os.uname().machine)
    if nr is None:
        pytest.skip("syscall numbers known for x86_64 and aarch64 only")
    code = RAW % nr + "".join("res.append((%r, %s))\n" % c for c in calls) + "print(res)\n"
    r = run(hw, code)
    assert r["status"] == "ok", r
    return dict(ast.literal_eval(r["stdout"].decode()))


def test_socket_families_refused(hw):
    """Only AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK (NETLINK_ROUTE) may be
    created: any other domain, however spelled, is EAFNOSUPPORT (97) as
    from a kernel without the family; another netlink protocol is
    EPROTONOSUPPORT (93)."""
    need(hw, "seccomp", "no seccomp filter at this level")
    got = raw(hw, [("vsock", "sc('socket', 40, 1, 0)"), ("packet", "sc('socket', 17, 2, 0)"),
                   ("packet_raw", "sc('socket', 17, 3, 0x300)"), ("alg", "sc('socket', 38, 5, 0)"),
                   ("vsock_hi", "sc('socket', HI | 40, 1, 0)"), ("unix_hi", "sc('socket', HI | 1, 1, 0)"),
                   ("minus_one", "sc('socket', -1, 1, 0)"), ("int_minus_one", "sc('socket', 0xffffffff, 1, 0)"),
                   ("above_max", "sc('socket', 46, 1, 0)"), ("huge", "sc('socket', 1 << 31, 1, 0)"),
                   ("zero", "sc('socket', 0, 1, 0)"),
                   ("pair_vsock", "sc('socketpair', 40, 1, 0, ctypes.addressof(sv))"),
                   ("pair_unix_hi", "sc('socketpair', HI | 1, 1, 0, ctypes.addressof(sv))"),
                   ("nl_audit", "sc('socket', 16, 3, 9)"), ("nl_uevent", "sc('socket', 16, 2, 15)"),
                   ("nl_route_hi", "sc('socket', 16, 3, HI)")])
    assert got == {k: 97 for k in ("vsock", "packet", "packet_raw", "alg", "vsock_hi", "unix_hi",
                                   "minus_one", "int_minus_one", "above_max", "huge", "zero",
                                   "pair_vsock", "pair_unix_hi")} | \
        {"nl_audit": 93, "nl_uevent": 93, "nl_route_hi": 93}, got
    healthy(hw)


def test_socket_families_allowed(hw):
    """What runtimes use still works: AF_UNIX, AF_INET, AF_INET6 sockets,
    an AF_UNIX pair, a NETLINK_ROUTE socket (getifaddrs, if_nameindex);
    socketpair(AF_INET) gets the kernel's own EOPNOTSUPP (95)."""
    need(hw, "seccomp", "no seccomp filter at this level")
    calls = [("unix", "sc('socket', 1, 1, 0)"), ("inet", "sc('socket', 2, 1, 0)"),
             ("udp", "sc('socket', 2, 2, 0)"), ("nl_route", "sc('socket', 16, 3, 0)"),
             ("pair_unix", "sc('socketpair', 1, 5, 0, ctypes.addressof(sv))"),
             ("pair_inet", "sc('socketpair', 2, 1, 0, ctypes.addressof(sv))"),
             ("ifaces", "'lo' in [n for _, n in __import__('socket').if_nameindex()]")]
    want = {"unix": "ok", "inet": "ok", "udp": "ok", "nl_route": "ok", "pair_unix": "ok",
            "pair_inet": 95, "ifaces": True}
    if socket_family_works(socket.AF_INET6):
        calls.append(("inet6", "sc('socket', 10, 1, 0)"))
        want["inet6"] = "ok"
    assert raw(hw, calls) == want
    healthy(hw)


def socket_family_works(family):
    try:
        socket.socket(family).close()
        return True
    except OSError:
        return False


def test_tiocsti_upper_bits_refused(hw):
    """ioctl's request is an unsigned int: TIOCSTI (0x5412) with upper bits
    set is TIOCSTI to the kernel, and the filter's EPERM (1) too. On
    /dev/null the kernel itself would say ENOTTY (25), as it does for
    TCGETS (0x5401) with upper bits: that is the filter's answer, not the
    kernel's."""
    need(hw, "seccomp", "no seccomp filter at this level")
    ch = "ctypes.addressof(buf)"
    got = raw(hw, [("null", "os.open('/dev/null', os.O_RDWR)"),
                   ("sti", "sc('ioctl', res[0][1], 0x5412, %s)" % ch),
                   ("sti_hi", "sc('ioctl', res[0][1], HI | 0x5412, %s)" % ch),
                   ("sti_sext", "sc('ioctl', res[0][1], -(1 << 32) | 0x5412, %s)" % ch),
                   ("tcgets_hi", "sc('ioctl', res[0][1], HI | 0x5401, %s)" % ch)])
    assert {k: got[k] for k in ("sti", "sti_hi", "sti_sext", "tcgets_hi")} == \
        {"sti": 1, "sti_hi": 1, "sti_sext": 1, "tcgets_hi": 25}, got
    healthy(hw)


# ---- network ---------------------------------------------------------------

def test_network(hw):
    need(hw, "namespaces", "no network namespace: not probing the network from the host")
    code = """import socket
res = {}
def tcp(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return 'connected'
    except OSError as e:
        return e.errno
res['worker'] = tcp('127.0.0.1', %d)
res['outside'] = tcp('192.0.2.1', 80)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b'x', ('192.0.2.1', 53))
    res['udp'] = 'sent'
except OSError as e:
    res['udp'] = e.errno
try:
    socket.getaddrinfo('example.com', 80)
    res['dns'] = 'resolved'
except OSError as e:
    res['dns'] = 'failed'
print(sorted(res.items()))
""" % hw.port
    r = run(hw, code)
    out = r["stdout"].decode()
    assert "connected" not in out and "sent" not in out and "resolved" not in out, r
    assert "('outside', 101)" in out and "('udp', 101)" in out, r  # ENETUNREACH
    assert "('worker', 111)" in out, r  # ECONNREFUSED: the ns's own lo
    healthy(hw)
