/*
 * conf.h — parsing of configuration values shared by the programs:
 * sizes with K/M/G suffixes, durations, and limit lists
 * ("wall_ms=5000,memory_bytes=256M"). Each parser returns 0 or -1 with a
 * message naming what was wrong, so a bad flag is reported exactly.
 */
#ifndef CR_CONF_H
#define CR_CONF_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>

/* "123", "64K", "256M", "2G" (powers of 1024); non-negative. */
int cr_parse_size(const char *s, int64_t *out);
/* A plain non-negative integer that fits in int64. */
int cr_parse_int(const char *s, int64_t *out);
/* "k=v,k=v" over the limit names of wire.h; sets only the named ones. */
int cr_parse_limits(const char *s, cr_limits *l, char *err, size_t errlen);
/* getenv(name) or NULL when unset or empty. */
const char *cr_env(const char *name);

#endif
