/* dsn: RFC 3464 delivery status notifications (bounces).
 *
 * Promises: dsn_write() writes a complete multipart/report message (LF line
 * ends, as the spool stores) with a human part, a message/delivery-status
 * part with one block per recipient, and the original message: whole when
 * it is at most MAX_RETURN octets, else its header only
 * (text/rfc822-headers).  It reads the original from MSG_FD at offset 0. */
#ifndef TERN_DSN_H
#define TERN_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct dsn_rcpt {
	const char *addr;	/* Final-Recipient */
	const char *orcpt;	/* Original-Recipient, or NULL if the same */
	const char *status;	/* "5.1.1" */
	const char *diagnostic;	/* human text, one line */
	time_t last_attempt;
};

struct dsn_info {
	const char *hostname;	/* Reporting-MTA */
	const char *queue_id;	/* of the original message */
	const char *to;		/* who gets the report */
	time_t arrival;
	bool delayed;		/* a delay warning instead of a failure */
};

/* Writes the report to OUT_FD.  0 on success, -1 on a read or write error. */
int dsn_write(int out_fd, const struct dsn_info *info, const struct dsn_rcpt *rcpts,
	      size_t nrcpts, int msg_fd, uint64_t msglen, uint64_t max_return);

/* Splits "5.1.1 text" into its status and text; a line without a valid
 * status gets DEFAULT_STATUS.  STATUS needs room for 16 octets. */
const char *dsn_split_status(const char *line, const char *default_status, char *status);

#endif
