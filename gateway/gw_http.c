/*
 * gw_http.c — the HTTP side: nng's own HTTP server, one catch-all async
 * handler, and a small route table.
 *
 * One handler takes every method and path, so that every answer —
 * unknown paths, wrong methods, bad bodies — is JSON {error:{code,
 * message}} rather than nng's HTML pages. The handler never blocks nng's
 * threads: it reads the body itself with an async read bounded by
 * --max-body and --body-timeout-ms (nng's own body collection would
 * answer an oversized body with a bare 400), and finishes the server's
 * aio later, from the invocation's completion.
 *
 * Order of checks for each request: route (404), CORS preflight (204 /
 * 403), method (405), API key (401), body size and framing (413 / 411 /
 * 408), the bodies-in-flight budget (503), JSON size and nesting, then
 * JSON itself (400 / 415), runtime (404), then the invocation (its own
 * statuses: 200, 400, 429, 502, 503, 504). Every request ends with one
 * log line and one count in /metrics. A body's Content-Length is taken
 * from --max-inflight-bodies before it is read and given back when its
 * call ends (gw_mem_reserve / gw_mem_release).
 *
 * Body deadlines are kept by one sweeper (every SWEEP_MS) over a list of
 * the calls still reading, not by a timer armed and cancelled per
 * request: each of those costs nng thread hand-offs on the hot path of
 * every invocation, for a deadline that almost never fires. For the same
 * reason finished calls are kept for reuse (up to SPARE_MAX) with their
 * aios: freeing an aio wakes nng's reaper thread.
 *
 * A reply nng would send as it is (HTTP/1.1, kept alive, not HEAD) is
 * written on the connection by the thread that has it, and the server's
 * aio finished without output once it is out (nng then reads the next
 * request): handing it to nng's server instead costs one more thread
 * hand-off before the first byte leaves.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "gw.h"
#include "conf.h"
#include "log.h"

#include <nng/supplemental/http/http.h>
#include <nng/supplemental/util/platform.h>

enum { BODY_READING, BODY_DONE, BODY_TIMED_OUT };
#define SWEEP_MS 100 /* granularity of --body-timeout-ms */
#define SPARE_MAX 256 /* finished calls kept for reuse */

typedef struct call call;
typedef void (*route_fn)(call *c);

typedef struct route {
	const char *path;
	const char *method; /* GET routes also answer HEAD */
	bool auth;
	route_fn fn;
	const char *name; /* metrics label */
} route;

struct call {
	nng_aio *aio;
	nng_http_req *req;
	nng_http_conn *conn;
	const route *route;
	int64_t t0;
	char *body;
	size_t body_len;
	size_t reserved; /* bytes of the bodies-in-flight budget held */
	nng_aio *rx; /* rx and tx are kept when the call is reused: their */
	nng_aio *tx; /* callback's arg is c */
	nng_http_res *res; /* being written on tx */
	const char *cors_origin; /* allowed Origin to echo, or NULL */
	char cors_buf[256];
	bool close;   /* answer with Connection: close (body left unread) */
	bool piston;
	bool counted; /* in the in-flight gauge */
	bool continuing; /* writing "100 Continue" before reading the body */
	atomic_int refs;
	atomic_int body_state; /* BODY_* */
	nng_aio *timer;        /* the 408's write, when the body was late */
	int64_t body_deadline;
	call *rprev, *rnext; /* on the reading list, or the spare list */
	bool listed;
	nng_http_res *res408;
	gw_run run;
	const char *runtime;
	char path[128];
	char method[40]; /* for the log line: nng may reuse c->req once the reply is out */
};

static nng_http_server **servers;
static size_t nservers;
static nng_http_handler **handlers;
static bool draining;

void gw_http_set_draining(void) { draining = true; }
bool gw_http_draining(void) { return draining; }

/* ---- responses --------------------------------------------------------- */

