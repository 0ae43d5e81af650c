/* spool_fuzz: lib/spool.c's spool_read_envelope on any spool file, TERN1
 * or TERN2, and spool_check_message on any mess/ID.
 *
 * Each input is read three times from a memfd: as a whole spool file
 * (footer and all); as a TERN1 envelope block behind a short message with a
 * footer that fits; and as a TERN2 envelope block with a footer that fits,
 * CRC and all, so the fuzzer reaches the block parser without forging sizes
 * or CRCs.  On a file that reads without error the reader either refuses it
 * (EBADMSG) or returns an envelope whose strings all lie inside its block,
 * whose sizes add up to the file's, whose footer is exactly the one the
 * writer of its format would write, and which that writer writes back into
 * a file that reads as the same envelope.  The input as mess/ID passes
 * spool_check_message exactly when its length and CRC-32C are the
 * envelope's. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crc32c.h"
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

/* A footer is read only in the one form its writer writes. */
static void check_footer(int fd, uint64_t size, const struct envelope *env, size_t envlen)
{
	char footer[SPOOL_FOOTER2_SIZE], want[SPOOL_FOOTER2_SIZE + 1];
	size_t flen = env->format == SPOOL_FORMAT_V2 ? SPOOL_FOOTER2_SIZE : SPOOL_FOOTER_SIZE;

	FUZZ_CHECK(pread(fd, footer, flen, (off_t)(size - flen)) == (ssize_t)flen);
	if (env->format == SPOOL_FORMAT_V1) {
		snprintf(want, sizeof want, "TERN1 %016" PRIx64 " %08zx\n", env->msglen, envlen);
	} else {
		FUZZ_CHECK(env->format == SPOOL_FORMAT_V2);
		snprintf(want, sizeof want, "TERN2 %016" PRIx64 " %08zx %08" PRIx32 " ",
			 env->msglen, envlen, env->msgcrc);
		char *block = malloc(envlen ? envlen : 1);
		FUZZ_CHECK(block != NULL);
		FUZZ_CHECK(pread(fd, block, envlen, 0) == (ssize_t)envlen);
		uint32_t crc = crc32c_update(crc32c_update(0, block, envlen), want, 41);
		free(block);
		snprintf(want + 41, sizeof want - 41, "%08" PRIx32 "\n", crc);
	}
	FUZZ_CHECK(memcmp(footer, want, flen) == 0);
}

static void check_same(const struct envelope *a, const struct envelope *b)
{
	FUZZ_CHECK(a->format == b->format);
	FUZZ_CHECK(a->msgcrc == b->msgcrc);
	FUZZ_CHECK(a->queued == b->queued);
	FUZZ_CHECK(a->msglen == b->msglen);
	FUZZ_CHECK(strcmp(a->sender, b->sender) == 0);
	FUZZ_CHECK(a->nrcpts == b->nrcpts);
	for (size_t i = 0; i < a->nrcpts; i++)
		FUZZ_CHECK(strcmp(a->rcpts[i], b->rcpts[i]) == 0);
}

/* Writes ENV back, in its format, and reads it again. */
static void check_round_trip(const struct envelope *env)
{
	static const char message[64];
	struct envelope again;
	int written;

	if (env->format == SPOOL_FORMAT_V1 && env->msglen > sizeof message)
		return;
	int fd = memfd_with(message, env->format == SPOOL_FORMAT_V1 ? (size_t)env->msglen : 0,
			    "", 0);
	if (fd < 0)
		return;
	if (env->format == SPOOL_FORMAT_V1)
		written = spool_write_envelope(fd, env->msglen, env->queued, env->sender,
					       env->rcpts, env->nrcpts);
	else
		written = spool_write_envelope_file(fd, env->msglen, env->msgcrc, env->queued,
						    env->sender, env->rcpts, env->nrcpts);
	if (written == 0) {
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
	size_t envlen;
	if (env.format == SPOOL_FORMAT_V2) {
		FUZZ_CHECK(size >= SPOOL_FOOTER2_SIZE);
		envlen = (size_t)(size - SPOOL_FOOTER2_SIZE);
	} else {
		FUZZ_CHECK(env.format == SPOOL_FORMAT_V1);
		FUZZ_CHECK(env.msglen <= size - SPOOL_FOOTER_SIZE);
		envlen = (size_t)(size - SPOOL_FOOTER_SIZE - env.msglen);
	}
	FUZZ_CHECK(envlen <= SPOOL_ENVELOPE_MAX);
	FUZZ_CHECK(env.block != NULL && env.sender != NULL);
	FUZZ_CHECK(env.nrcpts == 0 || env.rcpts != NULL);
	check_footer(fd, size, &env, envlen);
	check_inside(&env, envlen, env.sender);
	for (size_t i = 0; i < env.nrcpts; i++)
		check_inside(&env, envlen, env.rcpts[i]);
	check_round_trip(&env);
	spool_free_envelope(&env);
}

/* DATA as a TERN2 block with the footer its writer would give it, for a
 * message of LEN octets with CRC MSGCRC. */
static void fuzz_v2_block(const uint8_t *data, size_t size, uint64_t len, uint32_t msgcrc)
{
	char footer[SPOOL_FOOTER2_SIZE + 1];

	snprintf(footer, sizeof footer, "TERN2 %016" PRIx64 " %08zx %08" PRIx32 " ", len, size,
		 msgcrc);
	uint32_t crc = crc32c_update(crc32c_update(0, data, size), footer, 41);
	snprintf(footer + 41, sizeof footer - 41, "%08" PRIx32 "\n", crc);
	int fd = memfd_with(data, size, footer, SPOOL_FOOTER2_SIZE);
	if (fd < 0)
		return;
	fuzz_file(fd, size + SPOOL_FOOTER2_SIZE);
	close(fd);
}

/* DATA as mess/ID: whole for its own CRC, torn for another. */
static void fuzz_message(const uint8_t *data, size_t size)
{
	struct envelope env = { .format = SPOOL_FORMAT_V2, .msglen = size };
	int fd = memfd_with(data, size, "", 0);

	if (fd < 0)
		return;
	env.msgcrc = crc32c_update(0, data, size);
	FUZZ_CHECK(spool_check_message(fd, &env) == 0);
	env.msgcrc ^= 1;
	FUZZ_CHECK(spool_check_message(fd, &env) == -1 && errno == EBADMSG);
	env.msgcrc ^= 1;
	env.msglen = size + 1;
	FUZZ_CHECK(spool_check_message(fd, &env) == -1 && errno == EBADMSG);
	close(fd);
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

	/* the input as a TERN2 block, and as the message it describes */
	fuzz_v2_block(data, size, 3, crc32c_update(0, "hi\n", 3));
	fuzz_message(data, size);
	return 0;
}
