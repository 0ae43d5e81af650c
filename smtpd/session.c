#include "session.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "auth.h"
#include "command.h"
#include "data.h"
#include "io.h"
#include "log.h"
#include "queue_client.h"
#include "recipient.h"
#include "table.h"
#include "tls.h"
#include "util.h"

#define REPLY_MAX 600
#define TIMEOUT_REPLY "421 4.4.2 Error: timeout exceeded"
#define SESSION_TIME_REPLY "421 4.4.2 Error: session time limit exceeded"
#define DATA_RATE_REPLY "421 4.4.2 Error: data rate too low"

enum relay_state { RELAY_UNKNOWN, RELAY_YES, RELAY_NO };

/* AUTH's tables, apart: a session that never authenticates never touches
 * their memory (make bench's PSS). */
struct auth_tables {
	struct table users;
	struct table senders;
};

struct session {
	const struct tern_conf *conf;
	const struct client_info *client;
	const struct session_mode *mode;
	struct reader in;
	struct writer out;
	struct recipient_tables tables;
	struct table relay;
	enum relay_state relay_state;

	char helo[SMTP_LINE_MAX];	/* the first word of HELO/EHLO, as given */
	bool esmtp;

	bool in_mail;
	struct mailbox sender;
	struct mail_params params;
	char **rcpts;
	size_t nrcpts;
	bool rcpt_tried;	/* a RCPT came, accepted or not */

	unsigned errors;		/* in the whole session, for the log */
	unsigned errors_since_mail;	/* since the last accepted message: max_errors */
	unsigned messages;
	long long end_ms;	/* monotonic: session_timeout after the connect */
	bool closing;
	struct queue_link queue_link;	/* to the queue service, between messages */

	struct auth_tables *auth_tables;	/* made at the first use */
	char auth_name[AUTH_NAME_MAX];	/* "" until an AUTH succeeded */
	unsigned auth_failures;
	/* each command line, AUTH's responses among them (wiped after use);
	 * malloc'd apart, so that no calloc touches its pages before a line does */
	char *line;
	bool line_held_secret;	/* an AUTH came: wipe it all at the end */

	struct io_tls tls;	/* in.tls and out.tls point here once it is up */
	char tls_version[TLS_NAME_MAX];
	char tls_cipher[TLS_NAME_MAX];
};

/* ---- replies ---- */

/* max_errors counts every 4xx and 5xx reply since the last accepted
 * message (as Postfix's hard error limit does) but two: 452 4.5.3, which
 * RFC 5321 4.5.3.1.10 makes ordinary flow control for a long recipient
 * list, and 421, which ends the session anyway. */
static bool counts_as_error(const char *line)
{
	return (line[0] == '4' || line[0] == '5') && strncmp(line, "421", 3) != 0 &&
	       strncmp(line, "452 4.5.3", 9) != 0;
}

static void reply(struct session *s, const char *line)
{
	writer_reply(&s->out, line);
	if (line[0] == '4' || line[0] == '5') {
		char code[4] = { line[0], line[1], line[2], '\0' };
		const char *reason = strlen(line) > 4 ? line + 4 : "";
		log_event("rejected", "ip=%s code=%s reason=%s", s->client->ip, code, reason);
		if (counts_as_error(line))
			s->errors++, s->errors_since_mail++;
	}
}

static void replyf(struct session *s, const char *format, ...)
	__attribute__((format(printf, 2, 3)));

static void replyf(struct session *s, const char *format, ...)
{
	char line[REPLY_MAX];
	va_list ap;

	va_start(ap, format);
	vsnprintf(line, sizeof line, format, ap);
	va_end(ap);
	reply(s, line);
}

static void close_with(struct session *s, const char *line)
{
	writer_reply(&s->out, line);
	char code[4] = { line[0], line[1], line[2], '\0' };
	log_event("rejected", "ip=%s code=%s reason=%s", s->client->ip, code, line + 4);
	s->closing = true;
}

/* ---- transaction ---- */

static void reset_transaction(struct session *s)
{
	for (size_t i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i]);
	s->nrcpts = 0;
	s->rcpt_tried = false;
	s->in_mail = false;
	memset(&s->sender, 0, sizeof s->sender);
	memset(&s->params, 0, sizeof s->params);
}

static bool spool_has_room(struct session *s, uint64_t extra)
{
	struct statvfs st;

	if (statvfs(s->conf->spool, &st) < 0)
		return true;	/* tern-queue will tell */
	uint64_t free_bytes = (uint64_t)st.f_bavail * st.f_frsize;
	return free_bytes >= s->conf->queue_minfree + extra;
}

