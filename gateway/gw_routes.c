/*
 * gw_routes.c — the gateway's routes: the route table, CORS, API keys,
 * and the JSON handlers. The transport (gw_http.c) hands each request
 * here through gw_http.h: gw_route_head once the head is in,
 * gw_route_body once the body is.
 *
 * One handler takes every method and path, so that every answer —
 * unknown paths, wrong methods, bad bodies — is JSON {error:{code,
 * message}}. Order of checks for each request: route (404), CORS
 * preflight (204 / 403), method (405), API key (401) here; then the
 * transport's body checks (413 / 501 / 408 / 503); then JSON size and
 * nesting, JSON itself (400 / 415), runtime (404), then the invocation
 * (its own statuses: 200, 400, 429, 502, 503, 504; 499 in the log when
 * the client went away and the runs were cancelled).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw_http.h"
#include "log.h"

struct gw_route {
	const char *path;
	const char *method; /* GET routes also answer HEAD */
	bool auth;
	void (*fn)(gw_call *c);
	const char *name; /* metrics label */
};

/* ---- invocation routes ------------------------------------------------- */

static void run_failed(gw_call *c, const gw_result *res)
{
	json_t *j = gw_json_error(res->code, res->message);
	if (c->piston)
		json_object_set_new(j, "message", json_string(res->message));
	else if (res->race)
		json_object_set_new(j, "race", json_incref(res->race));
	char extra[1100];
	snprintf(extra, sizeof(extra), "error=%s %s", res->code, res->summary);
	gw_http_json(c, res->status, j, res->retry_after, extra);
}

