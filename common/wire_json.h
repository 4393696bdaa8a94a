/*
 * wire_json.h — any decoded msgpack object as JSON (jansson), for tools
 * that show replies to people: str and bin become JSON strings when they
 * are valid UTF-8, otherwise {"base64": "..."}; map keys that are not
 * strings are written as their JSON text.
 */
#ifndef CR_WIRE_JSON_H
#define CR_WIRE_JSON_H

#include <jansson.h>
#include <msgpack.h>

json_t *cr_obj_to_json(const msgpack_object *o);
/* RFC 4648 base64 of n bytes; malloc'd, NUL-terminated. */
char *cr_base64(const void *p, size_t n);

#endif
