#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "crc32c.h"
#include "util.h"

static const char *const spool_dirs[] = {
	SPOOL_TMP, SPOOL_MESS, SPOOL_INCOMING, SPOOL_QUEUE, SPOOL_STATE, SPOOL_CONTROL, NULL,
};

int spool_create(const char *spool)
{
	char path[4096];

	if (mkdir(spool, 0700) < 0 && errno != EEXIST)
		return -1;
	for (size_t i = 0; spool_dirs[i] != NULL; i++) {
		if (spool_path(path, sizeof path, spool, spool_dirs[i], NULL) < 0)
			return -1;
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	if (spool_path(path, sizeof path, spool, SPOOL_TRIGGER, NULL) < 0)
		return -1;
	if (mkfifo(path, 0600) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* The envelope block, with room for FOOTER octets after it: *LEN is the
 * block's length.  NULL with EMSGSIZE over SPOOL_ENVELOPE_MAX, ENOMEM. */
static char *make_block(time_t queued, const char *sender, char *const *rcpts,
			size_t nrcpts, size_t footer, size_t *len)
{
	size_t size = 64 + strlen(sender);
	for (size_t i = 0; i < nrcpts; i++)
		size += 6 + strlen(rcpts[i]);
	if (size > SPOOL_ENVELOPE_MAX) {
		errno = EMSGSIZE;
		return NULL;
	}
	char *block = malloc(size + footer + 1);
	if (block == NULL)
		return NULL;
	size_t n = (size_t)snprintf(block, size, "time %lld\nfrom %s\n",
				    (long long)queued, sender);
	for (size_t i = 0; i < nrcpts; i++)
		n += (size_t)snprintf(block + n, size - n, "rcpt %s\n", rcpts[i]);
	*len = n;
	return block;
}

int spool_write_envelope(int fd, uint64_t msglen, time_t queued, const char *sender,
			 char *const *rcpts, size_t nrcpts)
{
	size_t n;
	char *block = make_block(queued, sender, rcpts, nrcpts, SPOOL_FOOTER_SIZE, &n);
	if (block == NULL)
		return -1;
	snprintf(block + n, SPOOL_FOOTER_SIZE + 1, "TERN1 %016" PRIx64 " %08zx\n",
		 msglen, n);
	int r = write_all(fd, block, n + SPOOL_FOOTER_SIZE);
	free(block);
	return r;
}

/* The TERN2 footer's envelope CRC covers the block and the footer up to
 * the CRC itself: "TERN2 msglen envlen msgcrc ". */
#define FOOTER2_COVERED 41

int spool_write_envelope_file(int fd, uint64_t msglen, uint32_t msgcrc, time_t queued,
			      const char *sender, char *const *rcpts, size_t nrcpts)
{
	size_t n;
	char *block = make_block(queued, sender, rcpts, nrcpts, SPOOL_FOOTER2_SIZE, &n);
	if (block == NULL)
		return -1;
	snprintf(block + n, FOOTER2_COVERED + 1, "TERN2 %016" PRIx64 " %08zx %08" PRIx32 " ",
		 msglen, n, msgcrc);
	uint32_t envcrc = crc32c_update(0, block, n + FOOTER2_COVERED);
	snprintf(block + n + FOOTER2_COVERED, SPOOL_FOOTER2_SIZE - FOOTER2_COVERED + 1,
		 "%08" PRIx32 "\n", envcrc);
	int r = write_all(fd, block, n + SPOOL_FOOTER2_SIZE);
	free(block);
	return r;
}

static bool lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Exactly what spool_write_envelope writes: no signs, spaces or 0x. */
static int parse_footer(const char *footer, uint64_t *msglen, size_t *envlen)
{
	if (memcmp(footer, "TERN1 ", 6) != 0 || !lower_hex(footer + 6, 16) ||
	    footer[22] != ' ' || !lower_hex(footer + 23, 8) ||
	    footer[SPOOL_FOOTER_SIZE - 1] != '\n')
		return -1;
	*msglen = strtoull(footer + 6, NULL, 16);
	*envlen = (size_t)strtoul(footer + 23, NULL, 16);
	return 0;
}

/* Exactly what spool_write_envelope_file writes. */
static int parse_footer2(const char *footer, uint64_t *msglen, size_t *envlen,
			 uint32_t *msgcrc, uint32_t *envcrc)
{
	if (memcmp(footer, "TERN2 ", 6) != 0 || !lower_hex(footer + 6, 16) ||
	    footer[22] != ' ' || !lower_hex(footer + 23, 8) || footer[31] != ' ' ||
	    !lower_hex(footer + 32, 8) || footer[40] != ' ' || !lower_hex(footer + 41, 8) ||
	    footer[SPOOL_FOOTER2_SIZE - 1] != '\n')
		return -1;
	*msglen = strtoull(footer + 6, NULL, 16);
	*envlen = (size_t)strtoul(footer + 23, NULL, 16);
	*msgcrc = (uint32_t)strtoul(footer + 32, NULL, 16);
	*envcrc = (uint32_t)strtoul(footer + 41, NULL, 16);
	return 0;
}

static int parse_block(struct envelope *env, size_t len)
{
	size_t cap = 8;
	char *p = env->block, *end = env->block + len;

	env->rcpts = malloc(cap * sizeof *env->rcpts);
	if (env->rcpts == NULL)
		return -1;
	env->sender = NULL;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return -1;
		*nl = '\0';
		if (strncmp(p, "time ", 5) == 0) {
			env->queued = (time_t)strtoll(p + 5, NULL, 10);
		} else if (strncmp(p, "from ", 5) == 0) {
			env->sender = p + 5;
		} else if (strncmp(p, "rcpt ", 5) == 0) {
			if (env->nrcpts == cap) {
				cap *= 2;
				char **more = realloc(env->rcpts, cap * sizeof *more);
				if (more == NULL)
					return -1;
				env->rcpts = more;
			}
			env->rcpts[env->nrcpts++] = p + 5;
		} else {
			return -1;
		}
		p = nl + 1;
	}
	return env->sender == NULL ? -1 : 0;
}

/* Reads ENVLEN octets of block at AT into ENV and parses them, first
 * checking them against ENVCRC when FOOTER2 (a TERN2 footer) is given: 0,
 * -1 with EBADMSG (freed), -1 with another errno (freed). */
static int read_block(int fd, off_t at, size_t envlen, struct envelope *env,
		      const char *footer2, uint32_t envcrc)
{
	env->block = malloc(envlen + 1);
	if (env->block == NULL)
		return -1;
	if (pread(fd, env->block, envlen, at) != (ssize_t)envlen) {
		spool_free_envelope(env);
		return -1;
	}
	env->block[envlen] = '\0';
	if (footer2 != NULL) {
		uint32_t crc = crc32c_update(0, env->block, envlen);
		crc = crc32c_update(crc, footer2, FOOTER2_COVERED);
		if (crc != envcrc)
			goto malformed;
	}
	if (parse_block(env, envlen) < 0)
		goto malformed;
	return 0;
malformed:
	spool_free_envelope(env);
	errno = EBADMSG;
	return -1;
}

static int read_v1(int fd, off_t size, struct envelope *env, const char *footer)
{
	size_t envlen;
	off_t at = size - SPOOL_FOOTER_SIZE;

	if (parse_footer(footer, &env->msglen, &envlen) < 0 || envlen > SPOOL_ENVELOPE_MAX ||
	    envlen > (uint64_t)at || env->msglen != (uint64_t)at - envlen) {
		errno = EBADMSG;
		return -1;
	}
	env->format = SPOOL_FORMAT_V1;
	return read_block(fd, (off_t)env->msglen, envlen, env, NULL, 0);
}

/* FOOTER: the file's last SPOOL_FOOTER2_SIZE octets. */
static int read_v2(int fd, off_t size, struct envelope *env, const char *footer)
{
	size_t envlen;
	uint32_t envcrc;

	if (parse_footer2(footer, &env->msglen, &envlen, &env->msgcrc, &envcrc) < 0 ||
	    envlen > SPOOL_ENVELOPE_MAX || (uint64_t)size != envlen + SPOOL_FOOTER2_SIZE) {
		errno = EBADMSG;
		return -1;
	}
	env->format = SPOOL_FORMAT_V2;
	return read_block(fd, 0, envlen, env, footer, envcrc);
}

/* The tail is read once, as long as a TERN2 footer when the file is.  A
 * TERN1 file ends in "TERN1 "-led 32 octets; a TERN2 file has hex digits
 * there (its msglen), so the two can never be taken for each other. */
int spool_read_envelope(int fd, struct envelope *env)
{
	struct stat st;
	char tail[SPOOL_FOOTER2_SIZE];

	memset(env, 0, sizeof *env);
	if (fstat(fd, &st) < 0)
		return -1;
	if (st.st_size < SPOOL_FOOTER_SIZE) {
		errno = EBADMSG;
		return -1;
	}
	size_t len = st.st_size < SPOOL_FOOTER2_SIZE ? (size_t)st.st_size : sizeof tail;
	if (pread(fd, tail, len, st.st_size - (off_t)len) != (ssize_t)len)
		return -1;
	const char *footer1 = tail + len - SPOOL_FOOTER_SIZE;
	if (memcmp(footer1, "TERN1 ", 6) == 0)
		return read_v1(fd, st.st_size, env, footer1);
	if (len < SPOOL_FOOTER2_SIZE) {
		errno = EBADMSG;
		return -1;
	}
	return read_v2(fd, st.st_size, env, tail);
}

void spool_free_envelope(struct envelope *env)
{
	free(env->rcpts);
	free(env->block);
	memset(env, 0, sizeof *env);
}

static const char *const state_names[] = {
	[RCPT_PENDING] = "pending", [RCPT_DEFERRED] = "deferred",
	[RCPT_HELD] = "held", [RCPT_DELIVERED] = "delivered",
	[RCPT_FAILED] = "failed", [RCPT_BOUNCED] = "bounced",
	[RCPT_EXPANDED] = "expanded",
};

const char *rcpt_state_name(enum rcpt_state s)
{
	return state_names[s];
}

static int state_from_name(const char *name, enum rcpt_state *s)
{
	for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++) {
		if (strcmp(state_names[i], name) == 0) {
			*s = (enum rcpt_state)i;
			return 0;
		}
	}
	return -1;
}

/* Error texts go on one line between tabs. */
static void clean_text(char *out, size_t outsize, const char *in)
{
	size_t n = 0;

	for (; *in && n + 1 < outsize; in++)
		out[n++] = (*in == '\t' || *in == '\n' || *in == '\r') ? ' ' : *in;
	out[n] = '\0';
}

int spool_write_state(const char *spool, const char *id,
		      const struct rcpt_record *r, size_t n)
{
	char path[4096], error[SPOOL_ERROR_MAX];
	char *text = NULL;
	size_t len = 0;

	if (spool_path(path, sizeof path, spool, SPOOL_STATE, id) < 0)
		return -1;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL)
		return -1;
	fprintf(f, "tern-state 1\n");
	for (size_t i = 0; i < n; i++) {
		clean_text(error, sizeof error, r[i].last_error);
		fprintf(f, "%s\t%lld\t%u\t%u\t%s\t%s\t%s\t%s\n", rcpt_state_name(r[i].state),
			(long long)r[i].next_try, r[i].attempts, r[i].hops,
			r[i].warned ? "warned" : "-", r[i].orcpt, r[i].addr, error);
	}
	bool bad = ferror(f) != 0;
	if (fclose(f) != 0 || bad) {
		free(text);
		errno = ENOMEM;
		return -1;
	}
	int result = atomic_replace(path, NULL, text, len, 0600);
	free(text);
	return result;
}

