/*
 * test_proxy.c — px_execute end to end with a tiny shell runtime.
 *
 * The runtime dir (runtime.sh = `exec /bin/sh "$@"`) and the work root are
 * made under a fresh /tmp dir, readable by the slot uids. As root, slots
 * run as uid base 61000 + (pid % 60) * 16 (below the system tests'
 * 62000+); as another user they run as that user. Every test checks what
 * can be checked at the level in force and says when a check does not
 * apply (printed, never counted as passed silently).
 */
#include "internal.h"
#include "proxy.h"
#include "test.h"

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

static char tmp_root[256], rt_dir[300], rtc_dir[300], work_root[300];
static int uid_base = -1;
static char marker[64];

static void put(const char *dir, const char *name, const char *text, mode_t mode)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	if (!f) {
		perror(p);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
	chmod(p, mode);
}

static cr_limits def_limits(void)
{
	return (cr_limits){ .wall_ms = 10000, .cpu_ms = 10000, .memory_bytes = 256 << 20,
	                    .pids = 64, .output_bytes = 1 << 20, .file_bytes = 16 << 20 };
}

typedef struct call {
	const char *script;
	const char *stdin_data;
	size_t stdin_len;
	cr_limits lim;
	char **args;
	size_t nargs;
	cr_kv *env;
	size_t nenv;
	cr_file *files; /* overrides script */
	size_t nfiles;
	int slot;
} call;

static int run(call *c, px_result *res, char *err, size_t errlen)
{
	cr_file f = { .name = "main.sh", .data = (char *)c->script,
	              .len = c->script ? strlen(c->script) : 0 };
	cr_kv mk[1] = { { "PXMARK", marker } };
	cr_request req = {
		.op = CR_OP_RUN,
		.files = c->files ? c->files : &f,
		.nfiles = c->files ? c->nfiles : 1,
		.entry = c->files ? c->files[0].name : f.name,
		.stdin_data = (char *)c->stdin_data,
		.stdin_len = c->stdin_len,
		.args = c->args,
		.nargs = c->nargs,
		.env = c->env ? c->env : mk,
		.nenv = c->env ? c->nenv : 1,
	};
	px_job job = { .req = &req, .run_limits = c->lim, .compile_limits = c->lim };
	if (!job.run_limits.wall_ms && !job.run_limits.pids)
		job.run_limits = job.compile_limits = def_limits();
	px_slot *s = px_slot_at(c->slot);
	int rc = px_execute(s, &job, res, err, errlen);
	px_tidy(s, NULL, 0); /* as the slot's thread does once the reply is out */
	return rc;
}

/* Runs script with default limits; the result must be valid. */
static void sh(const char *script, px_result *res)
{
	char err[512] = "";
	call c = { .script = script };
	int rc = run(&c, res, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "  px_execute: %s\n", err);
	CHECK_EQ_INT(rc, 0);
}

static bool out_is(const px_result *r, const char *s)
{
	return r->run.out_len == strlen(s) && memcmp(r->run.out, s, r->run.out_len) == 0;
}

/* Processes anywhere carrying our marker in their environment. */
static int marked_processes(void)
{
	DIR *d = opendir("/proc");
	int n = 0;
	struct dirent *e;
	char want[128];
	snprintf(want, sizeof want, "PXMARK=%s", marker);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char p[300], buf[65536];
		snprintf(p, sizeof p, "/proc/%s/environ", e->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, buf, sizeof buf - 1);
		close(fd);
		for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1) {
			buf[len] = '\0';
			if (!strcmp(buf + i, want))
				n++;
		}
	}
	if (d)
		closedir(d);
	return n;
}

/* The uid the stage sees for slot i. */
static int stage_uid(int slot)
{
	if (uid_base > 0)
		return uid_base + slot;
	/* not root, in a user namespace: we are its root, mapped to our uid */
	if (!strcmp(px_isolation_level(), "namespaces") && geteuid() != 0)
		return 0;
	return (int)getuid();
}

static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

/* Work dirs left behind: entries of the slots' folders ("<pid>.slotN"),
 * plus anything in the work root that is not a slot's folder or root. */
