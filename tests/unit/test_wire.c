/*
 * test_wire.c — the wire codec: round trips, and every way a request can
 * be malformed gets bad_request (or unsupported) with a message that
 * names the problem.
 */
#include "conf.h"
#include "test.h"
#include "wire.h"

#include <stdlib.h>

static char err[512];

/* Packs a request built by fn into sb. */
typedef void (*build_fn)(msgpack_packer *pk);

static int decode_built(build_fn fn, cr_request *r)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	fn(&pk);
	err[0] = '\0';
	int rc = cr_request_decode(sb.data, sb.size, NULL, r, err, sizeof err);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static cr_request sample(void)
{
	static cr_file files[2] = { { "main.py", "import lib.util\n", 16 },
		                    { "lib/util.py", "x = 1\0y", 7 } };
	static char *args[] = { "a b", "", "ü", NULL };
	static cr_kv env[] = { { "FOO", "bar" }, { "_X1", "" } };
	cr_request r;
	memset(&r, 0, sizeof r);
	r.op = CR_OP_RUN;
	strcpy(r.id, "abc-1.2_3");
	r.files = files;
	r.nfiles = 2;
	r.entry = "main.py";
	r.stdin_data = "in\0put";
	r.stdin_len = 6;
	r.args = args;
	r.nargs = 3;
	r.env = env;
	r.nenv = 2;
	r.limits = CR_LIMITS_UNSET;
	r.limits.wall_ms = 1500;
	r.limits.memory_bytes = 0;
	r.compile_limits = CR_LIMITS_UNSET;
	r.compile_limits.output_bytes = 99;
	return r;
}

static void test_round_trip(void)
{
	cr_request in = sample(), out;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_request_encode(&in, &sb);
	int rc = cr_request_decode(sb.data, sb.size, NULL, &out, err, sizeof err);
	msgpack_sbuffer_destroy(&sb);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(out.op, CR_OP_RUN);
	CHECK_STR(out.id, "abc-1.2_3");
	CHECK_EQ_INT(out.nfiles, 2);
	CHECK_STR(out.files[1].name, "lib/util.py");
	CHECK_EQ_INT(out.files[1].len, 7);
	CHECK(memcmp(out.files[1].data, "x = 1\0y", 7) == 0);
	CHECK_STR(out.entry, "main.py");
	CHECK_EQ_INT(out.stdin_len, 6);
	CHECK(memcmp(out.stdin_data, "in\0put", 6) == 0);
	CHECK_EQ_INT(out.nargs, 3);
	CHECK_STR(out.args[0], "a b");
	CHECK_STR(out.args[1], "");
	CHECK_STR(out.args[2], "ü");
	CHECK(out.args[3] == NULL);
	CHECK_EQ_INT(out.nenv, 2);
	CHECK_STR(out.env[1].key, "_X1");
	CHECK_STR(out.env[1].value, "");
	CHECK_EQ_INT(out.limits.wall_ms, 1500);
	CHECK_EQ_INT(out.limits.memory_bytes, 0);
	CHECK_EQ_INT(out.limits.cpu_ms, CR_UNSET);
	CHECK_EQ_INT(out.compile_limits.output_bytes, 99);
	cr_request_free(&out);
}

static void test_simple_ops(void)
{
	const cr_op ops[] = { CR_OP_PING, CR_OP_INFO, CR_OP_CANCEL };
	for (int i = 0; i < 3; i++) {
		cr_request in, out;
		memset(&in, 0, sizeof in);
		in.op = ops[i];
		if (ops[i] == CR_OP_CANCEL)
			strcpy(in.id, "x1");
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		cr_request_encode(&in, &sb);
		CHECK_EQ_INT(cr_request_decode(sb.data, sb.size, NULL, &out, err, sizeof err), 0);
		CHECK_EQ_INT(out.op, ops[i]);
		msgpack_sbuffer_destroy(&sb);
		cr_request_free(&out);
	}
}

