/* command_fuzz: smtpd/command.c on any command line tern-smtpd can pass it.
 *
 * The session hands the parser one line of at most SMTP_MAIL_LINE_MAX
 * octets, without its CRLF, NUL-terminated.  The line goes through
 * command_parse() and, as tern-smtpd would, mail_parse()/rcpt_parse() on
 * its argument; the argument forms are also tried on the whole line so the
 * fuzzer need not find the verb first.  Accepted paths must satisfy
 * mailbox_check(); refusals must be a well-formed reply.  helo_trace() of
 * the HELO/EHLO argument (and of the line) must be printable ASCII that
 * cannot forge a trace: the name itself with no space, '(' or ')', or a
 * comment that unescapes to the name (or, ending "...", to a prefix). */
#include <ctype.h>
#include <string.h>

#include "command.h"
#include "fuzz.h"
#include "mailbox_check.h"

/* "NXY X.Y.Z text": a permanent or temporary reply with its enhanced code. */
static void check_reply(const char *reply)
{
	FUZZ_CHECK(reply != NULL);
	FUZZ_CHECK(reply[0] == '4' || reply[0] == '5');
	FUZZ_CHECK(isdigit((unsigned char)reply[1]) && isdigit((unsigned char)reply[2]));
	FUZZ_CHECK(reply[3] == ' ' && reply[4] == reply[0] && reply[5] == '.');
	FUZZ_CHECK(strlen(reply) < SMTP_LINE_MAX - 2);
}

static void fuzz_mail(const char *arg)
{
	struct mailbox m;
	struct mail_params p;
	const char *reply = NULL;

	if (mail_parse(arg, &m, &p, &reply) < 0) {
		check_reply(reply);
		return;
	}
	FUZZ_CHECK(reply == NULL);
	mailbox_check(&m, ADDR_ALLOW_NULL);
	FUZZ_CHECK(!m.utf8 || p.smtputf8);
	FUZZ_CHECK(p.body == BODY_NONE || p.body == BODY_7BIT || p.body == BODY_8BITMIME);
	FUZZ_CHECK(p.size_given || p.size == 0);
}

static void fuzz_rcpt(const char *arg)
{
	struct mailbox m;
	const char *reply = NULL;

	if (rcpt_parse(arg, &m, &reply) < 0) {
		check_reply(reply);
		return;
	}
	FUZZ_CHECK(reply == NULL);
	mailbox_check(&m, ADDR_ALLOW_POSTMASTER);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Unescapes the comment text at S up to the closing ')' into OUT; the
 * length, or -1 if S holds anything helo_trace may not write. */
static long unescape_comment(const char *s, char *out, size_t outsize)
{
	size_t n = 0;

	for (; *s != ')'; s++) {
		int c = (unsigned char)*s;
		if (c == '\\') {
			s++;
			if (*s == '(' || *s == ')' || *s == '\\') {
				c = *s;
			} else if (*s == 'x' && hex_value(s[1]) >= 0 && hex_value(s[2]) >= 0) {
				c = hex_value(s[1]) * 16 + hex_value(s[2]);
				if (c > ' ' && c < 127)
					return -1;	/* printable: never escaped */
				s += 2;
			} else {
				return -1;
			}
		} else if (c <= ' ' || c >= 127 || c == '(') {
			return -1;
		}
		if (n + 1 >= outsize)
			return -1;
		out[n++] = (char)c;
	}
	if (s[1] != '\0')
		return -1;	/* the ')' ends it */
	return (long)n;
}

static void fuzz_helo(const char *name)
{
	static const char open[] = "unknown (helo=";
	char trace[HELO_TRACE_MAX + 1], plain[SMTP_MAIL_LINE_MAX + 1];

	memset(trace, 'Z', sizeof trace);
	helo_trace(name, trace);
	FUZZ_CHECK(trace[HELO_TRACE_MAX] == 'Z');	/* nothing past its room */
	size_t n = strnlen(trace, HELO_TRACE_MAX);
	FUZZ_CHECK(n < HELO_TRACE_MAX && n > 0);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(trace[i] >= ' ' && trace[i] < 127);
	if (strncmp(trace, open, sizeof open - 1) != 0) {
		FUZZ_CHECK(strcmp(trace, name) == 0);
		FUZZ_CHECK(strpbrk(trace, " ()\\") == NULL);
		return;
	}
	long got = unescape_comment(trace + sizeof open - 1, plain, sizeof plain);
	FUZZ_CHECK(got >= 0);
	size_t len = (size_t)got, want = strlen(name);
	if (len == want && memcmp(plain, name, len) == 0)
		return;
	FUZZ_CHECK(len >= 3 && memcmp(plain + len - 3, "...", 3) == 0);	/* cut */
	FUZZ_CHECK(len - 3 < want && memcmp(plain, name, len - 3) == 0);
}

/* The verb is the same in any case, and so is where its argument starts. */
static void check_case_blind(const char *line, const struct smtp_command *cmd)
{
	char upper[SMTP_MAIL_LINE_MAX + 1];
	struct smtp_command again;
	size_t n = strlen(line);

	for (size_t i = 0; i <= n; i++)
		upper[i] = (char)toupper((unsigned char)line[i]);
	command_parse(upper, &again);
	FUZZ_CHECK(again.verb == cmd->verb);
	FUZZ_CHECK(again.arg - upper == cmd->arg - line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[SMTP_MAIL_LINE_MAX + 1];
	struct smtp_command cmd;

	if (size > SMTP_MAIL_LINE_MAX)
		return 0;	/* the session refuses a longer line unparsed */
	memcpy(line, data, size);
	line[size] = '\0';

	command_parse(line, &cmd);
	size_t len = strlen(line);
	FUZZ_CHECK(cmd.arg >= line && cmd.arg <= line + len);
	FUZZ_CHECK(*cmd.arg != ' ');
	check_case_blind(line, &cmd);
	if (cmd.verb == VERB_HELO || cmd.verb == VERB_EHLO)
		fuzz_helo(cmd.arg);
	if (cmd.verb == VERB_MAIL)
		fuzz_mail(cmd.arg);
	if (cmd.verb == VERB_RCPT)
		fuzz_rcpt(cmd.arg);
	fuzz_mail(line);
	fuzz_rcpt(line);
	fuzz_helo(line);
	return 0;
}
