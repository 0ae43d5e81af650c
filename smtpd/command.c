#include "command.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	enum smtp_verb verb;
} verbs[] = {
	{ "HELO", VERB_HELO }, { "EHLO", VERB_EHLO }, { "MAIL", VERB_MAIL },
	{ "RCPT", VERB_RCPT }, { "DATA", VERB_DATA }, { "RSET", VERB_RSET },
	{ "NOOP", VERB_NOOP }, { "QUIT", VERB_QUIT }, { "VRFY", VERB_VRFY },
	{ "HELP", VERB_HELP }, { "EXPN", VERB_EXPN }, { "STARTTLS", VERB_STARTTLS },
	{ "AUTH", VERB_AUTH }, { "BDAT", VERB_BDAT },
	{ "GET", VERB_HTTP }, { "POST", VERB_HTTP }, { "HEAD", VERB_HTTP },
	{ "PUT", VERB_HTTP }, { "CONNECT", VERB_HTTP },
};

void command_parse(const char *line, struct smtp_command *cmd)
{
	size_t n = strcspn(line, " ");

	cmd->verb = VERB_UNKNOWN;
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
		if (strlen(verbs[i].name) == n && strncasecmp(line, verbs[i].name, n) == 0) {
			cmd->verb = verbs[i].verb;
			break;
		}
	}
	const char *arg = line + n;
	while (*arg == ' ')
		arg++;
	cmd->arg = arg;
}

static const char *skip_spaces(const char *s)
{
	while (*s == ' ')
		s++;
	return s;
}

/* "FROM:" or "TO:", with the spaces some clients put after the colon. */
static const char *after_keyword(const char *arg, const char *keyword)
{
	size_t n = strlen(keyword);

	if (strncasecmp(arg, keyword, n) != 0)
		return NULL;
	return skip_spaces(arg + n);
}

