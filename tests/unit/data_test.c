/* data: the DATA state machine (smtpd/data.h).  smtpd/data.c is not in
 * libtern.a, so it is compiled in here, once. */
#include <check.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../../smtpd/data.h"
#include "../../smtpd/data.c"
#include "suites.h"

static const struct data_limits roomy = {
	.max_message_size = 1 << 20,
	.max_header_size = 1 << 16,
	.max_line_length = 2048,
	.max_received = 100,
};

struct result {
	char *out;		/* malloc'd, NUL-terminated */
	size_t outlen;
	size_t consumed;
	bool done;
	enum data_fault fault;
	uint64_t size;
};

/* Feeds IN (LEN octets) in pieces of CHUNK octets (0: all at once) until the
 * machine stops consuming or the input runs out. */
static struct result feed(const struct data_limits *limits, const char *in, size_t len,
			  size_t chunk)
{
	struct data_state d;
	struct result r = { 0 };
	char *piece_out = malloc(len + 1);

	ck_assert(piece_out != NULL);
	r.out = malloc(len + 1);
	ck_assert(r.out != NULL);
	data_start(&d, limits);
	while (r.consumed < len) {
		size_t want = len - r.consumed;
		if (chunk > 0 && want > chunk)
			want = chunk;
		size_t got = 0;
		size_t used = data_feed(&d, in + r.consumed, want, piece_out, &got);
		ck_assert_uint_le(used, want);
		ck_assert_uint_le(got, used);	/* output never exceeds input */
		memcpy(r.out + r.outlen, piece_out, got);
		r.outlen += got;
		r.consumed += used;
		if (d.done)
			break;
		ck_assert_uint_eq(used, want);	/* consumes all until the end */
	}
	r.out[r.outlen] = '\0';
	r.done = d.done;
	r.fault = d.fault;
	r.size = d.size;
	free(piece_out);
	return r;
}

static struct result feed_str(const char *in)
{
	return feed(&roomy, in, strlen(in), 0);
}

/* A whole message, all at once: it must end exactly at its last octet. */
static void check_message(const char *in, const char *want, enum data_fault fault)
{
	struct result r = feed_str(in);
	ck_assert_msg(r.done, "not done: %s", in);
	ck_assert_uint_eq(r.consumed, strlen(in));
	ck_assert_msg(r.fault == fault, "fault %d, want %d", r.fault, fault);
	if (want != NULL) {
		ck_assert_str_eq(r.out, want);
		ck_assert_uint_eq(r.outlen, strlen(want));
	}
	free(r.out);
}

START_TEST(dot_unstuffing)
{
	check_message("..x\r\n.\r\n", ".x\n", DATA_OK);
	check_message("...\r\n.\r\n", "..\n", DATA_OK);
	check_message("..\r\n.\r\n", ".\n", DATA_OK);
	check_message("a\r\n..\r\nb\r\n.\r\n", "a\n.\nb\n", DATA_OK);
	/* a lone leading dot (a client that forgot to stuff) is removed too */
	check_message(".x\r\n.\r\n", "x\n", DATA_OK);
	/* dots inside a line are left alone */
	check_message("a.b..c\r\n.\r\n", "a.b..c\n", DATA_OK);
}
END_TEST

START_TEST(crlf_becomes_lf)
{
	check_message("Subject: hi\r\n\r\nline 1\r\nline 2\r\n.\r\n",
		      "Subject: hi\n\nline 1\nline 2\n", DATA_OK);
	check_message("\r\n\r\n.\r\n", "\n\n", DATA_OK);
}
END_TEST