static int work_left(void)
{
	DIR *d = opendir(work_root);
	int n = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char p[600];
		snprintf(p, sizeof p, "%s/%s", work_root, e->d_name);
		if (strstr(e->d_name, ".slot"))
			n += entries(p);
		else if (!strstr(e->d_name, ".root"))
			n++;
	}
	if (d)
		closedir(d);
	return n;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_ok_and_chunks(void)
{
	px_result r;
	sh("echo hello; echo err >&2; echo more", &r);
	CHECK_EQ_INT(r.run.status, CR_ST_OK);
	CHECK_EQ_INT(r.run.exit_code, 0);
	CHECK(out_is(&r, "hello\nmore\n"));
	CHECK(r.run.err_len == 4 && !memcmp(r.run.err, "err\n", 4));
	CHECK(r.has_run && !r.has_compile && !r.cancelled);
	/* three writes into two pipes: order kept as read */
	int64_t sum_out = 0, sum_err = 0;
	for (size_t i = 0; i < r.run.nchunks; i++)
		r.run.chunks[i] > 0 ? (sum_out += r.run.chunks[i]) : (sum_err -= r.run.chunks[i]);
	CHECK_EQ_INT(sum_out, 11);
	CHECK_EQ_INT(sum_err, 4);
	CHECK(r.run.nchunks >= 2 && r.run.chunks[0] > 0);
	CHECK(r.run.wall_ms >= 0 && r.run.wall_ms < 5000);
	CHECK(r.run.memory_bytes > 0);
	px_result_free(&r);
}

/* One-byte writes alternating between the streams: the chunk list stays
 * within CR_MAX_CHUNKS + 2 entries and still adds up to both streams. */
static void test_chunks_bounded(void)
{
	px_result r;
	sh("i=0; while [ $i -lt 30000 ]; do printf o; printf e >&2; i=$((i+1)); done", &r);
	CHECK_EQ_INT(r.run.status, CR_ST_OK);
	CHECK(r.run.out_len == 30000 && r.run.err_len == 30000);
	int64_t sum_out = 0, sum_err = 0;
	for (size_t i = 0; i < r.run.nchunks; i++)
		r.run.chunks[i] > 0 ? (sum_out += r.run.chunks[i]) : (sum_err -= r.run.chunks[i]);
	CHECK_EQ_INT(sum_out, 30000);
	CHECK_EQ_INT(sum_err, 30000);
	printf("  %zu chunks for 60000 alternating one-byte writes\n", r.run.nchunks);
	CHECK(r.run.nchunks <= CR_MAX_CHUNKS + 2);
	px_result_free(&r);
}

static void test_exit_and_signal(void)
{
	px_result r;
	sh("exit 3", &r);
	CHECK_EQ_INT(r.run.status, CR_ST_EXIT);
	CHECK_EQ_INT(r.run.exit_code, 3);
	CHECK_EQ_INT(r.run.signal, 0);
	px_result_free(&r);
	sh("kill -SEGV $$", &r);
	CHECK_EQ_INT(r.run.status, CR_ST_SIGNAL);
	CHECK_EQ_INT(r.run.signal, SIGSEGV);
	CHECK_EQ_INT(r.run.exit_code, -1);
	px_result_free(&r);
}

static void test_wall_timeout_keeps_output(void)
{
	px_result r;
	char err[256];
	call c = { .script = "echo before; while :; do :; done", .lim = def_limits() };
	c.lim.wall_ms = 400;
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK_EQ_INT(r.run.status, CR_ST_TIMEOUT);
	CHECK(out_is(&r, "before\n"));
	/* at its wall limit, not before; the wall limit, not the CPU one */
	CHECK(r.run.wall_ms >= 400 && r.run.cpu_ms < c.lim.cpu_ms);
	CHECK_EQ_INT(r.run.signal, SIGKILL);
	px_result_free(&r);
}

static void test_cpu_limit(void)
{
	px_result r;
	char err[256];
	call c = { .script = "while :; do :; done", .lim = def_limits() };
	c.lim.cpu_ms = 300;
	c.lim.wall_ms = 8000;
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK_EQ_INT(r.run.status, CR_ST_TIMEOUT);
	CHECK(r.run.cpu_ms >= 250);
	/* Stopped by the cgroup's CPU count, not by RLIMIT_CPU, which rounds
	 * up to whole seconds: measured in CPU time, so a loaded machine
	 * (less CPU per wall second) does not change the verdict. */
	if (px_cg_has_cpu())
		CHECK(r.run.cpu_ms < 900);
	else
		CHECK(r.run.cpu_ms < 2500);
	px_result_free(&r);
}

