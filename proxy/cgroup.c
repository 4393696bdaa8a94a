/*
 * cgroup.c — one fresh cgroup per stage run, on cgroup v1 or v2.
 *
 * At px_init we find, from /proc/self/mountinfo and /proc/self/cgroup,
 * where each hierarchy is mounted and which cgroup the processor sits in,
 * and make our own subtree "corral-<pid>" below it (or at the top of the
 * hierarchy when ours is not writable).
 *
 * v1: each slot has its own cgroup "s<slot>" in each hierarchy, made
 * once (px_cg_slots) and reused by every run of the slot, one run at a
 * time: a run's end kills what is left and waits until it is empty,
 * memory.force_empty gives back the page cache the run left charged (when
 * over 1 MB: it is costly even with nothing to reclaim), and
 * the next run resets the peak (max_usage_in_bytes, failcnt) and takes
 * the CPU and OOM counters as a baseline (px_cg_mark), so that limits,
 * peaks and OOM kills are that run's alone. Making and removing v1
 * memory cgroups per run was measurably slower (reparenting the charges).
 * A slot cgroup that cannot be emptied is abandoned for fresh per-run
 * ones "s<slot>.<seq>" (killed and removed after each run), which is also
 * what v2 uses: there, mkdir is cheap and a fresh cgroup needs no reset.
 *
 * v1 (this project's dev machine is hybrid): memory (limit_in_bytes, and
 * memsw so swap is no escape; peak max_usage_in_bytes; OOM kills from
 * oom_control's oom_kill), pids (pids.max), cpuacct (usage, polled by the
 * stage loop for the CPU limit) and freezer (to kill a tree that forks
 * faster than we kill: freeze, kill all, thaw).
 * v2: memory.max + memory.swap.max=0, pids.max, cpu.stat usage_usec,
 * memory.peak, memory.events oom_kill; cgroup.kill ends everything.
 * In hybrid mode the unified hierarchy carries no controller but still
 * offers cgroup.kill, so we use it for killing too.
 *
 * The stage process joins by writing "0" to each cgroup.procs through
 * fds opened here before fork (join_fd). Such a move takes the kernel's
 * global threadgroup lock for writing, and unless a cgroup hierarchy is
 * mounted with favordynmods (one setting for the whole kernel), taking it
 * waits for an RCU grace period whenever no other move happened in the
 * last few ms: 5 to 15 ms measured here on the first run after an idle
 * spell, 0.1 ms with favordynmods. A closed-loop benchmark never sees it;
 * an interactive user does, on every run. We cannot change it from a
 * container; we say so at start (px_cg_init) and in `info`.
 */
#include "internal.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { H_MEM, H_PIDS, H_CPU, H_FREEZER, H_UNIFIED, H_N };
static const char *const h_ctrl[H_N] = { "memory", "pids", "cpuacct", "freezer", "" };

static struct {
	int mode;
	char base[H_N][PX_PATH]; /* our subtree in each hierarchy; "" unused */
	bool memsw;              /* v1 memory.memsw.* present */
	bool v2_peak;            /* memory.peak present */
	unsigned long seq;
	pthread_mutex_t mu;
	/* v1: the reused cgroup of each slot, per hierarchy; "" when the slot
	 * has none (v2, or abandoned) */
	char (*slot)[H_N][PX_PATH];
	int (*slot_fd)[H_N];     /* O_PATH fds of those dirs, -1 when none */
	int nslots;
} cg = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* Opens dir/file. A slot's own cgroup dir is opened once at px_cg_slots
 * and its files are opened relative to it: the full path walk through
 * cgroupfs, some 25 files a run, was 4% of the machine's CPU under load. */
static int cg_open(const char *dir, const char *file, int flags)
{
	for (int i = 0; i < cg.nslots; i++)
		for (int h = 0; h < H_N; h++)
			if (cg.slot_fd[i][h] >= 0 && !strcmp(cg.slot[i][h], dir))
				return openat(cg.slot_fd[i][h], file, flags | O_CLOEXEC);
	char p[PX_PATH + 64];
	snprintf(p, sizeof p, "%s/%s", dir, file);
	return open(p, flags | O_CLOEXEC);
}

