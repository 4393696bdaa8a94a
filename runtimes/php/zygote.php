<?php
// zygote.php — the php runtime's fork server (docs/runtimes.md, "zygote").
//
// One per worker, started by the proxy (proxy/zygote.c) through zygote.sh
// with fd 3 a SOCK_SEQPACKET socket to the worker. It starts the
// interpreter once, says "ready", then for each message it receives forks
// and goes back to waiting. It never parses an invocation: a message is 5
// bytes and fds, so nothing of one invocation is ever in the memory the
// next one's child starts from. It is runtimes/python/zygote.py in PHP:
// the same wire protocol, the same two paths, the same steps; read that
// file's docstring for the why of each. In short:
//
// The message comes from the invocation's keeper (proxy/keeper.c) once the
// sandbox is built: header "Z" <has_bpf> <ncgroup> <has_warm> <nns> and
// the fds: the keeper's namespaces (nns of /proc/self/ns: [user], mnt,
// pid, net, ipc, uts), stdin, stdout, stderr, status (write end), spec
// (memfd), [seccomp BPF (memfd)], [cgroup.procs of each hierarchy], [the
// warm socket: the child becomes the run's fd 3 and waits there for the
// handoff as warm.php does].
//
// - No user namespace (a root worker): the server joins the keeper's pid
//   namespace for one fork and goes back to its own at once (an fd of
//   /proc/self/ns/pid opened at start), so the run (C2) is its child; C2
//   joins the other namespaces itself. The server watches C2 through a
//   pidfd and reports its end.
// - A user namespace (a worker that is not root): a runner C1 joins all
//   the namespaces (that cannot be undone), forks C2, waits and reports.
//
// The report is the struct "=iiiiqq" of zygote.py (kind 0: ended with wait
// status a; kind 1: setup step a failed with errno b; cpu_us, maxrss_kb)
// on the job's status fd. C2 enters the sandbox in keeper.c's stage_main
// order before any user code: session, cgroups, rlimits, fds 0-2 (3) only,
// work dir, bounding set (a root server drops its own once at start),
// slot uid/gid, parent-death SIGKILL, no_new_privs, no capabilities,
// seccomp. A failed step goes to a pipe that the server (or C1) reads once
// C2 has ended.
//
// Then C2 leaves the server's code for good: it throws Run up to main(),
// which returns the entry to this file's last line, a require in the
// global scope as warm.php's (no variable of ours in it). No `finally`
// may lie on that way: it would run in C2 too. Past main(), nothing of
// the server is on C2's stack: whatever the program does, it ends as php
// ends a script, never back in the server's loop.
//
// PHP has no call for most of this (setns, prctl, capset, recvmsg with
// fds, poll on raw fds, wait4 with rusage): they are libc's, through FFI
// (enabled for the CLI by Debian's php8.2-common, ffi.enable=preload).
// Every fd is a plain number; errno is read right after the call.
//
// Once the server has started, it installs warm.php's quick end
// (Corral\Warm\quick_end) that every child inherits: a child leaves with
// _exit(status) once its program has ended as php ends a script, without
// the freeing of the whole interpreter, which in a forked child copies
// most of the server's heap (warm.php's top says why and how).
namespace Corral\Zygote;

require __DIR__ . '/warm.php';

const MAGIC = 'corral-zygote 1';
const CLONE_NEWPID = 0x20000000, CLONE_NEWNET = 0x40000000;
const PR_SET_PDEATHSIG = 1, PR_SET_SECCOMP = 22, PR_CAPBSET_DROP = 24;
const PR_SET_NO_NEW_PRIVS = 38, PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_CLEAR_ALL = 4;
const SECCOMP_MODE_FILTER = 2;
const SYS_PIDFD_OPEN = 434; // x86_64 and aarch64 alike
const O_RDONLY = 0, O_CLOEXEC = 0o2000000, O_NONBLOCK = 0o4000, F_SETFL = 4, F_DUPFD_CLOEXEC = 1030;
const POLLIN = 1, MSG_DONTWAIT = 0x40, MSG_CMSG_CLOEXEC = 0x40000000;
const SOL_SOCKET = 1, SCM_RIGHTS = 1;
const STATUS = 'l4q2'; // "=iiiiqq": native order, no padding, 32 bytes
// setup steps, as keeper.c numbers them (px_step_name)
const STEP_SETSID = 1, STEP_CGROUP = 2, STEP_RLIMIT = 3, STEP_FDS = 4, STEP_CHDIR = 5;
const STEP_SETGROUPS = 6, STEP_SETGID = 7, STEP_SETUID = 8, STEP_PRCTL = 9, STEP_SANDBOX = 10;
const EINTR = 4, EINVAL = 22;

