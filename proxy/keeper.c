/*
 * keeper.c — the keeper process of one stage, and the stage process.
 *
 * The keeper is forked from the slot's thread of a threaded program, and
 * never execs: everything it runs must be async-signal-safe (no malloc,
 * no stdio, no locks), and all it needs — argv, envp, paths, fds, limits
 * — was prepared by the parent in a px_plan before fork. Set-id calls go
 * straight to the kernel (syscall) so that glibc's all-threads setxid
 * machinery is never involved.
 *
 * The keeper:
 *   1. resets every signal to its default, blocks all, and takes SIGCHLD
 *      (children), SIGHUP (PR_SET_PDEATHSIG: our slot thread is gone),
 *      SIGTERM/SIGINT through a signalfd;
 *   2. becomes a child subreaper, so every orphan of the stage — daemons
 *      that double-fork and setsid included — is re-parented to it;
 *   3. forks the stage process (below), then waits for whichever comes
 *      first: the stage process ends, the parent writes a byte to ctl_fd
 *      (wall limit, output limit, cancel) or closes it (parent died);
 *   4. kills the whole tree (kill_tree), reaps everything, and writes a
 *      px_report to report_fd before exiting.
 *
 * The stage process: own session and process group, joins the stage's
 * cgroups, gets its rlimits, stdin/stdout/stderr, only those fds, the
 * work dir as cwd (/box in its own root at the namespace levels), then drops to the slot's uid/gid (no supplementary
 * groups), sets no_new_privs and parent-death SIGKILL, the sandbox
 * (sandbox.c) and execs. A failing step is written as (step, errno) on a
 * close-on-exec pipe, so the keeper can tell "could not start" from "ran".
 */
#include "internal.h"
#include "clock.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum {
	STEP_NONE, STEP_SETSID, STEP_CGROUP, STEP_RLIMIT, STEP_FDS, STEP_CHDIR,
	STEP_SETGROUPS, STEP_SETGID, STEP_SETUID, STEP_PRCTL, STEP_SANDBOX, STEP_EXEC,
};

const char *px_step_name(int step)
{
	static const char *const n[] = { "none", "setsid", "join cgroup", "setrlimit",
		"set up fds", "chdir to the work dir", "setgroups", "setresgid",
		"setresuid", "prctl", "sandbox", "execve" };
	return step >= 0 && step <= STEP_EXEC ? n[step] : "?";
}

/* ---- helpers safe after fork ------------------------------------------- */

ssize_t px_send_fds(int sock, const void *data, size_t len, const int *fds, int n, int flags)
{
	if (n < 0 || n > PX_MAX_SEND_FDS) {
		errno = EINVAL;
		return -1;
	}
	struct iovec iov = { (void *)data, len };
	union { char buf[CMSG_SPACE(sizeof(int) * PX_MAX_SEND_FDS)]; struct cmsghdr align; } u;
	memset(&u, 0, sizeof u);
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
	                    .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	return sendmsg(sock, &m, MSG_NOSIGNAL | flags);
}

/* fork() without glibc: the keeper may have been made by a raw clone()
 * (namespaces) while another thread of the processor held one of the
 * locks glibc's fork() takes (atfork handlers, malloc arenas, stdio): the
 * keeper's copy of that lock is held forever, and a glibc fork() in the
 * keeper hung on it (seen under load: slots stuck in waitpid). */
static pid_t raw_fork(void)
{
	return (pid_t)syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* dst = a + b, bounded; false when it does not fit. */
static bool join2(char *dst, size_t len, const char *a, const char *b)
{
	size_t la = slen(a), lb = slen(b);
	if (la + lb + 1 > len)
		return false;
	memcpy(dst, a, la);
	memcpy(dst + la, b, lb + 1);
	return true;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, slen(s));
	close(fd);
	return n == (ssize_t)slen(s) ? 0 : -1;
}