static int write_file(const char *dir, const char *file, const char *val)
{
	int fd = cg_open(dir, file, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, val, strlen(val));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

static ssize_t read_file(const char *dir, const char *file, char *buf, size_t len)
{
	int fd = cg_open(dir, file, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

static int64_t read_int(const char *dir, const char *file)
{
	char b[64];
	if (read_file(dir, file, b, sizeof b) <= 0)
		return -1;
	return strtoll(b, NULL, 10);
}

/* Value of "key N" lines (memory.events, cpu.stat, oom_control). */
static int64_t read_keyed(const char *dir, const char *file, const char *key)
{
	char b[4096];
	if (read_file(dir, file, b, sizeof b) <= 0)
		return -1;
	size_t kl = strlen(key);
	for (char *l = b; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, key, kl) && l[kl] == ' ')
			return strtoll(l + kl + 1, NULL, 10);
	return -1;
}

static bool exists(const char *dir, const char *file)
{
	char p[PX_PATH + 64];
	snprintf(p, sizeof p, "%s/%s", dir, file);
	return access(p, F_OK) == 0;
}

static bool has_word(const char *list, const char *w, char sep)
{
	size_t n = strlen(w);
	for (const char *p = list; p && *p; p = strchr(p, sep), p = p ? p + 1 : NULL)
		if (!strncmp(p, w, n) && (p[n] == sep || p[n] == '\0' || p[n] == '\n' || p[n] == ' '))
			return true;
	return false;
}

/* One line of mountinfo: "ID PARENT DEV ROOT MOUNT_POINT OPTS [TAGS] -
 * FSTYPE SOURCE SUPER_OPTS". False when it is not one. */
typedef struct mount_line {
	char mp[256], fstype[64], src[256], opts[512]; /* opts: the super options */
} mount_line;

static bool parse_mount_line(const char *line, mount_line *m)
{
	const char *sep = strstr(line, " - ");
	m->opts[0] = '\0';
	return sep && sscanf(line, "%*s %*s %*s %*s %255s", m->mp) == 1 &&
	       sscanf(sep + 3, "%63s %255s %511s", m->fstype, m->src, m->opts) >= 2;
}

/* Where hierarchy h is mounted (from mountinfo). */
static bool find_mount(int h, char *mnt, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char line[1024];
	mount_line m;
	bool found = false;
	while (!found && fgets(line, sizeof line, f)) {
		if (!parse_mount_line(line, &m))
			continue;
		if (h == H_UNIFIED)
			found = !strcmp(m.fstype, "cgroup2");
		else
			found = !strcmp(m.fstype, "cgroup") && has_word(m.opts, h_ctrl[h], ',');
		if (found && (size_t)snprintf(mnt, len, "%s", m.mp) >= len)
			found = false;
	}
	fclose(f);
	return found;
}

/* Whether some cgroup hierarchy in this mountinfo file is mounted with
 * favordynmods (see the top of this file). */
bool px_cg_favordynmods(const char *mountinfo)
{
	FILE *f = fopen(mountinfo, "re");
	if (!f)
		return false;
	char line[1024];
	mount_line m;
	bool on = false;
	while (!on && fgets(line, sizeof line, f))
		on = parse_mount_line(line, &m) && !strncmp(m.fstype, "cgroup", 6) &&
		     has_word(m.opts, "favordynmods", ',');
	fclose(f);
	return on;
}

/* Our cgroup path in hierarchy h (from /proc/self/cgroup). */
static bool own_path(int h, char *path, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return false;
	char line[1024];
	bool found = false;
	while (!found && fgets(line, sizeof line, f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		if (h == H_UNIFIED)
			found = !strcmp(line, "0") && c1[1] == '\0';
		else
			found = has_word(c1 + 1, h_ctrl[h], ',');
		if (found) {
			c2[1 + strcspn(c2 + 1, "\n")] = '\0';
			snprintf(path, len, "%s", c2 + 1);
		}
	}
	fclose(f);
	return found;
}

/* Removes the empty cgroups "corral-<pid>[-processor]" of workers that
 * are gone (rmdir only: a cgroup with processes in it stays). */
static void sweep(const char *parent)
{
	DIR *d = opendir(parent);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char *end;
		if (strncmp(e->d_name, "corral-", 7) != 0)
			continue;
		long pid = strtol(e->d_name + 7, &end, 10);
		if (end == e->d_name + 7 || (*end && strcmp(end, "-processor")) ||
		    kill((pid_t)pid, 0) == 0 || errno == EPERM)
			continue;
		char p[PX_PATH];
		if ((size_t)snprintf(p, sizeof p, "%s/%s", parent, e->d_name) >= sizeof p)
			continue;
		DIR *sub = opendir(p);
		struct dirent *c;
		while (sub && (c = readdir(sub)) != NULL) {
			char q[PX_PATH + 256];
			if (c->d_type == DT_DIR && c->d_name[0] != '.' &&
			    (size_t)snprintf(q, sizeof q, "%s/%s", p, c->d_name) < sizeof q)
				rmdir(q);
		}
		if (sub)
			closedir(sub);
		rmdir(p);
	}
	closedir(d);
}

/* Makes our subtree in hierarchy h: below our own cgroup, else at the top. */
static bool make_base(int h)
{
	char mnt[256], own[256] = "/";
	if (!find_mount(h, mnt, sizeof mnt))
		return false;
	own_path(h, own, sizeof own);
	const char *tries[2] = { own, "/" };
	for (int i = 0; i < 2; i++) {
		char *b = cg.base[h];
		snprintf(b, PX_PATH, "%s%s", mnt, strcmp(tries[i], "/") ? tries[i] : "");
		sweep(b);
		size_t o = strlen(b);
		snprintf(b + o, PX_PATH - o, "/corral-%d", (int)getpid());
		if (mkdir(b, 0755) == 0 || errno == EEXIST)
			return true;
	}
	cg.base[h][0] = '\0';
	return false;
}

/* v2: the controllers must be enabled in the parent's subtree_control. */
static bool v2_enable(const char *base)
{
	char ctrl[256];
	if (read_file(base, "cgroup.controllers", ctrl, sizeof ctrl) < 0)
		return false;
	if (!has_word(ctrl, "memory", ' ') || !has_word(ctrl, "pids", ' '))
		return false;
	/* enable below our subtree; "cpu" is optional (we only read cpu.stat) */
	if (write_file(base, "cgroup.subtree_control", "+memory +pids") < 0)
		return false;
	write_file(base, "cgroup.subtree_control", "+cpu");
	return true;
}

/* v2 where our own cgroup does not pass the controllers down: enable
 * them in our parent, which needs our processes out of it first (the
 * "no internal processes" rule), so the processor moves into a leaf. */
static bool v2_delegate(char *base)
{
	char *slash = strrchr(base, '/');
	if (!slash)
		return false;
	*slash = '\0'; /* base is now our own cgroup */
	char leaf[PX_PATH + 32], pid[32], ctrl[256];
	/* only worth moving when the controllers are there to be enabled */
	if (read_file(base, "cgroup.controllers", ctrl, sizeof ctrl) < 0 ||
	    !has_word(ctrl, "memory", ' ') || !has_word(ctrl, "pids", ' ')) {
		*slash = '/';
		return false;
	}
	snprintf(leaf, sizeof leaf, "%s/corral-%d-processor", base, (int)getpid());
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	bool ok = (mkdir(leaf, 0755) == 0 || errno == EEXIST) &&
	          write_file(leaf, "cgroup.procs", pid) == 0 &&
	          write_file(base, "cgroup.subtree_control", "+memory +pids") == 0;
	*slash = '/';
	return ok && v2_enable(base);
}

int px_cg_init(char *desc, size_t desclen)
{
	cg.mode = PX_CG_NONE;
	for (int h = 0; h < H_N; h++)
		make_base(h);
	char *b2 = cg.base[H_UNIFIED];
	if (b2[0] && (v2_enable(b2) || v2_delegate(b2))) {
		cg.mode = PX_CG_V2;
		for (int h = 0; h < H_UNIFIED; h++)
			if (cg.base[h][0]) {
				rmdir(cg.base[h]);
				cg.base[h][0] = '\0';
			}
		strcpy(cg.base[H_MEM], b2);
		cg.v2_peak = true; /* checked per run: memory.peak is >= 5.19 */
	} else if (cg.base[H_MEM][0] || cg.base[H_PIDS][0]) {
		cg.mode = PX_CG_V1;
		cg.memsw = cg.base[H_MEM][0] && exists(cg.base[H_MEM], "memory.memsw.limit_in_bytes");
	}
	/* cgroup.kill exists in non-root v2 cgroups since 5.14 */
	if (b2[0] && !exists(b2, "cgroup.kill") && cg.mode != PX_CG_V2) {
		rmdir(b2);
		b2[0] = '\0';
	}
	size_t o = strlen(desc);
	if (cg.mode == PX_CG_V2)
		snprintf(desc + o, desclen - o, "cgroup-v2");
	else if (cg.mode == PX_CG_V1)
		snprintf(desc + o, desclen - o, "cgroup-v1(%s%s%s%s%s)",
		         cg.base[H_MEM][0] ? (cg.memsw ? "memory+swap" : "memory") : "",
		         cg.base[H_PIDS][0] ? ",pids" : "", cg.base[H_CPU][0] ? ",cpuacct" : "",
		         cg.base[H_FREEZER][0] ? ",freezer" : "", b2[0] ? ",v2-kill" : "");
	else
		snprintf(desc + o, desclen - o, "no-cgroup");
	if (cg.mode != PX_CG_NONE && !px_cg_favordynmods("/proc/self/mountinfo"))
		cr_log("warn", "cgroup moves wait for an RCU grace period after an idle spell",
		       "cost=\"5-15 ms on such a run\" fix=\"mount a cgroup hierarchy with "
		       "favordynmods (docs/deploy.md)\"");
	else if (cg.mode != PX_CG_NONE)
		strncat(desc, "+favordynmods", desclen - strlen(desc) - 1);
	return 0;
}

void px_cg_fini(void)
{
	for (int i = 0; i < cg.nslots; i++)
		for (int h = 0; h < H_N; h++) {
			if (cg.slot_fd[i][h] >= 0)
				close(cg.slot_fd[i][h]);
			if (cg.slot[i][h][0])
				rmdir(cg.slot[i][h]);
		}
	free(cg.slot);
	free(cg.slot_fd);
	cg.slot = NULL;
	cg.slot_fd = NULL;
	cg.nslots = 0;
	for (int h = 0; h < H_N; h++)
		if (cg.base[h][0]) {
			rmdir(cg.base[h]);
			cg.base[h][0] = '\0';
		}
	cg.mode = PX_CG_NONE;
}

int px_cg_mode(void) { return cg.mode; }
bool px_cg_has_memory(void) { return cg.base[H_MEM][0] != '\0'; }
bool px_cg_has_pids(void) { return cg.mode == PX_CG_V2 || cg.base[H_PIDS][0]; }
bool px_cg_has_cpu(void) { return cg.mode == PX_CG_V2 || cg.base[H_CPU][0]; }

static char *dir_of(px_cgroup *c, int h)
{
	switch (h) {
	case H_MEM: return c->mem;
	case H_PIDS: return c->pids;
	case H_CPU: return c->cpu;
	case H_FREEZER: return c->freezer;
	default: return c->unified;
	}
}

/* v1 memory limits: memory.limit_in_bytes may never exceed memsw's, so
 * the order of the two writes depends on the way the limit moves (a
 * reused cgroup still has the previous run's). */
static int v1_memory_limit(const char *dir, int64_t bytes)
{
	char v[32];
	snprintf(v, sizeof v, "%lld", (long long)bytes);
	if (!cg.memsw)
		return write_file(dir, "memory.limit_in_bytes", v);
	if (write_file(dir, "memory.memsw.limit_in_bytes", "-1") < 0 ||
	    write_file(dir, "memory.limit_in_bytes", v) < 0)
		return -1;
	return bytes < 0 ? 0 : write_file(dir, "memory.memsw.limit_in_bytes", v);
}

/* Unset limits are written too ("-1", "max"): a reused cgroup has the
 * previous run's. */
static int set_limits(px_cgroup *c, const cr_limits *lim)
{
	char v[32];
	if (cg.mode == PX_CG_V2) {
		if (lim->memory_bytes >= 0) {
			snprintf(v, sizeof v, "%lld", (long long)lim->memory_bytes);
			if (write_file(c->mem, "memory.max", v) < 0)
				return -1;
			write_file(c->mem, "memory.swap.max", "0"); /* absent without swap */
		}
		if (lim->pids >= 0) {
			snprintf(v, sizeof v, "%lld", (long long)lim->pids);
			if (write_file(c->mem, "pids.max", v) < 0)
				return -1;
		}
		return 0;
	}
	if (c->mem[0] && (lim->memory_bytes >= 0 || c->reused) &&
	    v1_memory_limit(c->mem, lim->memory_bytes) < 0)
		return -1;
	if (c->pids[0] && (lim->pids >= 0 || c->reused)) {
		if (lim->pids >= 0)
			snprintf(v, sizeof v, "%lld", (long long)lim->pids);
		else
			snprintf(v, sizeof v, "max");
		if (write_file(c->pids, "pids.max", v) < 0)
			return -1;
	}
	return 0;
}

int px_cg_slots(int n, char *err, size_t errlen)
{
	if (cg.mode != PX_CG_V1)
		return 0;
	cg.slot = calloc((size_t)n, sizeof *cg.slot);
	cg.slot_fd = malloc((size_t)n * sizeof *cg.slot_fd);
	if (!cg.slot || !cg.slot_fd) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++)
		for (int h = 0; h < H_N; h++)
			cg.slot_fd[i][h] = -1;
	cg.nslots = n;
	for (int i = 0; i < n; i++)
		for (int h = 0; h < H_N; h++) {
			if (!cg.base[h][0])
				continue;
			char *d = cg.slot[i][h];
			snprintf(d, PX_PATH, "%s/s%d", cg.base[h], i);
			if ((mkdir(d, 0755) < 0 && errno != EEXIST) ||
			    (cg.slot_fd[i][h] = open(d, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
				snprintf(err, errlen, "cannot create cgroup %s: %s", d, strerror(errno));
				d[0] = '\0';
				return -1;
			}
		}
	return 0;
}

static bool slot_reusable(int slot)
{
	if (slot < 0 || slot >= cg.nslots)
		return false;
	for (int h = 0; h < H_N; h++)
		if (cg.base[h][0] && !cg.slot[slot][h][0])
			return false;
	return true;
}

void px_cg_mark(px_cgroup *c)
{
	c->cpu_base = 0;
	c->oom_base = 0;
	if (!c->reused)
		return;
	if (c->mem[0]) {
		write_file(c->mem, "memory.max_usage_in_bytes", "0");
		write_file(c->mem, "memory.failcnt", "0");
		c->oom_base = read_keyed(c->mem, "memory.oom_control", "oom_kill");
		if (c->oom_base < 0)
			c->oom_base = 0;
	}
	if (c->cpu[0]) {
		int64_t ns = read_int(c->cpu, "cpuacct.usage");
		c->cpu_base = ns > 0 ? ns : 0;
	}
}

/* The dirs of one run: the slot's own, or a fresh "s<slot>.<seq>". */
static int place(px_cgroup *c, int slot, char *err, size_t errlen)
{
	unsigned long seq = 0;
	c->reused = slot_reusable(slot);
	if (!c->reused) {
		pthread_mutex_lock(&cg.mu);
		seq = ++cg.seq;
		pthread_mutex_unlock(&cg.mu);
	}
	for (int h = 0; h < H_N; h++) {
		if (!cg.base[h][0] || (cg.mode == PX_CG_V2 && h == H_UNIFIED))
			continue;
		char *d = dir_of(c, h);
		if (c->reused)
			snprintf(d, PX_PATH, "%s", cg.slot[slot][h]);
		else
			snprintf(d, PX_PATH, "%s/s%d.%lu", cg.base[h], slot, seq);
		if ((!c->reused && mkdir(d, 0755) < 0) ||
		    (c->join_fd[c->njoin] = cg_open(d, "cgroup.procs", O_WRONLY)) < 0) {
			snprintf(err, errlen, "cannot create cgroup %s: %s", d, strerror(errno));
			d[0] = '\0';
			return -1;
		}
		c->njoin++;
	}
	return 0;
}

int px_cg_create(px_cgroup *c, int slot, const cr_limits *lim, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	c->slot = slot;
	for (int i = 0; i < 5; i++)
		c->join_fd[i] = -1;
	if (cg.mode == PX_CG_NONE && !cg.base[H_UNIFIED][0])
		return 0;
	if (place(c, slot, err, errlen) < 0) {
		px_cg_destroy(c);
		return -1;
	}
	if (cg.mode == PX_CG_V2)
		strcpy(c->unified, c->mem);
	if (px_cg_set_limits(c, lim, err, errlen) < 0) {
		px_cg_destroy(c);
		return -1;
	}
	px_cg_mark(c);
	return 0;
}

int px_cg_set_limits(px_cgroup *c, const cr_limits *lim, char *err, size_t errlen)
{
	if (set_limits(c, lim) < 0) {
		snprintf(err, errlen, "cannot set cgroup limits: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int64_t px_cg_cpu_ns(const px_cgroup *c)
{
	int64_t ns = -1;
	if (cg.mode == PX_CG_V2) {
		int64_t us = read_keyed(c->mem, "cpu.stat", "usage_usec");
		ns = us < 0 ? -1 : us * 1000;
	} else if (c->cpu[0]) {
		ns = read_int(c->cpu, "cpuacct.usage");
	}
	return ns < 0 ? -1 : ns >= c->cpu_base ? ns - c->cpu_base : 0;
}

void px_cg_read_usage(const px_cgroup *c, px_cg_usage *u)
{
	u->cpu_ns = px_cg_cpu_ns(c);
	u->mem_peak = -1;
	u->oom_killed = false;
	if (!c->mem[0])
		return;
	if (cg.mode == PX_CG_V2) {
		u->mem_peak = read_int(c->mem, "memory.peak");
		u->oom_killed = read_keyed(c->mem, "memory.events", "oom_kill") > c->oom_base;
		return;
	}
	u->mem_peak = read_int(c->mem, "memory.max_usage_in_bytes");
	int64_t kills = read_keyed(c->mem, "memory.oom_control", "oom_kill");
	if (kills < 0) /* kernels before 4.13: hitting the limit is our best sign */
		kills = read_int(c->mem, "memory.failcnt");
	u->oom_killed = kills > c->oom_base;
}

/* Kills every process listed in dir/cgroup.procs; how many it saw. */
static int kill_listed(const char *dir)
{
	char b[8192];
	if (read_file(dir, "cgroup.procs", b, sizeof b) <= 0)
		return 0;
	int n = 0;
	for (char *p = b; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
			n++;
		p = end + (*end != '\0');
	}
	return n;
}

int px_cg_pids(const px_cgroup *c, pid_t *pids, int max)
{
	const char *dirs[] = { c->pids, c->mem, c->cpu, c->freezer, c->unified };
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		char b[4096];
		if (!dirs[i][0] || read_file(dirs[i], "cgroup.procs", b, sizeof b) <= 0)
			continue;
		int n = 0;
		for (char *p = b; *p && n < max;) {
			char *end;
			long pid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (pid > 0)
				pids[n++] = (pid_t)pid;
			p = end + (*end != '\0');
		}
		return n;
	}
	return 0;
}

#define CG_RECLAIM_BYTES (1 << 20) /* reset_reused: what a run may leave charged */

static bool empty_cgroup(const char *dir)
{
	char b[16];
	return read_file(dir, "cgroup.procs", b, sizeof b) == 0;
}

/* A reused cgroup: empty it (the keeper killed everything; this only
 * mops up, with a bound) and give back the run's page cache. false when
 * something stays in it: the slot then stops reusing it. */
static bool reset_reused(px_cgroup *c)
{
	bool ok = true;
	for (int h = 0; h < H_N; h++) {
		char *d = dir_of(c, h);
		if (!d[0] || h == H_UNIFIED)
			continue;
		int tries = 0;
		for (; !empty_cgroup(d) && tries < 200; tries++) {
			kill_listed(d);
			nanosleep(&(struct timespec){ 0, 1 * 1000 * 1000 }, NULL);
		}
		ok &= tries < 200;
	}
	/* force_empty reclaims (slab shrinkers included) even when there is
	 * next to nothing to give back: measured at 5% of the machine's CPU
	 * under load. A few hundred KB left charged (dentries, a pipe) only
	 * shade the next run's peak, so below the bar it is skipped. */
	int64_t left = ok && c->mem[0] ? read_int(c->mem, "memory.usage_in_bytes") : 0;
	if (left < 0 || left > CG_RECLAIM_BYTES)
		write_file(c->mem, "memory.force_empty", "0");
	return ok;
}

void px_cg_destroy(px_cgroup *c)
{
	for (int i = 0; i < c->njoin; i++)
		close(c->join_fd[i]);
	c->njoin = 0;
	if (c->unified[0])
		write_file(c->unified, "cgroup.kill", "1");
	if (c->reused) {
		if (!reset_reused(c) && c->slot >= 0 && c->slot < cg.nslots) {
			/* left as it is (px_cg_fini tries rmdir); fresh ones from now */
			for (int h = 0; h < H_N; h++)
				cg.slot[c->slot][h][0] = '\0';
		}
		for (int h = 0; h < H_N; h++)
			dir_of(c, h)[0] = '\0';
		c->reused = false;
		return;
	}
	for (int h = 0; h < H_N; h++) {
		char *d = dir_of(c, h);
		if (!d[0])
			continue;
		/* The keeper killed everything; this only mops up, with a bound. */
		for (int tries = 0; rmdir(d) < 0 && errno == EBUSY && tries < 200; tries++) {
			if (h != H_UNIFIED)
				kill_listed(d);
			nanosleep(&(struct timespec){ 0, 5 * 1000 * 1000 }, NULL);
		}
		d[0] = '\0';
	}
}
