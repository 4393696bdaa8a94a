/*
 * test_gw_mapping.c — the gateway's JSON <-> wire mapping, without sockets:
 * base64/hex/UTF-8 helpers, the body's value/depth bounds, /v1 and Piston
 * request parsing (checked by decoding the encoded request with the
 * worker's own decoder; limits bounded), reply rendering (UTF-8 or base64
 * output, control-heavy output, Piston statuses, interleaved output),
 * and the pool's runtime lookup and worker selection on hand-built lists.
 *
 * The pool's tests build worker lists by hand, so gw_pool.c is compiled
 * in (white box, for its statics); the other modules come from
 * libgateway.a like any program's.
 */
#include "../../gateway/gw_pool.c"

#include "gw.h"
#include "test.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------- */

static void test_base64_hex(void)
{
	size_t n;
	char *p = gw_base64_decode("aGVsbG8=", 8, &n);
	CHECK(p && n == 5 && !memcmp(p, "hello", 5));
	free(p);
	p = gw_base64_decode("aGVs\nbG8", 8, &n); /* no padding, a line break */
	CHECK(p && n == 5 && !memcmp(p, "hello", 5));
	free(p);
	p = gw_base64_decode("-_8", 3, &n); /* URL-safe alphabet */
	CHECK(p && n == 2 && (unsigned char)p[0] == 0xfb && (unsigned char)p[1] == 0xff);
	free(p);
	CHECK(gw_base64_decode("a!bc", 4, &n) == NULL);
	CHECK(gw_base64_decode("aGVsbG8=x", 9, &n) == NULL); /* data after padding */
	CHECK(gw_base64_decode("a", 1, &n) == NULL);         /* a lone sextet */
	p = gw_base64_decode("", 0, &n);
	CHECK(p && n == 0);
	free(p);
	p = gw_hex_decode("00fF7a", 6, &n);
	CHECK(p && n == 3 && p[0] == 0 && (unsigned char)p[1] == 0xff && p[2] == 'z');
	free(p);
	CHECK(gw_hex_decode("abc", 3, &n) == NULL);
	CHECK(gw_hex_decode("zz", 2, &n) == NULL);
}

static void test_utf8(void)
{
	CHECK(gw_utf8_valid("plain", 5));
	CHECK(gw_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9)); /* é € 😀 */
	CHECK(gw_utf8_valid("a\0b", 3));                                  /* NUL is fine */
	CHECK(!gw_utf8_valid("\xff", 1));
	CHECK(!gw_utf8_valid("\xc0\xaf", 2));         /* overlong */
	CHECK(!gw_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	CHECK(!gw_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
	CHECK(!gw_utf8_valid("\xe2\x82", 2));         /* truncated */
	size_t n;
	char *s = gw_utf8_lossy("a\xff" "b\xe2\x82", 5, &n);
	CHECK_STR(s, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd");
	free(s);
}

/* ---- requests ---------------------------------------------------------- */

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_ALLOW_NUL, &e);
	if (!j)
		fprintf(stderr, "  bad test JSON: %s\n", e.text);
	return j;
}

/* Encodes r's request and decodes it as a worker would. */
static int roundtrip(gw_run *r, cr_request *out, char *err, size_t errlen)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	snprintf(r->req.id, sizeof(r->req.id), "t-1");
	cr_request_encode(&r->req, &sb);
	int rc = cr_request_decode(sb.data, sb.size, &cr_caps_default, out, err, errlen);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static gw_runtime *fake_runtime(const char *name, const char *version, const char *entry)
{
	gw_runtime *rt = calloc(1, sizeof(*rt));
	rt->name = strdup(name);
	rt->version = strdup(version);
	rt->entry = strdup(entry);
	rt->def_limits = rt->def_compile = CR_LIMITS_UNSET;
	return rt;
}

static void free_runtime(gw_runtime *rt)
{
	for (size_t i = 0; i < rt->naliases; i++)
		free(rt->aliases[i]);
	free(rt->aliases);
	free(rt->name);
	free(rt->version);
	free(rt->entry);
	free(rt);
}