const LIBC = <<<'C'
typedef long ssize_t;
typedef unsigned long size_t;
struct pollfd { int fd; short events; short revents; };
struct iovec { void *base; size_t len; };
struct msghdr { void *name; unsigned int namelen; struct iovec *iov; size_t iovlen;
                void *control; size_t controllen; int flags; };
struct rlimit { unsigned long cur; unsigned long max; };
struct cap_header { unsigned int version; int pid; };
struct sock_fprog { unsigned short len; void *filter; };
int *__errno_location(void);
int setns(int fd, int nstype);
int prctl(int option, ...);
int capset(struct cap_header *hdr, unsigned int *data);
int unshare(int flags);
long syscall(long number, ...);
int wait4(int pid, int *status, int options, char *rusage);
int poll(struct pollfd *fds, unsigned long nfds, int timeout);
ssize_t recvmsg(int fd, struct msghdr *msg, int flags);
int pipe2(int *fds, int flags);
int fcntl(int fd, int cmd, ...);
int dup2(int old, int new);
int close(int fd);
ssize_t read(int fd, char *buf, size_t n);
ssize_t write(int fd, const char *buf, size_t n);
ssize_t pread(int fd, char *buf, size_t n, long off);
long lseek(int fd, long off, int whence);
int setsid(void);
int open(const char *path, int flags, ...);
void _exit(int status);
int setrlimit(int res, const struct rlimit *lim);
int chdir(const char *path);
int setgroups(size_t n, const unsigned int *groups);
int setresgid(unsigned int r, unsigned int e, unsigned int s);
int setresuid(unsigned int r, unsigned int e, unsigned int s);
C;

/** A setup step that failed, with its errno. */
final class StepFailed extends \Exception
{
    public function __construct(public int $step, public int $err)
    {
        parent::__construct("setup step $step: errno $err");
    }
}

/** Thrown by C2, in its sandbox, up to main(): the entry to require. */
final class Run extends \Exception
{
    public function __construct(public string $path)
    {
        parent::__construct('run');
    }
}

/** libc, through FFI (see the top). */
function c(): \FFI
{
    static $c = null;
    return $c ??= \FFI::cdef(LIBC, 'libc.so.6');
}

function errno(): int
{
    return c()->__errno_location()[0] ?: 1;
}

function check(int $rc, int $step): int
{
    if ($rc < 0) {
        throw new StepFailed($step, errno());
    }
    return $rc;
}

function write(int $fd, string $bytes): int
{
    return c()->write($fd, $bytes, strlen($bytes));
}

/** A memfd's whole content (the keeper wrote it). */
function read_all(int $fd): string
{
    $size = c()->lseek($fd, 0, 2);
    if ($size < 0) {
        throw new \RuntimeException('spec: cannot size it');
    }
    $buf = \FFI::new('char[' . max($size, 1) . ']');
    if (c()->pread($fd, $buf, $size, 0) !== $size) {
        throw new \RuntimeException('short spec');
    }
    return \FFI::string($buf, $size);
}

/** A decimal field of the spec, as an int; -1 (RLIM_INFINITY to libc)
 * for 2^63 and more. */
function num(string $s): int
{
    if (!ctype_digit(ltrim($s, '-')) || $s === '') {
        throw new \RuntimeException('malformed spec');
    }
    return strlen($s) > 19 || (strlen($s) === 19 && strcmp($s, '9223372036854775807') > 0)
        ? -1 : (int)$s;
}

function parse_spec(string $data): array
{
    $head = explode("\0", $data, 9);
    if (count($head) !== 9 || $head[0] !== MAGIC) {
        throw new \RuntimeException('malformed spec');
    }
    [$nsflags, $userns, $drop, $uid, $gid] = array_map(__NAMESPACE__ . '\num', array_slice($head, 1, 5));
    $nrl = num($head[7]);
    $rest = explode("\0", $head[8], 3 * $nrl + 1);
    $rl = [];
    for ($i = 0; $i < $nrl; $i++) {
        $rl[] = array_map(__NAMESPACE__ . '\num', array_slice($rest, 3 * $i, 3));
    }
    $handoff = $rest[3 * $nrl] ?? '';
    // no handoff: a prewarmed sandbox, it comes on fd 3
    $run = $handoff === '' ? null : \Corral\Warm\parse($handoff);
    return ['nsflags' => $nsflags, 'userns' => $userns, 'drop' => $drop, 'uid' => $uid,
            'gid' => $gid, 'workdir' => $head[6], 'rlimits' => $rl, 'run' => $run];
}

