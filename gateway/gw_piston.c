/*
 * gw_piston.c — Piston v2 compatibility: POST /api/v2/execute and
 * GET /api/v2/runtimes with Piston's shapes, so clients written for
 * Piston work unchanged against corral.
 *
 * Request: language (name or alias), version ("*" or a prefix), files
 * [{name?, content, encoding?: utf8|base64|hex}], stdin, args,
 * compile_timeout / run_timeout (ms), compile_cpu_time / run_cpu_time
 * (ms), compile_memory_limit / run_memory_limit (bytes, -1: the default;
 * else at most gw_limit_max, as /v1's limits). Unknown fields are
 * ignored, as Piston does.
 *
 * Response: {language, version, run, compile?}; each stage has stdout,
 * stderr, output (both interleaved in the order written, rebuilt from
 * the worker's chunks), code, signal, message, status, cpu_time,
 * wall_time, memory. Piston's strings are text: bytes that are not UTF-8
 * become U+FFFD here (the /v1 API gives them exactly, in base64).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"

static int piston_fail(char *err, size_t errlen, const char *msg, const char *field)
{
	snprintf(err, errlen, msg, field);
	return -1;
}

/* A Piston limit (field) sets limit i: an integer in [0, gw_limit_max(i)],
 * or -1 / null for the default. */
static int limit(json_t *body, const char *field, int i, cr_limits *l, char *err, size_t errlen)
{
	json_t *v = json_object_get(body, field);
	if (!v || json_is_null(v) || (json_is_integer(v) && json_integer_value(v) == -1))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > gw_limit_max(i)) {
		snprintf(err, errlen, "%s must be an integer in [0, %lld] (-1 for the default)", field,
		         (long long)gw_limit_max(i));
		return -1;
	}
	*cr_limit_ref(l, i) = json_integer_value(v);
	return 0;
}

/* Piston's limit fields: which stage, which limit. */
static const struct {
	const char *field;
	bool compile;
	int limit; /* index of cr_limit_name */
} piston_limits[] = {
	{ "compile_timeout", true, 0 }, { "run_timeout", false, 0 },
	{ "compile_cpu_time", true, 1 }, { "run_cpu_time", false, 1 },
	{ "compile_memory_limit", true, 2 }, { "run_memory_limit", false, 2 },
};

static int limits(json_t *body, gw_run *r, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(piston_limits) / sizeof(piston_limits[0]); i++)
		if (limit(body, piston_limits[i].field, piston_limits[i].limit,
		          piston_limits[i].compile ? &r->req.compile_limits : &r->req.limits, err,
		          errlen) < 0)
			return -1;
	return 0;
}

int gw_piston_from_json(json_t *body, gw_run *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->req.op = CR_OP_RUN;
	r->req.limits = r->req.compile_limits = CR_LIMITS_UNSET;
	r->opts.hedge_ms = -2;
	r->body = json_incref(body);
	if (!json_is_object(body))
		return piston_fail(err, errlen, "the body must be a JSON object%s", "");
	json_t *lang = json_object_get(body, "language"), *ver = json_object_get(body, "version");
	if (!json_is_string(lang) || json_string_length(lang) == 0)
		return piston_fail(err, errlen, "%s is required as a string", "language");
	r->runtime = (char *)json_string_value(lang);
	if (ver && !json_is_null(ver)) {
		if (!json_is_string(ver))
			return piston_fail(err, errlen, "%s must be a string", "version");
		r->version = (char *)json_string_value(ver);
	}
	json_t *files = json_object_get(body, "files");
	if (!files)
		return piston_fail(err, errlen, "%s is required", "files");
	if (gw_parse_files(r, files, err, errlen) < 0)
		return -1;
	json_t *v;
	if ((v = json_object_get(body, "stdin")) && !json_is_null(v) &&
	    gw_parse_text(r, v, "stdin", NULL, &r->req.stdin_data, &r->req.stdin_len, err, errlen) < 0)
		return -1;
	if ((v = json_object_get(body, "args")) && !json_is_null(v) &&
	    gw_parse_args(r, v, err, errlen) < 0)
		return -1;
	return limits(body, r, err, errlen);
}

static json_t *text(const msgpack_object *o)
{
	const char *p = "";
	size_t n = 0, len;
	if (o)
		cr_obj_bytes(o, &p, &n);
	if (gw_utf8_valid(p, n))
		return json_stringn(p, n);
	char *s = gw_utf8_lossy(p, n, &len);
	json_t *j = s ? json_stringn(s, len) : json_string("");
	free(s);
	return j;
}

