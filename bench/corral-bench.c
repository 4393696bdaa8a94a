/*
 * corral-bench.c — closed-loop load generator for one scenario.
 *
 *   corral-bench --target URL --file NAME=PATH [--conns N] [--duration-ms MS]
 *                [--runtime NAME] [--race N] [--warmup N] [--think-ms MS]
 *                [--extra-json JSON]
 *
 * URL is a worker (tcp://, ipc://: wire protocol v1 over nng REQ) or the
 * gateway's POST endpoint (http://HOST:PORT/v1/run). Each of N threads
 * owns one connection and sends the same invocation again as soon as the
 * previous reply is in (or --think-ms after it: an interactive user, who
 * leaves the worker time to get ready again), for the duration; every
 * latency is kept, so the
 * percentiles are exact. A reply counts as good only when the run ended
 * with status ok; busy and other failures are counted apart.
 *
 * It prints one JSON object: n, good, busy, errors, rps, p50/p90/p99/max
 * in microseconds. bench/bench.py runs the scenarios and the table.
 *
 *   corral-bench --serve URL [--runtime NAME] [--notify-fd N]
 *
 * is a stand-in worker instead (bench_serve.c): it answers every run at
 * once, so that the gateway's own hop can be measured without a sandbox.
 */
#include "conf.h"
#include "wire.h"

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct conf {
	const char *target;
	const char *runtime;
	const char *fname;
	char *code;
	size_t code_len;
	int conns;
	int64_t duration_ms;
	int race;
	int warmup;
	int64_t think_ms; /* pause after each reply */
	const char *extra_json; /* merged into the HTTP body */
} conf;

typedef struct worker {
	const conf *c;
	int index;
	int64_t *lat_us;
	size_t n, cap;
	long good, busy, errors;
	char last_error[200];
} worker;

static int64_t now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void record(worker *w, int64_t us)
{
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 4096;
		w->lat_us = realloc(w->lat_us, w->cap * sizeof *w->lat_us);
		if (!w->lat_us) {
			fprintf(stderr, "corral-bench: out of memory\n");
			exit(1);
		}
	}
	w->lat_us[w->n++] = us;
}

/* ---- nng worker ------------------------------------------------------- */

static void nng_request(const conf *c, int i, msgpack_sbuffer *sb)
{
	cr_request r;
	cr_file f = { (char *)c->fname, c->code, c->code_len };
	memset(&r, 0, sizeof r);
	r.op = CR_OP_RUN;
	snprintf(r.id, sizeof r.id, "bench-%d-%d", (int)getpid(), i);
	r.files = &f;
	r.nfiles = 1;
	r.limits = r.compile_limits = CR_LIMITS_UNSET;
	cr_request_encode(&r, sb);
}

/* 1 good, 0 busy, -1 error. */
static int judge_nng(nng_msg *m, worker *w)
{
	msgpack_unpacked u;
	size_t off = 0;
	int rc = -1;
	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, nng_msg_body(m), nng_msg_len(m), &off) ==
	    MSGPACK_UNPACK_SUCCESS) {
		const msgpack_object *ok = cr_obj_get(&u.data, "ok");
		const msgpack_object *run = cr_obj_get(&u.data, "run");
		const msgpack_object *err = cr_obj_get(&u.data, "error");
		if (ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean && run &&
		    cr_obj_eq(cr_obj_get(run, "status"), "ok"))
			rc = 1;
		else if (err && cr_obj_eq(cr_obj_get(err, "code"), CR_E_BUSY))
			rc = 0;
		else
			snprintf(w->last_error, sizeof w->last_error, "reply not ok");
	}
	msgpack_unpacked_destroy(&u);
	return rc;
}

static void *run_nng(void *arg)
{
	worker *w = arg;
	const conf *c = w->c;
	nng_socket s;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	nng_request(c, w->index, &sb);
	if (nng_req0_open(&s) || nng_dial(s, c->target, NULL, 0)) {
		snprintf(w->last_error, sizeof w->last_error, "cannot connect");
		w->errors++;
		return NULL;
	}
	nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 60000);
	int64_t end = now_us() + c->duration_ms * 1000;
	for (int k = 0; now_us() < end; k++) {
		nng_msg *m, *reply;
		int64_t t0 = now_us();
		if (nng_msg_alloc(&m, 0) || nng_msg_append(m, sb.data, sb.size) ||
		    nng_sendmsg(s, m, 0) || nng_recvmsg(s, &reply, 0)) {
			w->errors++;
			snprintf(w->last_error, sizeof w->last_error, "transport");
			continue;
		}
		int64_t us = now_us() - t0;
		int j = judge_nng(reply, w);
		nng_msg_free(reply);
		if (c->think_ms > 0)
			nng_msleep((nng_duration)c->think_ms);
		if (k < c->warmup)
			continue;
		record(w, us);
		if (j > 0) w->good++;
		else if (j == 0) w->busy++;
		else w->errors++;
	}
	nng_close(s);
	msgpack_sbuffer_destroy(&sb);
	return NULL;
}

