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

Two ways to the run's process, by whether the keeper sent a user
namespace:

- Without one (a root worker, the usual case): the server itself joins
  the keeper's pid namespace for the length of one fork (setns changes
  only where its next child goes; it goes back to its own at once), so
  the run's process (C2) is the server's child, one fork per run. C2
  joins the other namespaces and enters the sandbox. The server watches
  it through a pidfd and writes its wait status and rusage to the status
  fd when it ends.
- With one (a worker that is not root): joining it cannot be undone, so
  the server forks a runner (C1) that joins the namespaces, one setns()
  each (the user namespace first), forks C2, waits for it and reports.

The status is struct "=iiiiqq" (kind 0 = ended with status a; kind 1 =
setup step a failed with errno b; then cpu_us, maxrss_kb). C2 is in the
keeper's pid namespace either way, so the keeper's kill(-1) ends it and
its orphans come back to the keeper.

C2 does what the stage process of a cold run does (keeper.c, stage_main),
in the same order, before any user code: own session, the stage's
cgroups, rlimits, stdin/stdout/stderr only, the work dir, bounding set
dropped (a root server drops its own once at start, which every child
inherits), the slot's uid/gid, parent-death SIGKILL, no_new_privs,
capabilities cleared, the seccomp filter; then warm.run() runs the entry
as `python3 -B entry args...` would. A setup step that fails is written
to a pipe the server (or C1) reads when C2 has ended.
"""
import ctypes
import os
import resource
import select
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
bounding_dropped = False  # by the server itself (main), for all its children


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
    if spec["drop"] and not bounding_dropped:
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


def unpack(hdr, allfds):
    """The job's fds by name (see the top of this file)."""
    has_bpf, ncg, has_warm, nns = hdr[1], hdr[2], hdr[3], hdr[4]
    fds = allfds[nns:]  # stdin, stdout, stderr, status, spec, ...
    cg = 5 + has_bpf
    return dict(ns=allfds[:nns], std=fds[0:3], status=fds[3], spec=fds[4],
                bpf=fds[5] if has_bpf else None, cgroups=fds[cg:cg + ncg],
                warm=fds[cg + ncg] if has_warm else None)


def stage(job, failw, nsfds):
    """C2: joins nsfds, enters the sandbox, runs the invocation. Never
    returns; a setup step that fails is written to failw."""
    try:
        spec = parse_spec(read_all(job["spec"]))
        bpf = read_all(job["bpf"]) if job["bpf"] is not None else None
        for fd in nsfds:
            check(libc.setns(fd, 0), STEP_SANDBOX)
        if job["warm"] is not None and failw == 3:  # 3 is the warm socket's place
            failw = os.dup(failw)
        enter(spec, job["std"], bpf, job["cgroups"], failw, job["warm"])
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


def ended(status, failr, st, ru):
    """Reports C2's end (or the setup step it failed at) to the keeper."""
    try:
        fail = os.read(failr, 8)
    except BlockingIOError:  # a sibling forked meanwhile still holds failw
        fail = b""
    cpu = int((ru.ru_utime + ru.ru_stime) * 1e6)
    if len(fail) == 8:
        report(status, 1, *struct.unpack("=ii", fail), cpu, ru.ru_maxrss)
    else:
        report(status, 0, st, 0, cpu, ru.ru_maxrss)


def runner(job, allfds):
    """C1, when the job has a user namespace: joins all the namespaces,
    forks C2 (there: in the pid namespace), reports its end. Never returns."""
    for fd in job["ns"]:
        if libc.setns(fd, 0) < 0:
            report(job["status"], 1, STEP_SANDBOX, ctypes.get_errno() or 1)
            os._exit(0)
    failr, failw = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(failr)
        os.close(job["status"])
        stage(job, failw, [])
    os.close(failw)
    for fd in allfds:
        if fd != job["status"]:
            os.close(fd)
    _, st, ru = os.wait4(pid, 0)
    ended(job["status"], failr, st, ru)
    os._exit(0)