static int parse_size(const char *value, uint64_t *out)
{
	char *end;

	if (!isdigit((unsigned char)*value) || strlen(value) > 20)
		return -1;
	errno = 0;
	unsigned long long v = strtoull(value, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* RFC 3461 4: xtext, "+" followed by two upper-case hex digits for
 * what is not a printable ASCII character other than "+" and "=". */
static bool xtext_valid(const char *v)
{
	if (*v == '\0')
		return false;
	for (; *v != '\0'; v++) {
		if (*v == '+') {
			if (!isxdigit((unsigned char)v[1]) || !isxdigit((unsigned char)v[2]) ||
			    islower((unsigned char)v[1]) || islower((unsigned char)v[2]))
				return false;
			v += 2;
		} else if (*v < '!' || *v > '~' || *v == '=') {
			return false;
		}
	}
	return true;
}

static int mail_param(char *param, struct mail_params *p, const char **reply)
{
	char *eq = strchr(param, '=');
	const char *value = "";

	if (eq != NULL) {
		*eq = '\0';
		value = eq + 1;
	}
	if (strcasecmp(param, "SIZE") == 0 && eq != NULL) {
		if (p->size_given || parse_size(value, &p->size) < 0) {
			*reply = "501 5.5.4 Bad SIZE parameter";
			return -1;
		}
		p->size_given = true;
	} else if (strcasecmp(param, "BODY") == 0 && eq != NULL) {
		if (p->body != BODY_NONE) {
			*reply = "501 5.5.4 BODY given twice";
			return -1;
		}
		if (strcasecmp(value, "7BIT") == 0)
			p->body = BODY_7BIT;
		else if (strcasecmp(value, "8BITMIME") == 0)
			p->body = BODY_8BITMIME;
		else {
			*reply = "501 5.5.4 BODY must be 7BIT or 8BITMIME";
			return -1;
		}
	} else if (strcasecmp(param, "SMTPUTF8") == 0 && eq == NULL) {
		p->smtputf8 = true;
	} else if (strcasecmp(param, "AUTH") == 0 && eq != NULL) {
		if (p->auth_given || (strcmp(value, "<>") != 0 && !xtext_valid(value))) {
			*reply = "501 5.5.4 Bad AUTH parameter";
			return -1;
		}
		p->auth_given = true;
	} else {
		*reply = "555 5.5.4 Unsupported MAIL parameter";
		return -1;
	}
	return 0;
}

static int path_reply(enum addr_status st, const char **reply, const char *syntax)
{
	if (st == ADDR_TOO_LONG)
		*reply = "501 5.1.3 Address too long";
	else
		*reply = syntax;
	return -1;
}

int mail_parse(const char *arg, struct mailbox *m, struct mail_params *p,
	       const char **reply)
{
	size_t used;
	char params[SMTP_MAIL_LINE_MAX];

	memset(p, 0, sizeof *p);
	const char *path = after_keyword(arg, "FROM:");
	if (path == NULL) {
		*reply = "501 5.5.4 Syntax: MAIL FROM:<address>";
		return -1;
	}
	enum addr_status st = addr_parse_path(path, strlen(path), ADDR_ALLOW_NULL, m, &used);
	if (st != ADDR_OK)
		return path_reply(st, reply, "501 5.1.7 Bad sender address syntax");
	const char *rest = path + used;
	if (*rest != '\0' && *rest != ' ') {
		*reply = "501 5.1.7 Bad sender address syntax";
		return -1;
	}
	if (strlen(rest) >= sizeof params) {
		*reply = "500 5.5.2 Line too long";
		return -1;
	}
	strcpy(params, rest);
	for (char *save = NULL, *tok = strtok_r(params, " ", &save); tok != NULL;
	     tok = strtok_r(NULL, " ", &save))
		if (mail_param(tok, p, reply) < 0)
			return -1;
	if (m->utf8 && !p->smtputf8) {
		*reply = "553 5.6.7 Non-ASCII address needs SMTPUTF8";
		return -1;
	}
	return 0;
}

int rcpt_parse(const char *arg, struct mailbox *m, const char **reply)
{
	size_t used;

	const char *path = after_keyword(arg, "TO:");
	if (path == NULL) {
		*reply = "501 5.5.4 Syntax: RCPT TO:<address>";
		return -1;
	}
	enum addr_status st = addr_parse_path(path, strlen(path), ADDR_ALLOW_POSTMASTER, m, &used);
	if (st != ADDR_OK)
		return path_reply(st, reply, "501 5.1.3 Bad recipient address syntax");
	const char *rest = skip_spaces(path + used);
	if (*rest != '\0') {
		*reply = "555 5.5.4 Unsupported RCPT parameter";
		return -1;
	}
	return 0;
}

_Static_assert(sizeof "unknown (helo=" - 1 + HELO_COMMENT_MAX + sizeof "...)" <= HELO_TRACE_MAX,
	       "an escaped HELO name fits in HELO_TRACE_MAX");

static bool ascii_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Labels of letters, digits, '-' and '_' (Windows hosts send '_'), each
 * 1 to 63 octets, neither starting nor ending with '-'. */
static bool helo_is_domain(const char *name)
{
	size_t label = 0;

	if (strlen(name) > HELO_NAME_MAX)
		return false;
	for (const char *p = name;; p++) {
		if (*p == '.' || *p == '\0') {
			if (label == 0 || label > 63 || p[-1] == '-')
				return false;
			if (*p == '\0')
				return true;
			label = 0;
			continue;
		}
		if (!ascii_alnum(*p) && *p != '-' && *p != '_')
			return false;
		if (label == 0 && *p == '-')
			return false;
		label++;
	}
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3). */
static bool helo_is_address_literal(const char *name)
{
	char inner[INET6_ADDRSTRLEN + 8];
	unsigned char addr[sizeof(struct in6_addr)];
	size_t len = strlen(name);

	if (len < 3 || name[0] != '[' || name[len - 1] != ']' || len - 2 >= sizeof inner)
		return false;
	memcpy(inner, name + 1, len - 2);
	inner[len - 2] = '\0';
	if (strncasecmp(inner, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, inner + 5, addr) == 1;
	return inet_pton(AF_INET, inner, addr) == 1;
}

/* Appends C to OUT (at *N) as comment text, if it fits in LIMIT. */
static bool comment_octet(char *out, size_t *n, size_t limit, unsigned char c)
{
	char piece[5];
	int len;

	if (c == '(' || c == ')' || c == '\\')
		len = snprintf(piece, sizeof piece, "\\%c", c);
	else if (c <= ' ' || c >= 127)
		len = snprintf(piece, sizeof piece, "\\x%02X", c);
	else
		len = snprintf(piece, sizeof piece, "%c", c);
	if (*n + (size_t)len > limit)
		return false;
	memcpy(out + *n, piece, (size_t)len);
	*n += (size_t)len;
	return true;
}

/* NAME escaped into OUT after the N octets of LEAD, closed by CLOSE. */
static void escaped_trace(const char *name, const char *lead, const char *close,
			  char out[HELO_TRACE_MAX])
{
	size_t n = strlen(lead);

	memcpy(out, lead, n);
	size_t limit = n + HELO_COMMENT_MAX;
	const unsigned char *p = (const unsigned char *)name;
	while (*p != '\0' && comment_octet(out, &n, limit, *p))
		p++;
	if (*p != '\0') {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	memcpy(out + n, close, strlen(close) + 1);
}

void helo_trace(const char *name, char out[HELO_TRACE_MAX])
{
	if (helo_is_domain(name) || helo_is_address_literal(name)) {
		snprintf(out, HELO_TRACE_MAX, "%s", name);
		return;
	}
	escaped_trace(name, "unknown (helo=", ")", out);
}

void comment_trace(const char *name, char out[HELO_TRACE_MAX])
{
	escaped_trace(name, "", "", out);
}