/* The entry defaults to the first file; str and bin both accepted. */
static void b_default_entry(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 4);
	cr_pack_kint(pk, "v", 1);
	cr_pack_kstr(pk, "op", "run");
	cr_pack_key(pk, "id");
	cr_pack_bin(pk, "id7", 3);
	cr_pack_key(pk, "files");
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 3);
	cr_pack_kstr(pk, "name", "a/b.sh");
	cr_pack_kstr(pk, "content", "echo");
	cr_pack_kstr(pk, "future_key", "ignored");
}

static void test_defaults(void)
{
	cr_request r;
	CHECK_EQ_INT(decode_built(b_default_entry, &r), 0);
	CHECK_STR(r.entry, "a/b.sh");
	CHECK_STR(r.id, "id7");
	CHECK_EQ_INT(r.limits.wall_ms, CR_UNSET);
	CHECK(r.args == NULL && r.nargs == 0);
	cr_request_free(&r);
}

static void expect_bad(const void *buf, size_t len, const char *needle)
{
	cr_request r;
	err[0] = '\0';
	int rc = cr_request_decode(buf, len, NULL, &r, err, sizeof err);
	CHECK_EQ_INT(rc, CR_DECODE_BAD);
	if (!strstr(err, needle)) {
		fprintf(stderr, "  error '%s' does not mention '%s'\n", err, needle);
		t_cur_failed = 1;
	}
	CHECK(r.files == NULL && r.entry == NULL && r.args == NULL);
}

static void test_not_msgpack(void)
{
	expect_bad("", 0, "truncated");
	expect_bad("\xc1", 1, "not valid msgpack");
	expect_bad("\x81\xa1", 2, "truncated");
	expect_bad("\x93\x01\x02\x03", 4, "must be a msgpack map");
	expect_bad("\x80\x80", 2, "garbage");
	expect_bad("\x80", 1, "v: missing");
	/* a declared array far larger than the message */
	expect_bad("\xdd\xff\xff\xff\xff", 5, "truncated");
	expect_bad("\x81\xa1v\xdf\x7f\xff\xff\xff\x01", 9, "truncated");
	expect_bad("\x81\xa1v\xc6\xff\xff\xff\xff", 8, "truncated");
	/* random bytes: any outcome but success, and no crash */
	srand(42);
	for (int i = 0; i < 2000; i++) {
		unsigned char buf[64];
		size_t n = (size_t)(rand() % 64);
		for (size_t j = 0; j < n; j++)
			buf[j] = (unsigned char)rand();
		if (n)
			buf[0] = 0x80 | (buf[0] & 0x0f); /* mostly maps */
		cr_request r;
		int rc = cr_request_decode(buf, n, NULL, &r, err, sizeof err);
		CHECK(rc != 0);
		CHECK(err[0] != '\0');
	}
}

/* Builds {v:1, op:run, id:x, files:[{name,content}]} with one field
 * replaced by a raw msgpack snippet. */
static void expect_bad_field(const char *key, const char *raw, size_t rawlen,
                             const char *needle)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	const char *keys[] = { "v", "op", "id", "files" };
	bool replaced = false;
	size_t n = 4;
	for (int i = 0; i < 4; i++)
		replaced |= strcmp(keys[i], key) == 0;
	msgpack_pack_map(&pk, replaced ? n : n + 1);
	for (int i = 0; i < 4; i++) {
		cr_pack_key(&pk, keys[i]);
		if (strcmp(keys[i], key) == 0) {
			msgpack_sbuffer_write(&sb, raw, rawlen);
			continue;
		}
		if (i == 0)
			msgpack_pack_int(&pk, 1);
		else if (i == 1)
			cr_pack_str(&pk, "run");
		else if (i == 2)
			cr_pack_str(&pk, "x");
		else {
			msgpack_pack_array(&pk, 1);
			msgpack_pack_map(&pk, 2);
			cr_pack_kstr(&pk, "name", "m.py");
			cr_pack_kstr(&pk, "content", "");
		}
	}
	if (!replaced) {
		cr_pack_key(&pk, key);
		msgpack_sbuffer_write(&sb, raw, rawlen);
	}
	expect_bad(sb.data, sb.size, needle);
	msgpack_sbuffer_destroy(&sb);
}

#define BAD(key, raw, needle) expect_bad_field(key, raw, sizeof(raw) - 1, needle)

