/*
 * gw.h — corral-gateway: the HTTP/JSON front of corral.
 *
 * One process, no threads of its own except the DNS resolver and the
 * health ticker: everything else runs in libmicrohttpd's polling threads
 * (HTTP) and nng's callback threads (the REQ sockets' aios), under one
 * mutex (gw_lock)
 * that guards the worker pool, the queues and every invocation. Nothing
 * that can block runs under that lock, and no nng call made under it
 * calls back synchronously (nng dispatches completions to its taskq).
 *
 * Subsystems, one file each:
 *   gw_config.c   flags + CORRAL_* environment, --help, the API-keys file
 *   gw_util.c     clock, base64/hex decoding, UTF-8, memory budget
 *   gw_metrics.c  counters and histograms, Prometheus text
 *   gw_pool.c     workers: sockets, info/ping health, DNS discovery,
 *                 runtimes they serve, least-busy selection, queues
 *   gw_invoke.c   one invocation: race / hedge / retry / cancel / deadline
 *   gw_json.c     /v1 JSON <-> wire mapping
 *   gw_piston.c   Piston v2 request/response mapping
 *   gw_http.c     HTTP transport (libmicrohttpd): connections, limits,
 *                 deadlines, bodies, replies (gw_http.h: its contract
 *                 with the routes)
 *   gw_routes.c   routes: route table, CORS, API keys, JSON handlers
 *   gw_main.c     start, readiness, drain on SIGTERM
 */
#ifndef GW_H
#define GW_H

#include <jansson.h>
#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "wire.h"

/* ---- configuration (gw_config.c) ------------------------------------- */

typedef struct gw_static_worker {
	char *runtime; /* as configured: a label, the worker's info wins */
	char *url;
} gw_static_worker;

typedef struct gw_config {
	char **listen;
	size_t nlisten;
	gw_static_worker *workers;
	size_t nworkers;
	char **discover; /* dns://name:port */
	size_t ndiscover;
	int discover_ms;
	size_t max_body;
	size_t max_inflight; /* bytes of bodies at once; 0: GW_INFLIGHT_BODIES x max_body */
	char **cors;
	size_t ncors;
	char *api_keys_file;
	char **api_keys; /* loaded from api_keys_file */
	size_t napi_keys;
	bool insecure_no_auth;
	int race;     /* default race width: 1 or 2 */
	int hedge_ms; /* default mode: -1 race, 0 hedge at observed p95, >0 */
	int hedge_budget; /* % of hedged-mode invocations that may send a second attempt */
	int queue;    /* waiting invocations per runtime */
	int queue_ms; /* longest wait for a slot */
	int retries;  /* extra attempts after both racers failed */
	int ping_ms;
	int ping_timeout_ms;
	int slack_ms; /* deadline = compile wall + run wall + slack */
	int body_timeout_ms;
	int header_timeout_ms; /* the whole request head */
	int idle_timeout_ms;   /* a kept-alive connection without a request */
	int max_connections;
	size_t max_header_bytes; /* past it 431 */
	size_t max_reply;
	int drain_ms;
	int notify_fd;
	char *secret_file; /* --secret-file */
	cr_auth *auth;     /* its secret: every request to a worker is signed */
} gw_config;

extern gw_config gw_cfg;
/* 0 ok, 1 printed help (exit 0), -1 error printed (exit 2). */
int gw_config_parse(int argc, char **argv);

#define GW_INFLIGHT_BODIES 8 /* default --max-inflight-bodies, in --max-body */
#define GW_KEY_MAX 1024      /* bytes of one API key */
/* The API-keys file's text (see --help and docs/http-api.md) appended to
 * *keys; 0 ok, -1 with "line N: why" in err. */
int gw_keys_parse(const char *text, size_t len, char ***keys, size_t *n, char *err,
                  size_t errlen);

/* ---- utilities (gw_util.c) ------------------------------------------- */

int64_t gw_now_ms(void);
/* cr_request_encode, signed with --secret-file when given (a fresh nonce
 * each call: encode each send anew). -1 when signing failed. */
int gw_request_encode(const cr_request *r, msgpack_sbuffer *sb);
/* NULL on bad input. */
char *gw_base64_decode(const char *s, size_t n, size_t *outlen);
char *gw_hex_decode(const char *s, size_t n, size_t *outlen);
bool gw_utf8_valid(const char *p, size_t n);
/* Copy with invalid sequences replaced by U+FFFD. */
char *gw_utf8_lossy(const char *p, size_t n, size_t *outlen);
/* Big buffers mmapped (given back when freed), from the start. */
void gw_mem_init(void);
/* Takes n bytes of the --max-inflight-bodies budget; false when they do
 * not fit. gw_mem_release gives them back, and after a large request
 * returns the heap's free pages to the system. */
