/* command: SMTP command lines (smtpd/command.h).  smtpd/command.c is not in
 * libtern.a, so it is compiled in here, once. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "../../smtpd/command.h"
#include "../../smtpd/command.c"
#include "suites.h"

static void check_verb(const char *line, enum smtp_verb verb, const char *arg)
{
	struct smtp_command cmd;

	command_parse(line, &cmd);
	ck_assert_msg(cmd.verb == verb, "%s: verb %d, want %d", line, cmd.verb, verb);
	ck_assert_str_eq(cmd.arg, arg);
}

START_TEST(verbs_case_insensitive)
{
	check_verb("QUIT", VERB_QUIT, "");
	check_verb("quit", VERB_QUIT, "");
	check_verb("QuIt", VERB_QUIT, "");
	check_verb("HELO client.test", VERB_HELO, "client.test");
	check_verb("ehlo client.test", VERB_EHLO, "client.test");
	check_verb("MAIL FROM:<a@b.test>", VERB_MAIL, "FROM:<a@b.test>");
	check_verb("mail from:<a@b.test>", VERB_MAIL, "from:<a@b.test>");
	check_verb("RCPT TO:<a@b.test>", VERB_RCPT, "TO:<a@b.test>");
	check_verb("DATA", VERB_DATA, "");
	check_verb("RSET", VERB_RSET, "");
	check_verb("NOOP", VERB_NOOP, "");
	check_verb("noop anything", VERB_NOOP, "anything");
	check_verb("VRFY someone", VERB_VRFY, "someone");
	check_verb("EXPN list", VERB_EXPN, "list");
	check_verb("HELP", VERB_HELP, "");
	check_verb("StartTLS", VERB_STARTTLS, "");
	check_verb("AUTH PLAIN", VERB_AUTH, "PLAIN");
	check_verb("BDAT 100 LAST", VERB_BDAT, "100 LAST");
	check_verb("GET / HTTP/1.0", VERB_HTTP, "/ HTTP/1.0");
	check_verb("POST /x HTTP/1.1", VERB_HTTP, "/x HTTP/1.1");
}
END_TEST

START_TEST(argument_after_spaces)
{
	check_verb("EHLO    client.test", VERB_EHLO, "client.test");
	check_verb("MAIL  FROM:<a@b.test>  SIZE=1", VERB_MAIL, "FROM:<a@b.test>  SIZE=1");
	check_verb("QUIT   ", VERB_QUIT, "");
	check_verb("HELO x y z", VERB_HELO, "x y z");
}
END_TEST

START_TEST(unknown_verbs)
{
	check_verb("FOO bar", VERB_UNKNOWN, "bar");
	check_verb("", VERB_UNKNOWN, "");
	check_verb("   ", VERB_UNKNOWN, "");
	check_verb("MAILFROM:<a@b.test>", VERB_UNKNOWN, "");
	check_verb("QUITX", VERB_UNKNOWN, "");
	check_verb("QUI", VERB_UNKNOWN, "");
	check_verb("DATA2", VERB_UNKNOWN, "");
	check_verb("XCLIENT ADDR=1.2.3.4", VERB_UNKNOWN, "ADDR=1.2.3.4");
}
END_TEST

/* Runs mail_parse on ARG expecting a refusal whose reply starts with WANT. */
static void check_mail_refused(const char *arg, const char *want)
{
	struct mailbox m;
	struct mail_params p;
	const char *reply = NULL;

	ck_assert_msg(mail_parse(arg, &m, &p, &reply) != 0, "%s: accepted", arg);
	ck_assert_msg(reply != NULL, "%s: no reply", arg);
	ck_assert_msg(strncmp(reply, want, strlen(want)) == 0, "%s: reply '%s', want '%s...'",
		      arg, reply, want);
}