static void test_wrong_types(void)
{
	BAD("v", "\xa1" "1", "v: must be an integer");
	BAD("op", "\x01", "op: must be a string");
	BAD("id", "\x01", "id: must be");
	BAD("id", "\xa3" "a b", "id: must be");
	BAD("id", "\xa0", "id: must be");
	BAD("files", "\x01", "files: must be an array");
	BAD("files", "\x90", "at least one file");
	BAD("files", "\x91\x01", "files[0]: must be a map");
	BAD("files", "\x91\x81\xa4name\xa1x", "files[0]: missing content");
	BAD("files", "\x91\x81\xa7" "content\xa0", "files[0]: missing name");
	BAD("files", "\x91\x82\xa4name\x01\xa7" "content\xa0", "files[0].name: must be a string");
	BAD("files", "\x91\x82\xa4name\xa1x\xa7" "content\x01", "files[0].content");
	BAD("entry", "\x01", "entry: must be a string");
	BAD("entry", "\xa4nope", "not one of the files");
	BAD("stdin", "\x01", "stdin: must be");
	BAD("args", "\xa1x", "args: must be an array");
	BAD("args", "\x91\x01", "args[0]: must be a string");
	BAD("args", "\x91\xa3" "a\0b", "args[0]: must not contain NUL");
	BAD("env", "\x91\x01", "env: must be a map");
	BAD("env", "\x81\xa1" "1\xa1x", "env: key '1'");
	BAD("env", "\x81\xaa" "CORRAL_FOO\xa1x", "not start with CORRAL_");
	BAD("env", "\x81\xa1X\x01", "env.X: must be a string");
	BAD("limits", "\x01", "limits: must be a map");
	BAD("limits", "\x81\xa4wall\x01", "unknown limit 'wall'");
	BAD("limits", "\x81\xa7wall_ms\xff", "limits.wall_ms: must be a non-negative integer");
	BAD("limits", "\x81\xa7wall_ms\xa1" "1", "limits.wall_ms: must be a non-negative");
	BAD("compile_limits", "\x81\xa3pid\x01", "compile_limits: unknown limit");
}

#define BAD_RAW(s, needle) expect_bad(s, sizeof(s) - 1, needle)
#define DECODE_RAW(s, r) cr_request_decode(s, sizeof(s) - 1, NULL, r, err, sizeof err)

static void test_missing_fields(void)
{
	cr_request r;
	BAD_RAW("\x82\xa1v\x01\xa2op\xa3run", "id: missing");
	BAD_RAW("\x82\xa1v\x01\xa2id\xa1x", "op: missing");
	BAD_RAW("\x83\xa1v\x01\xa2op\xa3run\xa2id\xa1x", "files: missing");
	BAD_RAW("\x82\xa1v\x01\xa2op\xa6" "cancel", "id: missing");
	/* unsupported: version and op */
	CHECK_EQ_INT(DECODE_RAW("\x82\xa1v\x02\xa2op\xa4ping", &r), CR_DECODE_UNSUPPORTED);
	CHECK(strstr(err, "version 2") != NULL);
	CHECK_EQ_INT(DECODE_RAW("\x82\xa1v\x01\xa2op\xa4jump", &r), CR_DECODE_UNSUPPORTED);
	CHECK(strstr(err, "unknown operation") != NULL);
	/* an id that was readable is kept for the error reply */
	CHECK_EQ_INT(DECODE_RAW("\x83\xa1v\x01\xa2op\xa3run\xa2id\xa2k9", &r), CR_DECODE_BAD);
	CHECK_STR(r.id, "k9");
}

