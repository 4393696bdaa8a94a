/*
 * internal.h — what the files of proxy/ share, not part of the API.
 *
 *   workdir.c  the private work dir of an invocation: made, filled, removed
 *   cgroup.c   cgroup v1/v2 detection, one fresh cgroup per stage run
 *   forker.c   a small single-threaded process that forks the keepers
 *   keeper.c   the keeper process and the stage process it starts; code
 *              that runs after fork() in a threaded program, so it uses
 *              only async-signal-safe calls and data prepared beforehand
 *   sandbox.c  namespaces, mounts and seccomp (phase 2 of the design)
 *   stage.c    the parent side of one stage: pipes, poll loop, limits,
 *              the stage's status
 *   proxy.c    px_init/px_execute/px_cancel: slots and the two stages
 *   uidlock.c  one worker per slot uid: a lock on the uid range
 *   warm.c     prewarmed one-shot sandboxes: started ahead, used once
 */
#ifndef PX_INTERNAL_H
#define PX_INTERNAL_H

#include "proxy.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>

#define PX_PATH 512
#define PX_DIRTY 8 /* dirs a slot keeps to remove later (px_slot) */

/* ---- proxy.c ------------------------------------------------------------ */

/* Identity of slot i's stages: -1 when the uid is not changed. */
int px_slot_uid(int i);
int px_slot_gid(int i);

/* ---- uidlock.c ---------------------------------------------------------- */

/* As root: locks uids [base, base + n) for this process (-1 with err
 * naming the uid and the holding worker's pid when another has one), then
 * kills whatever those uids still run. */
int px_uid_lock(int base, int n, char *err, size_t errlen);
void px_uid_unlock(void);

/* ---- workdir.c ---------------------------------------------------------- */

/* Makes dir (mode 0700, owned by uid:gid when uid >= 0) holding exactly
 * files. Never follows a symlink. -1 with err; dir may then exist
 * partially and the caller removes it. */
int px_workdir_fill(const char *dir, const cr_file *files, size_t nfiles,
                    int uid, int gid, char *err, size_t errlen);
/* The same into dir, which exists (a prewarmed sandbox's, empty). */
int px_workdir_put(const char *dir, const cr_file *files, size_t nfiles,
                   int uid, int gid, char *err, size_t errlen);
/* Removes path and everything below it, whatever the user did to it
 * (read-only modes, deep trees, fifos, sockets). 0, or -1 with err. */
int px_rmtree(const char *path, char *err, size_t errlen);

/* ---- cgroup.c ----------------------------------------------------------- */

enum { PX_CG_NONE = 0, PX_CG_V1 = 1, PX_CG_V2 = 2 };

/* One stage's cgroup: a dir per hierarchy in use ("" when not in use). */
typedef struct px_cgroup {
	char mem[PX_PATH];     /* v1 memory, or the v2 dir */
	char pids[PX_PATH];    /* v1 pids */
	char cpu[PX_PATH];     /* v1 cpuacct */
	char freezer[PX_PATH]; /* v1 freezer */
	char unified[PX_PATH]; /* v2 dir: cgroup.kill (also in hybrid mode) */
	int join_fd[5];        /* cgroup.procs of each, -1 when unused */
	int njoin;
	int slot;
	bool reused;           /* the slot's own (v1), reset between runs */
	int64_t cpu_base;      /* CPU usage (ns) and OOM kills before the run */
	int64_t oom_base;
} px_cgroup;

typedef struct px_cg_usage {
	int64_t cpu_ns;   /* -1: unknown */
	int64_t mem_peak; /* -1: unknown */
	bool oom_killed;
} px_cg_usage;

/* Detects what works; 0 always (no cgroups is a level, not a failure),
 * with a description of what is usable appended to desc. */
int px_cg_init(char *desc, size_t desclen);
/* Some cgroup hierarchy in that mountinfo file has favordynmods (moves
 * into cgroups need no RCU grace period; cgroup.c). */
