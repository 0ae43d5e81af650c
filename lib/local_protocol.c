#include "local_protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REQUEST_VERB "deliver"
#define REQUEST_FIELDS 6

ssize_t local_request_encode(char *buf, size_t size, const struct local_request *req)
{
	char id[24], length[24];
	const char *fields[REQUEST_FIELDS] = { REQUEST_VERB, id, length, req->maildir,
					       req->recipient, req->sender };
	size_t used = 0;

	snprintf(id, sizeof id, "%" PRIu64, req->id);
	snprintf(length, sizeof length, "%" PRIu64, req->length);
	for (size_t i = 0; i < REQUEST_FIELDS; i++) {
		size_t n = strlen(fields[i]) + 1;
		if (n > size - used)
			return -1;
		memcpy(buf + used, fields[i], n);
		used += n;
	}
	return (ssize_t)used;
}

/* A decimal number that is the whole of TEXT, no sign, no spaces. */
static int parse_number(const char *text, uint64_t *out)
{
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return -1;
	errno = 0;
	unsigned long long n = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = n;
	return 0;
}

int local_request_parse(char *buf, size_t len, struct local_request *req)
{
	const char *fields[REQUEST_FIELDS];
	size_t start = 0, count = 0;

	if (len == 0 || buf[len - 1] != '\0')
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\0')
			continue;
		if (count == REQUEST_FIELDS)
			return -1;
		fields[count++] = buf + start;
		start = i + 1;
	}
	if (count != REQUEST_FIELDS || strcmp(fields[0], REQUEST_VERB) != 0 ||
	    parse_number(fields[1], &req->id) < 0 || parse_number(fields[2], &req->length) < 0)
		return -1;
	req->maildir = fields[3];
	req->recipient = fields[4];
	req->sender = fields[5];
	return 0;
}

ssize_t local_report_encode(char *buf, size_t size, uint64_t id, enum local_exit code,
			    const char *text)
{
	int n = snprintf(buf, size, "%" PRIu64 " %d %.*s", id, (int)code, LOCAL_TEXT_MAX, text);
	if (n < 0 || (size_t)n >= size)
		return -1;
	for (int i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	return n;
}

int local_report_parse(char *buf, size_t len, struct local_report *report)
{
	uint64_t code;
	char *space;

	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL)
		return -1;
	if (strcmp(buf, LOCAL_BYE) == 0)
		return 0;
	space = strchr(buf, ' ');
	if (space == NULL)
		return -1;
	*space = '\0';
	if (parse_number(buf, &report->id) < 0)
		return -1;
	char *text = strchr(space + 1, ' ');
	if (text == NULL)
		return -1;
	*text++ = '\0';
	if (parse_number(space + 1, &code) < 0 ||
	    (code != LOCAL_EXIT_DELIVERED && code != LOCAL_EXIT_PERMANENT && code != LOCAL_EXIT_TEMPORARY))
		return -1;
	report->code = (enum local_exit)code;
	report->text = text;
	return 1;
}
