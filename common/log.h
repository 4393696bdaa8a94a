/*
 * log.h — one structured line per event, on stderr.
 *
 * Lines are logfmt: `ts=... level=info prog=corral-processor msg=... k=v`,
 * written with a single write(2) so that lines from several threads never
 * interleave. Under s6 the service's logger (s6-log) keeps them.
 */
#ifndef CR_LOG_H
#define CR_LOG_H

#include <stdbool.h>
#include <stddef.h>

void cr_log_init(const char *prog);

/* fmt gives the key=value pairs after msg; values with spaces must be
 * quoted by the caller (cr_log_quote). */
void cr_log(const char *level, const char *msg, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes s into buf as a logfmt value: bare when it is safe, otherwise in
 * double quotes with " and \ escaped and control bytes as \xNN. */
const char *cr_log_quote(char *buf, size_t n, const char *s);

#endif