function drop_bounding(): void
{
    for ($cap = 0; $cap < 64; $cap++) {
        if (c()->prctl(PR_CAPBSET_DROP, $cap, 0, 0, 0) < 0 && errno() !== EINVAL) {
            throw new StepFailed(STEP_SANDBOX, errno());
        }
    }
    if (c()->prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno() !== EINVAL) {
        throw new StepFailed(STEP_SANDBOX, errno());
    }
}

/** No capability left, then the seccomp filter (px_sandbox_lock). */
function lock(?string $bpf): void
{
    $hdr = c()->new('struct cap_header');
    $hdr->version = 0x20080522;
    $data = c()->new('unsigned int[6]');
    check(c()->capset(\FFI::addr($hdr), $data), STEP_SANDBOX);
    if ($bpf === null) {
        return;
    }
    $buf = \FFI::new('char[' . strlen($bpf) . ']');
    \FFI::memcpy($buf, $bpf, strlen($bpf));
    $prog = c()->new('struct sock_fprog');
    $prog->len = intdiv(strlen($bpf), 8);
    $prog->filter = \FFI::cast('void *', \FFI::addr($buf));
    check(c()->prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, \FFI::addr($prog), 0, 0), STEP_SANDBOX);
}

/** Every fd but 0-2, the warm socket's 3, failfd and php's own (the
 * script it runs, zygote.php, open as a cold run's entry is) closed. */
function close_others(int $failfd, bool $warm): void
{
    $keep = [0, 1, 2, $failfd];
    if ($warm) {
        $keep[] = 3;
    }
    foreach (scandir('/proc/self/fd') ?: [] as $f) {
        if (!ctype_digit($f) || in_array((int)$f, $keep, true)) {
            continue;
        }
        $link = @readlink("/proc/self/fd/$f");
        if ($link !== false && $link !== __FILE__) {
            c()->close((int)$f);
        }
    }
}

/** C2: the stage's sandbox, step by step as keeper.c's stage_main. */
function enter(array $spec, array $std, ?string $bpf, array $cgfds, int $failfd, ?int $warmfd,
               bool $bounding_dropped): void
{
    check(c()->setsid(), STEP_SETSID);
    foreach ($cgfds as $fd) {
        if (write($fd, '0') !== 1) {
            throw new StepFailed(STEP_CGROUP, errno());
        }
    }
    $lim = c()->new('struct rlimit');
    foreach ($spec['rlimits'] as [$res, $cur, $max]) {
        $lim->cur = $cur;
        $lim->max = $max;
        check(c()->setrlimit($res, \FFI::addr($lim)), STEP_RLIMIT);
    }
    for ($i = 0; $i < 3; $i++) {
        check(c()->dup2($std[$i], $i), STEP_FDS);
    }
    if ($warmfd !== null) {
        check(c()->dup2($warmfd, 3), STEP_FDS);
    }
    close_others($failfd, $warmfd !== null);
    check(c()->chdir($spec['workdir']), STEP_CHDIR);
    if ($spec['drop'] && !$bounding_dropped) {
        drop_bounding();
    }
    if ($spec['uid'] >= 0) {
        $g = c()->new('unsigned int[1]');
        $g[0] = $spec['gid'];
        check(c()->setgroups(1, $g), STEP_SETGROUPS);
        check(c()->setresgid($spec['gid'], $spec['gid'], $spec['gid']), STEP_SETGID);
        check(c()->setresuid($spec['uid'], $spec['uid'], $spec['uid']), STEP_SETUID);
    }
    check(c()->prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), STEP_PRCTL);
    check(c()->prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), STEP_PRCTL);
    lock($bpf);
}

function report(int $fd, int $kind, int $a, int $b, int $cpu_us = 0, int $maxrss = 0): void
{
    write($fd, pack(STATUS, $kind, $a, $b, 0, $cpu_us, $maxrss)); // the keeper gone: nothing to do
}