/* -1 with EBADMSG for a malformed line, ENOMEM if out of memory. */
static int parse_state_line(char *line, struct rcpt_record *r)
{
	char *field[8];
	size_t nf = 0;

	for (char *p = line; nf < 8; nf++) {
		field[nf] = p;
		char *tab = strchr(p, '\t');
		if (tab == NULL) {
			nf++;
			break;
		}
		*tab = '\0';
		p = tab + 1;
	}
	memset(r, 0, sizeof *r);
	if (nf != 8 || state_from_name(field[0], &r->state) < 0) {
		errno = EBADMSG;
		return -1;
	}
	r->next_try = (time_t)strtoll(field[1], NULL, 10);
	r->attempts = (unsigned)strtoul(field[2], NULL, 10);
	r->hops = (unsigned)strtoul(field[3], NULL, 10);
	r->warned = strcmp(field[4], "warned") == 0;
	r->orcpt = strdup(field[5]);
	r->addr = strdup(field[6]);
	str_copy(r->last_error, sizeof r->last_error, field[7]);
	if (r->orcpt == NULL || r->addr == NULL) {
		free(r->orcpt);
		free(r->addr);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

int spool_read_state(const char *spool, const char *id,
		     struct rcpt_record **out, size_t *count)
{
	char path[4096], line[8192];
	struct rcpt_record *r = NULL;
	size_t n = 0, cap = 0;

	if (spool_path(path, sizeof path, spool, SPOOL_STATE, id) < 0)
		return -1;
	int fd = spool_open(path);
	if (fd == SPOOL_NOT_REGULAR) {
		errno = EBADMSG;
		return -1;
	}
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	FILE *f = fdopen(fd, "r");
	if (f == NULL) {
		close(fd);
		return -1;
	}
	errno = EBADMSG;
	if (fgets(line, sizeof line, f) == NULL || strcmp(line, "tern-state 1\n") != 0)
		goto bad;
	while (fgets(line, sizeof line, f) != NULL) {
		size_t len = strlen(line);
		errno = EBADMSG;
		if (len == 0 || line[len - 1] != '\n')
			goto bad;
		line[len - 1] = '\0';
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			struct rcpt_record *more = realloc(r, cap * sizeof *r);
			if (more == NULL)
				goto bad;	/* errno is ENOMEM */
			r = more;
		}
		if (parse_state_line(line, &r[n]) < 0)
			goto bad;
		n++;
	}
	if (ferror(f))
		goto bad;	/* errno says why */
	fclose(f);
	*out = r;
	*count = n;
	return 1;
bad:;
	int saved = errno;	/* EBADMSG, or why it could not be read */
	fclose(f);
	spool_free_state(r, n);
	errno = saved;
	return -1;
}

void spool_free_state(struct rcpt_record *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].addr);
		free(r[i].orcpt);
	}
	free(r);
}

