/*
 * wire_request.c — decode and encode requests of wire protocol v1.
 *
 * Decoding is one pass over the msgpack map: every known key is checked
 * for its type and range, and the first problem found becomes the
 * bad_request message, written so a person can fix the request ("files[2].name:
 * '..' is not allowed"). Unknown top-level keys are ignored so that newer
 * clients can talk to older workers; unknown limit keys are refused,
 * because a misspelt limit would otherwise silently not apply.
 *
 * Before msgpack-c sees the bytes, cr_msgpack_check() (wire_bounds.c)
 * refuses declared sizes that the message cannot hold or that pass the
 * caps, so the unpacker allocates little however hostile the header.
 *
 * The decoded request owns malloc'd, NUL-terminated copies of every
 * string; cr_request_free() releases them.
 */
#include "wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const cr_caps cr_caps_default = {
	.max_files = 256,
	.max_file_bytes = 8u << 20,
	.max_total_bytes = 16u << 20,
	.max_args = 1024,
	.max_env = 256,
	.max_name_len = 255,
	.max_argenv_bytes = 256u << 10,
};

static const char *const limit_names[CR_NLIMITS] = {
	"wall_ms", "cpu_ms", "memory_bytes", "pids", "output_bytes", "file_bytes",
};

const char *cr_limit_name(int i) { return limit_names[i]; }

int64_t *cr_limit_ref(cr_limits *l, int i)
{
	int64_t *f[CR_NLIMITS] = { &l->wall_ms, &l->cpu_ms, &l->memory_bytes,
		                   &l->pids, &l->output_bytes, &l->file_bytes };
	return f[i];
}

int64_t cr_limit_get(const cr_limits *l, int i)
{
	return *cr_limit_ref((cr_limits *)l, i);
}

bool cr_valid_id(const char *id, size_t len)
{
	if (len < 1 || len > CR_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Relative, no empty / "." / ".." component, no control bytes. */
bool cr_valid_path(const char *name, size_t len, size_t max_len)
{
	if (len == 0 || len > max_len || name[0] == '/' || name[len - 1] == '/')
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && (unsigned char)name[i] < 0x20)
			return false;
		if (i == len || name[i] == '/') {
			size_t n = i - start;
			if (n == 0 || (n == 1 && name[start] == '.') ||
			    (n == 2 && name[start] == '.' && name[start + 1] == '.'))
				return false;
			start = i + 1;
		}
	}
	return true;
}

/* ---- decoding --------------------------------------------------------- */

typedef struct dec {
	cr_request *req;
	const cr_caps *caps;
	char *err;
	size_t errlen;
	size_t total_bytes;
	size_t argenv_bytes;
} dec;

static int fail(dec *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->err, d->errlen, fmt, ap);
	va_end(ap);
	return CR_DECODE_BAD;
}

static char *dup_bytes(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

/* A str/bin without NUL bytes, copied; what names the field in errors. */
static int get_text(dec *d, const msgpack_object *o, const char *what, char **out)
{
	const char *p;
	size_t n;
	if (!cr_obj_bytes(o, &p, &n))
		return fail(d, "%s: must be a string", what);
	if (memchr(p, '\0', n))
		return fail(d, "%s: must not contain NUL bytes", what);
	if (!(*out = dup_bytes(p, n)))
		return fail(d, "%s: out of memory", what);
	return 0;
}

static int decode_limits(dec *d, const msgpack_object *o, const char *what,
                         cr_limits *out)
{
	*out = CR_LIMITS_UNSET;
	if (o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type != MSGPACK_OBJECT_MAP)
		return fail(d, "%s: must be a map", what);
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];
		int k = -1;
		for (int j = 0; j < CR_NLIMITS; j++)
			if (cr_obj_eq(&kv->key, limit_names[j]))
				k = j;
		if (k < 0) {
			const char *p = "";
			size_t n = 0;
			cr_obj_bytes(&kv->key, &p, &n);
			return fail(d, "%s: unknown limit '%.*s' (known: wall_ms, cpu_ms, "
			               "memory_bytes, pids, output_bytes, file_bytes)",
			            what, (int)(n > 40 ? 40 : n), p);
		}
		if (kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    kv->val.via.u64 > (uint64_t)INT64_MAX)
			return fail(d, "%s.%s: must be a non-negative integer", what,
			            limit_names[k]);
		*cr_limit_ref(out, k) = (int64_t)kv->val.via.u64;
	}
	return 0;
}

