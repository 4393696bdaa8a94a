/*
 * bench_serve.c — `corral-bench --serve URL [--runtime NAME]`: a stand-in
 * worker for measuring the gateway hop apart from everything else.
 *
 * It speaks wire protocol v1 on a REP socket and answers at once: `info`
 * and `ping` as a worker with 64 free slots would, every `run` with the
 * same fixed reply (status ok, stdout "OK\n"), `cancel` with cancelled:
 * false. Nothing runs, so the latency of `corral-bench --target` against
 * it directly and through a gateway in front of it differs by exactly
 * what the gateway adds (HTTP, JSON, its own nng round trip), without the
 * milliseconds of noise a real sandbox brings on a shared machine. It is
 * a bench tool only: no gateway or processor code knows of it.
 *
 * One request at a time (a REP socket, no contexts): enough for one
 * client connection plus the gateway's health pings.
 */
#include "wire.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SLOTS 64
#define NAME "bench-serve"

static void pack_runtime(msgpack_packer *pk, const char *runtime, bool full)
{
	cr_pack_key(pk, "runtime");
	msgpack_pack_map(pk, full ? 4 : 2);
	cr_pack_kstr(pk, "name", runtime);
	cr_pack_kstr(pk, "version", "0-bench");
	if (!full)
		return;
	cr_pack_key(pk, "aliases");
	msgpack_pack_array(pk, 0);
	cr_pack_kbool(pk, "compiled", false);
}

static void pack_info(msgpack_packer *pk, const cr_request *r, const char *runtime)
{
	cr_limits unset = CR_LIMITS_UNSET;
	cr_reply_begin(pk, r->id, true, NAME, 6);
	pack_runtime(pk, runtime, true);
	cr_pack_kint(pk, "slots", SLOTS);
	cr_pack_kint(pk, "busy", 0);
	cr_pack_kbool(pk, "draining", false);
	for (int i = 0; i < 2; i++) {
		cr_pack_key(pk, i ? "compile_limits" : "limits");
		msgpack_pack_map(pk, 2);
		cr_pack_key(pk, "default");
		cr_pack_limits(pk, &unset);
		cr_pack_key(pk, "max");
		cr_pack_limits(pk, &unset);
	}
}

static void pack_run(msgpack_packer *pk, const cr_request *r, const char *runtime)
{
	static char out[] = "OK\n";
	int32_t chunk = 3;
	cr_stage st = { .status = CR_ST_OK, .out = out, .out_len = 3, .err = out, .err_len = 0,
		        .chunks = &chunk, .nchunks = 1, .wall_ms = 1, .cpu_ms = 1 };
	cr_reply_begin(pk, r->id, true, NAME, 2);
	pack_runtime(pk, runtime, false);
	cr_pack_key(pk, "run");
	cr_pack_stage(pk, &st);
}

/* The reply to one request, into sb. */
static void answer(const nng_msg *m, const char *runtime, msgpack_sbuffer *sb)
{
	msgpack_packer pk;
	cr_request r;
	char err[256];
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	memset(&r, 0, sizeof r);
	int rc = cr_request_decode(nng_msg_body((nng_msg *)m), nng_msg_len((nng_msg *)m),
	                           &cr_caps_default, &r, err, sizeof err);
	if (rc) {
		cr_reply_error(&pk, r.id, NAME, rc == CR_DECODE_BAD ? CR_E_BAD_REQUEST : CR_E_UNSUPPORTED,
		               err);
		return;
	}
	switch (r.op) {
	case CR_OP_INFO: pack_info(&pk, &r, runtime); break;
	case CR_OP_RUN: pack_run(&pk, &r, runtime); break;
	case CR_OP_CANCEL:
		cr_reply_begin(&pk, r.id, true, NAME, 1);
		cr_pack_kbool(&pk, "cancelled", false);
		break;
	default: /* ping */
		cr_reply_begin(&pk, r.id, true, NAME, 2);
		cr_pack_kint(&pk, "busy", 0);
		cr_pack_kint(&pk, "slots", SLOTS);
	}
	cr_request_free(&r);
}

int bench_serve(const char *url, const char *runtime, int notify_fd);
int bench_serve(const char *url, const char *runtime, int notify_fd)
{
	nng_socket s;
	int rv;
	if ((rv = nng_rep0_open(&s)) != 0 || (rv = nng_listen(s, url, NULL, 0)) != 0) {
		fprintf(stderr, "corral-bench: cannot serve on %s: %s\n", url, nng_strerror(rv));
		return 1;
	}
	if (notify_fd >= 0 && (write(notify_fd, "\n", 1) != 1 || close(notify_fd) != 0))
		perror("corral-bench: --notify-fd");
	for (;;) {
		nng_msg *m, *reply = NULL;
		if ((rv = nng_recvmsg(s, &m, 0)) != 0) {
			fprintf(stderr, "corral-bench: receive: %s\n", nng_strerror(rv));
			return 1;
		}
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		answer(m, runtime, &sb);
		nng_msg_free(m);
		if (nng_msg_alloc(&reply, 0) == 0 && nng_msg_append(reply, sb.data, sb.size) == 0 &&
		    nng_sendmsg(s, reply, 0) == 0)
			reply = NULL;
		if (reply)
			nng_msg_free(reply);
		msgpack_sbuffer_destroy(&sb);
	}
}