static void log_line(call *c, int status, const char *extra)
{
	char qpath[200], qmethod[40];
	cr_log("info", "request", "method=%s path=%s status=%d ms=%lld runtime=%s%s%s",
	       cr_log_quote(qmethod, sizeof(qmethod), c->method),
	       cr_log_quote(qpath, sizeof(qpath), c->path), status,
	       (long long)(gw_now_ms() - c->t0), c->runtime ? c->runtime : "-", extra ? " " : "",
	       extra ? extra : "");
}

/* ---- calls: new, and finished ones kept for reuse ---------------------- */

static nng_mtx *spare_mtx;
static call *spare; /* linked by rnext */
static int nspare;

static call *call_new(void)
{
	nng_mtx_lock(spare_mtx);
	call *c = spare;
	if (c) {
		spare = c->rnext;
		nspare--;
	}
	nng_mtx_unlock(spare_mtx);
	if (!c)
		return calloc(1, sizeof(call));
	nng_aio *rx = c->rx, *tx = c->tx;
	memset(c, 0, sizeof(*c));
	c->rx = rx;
	c->tx = tx;
	return c;
}

/* A call is referenced by the request's own flow and, while a body is
 * read, by the body timer. When the last goes, c->rx and c->tx are idle
 * (their callbacks ran), though maybe still returning: another thread
 * may start a new operation on them, which nng allows. */
static void call_unref(call *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	if (c->timer)
		nng_aio_reap(c->timer);
	if (c->res408)
		nng_http_res_free(c->res408);
	gw_run_free(&c->run);
	free(c->body);
	if (c->reserved)
		gw_mem_release(c->reserved);
	nng_mtx_lock(spare_mtx);
	bool kept = nspare < SPARE_MAX;
	if (kept) {
		c->rnext = spare;
		spare = c;
		nspare++;
	}
	nng_mtx_unlock(spare_mtx);
	if (kept)
		return;
	if (c->rx)
		nng_aio_reap(c->rx);
	if (c->tx)
		nng_aio_reap(c->tx);
	free(c);
}

/* True when nng's server would send a reply as it is: it adds
 * "Connection: close" for HTTP/1.0 or a client's "Connection: close",
 * and drops the body of a HEAD. */
static bool write_direct(call *c)
{
	const char *version = nng_http_req_get_version(c->req);
	const char *conn = nng_http_req_get_header(c->req, "Connection");
	return !c->close && version && !strcmp(version, "HTTP/1.1") &&
	       !(conn && strstr(conn, "close")) && strcmp(nng_http_req_get_method(c->req), "HEAD");
}

/* The reply is out (or failed: nng then closes the connection). */
static void reply_written(void *arg)
{
	call *c = arg;
	int rv = nng_aio_result(c->tx);
	nng_http_res_free(c->res);
	c->res = NULL;
	nng_aio_set_output(c->aio, 0, NULL); /* already sent: nng reads the next request */
	nng_aio_finish(c->aio, rv);
	call_unref(c);
}

/* Sends status with body (taken) of type ctype; Retry-After when > 0. */
static void respond_raw(call *c, int status, char *body, size_t len, const char *ctype,
                        int retry_after, const char *extra_log)
{
	nng_http_res *res;
	if (nng_http_res_alloc(&res) != 0) {
		free(body);
		nng_aio_finish(c->aio, NNG_ENOMEM);
		call_unref(c);
		return;
	}
	nng_http_res_set_status(res, (uint16_t)status);
	if (ctype)
		nng_http_res_set_header(res, "Content-Type", ctype);
	nng_http_res_set_header(res, "Cache-Control", "no-store");
	if (retry_after > 0) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", retry_after);
		nng_http_res_set_header(res, "Retry-After", ra);
	}
	if (c->cors_origin) {
		nng_http_res_set_header(res, "Access-Control-Allow-Origin", c->cors_origin);
		nng_http_res_set_header(res, "Access-Control-Expose-Headers", "Retry-After");
		nng_http_res_set_header(res, "Vary", "Origin");
	}
	if (status == 401)
		nng_http_res_set_header(res, "WWW-Authenticate", "Bearer");
	if (status == 405 && c->route)
		nng_http_res_set_header(res, "Allow", !strcmp(c->route->method, "GET")
		                                          ? "GET, HEAD, OPTIONS"
		                                          : "POST, OPTIONS");
	if (c->close)
		nng_http_res_set_header(res, "Connection", "close");
	if (body && nng_http_res_copy_data(res, body, len) != 0) {
		nng_http_res_free(res);
		free(body);
		nng_aio_finish(c->aio, NNG_ENOMEM);
		call_unref(c);
		return;
	}
	free(body);
	gw_metric_http(c->route ? c->route->name : "other", status);
	if (write_direct(c) && (c->tx || nng_aio_alloc(&c->tx, reply_written, c) == 0)) {
		c->res = res;
		atomic_fetch_add(&c->refs, 1); /* the log line's, once the reply is on its way */
		nng_http_conn_write_res(c->conn, res, c->tx);
		log_line(c, status, extra_log);
		call_unref(c);
		return;
	}
	log_line(c, status, extra_log);
	nng_aio_set_output(c->aio, 0, res);
	nng_aio_finish(c->aio, 0);
	call_unref(c);
}