void px_close_except(const int *keep, int n)
{
	int k[32];
	if (n > 32)
		n = 32;
	for (int i = 0; i < n; i++) { /* insertion sort, n is tiny */
		int v = keep[i], j = i;
		while (j > 0 && k[j - 1] > v) {
			k[j] = k[j - 1];
			j--;
		}
		k[j] = v;
	}
	unsigned lo = 0;
	for (int i = 0; i < n; i++) {
		if (k[i] < 0)
			continue;
		if ((unsigned)k[i] > lo)
			syscall(SYS_close_range, lo, (unsigned)k[i] - 1, 0);
		lo = (unsigned)k[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0U, 0);
}

static void reset_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < _NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &sa, NULL);
}

/* Calls fn(pid, arg) for each pid in dir/cgroup.procs. */
static int each_listed(const char *dir, void (*fn)(pid_t, void *), void *arg)
{
	char path[PX_PATH + 32], buf[4096];
	if (!join2(path, sizeof path, dir, "/cgroup.procs"))
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int count = 0;
	long cur = -1;
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				cur = (cur < 0 ? 0 : cur * 10) + (buf[i] - '0');
			} else if (cur >= 0) {
				fn((pid_t)cur, arg);
				count++;
				cur = -1;
			}
		}
	}
	if (cur >= 0) {
		fn((pid_t)cur, arg);
		count++;
	}
	close(fd);
	return count;
}

static void kill_one(pid_t pid, void *arg)
{
	(void)arg;
	if (pid > 1)
		kill(pid, SIGKILL);
}

/* Kills every process whose parent is us (the orphans of the tree), by
 * scanning /proc: /proc/<pid>/task/<tid>/children is not always built in. */