static void test_paths(void)
{
	const char *good[] = { "a", "a.b", "dir/x.c", "..a", "a..", ".hidden", "a/.b/c" };
	const char *bad[] = { "", "/abs", "../x", "a/../b", "a/..", "./a", "a/./b", "a//b",
		              "a/", "..", ".", "a\nb", "a\tb" };
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		CHECK(cr_valid_path(good[i], strlen(good[i]), 255));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (cr_valid_path(bad[i], strlen(bad[i]), 255)) {
			fprintf(stderr, "  path '%s' accepted\n", bad[i]);
			t_cur_failed = 1;
		}
	char longp[300];
	memset(longp, 'x', 256);
	longp[256] = '\0';
	CHECK(!cr_valid_path(longp, 256, 255));
	CHECK(!cr_valid_path("a\0b", 3, 255)); /* NUL inside */

	BAD("files", "\x91\x82\xa4name\xa4../x\xa7" "content\xa0", "must be a relative path");
	BAD("files", "\x91\x82\xa4name\xa4/etc\xa7" "content\xa0", "must be a relative path");
	BAD("files", "\x91\x82\xa4name\xa3" "a\0b\xa7" "content\xa0", "must not contain NUL");
	BAD("files", "\x92\x82\xa4name\xa1" "a\xa7" "content\xa0\x82\xa4name\xa1" "a\xa7" "content\xa0",
	    "given twice");
	BAD("files", "\x92\x82\xa4name\xa1" "a\xa7" "content\xa0\x82\xa4name\xa3" "a/b\xa7" "content\xa0",
	    "is a file and a folder");
}

static void test_caps(void)
{
	cr_caps caps = cr_caps_default;
	caps.max_files = 2;
	caps.max_file_bytes = 4;
	caps.max_total_bytes = 6;
	caps.max_args = 1;
	cr_request in = sample(), out;
	msgpack_sbuffer sb;

	in.nfiles = 1;
	in.files[0].len = 5;
	msgpack_sbuffer_init(&sb);
	cr_request_encode(&in, &sb);
	CHECK_EQ_INT(cr_request_decode(sb.data, sb.size, &caps, &out, err, sizeof err),
	             CR_DECODE_BAD);
	CHECK(strstr(err, "more than the maximum 4") != NULL);
	CHECK_STR(out.id, "abc-1.2_3"); /* kept for the error reply */
	msgpack_sbuffer_destroy(&sb);

	in.files[0].len = 4; /* + 6 bytes of stdin > 6 */
	msgpack_sbuffer_init(&sb);
	cr_request_encode(&in, &sb);
	CHECK_EQ_INT(cr_request_decode(sb.data, sb.size, &caps, &out, err, sizeof err),
	             CR_DECODE_BAD);
	CHECK(strstr(err, "files and stdin") != NULL);
	msgpack_sbuffer_destroy(&sb);

	in.stdin_data = NULL;
	in.stdin_len = 0; /* now the 3 args are too many */
	msgpack_sbuffer_init(&sb);
	cr_request_encode(&in, &sb);
	CHECK_EQ_INT(cr_request_decode(sb.data, sb.size, &caps, &out, err, sizeof err),
	             CR_DECODE_BAD);
	CHECK(strstr(err, "args: 3 arguments") != NULL);
	msgpack_sbuffer_destroy(&sb);
	in.files[0].len = 16;
}