static void test_v1_request(void)
{
	json_t *j = parse("{\"runtime\":\"py\",\"version\":\"3\",\"files\":["
	                  "{\"name\":\"m.py\",\"content\":\"print(1)\"},"
	                  "{\"name\":\"lib/d.bin\",\"content\":\"AAEC/w==\",\"encoding\":\"base64\"},"
	                  "{\"content\":\"x\"}],"
	                  "\"stdin\":\"6869\",\"stdin_encoding\":\"hex\",\"args\":[\"a\",\"b c\"],"
	                  "\"env\":{\"K\":\"v\"},\"limits\":{\"wall_ms\":500,\"memory_bytes\":null},"
	                  "\"compile_limits\":{\"cpu_ms\":7},\"race\":1,\"hedge_ms\":0}");
	gw_run r;
	char err[256] = "";
	CHECK(gw_run_from_json(j, &r, err, sizeof(err)) == 0);
	CHECK_STR(r.runtime, "py");
	CHECK_STR(r.version, "3");
	CHECK_EQ_INT(r.req.nfiles, 3);
	CHECK_EQ_INT(r.req.files[1].len, 4);
	CHECK((unsigned char)r.req.files[1].data[3] == 0xff);
	CHECK(r.unnamed[2] && !r.unnamed[0]);
	CHECK_EQ_INT(r.req.stdin_len, 2);
	CHECK_EQ_INT(r.req.limits.wall_ms, 500);
	CHECK_EQ_INT(r.req.limits.memory_bytes, CR_UNSET);
	CHECK_EQ_INT(r.req.compile_limits.cpu_ms, 7);
	CHECK_EQ_INT(r.opts.race, 1);
	CHECK_EQ_INT(r.opts.hedge_ms, 0);
	gw_runtime *rt = fake_runtime("python", "3.11.2", "main.py");
	CHECK(gw_run_bind(&r, rt, err, sizeof(err)) == 0);
	CHECK_STR(r.req.files[2].name, "file2.code");
	cr_request d;
	CHECK(roundtrip(&r, &d, err, sizeof(err)) == 0);
	CHECK_EQ_INT(d.nfiles, 3);
	CHECK_STR(d.files[1].name, "lib/d.bin");
	CHECK_STR(d.entry, "m.py");
	CHECK_EQ_INT(d.nargs, 2);
	CHECK_STR(d.args[1], "b c");
	CHECK_EQ_INT(d.nenv, 1);
	CHECK_STR(d.env[0].key, "K");
	CHECK(d.stdin_len == 2 && !memcmp(d.stdin_data, "hi", 2));
	CHECK_EQ_INT(d.limits.wall_ms, 500);
	cr_request_free(&d);
	gw_run_free(&r);
	json_decref(j);

	/* code: the runtime names the file */
	j = parse("{\"runtime\":\"python\",\"code\":\"print(1)\"}");
	CHECK(gw_run_from_json(j, &r, err, sizeof(err)) == 0);
	CHECK(gw_run_bind(&r, rt, err, sizeof(err)) == 0);
	CHECK_STR(r.req.files[0].name, "main.py");
	CHECK(r.opts.race == 0 && r.opts.hedge_ms == -2); /* gateway defaults */
	gw_run_free(&r);
	json_decref(j);
	free_runtime(rt);
}

static void expect_bad(const char *body, const char *needle)
{
	json_t *j = parse(body);
	gw_run r;
	char err[512] = "";
	int rc = gw_run_from_json(j, &r, err, sizeof(err));
	CHECK_EQ_INT(rc, -1);
	if (!strstr(err, needle))
		fprintf(stderr, "  %s: message \"%s\" lacks \"%s\"\n", body, err, needle), t_cur_failed = 1;
	gw_run_free(&r);
	json_decref(j);
}

