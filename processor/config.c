/*
 * config.c — corral-processor's configuration.
 *
 * Every setting has a flag and a CORRAL_* environment variable (the flag
 * wins), so the same binary is configured by s6 run scripts, container
 * environments and the command line alike. The table below is the one
 * place that lists them: parsing and --help both read it.
 */
#include "conf.h"
#include "processor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { O_LISTEN, O_RUNTIME, O_STATE, O_SLOTS, O_UID, O_NOTIFY, O_DRAIN, O_NAME,
       O_MAXMSG, O_LIM, O_MAXLIM, O_CLIM, O_MAXCLIM, O_MAXFILES, O_MAXFILE,
       O_MAXTOTAL, O_ISO, O_MINISO, O_TMP, O_WORKDIR, O_VERSION, O_PREWARM, O_IPCMODE, O_ZYGOTE, O_SECRET, O_UNENF, O_N };

static const struct opt {
	const char *flag, *env, *arg, *help;
} opts[O_N] = {
	[O_LISTEN] = { "--listen", "CORRAL_LISTEN", "URL",
	               "nng URL to listen on, tcp:// or ipc://; repeatable (env: space separated) "
	               "[tcp://127.0.0.1:7070]" },
	[O_RUNTIME] = { "--runtime-dir", "CORRAL_RUNTIME_DIR", "DIR",
	                "the runtime: runtime.sh, runtime.conf, optional compile.sh (required)" },
	[O_STATE] = { "--state-dir", "CORRAL_STATE_DIR", "DIR",
	              "private dir for work dirs and the staged runtime; emptied at start. "
	              "Made when absent; when it exists it must be a real folder (not a "
	              "symlink) owned by the worker's uid and not writable by group or "
	              "others, or the worker refuses to start "
	              "[a new $TMPDIR/corral.<pid>.XXXXXX, made by mkdtemp]" },
	[O_SLOTS] = { "--slots", "CORRAL_SLOTS", "N", "invocations at once [number of CPUs]" },
	[O_UID] = { "--uid-base", "CORRAL_UID_BASE", "UID",
	            "when root, slot i runs as uid UID+i, gid UID+i [60000]" },
	[O_NOTIFY] = { "--notify-fd", "CORRAL_NOTIFY_FD", "FD",
	               "write a newline to FD once listening (s6 readiness) [none]" },
	[O_DRAIN] = { "--drain-ms", "CORRAL_DRAIN_MS", "MS",
	              "on SIGTERM, how long running invocations may finish [30000]" },
	[O_NAME] = { "--name", "CORRAL_NAME", "NAME", "worker name in replies [hostname]" },
	[O_MAXMSG] = { "--max-message", "CORRAL_MAX_MESSAGE", "BYTES",
	               "largest request nng accepts; larger ones drop the connection [64M]" },
	[O_LIM] = { "--limits", "CORRAL_LIMITS", "K=V,...",
	            "default run limits [wall_ms=10000,cpu_ms=10000,memory_bytes=256M,"
	            "pids=64,output_bytes=1M,file_bytes=16M]" },
	[O_MAXLIM] = { "--max-limits", "CORRAL_MAX_LIMITS", "K=V,...",
	               "maximum run limits a request may ask [wall_ms=60000,cpu_ms=60000,"
	               "memory_bytes=1G,pids=256,output_bytes=16M,file_bytes=256M]" },
	[O_CLIM] = { "--compile-limits", "CORRAL_COMPILE_LIMITS", "K=V,...",
	             "default compile limits [wall_ms=30000,cpu_ms=30000,memory_bytes=512M,"
	             "pids=64,output_bytes=1M,file_bytes=64M]" },
	[O_MAXCLIM] = { "--max-compile-limits", "CORRAL_MAX_COMPILE_LIMITS", "K=V,...",
	                "maximum compile limits [wall_ms=120000,cpu_ms=120000,"
	                "memory_bytes=2G,pids=256,output_bytes=16M,file_bytes=512M]" },
	[O_MAXFILES] = { "--max-files", "CORRAL_MAX_FILES", "N", "files in a request [256]" },
	[O_MAXFILE] = { "--max-file-bytes", "CORRAL_MAX_FILE_BYTES", "BYTES",
	                "one file of a request [8M]" },
	[O_MAXTOTAL] = { "--max-request-bytes", "CORRAL_MAX_REQUEST_BYTES", "BYTES",
	                 "all files plus stdin of a request [16M]" },
	[O_ISO] = { "--isolation", "CORRAL_ISOLATION", "LEVEL",
	            "sandbox level: auto (the best the kernel allows), none, seccomp, "
	            "namespaces or full; see docs/isolation.md [auto]" },
	[O_MINISO] = { "--min-isolation", "CORRAL_MIN_ISOLATION", "LEVEL",
	               "refuse to start below this level [none]" },
	[O_TMP] = { "--tmp-bytes", "CORRAL_TMP_BYTES", "BYTES",
	            "size of each run's private /tmp (namespace levels) [64M]" },
	[O_WORKDIR] = { "--workdir-bytes", "CORRAL_WORKDIR_BYTES", "BYTES",
	                "as root, put each slot's work dirs on a tmpfs of this size [off]" },
	[O_VERSION] = { "--runtime-version", "CORRAL_RUNTIME_VERSION", "VERSION",
	                "the runtime's version, instead of running runtime.conf's version "
	                "command at every start (faster restarts) [run it]" },
	[O_PREWARM] = { "--prewarm", "CORRAL_PREWARM", "on|off",
	                "prewarmed one-shot sandboxes: each slot keeps its next sandbox started "
	                "with the runtime's warm.sh waiting in it (docs/runtimes.md, \"warm\"); "
	                "a runtime without warm.sh runs cold [off]" },
	[O_ZYGOTE] = { "--zygote", "CORRAL_ZYGOTE", "on|off|auto",
	               "fork server: one interpreter per worker forks a child per run, which "
	               "enters the run's own sandbox first (docs/runtimes.md, \"zygote\"); "
	               "needs a runtime with zygote.sh and level namespaces or full (on: the "
	               "worker refuses to start without; auto: off then, and logged); with "
	               "--prewarm on, the prewarmed sandboxes hold the server's children [off]" },
	[O_SECRET] = { "--secret-file", "CORRAL_SECRET_FILE", "PATH",
	               "shared secret (16 to 4096 bytes; surrounding whitespace dropped) that "
	               "every request must be signed with: HMAC-SHA256 with a timestamp and a "
	               "nonce (docs/protocol.md, \"Authentication\"); others get `unauthorized` "
	               "and nothing runs. Give the gateway and the corral CLI the same file "
	               "[none: requests are not authenticated]" },
	[O_UNENF] = { "--unenforced-limits", "CORRAL_UNENFORCED_LIMITS", "LIST",
	              "limits the operator accepts unenforced where this worker cannot "
	              "enforce them (memory, pids, or memory,pids; docs/isolation.md, \"What "
	              "each limit means\"): without, runs that set such a limit are refused "
	              "with `bad_request` [none]" },
	[O_IPCMODE] = { "--ipc-permissions", "CORRAL_IPC_PERMISSIONS", "MODE",
	                "octal file mode of ipc:// sockets, e.g. 0660 so that a non-root "
	                "gateway in the socket's group can connect [nng's default]" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: corral-processor --runtime-dir DIR [options]\n\n"
	           "Serves invocations of one runtime over nng (wire protocol v1, "
	           "docs/protocol.md).\nEach option can also be set by the environment "
	           "variable shown.\n\n");
	for (int i = 0; i < O_N; i++)
		fprintf(f, "  %s %s\n      %s\n      (env %s)\n", opts[i].flag, opts[i].arg,
		        opts[i].help, opts[i].env);
	fprintf(f, "  --help\n      this text\n\nSignals: SIGTERM/SIGINT drain and exit 0.\n");
}

