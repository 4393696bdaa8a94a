/*
 * warm.c — prewarmed one-shot sandboxes.
 *
 * With prewarm on (px_config.prewarm, a runtime with warm.sh and no
 * compile.sh), each slot keeps its next sandbox started before a request
 * arrives: an empty work dir, the slot's cgroup, the keeper in its fresh
 * namespaces, and the stage process already running the runtime's
 * `warm.sh` as the slot's uid, seccomp'd, with the invocation's stdin,
 * stdout and stderr pipes — all of it built exactly as for a cold run
 * (stage.c, px_stage_launch), under the worker's largest run limits.
 * warm.sh starts the interpreter and blocks reading its fd 3, a socket
 * to us (the contract is in docs/runtimes.md, "warm").
 *
 * When an invocation comes (px_warm_run), its files go into the work dir
 * (the same folder the sandbox has bound), the invocation's limits
 * replace the warm ones — cgroup limits rewritten, rlimits set with
 * prlimit on the warm process, CPU and peak-memory counters marked so
 * that the start-up is not charged — and the handoff is written to fd 3:
 *
 *     "corral-warm 1" NUL entry NUL <nargs> NUL arg... NUL KEY=VALUE NUL ...
 *
 * (the environment is the whole stage environment, as a cold run's),
 * then EOF. The warm process runs the user's program in itself and the
 * stage ends as a cold one does: the keeper kills the tree, the work dir
 * is removed. A warm sandbox serves exactly one invocation: nothing
 * outlives it, and the slot's next one is started afresh (px_prepare,
 * from the slot's thread once the reply is out).
 *
 * A warm sandbox that died before its handoff (warm.sh failed, the
 * interpreter crashed) is discarded and the invocation runs cold; after
 * three such deaths in a row the slot stops prewarming (logged).
 */
#include "internal.h"
#include "clock.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WARM_MAGIC "corral-warm 1"
#define MAX_FAILURES 3
#define MAX_PIDS 16
#define WARM_START_MS 10000

/* warm.sh, on the host or (seen) as the stage sees it. */
static void warm_exe(char *exe, size_t len, bool seen)
{
	snprintf(exe, len, "%s/warm.sh", seen ? px_seen_runtime_dir() : px_w.runtime_dir);
}

void px_warm_init(void)
{
	char exe[PX_PATH + 16];
	warm_exe(exe, sizeof exe, false);
	bool has = access(exe, X_OK) == 0;
	px_w.prewarm = px_w.cfg.prewarm && has && !px_w.cfg.has_compile;
	if (px_w.prewarm)
		snprintf(px_w.accel, sizeof px_w.accel, "prewarm");
	else if (px_w.cfg.prewarm)
		snprintf(px_w.accel, sizeof px_w.accel, "none (prewarm asked; the runtime %s)",
		         has ? "has a compile stage" : "has no warm.sh");
	else
		snprintf(px_w.accel, sizeof px_w.accel, "none");
}

const char *px_accel(void) { return px_w.accel[0] ? px_w.accel : "none"; }

/* ---- start ahead ----------------------------------------------------------- */

static void warm_failed(px_slot *s, const char *what, const char *why)
{
	char q[600];
	px_warm *w = &s->warm;
	if (++w->failures == MAX_FAILURES)
		cr_log("error", "prewarm stops on this slot", "slot=%d after=%d", s->index,
		       MAX_FAILURES);
	cr_log("warn", what, "slot=%d error=%s", s->index, cr_log_quote(q, sizeof q, why));
}

