/*
 * wire_json.c — msgpack object -> jansson value; see wire_json.h.
 */
#include "wire_json.h"

#include <stdio.h>
#include <stdlib.h>

char *cr_base64(const void *data, size_t n)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
		             (i + 2 < n ? p[i + 2] : 0);
		*o++ = t[v >> 18 & 63];
		*o++ = t[v >> 12 & 63];
		*o++ = i + 1 < n ? t[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? t[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static json_t *bytes_to_json(const char *p, size_t n)
{
	json_t *s = json_stringn(p, n); /* NULL when not valid UTF-8 */
	if (s)
		return s;
	char *b64 = cr_base64(p, n);
	json_t *o = b64 ? json_pack("{s:s}", "base64", b64) : NULL;
	free(b64);
	return o;
}

json_t *cr_obj_to_json(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: return json_null();
	case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER: return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR: return bytes_to_json(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN: return bytes_to_json(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_EXT: return bytes_to_json(o->via.ext.ptr, o->via.ext.size);
	case MSGPACK_OBJECT_ARRAY: {
		json_t *a = json_array();
		for (uint32_t i = 0; a && i < o->via.array.size; i++)
			json_array_append_new(a, cr_obj_to_json(&o->via.array.ptr[i]));
		return a;
	}
	case MSGPACK_OBJECT_MAP: {
		json_t *m = json_object();
		for (uint32_t i = 0; m && i < o->via.map.size; i++) {
			const msgpack_object *k = &o->via.map.ptr[i].key;
			json_t *v = cr_obj_to_json(&o->via.map.ptr[i].val);
			if (k->type == MSGPACK_OBJECT_STR || k->type == MSGPACK_OBJECT_BIN) {
				const char *p = k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : k->via.bin.ptr;
				size_t n = k->type == MSGPACK_OBJECT_STR ? k->via.str.size : k->via.bin.size;
				json_object_setn_new_nocheck(m, p, n, v);
			} else {
				json_t *kj = cr_obj_to_json(k);
				char *ks = kj ? json_dumps(kj, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
				json_object_set_new_nocheck(m, ks ? ks : "?", v);
				free(ks);
				json_decref(kj);
			}
		}
		return m;
	}
	}
	return json_null();
}