static int decode_file(dec *d, const msgpack_object *o, size_t i, cr_file *f)
{
	char what[48];
	if (o->type != MSGPACK_OBJECT_MAP)
		return fail(d, "files[%zu]: must be a map {name, content}", i);
	const msgpack_object *name = cr_obj_get(o, "name");
	const msgpack_object *content = cr_obj_get(o, "content");
	if (!name)
		return fail(d, "files[%zu]: missing name", i);
	if (!content)
		return fail(d, "files[%zu]: missing content", i);
	snprintf(what, sizeof what, "files[%zu].name", i);
	if (get_text(d, name, what, &f->name))
		return CR_DECODE_BAD;
	if (!cr_valid_path(f->name, strlen(f->name), d->caps->max_name_len))
		return fail(d, "files[%zu].name '%.64s': must be a relative path of at most %zu "
		               "bytes, without '..', '.', empty components, a leading '/' "
		               "or control characters",
		            i, f->name, d->caps->max_name_len);
	const char *p;
	size_t n;
	if (!cr_obj_bytes(content, &p, &n))
		return fail(d, "files[%zu].content: must be a string or binary", i);
	if (n > d->caps->max_file_bytes)
		return fail(d, "files[%zu] '%.64s': %zu bytes, more than the maximum %zu", i,
		            f->name, n, d->caps->max_file_bytes);
	d->total_bytes += n;
	if (!(f->data = dup_bytes(p, n)))
		return fail(d, "files[%zu]: out of memory", i);
	f->len = n;
	return 0;
}

/* "a" and "a/b" cannot both exist: a file cannot also be a folder. */
static int check_file_set(dec *d)
{
	cr_request *r = d->req;
	for (size_t i = 0; i < r->nfiles; i++)
		for (size_t j = 0; j < r->nfiles; j++) {
			if (i == j)
				continue;
			const char *a = r->files[i].name, *b = r->files[j].name;
			size_t la = strlen(a);
			if (i < j && strcmp(a, b) == 0)
				return fail(d, "files: '%.64s' is given twice", a);
			if (strncmp(a, b, la) == 0 && b[la] == '/')
				return fail(d, "files: '%.64s' is a file and a folder of '%.64s'", a, b);
		}
	return 0;
}

static int decode_files(dec *d, const msgpack_object *o)
{
	cr_request *r = d->req;
	if (!o)
		return fail(d, "files: missing (a run needs at least one file)");
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return fail(d, "files: must be an array of {name, content}");
	if (o->via.array.size == 0)
		return fail(d, "files: a run needs at least one file");
	if (o->via.array.size > d->caps->max_files)
		return fail(d, "files: %u files, more than the maximum %zu", o->via.array.size,
		            d->caps->max_files);
	r->files = calloc(o->via.array.size, sizeof *r->files);
	if (!r->files)
		return fail(d, "files: out of memory");
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		r->nfiles = i + 1;
		if (decode_file(d, &o->via.array.ptr[i], i, &r->files[i]))
			return CR_DECODE_BAD;
	}
	return check_file_set(d);
}

