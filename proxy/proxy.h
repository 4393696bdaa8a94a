/*
 * proxy.h — one invocation, one sandboxed run (public API of proxy/).
 *
 * The processor owns slots; each slot runs at most one invocation at a
 * time, on the slot's own thread, by calling px_execute(). px_execute()
 * builds a fresh private work dir with exactly the request's files, runs
 * `compile.sh <entry>` (when the runtime has one) and then
 * `runtime.sh <entry> [args...]` in it, each stage under its limits,
 * collects output and usage into cr_stage structs, and removes the work
 * dir whatever happened.
 *
 * Each stage is run by a "keeper": a process forked from the slot
 * thread that becomes the subreaper of everything the stage starts,
 * applies the sandbox (uid drop, rlimits, cgroup; namespaces and seccomp
 * slot in here, see sandbox.h), forks the stage's process, and when that
 * process ends or must be stopped (wall limit, output limit, cancel)
 * kills the whole tree — double-forked daemons included — before it
 * reports back and exits. Nothing a stage ran outlives px_execute(); the
 * keeper's own exit, the cgroup's reset and the work dir's removal are
 * left for px_tidy(), after the reply.
 */
#ifndef PX_PROXY_H
#define PX_PROXY_H

#include "wire.h"

#include <stdbool.h>
#include <sys/types.h>

/* Worker-wide configuration, fixed at start (px_init). */
typedef struct px_config {
	const char *runtime_dir; /* holds runtime.sh and maybe compile.sh; readable by slot uids */
	const char *work_root;   /* work dirs are created below it */
	bool has_compile;        /* runtime_dir/compile.sh exists */
	int nslots;
	/* Unprivileged identity: slot i runs as uid uid_base + i and gid
	 * `gid`, or gid uid_base + i when gid <= 0 (a group per slot; root's
	 * group is never used).
	 * uid_base < 0: do not change uid (processor not root). */
	int uid_base;
	int gid;
	/* Extra environment for every stage, "KEY=VALUE" (may be NULL). */
	char *const *base_env;
	/* Isolation level (docs/isolation.md): NULL or "auto" = the best the
	 * kernel allows, else exactly "none", "seccomp", "namespaces" or
	 * "full" (px_init fails when it cannot have it). */
	const char *isolation;
	/* px_init fails when the level in force is below this one. NULL:
	 * "none". */
	const char *min_isolation;
	/* Size of a stage's private /tmp (namespace levels); 0: 64 MiB. */
	int64_t tmp_bytes;
	/* As root, each slot's work dirs can live on a tmpfs of this size, so
	 * that a disk fill stops there. 0: plain folders (the mounts outlive a
	 * SIGKILLed worker, so this is opt-in for now). */
	int64_t workdir_bytes;
	/* Prewarmed one-shot sandboxes (docs/runtimes.md, "warm"): each slot
	 * keeps its next sandbox started, with the runtime's warm.sh blocked
	 * in it, under warm_limits until an invocation's limits replace them.
	 * Ignored for a runtime without warm.sh or with compile.sh. */
	bool prewarm;
	cr_limits warm_limits; /* every field set: the largest a run may ask */
	/* Fork server (docs/runtimes.md, "zygote"): one interpreter per worker
	 * started at px_init by the runtime's zygote.sh, forking a child per
	 * run that enters the run's own sandbox first. px_init fails for a
	 * runtime without zygote.sh or with compile.sh, or below level
	 * namespaces. With prewarm too, the prewarmed sandboxes' stages are
	 * the server's children. */
	bool zygote;
	bool zygote_auto; /* with zygote: where it cannot be, off (logged), not a failure */
	/* The operator accepts memory_bytes / pids unenforced where the level
	 * cannot enforce them (--unenforced-limits); else px_limits_check
	 * refuses such runs (bad_request). docs/isolation.md, "What each limit means". */
	bool unenforced_memory, unenforced_pids;
} px_config;

typedef struct px_slot px_slot;

/* Resolved (defaults applied, maxima checked) limits and the request. */
typedef struct px_job {
	const cr_request *req;
	cr_limits run_limits;     /* every field set */
	cr_limits compile_limits; /* every field set */
} px_job;

typedef struct px_result {
	bool has_compile; /* compile stage ran */
	bool has_run;     /* run stage ran (false when compile failed) */
	cr_stage compile;
	cr_stage run;
	bool cancelled;   /* px_cancel() stopped it; stages hold what ran */
} px_result;

/* Prepare the worker: check dirs, cgroups, uids. -1 with err on failure. */
int px_init(const px_config *cfg, char *err, size_t errlen);
void px_fini(void);

/* Slot i (0 <= i < nslots), valid after px_init. */
px_slot *px_slot_at(int i);

/* Run one invocation on a slot; blocks. 0 with *res filled (statuses of
 * the stages say how they ended), or -1 with err for an internal failure
 * (work dir could not be made, fork failed, ...). res is always safe to
 * px_result_free(). */
int px_execute(px_slot *slot, const px_job *job, px_result *res, char *err,
               size_t errlen);
void px_result_free(px_result *res);

/* Thread-safe, from any thread: stop what runs on the slot now (whole
 * tree killed); px_execute() then returns with res->cancelled set. A
 * cancel that arrives between stages stops the next stage from starting.
 * No effect when the slot is idle. */
void px_cancel(px_slot *slot);

/* Cleans up after the slot's last run: reaps its keeper (which tears
 * the namespaces down as it exits), empties its cgroup, removes its work
 * dir. px_execute leaves that for after the reply; the slot's thread
 * calls this once the reply is out (px_execute and px_prepare call it
 * too, first). Not concurrently with px_execute on the same slot.
 * 0 when the slot is clean; -1 with err (may be NULL) when dirs of its
 * runs could not be removed: they are kept and tried again by the next
 * call, and until one succeeds px_execute refuses to run on the slot
 * (the processor takes it out of service) and px_prepare does nothing. */
int px_tidy(px_slot *slot, char *err, size_t errlen);

/* When prewarm is on: starts the slot's next sandbox if it has none (the
 * slot's thread calls it when idle, e.g. right after a reply left). Not
 * concurrently with px_execute on the same slot. No-op when off. */
void px_prepare(px_slot *slot);
/* Thread-safe: the slot has a warm sandbox whose runtime said it waits. */
bool px_slot_warm_ready(px_slot *slot);
/* The fast paths in force, for `info` and logs: "prewarm", "zygote" or "none". */
const char *px_accel(void);

/* 0 when the worker enforces every limit lim sets (or the operator
 * accepted it unenforced); -1 with err naming the limit and why, for a
 * `bad_request` refusal, when it cannot. */
int px_limits_check(const cr_limits *lim, const char *what, char *err, size_t errlen);

/* A short description of the isolation in force, for `info` and logs:
 * "<level>: <mechanisms> memory=<how> pids=<how>", e.g.
 * "full: uid+rlimit+cgroup-v1(...)+seccomp+... memory=cgroup pids=cgroup" */
const char *px_isolation(void);
/* Just the level's name ("none", "seccomp", "namespaces", "full"), for
 * metrics. */
const char *px_isolation_level(void);

#endif