static void test_memory_limit(void)
{
	px_result r;
	char err[256];
	call c = { .script = "exec python3 -c 'b = b\"x\" * (300 << 20); print(len(b))'",
	           .lim = def_limits() };
	c.lim.memory_bytes = 64 << 20;
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	if (px_cg_has_memory()) {
		CHECK_EQ_INT(r.run.status, CR_ST_MEMORY);
		CHECK(r.run.memory_bytes > 32 << 20 && r.run.memory_bytes <= 64 << 20);
	} else {
		printf("  (no memory cgroup: RLIMIT_DATA makes the allocation fail)\n");
		CHECK_EQ_INT(r.run.status, CR_ST_EXIT);
	}
	CHECK(r.run.out_len == 0);
	px_result_free(&r);
	/* under the limit: fine, and the peak is measured */
	c.script = "exec python3 -c 'b = b\"x\" * (20 << 20); print(len(b))'";
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK_EQ_INT(r.run.status, CR_ST_OK);
	CHECK(out_is(&r, "20971520\n"));
	CHECK(r.run.memory_bytes >= 20 << 20);
	CHECK(r.run.cpu_ms >= 0);
	px_result_free(&r);
}

static void test_fork_bomb(void)
{
	px_result r;
	char err[256];
	call c = { .script = "bomb() { bomb | bomb & }; bomb; sleep 1; echo alive",
	           .lim = def_limits() };
	c.lim.pids = 32;
	c.lim.wall_ms = 3000;
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK(r.run.status == CR_ST_OK || r.run.status == CR_ST_TIMEOUT);
	CHECK_EQ_INT(marked_processes(), 0);
	px_result_free(&r);
	/* the worker is fine afterwards */
	sh("echo next", &r);
	CHECK(out_is(&r, "next\n"));
	px_result_free(&r);
}

static void test_output_limit(void)
{
	px_result r;
	char err[256];
	call c = { .script = "head -c 10000000 /dev/zero | tr '\\0' a", .lim = def_limits() };
	c.lim.output_bytes = 1000;
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK_EQ_INT(r.run.status, CR_ST_OUTPUT);
	CHECK_EQ_INT(r.run.out_len, 1000);
	CHECK(r.run.out_truncated && !r.run.err_truncated);
	CHECK(r.run.out[0] == 'a' && r.run.out[999] == 'a');
	CHECK(r.run.nchunks >= 1 && r.run.chunks[0] > 0);
	px_result_free(&r);
	c.script = "echo ok; yes error >&2";
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK_EQ_INT(r.run.status, CR_ST_OUTPUT);
	CHECK(r.run.err_truncated && r.run.err_len == 1000 && out_is(&r, "ok\n"));
	px_result_free(&r);
	/* exactly at the cap is not over it */
	c.script = "head -c 1000 /dev/zero";
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK_EQ_INT(r.run.status, CR_ST_OK);
	CHECK(r.run.out_len == 1000 && !r.run.out_truncated);
	px_result_free(&r);
}

static void test_daemon_killed(void)
{
	px_result r;
	sh("( setsid sleep 300 & ); (trap '' HUP TERM; sleep 301 &) ; echo started", &r);
	CHECK_EQ_INT(r.run.status, CR_ST_OK);
	CHECK(out_is(&r, "started\n"));
	CHECK_EQ_INT(marked_processes(), 0);
	px_result_free(&r);
	/* one that keeps stdout open: the run ends when the main process does
	 * (ok; had it waited for the daemon, its wall limit would end it) */
	sh("(setsid sh -c 'while :; do sleep 1; echo tick; done' &); echo bye", &r);
	CHECK_EQ_INT(r.run.status, CR_ST_OK);
	CHECK_EQ_INT(marked_processes(), 0);
	px_result_free(&r);
}

static void test_file_size(void)
{
	px_result r;
	char err[256];
	call c = { .script = "head -c 2000000 /dev/zero > f; echo $?; wc -c < f",
	           .lim = def_limits() };
	c.lim.file_bytes = 1000000;
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK_EQ_INT(r.run.status, CR_ST_OK);
	CHECK(out_is(&r, "153\n1000000\n")); /* 128 + SIGXFSZ */
	px_result_free(&r);
	c.script = "exec head -c 2000000 /dev/zero > f";
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK_EQ_INT(r.run.status, CR_ST_SIGNAL);
	CHECK_EQ_INT(r.run.signal, SIGXFSZ);
	px_result_free(&r);
}

