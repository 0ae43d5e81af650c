#include "queue_protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "spool.h"

/* CR and LF would split the spool's lines, TAB its state fields; no
 * address of RFC 5321 has any of them. */
static bool has_control_character(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

static int add_rcpt(struct qq_envelope *e, char *item, size_t *cap, const char **what)
{
	if (e->nrcpts == SPOOL_RCPTS_MAX) {
		*what = "too many recipients";
		return QQ_REFUSED_PERM;
	}
	if (e->nrcpts == *cap) {
		size_t more_cap = *cap ? *cap * 2 : 8;
		char **more = realloc(e->rcpts, more_cap * sizeof *more);
		if (more == NULL) {
			*what = "malloc";
			return QQ_NO_MEMORY;
		}
		e->rcpts = more;
		*cap = more_cap;
	}
	e->rcpts[e->nrcpts++] = item;
	return QQ_QUEUED;
}

/* One address at DATA + POS after its lead byte: its length in *ITEM_LEN. */
static int check_item(char *data, size_t len, size_t pos, size_t *item_len, const char **what)
{
	char *item = data + pos + 1;
	char *nul = memchr(item, '\0', len - pos - 1);

	if (nul == NULL) {
		*what = "envelope ends early";
		return QQ_READ_ERROR;
	}
	*item_len = (size_t)(nul - item);
	if (*item_len >= QQ_ADDRESS_MAX) {
		*what = "address too long";
		return QQ_ADDRESS_TOO_LONG;
	}
	if (has_control_character(item, *item_len)) {
		*what = "control character in an address";
		return QQ_REFUSED_PERM;
	}
	if (!utf8_valid(item, *item_len, NULL)) {
		*what = "address not UTF-8";
		return QQ_REFUSED_PERM;
	}
	return QQ_QUEUED;
}

int qq_envelope_parse(char *data, size_t len, struct qq_envelope *e, const char **what)
{
	size_t pos = 0, cap = 0;

	memset(e, 0, sizeof *e);
	for (bool first = true;; first = false) {
		if (pos >= len) {
			*what = "envelope ends early";
			return QQ_READ_ERROR;
		}
		char lead = data[pos];
		if (lead == '\0' && !first) {
			if (pos + 1 != len) {
				*what = "bytes after the envelope";
				return QQ_READ_ERROR;
			}
			return QQ_QUEUED;
		}
		if ((first && lead != 'F') || (!first && lead != 'T')) {
			*what = "envelope lead byte";
			return QQ_BAD_LEAD_BYTE;
		}
		size_t item_len;
		int r = check_item(data, len, pos, &item_len, what);
		if (r != QQ_QUEUED)
			return r;
		if (first)
			e->sender = data + pos + 1;
		else if ((r = add_rcpt(e, data + pos + 1, &cap, what)) != QQ_QUEUED)
			return r;
		pos += item_len + 2;
	}
}

/* ---- the queue socket's lines ---- */

static int formatted(int n, size_t outsize)
{
	if (n < 0 || (size_t)n >= outsize) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return n;
}

int qs_format_begin(char *out, size_t outsize, const char *qid)
{
	if (!qid_valid(qid)) {
		errno = EINVAL;
		return -1;
	}
	return formatted(snprintf(out, outsize, "begin %s\n", qid), outsize);
}

int qs_format_end(char *out, size_t outsize, uint64_t msglen, size_t envlen)
{
	return formatted(snprintf(out, outsize, "end %" PRIu64 " %zu\n", msglen, envlen),
			 outsize);
}

int qs_format_reply(char *out, size_t outsize, int code)
{
	if (code < 0 || code > 255) {
		errno = EINVAL;
		return -1;
	}
	return formatted(snprintf(out, outsize, "%d\n", code), outsize);
}

/* A decimal number of LEN octets at S, as %PRIu64 writes it: digits only,
 * no leading zero (but "0"), at most 19 of them. */
static int parse_number(const char *s, size_t len, uint64_t *out)
{
	uint64_t n = 0;

	if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	*out = n;
	return 0;
}

static int parse_begin(const char *arg, size_t len, struct qs_request *r)
{
	if (len == 0 || len >= sizeof r->qid)
		return -1;
	memcpy(r->qid, arg, len);
	r->qid[len] = '\0';
	if (strlen(r->qid) != len || !qid_valid(r->qid))
		return -1;	/* a NUL inside would cut the id short */
	r->verb = QS_BEGIN;
	return 0;
}

static int parse_end(const char *arg, size_t len, struct qs_request *r)
{
	const char *space = memchr(arg, ' ', len);

	if (space == NULL)
		return -1;
	size_t first = (size_t)(space - arg);
	if (parse_number(arg, first, &r->msglen) < 0 ||
	    parse_number(space + 1, len - first - 1, &r->envlen) < 0)
		return -1;
	r->verb = QS_END;
	return 0;
}

int qs_parse_request(const char *line, size_t len, struct qs_request *r)
{
	memset(r, 0, sizeof *r);
	if (len >= QS_LINE_MAX)
		return -1;
	if (len > 6 && memcmp(line, "begin ", 6) == 0)
		return parse_begin(line + 6, len - 6, r);
	if (len > 4 && memcmp(line, "end ", 4) == 0)
		return parse_end(line + 4, len - 4, r);
	return -1;
}

int qs_parse_reply(const char *line, size_t len, int *code)
{
	uint64_t n;

	if (len > 3 || parse_number(line, len, &n) < 0 || n > 255)
		return -1;
	*code = (int)n;
	return 0;
}
