/*
 * wire_reply.c — write replies of wire protocol v1, and read any decoded
 * msgpack map.
 *
 * Replies are written straight into a msgpack packer: the caller knows
 * which keys it adds, so there is no intermediate tree. Output bytes are
 * always packed as bin (they need not be UTF-8); text is packed as str.
 */
#include "wire.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char *const status_names[] = {
	[CR_ST_OK] = "ok",           [CR_ST_EXIT] = "exit",
	[CR_ST_SIGNAL] = "signal",   [CR_ST_TIMEOUT] = "timeout",
	[CR_ST_MEMORY] = "memory",   [CR_ST_OUTPUT] = "output",
};

const char *cr_status_name(cr_status s)
{
	return (unsigned)s < sizeof status_names / sizeof *status_names ? status_names[s]
	                                                               : "unknown";
}

const char *cr_signal_name(int sig)
{
	static const struct { int n; const char *s; } t[] = {
		{ SIGHUP, "SIGHUP" },   { SIGINT, "SIGINT" },     { SIGQUIT, "SIGQUIT" },
		{ SIGILL, "SIGILL" },   { SIGTRAP, "SIGTRAP" },   { SIGABRT, "SIGABRT" },
		{ SIGBUS, "SIGBUS" },   { SIGFPE, "SIGFPE" },     { SIGKILL, "SIGKILL" },
		{ SIGUSR1, "SIGUSR1" }, { SIGSEGV, "SIGSEGV" },   { SIGUSR2, "SIGUSR2" },
		{ SIGPIPE, "SIGPIPE" }, { SIGALRM, "SIGALRM" },   { SIGTERM, "SIGTERM" },
		{ SIGSTKFLT, "SIGSTKFLT" }, { SIGCHLD, "SIGCHLD" }, { SIGCONT, "SIGCONT" },
		{ SIGSTOP, "SIGSTOP" }, { SIGTSTP, "SIGTSTP" },   { SIGTTIN, "SIGTTIN" },
		{ SIGTTOU, "SIGTTOU" }, { SIGURG, "SIGURG" },     { SIGXCPU, "SIGXCPU" },
		{ SIGXFSZ, "SIGXFSZ" }, { SIGVTALRM, "SIGVTALRM" }, { SIGPROF, "SIGPROF" },
		{ SIGWINCH, "SIGWINCH" }, { SIGIO, "SIGIO" },     { SIGPWR, "SIGPWR" },
		{ SIGSYS, "SIGSYS" },
	};
	for (size_t i = 0; i < sizeof t / sizeof *t; i++)
		if (t[i].n == sig)
			return t[i].s;
	return "SIGUNKNOWN";
}

void cr_stage_free(cr_stage *st)
{
	free(st->out);
	free(st->err);
	free(st->chunks);
	memset(st, 0, sizeof *st);
}

/* ---- packing ---------------------------------------------------------- */

void cr_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void cr_pack_str(msgpack_packer *pk, const char *s) { cr_pack_strn(pk, s, strlen(s)); }

void cr_pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, p, n);
}

void cr_pack_key(msgpack_packer *pk, const char *key) { cr_pack_str(pk, key); }

void cr_pack_kstr(msgpack_packer *pk, const char *key, const char *val)
{
	cr_pack_key(pk, key);
	if (val)
		cr_pack_str(pk, val);
	else
		msgpack_pack_nil(pk);
}

void cr_pack_kint(msgpack_packer *pk, const char *key, int64_t val)
{
	cr_pack_key(pk, key);
	msgpack_pack_int64(pk, val);
}

void cr_pack_kbool(msgpack_packer *pk, const char *key, bool val)
{
	cr_pack_key(pk, key);
	if (val)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

void cr_pack_limits(msgpack_packer *pk, const cr_limits *l)
{
	size_t n = 0;
	for (int i = 0; i < CR_NLIMITS; i++)
		n += cr_limit_get(l, i) != CR_UNSET;
	msgpack_pack_map(pk, n);
	for (int i = 0; i < CR_NLIMITS; i++)
		if (cr_limit_get(l, i) != CR_UNSET)
			cr_pack_kint(pk, cr_limit_name(i), cr_limit_get(l, i));
}

void cr_reply_begin(msgpack_packer *pk, const char *id, bool ok, const char *worker,
                    size_t extra_pairs)
{
	msgpack_pack_map(pk, 4 + extra_pairs);
	cr_pack_kint(pk, "v", CR_WIRE_VERSION);
	cr_pack_kstr(pk, "id", id ? id : "");
	cr_pack_kbool(pk, "ok", ok);
	cr_pack_kstr(pk, "worker", worker);
}

void cr_reply_error(msgpack_packer *pk, const char *id, const char *worker,
                    const char *code, const char *message)
{
	cr_reply_begin(pk, id, false, worker, 1);
	cr_pack_key(pk, "error");
	msgpack_pack_map(pk, 2);
	cr_pack_kstr(pk, "code", code);
	cr_pack_kstr(pk, "message", message);
}

void cr_pack_stage(msgpack_packer *pk, const cr_stage *st)
{
	msgpack_pack_map(pk, 11);
	cr_pack_kstr(pk, "status", cr_status_name(st->status));
	cr_pack_key(pk, "exit_code");
	if (st->exit_code >= 0)
		msgpack_pack_int(pk, st->exit_code);
	else
		msgpack_pack_nil(pk);
	cr_pack_kstr(pk, "signal", st->signal ? cr_signal_name(st->signal) : NULL);
	cr_pack_key(pk, "stdout");
	cr_pack_bin(pk, st->out ? st->out : "", st->out_len);
	cr_pack_key(pk, "stderr");
	cr_pack_bin(pk, st->err ? st->err : "", st->err_len);
	cr_pack_kbool(pk, "stdout_truncated", st->out_truncated);
	cr_pack_kbool(pk, "stderr_truncated", st->err_truncated);
	cr_pack_key(pk, "chunks");
	msgpack_pack_array(pk, st->nchunks);
	for (size_t i = 0; i < st->nchunks; i++)
		msgpack_pack_int32(pk, st->chunks[i]);
	cr_pack_kint(pk, "wall_ms", st->wall_ms);
	cr_pack_kint(pk, "cpu_ms", st->cpu_ms);
	cr_pack_kint(pk, "memory_bytes", st->memory_bytes);
}

/* ---- reading ---------------------------------------------------------- */

bool cr_obj_bytes(const msgpack_object *o, const char **p, size_t *n)
{
	if (!o) /* callers pass cr_obj_get()'s NULL for an absent key */
		return false;
	if (o->type == MSGPACK_OBJECT_STR) {
		*p = o->via.str.ptr;
		*n = o->via.str.size;
		return true;
	}
	if (o->type == MSGPACK_OBJECT_BIN) {
		*p = o->via.bin.ptr;
		*n = o->via.bin.size;
		return true;
	}
	return false;
}

bool cr_obj_eq(const msgpack_object *o, const char *s)
{
	const char *p;
	size_t n;
	return cr_obj_bytes(o, &p, &n) && n == strlen(s) && memcmp(p, s, n) == 0;
}

bool cr_obj_int(const msgpack_object *o, int64_t *v)
{
	if (!o)
		return false;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX) {
		*v = (int64_t)o->via.u64;
		return true;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return true;
	}
	return false;
}

const msgpack_object *cr_obj_get(const msgpack_object *map, const char *key)
{
	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++)
		if (cr_obj_eq(&map->via.map.ptr[i].key, key))
			return &map->via.map.ptr[i].val;
	return NULL;
}