static int kill_children_scan(void)
{
	int dfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	pid_t me = getpid();
	char buf[4096], path[64], stat[512];
	int found = 0;
	long n;
	while ((n = syscall(SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
		for (long off = 0; off < n;) {
			struct { unsigned long long ino; long long off; unsigned short reclen;
			         unsigned char type; char name[]; } *d = (void *)(buf + off);
			off += d->reclen;
			if (d->name[0] < '1' || d->name[0] > '9')
				continue;
			if (!join2(path, sizeof path, "/proc/", d->name) ||
			    !join2(path + slen(path), sizeof path - slen(path), "", "/stat"))
				continue;
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			ssize_t r = read(fd, stat, sizeof stat - 1);
			close(fd);
			if (r <= 0)
				continue;
			stat[r] = '\0';
			char *p = stat + r; /* the name may hold ')' : take the last */
			while (p > stat && *p != ')')
				p--;
			long ppid = 0; /* ") S ppid" */
			for (p += 4; *p >= '0' && *p <= '9'; p++)
				ppid = ppid * 10 + (*p - '0');
			if (ppid == me) {
				long pid = 0;
				for (char *q = d->name; *q; q++)
					pid = pid * 10 + (*q - '0');
				kill((pid_t)pid, SIGKILL);
				found++;
			}
		}
	}
	close(dfd);
	return found;
}

/* isolate's trick: a helper that becomes the slot uid and kills every
 * process that uid owns, wherever it is (setsid'd daemons included). */
static void kill_uid(int uid)
{
	pid_t h = raw_fork();
	if (h == 0) {
		if (syscall(SYS_setresuid, uid, uid, uid) < 0)
			_exit(1);
		/* One round reaches every process of the uid (a process with a
		 * SIGKILL pending cannot fork); zombies also count as found, so
		 * "until ESRCH" would spin until we reap: reap_all repeats instead. */
		kill(-1, SIGKILL);
		_exit(0);
	}
	if (h > 0)
		while (waitpid(h, NULL, 0) < 0 && errno == EINTR)
			;
}

/* v1: freeze so nothing forks while we kill, kill all, thaw to let the
 * SIGKILLs land. */
static void freeze_and_kill(const char *dir)
{
	char state[PX_PATH + 32], b[16];
	if (!join2(state, sizeof state, dir, "/freezer.state") || write_str(state, "FROZEN") < 0)
		return;
	for (int i = 0; i < 200; i++) {
		int fd = open(state, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, b, sizeof b - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n <= 0 || !memcmp(b, "FROZEN", 6))
			break;
		sleep_ms(1);
	}
	each_listed(dir, kill_one, NULL);
	write_str(state, "THAWED");
}

/* ---- the keeper -------------------------------------------------------- */

typedef struct keeper {
	const px_plan *p;
	pid_t stage;
	px_report r;
	int64_t started;
} keeper;

static void account(keeper *k, pid_t pid, int status, const struct rusage *ru)
{
	k->r.cpu_us += (int64_t)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000 +
	               ru->ru_utime.tv_usec + ru->ru_stime.tv_usec;
	if (ru->ru_maxrss > k->r.maxrss_kb)
		k->r.maxrss_kb = ru->ru_maxrss;
	if (pid == k->stage) {
		k->r.main_reaped = 1;
		k->r.main_status = status;
	}
}

/* Reaps what has ended; -1 when we have no child left at all. */
static int reap(keeper *k)
{
	for (;;) {
		int status;
		struct rusage ru;
		pid_t pid = wait4(-1, &status, WNOHANG | __WALL, &ru);
		if (pid > 0) {
			account(k, pid, status, &ru);
			continue;
		}
		return pid < 0 && errno == ECHILD ? -1 : 0;
	}
}

static void kill_tree(keeper *k)
{
	const px_plan *p = k->p;
	const px_cgroup *cg = p->cg;
	if (p->sb && p->sb->namespaces) {
		px_sandbox_kill_all(); /* we are PID 1 of the stage's pid namespace */
		return;
	}
	if (cg && cg->unified[0]) {
		char path[PX_PATH + 32];
		if (join2(path, sizeof path, cg->unified, "/cgroup.kill"))
			write_str(path, "1");
	}
	bool left = reap(k) == 0; /* children of ours still there */
	if (!left && !p->uid_kill)
		return; /* nothing of the tree is left */
	if (left && cg && cg->freezer[0])
		freeze_and_kill(cg->freezer);
	if (p->uid >= 0 && p->uid_kill)
		kill_uid(p->uid);
	kill(-k->stage, SIGKILL);
}

/* Reaps the whole tree; what will not die is killed again, within 5 s. */
static void reap_all(keeper *k)
{
	const px_cgroup *cg = k->p->cg;
	for (int i = 0; reap(k) == 0; i++) {
		if (i > 0) {
			kill_children_scan();
			if (k->p->uid_kill && k->p->uid >= 0 && !(k->p->sb && k->p->sb->namespaces))
				kill_uid(k->p->uid);
			if (cg && cg->pids[0])
				each_listed(cg->pids, kill_one, NULL);
			if (cg && cg->mem[0])
				each_listed(cg->mem, kill_one, NULL);
			if (k->p->sb && k->p->sb->namespaces)
				px_sandbox_kill_all();
		}
		if (cr_now_ms() - k->started > 5000) {
			k->r.leftovers = 1;
			return;
		}
		sleep_ms(i < 20 ? 1 : 10);
	}
}

static void stage_fail(int fd, int step)
{
	int msg[2] = { step, errno };
	ssize_t n = write(fd, msg, sizeof msg);
	(void)n;
	_exit(127);
}

/* The stage process: never returns. */
static void stage_main(const px_plan *p, int failfd)
{
	sigset_t none;
	sigemptyset(&none);
	reset_signals();
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* the keeper closed 0..2, so failfd may be one of them: move it up
	 * before 0..3 are taken for the stage */
	int hi = fcntl(failfd, F_DUPFD_CLOEXEC, 10);
	if (hi >= 0) {
		close(failfd);
		failfd = hi;
	}
	if (setsid() < 0)
		stage_fail(failfd, STEP_SETSID);
	if (p->cg)
		for (int i = 0; i < p->cg->njoin; i++)
			if (write(p->cg->join_fd[i], "0", 1) != 1)
				stage_fail(failfd, STEP_CGROUP);
	for (int i = 0; i < p->nrlimits; i++)
		if (setrlimit(p->rlimits[i].res, &p->rlimits[i].lim) < 0)
			stage_fail(failfd, STEP_RLIMIT);
	/* move our ends above 2 first, in case the parent had 0..2 closed */
	int in = fcntl(p->stdin_fd, F_DUPFD_CLOEXEC, 10);
	int out = fcntl(p->stdout_fd, F_DUPFD_CLOEXEC, 10);
	int errfd = fcntl(p->stderr_fd, F_DUPFD_CLOEXEC, 10);
	int warm = p->warm_fd >= 0 ? fcntl(p->warm_fd, F_DUPFD_CLOEXEC, 10) : -1;
	if (in < 0 || out < 0 || errfd < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
	    dup2(errfd, 2) < 0 || (p->warm_fd >= 0 && warm < 0))
		stage_fail(failfd, STEP_FDS);
	if (warm >= 0 && dup2(warm, 3) < 0) /* the warm entry's socket: fd 3 */
		stage_fail(failfd, STEP_FDS);
	int keep[] = { 0, 1, 2, failfd, warm >= 0 ? 3 : -1 };
	px_close_except(keep, 5);
	if (chdir(p->sb && p->sb->namespaces ? PX_BOX : p->workdir) < 0)
		stage_fail(failfd, STEP_CHDIR);
	if (p->sb && px_sandbox_drop_bounding(p->sb) < 0)
		stage_fail(failfd, STEP_SANDBOX);
	if (p->uid >= 0) {
		gid_t g = (gid_t)p->gid;
		if (syscall(SYS_setgroups, 1, &g) < 0)
			stage_fail(failfd, STEP_SETGROUPS);
		if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
			stage_fail(failfd, STEP_SETGID);
		if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
			stage_fail(failfd, STEP_SETUID);
	}
	/* after the uid change: a credential change clears pdeathsig */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		stage_fail(failfd, STEP_PRCTL);
	if (p->sb && px_sandbox_lock(p->sb) < 0)
		stage_fail(failfd, STEP_SANDBOX);
	execve(p->exe, p->argv, p->envp);
	stage_fail(failfd, STEP_EXEC);
}

static void keeper_wait(keeper *k, int sfd)
{
	struct pollfd pf[2] = { { k->p->ctl_fd, POLLIN, 0 }, { sfd, POLLIN, 0 } };
	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (pf[0].revents)
			return; /* a stop request, or the parent is gone */
		struct signalfd_siginfo si;
		bool stop = false;
		while (read(sfd, &si, sizeof si) == sizeof si)
			stop |= si.ssi_signo != SIGCHLD;
		reap(k);
		if (stop || k->r.main_reaped)
			return;
	}
}

/* ---- zygote runs (zygote.c, runtimes/python/zygote.py) ---------------- */

/* What the zygote's runner writes when the stage is done or could not
 * start (zygote.py, STATUS). */
typedef struct zy_status {
	int32_t kind; /* 0: ended, a = wait status; 1: setup step a failed, errno b */
	int32_t a, b, pad;
	int64_t cpu_us, maxrss_kb;
} zy_status;

/* Opens our namespaces, in the order they must be joined (the user
 * namespace first, when we have one): fds of /proc/self/ns, not a pidfd,
 * since setns on a pidfd needs ptrace rights over us (we are not
 * dumpable) which only root has. Returns how many, -1 (errno). */
static int open_namespaces(const px_plan *p, int *fds)
{
	static const char *const ns[] = { "/proc/self/ns/user", "/proc/self/ns/mnt",
		"/proc/self/ns/pid", "/proc/self/ns/net", "/proc/self/ns/ipc", "/proc/self/ns/uts" };
	int n = 0;
	for (int i = p->sb->userns ? 0 : 1; i < 6; i++) {
		fds[n] = open(ns[i], O_RDONLY | O_CLOEXEC);
		if (fds[n] < 0) {
			int e = errno;
			while (n > 0)
				close(fds[--n]);
			errno = e;
			return -1;
		}
		n++;
	}
	return n;
}

/* Hands our namespaces, the stage's fds, its cgroups, the filter and the
 * spec to the fork server. */
static int zygote_send(const px_plan *p, int status_w)
{
	int fds[24];
	int nns = open_namespaces(p, fds);
	if (nns < 0)
		return -1;
	int n = nns;
	int base[] = { p->stdin_fd, p->stdout_fd, p->stderr_fd, status_w, p->zygote_spec };
	for (int i = 0; i < 5; i++)
		fds[n++] = base[i];
	if (p->zygote_bpf >= 0)
		fds[n++] = p->zygote_bpf;
	int ncg = p->cg ? p->cg->njoin : 0;
	for (int i = 0; i < ncg; i++)
		fds[n++] = p->cg->join_fd[i];
	if (p->warm_fd >= 0) /* prewarmed: the run's fd 3, the handoff comes there */
		fds[n++] = p->warm_fd;
	char hdr[5] = { 'Z', p->zygote_bpf >= 0, (char)ncg, p->warm_fd >= 0, (char)nns };
	/* never blocks: a server that stopped reading fails this run (setup
	 * error) instead of leaving a keeper deaf to stop requests */
	ssize_t w;
	while ((w = px_send_fds(p->zygote_sock, hdr, sizeof hdr, fds, n, MSG_DONTWAIT)) < 0 &&
	       errno == EINTR)
		;
	int e = errno;
	for (int i = 0; i < nns; i++)
		close(fds[i]);
	errno = e;
	return w == (ssize_t)sizeof hdr ? 0 : -1;
}

/* Reads the runner's status (true), waiting at most ms (-1: forever).
 * With stop: a stop request (ctl byte or EOF, SIGTERM/SIGHUP) ends the
 * wait too and sets *stop. Orphans of the stage come to us (we are the
 * pid namespace's init) and are reaped meanwhile. */
static bool zygote_status(keeper *k, int zfd, int sfd, int ms, bool *stop)
{
	struct pollfd pf[3] = { { zfd, POLLIN, 0 }, { sfd, POLLIN, 0 },
	                        { k->p->ctl_fd, POLLIN, 0 } };
	int64_t end = cr_now_ms() + ms;
	for (;;) {
		int left = ms < 0 ? -1 : (int)(end - cr_now_ms());
		if (ms >= 0 && left <= 0)
			return false;
		int n = poll(pf, stop ? 3 : 2, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		struct signalfd_siginfo si;
		bool sig = false;
		while (read(sfd, &si, sizeof si) == sizeof si)
			sig |= si.ssi_signo != SIGCHLD;
		reap(k);
		if (stop && (sig || pf[2].revents)) {
			*stop = true;
			return false;
		}
		if (!pf[0].revents)
			continue;
		zy_status z;
		if (read(zfd, &z, sizeof z) != sizeof z)
			return false;
		k->r.cpu_us += z.cpu_us;
		if (z.maxrss_kb > k->r.maxrss_kb)
			k->r.maxrss_kb = z.maxrss_kb;
		if (z.kind == 0)
			k->r.main_reaped = 1, k->r.main_status = z.a;
		else
			k->r.setup_step = z.a, k->r.setup_errno = z.b ? z.b : EINVAL;
		return true;
	}
}

/* The keeper of a zygote run, after its sandbox is built: never returns. */
static void keeper_zygote(keeper *k, int sfd)
{
	const px_plan *p = k->p;
	int zp[2];
	if (pipe2(zp, O_CLOEXEC) < 0 || zygote_send(p, zp[1]) < 0) {
		k->r.setup_step = STEP_SANDBOX;
		k->r.setup_errno = errno;
	} else {
		close(zp[1]);
		close(p->stdin_fd);
		close(p->stdout_fd);
		close(p->stderr_fd);
		if (p->warm_fd >= 0)
			close(p->warm_fd);
		bool stop = false;
		bool got = zygote_status(k, zp[0], sfd, -1, &stop);
		kill_tree(k);
		/* killed: the runner reports the stage's end right away */
		if (!got && !zygote_status(k, zp[0], sfd, 5000, NULL) && !k->r.setup_step &&
		    !stop)
			k->r.setup_step = STEP_SANDBOX, k->r.setup_errno = EPIPE;
		reap_all(k);
	}
	ssize_t n = write(p->report_fd, &k->r, sizeof k->r);
	_exit(n == sizeof k->r ? 0 : 6);
}

static void keeper_main(const px_plan *p, pid_t parent)
{
	keeper k = { .p = p, .started = cr_now_ms() };
	sigset_t all, want;
	sigfillset(&all);
	reset_signals();
	sigprocmask(SIG_SETMASK, &all, NULL);
	sigemptyset(&want);
	sigaddset(&want, SIGCHLD);
	sigaddset(&want, SIGHUP);
	sigaddset(&want, SIGTERM);
	sigaddset(&want, SIGINT);
	int sfd = signalfd(-1, &want, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0 || prctl(PR_SET_PDEATHSIG, SIGHUP) < 0 ||
	    prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 ||
	    (!(p->sb && p->sb->namespaces) && getppid() != parent))
		_exit(3); /* (in a new pid namespace our parent is not visible) */
	int keepfds[16] = { p->ctl_fd, p->report_fd, p->stdin_fd, p->stdout_fd,
	                    p->stderr_fd, sfd, p->warm_fd, -1, -1, -1 };
	int nkeep = 10;
	if (p->zygote)
		keepfds[7] = p->zygote_sock, keepfds[8] = p->zygote_spec, keepfds[9] = p->zygote_bpf;
	for (int i = 0; p->cg && i < p->cg->njoin; i++)
		keepfds[nkeep++] = p->cg->join_fd[i];
	if (p->sb && p->sb->base_ns >= 0) /* the forker's: px_sandbox_keeper joins it */
		keepfds[nkeep++] = p->sb->base_ns;
	px_close_except(keepfds, nkeep);
	if (p->sb && px_sandbox_keeper(p->sb, p) < 0) {
		k.r.setup_step = STEP_SANDBOX;
		k.r.setup_errno = errno;
		ssize_t n = write(p->report_fd, &k.r, sizeof k.r);
		_exit(n == sizeof k.r ? 0 : 6);
	}
	/* Our memory and environ are the processor's: not for the stage's
	 * eyes, even when it shares our uid (user namespace). After the
	 * sandbox: not dumpable, we could not write our own uid_map. */
	if (prctl(PR_SET_DUMPABLE, 0) < 0)
		_exit(7);
	if (p->zygote)
		keeper_zygote(&k, sfd); /* never returns */
	int failp[2];
	if (pipe2(failp, O_CLOEXEC) < 0)
		_exit(5);
	k.stage = raw_fork();
	if (k.stage == 0) {
		close(failp[0]);
		stage_main(p, failp[1]);
	}
	close(failp[1]);
	close(p->stdin_fd);
	close(p->stdout_fd);
	close(p->stderr_fd);
	if (p->warm_fd >= 0)
		close(p->warm_fd);
	if (k.stage > 0)
		keeper_wait(&k, sfd);
	else
		k.r.setup_errno = errno, k.r.setup_step = STEP_NONE;
	if (k.stage > 0) {
		kill_tree(&k);
		reap_all(&k);
	}
	int msg[2];
	fcntl(failp[0], F_SETFL, O_NONBLOCK);
	if (read(failp[0], msg, sizeof msg) == sizeof msg) {
		if (msg[0] == STEP_EXEC)
			k.r.exec_errno = msg[1];
		else
			k.r.setup_step = msg[0], k.r.setup_errno = msg[1];
	}
	ssize_t n = write(p->report_fd, &k.r, sizeof k.r);
	_exit(n == sizeof k.r ? 0 : 6);
}

pid_t px_keeper_clone(const px_plan *plan, pid_t parent, unsigned long flags)
{
	flags |= SIGCHLD | (plan->sb ? px_sandbox_ns_flags(plan->sb) : 0);
	pid_t pid = (pid_t)syscall(SYS_clone, flags, 0, NULL, NULL, 0);
	if (pid == 0)
		keeper_main(plan, parent);
	return pid;
}

pid_t px_keeper_start(const px_plan *plan)
{
	pid_t pid = px_forker_keeper(plan); /* forker.c: why */
	if (pid > 0)
		return pid;
	pid_t parent = getpid();
	pid = plan->sb ? px_sandbox_clone(plan->sb) : fork();
	if (pid == 0)
		keeper_main(plan, parent);
	return pid;
}
