/*
 * gw_config.c — the gateway's flags and their CORRAL_* environment twins.
 *
 * Every flag can also come from the environment (handy under s6 and in
 * Kubernetes); a flag given on the command line wins over its variable.
 * List-valued settings (listen, workers, discover, cors) accumulate when
 * repeated and accept comma- or space-separated values. Everything is
 * validated here, before any socket is opened, with a message naming
 * the flag at fault; the API-keys file is read here too.
 *
 * API-keys file: one key per line; leading and trailing spaces and tabs
 * (and a CR) are not part of it; blank lines are skipped, and a line
 * whose first non-blank character is `#` is a comment. Anywhere else `#`
 * is part of the key. A key is printable ASCII without spaces (the rest
 * of a line is never a comment), at most GW_KEY_MAX bytes: any other line
 * is an error naming its number, never cut or split into keys.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "conf.h"

gw_config gw_cfg = {
	.discover_ms = 5000,
	.max_body = 8u << 20,
	.race = 2,
	.hedge_ms = -1,
	.hedge_budget = 10,
	.queue = 128,
	.queue_ms = 10000,
	.retries = 2,
	.ping_ms = 500,
	.ping_timeout_ms = 1000,
	.slack_ms = 5000,
	.body_timeout_ms = 10000,
	.header_timeout_ms = 10000,
	.idle_timeout_ms = 60000,
	.max_connections = 1024,
	.max_header_bytes = 16u << 10,
	.max_reply = 256u << 20,
	.drain_ms = 15000,
	.notify_fd = -1,
};

static const char usage[] =
"usage: corral-gateway [options]\n"
"\n"
"HTTP/JSON front of corral: POST /v1/run, GET /v1/runtimes, the Piston v2\n"
"routes (/api/v2/execute, /api/v2/runtimes), /healthz, /readyz, /metrics.\n"
"Each option can also be set by the environment variable shown.\n"
"\n"
"  --listen URL          http://HOST:PORT to serve (repeatable)      CORRAL_GW_LISTEN\n"
"                        default http://127.0.0.1:8080\n"
"  --workers RT=URL,...  static workers of runtime RT: tcp:// or ipc:// nng\n"
"                        URLs (repeatable; the worker's own info decides the\n"
"                        runtime it serves, RT is a label)       CORRAL_GW_WORKERS\n"
"                        (in the variable, groups separated by spaces:\n"
"                        'python=tcp://a:7070,tcp://b:7070 c=tcp://c:7070')\n"
"  --discover dns://NAME:PORT  resolve NAME periodically, one worker per\n"
"                        address (e.g. a Kubernetes headless service)\n"
"                        (repeatable)                            CORRAL_GW_DISCOVER\n"
"  --discover-ms MS      DNS re-resolution period (5000)         CORRAL_GW_DISCOVER_MS\n"
"  --max-body BYTES      largest request body, K/M/G suffixes (8M) CORRAL_GW_MAX_BODY\n"
"  --max-inflight-bodies BYTES  request bodies held at once; past it 503\n"
"                        (default 8 x --max-body)     CORRAL_GW_MAX_INFLIGHT_BODIES\n"
"  --cors-origins LIST   origins allowed by CORS, comma separated, or *\n"
"                        (default: none)                         CORRAL_GW_CORS_ORIGINS\n"
"  --api-keys FILE       require Authorization: Bearer KEY, one key per line\n"
"                        (a line starting with # is a comment)   CORRAL_GW_API_KEYS\n"
"  --insecure-no-auth    allow listening beyond loopback without API keys\n"
"                                                                CORRAL_GW_INSECURE_NO_AUTH=1\n"
"  --race N              default race width, 1 or 2 (2)          CORRAL_GW_RACE\n"
"  --hedge-ms MS|auto    default to hedged mode: second worker only after MS\n"
"                        without a reply (auto: the runtime's observed p95)\n"
"                        (default: off, plain racing)            CORRAL_GW_HEDGE_MS\n"
"  --hedge-budget PCT    hedges sent for at most PCT% of hedged-mode\n"
"                        invocations, bursts of 10 aside (10)     CORRAL_GW_HEDGE_BUDGET\n"
"  --queue N             invocations that may wait for a slot, per runtime\n"
"                        (128); past it 429                      CORRAL_GW_QUEUE\n"
"  --queue-ms MS         longest wait for a slot before 503 (10000) CORRAL_GW_QUEUE_MS\n"
"  --retries N           extra attempts after the racers failed (2) CORRAL_GW_RETRIES\n"
"  --ping-ms MS          health ping period (500)                CORRAL_GW_PING_MS\n"
"  --ping-timeout-ms MS  a ping unanswered this long ejects (1000) CORRAL_GW_PING_TIMEOUT_MS\n"
"  --deadline-slack-ms MS  deadline = compile+run wall limits + this (5000)\n"
"                                                                CORRAL_GW_DEADLINE_SLACK_MS\n"
"  --body-timeout-ms MS  time allowed to receive a body (10000)  CORRAL_GW_BODY_TIMEOUT_MS\n"
"  --header-timeout-ms MS  time allowed to receive a request's whole head\n"
"                        (request line and headers); past it 408 and the\n"
"                        connection is closed (10000)      CORRAL_GW_HEADER_TIMEOUT_MS\n"
"  --idle-timeout-ms MS  a kept-alive connection without a request is closed\n"
"                        after this (60000; whole seconds)   CORRAL_GW_IDLE_TIMEOUT_MS\n"
"  --max-connections N   client connections at once; past it new ones wait\n"
"                        in the listen queue until one closes (1024)\n"
"                                                                CORRAL_GW_MAX_CONNECTIONS\n"
"  --max-header-bytes BYTES  largest request head (request line and headers);\n"
"                        past it 431 (16K)                   CORRAL_GW_MAX_HEADER_BYTES\n"
"  --max-reply BYTES     largest worker reply accepted (256M)    CORRAL_GW_MAX_REPLY\n"
"  --secret-file PATH    sign every request to the workers with this shared\n"
"                        secret (HMAC-SHA256, timestamp, nonce); the workers\n"
"                        get the same file (docs/protocol.md, \"Authentication\")\n"
"                        (default: unsigned)   CORRAL_GW_SECRET_FILE or CORRAL_SECRET_FILE\n"
"  --drain-ms MS         on SIGTERM, wait this long for in-flight requests\n"
"                        (15000)                                 CORRAL_GW_DRAIN_MS\n"
"  --notify-fd N         write \"\\n\" to fd N once listening (s6 readiness)\n"
"  --help                this text\n";

/* Appends each comma/space separated item of v to *list. */
static int add_items(char ***list, size_t *n, const char *v)
{
	char *copy = strdup(v), *save = NULL;
	if (!copy)
		return -1;
	for (char *t = strtok_r(copy, ", \t\n", &save); t; t = strtok_r(NULL, ", \t\n", &save)) {
		char **nl = realloc(*list, (*n + 1) * sizeof(**list));
		if (!nl || !(nl[*n] = strdup(t))) {
			free(copy);
			return -1;
		}
		*list = nl;
		(*n)++;
	}
	free(copy);
	return 0;
}