static void test_reply_stage(void)
{
	cr_stage st;
	memset(&st, 0, sizeof st);
	st.status = CR_ST_SIGNAL;
	st.exit_code = -1;
	st.signal = 11;
	st.out = "o";
	st.out_len = 1;
	int32_t chunks[] = { 1, -2 };
	st.chunks = chunks;
	st.nchunks = 2;
	st.err = "ee";
	st.err_len = 2;
	st.wall_ms = 7;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	cr_reply_begin(&pk, "r1", true, "h/0", 1);
	cr_pack_key(&pk, "run");
	cr_pack_stage(&pk, &st);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	CHECK_EQ_INT(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
	CHECK_EQ_INT(off, sb.size);
	const msgpack_object *run = cr_obj_get(&u.data, "run");
	int64_t v;
	CHECK(cr_obj_eq(cr_obj_get(&u.data, "id"), "r1"));
	CHECK(cr_obj_eq(cr_obj_get(&u.data, "worker"), "h/0"));
	CHECK(cr_obj_eq(cr_obj_get(run, "status"), "signal"));
	CHECK(cr_obj_eq(cr_obj_get(run, "signal"), "SIGSEGV"));
	CHECK(cr_obj_get(run, "exit_code")->type == MSGPACK_OBJECT_NIL);
	CHECK(cr_obj_get(run, "stdout")->type == MSGPACK_OBJECT_BIN);
	CHECK(cr_obj_int(cr_obj_get(run, "wall_ms"), &v) && v == 7);
	const msgpack_object *ch = cr_obj_get(run, "chunks");
	CHECK(ch->type == MSGPACK_OBJECT_ARRAY && ch->via.array.size == 2);
	CHECK(cr_obj_int(&ch->via.array.ptr[1], &v) && v == -2);
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	cr_reply_error(&pk, NULL, "h/-", CR_E_BUSY, "all busy");
	msgpack_unpacked_init(&u);
	off = 0;
	CHECK_EQ_INT(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
	const msgpack_object *e = cr_obj_get(&u.data, "error");
	CHECK(cr_obj_get(&u.data, "ok")->via.boolean == false);
	CHECK(cr_obj_eq(cr_obj_get(e, "code"), "busy"));
	CHECK(cr_obj_eq(cr_obj_get(&u.data, "id"), ""));
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
}

static void test_conf_parsers(void)
{
	int64_t v;
	CHECK(cr_parse_size("0", &v) == 0 && v == 0);
	CHECK(cr_parse_size("64K", &v) == 0 && v == 65536);
	CHECK(cr_parse_size("256M", &v) == 0 && v == 256 << 20);
	CHECK(cr_parse_size("2GiB", &v) == 0 && v == 2LL << 30);
	CHECK(cr_parse_size("-1", &v) != 0);
	CHECK(cr_parse_size("1X", &v) != 0);
	CHECK(cr_parse_size("", &v) != 0);
	CHECK(cr_parse_size("99999999999G", &v) != 0);
	CHECK(cr_parse_int("12", &v) == 0 && v == 12);
	CHECK(cr_parse_int("12k", &v) != 0);
	cr_limits l = CR_LIMITS_UNSET;
	CHECK_EQ_INT(cr_parse_limits("wall_ms=5000, memory_bytes=1M", &l, err, sizeof err), 0);
	CHECK_EQ_INT(l.wall_ms, 5000);
	CHECK_EQ_INT(l.memory_bytes, 1 << 20);
	CHECK_EQ_INT(l.pids, CR_UNSET);
	CHECK(cr_parse_limits("walls=1", &l, err, sizeof err) != 0);
	CHECK(strstr(err, "walls") != NULL);
	CHECK(cr_parse_limits("pids=x", &l, err, sizeof err) != 0);
	CHECK(cr_parse_limits("pids", &l, err, sizeof err) != 0);
}

/* Declared sizes are checked on the raw bytes before msgpack-c unpacks
 * (and allocates for) them: against the bytes left and the caps. */
static void test_hostile_headers(void)
{
	/* array32 of 2^32-1 elements in a 10-byte message */
	expect_bad("\xdd\xff\xff\xff\xff\xc0\xc0\xc0\xc0\xc0", 10, "truncated");
	/* map32 of 2^32-1 pairs, str32 of 4 GiB, bin32, ext32 inside a map */
	expect_bad("\x81\xa1v\xdf\xff\xff\xff\xff\xc0\xc0", 10, "truncated");
	expect_bad("\x81\xa1v\xdb\xff\xff\xff\xff\xc0\xc0", 10, "truncated");
	expect_bad("\x81\xa1v\xc6\x00\x00\x00\x03\xc0\xc0", 10, "truncated");
	expect_bad("\x81\xa1v\xc9\xff\xff\xff\xff\x01\xc0", 10, "truncated");
	/* a container declared inside another, owing more than is left */
	expect_bad("\x82\xa1v\xdc\x00\x05\xc0\xc0\xc0\xc0\xc0\xa1x", 13, "truncated");
	/* nested maps: {"a":{"a":...}} 20 deep */
	unsigned char deep[128];
	size_t n = 0;
	for (int i = 0; i < 20; i++) {
		deep[n++] = 0x81;
		deep[n++] = 0xa1;
		deep[n++] = 'a';
	}
	deep[n++] = 0xc0;
	expect_bad(deep, n, "nested deeper than 8");
	/* as many bytes as elements, but past the caps: one array of 2000 nils
	 * (max 1024 by default), and 4 arrays of 1000 (over 3072 in all) */
	static unsigned char big[8192];
	memcpy(big, "\x82\xa1v\x01\xa1x\xdc\x07\xd0", 9);
	memset(big + 9, 0xc0, 2000);
	expect_bad(big, 9 + 2000, "an array of 2000 at byte 6: elements, more than the maximum 1024");
	memcpy(big, "\x82\xa1v\x01\xa1x\x94", 7);
	n = 7;
	for (int i = 0; i < 4; i++) {
		memcpy(big + n, "\xdc\x03\xe8", 3);
		memset(big + n + 3, 0xc0, 1000);
		n += 1003;
	}
	expect_bad(big, n, "more objects in all than the maximum 3072");
	/* the primitive on its own, with small bounds */
	cr_bounds b = { .max_objects = 10, .max_items = 4, .max_bytes = 3, .max_depth = 2 };
	CHECK_EQ_INT(cr_msgpack_check("\x92\xa3" "abc\x91\x01", 7, &b, err, sizeof err), 0);
	CHECK_EQ_INT(cr_msgpack_check("\x91\xa4" "abcd", 6, &b, err, sizeof err), CR_DECODE_BAD);
	CHECK(strstr(err, "a string of 4 at byte 1: bytes, more than the maximum 3") != NULL);
	CHECK_EQ_INT(cr_msgpack_check("\x95\x01\x02\x03\x04\x05", 6, &b, err, sizeof err),
	             CR_DECODE_BAD);
	CHECK(strstr(err, "more than the maximum 4") != NULL);
	CHECK_EQ_INT(cr_msgpack_check("\x91\x91\x91\x01", 4, &b, err, sizeof err), CR_DECODE_BAD);
	CHECK(strstr(err, "nested deeper than 2") != NULL);
	CHECK_EQ_INT(cr_msgpack_check("\x94\x94\x01\x01\x01\x01\x94\x01\x01\x01\x01\x01\x01", 13,
	                              &b, err, sizeof err),
	             CR_DECODE_BAD);
	CHECK(strstr(err, "more objects in all than the maximum 10") != NULL);
}

static void b_at_caps(msgpack_packer *pk)
{
	const cr_caps *c = &cr_caps_default;
	msgpack_pack_map(pk, 6);
	cr_pack_kint(pk, "v", 1);
	cr_pack_kstr(pk, "op", "run");
	cr_pack_kstr(pk, "id", "x");
	cr_pack_key(pk, "files");
	msgpack_pack_array(pk, c->max_files);
	for (size_t i = 0; i < c->max_files; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%zu", i);
		msgpack_pack_map(pk, 2);
		cr_pack_kstr(pk, "name", name);
		cr_pack_kstr(pk, "content", "");
	}
	cr_pack_key(pk, "args");
	msgpack_pack_array(pk, c->max_args);
	for (size_t i = 0; i < c->max_args; i++)
		cr_pack_str(pk, "a");
	cr_pack_key(pk, "env");
	msgpack_pack_map(pk, c->max_env);
	for (size_t i = 0; i < c->max_env; i++) {
		char k[32];
		snprintf(k, sizeof k, "E%zu", i);
		cr_pack_kstr(pk, k, "v");
	}
}

/* The bounds never refuse a request that the caps allow. */
static void test_bounds_allow_requests_at_caps(void)
{
	cr_request r;
	CHECK_EQ_INT(decode_built(b_at_caps, &r), 0);
	CHECK_EQ_INT(r.nfiles, cr_caps_default.max_files);
	CHECK_EQ_INT(r.nargs, cr_caps_default.max_args);
	CHECK_EQ_INT(r.nenv, cr_caps_default.max_env);
	cr_request_free(&r);
}

int main(void)
{
	RUN(test_round_trip);
	RUN(test_simple_ops);
	RUN(test_defaults);
	RUN(test_not_msgpack);
	RUN(test_wrong_types);
	RUN(test_missing_fields);
	RUN(test_paths);
	RUN(test_caps);
	RUN(test_hostile_headers);
	RUN(test_bounds_allow_requests_at_caps);
	RUN(test_reply_stage);
	RUN(test_conf_parsers);
	return TEST_DONE();
}