bool px_cg_favordynmods(const char *mountinfo);
void px_cg_fini(void);
int px_cg_mode(void);
bool px_cg_has_memory(void);
bool px_cg_has_pids(void);
bool px_cg_has_cpu(void);
/* v1: makes each slot's reused cgroups (after px_cg_init). */
int px_cg_slots(int nslots, char *err, size_t errlen);
/* The cgroup of one stage run, the limits applied and counters marked:
 * the slot's own reset (v1) or a fresh one. */
int px_cg_create(px_cgroup *cg, int slot, const cr_limits *lim, char *err,
                 size_t errlen);
int px_cg_set_limits(px_cgroup *cg, const cr_limits *lim, char *err, size_t errlen);
/* From now on, CPU usage, peak memory and OOM kills count from zero
 * (usage read later is the difference). */
void px_cg_mark(px_cgroup *cg);
int64_t px_cg_cpu_ns(const px_cgroup *cg);
/* Up to max host pids of the cgroup's members; 0 when none or unknown. */
int px_cg_pids(const px_cgroup *cg, pid_t *pids, int max);
void px_cg_read_usage(const px_cgroup *cg, px_cg_usage *u);
/* Kills what is left; removes the dirs, or empties and keeps a reused one. */
void px_cg_destroy(px_cgroup *cg);

/* ---- keeper.c ----------------------------------------------------------- */

#define PX_MAX_RLIMITS 10

/* Everything the keeper and the stage process need, prepared before fork
 * so that nothing after fork allocates. */
typedef struct px_plan {
	const char *exe;  /* runtime.sh or compile.sh */
	char *const *argv;
	char *const *envp;
	const char *workdir;
	int uid, gid;     /* -1: keep ours */
	int stdin_fd, stdout_fd, stderr_fd; /* the stage's ends */
	int ctl_fd;       /* keeper reads: a byte or EOF = stop now */
	int warm_fd;      /* a warm stage's socket, its fd 3; -1: none */
	int report_fd;    /* keeper writes its px_report here */
	struct { int res; struct rlimit lim; } rlimits[PX_MAX_RLIMITS];
	int nrlimits;
	bool uid_kill;    /* root and uid >= 0: kill all of uid at the end */
	const px_cgroup *cg; /* may be NULL */
	const struct px_sandbox *sb; /* seccomp, namespaces; may be NULL */
	/* zygote run (zygote.c): instead of forking the stage, the keeper
	 * hands its namespaces and these to the fork server */
	bool zygote;
	int zygote_sock, zygote_spec, zygote_bpf; /* bpf -1: no filter */
} px_plan;

/* What the keeper tells the parent when it is done. */
typedef struct px_report {
	int main_reaped;   /* the stage process was reaped */
	int main_status;   /* its wait status */
	int exec_errno;    /* execve of exe failed with it (0: no) */
	int setup_errno;   /* a sandbox step failed with it (0: no) */
	int setup_step;    /* which one (px_step_name) */
	int64_t cpu_us;    /* user+system of all it reaped */
	int64_t maxrss_kb; /* largest ru_maxrss of what it reaped */
	int leftovers;     /* processes still found after the end (killed) */
} px_report;

/* Starts the keeper (through the forker when it runs); returns its pid,
 * a child of ours, or -1 (errno). In the parent only. */
pid_t px_keeper_start(const px_plan *plan);
/* Clones the keeper from this process with these extra clone flags;
 * parent is the keeper's parent's pid. */
pid_t px_keeper_clone(const px_plan *plan, pid_t parent, unsigned long flags);
const char *px_step_name(int step);

/* Keeps only the given fds open (async-signal-safe). */
void px_close_except(const int *keep, int n);
/* sendmsg of len bytes of data with n fds (SCM_RIGHTS), MSG_NOSIGNAL and
 * flags; async-signal-safe. */
#define PX_MAX_SEND_FDS 32
ssize_t px_send_fds(int sock, const void *data, size_t len, const int *fds, int n, int flags);