void px_prepare(px_slot *s)
{
	if (!s)
		return;
	px_warm *w = &s->warm;
	if (px_tidy(s, NULL, 0) < 0 || !px_w.prewarm || w->present || w->failures >= MAX_FAILURES)
		return;
	char err[512], exe[PX_PATH + 16];
	px_launch *l = calloc(1, sizeof *l);
	if (!l)
		return;
	if (px_make_dirs(s, NULL, 0, w->wd, w->tmp, err, sizeof err) < 0) {
		px_remove_dirs(s, w->wd, w->tmp);
		free(l);
		warm_failed(s, "prewarm: work dir", err);
		return;
	}
	warm_exe(exe, sizeof exe, true);
	char *argv[] = { exe, NULL };
	cr_request none = { .entry = "" };
	px_env env = { 0 };
	int rc = -1;
	if (px_env_build(&env, &none, w->wd, w->tmp, "run", s->index) < 0) {
		snprintf(err, sizeof err, "out of memory");
	} else {
		px_stage_spec spec = { .exe = exe, .argv = argv, .envp = env.v, .workdir = w->wd,
		                       .lim = &px_w.cfg.warm_limits, .zygote_spec = -1 };
		/* with the fork server: its child waits in the sandbox, not warm.sh */
		if (px_zygote_usable()) {
			spec.zygote_spec = px_zygote_spec(s->index, w->wd, spec.lim, "", 0, err,
			                                  sizeof err);
			spec.zygote = spec.zygote_spec >= 0;
		}
		if (!px_zygote_usable() || spec.zygote)
			rc = px_stage_launch(s, &spec, true, l, err, sizeof err);
		if (spec.zygote)
			close(spec.zygote_spec);
	}
	px_env_free(&env);
	if (rc < 0) {
		px_remove_dirs(s, w->wd, w->tmp);
		free(l);
		warm_failed(s, "prewarm: launch", err);
		return;
	}
	pthread_mutex_lock(&s->mu);
	w->l = l;
	w->ready = false;
	w->started_ms = cr_now_ms();
	w->present = true;
	pthread_mutex_unlock(&s->mu);
}

bool px_slot_warm_ready(px_slot *s)
{
	if (!s || !px_w.prewarm)
		return false;
	pthread_mutex_lock(&s->mu);
	px_warm *w = &s->warm;
	if (w->present && !w->ready && !s->active) {
		char b[16];
		ssize_t n = recv(w->l->warm_fd, b, sizeof b, MSG_DONTWAIT);
		w->ready = n > 0; /* "ready\n"; EOF or error: dead, found at its run */
	}
	bool r = w->present && w->ready;
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* Takes the slot's warm sandbox out of it (NULL when none). */
static px_launch *take(px_slot *s)
{
	pthread_mutex_lock(&s->mu);
	px_launch *l = s->warm.present ? s->warm.l : NULL;
	s->warm.present = false;
	s->warm.l = NULL;
	pthread_mutex_unlock(&s->mu);
	return l;
}

void px_warm_discard(px_slot *s)
{
	px_launch *l = take(s);
	if (!l)
		return;
	px_stage_abandon(l);
	free(l);
	px_remove_dirs(s, s->warm.wd, s->warm.tmp);
}

/* ---- hand over ------------------------------------------------------------ */

/* Waits until the warm entry says it is ready (it may still be starting:
 * waiting for it beats a cold start); false when it died or took longer
 * than WARM_START_MS. */
static bool wait_ready(px_slot *s, const px_launch *l)
{
	pthread_mutex_lock(&s->mu);
	bool ready = s->warm.ready;
	pthread_mutex_unlock(&s->mu);
	int64_t end = cr_now_ms() + WARM_START_MS;
	while (!ready) {
		struct pollfd pf[2] = { { l->report_fd, POLLIN, 0 }, { l->warm_fd, POLLIN, 0 } };
		int64_t left = end - cr_now_ms();
		int n = left > 0 ? poll(pf, 2, (int)left) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || pf[0].revents)
			return false;
		char b[16];
		ssize_t r = recv(l->warm_fd, b, sizeof b, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return false;
		ready = r > 0;
	}
	struct pollfd pf = { l->report_fd, POLLIN, 0 };
	return poll(&pf, 1, 0) == 0; /* no report: still alive */
}

/* Processes whose parent is ppid (from /proc: the kernel's
 * task/<tid>/children is not always built in). */
static int children_of(pid_t ppid, pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;
	while (d && n < max && (e = readdir(d)) != NULL) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char p[300], line[128];
		snprintf(p, sizeof p, "/proc/%s/status", e->d_name);
		FILE *f = fopen(p, "re");
		int pp = -1;
		while (f && fgets(line, sizeof line, f))
			if (sscanf(line, "PPid: %d", &pp) == 1)
				break;
		if (f)
			fclose(f);
		if (pp == ppid)
			pids[n++] = (pid_t)atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return n;
}

/* Host pids of the warm process (and anything it started): its cgroup's
 * members; without cgroups, the keeper's children from /proc. */
static int warm_pids(const px_launch *l, pid_t *pids, int max)
{
	if (l->has_cg) {
		int n = px_cg_pids(&l->cg, pids, max);
		if (n > 0)
			return n;
	}
	return children_of(l->keeper, pids, max);
}

/* CPU seconds the process has used so far (RLIMIT_CPU counts them). */
static int64_t used_cpu_s(pid_t pid)
{
	char p[64], b[1024];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, b, sizeof b - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 0;
	b[n] = '\0';
	char *q = strrchr(b, ')');
	unsigned long long ut = 0, st = 0;
	if (!q || sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
	                 &st) != 2)
		return 0;
	long hz = sysconf(_SC_CLK_TCK);
	return hz > 0 ? (int64_t)((ut + st + (unsigned long long)hz - 1) / (unsigned long long)hz) : 0;
}

