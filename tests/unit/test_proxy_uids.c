/*
 * test_proxy_uids.c — the slot uid lock taken at px_init (proxy/uidlock.c).
 *
 * Another process (a forked child of this test) holds a uid range; a
 * range that overlaps it is refused with a message naming the uid and
 * the holder's pid, one next to it is granted, and the whole range is
 * free again once the holder is gone. A process left running under a
 * slot uid (a SIGKILLed worker's stage) is killed when the range is
 * taken. Needs root (slot uids exist only then): as another user it says
 * so and checks nothing.
 */
#include "internal.h"
#include "proxy.h"
#include "test.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int base;

typedef struct holder {
	pid_t pid;
	int release; /* write end: closing it lets the holder exit */
} holder;

/* A child that locks [b, b + n) and keeps it until released. */
static int hold(int b, int n, holder *h)
{
	int ready[2], rel[2];
	if (pipe(ready) < 0 || pipe(rel) < 0)
		return -1;
	h->pid = fork();
	if (h->pid == 0) {
		char err[256], c = 0;
		close(ready[0]);
		close(rel[1]);
		if (px_uid_lock(b, n, err, sizeof err) < 0) {
			fprintf(stderr, "holder: %s\n", err);
			_exit(1);
		}
		if (write(ready[1], "k", 1) != 1 || read(rel[0], &c, 1) < 0)
			_exit(2);
		_exit(0);
	}
	close(ready[1]);
	close(rel[0]);
	char c;
	ssize_t r = read(ready[0], &c, 1);
	close(ready[0]);
	h->release = rel[1];
	return r == 1 ? 0 : -1;
}

static void release(holder *h)
{
	close(h->release);
	waitpid(h->pid, NULL, 0);
}

static void test_overlap_refused(void)
{
	holder h;
	char err[256] = "", want[64];
	CHECK_EQ_INT(hold(base, 4, &h), 0);
	CHECK_EQ_INT(px_uid_lock(base + 2, 4, err, sizeof err), -1);
	snprintf(want, sizeof want, "slot uid %d ", base + 2);
	CHECK(strstr(err, want) != NULL);
	snprintf(want, sizeof want, "pid %d", (int)h.pid);
	CHECK(strstr(err, want) != NULL);
	CHECK(strstr(err, "--uid-base") != NULL);
	/* a range starting below the holder's names the first uid held */
	CHECK_EQ_INT(px_uid_lock(base - 2, 4, err, sizeof err), -1);
	snprintf(want, sizeof want, "slot uid %d ", base);
	CHECK(strstr(err, want) != NULL);
	/* next to it is fine */
	CHECK_EQ_INT(px_uid_lock(base + 4, 4, err, sizeof err), 0);
	px_uid_unlock();
	release(&h);
	/* the holder is gone: its range is free */
	CHECK_EQ_INT(px_uid_lock(base, 8, err, sizeof err), 0);
	px_uid_unlock();
	if (err[0])
		fprintf(stderr, "  (last error: %s)\n", err);
}

static void test_px_init_refused(void)
{
	holder h;
	char err[512] = "";
	CHECK_EQ_INT(hold(base + 1, 1, &h), 0);
	px_config cfg = { .runtime_dir = "/bin", .nslots = 3, .uid_base = base };
	CHECK_EQ_INT(px_init(&cfg, err, sizeof err), -1);
	CHECK(strstr(err, "in use by another corral worker") != NULL);
	release(&h);
}

static void test_leftovers_killed(void)
{
	pid_t stale = fork();
	if (stale == 0) {
		if (syscall(SYS_setresuid, base + 3, base + 3, base + 3) < 0)
			_exit(1);
		for (;;)
			pause();
	}
	CHECK(stale > 0);
	/* let it become the uid first */
	for (int i = 0; i < 200; i++) {
		char p[64], line[256];
		snprintf(p, sizeof p, "/proc/%d/status", (int)stale);
		FILE *f = fopen(p, "r");
		int uid = -1;
		while (f && fgets(line, sizeof line, f))
			if (sscanf(line, "Uid: %d", &uid) == 1)
				break;
		if (f)
			fclose(f);
		if (uid == base + 3)
			break;
		usleep(1000);
	}
	char err[256];
	CHECK_EQ_INT(px_uid_lock(base, 4, err, sizeof err), 0);
	int st = 0;
	CHECK_EQ_INT(waitpid(stale, &st, 0), stale);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	px_uid_unlock();
}

int main(void)
{
	if (geteuid() != 0) {
		printf("  (not root: there are no slot uids to lock; nothing checked)\n");
		return TEST_DONE();
	}
	/* away from test_proxy's 61000.. and the system tests' ranges */
	base = 59000 + (getpid() % 50) * 16;
	RUN(test_overlap_refused);
	RUN(test_px_init_refused);
	RUN(test_leftovers_killed);
	return TEST_DONE();
}
