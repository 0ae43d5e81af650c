/* data: the DATA state machine (RFC 5321 4.1.1.4, 4.5.2).
 *
 * Promises: the only end of data is CRLF "." CRLF; leading dots are
 * removed; CRLF becomes LF; a bare CR, bare LF or NUL anywhere, a text line over
 * the limit, too large a header block or message, or too many Received:
 * headers is recorded as the message's fault (first fault wins) while the
 * machine keeps reading to the true end of data, so the session stays in
 * step.  Output never exceeds input (in each call, but see
 * stop_at_header_end below).
 *
 * The header block is its lines from the first up to the first that is
 * neither a field ("name:", RFC 5322 4.5's obsolete white space before the
 * ':' allowed) nor a folded continuation (white space first): a blank line,
 * a line without ':', or one whose name runs past DATA_FIELD_NAME_MAX
 * octets.  The first line is never a continuation.
 *
 * With limits.stop_at_header_end (RFC 6409 8: a submission server adding
 * fields), data_feed stops once, where the header block ends: before the
 * output of the line that ends it (the blank separator, or the first body
 * line), or before the end of data while still in the header (a message
 * with no body, or an empty one).  It then sets header_end and returns,
 * having put out only what comes before that point; the caller may write
 * its own header lines (LF line ends) and calls data_feed again, which goes
 * on from there.  All the output, with the caller's lines put in at the
 * stop, is what it would be without the option.  The caller's lines count
 * toward no limit here and are not in size: they are the caller's to count.
 * Until it can tell a field from the first body line, data_feed holds back
 * the start of a header line (at most DATA_HELD_MAX octets) and puts it out
 * on a later call, so with the option one call's output may reach
 * LEN + DATA_HELD_MAX octets (over the whole message it never exceeds the
 * input).  has_message_id and has_date say whether the header block has
 * those fields, with the option or without; at the stop they are final. */
#ifndef TERN_DATA_H
#define TERN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DATA_FIELD_NAME_MAX 998		/* RFC 5322 2.1.1's longest line */
#define DATA_HELD_MAX (DATA_FIELD_NAME_MAX + 1)	/* a field name and the octet after */

enum data_fault {
	DATA_OK, DATA_BARE_LF, DATA_BARE_CR, DATA_NUL, DATA_LINE_TOO_LONG,
	DATA_HEADER_TOO_LARGE, DATA_TOO_LARGE, DATA_LOOP,
};

struct data_limits {
	uint64_t max_message_size;
	uint64_t max_header_size;
	unsigned max_line_length;
	unsigned max_received;
	bool stop_at_header_end;
};

struct data_state {
	struct data_limits limits;
	int state;
	bool done;
	enum data_fault fault;
	uint64_t size;		/* octets of output (LF line ends) */
	uint64_t header_size;
	bool in_header;
	bool header_end;	/* stop_at_header_end's stop has come */
	bool has_message_id;	/* a Message-ID: field in the header block */
	bool has_date;		/* a Date: field in the header block */
	unsigned line_length;
	unsigned received;
	char prefix[10];	/* the start of the current line's field name */
	unsigned prefix_len;
	unsigned name_len;	/* the whole name's length, once its end is seen */
	int field;		/* where the current header line is; see data.c */
	bool received_line;	/* the current header line is a Received: field */
	bool watching;		/* stop_at_header_end and the stop is still to come */
	unsigned held_len;
	char held[DATA_HELD_MAX];	/* output held back, see above */
};

void data_start(struct data_state *d, const struct data_limits *limits);

/* Consumes up to LEN octets of IN, writing the decoded message to OUT
 * (room for LEN octets, LEN + DATA_HELD_MAX with stop_at_header_end) and
 * its length to *OUTLEN.  Returns the octets consumed; stops right after
 * the end of data (then d->done is set), or at the end of the header block
 * (above). */
size_t data_feed(struct data_state *d, const char *in, size_t len,
		 char *out, size_t *outlen);

/* tern.conf's data_min_rate: the milliseconds after the 354 at which DATA,
 * having brought OCTETS so far, falls under MIN_RATE octets a second on
 * average, never before TIMEOUT_S seconds (data_timeout) when the check
 * begins.  UINT64_MAX when MIN_RATE is 0 (no check). */
uint64_t data_rate_limit_ms(uint64_t octets, unsigned min_rate, unsigned timeout_s);

/* The reply for a fault. */
const char *data_fault_reply(enum data_fault f);

#endif