static void test_v1_request_errors(void)
{
	expect_bad("[]", "must be a JSON object");
	expect_bad("{\"code\":\"x\"}", "runtime must be");
	expect_bad("{\"runtime\":\"\",\"code\":\"x\"}", "runtime must be");
	expect_bad("{\"runtime\":\"p\"}", "missing files");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"files\":[]}", "not both");
	expect_bad("{\"runtime\":\"p\",\"files\":{}}", "files must be an array");
	expect_bad("{\"runtime\":\"p\",\"files\":[3]}", "files[0] must be an object");
	expect_bad("{\"runtime\":\"p\",\"files\":[{\"name\":\"a//b\",\"content\":\"\"}]}", "acceptable relative path");
	expect_bad("{\"runtime\":\"p\",\"files\":[{\"name\":\"a\",\"content\":\"x\",\"encoding\":\"gzip\"}]}", "encoding must be");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"args\":[\"a\\u0000b\"]}", "NUL");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"env\":{\"A\":true}}", "env.A must be a string");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"limits\":{\"wall_ms\":1.5}}", "non-negative integer");
	/* limits within the gateway's maxima: the deadline is their sum */
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"limits\":{\"wall_ms\":9223372036854775807}}",
	           "limits.wall_ms must be a non-negative integer, at most 86400000");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"compile_limits\":{\"cpu_ms\":86400001}}",
	           "compile_limits.cpu_ms must be");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"limits\":{\"memory_bytes\":-5}}",
	           "limits.memory_bytes must be a non-negative integer, at most 1099511627776 (the "
	           "gateway's maximum), not -5");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"limits\":{\"pids\":\"7\"}}",
	           "limits.pids must be a non-negative integer, at most 4194304 (the gateway's maximum), "
	           "not a string");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"limits\":{\"output_bytes\":2e3}}",
	           "not a number");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"limits\":[]}", "limits must be an object");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"race\":0}", "race must be 1 or 2");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"stdin\":\"z\",\"stdin_encoding\":\"base64\"}", "stdin is not valid base64");
	expect_bad("{\"runtime\":\"p\",\"code\":\"x\",\"extra\":1}", "unknown field \"extra\"");
}

static void test_piston_request(void)
{
	json_t *j = parse("{\"language\":\"python3\",\"version\":\"*\",\"files\":[{\"content\":\"print(1)\"}],"
	                  "\"stdin\":\"in\",\"args\":[\"1\"],\"run_timeout\":3000,\"compile_timeout\":-1,"
	                  "\"run_memory_limit\":-1,\"compile_memory_limit\":1000000,\"run_cpu_time\":2000,"
	                  "\"whatever\":1}");
	gw_run r;
	char err[256] = "";
	CHECK(gw_piston_from_json(j, &r, err, sizeof(err)) == 0);
	CHECK_STR(r.runtime, "python3");
	CHECK_EQ_INT(r.req.limits.wall_ms, 3000);
	CHECK_EQ_INT(r.req.limits.cpu_ms, 2000);
	CHECK_EQ_INT(r.req.limits.memory_bytes, CR_UNSET);
	CHECK_EQ_INT(r.req.compile_limits.wall_ms, CR_UNSET);
	CHECK_EQ_INT(r.req.compile_limits.memory_bytes, 1000000);
	CHECK(r.unnamed[0]);
	gw_run_free(&r);
	json_decref(j);
	j = parse("{\"language\":\"python\",\"files\":[{\"content\":\"x\"}],\"run_timeout\":\"1s\"}");
	CHECK(gw_piston_from_json(j, &r, err, sizeof(err)) == -1);
	CHECK(strstr(err, "run_timeout") != NULL);
	gw_run_free(&r);
	json_decref(j);
	j = parse("{\"files\":[{\"content\":\"x\"}]}");
	CHECK(gw_piston_from_json(j, &r, err, sizeof(err)) == -1);
	CHECK(strstr(err, "language") != NULL);
	gw_run_free(&r);
	json_decref(j);
	/* each limit: an integer in [0, maximum], or -1 */
	static const char *const bad[] = {
		"\"run_timeout\":9223372036854775807", "\"compile_timeout\":-2",
		"\"run_timeout\":3000.5", "\"run_memory_limit\":\"1G\"",
		"\"compile_memory_limit\":1099511627777", "\"run_cpu_time\":86400001",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char body[256], field[32];
		snprintf(body, sizeof(body), "{\"language\":\"python\",\"files\":[{\"content\":\"x\"}],%s}",
		         bad[i]);
		snprintf(field, sizeof(field), "%.*s must be an integer in [0, ",
		         (int)(strchr(bad[i] + 1, '"') - bad[i] - 1), bad[i] + 1);
		j = parse(body);
		CHECK(gw_piston_from_json(j, &r, err, sizeof(err)) == -1);
		if (!strstr(err, field))
			fprintf(stderr, "  %s: message \"%s\" lacks \"%s\"\n", body, err, field), t_cur_failed = 1;
		gw_run_free(&r);
		json_decref(j);
	}
	j = parse("{\"language\":\"python\",\"files\":[{\"content\":\"x\"}],\"run_timeout\":86400000,"
	          "\"run_memory_limit\":1099511627776}");
	CHECK(gw_piston_from_json(j, &r, err, sizeof(err)) == 0);
	CHECK_EQ_INT(r.req.limits.wall_ms, 86400000);
	CHECK_EQ_INT(r.req.limits.memory_bytes, 1099511627776LL);
	gw_run_free(&r);
	json_decref(j);
}