static int decode_args(dec *d, const msgpack_object *o)
{
	cr_request *r = d->req;
	if (o->type != MSGPACK_OBJECT_ARRAY)
		return fail(d, "args: must be an array of strings");
	if (o->via.array.size > d->caps->max_args)
		return fail(d, "args: %u arguments, more than the maximum %zu",
		            o->via.array.size, d->caps->max_args);
	r->args = calloc(o->via.array.size + 1, sizeof *r->args);
	if (!r->args)
		return fail(d, "args: out of memory");
	for (uint32_t i = 0; i < o->via.array.size; i++) {
		char what[32];
		snprintf(what, sizeof what, "args[%u]", i);
		if (get_text(d, &o->via.array.ptr[i], what, &r->args[i]))
			return CR_DECODE_BAD;
		r->nargs = i + 1;
		d->argenv_bytes += strlen(r->args[i]) + 1;
	}
	return 0;
}

static bool valid_env_key(const char *k)
{
	if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
		return false;
	for (const char *p = k + 1; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return strncmp(k, "CORRAL_", 7) != 0;
}

static int decode_env(dec *d, const msgpack_object *o)
{
	cr_request *r = d->req;
	if (o->type != MSGPACK_OBJECT_MAP)
		return fail(d, "env: must be a map of strings to strings");
	if (o->via.map.size > d->caps->max_env)
		return fail(d, "env: %u entries, more than the maximum %zu", o->via.map.size,
		            d->caps->max_env);
	r->env = calloc(o->via.map.size + 1, sizeof *r->env);
	if (!r->env)
		return fail(d, "env: out of memory");
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		cr_kv *kv = &r->env[i];
		r->nenv = i + 1;
		if (get_text(d, &o->via.map.ptr[i].key, "env key", &kv->key))
			return CR_DECODE_BAD;
		if (!valid_env_key(kv->key))
			return fail(d, "env: key '%.64s' must match [A-Za-z_][A-Za-z0-9_]* and "
			               "not start with CORRAL_", kv->key);
		char what[96];
		snprintf(what, sizeof what, "env.%.64s", kv->key);
		if (get_text(d, &o->via.map.ptr[i].val, what, &kv->value))
			return CR_DECODE_BAD;
		d->argenv_bytes += strlen(kv->key) + strlen(kv->value) + 2;
	}
	return 0;
}

static int decode_run(dec *d, const msgpack_object *m)
{
	cr_request *r = d->req;
	const msgpack_object *o;
	if (decode_files(d, cr_obj_get(m, "files")))
		return CR_DECODE_BAD;
	if ((o = cr_obj_get(m, "entry")) && o->type != MSGPACK_OBJECT_NIL) {
		if (get_text(d, o, "entry", &r->entry))
			return CR_DECODE_BAD;
		size_t i;
		for (i = 0; i < r->nfiles && strcmp(r->files[i].name, r->entry) != 0; i++)
			;
		if (i == r->nfiles)
			return fail(d, "entry: '%.64s' is not one of the files", r->entry);
	} else if (!(r->entry = dup_bytes(r->files[0].name, strlen(r->files[0].name)))) {
		return fail(d, "entry: out of memory");
	}
	if ((o = cr_obj_get(m, "stdin")) && o->type != MSGPACK_OBJECT_NIL) {
		const char *p;
		size_t n;
		if (!cr_obj_bytes(o, &p, &n))
			return fail(d, "stdin: must be a string or binary");
		d->total_bytes += n;
		if (!(r->stdin_data = dup_bytes(p, n)))
			return fail(d, "stdin: out of memory");
		r->stdin_len = n;
	}
	if (d->total_bytes > d->caps->max_total_bytes)
		return fail(d, "files and stdin: %zu bytes in all, more than the maximum %zu",
		            d->total_bytes, d->caps->max_total_bytes);
	if ((o = cr_obj_get(m, "args")) && o->type != MSGPACK_OBJECT_NIL &&
	    decode_args(d, o))
		return CR_DECODE_BAD;
	if ((o = cr_obj_get(m, "env")) && o->type != MSGPACK_OBJECT_NIL && decode_env(d, o))
		return CR_DECODE_BAD;
	if (d->argenv_bytes > d->caps->max_argenv_bytes)
		return fail(d, "args and env: %zu bytes in all, more than the maximum %zu",
		            d->argenv_bytes, d->caps->max_argenv_bytes);
	if ((o = cr_obj_get(m, "limits")) && decode_limits(d, o, "limits", &r->limits))
		return CR_DECODE_BAD;
	if ((o = cr_obj_get(m, "compile_limits")) &&
	    decode_limits(d, o, "compile_limits", &r->compile_limits))
		return CR_DECODE_BAD;
	return 0;
}

