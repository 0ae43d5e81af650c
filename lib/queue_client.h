/* queue_client: hands one message to the queue, for tern-smtpd and for
 * tern-deliver's reports.
 *
 * Promises: the message goes either as it arrives (queue_start, then
 * queue_write for each piece) or whole from a file (queue_submit); the
 * envelope goes only when the message is whole, so a message cut short (a
 * fault, a dropped client, a killed caller) reaches the queue as an
 * envelope cut short, and the queue keeps nothing.  Every write must
 * complete within the target's timeout, and the confirmation must come
 * within it after the message ends; else the queue is killed (its whole
 * process group, SIGKILL, reaped) and the outcome is QUEUE_TIMED_OUT.  No
 * call ever waits longer than that; queue_submit and queue_check never
 * wait at all.  A child starts with default signal dispositions and an
 * empty signal mask, in a process group of its own.
 *
 * The queue is the queue service when the target names its socket and
 * the service answers there (tern-queue(8), "The queue service"), else a
 * program speaking qmail-queue's protocol (tern-queue or $QMAILQUEUE).
 * The service is used only if connecting works, the peer (SO_PEERCRED) is
 * the spool folder's owner and it greets; otherwise, before any byte of
 * the message is sent, the program runs instead, and never after: once
 * the message went to the service, its outcome is the service's.  A
 * connection in place of the child, its reply in place of the exit
 * status, with the same outcomes, so queue_reply answers alike.
 */
#ifndef TERN_QUEUE_CLIENT_H
#define TERN_QUEUE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "queue_protocol.h"
#include "util.h"

#define QUEUE_REPLY_MAX 512

/* Outcomes besides the program's own exit codes (0 queued, 1..255). */
#define QUEUE_PENDING (-1)	/* queue_check: no confirmation yet */
#define QUEUE_FAILED (-2)	/* killed by a signal, or never started */
#define QUEUE_TIMED_OUT (-3)	/* queue_timeout passed: killed */

/* A connection to the service kept from one message to the next (one SMTP
 * session's): queue_start takes it instead of connecting anew, and hands
 * it back after a reply.  sock -1: none; close it with queue_link_close. */
struct queue_link {
	int sock;
};

struct queue_target {
	const char *program;	/* tern-queue, or $QMAILQUEUE; NULL: queue_program()'s,
				 * found only if the program must run */
	const char *socket;	/* queue_socket; NULL or "": the program only */
	const char *spool;	/* whose owner the service must be */
	struct queue_link *link;	/* NULL: a connection for this message only */
	const char *config;	/* tern.conf, absolute: exported as TERN_CONFIG */
	const char *qid;	/* exported as TERN_QID; NULL: none */
	unsigned timeout;	/* queue_timeout, seconds */
};

struct queue_client {
	pid_t pid;		/* 0: none running */
	int pidfd;		/* readable when the child ends; -1 if unsupported */
	int message_fd;
	int envelope_fd;
	int custom_fd;		/* fd 6 of the child: text for exit 82 */
	int sock;		/* the service's connection; -1: none */
	bool greeted;		/* its greeting was read */
	uint64_t written;	/* message octets sent */
	char line[QS_LINE_MAX];	/* the service's reply, as it comes */
	size_t line_len;
	char qid[QID_MAX];	/* the id the service was given */
	struct queue_link *link;	/* gets the connection back after the reply */
	unsigned timeout;
	int64_t deadline_ms;	/* for the confirmation, on CLOCK_MONOTONIC */
	bool broken;		/* a write failed: nothing more is sent */
	int outcome;		/* QUEUE_PENDING until known */
	char custom[QUEUE_REPLY_MAX];	/* exit 82's text */
};

/* The program tern-smtpd runs: $QMAILQUEUE if set, else tern-queue found
 * as INTERFACES.md orders it.  0, or -1 if there is none. */
int queue_program(char *out, size_t outsize);
/* The queue socket to try first: SOCKET (queue_socket), or NULL when
 * $QMAILQUEUE names a program, which then always runs. */
const char *queue_socket(const char *socket);

/* qmail-queue's envelope: F sender \0, T rcpt \0 each, \0.  Allocated;
 * free() it.  NULL if out of memory. */
char *queue_envelope(const char *sender, char *const *rcpts, size_t nrcpts, size_t *len);

void queue_link_close(struct queue_link *link);

/* Starts the queue for a message sent piece by piece.  0, or -1. */
int queue_start(struct queue_client *q, const struct queue_target *t);
/* Sends LEN octets of the message; -1 once anything has failed (a write
 * past the timeout kills the queue), after which nothing more is sent. */
int queue_write(struct queue_client *q, const void *buf, size_t len);
/* Ends the message and sends ENVELOPE (LEN octets): the confirmation is
 * then due within the timeout. */
void queue_end(struct queue_client *q, const char *envelope, size_t len);

/* Starts the queue for a message that is whole in MESSAGE_FD (read from
 * its offset, kept open by the caller) with its ENVELOPE; never waits.
 * The service takes it only as a memfd made with MFD_ALLOW_SEALING, at
 * offset 0, which this seals against any change.  0, or -1. */
int queue_submit(struct queue_client *q, const struct queue_target *t, int message_fd,
		 const char *envelope, size_t len);

/* The outcome, waiting for it up to the deadline. */
int queue_wait(struct queue_client *q);
/* The outcome if it is known, else QUEUE_PENDING; past the deadline it
 * kills the queue and answers QUEUE_TIMED_OUT.  Never waits. */
int queue_check(struct queue_client *q);
/* Milliseconds until the deadline (0 if past): a poll timeout. */
int queue_remaining_ms(const struct queue_client *q);

/* Drops the message: the queue sees no envelope, and keeps nothing.
 * Waits for it to go up to the timeout, then kills it.  (Once the outcome
 * is known the client holds nothing: no call is needed to release it.) */
void queue_abort(struct queue_client *q);

/* Whether OUTCOME (queue_wait's or queue_check's) refuses the message for
 * good: exit 11 to 40, or 82 with a D text. */
bool queue_refused_permanently(const struct queue_client *q, int outcome);

/* The SMTP reply for OUTCOME (queue_wait's), QID in the 250 text. */
void queue_reply(const struct queue_client *q, int outcome, const char *qid, char *reply,
		 size_t replysize);
/* queue_end, queue_wait and queue_reply in one: the outcome. */
int queue_finish(struct queue_client *q, const char *envelope, size_t len, const char *qid,
		 char *reply, size_t replysize);

#endif