static void run_done(void *arg, const gw_result *res)
{
	gw_call *c = arg;
	if (c->counted)
		gw_metric_inflight(-1);
	if (res->status != 200) {
		run_failed(c, res);
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
	gw_http_json(c, 200, j, 0, extra);
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

/* Not JSON: 415 when it does not claim or look like JSON, else 400. */
static void bad_json(gw_call *c, const json_error_t *e)
{
	char msg[400];
	const char *ct = gw_call_header(c, "Content-Type");
	size_t ws = 0;
	while (ws < c->body_len && strchr(" \t\r\n", c->body[ws]))
		ws++;
	bool looks_json = ws < c->body_len && (c->body[ws] == '{' || c->body[ws] == '[');
	if (!c->piston && !is_json_type(ct) && !looks_json) {
		snprintf(msg, sizeof(msg), "the body is not JSON (Content-Type: %.100s); send application/json", ct);
		gw_http_error(c, 415, "unsupported_media_type", msg, 0);
	} else {
		snprintf(msg, sizeof(msg), "invalid JSON at line %d, column %d: %s", e->line, e->column, e->text);
		gw_http_error(c, 400, "bad_request", msg, 0);
	}
}

/* Parses the body; answers 400/415 itself and returns NULL then. */
static json_t *parse_body(gw_call *c)
{
	if (c->body_len == 0) {
		gw_http_error(c, 400, "bad_request", "the request has no body: send a JSON object", 0);
		return NULL;
	}
	char msg[400];
	if (gw_json_prescan(c->body, c->body_len, msg, sizeof(msg)) < 0) {
		gw_http_error(c, 400, "bad_request", msg, 0);
		return NULL;
	}
	json_error_t e;
	json_t *j = json_loadb(c->body, c->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (!j)
		bad_json(c, &e);
	return j;
}

static void known_runtimes(char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = 0;
	for (gw_runtime *rt = gw_pool_runtimes(); rt && off < len; rt = rt->next)
		off += (size_t)snprintf(buf + off, len - off, "%s%s %s", off ? ", " : "", rt->name, rt->version);
}

/* Under lock, which it releases: the runtime was not found. */
static void unknown_runtime(gw_call *c)
{
	char known[300], msg[512];
	known_runtimes(known, sizeof(known));
	gw_unlock();
	snprintf(msg, sizeof(msg), "unknown runtime \"%.64s\"%s%.32s (available: %s)",
	         c->run.runtime, c->run.version ? " version " : "",
	         c->run.version ? c->run.version : "", known[0] ? known : "none yet");
	/* Piston answers 400 for an unknown language */
	gw_http_error(c, c->piston ? 400 : 404, "unknown_runtime", msg, 0);
}

static void invoke_route(gw_call *c)
{
	json_t *body = parse_body(c);
	if (!body)
		return;
	char err[512];
	int rc = c->piston ? gw_piston_from_json(body, &c->run, err, sizeof(err))
	                   : gw_run_from_json(body, &c->run, err, sizeof(err));
	json_decref(body);
	if (rc < 0) {
		gw_http_error(c, 400, "bad_request", err, 0);
		return;
	}
	c->runtime = c->run.runtime;
	if (gw_http_draining()) {
		gw_http_error(c, 503, "draining", "the gateway is shutting down; retry on another", 1);
		return;
	}
	gw_lock();
	gw_runtime *rt = gw_pool_find(c->run.runtime, c->run.version);
	if (!rt) {
		unknown_runtime(c);
		return;
	}
	rc = gw_run_bind(&c->run, rt, err, sizeof(err));
	gw_unlock();
	if (rc < 0) {
		gw_http_error(c, 400, "bad_request", err, 0);
		return;
	}
	c->counted = true;
	gw_metric_inflight(1);
	gw_invoke(rt, &c->run.req, &c->run.opts, run_done, c, &c->inv);
}

static void route_run(gw_call *c) { invoke_route(c); }

static void route_piston_execute(gw_call *c)
{
	c->piston = true;
	invoke_route(c);
}

static void route_runtimes(gw_call *c)
{
	gw_lock();
	json_t *j = gw_json_runtimes();
	gw_unlock();
	gw_http_json(c, 200, j, 0, NULL);
}

static void route_piston_runtimes(gw_call *c)
{
	gw_lock();
	json_t *j = gw_piston_runtimes();
	gw_unlock();
	gw_http_json(c, 200, j, 0, NULL);
}

static void route_healthz(gw_call *c)
{
	gw_http_json(c, 200, json_pack("{s:b}", "ok", 1), 0, NULL);
}

static void route_readyz(gw_call *c)
{
	gw_lock();
	int n = gw_pool_healthy_total();
	gw_unlock();
	bool draining = gw_http_draining();
	bool ready = n > 0 && !draining;
	gw_http_json(c, ready ? 200 : 503,
	             json_pack("{s:b, s:i, s:b}", "ready", ready, "healthy_workers", n, "draining",
	                       draining),
	             ready ? 0 : 1, NULL);
}

static void route_metrics(gw_call *c)
{
	size_t len;
	char *s = gw_metrics_render(&len);
	if (!s) {
		gw_http_error(c, 500, "internal", "out of memory rendering metrics", 0);
		return;
	}
	gw_http_reply(c, 200, s, len, "text/plain; version=0.0.4; charset=utf-8", 0, NULL);
}

static const gw_route routes[] = {
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

static void preflight(gw_call *c, const char *origin, bool allowed)
{
	if (!allowed) {
		char msg[300];
		snprintf(msg, sizeof(msg), "origin %.200s is not allowed (see --cors-origins)",
		         origin ? origin : "(none)");
		gw_http_error(c, 403, "cors_forbidden", msg, 0);
		return;
	}
	const char *hdrs = gw_call_header(c, "Access-Control-Request-Headers");
	gw_call_add_header(c, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
	gw_call_add_header(c, "Access-Control-Allow-Headers",
	                   hdrs ? hdrs : "Content-Type, Authorization");
	gw_call_add_header(c, "Access-Control-Max-Age", "600");
	gw_http_reply(c, 204, NULL, 0, NULL, 0, "preflight=1");
}

static bool authorized(gw_call *c)
{
	if (!c->route->auth || gw_cfg.napi_keys == 0)
		return true;
	const char *h = gw_call_header(c, "Authorization");
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

static const gw_route *find_route(const char *path)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(routes[i].path, path))
			return &routes[i];
	return NULL;
}

/* Origin allowed: every reply of c carries the CORS headers. */
static bool cors(gw_call *c, const char *origin)
{
	if (!origin || !origin_allowed(origin))
		return false;
	gw_call_add_header(c, "Access-Control-Allow-Origin", origin);
	gw_call_add_header(c, "Access-Control-Expose-Headers", "Retry-After");
	gw_call_add_header(c, "Vary", "Origin");
	return true;
}

bool gw_route_head(gw_call *c)
{
	const char *origin = gw_call_header(c, "Origin");
	bool allowed = cors(c, origin);
	c->metric = "other";
	c->route = find_route(c->path);
	char msg[200];
	if (!c->route) {
		snprintf(msg, sizeof(msg), "no route %.100s (see docs/http-api.md)", c->path);
		gw_http_error(c, 404, "not_found", msg, 0);
		return false;
	}
	c->metric = c->route->name;
	if (!strcmp(c->method, "OPTIONS")) {
		preflight(c, origin, allowed);
		return false;
	}
	bool get = !strcmp(c->route->method, "GET");
	if (strcmp(c->method, c->route->method) && !(get && !strcmp(c->method, "HEAD"))) {
		snprintf(msg, sizeof(msg), "%s takes %s, not %.16s", c->route->path, c->route->method,
		         c->method);
		gw_call_add_header(c, "Allow", get ? "GET, HEAD, OPTIONS" : "POST, OPTIONS");
		gw_http_error(c, 405, "method_not_allowed", msg, 0);
		return false;
	}
	if (!authorized(c)) {
		gw_call_add_header(c, "WWW-Authenticate", "Bearer");
		gw_http_error(c, 401, "unauthorized",
		              "a valid API key is required: Authorization: Bearer KEY", 0);
		return false;
	}
	return true;
}

void gw_route_body(gw_call *c) { c->route->fn(c); }

void gw_route_client_gone(gw_call *c)
{
	gw_lock();
	if (c->inv)
		gw_invoke_abort(c->inv, "the client closed its connection before the reply");
	gw_unlock();
	gw_invoke_flush();
}

void gw_route_end(gw_call *c) { gw_run_free(&c->run); }