static void defaults(pr_config *c)
{
	memset(c, 0, sizeof *c);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	c->slots = n > 0 ? (int)n : 1;
	c->uid_base = geteuid() == 0 ? 60000 : -1;
	c->notify_fd = -1;
	c->ipc_mode = -1;
	c->drain_ms = 30000;
	c->max_message = 64u << 20;
	c->caps = cr_caps_default;
	if (gethostname(c->name, sizeof c->name - 1) != 0)
		strcpy(c->name, "worker");
	c->run_default = (cr_limits){ 10000, 10000, 256 << 20, 64, 1 << 20, 16 << 20 };
	c->run_max = (cr_limits){ 60000, 60000, 1 << 30, 256, 16 << 20, 256 << 20 };
	c->compile_default = (cr_limits){ 30000, 30000, 512 << 20, 64, 1 << 20, 64 << 20 };
	c->compile_max = (cr_limits){ 120000, 120000, 2LL << 30, 256, 16 << 20, 512 << 20 };
}

static int bad(int o, const char *val, const char *why)
{
	fprintf(stderr, "corral-processor: %s (%s) '%s': %s\n", opts[o].flag, opts[o].env,
	        val, why);
	return -1;
}

static int set_int(int o, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
	if (cr_parse_size(v, out) || *out < lo || *out > hi) {
		char why[96];
		snprintf(why, sizeof why, "expected a number from %lld to %lld", (long long)lo,
		         (long long)hi);
		return bad(o, v, why);
	}
	return 0;
}