/* ---- bounds on the raw body -------------------------------------------- */

static int prescan(const char *s, char *err, size_t errlen)
{
	return gw_json_prescan(s, strlen(s), err, errlen);
}

/* "[0,0,...,0]" with n elements, or "{"a":[...]}" around it. */
static char *many(size_t n, bool in_object)
{
	char *s = malloc(2 * n + 16), *p = s;
	p += sprintf(p, in_object ? "{\"a\":[" : "[");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, i ? ",0" : "0");
	strcpy(p, in_object ? "]}" : "]");
	return s;
}

static void test_prescan(void)
{
	char err[256] = "";
	/* exactly the maximum of values passes, one more does not */
	char *s = many(GW_JSON_MAX_VALUES - 1, true); /* + the member "a" */
	CHECK_EQ_INT(prescan(s, err, sizeof(err)), 0);
	free(s);
	s = many(GW_JSON_MAX_VALUES + 1, false);
	CHECK_EQ_INT(prescan(s, err, sizeof(err)), -1);
	CHECK(strstr(err, "more than 16384 JSON values") != NULL);
	free(s);
	s = many(1000000, true);
	CHECK_EQ_INT(prescan(s, err, sizeof(err)), -1);
	free(s);
	/* commas and brackets inside strings are not structure */
	char big[4 * GW_JSON_MAX_VALUES + 64], *p = big;
	p += sprintf(p, "{\"code\":\"");
	for (int i = 0; i < GW_JSON_MAX_VALUES; i++)
		p += sprintf(p, ",[\\\"");
	strcpy(p, "\"}");
	CHECK_EQ_INT(prescan(big, err, sizeof(err)), 0);
	CHECK_EQ_INT(prescan("{}", err, sizeof(err)), 0);
	CHECK_EQ_INT(prescan("  [ ]", err, sizeof(err)), 0);
	CHECK_EQ_INT(prescan("\"a,b,c\"", err, sizeof(err)), 0);
	CHECK_EQ_INT(prescan("runtime=python&code=1,2,3", err, sizeof(err)), 0);
	/* nesting */
	char deep[2 * GW_JSON_MAX_DEPTH + 3];
	memset(deep, '[', GW_JSON_MAX_DEPTH);
	memset(deep + GW_JSON_MAX_DEPTH, ']', GW_JSON_MAX_DEPTH);
	deep[2 * GW_JSON_MAX_DEPTH] = 0;
	CHECK_EQ_INT(prescan(deep, err, sizeof(err)), 0);
	memset(deep, '[', GW_JSON_MAX_DEPTH + 1);
	memset(deep + GW_JSON_MAX_DEPTH + 1, ']', GW_JSON_MAX_DEPTH + 1);
	deep[2 * GW_JSON_MAX_DEPTH + 2] = 0;
	CHECK_EQ_INT(prescan(deep, err, sizeof(err)), -1);
	CHECK(strstr(err, "nests deeper than 32") != NULL);
	/* unterminated: still counted (jansson would build it before failing) */
	s = many(GW_JSON_MAX_VALUES + 1, false);
	s[strlen(s) - 1] = 0;
	CHECK_EQ_INT(prescan(s, err, sizeof(err)), -1);
	free(s);
}