/* prlimit on another uid's process needs CAP_SYS_RESOURCE, which a
 * container may not give us even as root, or the same real uid and gid
 * as the target: so this thread (alone: raw syscalls, not glibc's
 * all-threads set*id) takes the slot's as its *real* ids for the call,
 * keeping euid 0, and gives them back. Only lowering limits works that
 * way, which is why a warm sandbox starts under the largest ones. */
static int prlimit_as(int uid, int gid, pid_t pid, int res, const struct rlimit *rl)
{
	if (uid < 0)
		return prlimit(pid, res, rl, NULL);
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return -1;
	if (syscall(SYS_setresgid, gid, -1, -1) < 0)
		return -1;
	int rc = -1, e = 0;
	if (syscall(SYS_setresuid, uid, -1, -1) == 0) {
		rc = prlimit(pid, res, rl, NULL);
		e = errno;
		if (syscall(SYS_setresuid, ru, -1, -1) < 0)
			abort(); /* cannot happen with euid 0; never run on as another */
	}
	if (syscall(SYS_setresgid, rg, -1, -1) < 0)
		abort();
	errno = e;
	return rc;
}

/* The invocation's limits replace the warm ones. */
static int apply_limits(px_slot *s, px_launch *l, const cr_limits *lim, char *err,
                        size_t errlen)
{
	if (l->has_cg && px_cg_set_limits(&l->cg, lim, err, errlen) < 0)
		return -1;
	pid_t pids[MAX_PIDS];
	int n = warm_pids(l, pids, MAX_PIDS);
	if (n <= 0) {
		snprintf(err, errlen, "cannot find the warm process");
		return -1;
	}
	px_plan p = { .warm_fd = -1, .zygote = px_zygote_usable() }; /* as launched */
	px_plan_limits(&p, lim);
	for (int i = 0; i < n; i++)
		for (int k = 0; k < p.nrlimits; k++) {
			struct rlimit rl = p.rlimits[k].lim;
			if (p.rlimits[k].res == RLIMIT_CPU) {
				int64_t used = used_cpu_s(pids[i]);
				rl.rlim_cur += (rlim_t)used;
				rl.rlim_max += (rlim_t)used;
			}
			struct rlimit old;
			if (prlimit(pids[i], p.rlimits[k].res, NULL, &old) == 0) {
				if (rl.rlim_max > old.rlim_max) /* cannot raise; warm had the most */
					rl.rlim_max = old.rlim_max;
				if (rl.rlim_cur > rl.rlim_max)
					rl.rlim_cur = rl.rlim_max;
			}
			if (prlimit_as(px_slot_uid(s->index), px_slot_gid(s->index), pids[i],
			               p.rlimits[k].res, &rl) < 0 && errno != ESRCH) {
				snprintf(err, errlen, "prlimit: %s", strerror(errno));
				return -1;
			}
		}
	if (l->has_cg)
		px_cg_mark(&l->cg);
	return 0;
}

