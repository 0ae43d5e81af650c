/* spool_fill: puts COUNT messages straight into a spool for make bench,
 * through lib/spool.h (so that a change of the spool's format follows),
 * as if tern-queue had committed them and tern-deliver had taken them in
 * and deferred every recipient once: mess/ID and queue/ID (TERN2) plus a
 * state/ID whose one recipient is deferred until RETRY_S seconds from now.
 *
 * Usage: spool_fill SPOOL COUNT SIZE SENDER RCPT RETRY_S [SHARD NSHARDS]
 * Writes the messages whose number modulo NSHARDS is SHARD (0 and 1 by
 * default), so that several processes share the journal's commits.  The
 * message files are not fsync'd one by one (a bench fixture, not mail):
 * the caller syncs the file system once when all are written. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "spool.h"
#include "util.h"

#define FILL_LINE_LENGTH 76
#define FILL_ERROR "Maildir not writable (bench fixture)"

struct fill {
	const char *spool;
	unsigned long count;
	size_t size;
	char *sender;
	char *rcpt;
	long retry_s;
	unsigned long shard, nshards;
	char *message;	/* SIZE octets, LF line ends */
	uint32_t crc;	/* its CRC-32C */
};

/* A header, then lines of letters up to *SIZE octets (raised to fit the
 * header), the last ending in LF. */
static char *make_message(size_t *sizep)
{
	static const char header[] = "From: bench@client.test\nSubject: queued by spool_fill\n\n";
	size_t head = sizeof header - 1;

	if (*sizep < head + 2)
		*sizep = head + 2;
	size_t size = *sizep;
	char *m = malloc(size);
	if (m == NULL)
		return NULL;
	memcpy(m, header, head);
	for (size_t i = head; i < size; i++)
		m[i] = (i - head) % (FILL_LINE_LENGTH + 1) == FILL_LINE_LENGTH ? '\n' : 'x';
	m[size - 1] = '\n';
	return m;
}

/* A file in FOLDER/ID holding LEN octets of DATA, unlinked again on failure. */
static int write_file(const struct fill *f, const char *folder, const char *id,
		      const void *data, size_t len)
{
	char path[4096];

	if (spool_path(path, sizeof path, f->spool, folder, id) < 0)
		return -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write_all(fd, data, len) < 0 || close(fd) < 0) {
		unlink(path);
		return -1;
	}
	return 0;
}

/* TERN2, as tern-queue writes it: mess/ID, then the envelope file in
 * queue/ (as if tern-deliver had taken it in). */
static int write_message(const struct fill *f, const char *id, time_t now)
{
	char tmp[4096], queued[4096];

	if (write_file(f, SPOOL_MESS, id, f->message, f->size) < 0 ||
	    spool_path(tmp, sizeof tmp, f->spool, SPOOL_TMP, id) < 0 ||
	    spool_path(queued, sizeof queued, f->spool, SPOOL_QUEUE, id) < 0)
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (spool_write_envelope_file(fd, f->size, f->crc, now, f->sender, &f->rcpt, 1) < 0) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) < 0 || link(tmp, queued) < 0) {
		unlink(tmp);
		return -1;
	}
	return unlink(tmp);
}

static int write_deferred_state(const struct fill *f, const char *id, time_t now)
{
	struct rcpt_record r = {
		.addr = f->rcpt, .orcpt = f->rcpt, .state = RCPT_DEFERRED,
		.next_try = now + f->retry_s, .attempts = 1,
	};

	str_copy(r.last_error, sizeof r.last_error, FILL_ERROR);
	return spool_write_state(f->spool, id, &r, 1);
}

static int fill_spool(const struct fill *f)
{
	char id[QID_MAX];
	time_t now = time(NULL);

	for (unsigned long i = f->shard; i < f->count; i += f->nshards) {
		snprintf(id, sizeof id, "Bench%09lu", i);
		if (write_message(f, id, now) < 0 || write_deferred_state(f, id, now) < 0) {
			fprintf(stderr, "spool_fill: %s: %s\n", id, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int parse_number(const char *text, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(text, &end, 10);
	return errno != 0 || end == text || *end != '\0' ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct fill f = { .nshards = 1 };
	unsigned long size, retry;

	if ((argc != 7 && argc != 9) || parse_number(argv[2], &f.count) < 0 ||
	    parse_number(argv[3], &size) < 0 || parse_number(argv[6], &retry) < 0 ||
	    (argc == 9 && (parse_number(argv[7], &f.shard) < 0 ||
			   parse_number(argv[8], &f.nshards) < 0 || f.nshards == 0))) {
		fprintf(stderr, "usage: spool_fill SPOOL COUNT SIZE SENDER RCPT RETRY_S "
			"[SHARD NSHARDS]\n");
		return 2;
	}
	f.spool = argv[1];
	f.size = size;
	f.sender = argv[4];
	f.rcpt = argv[5];
	f.retry_s = (long)retry;
	f.message = make_message(&f.size);
	if (f.message == NULL) {
		fprintf(stderr, "spool_fill: out of memory\n");
		return 1;
	}
	f.crc = crc32c_update(0, f.message, f.size);
	int r = fill_spool(&f);
	free(f.message);
	return r < 0 ? 1 : 0;
}