static int add_listen(pr_config *c, const char *v)
{
	if (c->nlisten == PR_MAX_LISTEN)
		return bad(O_LISTEN, v, "too many listen URLs");
	if (strncmp(v, "tcp://", 6) && strncmp(v, "ipc://", 6))
		return bad(O_LISTEN, v, "expected tcp://HOST:PORT or ipc:///PATH");
	c->listen[c->nlisten++] = v;
	return 0;
}

/* "memory", "pids", "memory,pids" (or empty: none). */
static int parse_unenforced(pr_config *c, int o, const char *v)
{
	char buf[64], *save = NULL;
	if (strlen(v) >= sizeof buf)
		return bad(o, v, "expected memory, pids or memory,pids");
	snprintf(buf, sizeof buf, "%s", v);
	c->unenforced_memory = c->unenforced_pids = false;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "memory"))
			c->unenforced_memory = true;
		else if (!strcmp(t, "pids"))
			c->unenforced_pids = true;
		else
			return bad(o, v, "expected memory, pids or memory,pids");
	}
	return 0;
}

static int apply(pr_config *c, int o, const char *v)
{
	int64_t n;
	char err[256];
	cr_limits *lims[] = { &c->run_default, &c->run_max, &c->compile_default,
		              &c->compile_max };
	switch (o) {
	case O_LISTEN: return add_listen(c, v);
	case O_RUNTIME: c->runtime_dir = v; return 0;
	case O_STATE: c->state_dir = v; return 0;
	case O_SECRET: c->secret_file = v; return 0;
	case O_SLOTS:
		if (set_int(o, v, 1, 1024, &n)) return -1;
		c->slots = (int)n; return 0;
	case O_UID:
		if (set_int(o, v, 1, 0x7fff0000, &n)) return -1;
		c->uid_base = geteuid() == 0 ? (int)n : -1; return 0;
	case O_NOTIFY:
		if (set_int(o, v, 0, 1 << 20, &n)) return -1;
		c->notify_fd = (int)n; return 0;
	case O_DRAIN: return set_int(o, v, 0, 3600000, &c->drain_ms);
	case O_NAME: snprintf(c->name, sizeof c->name, "%s", v); return 0;
	case O_MAXMSG:
		if (set_int(o, v, 1024, 1LL << 31, &n)) return -1;
		c->max_message = (size_t)n; return 0;
	case O_MAXFILES:
		if (set_int(o, v, 1, 65536, &n)) return -1;
		c->caps.max_files = (size_t)n; return 0;
	case O_MAXFILE:
		if (set_int(o, v, 1, 1LL << 31, &n)) return -1;
		c->caps.max_file_bytes = (size_t)n; return 0;
	case O_MAXTOTAL:
		if (set_int(o, v, 1, 1LL << 31, &n)) return -1;
		c->caps.max_total_bytes = (size_t)n; return 0;
	case O_ISO: case O_MINISO: {
		static const char *const levels[] = { "auto", "none", "seccomp", "namespaces", "full" };
		for (size_t i = o == O_ISO ? 0 : 1; i < sizeof levels / sizeof *levels; i++)
			if (strcmp(v, levels[i]) == 0) {
				*(o == O_ISO ? &c->isolation : &c->min_isolation) = levels[i];
				return 0;
			}
		return bad(o, v, o == O_ISO ? "expected auto, none, seccomp, namespaces or full"
		                            : "expected none, seccomp, namespaces or full");
	}
	case O_TMP: return set_int(o, v, 1 << 20, 1LL << 40, &c->tmp_bytes);
	case O_WORKDIR: return set_int(o, v, 1 << 20, 1LL << 40, &c->workdir_bytes);
	case O_IPCMODE: {
		char *end;
		long m = strtol(v, &end, 8);
		if (!*v || *end || m < 0 || m > 0777)
			return bad(o, v, "expected an octal mode such as 0660");
		c->ipc_mode = (int)m;
		return 0;
	}
	case O_VERSION:
		if (!*v || strlen(v) >= 64 || strpbrk(v, "\t\n\r"))
			return bad(o, v, "expected one line of under 64 characters");
		c->runtime_version = v; return 0;
	case O_PREWARM:
		if (strcmp(v, "on") && strcmp(v, "off"))
			return bad(o, v, "expected on or off");
		c->prewarm = strcmp(v, "on") == 0; return 0;
	case O_UNENF: return parse_unenforced(c, o, v);
	case O_ZYGOTE:
		if (strcmp(v, "on") && strcmp(v, "off") && strcmp(v, "auto"))
			return bad(o, v, "expected on, off or auto");
		c->zygote = strcmp(v, "off") != 0;
		c->zygote_auto = strcmp(v, "auto") == 0; return 0;
	default:
		if (cr_parse_limits(v, lims[o - O_LIM], err, sizeof err))
			return bad(o, v, err);
		return 0;
	}
}

