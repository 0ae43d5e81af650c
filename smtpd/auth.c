#include "auth.h"

#include <crypt.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <resolv.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "util.h"

/* authzid NUL authcid NUL password, each at its longest */
#define PLAIN_MAX ((AUTH_NAME_MAX - 1) * 2 + 2 + (AUTH_PASSWORD_MAX - 1))
/* b64_pton stores the bits of a partial quantum one octet past the last */
#define DECODE_SLACK 3
#define TEXT_MAX AUTH_PASSWORD_MAX
#define TIMESTAMP_MAX (CONF_HOSTNAME_MAX + 64)
#define CHECKPASSWORD_INPUT_MAX (AUTH_NAME_MAX + AUTH_PASSWORD_MAX + TIMESTAMP_MAX)
#define CHILD_FD_FLOOR 4	/* above the fds the child is given */
#define CHECKPASSWORD_GRANTED 0
#define CHECKPASSWORD_DENIED 1
#define WAIT_POLL_FIRST_MS 1
#define WAIT_POLL_MAX_MS 50

/* Hashed in place of an unknown user's hash: yescrypt at libxcrypt's default cost, as
 * ternctl passwd makes them (crypt_gensalt_rn("$y$", 0, ...)). */
static const char dummy_hash[] =
	"$y$j9T$UFNc6prMfRFIl2FJiYrMS.$aMy0Soa0hFqAvb130X8D6PQFfaDd8pUoRwXeG3j6j2.";

/* ---- base64 ---- */

static bool base64_digit(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* The octets B64 decodes to, or -1 if it is not strict, padded base64. */
static long base64_decoded_length(const char *b64)
{
	size_t len = strlen(b64);
	size_t digits = len;

	while (digits > 0 && len - digits < 2 && b64[digits - 1] == '=')
		digits--;
	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < digits; i++)
		if (!base64_digit(b64[i]))
			return -1;
	return (long)(len / 4 * 3 - (len - digits));
}

/* Decodes B64 into BUF (room for MAX octets and DECODE_SLACK); *LEN gets the length. */
static enum auth_decode decode(const char *b64, unsigned char *buf, size_t max, size_t *len)
{
	*len = 0;
	if (strcmp(b64, "=") == 0)
		return AUTH_DECODED;
	long want = base64_decoded_length(b64);
	if (want < 0)
		return AUTH_BAD_BASE64;
	if ((size_t)want > max)
		return AUTH_MALFORMED;
	/* glibc's b64_pton refuses a last quantum with bits set beyond the data */
	int got = b64_pton(b64, buf, max + DECODE_SLACK);
	if (got < 0 || got != want) {
		explicit_bzero(buf, max + DECODE_SLACK);
		return AUTH_BAD_BASE64;
	}
	*len = (size_t)got;
	return AUTH_DECODED;
}

/* Copies the NUL-free LEN octets at IN to OUT as a string, if they fit. */
static bool copy_part(char *out, size_t outsize, const unsigned char *in, size_t len)
{
	if (len >= outsize || memchr(in, '\0', len) != NULL)
		return false;
	memcpy(out, in, len);
	out[len] = '\0';
	return true;
}

static enum auth_decode split_plain(const unsigned char *buf, size_t len,
				    char name[AUTH_NAME_MAX], char password[AUTH_PASSWORD_MAX])
{
	char authzid[AUTH_NAME_MAX];
	const unsigned char *end = buf + len;
	const unsigned char *nul1 = memchr(buf, '\0', len);
	if (nul1 == NULL)
		return AUTH_MALFORMED;
	const unsigned char *nul2 = memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1));
	if (nul2 == NULL)
		return AUTH_MALFORMED;
	if (!copy_part(authzid, sizeof authzid, buf, (size_t)(nul1 - buf)) ||
	    !copy_part(name, AUTH_NAME_MAX, nul1 + 1, (size_t)(nul2 - nul1 - 1)) ||
	    !copy_part(password, AUTH_PASSWORD_MAX, nul2 + 1, (size_t)(end - nul2 - 1)) ||
	    name[0] == '\0')
		return AUTH_MALFORMED;
	if (authzid[0] != '\0' && strcmp(authzid, name) != 0)
		return AUTH_OTHER_IDENTITY;
	return AUTH_DECODED;
}

