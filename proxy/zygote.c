/*
 * zygote.c — the runtime's fork server ("zygote"), when px_config.zygote.
 *
 * A runtime with zygote.sh (python: runtimes/python/zygote.py) gets one
 * server per worker, started here at px_init with fd 3 a SOCK_SEQPACKET
 * socket to us. It keeps an initialised interpreter and forks a child per
 * invocation; the interpreter start-up is paid once, not per run.
 *
 * The sandbox is not the zygote's business: a zygote run is a cold run
 * (stage.c, keeper.c) whose keeper, once it has built the namespaces and
 * the new root, does not fork a stage process that execs runtime.sh but
 * sends the server its namespaces (/proc/self/ns fds), the stage's pipes,
 * the cgroup.procs fds,
 * the seccomp program and the run's spec (a memfd made here: uid, gid,
 * rlimits, work dir, entry, args, environment). The server forks; its
 * child joins the keeper's namespaces (setns) and forks the
 * stage, which applies the rest in stage_main's order before any user code
 * and reports through a pipe the keeper waits on. Kill, reap and limits
 * stay the keeper's and the slot thread's, exactly as for a cold run.
 *
 * With prewarm on too (warm.c), the slot's next sandbox is launched the
 * same way with a spec that holds no invocation and the warm socket as one
 * more fd: the child enters the sandbox and waits for the handoff on its
 * fd 3 as warm.py does; limits are then lowered by warm.c as for warm.sh.
 *
 * The server only ever reads a 5-byte header and fds: no invocation's
 * data enters the memory the next child is forked from. Only runtimes
 * without compile.sh, and only at the namespace levels (the stage must be
 * in the keeper's pid namespace so that kill(-1) and the subreaper catch
 * its whole tree): px_init refuses anything else.
 *
 * A server that died is logged and a new one started, without blocking a
 * run: px_zygote_usable spawns it and says no (runs go cold) until it has
 * said "ready"; a server that does not come up is tried again after 1 s,
 * then 2, 4... up to a minute. The new socket takes the old one's fd
 * number (dup2), so a launch that read px_zygote_sock() meanwhile still
 * has a live socket: at worst the new server's.
 */
#include "internal.h"
#include "clock.h"
#include "sandbox.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ZYGOTE_MAGIC "corral-zygote 1"
#define ZYGOTE_START_MS 10000
#define RESTART_MIN_MS 1000
#define RESTART_MAX_MS 60000

static struct {
	pthread_mutex_t mu;
	pid_t pid;     /* the server; -1: none or dead */
	int sock;      /* our end; kept open until px_zygote_fini */
	int bpf;       /* memfd holding the seccomp program; -1: none */
	bool starting; /* a restarted server that has not said ready yet */
	int64_t started_ms, retry_ms; /* its spawn; when to try again */
	int backoff_ms;
	unsigned long restarts;
} zy = { PTHREAD_MUTEX_INITIALIZER, -1, -1, -1, false, 0, 0, RESTART_MIN_MS, 0 };

static int fail(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "zygote: %s: %s", what, strerror(errno));
	return -1;
}

/* A memfd holding n bytes of p, offset back at 0; -1 (errno). */
static int memfd_with(const char *name, const void *p, size_t n)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			close(fd);
			errno = w < 0 ? e : EIO;
			return -1;
		}
		c += w, n -= (size_t)w;
	}
	return fd;
}

static int spawn_server(const char *exe, int child_end, char *err, size_t errlen)
{
	char rdir[PX_PATH + 32];
	snprintf(rdir, sizeof rdir, "CORRAL_RUNTIME_DIR=%s", px_w.runtime_dir);
	char *envp[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", rdir, NULL };
	char *argv[] = { (char *)exe, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, child_end, 3); /* our stderr stays its 2 */
	posix_spawn_file_actions_addclosefrom_np(&fa, 4); /* e.g. an inherited --notify-fd */
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
	                              POSIX_SPAWN_SETSID);
	int rc = posix_spawn(&zy.pid, exe, &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc != 0) {
		zy.pid = -1;
		errno = rc;
		return fail(err, errlen, exe);
	}
	return 0;
}