/** The job's fds by name (see the top of this file). */
function unpack_job(string $hdr, array $all): array
{
    [$has_bpf, $ncg, $has_warm, $nns] = array_map('ord', str_split(substr($hdr, 1, 4)));
    $fds = array_slice($all, $nns);
    $cg = 5 + $has_bpf;
    return ['ns' => array_slice($all, 0, $nns), 'std' => array_slice($fds, 0, 3),
            'status' => $fds[3], 'spec' => $fds[4], 'bpf' => $has_bpf ? $fds[5] : null,
            'cgroups' => array_slice($fds, $cg, $ncg), 'warm' => $has_warm ? $fds[$cg + $ncg] : null];
}

/** C2: joins $nsfds, enters the sandbox, then throws Run (see the top). A
 * setup step that fails is written to $failw. */
function stage(array $job, int $failw, array $nsfds, bool $bounding_dropped): void
{
    try {
        $spec = parse_spec(read_all($job['spec']));
        $bpf = $job['bpf'] !== null ? read_all($job['bpf']) : null;
        foreach ($nsfds as $fd) {
            check(c()->setns($fd, 0), STEP_SANDBOX);
        }
        if ($job['warm'] !== null && $failw === 3) { // 3 is the warm socket's place
            $failw = check(c()->fcntl($failw, F_DUPFD_CLOEXEC, 4), STEP_FDS);
        }
        enter($spec, $job['std'], $bpf, $job['cgroups'], $failw, $job['warm'], $bounding_dropped);
    } catch (StepFailed $e) {
        write($failw, pack('l2', $e->step, $e->err));
        c()->_exit(127);
    } catch (\Throwable $e) {
        write($failw, pack('l2', STEP_SANDBOX, EINVAL));
        c()->_exit(127);
    }
    c()->close($failw);
    $run = $spec['run'] ?? \Corral\Warm\receive();
    throw new Run(\Corral\Warm\prepare(...$run));
}

/** [read end, write end], both close-on-exec. */
function pipe(): array
{
    $p = c()->new('int[2]');
    if (c()->pipe2($p, O_CLOEXEC) < 0) {
        throw new \RuntimeException('pipe2', errno());
    }
    return [$p[0], $p[1]];
}

/** wait4: [raw wait status, cpu_us, maxrss_kb]. */
function wait_for(int $pid): array
{
    $st = c()->new('int[1]');
    $ru = c()->new('char[144]'); // struct rusage: utime, stime (timevals), maxrss, ...
    while (c()->wait4($pid, $st, 0, $ru) < 0) {
        if (errno() !== EINTR) {
            throw new \RuntimeException('wait4', errno());
        }
    }
    [, $us, $uu, $ss, $su, $maxrss] = unpack('q5', \FFI::string($ru, 40));
    return [$st[0], ($us + $ss) * 1000000 + $uu + $su, $maxrss];
}

/** Reports C2's end (or the setup step it failed at) to the keeper. */
function ended(int $status, int $failr, int $st, int $cpu, int $maxrss): void
{
    $buf = c()->new('char[8]');
    if (c()->read($failr, $buf, 8) === 8) { // (non-blocking: nothing there is a run)
        [, $step, $err] = unpack('l2', \FFI::string($buf, 8));
        report($status, 1, $step, $err, $cpu, $maxrss);
    } else {
        report($status, 0, $st, 0, $cpu, $maxrss);
    }
}

/** pcntl_fork, or a RuntimeException with its errno. */
function fork(): int
{
    $pid = pcntl_fork();
    if ($pid < 0) {
        throw new \RuntimeException('fork', pcntl_get_last_error() ?: 1);
    }
    return $pid;
}

/** C1, when the job has a user namespace: joins all the namespaces, forks
 * C2 (there: in the pid namespace), reports its end. Never returns but as
 * C2, through stage's Run. */
function runner(array $job, array $all): void
{
    foreach ($job['ns'] as $fd) {
        if (c()->setns($fd, 0) < 0) {
            report($job['status'], 1, STEP_SANDBOX, errno());
            c()->_exit(0);
        }
    }
    try {
        [$failr, $failw] = pipe();
        $pid = fork();
    } catch (\RuntimeException $e) {
        report($job['status'], 1, STEP_SANDBOX, $e->getCode() ?: 1);
        c()->_exit(0);
    }
    if ($pid === 0) {
        c()->close($failr);
        c()->close($job['status']);
        stage($job, $failw, [], false);
    }
    c()->close($failw);
    foreach ($all as $fd) {
        if ($fd !== $job['status']) {
            c()->close($fd);
        }
    }
    [$st, $cpu, $maxrss] = wait_for($pid);
    ended($job['status'], $failr, $st, $cpu, $maxrss);
    c()->_exit(0);
}