/* ---- forker.c ----------------------------------------------------------- */

/* Forks the forker (while we are one thread); -1 with err. */
int px_forker_start(char *err, size_t errlen);
void px_forker_stop(void);
/* The keeper of this plan, made by the forker: its pid, or -1 (errno)
 * when there is no forker or it failed (the caller forks it itself). */
pid_t px_forker_keeper(const px_plan *p);

/* ---- warm.c ---------------------------------------------------------------- */

/* A slot's prewarmed sandbox. `present` and `ready` are read by other
 * threads (px_slot_warm_ready) under the slot's mutex. */
typedef struct px_warm {
	bool present;     /* launched, not used yet */
	bool ready;       /* its warm entry said it is blocked, waiting */
	int failures;     /* in a row, before a handoff; prewarm stops at 3 */
	int64_t started_ms;
	char wd[PX_PATH], tmp[PX_PATH + 8];
	struct px_launch_s *l; /* the launched stage (malloc'd) */
} px_warm;

typedef struct px_world {
	px_config cfg;
	char runtime_dir[PX_PATH];
	char work_root[PX_PATH];
	char isolation[512];
	bool root;       /* euid 0 */
	bool uid_drop;   /* stages run as uid_base + slot */
	bool made_work_root;
	int64_t tmp_bytes;     /* private /tmp of a stage (namespaces) */
	int64_t workdir_bytes; /* per-slot tmpfs for work dirs (root) */
	int nslots;
	px_slot *slots;
	bool prewarm;    /* asked for, the runtime has warm.sh and no compile.sh */
	char accel[128]; /* px_accel() */
} px_world;

extern px_world px_w;

struct px_slot {
	int index;
	pthread_mutex_t mu;
	bool active;       /* px_execute in progress */
	bool cancel;       /* px_cancel asked to stop */
	int wake_fd;       /* eventfd: wakes the stage loop on cancel */
	unsigned long seq; /* invocations run */
	unsigned long dirs; /* work dirs made, for unique names */
	char dir[PX_PATH]; /* where its work dirs go: a tmpfs of its own as root */
	bool dir_mounted;
	px_warm warm;      /* the next sandbox, started ahead (warm.c) */
	/* What the last run left to clean up after its reply (px_tidy): its
	 * keeper, which exits once it has reported (namespaces torn down),
	 * its cgroup and its dirs. */
	struct {
		pid_t keeper;   /* -1: none */
		bool has_cg;
		px_cgroup cg;
		char wd[PX_PATH], tmp[PX_PATH + 8];
	} tidy;
	/* Dirs of past runs whose removal failed (px_remove_dirs), tried
	 * again by every px_tidy; while one is left the slot is not clean and
	 * runs nothing. dirty_err: the last failure. Slot thread only. */
	char dirty[PX_DIRTY][PX_PATH + 8];
	int ndirty;
	char dirty_err[512];
};

bool px_slot_cancelled(px_slot *s);

/* Environment of a stage (proxy.c says what it holds). */
typedef struct px_env {
	char **v;
	size_t n, alloc;
	bool oom;
} px_env;
int px_env_build(px_env *e, const cr_request *req, const char *wd, const char *tmp,
                 const char *stage, int slot);
void px_env_free(px_env *e);
/* The work dir wd, and the runtime dir, as a stage sees them: /box and
 * /runtime at the namespace levels, the host's paths below them. */
const char *px_seen_workdir(const char *wd);
const char *px_seen_runtime_dir(void);
/* A fresh work dir holding files, and a private tmp next to it ("/tmp"
 * at the namespace levels), owned by the slot's uid. wd: PX_PATH bytes,
 * tmp: PX_PATH + 8. */
int px_make_dirs(px_slot *slot, const cr_file *files, size_t nfiles, char *wd, char *tmp,
                 char *err, size_t errlen);
