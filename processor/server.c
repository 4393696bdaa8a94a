/*
 * server.c — the nng REP side of corral-processor.
 *
 * One REP socket listens on every configured URL. A fixed pool of
 * contexts (slots + PR_SPARE_CTX) each loops recv -> handle -> send on
 * its own aio, all in nng's callback threads, which must never block:
 * ping, info, cancel and every refusal (bad_request, busy, unsupported,
 * unauthorized: with --secret-file, a request without a valid auth is
 * refused before it is decoded) are answered right there; a run is handed to a slot and its context is
 * parked until the slot thread calls back with the reply. Because at
 * most `slots` contexts can be parked, the spare ones keep answering
 * pings and `busy` however long the runs are.
 */
#include "log.h"
#include "processor.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PR_SPARE_CTX 16

typedef enum { C_RECV, C_RUN, C_SEND } conn_state;

typedef struct conn {
	nng_ctx ctx;
	nng_aio *aio;
	conn_state state;
	bool run; /* the reply being sent is a run's */
} conn;

static nng_socket sock = NNG_SOCKET_INITIALIZER;
static conn *conns;
static int nconns;
static atomic_bool stopping;
static atomic_int runs_inflight; /* handed to a slot, reply not yet sent */
static const pr_config *cfg;
static const pr_runtime *rt;

void pr_worker_name(char *buf, size_t n, int slot)
{
	if (slot < 0)
		snprintf(buf, n, "%s/-", cfg->name);
	else
		snprintf(buf, n, "%s/%d", cfg->name, slot);
}

static void recv_next(conn *c)
{
	if (atomic_load(&stopping))
		return;
	c->state = C_RECV;
	nng_ctx_recv(c->ctx, c->aio);
}

static void send_bytes(conn *c, const char *data, size_t len)
{
	nng_msg *m;
	if (nng_msg_alloc(&m, 0) || nng_msg_append(m, data, len)) {
		cr_log("error", "out of memory for a reply", NULL);
		recv_next(c); /* the client times out; the worker goes on */
		return;
	}
	c->state = C_SEND;
	nng_aio_set_msg(c->aio, m);
	nng_ctx_send(c->ctx, c->aio);
}

static void send_sbuf(conn *c, msgpack_sbuffer *sb)
{
	send_bytes(c, sb->data, sb->size);
	msgpack_sbuffer_destroy(sb);
}

/* Slot thread -> reply of a run. */
static void run_done(void *arg, const char *reply, size_t len)
{
	conn *c = arg;
	c->run = true;
	send_bytes(c, reply, len);
}

int pr_server_inflight(void) { return atomic_load(&runs_inflight); }

static void pack_info(msgpack_packer *pk, const char *worker)
{
	cr_reply_begin(pk, "", true, worker, 10);
	cr_pack_key(pk, "runtime");
	msgpack_pack_map(pk, 4);
	cr_pack_kstr(pk, "name", rt->name);
	cr_pack_kstr(pk, "version", rt->version);
	cr_pack_key(pk, "aliases");
	char al[sizeof rt->aliases], *save = NULL;
	size_t n = 0;
	snprintf(al, sizeof al, "%s", rt->aliases);
	for (char *t = strtok_r(al, " ,", &save); t; t = strtok_r(NULL, " ,", &save))
		n++;
	msgpack_pack_array(pk, n);
	snprintf(al, sizeof al, "%s", rt->aliases);
	for (char *t = strtok_r(al, " ,", &save); t; t = strtok_r(NULL, " ,", &save))
		cr_pack_str(pk, t);
	cr_pack_kbool(pk, "compiled", rt->compiled);
	cr_pack_kint(pk, "slots", cfg->slots);
	cr_pack_kint(pk, "busy", pr_slots_busy());
	cr_pack_kbool(pk, "draining", pr_slots_draining());
	cr_pack_key(pk, "out_of_service");
	pr_slots_pack_out(pk);
	const cr_limits *lims[2][2] = { { &cfg->run_default, &cfg->run_max },
		                        { &cfg->compile_default, &cfg->compile_max } };
	for (int i = 0; i < 2; i++) {
		cr_pack_key(pk, i == 0 ? "limits" : "compile_limits");
		msgpack_pack_map(pk, 2);
		cr_pack_key(pk, "default");
		cr_pack_limits(pk, lims[i][0]);
		cr_pack_key(pk, "max");
		cr_pack_limits(pk, lims[i][1]);
	}
	cr_pack_kstr(pk, "isolation", px_isolation());
	cr_pack_kstr(pk, "accel", px_accel());
	cr_pack_key(pk, "caps");
	msgpack_pack_map(pk, 3);
	cr_pack_kint(pk, "max_files", (int64_t)cfg->caps.max_files);
	cr_pack_kint(pk, "max_file_bytes", (int64_t)cfg->caps.max_file_bytes);
	cr_pack_kint(pk, "max_total_bytes", (int64_t)cfg->caps.max_total_bytes);
}