/* The server says "ready" once its interpreter is up. */
static int wait_ready(char *err, size_t errlen)
{
	struct pollfd pf = { zy.sock, POLLIN, 0 };
	int n = poll(&pf, 1, ZYGOTE_START_MS);
	char buf[8];
	ssize_t r = n > 0 ? recv(zy.sock, buf, sizeof buf, MSG_DONTWAIT) : -1;
	if (r == 5 && memcmp(buf, "ready", 5) == 0)
		return 0;
	snprintf(err, errlen, "zygote: the runtime's zygote.sh %s",
	         n == 0 ? "did not say ready within 10 s" : "ended before it was ready");
	return -1;
}

static void zygote_exe(char *exe, size_t len)
{
	snprintf(exe, len, "%s/zygote.sh", px_w.runtime_dir);
}

/* Whether this worker can have a fork server; err says why not. */
static bool possible(char *err, size_t errlen)
{
	char exe[PX_PATH + 16];
	zygote_exe(exe, sizeof exe);
	if (access(exe, X_OK) < 0)
		snprintf(err, errlen, "--zygote on: this runtime has no fork server (%s: %s)",
		         exe, strerror(errno));
	else if (px_w.cfg.has_compile)
		snprintf(err, errlen, "--zygote on: not with a compiled runtime (compile.sh)");
	else if (px_sandbox_level() < PX_LEVEL_NAMESPACES)
		snprintf(err, errlen, "--zygote on needs isolation level namespaces or full "
		         "(in force: %s)", px_level_name(px_sandbox_level()));
	else
		return true;
	return false;
}