/* ---- http worker ------------------------------------------------------ */

static char *http_body(const conf *c)
{
	json_t *b = json_pack("{s:s, s:[{s:s, s:s%}]}", "runtime", c->runtime, "files", "name",
	                      c->fname, "content", c->code, c->code_len);
	if (c->race)
		json_object_set_new(b, "race", json_integer(c->race));
	if (c->extra_json) {
		json_t *x = json_loads(c->extra_json, 0, NULL);
		if (x)
			json_object_update(b, x);
		json_decref(x);
	}
	char *s = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	return s;
}

static int judge_http(nng_http_res *res, worker *w)
{
	void *data;
	size_t len;
	uint16_t st = nng_http_res_get_status(res);
	if (st == 429 || st == 503)
		return 0;
	if (st != 200) {
		snprintf(w->last_error, sizeof w->last_error, "HTTP %u", st);
		return -1;
	}
	nng_http_res_get_data(res, &data, &len);
	json_t *j = json_loadb(data, len, 0, NULL);
	const char *status = json_string_value(json_object_get(json_object_get(j, "run"), "status"));
	int rc = status && strcmp(status, "ok") == 0 ? 1 : -1;
	if (rc < 0)
		snprintf(w->last_error, sizeof w->last_error, "run not ok");
	json_decref(j);
	return rc;
}

static void *run_http(void *arg)
{
	worker *w = arg;
	const conf *c = w->c;
	nng_url *url = NULL;
	nng_http_client *cli = NULL;
	nng_http_conn *conn = NULL;
	nng_aio *aio = NULL;
	char *body = http_body(c);
	if (nng_url_parse(&url, c->target) || nng_http_client_alloc(&cli, url) ||
	    nng_aio_alloc(&aio, NULL, NULL)) {
		w->errors++;
		return NULL;
	}
	nng_aio_set_timeout(aio, 60000);
	int64_t end = now_us() + c->duration_ms * 1000;
	for (int k = 0; now_us() < end; k++) {
		if (!conn) {
			nng_http_client_connect(cli, aio);
			nng_aio_wait(aio);
			if (nng_aio_result(aio)) {
				w->errors++;
				snprintf(w->last_error, sizeof w->last_error, "cannot connect");
				nng_msleep(10);
				continue;
			}
			conn = nng_aio_get_output(aio, 0);
		}
		nng_http_req *req;
		nng_http_res *res;
		nng_http_req_alloc(&req, url);
		nng_http_res_alloc(&res);
		nng_http_req_set_method(req, "POST");
		nng_http_req_set_header(req, "Content-Type", "application/json");
		nng_http_req_set_data(req, body, strlen(body));
		int64_t t0 = now_us();
		nng_http_conn_transact(conn, req, res, aio);
		nng_aio_wait(aio);
		int64_t us = now_us() - t0;
		int j = nng_aio_result(aio) ? -1 : judge_http(res, w);
		if (nng_aio_result(aio)) {
			nng_http_conn_close(conn);
			conn = NULL;
			snprintf(w->last_error, sizeof w->last_error, "transport");
		}
		nng_http_req_free(req);
		nng_http_res_free(res);
		if (c->think_ms > 0)
			nng_msleep((nng_duration)c->think_ms);
		if (k < c->warmup)
			continue;
		record(w, us);
		if (j > 0) w->good++;
		else if (j == 0) w->busy++;
		else w->errors++;
	}
	if (conn)
		nng_http_conn_close(conn);
	nng_aio_free(aio);
	nng_http_client_free(cli);
	nng_url_free(url);
	free(body);
	return NULL;
}