static int decode_head(dec *d, const msgpack_object *m)
{
	cr_request *r = d->req;
	const msgpack_object *o;
	int64_t v;
	/* id first, so that even a refused request's reply can name it. */
	if ((o = cr_obj_get(m, "id")) && o->type != MSGPACK_OBJECT_NIL) {
		const char *p;
		size_t n;
		if (!cr_obj_bytes(o, &p, &n) || !cr_valid_id(p, n))
			return fail(d, "id: must be 1 to 64 characters of [A-Za-z0-9._-]");
		memcpy(r->id, p, n);
		r->id[n] = '\0';
	}
	if (!(o = cr_obj_get(m, "v")))
		return fail(d, "v: missing (the protocol version, 1)");
	if (!cr_obj_int(o, &v))
		return fail(d, "v: must be an integer");
	if (v != CR_WIRE_VERSION) {
		snprintf(d->err, d->errlen, "v: version %lld is not supported (this worker speaks 1)",
		         (long long)v);
		return CR_DECODE_UNSUPPORTED;
	}
	if (!(o = cr_obj_get(m, "op")))
		return fail(d, "op: missing (run, info, ping or cancel)");
	if (!cr_obj_bytes(o, &(const char *){ 0 }, &(size_t){ 0 }))
		return fail(d, "op: must be a string");
	if (cr_obj_eq(o, "run"))
		r->op = CR_OP_RUN;
	else if (cr_obj_eq(o, "info"))
		r->op = CR_OP_INFO;
	else if (cr_obj_eq(o, "ping"))
		r->op = CR_OP_PING;
	else if (cr_obj_eq(o, "cancel"))
		r->op = CR_OP_CANCEL;
	else {
		snprintf(d->err, d->errlen, "op: unknown operation (known: run, info, ping, cancel)");
		return CR_DECODE_UNSUPPORTED;
	}
	if ((r->op == CR_OP_RUN || r->op == CR_OP_CANCEL) && !r->id[0])
		return fail(d, "id: missing (required for %s)", r->op == CR_OP_RUN ? "run" : "cancel");
	return 0;
}

int cr_request_decode(const void *buf, size_t len, const cr_caps *caps,
                      cr_request *req, char *err, size_t errlen)
{
	dec d = { .req = req, .caps = caps ? caps : &cr_caps_default, .err = err,
		  .errlen = errlen };
	memset(req, 0, sizeof *req);
	req->limits = req->compile_limits = CR_LIMITS_UNSET;

	/* Declared sizes first: msgpack-c allocates for them before reading. */
	cr_bounds bounds = cr_request_bounds(d.caps);
	msgpack_unpacked u;
	size_t off = 0;
	msgpack_unpacked_init(&u);
	int rc = cr_msgpack_check(buf, len, &bounds, err, errlen);
	msgpack_unpack_return ur = rc ? MSGPACK_UNPACK_SUCCESS
	                              : msgpack_unpack_next(&u, buf, len, &off);
	if (rc)
		;
	else if (ur == MSGPACK_UNPACK_CONTINUE)
		rc = fail(&d, "not a whole msgpack message (truncated: it declares more than "
		              "its %zu bytes hold)", len);
	else if (ur != MSGPACK_UNPACK_SUCCESS)
		rc = fail(&d, "not valid msgpack");
	else if (off != len)
		rc = fail(&d, "%zu bytes of garbage after the msgpack map", len - off);
	else if (u.data.type != MSGPACK_OBJECT_MAP)
		rc = fail(&d, "the request must be a msgpack map");
	else if (!(rc = decode_head(&d, &u.data)) && req->op == CR_OP_RUN)
		rc = decode_run(&d, &u.data);
	msgpack_unpacked_destroy(&u);
	if (rc) {
		char id[CR_ID_MAX + 1];
		memcpy(id, req->id, sizeof id);
		cr_request_free(req);
		memcpy(req->id, id, sizeof id);
	}
	return rc;
}