int px_zygote_init(char *err, size_t errlen)
{
	if (!px_w.cfg.zygote)
		return 0;
	if (!possible(err, errlen)) {
		if (!px_w.cfg.zygote_auto)
			return -1;
		char q[600];
		cr_log("info", "zygote auto: off", "why=%s", cr_log_quote(q, sizeof q, err));
		px_w.cfg.zygote = false;
		err[0] = '\0';
		return 0;
	}
	char exe[PX_PATH + 16];
	zygote_exe(exe, sizeof exe);
	const px_sandbox *sb = px_sandbox_for(0);
	if (sb->seccomp) {
		zy.bpf = memfd_with("corral-seccomp", sb->prog.filter,
		                    sb->prog.len * sizeof(struct sock_filter));
		if (zy.bpf < 0)
			return fail(err, errlen, "memfd");
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return fail(err, errlen, "socketpair");
	zy.sock = sv[0];
	int rc = spawn_server(exe, sv[1], err, errlen);
	close(sv[1]);
	if (rc == 0)
		rc = wait_ready(err, errlen);
	if (rc < 0)
		px_zygote_fini();
	else
		snprintf(px_w.accel, sizeof px_w.accel, "%s", px_w.prewarm ? "prewarm+zygote" : "zygote");
	return rc;
}

void px_zygote_fini(void)
{
	if (zy.sock >= 0)
		close(zy.sock); /* EOF: the server ends */
	if (zy.pid > 0) {
		kill(zy.pid, SIGKILL);
		waitpid(zy.pid, NULL, 0);
	}
	if (zy.bpf >= 0)
		close(zy.bpf);
	zy.sock = zy.bpf = -1;
	zy.pid = -1;
}

/* A restart that failed (under zy.mu): the next try, later and later. */
static void start_failed(void)
{
	zy.starting = false;
	zy.retry_ms = cr_now_ms() + zy.backoff_ms;
	if (zy.backoff_ms < RESTART_MAX_MS)
		zy.backoff_ms *= 2;
}

/* Reaps the server if it died (under zy.mu); true when it did. */
static bool server_died(void)
{
	int status;
	if (zy.pid <= 0 || waitpid(zy.pid, &status, WNOHANG) != zy.pid)
		return false;
	char why[64], q[96];
	snprintf(why, sizeof why, "%s %d", WIFSIGNALED(status) ? "signal" : "exit",
	         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	cr_log("error", zy.starting ? "zygote server ended before it was ready"
	                            : "zygote server is gone: runs are cold until it is back",
	       "pid=%d end=%s", (int)zy.pid, cr_log_quote(q, sizeof q, why));
	zy.pid = -1;
	return true;
}

/* Spawns a new server (under zy.mu), its socket on zy.sock's number. */
static void restart_server(void)
{
	char exe[PX_PATH + 16], err[256], q[300];
	zygote_exe(exe, sizeof exe);
	int sv[2];
	zy.restarts++;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		cr_log("error", "zygote restart failed", "error=%s", strerror(errno));
		start_failed();
		return;
	}
	int rc = dup3(sv[0], zy.sock, O_CLOEXEC);
	if (rc < 0)
		snprintf(err, sizeof err, "dup3: %s", strerror(errno));
	else
		rc = spawn_server(exe, sv[1], err, sizeof err);
	close(sv[0]);
	close(sv[1]);
	if (rc < 0) {
		cr_log("error", "zygote restart failed", "error=%s", cr_log_quote(q, sizeof q, err));
		start_failed();
		return;
	}
	zy.starting = true;
	zy.started_ms = cr_now_ms();
}

/* Whether a restarted server has said "ready" (under zy.mu); one that
 * takes too long is killed and tried again later. */
static bool came_up(void)
{
	char buf[8];
	ssize_t r = recv(zy.sock, buf, sizeof buf, MSG_DONTWAIT);
	if (r == 5 && memcmp(buf, "ready", 5) == 0) {
		zy.starting = false;
		zy.backoff_ms = RESTART_MIN_MS;
		cr_log("info", "zygote server is back", "pid=%d restarts=%lu", (int)zy.pid,
		       zy.restarts);
		return true;
	}
	if (cr_now_ms() - zy.started_ms > ZYGOTE_START_MS) {
		cr_log("error", "zygote server did not say ready", "pid=%d", (int)zy.pid);
		kill(zy.pid, SIGKILL);
		waitpid(zy.pid, NULL, 0);
		zy.pid = -1;
		start_failed();
	}
	return false;
}

bool px_zygote_usable(void)
{
	if (!px_w.cfg.zygote || zy.sock < 0)
		return false;
	pthread_mutex_lock(&zy.mu);
	if (server_died()) {
		if (zy.starting)
			start_failed();
		else
			zy.retry_ms = 0; /* it was up: a new one at once */
	}
	if (zy.pid < 0 && !zy.starting && cr_now_ms() >= zy.retry_ms)
		restart_server();
	bool ok = zy.pid > 0 && (!zy.starting || came_up());
	pthread_mutex_unlock(&zy.mu);
	return ok;
}

int px_zygote_sock(void) { return zy.sock; }
int px_zygote_bpf(void) { return zy.bpf; }

int px_zygote_spec(int slot, const char *workdir, const cr_limits *lim, const char *handoff,
                   size_t handoff_len, char *err, size_t errlen)
{
	const px_sandbox *sb = px_sandbox_for(slot);
	px_plan p = { .zygote = true };
	px_plan_limits(&p, lim);
	unsigned long ns = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |
	                   CLONE_NEWUTS | (sb->userns ? CLONE_NEWUSER : 0);
	size_t cap = 256 + strlen(workdir) + (size_t)p.nrlimits * 64 + handoff_len;
	char *b = malloc(cap);
	if (!b) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int n = snprintf(b, cap, "%s%c%lu%c%d%c%d%c%d%c%d%c%s%c%d%c", ZYGOTE_MAGIC, 0, ns, 0,
	                 sb->userns, 0, px_w.root || sb->userns, 0, px_slot_uid(slot), 0,
	                 px_slot_gid(slot), 0, px_seen_workdir(workdir), 0, p.nrlimits, 0);
	for (int i = 0; i < p.nrlimits; i++)
		n += snprintf(b + n, cap - (size_t)n, "%d%c%llu%c%llu%c", p.rlimits[i].res, 0,
		              (unsigned long long)p.rlimits[i].lim.rlim_cur, 0,
		              (unsigned long long)p.rlimits[i].lim.rlim_max, 0);
	memcpy(b + n, handoff, handoff_len);
	int fd = memfd_with("corral-zygote-spec", b, (size_t)n + handoff_len);
	free(b);
	if (fd < 0)
		return fail(err, errlen, "spec memfd");
	return fd;
}