static void test_stdin(void)
{
	px_result r;
	char err[256];
	call c = { .script = "exec cat", .stdin_data = "hello stdin", .stdin_len = 11,
	           .lim = def_limits() };
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK(out_is(&r, "hello stdin"));
	px_result_free(&r);
	/* larger than a pipe: written while the output is read */
	size_t n = 3 << 20;
	char *big = malloc(n);
	memset(big, 'z', n);
	c.script = "exec cat";
	c.stdin_data = big;
	c.stdin_len = n;
	c.lim.output_bytes = 4 << 20;
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK_EQ_INT(r.run.status, CR_ST_OK);
	CHECK_EQ_INT(r.run.out_len, n);
	px_result_free(&r);
	/* not read at all: EPIPE is fine, nothing dies */
	c.script = "exit 0";
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK_EQ_INT(r.run.status, CR_ST_OK);
	px_result_free(&r);
	/* no stdin: EOF at once */
	c.script = "exec wc -c";
	c.stdin_data = NULL;
	c.stdin_len = 0;
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK(out_is(&r, "0\n"));
	px_result_free(&r);
	free(big);
}

static void test_args_env(void)
{
	px_result r;
	char err[256];
	char *args[] = { "a b", "", "c*", NULL };
	cr_kv env[] = { { "FOO", "bar baz" }, { "PATH", "/bin" }, { "CORRAL_SLOT", "99" },
	                { "PXMARK", marker } };
	call c = { .script = "printf '%s|' \"$@\"; echo; echo \"$FOO\"; echo $PATH;"
	                     "echo $CORRAL_SLOT $CORRAL_STAGE $CORRAL_ENTRY; "
	                     "[ \"$HOME\" = \"$CORRAL_WORKDIR\" ] && [ \"$PWD\" = \"$HOME\" ] && echo home;"
	                     "[ -d \"$TMPDIR\" ] && [ -w \"$TMPDIR\" ] && echo tmp;"
	                     "[ -x \"$CORRAL_RUNTIME_DIR/runtime.sh\" ] && echo rt; echo $LANG",
	           .args = args, .nargs = 3, .env = env, .nenv = 4, .lim = def_limits() };
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	const char *want = "a b||c*|\nbar baz\n/bin\n0 run main.sh\nhome\ntmp\nrt\nC.UTF-8\n";
	CHECK(out_is(&r, want));
	if (!out_is(&r, want))
		fprintf(stderr, "  got: %.*s\n", (int)r.run.out_len, r.run.out);
	px_result_free(&r);
}

static void test_identity(void)
{
	px_result r;
	sh("id -u; id -G; cat /proc/self/status | grep -E '^(NoNewPrivs|CapEff)'", &r);
	char want[256];
	if (uid_base > 0)
		snprintf(want, sizeof want, "%d\n65534\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n",
		         uid_base);
	else
		snprintf(want, sizeof want, "%d\n", stage_uid(0));
	bool ok = uid_base > 0 ? out_is(&r, want)
	                       : r.run.out_len > strlen(want) && !memcmp(r.run.out, want, strlen(want));
	CHECK(ok);
	if (!ok)
		fprintf(stderr, "  got: %.*s\n", (int)r.run.out_len, r.run.out);
	px_result_free(&r);
	/* the processor's fds are not inherited */
	int fd = open("/dev/null", O_RDONLY); /* no CLOEXEC on purpose */
	sh("ls /proc/self/fd | wc -l", &r);
	CHECK(out_is(&r, "4\n")); /* 0 1 2 + the fd ls opened */
	px_result_free(&r);
	close(fd);
}

