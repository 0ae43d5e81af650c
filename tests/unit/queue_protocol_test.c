/* queue_protocol: the envelope parser both forms of tern-queue apply, and
 * the queue socket's lines (lib/queue_protocol.h). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_protocol.h"
#include "suites.h"

/* Parses the LEN octets of TEXT (a copy); the code, with *E's counts. */
static int parse(const char *text, size_t len, size_t *nrcpts, char *sender, size_t size)
{
	char *copy = malloc(len + 1);
	struct qq_envelope e;
	const char *what = NULL;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, len);
	int r = qq_envelope_parse(copy, len, &e, &what);
	if (r == QQ_QUEUED) {
		*nrcpts = e.nrcpts;
		snprintf(sender, size, "%s", e.sender);
	} else {
		ck_assert_ptr_nonnull(what);
	}
	free(e.rcpts);
	free(copy);
	return r;
}

#define PARSE(lit, n, s) parse(lit, sizeof lit - 1, n, s, sizeof s)

START_TEST(envelope_good_and_null_sender)
{
	size_t n = 0;
	char sender[64];

	ck_assert_int_eq(PARSE("Fs@x.test\0Ta@y.test\0Tb@y.test\0\0", &n, sender), QQ_QUEUED);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(sender, "s@x.test");
	ck_assert_int_eq(PARSE("F\0Ta@y.test\0\0", &n, sender), QQ_QUEUED);
	ck_assert_str_eq(sender, "");
	ck_assert_uint_eq(n, 1);
	/* no recipient at all: taken, as qmail-queue takes it */
	ck_assert_int_eq(PARSE("Fs@x.test\0\0", &n, sender), QQ_QUEUED);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(envelope_refusals_have_the_programs_codes)
{
	size_t n;
	char sender[64];

	ck_assert_int_eq(PARSE("", &n, sender), QQ_READ_ERROR);
	ck_assert_int_eq(PARSE("Fs@x.test\0Ta@y.test\0", &n, sender), QQ_READ_ERROR);
	ck_assert_int_eq(PARSE("Fs@x.test\0Ta@y.test", &n, sender), QQ_READ_ERROR);
	ck_assert_int_eq(PARSE("Fs@x.test\0Ta@y.test\0\0X", &n, sender), QQ_READ_ERROR);
	ck_assert_int_eq(PARSE("Xs@x.test\0Ta@y.test\0\0", &n, sender), QQ_BAD_LEAD_BYTE);
	ck_assert_int_eq(PARSE("Fs@x.test\0Fa@y.test\0\0", &n, sender), QQ_BAD_LEAD_BYTE);
	ck_assert_int_eq(PARSE("Fs@x.test\0Ta\t@y.test\0\0", &n, sender), QQ_REFUSED_PERM);
	ck_assert_int_eq(PARSE("Fs@x.test\0Ta\xff@y.test\0\0", &n, sender), QQ_REFUSED_PERM);
}
END_TEST

START_TEST(envelope_address_length_limit)
{
	size_t len = 1 + QQ_ADDRESS_MAX + 1 + 1 + 3 + 1 + 1;
	char *env = malloc(len);
	size_t n;
	char sender[8];

	ck_assert_ptr_nonnull(env);
	env[0] = 'F';
	memset(env + 1, 'a', QQ_ADDRESS_MAX - 1);	/* 1002 octets: allowed */
	memcpy(env + QQ_ADDRESS_MAX, "\0Ta@b\0\0", 7);
	ck_assert_int_eq(parse(env, QQ_ADDRESS_MAX + 7, &n, sender, sizeof sender), QQ_QUEUED);
	memset(env + 1, 'a', QQ_ADDRESS_MAX);	/* 1003: refused with 11 */
	memcpy(env + QQ_ADDRESS_MAX + 1, "\0Ta@b\0\0", 7);
	ck_assert_int_eq(parse(env, QQ_ADDRESS_MAX + 8, &n, sender, sizeof sender),
			 QQ_ADDRESS_TOO_LONG);
	free(env);
}
END_TEST

START_TEST(request_lines_round_trip)
{
	char line[QS_LINE_MAX];
	struct qs_request r;
	int n = qs_format_begin(line, sizeof line, "AbC123");

	ck_assert_int_gt(n, 0);
	ck_assert_str_eq(line, "begin AbC123\n");
	ck_assert_int_eq(qs_parse_request(line, (size_t)n - 1, &r), 0);
	ck_assert_int_eq(r.verb, QS_BEGIN);
	ck_assert_str_eq(r.qid, "AbC123");
	n = qs_format_end(line, sizeof line, 123456789012ULL, 42);
	ck_assert_str_eq(line, "end 123456789012 42\n");
	ck_assert_int_eq(qs_parse_request(line, (size_t)n - 1, &r), 0);
	ck_assert_int_eq(r.verb, QS_END);
	ck_assert_uint_eq(r.msglen, 123456789012ULL);
	ck_assert_uint_eq(r.envlen, 42);
	ck_assert_int_lt(qs_format_begin(line, sizeof line, "bad id"), 0);
}
END_TEST

static int request(const char *text)
{
	struct qs_request r;
	return qs_parse_request(text, strlen(text), &r);
}

START_TEST(request_lines_only_as_written)
{
	ck_assert_int_eq(request("begin Q1"), 0);
	ck_assert_int_eq(request("end 0 1"), 0);
	ck_assert_int_lt(request("begin"), 0);
	ck_assert_int_lt(request("begin "), 0);
	ck_assert_int_lt(request("begin Q 1"), 0);
	ck_assert_int_lt(request("begin ../x"), 0);
	ck_assert_int_lt(request("begin Q1\r"), 0);
	ck_assert_int_lt(request("BEGIN Q1"), 0);
	ck_assert_int_lt(request("begin 0123456789012345678901234567890123"), 0);
	ck_assert_int_lt(request("end 1"), 0);
	ck_assert_int_lt(request("end 01 1"), 0);
	ck_assert_int_lt(request("end -1 1"), 0);
	ck_assert_int_lt(request("end +1 1"), 0);
	ck_assert_int_lt(request("end 1  1"), 0);
	ck_assert_int_lt(request("end 1 1 "), 0);
	ck_assert_int_lt(request("end 1 0x1"), 0);
	ck_assert_int_lt(request("end 99999999999999999999 1"), 0);
	ck_assert_int_lt(request("hello"), 0);
	ck_assert_int_lt(request(""), 0);
	struct qs_request r;
	ck_assert_int_lt(qs_parse_request("begin Q1", 5, &r), 0);	/* length, not NUL */
	ck_assert_int_lt(qs_parse_request("begin Q1\0x", 10, &r), 0);
}
END_TEST

START_TEST(reply_lines)
{
	char line[QS_LINE_MAX];
	int code = -1;

	ck_assert_int_eq(qs_format_reply(line, sizeof line, 53), 3);
	ck_assert_str_eq(line, "53\n");
	ck_assert_int_eq(qs_parse_reply(line, 2, &code), 0);
	ck_assert_int_eq(code, 53);
	ck_assert_int_eq(qs_parse_reply("0", 1, &code), 0);
	ck_assert_int_eq(code, 0);
	ck_assert_int_lt(qs_parse_reply("256", 3, &code), 0);
	ck_assert_int_lt(qs_parse_reply("05", 2, &code), 0);
	ck_assert_int_lt(qs_parse_reply("", 0, &code), 0);
	ck_assert_int_lt(qs_parse_reply("ready", 5, &code), 0);
	ck_assert_int_lt(qs_format_reply(line, sizeof line, 256), 0);
}
END_TEST

Suite *queue_protocol_suite(void)
{
	Suite *s = suite_create("queue_protocol");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, envelope_good_and_null_sender);
	tcase_add_test(tc, envelope_refusals_have_the_programs_codes);
	tcase_add_test(tc, envelope_address_length_limit);
	tcase_add_test(tc, request_lines_round_trip);
	tcase_add_test(tc, request_lines_only_as_written);
	tcase_add_test(tc, reply_lines);
	suite_add_tcase(s, tc);
	return s;
}
