/*
 * main.c — `corral`, the direct client of a worker, for maintainers and
 * tests: try a runtime without the gateway.
 *
 *   corral invoke --worker URL [options] FILE...   run files, print output
 *   corral ping   --worker URL                     health
 *   corral info   --worker URL                     runtime, slots, limits
 *   corral cancel --worker URL ID                  stop a running invocation
 *   corral raw    --worker URL                     stdin bytes -> one request,
 *                                                  reply bytes -> stdout
 *
 * `invoke` writes the program's stdout and stderr to its own and exits
 * with the program's exit code, so it composes in shell scripts; the
 * codes it adds for other endings are listed in usage().
 */
#include "auth.h"
#include "conf.h"
#include "wire.h"
#include "wire_json.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { X_USAGE = 2, X_WORKER = 3, X_TIMEOUT = 124, X_MEMORY = 125, X_OUTPUT = 126 };

static void usage(FILE *f)
{
	fputs("usage:\n"
	      "  corral invoke --worker URL [options] FILE...\n"
	      "  corral ping|info --worker URL\n"
	      "  corral cancel --worker URL ID\n"
	      "  corral raw --worker URL  < request.msgpack > reply.msgpack\n\n"
	      "URL is tcp://HOST:PORT or ipc:///PATH (env CORRAL_WORKER).\n"
	      "  --secret-file PATH    sign every request with the workers' shared secret\n"
	      "                        (docs/protocol.md, \"Authentication\"; env\n"
	      "                        CORRAL_SECRET_FILE) [unsigned]\n"
	      "invoke options:\n"
	      "  --stdin FILE          program's stdin ('-': this stdin) [empty]\n"
	      "  --arg ARG             one argument after the entry; repeatable\n"
	      "  --env K=V             one environment variable; repeatable\n"
	      "  --entry NAME          entry file [the first FILE]\n"
	      "  --limits K=V,...      run limits (wall_ms, cpu_ms, memory_bytes, pids,\n"
	      "                        output_bytes, file_bytes; K/M/G suffixes)\n"
	      "  --compile-limits K=V,...\n"
	      "  --id ID               invocation id [cli-<pid>]\n"
	      "  --timeout-ms MS       how long to wait for the reply [300000]\n"
	      "  --json                print the whole reply instead of the output\n"
	      "A FILE is sent under the relative path given (or its base name when\n"
	      "absolute); NAME=PATH sends PATH under NAME.\n\n"
	      "invoke exits with the program's exit code, or 124 timeout, 125 memory,\n"
	      "126 output limit, 128+N killed by signal N, 1 compile error,\n"
	      "2 bad usage or bad_request, 3 worker or transport error.\n",
	      f);
}

static int die(int code, const char *fmt, const char *arg)
{
	fprintf(stderr, "corral: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return code;
}

static int read_all(FILE *f, char **out, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap);
	size_t r;
	if (!buf)
		return -1;
	while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				return -1;
			}
			buf = nb;
		}
	}
	if (ferror(f)) {
		free(buf);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

static int read_path(const char *path, char **out, size_t *len)
{
	if (strcmp(path, "-") == 0)
		return read_all(stdin, out, len);
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	int rc = read_all(f, out, len);
	fclose(f);
	return rc;
}

static cr_auth *auth; /* --secret-file */

/* One request/reply over a fresh REQ socket; signed with --secret-file. */
static int exchange(const char *url, const void *req, size_t len, int64_t timeout_ms,
                    nng_msg **reply)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	if (auth) { /* a body that is no map (raw) goes as it is */
		msgpack_sbuffer_write(&sb, req, len);
		if (cr_auth_sign(auth, &sb) == 0)
			req = sb.data, len = sb.size;
	}
	nng_socket s;
	int rv;
	if ((rv = nng_req0_open(&s))) {
		msgpack_sbuffer_destroy(&sb);
		return die(X_WORKER, "nng: %s", nng_strerror(rv));
	}
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, (nng_duration)timeout_ms);
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	if ((rv = nng_dial(s, url, NULL, 0))) {
		fprintf(stderr, "corral: cannot connect to %s: %s\n", url, nng_strerror(rv));
		msgpack_sbuffer_destroy(&sb);
		nng_close(s);
		return X_WORKER;
	}
	nng_msg *m;
	rv = nng_msg_alloc(&m, 0);
	if (!rv && (rv = nng_msg_append(m, req, len)))
		nng_msg_free(m);
	msgpack_sbuffer_destroy(&sb);
	if (rv || (rv = nng_sendmsg(s, m, 0)) || (rv = nng_recvmsg(s, reply, 0))) {
		fprintf(stderr, "corral: %s: %s\n", url, nng_strerror(rv));
		nng_close(s);
		return X_WORKER;
	}
	nng_close(s);
	return 0;
}