static void *cancel_later(void *arg)
{
	(void)arg;
	struct timespec ts = { 0, 300 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	px_cancel(px_slot_at(0));
	return NULL;
}

static void test_cancel(void)
{
	px_result r;
	char err[256];
	pthread_t t;
	call c = { .script = "echo started; sleep 30", .lim = def_limits() };
	pthread_create(&t, NULL, cancel_later, NULL);
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	pthread_join(t, NULL);
	CHECK(r.cancelled);
	CHECK(r.run.wall_ms < c.lim.wall_ms); /* the cancel ended it, not its limit */
	CHECK(out_is(&r, "started\n"));
	CHECK_EQ_INT(marked_processes(), 0);
	px_result_free(&r);
	/* a cancel while idle has no effect on the next run */
	px_cancel(px_slot_at(0));
	sh("echo fine", &r);
	CHECK(!r.cancelled && out_is(&r, "fine\n"));
	px_result_free(&r);
}

/* The work dir is removed after the reply, by px_tidy, not inside
 * px_execute; the next px_execute on the slot tidies first anyway. */
static void test_tidy_after_reply(void)
{
	cr_file f = { .name = "main.sh", .data = "echo hi", .len = 7 };
	cr_request req = { .op = CR_OP_RUN, .files = &f, .nfiles = 1, .entry = "main.sh" };
	px_job job = { .req = &req, .run_limits = def_limits(), .compile_limits = def_limits() };
	px_result r;
	char err[512] = "";
	px_slot *s = px_slot_at(0);
	CHECK_EQ_INT(px_execute(s, &job, &r, err, sizeof err), 0);
	CHECK(out_is(&r, "hi\n"));
	px_result_free(&r);
	CHECK(work_left() > 0);
	CHECK_EQ_INT(px_execute(s, &job, &r, err, sizeof err), 0); /* tidies the first */
	px_result_free(&r);
	CHECK(work_left() > 0);
	CHECK_EQ_INT(px_tidy(s, err, sizeof err), 0);
	CHECK_EQ_INT(work_left(), 0);
}

/* A tree shaped against the cleanup, made here as the code of a run
 * could: 100000 folders deep (more than any fd-per-level walk or
 * recursion holds), mode-000 and read-only folders, symlinks out of the
 * tree, a fifo, names with a newline and every name the old cleanup
 * renamed deep folders to (".px-deep-<n>") taken. px_rmtree removes it
 * all and touches nothing outside. */
static void test_rmtree_hostile(void)
{
	char top[400], out[400], err[512];
	snprintf(top, sizeof top, "%s/hostile", tmp_root);
	snprintf(out, sizeof out, "%s/outside", tmp_root);
	CHECK_EQ_INT(mkdir(out, 0700), 0);
	put(out, "keep", "x", 0600);
	CHECK_EQ_INT(mkdir(top, 0700), 0);
	int fd = open(top, O_RDONLY | O_DIRECTORY);
	for (int i = 0; i < 300; i++) {
		char n[32];
		snprintf(n, sizeof n, ".px-deep-%d", i);
		CHECK(i % 2 ? symlinkat(out, fd, n) == 0 : mkdirat(fd, n, 0) == 0);
	}
	CHECK_EQ_INT(symlinkat(out, fd, "out"), 0);
	CHECK_EQ_INT(mkfifoat(fd, "fifo\nname", 0600), 0);
	CHECK_EQ_INT(mkdirat(fd, "ro", 0700), 0);
	CHECK_EQ_INT(mkdirat(fd, "ro/locked", 0700), 0);
	CHECK_EQ_INT(symlinkat("/", fd, "ro/locked/root"), 0);
	CHECK_EQ_INT(fchmodat(fd, "ro/locked", 0, 0), 0);
	CHECK_EQ_INT(fchmodat(fd, "ro", 0500, 0), 0);
	for (int i = 0; i < 100000 && fd >= 0; i++) {
		int sub = mkdirat(fd, "d", 0700) == 0 ? openat(fd, "d", O_RDONLY | O_DIRECTORY) : -1;
		close(fd);
		fd = sub;
	}
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK_EQ_INT(symlinkat(out, fd, "out"), 0);
		CHECK_EQ_INT(mkdirat(fd, "locked", 0), 0);
		close(fd);
	}
	CHECK_EQ_INT(px_rmtree(top, err, sizeof err), 0);
	struct stat st;
	CHECK(lstat(top, &st) < 0 && errno == ENOENT);
	char keep[450];
	snprintf(keep, sizeof keep, "%s/keep", out);
	CHECK_EQ_INT(stat(keep, &st), 0);
}

/* A slot whose work dir cannot be removed (here a mount point inside it,
 * which the cleanup never enters nor unmounts) is not clean: px_tidy says
 * why and keeps the dir, px_execute refuses the slot, and once the cause
 * is gone the next px_tidy removes it and the slot runs again. */