static void free_items(char **list, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free(list[i]);
	*n = 0;
}

/* "python=tcp://a:1,tcp://b:2": a label, then URLs; all or nothing. */
static int add_workers(const char *v)
{
	const char *eq = strchr(v, '=');
	if (!eq || eq == v) {
		fprintf(stderr, "corral-gateway: --workers wants RUNTIME=URL[,URL...], got '%s'\n", v);
		return -1;
	}
	char **urls = NULL;
	size_t nurls = 0, i;
	int rc = -1;
	if (add_items(&urls, &nurls, eq + 1) < 0 || nurls == 0) {
		fprintf(stderr, "corral-gateway: --workers '%s' lists no URL\n", v);
		goto out;
	}
	for (i = 0; i < nurls; i++) {
		if (strncmp(urls[i], "tcp://", 6) && strncmp(urls[i], "ipc://", 6)) {
			fprintf(stderr, "corral-gateway: worker URL '%s' is not tcp:// or ipc://\n", urls[i]);
			goto out;
		}
	}
	gw_static_worker *nw = realloc(gw_cfg.workers, (gw_cfg.nworkers + nurls) * sizeof(*nw));
	if (!nw)
		goto out;
	gw_cfg.workers = nw;
	for (i = 0; i < nurls; i++) {
		nw[gw_cfg.nworkers].runtime = strndup(v, (size_t)(eq - v));
		nw[gw_cfg.nworkers].url = urls[i];
		urls[i] = NULL; /* now the config's */
		gw_cfg.nworkers++;
	}
	rc = 0;
out:
	free_items(urls, &nurls);
	free(urls);
	return rc;
}