class Server:
    """The fork server's loop: jobs on the socket, children through
    pidfds. Only headers, fds and pids are ever in its memory."""

    def __init__(self, sock):
        self.sock = sock
        self.direct = os.geteuid() == 0  # may join a pid namespace and come back
        self.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.poll = select.poll()
        self.poll.register(sock, select.POLLIN)
        self.children = {}  # pidfd -> (pid, status fd or None, fail pipe or None)

    def serve(self):
        while True:
            for fd, _ in self.poll.poll():
                if fd == self.sock.fileno():
                    if not self.receive():
                        return  # the worker is gone
                else:
                    self.reap(fd)

    def receive(self):
        """One job: forks for it; closes its fds but those still ours."""
        try:
            msg, anc, _, _ = self.sock.recvmsg(16, socket.CMSG_SPACE(32 * 4), socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        if not msg:
            return False
        fds = []
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += struct.unpack("%di" % (len(data) // 4), data[:len(data) // 4 * 4])
        keep = ()
        if len(msg) == 5 and msg[0:1] == b"Z" and len(fds) == 5 + sum(msg[1:5]):
            job = unpack(msg, fds)
            if self.direct and len(job["ns"]) == 5:
                keep = self.start(job)
            else:
                self.start_runner(job, fds)
        else:
            print("corral zygote.py: malformed job (%d bytes, %d fds)" % (len(msg), len(fds)),
                  file=sys.stderr)
        for fd in fds:
            if fd not in keep:
                os.close(fd)
        return True

    def start(self, job):
        """C2 as our own child, forked in the keeper's pid namespace
        (job ns: mnt, pid, net, ipc, uts). Returns the fds kept."""
        mnt, pidns, *rest = job["ns"]
        if libc.setns(pidns, CLONE_NEWPID) < 0:
            report(job["status"], 1, STEP_SANDBOX, ctypes.get_errno() or 1)
            return ()
        failr, failw = os.pipe()
        try:
            pid = self.fork(lambda: stage(job, failw, [mnt] + rest))
        except OSError as e:  # e.g. the keeper, the namespace's init, is gone
            report(job["status"], 1, STEP_SANDBOX, e.errno or 1)
            pid = None
        finally:
            if libc.setns(self.own_pidns, CLONE_NEWPID) < 0:
                print("corral zygote.py: cannot go back to its own pid namespace",
                      file=sys.stderr)
                os._exit(1)  # or the next child would be in this run's
            os.close(failw)
        if pid is None:
            os.close(failr)
            return ()
        os.set_blocking(failr, False)
        self.watch(pid, job["status"], failr)
        return (job["status"],)

    def start_runner(self, job, fds):
        try:
            self.watch(self.fork(lambda: runner(job, fds)), None, None)
        except OSError as e:
            report(job["status"], 1, STEP_SANDBOX, e.errno or 1)

    def fork(self, child):
        pid = os.fork()
        if pid == 0:
            try:
                os.close(self.sock.detach())
                child()  # never returns...
            finally:
                os._exit(1)  # ...and if something escaped it, never into our loop
        return pid

    def watch(self, pid, status, failr):
        pidfd = os.pidfd_open(pid)
        self.children[pidfd] = (pid, status, failr)
        self.poll.register(pidfd, select.POLLIN)

    def reap(self, pidfd):
        pid, status, failr = self.children.pop(pidfd)
        self.poll.unregister(pidfd)
        os.close(pidfd)
        _, st, ru = os.wait4(pid, 0)
        if status is not None:
            ended(status, failr, st, ru)
            os.close(status)
            os.close(failr)


def main():
    global bounding_dropped
    sock = socket.socket(fileno=3)
    if os.geteuid() == 0:
        libc.unshare(CLONE_NEWNET)  # the server needs no network; best effort
        try:
            drop_bounding()  # once, for every child: they inherit it
            bounding_dropped = True
        except StepFailed:
            pass  # each child drops it then
    sock.send(b"ready")
    Server(sock).serve()


if __name__ == "__main__":
    main()
