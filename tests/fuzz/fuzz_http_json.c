/*
 * fuzz_http_json.c — libFuzzer target: any bytes as the body of a request
 * to the gateway, through what gw_http.c does with a body before the pool
 * is involved: the bounds prescan, jansson, the /v1/run or Piston mapping
 * (the first byte chooses), the runtime binding, then the wire encoding
 * that goes to a worker and the worker's own decoder.
 *
 * It must never crash, leak or read out of bounds; every refusal says why;
 * a body the prescan lets through stays within its bounds once parsed; and
 * whatever the gateway accepts, a worker decodes (with the default caps)
 * into the same request: the gateway never sends what a worker refuses
 * as malformed.
 *   make fuzz-http FUZZ_SECONDS=60
 */
#include "gw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gw_runtime *runtime(void)
{
	static gw_runtime rt;
	if (!rt.name) {
		rt.name = "python";
		rt.version = "3.11.2";
		rt.entry = "main.py";
		rt.def_limits = rt.def_compile = CR_LIMITS_UNSET;
	}
	return &rt;
}

/* Values and depth of a parsed tree, as the prescan counts them. */
static void measure(json_t *j, size_t depth, size_t *values, size_t *deepest)
{
	*values += 1;
	if (depth > *deepest)
		*deepest = depth;
	const char *k;
	json_t *v;
	size_t i;
	if (json_is_object(j))
		json_object_foreach(j, k, v) measure(v, depth + 1, values, deepest);
	else if (json_is_array(j))
		json_array_foreach(j, i, v) measure(v, depth + 1, values, deepest);
}

/* What was accepted reaches a worker whole. */
static void check_wire(gw_run *r)
{
	msgpack_sbuffer sb;
	cr_request d;
	char err[512] = "";
	msgpack_sbuffer_init(&sb);
	snprintf(r->req.id, sizeof(r->req.id), "fuzz-1");
	cr_request_encode(&r->req, &sb);
	if (cr_request_decode(sb.data, sb.size, &cr_caps_default, &d, err, sizeof err) == 0) {
		if (d.nfiles != r->req.nfiles || d.nargs != r->req.nargs ||
		    d.nenv != r->req.nenv || d.stdin_len != r->req.stdin_len)
			abort();
		for (size_t i = 0; i < d.nfiles; i++)
			if (d.files[i].len != r->req.files[i].len ||
			    memcmp(d.files[i].data, r->req.files[i].data, d.files[i].len))
				abort();
		cr_request_free(&d);
	} else if (!err[0]) {
		abort();
	}
	msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len)
{
	if (len < 1)
		return 0;
	bool piston = data[0] & 1;
	const char *body = (const char *)data + 1;
	size_t n = len - 1;
	char err[512] = "";
	if (gw_json_prescan(body, n, err, sizeof err) < 0) {
		if (!err[0])
			abort();
		return 0;
	}
	json_error_t e;
	json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (!j)
		return 0;
	size_t values = 0, deepest = 0;
	measure(j, 0, &values, &deepest);
	if (values > GW_JSON_MAX_VALUES + 1 || deepest > GW_JSON_MAX_DEPTH)
		abort();
	gw_run r;
	int rc = piston ? gw_piston_from_json(j, &r, err, sizeof err)
	                : gw_run_from_json(j, &r, err, sizeof err);
	if (rc == 0)
		rc = gw_run_bind(&r, runtime(), err, sizeof err);
	if (rc == 0)
		check_wire(&r);
	else if (!err[0])
		abort(); /* every refusal says why */
	gw_run_free(&r); /* refused or not, as gw_http.c does */
	json_decref(j);
	return 0;
}