/* ---- replies ----------------------------------------------------------- */

/* A run reply as a worker writes it, decoded. */
static void make_reply(msgpack_sbuffer *sb, msgpack_unpacked *u, cr_stage *st, bool compile_failed)
{
	msgpack_packer pk;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	cr_reply_begin(&pk, "t-1", true, "host/0", compile_failed ? 2 : 2);
	cr_pack_key(&pk, "runtime");
	msgpack_pack_map(&pk, 2);
	cr_pack_kstr(&pk, "name", "c");
	cr_pack_kstr(&pk, "version", "12.2.0");
	cr_pack_key(&pk, compile_failed ? "compile" : "run");
	cr_pack_stage(&pk, st);
	msgpack_unpacked_init(u);
	size_t off = 0;
	msgpack_unpack_next(u, sb->data, sb->size, &off);
}

static void test_reply_rendering(void)
{
	int32_t chunks[] = { 2, -3, 2 };
	cr_stage st = { .status = CR_ST_EXIT, .exit_code = 3, .out = "a\nb\xff", .out_len = 4,
	                .err = "e!\n", .err_len = 3, .chunks = chunks, .nchunks = 3,
	                .wall_ms = 5, .cpu_ms = 4, .memory_bytes = 4096 };
	msgpack_sbuffer sb;
	msgpack_unpacked u;
	make_reply(&sb, &u, &st, false);
	gw_runtime *rt = fake_runtime("c", "12.2.0", "main.c");
	json_t *j = gw_json_reply(&u.data, rt);
	json_t *run = json_object_get(j, "run");
	CHECK_STR(json_string_value(json_object_get(run, "status")), "exit");
	CHECK_EQ_INT(json_integer_value(json_object_get(run, "exit_code")), 3);
	CHECK(json_is_null(json_object_get(run, "signal")));
	CHECK_STR(json_string_value(json_object_get(run, "stdout_encoding")), "base64");
	CHECK_STR(json_string_value(json_object_get(run, "stdout")), "YQpi/w==");
	CHECK_STR(json_string_value(json_object_get(run, "stderr")), "e!\n");
	CHECK_STR(json_string_value(json_object_get(run, "stderr_encoding")), "utf8");
	CHECK_EQ_INT(json_integer_value(json_object_get(run, "memory_bytes")), 4096);
	CHECK_STR(json_string_value(json_object_get(json_object_get(j, "runtime"), "version")), "12.2.0");
	json_decref(j);

	/* Piston: interleaved output, RE status, lossy text */
	j = gw_piston_reply(&u.data, rt);
	run = json_object_get(j, "run");
	CHECK_STR(json_string_value(json_object_get(run, "output")), "a\ne!\nb\xef\xbf\xbd");
	CHECK_STR(json_string_value(json_object_get(run, "status")), "RE");
	CHECK_EQ_INT(json_integer_value(json_object_get(run, "code")), 3);
	CHECK_STR(json_string_value(json_object_get(run, "message")), "Exited with error status 3");
	CHECK_EQ_INT(json_integer_value(json_object_get(run, "wall_time")), 5);
	CHECK(json_object_get(j, "compile") == NULL);
	json_decref(j);
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);

	/* a failed compile: compile stage, run null */
	cr_stage cst = { .status = CR_ST_EXIT, .exit_code = 1, .err = "error: x", .err_len = 8, .out = "", .signal = 0 };
	make_reply(&sb, &u, &cst, true);
	j = gw_piston_reply(&u.data, rt);
	CHECK(json_is_null(json_object_get(j, "run")));
	CHECK_STR(json_string_value(json_object_get(json_object_get(j, "compile"), "output")), "error: x");
	json_decref(j);
	j = gw_json_reply(&u.data, rt);
	CHECK(json_is_null(json_object_get(j, "run")));
	CHECK(json_is_object(json_object_get(j, "compile")));
	json_decref(j);
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
	free_runtime(rt);
}

