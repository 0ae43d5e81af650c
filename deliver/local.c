/* tern-local: delivers messages to Maildirs.
 *
 *   tern-local [--length N] MAILDIR RECIPIENT SENDER  <message
 *   tern-local --worker                               (socket on fd 3)
 *
 * Writes "Return-Path: <SENDER>" and "Delivered-To: RECIPIENT", then the
 * message (N octets of fd 0, or all of it), into MAILDIR/tmp/UNIQUE;
 * fsyncs it, links it to MAILDIR/new/UNIQUE, removes the tmp name, fsyncs
 * new/, and only then reports success.  tmp/ and new/ must be real
 * folders, never symbolic links.  Once, the outcome is the exit status (0
 * delivered, 100 permanent failure, 111 temporary) and one line on stdout
 * starting with a status code.  As a worker it takes requests over its
 * socket (local_protocol.h), several at a time, shares one fsync of new/
 * among those of one batch, and answers each with a report. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "local_protocol.h"
#include "packet.h"
#include "util.h"

#define COPY_BUFFER 65536
#define HEADER_SCAN_MAX (256 * 1024)
#define NAME_MAX_LEN 512
#define WORKER_BATCH_MAX 64		/* requests written before one fsync of new/ */
#define WORKER_IDLE_SECONDS 30		/* idle this long: say bye */

struct outcome {
	enum local_exit code;
	char text[LOCAL_TEXT_MAX];
};

/* What makes Maildir names unique within this process: the pid, and a
 * count of the deliveries it made (Maildir's Q). */
struct namer {
	char host[256];
	unsigned long deliveries;
};

/* One delivery on its way: placed in new/ (NEW_DIR open, fsync to come),
 * or finished (NEW_DIR -1, OUT final). */
struct placement {
	struct outcome out;
	int new_dir;
	char name[NAME_MAX_LEN];
};

static void settle(struct outcome *out, enum local_exit code, const char *format, ...)
	__attribute__((format(printf, 3, 4)));

static void settle(struct outcome *out, enum local_exit code, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	vsnprintf(out->text, sizeof out->text, format, ap);
	va_end(ap);
	out->code = code;
}

static void temporary(struct outcome *out, const char *what, int err)
{
	const char *status = (err == ENOSPC || err == EDQUOT) ? "4.2.2" : "4.3.0";
	settle(out, LOCAL_EXIT_TEMPORARY, "%s %s: %s", status, what, strerror(err));
}

static void namer_init(struct namer *n)
{
	if (gethostname(n->host, sizeof n->host) < 0)
		str_copy(n->host, sizeof n->host, "localhost");
	n->host[sizeof n->host - 1] = '\0';
	for (char *p = n->host; *p; p++)
		if (*p == '/' || *p == ':')
			*p = '_';
	n->deliveries = 0;
}

/* Maildir's unique name: time.MusecPpid[Qn].host; the Q part only once a
 * process has made one delivery already. */
