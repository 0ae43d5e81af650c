/* command_fuzz: smtpd/command.c on any command line tern-smtpd can pass it.
 *
 * The session hands the parser one line of at most SMTP_MAIL_LINE_MAX
 * octets, without its CRLF, NUL-terminated.  The line goes through
 * command_parse() and, as tern-smtpd would, mail_parse()/rcpt_parse() on
 * its argument; the argument forms are also tried on the whole line so the
 * fuzzer need not find the verb first.  Accepted paths must satisfy
 * mailbox_check(); refusals must be a well-formed reply. */
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
	if (cmd.verb == VERB_MAIL)
		fuzz_mail(cmd.arg);
	if (cmd.verb == VERB_RCPT)
		fuzz_rcpt(cmd.arg);
	fuzz_mail(line);
	fuzz_rcpt(line);
	return 0;
}