static int set_int(const char *flag, const char *v, int64_t min, int64_t max, int *out)
{
	int64_t x;
	bool neg = v[0] == '-';
	if (cr_parse_int(neg ? v + 1 : v, &x) < 0 || (x = neg ? -x : x) < min || x > max) {
		fprintf(stderr, "corral-gateway: %s wants an integer in [%lld, %lld], got '%s'\n",
		        flag, (long long)min, (long long)max, v);
		return -1;
	}
	*out = (int)x;
	return 0;
}

static int set_size(const char *flag, const char *v, size_t *out)
{
	int64_t x;
	if (cr_parse_size(v, &x) < 0 || x == 0 || (uint64_t)x > SIZE_MAX) {
		fprintf(stderr, "corral-gateway: %s wants a size like 8M, got '%s'\n", flag, v);
		return -1;
	}
	*out = (size_t)x;
	return 0;
}

static int set_bounded_size(const char *flag, const char *v, size_t min, size_t max, size_t *out)
{
	if (set_size(flag, v, out) < 0)
		return -1;
	if (*out < min || *out > max) {
		fprintf(stderr, "corral-gateway: %s wants a size in [%zu, %zu], got '%s'\n", flag, min,
		        max, v);
		return -1;
	}
	return 0;
}

static int set_hedge(const char *v)
{
	if (!strcmp(v, "auto")) {
		gw_cfg.hedge_ms = 0;
		return 0;
	}
	if (!strcmp(v, "off")) {
		gw_cfg.hedge_ms = -1;
		return 0;
	}
	return set_int("--hedge-ms", v, 1, 3600000, &gw_cfg.hedge_ms);
}

enum {
	O_LISTEN = 256, O_WORKERS, O_DISCOVER, O_DISCOVER_MS, O_MAX_BODY, O_CORS,
	O_KEYS, O_NOAUTH, O_RACE, O_HEDGE, O_HEDGE_BUDGET, O_QUEUE, O_QUEUE_MS, O_RETRIES,
	O_PING, O_PING_TO, O_SLACK, O_BODY_TO, O_MAX_REPLY, O_DRAIN, O_NOTIFY, O_SECRET,
	O_MAX_INFLIGHT, O_HEADER_TO, O_IDLE_TO, O_MAX_CONNS, O_MAX_HEADER,
	O_HELP
};

static const struct option opts[] = {
	{ "listen", 1, 0, O_LISTEN }, { "workers", 1, 0, O_WORKERS },
	{ "discover", 1, 0, O_DISCOVER }, { "discover-ms", 1, 0, O_DISCOVER_MS },
	{ "max-body", 1, 0, O_MAX_BODY }, { "cors-origins", 1, 0, O_CORS },
	{ "api-keys", 1, 0, O_KEYS }, { "insecure-no-auth", 0, 0, O_NOAUTH },
	{ "race", 1, 0, O_RACE }, { "hedge-ms", 1, 0, O_HEDGE },
	{ "hedge-budget", 1, 0, O_HEDGE_BUDGET },
	{ "queue", 1, 0, O_QUEUE }, { "queue-ms", 1, 0, O_QUEUE_MS },
	{ "retries", 1, 0, O_RETRIES }, { "ping-ms", 1, 0, O_PING },
	{ "ping-timeout-ms", 1, 0, O_PING_TO }, { "deadline-slack-ms", 1, 0, O_SLACK },
	{ "body-timeout-ms", 1, 0, O_BODY_TO }, { "max-reply", 1, 0, O_MAX_REPLY },
	{ "drain-ms", 1, 0, O_DRAIN }, { "notify-fd", 1, 0, O_NOTIFY },
	{ "secret-file", 1, 0, O_SECRET }, { "max-inflight-bodies", 1, 0, O_MAX_INFLIGHT },
	{ "header-timeout-ms", 1, 0, O_HEADER_TO }, { "idle-timeout-ms", 1, 0, O_IDLE_TO },
	{ "max-connections", 1, 0, O_MAX_CONNS }, { "max-header-bytes", 1, 0, O_MAX_HEADER },
	{ "help", 0, 0, O_HELP }, { 0, 0, 0, 0 }
};