static void respond_json(call *c, int status, json_t *j, int retry_after, const char *extra_log)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s) {
		s = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"could not render the reply\"}}");
		status = 500;
	}
	size_t len = s ? strlen(s) : 0;
	respond_raw(c, status, s, len, "application/json", retry_after, extra_log);
}

static void respond_error(call *c, int status, const char *code, const char *msg,
                          int retry_after)
{
	json_t *j = gw_json_error(code, msg);
	if (c->piston) /* Piston clients read a top-level message */
		json_object_set_new(j, "message", json_string(msg));
	char extra[320];
	snprintf(extra, sizeof(extra), "error=%s", code);
	respond_json(c, status, j, retry_after, extra);
}

/* ---- invocation routes ------------------------------------------------- */

static void run_done(void *arg, const gw_result *res)
{
	call *c = arg;
	if (c->counted)
		gw_metric_inflight(-1);
	if (res->status != 200) {
		json_t *j = gw_json_error(res->code, res->message);
		if (c->piston)
			json_object_set_new(j, "message", json_string(res->message));
		else if (res->race)
			json_object_set_new(j, "race", json_incref(res->race));
		char extra[1100];
		snprintf(extra, sizeof(extra), "error=%s %s", res->code, res->summary);
		respond_json(c, res->status, j, res->retry_after, extra);
		return;
	}
	json_t *j;
	if (c->piston) {
		j = gw_piston_reply(res->reply, res->rt);
	} else {
		j = gw_json_reply(res->reply, res->rt);
		json_object_set_new(j, "worker", json_pack("{s:s, s:s}", "url", res->worker_url, "name",
		                                           res->worker_name ? res->worker_name : ""));
		if (res->race)
			json_object_set_new(j, "race", json_incref(res->race));
		json_object_set_new(j, "gateway_ms", json_integer(gw_now_ms() - c->t0));
	}
	char extra[900];
	snprintf(extra, sizeof(extra), "worker=%s %s", res->worker_url, res->summary);
	respond_json(c, 200, j, 0, extra);
}

static bool is_json_type(const char *ct)
{
	if (!ct)
		return true;
	while (*ct == ' ')
		ct++;
	size_t n = strcspn(ct, ";");
	return (n == 16 && !strncasecmp(ct, "application/json", 16)) ||
	       (n > 5 && !strncasecmp(ct + n - 5, "+json", 5));
}