/* Removes both ("" and "/tmp" are skipped). One that cannot be removed
 * is logged and kept in the slot's dirty list, which px_tidy tries again
 * and which keeps the slot from running anything until it is empty; -1
 * then. */
int px_remove_dirs(px_slot *s, const char *wd, const char *tmp);

/* ---- warm.c ---------------------------------------------------------------- */

enum { PX_WARM_NONE = 1 }; /* px_warm_run: no warm sandbox was used */
/* Decides prewarm at px_init (after the sandbox). */
void px_warm_init(void);
/* Runs the invocation in the slot's warm sandbox: 0 or -1 as px_execute,
 * with wd/tmp set to the dirs to remove; PX_WARM_NONE when there was none
 * fit to use (nothing ran, wd/tmp are empty). */
int px_warm_run(px_slot *s, const px_job *job, px_result *res, char *wd, char *tmp,
                char *err, size_t errlen);
/* Stops and removes the slot's warm sandbox, if any. */
void px_warm_discard(px_slot *s);
/* The handoff of an invocation (warm.c's header; also in a zygote spec). */
char *px_warm_handoff(const cr_request *req, char *const *envp, size_t *len);
/* ---- zygote.c ---------------------------------------------------------- */
/* At px_init, when cfg.zygote: starts the fork server (-1 with err when the
 * runtime, the level or the server does not allow it). */
int px_zygote_init(char *err, size_t errlen);
void px_zygote_fini(void);
/* The server is up (a dead one is logged once; runs are then cold). */
bool px_zygote_usable(void);
int px_zygote_sock(void);
int px_zygote_bpf(void);
/* A memfd holding the spec of one run (zygote.py reads it), or -1 with err. */
int px_zygote_spec(int slot, const char *workdir, const cr_limits *lim, const char *handoff,
                   size_t handoff_len, char *err, size_t errlen);
/* ---- stage.c ------------------------------------------------------------ */

typedef struct px_stage_spec {
	const char *exe;
	char *const *argv;
	char *const *envp;
	const char *workdir;
	const cr_limits *lim;
	const char *stdin_data;
	size_t stdin_len;
	bool zygote;      /* run by the fork server, zygote_spec its spec memfd */
	int zygote_spec;
} px_stage_spec;

/* Runs one stage to its end. 0 with *st filled (and *cancelled), -1 with
 * err for an internal failure. */
int px_stage_run(px_slot *s, const px_stage_spec *spec, cr_stage *st,
                 bool *cancelled, char *err, size_t errlen);

/* px_stage_run in two halves, so that a stage can be started ahead (a
 * warm one: warm.c) and finished later. */
typedef struct px_launch_s {
	pid_t keeper;  /* -1: none */
	int in_fd, out_fd, err_fd, ctl_fd, report_fd;
	int warm_fd;   /* our end of a warm stage's fd 3; -1: not warm */
	px_cgroup cg;
	bool has_cg;
} px_launch;

/* Starts the keeper and the stage under spec->lim (cgroup and rlimits). */
int px_stage_launch(px_slot *s, const px_stage_spec *spec, bool warm, px_launch *l,
                    char *err, size_t errlen);
/* Runs the launched stage to its end under spec's limits, the wall clock
 * from now; handoff (when not NULL) is written to the warm socket first,
 * then EOF. *lost (may be NULL): the stage ended before it had all of
 * the handoff, so nothing of the invocation ran and *st is empty. */
int px_stage_finish(px_slot *s, const px_stage_spec *spec, px_launch *l,
                    const char *handoff, size_t handoff_len, cr_stage *st,
                    bool *cancelled, bool *lost, char *err, size_t errlen);
/* Stops and frees a launched stage that will not be finished. */
void px_stage_abandon(px_launch *l);
/* The slot's deferred cleanup, now (stage.c keeps a reported keeper and
 * its cgroup for it, px_execute the dirs). */
void px_slot_tidy(px_slot *s);
/* The rlimits of a stage under lim. */
void px_plan_limits(px_plan *p, const cr_limits *lim);

#endif
