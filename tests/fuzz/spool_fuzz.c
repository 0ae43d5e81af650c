/* spool_fuzz: lib/spool.c's spool_read_envelope on any message file.
 *
 * Each input is read twice from a memfd: as a whole spool file (footer and
 * all), and as an envelope block behind a short message with a footer that
 * fits, so the fuzzer reaches the block parser without forging sizes.  On a
 * file that reads without error the reader either refuses it (EBADMSG) or
 * returns an envelope whose strings all lie inside its block, whose sizes
 * add up to the file's, whose footer is exactly the one the writer would
 * write, and which spool_write_envelope writes back into a file that reads
 * as the same envelope. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "spool.h"
#include "util.h"

static int memfd_with(const void *a, size_t alen, const void *b, size_t blen)
{
	int fd = memfd_create("spool_fuzz", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (write_all(fd, a, alen) < 0 || write_all(fd, b, blen) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* S is a NUL-terminated string that starts and ends inside ENV's block. */
static void check_inside(const struct envelope *env, size_t envlen, const char *s)
{
	FUZZ_CHECK(s >= env->block && s <= env->block + envlen);
	const char *nul = memchr(s, '\0', (size_t)(env->block + envlen + 1 - s));
	FUZZ_CHECK(nul != NULL);
	FUZZ_CHECK(memchr(s, '\n', (size_t)(nul - s)) == NULL);
}

/* A footer is read only in the one form spool_write_envelope writes. */
static void check_footer(int fd, uint64_t size, uint64_t msglen, size_t envlen)
{
	char footer[SPOOL_FOOTER_SIZE], want[SPOOL_FOOTER_SIZE + 1];

	FUZZ_CHECK(pread(fd, footer, sizeof footer, (off_t)(size - sizeof footer)) ==
		   (ssize_t)sizeof footer);
	snprintf(want, sizeof want, "TERN1 %016" PRIx64 " %08zx\n", msglen, envlen);
	FUZZ_CHECK(memcmp(footer, want, sizeof footer) == 0);
}

static void check_same(const struct envelope *a, const struct envelope *b)
{
	FUZZ_CHECK(a->queued == b->queued);
	FUZZ_CHECK(a->msglen == b->msglen);
	FUZZ_CHECK(strcmp(a->sender, b->sender) == 0);
	FUZZ_CHECK(a->nrcpts == b->nrcpts);
	for (size_t i = 0; i < a->nrcpts; i++)
		FUZZ_CHECK(strcmp(a->rcpts[i], b->rcpts[i]) == 0);
}

/* Writes ENV back after MSGLEN octets of message and reads it again. */
static void check_round_trip(const struct envelope *env)
{
	static const char message[64];
	struct envelope again;

	if (env->msglen > sizeof message)
		return;
	int fd = memfd_with(message, (size_t)env->msglen, "", 0);
	if (fd < 0)
		return;
	if (spool_write_envelope(fd, env->msglen, env->queued, env->sender, env->rcpts,
				 env->nrcpts) == 0) {
		FUZZ_CHECK(spool_read_envelope(fd, &again) == 0);
		check_same(env, &again);
		spool_free_envelope(&again);
	}
	close(fd);
}

static void fuzz_file(int fd, uint64_t size)
{
	struct envelope env;

	if (spool_read_envelope(fd, &env) < 0) {
		FUZZ_CHECK(errno == EBADMSG);	/* a memfd never fails to read */
		FUZZ_CHECK(env.block == NULL && env.rcpts == NULL);
		return;
	}
	size_t envlen = (size_t)(size - SPOOL_FOOTER_SIZE - env.msglen);
	FUZZ_CHECK(env.msglen <= size - SPOOL_FOOTER_SIZE);
	FUZZ_CHECK(envlen <= SPOOL_ENVELOPE_MAX);
	FUZZ_CHECK(env.block != NULL && env.sender != NULL);
	FUZZ_CHECK(env.nrcpts == 0 || env.rcpts != NULL);
	check_footer(fd, size, env.msglen, envlen);
	check_inside(&env, envlen, env.sender);
	for (size_t i = 0; i < env.nrcpts; i++)
		check_inside(&env, envlen, env.rcpts[i]);
	check_round_trip(&env);
	spool_free_envelope(&env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char footer[SPOOL_FOOTER_SIZE + 1];

	int fd = memfd_with(data, size, "", 0);
	if (fd >= 0) {
		fuzz_file(fd, size);
		close(fd);
	}

	/* the input as the block after a 3-octet message */
	snprintf(footer, sizeof footer, "TERN1 %016" PRIx64 " %08zx\n", (uint64_t)3, size);
	char *file = malloc(3 + size);
	if (file == NULL)
		return 0;
	memcpy(file, "hi\n", 3);
	memcpy(file + 3, data, size);
	fd = memfd_with(file, 3 + size, footer, SPOOL_FOOTER_SIZE);
	free(file);
	if (fd >= 0) {
		fuzz_file(fd, 3 + size + SPOOL_FOOTER_SIZE);
		close(fd);
	}
	return 0;
}