/* Parses the body; answers 400/415 itself and returns NULL then. */
static json_t *parse_body(call *c)
{
	if (c->body_len == 0) {
		respond_error(c, 400, "bad_request", "the request has no body: send a JSON object", 0);
		return NULL;
	}
	char msg[400];
	if (gw_json_prescan(c->body, c->body_len, msg, sizeof(msg)) < 0) {
		respond_error(c, 400, "bad_request", msg, 0);
		return NULL;
	}
	json_error_t e;
	json_t *j = json_loadb(c->body, c->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (j)
		return j;
	const char *ct = nng_http_req_get_header(c->req, "Content-Type");
	size_t ws = 0;
	while (ws < c->body_len && strchr(" \t\r\n", c->body[ws]))
		ws++;
	bool looks_json = ws < c->body_len && (c->body[ws] == '{' || c->body[ws] == '[');
	if (!c->piston && !is_json_type(ct) && !looks_json) {
		snprintf(msg, sizeof(msg), "the body is not JSON (Content-Type: %.100s); send application/json", ct);
		respond_error(c, 415, "unsupported_media_type", msg, 0);
	} else {
		snprintf(msg, sizeof(msg), "invalid JSON at line %d, column %d: %s", e.line, e.column, e.text);
		respond_error(c, 400, "bad_request", msg, 0);
	}
	return NULL;
}

static void known_runtimes(char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = 0;
	for (gw_runtime *rt = gw_pool_runtimes(); rt && off < len; rt = rt->next)
		off += (size_t)snprintf(buf + off, len - off, "%s%s %s", off ? ", " : "", rt->name, rt->version);
}

static void invoke_route(call *c)
{
	json_t *body = parse_body(c);
	if (!body)
		return;
	char err[512];
	int rc = c->piston ? gw_piston_from_json(body, &c->run, err, sizeof(err))
	                   : gw_run_from_json(body, &c->run, err, sizeof(err));
	json_decref(body);
	if (rc < 0) {
		respond_error(c, 400, "bad_request", err, 0);
		return;
	}
	c->runtime = c->run.runtime;
	if (draining) {
		respond_error(c, 503, "draining", "the gateway is shutting down; retry on another", 1);
		return;
	}
	gw_lock();
	gw_runtime *rt = gw_pool_find(c->run.runtime, c->run.version);
	if (!rt) {
		char known[300], msg[512];
		known_runtimes(known, sizeof(known));
		gw_unlock();
		snprintf(msg, sizeof(msg), "unknown runtime \"%.64s\"%s%.32s (available: %s)",
		         c->run.runtime, c->run.version ? " version " : "",
		         c->run.version ? c->run.version : "", known[0] ? known : "none yet");
		if (c->piston) /* Piston answers 400 for an unknown language */
			respond_error(c, 400, "unknown_runtime", msg, 0);
		else
			respond_error(c, 404, "unknown_runtime", msg, 0);
		return;
	}
	rc = gw_run_bind(&c->run, rt, err, sizeof(err));
	gw_unlock();
	if (rc < 0) {
		respond_error(c, 400, "bad_request", err, 0);
		return;
	}
	c->counted = true;
	gw_metric_inflight(1);
	gw_invoke(rt, &c->run.req, &c->run.opts, run_done, c);
}

static void route_run(call *c) { invoke_route(c); }

static void route_piston_execute(call *c)
{
	c->piston = true;
	invoke_route(c);
}

static void route_runtimes(call *c)
{
	gw_lock();
	json_t *j = gw_json_runtimes();
	gw_unlock();
	respond_json(c, 200, j, 0, NULL);
}

static void route_piston_runtimes(call *c)
{
	gw_lock();
	json_t *j = gw_piston_runtimes();
	gw_unlock();
	respond_json(c, 200, j, 0, NULL);
}

static void route_healthz(call *c)
{
	respond_json(c, 200, json_pack("{s:b}", "ok", 1), 0, NULL);
}

static void route_readyz(call *c)
{
	gw_lock();
	int n = gw_pool_healthy_total();
	gw_unlock();
	bool ready = n > 0 && !draining;
	respond_json(c, ready ? 200 : 503,
	             json_pack("{s:b, s:i, s:b}", "ready", ready, "healthy_workers", n, "draining",
	                       draining),
	             ready ? 0 : 1, NULL);
}

static void route_metrics(call *c)
{
	size_t len;
	char *s = gw_metrics_render(&len);
	if (!s) {
		respond_error(c, 500, "internal", "out of memory rendering metrics", 0);
		return;
	}
	respond_raw(c, 200, s, len, "text/plain; version=0.0.4; charset=utf-8", 0, NULL);
}

static const route routes[] = {
	{ "/v1/run", "POST", true, route_run, "/v1/run" },
	{ "/v1/runtimes", "GET", true, route_runtimes, "/v1/runtimes" },
	{ "/api/v2/execute", "POST", true, route_piston_execute, "/api/v2/execute" },
	{ "/api/v2/runtimes", "GET", true, route_piston_runtimes, "/api/v2/runtimes" },
	{ "/healthz", "GET", false, route_healthz, "/healthz" },
	{ "/readyz", "GET", false, route_readyz, "/readyz" },
	{ "/metrics", "GET", false, route_metrics, "/metrics" },
};

/* ---- checks before the route ------------------------------------------- */

static bool origin_allowed(const char *origin)
{
	for (size_t i = 0; i < gw_cfg.ncors; i++)
		if (!strcmp(gw_cfg.cors[i], "*") || !strcasecmp(gw_cfg.cors[i], origin))
			return true;
	return false;
}

static void preflight(call *c, const char *origin)
{
	nng_http_res *res;
	if (!c->cors_origin) {
		char msg[300];
		snprintf(msg, sizeof(msg), "origin %.200s is not allowed (see --cors-origins)",
		         origin ? origin : "(none)");
		respond_error(c, 403, "cors_forbidden", msg, 0);
		return;
	}
	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(c->aio, NNG_ENOMEM);
		call_unref(c);
		return;
	}
	const char *hdrs = nng_http_req_get_header(c->req, "Access-Control-Request-Headers");
	nng_http_res_set_status(res, 204);
	nng_http_res_set_header(res, "Access-Control-Allow-Origin", c->cors_origin);
	nng_http_res_set_header(res, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
	nng_http_res_set_header(res, "Access-Control-Allow-Headers",
	                        hdrs ? hdrs : "Content-Type, Authorization");
	nng_http_res_set_header(res, "Access-Control-Max-Age", "600");
	nng_http_res_set_header(res, "Vary", "Origin");
	gw_metric_http(c->route->name, 204);
	log_line(c, 204, "preflight=1");
	nng_aio_set_output(c->aio, 0, res);
	nng_aio_finish(c->aio, 0);
	call_unref(c);
}

static bool authorized(call *c)
{
	if (!c->route->auth || gw_cfg.napi_keys == 0)
		return true;
	const char *h = nng_http_req_get_header(c->req, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7))
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	size_t n = strlen(h);
	bool ok = false;
	for (size_t i = 0; i < gw_cfg.napi_keys; i++) {
		const char *k = gw_cfg.api_keys[i];
		size_t kn = strlen(k);
		unsigned diff = (unsigned)(kn ^ n);
		for (size_t j = 0; j < kn; j++) /* same time whatever matches */
			diff |= (unsigned)(k[j] ^ (j < n ? h[j] : 0));
		ok |= diff == 0;
	}
	return ok;
}

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void start_read(call *c)
{
	nng_iov iov = { .iov_buf = c->body, .iov_len = c->body_len };
	nng_aio_set_iov(c->rx, 1, &iov);
	nng_http_conn_read_all(c->conn, c->rx);
}