static void check_mail_ok(const char *arg, struct mailbox *m, struct mail_params *p)
{
	const char *reply = NULL;
	int r = mail_parse(arg, m, p, &reply);
	ck_assert_msg(r == 0, "%s: refused with '%s'", arg, reply ? reply : "(null)");
}

START_TEST(mail_from_forms)
{
	struct mailbox m;
	struct mail_params p;
	char out[ADDR_BUFFER];

	check_mail_ok("FROM:<a@b.test>", &m, &p);
	addr_format(&m, out, sizeof out);
	ck_assert_str_eq(out, "a@b.test");
	ck_assert(!p.size_given);
	ck_assert_int_eq(p.body, BODY_NONE);
	ck_assert(!p.smtputf8);
	check_mail_ok("FROM: <a@b.test>", &m, &p);
	ck_assert_str_eq(m.local, "a");
	ck_assert_str_eq(m.domain, "b.test");
	check_mail_ok("FROM:   <a@b.test>", &m, &p);
	check_mail_ok("from:<a@B.Test>", &m, &p);
	ck_assert_str_eq(m.domain, "b.test");
	check_mail_ok("From:<>", &m, &p);
	ck_assert_str_eq(m.local, "");
	ck_assert_str_eq(m.domain, "");
	check_mail_ok("FROM:<@relay.test:a@b.test>", &m, &p);
	ck_assert_str_eq(m.domain, "b.test");
	check_mail_ok("FROM:<a@b.test>  ", &m, &p);
}
END_TEST

START_TEST(mail_parameters)
{
	struct mailbox m;
	struct mail_params p;

	check_mail_ok("FROM:<a@b.test> SIZE=12345", &m, &p);
	ck_assert(p.size_given);
	ck_assert_uint_eq(p.size, 12345);
	check_mail_ok("FROM:<a@b.test> SIZE=0", &m, &p);
	ck_assert(p.size_given);
	ck_assert_uint_eq(p.size, 0);
	check_mail_ok("FROM:<a@b.test> size=18446744073709551615", &m, &p);
	ck_assert_uint_eq(p.size, UINT64_MAX);
	check_mail_ok("FROM:<a@b.test> BODY=8BITMIME", &m, &p);
	ck_assert_int_eq(p.body, BODY_8BITMIME);
	check_mail_ok("FROM:<a@b.test> body=8bitmime", &m, &p);
	ck_assert_int_eq(p.body, BODY_8BITMIME);
	check_mail_ok("FROM:<a@b.test> BODY=7BIT", &m, &p);
	ck_assert_int_eq(p.body, BODY_7BIT);
	ck_assert(!p.size_given);
	check_mail_ok("FROM:<a@b.test> SMTPUTF8", &m, &p);
	ck_assert(p.smtputf8);
	check_mail_ok("FROM:<> SIZE=100 BODY=8BITMIME SMTPUTF8", &m, &p);
	ck_assert(p.size_given);
	ck_assert_uint_eq(p.size, 100);
	ck_assert_int_eq(p.body, BODY_8BITMIME);
	ck_assert(p.smtputf8);
	check_mail_ok("FROM:<a@b.test>  smtputf8   size=7  ", &m, &p);
	ck_assert(p.smtputf8);
	ck_assert_uint_eq(p.size, 7);
	/* the parameters of an earlier command do not linger */
	check_mail_ok("FROM:<a@b.test>", &m, &p);
	ck_assert(!p.size_given);
	ck_assert(!p.smtputf8);
	ck_assert_int_eq(p.body, BODY_NONE);
}
END_TEST

