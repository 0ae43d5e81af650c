/* queue_client: runs tern-queue (or $QMAILQUEUE) for one message.
 *
 * Promises: the message goes in through a pipe as it arrives; the envelope
 * is written only when the message is whole, so an aborted message (a fault,
 * a dropped client, a killed tern-smtpd) reaches tern-queue as an envelope
 * cut short, and tern-queue queues nothing.  queue_finish() turns the exit
 * code into the SMTP reply qmail-queue's protocol implies. */
#ifndef TERN_QUEUE_CLIENT_H
#define TERN_QUEUE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define QUEUE_REPLY_MAX 512

struct queue_client {
	pid_t pid;
	int message_fd;
	int envelope_fd;
	int custom_fd;		/* fd 6 of the child: text for exit 82 */
	bool broken;		/* a write to it failed */
};

/* QID goes to the child as TERN_QID; CONFIG as TERN_CONFIG. */
int queue_start(struct queue_client *q, const char *qid, const char *config);
void queue_write(struct queue_client *q, const char *buf, size_t len);
/* Sends the envelope (ENVELOPE, LEN octets, in qmail-queue form), waits,
 * and writes the reply into REPLY; returns the exit code (-1 if killed). */
int queue_finish(struct queue_client *q, const char *envelope, size_t len,
		 const char *qid, char *reply, size_t replysize);
/* Drops the message: tern-queue sees no envelope and removes it. */
void queue_abort(struct queue_client *q);

#endif
