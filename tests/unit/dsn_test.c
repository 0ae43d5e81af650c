/* dsn: RFC 3464 delivery status notifications (lib/dsn.h). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn.h"
#include "helpers.h"
#include "suites.h"

static const char original[] =
	"Received: from client.test by mx.test\n"
	"From: Sender <sender@x.test>\n"
	"To: u@y.test\n"
	"Subject: hello\n"
	"\n"
	"Body line one.\n"
	"Body line two.\n";

/* Writes MSG (LEN octets) to a file and opens it for reading. */
static int message_fd(const char *dir, const char *msg, size_t len)
{
	char path[PATH_MAX];

	test_path(path, dir, "original");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert(fd >= 0);
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, msg + done, len - done);
		ck_assert(n > 0);
		done += (size_t)n;
	}
	return fd;
}

/* Runs dsn_write into a file and returns what it wrote (free it). */
static char *report(const char *dir, const struct dsn_info *info,
		    const struct dsn_rcpt *rcpts, size_t n, const char *msg, size_t msglen,
		    uint64_t max_return)
{
	char path[PATH_MAX];
	int in = message_fd(dir, msg, msglen);

	test_path(path, dir, "report");
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(out >= 0);
	ck_assert_int_eq(dsn_write(out, info, rcpts, n, in, msglen, max_return), 0);
	close(out);
	close(in);
	char *text = test_read_file(path, NULL);
	ck_assert(text != NULL);
	return text;
}

/* True if TEXT has a line that is exactly LINE. */
static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; p != NULL && *p; ) {
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return true;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return false;
}

/* True if TEXT has a line starting with PREFIX. */
static bool has_line_starting(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p != NULL && *p; ) {
		if (strncmp(p, prefix, n) == 0)
			return true;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return false;
}

/* The boundary named in the top-level Content-Type (static buffer). */
static const char *boundary_of(const char *text)
{
	static char b[256];
	const char *p = strstr(text, "boundary=\"");
	ck_assert_msg(p != NULL, "no boundary in:\n%s", text);
	p += strlen("boundary=\"");
	const char *q = strchr(p, '"');
	ck_assert(q != NULL && (size_t)(q - p) < sizeof b && q > p);
	memcpy(b, p, (size_t)(q - p));
	b[q - p] = '\0';
	return b;
}

/* Splits TEXT at its boundary lines: PARTS[0] is the preamble with the
 * header, then each body part; returns how many parts (closing included). */
static int split(char *text, const char *boundary, char **parts, int max)
{
	char delim[300], close_delim[300];
	int n = 0;

	snprintf(delim, sizeof delim, "\n--%s\n", boundary);
	snprintf(close_delim, sizeof close_delim, "\n--%s--\n", boundary);
	char *end = strstr(text, close_delim);
	ck_assert_msg(end != NULL, "no closing boundary");
	ck_assert_msg(end[strlen(close_delim)] == '\0', "text after the closing boundary");
	*end = '\0';
	parts[n++] = text;
	for (char *p = strstr(text, delim); p != NULL && n < max; p = strstr(p, delim)) {
		*p = '\0';
		p += strlen(delim);
		parts[n++] = p;
	}
	return n;
}

static const struct dsn_info failure = {
	.hostname = "mx.test", .queue_id = "Q1d2e3", .to = "sender@x.test",
	.arrival = 1700000000, .delayed = false,
};

static const struct dsn_rcpt two_rcpts[] = {
	{ .addr = "u@y.test", .orcpt = NULL, .status = "5.1.1",
	  .diagnostic = "550 5.1.1 no such user", .last_attempt = 1700000100 },
	{ .addr = "v@y.test", .orcpt = "list@x.test", .status = "5.2.2",
	  .diagnostic = "552 5.2.2 mailbox full", .last_attempt = 1700000200 },
};