typedef struct opts {
	const char *worker;
	const char *stdin_path;
	const char *entry;
	const char *id;
	int64_t timeout_ms;
	bool json;
	char **args;
	size_t nargs;
	cr_kv *env;
	size_t nenv;
	char **files;
	size_t nfiles;
	cr_limits limits, compile_limits;
} opts;

static int parse(opts *o, int argc, char **argv)
{
	char err[256];
	const char *secret = cr_env("CORRAL_SECRET_FILE");
	o->worker = cr_env("CORRAL_WORKER");
	o->timeout_ms = 300000;
	o->limits = o->compile_limits = CR_LIMITS_UNSET;
	o->args = calloc((size_t)argc + 1, sizeof *o->args);
	o->env = calloc((size_t)argc + 1, sizeof *o->env);
	o->files = calloc((size_t)argc + 1, sizeof *o->files);
	if (!o->args || !o->env || !o->files)
		return die(X_USAGE, "%s", "out of memory");
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = strcmp(a, "--json") != 0 && strncmp(a, "--", 2) == 0;
		if (takes && !v)
			return die(X_USAGE, "%s needs a value", a);
		if (strcmp(a, "--worker") == 0) o->worker = v;
		else if (strcmp(a, "--secret-file") == 0) secret = v;
		else if (strcmp(a, "--stdin") == 0) o->stdin_path = v;
		else if (strcmp(a, "--entry") == 0) o->entry = v;
		else if (strcmp(a, "--id") == 0) o->id = v;
		else if (strcmp(a, "--arg") == 0) o->args[o->nargs++] = (char *)v;
		else if (strcmp(a, "--json") == 0) o->json = true;
		else if (strcmp(a, "--timeout-ms") == 0) {
			if (cr_parse_int(v, &o->timeout_ms) || o->timeout_ms <= 0)
				return die(X_USAGE, "--timeout-ms '%s': expected a positive number", v);
		} else if (strcmp(a, "--env") == 0) {
			char *eq = strchr(v, '=');
			if (!eq)
				return die(X_USAGE, "--env '%s': expected K=V", v);
			o->env[o->nenv].key = strndup(v, (size_t)(eq - v));
			o->env[o->nenv++].value = eq + 1;
		} else if (strcmp(a, "--limits") == 0 || strcmp(a, "--compile-limits") == 0) {
			cr_limits *l = a[2] == 'l' ? &o->limits : &o->compile_limits;
			if (cr_parse_limits(v, l, err, sizeof err))
				return die(X_USAGE, "%s", err);
		} else if (strncmp(a, "--", 2) == 0) {
			return die(X_USAGE, "unknown option '%s'; see corral --help", a);
		} else {
			o->files[o->nfiles++] = (char *)a;
			continue;
		}
		if (takes)
			i++;
	}
	if (!o->worker)
		return die(X_USAGE, "%s", "--worker URL is required (or CORRAL_WORKER)");
	if (secret && !(auth = cr_auth_load(secret, err, sizeof err)))
		return die(X_USAGE, "--secret-file (CORRAL_SECRET_FILE): %s", err);
	return 0;
}

static int load_files(const opts *o, cr_request *r)
{
	r->files = calloc(o->nfiles, sizeof *r->files);
	if (!r->files)
		return die(X_USAGE, "%s", "out of memory");
	for (size_t i = 0; i < o->nfiles; i++) {
		const char *spec = o->files[i], *eq = strchr(spec, '=');
		const char *path = eq ? eq + 1 : spec;
		char *name = eq ? strndup(spec, (size_t)(eq - spec))
		                : strdup(path[0] == '/' ? strrchr(path, '/') + 1 : path);
		while (!eq && strncmp(name, "./", 2) == 0)
			memmove(name, name + 2, strlen(name) - 1);
		r->files[i].name = name;
		r->nfiles = i + 1;
		if (read_path(path, &r->files[i].data, &r->files[i].len))
			return fprintf(stderr, "corral: %s: %s\n", path, strerror(errno)), X_USAGE;
	}
	return 0;
}

