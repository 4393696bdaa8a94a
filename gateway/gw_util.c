/*
 * gw_util.c — small helpers the gateway's subsystems share and common/
 * does not have: a monotonic clock, base64/hex decoding (clients send
 * files that way), UTF-8 validation and lossy repair (JSON wants text),
 * request encoding signed with the workers' shared secret, and the
 * memory budget.
 *
 * Memory: glibc serves big blocks from mmap only below a threshold that
 * it raises each time such a block is freed (up to 32 MiB), so after a
 * few large requests 8 MiB bodies and their copies come from the heap
 * and stay in the process when freed. gw_mem_init fixes the threshold
 * (GW_MMAP_AT), so they are unmapped on free; after a request of at least
 * GW_TRIM_AT body bytes, malloc_trim gives back what small blocks left
 * free in every arena. Request bodies in flight (read, parsed or being
 * invoked) take their Content-Length from --max-inflight-bodies.
 */
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw.h"

#define GW_MMAP_AT (128u << 10)
#define GW_TRIM_AT (1u << 20)

int64_t gw_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int gw_request_encode(const cr_request *r, msgpack_sbuffer *sb)
{
	cr_request_encode(r, sb);
	return gw_cfg.auth ? cr_auth_sign(gw_cfg.auth, sb) : 0;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Accepts the standard and URL-safe alphabets, padding optional,
 * whitespace (line breaks of MIME base64) ignored. */
char *gw_base64_decode(const char *s, size_t n, size_t *outlen)
{
	unsigned char *out = malloc(n / 4 * 3 + 3), *o = out;
	uint32_t acc = 0;
	int bits = 0, pad = 0;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		int v = b64val(c);
		if (v < 0 || pad) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (unsigned char)(acc >> bits);
		}
	}
	if (pad > 2 || bits >= 6) { /* a lone trailing sextet is no byte */
		free(out);
		return NULL;
	}
	*outlen = (size_t)(o - out);
	return (char *)out;
}

char *gw_hex_decode(const char *s, size_t n, size_t *outlen)
{
	if (n % 2)
		return NULL;
	unsigned char *out = malloc(n / 2 + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 2) {
		int hi = 0, lo = 0;
		char h[3] = { s[i], s[i + 1], 0 };
		if (sscanf(h, "%1x%1x", (unsigned *)&hi, (unsigned *)&lo) != 2) {
			free(out);
			return NULL;
		}
		out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	*outlen = n / 2;
	return (char *)out;
}

/* Length of the valid UTF-8 sequence at p (1..4), 0 when invalid:
 * overlongs, surrogates and code points past U+10FFFF are refused, as
 * JSON (and jansson) require. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

bool gw_utf8_valid(const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(s + i, n - i);
		if (!l)
			return false;
		i += l;
	}
	return true;
}

char *gw_utf8_lossy(const char *p, size_t n, size_t *outlen)
{
	const unsigned char *s = (const unsigned char *)p;
	char *out = malloc(n * 3 + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(s + i, n - i);
		if (!l) {
			memcpy(o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(o, s + i, l);
		o += l;
		i += l;
	}
	*o = 0;
	*outlen = (size_t)(o - out);
	return out;
}

/* ---- memory ------------------------------------------------------------ */

static atomic_size_t inflight_bytes;

void gw_mem_init(void)
{
	mallopt(M_MMAP_THRESHOLD, GW_MMAP_AT);
	mallopt(M_TRIM_THRESHOLD, GW_MMAP_AT);
}

bool gw_mem_reserve(size_t n)
{
	size_t max = gw_cfg.max_inflight ? gw_cfg.max_inflight : GW_INFLIGHT_BODIES * gw_cfg.max_body;
	size_t cur = atomic_load(&inflight_bytes);
	do {
		if (n > max || cur > max - n)
			return false;
	} while (!atomic_compare_exchange_weak(&inflight_bytes, &cur, cur + n));
	return true;
}

void gw_mem_release(size_t n)
{
	atomic_fetch_sub(&inflight_bytes, n);
	if (n >= GW_TRIM_AT)
		malloc_trim(0);
}