enum auth_decode auth_decode_plain(const char *b64, char name[AUTH_NAME_MAX],
				   char password[AUTH_PASSWORD_MAX])
{
	unsigned char buf[PLAIN_MAX + DECODE_SLACK];
	size_t len;

	name[0] = '\0';
	password[0] = '\0';
	enum auth_decode r = decode(b64, buf, PLAIN_MAX, &len);
	if (r == AUTH_DECODED)
		r = split_plain(buf, len, name, password);
	explicit_bzero(buf, sizeof buf);
	if (r != AUTH_DECODED)
		explicit_bzero(password, AUTH_PASSWORD_MAX);
	if (r != AUTH_DECODED && r != AUTH_OTHER_IDENTITY)
		name[0] = '\0';
	return r;
}

enum auth_decode auth_decode_text(const char *b64, char *out, size_t outsize)
{
	unsigned char buf[TEXT_MAX + DECODE_SLACK];
	size_t len;

	if (outsize == 0)
		return AUTH_MALFORMED;
	out[0] = '\0';
	enum auth_decode r = decode(b64, buf, TEXT_MAX, &len);
	if (r == AUTH_DECODED && !copy_part(out, outsize, buf, len))
		r = AUTH_MALFORMED;
	explicit_bzero(buf, sizeof buf);
	if (r != AUTH_DECODED)
		explicit_bzero(out, outsize);
	return r;
}

int auth_encode(const char *text, char *out, size_t outsize)
{
	return b64_ntop((const unsigned char *)text, strlen(text), out, outsize);
}

/* ---- the users table ---- */

/* Equal strings, in a time that does not depend on where they differ. */
static bool same_secret(const char *a, const char *b)
{
	size_t alen = strlen(a), blen = strlen(b);
	size_t n = alen > blen ? alen : blen;
	unsigned char diff = alen != blen;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(i < alen ? a[i] : 0) ^ (unsigned char)(i < blen ? b[i] : 0);
	return diff == 0;
}

enum hash_check { HASH_MATCHED, HASH_DIFFERENT, HASH_REFUSED, HASH_NO_LIBRARY };

/* libcrypt is loaded at the first password a session checks, not linked:
 * linked, its archive or its shared object would cost every plaintext
 * session pages or a mapping at exec (make bench's PSS).  It stays loaded;
 * dlopen of a loaded library only counts a reference. */
typedef char *crypt_rn_function(const char *phrase, const char *setting, void *data,
				int size);

static crypt_rn_function *crypt_function(void)
{
	void *lib = dlopen(AUTH_LIBCRYPT, RTLD_NOW | RTLD_LOCAL);

	if (lib == NULL)
		return NULL;
	void *f = dlsym(lib, "crypt_rn");
	crypt_rn_function *out;
	memcpy(&out, &f, sizeof out);	/* ISO C has no object-to-function cast */
	return out;
}

static enum hash_check hash_check(const char *password, const char *hash)
{
	struct crypt_data data;
	crypt_rn_function *crypt_rn_now = crypt_function();

	if (crypt_rn_now == NULL)
		return HASH_NO_LIBRARY;
	memset(&data, 0, sizeof data);
	const char *out = crypt_rn_now(password, hash, &data, sizeof data);
	enum hash_check r = HASH_DIFFERENT;
	/* crypt_rn fails with NULL; a "*" result is a failure token, never a hash */
	if (out == NULL || out[0] == '*')
		r = HASH_REFUSED;
	else if (same_secret(out, hash))
		r = HASH_MATCHED;
	explicit_bzero(&data, sizeof data);
	return r;
}

static enum auth_verdict verify_table(struct table *users, const char *name,
				      const char *password)
{
	char hash[TABLE_VALUE_MAX];

	enum table_result r = table_lookup(users, name, hash, sizeof hash);
	if (r == TABLE_TEMPFAIL)
		return AUTH_TEMPFAIL;
	/* an unknown user, or a locked or unknown-method hash, costs the dummy's work */
	if (r == TABLE_NOTFOUND)
		return hash_check(password, dummy_hash) == HASH_NO_LIBRARY ? AUTH_TEMPFAIL
									   : AUTH_DENIED;
	enum hash_check h = hash_check(password, hash);
	if (h == HASH_NO_LIBRARY)
		return AUTH_TEMPFAIL;
	if (h == HASH_REFUSED)
		hash_check(password, dummy_hash);
	return h == HASH_MATCHED ? AUTH_GRANTED : AUTH_DENIED;
}

