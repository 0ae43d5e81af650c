/* spool: the on-disk queue that tern-queue fills and tern-deliver drains.
 *
 *   tmp/ID        tern-queue writes here; never seen by delivery
 *   incoming/ID   committed (linked here after fsync; dir fsync'd)
 *   queue/ID      taken in by tern-deliver (linked from incoming/, queue/
 *                 fsync'd, then unlinked from incoming/)
 *   state/ID      tern-deliver's record of each recipient's outcome
 *                 (replaced whole: state/ID.tmp, fsync, rename, fsync)
 *   control/      ternctl's requests and tern-deliver's counters
 *   trigger       FIFO: any byte written wakes tern-deliver
 *
 * A message file is the message (LF line ends), then the envelope block
 * ("time T\nfrom ADDR\nrcpt ADDR\n..."), then a 32-octet footer
 * "TERN1 <msglen:16 hex> <envlen:8 hex>\n".  A file whose size does not
 * match its footer is not a message: spool_read_envelope() refuses it.
 * See tern-queue(8) for why a crash anywhere loses nothing. */
#ifndef TERN_SPOOL_H
#define TERN_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The spool's folders and its trigger, by name: every program uses these. */
#define SPOOL_TMP "tmp"
#define SPOOL_INCOMING "incoming"
#define SPOOL_QUEUE "queue"
#define SPOOL_STATE "state"
#define SPOOL_CONTROL "control"
#define SPOOL_TRIGGER "trigger"

#define SPOOL_FOOTER_SIZE 32
#define SPOOL_ENVELOPE_MAX (16u << 20)
#define SPOOL_RCPTS_MAX 10000	/* recipients one message may have */
#define SPOOL_ERROR_MAX 400
#define SPOOL_TMP_MAX_AGE (36 * 3600)	/* leftovers of a crash, as qmail */

struct envelope {
	time_t queued;
	char *sender;		/* "" for <> */
	char **rcpts;
	size_t nrcpts;
	uint64_t msglen;
	char *block;		/* owns the strings above */
};

enum rcpt_state {
	RCPT_PENDING, RCPT_DEFERRED, RCPT_HELD, RCPT_DELIVERED,
	RCPT_FAILED,		/* permanent failure; its DSN not yet queued */
	RCPT_BOUNCED,		/* DSN queued (or none owed) */
	RCPT_EXPANDED,		/* an alias, replaced by its targets */
};

struct rcpt_record {
	char *addr;		/* the address delivered to */
	char *orcpt;		/* the envelope recipient it came from */
	enum rcpt_state state;
	time_t next_try;
	unsigned attempts;
	unsigned hops;		/* alias expansions that led here */
	bool warned;		/* a delay notice went to the sender */
	char last_error[SPOOL_ERROR_MAX];
};

int spool_path(char *out, size_t outsize, const char *spool, const char *dir,
	       const char *id);
/* Creates the folders and the trigger FIFO that are missing. */
int spool_create(const char *spool);

/* Appends the envelope block and footer to FD, positioned after MSGLEN
 * message octets.  -1 with EMSGSIZE if the block would be over
 * SPOOL_ENVELOPE_MAX, which spool_read_envelope refuses (a permanent
 * refusal); -1 with any other errno (EFBIG, ENOSPC, EIO, ENOMEM) is a
 * failure to write, which may pass. */
int spool_write_envelope(int fd, uint64_t msglen, time_t queued, const char *sender,
			 char *const *rcpts, size_t nrcpts);
/* 0 with *ENV filled (free with spool_free_envelope); -1 with EBADMSG for
 * a file that is not a whole message, -1 with another errno for a failure
 * to read it (which may pass). */
int spool_read_envelope(int fd, struct envelope *env);
void spool_free_envelope(struct envelope *env);

/* Opens a file in the spool for reading without following a symbolic
 * link or blocking on a FIFO: the descriptor, -1 with errno set, or
 * SPOOL_NOT_REGULAR (nothing left open) for anything but a regular file,
 * which no tern program ever reads. */
#define SPOOL_NOT_REGULAR (-2)
int spool_open(const char *path);

const char *rcpt_state_name(enum rcpt_state s);
/* Replaces state/ID whole and durably (lib/atomic.h), via state/ID.tmp. */
int spool_write_state(const char *spool, const char *id,
		      const struct rcpt_record *r, size_t n);
/* Reads state/ID: 1 with *R and *N filled (free with spool_free_state),
 * 0 if there is none, -1 with EBADMSG if it is not a state file (or not a
 * regular file), -1 with another errno if it could not be read now. */
int spool_read_state(const char *spool, const char *id,
		     struct rcpt_record **r, size_t *n);
void spool_free_state(struct rcpt_record *r, size_t n);

/* Writes one byte into the trigger FIFO; fine if nobody listens (or if
 * it is missing or not a FIFO: tern-deliver rescans incoming/ anyway). */
void spool_poke(const char *spool);

#endif