void cr_request_free(cr_request *req)
{
	for (size_t i = 0; i < req->nfiles; i++) {
		free(req->files[i].name);
		free(req->files[i].data);
	}
	free(req->files);
	free(req->entry);
	free(req->stdin_data);
	for (size_t i = 0; i < req->nargs; i++)
		free(req->args[i]);
	free(req->args);
	for (size_t i = 0; i < req->nenv; i++) {
		free(req->env[i].key);
		free(req->env[i].value);
	}
	free(req->env);
	memset(req, 0, sizeof *req);
	req->limits = req->compile_limits = CR_LIMITS_UNSET;
}

/* ---- encoding (clients) ---------------------------------------------- */

static bool limits_any(const cr_limits *l)
{
	for (int i = 0; i < CR_NLIMITS; i++)
		if (cr_limit_get(l, i) != CR_UNSET)
			return true;
	return false;
}

static void pack_run_fields(msgpack_packer *pk, const cr_request *r)
{
	cr_pack_key(pk, "files");
	msgpack_pack_array(pk, r->nfiles);
	for (size_t i = 0; i < r->nfiles; i++) {
		msgpack_pack_map(pk, 2);
		cr_pack_kstr(pk, "name", r->files[i].name);
		cr_pack_key(pk, "content");
		cr_pack_bin(pk, r->files[i].data, r->files[i].len);
	}
	if (r->entry)
		cr_pack_kstr(pk, "entry", r->entry);
	if (r->stdin_data) {
		cr_pack_key(pk, "stdin");
		cr_pack_bin(pk, r->stdin_data, r->stdin_len);
	}
	if (r->nargs) {
		cr_pack_key(pk, "args");
		msgpack_pack_array(pk, r->nargs);
		for (size_t i = 0; i < r->nargs; i++)
			cr_pack_str(pk, r->args[i]);
	}
	if (r->nenv) {
		cr_pack_key(pk, "env");
		msgpack_pack_map(pk, r->nenv);
		for (size_t i = 0; i < r->nenv; i++)
			cr_pack_kstr(pk, r->env[i].key, r->env[i].value);
	}
	if (limits_any(&r->limits)) {
		cr_pack_key(pk, "limits");
		cr_pack_limits(pk, &r->limits);
	}
	if (limits_any(&r->compile_limits)) {
		cr_pack_key(pk, "compile_limits");
		cr_pack_limits(pk, &r->compile_limits);
	}
}

void cr_request_encode(const cr_request *r, msgpack_sbuffer *sb)
{
	static const char *const ops[] = { "run", "info", "ping", "cancel" };
	msgpack_packer pk;
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	size_t n = 2 + (r->id[0] != 0);
	if (r->op == CR_OP_RUN)
		n += 1 + !!r->entry + !!r->stdin_data + !!r->nargs + !!r->nenv +
		     limits_any(&r->limits) + limits_any(&r->compile_limits);
	msgpack_pack_map(&pk, n);
	cr_pack_kint(&pk, "v", CR_WIRE_VERSION);
	cr_pack_kstr(&pk, "op", ops[r->op]);
	if (r->id[0])
		cr_pack_kstr(&pk, "id", r->id);
	if (r->op == CR_OP_RUN)
		pack_run_fields(&pk, r);
}