/* Writes a stage's stdout and stderr to ours in the order the program
 * wrote them (the reply's `chunks`), or all stdout then all stderr when
 * the reply has no usable order. */
static void write_output(const msgpack_object *st)
{
	const char *out = "", *err = "";
	size_t on = 0, en = 0, oi = 0, ei = 0;
	const msgpack_object *o = cr_obj_get(st, "stdout"), *e = cr_obj_get(st, "stderr");
	const msgpack_object *ch = cr_obj_get(st, "chunks");
	if (o)
		cr_obj_bytes(o, &out, &on);
	if (e)
		cr_obj_bytes(e, &err, &en);
	fflush(stdout);
	for (uint32_t i = 0; ch && ch->type == MSGPACK_OBJECT_ARRAY && i < ch->via.array.size; i++) {
		int64_t n;
		if (!cr_obj_int(&ch->via.array.ptr[i], &n))
			break;
		if (n > 0 && (size_t)n <= on - oi) {
			fwrite(out + oi, 1, (size_t)n, stdout);
			fflush(stdout);
			oi += (size_t)n;
		} else if (n < 0 && (size_t)-n <= en - ei) {
			fwrite(err + ei, 1, (size_t)-n, stderr);
			ei += (size_t)-n;
		}
	}
	fwrite(out + oi, 1, on - oi, stdout); /* what the order did not cover */
	fflush(stdout);
	fwrite(err + ei, 1, en - ei, stderr);
}

/* Writes a stage's output and tells how it ended; the exit code. */
static int show_stage(const msgpack_object *st, bool is_run)
{
	const char *p;
	size_t n;
	const msgpack_object *o;
	write_output(st);
	int64_t code = 0;
	const msgpack_object *status = cr_obj_get(st, "status");
	if (!status || !cr_obj_bytes(status, &p, &n))
		return die(X_WORKER, "%s", "reply without a status");
	if (cr_obj_eq(status, "ok"))
		return 0;
	const char *sig = "";
	size_t sn = 0;
	if ((o = cr_obj_get(st, "signal")))
		cr_obj_bytes(o, &sig, &sn);
	if (cr_obj_eq(status, "exit")) {
		if ((o = cr_obj_get(st, "exit_code")))
			cr_obj_int(o, &code);
		if (is_run)
			return (int)code;
		fprintf(stderr, "corral: compile failed (exit %d)\n", (int)code);
		return 1;
	}
	fprintf(stderr, "corral: %s stage ended: %.*s%s%.*s\n", is_run ? "run" : "compile",
	        (int)n, p, sn ? " " : "", (int)sn, sig);
	if (!is_run)
		return 1;
	if (cr_obj_eq(status, "timeout"))
		return X_TIMEOUT;
	if (cr_obj_eq(status, "memory"))
		return X_MEMORY;
	if (cr_obj_eq(status, "output"))
		return X_OUTPUT;
	for (int s = 1; s < 65; s++)
		if (sn && strlen(cr_signal_name(s)) == sn && memcmp(cr_signal_name(s), sig, sn) == 0)
			return 128 + s;
	return X_WORKER;
}

static bool reply_ok(const msgpack_object *reply)
{
	const msgpack_object *ok = cr_obj_get(reply, "ok");
	return ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
}

/* Decodes a reply, prints it per the command; the exit code. */
static int show_reply(nng_msg *m, bool json, bool is_run)
{
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	size_t off = 0;
	int rc;
	if (msgpack_unpack_next(&u, nng_msg_body(m), nng_msg_len(m), &off) !=
	    MSGPACK_UNPACK_SUCCESS) {
		rc = die(X_WORKER, "%s", "the worker's reply is not msgpack");
	} else if (json || !is_run) {
		json_t *j = cr_obj_to_json(&u.data);
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(j);
		rc = reply_ok(&u.data) ? 0 : X_WORKER;
	} else if (!reply_ok(&u.data)) {
		const msgpack_object *e = cr_obj_get(&u.data, "error");
		const char *c = "?", *msg = "?";
		size_t cn = 1, mn = 1;
		cr_obj_bytes(cr_obj_get(e, "code"), &c, &cn);
		cr_obj_bytes(cr_obj_get(e, "message"), &msg, &mn);
		fprintf(stderr, "corral: %.*s: %.*s\n", (int)cn, c, (int)mn, msg);
		rc = cr_obj_eq(cr_obj_get(e, "code"), CR_E_BAD_REQUEST) ? X_USAGE : X_WORKER;
	} else {
		const msgpack_object *comp = cr_obj_get(&u.data, "compile");
		const msgpack_object *run = cr_obj_get(&u.data, "run");
		rc = comp ? show_stage(comp, false) : 0;
		if (run)
			rc = show_stage(run, true);
	}
	msgpack_unpacked_destroy(&u);
	return rc;
}

