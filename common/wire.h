/*
 * wire.h — corral wire protocol v1 (see docs/protocol.md).
 *
 * Every message is one msgpack map carried by nng REQ/REP. This module
 * owns the mapping between those maps and plain C structs:
 *
 *   cr_request_decode()  worker side: bytes -> cr_request, validating
 *                        everything (types, id, file names, caps) and
 *                        saying in `err` what is wrong.
 *   cr_request_encode()  client side (cli, gateway): cr_request -> bytes.
 *   cr_msgpack_check()   the declared sizes of raw msgpack, checked before
 *                        msgpack-c unpacks (and allocates for) them.
 *   cr_reply_*()         helpers to write replies (run/error) and
 *                        cr_obj_*() to read any decoded map.
 *
 * A decoded request owns copies of all its strings (NUL-terminated, so
 * they can go straight to execve); cr_request_free() releases them.
 */
#ifndef CR_WIRE_H
#define CR_WIRE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CR_WIRE_VERSION 1
#define CR_ID_MAX 64
#define CR_UNSET (-1) /* a limit that the request did not give */

typedef enum { CR_OP_RUN, CR_OP_INFO, CR_OP_PING, CR_OP_CANCEL } cr_op;

/* Limits of one stage. Each field is CR_UNSET or >= 0. */
typedef struct cr_limits {
	int64_t wall_ms;
	int64_t cpu_ms;
	int64_t memory_bytes;
	int64_t pids;
	int64_t output_bytes; /* per stream: stdout and stderr each */
	int64_t file_bytes;
} cr_limits;

#define CR_LIMITS_UNSET                                                     \
	((cr_limits){ CR_UNSET, CR_UNSET, CR_UNSET, CR_UNSET, CR_UNSET, CR_UNSET })

/* Name of limit field i (0..5) and pointer to it, for generic loops. */
#define CR_NLIMITS 6
const char *cr_limit_name(int i);
int64_t *cr_limit_ref(cr_limits *l, int i);
int64_t cr_limit_get(const cr_limits *l, int i);

typedef struct cr_file {
	char *name; /* relative path, validated: no "..", no leading '/', no NUL */
	char *data;
	size_t len;
} cr_file;

typedef struct cr_kv {
	char *key;
	char *value;
} cr_kv;

typedef struct cr_request {
	cr_op op;
	char id[CR_ID_MAX + 1]; /* "" when absent (allowed for info/ping) */
	cr_file *files;
	size_t nfiles;
	char *entry; /* never NULL after decode of a run: defaults to files[0] */
	char *stdin_data;
	size_t stdin_len;
	char **args; /* NULL-terminated as well */
	size_t nargs;
	cr_kv *env;
	size_t nenv;
	cr_limits limits;
	cr_limits compile_limits;
} cr_request;

/* What a decoder accepts at most: past these, bad_request. */
typedef struct cr_caps {
	size_t max_files;
	size_t max_file_bytes;  /* one file */
	size_t max_total_bytes; /* all files + stdin */
	size_t max_args;
	size_t max_env;
	size_t max_name_len;      /* file path length */
	size_t max_argenv_bytes;  /* args + env, all strings */
} cr_caps;

extern const cr_caps cr_caps_default;

/* Decoding outcome: 0, or the error class for the reply's error.code. */
#define CR_DECODE_BAD (-1)         /* bad_request */
#define CR_DECODE_UNSUPPORTED (-2) /* unsupported (v or op) */

/* Bounds of a msgpack message, checked on its raw bytes before msgpack-c
 * unpacks it (msgpack-c allocates 24 bytes per declared element first). */
typedef struct cr_bounds {
	size_t max_objects; /* objects in all, containers and map keys included */
	size_t max_items;   /* elements of one array, pairs of one map */
	size_t max_bytes;   /* one str, bin or ext */
	size_t max_depth;   /* containers nested (at most 32) */
} cr_bounds;

/* What a request within caps needs at most (docs/protocol.md, "Size
 * limits"): 256 + 5 max_files + max_args + 2 max_env objects, containers
 * of max(max_files, max_args, max_env, 64), strings of
 * max(max_file_bytes, max_total_bytes, max_argenv_bytes), nesting 8. */
cr_bounds cr_request_bounds(const cr_caps *caps);
/* 0, or CR_DECODE_BAD with what is wrong in err: a declared size above a
 * bound or above what the bytes left could hold. Reads headers only and
 * allocates nothing (wire_bounds.c). */
int cr_msgpack_check(const void *buf, size_t len, const cr_bounds *b, char *err,
                     size_t errlen);