/* Environment first, so that flags override it. */
static int load_env(pr_config *c)
{
	for (int o = 0; o < O_N; o++) {
		const char *v = cr_env(opts[o].env);
		if (!v)
			continue;
		if (o == O_LISTEN) {
			static char buf[4096];
			snprintf(buf, sizeof buf, "%s", v);
			char *save = NULL;
			for (char *t = strtok_r(buf, " ,", &save); t; t = strtok_r(NULL, " ,", &save))
				if (add_listen(c, t))
					return -1;
		} else if (apply(c, o, v)) {
			return -1;
		}
	}
	return 0;
}

static int check(pr_config *c)
{
	if (!c->runtime_dir) {
		fprintf(stderr, "corral-processor: --runtime-dir (CORRAL_RUNTIME_DIR) is required; "
		                "see --help\n");
		return -1;
	}
	for (int i = 0; i < CR_NLIMITS; i++) {
		if (cr_limit_get(&c->run_default, i) > cr_limit_get(&c->run_max, i) ||
		    cr_limit_get(&c->compile_default, i) > cr_limit_get(&c->compile_max, i)) {
			fprintf(stderr, "corral-processor: default %s is above its maximum\n",
			        cr_limit_name(i));
			return -1;
		}
	}
	if (c->nlisten == 0)
		c->listen[c->nlisten++] = "tcp://127.0.0.1:7070";
	char err[512];
	if (c->secret_file && !(c->auth = cr_auth_load(c->secret_file, err, sizeof err))) {
		fprintf(stderr, "corral-processor: --secret-file (CORRAL_SECRET_FILE): %s\n", err);
		return -1;
	}
	return 0;
}

int pr_config_load(pr_config *c, int argc, char **argv)
{
	defaults(c);
	if (load_env(c))
		return -1;
	bool env_listen = c->nlisten > 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 1;
		}
		int o;
		for (o = 0; o < O_N && strcmp(argv[i], opts[o].flag) != 0; o++)
			;
		if (o == O_N) {
			fprintf(stderr, "corral-processor: unknown option '%s'; see --help\n", argv[i]);
			return -1;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "corral-processor: %s needs a value (%s)\n", opts[o].flag,
			        opts[o].arg);
			return -1;
		}
		if (o == O_LISTEN && env_listen) { /* flags replace the env's list */
			c->nlisten = 0;
			env_listen = false;
		}
		if (apply(c, o, argv[++i]))
			return -1;
	}
	return check(c);
}

int pr_limits_resolve(const cr_limits *asked, const cr_limits *def, const cr_limits *max,
                      const char *what, cr_limits *out, char *err, size_t errlen)
{
	for (int i = 0; i < CR_NLIMITS; i++) {
		int64_t v = cr_limit_get(asked, i);
		if (v == CR_UNSET)
			v = cr_limit_get(def, i);
		if (v > cr_limit_get(max, i)) {
			snprintf(err, errlen, "%s.%s: %lld is above this worker's maximum %lld", what,
			         cr_limit_name(i), (long long)v, (long long)cr_limit_get(max, i));
			return -1;
		}
		*cr_limit_ref(out, i) = v;
	}
	return 0;
}