START_TEST(mail_bad_parameters)
{
	check_mail_refused("FROM:<a@b.test> FOO=bar", "555");
	check_mail_refused("FROM:<a@b.test> FOO", "555");
	check_mail_refused("FROM:<a@b.test> RET=HDRS", "555");
	check_mail_refused("FROM:<a@b.test> SMTPUTF8=yes", "555");
	check_mail_refused("FROM:<a@b.test> SIZE", "555");
	check_mail_refused("FROM:<a@b.test> SIZE=abc", "501");
	check_mail_refused("FROM:<a@b.test> SIZE=", "501");
	check_mail_refused("FROM:<a@b.test> SIZE=-1", "501");
	check_mail_refused("FROM:<a@b.test> SIZE=+1", "501");
	check_mail_refused("FROM:<a@b.test> SIZE=12x", "501");
	check_mail_refused("FROM:<a@b.test> SIZE=18446744073709551616", "501");
	check_mail_refused("FROM:<a@b.test> SIZE=1 SIZE=2", "501");
	check_mail_refused("FROM:<a@b.test> BODY=BINARYMIME", "501");
	check_mail_refused("FROM:<a@b.test> BODY=", "501");
	check_mail_refused("FROM:<a@b.test> BODY=7BIT BODY=8BITMIME", "501");
}
END_TEST

START_TEST(mail_auth_parameter)
{
	struct mailbox m;
	struct mail_params p;

	check_mail_ok("FROM:<a@b.test>", &m, &p);
	ck_assert(!p.auth_given);
	check_mail_ok("FROM:<a@b.test> AUTH=<>", &m, &p);
	ck_assert(p.auth_given);
	check_mail_ok("FROM:<a@b.test> auth=alice+40example.test SIZE=10", &m, &p);
	ck_assert(p.auth_given && p.size == 10);
	check_mail_refused("FROM:<a@b.test> AUTH=", "501");
	check_mail_refused("FROM:<a@b.test> AUTH", "555");
	check_mail_refused("FROM:<a@b.test> AUTH=a=b", "501");
	check_mail_refused("FROM:<a@b.test> AUTH=a+4", "501");
	check_mail_refused("FROM:<a@b.test> AUTH=a+4g", "501");
	check_mail_refused("FROM:<a@b.test> AUTH=a+4a", "501");	/* hex is upper case */
	check_mail_refused("FROM:<a@b.test> AUTH=\x01", "501");
	check_mail_refused("FROM:<a@b.test> AUTH=<> AUTH=<>", "501");
}
END_TEST

START_TEST(comment_trace_escapes)
{
	char out[HELO_TRACE_MAX];

	comment_trace("alice", out);
	ck_assert_str_eq(out, "alice");
	comment_trace("a(b)\\c d\n", out);
	ck_assert_str_eq(out, "a\\(b\\)\\\\c\\x20d\\x0A");
}
END_TEST

START_TEST(mail_bad_syntax)
{
	check_mail_refused("", "501");
	check_mail_refused("FROM", "501");
	check_mail_refused("FROM<a@b.test>", "501");
	check_mail_refused("FROM :<a@b.test>", "501");
	check_mail_refused("FROM:a@b.test", "501");
	check_mail_refused("FROM:<a@b.test", "501");
	check_mail_refused("FROM:<a@b.test>SIZE=1", "501");
	check_mail_refused("FROM:<a@@b.test>", "501");
	check_mail_refused("FROM:<u@other@b.test>", "501");
	check_mail_refused("TO:<a@b.test>", "501");
	check_mail_refused("FROM:<Postmaster>", "501");
	check_mail_refused("FROM:<a\r@b.test>", "501");

	char arg[300], local[100];
	memset(local, 'x', 65);
	local[65] = '\0';
	snprintf(arg, sizeof arg, "FROM:<%s@b.test>", local);
	check_mail_refused(arg, "501");
}
END_TEST