static json_t *output(const msgpack_object *s)
{
	size_t n, len;
	char *o = gw_stage_output(s, &n);
	if (!o)
		return json_string("");
	char *t = gw_utf8_lossy(o, n, &len);
	free(o);
	json_t *j = t ? json_stringn(t, len) : json_string("");
	free(t);
	return j;
}

static json_t *piston_int(const msgpack_object *o)
{
	int64_t v;
	return o && cr_obj_int(o, &v) ? json_integer(v) : json_null();
}

static bool is_true(const msgpack_object *o)
{
	return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

/* Piston's status and message for a corral stage. */
static void status_of(const msgpack_object *s, json_t *st)
{
	const msgpack_object *status = cr_obj_get(s, "status");
	const char *sig = "";
	size_t sn = 0;
	int64_t code = 0;
	char msg[96];
	cr_obj_bytes(cr_obj_get(s, "signal"), &sig, &sn);
	cr_obj_int(cr_obj_get(s, "exit_code"), &code);
	const char *ps = NULL;
	msg[0] = 0;
	if (cr_obj_eq(status, "ok")) {
		ps = NULL;
	} else if (cr_obj_eq(status, "exit")) {
		ps = "RE";
		snprintf(msg, sizeof(msg), "Exited with error status %lld", (long long)code);
	} else if (cr_obj_eq(status, "signal")) {
		ps = "SG";
		snprintf(msg, sizeof(msg), "Killed by signal %.*s", (int)sn, sig);
	} else if (cr_obj_eq(status, "timeout")) {
		ps = "TO";
		snprintf(msg, sizeof(msg), "Time limit exceeded");
	} else if (cr_obj_eq(status, "memory")) {
		ps = "SG";
		snprintf(msg, sizeof(msg), "Memory limit exceeded");
	} else if (cr_obj_eq(status, "output")) {
		bool err_only = is_true(cr_obj_get(s, "stderr_truncated")) &&
		                !is_true(cr_obj_get(s, "stdout_truncated"));
		ps = err_only ? "EL" : "OL";
		snprintf(msg, sizeof(msg), "%s length exceeded", err_only ? "stderr" : "stdout");
	} else {
		ps = "XX";
		snprintf(msg, sizeof(msg), "Internal error");
	}
	json_object_set_new(st, "status", ps ? json_string(ps) : json_null());
	json_object_set_new(st, "message", msg[0] ? json_string(msg) : json_null());
}

static json_t *stage(const msgpack_object *s)
{
	json_t *st = json_object();
	const char *sig;
	size_t sn;
	json_object_set_new(st, "stdout", text(cr_obj_get(s, "stdout")));
	json_object_set_new(st, "stderr", text(cr_obj_get(s, "stderr")));
	json_object_set_new(st, "output", output(s));
	json_object_set_new(st, "code", piston_int(cr_obj_get(s, "exit_code")));
	json_object_set_new(st, "signal", cr_obj_bytes(cr_obj_get(s, "signal"), &sig, &sn)
	                                      ? json_stringn(sig, sn)
	                                      : json_null());
	status_of(s, st);
	json_object_set_new(st, "cpu_time", piston_int(cr_obj_get(s, "cpu_ms")));
	json_object_set_new(st, "wall_time", piston_int(cr_obj_get(s, "wall_ms")));
	json_object_set_new(st, "memory", piston_int(cr_obj_get(s, "memory_bytes")));
	return st;
}

json_t *gw_piston_reply(const msgpack_object *reply, const gw_runtime *rt)
{
	json_t *o = json_pack("{s:s, s:s}", "language", rt->name, "version", rt->version);
	const msgpack_object *c = cr_obj_get(reply, "compile"), *run = cr_obj_get(reply, "run");
	if (c && c->type == MSGPACK_OBJECT_MAP)
		json_object_set_new(o, "compile", stage(c));
	json_object_set_new(o, "run", run && run->type == MSGPACK_OBJECT_MAP ? stage(run) : json_null());
	return o;
}

json_t *gw_piston_runtimes(void)
{
	json_t *list = json_array();
	for (gw_runtime *rt = gw_pool_runtimes(); rt; rt = rt->next) {
		bool any = false;
		for (gw_worker *w = gw_pool_workers(); w && !any; w = w->next)
			any = w->rt == rt && !w->removed;
		if (!any)
			continue;
		json_t *al = json_array();
		for (size_t i = 0; i < rt->naliases; i++)
			json_array_append_new(al, json_string(rt->aliases[i]));
		json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:s}", "language", rt->name,
		                                      "version", rt->version, "aliases", al, "runtime",
		                                      rt->name));
	}
	return list;
}