static void test_unclean_slot(void)
{
	if (geteuid() != 0) {
		printf("  (not root: cannot mount in a work dir; failure path not checked)\n");
		return;
	}
	cr_file f = { .name = "main.sh", .data = "mkdir m", .len = 7 };
	cr_request req = { .op = CR_OP_RUN, .files = &f, .nfiles = 1, .entry = "main.sh" };
	px_job job = { .req = &req, .run_limits = def_limits(), .compile_limits = def_limits() };
	px_result r;
	char err[512] = "", m[600] = "", cmd[700];
	px_slot *s = px_slot_at(1);
	CHECK_EQ_INT(px_execute(s, &job, &r, err, sizeof err), 0);
	px_result_free(&r);
	/* the run's dir as the host has it (a run sees its own as /box) */
	snprintf(cmd, sizeof cmd, "find %s -mindepth 3 -maxdepth 3 -type d -name m", work_root);
	FILE *fp = popen(cmd, "r");
	CHECK(fp && fgets(m, sizeof m, fp));
	if (fp)
		pclose(fp);
	m[strcspn(m, "\n")] = '\0';
	CHECK_EQ_INT(mount("tmpfs", m, "tmpfs", 0, "size=64k"), 0);
	CHECK_EQ_INT(px_tidy(s, err, sizeof err), -1);
	CHECK(strstr(err, "not removed") && strstr(err, strerror(EBUSY)));
	CHECK(work_left() > 0);
	err[0] = '\0';
	CHECK_EQ_INT(px_execute(s, &job, &r, err, sizeof err), -1);
	CHECK(strstr(err, "not removed") != NULL);
	px_result_free(&r);
	CHECK_EQ_INT(umount2(m, MNT_DETACH), 0);
	CHECK_EQ_INT(px_tidy(s, err, sizeof err), 0);
	CHECK_EQ_INT(work_left(), 0);
	CHECK_EQ_INT(px_execute(s, &job, &r, err, sizeof err), 0);
	px_result_free(&r);
	CHECK_EQ_INT(px_tidy(s, err, sizeof err), 0);
}

static void test_workdir(void)
{
	px_result r;
	char err[256];
	cr_file files[] = {
		{ "main.sh", "find . | sort; cat lib/x.txt; stat -c %a .", 0 },
		{ "lib/x.txt", "in a folder\n", 0 },
		{ "lib/deeper/y", "", 0 },
	};
	for (int i = 0; i < 3; i++)
		files[i].len = strlen(files[i].data);
	call c = { .files = files, .nfiles = 3, .lim = def_limits() };
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK(out_is(&r, ".\n./lib\n./lib/deeper\n./lib/deeper/y\n./lib/x.txt\n./main.sh\n"
	                 "in a folder\n700\n"));
	if (r.run.status != CR_ST_OK || r.run.out_len < 10)
		fprintf(stderr, "  got: %.*s %.*s\n", (int)r.run.out_len, r.run.out,
		        (int)r.run.err_len, r.run.err);
	px_result_free(&r);
	CHECK_EQ_INT(work_left(), 0);

	/* what user code does to its dir does not stop the cleanup */
	sh("mkfifo fifo; mkdir -p ro/a && echo x > ro/a/f && chmod 000 ro/a/f && "
	   "chmod 500 ro/a && chmod 000 ro; "
	   "p=$(printf 'd/%.0s' $(seq 300)) && mkdir -p \"$p\" && cd \"$p\" && echo 300; "
	   "ln -s /etc/passwd link; echo x > \"$TMPDIR/t\"; chmod 000 \"$TMPDIR\"", &r);
	CHECK(out_is(&r, "300\n")); /* one mkdir: 300 would take seconds on a slow host */
	if (!out_is(&r, "300\n"))
		fprintf(stderr, "  got: %.*s %.*s (status %d)\n", (int)r.run.out_len, r.run.out,
		        (int)r.run.err_len, r.run.err, (int)r.run.status);
	px_result_free(&r);
	CHECK_EQ_INT(work_left(), 0);
	CHECK(access("/etc/passwd", F_OK) == 0);

	/* the next invocation sees nothing of the previous one */
	sh("echo secret > $HOME/left; echo x > $TMPDIR/left", &r);
	px_result_free(&r);
	/* (with namespaces, /tmp holds the mount points of our test paths) */
	/* other work dirs: the slot's folder is unlistable for the slot uid
	 * (0711), or in a mount namespace (the work dir at /box) the work
	 * root is not there at all */
	char script[1024];
	snprintf(script, sizeof script, "ls -A; ls -A $TMPDIR | grep -v '^pxtest'; "
	         "d=$(dirname $HOME); [ \"$d\" = / ] && d=%s; ls $d 2>/dev/null | wc -l", work_root);
	sh(script, &r);
	CHECK(out_is(&r, "main.sh\n0\n") || out_is(&r, "main.sh\n1\n") ||
	      (uid_base < 0 && out_is(&r, "main.sh\n2\n"))); /* same uid: own dir + tmp */
	px_result_free(&r);

	/* bad input: a name given twice is an error, and leaves nothing */
	cr_file dup[] = { { "a.sh", "x", 1 }, { "a.sh", "y", 1 } };
	c.files = dup;
	c.nfiles = 2;
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), -1);
	CHECK(strstr(err, "a.sh") != NULL);
	px_result_free(&r);
	CHECK_EQ_INT(work_left(), 0);
}

