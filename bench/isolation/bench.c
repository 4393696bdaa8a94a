/*
 * bench.c — what each isolation level adds to one invocation (run by
 * bench/isolation.sh, which builds it against a build dir's libraries).
 *
 * For each level the machine allows, px_init at that level, a few warm-up
 * runs, then N invocations of each program one after another on slot 0,
 * timing px_execute() end to end (work dir made and removed, keeper,
 * sandbox, stage, cleanup). Prints the median and the added time against
 * level "none". Programs: /bin/true (the runtime.sh of a runtime dir is a
 * copy of it, so no shell is involved) and python `pass` through the
 * shipped python runtime. A benchmark: it prints, it asserts nothing.
 */
#include "proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const levels[] = { "none", "seccomp", "namespaces", "full" };

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median ms of n runs of `code` as main.py, or -1 when a run failed. */
static double measure(const char *code, int n)
{
	cr_file f = { "main.py", (char *)code, strlen(code) };
	cr_request req = { .op = CR_OP_RUN, .files = &f, .nfiles = 1, .entry = "main.py" };
	cr_limits lim = { 10000, 10000, 256 << 20, 64, 1 << 20, 16 << 20 };
	px_job job = { &req, lim, lim };
	double *t = calloc((size_t)n, sizeof *t);
	for (int i = -3; i < n; i++) { /* 3 warm-up runs */
		px_result res;
		char err[256];
		double t0 = now_ms();
		int rc = px_execute(px_slot_at(0), &job, &res, err, sizeof err);
		double dt = now_ms() - t0;
		bool ok = rc == 0 && res.run.status == CR_ST_OK;
		if (!ok)
			fprintf(stderr, "run failed: %s (status %s)\n", rc ? err : "",
			        rc ? "-" : cr_status_name(res.run.status));
		px_result_free(&res);
		if (!ok) {
			free(t);
			return -1;
		}
		if (i >= 0)
			t[i] = dt;
	}
	qsort(t, (size_t)n, sizeof *t, cmp);
	double m = t[n / 2];
	free(t);
	return m;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s TRUE_RUNTIME_DIR PYTHON_RUNTIME_DIR WORK_ROOT [N]\n", argv[0]);
		return 2;
	}
	int n = argc > 4 ? atoi(argv[4]) : 50;
	const char *dirs[2] = { argv[1], argv[2] };
	const char *names[2] = { "/bin/true", "python pass" };
	double base[2] = { -1, -1 };
	printf("%-11s %-12s %10s %12s   (median of %d, ms per invocation)\n", "level",
	       "program", "median", "vs none", n);
	for (size_t l = 0; l < sizeof levels / sizeof *levels; l++) {
		for (int p = 0; p < 2; p++) {
			char err[512];
			px_config cfg = { .runtime_dir = dirs[p], .work_root = argv[3], .nslots = 1,
			                  .uid_base = geteuid() == 0 ? 61990 : -1, .gid = 65534,
			                  .isolation = levels[l] };
			if (px_init(&cfg, err, sizeof err) < 0) {
				printf("%-11s %-12s %10s   (%s)\n", levels[l], names[p], "n/a", err);
				continue;
			}
			double m = measure("pass\n", n);
			if (l == 0)
				base[p] = m;
			if (m < 0)
				printf("%-11s %-12s %10s\n", levels[l], names[p], "failed");
			else if (base[p] >= 0)
				printf("%-11s %-12s %10.2f %+12.2f\n", levels[l], names[p], m, m - base[p]);
			else
				printf("%-11s %-12s %10.2f %12s\n", levels[l], names[p], m, "-");
			if (l == 0 && p == 0)
				printf("%-11s %-12s   isolation: %s\n", "", "", px_isolation());
			if (l == 3 && p == 0)
				printf("%-11s %-12s   isolation: %s\n", "", "", px_isolation());
			px_fini();
		}
	}
	return 0;
}