static const char *run_field(const char *out, size_t n, const char *key, json_t **keep)
{
	cr_stage st = { .status = CR_ST_OK, .out = (char *)out, .out_len = n, .err = "" };
	msgpack_sbuffer sb;
	msgpack_unpacked u;
	make_reply(&sb, &u, &st, false);
	gw_runtime *rt = fake_runtime("c", "12.2.0", "main.c");
	*keep = gw_json_reply(&u.data, rt);
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
	free_runtime(rt);
	return json_string_value(json_object_get(json_object_get(*keep, "run"), key));
}

/* Control characters (\u00XX in JSON) make output of 4 KiB or more base64
 * once the escapes would be longer than base64; tab, newline and CR do
 * not count; shorter output stays text (ANSI colours). */
static void test_control_heavy_output(void)
{
	json_t *j;
	static char nul[1 << 20];
	CHECK_STR(run_field(nul, sizeof(nul), "stdout_encoding", &j), "base64");
	json_t *out = json_object_get(json_object_get(j, "run"), "stdout");
	size_t n;
	char *dec = gw_base64_decode(json_string_value(out), json_string_length(out), &n);
	CHECK(dec && n == sizeof(nul) && !memcmp(dec, nul, n));
	free(dec);
	json_decref(j);
	CHECK_STR(run_field("a\tb\r\n\n\n", 7, "stdout_encoding", &j), "utf8");
	json_decref(j);
	/* short: text, however many escapes (a coloured line) */
	CHECK_STR(run_field("\x1b" "[31mred\x1b" "[0m", 12, "stdout_encoding", &j), "utf8");
	json_decref(j);
	/* 4095 bytes of ESC: still text */
	static char esc[4096];
	memset(esc, 0x1b, sizeof(esc));
	CHECK_STR(run_field(esc, sizeof(esc) - 1, "stdout_encoding", &j), "utf8");
	json_decref(j);
	/* 4500 bytes, one control in 15: 6000 escaped, 6000 base64 -> text */
	static char big[4500];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = i % 15 ? 'a' : 0x1b;
	CHECK_STR(run_field(big, sizeof(big), "stdout_encoding", &j), "utf8");
	json_decref(j);
	/* one in 12: 6375 escaped, 6000 in base64 -> base64 */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = i % 12 ? 'a' : 0x1b;
	CHECK_STR(run_field(big, sizeof(big), "stdout_encoding", &j), "base64");
	json_decref(j);
}

static void test_piston_statuses(void)
{
	static const struct { cr_status st; int sig; bool otr, etr; const char *want; } cases[] = {
		{ CR_ST_OK, 0, 0, 0, NULL }, { CR_ST_SIGNAL, 11, 0, 0, "SG" },
		{ CR_ST_TIMEOUT, 9, 0, 0, "TO" }, { CR_ST_MEMORY, 9, 0, 0, "SG" },
		{ CR_ST_OUTPUT, 0, 1, 0, "OL" }, { CR_ST_OUTPUT, 0, 0, 1, "EL" },
	};
	gw_runtime *rt = fake_runtime("c", "12", "main.c");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_stage st = { .status = cases[i].st, .exit_code = cases[i].sig ? -1 : 0,
		                .signal = cases[i].sig, .out = "", .err = "",
		                .out_truncated = cases[i].otr, .err_truncated = cases[i].etr };
		msgpack_sbuffer sb;
		msgpack_unpacked u;
		make_reply(&sb, &u, &st, false);
		json_t *j = gw_piston_reply(&u.data, rt);
		json_t *s = json_object_get(json_object_get(j, "run"), "status");
		if (cases[i].want)
			CHECK_STR(json_string_value(s), cases[i].want);
		else
			CHECK(json_is_null(s));
		if (cases[i].sig)
			CHECK(json_is_null(json_object_get(json_object_get(j, "run"), "code")));
		json_decref(j);
		msgpack_unpacked_destroy(&u);
		msgpack_sbuffer_destroy(&sb);
	}
	free_runtime(rt);
}

/* ---- pool: lookup and selection ---------------------------------------- */

