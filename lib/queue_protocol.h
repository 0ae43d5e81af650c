/* queue_protocol: what the queue understands, shared by its two forms (the
 * tern-queue program and the queue service) and their one client.
 *
 * Promises: the exit codes of the qmail-queue protocol by name; one
 * parser of qmail-queue's envelope (F sender \0, T rcpt \0 each, \0) that
 * the program and the service both apply, so both refuse exactly the same
 * envelopes with the same codes; and the lines of the queue socket's
 * protocol (tern-queue(8), "The queue service"), formatted and parsed in
 * this one place.  Every parser here takes an explicit length, never
 * reads past it, and accepts only what the formatter writes. */
#ifndef TERN_QUEUE_PROTOCOL_H
#define TERN_QUEUE_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Exit codes (and the service's replies), as notqmail's qmail-queue(8)
 * documents them. */
enum {
	QQ_QUEUED = 0,
	QQ_ADDRESS_TOO_LONG = 11,
	QQ_REFUSED_PERM = 31,
	QQ_NO_MEMORY = 51,
	QQ_TIMEOUT = 52,
	QQ_WRITE_ERROR = 53,
	QQ_READ_ERROR = 54,
	QQ_CONFIG = 55,
	QQ_QUEUE_DIR = 62,
	QQ_REFUSED_TEMP = 71,
	QQ_BUG = 81,
	QQ_BAD_LEAD_BYTE = 91,
};

/* An envelope address of this many octets or more is refused (11). */
#define QQ_ADDRESS_MAX 1003
/* The longest envelope either form takes: a sender and SPOOL_RCPTS_MAX
 * recipients of the longest address allowed, with their lead bytes and
 * NULs, and the final NUL. */
#define QQ_ENVELOPE_MAX ((size_t)(10000 + 1) * (QQ_ADDRESS_MAX + 1) + 1)

struct qq_envelope {
	char *sender;		/* into the parsed bytes */
	char **rcpts;		/* allocated; the strings are into the bytes */
	size_t nrcpts;
};

/* Splits the LEN octets at DATA (changed by nothing) into *E.  QQ_QUEUED,
 * or the exit code that refuses it with a short reason in *WHAT (for the
 * log).  Free E->rcpts with free() whatever it returns. */
int qq_envelope_parse(char *data, size_t len, struct qq_envelope *e, const char **what);

/* ---- the queue socket ---- */

/* The longest line either side sends, its LF included. */
#define QS_LINE_MAX 128

/* The service's first line to a new connection: take it, or it is over
 * a cap (the client then runs the program instead). */
#define QS_GREETING "ready\n"
#define QS_BUSY "busy\n"

/* "begin ID\n": a message follows in the one fd sent with these octets. */
int qs_format_begin(char *out, size_t outsize, const char *qid);
/* "end MSGLEN ENVLEN\n": the fd holds MSGLEN octets, all sent; ENVLEN
 * octets of qmail-queue envelope follow this line. */
int qs_format_end(char *out, size_t outsize, uint64_t msglen, size_t envlen);
/* "CODE\n": the outcome, in the program's exit codes. */
int qs_format_reply(char *out, size_t outsize, int code);

enum qs_verb { QS_BEGIN, QS_END };

struct qs_request {
	enum qs_verb verb;
	char qid[QID_MAX];	/* begin */
	uint64_t msglen;	/* end */
	uint64_t envlen;	/* end */
};

/* Parses one line of LEN octets (its LF excluded).  0, or -1 if it is not
 * exactly a line that qs_format_begin or qs_format_end writes (a valid
 * queue id, decimal numbers without sign or leading zero). */
int qs_parse_request(const char *line, size_t len, struct qs_request *r);
/* Parses a reply line of LEN octets (its LF excluded): 0 with *CODE in
 * 0..255, or -1. */
int qs_parse_reply(const char *line, size_t len, int *code);

#endif