/* ---- checkpassword ---- */

/* "name\0password\0timestamp\0" into OUT; its length, or 0 if it does not fit. */
static size_t checkpassword_input(const struct tern_conf *conf, const char *name,
				  const char *password, char *out, size_t outsize)
{
	char stamp[TIMESTAMP_MAX];
	size_t nlen = strlen(name), plen = strlen(password);

	int n = snprintf(stamp, sizeof stamp, "<%ld.%ld@%s>", (long)getpid(), (long)time(NULL),
			 conf->hostname);
	if (n < 0 || (size_t)n >= sizeof stamp)
		return 0;
	size_t total = nlen + 1 + plen + 1 + (size_t)n + 1;
	if (total > outsize)
		return 0;
	memcpy(out, name, nlen + 1);
	memcpy(out + nlen + 1, password, plen + 1);
	memcpy(out + nlen + 1 + plen + 1, stamp, (size_t)n + 1);
	return total;
}

/* FD moved (close-on-exec) above the fds a child is given, so that no dup2 of the
 * spawn undoes another; -1 (FD closed) on failure. */
static int fd_above_child(int fd)
{
	if (fd < 0 || fd >= CHILD_FD_FLOOR)
		return fd;
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, CHILD_FD_FLOOR);
	close(fd);
	return moved;
}

/* A pipe holding INPUT, its write end closed; the read end, or -1.  The input is far
 * below the pipe's capacity, so the write never blocks and no reader is needed yet. */
static int input_pipe(const char *input, size_t len)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	int ok = write_all(p[1], input, len);
	close(p[1]);
	if (ok < 0) {
		close(p[0]);
		return -1;
	}
	return fd_above_child(p[0]);
}

static int milliseconds_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	long long ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
		       (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : (int)ms;
}

/* Waits up to the deadline for PID; true with *STATUS if it ended (and was reaped). */
static bool wait_until(pid_t pid, const struct timespec *deadline, int *status)
{
	int pidfd = (int)pidfd_open(pid, 0);
	int nap = WAIT_POLL_FIRST_MS;
	bool ended = false;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid) {
			ended = true;
			break;
		}
		if (r < 0 && errno != EINTR)
			break;
		int left = milliseconds_left(deadline);
		if (left == 0)
			break;
		if (pidfd >= 0) {
			struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
			poll(&pfd, 1, left);
			continue;
		}
		/* no pidfd (an old kernel, a seccomp filter): look again, less often */
		struct timespec ts = { 0, (long)(nap < left ? nap : left) * 1000000 };
		nanosleep(&ts, NULL);
		nap = nap * 2 > WAIT_POLL_MAX_MS ? WAIT_POLL_MAX_MS : nap * 2;
	}
	if (pidfd >= 0)
		close(pidfd);
	return ended;
}

/* Runs PROGRAM with INPUT on fd 3 for at most TIMEOUT_S seconds. */
static enum auth_verdict run_checkpassword(const char *program, int input, unsigned timeout_s)
{
	int devnull = fd_above_child(open("/dev/null", O_RDWR | O_CLOEXEC));
	if (devnull < 0)
		return AUTH_TEMPFAIL;
	char *argv[] = { (char *)program, (char *)"/bin/true", NULL };
	int fds[] = { devnull, devnull, -1, input };
	struct timespec deadline;
	pid_t pid;
	int status = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)timeout_s;
	int r = spawn_group_with_fds(&pid, program, argv, NULL, fds, sizeof fds / sizeof fds[0]);
	close(devnull);
	if (r != 0)
		return AUTH_TEMPFAIL;
	if (!wait_until(pid, &deadline, &status)) {
		kill(-pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return AUTH_TEMPFAIL;
	}
	if (!WIFEXITED(status))
		return AUTH_TEMPFAIL;
	if (WEXITSTATUS(status) == CHECKPASSWORD_GRANTED)
		return AUTH_GRANTED;
	return WEXITSTATUS(status) == CHECKPASSWORD_DENIED ? AUTH_DENIED : AUTH_TEMPFAIL;
}

