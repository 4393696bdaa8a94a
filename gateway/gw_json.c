/*
 * gw_json.c — the /v1 API's JSON: request bodies to wire requests, worker
 * replies to JSON, the runtime list and error bodies.
 *
 * Before jansson builds a tree, gw_json_prescan counts the body's values
 * and nesting on the raw bytes: a tree costs some 40 bytes a value, so an
 * 8 MiB body of tiny array elements would cost ~170 MB; past
 * GW_JSON_MAX_VALUES or GW_JSON_MAX_DEPTH the body is refused unbuilt.
 *
 * A request is checked field by field with messages that name the field
 * ("files[2].content must be a string"), so a 400 says what to fix.
 * Limits must be integers in [0, gw_limit_max] (the deadline is computed
 * from them). File contents point into the parsed body (kept alive by
 * gw_run) or into decoded buffers the gw_run owns; cr_request_encode
 * copies them out.
 *
 * Output bytes arrive as msgpack bin: they become JSON strings when they
 * are valid UTF-8 and not control-heavy (their \u00XX escapes would make
 * the string longer than base64), else base64 with `<stream>_encoding:
 * "base64"`.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "wire_json.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- bounds on the raw body -------------------------------------------- */

/* Index of the quote closing the string opened at p[i] (n if none). */
static size_t string_end(const char *p, size_t n, size_t i)
{
	for (i++; i < n && p[i] != '"'; i++)
		if (p[i] == '\\')
			i++;
	return i < n ? i : n;
}