int spool_open(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return errno == ELOOP ? SPOOL_NOT_REGULAR : -1;
	if (fstat(fd, &st) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return SPOOL_NOT_REGULAR;
	}
	return fd;
}

int spool_open_message(const char *spool, const char *dir, const char *id,
		       enum spool_format format, uint64_t msglen)
{
	char path[4096];
	struct stat st;
	bool alone = format == SPOOL_FORMAT_V2;

	if (spool_path(path, sizeof path, spool, alone ? SPOOL_MESS : dir, id) < 0)
		return -1;
	int fd = spool_open(path);
	if (fd < 0 || !alone)
		return fd;
	int error = fstat(fd, &st) < 0 ? errno : (uint64_t)st.st_size != msglen ? EBADMSG : 0;
	if (error != 0) {
		close(fd);
		errno = error;
		return -1;
	}
	return fd;
}

#define CHECK_BUFFER (64 * 1024)

int spool_check_message(int fd, const struct envelope *env)
{
	struct stat st;

	if (env->format != SPOOL_FORMAT_V2)
		return 0;
	if (fstat(fd, &st) < 0)
		return -1;
	if ((uint64_t)st.st_size != env->msglen) {
		errno = EBADMSG;
		return -1;
	}
	char *buf = malloc(CHECK_BUFFER);
	if (buf == NULL)
		return -1;
	uint32_t crc = 0;
	uint64_t at = 0;
	while (at < env->msglen) {
		uint64_t left = env->msglen - at;
		ssize_t n = pread(fd, buf, left < CHECK_BUFFER ? (size_t)left : CHECK_BUFFER,
				  (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int saved = n == 0 ? EBADMSG : errno;	/* shrunk under us */
			free(buf);
			errno = saved;
			return -1;
		}
		crc = crc32c_update(crc, buf, (size_t)n);
		at += (uint64_t)n;
	}
	free(buf);
	if (crc != env->msgcrc) {
		errno = EBADMSG;
		return -1;
	}
	return 0;
}

void spool_poke(const char *spool)
{
	char path[4096];
	struct stat st;

	if (spool_path(path, sizeof path, spool, SPOOL_TRIGGER, NULL) < 0)
		return;
	int fd = open(path, O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
		(void)!write(fd, "", 1);
	close(fd);
}