/* With --secret-file: true (and why in err) when the request lacks a
 * valid auth. Declared sizes are checked first; a request they refuse
 * goes on to the decoder's bad_request. */
static bool unauthorized(nng_msg *msg, char *err, size_t errlen)
{
	if (!cfg->auth)
		return false;
	cr_bounds b = cr_request_bounds(&cfg->caps);
	if (cr_msgpack_check(nng_msg_body(msg), nng_msg_len(msg), &b, err, errlen))
		return false;
	return cr_auth_verify(cfg->auth, nng_msg_body(msg), nng_msg_len(msg), err, errlen) != 0;
}

static void refuse_unauthorized(conn *c, const char *err, const char *worker)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	char q[600];
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	cr_log("warn", "refused", "code=unauthorized error=%s", cr_log_quote(q, sizeof q, err));
	cr_reply_error(&pk, "", worker, CR_E_UNAUTHORIZED, err);
	send_sbuf(c, &sb);
}

static void handle(conn *c, nng_msg *msg)
{
	cr_request req;
	char err[512], worker[160];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pr_worker_name(worker, sizeof worker, -1);
	if (unauthorized(msg, err, sizeof err)) {
		nng_msg_free(msg);
		msgpack_sbuffer_destroy(&sb);
		refuse_unauthorized(c, err, worker);
		return;
	}

	int rc = cr_request_decode(nng_msg_body(msg), nng_msg_len(msg), &cfg->caps, &req, err,
	                           sizeof err);
	nng_msg_free(msg);
	if (rc) {
		const char *code = rc == CR_DECODE_UNSUPPORTED ? CR_E_UNSUPPORTED : CR_E_BAD_REQUEST;
		char q[600];
		cr_log("warn", "refused", "id=%s code=%s error=%s", req.id[0] ? req.id : "-", code,
		       cr_log_quote(q, sizeof q, err));
		cr_reply_error(&pk, req.id, worker, code, err);
		send_sbuf(c, &sb);
		return;
	}
	switch (req.op) {
	case CR_OP_PING: {
		int out = pr_slots_out();
		cr_reply_begin(&pk, req.id, true, worker, 5);
		cr_pack_kint(&pk, "busy", pr_slots_busy());
		cr_pack_kint(&pk, "slots", cfg->slots);
		cr_pack_kbool(&pk, "draining", pr_slots_draining());
		cr_pack_kint(&pk, "out_of_service", out);
		cr_pack_kstr(&pk, "health", !out ? "ok" : out < cfg->slots ? "degraded" : "unhealthy");
		break;
	}
	case CR_OP_INFO:
		pack_info(&pk, worker);
		break;
	case CR_OP_CANCEL:
		cr_reply_begin(&pk, req.id, true, worker, 1);
		cr_pack_kbool(&pk, "cancelled", pr_slots_cancel(req.id));
		break;
	case CR_OP_RUN: {
		c->state = C_RUN;
		atomic_fetch_add(&runs_inflight, 1);
		int sub = pr_slots_submit(&req, run_done, c);
		if (sub == 0) {
			msgpack_sbuffer_destroy(&sb);
			return; /* the slot owns req now and replies later */
		}
		atomic_fetch_sub(&runs_inflight, 1);
		if (sub == PR_SUBMIT_DUPLICATE) {
			snprintf(err, sizeof err, "id: a run with id '%s' is already running on this "
			                          "worker", req.id);
			cr_reply_error(&pk, req.id, worker, CR_E_BAD_REQUEST, err);
			break;
		}
		int out = pr_slots_out();
		if (pr_slots_draining())
			snprintf(err, sizeof err, "worker is draining (shutting down); try another");
		else if (out)
			snprintf(err, sizeof err, "no slot free: %d of %d are out of service (cleanup "
			         "failed; see info), the others busy; try again or another worker",
			         out, cfg->slots);
		else
			snprintf(err, sizeof err, "all %d slots are busy; try again or another worker",
			         cfg->slots);
		cr_reply_error(&pk, req.id, worker, CR_E_BUSY, err);
		break;
	}
	}
	cr_request_free(&req);
	send_sbuf(c, &sb);
}