bool gw_mem_reserve(size_t n);
void gw_mem_release(size_t n);

/* ---- metrics (gw_metrics.c) ------------------------------------------ */

enum gw_counter {
	GW_M_RACES_WON,    /* an attempt won while another was in flight */
	GW_M_RACES_LOST,   /* attempts that lost and were cancelled */
	GW_M_HEDGES,       /* second attempts started by the hedge timer */
	GW_M_HEDGES_SKIPPED, /* hedges not sent: the hedge budget was spent */
	GW_M_RETRIES,      /* attempts started after failures */
	GW_M_CANCELS_SENT, /* cancel ops sent to losers */
	GW_M_CANCELS_OK,   /* ...that found and stopped the run */
	GW_M_EJECTIONS,    /* worker marked unhealthy */
	GW_M_RECOVERIES,   /* worker healthy again */
	GW_M_ATTEMPT_FAIL, /* attempts that ended without a usable reply */
	GW_M_QUEUED,       /* invocations that waited for a slot */
	GW_M_REJECTED,     /* 429/503 for overload */
	GW_M_NCOUNTERS
};
void gw_metric_inc(enum gw_counter c);
void gw_metric_http(const char *route, int status);
void gw_metric_inflight(int delta);
int gw_metric_inflight_get(void);
char *gw_metrics_render(size_t *len); /* malloc'd Prometheus text */

/* ---- worker pool (gw_pool.c) ----------------------------------------- */

typedef struct gw_runtime gw_runtime;
typedef struct gw_worker gw_worker;
typedef struct gw_invocation gw_invocation;
typedef struct gw_lane gw_lane;

#define GW_HIST_N 14
extern const double gw_hist_bounds[GW_HIST_N]; /* seconds */

struct gw_runtime {
	char *name;
	char *version;
	char **aliases;
	size_t naliases;
	bool compiled;
	char *entry; /* default file name for `code` */
	cr_limits def_limits, def_compile;
	/* latency of successful invocations */
	uint64_t hist[GW_HIST_N + 1];
	double hist_sum;
	uint64_t hist_count;
	int32_t recent[128]; /* ring of recent latencies (ms) for p95 */
	size_t nrecent, recent_pos;
	double hedge_debt; /* hedges sent minus those the budget has earned */
	/* invocations waiting for a slot, FIFO */
	gw_invocation *qhead, *qtail;
	int nqueued;
	gw_runtime *next;
};

struct gw_worker {
	char *url;
	char *label;  /* configured runtime or "dns:NAME" */
	char *name;   /* from replies (host), "" until known */
	gw_runtime *rt; /* NULL until info answered */
	nng_socket sock;
	int slots;
	int inflight; /* ours, on this worker */
	int reported_busy; /* the worker's own count (ping), or slots after a
	                    * `busy` reply: others may use it too */
	int out_of_service; /* its slots out of service (ping/info): never free */
	bool healthy;
	bool removed; /* dropped by discovery */
	bool closed;  /* ...and its socket closed */
	bool probing; /* a ping/info in flight */
	bool unauthorized_logged; /* its `unauthorized` refusal was logged */
	bool connected;
	int64_t last_ok_ms;
	uint64_t last_pick; /* gw_pool_pick's round robin */
	uint64_t served, failures;
	gw_lane *lanes; /* gw_invoke.c's: open REQ contexts not in use */
	gw_worker *next;
};

void gw_lock(void);
void gw_unlock(void);

int gw_pool_init(void);
void gw_pool_shutdown(void);
/* Under lock. */
gw_worker *gw_pool_workers(void);
gw_runtime *gw_pool_runtimes(void);
int gw_runtime_healthy(const gw_runtime *rt);
int gw_runtime_workers(const gw_runtime *rt); /* healthy or not */
int gw_pool_healthy_total(void);
/* Runtime by name or alias and optional version ("*"/NULL any, else a
 * component prefix), preferring the highest version with healthy
 * workers. Under lock. */
gw_runtime *gw_pool_find(const char *name, const char *version);
/* Up to n distinct healthy workers of rt with a free slot, least busy
 * first, skipping `avoid` when others exist. Under lock. */
size_t gw_pool_pick(gw_runtime *rt, gw_worker **out, size_t n,
                    gw_worker *const *avoid, size_t navoid);
void gw_pool_record_latency(gw_runtime *rt, int64_t ms);
int64_t gw_runtime_p95(const gw_runtime *rt);
/* A worker stopped answering: eject it now (under lock). */
void gw_worker_eject(gw_worker *w, const char *why);

