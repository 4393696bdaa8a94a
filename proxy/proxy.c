/*
 * proxy.c — px_init, the slots, and px_execute's two stages.
 *
 * px_init checks the runtime dir (runtime.sh there, executable, and
 * reachable by the slot uids when we drop to them), makes the work root
 * (0711: slot uids can reach their own dir in it but list nothing),
 * removes what dead workers left there, detects cgroups, and describes
 * what is in force in px_isolation().
 *
 * px_execute: a work dir "<work_root>/<pid>.<slot>.<seq>.<random>" with
 * the request's files and a private TMPDIR next to it ("....tmp"), both
 * owned by the slot uid; `compile.sh <entry>` first when the runtime has
 * one, and `runtime.sh <entry> [args...]` when that ended `ok`; both dirs
 * removed after the reply (px_tidy), whatever happened. A dir that cannot
 * be removed stays on the slot's dirty list, tried again by every
 * px_tidy; until the list is empty px_execute refuses the slot (the
 * processor takes it out of service, processor/slots.c).
 *
 * Environment of both stages, later lines overriding earlier ones:
 *   PATH=/usr/local/bin:/usr/bin:/bin  LANG=C.UTF-8
 *   HOME=<work dir>  TMPDIR=<private tmp dir>
 *   cfg->base_env (the operator's)
 *   the request's env (keys never start with CORRAL_: the codec refuses
 *   them and we drop any that would)
 *   CORRAL_ENTRY=<entry, relative to the work dir>
 *   CORRAL_WORKDIR=<work dir, absolute; also the cwd>
 *   CORRAL_RUNTIME_DIR=<runtime dir, absolute>
 * The work dir and the runtime dir as the stage sees them: at the
 * namespace levels /box and /runtime in its own root (sandbox.c), below
 * them their paths on the host (px_seen_workdir, px_seen_runtime_dir).
 *   CORRAL_STAGE=compile|run
 *   CORRAL_SLOT=<slot index>
 * Files made in the work dir by compile.sh are there for runtime.sh.
 */
#include "internal.h"

#include "conf.h"
#include "log.h"
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

px_world px_w;

/* ---- slots ------------------------------------------------------------- */

px_slot *px_slot_at(int i)
{
	return i >= 0 && i < px_w.nslots ? &px_w.slots[i] : NULL;
}

bool px_slot_cancelled(px_slot *s)
{
	pthread_mutex_lock(&s->mu);
	bool c = s->cancel;
	pthread_mutex_unlock(&s->mu);
	return c;
}

void px_cancel(px_slot *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->active) {
		s->cancel = true;
		uint64_t one = 1;
		if (write(s->wake_fd, &one, sizeof one) < 0) {
			/* EAGAIN: a wake-up is pending already, which is enough */
		}
	}
	pthread_mutex_unlock(&s->mu);
}

static void slot_begin(px_slot *s)
{
	uint64_t v;
	pthread_mutex_lock(&s->mu);
	s->active = true;
	s->cancel = false;
	while (read(s->wake_fd, &v, sizeof v) > 0)
		;
	s->seq++;
	pthread_mutex_unlock(&s->mu);
}

static void slot_end(px_slot *s)
{
	pthread_mutex_lock(&s->mu);
	s->active = false;
	s->cancel = false;
	pthread_mutex_unlock(&s->mu);
}

/* ---- init ---------------------------------------------------------------- */

/* Every folder on the way to path must be searchable by "others", and
 * the file readable and executable by them: the slot uids are nobody. */
static int check_reachable(const char *path, char *err, size_t errlen)
{
	char p[PX_PATH];
	if ((size_t)snprintf(p, sizeof p, "%s", path) >= sizeof p) {
		snprintf(err, errlen, "path too long: %s", path);
		return -1;
	}
	for (char *s = p + 1;; s++) {
		bool end = *s == '\0';
		if (*s == '/' || end) {
			char c = *s;
			*s = '\0';
			struct stat st;
			mode_t need = end ? (S_IROTH | S_IXOTH) : S_IXOTH;
			if (stat(p, &st) < 0 || (st.st_mode & need) != need) {
				snprintf(err, errlen, "%s is not %s by the slot uids (mode %o)", p,
				         end ? "readable and executable" : "searchable",
				         (unsigned)(st.st_mode & 07777));
				return -1;
			}
			*s = c;
		}
		if (end)
			return 0;
	}
}