static gw_worker *fake_worker(const char *url, gw_runtime *rt, int slots, int inflight)
{
	gw_worker *w = calloc(1, sizeof(*w));
	w->url = strdup(url);
	w->label = strdup("t");
	w->name = strdup("");
	w->rt = rt;
	w->slots = slots;
	w->inflight = inflight;
	w->healthy = true;
	w->next = workers;
	workers = w;
	return w;
}

static void test_versions_and_find(void)
{
	CHECK(version_matches("3.11.2", NULL));
	CHECK(version_matches("3.11.2", "*"));
	CHECK(version_matches("3.11.2", "3"));
	CHECK(version_matches("3.11.2", "3.11"));
	CHECK(version_matches("3.11.2", "3.11.2"));
	CHECK(version_matches("3.11.2", "3.11."));
	CHECK(!version_matches("3.11.2", "3.1"));
	CHECK(!version_matches("3.11.2", "4"));
	gw_runtime *old = runtime_get("python", "3.9.1"), *cur = runtime_get("python", "3.11.2");
	old->aliases = calloc(2, sizeof(char *));
	old->aliases[0] = strdup("py");
	old->naliases = 1;
	cur->aliases = calloc(2, sizeof(char *));
	cur->aliases[0] = strdup("py");
	cur->naliases = 1;
	gw_worker *a = fake_worker("tcp://a:1", old, 2, 0);
	gw_worker *b = fake_worker("tcp://b:1", cur, 2, 0);
	CHECK(gw_pool_find("python", NULL) == cur); /* highest version */
	CHECK(gw_pool_find("PY", "3.9") == old);    /* alias, any case */
	CHECK(gw_pool_find("python", "2") == NULL);
	CHECK(gw_pool_find("ruby", NULL) == NULL);
	b->healthy = false; /* a healthy older version beats an unhealthy newer one */
	CHECK(gw_pool_find("python", NULL) == old);
	b->removed = true;
	a->healthy = false; /* none healthy: still found (502, not 404) */
	CHECK(gw_pool_find("python", NULL) == old);
	a->removed = true;
	CHECK(gw_pool_find("python", NULL) == NULL);
}

static void test_pick(void)
{
	gw_runtime *rt = runtime_get("node", "20");
	gw_worker *x = fake_worker("tcp://x:1", rt, 2, 0);
	gw_worker *y = fake_worker("tcp://y:1", rt, 4, 0);
	gw_worker *z = fake_worker("tcp://z:1", rt, 1, 1); /* full */
	gw_worker *out[2];
	/* equal loads take turns */
	CHECK_EQ_INT(gw_pool_pick(rt, out, 1, NULL, 0), 1);
	gw_worker *first = out[0];
	CHECK_EQ_INT(gw_pool_pick(rt, out, 1, NULL, 0), 1);
	CHECK(out[0] != first && out[0] != z);
	/* two distinct, never the full one */
	CHECK_EQ_INT(gw_pool_pick(rt, out, 2, NULL, 0), 2);
	CHECK(out[0] != out[1] && out[0] != z && out[1] != z);
	/* least busy by fraction of slots: x 1/2 busy, y 1/4 */
	x->inflight = 1;
	y->inflight = 1;
	CHECK_EQ_INT(gw_pool_pick(rt, out, 1, NULL, 0), 1);
	CHECK(out[0] == y);
	/* avoid the tried one when another is free, else take it again */
	gw_worker *avoid[1] = { y };
	CHECK_EQ_INT(gw_pool_pick(rt, out, 1, avoid, 1), 1);
	CHECK(out[0] == x);
	x->inflight = 2;
	CHECK_EQ_INT(gw_pool_pick(rt, out, 1, avoid, 1), 1);
	CHECK(out[0] == y);
	y->inflight = 4;
	CHECK_EQ_INT(gw_pool_pick(rt, out, 2, NULL, 0), 0);
	y->inflight = 0;
	y->healthy = false;
	CHECK_EQ_INT(gw_pool_pick(rt, out, 2, NULL, 0), 0);
	CHECK_EQ_INT(gw_runtime_healthy(rt), 2);
}

