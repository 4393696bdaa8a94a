/*
 * main.c — corral-processor: serve invocations of one runtime over nng.
 *
 * Start-up: configuration, a private state dir, the runtime (metadata,
 * version, staged copy), the proxy, the slots, the listeners; then the
 * readiness newline for s6 on --notify-fd. The main thread then only
 * waits for signals: SIGTERM or SIGINT starts the drain — new runs are
 * refused with `busy` (the listeners stay open: closing one would cut
 * the connections the running invocations must reply on), running ones
 * get --drain-ms to finish and are cancelled after that, every reply is
 * sent, and the process exits 0.
 */
#include "conf.h"
#include "clock.h"
#include "fsutil.h"
#include "log.h"
#include "processor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char state_dir[4096];

/* A previous life killed -9 may leave its slots' work tmpfs mounted on
 * <dir>/work/<pid>.slotN; removing the dir fails on them (and under s6
 * every restart would fail), so detach them first. */
static void detach_stale_mounts(const char *dir)
{
	char work[4200];
	snprintf(work, sizeof work, "%s/work", dir);
	DIR *d = geteuid() == 0 ? opendir(work) : NULL;
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char p[4500];
		if (e->d_name[0] != '.' && snprintf(p, sizeof p, "%s/%s", work, e->d_name) < (int)sizeof p)
			umount2(p, MNT_DETACH); /* EINVAL when it is no mount point: fine */
	}
	closedir(d);
}

/* Default state dirs (TMPDIR/corral.<pid>.XXXXXX, or corral.<pid> of
 * older versions) of workers that died without cleaning up (SIGKILL):
 * removed when that pid no longer exists and the dir is ours. */
static void remove_dead_default_dirs(const char *tmp)
{
	DIR *d = opendir(tmp);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char *end;
		if (strncmp(e->d_name, "corral.", 7) != 0)
			continue;
		long pid = strtol(e->d_name + 7, &end, 10);
		struct stat st;
		char p[4200];
		snprintf(p, sizeof p, "%s/%s", tmp, e->d_name);
		if ((*end && (*end != '.' || strlen(end) != 7)) || pid <= 0 || pid == getpid() ||
		    lstat(p, &st) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		detach_stale_mounts(p);
		if (cr_rmtree(p) == 0)
			cr_log("info", "removed a dead worker's state dir", "dir=%s", p);
	}
	closedir(d);
}

/* A state dir that exists must be ours alone: a real folder (a symlink
 * is not followed), owned by our euid, writable by nobody else. Another
 * local user who made it first (or planted a symlink at its name) would
 * otherwise choose where tenants' work dirs go. 0, or -1 with err. */
static int check_private_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	int fd = -1;
	if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
		errno = ELOOP;
	else
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s", errno == ELOOP ? "it is a symlink, not a folder"
		                            : errno == ENOTDIR ? "it is not a folder"
		                                               : strerror(errno));
		return -1;
	}
	int rc = -1;
	if (fstat(fd, &st))
		snprintf(err, errlen, "%s", strerror(errno));
	else if (st.st_uid != geteuid())
		snprintf(err, errlen, "it is owned by uid %u, not by this worker's uid %u",
		         (unsigned)st.st_uid, (unsigned)geteuid());
	else if (st.st_mode & 022)
		snprintf(err, errlen, "it is writable by group or others (mode %04o)",
		         (unsigned)(st.st_mode & 07777));
	else if (fchmod(fd, 0711))
		snprintf(err, errlen, "chmod: %s", strerror(errno));
	else
		rc = 0;
	close(fd);
	return rc;
}

/* The state dir is ours alone: what a previous life left in it is stale.
 * It is emptied, not removed, so that it may be a mount point. The
 * default one is made afresh by mkdtemp (an unguessable name). */
static int make_state_dir(const pr_config *cfg, char *err, size_t errlen)
{
	const char *tmp = cr_env("TMPDIR") ? cr_env("TMPDIR") : "/tmp";
	if (cfg->state_dir) {
		snprintf(state_dir, sizeof state_dir, "%s", cfg->state_dir);
		if (mkdir(state_dir, 0711) && errno != EEXIST) {
			snprintf(err, errlen, "mkdir: %s", strerror(errno));
			return -1;
		}
	} else {
		remove_dead_default_dirs(tmp);
		snprintf(state_dir, sizeof state_dir, "%s/corral.%d.XXXXXX", tmp, (int)getpid());
		if (!mkdtemp(state_dir)) {
			snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
			return -1;
		}
	}
	if (check_private_dir(state_dir, err, errlen))
		return -1;
	detach_stale_mounts(state_dir);
	char work[4200];
	snprintf(work, sizeof work, "%s/work", state_dir);
	if (cr_emptydir(state_dir) || mkdir(work, 0711) || chmod(work, 0711)) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	return 0;
}

