/*
 * fuzz_wire.c — libFuzzer target: any bytes through cr_request_decode().
 * A decode must never crash, leak or read out of bounds, must say why it
 * failed, and what it accepts must survive an encode/decode round trip.
 *   make fuzz FUZZ_SECONDS=60
 */
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len)
{
	cr_request r, r2;
	char err[512] = "";
	if (cr_request_decode(data, len, NULL, &r, err, sizeof err) != 0) {
		if (!err[0])
			abort();
		return 0;
	}
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	cr_request_encode(&r, &sb);
	if (cr_request_decode(sb.data, sb.size, NULL, &r2, err, sizeof err) != 0 ||
	    r2.op != r.op || strcmp(r2.id, r.id) != 0 || r2.nfiles != r.nfiles ||
	    r2.nargs != r.nargs || r2.nenv != r.nenv || r2.stdin_len != r.stdin_len) {
		fprintf(stderr, "round trip failed: %s\n", err);
		abort();
	}
	for (size_t i = 0; i < r.nfiles; i++)
		if (r.files[i].len != r2.files[i].len ||
		    memcmp(r.files[i].data, r2.files[i].data, r.files[i].len) != 0)
			abort();
	cr_request_free(&r2);
	msgpack_sbuffer_destroy(&sb);
	cr_request_free(&r);
	return 0;
}
