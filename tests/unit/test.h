/*
 * test.h — the unit-test harness: a few macros, no framework.
 *
 * A test file defines `static void test_xxx(void)` functions and a main()
 * that calls RUN(test_xxx) for each, then returns TEST_DONE(). A failed
 * CHECK prints file:line and the expression and marks the current test
 * failed; the test goes on so one run shows every failure. TEST_DONE()
 * prints the closing line "N passed, N failed".
 */
#ifndef CR_TEST_H
#define CR_TEST_H

#include <stdio.h>
#include <string.h>

static int t_passed, t_failed, t_cur_failed;

#define CHECK(cond)                                                          \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "  %s:%d: CHECK(%s) failed\n",        \
			        __FILE__, __LINE__, #cond);                   \
			t_cur_failed = 1;                                    \
		}                                                            \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                   \
	do {                                                                 \
		long long _a = (long long)(a), _b = (long long)(b);          \
		if (_a != _b) {                                              \
			fprintf(stderr, "  %s:%d: %s == %lld, want %lld\n",   \
			        __FILE__, __LINE__, #a, _a, _b);              \
			t_cur_failed = 1;                                    \
		}                                                            \
	} while (0)

#define CHECK_STR(a, b)                                                      \
	do {                                                                 \
		const char *_a = (a), *_b = (b);                             \
		if (!_a || !_b || strcmp(_a, _b) != 0) {                     \
			fprintf(stderr, "  %s:%d: %s == \"%s\", want \"%s\"\n", \
			        __FILE__, __LINE__, #a, _a ? _a : "(null)",   \
			        _b ? _b : "(null)");                          \
			t_cur_failed = 1;                                    \
		}                                                            \
	} while (0)

#define RUN(fn)                                                              \
	do {                                                                 \
		t_cur_failed = 0;                                            \
		fn();                                                        \
		if (t_cur_failed) {                                          \
			t_failed++;                                          \
			fprintf(stderr, "FAIL %s\n", #fn);                   \
		} else {                                                     \
			t_passed++;                                          \
		}                                                            \
	} while (0)

#define TEST_DONE()                                                          \
	(printf("%s: %d passed, %d failed\n", __FILE__, t_passed, t_failed), \
	 t_failed ? 1 : 0)

#endif