static void unique_name(struct namer *n, char *out, size_t size)
{
	struct timeval tv;
	char count[32] = "";

	gettimeofday(&tv, NULL);
	if (n->deliveries > 0)
		snprintf(count, sizeof count, "Q%lu", n->deliveries);
	n->deliveries++;
	snprintf(out, size, "%lld.M%06ldP%ld%s.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
		 (long)getpid(), count, n->host);
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

static int write_file(int fd, int message, const struct local_request *req, bool bounded)
{
	FILE *head = fdopen(dup(fd), "w");
	if (head == NULL)
		return -1;
	fprintf(head, "Return-Path: <%s>\nDelivered-To: %s\n", req->sender, req->recipient);
	if (fclose(head) != 0)
		return -1;
	if (copy_message(message, fd, req->length, bounded) < 0 || fsync(fd) < 0)
		return -1;
	return 0;
}

/* Steps 1 to 6 of tern-local(8): the message from MESSAGE into tmp/, then
 * linked into new/.  Leaves P placed (new/ still to be fsync'd) or
 * finished with the failure; on any failure nothing stays in tmp/. */
static void place(struct namer *namer, const struct local_request *req, int message,
		  bool bounded, struct placement *p)
{
	p->new_dir = -1;
	if (req->maildir[0] != '/') {
		settle(&p->out, LOCAL_EXIT_PERMANENT, "5.3.5 Maildir path is not absolute");
		return;
	}
	int dir = open(req->maildir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		temporary(&p->out, req->maildir, errno);
		return;
	}
	int tmp = open_subdir(dir, "tmp");
	int new = open_subdir(dir, "new");
	int saved = errno;
	close(dir);
	if (tmp < 0 || new < 0) {
		if (tmp >= 0)
			close(tmp);
		if (new >= 0)
			close(new);
		temporary(&p->out, "Maildir tmp/ or new/ missing or not a folder",
			  saved == ELOOP || saved == ENOTDIR ? ENOTDIR : saved);
		return;
	}
	if (bounded && already_delivered(message, req->length, req->recipient)) {
		close(tmp), close(new);
		settle(&p->out, LOCAL_EXIT_PERMANENT, "5.4.6 mail loop: already delivered to this address");
		return;
	}
	unique_name(namer, p->name, sizeof p->name);
	int fd = openat(tmp, p->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		temporary(&p->out, "cannot create file in Maildir tmp/", errno);
		close(tmp), close(new);
		return;
	}
	const char *failed = NULL;
	if (write_file(fd, message, req, bounded) < 0) {
		failed = "writing the message";
		saved = errno;
		close(fd);
	} else if (close(fd) < 0 || linkat(tmp, p->name, new, p->name, 0) < 0) {
		failed = "moving the message into new/";
		saved = errno;
	}
	if (failed != NULL) {
		unlinkat(tmp, p->name, 0);
		close(tmp), close(new);
		temporary(&p->out, failed, saved);
		return;
	}
	unlinkat(tmp, p->name, 0);
	close(tmp);
	p->new_dir = new;
}

/* Step 7 for a placed delivery whose new/ was fsync'd with result ERR
 * (0: durable). */
static void finish(struct placement *p, const char *maildir, int err)
{
	close(p->new_dir);
	p->new_dir = -1;
	if (err != 0)
		temporary(&p->out, "fsync of new/", err);
	else
		settle(&p->out, LOCAL_EXIT_DELIVERED, "2.0.0 delivered to %s/new/%s", maildir, p->name);
}

/* ---- once: one message on fd 0 ---- */

static int deliver_once(const struct local_request *req, bool bounded)
{
	struct namer namer;
	struct placement p;

	namer_init(&namer);
	place(&namer, req, 0, bounded, &p);
	if (p.new_dir >= 0)
		finish(&p, req->maildir, fsync(p.new_dir) < 0 ? errno : 0);
	printf("%s\n", p.out.text);
	fflush(stdout);
	return (int)p.out.code;
}

/* ---- worker: requests over LOCAL_WORKER_FD ---- */

struct request_slot {
	char packet[LOCAL_REQUEST_MAX];
	struct local_request req;
	int message;
	struct placement placed;
};

struct worker {
	int sock;
	struct namer namer;
	struct request_slot *batch;	/* WORKER_BATCH_MAX of them */
	unsigned long served;
	bool said_bye;
};

static void worker_complain(const char *what)
{
	fprintf(stderr, "tern-local[%ld]: worker: %s: %s\n", (long)getpid(), what, strerror(errno));
}

/* The next request into SLOT: 1, 0 at end of file or none waiting
 * (DONTWAIT), -1 on a malformed one. */
static int take_request(struct worker *w, struct request_slot *slot, int flags)
{
	ssize_t n = packet_receive(w->sock, slot->packet, sizeof slot->packet, &slot->message,
				   flags);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0) {
		worker_complain("receiving a request");
		return -1;
	}
	if (n == 0)
		return 0;
	if (slot->message < 0 || local_request_parse(slot->packet, (size_t)n, &slot->req) < 0) {
		if (slot->message >= 0)
			close(slot->message);
		errno = EPROTO;
		worker_complain("a malformed request");
		return -1;
	}
	return 1;
}

/* Step 7 for the whole batch: one fsync for each distinct new/. */
static void sync_new_folders(struct request_slot *batch, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct placement *p = &batch[i].placed;
		if (p->new_dir < 0)
			continue;
		struct stat mine;
		int err = fstat(p->new_dir, &mine) < 0 || fsync(p->new_dir) < 0 ? errno : 0;
		for (size_t j = i + 1; j < n; j++) {
			struct placement *q = &batch[j].placed;
			struct stat theirs;
			if (q->new_dir >= 0 && err == 0 && fstat(q->new_dir, &theirs) == 0 &&
			    theirs.st_dev == mine.st_dev && theirs.st_ino == mine.st_ino)
				finish(q, batch[j].req.maildir, 0);
		}
		finish(p, batch[i].req.maildir, err);
	}
}