/* ---- main ------------------------------------------------------------- */

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int64_t pct(const int64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static int load_file(conf *c, const char *spec)
{
	const char *eq = strchr(spec, '=');
	if (!eq)
		return -1;
	c->fname = strndup(spec, (size_t)(eq - spec));
	FILE *f = fopen(eq + 1, "rb");
	if (!f)
		return -1;
	c->code = malloc(1 << 20);
	c->code_len = fread(c->code, 1, (1 << 20) - 1, f);
	c->code[c->code_len] = '\0';
	fclose(f);
	return 0;
}

static int parse(conf *c, int argc, char **argv)
{
	int64_t v;
	c->conns = 1;
	c->duration_ms = 5000;
	c->runtime = "";
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *a = argv[i], *val = argv[i + 1];
		if (!strcmp(a, "--target")) c->target = val;
		else if (!strcmp(a, "--runtime")) c->runtime = val;
		else if (!strcmp(a, "--extra-json")) c->extra_json = val;
		else if (!strcmp(a, "--file")) {
			if (load_file(c, val))
				return fprintf(stderr, "corral-bench: --file %s: expected NAME=PATH\n", val), -1;
		} else if (cr_parse_int(val, &v))
			return fprintf(stderr, "corral-bench: %s %s: not a number\n", a, val), -1;
		else if (!strcmp(a, "--conns")) c->conns = (int)v;
		else if (!strcmp(a, "--duration-ms")) c->duration_ms = v;
		else if (!strcmp(a, "--race")) c->race = (int)v;
		else if (!strcmp(a, "--warmup")) c->warmup = (int)v;
		else if (!strcmp(a, "--think-ms")) c->think_ms = v;
		else
			return fprintf(stderr, "corral-bench: unknown option %s\n", a), -1;
	}
	if (!c->target || !c->code || c->conns < 1 || c->conns > 256) {
		fprintf(stderr, "usage: corral-bench --target URL --file NAME=PATH [--runtime R] "
		                "[--conns N] [--duration-ms MS] [--race N] [--warmup N] "
		                "[--think-ms MS] [--extra-json JSON]\n");
		return -1;
	}
	return 0;
}

int bench_serve(const char *url, const char *runtime, int notify_fd);

/* corral-bench --serve URL [--runtime NAME] [--notify-fd N] */
static int serve_main(int argc, char **argv)
{
	const char *runtime = "bash";
	int64_t fd = -1;
	for (int i = 3; i < argc; i += 2) {
		if (i + 1 >= argc)
			return fprintf(stderr, "corral-bench: %s wants a value\n", argv[i]), 2;
		if (!strcmp(argv[i], "--runtime"))
			runtime = argv[i + 1];
		else if (!strcmp(argv[i], "--notify-fd") && !cr_parse_int(argv[i + 1], &fd) && fd >= 0)
			continue;
		else
			return fprintf(stderr, "corral-bench --serve: bad option %s\n", argv[i]), 2;
	}
	return bench_serve(argv[2], runtime, (int)fd);
}

int main(int argc, char **argv)
{
	static conf c;
	if (argc >= 3 && !strcmp(argv[1], "--serve"))
		return serve_main(argc, argv);
	if (parse(&c, argc, argv))
		return 2;
	bool http = strncmp(c.target, "http://", 7) == 0;
	worker *ws = calloc((size_t)c.conns, sizeof *ws);
	pthread_t *ts = calloc((size_t)c.conns, sizeof *ts);
	int64_t t0 = now_us();
	for (int i = 0; i < c.conns; i++) {
		ws[i].c = &c;
		ws[i].index = i;
		pthread_create(&ts[i], NULL, http ? run_http : run_nng, &ws[i]);
	}
	size_t n = 0;
	long good = 0, busy = 0, errors = 0;
	const char *last_error = "";
	for (int i = 0; i < c.conns; i++) {
		pthread_join(ts[i], NULL);
		n += ws[i].n;
		good += ws[i].good;
		busy += ws[i].busy;
		errors += ws[i].errors;
		if (ws[i].last_error[0])
			last_error = ws[i].last_error;
	}
	double secs = (double)(now_us() - t0) / 1e6;
	int64_t *all = malloc((n ? n : 1) * sizeof *all);
	size_t k = 0;
	for (int i = 0; i < c.conns; i++)
		for (size_t j = 0; j < ws[i].n; j++)
			all[k++] = ws[i].lat_us[j];
	qsort(all, n, sizeof *all, cmp64);
	printf("{\"n\": %zu, \"good\": %ld, \"busy\": %ld, \"errors\": %ld, \"seconds\": %.3f, "
	       "\"rps\": %.1f, \"p50_us\": %lld, \"p90_us\": %lld, \"p99_us\": %lld, "
	       "\"max_us\": %lld, \"last_error\": \"%s\"}\n",
	       n, good, busy, errors, secs, (double)good / secs, (long long)pct(all, n, 0.50),
	       (long long)pct(all, n, 0.90), (long long)pct(all, n, 0.99),
	       (long long)(n ? all[n - 1] : 0), last_error);
	return 0;
}
