/* command: parsing one SMTP command line (RFC 5321 4.1, 6531, 1870, 6152).
 *
 * Promises: command_parse() names the verb case-insensitively and points at
 * its argument; mail_parse()/rcpt_parse() accept exactly the paths and
 * parameters tern advertises and otherwise return the reply to send;
 * helo_trace() makes the client's HELO name safe for a Received header. */
#ifndef TERN_COMMAND_H
#define TERN_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define SMTP_LINE_MAX 512		/* RFC 5321 4.5.3.1.4, with CRLF */
/* room for SIZE, BODY, SMTPUTF8, and AUTH= (RFC 4954 5: 500 more) */
#define SMTP_MAIL_LINE_MAX (512 + 64 + 500)
#define HELO_NAME_MAX 255		/* a longer name is no domain */
#define HELO_COMMENT_MAX 128		/* octets of a name shown escaped */
#define HELO_TRACE_MAX (HELO_NAME_MAX + 1)

enum smtp_verb {
	VERB_UNKNOWN, VERB_HELO, VERB_EHLO, VERB_MAIL, VERB_RCPT, VERB_DATA,
	VERB_RSET, VERB_NOOP, VERB_QUIT, VERB_VRFY, VERB_HELP, VERB_EXPN,
	VERB_STARTTLS, VERB_AUTH, VERB_BDAT, VERB_HTTP,
};

struct smtp_command {
	enum smtp_verb verb;
	const char *arg;	/* after the verb and its spaces; "" if none */
};

enum body_type { BODY_NONE, BODY_7BIT, BODY_8BITMIME };

struct mail_params {
	bool size_given;
	uint64_t size;
	enum body_type body;
	bool smtputf8;
	bool auth_given;	/* AUTH=<> or AUTH=xtext (RFC 4954 5) */
};

/* LINE is one command without its CRLF, NUL-terminated. */
void command_parse(const char *line, struct smtp_command *cmd);

/* Parse "FROM:<path> params" / "TO:<path> params".  0 on success, else
 * REPLY points at the full reply line to send. */
int mail_parse(const char *arg, struct mailbox *m, struct mail_params *p,
	       const char **reply);
int rcpt_parse(const char *arg, struct mailbox *m, const char **reply);

/* The HELO/EHLO name NAME as the Received header's "from" names it: as
 * given if it is a domain (letters, digits, '-' and '_' in dot-separated
 * labels) or an address literal ([IPv4] or [IPv6:...]); anything else as
 * "unknown (helo=ESCAPED)", where '(' ')' '\' are quoted pairs, every octet
 * outside printable ASCII is \xHH, and more than HELO_COMMENT_MAX octets
 * of that end in "...".  OUT has HELO_TRACE_MAX octets. */
void helo_trace(const char *name, char out[HELO_TRACE_MAX]);

/* NAME as text inside a header comment, escaped as helo_trace escapes it
 * (quoted pairs, \xHH, "..." past HELO_COMMENT_MAX octets).  OUT has
 * HELO_TRACE_MAX octets. */
void comment_trace(const char *name, char out[HELO_TRACE_MAX]);

#endif