/* Environment twins, applied first so that flags override them. */
static const struct { int opt; const char *var; } envs[] = {
	{ O_LISTEN, "CORRAL_GW_LISTEN" }, { O_WORKERS, "CORRAL_GW_WORKERS" },
	{ O_DISCOVER, "CORRAL_GW_DISCOVER" }, { O_DISCOVER_MS, "CORRAL_GW_DISCOVER_MS" },
	{ O_MAX_BODY, "CORRAL_GW_MAX_BODY" }, { O_CORS, "CORRAL_GW_CORS_ORIGINS" },
	{ O_KEYS, "CORRAL_GW_API_KEYS" }, { O_NOAUTH, "CORRAL_GW_INSECURE_NO_AUTH" },
	{ O_RACE, "CORRAL_GW_RACE" }, { O_HEDGE, "CORRAL_GW_HEDGE_MS" },
	{ O_HEDGE_BUDGET, "CORRAL_GW_HEDGE_BUDGET" },
	{ O_QUEUE, "CORRAL_GW_QUEUE" }, { O_QUEUE_MS, "CORRAL_GW_QUEUE_MS" },
	{ O_RETRIES, "CORRAL_GW_RETRIES" }, { O_PING, "CORRAL_GW_PING_MS" },
	{ O_PING_TO, "CORRAL_GW_PING_TIMEOUT_MS" }, { O_SLACK, "CORRAL_GW_DEADLINE_SLACK_MS" },
	{ O_BODY_TO, "CORRAL_GW_BODY_TIMEOUT_MS" }, { O_MAX_REPLY, "CORRAL_GW_MAX_REPLY" },
	{ O_DRAIN, "CORRAL_GW_DRAIN_MS" }, { O_MAX_INFLIGHT, "CORRAL_GW_MAX_INFLIGHT_BODIES" },
	{ O_HEADER_TO, "CORRAL_GW_HEADER_TIMEOUT_MS" }, { O_IDLE_TO, "CORRAL_GW_IDLE_TIMEOUT_MS" },
	{ O_MAX_CONNS, "CORRAL_GW_MAX_CONNECTIONS" }, { O_MAX_HEADER, "CORRAL_GW_MAX_HEADER_BYTES" },
	{ O_SECRET, "CORRAL_SECRET_FILE" }, { O_SECRET, "CORRAL_GW_SECRET_FILE" }, /* GW wins */
};