/* ---- body deadlines: the calls still reading, and their sweeper ---------- */

static nng_mtx *reading_mtx;
static call *reading;
static nng_aio *sweep_aio;

static void list_reading(call *c)
{
	nng_mtx_lock(reading_mtx);
	c->rprev = NULL;
	c->rnext = reading;
	if (reading)
		reading->rprev = c;
	reading = c;
	c->listed = true;
	nng_mtx_unlock(reading_mtx);
}

/* Under reading_mtx. */
static void unlink_reading(call *c)
{
	if (c->rprev)
		c->rprev->rnext = c->rnext;
	else
		reading = c->rnext;
	if (c->rnext)
		c->rnext->rprev = c->rprev;
	c->listed = false;
}

/* True when c was still listed (then the list's reference is the caller's). */
static bool unlist_reading(call *c)
{
	nng_mtx_lock(reading_mtx);
	bool was = c->listed;
	if (was)
		unlink_reading(c);
	nng_mtx_unlock(reading_mtx);
	return was;
}

/* The body arrived (or the read failed, or the sweeper cancelled it). */
static void body_done(void *arg)
{
	call *c = arg;
	int rv = nng_aio_result(c->rx);
	if (rv == 0 && c->continuing) { /* "100 Continue" is out: now the body */
		c->continuing = false;
		start_read(c);
		return;
	}
	int expect = BODY_READING;
	if (!atomic_compare_exchange_strong(&c->body_state, &expect, BODY_DONE)) {
		/* the sweeper has answered 408 and cancelled the read */
		gw_metric_http(c->route->name, 408);
		log_line(c, 408, "error=body_timeout");
		nng_aio_finish(c->aio, NNG_ETIMEDOUT); /* nng closes the connection */
		call_unref(c);
		return;
	}
	if (unlist_reading(c))
		call_unref(c); /* the list's reference */
	if (rv != 0) {
		log_line(c, 0, "error=body_read_failed");
		nng_aio_finish(c->aio, rv);
		call_unref(c);
		return;
	}
	c->route->fn(c);
}