static bool json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Values are counted as a container's first element plus one per comma
 * outside strings: exact for valid JSON, and what jansson builds of an
 * invalid body (before it gives up) is a valid prefix. A body that does
 * not start with [ or { is one scalar at most. */
int gw_json_prescan(const char *p, size_t n, char *err, size_t errlen)
{
	size_t i = 0, values = 0, depth = 0;
	bool opened = false;
	while (i < n && json_space(p[i]))
		i++;
	if (i == n || (p[i] != '[' && p[i] != '{'))
		return 0;
	for (; i < n; i++) {
		char c = p[i];
		if (json_space(c))
			continue;
		values += opened && c != ']' && c != '}';
		opened = false;
		if (c == '"')
			i = string_end(p, n, i);
		else if (c == '[' || c == '{')
			depth++, opened = true;
		else if (c == ']' || c == '}')
			depth -= depth > 0;
		else if (c == ',')
			values++;
		if (depth > GW_JSON_MAX_DEPTH)
			return fail(err, errlen, "the body nests deeper than %d arrays/objects",
			            GW_JSON_MAX_DEPTH);
		if (values > GW_JSON_MAX_VALUES)
			return fail(err, errlen,
			            "the body holds more than %d JSON values (array elements and object "
			            "members, at any depth)", GW_JSON_MAX_VALUES);
	}
	return 0;
}

static void *own(gw_run *r, void *p)
{
	void **n = p ? realloc(r->owned, (r->nowned + 1) * sizeof(*n)) : NULL;
	if (!n) {
		free(p);
		return NULL;
	}
	r->owned = n;
	n[r->nowned++] = p;
	return p;
}

void gw_run_free(gw_run *r)
{
	for (size_t i = 0; i < r->nowned; i++)
		free(r->owned[i]);
	free(r->owned);
	free(r->req.files);
	free(r->req.args);
	free(r->req.env);
	free(r->unnamed);
	json_decref(r->body);
	memset(r, 0, sizeof(*r));
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* A string (with an optional encoding) as bytes. */
int gw_parse_text(gw_run *r, json_t *v, const char *what, const char *encoding, char **p,
                  size_t *n, char *err, size_t errlen)
{
	if (!json_is_string(v))
		return fail(err, errlen, "%s must be a string, not %s", what, type_name(v));
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	if (!encoding || !strcmp(encoding, "utf8") || !strcmp(encoding, "utf-8")) {
		*p = (char *)s;
		*n = len;
		return 0;
	}
	char *out;
	if (!strcmp(encoding, "base64"))
		out = gw_base64_decode(s, len, n);
	else if (!strcmp(encoding, "hex"))
		out = gw_hex_decode(s, len, n);
	else
		return fail(err, errlen, "%s: encoding must be \"utf8\", \"base64\" or \"hex\", not \"%s\"",
		            what, encoding);
	if (!out)
		return fail(err, errlen, "%s is not valid %s", what, encoding);
	if (!own(r, out))
		return fail(err, errlen, "out of memory");
	*p = out;
	return 0;
}

static int parse_file(gw_run *r, json_t *f, size_t i, char *err, size_t errlen)
{
	char what[48];
	snprintf(what, sizeof(what), "files[%zu]", i);
	if (!json_is_object(f))
		return fail(err, errlen, "%s must be an object {name, content, encoding?}", what);
	json_t *name = json_object_get(f, "name"), *enc = json_object_get(f, "encoding");
	cr_file *cf = &r->req.files[i];
	if (enc && !json_is_string(enc))
		return fail(err, errlen, "%s.encoding must be a string", what);
	if (name && !json_is_null(name)) {
		if (!json_is_string(name))
			return fail(err, errlen, "%s.name must be a string", what);
		const char *s = json_string_value(name);
		size_t len = json_string_length(name);
		if (!cr_valid_path(s, len, 255))
			return fail(err, errlen,
			            "%s.name \"%.64s\" is not an acceptable relative path "
			            "(no \"..\", no leading \"/\", no empty component, at most 255 bytes)",
			            what, s);
		cf->name = (char *)s;
	} else {
		r->unnamed[i] = true;
	}
	char cwhat[64];
	snprintf(cwhat, sizeof(cwhat), "%s.content", what);
	json_t *content = json_object_get(f, "content");
	if (!content)
		return fail(err, errlen, "%s needs a \"content\"", what);
	return gw_parse_text(r, content, cwhat, enc ? json_string_value(enc) : NULL, &cf->data,
	                     &cf->len, err, errlen);
}

int gw_parse_files(gw_run *r, json_t *files, char *err, size_t errlen)
{
	if (!json_is_array(files))
		return fail(err, errlen, "files must be an array of {name, content}");
	size_t n = json_array_size(files);
	if (n == 0)
		return fail(err, errlen, "files must not be empty");
	if (n > cr_caps_default.max_files)
		return fail(err, errlen, "too many files: %zu, at most %zu", n, cr_caps_default.max_files);
	r->req.files = calloc(n, sizeof(cr_file));
	r->unnamed = calloc(n, sizeof(bool));
	if (!r->req.files || !r->unnamed)
		return fail(err, errlen, "out of memory");
	r->req.nfiles = n;
	for (size_t i = 0; i < n; i++)
		if (parse_file(r, json_array_get(files, i), i, err, errlen) < 0)
			return -1;
	return 0;
}

static bool has_nul(json_t *s)
{
	return strlen(json_string_value(s)) != json_string_length(s);
}

int gw_parse_args(gw_run *r, json_t *args, char *err, size_t errlen)
{
	if (!json_is_array(args))
		return fail(err, errlen, "args must be an array of strings");
	size_t n = json_array_size(args);
	r->req.args = calloc(n + 1, sizeof(char *));
	if (!r->req.args)
		return fail(err, errlen, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *a = json_array_get(args, i);
		if (!json_is_string(a))
			return fail(err, errlen, "args[%zu] must be a string, not %s", i, type_name(a));
		if (has_nul(a))
			return fail(err, errlen, "args[%zu] contains a NUL character", i);
		r->req.args[i] = (char *)json_string_value(a);
	}
	r->req.nargs = n;
	return 0;
}

static int parse_env(gw_run *r, json_t *env, char *err, size_t errlen)
{
	if (!json_is_object(env))
		return fail(err, errlen, "env must be an object of strings");
	r->req.env = calloc(json_object_size(env) + 1, sizeof(cr_kv));
	if (!r->req.env)
		return fail(err, errlen, "out of memory");
	const char *k;
	json_t *v;
	json_object_foreach(env, k, v) {
		if (!json_is_string(v))
			return fail(err, errlen, "env.%.64s must be a string, not %s", k, type_name(v));
		if (has_nul(v) || strlen(k) == 0)
			return fail(err, errlen, "env.%.64s contains a NUL character or is empty", k);
		r->req.env[r->req.nenv].key = (char *)k;
		r->req.env[r->req.nenv].value = (char *)json_string_value(v);
		r->req.nenv++;
	}
	return 0;
}

/* A time limit bounds the deadline (compile + run + slack), a byte or
 * pid count only what the worker will accept. */
int64_t gw_limit_max(int i)
{
	static const int64_t max[CR_NLIMITS] = {
		86400000, 86400000, (int64_t)1 << 40, 4194304, (int64_t)1 << 40, (int64_t)1 << 40,
	};
	return max[i];
}

static int parse_limit(json_t *v, const char *what, const char *k, int i, int64_t *out,
                       char *err, size_t errlen)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= gw_limit_max(i)) {
		*out = json_integer_value(v);
		return 0;
	}
	char got[48];
	if (json_is_integer(v))
		snprintf(got, sizeof(got), "%lld", (long long)json_integer_value(v));
	else
		snprintf(got, sizeof(got), "%s", type_name(v));
	return fail(err, errlen, "%s.%s must be a non-negative integer, at most %lld (the gateway's "
	            "maximum), not %s", what, k, (long long)gw_limit_max(i), got);
}

static int parse_limits(json_t *o, const char *what, cr_limits *l, char *err, size_t errlen)
{
	*l = CR_LIMITS_UNSET;
	if (!o || json_is_null(o))
		return 0;
	if (!json_is_object(o))
		return fail(err, errlen, "%s must be an object", what);
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		int i;
		for (i = 0; i < CR_NLIMITS; i++)
			if (!strcmp(k, cr_limit_name(i)))
				break;
		if (i == CR_NLIMITS)
			return fail(err, errlen,
			            "%s.%.64s is not a limit (wall_ms, cpu_ms, memory_bytes, pids, "
			            "output_bytes, file_bytes)", what, k);
		if (!json_is_null(v) && parse_limit(v, what, k, i, cr_limit_ref(l, i), err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int parse_opts(json_t *body, gw_invoke_opts *o, char *err, size_t errlen)
{
	json_t *race = json_object_get(body, "race"), *hedge = json_object_get(body, "hedge_ms");
	o->race = 0;
	o->hedge_ms = -2;
	if (race && !json_is_null(race)) {
		if (!json_is_integer(race) || json_integer_value(race) < 1 || json_integer_value(race) > 2)
			return fail(err, errlen, "race must be 1 or 2");
		o->race = (int)json_integer_value(race);
	}
	if (hedge && !json_is_null(hedge)) {
		if (!json_is_integer(hedge) || json_integer_value(hedge) < 0 ||
		    json_integer_value(hedge) > 3600000)
			return fail(err, errlen,
			            "hedge_ms must be an integer in [0, 3600000] (0: the runtime's observed p95)");
		o->hedge_ms = (int)json_integer_value(hedge);
	}
	return 0;
}

static const char *const v1_keys[] = {
	"runtime", "version", "files", "code", "entry", "stdin", "stdin_encoding", "args", "env",
	"limits", "compile_limits", "race", "hedge_ms", NULL
};

static int check_keys(json_t *body, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	json_object_foreach(body, k, v) {
		size_t i;
		for (i = 0; v1_keys[i]; i++)
			if (!strcmp(k, v1_keys[i]))
				break;
		if (!v1_keys[i])
			return fail(err, errlen,
			            "unknown field \"%.64s\" (fields: runtime, version, files, code, entry, "
			            "stdin, stdin_encoding, args, env, limits, compile_limits, race, hedge_ms)",
			            k);
	}
	return 0;
}

static int parse_source(gw_run *r, json_t *body, char *err, size_t errlen)
{
	json_t *files = json_object_get(body, "files"), *code = json_object_get(body, "code");
	if (files && code)
		return fail(err, errlen, "give either files or code, not both");
	if (!files && !code)
		return fail(err, errlen, "missing files (or code)");
	if (files)
		return gw_parse_files(r, files, err, errlen);
	r->req.files = calloc(1, sizeof(cr_file));
	r->unnamed = calloc(1, sizeof(bool));
	if (!r->req.files || !r->unnamed)
		return fail(err, errlen, "out of memory");
	r->req.nfiles = 1;
	r->unnamed[0] = true;
	return gw_parse_text(r, code, "code", NULL, &r->req.files[0].data, &r->req.files[0].len, err,
	                     errlen);
}

int gw_run_from_json(json_t *body, gw_run *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->req.op = CR_OP_RUN;
	r->body = json_incref(body);
	if (!json_is_object(body))
		return fail(err, errlen, "the body must be a JSON object, not %s", type_name(body));
	if (check_keys(body, err, errlen) < 0)
		return -1;
	json_t *rt = json_object_get(body, "runtime"), *ver = json_object_get(body, "version");
	if (!json_is_string(rt) || json_string_length(rt) == 0)
		return fail(err, errlen, "runtime must be a non-empty string (see GET /v1/runtimes)");
	r->runtime = (char *)json_string_value(rt);
	if (ver && !json_is_null(ver)) {
		if (!json_is_string(ver))
			return fail(err, errlen, "version must be a string");
		r->version = (char *)json_string_value(ver);
	}
	if (parse_source(r, body, err, errlen) < 0)
		return -1;
	json_t *v;
	if ((v = json_object_get(body, "entry")) && !json_is_null(v)) {
		if (!json_is_string(v))
			return fail(err, errlen, "entry must be a string, one of the files' names");
		r->req.entry = (char *)json_string_value(v);
	}
	if ((v = json_object_get(body, "stdin")) && !json_is_null(v)) {
		json_t *enc = json_object_get(body, "stdin_encoding");
		if (enc && !json_is_string(enc))
			return fail(err, errlen, "stdin_encoding must be a string");
		if (gw_parse_text(r, v, "stdin", enc ? json_string_value(enc) : NULL, &r->req.stdin_data,
		                  &r->req.stdin_len, err, errlen) < 0)
			return -1;
	}
	if ((v = json_object_get(body, "args")) && !json_is_null(v) &&
	    gw_parse_args(r, v, err, errlen) < 0)
		return -1;
	if ((v = json_object_get(body, "env")) && !json_is_null(v) && parse_env(r, v, err, errlen) < 0)
		return -1;
	if (parse_limits(json_object_get(body, "limits"), "limits", &r->req.limits, err, errlen) < 0 ||
	    parse_limits(json_object_get(body, "compile_limits"), "compile_limits",
	                 &r->req.compile_limits, err, errlen) < 0)
		return -1;
	return parse_opts(body, &r->opts, err, errlen);
}

int gw_run_bind(gw_run *r, gw_runtime *rt, char *err, size_t errlen)
{
	for (size_t i = 0; i < r->req.nfiles; i++) {
		if (!r->unnamed[i])
			continue;
		char *name = i == 0 ? strdup(rt->entry) : NULL;
		if (i > 0 && asprintf(&name, "file%zu.code", i) < 0)
			name = NULL;
		if (!own(r, name))
			return fail(err, errlen, "out of memory");
		r->req.files[i].name = name;
	}
	if (r->req.entry) {
		size_t i;
		for (i = 0; i < r->req.nfiles; i++)
			if (!strcmp(r->req.files[i].name, r->req.entry))
				break;
		if (i == r->req.nfiles)
			return fail(err, errlen, "entry \"%.64s\" is not one of the files", r->req.entry);
	}
	return 0;
}

/* ---- replies ----------------------------------------------------------- */

static json_t *int_or_null(const msgpack_object *o)
{
	int64_t v;
	return o && cr_obj_int(o, &v) ? json_integer(v) : json_null();
}

static json_t *str_or_null(const msgpack_object *o)
{
	const char *p;
	size_t n;
	if (!o || !cr_obj_bytes(o, &p, &n))
		return json_null();
	return gw_utf8_valid(p, n) ? json_stringn(p, n) : json_null();
}

static bool bool_of(const msgpack_object *o)
{
	return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

/* True when the control characters of valid UTF-8 text (each \u00XX in
 * JSON; tab, newline and carriage return aside) would make its JSON
 * string longer than its base64 form. Output under GW_TEXT_ALWAYS bytes
 * stays text whatever it holds (a coloured test report's ESCs): escaping
 * it costs at most 6x of little, and a page shows it as it is. */
#define GW_TEXT_ALWAYS 4096
static bool control_heavy(const char *p, size_t n)
{
	if (n < GW_TEXT_ALWAYS)
		return false;
	size_t ctl = 0;
	for (size_t i = 0; i < n; i++)
		ctl += (unsigned char)p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r';
	return n + 5 * ctl > (n + 2) / 3 * 4;
}

/* stdout/stderr: a UTF-8 string, or base64 with an encoding field when
 * the bytes are not UTF-8 or are control-heavy. */
static void set_bytes(json_t *st, const char *key, const msgpack_object *o)
{
	const char *p = "";
	size_t n = 0;
	char enc_key[32];
	snprintf(enc_key, sizeof(enc_key), "%s_encoding", key);
	if (o)
		cr_obj_bytes(o, &p, &n);
	if (gw_utf8_valid(p, n) && !control_heavy(p, n)) {
		json_object_set_new(st, key, json_stringn(p, n));
		json_object_set_new(st, enc_key, json_string("utf8"));
		return;
	}
	size_t len;
	char *b = cr_base64(p, n);
	len = b ? strlen(b) : 0;
	json_object_set_new(st, key, b ? json_stringn(b, len) : json_null());
	json_object_set_new(st, enc_key, json_string("base64"));
	free(b);
}

static json_t *stage_json(const msgpack_object *s)
{
	json_t *st = json_object();
	json_object_set_new(st, "status", str_or_null(cr_obj_get(s, "status")));
	json_object_set_new(st, "exit_code", int_or_null(cr_obj_get(s, "exit_code")));
	json_object_set_new(st, "signal", str_or_null(cr_obj_get(s, "signal")));
	set_bytes(st, "stdout", cr_obj_get(s, "stdout"));
	set_bytes(st, "stderr", cr_obj_get(s, "stderr"));
	json_object_set_new(st, "stdout_truncated", json_boolean(bool_of(cr_obj_get(s, "stdout_truncated"))));
	json_object_set_new(st, "stderr_truncated", json_boolean(bool_of(cr_obj_get(s, "stderr_truncated"))));
	json_object_set_new(st, "wall_ms", int_or_null(cr_obj_get(s, "wall_ms")));
	json_object_set_new(st, "cpu_ms", int_or_null(cr_obj_get(s, "cpu_ms")));
	json_object_set_new(st, "memory_bytes", int_or_null(cr_obj_get(s, "memory_bytes")));
	return st;
}

json_t *gw_json_reply(const msgpack_object *reply, const gw_runtime *rt)
{
	json_t *o = json_object();
	const msgpack_object *r = cr_obj_get(reply, "runtime");
	json_object_set_new(o, "runtime",
	                    json_pack("{s:o, s:o}", "name",
	                              r ? str_or_null(cr_obj_get(r, "name")) : json_string(rt->name),
	                              "version",
	                              r ? str_or_null(cr_obj_get(r, "version")) : json_string(rt->version)));
	const msgpack_object *c = cr_obj_get(reply, "compile"), *run = cr_obj_get(reply, "run");
	if (c && c->type == MSGPACK_OBJECT_MAP)
		json_object_set_new(o, "compile", stage_json(c));
	json_object_set_new(o, "run", run && run->type == MSGPACK_OBJECT_MAP ? stage_json(run) : json_null());
	return o;
}

char *gw_stage_output(const msgpack_object *s, size_t *len)
{
	const char *out = "", *err = "";
	size_t on = 0, en = 0, oi = 0, ei = 0;
	cr_obj_bytes(cr_obj_get(s, "stdout"), &out, &on);
	cr_obj_bytes(cr_obj_get(s, "stderr"), &err, &en);
	char *buf = malloc(on + en + 1), *b = buf;
	if (!buf)
		return NULL;
	const msgpack_object *ch = cr_obj_get(s, "chunks");
	if (ch && ch->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t i = 0; i < ch->via.array.size; i++) {
			int64_t n;
			if (!cr_obj_int(&ch->via.array.ptr[i], &n))
				continue;
			if (n > 0) {
				size_t k = (size_t)n < on - oi ? (size_t)n : on - oi;
				memcpy(b, out + oi, k);
				b += k, oi += k;
			} else if (n < 0) {
				size_t k = (size_t)-n < en - ei ? (size_t)-n : en - ei;
				memcpy(b, err + ei, k);
				b += k, ei += k;
			}
		}
	}
	/* whatever the chunks did not cover (no chunks, or truncation) */
	memcpy(b, out + oi, on - oi);
	b += on - oi;
	memcpy(b, err + ei, en - ei);
	b += en - ei;
	*b = 0;
	*len = (size_t)(b - buf);
	return buf;
}

/* ---- runtimes and errors ------------------------------------------------ */

json_t *gw_json_runtimes(void)
{
	json_t *list = json_array();
	for (gw_runtime *rt = gw_pool_runtimes(); rt; rt = rt->next) {
		int total = 0, healthy = 0;
		for (gw_worker *w = gw_pool_workers(); w; w = w->next) {
			if (w->rt != rt || w->removed)
				continue;
			total++;
			healthy += w->healthy;
		}
		if (!total)
			continue;
		json_t *al = json_array();
		for (size_t i = 0; i < rt->naliases; i++)
			json_array_append_new(al, json_string(rt->aliases[i]));
		json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:b, s:i, s:i}", "name", rt->name,
		                                      "version", rt->version, "aliases", al, "compiled",
		                                      rt->compiled, "healthy_workers", healthy,
		                                      "workers", total));
	}
	return json_pack("{s:o}", "runtimes", list);
}

json_t *gw_json_error(const char *code, const char *message)
{
	return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message);
}