static int apply(int opt, const char *v)
{
	switch (opt) {
	case O_LISTEN: return add_items(&gw_cfg.listen, &gw_cfg.nlisten, v);
	case O_WORKERS: {
		/* env form: several RT=URLS groups separated by spaces/semicolons */
		char *copy = strdup(v), *save = NULL;
		int rc = 0;
		for (char *t = strtok_r(copy, " ;\t\n", &save); t && !rc; t = strtok_r(NULL, " ;\t\n", &save))
			rc = add_workers(t);
		free(copy);
		return rc;
	}
	case O_DISCOVER:
		if (strncmp(v, "dns://", 6) || !strrchr(v + 6, ':')) {
			fprintf(stderr, "corral-gateway: --discover wants dns://NAME:PORT, got '%s'\n", v);
			return -1;
		}
		return add_items(&gw_cfg.discover, &gw_cfg.ndiscover, v);
	case O_DISCOVER_MS: return set_int("--discover-ms", v, 100, 3600000, &gw_cfg.discover_ms);
	case O_MAX_BODY: return set_size("--max-body", v, &gw_cfg.max_body);
	case O_CORS: return add_items(&gw_cfg.cors, &gw_cfg.ncors, v);
	case O_KEYS: free(gw_cfg.api_keys_file); gw_cfg.api_keys_file = strdup(v); return 0;
	case O_NOAUTH: gw_cfg.insecure_no_auth = !v || strcmp(v, "0"); return 0;
	case O_RACE: return set_int("--race", v, 1, 2, &gw_cfg.race);
	case O_HEDGE: return set_hedge(v);
	case O_HEDGE_BUDGET: return set_int("--hedge-budget", v, 1, 100, &gw_cfg.hedge_budget);
	case O_QUEUE: return set_int("--queue", v, 0, 1000000, &gw_cfg.queue);
	case O_QUEUE_MS: return set_int("--queue-ms", v, 0, 3600000, &gw_cfg.queue_ms);
	case O_RETRIES: return set_int("--retries", v, 0, 16, &gw_cfg.retries);
	case O_PING: return set_int("--ping-ms", v, 50, 60000, &gw_cfg.ping_ms);
	case O_PING_TO: return set_int("--ping-timeout-ms", v, 50, 60000, &gw_cfg.ping_timeout_ms);
	case O_SLACK: return set_int("--deadline-slack-ms", v, 0, 3600000, &gw_cfg.slack_ms);
	case O_BODY_TO: return set_int("--body-timeout-ms", v, 100, 3600000, &gw_cfg.body_timeout_ms);
	case O_MAX_REPLY: return set_size("--max-reply", v, &gw_cfg.max_reply);
	case O_DRAIN: return set_int("--drain-ms", v, 0, 3600000, &gw_cfg.drain_ms);
	case O_NOTIFY: return set_int("--notify-fd", v, 0, 65535, &gw_cfg.notify_fd);
	case O_SECRET: free(gw_cfg.secret_file); gw_cfg.secret_file = strdup(v); return 0;
	case O_MAX_INFLIGHT: return set_size("--max-inflight-bodies", v, &gw_cfg.max_inflight);
	case O_HEADER_TO: return set_int("--header-timeout-ms", v, 100, 3600000, &gw_cfg.header_timeout_ms);
	case O_IDLE_TO: return set_int("--idle-timeout-ms", v, 1000, 3600000, &gw_cfg.idle_timeout_ms);
	case O_MAX_CONNS: return set_int("--max-connections", v, 1, 1000000, &gw_cfg.max_connections);
	case O_MAX_HEADER: return set_bounded_size("--max-header-bytes", v, 1024, 1u << 20,
	                                          &gw_cfg.max_header_bytes);
	}
	return -1;
}

/* A list flag given on the command line replaces what the environment
 * said, rather than adding to it. */
static void reset_list(int opt, bool *done)
{
	if (done[opt - O_LISTEN])
		return;
	done[opt - O_LISTEN] = true;
	if (opt == O_LISTEN) {
		free_items(gw_cfg.listen, &gw_cfg.nlisten);
	} else if (opt == O_WORKERS) {
		for (size_t i = 0; i < gw_cfg.nworkers; i++) {
			free(gw_cfg.workers[i].runtime);
			free(gw_cfg.workers[i].url);
		}
		gw_cfg.nworkers = 0;
	} else if (opt == O_DISCOVER) {
		free_items(gw_cfg.discover, &gw_cfg.ndiscover);
	} else if (opt == O_CORS) {
		free_items(gw_cfg.cors, &gw_cfg.ncors);
	}
}

/* ---- the API-keys file ------------------------------------------------- */

static int key_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int key_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One line (no newline), number no; appends its key if it has one. */
static int key_line(const char *p, size_t len, size_t no, char ***keys, size_t *n, char *err,
                    size_t errlen)
{
	while (len && blank(*p))
		p++, len--;
	while (len && blank(p[len - 1]))
		len--;
	if (len == 0 || *p == '#')
		return 0;
	if (len > GW_KEY_MAX)
		return key_fail(err, errlen, "line %zu: a key is at most %d bytes, this line holds %zu",
		                no, GW_KEY_MAX, len);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 0x7f)
			return key_fail(err, errlen,
			                "line %zu: a key is printable ASCII without spaces (byte %zu is "
			                "0x%02x; a # comment must start its own line)",
			                no, i + 1, (unsigned char)p[i]);
	char **nk = realloc(*keys, (*n + 1) * sizeof(*nk));
	if (!nk || !(nk[*n] = strndup(p, len))) {
		if (nk)
			*keys = nk;
		return key_fail(err, errlen, "line %zu: out of memory", no);
	}
	*keys = nk;
	(*n)++;
	return 0;
}

