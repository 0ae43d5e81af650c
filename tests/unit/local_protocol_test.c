/* local_protocol and packet: requests and reports round-trip, anything
 * else is refused; a packet carries at most one fd, and a cut one is
 * refused. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "local_protocol.h"
#include "packet.h"
#include "suites.h"

static const struct local_request sample = {
	.id = 42, .length = 1234, .maildir = "/home/bob/Maildir",
	.recipient = "bob+tag@example.test", .sender = "",
};

START_TEST(request_round_trip)
{
	char buf[LOCAL_REQUEST_MAX];
	struct local_request got;

	ssize_t n = local_request_encode(buf, sizeof buf, &sample);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(local_request_parse(buf, (size_t)n, &got), 0);
	ck_assert_uint_eq(got.id, 42);
	ck_assert_uint_eq(got.length, 1234);
	ck_assert_str_eq(got.maildir, "/home/bob/Maildir");
	ck_assert_str_eq(got.recipient, "bob+tag@example.test");
	ck_assert_str_eq(got.sender, "");
}
END_TEST

START_TEST(request_encode_does_not_cut)
{
	char buf[20];

	ck_assert_int_eq(local_request_encode(buf, sizeof buf, &sample), -1);
}
END_TEST

static int parse_text(const char *text, size_t len)
{
	char buf[256];
	struct local_request got;

	memcpy(buf, text, len);
	return local_request_parse(buf, len, &got);
}

START_TEST(request_parse_refuses_anything_else)
{
	/* (each string literal's own NUL ends the last field) */
#define BAD(literal) ck_assert_int_eq(parse_text(literal, sizeof literal), -1)
	BAD("deliver\0" "1\0" "2\0" "/m\0" "r");			/* five fields */
	BAD("deliver\0" "1\0" "2\0" "/m\0" "r\0" "s\0" "x");		/* seven */
	BAD("dlvr\0" "1\0" "2\0" "/m\0" "r\0" "s");			/* verb */
	BAD("deliver\0" "-1\0" "2\0" "/m\0" "r\0" "s");		/* sign */
	BAD("deliver\0" "1\0" " 2\0" "/m\0" "r\0" "s");		/* space */
	BAD("deliver\0" "1\0" "2x\0" "/m\0" "r\0" "s");		/* junk */
	BAD("deliver\0" "1\0" "99999999999999999999999\0" "/m\0" "r\0" "s");
#undef BAD
	/* no NUL at the end */
	ck_assert_int_eq(parse_text("deliver\0" "1\0" "2\0" "/m\0" "r\0" "s", 18), -1);
	ck_assert_int_eq(parse_text("", 0), -1);
}
END_TEST

START_TEST(report_round_trip_and_bye)
{
	char buf[LOCAL_REPORT_MAX + 1];
	struct local_report got;

	ssize_t n = local_report_encode(buf, sizeof buf, 7, LOCAL_EXIT_TEMPORARY,
					"4.2.2 writing the message: No space\nleft");
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(local_report_parse(buf, (size_t)n, &got), 1);
	ck_assert_uint_eq(got.id, 7);
	ck_assert_int_eq(got.code, LOCAL_EXIT_TEMPORARY);
	ck_assert_str_eq(got.text, "4.2.2 writing the message: No space left");
	strcpy(buf, LOCAL_BYE);
	ck_assert_int_eq(local_report_parse(buf, strlen(buf), &got), 0);
}
END_TEST

static int parse_report(const char *text, size_t len)
{
	char buf[64];
	struct local_report got;

	memcpy(buf, text, len);
	return local_report_parse(buf, len, &got);
}

START_TEST(report_parse_refuses_anything_else)
{
	ck_assert_int_eq(parse_report("7 1 2.0.0 ok", 12), -1);	/* no such code */
	ck_assert_int_eq(parse_report("7 0", 3), -1);		/* no text */
	ck_assert_int_eq(parse_report("x 0 2.0.0 ok", 12), -1);
	ck_assert_int_eq(parse_report("7 0 2.0\0.0", 10), -1);	/* a NUL */
	ck_assert_int_eq(parse_report("byebye", 6), -1);
}
END_TEST

static void pair(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
}

START_TEST(packet_carries_one_fd_close_on_exec)
{
	int sv[2], fd;
	char buf[16];

	pair(sv);
	ck_assert_int_eq(packet_send(sv[0], "hello", 5, 0), 0);
	ck_assert_int_eq(packet_receive(sv[1], buf, sizeof buf, &fd, 0), 5);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(fd);
	ck_assert_int_eq(packet_send(sv[0], "bare", 4, -1), 0);
	ck_assert_int_eq(packet_receive(sv[1], buf, sizeof buf, &fd, 0), 4);
	ck_assert_int_eq(fd, -1);
	close(sv[0]);
	ck_assert_int_eq(packet_receive(sv[1], buf, sizeof buf, &fd, 0), 0);
	close(sv[1]);
}
END_TEST

START_TEST(packet_refuses_two_fds_and_a_cut_packet)
{
	int sv[2], fd, fds[2] = { 0, 1 };
	char buf[4];
	union {
		struct cmsghdr header;
		char room[CMSG_SPACE(sizeof fds)];
	} control;
	struct iovec iov = { .iov_base = "x", .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = control.room, .msg_controllen = sizeof control.room };

	pair(sv);
	memset(&control, 0, sizeof control);
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof fds);
	memcpy(CMSG_DATA(c), fds, sizeof fds);
	ck_assert_int_eq(sendmsg(sv[0], &msg, 0), 1);
	ck_assert_int_eq(packet_receive(sv[1], buf, sizeof buf, &fd, 0), -1);
	ck_assert_int_eq(errno, EPROTO);
	ck_assert_int_eq(fd, -1);
	ck_assert_int_eq(packet_send(sv[0], "too long", 8, -1), 0);
	ck_assert_int_eq(packet_receive(sv[1], buf, sizeof buf, &fd, 0), -1);
	ck_assert_int_eq(errno, EPROTO);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

Suite *local_protocol_suite(void)
{
	Suite *s = suite_create("local_protocol");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, request_round_trip);
	tcase_add_test(tc, request_encode_does_not_cut);
	tcase_add_test(tc, request_parse_refuses_anything_else);
	tcase_add_test(tc, report_round_trip_and_bye);
	tcase_add_test(tc, report_parse_refuses_anything_else);
	tcase_add_test(tc, packet_carries_one_fd_close_on_exec);
	tcase_add_test(tc, packet_refuses_two_fds_and_a_cut_packet);
	suite_add_tcase(s, tc);
	return s;
}