/* The 408 is out (or failed): stop the read, which ends the call. */
static void body_408_written(void *arg)
{
	call *c = arg;
	nng_aio_cancel(c->rx);
	call_unref(c);
}

/* The sweeper found c past its deadline (c is off the list; its
 * reference is ours). A read cannot be abandoned without nng closing the
 * connection, so the 408 is written first, then the read is cancelled. */
static void body_late(call *c)
{
	int expect = BODY_READING;
	if (!atomic_compare_exchange_strong(&c->body_state, &expect, BODY_TIMED_OUT)) {
		call_unref(c);
		return;
	}
	char msg[200];
	snprintf(msg, sizeof(msg), "the body did not arrive within %d ms (truncated body?)",
	         gw_cfg.body_timeout_ms);
	json_t *j = gw_json_error("body_timeout", msg);
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s || nng_aio_alloc(&c->timer, body_408_written, c) != 0 ||
	    nng_http_res_alloc(&c->res408) != 0) {
		free(s);
		nng_aio_cancel(c->rx);
		call_unref(c);
		return;
	}
	nng_http_res_set_status(c->res408, 408);
	nng_http_res_set_header(c->res408, "Content-Type", "application/json");
	nng_http_res_set_header(c->res408, "Connection", "close");
	if (c->cors_origin)
		nng_http_res_set_header(c->res408, "Access-Control-Allow-Origin", c->cors_origin);
	nng_http_res_copy_data(c->res408, s, strlen(s));
	free(s);
	nng_aio_set_timeout(c->timer, 2000);
	nng_http_conn_write_res(c->conn, c->res408, c->timer);
}

static void sweep(void *arg)
{
	(void)arg;
	if (nng_aio_result(sweep_aio) != 0)
		return; /* stopped */
	int64_t now = gw_now_ms();
	call *late = NULL;
	nng_mtx_lock(reading_mtx);
	for (call *c = reading, *next; c; c = next) {
		next = c->rnext;
		if (c->body_deadline <= now) {
			unlink_reading(c);
			c->rnext = late; /* off the list: rnext is free for this */
			late = c;
		}
	}
	nng_mtx_unlock(reading_mtx);
	while (late) {
		call *c = late;
		late = c->rnext;
		body_late(c);
	}
	nng_sleep_aio(SWEEP_MS, sweep_aio);
}

/* Reads the body under --body-timeout-ms; a client that sent "Expect:
 * 100-continue" (curl does for large bodies) first gets its go-ahead,
 * else it would wait a second before sending. */