/** The fork server's loop: jobs on the socket, children through pidfds.
 * Only headers, fds and pids are ever in its memory. */
final class Server
{
    private bool $direct;
    private int $own_pidns;
    private array $children = []; // pidfd => [pid, status fd or null, fail pipe or null]

    public function __construct(private int $sock, private bool $bounding_dropped)
    {
        $this->direct = posix_geteuid() === 0; // may join a pid namespace and come back
        $this->own_pidns = c()->open('/proc/self/ns/pid', O_RDONLY | O_CLOEXEC);
        if ($this->own_pidns < 0) {
            throw new \RuntimeException('/proc/self/ns/pid', errno());
        }
    }

    public function serve(): void
    {
        while (true) {
            foreach ($this->ready() as $fd) {
                if ($fd === $this->sock) {
                    if (!$this->receive()) {
                        return; // the worker is gone
                    }
                } else {
                    $this->reap($fd);
                }
            }
        }
    }

    /** The fds poll() finds readable (the socket, ended children's pidfds). */
    private function ready(): array
    {
        $fds = array_merge([$this->sock], array_keys($this->children));
        $pfd = c()->new('struct pollfd[' . count($fds) . ']');
        foreach ($fds as $i => $fd) {
            $pfd[$i]->fd = $fd;
            $pfd[$i]->events = POLLIN;
        }
        if (c()->poll($pfd, count($fds), -1) < 0) {
            if (errno() === EINTR) {
                return [];
            }
            throw new \RuntimeException('poll', errno());
        }
        $out = [];
        foreach ($fds as $i => $fd) {
            if ($pfd[$i]->revents !== 0) {
                $out[] = $fd;
            }
        }
        return $out;
    }