typedef struct conc {
	int slot;
	px_result r;
	int rc;
} conc;

static void *conc_fn(void *arg)
{
	conc *k = arg;
	char err[256];
	call c = { .script = "echo $CORRAL_SLOT; id -u; date +%s%N; sleep 0.5; date +%s%N",
	           .slot = k->slot, .lim = def_limits() };
	k->rc = run(&c, &k->r, err, sizeof err);
	return NULL;
}

static void test_concurrent_slots(void)
{
	conc k[2] = { { .slot = 0 }, { .slot = 1 } };
	pthread_t t[2];
	long long start[2] = { 0, 0 }, end[2] = { 0, 0 };
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, conc_fn, &k[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ_INT(k[i].rc, 0);
		CHECK_EQ_INT(k[i].r.run.status, CR_ST_OK);
		char want[64], out[256] = "";
		snprintf(want, sizeof want, "%d\n%d\n", i, stage_uid(i));
		size_t n = k[i].r.run.out_len < sizeof out - 1 ? k[i].r.run.out_len : sizeof out - 1;
		memcpy(out, k[i].r.run.out, n);
		CHECK(strncmp(out, want, strlen(want)) == 0);
		CHECK(sscanf(out + strlen(want), "%lld %lld", &start[i], &end[i]) == 2);
		px_result_free(&k[i].r);
	}
	/* the two programs ran at the same time (their sleeps overlap) */
	CHECK(start[0] < end[1] && start[1] < end[0]);
}

static void test_compile_stage(void)
{
	px_result r;
	char err[256];
	sh("echo built by compile: $(cat built)", &r);
	CHECK(r.has_compile && r.has_run);
	CHECK_EQ_INT(r.compile.status, CR_ST_OK);
	CHECK(r.compile.err_len == 10 && !memcmp(r.compile.err, "compiling\n", 10));
	CHECK(out_is(&r, "built by compile: main.sh compile\n"));
	px_result_free(&r);
	call c = { .script = "FAIL", .lim = def_limits() };
	CHECK_EQ_INT(run(&c, &r, err, sizeof err), 0);
	CHECK(r.has_compile && !r.has_run);
	CHECK_EQ_INT(r.compile.status, CR_ST_EXIT);
	CHECK_EQ_INT(r.compile.exit_code, 1);
	px_result_free(&r);
	CHECK_EQ_INT(work_left(), 0);
}

static void test_init_errors(void)
{
	char err[256] = "";
	px_config cfg = { .runtime_dir = "/nonexistent", .work_root = work_root, .nslots = 1,
	                  .uid_base = -1 };
	CHECK_EQ_INT(px_init(&cfg, err, sizeof err), -1);
	CHECK(strstr(err, "/nonexistent") != NULL);
	cfg.runtime_dir = rt_dir;
	cfg.nslots = 0;
	CHECK_EQ_INT(px_init(&cfg, err, sizeof err), -1);
	CHECK(strstr(err, "slots") != NULL);
	if (geteuid() == 0) {
		/* a runtime the slot uids cannot read is refused at start */
		char p[400];
		snprintf(p, sizeof p, "%s/private", tmp_root);
		mkdir(p, 0700);
		put(p, "runtime.sh", "#!/bin/sh\n", 0755);
		cfg.runtime_dir = p;
		cfg.nslots = 1;
		cfg.uid_base = uid_base;
		CHECK_EQ_INT(px_init(&cfg, err, sizeof err), -1);
		CHECK(strstr(err, "slot uids") != NULL);
	}
}