static void read_body(call *c, size_t len)
{
	if (!(c->body = malloc(len + 1)) || (!c->rx && nng_aio_alloc(&c->rx, body_done, c) != 0)) {
		c->close = true;
		respond_error(c, 503, "out_of_memory", "the gateway is out of memory", 1);
		return;
	}
	c->body_len = len;
	atomic_fetch_add(&c->refs, 1); /* the reading list's */
	c->body_deadline = gw_now_ms() + gw_cfg.body_timeout_ms;
	list_reading(c);
	const char *expect = nng_http_req_get_header(c->req, "Expect");
	if (expect && !strcasecmp(expect, "100-continue")) {
		nng_iov iov = { .iov_buf = (void *)continue_line, .iov_len = sizeof(continue_line) - 1 };
		c->continuing = true;
		nng_aio_set_iov(c->rx, 1, &iov);
		nng_http_conn_write_all(c->conn, c->rx);
		return;
	}
	start_read(c);
}

/* Content-Length and friends; answers the request itself on error. */
static void take_body(call *c)
{
	const char *te = nng_http_req_get_header(c->req, "Transfer-Encoding");
	const char *cl = nng_http_req_get_header(c->req, "Content-Length");
	int64_t len = 0;
	char msg[200];
	if (te && strcasecmp(te, "identity")) {
		c->close = true;
		respond_error(c, 411, "length_required",
		              "chunked bodies are not supported: send Content-Length", 0);
		return;
	}
	if (cl && cr_parse_int(cl, &len) < 0) {
		c->close = true;
		respond_error(c, 400, "bad_request", "Content-Length is not a number", 0);
		return;
	}
	if ((uint64_t)len > gw_cfg.max_body) {
		c->close = true;
		snprintf(msg, sizeof(msg), "the body is %lld bytes; at most %zu are accepted",
		         (long long)len, gw_cfg.max_body);
		respond_error(c, 413, "too_large", msg, 0);
		return;
	}
	if (len == 0) {
		c->route->fn(c);
		return;
	}
	if (!gw_mem_reserve((size_t)len)) {
		c->close = true;
		gw_metric_inc(GW_M_REJECTED);
		respond_error(c, 503, "overloaded", "the gateway holds as many request bodies as it "
		              "may (--max-inflight-bodies); retry later", 1);
		return;
	}
	c->reserved = (size_t)len;
	read_body(c, (size_t)len);
}

static const route *find_route(const char *path)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(routes[i].path, path))
			return &routes[i];
	return NULL;
}

static void on_request(nng_aio *aio)
{
	call *c = call_new();
	if (!c) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	c->aio = aio;
	atomic_init(&c->refs, 1);
	atomic_init(&c->body_state, BODY_READING);
	c->req = nng_aio_get_input(aio, 0);
	c->conn = nng_aio_get_input(aio, 2);
	c->t0 = gw_now_ms();
	const char *uri = nng_http_req_get_uri(c->req);
	size_t plen = strcspn(uri, "?#");
	snprintf(c->path, sizeof(c->path), "%.*s", (int)(plen < 127 ? plen : 127), uri);
	while (strlen(c->path) > 1 && c->path[strlen(c->path) - 1] == '/')
		c->path[strlen(c->path) - 1] = 0;
	const char *method = nng_http_req_get_method(c->req);
	snprintf(c->method, sizeof(c->method), "%s", method);
	const char *origin = nng_http_req_get_header(c->req, "Origin");
	if (origin && origin_allowed(origin)) {
		snprintf(c->cors_buf, sizeof(c->cors_buf), "%s", origin);
		c->cors_origin = c->cors_buf;
	}
	c->route = find_route(c->path);
	/* the body of a request we do not read would be parsed as the next one */
	const char *cl = nng_http_req_get_header(c->req, "Content-Length");
	bool has_body = (cl && strcmp(cl, "0")) || nng_http_req_get_header(c->req, "Transfer-Encoding");
	if (!c->route) {
		char msg[200];
		c->close = has_body;
		snprintf(msg, sizeof(msg), "no route %.100s (see docs/http-api.md)", c->path);
		respond_error(c, 404, "not_found", msg, 0);
		return;
	}
	if (!strcmp(method, "OPTIONS")) {
		c->close = has_body;
		preflight(c, origin);
		return;
	}
	bool get = !strcmp(c->route->method, "GET");
	if (strcmp(method, c->route->method) && !(get && !strcmp(method, "HEAD"))) {
		char msg[160];
		c->close = has_body;
		snprintf(msg, sizeof(msg), "%s takes %s, not %.16s", c->route->path, c->route->method, method);
		respond_error(c, 405, "method_not_allowed", msg, 0);
		return;
	}
	if (!authorized(c)) {
		c->close = has_body;
		respond_error(c, 401, "unauthorized",
		              "a valid API key is required: Authorization: Bearer KEY", 0);
		return;
	}
	take_body(c);
}

