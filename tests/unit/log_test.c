/* log: each conversion formatted as printf would, taking exactly its
 * arguments, string values quoted when they need it; read back from
 * stderr through a pipe. */
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "suites.h"

struct capture {
	int saved_stderr;
	int from_log;
	char line[LOG_LINE_MAX * 2];
	size_t len;
};

static struct capture cap;	/* one test at a time, each in its own child */

static void capture_begin(void)
{
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	cap.saved_stderr = dup(2);
	ck_assert_int_ge(cap.saved_stderr, 0);
	ck_assert_int_eq(dup2(p[1], 2), 2);
	close(p[1]);
	cap.from_log = p[0];
}

/* Everything logged since capture_begin, as it was written. */
static const char *capture_raw(void)
{
	ck_assert_int_eq(dup2(cap.saved_stderr, 2), 2);
	close(cap.saved_stderr);
	cap.len = 0;
	for (;;) {
		ssize_t n = read(cap.from_log, cap.line + cap.len, sizeof cap.line - 1 - cap.len);
		ck_assert_int_ge(n, 0);
		if (n == 0)
			break;
		cap.len += (size_t)n;
	}
	close(cap.from_log);
	cap.line[cap.len] = '\0';
	return cap.line;
}

/* The one line logged since capture_begin, without "PROGRAM[PID]: " and
 * its newline. */
static const char *capture_end(void)
{
	char head[64];

	capture_raw();
	snprintf(head, sizeof head, "%s[%ld]: ", program_invocation_short_name, (long)getpid());
	ck_assert_msg(strncmp(cap.line, head, strlen(head)) == 0, "no head in '%s'", cap.line);
	ck_assert_msg(cap.len > 0 && cap.line[cap.len - 1] == '\n', "no newline");
	ck_assert_msg(memchr(cap.line, '\n', cap.len - 1) == NULL, "more than one line");
	cap.line[cap.len - 1] = '\0';
	return cap.line + strlen(head);
}

#define LOGGED(...) (capture_begin(), log_event(__VA_ARGS__), capture_end())

START_TEST(integers)
{
	ck_assert_str_eq(LOGGED("ev", "a=%d b=%u c=%ld d=%lu e=%llu f=%zu g=%x h=%lld i=%X",
				-5, 7u, -9L, 10UL, 18446744073709551615ULL, (size_t)42, 255u,
				-1LL, 0xabcu),
			 "ev a=-5 b=7 c=-9 d=10 e=18446744073709551615 f=42 g=ff h=-1 i=ABC");
	ck_assert_str_eq(LOGGED("ev", "i=%i o=%o big=%lld", 12, 8u, -9223372036854775807LL - 1),
			 "ev i=12 o=10 big=-9223372036854775808");
}
END_TEST

START_TEST(strings_quoted_when_needed)
{
	ck_assert_str_eq(LOGGED("accepted", "id=%s from=%s", "Q1", "a@b.test"),
			 "accepted id=Q1 from=a@b.test");
	ck_assert_str_eq(LOGGED("ev", "reason=%s", "no such user"), "ev reason=\"no such user\"");
	const char *volatile none = NULL;
	ck_assert_str_eq(LOGGED("ev", "empty=%s null=%s", "", none),
			 "ev empty=\"\" null=\"\"");
	ck_assert_str_eq(LOGGED("ev", "q=%s", "say \"hi\\\""), "ev q=\"say \\\"hi\\\\\\\"\"");
	ck_assert_str_eq(LOGGED("ev", "ctl=%s", "a\r\nb\tc\x7f"), "ev ctl=\"a??b?c?\"");
	ck_assert_str_eq(LOGGED("ev", "c=%c space=%c", 'x', ' '), "ev c=x space=\" \"");
	ck_assert_str_eq(LOGGED("ev", "rate=50%% done=%s", "yes"), "ev rate=50% done=yes");
	ck_assert_str_eq(LOGGED("no_pairs", "%s", ""), "no_pairs \"\"");
	ck_assert_str_eq(LOGGED("bare", " "), "bare  ");
}
END_TEST

START_TEST(widths_and_precisions)
{
	ck_assert_str_eq(LOGGED("ev", "s=%.*s next=%s", 3, "abcdef", "ok"), "ev s=abc next=ok");
	ck_assert_str_eq(LOGGED("ev", "s=%.*s next=%s", -1, "abcdef", "ok"),
			 "ev s=abcdef next=ok");
	ck_assert_str_eq(LOGGED("ev", "s=%.2s", "xyz"), "ev s=xy");
	ck_assert_str_eq(LOGGED("ev", "n=%5d|", 42), "ev n=   42|");
	ck_assert_str_eq(LOGGED("ev", "n=%-5d|", 42), "ev n=42   |");
	ck_assert_str_eq(LOGGED("ev", "n=%*d|%s", 4, 7, "after"), "ev n=   7|after");
	ck_assert_str_eq(LOGGED("ev", "n=%*d|%s", -4, 7, "after"), "ev n=7   |after");
	ck_assert_str_eq(LOGGED("ev", "n=%*.*d|%s", 6, 3, 7, "after"), "ev n=   007|after");
	ck_assert_str_eq(LOGGED("ev", "n=%08.3f %+d %#x % d", 3.14159, 5, 255u, 3),
			 "ev n=0003.142 +5 0xff  3");
	ck_assert_str_eq(LOGGED("ev", "s=%-4s|", "ab"), "ev s=\"ab  \"|");
	ck_assert_str_eq(LOGGED("ev", "n=%.0d|%s", 0, "z"), "ev n=|z");
}
END_TEST