static int report(struct worker *w, const struct request_slot *slot)
{
	char packet[LOCAL_REPORT_MAX];
	ssize_t n = local_report_encode(packet, sizeof packet, slot->req.id,
					slot->placed.out.code, slot->placed.out.text);
	if (n < 0 || packet_send(w->sock, packet, (size_t)n, -1) < 0) {
		worker_complain("sending a report");
		return -1;
	}
	return 0;
}

static int say_bye(struct worker *w)
{
	w->said_bye = true;
	if (packet_send(w->sock, LOCAL_BYE, strlen(LOCAL_BYE), -1) < 0) {
		worker_complain("saying bye");
		return -1;
	}
	return 0;
}

/* One batch: what is waiting (at least one request), written, synced,
 * reported.  0 to go on, 1 at end of file, -1 on an error. */
static int serve_batch(struct worker *w)
{
	size_t n = 0;
	int got = take_request(w, &w->batch[0], 0);

	if (got <= 0)
		return got < 0 ? -1 : 1;
	for (n = 1; n < WORKER_BATCH_MAX; n++) {
		got = take_request(w, &w->batch[n], MSG_DONTWAIT);
		if (got <= 0)
			break;
	}
	for (size_t i = 0; i < n; i++) {
		struct request_slot *slot = &w->batch[i];
		place(&w->namer, &slot->req, slot->message, true, &slot->placed);
		close(slot->message);
	}
	sync_new_folders(w->batch, n);
	for (size_t i = 0; i < n; i++)
		if (report(w, &w->batch[i]) < 0)
			return -1;
	w->served += n;
	if (got < 0)
		return -1;
	if (!w->said_bye && w->served >= LOCAL_WORKER_DELIVERIES_MAX)
		return say_bye(w);
	return 0;
}

static int serve(int sock)
{
	struct worker w = { .sock = sock };
	int type = 0;
	socklen_t size = sizeof type;

	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &size) < 0 || type != SOCK_SEQPACKET) {
		fprintf(stderr, "tern-local: --worker needs a SOCK_SEQPACKET socket on fd %d\n",
			LOCAL_WORKER_FD);
		return LOCAL_EXIT_TEMPORARY;
	}
	w.batch = calloc(WORKER_BATCH_MAX, sizeof *w.batch);
	if (w.batch == NULL)
		return LOCAL_EXIT_TEMPORARY;
	namer_init(&w.namer);
	int result = 0;
	while (result == 0) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		int ready = poll(&pfd, 1, WORKER_IDLE_SECONDS * 1000);
		if (ready < 0 && errno != EINTR)
			result = -1;
		else if (ready == 0 && w.said_bye)
			result = 1;	/* idle after bye too: tern-deliver is gone or stuck */
		else if (ready == 0)
			result = say_bye(&w);
		else if (ready > 0)
			result = serve_batch(&w);
	}
	free(w.batch);
	return result < 0 ? LOCAL_EXIT_TEMPORARY : 0;
}

int main(int argc, char **argv)
{
	struct local_request req = { 0 };
	bool bounded = false;
	int i = 1;

	umask(077);
	signal(SIGXFSZ, SIG_IGN);	/* over a file-size limit: EFBIG, a temporary failure */
	if (argc == 2 && strcmp(argv[1], "--worker") == 0)
		return serve(LOCAL_WORKER_FD);
	if (argc > 2 && strcmp(argv[1], "--length") == 0) {
		char *end;
		req.length = strtoull(argv[2], &end, 10);
		if (*end != '\0') {
			fprintf(stderr, "tern-local: bad --length\n");
			return LOCAL_EXIT_TEMPORARY;
		}
		bounded = true;
		i = 3;
	}
	if (argc - i != 3) {
		fprintf(stderr, "usage: tern-local [--length N] MAILDIR RECIPIENT SENDER <message\n"
			"       tern-local --worker\n");
		return LOCAL_EXIT_TEMPORARY;
	}
	req.maildir = argv[i];
	req.recipient = argv[i + 1];
	req.sender = argv[i + 2];
	return deliver_once(&req, bounded);
}
