/* spool: the on-disk queue that tern-queue fills and tern-deliver drains.
 *
 *   tmp/ID        tern-queue writes an envelope file here; never seen by
 *                 delivery
 *   mess/ID       the message alone (TERN2): written by tern-queue before
 *                 its envelope is linked into incoming/; removed with it
 *   incoming/ID   committed envelope files (linked here from tmp/)
 *   queue/ID      taken in by tern-deliver (linked from incoming/, queue/
 *                 fsync'd, then unlinked from incoming/)
 *   state/ID      tern-deliver's record of each recipient's outcome
 *                 (replaced whole: state/ID.tmp, fsync, rename, fsync)
 *   control/      ternctl's requests and tern-deliver's counters
 *   trigger       FIFO: any byte written wakes tern-deliver
 *   public/queue  the queue service's socket (tern-deliver binds it)
 *
 * Two formats of the file in tmp/, incoming/ and queue/ are read:
 *
 * TERN2 (written now): the envelope block ("time T\nfrom ADDR\nrcpt
 * ADDR\n...") then a 50-octet footer "TERN2 <msglen:16 hex> <envlen:8 hex>
 * <msgcrc:8 hex> <envcrc:8 hex>\n".  The message (LF line ends) is mess/ID,
 * msglen octets whose CRC-32C is msgcrc; envcrc is the CRC-32C of the block
 * and of the footer up to envcrc.  So a worker may be handed mess/ID
 * without learning the other recipients, and a file torn by a crash
 * (short, zeroed blocks, another file's blocks) never passes for a whole
 * one, even if it was linked into place before its fsync.
 *
 * TERN1 (written before): the message, then the envelope block, then a
 * 32-octet footer "TERN1 <msglen:16 hex> <envlen:8 hex>\n", all in one
 * file; a file whose size does not match its footer is not a message.
 *
 * See tern-queue(8) for why a crash anywhere loses nothing. */
#ifndef TERN_SPOOL_H
#define TERN_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The spool's folders and its trigger, by name: every program uses these. */
#define SPOOL_TMP "tmp"
#define SPOOL_MESS "mess"
#define SPOOL_INCOMING "incoming"
#define SPOOL_QUEUE "queue"
#define SPOOL_STATE "state"
#define SPOOL_CONTROL "control"
#define SPOOL_TRIGGER "trigger"
#define SPOOL_PUBLIC "public"	/* the queue socket's folder: 0711 */
#define SPOOL_QUEUE_SOCKET "queue"	/* public/queue, queue_socket's default */

#define SPOOL_FOOTER_SIZE 32	/* TERN1 */
#define SPOOL_FOOTER2_SIZE 50	/* TERN2 */
#define SPOOL_ENVELOPE_MAX (16u << 20)
#define SPOOL_RCPTS_MAX 10000	/* recipients one message may have */
#define SPOOL_ERROR_MAX 400
#define SPOOL_TMP_MAX_AGE (36 * 3600)	/* leftovers of a crash, as qmail */

enum spool_format {
	SPOOL_FORMAT_V1 = 1,	/* TERN1: message and envelope in one file */
	SPOOL_FORMAT_V2 = 2,	/* TERN2: the envelope; the message is mess/ID */
};

struct envelope {
	enum spool_format format;
	time_t queued;
	char *sender;		/* "" for <> */
	char **rcpts;
	size_t nrcpts;
	uint64_t msglen;
	uint32_t msgcrc;	/* TERN2: the CRC-32C of mess/ID */
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

/* Writes the TERN2 envelope file at FD's offset (a new file in tmp/): the
 * block and a footer for a message of MSGLEN octets in mess/ID whose
 * CRC-32C is MSGCRC (crc32c.h).  -1 with EMSGSIZE if the block would be
 * over SPOOL_ENVELOPE_MAX, which spool_read_envelope refuses (a permanent
 * refusal); -1 with any other errno (EFBIG, ENOSPC, EIO, ENOMEM) is a
 * failure to write, which may pass. */
int spool_write_envelope_file(int fd, uint64_t msglen, uint32_t msgcrc, time_t queued,
			      const char *sender, char *const *rcpts, size_t nrcpts);
/* The TERN1 writer: appends the envelope block and footer to FD,
 * positioned after MSGLEN message octets.  Errors as above. */
int spool_write_envelope(int fd, uint64_t msglen, time_t queued, const char *sender,
			 char *const *rcpts, size_t nrcpts);
/* Reads a TERN2 or TERN1 file: 0 with *ENV filled (its format said; free
 * with spool_free_envelope); -1 with EBADMSG for a file that is not a
 * whole envelope (for TERN2: its envelope CRC checked, not the message's),
 * -1 with another errno for a failure to read it (which may pass). */
int spool_read_envelope(int fd, struct envelope *env);
void spool_free_envelope(struct envelope *env);

/* Opens a file in the spool for reading without following a symbolic
 * link or blocking on a FIFO: the descriptor, -1 with errno set, or
 * SPOOL_NOT_REGULAR (nothing left open) for anything but a regular file,
 * which no tern program ever reads. */
#define SPOOL_NOT_REGULAR (-2)
int spool_open(const char *path);

/* Opens the message of ID, whose envelope file (in DIR) is in FORMAT and
 * says it is MSGLEN octets, to be read from offset 0 for MSGLEN octets.
 * TERN2: mess/ID (by spool_open), its size checked (-1 with EBADMSG if it
 * is not MSGLEN; with ENOENT if it is missing).  TERN1: DIR/ID itself,
 * where the envelope follows the message, so a caller that hands the
 * message to another identity must copy the MSGLEN octets first.
 * SPOOL_NOT_REGULAR as spool_open. */
int spool_open_message(const char *spool, const char *dir, const char *id,
		       enum spool_format format, uint64_t msglen);
/* Reads FD (from spool_open_message) whole and checks that it is the
 * message ENV describes: 0; -1 with EBADMSG for a torn one (length or
 * CRC-32C differ); -1 with another errno for a failure to read.  TERN1
 * files have no CRC: 0 at once. */
int spool_check_message(int fd, const struct envelope *env);

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