static void test_latency_p95(void)
{
	gw_runtime *rt = runtime_get("bash", "5");
	CHECK_EQ_INT(gw_runtime_p95(rt), -1);
	for (int i = 1; i <= 100; i++)
		gw_pool_record_latency(rt, i);
	CHECK_EQ_INT(gw_runtime_p95(rt), 96);
	CHECK_EQ_INT(rt->hist_count, 100);
	CHECK_EQ_INT(rt->hist[0], 5);  /* <= 5 ms */
	CHECK_EQ_INT(rt->hist[1], 5);  /* <= 10 ms */
	CHECK_EQ_INT(rt->hist[4], 50); /* 51..100 ms */
	size_t len;
	char *text = gw_metrics_render(&len);
	CHECK(text && strstr(text, "corral_gateway_invocation_seconds_count{runtime=\"bash\",version=\"5\"} 100\n"));
	CHECK(text && strstr(text, "corral_gateway_worker_healthy{worker=\"tcp://x:1\",runtime=\"node\"} 1\n"));
	free(text);
}

/* ---- configuration ------------------------------------------------------ */

static int parse_args(int argc, const char **argv)
{
	optind = 1;
	return gw_config_parse(argc, (char **)argv);
}

static void test_config(void)
{
	setenv("CORRAL_GW_WORKERS", "python=tcp://a:1,tcp://b:2 node=ipc:///tmp/n", 1);
	setenv("CORRAL_GW_RACE", "1", 1);
	const char *a1[] = { "gw", "--hedge-ms", "auto", "--max-body", "2M", "--queue", "0",
	                     "--cors-origins", "https://x.example,*", NULL };
	CHECK_EQ_INT(parse_args(9, a1), 0);
	CHECK_EQ_INT(gw_cfg.nworkers, 3);
	CHECK_STR(gw_cfg.workers[1].url, "tcp://b:2");
	CHECK_STR(gw_cfg.workers[2].runtime, "node");
	CHECK_EQ_INT(gw_cfg.race, 1);
	CHECK_EQ_INT(gw_cfg.hedge_ms, 0);
	CHECK_EQ_INT(gw_cfg.max_body, 2 << 20);
	CHECK_EQ_INT(gw_cfg.queue, 0);
	CHECK_EQ_INT(gw_cfg.ncors, 2);
	CHECK_EQ_INT(gw_cfg.nlisten, 1);
	CHECK_STR(gw_cfg.listen[0], "http://127.0.0.1:8080");
	/* a flag replaces its environment twin's list */
	const char *a2[] = { "gw", "--workers", "c=tcp://c:3", "--race", "2", NULL };
	CHECK_EQ_INT(parse_args(5, a2), 0);
	CHECK_EQ_INT(gw_cfg.nworkers, 1);
	CHECK_EQ_INT(gw_cfg.race, 2);
	unsetenv("CORRAL_GW_WORKERS");
	unsetenv("CORRAL_GW_RACE");
	const char *bad[][4] = {
		{ "gw", "--race", "3", NULL }, { "gw", "--workers", "nourl", NULL },
		{ "gw", "--workers", "p=http://x", NULL }, { "gw", "--max-body", "0", NULL },
		{ "gw", "--hedge-ms", "-4", NULL }, { "gw", "--listen", "tcp://x:1", NULL },
		{ "gw", "--discover", "dns://nohost", NULL },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[6] = { bad[i][0], bad[i][1], bad[i][2], "--workers", "p=tcp://ok:1", NULL };
		CHECK_EQ_INT(parse_args(5, argv), -1);
	}
}

int main(void)
{
	RUN(test_config);
	RUN(test_base64_hex);
	RUN(test_utf8);
	RUN(test_v1_request);
	RUN(test_v1_request_errors);
	RUN(test_piston_request);
	RUN(test_prescan);
	RUN(test_reply_rendering);
	RUN(test_control_heavy_output);
	RUN(test_piston_statuses);
	RUN(test_versions_and_find);
	RUN(test_pick);
	RUN(test_latency_p95);
	return TEST_DONE();
}