static void conn_cb(void *arg)
{
	conn *c = arg;
	int rv = nng_aio_result(c->aio);
	switch (c->state) {
	case C_RECV:
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		if (rv != 0) {
			recv_next(c);
			return;
		}
		handle(c, nng_aio_get_msg(c->aio));
		return;
	case C_SEND:
		if (rv != 0) /* peer gone: nobody to tell; the worker goes on */
			nng_msg_free(nng_aio_get_msg(c->aio));
		if (c->run) {
			c->run = false;
			atomic_fetch_sub(&runs_inflight, 1);
		}
		recv_next(c);
		return;
	case C_RUN:
		return;
	}
}

static int listen_one(const pr_config *c, const char *url)
{
	nng_listener l;
	int rv = nng_listener_create(&l, sock, url);
	if (rv == 0 && c->ipc_mode >= 0 && strncmp(url, "ipc://", 6) == 0)
		rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, c->ipc_mode);
	if (rv == 0)
		rv = nng_listener_start(l, 0);
	if (rv) {
		char q[300];
		cr_log("error", "cannot listen", "url=%s error=\"%s\"", cr_log_quote(q, sizeof q, url),
		       nng_strerror(rv));
		return -1;
	}
	return 0;
}

int pr_server_start(const pr_config *c, const pr_runtime *r)
{
	int rv;
	cfg = c;
	rt = r;
	if ((rv = nng_rep0_open(&sock)) ||
	    (rv = nng_socket_set_size(sock, NNG_OPT_RECVMAXSZ, c->max_message))) {
		cr_log("error", "cannot open the nng socket", "error=\"%s\"", nng_strerror(rv));
		return -1;
	}
	nconns = c->slots + PR_SPARE_CTX;
	conns = calloc((size_t)nconns, sizeof *conns);
	if (!conns)
		return -1;
	for (int i = 0; i < nconns; i++) {
		if ((rv = nng_aio_alloc(&conns[i].aio, conn_cb, &conns[i])) ||
		    (rv = nng_ctx_open(&conns[i].ctx, sock))) {
			cr_log("error", "cannot open an nng context", "error=\"%s\"", nng_strerror(rv));
			return -1;
		}
	}
	for (int i = 0; i < c->nlisten; i++) {
		if (listen_one(c, c->listen[i]))
			return -1;
	}
	for (int i = 0; i < nconns; i++)
		recv_next(&conns[i]);
	return 0;
}

void pr_server_stop(void)
{
	atomic_store(&stopping, true);
	for (int i = 0; i < nconns; i++)
		nng_aio_stop(conns[i].aio);
	nng_close(sock);
	for (int i = 0; i < nconns; i++) {
		nng_ctx_close(conns[i].ctx);
		nng_aio_free(conns[i].aio);
	}
	free(conns);
	conns = NULL;
}
