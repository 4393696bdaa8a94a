/*
 * wire_bounds.c — check a msgpack message's declared sizes on its raw
 * bytes, before msgpack-c unpacks it.
 *
 * msgpack-c allocates a msgpack_object (24 bytes) for every element a
 * container declares before it reads one, so five bytes declaring an
 * array of 2^32 elements would make it ask for 100 GB, and a 32 MiB
 * message of one-byte elements really takes 800 MB. This walk reads only
 * headers, never allocates, and refuses before unpacking:
 *
 *   - a container or string declaring more than the bytes left could hold
 *     (every object owed takes at least one byte): "truncated";
 *   - a container of more than max_items elements (pairs for a map), a
 *     str/bin/ext of more than max_bytes, more than max_objects objects in
 *     all, containers nested deeper than max_depth.
 *
 * So what the unpacker then allocates is at most max_objects objects.
 * Type faults (0xc1, a map where a string is wanted) are left to the
 * unpacker and the decoder, which report them.
 */
#include "wire.h"

#include <stdio.h>

#define CR_BOUNDS_DEPTH_MAX 32 /* msgpack-c's own nesting limit */

static size_t max3(size_t a, size_t b, size_t c)
{
	return a > b ? (a > c ? a : c) : (b > c ? b : c);
}

cr_bounds cr_request_bounds(const cr_caps *c)
{
	return (cr_bounds){
		/* head, limits, auth and room for newer keys; each file a map of
		 * two pairs; args; env pairs */
		.max_objects = 256 + 5 * c->max_files + c->max_args + 2 * c->max_env,
		.max_items = max3(c->max_files, c->max_args, c->max_env > 64 ? c->max_env : 64),
		.max_bytes = max3(c->max_file_bytes, c->max_total_bytes, c->max_argenv_bytes),
		.max_depth = 8,
	};
}

typedef struct walk {
	const unsigned char *p;
	size_t len, i;
	uint64_t owed; /* objects declared and not yet read */
	size_t objects;
	const cr_bounds *b;
	char *err;
	size_t errlen;
} walk;

static int refuse(walk *w, const char *what, uint64_t n, size_t at, const char *why,
                  uint64_t max)
{
	snprintf(w->err, w->errlen, "msgpack: %s of %llu at byte %zu: %s %llu", what,
	         (unsigned long long)n, at, why, (unsigned long long)max);
	return CR_DECODE_BAD;
}

static uint64_t big_endian(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* The header at w->i: how many bytes follow it (skip), how many objects
 * it contains (items, pairs x2 for maps), and whether it is a container.
 * -1 for a header cut short, 1 for 0xc1 (left to the unpacker). */
static int header(walk *w, uint64_t *skip, uint64_t *items, bool *map)
{
	unsigned char b = w->p[w->i++];
	size_t hdr = 0;
	*skip = *items = 0;
	*map = (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
	if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3))
		return 0; /* fixint, nil, bool */
	if (b <= 0x9f) {
		*items = b & 0x0f;
		return 0;
	}
	if (b <= 0xbf) {
		*skip = b & 0x1f;
		return 0;
	}
	switch (b) {
	case 0xc4: case 0xd9: hdr = 1; break;                 /* bin8, str8 */
	case 0xc5: case 0xda: hdr = 2; break;                 /* bin16, str16 */
	case 0xc6: case 0xdb: hdr = 4; break;                 /* bin32, str32 */
	case 0xc7: hdr = 1; *skip = 1; break;                 /* ext8 */
	case 0xc8: hdr = 2; *skip = 1; break;                 /* ext16 */
	case 0xc9: hdr = 4; *skip = 1; break;                 /* ext32 */
	case 0xca: case 0xce: case 0xd2: *skip = 4; break;    /* float32, u32, i32 */
	case 0xcb: case 0xcf: case 0xd3: *skip = 8; break;    /* float64, u64, i64 */
	case 0xcc: case 0xd0: *skip = 1; break;
	case 0xcd: case 0xd1: *skip = 2; break;
	case 0xd4: *skip = 2; break; case 0xd5: *skip = 3; break; /* fixext */
	case 0xd6: *skip = 5; break; case 0xd7: *skip = 9; break;
	case 0xd8: *skip = 17; break;
	case 0xdc: case 0xde: hdr = 2; break;                 /* array16, map16 */
	case 0xdd: case 0xdf: hdr = 4; break;                 /* array32, map32 */
	default: return 1;                                    /* 0xc1 */
	}
	if (w->len - w->i - w->owed < hdr)
		return -1;
	uint64_t n = big_endian(w->p + w->i, hdr);
	w->i += hdr;
	if (b == 0xdc || b == 0xdd || *map)
		*items = n;
	else
		*skip += n;
	return 0;
}

static int truncated(walk *w)
{
	snprintf(w->err, w->errlen, "not a whole msgpack message (truncated: it declares "
	                            "more than its %zu bytes hold)", w->len);
	return CR_DECODE_BAD;
}

/* One object's header: checked, its bytes skipped, its elements owed. */
static int step(walk *w, uint64_t *items_out)
{
	size_t at = w->i;
	uint64_t skip, items;
	bool map;
	int h = header(w, &skip, &items, &map);
	if (h < 0)
		return truncated(w);
	*items_out = 0;
	if (h > 0)
		return 1;
	if (++w->objects > w->b->max_objects)
		return refuse(w, "an object", w->objects, at, "more objects in all than the maximum",
		              w->b->max_objects);
	if (skip > w->len - w->i - w->owed)
		return truncated(w);
	if (skip > w->b->max_bytes)
		return refuse(w, "a string", skip, at, "bytes, more than the maximum", w->b->max_bytes);
	w->i += skip;
	*items_out = map ? 2 * items : items;
	if (*items_out > w->len - w->i - w->owed) /* each owed object takes a byte */
		return truncated(w);
	if (items > w->b->max_items)
		return refuse(w, map ? "a map" : "an array", items, at,
		              "elements, more than the maximum", w->b->max_items);
	if (*items_out > w->b->max_objects - w->objects - w->owed)
		return refuse(w, map ? "a map" : "an array", items, at,
		              "elements, more objects in all than the maximum", w->b->max_objects);
	return 0;
}

int cr_msgpack_check(const void *buf, size_t len, const cr_bounds *b, char *err,
                     size_t errlen)
{
	walk w = { .p = buf, .len = len, .owed = 0, .b = b, .err = err, .errlen = errlen };
	uint64_t left[CR_BOUNDS_DEPTH_MAX + 1]; /* elements left per open container */
	size_t depth = 0, max_depth = b->max_depth < CR_BOUNDS_DEPTH_MAX ? b->max_depth
	                                                                  : CR_BOUNDS_DEPTH_MAX;
	left[0] = 1;
	while (true) {
		while (depth > 0 && left[depth] == 0)
			depth--;
		if (depth == 0 && left[0] == 0)
			return 0; /* bytes after the object: the decoder says so */
		if (w.i == len)
			return truncated(&w);
		left[depth]--;
		if (depth > 0)
			w.owed--;
		uint64_t items;
		int rc = step(&w, &items);
		if (rc)
			return rc > 0 ? 0 : rc;
		if (items == 0)
			continue;
		if (depth == max_depth) {
			snprintf(err, errlen, "msgpack: containers nested deeper than %zu at byte %zu",
			         max_depth, w.i);
			return CR_DECODE_BAD;
		}
		w.owed += items;
		left[++depth] = items;
	}
}