/* ---- TLS ---- */

static bool in_tls(const struct session *s)
{
	return s->in.tls != NULL;
}

static bool tls_offered(const struct session *s)
{
	return !in_tls(s) && s->conf->tls_cert[0] != '\0' && s->conf->tls_key[0] != '\0';
}

/* Loads the module and the certificates; false, logged, if they fail. */
static bool tls_load(struct session *s)
{
	char err[TLS_ERROR_MAX + 2 * PATH_MAX];

	if (tls_start(&s->tls, s->conf, 0, 1, err, sizeof err) == 0)
		return true;
	log_event("tls_error", "ip=%s what=load reason=%s", s->client->ip, err);
	return false;
}

/* The handshake; after it the reader and writer go through TLS.  False,
 * logged, if it failed: then nothing more can be said to the client
 * (session_run ends the TLS session either way). */
static bool tls_handshake(struct session *s)
{
	long long deadline = io_monotonic_ms() + (long long)s->conf->tls_handshake_timeout * 1000;

	if (deadline > s->end_ms)
		deadline = s->end_ms;
	int st = io_tls_handshake(&s->tls, deadline);
	if (st != IO_OK) {
		log_event("tls_error", "ip=%s what=handshake reason=%s", s->client->ip,
			  st == IO_TIMEOUT ? "timed out" : s->tls.module->error(s->tls.conn));
		return false;
	}
	s->in.tls = &s->tls;
	s->out.tls = &s->tls;
	s->tls.module->describe(s->tls.conn, s->tls_version, s->tls_cipher);
	log_event("tls", "ip=%s version=%s cipher=%s", s->client->ip, s->tls_version,
		  s->tls_cipher);
	return true;
}