/* What load_files and --stdin allocated (the rest belongs to opts). */
static void free_loaded(cr_request *r)
{
	for (size_t i = 0; i < r->nfiles; i++) {
		free(r->files[i].name);
		free(r->files[i].data);
	}
	free(r->files);
	free(r->stdin_data);
	r->files = NULL;
	r->stdin_data = NULL;
}

static int cmd_invoke(opts *o)
{
	cr_request r;
	memset(&r, 0, sizeof r);
	r.op = CR_OP_RUN;
	snprintf(r.id, sizeof r.id, "%s", o->id ? o->id : "");
	if (!o->id)
		snprintf(r.id, sizeof r.id, "cli-%d", (int)getpid());
	if (o->nfiles == 0)
		return die(X_USAGE, "%s", "invoke needs at least one FILE");
	int rc = load_files(o, &r);
	if (rc) {
		free_loaded(&r);
		return rc;
	}
	r.entry = (char *)o->entry;
	if (o->stdin_path && read_path(o->stdin_path, &r.stdin_data, &r.stdin_len)) {
		fprintf(stderr, "corral: %s: %s\n", o->stdin_path, strerror(errno));
		free_loaded(&r);
		return X_USAGE;
	}
	r.args = o->args;
	r.nargs = o->nargs;
	r.env = o->env;
	r.nenv = o->nenv;
	r.limits = o->limits;
	r.compile_limits = o->compile_limits;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_request_encode(&r, &sb);
	nng_msg *reply;
	rc = exchange(o->worker, sb.data, sb.size, o->timeout_ms, &reply);
	msgpack_sbuffer_destroy(&sb);
	free_loaded(&r);
	if (rc)
		return rc;
	rc = show_reply(reply, o->json, true);
	nng_msg_free(reply);
	return rc;
}

static int cmd_simple(opts *o, cr_op op)
{
	cr_request r;
	memset(&r, 0, sizeof r);
	r.op = op;
	if (op == CR_OP_CANCEL) {
		if (o->nfiles != 1 || !cr_valid_id(o->files[0], strlen(o->files[0])))
			return die(X_USAGE, "%s", "cancel needs one invocation ID");
		snprintf(r.id, sizeof r.id, "%s", o->files[0]);
	}
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_request_encode(&r, &sb);
	nng_msg *reply;
	int rc = exchange(o->worker, sb.data, sb.size, o->timeout_ms, &reply);
	msgpack_sbuffer_destroy(&sb);
	if (rc)
		return rc;
	rc = show_reply(reply, true, false);
	nng_msg_free(reply);
	return rc;
}

static int cmd_raw(opts *o)
{
	char *buf;
	size_t len;
	if (read_all(stdin, &buf, &len))
		return die(X_USAGE, "%s", "cannot read stdin");
	nng_msg *reply;
	int rc = exchange(o->worker, buf, len, o->timeout_ms, &reply);
	free(buf);
	if (rc)
		return rc;
	fwrite(nng_msg_body(reply), 1, nng_msg_len(reply), stdout);
	nng_msg_free(reply);
	return fflush(stdout) ? X_WORKER : 0;
}

int main(int argc, char **argv)
{
	static opts o;
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? X_USAGE : 0;
	}
	int rc = parse(&o, argc, argv);
	if (rc)
		return rc;
	const char *cmd = argv[1];
	if (strcmp(cmd, "invoke") == 0)
		return cmd_invoke(&o);
	if (strcmp(cmd, "ping") == 0)
		return cmd_simple(&o, CR_OP_PING);
	if (strcmp(cmd, "info") == 0)
		return cmd_simple(&o, CR_OP_INFO);
	if (strcmp(cmd, "cancel") == 0)
		return cmd_simple(&o, CR_OP_CANCEL);
	if (strcmp(cmd, "raw") == 0)
		return cmd_raw(&o);
	return die(X_USAGE, "unknown command '%s'; see corral --help", cmd);
}