/* At exit: everything goes; the dir itself too unless it is a mount. */
static void remove_state_dir(void)
{
	if (!state_dir[0])
		return;
	cr_emptydir(state_dir);
	rmdir(state_dir);
}

static void wait_until(int (*count)(void), int64_t deadline)
{
	while (count() > 0 && cr_now_ms() < deadline)
		usleep(5000);
}

static void drain(const pr_config *cfg, int sig)
{
	cr_log("info", "draining", "signal=%s running=%d drain_ms=%lld", strsignal(sig),
	       pr_slots_busy(), (long long)cfg->drain_ms);
	pr_slots_set_draining(true);
	wait_until(pr_server_inflight, cr_now_ms() + cfg->drain_ms);
	if (pr_server_inflight() > 0) {
		cr_log("warn", "drain time is up; cancelling", "running=%d", pr_slots_busy());
		pr_slots_cancel_all();
		wait_until(pr_server_inflight, cr_now_ms() + 5000);
	}
	usleep(20000); /* let nng flush the last replies to the wire */
}

static int start(pr_config *cfg, pr_runtime *rt)
{
	char err[512], q[600];
	if (make_state_dir(cfg, err, sizeof err)) {
		char q2[600];
		cr_log("error", "cannot use the state dir: it must be a real folder owned by "
		                "this worker's uid and writable by no other user",
		       "dir=%s error=%s",
		       cr_log_quote(q, sizeof q, state_dir), cr_log_quote(q2, sizeof q2, err));
		state_dir[0] = '\0'; /* not ours: never empty or remove it */
		return -1;
	}
	if (pr_runtime_load(rt, cfg->runtime_dir, state_dir, cfg->runtime_version, err,
	                    sizeof err)) {
		cr_log("error", "cannot load the runtime", "error=%s", cr_log_quote(q, sizeof q, err));
		return -1;
	}
	char work[4200];
	snprintf(work, sizeof work, "%s/work", state_dir);
	px_config pc = {
		.runtime_dir = rt->staged_dir,
		.work_root = work,
		.has_compile = rt->compiled,
		.nslots = cfg->slots,
		.uid_base = cfg->uid_base,
		.gid = -1,
		.isolation = cfg->isolation ? cfg->isolation : "auto",
		.min_isolation = cfg->min_isolation ? cfg->min_isolation : "none",
		.tmp_bytes = cfg->tmp_bytes,
		.workdir_bytes = cfg->workdir_bytes,
		.prewarm = cfg->prewarm,
		.zygote = cfg->zygote,
		.zygote_auto = cfg->zygote_auto,
		.unenforced_memory = cfg->unenforced_memory,
		.unenforced_pids = cfg->unenforced_pids,
		.warm_limits = cfg->run_max,
	};
	if (px_init(&pc, err, sizeof err)) {
		cr_log("error", "cannot start the sandbox", "error=%s", cr_log_quote(q, sizeof q, err));
		return -1;
	}
	if (pr_slots_start(cfg, rt) || pr_server_start(cfg, rt))
		return -1;
	return 0;
}

static void notify_ready(int fd)
{
	if (fd < 0)
		return;
	if (write(fd, "\n", 1) != 1)
		cr_log("warn", "readiness notification failed", "fd=%d error=\"%s\"", fd,
		       strerror(errno));
	close(fd);
}

int main(int argc, char **argv)
{
	static pr_config cfg;
	static pr_runtime rt;
	cr_log_init("corral-processor");
	int rc = pr_config_load(&cfg, argc, argv);
	if (rc)
		return rc > 0 ? 0 : 2;

	/* Signals are taken by sigwait() below, never by handlers, so every
	 * thread started from here on has them blocked. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (start(&cfg, &rt)) {
		remove_state_dir();
		return 1;
	}
	char q[300];
	cr_log("info", "ready",
	       "runtime=%s version=%s slots=%d listen=%s isolation=%s uid_base=%d accel=%s pid=%d",
	       rt.name, rt.version, cfg.slots, cr_log_quote(q, sizeof q, cfg.listen[0]),
	       px_isolation(), cfg.uid_base, cr_log_quote((char[200]){ 0 }, 200, px_accel()),
	       (int)getpid());
	notify_ready(cfg.notify_fd);

	int sig;
	do {
		if (sigwait(&set, &sig))
			sig = SIGTERM;
	} while (sig == SIGHUP); /* reserved for reload; ignored for now */
	drain(&cfg, sig);
	pr_server_stop();
	pr_slots_stop();
	px_fini();
	remove_state_dir();
	cr_log("info", "stopped", "pid=%d", (int)getpid());
	return 0;
}