START_TEST(failure_report)
{
	char dir[PATH_MAX];
	test_mkdir(dir);
	char *text = report(dir, &failure, two_rcpts, 2, original, strlen(original), 1 << 20);
	char *copy = strdup(text);
	ck_assert(copy != NULL);

	ck_assert_msg(strchr(text, '\r') == NULL, "CR in the report");
	/* the top-level header */
	char *header_end = strstr(text, "\n\n");
	ck_assert(header_end != NULL);
	*header_end = '\0';
	ck_assert(has_line_starting(text, "From: "));
	ck_assert_ptr_nonnull(strstr(text, "MAILER-DAEMON@mx.test"));
	ck_assert(has_line(text, "To: <sender@x.test>"));
	ck_assert(has_line_starting(text, "Subject: "));
	ck_assert(has_line_starting(text, "Date: "));
	ck_assert(has_line_starting(text, "Message-ID: <"));
	ck_assert(has_line(text, "Auto-Submitted: auto-replied"));
	ck_assert(has_line(text, "MIME-Version: 1.0"));
	ck_assert(has_line_starting(text, "Content-Type: multipart/report;"));
	ck_assert_ptr_nonnull(strstr(text, "report-type=delivery-status"));
	*header_end = '\n';

	const char *b = boundary_of(copy);
	char *parts[8];
	int n = split(copy, b, parts, 8);
	ck_assert_int_eq(n, 4);

	/* 1: for people */
	ck_assert(has_line_starting(parts[1], "Content-Type: text/plain"));
	ck_assert_ptr_nonnull(strstr(parts[1], "u@y.test"));
	ck_assert_ptr_nonnull(strstr(parts[1], "no such user"));
	ck_assert_ptr_nonnull(strstr(parts[1], "v@y.test"));

	/* 2: for programs */
	const char *st = parts[2];
	ck_assert(has_line(st, "Content-Type: message/delivery-status"));
	ck_assert(has_line(st, "Reporting-MTA: dns; mx.test"));
	ck_assert(has_line_starting(st, "Arrival-Date: "));
	ck_assert(has_line(st, "Final-Recipient: rfc822; u@y.test"));
	ck_assert(has_line(st, "Final-Recipient: rfc822; v@y.test"));
	ck_assert(has_line(st, "Original-Recipient: rfc822; list@x.test"));
	ck_assert(has_line(st, "Status: 5.1.1"));
	ck_assert(has_line(st, "Status: 5.2.2"));
	ck_assert(has_line(st, "Action: failed"));
	ck_assert(!has_line(st, "Action: delayed"));
	ck_assert(has_line_starting(st, "Diagnostic-Code: "));
	ck_assert(has_line_starting(st, "Last-Attempt-Date: "));
	/* the per-message block, then one block per recipient, blank-line apart */
	const char *body = strstr(st, "\n\n");
	ck_assert(body != NULL);
	const char *first = strstr(body + 2, "\n\nFinal-Recipient: rfc822; u@y.test\n");
	ck_assert_msg(first != NULL, "no recipient block for u@y.test:\n%s", st);
	const char *second = strstr(first + 2, "\n\nFinal-Recipient: rfc822; v@y.test\n");
	ck_assert_msg(second != NULL, "no recipient block for v@y.test:\n%s", st);
	/* the first recipient has no Original-Recipient of its own */
	ck_assert(strstr(first + 2, "Original-Recipient:") > second);

	/* 3: the original, whole */
	ck_assert(has_line(parts[3], "Content-Type: message/rfc822"));
	const char *orig = strstr(parts[3], "\n\n");
	ck_assert(orig != NULL);
	ck_assert_str_eq(orig + 2, original);

	free(copy);
	free(text);
}
END_TEST

START_TEST(headers_only_when_large)
{
	char dir[PATH_MAX];
	test_mkdir(dir);
	/* one octet over the limit */
	char *text = report(dir, &failure, two_rcpts, 1, original, strlen(original),
			    strlen(original) - 1);
	const char *b = boundary_of(text);
	char *parts[8];
	int n = split(text, b, parts, 8);
	ck_assert_int_eq(n, 4);
	ck_assert(has_line(parts[3], "Content-Type: text/rfc822-headers"));
	ck_assert_ptr_nonnull(strstr(parts[3], "Subject: hello\n"));
	ck_assert_ptr_null(strstr(parts[3], "Body line"));
	free(text);

	/* exactly at the limit: whole */
	text = report(dir, &failure, two_rcpts, 1, original, strlen(original), strlen(original));
	ck_assert_ptr_nonnull(strstr(text, "Body line two."));
	ck_assert_ptr_nonnull(strstr(text, "Content-Type: message/rfc822"));
	free(text);
}
END_TEST

START_TEST(large_original)
{
	char dir[PATH_MAX];
	size_t body = 300 * 1024;
	char *msg = malloc(body + 100);
	ck_assert(msg != NULL);
	strcpy(msg, "Subject: big\n\n");
	size_t len = strlen(msg);
	for (size_t i = 0; len < body; i++) {
		size_t w = (size_t)snprintf(msg + len, body + 100 - len, "line %zu\n", i);
		len += w;
	}
	test_mkdir(dir);
	char *text = report(dir, &failure, two_rcpts, 1, msg, len, 1 << 20);
	char *copy = strdup(text);
	ck_assert(copy != NULL);
	char *parts[8];
	int n = split(copy, boundary_of(text), parts, 8);
	ck_assert_int_eq(n, 4);
	const char *orig = strstr(parts[3], "\n\n");
	ck_assert(orig != NULL);
	ck_assert_uint_eq(strlen(orig + 2), len);
	ck_assert_mem_eq(orig + 2, msg, len);
	free(copy);
	free(text);

	/* and headers only, the header whole and nothing else */
	text = report(dir, &failure, two_rcpts, 1, msg, len, 1024);
	copy = strdup(text);
	ck_assert(copy != NULL);
	n = split(copy, boundary_of(text), parts, 8);
	ck_assert_int_eq(n, 4);
	ck_assert_ptr_nonnull(strstr(parts[3], "Subject: big"));
	ck_assert_ptr_null(strstr(parts[3], "line 1\n"));
	free(copy);
	free(text);
	free(msg);
}
END_TEST

