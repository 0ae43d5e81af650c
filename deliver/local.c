/* tern-local: delivers one message to one Maildir.
 *
 *   tern-local [--length N] MAILDIR RECIPIENT SENDER  <message
 *
 * Writes "Return-Path: <SENDER>" and "Delivered-To: RECIPIENT", then the
 * message (N octets of fd 0, or all of it), into MAILDIR/tmp/UNIQUE;
 * fsyncs it, links it to MAILDIR/new/UNIQUE, removes the tmp name, fsyncs
 * new/, and only then exits 0.  tmp/ and new/ must be real folders, never
 * symbolic links.  Exit 0 delivered, 100 permanent failure, 111 temporary;
 * the reason goes to stdout as one line starting with a status code. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "util.h"

enum { EXIT_DELIVERED = 0, EXIT_PERMANENT = 100, EXIT_TEMPORARY = 111 };

#define COPY_BUFFER 65536
#define HEADER_SCAN_MAX (256 * 1024)

static int result(int code, const char *status, const char *what, int err)
{
	if (err != 0)
		printf("%s %s: %s\n", status, what, strerror(err));
	else
		printf("%s %s\n", status, what);
	fflush(stdout);
	return code;
}

static int temporary(const char *what)
{
	int err = errno;
	const char *status = (err == ENOSPC || err == EDQUOT) ? "4.2.2" : "4.3.0";
	return result(EXIT_TEMPORARY, status, what, err);
}

/* Maildir's unique name: time.MusecPpidQn.host, with '/' and ':' masked. */
static void unique_name(char *out, size_t size)
{
	struct timeval tv;
	char host[256];

	gettimeofday(&tv, NULL);
	if (gethostname(host, sizeof host) < 0)
		str_copy(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == ':')
			*p = '_';
	snprintf(out, size, "%lld.M%06ldP%ld.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
		 (long)getpid(), host);
}

/* A Delivered-To for this recipient already in the header means a loop. */
static bool already_delivered(int fd, uint64_t length, const char *rcpt)
{
	size_t want = length < HEADER_SCAN_MAX ? (size_t)length : HEADER_SCAN_MAX;
	char *buf = malloc(want + 1);
	bool found = false;

	if (buf == NULL)
		return false;
	ssize_t n = pread(fd, buf, want, 0);
	if (n <= 0) {
		free(buf);
		return false;
	}
	buf[n] = '\0';
	size_t rlen = strlen(rcpt);
	for (char *line = buf; line && *line && *line != '\n';) {
		if (strncasecmp(line, "Delivered-To:", 13) == 0) {
			char *v = line + 13;
			while (*v == ' ' || *v == '\t')
				v++;
			if (strncasecmp(v, rcpt, rlen) == 0 && (v[rlen] == '\n' || v[rlen] == '\0'))
				found = true;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	free(buf);
	return found;
}

static int copy_message(int in, int out, uint64_t length, bool bounded)
{
	char *buf = malloc(COPY_BUFFER);
	uint64_t done = 0;

	if (buf == NULL)
		return -1;
	for (;;) {
		size_t want = COPY_BUFFER;
		if (bounded) {
			if (done == length)
				break;
			if (length - done < want)
				want = (size_t)(length - done);
		}
		ssize_t n = pread(in, buf, want, (off_t)done);
		if (n < 0 && errno == ESPIPE)
			n = read(in, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n == 0 && bounded)) {
			if (n == 0)
				errno = EIO;
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		if (write_all(out, buf, (size_t)n) < 0) {
			free(buf);
			return -1;
		}
		done += (uint64_t)n;
	}
	free(buf);
	return 0;
}

static int open_subdir(int maildir, const char *name)
{
	return openat(maildir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static int deliver(const char *maildir, const char *rcpt, const char *sender,
		   uint64_t length, bool bounded)
{
	char name[512];

	if (maildir[0] != '/')
		return result(EXIT_PERMANENT, "5.3.5", "Maildir path is not absolute", 0);
	int dir = open(maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return temporary(maildir);
	int tmp = open_subdir(dir, "tmp");
	int new = open_subdir(dir, "new");
	close(dir);
	if (tmp < 0 || new < 0) {
		int saved = errno;
		if (tmp >= 0)
			close(tmp);
		if (new >= 0)
			close(new);
		errno = saved == ELOOP || saved == ENOTDIR ? ENOTDIR : saved;
		return temporary("Maildir tmp/ or new/ missing or not a folder");
	}
	if (bounded && already_delivered(0, length, rcpt)) {
		close(tmp), close(new);
		return result(EXIT_PERMANENT, "5.4.6", "mail loop: already delivered to this address", 0);
	}
	unique_name(name, sizeof name);
	int fd = openat(tmp, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		close(tmp), close(new);
		return temporary("cannot create file in Maildir tmp/");
	}
	FILE *head = fdopen(dup(fd), "w");
	int bad = head == NULL;
	if (!bad) {
		fprintf(head, "Return-Path: <%s>\nDelivered-To: %s\n", sender, rcpt);
		bad = fclose(head) != 0;
	}
	if (bad || copy_message(0, fd, length, bounded) < 0 || fsync(fd) < 0) {
		int saved = errno;
		close(fd);
		unlinkat(tmp, name, 0);
		close(tmp), close(new);
		errno = saved;
		return temporary("writing the message");
	}
	if (close(fd) < 0 || linkat(tmp, name, new, name, 0) < 0) {
		int saved = errno;
		unlinkat(tmp, name, 0);
		close(tmp), close(new);
		errno = saved;
		return temporary("moving the message into new/");
	}
	unlinkat(tmp, name, 0);
	if (fsync(new) < 0) {
		close(tmp), close(new);
		return temporary("fsync of new/");
	}
	close(tmp), close(new);
	printf("2.0.0 delivered to %s/new/%s\n", maildir, name);
	return EXIT_DELIVERED;
}

int main(int argc, char **argv)
{
	uint64_t length = 0;
	bool bounded = false;
	int i = 1;

	if (argc > 2 && strcmp(argv[1], "--length") == 0) {
		char *end;
		length = strtoull(argv[2], &end, 10);
		if (*end != '\0') {
			fprintf(stderr, "tern-local: bad --length\n");
			return EXIT_TEMPORARY;
		}
		bounded = true;
		i = 3;
	}
	if (argc - i != 3) {
		fprintf(stderr, "usage: tern-local [--length N] MAILDIR RECIPIENT SENDER <message\n");
		return EXIT_TEMPORARY;
	}
	umask(077);
	signal(SIGXFSZ, SIG_IGN);	/* over a file-size limit: EFBIG, a temporary failure */
	return deliver(argv[i], argv[i + 1], argv[i + 2], length, bounded);
}
