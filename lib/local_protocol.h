/* local_protocol: the packets between tern-deliver and a tern-local worker
 * (tern-local(8), WORKER PROTOCOL).
 *
 * A request is one packet, "deliver", the delivery id, the message length,
 * the Maildir, the recipient and the sender, each field ended by a NUL,
 * with the message's descriptor beside it.  A report is one packet, "ID
 * CODE TEXT": CODE 0 delivered, 100 permanent, 111 temporary, TEXT the
 * status line (an enhanced status code first).  "bye" from a worker says
 * that it takes no more requests once those sent are done.
 *
 * Promises: the encoders fail (-1) rather than cut a field; the parsers
 * accept only a packet that is exactly one well-formed request or report
 * and point into the caller's buffer, never past LEN. */
#ifndef TERN_LOCAL_PROTOCOL_H
#define TERN_LOCAL_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LOCAL_REQUEST_MAX 16384	/* octets in a request packet */
#define LOCAL_REPORT_MAX 600	/* octets in a report packet */
#define LOCAL_TEXT_MAX 512	/* octets of status text in a report */
#define LOCAL_WORKER_FD 3	/* a worker's socket */
#define LOCAL_WORKER_DELIVERIES_MAX 1000	/* a worker says bye after this many */
#define LOCAL_BYE "bye"

enum local_exit { LOCAL_EXIT_DELIVERED = 0, LOCAL_EXIT_PERMANENT = 100, LOCAL_EXIT_TEMPORARY = 111 };

struct local_request {
	uint64_t id;
	uint64_t length;
	const char *maildir;
	const char *recipient;
	const char *sender;
};

struct local_report {
	uint64_t id;
	enum local_exit code;
	const char *text;
};

/* The packet for REQ in BUF: its length, or -1 if it does not fit. */
ssize_t local_request_encode(char *buf, size_t size, const struct local_request *req);
int local_request_parse(char *buf, size_t len, struct local_request *req);

ssize_t local_report_encode(char *buf, size_t size, uint64_t id, enum local_exit code,
			    const char *text);
/* BUF holds LEN octets and room for one more (a NUL goes there).  1 for a
 * report, 0 for "bye", -1 for anything else. */
int local_report_parse(char *buf, size_t len, struct local_report *report);

#endif
