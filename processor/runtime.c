/*
 * runtime.c — the runtime this worker serves.
 *
 * A runtime dir holds runtime.sh, optional compile.sh and runtime.conf
 * (`key = value` lines: name, aliases, version — a shell command whose
 * first output line is the version; see docs/runtimes.md). It is read
 * once at start-up. When slots run under their own uids, the dir is
 * copied into the state dir so those uids can read it wherever the
 * operator keeps the original (a checkout under /root is 0700).
 */
#include "fsutil.h"
#include "processor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* First line of `sh -c cmd` run in dir, within 10 s. */
static int run_version(const char *dir, const char *cmd, char *out, size_t n, char *err,
                       size_t errlen)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC)) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(p[1], 1);
		if (chdir(dir) == 0)
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char buf[512];
	size_t got = 0;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left = 10000 - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd pf = { p[0], POLLIN, 0 };
		if (left <= 0 || poll(&pf, 1, (int)left) == 0) {
			kill(pid, SIGKILL);
			break;
		}
		ssize_t r = read(p[0], buf + got, sizeof buf - 1 - got);
		if (r <= 0 || (got += (size_t)r) == sizeof buf - 1)
			break;
	}
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	buf[got] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !*trim(buf)) {
		snprintf(err, errlen, "runtime.conf: version command '%s' failed or printed nothing",
		         cmd);
		return -1;
	}
	snprintf(out, n, "%s", trim(buf));
	return 0;
}

static int read_conf(pr_runtime *rt, const char *dir, char *cmd, size_t cmdlen, char *err,
                     size_t errlen)
{
	char path[4200], line[1024];
	snprintf(path, sizeof path, "%s/runtime.conf", dir);
	FILE *f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		lineno++;
		char *s = trim(line);
		if (*s == '#' || *s == '\0')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected key = value", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *k = trim(s), *v = trim(eq + 1);
		if (strcmp(k, "name") == 0)
			snprintf(rt->name, sizeof rt->name, "%s", v);
		else if (strcmp(k, "aliases") == 0)
			snprintf(rt->aliases, sizeof rt->aliases, "%s", v);
		else if (strcmp(k, "version") == 0)
			snprintf(cmd, cmdlen, "%s", v);
		/* other keys belong to other tools (images, tests): ignored */
	}
	fclose(f);
	if (rc == 0 && !rt->name[0]) {
		snprintf(err, errlen, "%s: no name = ...", path);
		rc = -1;
	}
	return rc;
}

static bool is_file(const char *dir, const char *name, bool exec)
{
	char path[4200];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (!exec || (st.st_mode & 0111));
}

int pr_runtime_load(pr_runtime *rt, const char *dir, const char *state_dir,
                    const char *version, char *err, size_t errlen)
{
	char cmd[1024] = "";
	memset(rt, 0, sizeof *rt);
	if (!is_file(dir, "runtime.sh", true)) {
		snprintf(err, errlen, "%s/runtime.sh: missing or not executable", dir);
		return -1;
	}
	if (read_conf(rt, dir, cmd, sizeof cmd, err, errlen))
		return -1;
	rt->compiled = is_file(dir, "compile.sh", false);
	if (rt->compiled && !is_file(dir, "compile.sh", true)) {
		snprintf(err, errlen, "%s/compile.sh: not executable", dir);
		return -1;
	}
	if (version)
		snprintf(rt->version, sizeof rt->version, "%s", version);
	else if (!cmd[0])
		snprintf(rt->version, sizeof rt->version, "unknown");
	else if (run_version(dir, cmd, rt->version, sizeof rt->version, err, errlen))
		return -1;
	snprintf(rt->staged_dir, sizeof rt->staged_dir, "%s/runtime", state_dir);
	if (cr_copytree(dir, rt->staged_dir)) {
		snprintf(err, errlen, "copying %s to %s: %s", dir, rt->staged_dir, strerror(errno));
		return -1;
	}
	return 0;
}