START_TEST(delay_warning)
{
	char dir[PATH_MAX];
	struct dsn_info info = failure;
	info.delayed = true;
	struct dsn_rcpt r = { .addr = "u@y.test", .status = "4.4.1",
			      .diagnostic = "connection refused", .last_attempt = 1700000100 };

	test_mkdir(dir);
	char *text = report(dir, &info, &r, 1, original, strlen(original), 1 << 20);
	ck_assert(has_line(text, "Action: delayed"));
	ck_assert(!has_line(text, "Action: failed"));
	ck_assert(has_line(text, "Status: 4.4.1"));
	char *subject = strstr(text, "\nSubject: ");
	ck_assert(subject != NULL);
	char *eol = strchr(subject + 1, '\n');
	ck_assert(eol != NULL);
	*eol = '\0';
	ck_assert_msg(strstr(subject, "Delay") != NULL || strstr(subject, "delay") != NULL,
		      "subject %s", subject + 1);
	free(text);
}
END_TEST

START_TEST(diagnostic_cannot_add_lines)
{
	char dir[PATH_MAX];
	struct dsn_rcpt r = { .addr = "u@y.test", .status = "5.0.0",
			      .diagnostic = "bad\nInjected: yes\r\nStatus: 2.0.0\rAction: delivered",
			      .last_attempt = 1 };

	test_mkdir(dir);
	char *text = report(dir, &failure, &r, 1, original, strlen(original), 1 << 20);
	ck_assert(!has_line_starting(text, "Injected:"));
	ck_assert(!has_line(text, "Status: 2.0.0"));
	ck_assert(!has_line_starting(text, "Action: delivered"));
	ck_assert(strchr(text, '\r') == NULL);
	free(text);
}
END_TEST

START_TEST(utf8_recipient)
{
	char dir[PATH_MAX];
	struct dsn_rcpt r = { .addr = "j\xc3\xb6rg@y.test", .status = "5.1.1",
			      .diagnostic = "no such user", .last_attempt = 1 };

	test_mkdir(dir);
	char *text = report(dir, &failure, &r, 1, original, strlen(original), 1 << 20);
	ck_assert(has_line(text, "Content-Type: message/global-delivery-status"));
	ck_assert(has_line(text, "Final-Recipient: utf-8; j\xc3\xb6rg@y.test"));
	free(text);
}
END_TEST

START_TEST(errors_are_reported)
{
	char dir[PATH_MAX], path[PATH_MAX];

	test_mkdir(dir);
	/* the original is shorter than it claims */
	int in = message_fd(dir, original, strlen(original));
	test_path(path, dir, "report");
	int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(out >= 0);
	ck_assert_int_eq(dsn_write(out, &failure, two_rcpts, 2, in, strlen(original) + 100,
				   1 << 20), -1);
	close(out);

	/* nowhere to write */
	out = open("/dev/full", O_WRONLY);
	if (out >= 0) {
		ck_assert_int_eq(dsn_write(out, &failure, two_rcpts, 2, in, strlen(original),
					   1 << 20), -1);
		close(out);
	}
	close(in);
}
END_TEST

static void check_split(const char *line, const char *want_status, const char *want_text)
{
	char status[16];
	const char *text = dsn_split_status(line, "4.0.0", status);
	ck_assert_msg(strcmp(status, want_status) == 0, "'%s': status '%s', want '%s'", line,
		      status, want_status);
	ck_assert_str_eq(text, want_text);
}

START_TEST(split_status)
{
	check_split("5.1.1 no such user", "5.1.1", "no such user");
	check_split("4.4.1 connection refused", "4.4.1", "connection refused");
	check_split("2.0.0", "2.0.0", "");
	check_split("5.123.123 x", "5.123.123", "x");
	check_split("550 5.1.1 no such user", "4.0.0", "550 5.1.1 no such user");
	check_split("no status at all", "4.0.0", "no status at all");
	check_split("", "4.0.0", "");
	check_split("6.1.1 bad class", "4.0.0", "6.1.1 bad class");
	check_split("5.1 short", "4.0.0", "5.1 short");
	check_split("5.1.1x glued", "4.0.0", "5.1.1x glued");
	check_split("5.1234.1 long", "4.0.0", "5.1234.1 long");
	check_split("5..1 empty", "4.0.0", "5..1 empty");
}
END_TEST

Suite *dsn_suite(void)
{
	Suite *s = suite_create("dsn");
	TCase *tc = tcase_create("write");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, failure_report);
	tcase_add_test(tc, headers_only_when_large);
	tcase_add_test(tc, large_original);
	tcase_add_test(tc, delay_warning);
	tcase_add_test(tc, diagnostic_cannot_add_lines);
	tcase_add_test(tc, utf8_recipient);
	tcase_add_test(tc, errors_are_reported);
	tcase_add_test(tc, split_status);
	suite_add_tcase(s, tc);
	return s;
}