START_TEST(mail_non_ascii_needs_smtputf8)
{
	struct mailbox m;
	struct mail_params p;

	check_mail_refused("FROM:<j\xc3\xb6rg@b.test>", "553 5.6.7");
	check_mail_refused("FROM:<joe@b\xc3\xbc" "cher.test> SIZE=10", "553 5.6.7");
	check_mail_refused("FROM:<joe@b\xc3\xbc" "cher.test> BODY=8BITMIME", "553 5.6.7");
	check_mail_ok("FROM:<j\xc3\xb6rg@b.test> SMTPUTF8", &m, &p);
	ck_assert(m.utf8);
	ck_assert(p.smtputf8);
	check_mail_ok("FROM:<j\xc3\xb6rg@b.test> BODY=8BITMIME SMTPUTF8", &m, &p);
	/* invalid UTF-8 is a syntax error even with SMTPUTF8 */
	check_mail_refused("FROM:<j\xc3@b.test> SMTPUTF8", "501");
}
END_TEST

static void check_rcpt_refused(const char *arg, const char *want)
{
	struct mailbox m;
	const char *reply = NULL;

	ck_assert_msg(rcpt_parse(arg, &m, &reply) != 0, "%s: accepted", arg);
	ck_assert_msg(reply != NULL, "%s: no reply", arg);
	ck_assert_msg(strncmp(reply, want, strlen(want)) == 0, "%s: reply '%s', want '%s...'",
		      arg, reply, want);
}

static void check_rcpt_ok(const char *arg, const char *local, const char *domain)
{
	struct mailbox m;
	const char *reply = NULL;
	int r = rcpt_parse(arg, &m, &reply);
	ck_assert_msg(r == 0, "%s: refused with '%s'", arg, reply ? reply : "(null)");
	ck_assert_str_eq(m.local, local);
	ck_assert_str_eq(m.domain, domain);
}

START_TEST(rcpt_forms)
{
	check_rcpt_ok("TO:<u@x.test>", "u", "x.test");
	check_rcpt_ok("to:<u@X.TEST>", "u", "x.test");
	check_rcpt_ok("TO: <u@x.test>", "u", "x.test");
	check_rcpt_ok("TO:<u@x.test>   ", "u", "x.test");
	check_rcpt_ok("TO:<@a.test,@b.test:u@c.test>", "u", "c.test");
	check_rcpt_ok("TO:<\"john doe\"@x.test>", "\"john doe\"", "x.test");
}
END_TEST

START_TEST(rcpt_bare_postmaster)
{
	check_rcpt_ok("TO:<postmaster>", "postmaster", "");
	check_rcpt_ok("TO:<Postmaster>", "postmaster", "");
	check_rcpt_ok("To:<POSTMASTER>", "postmaster", "");
	check_rcpt_ok("TO:<Postmaster@x.test>", "Postmaster", "x.test");
}
END_TEST

START_TEST(rcpt_refusals)
{
	check_rcpt_refused("TO:<u@x.test> NOTIFY=NEVER", "555");
	check_rcpt_refused("TO:<u@x.test> ORCPT=rfc822;u@x.test", "555");
	check_rcpt_refused("TO:<postmaster> FOO", "555");
	check_rcpt_refused("TO:<>", "501");
	check_rcpt_refused("TO:u@x.test", "501");
	check_rcpt_refused("TO<u@x.test>", "501");
	check_rcpt_refused("FROM:<u@x.test>", "501");
	check_rcpt_refused("", "501");
	check_rcpt_refused("TO:<u@x.test>X", "5");
	check_rcpt_refused("TO:<u%x.test@y.test@z.test>", "501");
}
END_TEST

static void check_trace(const char *name, const char *want)
{
	char out[HELO_TRACE_MAX];

	memset(out, 'Z', sizeof out);
	helo_trace(name, out);
	ck_assert_str_eq(out, want);
}