/* ---- start/stop -------------------------------------------------------- */

static bool loopback(const nng_url *u)
{
	const char *h = u->u_hostname;
	return !strcmp(h, "localhost") || !strncmp(h, "127.", 4) || !strcmp(h, "::1") ||
	       !strcmp(h, "[::1]");
}

static int listen_one(const char *url_s)
{
	nng_url *url;
	nng_http_server *srv;
	nng_http_handler *h;
	int rv;
	if ((rv = nng_url_parse(&url, url_s)) != 0) {
		cr_log("error", "start", "listen=%s error=\"%s\"", url_s, nng_strerror(rv));
		return -1;
	}
	if (!loopback(url) && gw_cfg.napi_keys == 0 && !gw_cfg.insecure_no_auth) {
		cr_log("error", "start", "listen=%s error=\"listening beyond loopback needs --api-keys "
		       "(or --insecure-no-auth)\"", url_s);
		nng_url_free(url);
		return -1;
	}
	if ((rv = nng_http_server_hold(&srv, url)) != 0 ||
	    (rv = nng_http_handler_alloc(&h, "/", on_request)) != 0) {
		cr_log("error", "start", "listen=%s error=\"%s\"", url_s, nng_strerror(rv));
		nng_url_free(url);
		return -1;
	}
	nng_url_free(url);
	servers = realloc(servers, (nservers + 1) * sizeof(*servers));
	handlers = realloc(handlers, (nservers + 1) * sizeof(*handlers));
	if (!servers || !handlers)
		return -1;
	if ((rv = nng_http_handler_set_method(h, NULL)) != 0 ||
	    (rv = nng_http_handler_set_tree(h)) != 0 ||
	    (rv = nng_http_handler_collect_body(h, false, 0)) != 0 ||
	    (rv = nng_http_server_add_handler(srv, h)) != 0 || (rv = nng_http_server_start(srv)) != 0) {
		cr_log("error", "start", "listen=%s error=\"%s\"", url_s, nng_strerror(rv));
		return -1;
	}
	servers[nservers] = srv;
	handlers[nservers] = h;
	nservers++;
	nng_sockaddr sa;
	int port = 0;
	if (nng_http_server_get_addr(srv, &sa) == 0)
		port = sa.s_family == NNG_AF_INET6 ? ntohs(sa.s_in6.sa_port) : ntohs(sa.s_in.sa_port);
	cr_log("info", "listening", "url=%s port=%d", url_s, port);
	return 0;
}

int gw_http_start(void)
{
	int rv;
	if ((rv = nng_mtx_alloc(&reading_mtx)) != 0 || (rv = nng_mtx_alloc(&spare_mtx)) != 0 ||
	    (rv = nng_aio_alloc(&sweep_aio, sweep, NULL)) != 0) {
		cr_log("error", "cannot start", "error=\"%s\"", nng_strerror(rv));
		return -1;
	}
	nng_sleep_aio(SWEEP_MS, sweep_aio);
	for (size_t i = 0; i < gw_cfg.nlisten; i++)
		if (listen_one(gw_cfg.listen[i]) < 0)
			return -1;
	return 0;
}

void gw_http_stop(void)
{
	for (size_t i = 0; i < nservers; i++) {
		nng_http_server_stop(servers[i]);
		nng_http_server_release(servers[i]);
	}
	if (sweep_aio)
		nng_aio_stop(sweep_aio); /* calls still listed die with the process */
}
