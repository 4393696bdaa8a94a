/*
 * test_gw_keys.c — the gateway's API-keys file format (gw_keys_parse):
 * one key a line, surrounding blanks and a CR not part of it, blank
 * lines and lines starting with # skipped, # inside a key kept, and every
 * other line (spaces inside, control or non-ASCII bytes, longer than
 * GW_KEY_MAX) an error naming its line, never cut or split into keys.
 */
#include "gw.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static char **keys;
static size_t nkeys;

static void reset(void)
{
	for (size_t i = 0; i < nkeys; i++)
		free(keys[i]);
	free(keys);
	keys = NULL;
	nkeys = 0;
}

static int parse(const char *text, size_t len, char *err, size_t errlen)
{
	reset();
	return gw_keys_parse(text, len, &keys, &nkeys, err, errlen);
}

/* text must be refused with a message holding needle. */
static void expect_error(const char *text, size_t len, const char *needle)
{
	char err[256] = "";
	CHECK_EQ_INT(parse(text, len, err, sizeof(err)), -1);
	if (!strstr(err, needle))
		fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err, needle), t_cur_failed = 1;
}

static void test_keys_and_comments(void)
{
	const char *t = "# team keys\n"
	                "secret-one\n"
	                "\n"
	                "   \t\n"
	                "  secret-two  \r\n"
	                "   # an indented comment\n"
	                "s3cr#t\n"
	                "last-no-newline";
	char err[256] = "";
	CHECK_EQ_INT(parse(t, strlen(t), err, sizeof(err)), 0);
	CHECK_EQ_INT(nkeys, 4);
	if (nkeys == 4) {
		CHECK_STR(keys[0], "secret-one");
		CHECK_STR(keys[1], "secret-two");
		CHECK_STR(keys[2], "s3cr#t"); /* # inside a key is part of it */
		CHECK_STR(keys[3], "last-no-newline");
	}
	CHECK_EQ_INT(parse("", 0, err, sizeof(err)), 0);
	CHECK_EQ_INT(nkeys, 0);
}

static void test_bad_lines(void)
{
	/* what used to be a trailing comment: the key would not be what it seems */
	expect_error("ok\nsecret-two  # ci\n", 19, "line 2: a key is printable ASCII without spaces");
	expect_error("a b\n", 4, "line 1:");
	expect_error("k\x01y\n", 4, "byte 2 is 0x01");
	expect_error("caf\xc3\xa9\n", 6, "line 1:");
	expect_error("k\0y\n", 4, "byte 2 is 0x00");
}

/* A long line is an error with its number: never a key, nor two. */
static void test_long_line(void)
{
	char *t = malloc(GW_KEY_MAX + 64);
	int n = sprintf(t, "first\n");
	memset(t + n, 'k', GW_KEY_MAX);
	CHECK_EQ_INT(parse(t, (size_t)n + GW_KEY_MAX, NULL, 0), 0); /* exactly the maximum */
	CHECK_EQ_INT(nkeys, 2);
	CHECK_EQ_INT(strlen(nkeys == 2 ? keys[1] : ""), GW_KEY_MAX);
	memset(t + n, 'k', GW_KEY_MAX + 1);
	strcpy(t + n + GW_KEY_MAX + 1, "\nafter\n");
	expect_error(t, strlen(t), "line 2: a key is at most 1024 bytes, this line holds 1025");
	/* the old parser read 511 bytes at a time: the tail became a key */
	memset(t + n, 'x', 600);
	strcpy(t + n + 600, "TAIL\n");
	char err[256];
	CHECK_EQ_INT(parse(t, strlen(t), err, sizeof(err)), 0);
	CHECK_EQ_INT(nkeys, 2);
	for (size_t i = 0; i < nkeys; i++)
		CHECK(strcmp(keys[i], "TAIL") != 0);
	free(t);
}

int main(void)
{
	RUN(test_keys_and_comments);
	RUN(test_bad_lines);
	RUN(test_long_line);
	reset();
	return TEST_DONE();
}
