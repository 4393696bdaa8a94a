/*
 * auth.c — the shared secret of auth.h: load, sign (clients), verify
 * (workers).
 *
 * The mac covers the exact bytes sent, so nothing is re-encoded: the
 * signer appends the "auth" pair with a zeroed mac, computes the HMAC over
 * the whole message and writes the mac in place; the verifier finds the
 * mac bytes through the unpacked object (msgpack-c points into the
 * message) and hashes the message around them.
 *
 * Replays: a nonce is remembered for as long as its ts is acceptable.
 * Nonces live in 4 buckets keyed by the period ts / CR_AUTH_WINDOW_MS;
 * the acceptable ts (now ± window) span at most 3 periods, so a bucket
 * whose period is older than the one being written is stale and is
 * emptied. Only requests whose mac is right reach the cache, so only
 * holders of the secret can grow it (up to 2^20 nonces per bucket).
 */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <mbedtls/md.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define NONCE 16
#define MAC 32
#define BUCKETS 4
#define BUCKET_MAX (1u << 20)

typedef struct bucket {
	int64_t period;
	unsigned char (*nonces)[NONCE]; /* all-zero: free */
	size_t cap, used;
} bucket;

struct cr_auth {
	unsigned char key[CR_AUTH_MAX_SECRET];
	size_t keylen;
	pthread_mutex_t mu;
	bucket seen[BUCKETS];
};

cr_auth *cr_auth_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "cannot read the secret file '%s': %s", path, strerror(errno));
		return NULL;
	}
	cr_auth *a = calloc(1, sizeof *a);
	unsigned char buf[CR_AUTH_MAX_SECRET + 2];
	size_t n = fread(buf, 1, sizeof buf, f), s = 0;
	fclose(f);
	while (s < n && isspace(buf[s]))
		s++;
	while (n > s && isspace(buf[n - 1]))
		n--;
	if (!a || n - s < CR_AUTH_MIN_SECRET || n - s > CR_AUTH_MAX_SECRET) {
		snprintf(err, errlen, "the secret in '%s' must be %d to %d bytes (it has %zu)", path,
		         CR_AUTH_MIN_SECRET, CR_AUTH_MAX_SECRET, n - s);
		free(a);
		return NULL;
	}
	memcpy(a->key, buf + s, n - s);
	a->keylen = n - s;
	pthread_mutex_init(&a->mu, NULL);
	return a;
}

void cr_auth_free(cr_auth *a)
{
	if (!a)
		return;
	for (int i = 0; i < BUCKETS; i++)
		free(a->seen[i].nonces);
	pthread_mutex_destroy(&a->mu);
	memset(a->key, 0, sizeof a->key);
	free(a);
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* HMAC-SHA256 of buf with its MAC bytes at mac_off read as zeros. */
static int compute_mac(const cr_auth *a, const unsigned char *buf, size_t len, size_t mac_off,
                       unsigned char out[MAC])
{
	static const unsigned char zeros[MAC];
	mbedtls_md_context_t ctx;
	mbedtls_md_init(&ctx);
	int rc = mbedtls_md_setup(&ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) ||
	         mbedtls_md_hmac_starts(&ctx, a->key, a->keylen) ||
	         mbedtls_md_hmac_update(&ctx, buf, mac_off) ||
	         mbedtls_md_hmac_update(&ctx, zeros, MAC) ||
	         mbedtls_md_hmac_update(&ctx, buf + mac_off + MAC, len - mac_off - MAC) ||
	         mbedtls_md_hmac_finish(&ctx, out);
	mbedtls_md_free(&ctx);
	return rc ? -1 : 0;
}

/* ---- signing ---------------------------------------------------------- */

/* The map header at p: its pair count and length; -1 when not a map. */
static int map_header(const unsigned char *p, size_t len, uint32_t *n, size_t *hdr)
{
	if (len >= 1 && p[0] >= 0x80 && p[0] <= 0x8f) {
		*n = p[0] & 0x0f, *hdr = 1;
	} else if (len >= 3 && p[0] == 0xde) {
		*n = (uint32_t)p[1] << 8 | p[2], *hdr = 3;
	} else if (len >= 5 && p[0] == 0xdf) {
		*n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
		*hdr = 5;
	} else {
		return -1;
	}
	return *n == UINT32_MAX ? -1 : 0;
}

int cr_auth_sign(const cr_auth *a, msgpack_sbuffer *sb)
{
	uint32_t n;
	size_t hdr;
	unsigned char nonce[NONCE], zeros[MAC] = { 0 };
	if (map_header((unsigned char *)sb->data, sb->size, &n, &hdr) ||
	    getrandom(nonce, NONCE, 0) != NONCE)
		return -1;
	msgpack_sbuffer out;
	msgpack_packer pk;
	msgpack_sbuffer_init(&out);
	msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n + 1);
	msgpack_sbuffer_write(&out, sb->data + hdr, sb->size - hdr);
	cr_pack_key(&pk, "auth");
	msgpack_pack_map(&pk, 3);
	cr_pack_kint(&pk, "ts", wall_ms());
	cr_pack_key(&pk, "nonce");
	cr_pack_bin(&pk, nonce, NONCE);
	cr_pack_key(&pk, "mac");
	cr_pack_bin(&pk, zeros, MAC); /* last: the mac is the message's last 32 bytes */
	unsigned char *m = (unsigned char *)out.data;
	if (!m || compute_mac(a, m, out.size, out.size - MAC, m + out.size - MAC)) {
		msgpack_sbuffer_destroy(&out);
		return -1;
	}
	msgpack_sbuffer_destroy(sb);
	*sb = out;
	return 0;
}

