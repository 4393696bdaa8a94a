/*
 * processor.h — internals of corral-processor (not a public API).
 *
 * The program is four subsystems, one file each:
 *   config.c   flags and CORRAL_* environment -> pr_config
 *   runtime.c  the runtime dir: runtime.conf metadata, version, staging
 *   slots.c    N slot threads; each runs one invocation at a time through
 *              the proxy; cancel by id; busy/draining accounting
 *   server.c   the nng REP socket: a pool of contexts decodes requests,
 *              answers ping/info/cancel at once and hands runs to slots
 * main.c wires them together and owns signals, readiness and drain.
 */
#ifndef PR_PROCESSOR_H
#define PR_PROCESSOR_H

#include "auth.h"
#include "proxy.h"
#include "wire.h"

#include <stdbool.h>
#include <stddef.h>

#define PR_MAX_LISTEN 16

typedef struct pr_config {
	const char *listen[PR_MAX_LISTEN];
	int nlisten;
	const char *runtime_dir; /* as given */
	const char *state_dir;   /* NULL: mkdtemp $TMPDIR/corral.<pid>.XXXXXX */
	int slots;
	int uid_base; /* -1: no uid drop */
	int notify_fd;
	int64_t drain_ms;
	char name[128];
	size_t max_message;
	cr_caps caps;
	cr_limits run_default, run_max;
	cr_limits compile_default, compile_max;
	const char *isolation;     /* NULL: auto */
	const char *min_isolation; /* NULL: none */
	int64_t tmp_bytes;
	int64_t workdir_bytes;
	const char *runtime_version; /* NULL: run runtime.conf's command */
	int ipc_mode;                /* ipc:// socket file mode; -1: nng's */
	bool prewarm;                /* --prewarm on */
	bool zygote;                 /* --zygote on (or auto) */
	bool zygote_auto;            /* --zygote auto: on where the runtime and level allow */
	bool unenforced_memory;      /* --unenforced-limits: accepted unenforced */
	bool unenforced_pids;
	const char *secret_file;     /* --secret-file */
	cr_auth *auth;               /* its secret; NULL: requests are not authenticated */
} pr_config;

/* config.c: 0 to run, 1 when --help was printed, -1 on a bad flag. */
int pr_config_load(pr_config *cfg, int argc, char **argv);

typedef struct pr_runtime {
	char name[64];
	char version[64];
	char aliases[256]; /* space separated */
	bool compiled;
	char staged_dir[4096]; /* copy readable by the slot uids */
} pr_runtime;

/* runtime.c */
int pr_runtime_load(pr_runtime *rt, const char *dir, const char *state_dir,
                    const char *version, char *err, size_t errlen);

/* The limits of a stage: absent ones take defaults, none may pass max.
 * 0, or -1 with a bad_request message. */
int pr_limits_resolve(const cr_limits *asked, const cr_limits *def, const cr_limits *max,
                      const char *what, cr_limits *out, char *err, size_t errlen);

/* slots.c — a run handed to a slot; done() is called on the slot thread
 * with the reply bytes (msgpack) once it ran. */
typedef struct pr_job pr_job;
typedef void (*pr_done_fn)(void *arg, const char *reply, size_t len);

int pr_slots_start(const pr_config *cfg, const pr_runtime *rt);
/* Takes ownership of req and returns 0, or refuses it (req not taken):
 * no slot free / draining, or a run with the same id is running here. */
#define PR_SUBMIT_BUSY (-1)
#define PR_SUBMIT_DUPLICATE (-2)
int pr_slots_submit(cr_request *req, pr_done_fn done, void *arg);
/* true when a run with that id was found (and is being stopped). */
bool pr_slots_cancel(const char *id);
void pr_slots_cancel_all(void);
int pr_slots_busy(void);
/* Slots out of service (their cleanup failed; slots.c): how many, and
 * the `info` list of them, [{slot, error}]. */
int pr_slots_out(void);
void pr_slots_pack_out(msgpack_packer *pk);
void pr_slots_set_draining(bool on);
bool pr_slots_draining(void);
void pr_slots_stop(void);

/* server.c */
int pr_server_start(const pr_config *cfg, const pr_runtime *rt);
void pr_server_stop(void);
/* Runs accepted whose reply has not left yet (drain waits for 0). */
int pr_server_inflight(void);
/* "host/slot" names used in replies. */
void pr_worker_name(char *buf, size_t n, int slot);

#endif