static int check_runtime(const px_config *cfg, char *err, size_t errlen)
{
	if (!cfg->runtime_dir || !realpath(cfg->runtime_dir, px_w.runtime_dir)) {
		snprintf(err, errlen, "runtime dir %s: %s",
		         cfg->runtime_dir ? cfg->runtime_dir : "(none)", strerror(errno));
		return -1;
	}
	const char *names[2] = { "runtime.sh", cfg->has_compile ? "compile.sh" : NULL };
	for (int i = 0; i < 2 && names[i]; i++) {
		char p[PX_PATH + 16];
		snprintf(p, sizeof p, "%s/%s", px_w.runtime_dir, names[i]);
		if (access(p, X_OK) < 0) {
			snprintf(err, errlen, "%s: %s", p, strerror(errno));
			return -1;
		}
		if (px_w.uid_drop && check_reachable(p, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* Removes entries "<pid>.*" of workers that are not running any more. */
static void sweep_work_root(void)
{
	DIR *d = opendir(px_w.work_root);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (end == e->d_name || *end != '.' || pid <= 0)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
			continue;
		char p[PX_PATH + 256], err[256];
		snprintf(p, sizeof p, "%s/%s", px_w.work_root, e->d_name);
		if (px_w.root)
			umount2(p, MNT_DETACH); /* a slot's tmpfs */
		px_rmtree(p, err, sizeof err);
	}
	closedir(d);
}

static int make_work_root(const px_config *cfg, char *err, size_t errlen)
{
	if (cfg->work_root)
		snprintf(px_w.work_root, sizeof px_w.work_root, "%s", cfg->work_root);
	else
		snprintf(px_w.work_root, sizeof px_w.work_root, "/tmp/corral-work.%d",
		         (int)getpid());
	if (mkdir(px_w.work_root, 0711) == 0)
		px_w.made_work_root = true;
	else if (errno != EEXIST) {
		snprintf(err, errlen, "cannot create work root %s: %s", px_w.work_root,
		         strerror(errno));
		return -1;
	}
	struct stat st;
	if (lstat(px_w.work_root, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
		snprintf(err, errlen, "work root %s must be a folder owned by us (not a symlink)",
		         px_w.work_root);
		return -1;
	}
	if (chmod(px_w.work_root, 0711) < 0) {
		snprintf(err, errlen, "chmod %s: %s", px_w.work_root, strerror(errno));
		return -1;
	}
	sweep_work_root();
	return 0;
}

/* The slot's folder for work dirs: a tmpfs of its own when we are root,
 * so that filling it hurts no one else and needs no cleanup of the disk. */
static int slot_dir(px_slot *s, char *err, size_t errlen)
{
	if ((size_t)snprintf(s->dir, sizeof s->dir, "%s/%d.slot%d", px_w.work_root,
	                     (int)getpid(), s->index) >= sizeof s->dir ||
	    (mkdir(s->dir, 0711) < 0 && errno != EEXIST)) {
		snprintf(err, errlen, "cannot create %s: %s", s->dir, strerror(errno));
		return -1;
	}
	if (px_w.root && px_w.workdir_bytes > 0) {
		char opts[64];
		snprintf(opts, sizeof opts, "mode=0711,size=%lld", (long long)px_w.workdir_bytes);
		if (mount("tmpfs", s->dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) {
			snprintf(err, errlen, "cannot mount the work tmpfs on %s: %s", s->dir,
			         strerror(errno));
			return -1;
		}
		s->dir_mounted = true;
	}
	return 0;
}

static int make_slots(int n, char *err, size_t errlen)
{
	px_w.slots = calloc((size_t)n, sizeof *px_w.slots);
	if (!px_w.slots) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		px_slot *s = &px_w.slots[i];
		s->index = i;
		pthread_mutex_init(&s->mu, NULL);
		s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (s->wake_fd < 0) {
			snprintf(err, errlen, "eventfd: %s", strerror(errno));
			px_w.nslots = i;
			return -1;
		}
		if (slot_dir(s, err, errlen) < 0) {
			close(s->wake_fd);
			px_w.nslots = i;
			return -1;
		}
	}
	px_w.nslots = n;
	return 0;
}

/* The level asked for (-1: the best) and the minimum. */
static int parse_levels(const px_config *cfg, int *want, int *min, char *err, size_t errlen)
{
	const char *w = cfg->isolation, *m = cfg->min_isolation;
	*want = -1;
	*min = PX_LEVEL_NONE;
	if (w && *w && strcmp(w, "auto") && (*want = px_level_parse(w)) < 0) {
		snprintf(err, errlen, "unknown isolation level '%s' (auto, none, seccomp, "
		                      "namespaces, full)", w);
		return -1;
	}
	if (m && *m && (*min = px_level_parse(m)) < 0) {
		snprintf(err, errlen, "unknown minimum isolation level '%s' (none, seccomp, "
		                      "namespaces, full)", m);
		return -1;
	}
	if (*want >= 0 && *want < *min) {
		snprintf(err, errlen, "isolation level %s is below the required minimum %s", w, m);
		return -1;
	}
	return 0;
}

/* ---- limits ------------------------------------------------------------ */

/* Why memory_bytes cannot be enforced at the level in force; NULL when it
 * is: a memory cgroup counts everything; without one, the namespace
 * levels count private memory with RLIMIT_DATA (+ stack) and keep shared
 * memory in size-capped tmpfs (sandbox.c, deny_shared_memory). */
static const char *memory_gap(void)
{
	if (px_cg_has_memory() || px_sandbox_level() >= PX_LEVEL_NAMESPACES)
		return NULL;
	return "no memory cgroup, and without a mount namespace shared memory in the "
	       "host's /dev/shm and /tmp (and through /dev/zero) is counted by nothing";
}

static const char *pids_gap(void)
{
	if (px_cg_has_pids() || px_w.uid_drop || px_sandbox_nproc())
		return NULL;
	if (px_sandbox_level() >= PX_LEVEL_NAMESPACES)
		return "no pids cgroup, and this kernel's RLIMIT_NPROC counts every process of "
		       "our uid, not the run's user namespace (Linux 5.14+)";
	return "no pids cgroup, no slot uid (not root) and no user namespace: RLIMIT_NPROC "
	       "would count every process of our uid";
}

/* " memory=<how> pids=<how>" for px_isolation(). */
static void describe_limits(char *d, size_t len)
{
	const char *mem = px_cg_has_memory() ? "cgroup"
	                  : !memory_gap() ? "rlimit(data,stack)+no-shared-anon+tmpfs(/tmp,/dev/shm)"
	                  : px_w.cfg.unenforced_memory ? "rlimit(data,stack):private-only(accepted)"
	                  : "rlimit(data,stack):private-only(runs-refused)";
	const char *pids = px_cg_has_pids() ? "cgroup"
	                   : px_w.uid_drop ? "rlimit(nproc,slot-uid)"
	                   : px_sandbox_nproc() ? "rlimit(nproc,userns)"
	                   : px_w.cfg.unenforced_pids ? "none(accepted)" : "none(runs-refused)";
	snprintf(d, len, "memory=%s pids=%s", mem, pids);
}

int px_limits_check(const cr_limits *lim, const char *what, char *err, size_t errlen)
{
	const char *gap = NULL, *name = NULL, *flag = NULL;
	if (lim->memory_bytes >= 0 && !px_w.cfg.unenforced_memory && (gap = memory_gap()))
		name = "memory_bytes", flag = "memory";
	else if (lim->pids >= 0 && !px_w.cfg.unenforced_pids && (gap = pids_gap()))
		name = "pids", flag = "pids";
	if (!gap)
		return 0;
	snprintf(err, errlen, "%s.%s cannot be enforced by this worker (isolation level %s, uid "
	         "%d): %s; the operator may run it with a delegated cgroup or at level "
	         "namespaces, or accept it unenforced (--unenforced-limits %s)", what, name,
	         px_isolation_level(), (int)geteuid(), gap, flag);
	return -1;
}

/* At start: what will be refused, or is accepted unenforced. */
static void warn_limits(void)
{
	const char *g[2] = { memory_gap(), pids_gap() };
	const bool ok[2] = { px_w.cfg.unenforced_memory, px_w.cfg.unenforced_pids };
	static const char *const names[2] = { "memory_bytes", "pids" };
	for (int i = 0; i < 2; i++) {
		char q[300];
		if (g[i])
			cr_log("warn", ok[i] ? "limit accepted unenforced (--unenforced-limits)"
			                     : "runs that set this limit are refused (bad_request)",
			       "limit=%s why=%s", names[i], cr_log_quote(q, sizeof q, g[i]));
	}
}

int px_slot_uid(int i) { return px_w.uid_drop ? px_w.cfg.uid_base + i : -1; }

/* A group of its own per slot unless the operator named one. */
int px_slot_gid(int i)
{
	if (!px_w.uid_drop)
		return -1;
	return px_w.cfg.gid > 0 ? px_w.cfg.gid : px_w.cfg.uid_base + i;
}

int px_init(const px_config *cfg, char *err, size_t errlen)
{
	memset(&px_w, 0, sizeof px_w);
	px_w.cfg = *cfg;
	px_w.root = geteuid() == 0;
	if (cfg->nslots <= 0 || cfg->nslots > 4096) {
		snprintf(err, errlen, "bad number of slots %d", cfg->nslots);
		return -1;
	}
	if (cfg->uid_base >= 0 && !px_w.root) {
		snprintf(err, errlen, "a slot uid base needs root (we run as uid %d)", (int)geteuid());
		return -1;
	}
	if (cfg->uid_base == 0) {
		snprintf(err, errlen, "the slot uid base must not be 0 (root)");
		return -1;
	}
	px_w.uid_drop = cfg->uid_base > 0;
	if (px_w.uid_drop && px_uid_lock(cfg->uid_base, cfg->nslots, err, errlen) < 0)
		return -1;
	if (check_runtime(cfg, err, errlen) < 0 || make_work_root(cfg, err, errlen) < 0) {
		px_uid_unlock();
		return -1;
	}
	px_w.cfg.runtime_dir = px_w.runtime_dir;
	px_w.cfg.work_root = px_w.work_root;
	px_w.tmp_bytes = cfg->tmp_bytes > 0 ? cfg->tmp_bytes : 64 << 20;
	px_w.workdir_bytes = cfg->workdir_bytes;
	int want, min;
	if (parse_levels(cfg, &want, &min, err, errlen) < 0) {
		px_uid_unlock();
		return -1;
	}
	if (make_slots(cfg->nslots, err, errlen) < 0) {
		px_fini();
		return -1;
	}
	char mech[300] = "";
	snprintf(mech, sizeof mech, "%s+rlimit+", px_w.uid_drop ? "uid" : "no-uid-drop");
	px_cg_init(mech, sizeof mech);
	if (px_cg_slots(px_w.nslots, err, errlen) < 0) {
		px_fini();
		return -1;
	}
	if (px_sandbox_init(want, err, errlen) < 0) {
		px_fini();
		return -1;
	}
	px_sandbox_describe(mech, sizeof mech);
	if (px_forker_start(err, errlen) < 0) { /* before any thread: forker.c */
		px_fini();
		return -1;
	}
	px_warm_init();
	int level = px_sandbox_level();
	char lims[200];
	describe_limits(lims, sizeof lims);
	snprintf(px_w.isolation, sizeof px_w.isolation, "%s: %s %s", px_level_name(level), mech,
	         lims);
	if (level < min) {
		snprintf(err, errlen, "isolation level %s is below the required minimum %s (%s)",
		         px_level_name(level), px_level_name(min), px_w.isolation);
		px_fini();
		return -1;
	}
	if (px_zygote_init(err, errlen) < 0) {
		px_fini();
		return -1;
	}
	warn_limits();
	return 0;
}

void px_fini(void)
{
	px_zygote_fini();
	for (int i = 0; i < px_w.nslots; i++) {
		px_tidy(&px_w.slots[i], NULL, 0);
		px_warm_discard(&px_w.slots[i]);
	}
	px_forker_stop();
	px_sandbox_fini();
	for (int i = 0; i < px_w.nslots; i++) {
		px_slot *s = &px_w.slots[i];
		close(s->wake_fd);
		pthread_mutex_destroy(&s->mu);
		if (s->dir_mounted)
			umount2(s->dir, MNT_DETACH);
		char err[256];
		px_rmtree(s->dir, err, sizeof err);
	}
	free(px_w.slots);
	px_w.slots = NULL;
	px_w.nslots = 0;
	px_cg_fini();
	if (px_w.made_work_root)
		rmdir(px_w.work_root); /* only when we made it, and it is empty */
	px_w.made_work_root = false;
	px_uid_unlock();
}

const char *px_isolation(void) { return px_w.isolation; }
const char *px_isolation_level(void) { return px_level_name(px_sandbox_level()); }

/* ---- environment ------------------------------------------------------- */

const char *px_seen_workdir(const char *wd)
{
	return px_sandbox_level() >= PX_LEVEL_NAMESPACES ? PX_BOX : wd;
}

const char *px_seen_runtime_dir(void)
{
	return px_sandbox_level() >= PX_LEVEL_NAMESPACES ? PX_RUNTIME : px_w.runtime_dir;
}

/* Sets "KEY=VALUE" (kv: an allocated string, taken over). */
static void env_put(px_env *e, char *kv)
{
	if (!kv) {
		e->oom = true;
		return;
	}
	size_t kl = strcspn(kv, "=");
	for (size_t i = 0; i < e->n; i++)
		if (!strncmp(e->v[i], kv, kl) && e->v[i][kl] == '=') {
			free(e->v[i]);
			e->v[i] = kv;
			return;
		}
	if (e->n + 2 > e->alloc) {
		size_t na = e->alloc ? e->alloc * 2 : 32;
		char **nv = realloc(e->v, na * sizeof *nv);
		if (!nv) {
			free(kv);
			e->oom = true;
			return;
		}
		e->v = nv;
		e->alloc = na;
	}
	e->v[e->n++] = kv;
	e->v[e->n] = NULL;
}

static char *fmt(const char *f, const char *a, const char *b)
{
	char *s;
	return asprintf(&s, f, a, b) < 0 ? NULL : s;
}

void px_env_free(px_env *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
	memset(e, 0, sizeof *e);
}

int px_env_build(px_env *e, const cr_request *req, const char *wd, const char *tmp,
                     const char *stage, int slot)
{
	char sl[16];
	snprintf(sl, sizeof sl, "%d", slot);
	env_put(e, strdup("PATH=/usr/local/bin:/usr/bin:/bin"));
	env_put(e, strdup("LANG=C.UTF-8"));
	env_put(e, fmt("HOME=%s%s", px_seen_workdir(wd), ""));
	env_put(e, fmt("TMPDIR=%s%s", tmp, ""));
	for (char *const *b = px_w.cfg.base_env; b && *b; b++)
		if (strchr(*b, '='))
			env_put(e, strdup(*b));
	for (size_t i = 0; i < req->nenv; i++)
		if (strncmp(req->env[i].key, "CORRAL_", 7) != 0 && !strchr(req->env[i].key, '='))
			env_put(e, fmt("%s=%s", req->env[i].key, req->env[i].value));
	env_put(e, fmt("CORRAL_ENTRY=%s%s", req->entry, ""));
	env_put(e, fmt("CORRAL_WORKDIR=%s%s", px_seen_workdir(wd), ""));
	env_put(e, fmt("CORRAL_RUNTIME_DIR=%s%s", px_seen_runtime_dir(), ""));
	env_put(e, fmt("CORRAL_STAGE=%s%s", stage, ""));
	env_put(e, fmt("CORRAL_SLOT=%s%s", sl, ""));
	return e->oom ? -1 : 0;
}

/* ---- execute ----------------------------------------------------------- */

typedef struct inv {
	px_slot *slot;
	const px_job *job;
	char wd[PX_PATH], tmp[PX_PATH + 8];
} inv;

int px_make_dirs(px_slot *slot, const cr_file *files, size_t nfiles, char *wd, char *tmp,
                 char *err, size_t errlen)
{
	uint64_t rnd;
	int uid = px_slot_uid(slot->index), gid = px_slot_gid(slot->index);
	wd[0] = tmp[0] = '\0';
	if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) {
		snprintf(err, errlen, "getrandom: %s", strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&slot->mu);
	unsigned long n = ++slot->dirs;
	pthread_mutex_unlock(&slot->mu);
	if ((size_t)snprintf(wd, PX_PATH, "%s/%lu.%016llx", slot->dir, n,
	                     (unsigned long long)rnd) >= PX_PATH ||
	    (size_t)snprintf(tmp, PX_PATH + 8, "%s.tmp", wd) >= PX_PATH + 8) {
		snprintf(err, errlen, "work root path too long");
		wd[0] = tmp[0] = '\0';
		return -1;
	}
	if (px_workdir_fill(wd, files, nfiles, uid, gid, err, errlen) < 0)
		return -1;
	if (px_sandbox_level() >= PX_LEVEL_NAMESPACES) {
		strcpy(tmp, "/tmp"); /* a fresh tmpfs in the stage's namespace */
		return 0;
	}
	if (mkdir(tmp, 0700) < 0 || (uid >= 0 && chown(tmp, (uid_t)uid, (gid_t)gid) < 0)) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	return 0;
}

/* A dir that could not be removed stays the slot's, to try again. */
static void keep_dirty(px_slot *s, const char *d, const char *why)
{
	int i = 0;
	while (i < s->ndirty && strcmp(s->dirty[i], d))
		i++;
	if (i == s->ndirty) {
		char q[600];
		cr_log("error", "work dir removal failed", "slot=%d error=%s", s->index,
		       cr_log_quote(q, sizeof q, why));
		if (s->ndirty < PX_DIRTY)
			snprintf(s->dirty[s->ndirty++], sizeof s->dirty[0], "%s", d);
	}
	snprintf(s->dirty_err, sizeof s->dirty_err, "%s", why);
}

int px_remove_dirs(px_slot *s, const char *wd, const char *tmp)
{
	char rerr[512];
	int rc = 0;
	for (int i = 0; i < 2; i++) {
		const char *d = i ? tmp : wd;
		if (d[0] && strcmp(d, "/tmp") && px_rmtree(d, rerr, sizeof rerr) < 0) {
			keep_dirty(s, d, rerr);
			rc = -1;
		}
	}
	return rc;
}

/* Tries the dirs left by failed removals again; those that stay, stay. */
static void retry_dirty(px_slot *s)
{
	char rerr[512];
	int n = 0;
	for (int i = 0; i < s->ndirty; i++) {
		if (px_rmtree(s->dirty[i], rerr, sizeof rerr) == 0)
			continue;
		snprintf(s->dirty_err, sizeof s->dirty_err, "%s", rerr);
		if (n != i)
			memcpy(s->dirty[n], s->dirty[i], sizeof s->dirty[0]);
		n++;
	}
	s->ndirty = n;
}

/* A zygote run of the run stage: its spec memfd (zygote.c). */
static int zygote_spec(inv *v, px_stage_spec *spec, char *const *envp, char *err,
                       size_t errlen)
{
	size_t len;
	char *h = px_warm_handoff(v->job->req, envp, &len);
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	spec->zygote_spec = px_zygote_spec(v->slot->index, v->wd, spec->lim, h, len, err,
	                                   errlen);
	free(h);
	spec->zygote = spec->zygote_spec >= 0;
	return spec->zygote ? 0 : -1;
}

static int run_stage(inv *v, bool compile, cr_stage *st, bool *cancelled, char *err,
                     size_t errlen)
{
	const cr_request *req = v->job->req;
	char exe[PX_PATH + 16];
	snprintf(exe, sizeof exe, "%s/%s", px_seen_runtime_dir(),
	         compile ? "compile.sh" : "runtime.sh");
	size_t nargs = compile ? 0 : req->nargs;
	char **argv = calloc(nargs + 3, sizeof *argv);
	px_env env = { 0 };
	int rc = -1;
	if (!argv || px_env_build(&env, req, v->wd, v->tmp, compile ? "compile" : "run",
	                       v->slot->index) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	argv[0] = exe;
	argv[1] = req->entry;
	for (size_t i = 0; i < nargs; i++)
		argv[2 + i] = req->args[i];
	px_stage_spec spec = {
		.exe = exe, .argv = argv, .envp = env.v, .workdir = v->wd,
		.lim = compile ? &v->job->compile_limits : &v->job->run_limits,
		.stdin_data = compile ? NULL : req->stdin_data,
		.stdin_len = compile ? 0 : req->stdin_len,
		.zygote_spec = -1,
	};
	if (!compile && px_zygote_usable() &&
	    zygote_spec(v, &spec, env.v, err, errlen) < 0)
		goto out;
	rc = px_stage_run(v->slot, &spec, st, cancelled, err, errlen);
	if (spec.zygote)
		close(spec.zygote_spec);
out:
	free(argv);
	px_env_free(&env);
	return rc;
}

static int stages(inv *v, px_result *res, char *err, size_t errlen)
{
	if (px_w.cfg.has_compile) {
		res->has_compile = true;
		if (run_stage(v, true, &res->compile, &res->cancelled, err, errlen) < 0)
			return -1;
		if (res->cancelled || res->compile.status != CR_ST_OK)
			return 0;
	}
	if (px_slot_cancelled(v->slot)) {
		res->cancelled = true;
		return 0;
	}
	res->has_run = true;
	return run_stage(v, false, &res->run, &res->cancelled, err, errlen);
}

int px_execute(px_slot *slot, const px_job *job, px_result *res, char *err, size_t errlen)
{
	memset(res, 0, sizeof *res);
	if (!slot || !job || !job->req || !job->req->entry || job->req->nfiles == 0) {
		snprintf(err, errlen, "px_execute: no slot, or a request without files");
		return -1;
	}
	if (px_tidy(slot, err, errlen) < 0)
		return -1; /* never a run in a slot that is not clean */
	slot_begin(slot);
	inv v = { .slot = slot, .job = job };
	/* a prewarmed sandbox when the slot has one; else (or when it died
	 * before it had the invocation) the cold path */
	int rc = px_warm_run(slot, job, res, v.wd, v.tmp, err, errlen);
	if (rc == PX_WARM_NONE) {
		const cr_request *req = job->req;
		rc = px_make_dirs(slot, req->files, req->nfiles, v.wd, v.tmp, err, errlen);
		if (rc == 0)
			rc = stages(&v, res, err, errlen);
	}
	/* the dirs go after the reply (px_tidy): nothing runs in them now */
	snprintf(slot->tidy.wd, sizeof slot->tidy.wd, "%s", v.wd);
	snprintf(slot->tidy.tmp, sizeof slot->tidy.tmp, "%s", v.tmp);
	slot_end(slot);
	return rc;
}

int px_tidy(px_slot *slot, char *err, size_t errlen)
{
	if (!slot)
		return 0;
	px_slot_tidy(slot); /* the keeper reaped: nothing of the runs is alive */
	if (slot->ndirty)
		retry_dirty(slot);
	px_remove_dirs(slot, slot->tidy.wd, slot->tidy.tmp);
	slot->tidy.wd[0] = slot->tidy.tmp[0] = '\0';
	if (!slot->ndirty)
		return 0;
	if (err)
		snprintf(err, errlen, "the slot's last work dirs are not removed (%d left): %s",
		         slot->ndirty, slot->dirty_err);
	return -1;
}

void px_result_free(px_result *res)
{
	if (!res)
		return;
	cr_stage_free(&res->compile);
	cr_stage_free(&res->run);
	memset(res, 0, sizeof *res);
}