START_TEST(end_only_at_crlf_dot_crlf)
{
	check_message("a\r\n.x\r\n. \r\n..\r\n.\r\n", "a\nx\n \n.\n", DATA_OK);

	/* a partial end is not the end */
	struct data_state d;
	char out[64];
	size_t n;
	data_start(&d, &roomy);
	ck_assert_uint_eq(data_feed(&d, "a\r\n.\r", 5, out, &n), 5);
	ck_assert(!d.done);
	ck_assert_uint_eq(data_feed(&d, "\n", 1, out, &n), 1);
	ck_assert(d.done);
	ck_assert_int_eq(d.fault, DATA_OK);
	/* once done, nothing more is taken */
	ck_assert_uint_eq(data_feed(&d, "MAIL", 4, out, &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(bytes_after_the_end_are_left)
{
	const char *in = "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
	struct result r = feed_str(in);

	ck_assert(r.done);
	ck_assert_uint_eq(r.consumed, strlen(in) - strlen("QUIT\r\n"));
	ck_assert_str_eq(r.out, "Subject: x\n\nbody\n");
	free(r.out);

	/* pipelined commands right after an empty message */
	in = ".\r\nMAIL FROM:<a@b.test>\r\n";
	r = feed_str(in);
	ck_assert(r.done);
	ck_assert_uint_eq(r.consumed, 3);
	ck_assert_uint_eq(r.outlen, 0);
	free(r.out);
}
END_TEST

START_TEST(empty_message)
{
	struct data_state d;
	char out[16];
	size_t n = 99;

	data_start(&d, &roomy);
	ck_assert_uint_eq(data_feed(&d, ".\r\n", 3, out, &n), 3);
	ck_assert(d.done);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(d.size, 0);
	ck_assert_int_eq(d.fault, DATA_OK);
}
END_TEST

START_TEST(bare_lf_refused)
{
	check_message("a\nb\r\n.\r\n", NULL, DATA_BARE_LF);
	check_message("Subject: x\n\r\n.\r\n", NULL, DATA_BARE_LF);
	check_message("\n\r\n.\r\n", NULL, DATA_BARE_LF);

	/* "\n.\n" is not the end of data; nor "\r\n.\n", nor "\n.\r\n" */
	const char *in = "a\r\nb\n.\nc\r\n.\nd\r\n\n.\r\nMAIL FROM:<evil@x.test>\r\n.\r\nQUIT\r\n";
	struct result r = feed_str(in);
	ck_assert(r.done);
	ck_assert_int_eq(r.fault, DATA_BARE_LF);
	ck_assert_uint_eq(r.consumed, strlen(in) - strlen("QUIT\r\n"));
	free(r.out);

	/* a message that ends "\n.\n" never ends */
	in = "a\r\nb\n.\n";
	r = feed_str(in);
	ck_assert(!r.done);
	ck_assert_uint_eq(r.consumed, strlen(in));
	ck_assert_int_eq(r.fault, DATA_BARE_LF);
	free(r.out);
}
END_TEST

START_TEST(bare_cr_refused)
{
	check_message("a\rb\r\n.\r\n", NULL, DATA_BARE_CR);
	check_message("a\r\r\n.\r\n", NULL, DATA_BARE_CR);
	check_message("a\r\n.\rX\r\n.\r\n", NULL, DATA_BARE_CR);
	check_message("\r.\r\n.\r\n", NULL, DATA_BARE_CR);

	/* "\r.\r" is not the end of data */
	const char *in = "a\r.\rMAIL FROM:<evil@x.test>\r.\r\r\n.\r\nQUIT\r\n";
	struct result r = feed_str(in);
	ck_assert(r.done);
	ck_assert_int_eq(r.fault, DATA_BARE_CR);
	ck_assert_uint_eq(r.consumed, strlen(in) - strlen("QUIT\r\n"));
	free(r.out);

	in = "a\r\n\r.\r";
	r = feed_str(in);
	ck_assert(!r.done);
	ck_assert_int_eq(r.fault, DATA_BARE_CR);
	free(r.out);

	/* "\r\n.\r" then anything but LF */
	in = "a\r\n.\r.\r\n";
	r = feed_str(in);
	ck_assert(!r.done);
	ck_assert_int_eq(r.fault, DATA_BARE_CR);
	free(r.out);
}
END_TEST

/* IN is a string literal that may hold NULs. */
#define FEED_LITERAL(in, chunk) feed(&roomy, (in), sizeof(in) - 1, (chunk))

START_TEST(nul_refused)
{
	static const char anywhere[] = "Subject: a\0b\r\n\r\nbody\r\n.\r\nQUIT\r\n";
	static const char in_body[] = "Subject: x\r\n\r\nb\0dy\r\n.\r\n";
	for (size_t chunk = 0; chunk <= 1; chunk++) {
		struct result r = FEED_LITERAL(anywhere, chunk);
		ck_assert(r.done);
		ck_assert_int_eq(r.fault, DATA_NUL);
		ck_assert_uint_eq(r.consumed, sizeof anywhere - 1 - strlen("QUIT\r\n"));
		free(r.out);
		r = FEED_LITERAL(in_body, chunk);
		ck_assert(r.done);
		ck_assert_int_eq(r.fault, DATA_NUL);
		free(r.out);
	}

	/* "\r\n\0.\r\n" and "\r\n.\0\r\n" are text, not the end of data */
	static const char before_dot[] = "a\r\n\0.\r\nMAIL FROM:<evil@x.test>\r\n";
	static const char after_dot[] = "a\r\n.\0\r\nMAIL FROM:<evil@x.test>\r\n";
	struct result r = FEED_LITERAL(before_dot, 0);
	ck_assert(!r.done);
	ck_assert_uint_eq(r.consumed, sizeof before_dot - 1);
	ck_assert_int_eq(r.fault, DATA_NUL);
	free(r.out);
	r = FEED_LITERAL(after_dot, 0);
	ck_assert(!r.done);
	ck_assert_uint_eq(r.consumed, sizeof after_dot - 1);
	ck_assert_int_eq(r.fault, DATA_NUL);
	free(r.out);

	/* the true end still ends it */
	static const char then_end[] = "a\r\n\0.\r\n.\0\r\n.\r\nQUIT\r\n";
	r = FEED_LITERAL(then_end, 1);
	ck_assert(r.done);
	ck_assert_uint_eq(r.consumed, sizeof then_end - 1 - strlen("QUIT\r\n"));
	ck_assert_int_eq(r.fault, DATA_NUL);
	free(r.out);
}
END_TEST

START_TEST(line_too_long)
{
	struct data_limits l = roomy;
	l.max_line_length = 10;

	const char *in = "0123456789\r\n.\r\n";
	struct result r = feed(&l, in, strlen(in), 0);
	ck_assert(r.done);
	ck_assert_int_eq(r.fault, DATA_OK);
	free(r.out);

	in = "0123456789A\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert(r.done);
	ck_assert_uint_eq(r.consumed, strlen(in));
	ck_assert_int_eq(r.fault, DATA_LINE_TOO_LONG);
	free(r.out);

	/* the stuffing dot is not part of the line */
	in = "..123456789\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert_int_eq(r.fault, DATA_OK);
	free(r.out);

	/* each line counts on its own */
	in = "0123456789\r\n0123456789\r\n0123456789\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert_int_eq(r.fault, DATA_OK);
	free(r.out);

	/* a long line in the body counts too */
	in = "S: x\r\n\r\n0123456789ABCDEF\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert_int_eq(r.fault, DATA_LINE_TOO_LONG);
	free(r.out);
}
END_TEST

START_TEST(header_too_large)
{
	struct data_limits l = roomy;
	l.max_header_size = 64;
	char in[2048];

	/* small header, big body: fine */
	strcpy(in, "Subject: small\r\n\r\n");
	for (int i = 0; i < 20; i++)
		strcat(in, "body body body body body body body body body body\r\n");
	strcat(in, ".\r\n");
	struct result r = feed(&l, in, strlen(in), 0);
	ck_assert(r.done);
	ck_assert_int_eq(r.fault, DATA_OK);
	free(r.out);

	/* a header block of 100 octets */
	strcpy(in, "Subject: 0123456789012345678901234567890123456789\r\n"
		   "X-Other: 012345678901234567890123456789012345678\r\n\r\nbody\r\n.\r\n");
	r = feed(&l, in, strlen(in), 0);
	ck_assert(r.done);
	ck_assert_uint_eq(r.consumed, strlen(in));
	ck_assert_int_eq(r.fault, DATA_HEADER_TOO_LARGE);
	free(r.out);

	/* no header at all: a first line without ':' starts the body */
	in[0] = '\0';
	for (int i = 0; i < 20; i++)
		strcat(in, "QmFzZTY0Ym9keWxpbmVzd2l0aG91dGFueWNvbG9u\r\n");
	strcat(in, ".\r\n");
	r = feed(&l, in, strlen(in), 0);
	ck_assert_int_eq(r.fault, DATA_OK);
	free(r.out);

	/* a message with no body: all of it is header */
	strcpy(in, "Subject: 0123456789012345678901234567890123456789\r\n"
		   "X-Other: 012345678901234567890123456789012345678\r\n.\r\n");
	r = feed(&l, in, strlen(in), 0);
	ck_assert_int_eq(r.fault, DATA_HEADER_TOO_LARGE);
	free(r.out);
}
END_TEST

START_TEST(message_too_large)
{
	struct data_limits l = roomy;
	l.max_message_size = 10;

	/* exactly 10 octets of output: "012345678\n" */
	const char *in = "012345678\r\n.\r\n";
	struct result r = feed(&l, in, strlen(in), 0);
	ck_assert(r.done);
	ck_assert_int_eq(r.fault, DATA_OK);
	ck_assert_uint_eq(r.size, 10);
	free(r.out);

	in = "0123456789\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert(r.done);
	ck_assert_uint_eq(r.consumed, strlen(in));
	ck_assert_int_eq(r.fault, DATA_TOO_LARGE);
	free(r.out);

	l.max_message_size = 1000;
	char *big = malloc(100000);
	ck_assert(big != NULL);
	big[0] = '\0';
	for (int i = 0; i < 1000; i++)
		strcat(big, "0123456789012345678901234567890123456789012345678901234567890\r\n");
	strcat(big, ".\r\nQUIT\r\n");
	r = feed(&l, big, strlen(big), 0);
	ck_assert(r.done);
	ck_assert_int_eq(r.fault, DATA_TOO_LARGE);
	ck_assert_uint_eq(r.consumed, strlen(big) - 6);
	ck_assert_uint_le(r.outlen, 1000);
	free(r.out);
	free(big);
}
END_TEST

START_TEST(too_many_received_headers)
{
	struct data_limits l = roomy;
	l.max_received = 3;
	const char *in;
	struct result r;

	in = "Received: from a\r\nreceived: from b\r\nRECEIVED: from c\r\n"
	     "Subject: x\r\n\r\nbody\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert(r.done);
	ck_assert_int_eq(r.fault, DATA_OK);
	free(r.out);

	in = "Received: from a\r\nreceived: from b\r\nRECEIVED: from c\r\n"
	     "ReCeIvEd: from d\r\nSubject: x\r\n\r\nbody\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert(r.done);
	ck_assert_uint_eq(r.consumed, strlen(in));
	ck_assert_int_eq(r.fault, DATA_LOOP);
	free(r.out);

	/* folded lines count once; look-alike names not at all */
	in = "Received: from a\r\n\tby b\r\n Received: from c\r\nX-Received: x\r\n"
	     "Received-SPF: pass\r\nReceived: from d\r\nReceived: from e\r\n\r\nbody\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert_int_eq(r.fault, DATA_OK);
	free(r.out);

	/* RFC 5322 4.5: white space before the ':' is the same field */
	in = "Received: from a\r\nReceived : from b\r\nSubject : x\r\nReceived\t: from c\r\n"
	     "Received \t:from d\r\n\r\nbody\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert_int_eq(r.fault, DATA_LOOP);
	free(r.out);

	/* a line without ':' ends the header: what follows is body */
	in = "Received: from a\r\nnot a header line\r\nReceived: from b\r\n"
	     "Received: from c\r\nReceived: from d\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert_int_eq(r.fault, DATA_OK);
	free(r.out);

	/* in the body they are just text */
	in = "Received: from a\r\nReceived: from b\r\nReceived: from c\r\n\r\n"
	     "Received: from d\r\nReceived: from e\r\nReceived: from f\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert(r.done);
	ck_assert_int_eq(r.fault, DATA_OK);
	free(r.out);
}
END_TEST

START_TEST(first_fault_wins)
{
	struct data_limits l = roomy;
	l.max_line_length = 5;
	const char *in = "a\nbcdefghij\rk\r\n.\r\n";
	struct result r = feed(&l, in, strlen(in), 0);
	ck_assert(r.done);
	ck_assert_int_eq(r.fault, DATA_BARE_LF);
	free(r.out);

	in = "abcdefghij\nk\r\n.\r\n";
	r = feed(&l, in, strlen(in), 0);
	ck_assert_int_eq(r.fault, DATA_LINE_TOO_LONG);
	free(r.out);
}
END_TEST

/* The same input in any split gives the same output and the same verdict. */
static void check_splits(const struct data_limits *l, const char *in)
{
	size_t len = strlen(in);
	struct result whole = feed(l, in, len, 0);
	static const size_t chunks[] = { 1, 2, 3, 5, 7, 64 };

	for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
		struct result part = feed(l, in, len, chunks[i]);
		ck_assert_msg(part.outlen == whole.outlen, "chunk %zu: %zu octets, want %zu",
			      chunks[i], part.outlen, whole.outlen);
		ck_assert_mem_eq(part.out, whole.out, whole.outlen);
		ck_assert_uint_eq(part.consumed, whole.consumed);
		ck_assert_int_eq(part.done, whole.done);
		ck_assert_int_eq(part.fault, whole.fault);
		ck_assert_uint_eq(part.size, whole.size);
		free(part.out);
	}
	free(whole.out);
}

START_TEST(byte_at_a_time_is_the_same)
{
	struct data_limits small = roomy;
	small.max_line_length = 20;
	small.max_received = 1;
	small.max_header_size = 40;

	check_splits(&roomy, "Received: from a\r\nSubject: test\r\n\r\n..stuffed\r\n"
			     "plain\r\n\r\n.\r\nQUIT\r\n");
	check_splits(&roomy, ".\r\nMAIL FROM:<a@b.test>\r\n");
	check_splits(&roomy, "a\nb\r\n.\r\nRSET\r\n");
	check_splits(&roomy, "a\rb\r\n.\r.\r\n.\r\nRSET\r\n");
	check_splits(&roomy, "x\r\n.\r");
	check_splits(&small, "0123456789012345678901234\r\n.\r\nNOOP\r\n");
	check_splits(&small, "Received: a\r\nReceived: b\r\n\r\n.\r\nNOOP\r\n");
	check_splits(&small, "Subject: 012345678901\r\nX: 0123456789012345\r\n\r\n.\r\n");
}
END_TEST

START_TEST(rate_limit)
{
	/* no check at all */
	ck_assert(data_rate_limit_ms(0, 0, 600) == UINT64_MAX);
	ck_assert(data_rate_limit_ms(UINT64_MAX, 0, 600) == UINT64_MAX);
	/* never before data_timeout... */
	ck_assert_uint_eq(data_rate_limit_ms(0, 500, 600), 600000);
	ck_assert_uint_eq(data_rate_limit_ms(4, 1000, 2), 2000);
	ck_assert_uint_eq(data_rate_limit_ms(2000, 1000, 2), 2000);
	/* ...then when the average since the 354 falls under the rate */
	ck_assert_uint_eq(data_rate_limit_ms(3000, 1000, 2), 3000);
	ck_assert_uint_eq(data_rate_limit_ms(3001, 1000, 2), 3001);
	ck_assert_uint_eq(data_rate_limit_ms(1, 3, 0), 333);
	ck_assert_uint_eq(data_rate_limit_ms(35 << 20, 500, 600), (uint64_t)(35 << 20) * 2);
	ck_assert_uint_eq(data_rate_limit_ms(5, 1u << 30, 0), 0);
	/* no overflow */
	ck_assert(data_rate_limit_ms(UINT64_MAX, 1, 1) == UINT64_MAX);
	ck_assert_uint_eq(data_rate_limit_ms(UINT64_MAX / 2, 1u << 30, 1), 8589934591999ULL);
}
END_TEST

START_TEST(fault_replies)
{
	ck_assert_str_eq(data_fault_reply(DATA_OK), "250 2.0.0 Ok");
	ck_assert(strncmp(data_fault_reply(DATA_BARE_LF), "550 5.6.0", 9) == 0);
	ck_assert(strncmp(data_fault_reply(DATA_BARE_CR), "550 5.6.0", 9) == 0);
	ck_assert(strncmp(data_fault_reply(DATA_NUL), "550 5.6.0", 9) == 0);
	ck_assert(strncmp(data_fault_reply(DATA_LINE_TOO_LONG), "550 5.6.0", 9) == 0);
	ck_assert(strncmp(data_fault_reply(DATA_HEADER_TOO_LARGE), "552 5.3.4", 9) == 0);
	ck_assert(strncmp(data_fault_reply(DATA_TOO_LARGE), "552 5.3.4", 9) == 0);
	ck_assert(strncmp(data_fault_reply(DATA_LOOP), "554 5.4.6", 9) == 0);
}
END_TEST

/* feed() without an assertion a call (check records each one): IN in
 * pieces of CHUNK octets (0: whole) into R; false if a piece broke the
 * rules feed() checks. */
static bool feed_quietly(const struct data_limits *limits, const char *in, size_t len,
			 size_t chunk, struct result *r, char *out)
{
	struct data_state d;
	char piece_out[1300];

	memset(r, 0, sizeof *r);
	r->out = out;
	data_start(&d, limits);
	while (r->consumed < len) {
		size_t want = len - r->consumed, got = 0;
		if (chunk > 0 && want > chunk)
			want = chunk;
		size_t used = data_feed(&d, in + r->consumed, want, piece_out, &got);
		if (used > want || got > used || (!d.done && used != want))
			return false;
		memcpy(out + r->outlen, piece_out, got);
		r->outlen += got;
		r->consumed += used;
		if (d.done)
			break;
	}
	r->done = d.done;
	r->fault = d.fault;
	r->size = d.size;
	return true;
}

/* The body's bulk copy (body_run) against the octet-by-octet path: random
 * messages of long and short lines, CR, LF, NUL and dots, under limits that
 * the runs reach, fed whole and one octet at a time (a one-octet run is
 * what emit() does with a plain octet), must come out the same. */
START_TEST(bulk_copy_is_the_same_as_octet_by_octet)
{
	static const char alphabet[] = "ab.:\r\n\r\n\r\n \0xyz";
	const struct data_limits tight = {
		.max_message_size = 700, .max_header_size = 200,
		.max_line_length = 90, .max_received = 3,
	};
	char in[1200];

	srandom(7);
	for (int round = 0; round < 3000; round++) {
		size_t len = (size_t)(random() % (sizeof in - 5));
		for (size_t i = 0; i < len; i++)	/* runs of plain text, then a special */
			in[i] = random() % 4 ? 'a' + random() % 26
					     : alphabet[random() % (sizeof alphabet - 1)];
		if (round % 2)	/* half of them end properly */
			memcpy(in + len, "\r\n.\r\n", 5), len += 5;
		const struct data_limits *limits = round % 3 ? &tight : &roomy;
		struct result whole, octets;
		char whole_out[sizeof in], octets_out[sizeof in];
		bool fine = feed_quietly(limits, in, len, 0, &whole, whole_out) &&
			    feed_quietly(limits, in, len, 1, &octets, octets_out);
		if (!fine || whole.consumed != octets.consumed || whole.outlen != octets.outlen ||
		    memcmp(whole.out, octets.out, whole.outlen) != 0 ||
		    whole.done != octets.done || whole.fault != octets.fault ||
		    whole.size != octets.size)
			ck_abort_msg("round %d (%zu octets): whole and octet by octet differ", round,
				     len);
		if (round % 2 && limits == &roomy)	/* the check can fail: these end */
			ck_assert(whole.done);
	}
}
END_TEST

/* A run with stop_at_header_end: the output with no mark in it, and where
 * the stop came (STOP_NONE: never). */
#define STOP_NONE ((size_t)-1)

struct stopped {
	char *out;		/* room for the input and DATA_HELD_MAX */
	size_t outlen;
	size_t consumed;
	size_t stop_at;		/* octets of output before the stop */
	bool done;
	enum data_fault fault;
	uint64_t size;
	bool has_message_id, has_date;
};

/* Feeds IN with stop_at_header_end in pieces of CHUNK octets (0: whole),
 * as a session would, calling again after the stop; false if a call broke
 * a rule: more output than input and DATA_HELD_MAX, input left unconsumed
 * but at the stop or the end, a second stop, or the stop in the call that
 * ends the data. */
static bool feed_stopping(const struct data_limits *limits, const char *in, size_t len,
			  size_t chunk, struct stopped *r)
{
	struct data_limits l = *limits;
	struct data_state d;
	char *piece = malloc(len + DATA_HELD_MAX + 1);
	bool fine = piece != NULL;

	l.stop_at_header_end = true;
	data_start(&d, &l);
	r->outlen = r->consumed = 0;
	r->stop_at = STOP_NONE;
	while (fine && r->consumed < len && !d.done) {
		size_t want = len - r->consumed, got = 0;
		if (chunk > 0 && want > chunk)
			want = chunk;
		bool before = d.header_end;
		size_t used = data_feed(&d, in + r->consumed, want, piece, &got);
		bool stop = d.header_end && !before;
		if (used > want || got > used + DATA_HELD_MAX || (before && !d.header_end) ||
		    (used != want && !d.done && !stop) || (stop && d.done))
			fine = false;
		memcpy(r->out + r->outlen, piece, got);
		r->outlen += got;
		r->consumed += used;
		if (stop)
			r->stop_at = r->outlen;
		if (r->outlen > r->consumed)	/* over the message, never */
			fine = false;
	}
	if (d.done && !d.header_end)
		fine = false;
	r->done = d.done;
	r->fault = d.fault;
	r->size = d.size;
	r->has_message_id = d.has_message_id;
	r->has_date = d.has_date;
	free(piece);
	return fine;
}

/* IN, a whole message, gives WANT with the stop where WANT has '|', in any
 * split, and, the '|' left out, what it gives without the option. */
static void check_stop_in(const struct data_limits *limits, const char *in, const char *want)
{
	static const size_t chunks[] = { 0, 1, 2, 3, 5, 7, 64 };
	size_t len = strlen(in);
	const char *bar = strchr(want, '|');
	char *plain = malloc(strlen(want) + 1);
	char *out = malloc(len + DATA_HELD_MAX + 1);

	ck_assert(bar != NULL && plain != NULL && out != NULL);
	size_t at = (size_t)(bar - want);
	memcpy(plain, want, at);
	strcpy(plain + at, bar + 1);
	struct result off = feed(limits, in, len, 0);
	ck_assert_msg(strcmp(off.out, plain) == 0, "without the option: \"%s\"", off.out);
	for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
		struct stopped r = { .out = out };
		ck_assert_msg(feed_stopping(limits, in, len, chunks[k], &r),
			      "chunk %zu: a call broke the rules: %s", chunks[k], in);
		ck_assert(r.done);
		ck_assert_uint_eq(r.consumed, len);
		ck_assert_int_eq(r.fault, off.fault);
		ck_assert_uint_eq(r.size, off.size);
		ck_assert_msg(r.outlen == off.outlen && memcmp(r.out, off.out, r.outlen) == 0,
			      "chunk %zu: output differs: %s", chunks[k], in);
		ck_assert_msg(r.stop_at == at, "chunk %zu: stop at %zu, want %zu: %s", chunks[k],
			      r.stop_at, at, in);
	}
	free(off.out);
	free(plain);
	free(out);
}

static void check_stop(const char *in, const char *want)
{
	check_stop_in(&roomy, in, want);
}

START_TEST(stop_at_the_blank_line)
{
	check_stop("Subject: x\r\nFrom: <a@b.test>\r\n\r\nbody\r\n.\r\n",
		   "Subject: x\nFrom: <a@b.test>\n|\nbody\n");
	check_stop("Subject: x\r\n\r\n\r\n.\r\n", "Subject: x\n|\n\n");
	/* folded lines belong to their field */
	check_stop("Subject: x\r\n y\r\n\tz\r\n\r\nbody\r\n.\r\n", "Subject: x\n y\n\tz\n|\nbody\n");
	/* a blank first line: no header at all */
	check_stop("\r\nbody\r\n.\r\n", "|\nbody\n");
	/* pipelined commands after the end are left */
	const char *in = "A: b\r\n\r\nc\r\n.\r\nQUIT\r\n";
	struct data_limits l = roomy;
	l.stop_at_header_end = true;
	struct data_state d;
	char out[64 + DATA_HELD_MAX];
	size_t n, used = 0;
	data_start(&d, &l);
	used += data_feed(&d, in, strlen(in), out, &n);
	ck_assert(d.header_end && !d.done);
	ck_assert_uint_eq(n, 5);
	used += data_feed(&d, in + used, strlen(in) - used, out, &n);
	ck_assert(d.done);
	ck_assert_uint_eq(used, strlen(in) - strlen("QUIT\r\n"));
	ck_assert_uint_eq(n, 3);
	ck_assert(memcmp(out, "\nc\n", 3) == 0);
}
END_TEST

START_TEST(stop_before_the_first_body_line)
{
	/* RFC 5322 2.2: the header ends at the first line that is no field */
	check_stop("Subject: x\r\nthis is the body\r\n.\r\n", "Subject: x\n|this is the body\n");
	check_stop("Subject: x\r\nbody\r\nmore: x\r\n.\r\n", "Subject: x\n|body\nmore: x\n");
	check_stop("Subject: x\r\nbody \r\n.\r\n", "Subject: x\n|body \n");
	check_stop("Subject: x\r\n:x\r\n.\r\n", "Subject: x\n|:x\n");
	check_stop("Subject: x\r\nname @: x\r\n.\r\n", "Subject: x\n|name @: x\n");
	check_stop("Subject: x\r\nn\xc3\xa4me: x\r\n.\r\n", "Subject: x\n|n\xc3\xa4me: x\n");
	/* a stuffed dot is gone before the line is looked at */
	check_stop("Subject: x\r\n..dots\r\n.\r\n", "Subject: x\n|.dots\n");
	check_stop("Subject: x\r\n.: x\r\n\r\n.\r\n", "Subject: x\n|: x\n\n");
	check_stop("Subject: x\r\n.X: y\r\n\r\n.\r\n", "Subject: x\nX: y\n|\n");
	/* the first line is not a header */
	check_stop("Hello world\r\n.\r\n", "|Hello world\n");
	check_stop("Hello\r\nSubject: x\r\n.\r\n", "|Hello\nSubject: x\n");
	check_stop(" Subject: x\r\n\r\n.\r\n", "| Subject: x\n\n");
	check_stop("\tx\r\n.\r\n", "|\tx\n");
}
END_TEST

START_TEST(stop_before_the_end_of_data)
{
	/* a message that is all header: the stop comes before the end */
	check_stop("Subject: x\r\n.\r\n", "Subject: x\n|");
	check_stop("Subject: x\r\nTo: <a@b.test>\r\n .\r\n.\r\n", "Subject: x\nTo: <a@b.test>\n .\n|");
	/* and in an empty message, at once */
	check_stop(".\r\n", "|");

	struct data_limits l = roomy;
	l.stop_at_header_end = true;
	struct data_state d;
	char out[16 + DATA_HELD_MAX];
	size_t n = 99;
	data_start(&d, &l);
	ck_assert_uint_eq(data_feed(&d, ".\r\nQUIT\r\n", 9, out, &n), 2);
	ck_assert(d.header_end && !d.done);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(data_feed(&d, "\nQUIT\r\n", 7, out, &n), 1);
	ck_assert(d.done);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(d.size, 0);
	/* without the option nothing stops */
	data_start(&d, &roomy);
	ck_assert_uint_eq(data_feed(&d, ".\r\nQUIT\r\n", 9, out, &n), 3);
	ck_assert(d.done && !d.header_end);
}
END_TEST

START_TEST(stop_with_faults_and_limits)
{
	struct data_limits l = roomy;

	/* a fault changes nothing about where the stop is */
	check_stop("Subj\x01" "ect: x\r\n\r\nbody\r\n.\r\n", "|Subj\x01" "ect: x\n\nbody\n");
	/* what came out before a fault is still put out in order */
	check_stop("Subject: a\nb\r\n\r\nbody\r\n.\r\n", "Subject: a|");
	check_stop("Subject: a\r\nb\nc\r\n.\r\n", "Subject: a\n|b");
	check_stop("Subject: a\r\nb\nc: d\r\n.\r\n", "Subject: a\nb|");
	l.max_header_size = 12;
	check_stop_in(&l, "Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\n|\nbody\n");
	check_stop_in(&l, "Subject: xy\r\n\r\nbody\r\n.\r\n", "Subject: xy\n|");
	l = roomy;
	l.max_message_size = 12;
	check_stop_in(&l, "Subject: x\r\nbody\r\n.\r\n", "Subject: x\n|b");
	l = roomy;
	l.max_received = 1;
	check_stop_in(&l, "Received: a\r\nReceived: b\r\n\r\n.\r\n",
		      "Received: a\nReceived: b\n|");
}
END_TEST

/* A line whose field name is too long to wait for is not a field. */
START_TEST(stop_at_a_long_name)
{
	size_t room = 2 * DATA_FIELD_NAME_MAX + 64;
	char *in = malloc(room), *want = malloc(room);
	ck_assert(in != NULL && want != NULL);
	char name[DATA_FIELD_NAME_MAX + 2];

	memset(name, 'n', sizeof name - 1);
	name[DATA_FIELD_NAME_MAX] = '\0';
	snprintf(in, room, "%s: x\r\n\r\n.\r\n", name);
	snprintf(want, room, "%s: x\n|\n", name);
	check_stop(in, want);
	name[DATA_FIELD_NAME_MAX - 1] = ' ';	/* white space before the ':' counts */
	snprintf(in, room, "%s: x\r\n\r\n.\r\n", name);
	snprintf(want, room, "%s: x\n|\n", name);
	check_stop(in, want);
	name[DATA_FIELD_NAME_MAX - 1] = 'n';
	name[DATA_FIELD_NAME_MAX] = 'n';
	name[DATA_FIELD_NAME_MAX + 1] = '\0';
	snprintf(in, room, "A: b\r\n%s: x\r\n\r\n.\r\n", name);
	snprintf(want, room, "A: b\n|%s: x\n\n", name);
	check_stop(in, want);
	snprintf(in, room, "A: b\r\n%s\r\n.\r\n", name);
	snprintf(want, room, "A: b\n|%s\n", name);
	check_stop(in, want);
	name[DATA_FIELD_NAME_MAX - 1] = ' ';
	name[DATA_FIELD_NAME_MAX] = ' ';
	snprintf(in, room, "A: b\r\n%s: x\r\n\r\n.\r\n", name);
	snprintf(want, room, "A: b\n|%s: x\n\n", name);
	check_stop(in, want);
	/* a whole name, then a blank and no ':': every octet held, none more */
	memset(name, 'n', DATA_FIELD_NAME_MAX);
	name[DATA_FIELD_NAME_MAX] = '\0';
	snprintf(in, room, "A: b\r\n%s X rest\r\n\r\nbody\r\n.\r\n", name);
	snprintf(want, room, "A: b\n|%s X rest\n\nbody\n", name);
	check_stop(in, want);
	free(in);
	free(want);
}
END_TEST

/* The fields IN's header block has, with the option and without. */
static void check_fields(const char *in, bool message_id, bool date)
{
	size_t len = strlen(in);
	char *out = malloc(len + DATA_HELD_MAX + 1);
	struct stopped r = { .out = out };
	ck_assert(out != NULL);
	ck_assert(feed_stopping(&roomy, in, len, 0, &r));
	ck_assert_msg(r.has_message_id == message_id, "Message-ID %d: %s", r.has_message_id, in);
	ck_assert_msg(r.has_date == date, "Date %d: %s", r.has_date, in);
	ck_assert(feed_stopping(&roomy, in, len, 1, &r));
	ck_assert(r.has_message_id == message_id && r.has_date == date);
	free(out);

	struct data_state d;
	size_t n;
	out = malloc(len);
	ck_assert(out != NULL);
	data_start(&d, &roomy);
	data_feed(&d, in, len, out, &n);
	ck_assert(d.done);
	ck_assert(d.has_message_id == message_id && d.has_date == date);
	free(out);
}

START_TEST(message_id_and_date_seen)
{
	check_fields("Subject: x\r\n\r\nbody\r\n.\r\n", false, false);
	check_fields(".\r\n", false, false);
	check_fields("Message-ID: <a@b.test>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n.\r\n",
		     true, true);
	check_fields("message-id:<a@b.test>\r\n.\r\n", true, false);
	check_fields("MESSAGE-ID: <a@b.test>\r\n\r\n.\r\n", true, false);
	check_fields("Subject: x\r\nDATE: x\r\n\r\n.\r\n", false, true);
	check_fields("date:\r\n\r\n.\r\n", false, true);
	/* RFC 5322 4.5: white space before the ':' */
	check_fields("Message-Id : <a@b.test>\r\nDate\t: x\r\n\r\n.\r\n", true, true);
	check_fields("Message-Id \t :<a@b.test>\r\n.\r\n", true, false);
	/* other names */
	check_fields("Message-IDs: x\r\nX-Message-ID: x\r\nResent-Message-ID: x\r\n"
		     "Dates: x\r\nResent-Date: x\r\nDat: x\r\nMessage-I: x\r\n\r\n.\r\n",
		     false, false);
	/* a folded line is no field */
	check_fields("Subject: x\r\n Message-ID: <a@b.test>\r\n\tDate: x\r\n\r\n.\r\n",
		     false, false);
	/* the body is no header */
	check_fields("Subject: x\r\n\r\nMessage-ID: <a@b.test>\r\nDate: x\r\n.\r\n", false, false);
	check_fields("Subject: x\r\nbody\r\nMessage-ID: <a@b.test>\r\nDate: x\r\n.\r\n",
		     false, false);
	check_fields(" Message-ID: <a@b.test>\r\n.\r\n", false, false);
	/* nor a name with no ':' */
	check_fields("Message-ID\r\nDate x\r\n.\r\n", false, false);
	check_fields("Date x: y\r\n.\r\n", false, false);
	/* a stuffed dot is no part of the name */
	check_fields(".Date: x\r\n..Message-ID: x\r\n.\r\n", false, true);
}
END_TEST

/* Where the header block of OUT (LF line ends, every line whole) ends and
 * which fields it has, by RFC 5322 2.2 and 4.5 apart from data.c: up to the
 * first line that is neither "name" *WSP ":" (name at most
 * DATA_FIELD_NAME_MAX octets with the white space) nor, after the first
 * line, a continuation. */
static size_t header_end_of(const char *out, size_t len, bool *message_id, bool *date)
{
	size_t at = 0;

	*message_id = *date = false;
	while (at < len) {
		const char *line = out + at;
		const char *nl = memchr(line, '\n', len - at);
		ck_assert(nl != NULL);
		size_t n = (size_t)(nl - line), k = 0;
		if (at > 0 && n > 0 && (line[0] == ' ' || line[0] == '\t')) {
			at += n + 1;
			continue;
		}
		while (k < n && (unsigned char)line[k] > ' ' && (unsigned char)line[k] < 127 &&
		       line[k] != ':')
			k++;
		size_t name = k;
		while (k < n && (line[k] == ' ' || line[k] == '\t'))
			k++;
		if (name == 0 || k == n || line[k] != ':' || k > DATA_FIELD_NAME_MAX)
			return at;
		if (name == 10 && strncasecmp(line, "message-id", 10) == 0)
			*message_id = true;
		if (name == 4 && strncasecmp(line, "date", 4) == 0)
			*date = true;
		at += n + 1;
	}
	return at;
}

/* Random messages of header-like pieces, CR, LF, NUL and dots, fed whole
 * and in random pieces with stop_at_header_end: the output is the same as
 * without it, the stop comes once, and where the header ends when the
 * message is whole and fine. */
START_TEST(stop_in_random_messages)
{
	static const char *const pieces[] = {
		"Message-ID", "Date", "message-id", "DATE", "Subject", "X", "a b", ":", ":",
		": v", " ", "\t", ".", "..", "\r\n", "\r\n", "\r\n", "\r\n", "\r\n\r\n",
		"\r\n ", "\r\n.", "\r\n..", "\r", "\n", "\0", "\x80",
	};
	const struct data_limits tight = {
		.max_message_size = 700, .max_header_size = 120,
		.max_line_length = 60, .max_received = 3,
	};
	char in[1300], off_out[sizeof in], on_out[sizeof in + DATA_HELD_MAX];
	size_t npieces = sizeof pieces / sizeof pieces[0];
	unsigned whole = 0;

	srandom(11);
	for (int round = 0; round < 4000; round++) {
		size_t len = 0, target = (size_t)(random() % 400);
		while (len < target) {
			size_t p = (size_t)random() % npieces;
			size_t plen = p == npieces - 2 ? 1 : strlen(pieces[p]);	/* the NUL */
			if (p >= npieces - 4 && random() % 4 != 0)
				continue;	/* faults, seldom */
			memcpy(in + len, pieces[p], plen);
			len += plen;
		}
		if (round % 4 != 0)
			memcpy(in + len, "\r\n.\r\n", 5), len += 5;
		const struct data_limits *limits = round % 5 ? &roomy : &tight;
		size_t chunk = round % 2 ? 0 : 1 + (size_t)random() % 17;
		struct result off;
		struct stopped on = { .out = on_out };
		bool fine = feed_quietly(limits, in, len, 0, &off, off_out) &&
			    feed_stopping(limits, in, len, chunk, &on);
		if (!fine || on.consumed != off.consumed || on.done != off.done ||
		    on.fault != off.fault || on.size != off.size)
			ck_abort_msg("round %d: a call broke the rules, or the verdicts differ", round);
		/* held back octets come out once more input comes */
		size_t same = on.done ? off.outlen : on.outlen;
		if (on.outlen != same || on.outlen > off.outlen ||
		    memcmp(on.out, off.out, on.outlen) != 0)
			ck_abort_msg("round %d: the output differs", round);
		if (!on.done || on.fault != DATA_OK)
			continue;
		bool message_id, date;
		size_t end = header_end_of(off.out, off.outlen, &message_id, &date);
		if (on.stop_at != end || on.has_message_id != message_id || on.has_date != date)
			ck_abort_msg("round %d: stop at %zu, want %zu; fields %d %d, want %d %d",
				     round, on.stop_at, end, on.has_message_id, on.has_date,
				     message_id, date);
		whole++;
	}
	ck_assert_uint_gt(whole, 1000);	/* the check above can fail */
}
END_TEST

Suite *data_suite(void)
{
	Suite *s = suite_create("data");
	TCase *tc = tcase_create("feed");

	tcase_add_test(tc, dot_unstuffing);
	tcase_add_test(tc, crlf_becomes_lf);
	tcase_add_test(tc, end_only_at_crlf_dot_crlf);
	tcase_add_test(tc, bytes_after_the_end_are_left);
	tcase_add_test(tc, empty_message);
	tcase_add_test(tc, bare_lf_refused);
	tcase_add_test(tc, bare_cr_refused);
	tcase_add_test(tc, nul_refused);
	tcase_add_test(tc, line_too_long);
	tcase_add_test(tc, header_too_large);
	tcase_add_test(tc, message_too_large);
	tcase_add_test(tc, too_many_received_headers);
	tcase_add_test(tc, first_fault_wins);
	tcase_add_test(tc, byte_at_a_time_is_the_same);
	tcase_add_test(tc, bulk_copy_is_the_same_as_octet_by_octet);
	tcase_add_test(tc, stop_at_the_blank_line);
	tcase_add_test(tc, stop_before_the_first_body_line);
	tcase_add_test(tc, stop_before_the_end_of_data);
	tcase_add_test(tc, stop_with_faults_and_limits);
	tcase_add_test(tc, stop_at_a_long_name);
	tcase_add_test(tc, message_id_and_date_seen);
	tcase_add_test(tc, stop_in_random_messages);
	tcase_add_test(tc, rate_limit);
	tcase_add_test(tc, fault_replies);
	suite_add_tcase(s, tc);
	return s;
}