    /** One message: [bytes, fds]; null when nothing was there. */
    private function recv(): ?array
    {
        $buf = c()->new('char[16]');
        $ctl = c()->new('char[512]');
        $iov = c()->new('struct iovec');
        $iov->base = \FFI::cast('void *', \FFI::addr($buf));
        $iov->len = 16;
        $m = c()->new('struct msghdr');
        $m->iov = \FFI::addr($iov);
        $m->iovlen = 1;
        $m->control = \FFI::cast('void *', \FFI::addr($ctl));
        $m->controllen = 512;
        $n = c()->recvmsg($this->sock, \FFI::addr($m), MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if ($n < 0) {
            return errno() === 11 || errno() === EINTR ? null : ['', []]; // EAGAIN; else gone
        }
        $fds = [];
        $raw = \FFI::string($ctl, $m->controllen);
        for ($off = 0; $off + 16 <= strlen($raw); $off += ($len + 7) & ~7) {
            ['len' => $len, 'level' => $level, 'type' => $type] = unpack('Qlen/llevel/ltype', $raw, $off);
            if ($len < 16) {
                break;
            }
            if ($level === SOL_SOCKET && $type === SCM_RIGHTS) {
                $fds = array_merge($fds, array_values(unpack('l*', substr($raw, $off + 16, $len - 16))));
            }
        }
        return [\FFI::string($buf, $n), $fds];
    }

    /** One job: forks for it; closes its fds but those still ours. */
    private function receive(): bool
    {
        $got = $this->recv();
        if ($got === null) {
            return true;
        }
        [$msg, $fds] = $got;
        if ($msg === '') {
            return false;
        }
        $keep = [];
        if (strlen($msg) === 5 && $msg[0] === 'Z' &&
            count($fds) === 5 + array_sum(array_map('ord', str_split(substr($msg, 1))))) {
            $job = unpack_job($msg, $fds);
            if ($this->direct && count($job['ns']) === 5) {
                $keep = $this->start($job);
            } else {
                $this->start_runner($job, $fds);
            }
        } else {
            fwrite(STDERR, sprintf("corral zygote.php: malformed job (%d bytes, %d fds)\n",
                                   strlen($msg), count($fds)));
        }
        foreach ($fds as $fd) {
            if (!in_array($fd, $keep, true)) {
                c()->close($fd);
            }
        }
        return true;
    }

    /** C2 as our own child, forked in the keeper's pid namespace (job ns:
     * mnt, pid, net, ipc, uts). Returns the fds kept. */
    private function start(array $job): array
    {
        [$mnt, $pidns] = $job['ns'];
        $rest = array_slice($job['ns'], 2);
        if (c()->setns($pidns, CLONE_NEWPID) < 0) {
            report($job['status'], 1, STEP_SANDBOX, errno());
            return [];
        }
        try {
            [$failr, $failw] = pipe();
            $pid = $this->fork_child();
        } catch (\RuntimeException $e) { // e.g. the keeper, the namespace's init, is gone
            $this->back_home();
            report($job['status'], 1, STEP_SANDBOX, $e->getCode() ?: 1);
            if (isset($failw)) {
                c()->close($failr);
                c()->close($failw);
            }
            return [];
        }
        if ($pid === 0) {
            stage($job, $failw, array_merge([$mnt], $rest), $this->bounding_dropped);
        }
        $this->back_home();
        c()->close($failw);
        c()->fcntl($failr, F_SETFL, O_NONBLOCK);
        $this->watch($pid, $job['status'], $failr);
        return [$job['status']];
    }

    /** Our own pid namespace again for the next fork, or the next child
     * would be in this run's. */
    private function back_home(): void
    {
        if (c()->setns($this->own_pidns, CLONE_NEWPID) < 0) {
            fwrite(STDERR, "corral zygote.php: cannot go back to its own pid namespace\n");
            c()->_exit(1);
        }
    }

    private function start_runner(array $job, array $fds): void
    {
        try {
            $pid = $this->fork_child();
        } catch (\RuntimeException $e) {
            report($job['status'], 1, STEP_SANDBOX, $e->getCode() ?: 1);
            return;
        }
        if ($pid === 0) {
            runner($job, $fds);
        }
        $this->watch($pid, null, null);
    }

    /** Forks; the child holds none of the server's own fds (the socket,
     * the other children's). */
    private function fork_child(): int
    {
        $pid = fork();
        if ($pid === 0) {
            $ours = [$this->sock, $this->own_pidns];
            foreach ($this->children as $pidfd => [, $st, $fr]) {
                array_push($ours, $pidfd, $st, $fr);
            }
            foreach (array_filter($ours, 'is_int') as $fd) {
                c()->close($fd);
            }
        }
        return $pid;
    }

    /** Watches our child $pid through a pidfd; without one (EMFILE...),
     * ends it and reports that. */
    private function watch(int $pid, ?int $status, ?int $failr): void
    {
        $pidfd = c()->syscall(SYS_PIDFD_OPEN, $pid, 0);
        if ($pidfd >= 0) {
            $this->children[$pidfd] = [$pid, $status, $failr];
            return;
        }
        $err = errno();
        posix_kill($pid, 9);
        wait_for($pid);
        if ($status !== null) {
            report($status, 1, STEP_SANDBOX, $err);
            c()->close($status);
            c()->close($failr);
        }
    }

    private function reap(int $pidfd): void
    {
        [$pid, $status, $failr] = $this->children[$pidfd];
        unset($this->children[$pidfd]);
        c()->close($pidfd);
        [$st, $cpu, $maxrss] = wait_for($pid);
        if ($status !== null) {
            ended($status, $failr, $st, $cpu, $maxrss);
            c()->close($status);
            c()->close($failr);
        }
    }
}

/** The server until the worker is gone (then exits); in C2, in its
 * sandbox, returns the entry to require. */
function main(): string
{
    $dropped = false;
    if (posix_geteuid() === 0) {
        c()->unshare(CLONE_NEWNET); // the server needs no network; best effort
        try {
            drop_bounding(); // once, for every child: they inherit it
            $dropped = true;
        } catch (StepFailed $e) {
            // each child drops it then
        }
    }
    \Corral\Warm\quick_end(); // for every child (and the server's own end)
    write(3, 'ready');
    try {
        (new Server(3, $dropped))->serve();
    } catch (Run $r) {
        return $r->path;
    }
    exit(0);
}

try {
    require main();
} catch (\Throwable $__corral_uncaught) { // the entry's: see warm.php's rethrow
    \Corral\Warm\rethrow('__corral_uncaught', __FILE__);
}