/* ---- verifying -------------------------------------------------------- */

static bool equal_ct(const unsigned char *x, const unsigned char *y, size_t n)
{
	unsigned char d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

static int grow(bucket *b)
{
	size_t cap = b->cap ? 2 * b->cap : 1024;
	unsigned char (*old)[NONCE] = b->nonces;
	size_t oldcap = b->cap;
	if (cap > BUCKET_MAX || !(b->nonces = calloc(cap, NONCE))) {
		b->nonces = old;
		return -1;
	}
	b->cap = cap;
	b->used = 0;
	for (size_t i = 0; i < oldcap; i++) {
		static const unsigned char zero[NONCE];
		if (memcmp(old[i], zero, NONCE) == 0)
			continue;
		uint64_t h;
		memcpy(&h, old[i], sizeof h);
		size_t j = h & (cap - 1);
		while (memcmp(b->nonces[j], zero, NONCE) != 0)
			j = (j + 1) & (cap - 1);
		memcpy(b->nonces[j], old[i], NONCE);
		b->used++;
	}
	free(old);
	return 0;
}

/* 0 when nonce was new (now remembered), 1 when seen, -1 when full. */
static int remember(cr_auth *a, int64_t ts, const unsigned char *nonce)
{
	static const unsigned char zero[NONCE];
	int64_t period = ts / CR_AUTH_WINDOW_MS;
	bucket *b = &a->seen[period % BUCKETS];
	if (b->period != period) { /* older: stale (see the top) */
		if (b->nonces)
			memset(b->nonces, 0, b->cap * NONCE);
		b->used = 0;
		b->period = period;
	}
	if ((2 * (b->used + 1) > b->cap && grow(b)) || memcmp(nonce, zero, NONCE) == 0)
		return -1;
	uint64_t h;
	memcpy(&h, nonce, sizeof h);
	size_t j = h & (b->cap - 1);
	for (; memcmp(b->nonces[j], zero, NONCE) != 0; j = (j + 1) & (b->cap - 1))
		if (memcmp(b->nonces[j], nonce, NONCE) == 0)
			return 1;
	memcpy(b->nonces[j], nonce, NONCE);
	b->used++;
	return 0;
}

static int refuse(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return -1;
}

/* The auth map's fields, the mac located in buf. */
static int auth_fields(const msgpack_object *top, const char *buf, size_t len, int64_t *ts,
                       const char **nonce, size_t *mac_off, char *err, size_t errlen)
{
	const msgpack_object *au = top->type == MSGPACK_OBJECT_MAP ? cr_obj_get(top, "auth") : NULL;
	const char *mac;
	size_t nn = 0, nm = 0;
	if (!au)
		return refuse(err, errlen, "auth: missing (this worker requires the shared secret: "
		                           "--secret-file)");
	if (au->type != MSGPACK_OBJECT_MAP || !cr_obj_int(cr_obj_get(au, "ts"), ts) ||
	    !cr_obj_bytes(cr_obj_get(au, "nonce"), nonce, &nn) || nn != NONCE ||
	    !cr_obj_bytes(cr_obj_get(au, "mac"), &mac, &nm) || nm != MAC || mac < buf ||
	    mac + MAC > buf + len)
		return refuse(err, errlen, "auth: must be {ts: int, nonce: 16 bytes, mac: 32 bytes}");
	*mac_off = (size_t)(mac - buf);
	return 0;
}

int cr_auth_verify(cr_auth *a, const void *buf, size_t len, char *err, size_t errlen)
{
	msgpack_unpacked u;
	size_t off = 0, mac_off;
	int64_t ts;
	const char *nonce;
	unsigned char want[MAC];
	msgpack_unpacked_init(&u);
	int rc = -1;
	if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS)
		refuse(err, errlen, "auth: the request is not msgpack");
	else if (auth_fields(&u.data, buf, len, &ts, &nonce, &mac_off, err, errlen))
		;
	else if (compute_mac(a, buf, len, mac_off, want) ||
	         !equal_ct(want, (const unsigned char *)buf + mac_off, MAC))
		refuse(err, errlen, "auth: wrong mac (not signed with this worker's secret)");
	else if (ts < wall_ms() - CR_AUTH_WINDOW_MS || ts > wall_ms() + CR_AUTH_WINDOW_MS)
		refuse(err, errlen, "auth: ts is more than 60 s away from this worker's clock");
	else {
		pthread_mutex_lock(&a->mu);
		int seen = remember(a, ts, (const unsigned char *)nonce);
		pthread_mutex_unlock(&a->mu);
		rc = seen == 0 ? 0
		     : refuse(err, errlen, seen > 0 ? "auth: replayed (this nonce was already used)"
		                                    : "auth: replay cache full");
	}
	msgpack_unpacked_destroy(&u);
	return rc;
}
