"""zygote.py — the python runtime's fork server (docs/runtimes.md, "zygote").

One per worker, started by the proxy (proxy/zygote.c) through zygote.sh
with fd 3 a SOCK_SEQPACKET socket to the worker. It starts the
interpreter once, says "ready", then for each message it receives forks a
runner (C1) and goes back to waiting. It never parses an invocation: a
message is 5 bytes and fds, so nothing of one invocation is ever in the
memory the next one's child starts from.

The message comes from the invocation's keeper (proxy/keeper.c), once the
sandbox is built: header b"Z" <has_bpf> <ncgroup> <has_warm> <nns> and
the fds

    the keeper's namespaces (nns of /proc/self/ns: [user], mnt, pid, net,
    ipc, uts), stdin, stdout, stderr, status (write end), spec (memfd),
    [seccomp BPF (memfd)], [cgroup.procs of each hierarchy], [the warm
    socket]

With the warm socket (--prewarm on too: a prewarmed sandbox), the spec
has no invocation: the child becomes the run's fd 3 and, once in its
sandbox, waits there for the handoff as warm.py does (docs/runtimes.md,
"warm").

C1 (the worker's uid, outside the sandbox) reads the spec, joins the
keeper's namespaces, one setns() each in the order given (the user
namespace first when there is one), forks the stage (C2), waits for it and
writes its wait status and rusage to the status fd: struct "=iiiiqq"
(kind 0 = ended with status a; kind 1 = setup step a failed with errno b;
then cpu_us, maxrss_kb). C2 is in the keeper's pid namespace, so the
keeper's kill(-1) ends it and its orphans come back to the keeper.

C2 does what the stage process of a cold run does (keeper.c, stage_main),
in the same order, before any user code: own session, the stage's
cgroups, rlimits, stdin/stdout/stderr only, the work dir, bounding set
dropped, the slot's uid/gid, parent-death SIGKILL, no_new_privs,
capabilities cleared, the seccomp filter; then warm.run() runs the entry
as `python3 -B entry args...` would.
"""
import ctypes
import os
import resource
import socket
import struct
import sys

import warm

MAGIC = b"corral-zygote 1"
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_SECCOMP = 1, 24, 22
PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
SECCOMP_MODE_FILTER = 2
STATUS = struct.Struct("=iiiiqq")
# setup steps, as keeper.c numbers them (px_step_name)
STEP_SETSID, STEP_CGROUP, STEP_RLIMIT, STEP_FDS, STEP_CHDIR = 1, 2, 3, 4, 5
STEP_SETGROUPS, STEP_SETGID, STEP_SETUID, STEP_PRCTL, STEP_SANDBOX = 6, 7, 8, 9, 10

libc = ctypes.CDLL(None, use_errno=True)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class StepFailed(Exception):
    def __init__(self, step, err):
        super().__init__(step, err)
        self.step, self.err = step, err


def check(rc, step):
    if rc < 0:
        raise StepFailed(step, ctypes.get_errno() or 1)


def read_all(fd):
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    if len(data) != size:
        raise ValueError("short spec")
    return data


def parse_spec(data):
    head = data.split(b"\0", 8)
    if len(head) != 9 or head[0] != MAGIC:
        raise ValueError("malformed spec")
    nsflags, userns, drop, uid, gid = (int(x) for x in head[1:6])
    workdir, nrl = os.fsdecode(head[6]), int(head[7])
    rest = head[8].split(b"\0", 3 * nrl)
    rl = [tuple(int(x) for x in rest[3 * i:3 * i + 3]) for i in range(nrl)]
    # no handoff: a prewarmed sandbox, it comes on fd 3
    entry, args, env = warm.parse(rest[3 * nrl]) if rest[3 * nrl] else (None, None, None)
    return dict(nsflags=nsflags, userns=userns, drop=drop, uid=uid, gid=gid,
                workdir=workdir, rlimits=rl, entry=entry, args=args, env=env)


def rlim(v):
    return resource.RLIM_INFINITY if v >= (1 << 63) else v


def drop_bounding():
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 and ctypes.get_errno() != 22:
            raise StepFailed(STEP_SANDBOX, ctypes.get_errno())
    if libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 \
            and ctypes.get_errno() != 22:
        raise StepFailed(STEP_SANDBOX, ctypes.get_errno())


def lock(bpf):
    """No capability left, then the seccomp filter (px_sandbox_lock)."""
    hdr = CapHeader(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    check(libc.capset(ctypes.byref(hdr), data), STEP_SANDBOX)
    if bpf is None:
        return
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = SockFprog(len(bpf) // 8, ctypes.addressof(buf))
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0),
          STEP_SANDBOX)


