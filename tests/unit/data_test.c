/* data: the DATA state machine (smtpd/data.h).  smtpd/data.c is not in
 * libtern.a, so it is compiled in here, once. */
#include <check.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

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
	tcase_add_test(tc, rate_limit);
	tcase_add_test(tc, fault_replies);
	suite_add_tcase(s, tc);
	return s;
}