int gw_keys_parse(const char *text, size_t len, char ***keys, size_t *n, char *err,
                  size_t errlen)
{
	size_t no = 0;
	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		if (key_line(p, (size_t)(eol - p), ++no, keys, n, err, errlen) < 0)
			return -1;
		p = nl ? nl + 1 : end;
	}
	return 0;
}

#define KEYS_FILE_MAX (1u << 20)

/* Reads the whole file (at most KEYS_FILE_MAX) into a malloc'd buffer. */
static char *read_keys_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "corral-gateway: --api-keys %s: cannot read it: %s\n", path,
		        strerror(errno));
		return NULL;
	}
	char *buf = malloc(KEYS_FILE_MAX + 1);
	*len = buf ? fread(buf, 1, KEYS_FILE_MAX + 1, f) : 0;
	if (!buf || ferror(f) || *len > KEYS_FILE_MAX) {
		fprintf(stderr, "corral-gateway: --api-keys %s: %s\n", path,
		        !buf ? "out of memory" : ferror(f) ? "cannot read it" : "larger than 1 MiB");
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static int load_keys(const char *path)
{
	char err[200];
	size_t len;
	char *buf = read_keys_file(path, &len);
	if (!buf)
		return -1;
	int rc = gw_keys_parse(buf, len, &gw_cfg.api_keys, &gw_cfg.napi_keys, err, sizeof(err));
	free(buf);
	if (rc < 0)
		fprintf(stderr, "corral-gateway: --api-keys %s: %s\n", path, err);
	else if (gw_cfg.napi_keys == 0) {
		fprintf(stderr, "corral-gateway: --api-keys %s holds no key\n", path);
		rc = -1;
	}
	return rc;
}

/* What depends on several flags, once all are known. */
static int check_config(void)
{
	if (gw_cfg.max_inflight && gw_cfg.max_inflight < gw_cfg.max_body) {
		fprintf(stderr, "corral-gateway: --max-inflight-bodies (%zu) is below --max-body (%zu)\n",
		        gw_cfg.max_inflight, gw_cfg.max_body);
		return -1;
	}
	free_items(gw_cfg.api_keys, &gw_cfg.napi_keys);
	return gw_cfg.api_keys_file ? load_keys(gw_cfg.api_keys_file) : 0;
}

int gw_config_parse(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
		const char *v = getenv(envs[i].var);
		if (v && *v && apply(envs[i].opt, v) < 0) {
			fprintf(stderr, "corral-gateway: (from %s)\n", envs[i].var);
			return -1;
		}
	}
	bool reset[O_HELP - O_LISTEN + 1] = { 0 };
	int c;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h' || c == O_HELP) {
			fputs(usage, stdout);
			return 1;
		}
		if (c == '?')
			return -1;
		reset_list(c, reset);
		if (apply(c, optarg) < 0)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "corral-gateway: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -1;
	}
	if (gw_cfg.nlisten == 0 && add_items(&gw_cfg.listen, &gw_cfg.nlisten, "http://127.0.0.1:8080") < 0)
		return -1;
	for (size_t i = 0; i < gw_cfg.nlisten; i++) {
		if (strncmp(gw_cfg.listen[i], "http://", 7)) {
			fprintf(stderr, "corral-gateway: --listen wants http://HOST:PORT, got '%s'\n", gw_cfg.listen[i]);
			return -1;
		}
	}
	char err[512];
	if (gw_cfg.secret_file && !(gw_cfg.auth = cr_auth_load(gw_cfg.secret_file, err, sizeof err))) {
		fprintf(stderr, "corral-gateway: --secret-file: %s\n", err);
		return -1;
	}
	if (gw_cfg.nworkers == 0 && gw_cfg.ndiscover == 0) {
		fprintf(stderr, "corral-gateway: no workers: give --workers RT=URL or --discover dns://NAME:PORT\n");
		return -1;
	}
	return check_config();
}