/* 0 on success; CR_DECODE_* with a human message in err. On failure
 * *req is left freed except req->id, kept when it could be read so that
 * the error reply can carry it. */
int cr_request_decode(const void *buf, size_t len, const cr_caps *caps,
                      cr_request *req, char *err, size_t errlen);
void cr_request_free(cr_request *req);

/* Client side. Appends one msgpack map to sb. Unset limits are omitted. */
void cr_request_encode(const cr_request *req, msgpack_sbuffer *sb);

/* True when name is an acceptable relative file path. */
bool cr_valid_path(const char *name, size_t len, size_t max_len);
bool cr_valid_id(const char *id, size_t len);

/* ---- replies ---------------------------------------------------------- */

typedef enum {
	CR_ST_OK,      /* exit 0 */
	CR_ST_EXIT,    /* non-zero exit */
	CR_ST_SIGNAL,  /* killed by a signal no limit sent */
	CR_ST_TIMEOUT, /* wall or CPU limit */
	CR_ST_MEMORY,  /* memory limit */
	CR_ST_OUTPUT,  /* output limit hit */
} cr_status;

const char *cr_status_name(cr_status s);

/* Stream switches recorded in cr_stage.chunks (a program alternating
 * one-byte writes would otherwise cost one entry per byte). */
#define CR_MAX_CHUNKS 4096
/* "SIGSEGV" for SIGSEGV; "SIGUNKNOWN" for a number it does not know. */
const char *cr_signal_name(int sig);

/* One stage (compile or run) as it ran. */
typedef struct cr_stage {
	cr_status status;
	int exit_code; /* -1: none (killed by a signal) */
	int signal;    /* 0: none */
	char *out;
	size_t out_len;
	char *err;
	size_t err_len;
	bool out_truncated;
	bool err_truncated;
	/* Interleaving of stdout and stderr in the order they were read:
	 * n > 0 means the next n bytes of out, n < 0 the next -n of err.
	 * At most CR_MAX_CHUNKS + 2 entries: past CR_MAX_CHUNKS the order is
	 * no longer recorded and two last entries give the rest of out, then
	 * the rest of err. The entries always add up to out_len and err_len. */
	int32_t *chunks;
	size_t nchunks;
	int64_t wall_ms;
	int64_t cpu_ms;
	int64_t memory_bytes; /* peak */
} cr_stage;

void cr_stage_free(cr_stage *st);

/* Error codes of replies with ok=false. */
#define CR_E_BAD_REQUEST "bad_request"
#define CR_E_BUSY "busy"
#define CR_E_UNSUPPORTED "unsupported"
#define CR_E_CANCELLED "cancelled"
#define CR_E_INTERNAL "internal"

/*
 * Reply writing: the caller opens the map with cr_reply_begin() telling
 * how many extra key/value pairs it will add after the common ones
 * (v, id, ok, worker), writes them with the cr_pack_*() helpers, and is
 * done. cr_reply_error() writes a whole error reply.
 */
void cr_reply_begin(msgpack_packer *pk, const char *id, bool ok,
                    const char *worker, size_t extra_pairs);
void cr_reply_error(msgpack_packer *pk, const char *id, const char *worker,
                    const char *code, const char *message);
void cr_pack_stage(msgpack_packer *pk, const cr_stage *st);

void cr_pack_str(msgpack_packer *pk, const char *s);
void cr_pack_strn(msgpack_packer *pk, const char *s, size_t n);
void cr_pack_bin(msgpack_packer *pk, const void *p, size_t n);
void cr_pack_kstr(msgpack_packer *pk, const char *key, const char *val);
void cr_pack_kint(msgpack_packer *pk, const char *key, int64_t val);
void cr_pack_kbool(msgpack_packer *pk, const char *key, bool val);
void cr_pack_key(msgpack_packer *pk, const char *key);
void cr_pack_limits(msgpack_packer *pk, const cr_limits *l); /* a map */

/* ---- reading decoded maps (replies, info) ----------------------------- */

/* The value under key in a msgpack map, or NULL. */
const msgpack_object *cr_obj_get(const msgpack_object *map, const char *key);
/* str or bin as pointer+length; false when o is neither, or NULL (so
 * cr_obj_bytes(cr_obj_get(m, "k"), ...) is safe for an absent key). */
bool cr_obj_bytes(const msgpack_object *o, const char **p, size_t *n);
/* integer (positive or negative) into *v; false otherwise (NULL too). */
bool cr_obj_int(const msgpack_object *o, int64_t *v);
/* true iff o is a str or bin equal to s. */
bool cr_obj_eq(const msgpack_object *o, const char *s);

#endif