def enter(spec, fds, bpf, cgfds, failfd, warmfd):
    """C2: the stage's sandbox, step by step as keeper.c's stage_main."""
    try:
        os.setsid()
    except OSError as e:
        raise StepFailed(STEP_SETSID, e.errno)
    for fd in cgfds:
        try:
            os.write(fd, b"0")
        except OSError as e:
            raise StepFailed(STEP_CGROUP, e.errno)
    for res, cur, mx in spec["rlimits"]:
        try:
            resource.setrlimit(res, (rlim(cur), rlim(mx)))
        except (OSError, ValueError) as e:
            raise StepFailed(STEP_RLIMIT, getattr(e, "errno", None) or 22)
    try:
        for i in range(3):
            os.dup2(fds[i], i)
        if warmfd is not None:
            os.dup2(warmfd, 3)
        keep = sorted({0, 1, 2, failfd} | ({3} if warmfd is not None else set()))
        for a, b in zip(keep, keep[1:] + [1 << 20]):
            os.closerange(a + 1, b)
    except OSError as e:
        raise StepFailed(STEP_FDS, e.errno)
    try:
        os.chdir(spec["workdir"])
    except OSError as e:
        raise StepFailed(STEP_CHDIR, e.errno)
    if spec["drop"]:
        drop_bounding()
    if spec["uid"] >= 0:
        for step, fn in ((STEP_SETGROUPS, lambda: os.setgroups([spec["gid"]])),
                         (STEP_SETGID, lambda: os.setresgid(*[spec["gid"]] * 3)),
                         (STEP_SETUID, lambda: os.setresuid(*[spec["uid"]] * 3))):
            try:
                fn()
            except OSError as e:
                raise StepFailed(step, e.errno)
    check(libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), STEP_PRCTL)
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), STEP_PRCTL)
    lock(bpf)


def report(fd, kind, a, b, cpu_us=0, maxrss=0):
    try:
        os.write(fd, STATUS.pack(kind, a, b, 0, cpu_us, maxrss))
    except OSError:
        pass  # the keeper is gone: it killed everything already


def runner(hdr, allfds):
    """C1: never returns."""
    has_bpf, ncg, has_warm, nns = hdr[1], hdr[2], hdr[3], hdr[4]
    nsfds, fds = allfds[:nns], allfds[nns:]  # fds: stdin, stdout, stderr, status, spec...
    status = fds[3]
    try:
        spec = parse_spec(read_all(fds[4]))
        bpf = read_all(fds[5]) if has_bpf else None
        cgfds = fds[5 + has_bpf:5 + has_bpf + ncg]
        warmfd = fds[5 + has_bpf + ncg] if has_warm else None
        for fd in nsfds:
            check(libc.setns(fd, 0), STEP_SANDBOX)
    except StepFailed as e:
        report(status, 1, e.step, e.err)
        os._exit(0)
    except Exception:
        report(status, 1, STEP_SANDBOX, 22)
        os._exit(0)
    failr, failw = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(failr)
            os.close(status)
            if warmfd is not None and failw == 3:  # 3 is the warm socket's place
                failw = os.dup(failw)
            enter(spec, fds[0:3], bpf, cgfds, failw, warmfd)
        except StepFailed as e:
            os.write(failw, struct.pack("=ii", e.step, e.err))
            os._exit(127)
        except BaseException:
            os.write(failw, struct.pack("=ii", STEP_SANDBOX, 22))
            os._exit(127)
        os.close(failw)
        if spec["entry"] is None:
            warm.main()  # "ready" on fd 3, the handoff, the run
        warm.run(spec["entry"], spec["args"], spec["env"])
    os.close(failw)
    for fd in allfds:
        if fd != status:
            os.close(fd)
    _, st, ru = os.wait4(pid, 0)
    fail = os.read(failr, 8)
    cpu = int((ru.ru_utime + ru.ru_stime) * 1e6)
    if len(fail) == 8:
        report(status, 1, *struct.unpack("=ii", fail), cpu, ru.ru_maxrss)
    else:
        report(status, 0, st, 0, cpu, ru.ru_maxrss)
    os._exit(0)


def serve(sock):
    while True:
        try:
            msg, anc, _, _ = sock.recvmsg(16, socket.CMSG_SPACE(32 * 4))
        except InterruptedError:
            continue
        if not msg:
            return  # the worker is gone
        fds = []
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += struct.unpack("%di" % (len(data) // 4), data[:len(data) // 4 * 4])
        if len(msg) == 5 and msg[0:1] == b"Z" and len(fds) == 5 + sum(msg[1:5]):
            if os.fork() == 0:
                sock.close()
                runner(msg, fds)
        else:
            print("corral zygote.py: malformed job (%d bytes, %d fds)" % (len(msg), len(fds)),
                  file=sys.stderr)
        for fd in fds:
            os.close(fd)
        reap()


def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def main():
    sock = socket.socket(fileno=3)
    if os.geteuid() == 0:
        libc.unshare(CLONE_NEWNET)  # the server needs no network; best effort
    sock.send(b"ready")
    serve(sock)


if __name__ == "__main__":
    main()