static enum auth_verdict verify_checkpassword(const struct tern_conf *conf, const char *name,
					      const char *password)
{
	char input[CHECKPASSWORD_INPUT_MAX];

	size_t len = checkpassword_input(conf, name, password, input, sizeof input);
	if (len == 0)
		return AUTH_DENIED;	/* a name or password longer than AUTH can carry */
	int fd = input_pipe(input, len);
	explicit_bzero(input, sizeof input);
	if (fd < 0)
		return AUTH_TEMPFAIL;
	enum auth_verdict v = run_checkpassword(conf->auth_checkpassword, fd,
						   AUTH_CHECKPASSWORD_TIMEOUT_S);
	close(fd);
	return v;
}

enum auth_verdict auth_verify(const struct tern_conf *conf, struct table *users,
			      const char *name, const char *password)
{
	if (password[0] == '\0' || name[0] == '\0')
		return AUTH_DENIED;
	if (conf->auth_checkpassword[0] != '\0')
		return verify_checkpassword(conf, name, password);
	return verify_table(users, name, password);
}

/* ---- sender ownership ---- */

/* TEXT as a mailbox with a domain, in M and lowercased as tables match
 * it, written out into CANON; false if it is none. */
static bool canonical(const char *text, struct mailbox *m, char canon[ADDR_BUFFER])
{
	if (addr_parse(text, m) != ADDR_OK || m->domain[0] == '\0')
		return false;
	str_lower(m->local);
	str_lower(m->domain);
	addr_format(m, canon, ADDR_BUFFER);
	return true;
}

/* ITEM (one entry of a senders list) covers FULL or BASE ("" when there is no tag), both
 * canonical "local@domain" with the local part lowercased, at DOMAIN? */
static bool item_covers(const char *item, const char *full, const char *base,
			const char *domain)
{
	char canon[ADDR_BUFFER];
	struct mailbox m;

	if (item[0] == '@') {
		if (!str_copy(canon, sizeof canon, item + 1))
			return false;
		str_lower(canon);
		return strcmp(canon, domain) == 0;
	}
	if (!canonical(item, &m, canon))
		return false;
	return strcmp(canon, full) == 0 || (base[0] != '\0' && strcmp(canon, base) == 0);
}

/* FULL and BASE (the address without its +tag, or "") from ADDRESS; false if it is
 * not a mailbox with a domain. */
static bool sender_forms(const struct tern_conf *conf, const char *address,
			 struct mailbox *m, char full[ADDR_BUFFER], char base[ADDR_BUFFER])
{
	if (!canonical(address, m, full))
		return false;
	base[0] = '\0';
	const char *delimiters = conf->recipient_delimiter;
	if (delimiters[0] == '\0' || m->local[0] == '"')
		return true;
	size_t base_len = strcspn(m->local, delimiters);
	if (base_len > 0 && base_len < strlen(m->local)) {
		struct mailbox b = *m;
		b.local[base_len] = '\0';
		addr_format(&b, base, ADDR_BUFFER);
	}
	return true;
}

enum table_result auth_sender_owned(const struct tern_conf *conf, struct table *senders,
				    const char *name, const char *address)
{
	char list[TABLE_VALUE_MAX], item[TABLE_VALUE_MAX];
	char full[ADDR_BUFFER], base[ADDR_BUFFER];
	struct mailbox m;

	if (address[0] == '\0' || name[0] == '\0')
		return TABLE_NOTFOUND;
	enum table_result r = table_lookup(senders, name, list, sizeof list);
	if (r != TABLE_FOUND)
		return r;
	if (!sender_forms(conf, address, &m, full, base))
		return TABLE_NOTFOUND;
	const char *cursor = list;
	int got;
	while ((got = addr_list_next(&cursor, item, sizeof item)) > 0)
		if (item[0] != '\0' && item_covers(item, full, base, m.domain))
			return TABLE_FOUND;
	/* every item fits: a list that will not split is a corrupt table */
	return got < 0 ? TABLE_TEMPFAIL : TABLE_NOTFOUND;
}

unsigned auth_failure_delay_ms(unsigned failures)
{
	unsigned delay = AUTH_FAILURE_DELAY_FIRST_MS;

	if (failures == 0)
		return 0;
	for (unsigned i = 1; i < failures && delay < AUTH_FAILURE_DELAY_MAX_MS; i++)
		delay *= 2;
	return delay < AUTH_FAILURE_DELAY_MAX_MS ? delay : AUTH_FAILURE_DELAY_MAX_MS;
}
