/*
 * auth.h — the optional shared secret between clients (gateway, CLI) and
 * workers (docs/protocol.md, "Authentication").
 *
 * With a secret, every request carries a top-level key "auth" =
 * {ts: unix ms, nonce: bin 16, mac: bin 32}, its last pair, where mac is
 * HMAC-SHA256(secret, the whole message with the 32 mac bytes zeroed).
 * A worker accepts a request only when its mac is right (compared in
 * constant time), ts is within CR_AUTH_WINDOW_MS of its clock and the
 * nonce was not seen before (a replay cache covering the window).
 * HMAC comes from mbedtls' libmbedcrypto, which nng already depends on.
 */
#ifndef CR_AUTH_H
#define CR_AUTH_H

#include "wire.h"

#include <msgpack.h>
#include <stddef.h>

#define CR_AUTH_WINDOW_MS 60000
#define CR_AUTH_MIN_SECRET 16
#define CR_AUTH_MAX_SECRET 4096
#define CR_E_UNAUTHORIZED "unauthorized"

typedef struct cr_auth cr_auth;

/* Reads the secret from path (surrounding whitespace dropped; 16 to 4096
 * bytes). NULL with a message in err. */
cr_auth *cr_auth_load(const char *path, char *err, size_t errlen);
void cr_auth_free(cr_auth *a);

/* Client side: adds the "auth" pair to the msgpack map in sb (fresh ts
 * and nonce each call). -1 when sb holds no map or memory ran out. */
int cr_auth_sign(const cr_auth *a, msgpack_sbuffer *sb);

/* Worker side: 0 when buf carries a valid, fresh, unseen auth; -1 with
 * why in err. Thread-safe. The caller has checked buf with
 * cr_msgpack_check() first. */
int cr_auth_verify(cr_auth *a, const void *buf, size_t len, char *err, size_t errlen);

#endif
