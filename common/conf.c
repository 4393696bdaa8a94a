/*
 * conf.c — configuration value parsers; see conf.h.
 */
#include "conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cr_parse_int(const char *s, int64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int cr_parse_size(const char *s, int64_t *out)
{
	char *end;
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno)
		return -1;
	int shift = 0;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: return -1;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || (shift && v > (INT64_MAX >> shift)))
		return -1;
	*out = (int64_t)v << shift;
	return 0;
}

int cr_parse_limits(const char *s, cr_limits *l, char *err, size_t errlen)
{
	char *copy = strdup(s ? s : ""), *save = NULL;
	int rc = 0;
	if (!copy)
		return -1;
	for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		char *eq = strchr(tok, '=');
		int k = -1;
		if (eq) {
			*eq = '\0';
			for (int i = 0; i < CR_NLIMITS; i++)
				if (strcmp(tok, cr_limit_name(i)) == 0)
					k = i;
		}
		if (k < 0) {
			snprintf(err, errlen, "'%s': expected NAME=VALUE with NAME one of wall_ms, "
			                      "cpu_ms, memory_bytes, pids, output_bytes, file_bytes", tok);
			rc = -1;
			break;
		}
		if (cr_parse_size(eq + 1, cr_limit_ref(l, k))) {
			snprintf(err, errlen, "%s: '%s' is not a non-negative number (K/M/G allowed)",
			         tok, eq + 1);
			rc = -1;
			break;
		}
	}
	free(copy);
	return rc;
}

const char *cr_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}
