/*
 * sandbox.h — namespaces, the filesystem view, seccomp and capabilities
 * of a stage (see sandbox.c). Private to proxy/.
 */
#ifndef PX_SANDBOX_H
#define PX_SANDBOX_H

#include "internal.h"

#include <linux/filter.h>

/* Isolation levels, weakest first (px_isolation_level names them). */
enum {
	PX_LEVEL_NONE,       /* rlimits (+ uid and cgroups when possible) */
	PX_LEVEL_SECCOMP,    /* + seccomp filter, no capabilities, no_new_privs */
	PX_LEVEL_NAMESPACES, /* + pid/mount/net/ipc/uts namespaces (user ns when not root) */
	PX_LEVEL_FULL,       /* + uid per slot and cgroup memory/pids limits */
	PX_NLEVELS
};

/* Where a run sees its work dir and the runtime dir at the namespace
 * levels: the same for every run and slot, whatever the host's layout. */
#define PX_BOX "/box"
#define PX_RUNTIME "/runtime"

const char *px_level_name(int level);
int px_level_parse(const char *name); /* -1: unknown */

/* What the keeper and the stage need, built at px_init. */
typedef struct px_sandbox {
	int level;
	bool seccomp;
	bool namespaces;
	bool userns;   /* namespaces through a user namespace (not root) */
	int outer_uid, outer_gid;
	struct sock_fprog prog; /* the seccomp filter, ready for prctl */
	char root[PX_PATH];     /* empty folder: the mount point of the new root */
	int64_t tmp_bytes;      /* size of the private /tmp */
	int base_ns;            /* the forker's: its base root's mount ns; -1 none */
} px_sandbox;

/* Builds the seccomp program and finds what the kernel allows, from the
 * best level down (or exactly `want` when >= 0). -1 with err when even
 * the level asked for cannot be had. */
int px_sandbox_init(int want, char *err, size_t errlen);
void px_sandbox_fini(void);
int px_sandbox_level(void);
/* Each stage has its own user namespace, in which RLIMIT_NPROC counts
 * only its processes (tried at init): pids can be enforced that way. */
bool px_sandbox_nproc(void);
/* Appends "+seccomp+ns(...)" etc. to desc. */
void px_sandbox_describe(char *desc, size_t len);
/* The slot's sandbox (its own root mount point), NULL below NAMESPACES
 * and SECCOMP. */
const px_sandbox *px_sandbox_for(int slot);

/* ---- used after fork, async-signal-safe ---- */

/* Creates the keeper in its new namespaces (fork semantics). */
pid_t px_sandbox_clone(const px_sandbox *sb);
/* In the forker, once: each root slot's base root (sandbox.c says why);
 * how many it built. */
int px_sandbox_prebuild(void);
/* The clone flags of its namespaces (0: none). */
unsigned long px_sandbox_ns_flags(const px_sandbox *sb);
/* In the keeper, before the stage is forked: the user namespace's maps,
 * the new root (then pivot_root), hostname, lo up. 0 or -1 (errno). */
int px_sandbox_keeper(const px_sandbox *sb, const px_plan *p);
/* In the keeper at the end: kill everything in the pid namespace. */
void px_sandbox_kill_all(void);
/* In the stage, before the uid drop: drop the capability bounding set. */
int px_sandbox_drop_bounding(const px_sandbox *sb);
/* In the stage, last before execve: no capabilities, the seccomp filter. */
int px_sandbox_lock(const px_sandbox *sb);

#endif
