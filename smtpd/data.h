/* data: the DATA state machine (RFC 5321 4.1.1.4, 4.5.2).
 *
 * Promises: the only end of data is CRLF "." CRLF; leading dots are
 * removed; CRLF becomes LF; a bare CR, bare LF or NUL anywhere, a text line over
 * the limit, too large a header block or message, or too many Received:
 * headers is recorded as the message's fault (first fault wins) while the
 * machine keeps reading to the true end of data, so the session stays in
 * step.  Output never exceeds input. */
#ifndef TERN_DATA_H
#define TERN_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum data_fault {
	DATA_OK, DATA_BARE_LF, DATA_BARE_CR, DATA_NUL, DATA_LINE_TOO_LONG,
	DATA_HEADER_TOO_LARGE, DATA_TOO_LARGE, DATA_LOOP,
};

struct data_limits {
	uint64_t max_message_size;
	uint64_t max_header_size;
	unsigned max_line_length;
	unsigned max_received;
};

struct data_state {
	struct data_limits limits;
	int state;
	bool done;
	enum data_fault fault;
	uint64_t size;		/* octets of output (LF line ends) */
	uint64_t header_size;
	bool in_header;
	unsigned line_length;
	unsigned received;
	char prefix[10];	/* the start of the current header line */
	unsigned prefix_len;
	int field;		/* where the current header line is; see data.c */
};

void data_start(struct data_state *d, const struct data_limits *limits);

/* Consumes up to LEN octets of IN, writing the decoded message to OUT
 * (room for LEN octets) and its length to *OUTLEN.  Returns the octets
 * consumed; stops right after the end of data (then d->done is set). */
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
