#include "data.h"

#include <string.h>
#include <strings.h>

enum { LINE_START, DOT, DOT_CR, IN_LINE, SAW_CR };

/* A header line is "name:" (name = printable ASCII but ':', white space
 * allowed before the ':') or a folded continuation starting with white
 * space; the first line that is neither starts the body. */
enum { FIELD_START, FIELD_NAME, FIELD_WSP, FIELD_VALUE };

static bool name_octet(char c)
{
	unsigned char u = (unsigned char)c;

	return u > 32 && u < 127 && c != ':';
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool name_is(const struct data_state *d, const char *name)
{
	size_t n = strlen(name);

	return d->name_len == n && n <= sizeof d->prefix && strncasecmp(d->prefix, name, n) == 0;
}

/* The ':' after the name: the line is a field. */
static void field_seen(struct data_state *d)
{
	d->field = FIELD_VALUE;
	d->received_line = name_is(d, "received");
	if (name_is(d, "message-id"))
		d->has_message_id = true;
	else if (name_is(d, "date"))
		d->has_date = true;
}

static void name_end(struct data_state *d, char c)
{
	d->name_len = d->line_length - 1;
	if (c == ':')
		field_seen(d);
	else if (is_wsp(c))
		d->field = FIELD_WSP;
	else
		d->in_header = false;
}

static void track_header(struct data_state *d, char c)
{
	switch (d->field) {
	case FIELD_START:
		if (is_wsp(c) && d->header_size > 1) {
			d->field = FIELD_VALUE;
		} else if (name_octet(c)) {
			d->field = FIELD_NAME;
			d->prefix[d->prefix_len++] = c;
		} else {
			d->in_header = false;
		}
		break;
	case FIELD_NAME:
		/* the length first: a blank past it would hold one octet more */
		if (d->line_length > DATA_FIELD_NAME_MAX && c != ':')
			d->in_header = false;
		else if (!name_octet(c))
			name_end(d, c);
		else if (d->prefix_len < sizeof d->prefix)
			d->prefix[d->prefix_len++] = c;
		break;
	case FIELD_WSP:
		if (c == ':')
			field_seen(d);
		else if (!is_wsp(c) || d->line_length > DATA_FIELD_NAME_MAX)
			d->in_header = false;
		break;
	default:
		break;
	}
}

void data_start(struct data_state *d, const struct data_limits *limits)
{
	memset(d, 0, sizeof *d);
	d->limits = *limits;
	d->state = LINE_START;
	d->in_header = true;
	d->watching = limits->stop_at_header_end;
}

static void fault(struct data_state *d, enum data_fault f)
{
	if (d->fault == DATA_OK)
		d->fault = f;
}

static void flush_held(struct data_state *d, char *out, size_t *n)
{
	memcpy(out + *n, d->held, d->held_len);
	*n += d->held_len;
	d->held_len = 0;
}

static void emit(struct data_state *d, char c, char *out, size_t *n)
{
	d->size++;
	if (d->size > d->limits.max_message_size) {
		fault(d, DATA_TOO_LARGE);
		return;
	}
	if (c != '\n') {
		d->line_length++;
		if (d->line_length > d->limits.max_line_length)
			fault(d, DATA_LINE_TOO_LONG);
		if (d->in_header)
			track_header(d, c);
	}
	if (d->in_header) {
		d->header_size++;
		if (d->header_size > d->limits.max_header_size)
			fault(d, DATA_HEADER_TOO_LARGE);
	}
	if (d->fault == DATA_OK)
		out[(*n)++] = c;
}

static void end_line(struct data_state *d)
{
	if (d->in_header) {
		if (d->field != FIELD_VALUE) {
			d->in_header = false;	/* a blank line, or one with no ':' */
		} else if (d->received_line) {
			d->received++;
			if (d->received > d->limits.max_received)
				fault(d, DATA_LOOP);
		}
	}
	d->line_length = 0;
	d->prefix_len = 0;
	d->name_len = 0;
	d->received_line = false;
	d->field = FIELD_START;
}

/* An octet inside a line: CR may start the line end; LF alone is bare;
 * NUL is no text at all (RFC 5321 4.5.2 leaves it out of every line). */
static void line_octet(struct data_state *d, char c, char *out, size_t *n)
{
	if (c == '\r') {
		d->state = SAW_CR;
		return;
	}
	if (c == '\n')
		fault(d, DATA_BARE_LF);
	else if (c == '\0')
		fault(d, DATA_NUL);
	else
		emit(d, c, out, n);
	d->state = IN_LINE;
}

/* The octets of IN before its first CR, LF or NUL. */
static size_t plain_run(const char *in, size_t len)
{
	static const char stops[] = { '\r', '\n', '\0' };

	for (size_t k = 0; k < sizeof stops; k++) {
		const char *stop = memchr(in, stops[k], len);
		if (stop != NULL)
			len = (size_t)(stop - in);
	}
	return len;
}

/* Inside a body line with nothing wrong so far, the octets up to the next
 * CR, LF or NUL are copied whole: emit() would take each alike, and the
 * run stops short of either limit, so the octet that reaches one goes
 * through emit() and faults there.  The octets taken. */
static size_t body_run(struct data_state *d, const char *in, size_t len, char *out,
		       size_t *n)
{
	if (d->in_header || d->fault != DATA_OK || d->state != IN_LINE)
		return 0;
	size_t run = plain_run(in, len);
	uint64_t size_room = d->limits.max_message_size > d->size
			     ? d->limits.max_message_size - d->size : 0;
	size_t line_room = d->limits.max_line_length > d->line_length
			   ? d->limits.max_line_length - d->line_length : 0;
	if (run > size_room)
		run = (size_t)size_room;
	if (run > line_room)
		run = line_room;
	memcpy(out + *n, in, run);
	*n += run;
	d->size += run;
	d->line_length += (unsigned)run;
	return run;
}

/* stop_at_header_end's stop: the caller's fields go in here. */
static bool stop_at_header_end(struct data_state *d)
{
	d->watching = false;
	d->header_end = true;
	return true;
}

/* While the stop is still to come, a header line's output (the octet, if
 * any, that the last input octet put out at out[FROM]) waits until the line
 * is known to be a field, then goes out; if the line ends the header block
 * instead, its output waits for the stop and goes out after it.  True at
 * the stop. */
static bool watch(struct data_state *d, char *out, size_t *n, size_t from)
{
	bool field = d->in_header && (d->field == FIELD_VALUE || d->state == LINE_START);

	if (!field) {
		if (*n > from && d->held_len < sizeof d->held)
			d->held[d->held_len++] = out[--*n];
		return !d->in_header && stop_at_header_end(d);
	}
	if (d->held_len > 0 && *n > from) {
		char c = out[from];
		*n = from;
		flush_held(d, out, n);
		out[(*n)++] = c;
	} else if (d->held_len > 0) {
		flush_held(d, out, n);
	}
	return false;
}

size_t data_feed(struct data_state *d, const char *in, size_t len,
		 char *out, size_t *outlen)
{
	size_t i = 0, n = 0;
	bool stopped = false;

	if (d->held_len > 0 && !d->watching)
		flush_held(d, out, &n);		/* what came after the stop */
	while (i < len && !d->done && !stopped) {
		i += body_run(d, in + i, len - i, out, &n);
		if (i == len)
			break;
		size_t from = n;
		char c = in[i++];
		switch (d->state) {
		case LINE_START:
			if (c == '.')
				d->state = DOT;
			else
				line_octet(d, c, out, &n);
			break;
		case DOT:	/* the dot was stuffing, unless CRLF follows */
			if (c == '\r')
				d->state = DOT_CR;
			else
				line_octet(d, c, out, &n);
			break;
		case IN_LINE:
			line_octet(d, c, out, &n);
			break;
		case DOT_CR:
			if (c == '\n' && d->watching) {
				i--;	/* the end of data, after the stop */
				stopped = stop_at_header_end(d);
			} else if (c == '\n') {
				d->done = true;
			} else {
				fault(d, DATA_BARE_CR);
				d->state = c == '\r' ? SAW_CR : IN_LINE;
			}
			break;
		case SAW_CR:
			if (c == '\n') {
				emit(d, '\n', out, &n);
				end_line(d);
				d->state = LINE_START;
			} else if (c == '\r') {
				fault(d, DATA_BARE_CR);
			} else {
				fault(d, DATA_BARE_CR);
				d->state = IN_LINE;
			}
			break;
		}
		if (d->watching)
			stopped = watch(d, out, &n, from);
	}
	*outlen = n;
	return i;
}

uint64_t data_rate_limit_ms(uint64_t octets, unsigned min_rate, unsigned timeout_s)
{
	if (min_rate == 0)
		return UINT64_MAX;
	uint64_t whole = octets / min_rate;
	if (whole > UINT64_MAX / 1000 - 1000)
		return UINT64_MAX;
	uint64_t ms = whole * 1000 + octets % min_rate * 1000 / min_rate;
	uint64_t first = (uint64_t)timeout_s * 1000;
	return ms > first ? ms : first;
}

const char *data_fault_reply(enum data_fault f)
{
	switch (f) {
	case DATA_OK:
		return "250 2.0.0 Ok";
	case DATA_BARE_LF:
		return "550 5.6.0 Message refused: bare LF in DATA (lines must end with CRLF)";
	case DATA_BARE_CR:
		return "550 5.6.0 Message refused: bare CR in DATA (lines must end with CRLF)";
	case DATA_NUL:
		return "550 5.6.0 Message refused: NUL in DATA";
	case DATA_LINE_TOO_LONG:
		return "550 5.6.0 Message refused: text line too long";
	case DATA_HEADER_TOO_LARGE:
		return "552 5.3.4 Message header too large";
	case DATA_TOO_LARGE:
		return "552 5.3.4 Message too large";
	case DATA_LOOP:
		return "554 5.4.6 Too many Received headers: mail loop";
	}
	return "451 4.3.0 Internal error";
}
