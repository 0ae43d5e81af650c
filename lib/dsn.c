#include "dsn.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "util.h"

#define DSN_COPY_BUFFER 65536

struct out {
	int fd;
	int failed;
	char buf[8192];
	size_t len;
};

static void out_flush(struct out *o)
{
	if (!o->failed && o->len > 0 && write_all(o->fd, o->buf, o->len) < 0)
		o->failed = 1;
	o->len = 0;
}

static void out_put(struct out *o, const char *s, size_t n)
{
	if (n > sizeof o->buf - o->len)
		out_flush(o);
	if (n > sizeof o->buf) {
		if (!o->failed && write_all(o->fd, s, n) < 0)
			o->failed = 1;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void out_printf(struct out *o, const char *format, ...)
	__attribute__((format(printf, 2, 3)));

static void out_printf(struct out *o, const char *format, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, format);
	int n = vsnprintf(line, sizeof line, format, ap);
	va_end(ap);
	if (n < 0)
		return;
	out_put(o, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static bool any_non_ascii(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* A diagnostic on one line, without control characters. */
static void clean_line(char *out, size_t size, const char *in)
{
	size_t n = 0;

	for (; in && *in && n + 1 < size; in++)
		out[n++] = (unsigned char)*in < ' ' ? ' ' : *in;
	out[n] = '\0';
}

static void write_human_part(struct out *o, const struct dsn_info *info,
			     const struct dsn_rcpt *r, size_t n)
{
	char text[1024];

	out_printf(o, "This is the mail system at host %s.\n\n", info->hostname);
	if (info->delayed)
		out_printf(o, "Your message has not been delivered yet to the recipients\n"
			      "below. The mail system will keep trying; you need not\n"
			      "send it again.\n\n");
	else
		out_printf(o, "I'm sorry to have to tell you that your message could not\n"
			      "be delivered to one or more recipients. The report and the\n"
			      "message (or its header) are attached below.\n\n");
	for (size_t i = 0; i < n; i++) {
		clean_line(text, sizeof text, r[i].diagnostic);
		out_printf(o, "<%s>: %s\n", r[i].addr, text);
	}
	out_printf(o, "\n");
}

static void write_status_part(struct out *o, const struct dsn_info *info,
			      const struct dsn_rcpt *r, size_t n)
{
	char date[64], text[1024];

	rfc5322_date(info->arrival, date, sizeof date);
	out_printf(o, "Reporting-MTA: dns; %s\n", info->hostname);
	out_printf(o, "X-Tern-Queue-ID: %s\n", info->queue_id);
	out_printf(o, "Arrival-Date: %s\n", date);
	for (size_t i = 0; i < n; i++) {
		const char *type = any_non_ascii(r[i].addr) ? "utf-8" : "rfc822";
		out_printf(o, "\nFinal-Recipient: %s; %s\n", type, r[i].addr);
		if (r[i].orcpt != NULL && strcmp(r[i].orcpt, r[i].addr) != 0)
			out_printf(o, "Original-Recipient: %s; %s\n",
				   any_non_ascii(r[i].orcpt) ? "utf-8" : "rfc822", r[i].orcpt);
		out_printf(o, "Action: %s\n", info->delayed ? "delayed" : "failed");
		out_printf(o, "Status: %s\n", r[i].status);
		clean_line(text, sizeof text, r[i].diagnostic);
		out_printf(o, "Diagnostic-Code: x-tern; %s\n", text);
		rfc5322_date(r[i].last_attempt ? r[i].last_attempt : time(NULL), date, sizeof date);
		out_printf(o, "Last-Attempt-Date: %s\n", date);
	}
}

/* Copies the original (or its header block) from MSG_FD. */
static int write_original(struct out *o, int msg_fd, uint64_t msglen, bool headers_only)
{
	char *buf = malloc(DSN_COPY_BUFFER);
	uint64_t done = 0;
	int at_line_start = 1;

	if (buf == NULL)
		return -1;
	while (done < msglen) {
		size_t want = msglen - done < DSN_COPY_BUFFER ? (size_t)(msglen - done)
							       : DSN_COPY_BUFFER;
		ssize_t n = pread(msg_fd, buf, want, (off_t)done);
		if (n <= 0) {
			free(buf);
			return -1;
		}
		size_t take = (size_t)n;
		if (headers_only) {
			for (size_t i = 0; i < take; i++) {
				if (buf[i] == '\n' && at_line_start) {
					take = i;
					done = msglen;
					break;
				}
				at_line_start = buf[i] == '\n';
			}
		}
		out_put(o, buf, take);
		done += take == (size_t)n ? (uint64_t)n : 0;
		if (take != (size_t)n)
			break;
	}
	free(buf);
	return 0;
}

int dsn_write(int out_fd, const struct dsn_info *info, const struct dsn_rcpt *rcpts,
	      size_t nrcpts, int msg_fd, uint64_t msglen, uint64_t max_return)
{
	struct out *o = calloc(1, sizeof *o);
	char date[64], boundary[QID_MAX + 64], id[QID_MAX];
	bool headers_only = msglen > max_return;
	bool global = false;

	if (o == NULL)
		return -1;
	o->fd = out_fd;
	for (size_t i = 0; i < nrcpts; i++)
		global |= any_non_ascii(rcpts[i].addr) || any_non_ascii(rcpts[i].orcpt);
	qid_make(id);
	snprintf(boundary, sizeof boundary, "%s/%s", id, info->hostname);
	rfc5322_date(time(NULL), date, sizeof date);

	out_printf(o, "From: Mail Delivery System <MAILER-DAEMON@%s>\n", info->hostname);
	out_printf(o, "To: <%s>\n", info->to);
	out_printf(o, "Subject: %s\n", info->delayed ? "Delayed Mail (still being retried)"
						     : "Undelivered Mail Returned to Sender");
	out_printf(o, "Date: %s\n", date);
	out_printf(o, "Message-ID: <%s.dsn@%s>\n", id, info->hostname);
	out_printf(o, "Auto-Submitted: auto-replied\n");
	out_printf(o, "MIME-Version: 1.0\n");
	out_printf(o, "Content-Type: multipart/report; report-type=delivery-status;\n"
		      "\tboundary=\"%s\"\n\n", boundary);
	out_printf(o, "This is a MIME-encapsulated message.\n\n");

	out_printf(o, "--%s\n", boundary);
	out_printf(o, "Content-Description: Notification\n");
	out_printf(o, "Content-Type: text/plain; charset=utf-8\n\n");
	write_human_part(o, info, rcpts, nrcpts);

	out_printf(o, "--%s\n", boundary);
	out_printf(o, "Content-Description: Delivery report\n");
	out_printf(o, "Content-Type: message/%sdelivery-status\n\n", global ? "global-" : "");
	write_status_part(o, info, rcpts, nrcpts);
	out_printf(o, "\n");

	out_printf(o, "--%s\n", boundary);
	out_printf(o, "Content-Description: %s\n",
		   headers_only ? "Undelivered Message Headers" : "Undelivered Message");
	const char *original_type = headers_only
		? (global ? "message/global-headers" : "text/rfc822-headers")
		: (global ? "message/global" : "message/rfc822");
	out_printf(o, "Content-Type: %s\n\n", original_type);
	int r = write_original(o, msg_fd, msglen, headers_only);
	out_printf(o, "\n--%s--\n", boundary);
	out_flush(o);
	r = (r < 0 || o->failed) ? -1 : 0;
	free(o);
	return r;
}

const char *dsn_split_status(const char *line, const char *default_status, char *status)
{
	const char *p = line;

	if ((p[0] == '2' || p[0] == '4' || p[0] == '5') && p[1] == '.') {
		const char *q = p + 2;
		int digits = 0;
		while (isdigit((unsigned char)*q) && digits < 3)
			q++, digits++;
		if (digits > 0 && *q == '.') {
			q++;
			digits = 0;
			while (isdigit((unsigned char)*q) && digits < 3)
				q++, digits++;
			if (digits > 0 && (*q == ' ' || *q == '\0')) {
				size_t n = (size_t)(q - p);
				memcpy(status, p, n);
				status[n] = '\0';
				return *q == ' ' ? q + 1 : q;
			}
		}
	}
	snprintf(status, 16, "%s", default_status);
	return line;
}