/* The handoff message (format at the top). NULL when out of memory. */
char *px_warm_handoff(const cr_request *req, char *const *envp, size_t *len)
{
	char nargs[24];
	snprintf(nargs, sizeof nargs, "%zu", req->nargs);
	size_t n = sizeof WARM_MAGIC + strlen(req->entry) + 1 + strlen(nargs) + 1;
	for (size_t i = 0; i < req->nargs; i++)
		n += strlen(req->args[i]) + 1;
	for (char *const *e = envp; *e; e++)
		n += strlen(*e) + 1;
	char *b = malloc(n), *p = b;
	if (!b)
		return NULL;
#define PUT(s) (p = stpcpy(p, (s)) + 1)
	PUT(WARM_MAGIC);
	PUT(req->entry);
	PUT(nargs);
	for (size_t i = 0; i < req->nargs; i++)
		PUT(req->args[i]);
	for (char *const *e = envp; *e; e++)
		PUT(*e);
#undef PUT
	*len = (size_t)(p - b);
	return b;
}

/* Hands the invocation to the warm stage and runs it to its end. */
static int hand_over(px_slot *s, px_launch *l, const px_job *job, px_result *res,
                     const char *wd, const char *tmp, bool *lost, char *err, size_t errlen)
{
	const cr_request *req = job->req;
	px_env env = { 0 };
	char *msg = NULL, exe[PX_PATH + 16];
	size_t len = 0;
	int rc = -1;
	warm_exe(exe, sizeof exe, true);
	if (px_env_build(&env, req, wd, tmp, "run", s->index) < 0 ||
	    !(msg = px_warm_handoff(req, env.v, &len))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	px_stage_spec spec = { .exe = exe, .argv = NULL, .envp = env.v, .workdir = wd,
	                       .lim = &job->run_limits, .stdin_data = req->stdin_data,
	                       .stdin_len = req->stdin_len };
	res->has_run = true;
	rc = px_stage_finish(s, &spec, l, msg, len, &res->run, &res->cancelled, lost, err,
	                     errlen);
	if (*lost) {
		res->has_run = false;
		res->cancelled = false;
		rc = 0;
	}
out:
	free(msg);
	px_env_free(&env);
	return rc;
}

int px_warm_run(px_slot *s, const px_job *job, px_result *res, char *wd, char *tmp,
                char *err, size_t errlen)
{
	wd[0] = tmp[0] = '\0';
	if (!px_w.prewarm || px_w.cfg.has_compile)
		return PX_WARM_NONE;
	px_launch *l = take(s);
	if (!l)
		return PX_WARM_NONE;
	const cr_request *req = job->req;
	char why[512] = "";
	bool lost = false;
	int rc = -1;
	snprintf(wd, PX_PATH, "%s", s->warm.wd);
	snprintf(tmp, PX_PATH + 8, "%s", s->warm.tmp);
	if (!wait_ready(s, l)) {
		snprintf(why, sizeof why, "warm.sh ended, or did not say ready within %d ms",
		         WARM_START_MS);
		lost = true;
	} else if (px_workdir_put(wd, req->files, req->nfiles, px_slot_uid(s->index),
	                          px_slot_gid(s->index), err, errlen) < 0) {
		px_stage_abandon(l);
		free(l);
		return -1; /* as the cold path: the request's files cannot be made */
	} else if (apply_limits(s, l, &job->run_limits, why, sizeof why) < 0) {
		lost = true;
	} else {
		rc = hand_over(s, l, job, res, wd, tmp, &lost, err, errlen);
		if (lost)
			snprintf(why, sizeof why, "warm.sh ended before it had the invocation");
	}
	if (!lost) {
		s->warm.failures = 0;
		free(l);
		return rc;
	}
	px_stage_abandon(l);
	free(l);
	px_remove_dirs(s, wd, tmp);
	wd[0] = tmp[0] = '\0';
	warm_failed(s, "prewarmed sandbox unusable; running cold", why);
	return PX_WARM_NONE;
}