/* ---- invocations (gw_invoke.c) --------------------------------------- */

/* Result handed back to the HTTP layer: exactly one of reply (a decoded
 * ok:true run reply) or an error status/code/message. */
typedef struct gw_result {
	int status; /* HTTP status */
	const char *code;
	char message[512];
	int retry_after; /* seconds, 0 none */
	msgpack_object *reply; /* valid during the done callback */
	gw_runtime *rt;
	json_t *race; /* how it went: attempts, winner (borrowed) */
	const char *worker_url;
	const char *worker_name;
	char summary[768]; /* key=value pairs for the request's log line */
} gw_result;

typedef void (*gw_done_fn)(void *arg, const gw_result *res);

typedef struct gw_invoke_opts {
	int race;     /* 1 or 2; 0 gateway default */
	int hedge_ms; /* -2 gateway default, -1 off, 0 auto p95, >0 ms */
} gw_invoke_opts;

/* Starts an invocation of req on rt (looked up by the caller under
 * lock; call without lock held). done is called exactly once, from an
 * nng thread, without the lock held. *handle (when not NULL) holds the
 * invocation until, under the lock, it is cleared just before done. */
void gw_invoke(gw_runtime *rt, cr_request *req, const gw_invoke_opts *o,
               gw_done_fn done, void *arg, gw_invocation **handle);
/* Under lock, on a live handle: the client is gone; the invocation ends
 * with 499 client_closed and its runs are cancelled on their workers. */
void gw_invoke_abort(gw_invocation *inv, const char *why);
/* Under lock: abort what is in flight on a worker that was ejected. */
void gw_invoke_worker_lost(gw_worker *w);
/* Under lock: let queued invocations proceed where slots are free or
 * where no worker is left (they fail fast). */
void gw_invoke_pump(void);
/* Without lock: deliver results that finished inside gw_invoke_pump. */
void gw_invoke_flush(void);

/* ---- JSON mapping (gw_json.c, gw_piston.c) ---------------------------- */

/* A body may hold at most this many JSON values (array elements and
 * object members, at any depth) and nest this deep: checked on the raw
 * bytes before any tree is built. */
#define GW_JSON_MAX_VALUES 16384
#define GW_JSON_MAX_DEPTH 32
/* 0 when the body is within both bounds; -1 with a message in err. */
int gw_json_prescan(const char *p, size_t n, char *err, size_t errlen);
/* The largest value accepted for limit i (cr_limit_name(i)). */
int64_t gw_limit_max(int i);

/* Everything a request body becomes before the pool is involved. */
typedef struct gw_run {
	cr_request req;
	char *runtime; /* borrowed from body */
	char *version; /* borrowed from body, NULL: any */
	gw_invoke_opts opts;
	bool *unnamed; /* files whose name the runtime decides (gw_run_bind) */
	json_t *body;  /* kept alive: file contents point into it */
	void **owned;  /* decoded buffers, names */
	size_t nowned;
} gw_run;

void gw_run_free(gw_run *r);
/* 0 ok; -1 with a message in err (a 400). */
int gw_run_from_json(json_t *body, gw_run *r, char *err, size_t errlen);
int gw_piston_from_json(json_t *body, gw_run *r, char *err, size_t errlen);
/* Names unnamed files once the runtime is known. */
int gw_run_bind(gw_run *r, gw_runtime *rt, char *err, size_t errlen);

/* Shared by gw_json.c and gw_piston.c: each 0 ok, -1 with err. */
int gw_parse_files(gw_run *r, json_t *files, char *err, size_t errlen);
int gw_parse_text(gw_run *r, json_t *v, const char *what, const char *encoding, char **p,
                  size_t *n, char *err, size_t errlen);
int gw_parse_args(gw_run *r, json_t *args, char *err, size_t errlen);
/* Interleaved stdout+stderr of a stage, rebuilt from its chunks. */
char *gw_stage_output(const msgpack_object *stage, size_t *len);

/* Render a stage / a whole run reply. */
json_t *gw_json_reply(const msgpack_object *reply, const gw_runtime *rt);
json_t *gw_piston_reply(const msgpack_object *reply, const gw_runtime *rt);
json_t *gw_json_runtimes(void);   /* under lock */
json_t *gw_piston_runtimes(void); /* under lock */
/* {error:{code,message}} */
json_t *gw_json_error(const char *code, const char *message);

/* ---- HTTP (gw_http.c) ------------------------------------------------- */

int gw_http_start(void);
void gw_http_stop(void);
void gw_http_set_draining(void);
bool gw_http_draining(void);

#endif
