/*
 * clock.h — the monotonic clock in milliseconds, for deadlines and
 * durations. Header-only: clock_gettime is async-signal-safe, so the
 * keeper may call it after fork too.
 */
#ifndef CR_CLOCK_H
#define CR_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t cr_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