/* favordynmods is read off mountinfo's super options of cgroup mounts
 * only (cgroup.c: without it, moves after idle wait a grace period). */
static void test_favordynmods_detection(void)
{
	static const struct {
		const char *line;
		bool on;
	} cases[] = {
		{ "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n", false },
		{ "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,favordynmods\n", true },
		{ "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 "
		  "rw,nsdelegate,favordynmods,memory_recursiveprot\n", true },
		{ "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids,favordynmods\n", true },
		/* the word elsewhere than a cgroup mount's super options */
		{ "50 23 0:40 / /favordynmods rw,relatime - tmpfs tmpfs rw,favordynmods\n", false },
		{ "51 23 0:41 / /mnt/favordynmods rw - cgroup2 cgroup2 rw,nsdelegate\n", false },
		{ "52 23 0:42 / /x rw - cgroup2 cgroup2 rw,nofavordynmods\n", false },
	};
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/mountinfo", tmp_root);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		put(tmp_root, "mountinfo", cases[i].line, 0644);
		if (px_cg_favordynmods(path) != cases[i].on) {
			fprintf(stderr, "  mountinfo line %zu: want %d\n", i, cases[i].on);
			CHECK(false);
		}
	}
	CHECK(!px_cg_favordynmods("/nonexistent/mountinfo"));
}

static int init(const char *rt, bool compile)
{
	char err[512];
	px_config cfg = { .runtime_dir = rt, .work_root = work_root, .has_compile = compile,
	                  .nslots = 2, .uid_base = uid_base, .gid = 65534 };
	if (px_init(&cfg, err, sizeof err) < 0) {
		fprintf(stderr, "px_init: %s\n", err);
		return -1;
	}
	return 0;
}

int main(void)
{
	snprintf(tmp_root, sizeof tmp_root, "/tmp/pxtest.XXXXXX");
	if (!mkdtemp(tmp_root))
		return perror("mkdtemp"), 2;
	chmod(tmp_root, 0755);
	snprintf(rt_dir, sizeof rt_dir, "%s/rt", tmp_root);
	snprintf(rtc_dir, sizeof rtc_dir, "%s/rtc", tmp_root);
	snprintf(work_root, sizeof work_root, "%s/work", tmp_root);
	snprintf(marker, sizeof marker, "pxtest-%d-%ld", (int)getpid(), (long)time(NULL));
	mkdir(rt_dir, 0755);
	mkdir(rtc_dir, 0755);
	put(rt_dir, "runtime.sh", "#!/bin/sh\nexec /bin/sh \"$@\"\n", 0755);
	put(rtc_dir, "runtime.sh", "#!/bin/sh\nexec /bin/sh \"$@\"\n", 0755);
	put(rtc_dir, "compile.sh",
	    "#!/bin/sh\necho compiling >&2\n[ \"$(cat \"$1\")\" != FAIL ] || exit 1\n"
	    "echo \"$CORRAL_ENTRY $CORRAL_STAGE\" > built\n", 0755);
	if (geteuid() == 0)
		uid_base = 61000 + (getpid() % 60) * 16;
	else
		printf("  (not root: stages run as uid %d, no cgroups unless delegated)\n",
		       (int)getuid());

	RUN(test_favordynmods_detection);
	RUN(test_init_errors);
	if (init(rt_dir, false) < 0)
		return 1;
	printf("  isolation: %s\n", px_isolation());
	RUN(test_ok_and_chunks);
	RUN(test_chunks_bounded);
	RUN(test_exit_and_signal);
	RUN(test_wall_timeout_keeps_output);
	RUN(test_cpu_limit);
	RUN(test_memory_limit);
	RUN(test_fork_bomb);
	RUN(test_output_limit);
	RUN(test_daemon_killed);
	RUN(test_file_size);
	RUN(test_stdin);
	RUN(test_args_env);
	RUN(test_identity);
	RUN(test_cancel);
	RUN(test_workdir);
	RUN(test_tidy_after_reply);
	RUN(test_rmtree_hostile);
	RUN(test_unclean_slot);
	RUN(test_concurrent_slots);
	px_fini();
	if (init(rtc_dir, true) < 0)
		return 1;
	RUN(test_compile_stage);
	px_fini();
	char err[256];
	if (px_rmtree(tmp_root, err, sizeof err) < 0)
		fprintf(stderr, "cleanup: %s\n", err);
	return TEST_DONE();
}