static void do_starttls(struct session *s, const char *arg)
{
	if (in_tls(s)) {
		reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (!tls_offered(s)) {
		reply(s, "502 5.5.1 Error: TLS is not configured (tls_cert, tls_key)");
		return;
	}
	if (arg[0] != '\0') {
		reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (!tls_load(s)) {
		reply(s, "454 4.7.0 TLS not available due to temporary reason");
		return;
	}
	writer_reply(&s->out, "220 2.0.0 Ready to start TLS");
	/* What the client pipelined after STARTTLS was sent in plaintext
	 * and is no command (CVE-2011-0411). */
	reader_discard(&s->in);
	if (writer_flush(&s->out) != IO_OK || !tls_handshake(s)) {
		s->closing = true;
		return;
	}
	/* RFC 3207 4.2: nothing learnt from the client before TLS holds. */
	s->helo[0] = '\0';
	s->esmtp = false;
	s->auth_name[0] = '\0';
	reset_transaction(s);
}

/* ---- AUTH ---- */

/* The session's AUTH tables, made at the first call; NULL without memory. */
static struct auth_tables *auth_tables(struct session *s)
{
	if (s->auth_tables == NULL) {
		s->auth_tables = malloc(sizeof *s->auth_tables);
		if (s->auth_tables == NULL)
			return NULL;
		table_init(&s->auth_tables->users, s->conf, "users");
		table_init(&s->auth_tables->senders, s->conf, "senders");
	}
	return s->auth_tables;
}

/* RFC 4954 4: over TLS only, unless auth_plaintext says otherwise. */
static bool auth_offered(const struct session *s)
{
	return in_tls(s) || s->conf->auth_plaintext;
}

#define LINE_SIZE (AUTH_RESPONSE_MAX + 1)	/* the longest line is AUTH's */

static void wipe_line(struct session *s)
{
	explicit_bzero(s->line, LINE_SIZE);
}

enum auth_step { STEP_OK, STEP_CANCELLED, STEP_FAILED };

/* Sends "334 CHALLENGE" and reads the client's response into line.
 * STEP_FAILED has sent its reply (or ended the session). */
static enum auth_step auth_response(struct session *s, const char *challenge)
{
	size_t len;
	int flags;

	replyf(s, "334 %s", challenge);
	int st = reader_line(&s->in, s->line, AUTH_RESPONSE_MAX, &len, &flags);
	if (st == IO_TIMEOUT || st == IO_DEADLINE) {
		close_with(s, st == IO_TIMEOUT ? TIMEOUT_REPLY : SESSION_TIME_REPLY);
		return STEP_FAILED;
	}
	if (st != IO_OK) {
		s->closing = true;
		return STEP_FAILED;
	}
	if (flags & LINE_TOO_LONG) {
		wipe_line(s);
		reply(s, "500 5.5.6 Authentication exchange line is too long");
		return STEP_FAILED;
	}
	if (strcmp(s->line, "*") == 0) {
		reply(s, "501 5.0.0 Authentication cancelled");
		return STEP_CANCELLED;
	}
	return STEP_OK;
}

/* Waits MS milliseconds, never past the end of the session. */
static void pause_ms(const struct session *s, unsigned ms)
{
	long long until = io_monotonic_ms() + ms;

	if (until > s->end_ms)
		until = s->end_ms;
	for (long long left; (left = until - io_monotonic_ms()) > 0;) {
		struct timespec ts = { (time_t)(left / 1000), (long)(left % 1000) * 1000000 };
		nanosleep(&ts, NULL);
	}
}

static void auth_failed(struct session *s, const char *name)
{
	unsigned delay = auth_failure_delay_ms(++s->auth_failures);

	log_event("auth_failed", "ip=%s user=%s delay_ms=%u", s->client->ip, name, delay);
	writer_flush(&s->out);
	pause_ms(s, delay);
	reply(s, "535 5.7.8 Authentication credentials invalid");
	if (s->auth_failures >= s->conf->auth_max_failures)
		close_with(s, "421 4.7.0 Error: too many failed authentications");
}

/* The decoded NAME and PASSWORD, checked; the password is wiped. */
static void auth_conclude(struct session *s, const char *mechanism, const char *name,
			  char *password)
{
	struct auth_tables *t = auth_tables(s);
	enum auth_verdict v = t == NULL ? AUTH_TEMPFAIL
					: auth_verify(s->conf, &t->users, name, password);

	explicit_bzero(password, AUTH_PASSWORD_MAX);
	switch (v) {
	case AUTH_GRANTED:
		str_copy(s->auth_name, sizeof s->auth_name, name);
		log_event("auth", "ip=%s user=%s mechanism=%s", s->client->ip, name, mechanism);
		reply(s, "235 2.7.0 Authentication successful");
		return;
	case AUTH_TEMPFAIL:
		log_event("table_error", "table=users hint=%s",
			  s->conf->auth_checkpassword[0] != '\0' ? "check auth_checkpassword"
								   : "run ternctl compile");
		reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	case AUTH_DENIED:
		auth_failed(s, name);
		return;
	}
}

static void decode_failed(struct session *s, enum auth_decode d, const char *name)
{
	if (d == AUTH_OTHER_IDENTITY)
		auth_failed(s, name);
	else if (d == AUTH_BAD_BASE64)
		reply(s, "501 5.5.2 Cannot decode the response");
	else
		reply(s, "501 5.5.2 Malformed authentication response");
}

static void auth_plain(struct session *s, const char *initial)
{
	char name[AUTH_NAME_MAX], password[AUTH_PASSWORD_MAX];

	if (initial[0] == '\0') {
		if (auth_response(s, "") != STEP_OK)
			return;
		initial = s->line;
	}
	enum auth_decode d = auth_decode_plain(initial, name, password);
	wipe_line(s);
	if (d != AUTH_DECODED) {
		explicit_bzero(password, sizeof password);
		decode_failed(s, d, name);
		return;
	}
	auth_conclude(s, "PLAIN", name, password);
}

static void auth_login(struct session *s, const char *initial)
{
	char name[AUTH_NAME_MAX], password[AUTH_PASSWORD_MAX], challenge[32];
	enum auth_decode d;

	if (initial[0] == '\0') {
		auth_encode("Username:", challenge, sizeof challenge);
		if (auth_response(s, challenge) != STEP_OK)
			return;
		initial = s->line;
	}
	d = auth_decode_text(initial, name, sizeof name);
	wipe_line(s);
	if (d != AUTH_DECODED) {
		decode_failed(s, d, "");
		return;
	}
	auth_encode("Password:", challenge, sizeof challenge);
	if (auth_response(s, challenge) != STEP_OK)
		return;
	d = auth_decode_text(s->line, password, sizeof password);
	wipe_line(s);
	if (d != AUTH_DECODED) {
		explicit_bzero(password, sizeof password);
		decode_failed(s, d, name);
		return;
	}
	auth_conclude(s, "LOGIN", name, password);
}

static void do_auth(struct session *s, const char *arg)
{
	char mechanism[16];
	size_t n = strcspn(arg, " ");
	const char *initial = arg + n;

	while (*initial == ' ')
		initial++;
	if (!auth_offered(s)) {
		reply(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (!s->esmtp) {
		reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->auth_name[0] != '\0') {
		reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->in_mail) {
		reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (n == 0 || n >= sizeof mechanism) {
		reply(s, n == 0 ? "501 5.5.4 Syntax: AUTH mechanism"
				: "504 5.5.4 Unrecognized authentication type");
		return;
	}
	memcpy(mechanism, arg, n);
	mechanism[n] = '\0';
	if (strcasecmp(mechanism, "PLAIN") == 0)
		auth_plain(s, initial);
	else if (strcasecmp(mechanism, "LOGIN") == 0)
		auth_login(s, initial);
	else
		reply(s, "504 5.5.4 Unrecognized authentication type");
}

/* ---- commands ---- */

static void do_helo(struct session *s, const char *arg, bool esmtp)
{
	size_t n = strcspn(arg, " ");

	if (n == 0) {
		reply(s, esmtp ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	if (n >= sizeof s->helo)
		n = sizeof s->helo - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)arg[i];
		if (c < ' ' || c == 127) {
			reply(s, "501 5.5.4 Control character in the host name");
			return;
		}
	}
	memcpy(s->helo, arg, n);
	s->helo[n] = '\0';
	s->esmtp = esmtp;
	reset_transaction(s);
	if (!esmtp) {
		replyf(s, "250 %s", s->conf->hostname);
		return;
	}
	char line[REPLY_MAX];
	snprintf(line, sizeof line, "250-%s", s->conf->hostname);
	writer_reply(&s->out, line);
	writer_reply(&s->out, "250-PIPELINING");
	snprintf(line, sizeof line, "250-SIZE %llu",
		 (unsigned long long)s->conf->max_message_size);
	writer_reply(&s->out, line);
	writer_reply(&s->out, "250-8BITMIME");
	writer_reply(&s->out, "250-ENHANCEDSTATUSCODES");
	if (tls_offered(s))
		writer_reply(&s->out, "250-STARTTLS");
	if (auth_offered(s))
		writer_reply(&s->out, "250-AUTH PLAIN LOGIN");
	writer_reply(&s->out, "250 SMTPUTF8");
}

/* Submission: the envelope sender must be one the senders table gives
 * the authenticated name; false when it has been refused. */
static bool sender_allowed(struct session *s)
{
	char sender[ADDR_BUFFER];

	addr_format(&s->sender, sender, sizeof sender);
	struct auth_tables *t = auth_tables(s);
	enum table_result r = t == NULL ? TABLE_TEMPFAIL
					: auth_sender_owned(s->conf, &t->senders, s->auth_name, sender);
	switch (r) {
	case TABLE_FOUND:
		return true;
	case TABLE_TEMPFAIL:
		log_event("table_error", "table=senders hint=%s", "run ternctl compile");
		reply(s, "451 4.3.0 Temporary lookup failure");
		return false;
	case TABLE_NOTFOUND:
		break;
	}
	replyf(s, "553 5.7.1 Sender address <%s> not owned by the authenticated user", sender);
	return false;
}

static void do_mail(struct session *s, const char *arg)
{
	const char *problem;

	if (s->helo[0] == '\0') {
		reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->in_mail) {
		reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->mode->submission && s->auth_name[0] == '\0') {
		reply(s, "530 5.7.0 Authentication required");
		return;
	}
	if (mail_parse(arg, &s->sender, &s->params, &problem) < 0) {
		reply(s, problem);
		return;
	}
	if (s->params.auth_given && !auth_offered(s)) {
		reply(s, "555 5.5.4 Unsupported MAIL parameter");
		return;
	}
	if (s->mode->submission && !sender_allowed(s))
		return;
	/* SIZE and BODY are taken after HELO too, as Postfix and OpenSMTPD
	 * take them; SMTPUTF8 changes what the addresses may hold, which
	 * only a client that saw it offered may ask for (RFC 6531 3.4). */
	if (!s->esmtp && s->params.smtputf8) {
		reply(s, "555 5.5.4 SMTPUTF8 needs EHLO");
		return;
	}
	if (s->params.size_given && s->params.size > s->conf->max_message_size) {
		reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	if (!spool_has_room(s, s->params.size_given ? s->params.size : 0)) {
		reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	s->in_mail = true;
	reply(s, "250 2.1.0 Ok");
}

static enum relay_state relay_allowed(struct session *s)
{
	if (s->auth_name[0] != '\0')
		return RELAY_YES;
	if (s->relay_state != RELAY_UNKNOWN)
		return s->relay_state;
	if (s->client->relay_env) {
		s->relay_state = RELAY_YES;
		return RELAY_YES;
	}
	enum table_result r = table_match_network(&s->relay, s->client->ip);
	if (r == TABLE_TEMPFAIL) {
		log_event("table_error", "table=relay hint=%s", "run ternctl compile");
		return RELAY_UNKNOWN;
	}
	s->relay_state = r == TABLE_FOUND ? RELAY_YES : RELAY_NO;
	return s->relay_state;
}

/* Local parts of local domains are looked up in lower case, so they are
 * the same recipient in any case; elsewhere only the domain's case is
 * ours to ignore (and the parser has lowered it). */
static bool already_listed(struct session *s, const char *addr, bool local)
{
	for (size_t i = 0; i < s->nrcpts; i++)
		if ((local ? strcasecmp(s->rcpts[i], addr) : strcmp(s->rcpts[i], addr)) == 0)
			return true;
	return false;
}

static void do_rcpt(struct session *s, const char *arg)
{
	struct mailbox m;
	struct resolution res;
	const char *problem;
	char addr[ADDR_BUFFER];

	if (!s->in_mail) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	s->rcpt_tried = true;
	if (rcpt_parse(arg, &m, &problem) < 0) {
		reply(s, problem);
		return;
	}
	if (m.utf8 && !s->params.smtputf8) {
		reply(s, "553 5.6.7 Non-ASCII address needs SMTPUTF8");
		return;
	}
	if (s->nrcpts >= s->conf->max_recipients) {
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	recipient_resolve(&s->tables, &m, &res);
	switch (res.kind) {
	case RESOLVE_TEMPFAIL:
		log_event("table_error", "table=%s hint=%s", res.failed_table, res.hint);
		reply(s, "451 4.3.0 Temporary lookup failure");
		return;
	case RESOLVE_UNKNOWN:
		reply(s, "550 5.1.1 User unknown in local recipient table");
		return;
	case RESOLVE_REMOTE:
		switch (relay_allowed(s)) {
		case RELAY_UNKNOWN:
			reply(s, "451 4.3.0 Temporary lookup failure");
			return;
		case RELAY_NO:
			reply(s, "550 5.7.1 Relay access denied");
			return;
		case RELAY_YES:
			break;
		}
		break;
	default:
		break;
	}
	addr_format(&m, addr, sizeof addr);
	if (!already_listed(s, addr, res.kind != RESOLVE_REMOTE)) {
		char *copy = strdup(addr);
		if (copy == NULL) {
			reply(s, "451 4.3.0 Out of memory");
			return;
		}
		s->rcpts[s->nrcpts++] = copy;
	}
	reply(s, "250 2.1.5 Ok");
}

/* ---- DATA ---- */

/* RFC 3848 and 6531's names: ESMTP, then S for TLS and A for AUTH. */
static void protocol_name(const struct session *s, char *out, size_t size)
{
	const char *base = s->params.smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP";
	/* RFC 3848 names no SMTPS or SMTPA: after HELO, plain SMTP */
	bool secure = in_tls(s) && s->esmtp, authed = s->auth_name[0] != '\0' && s->esmtp;

	snprintf(out, size, "%s%s%s", base, secure ? "S" : "", authed ? "A" : "");
}

/* What the Received header says of TLS: a comment after the protocol. */
static void tls_trace(const struct session *s, char *out, size_t size)
{
	if (in_tls(s))
		snprintf(out, size, " (%s %s)", s->tls_version, s->tls_cipher);
	else
		out[0] = '\0';
}

static int received_header(struct session *s, const char *qid, char *out, size_t size)
{
	char date[RFC5322_DATE_MAX], from[HELO_TRACE_MAX], protocol[16];
	char tls[2 * TLS_NAME_MAX + 4], user[HELO_TRACE_MAX + 32] = "";

	helo_trace(s->helo, from);
	if (s->auth_name[0] != '\0' && s->conf->received_auth) {
		char name[HELO_TRACE_MAX];
		comment_trace(s->auth_name, name);
		snprintf(user, sizeof user, "\n\t(authenticated as %s)", name);
	}
	protocol_name(s, protocol, sizeof protocol);
	tls_trace(s, tls, sizeof tls);
	rfc5322_date(time(NULL), date, sizeof date);
	int n;
	if (s->nrcpts == 1)
		n = snprintf(out, size,
			     "Received: from %s ([%s])%s\n\tby %s (tern) with %s%s id %s\n"
			     "\tfor <%s>; %s\n",
			     from, s->client->ip, user, s->conf->hostname, protocol, tls, qid,
			     s->rcpts[0], date);
	else
		n = snprintf(out, size,
			     "Received: from %s ([%s])%s\n\tby %s (tern) with %s%s id %s;\n\t%s\n",
			     from, s->client->ip, user, s->conf->hostname, protocol, tls, qid,
			     date);
	return n < 0 || (size_t)n >= size ? -1 : n;
}

/* qmail-queue's envelope of the current transaction. */
static char *build_envelope(struct session *s, size_t *len)
{
	char sender[ADDR_BUFFER];

	addr_format(&s->sender, sender, sizeof sender);
	return queue_envelope(sender, s->rcpts, s->nrcpts, len);
}

static int start_queue(struct session *s, struct queue_client *q, const char *qid)
{
	struct queue_target target = {
		.program = NULL, .config = s->conf->path, .qid = qid,
		.timeout = s->conf->queue_timeout,
		.socket = queue_socket(s->conf->queue_socket), .spool = s->conf->spool,
		.link = &s->queue_link,
	};

	return queue_start(q, &target);
}

/* When DATA that began at START_MS and has brought OCTETS must have
 * brought more (data_min_rate), or the session ends, whichever is first. */
static long long data_deadline(const struct session *s, long long start_ms, uint64_t octets)
{
	uint64_t after = data_rate_limit_ms(octets, s->conf->data_min_rate, s->conf->data_timeout);
	long long room = s->end_ms - start_ms;

	if (room <= 0 || after >= (uint64_t)room)
		return s->end_ms;
	return start_ms + (long long)after;
}

/* Submission (RFC 6409 8.2, 8.3): the fields a message lacks, written
 * where its header block ends.  Their length, or 0. */
static size_t add_missing_fields(struct session *s, struct queue_client *q,
				 const struct data_state *d, const char *qid)
{
	char fields[sizeof "Message-ID: <@>\nDate: \n" + QID_MAX + CONF_HOSTNAME_MAX +
		    RFC5322_DATE_MAX];
	char date[RFC5322_DATE_MAX];
	size_t n = 0;

	if (!d->has_message_id)
		n += (size_t)snprintf(fields, sizeof fields, "Message-ID: <%s@%s>\n", qid,
				      s->conf->hostname);
	if (!d->has_date) {
		rfc5322_date(time(NULL), date, sizeof date);
		n += (size_t)snprintf(fields + n, sizeof fields - n, "Date: %s\n", date);
	}
	if (n > 0 && d->fault == DATA_OK)
		queue_write(q, fields, n);
	return n;
}

/* Reads the message, which began at START_MS (the 354), to its end;
 * false if the client went away or ran out of time.  *ADDED: the octets
 * of fields added to it. */
static bool receive_data(struct session *s, struct queue_client *q, struct data_state *d,
			 long long start_ms, const char *qid, size_t *added)
{
	static const size_t chunk = IO_BUFFER_SIZE;
	char out[IO_BUFFER_SIZE + DATA_HELD_MAX];	/* data.h: what one call may put out */
	uint64_t octets = 0;
	bool header_end = false;

	*added = 0;
	while (!d->done) {
		if (reader_available(&s->in) == 0) {
			s->in.deadline_ms = data_deadline(s, start_ms, octets);
			int st = reader_fill(&s->in);
			if (st == IO_TIMEOUT) {
				close_with(s, TIMEOUT_REPLY);
				return false;
			}
			if (st == IO_DEADLINE) {
				close_with(s, io_monotonic_ms() >= s->end_ms ? SESSION_TIME_REPLY
									     : DATA_RATE_REPLY);
				return false;
			}
			if (st != IO_OK) {
				log_event("lost", "ip=%s during=DATA", s->client->ip);
				s->closing = true;
				return false;
			}
		}
		size_t avail = reader_available(&s->in);
		size_t outlen;
		size_t used = data_feed(d, s->in.buf + s->in.start,
					avail < chunk ? avail : chunk, out, &outlen);
		s->in.start += used;
		octets += used;
		if (d->fault == DATA_OK)
			queue_write(q, out, outlen);
		if (d->header_end && !header_end) {
			header_end = true;
			*added = add_missing_fields(s, q, d, qid);
		}
	}
	return true;
}

static void do_data(struct session *s, const char *arg)
{
	struct queue_client q;
	struct data_state d;
	char qid[QID_MAX], header[2048], result[QUEUE_REPLY_MAX];

	if (arg[0] != '\0') {
		reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!s->in_mail) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->nrcpts == 0) {
		reply(s, s->rcpt_tried ? "554 5.5.1 Error: no valid recipients"
				       : "503 5.5.1 Error: need RCPT command");
		return;
	}
	/* Content before the 354 is a client that does not wait for it
	 * (RFC 2920 3.1): smuggling's way in.  Nothing of it is a command. */
	if (reader_input_waiting(&s->in)) {
		close_with(s, "554 5.5.0 Error: message content sent before the 354 reply");
		return;
	}
	qid_make(qid);
	if (start_queue(s, &q, qid) < 0) {
		reply(s, "451 4.3.0 Temporary failure: cannot start the queue");
		return;
	}
	writer_reply(&s->out, "354 End data with <CR><LF>.<CR><LF>");
	int hlen = received_header(s, qid, header, sizeof header);
	if (hlen > 0)
		queue_write(&q, header, (size_t)hlen);

	struct data_limits limits = {
		.max_message_size = s->conf->max_message_size,
		.max_header_size = s->conf->max_header_size,
		.max_line_length = s->conf->max_line_length,
		.max_received = s->conf->max_received,
		.stop_at_header_end = s->mode->submission,
	};
	data_start(&d, &limits);
	s->in.timeout = s->conf->data_timeout;
	size_t added;
	bool complete = receive_data(s, &q, &d, io_monotonic_ms(), qid, &added);
	s->in.timeout = s->conf->command_timeout;
	s->in.deadline_ms = s->end_ms;
	if (!complete) {
		writer_flush(&s->out);	/* the 421, before a slow queue is reaped */
		queue_abort(&q);
		return;
	}
	/* The reply first: queue_abort may wait for a slow queue program. */
	if (d.fault != DATA_OK) {
		reply(s, data_fault_reply(d.fault));
		writer_flush(&s->out);
		queue_abort(&q);
		reset_transaction(s);
		return;
	}
	size_t envlen;
	char *envelope = build_envelope(s, &envlen);
	if (envelope == NULL) {
		reply(s, "451 4.3.0 Out of memory");
		writer_flush(&s->out);
		queue_abort(&q);
		reset_transaction(s);
		return;
	}
	int code = queue_finish(&q, envelope, envlen, qid, result, sizeof result);
	free(envelope);
	if (code == 0) {
		char sender[ADDR_BUFFER];
		addr_format(&s->sender, sender, sizeof sender);
		log_event("accepted", "id=%s ip=%s from=%s rcpts=%zu size=%llu", qid,
			  s->client->ip, sender, s->nrcpts,
			  (unsigned long long)(d.size + added + (uint64_t)(hlen > 0 ? hlen : 0)));
		s->messages++;
		s->errors_since_mail = 0;
	}
	reply(s, result);
	reset_transaction(s);
}

/* ---- the command loop ---- */

static bool line_problem(struct session *s, int flags, size_t len, enum smtp_verb verb)
{
	bool mail_or_rcpt = verb == VERB_MAIL || verb == VERB_RCPT;
	size_t limit = verb == VERB_AUTH ? AUTH_RESPONSE_MAX
				       : (mail_or_rcpt ? SMTP_MAIL_LINE_MAX : SMTP_LINE_MAX) - 2;

	if ((flags & LINE_TOO_LONG) || len > limit) {
		reply(s, verb == VERB_AUTH ? "500 5.5.6 Authentication exchange line is too long"
					   : "500 5.5.2 Error: line too long");
		return true;
	}
	if (flags & LINE_NUL) {
		reply(s, "500 5.5.2 Error: NUL character in command");
		return true;
	}
	if (flags & LINE_BARE_CR) {
		reply(s, "500 5.5.2 Error: bare CR in command");
		return true;
	}
	return false;
}

static void dispatch(struct session *s, const struct smtp_command *cmd)
{
	switch (cmd->verb) {
	case VERB_HELO:
		do_helo(s, cmd->arg, false);
		break;
	case VERB_EHLO:
		do_helo(s, cmd->arg, true);
		break;
	case VERB_MAIL:
		do_mail(s, cmd->arg);
		break;
	case VERB_RCPT:
		do_rcpt(s, cmd->arg);
		break;
	case VERB_DATA:
		do_data(s, cmd->arg);
		break;
	case VERB_RSET:
		reset_transaction(s);
		reply(s, "250 2.0.0 Ok");
		break;
	case VERB_NOOP:
		reply(s, "250 2.0.0 Ok");
		break;
	case VERB_QUIT:
		writer_reply(&s->out, "221 2.0.0 Bye");
		s->closing = true;
		break;
	case VERB_VRFY:
		reply(s, "252 2.5.0 Cannot VRFY user; send some mail and we will try");
		break;
	case VERB_HELP:
		reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
		break;
	case VERB_STARTTLS:
		do_starttls(s, cmd->arg);
		break;
	case VERB_AUTH:
		do_auth(s, cmd->arg);
		break;
	case VERB_EXPN:
	case VERB_BDAT:
		reply(s, "502 5.5.1 Error: command not implemented");
		break;
	case VERB_HTTP:
		close_with(s, "421 4.7.0 Error: this is an SMTP server, not a web server");
		break;
	case VERB_UNKNOWN:
		reply(s, "500 5.5.2 Error: command not recognized");
		break;
	}
}

static void command_loop(struct session *s)
{
	char *line = s->line;
	struct smtp_command cmd;

	while (!s->closing) {
		size_t len;
		int flags;
		int st = reader_line(&s->in, line, AUTH_RESPONSE_MAX, &len, &flags);
		if (st == IO_TIMEOUT || st == IO_DEADLINE) {
			close_with(s, st == IO_TIMEOUT ? TIMEOUT_REPLY : SESSION_TIME_REPLY);
			break;
		}
		if (st != IO_OK)
			break;
		command_parse(line, &cmd);
		if (!line_problem(s, flags, len, cmd.verb))
			dispatch(s, &cmd);
		if (cmd.verb == VERB_AUTH) {
			wipe_line(s);	/* whatever became of it */
			s->line_held_secret = true;
		}
		if (!s->closing && s->conf->max_errors > 0 &&
		    s->errors_since_mail >= s->conf->max_errors)
			close_with(s, "421 4.7.0 Error: too many errors");
	}
}

int session_run(const struct tern_conf *conf, const struct client_info *client,
		const struct session_mode *mode)
{
	struct session *s = calloc(1, sizeof *s);
	if (s == NULL)
		return 111;
	s->conf = conf;
	s->client = client;
	s->mode = mode;
	s->queue_link.sock = -1;
	s->rcpts = calloc(conf->max_recipients + 1, sizeof *s->rcpts);
	s->line = malloc(LINE_SIZE);
	if (s->rcpts == NULL || s->line == NULL) {
		free(s->rcpts);
		free(s->line);
		free(s);
		return 111;
	}
	s->end_ms = io_monotonic_ms() + (long long)conf->session_timeout * 1000;
	writer_init(&s->out, 1, conf->command_timeout);
	s->out.deadline_ms = s->end_ms;
	reader_init(&s->in, 0, conf->command_timeout, &s->out);
	s->in.deadline_ms = s->end_ms;
	recipient_tables_init(&s->tables, conf);
	table_init(&s->relay, conf, "relay");

	log_event("connect", "ip=%s port=%s", client->ip, client->port);
	/* --tls: the handshake first; a failure has no reply to send. */
	if (!mode->implicit_tls || (tls_load(s) && tls_handshake(s))) {
		replyf(s, "220 %s ESMTP tern", conf->hostname);
		command_loop(s);
	}
	s->out.deadline_ms = io_monotonic_ms() + LINGER_MS;	/* for the last reply */
	writer_flush(&s->out);
	tls_end(&s->tls);	/* nothing if TLS never started */
	reader_linger(&s->in, 1);
	log_event("disconnect", "ip=%s msgs=%u errors=%u", client->ip, s->messages, s->errors);

	reset_transaction(s);
	queue_link_close(&s->queue_link);
	recipient_tables_close(&s->tables);
	table_close(&s->relay);
	if (s->auth_tables != NULL) {
		table_close(&s->auth_tables->users);
		table_close(&s->auth_tables->senders);
		free(s->auth_tables);
	}
	if (s->line_held_secret)
		wipe_line(s);
	free(s->line);
	free(s->rcpts);
	free(s);
	return 0;
}