START_TEST(helo_trace_keeps_domains_and_literals)
{
	check_trace("client.test", "client.test");
	check_trace("Mail-1.Example.TEST", "Mail-1.Example.TEST");
	check_trace("DESKTOP_4F2K.corp_net.test", "DESKTOP_4F2K.corp_net.test");
	check_trace("localhost", "localhost");
	check_trace("[192.0.2.1]", "[192.0.2.1]");
	check_trace("[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]");
	check_trace("[ipv6:::1]", "[ipv6:::1]");

	char longest[HELO_NAME_MAX + 1];
	for (size_t i = 0; i < HELO_NAME_MAX; i++)
		longest[i] = i % 64 == 63 ? '.' : 'a';
	longest[HELO_NAME_MAX] = '\0';
	check_trace(longest, longest);
}
END_TEST

START_TEST(helo_trace_escapes_the_rest)
{
	check_trace("spoof.test([192.0.2.1])", "unknown (helo=spoof.test\\([192.0.2.1]\\))");
	check_trace("h\xe9\xff", "unknown (helo=h\\xE9\\xFF)");
	check_trace("a\\b", "unknown (helo=a\\\\b)");
	check_trace("a\x7f\x01", "unknown (helo=a\\x7F\\x01)");
	check_trace("[192.0.2.1", "unknown (helo=[192.0.2.1)");
	check_trace("[192.0.2.256]", "unknown (helo=[192.0.2.256])");
	check_trace("[IPv6:1.2.3.4]", "unknown (helo=[IPv6:1.2.3.4])");
	check_trace("[IPv4:1.2.3.4]", "unknown (helo=[IPv4:1.2.3.4])");
	check_trace("a..b", "unknown (helo=a..b)");
	check_trace(".a", "unknown (helo=.a)");
	check_trace("a.", "unknown (helo=a.)");
	check_trace("-a.test", "unknown (helo=-a.test)");
	check_trace("a-.test", "unknown (helo=a-.test)");
	check_trace("x@y.test", "unknown (helo=x@y.test)");
	check_trace("a;b", "unknown (helo=a;b)");

	char label[80];
	memset(label, 'a', 64);
	label[64] = '\0';
	check_trace(label, "unknown (helo=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa)");

	/* over HELO_NAME_MAX octets is no domain; the comment is cut short */
	char longer[HELO_NAME_MAX + 2];
	memset(longer, 'a', sizeof longer - 1);
	longer[sizeof longer - 1] = '\0';
	char want[HELO_TRACE_MAX];
	snprintf(want, sizeof want, "unknown (helo=%.*s...)", HELO_COMMENT_MAX, longer);
	check_trace(longer, want);

	/* escapes count towards the bound and are never split */
	char wide[HELO_COMMENT_MAX];
	memset(wide, '\xff', sizeof wide - 1);
	wide[sizeof wide - 1] = '\0';
	char out[HELO_TRACE_MAX];
	helo_trace(wide, out);
	ck_assert_uint_le(strlen(out), strlen("unknown (helo=") + HELO_COMMENT_MAX + 4);
	ck_assert(strstr(out, "\\xFF...)") != NULL);
	for (const char *p = out; *p; p++)
		ck_assert(*p >= ' ' && *p < 127);
}
END_TEST

Suite *command_suite(void)
{
	Suite *s = suite_create("command");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, verbs_case_insensitive);
	tcase_add_test(tc, argument_after_spaces);
	tcase_add_test(tc, unknown_verbs);
	tcase_add_test(tc, mail_from_forms);
	tcase_add_test(tc, mail_parameters);
	tcase_add_test(tc, mail_bad_parameters);
	tcase_add_test(tc, mail_bad_syntax);
	tcase_add_test(tc, mail_auth_parameter);
	tcase_add_test(tc, comment_trace_escapes);
	tcase_add_test(tc, mail_non_ascii_needs_smtputf8);
	tcase_add_test(tc, rcpt_forms);
	tcase_add_test(tc, rcpt_bare_postmaster);
	tcase_add_test(tc, rcpt_refusals);
	tcase_add_test(tc, helo_trace_keeps_domains_and_literals);
	tcase_add_test(tc, helo_trace_escapes_the_rest);
	suite_add_tcase(s, tc);
	return s;
}