START_TEST(rare_conversions_take_their_argument)
{
	/* the old parser printed '?' for these and let the %s read their number */
	ck_assert_str_eq(LOGGED("ev", "a=%hhu b=%s", (unsigned char)200, "next"),
			 "ev a=200 b=next");
	ck_assert_str_eq(LOGGED("ev", "a=%hhu b=%s", 300, "next"), "ev a=44 b=next");
	ck_assert_str_eq(LOGGED("ev", "a=%jd b=%s", (intmax_t)-7, "next"), "ev a=-7 b=next");
	ck_assert_str_eq(LOGGED("ev", "a=%ju b=%td c=%hd d=%s", (uintmax_t)9, (ptrdiff_t)-3,
				(short)-2, "next"), "ev a=9 b=-3 c=-2 d=next");
	ck_assert_str_eq(LOGGED("ev", "a=%zd b=%lx c=%s", (ssize_t)-4, 0xbeefUL, "next"),
			 "ev a=-4 b=beef c=next");
	ck_assert_str_eq(LOGGED("ev", "f=%.2f g=%g L=%.1Lf s=%s", 2.5, 0.125, 1.25L, "next"),
			 "ev f=2.50 g=0.125 L=1.2 s=next");
	ck_assert_str_eq(LOGGED("ev", "e=%.1e s=%s", 1500.0, "next"), "ev e=1.5e+03 s=next");
	ck_assert_str_eq(LOGGED("ev", "w=%ls s=%s", L"wide", "next"), "ev w=wide s=next");
	int seen = 99;
	ck_assert_str_eq(LOGGED("ev", "a%n b=%s", &seen, "next"), "ev a b=next");
	ck_assert_int_eq(seen, 99);
	char pointer[64];
	int object;
	snprintf(pointer, sizeof pointer, "ev p=%p s=next", (void *)&object);
	ck_assert_str_eq(LOGGED("ev", "p=%p s=%s", (void *)&object, "next"), pointer);
}
END_TEST

START_TEST(errno_shown_and_kept)
{
	errno = ENOENT;
	ck_assert_str_eq(LOGGED("ev", "error=%m id=%s", "Q1"),
			 "ev error=\"No such file or directory\" id=Q1");
	errno = EACCES;
	capture_begin();
	log_event("ev", "x=%d", 1);
	ck_assert_int_eq(errno, EACCES);
	capture_end();
}
END_TEST

START_TEST(unknown_conversion_ends_formatting)
{
	/* formats the compiler cannot see: nothing after the unknown one is
	 * guessed at, so no argument is misread */
	const char *volatile unknown = "a=%d b=%y c=%s";
	const char *volatile positional = "a=%1$s b=%s";
	const char *volatile dangling = "a=%d b=%";
	const char *volatile bad_length = "a=%Ld b=%s";

	ck_assert_str_eq(LOGGED("ev", unknown, 5, "next"), "ev a=5 b=%y c=%s");
	ck_assert_str_eq(LOGGED("ev", positional, "x", "y"), "ev a=%1$s b=%s");
	ck_assert_str_eq(LOGGED("ev", dangling, 5), "ev a=5 b=%");
	ck_assert_str_eq(LOGGED("ev", bad_length, 5LL, "y"), "ev a=%Ld b=%s");
}
END_TEST

START_TEST(long_lines_cut)
{
	size_t big = LOG_LINE_MAX * 3 / 2;
	char *value = malloc(big + 1);
	ck_assert_ptr_nonnull(value);
	memset(value, 'v', big);
	value[big] = '\0';

	capture_begin();
	log_event("ev", "a=%s b=%s", value, value);
	capture_raw();
	ck_assert_uint_eq(cap.len, LOG_LINE_MAX + 1);
	ck_assert_int_eq(cap.line[cap.len - 1], '\n');

	const char *volatile huge = "w=%*d z=%99999999999d";
	capture_begin();
	log_event("ev", huge, 1 << 30, 1, 2);
	capture_raw();
	ck_assert_uint_eq(cap.len, LOG_LINE_MAX + 1);
	ck_assert_int_eq(cap.line[cap.len - 1], '\n');
	free(value);
}
END_TEST

Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, integers);
	tcase_add_test(tc, strings_quoted_when_needed);
	tcase_add_test(tc, widths_and_precisions);
	tcase_add_test(tc, rare_conversions_take_their_argument);
	tcase_add_test(tc, errno_shown_and_kept);
	tcase_add_test(tc, unknown_conversion_ends_formatting);
	tcase_add_test(tc, long_lines_cut);
	suite_add_tcase(s, tc);
	return s;
}
