/* data_fuzz: smtpd/data.c's DATA state machine against a reference model.
 *
 * The first octets choose the limits and how the stream is cut into reads;
 * the rest is what the client sends after 354.  The machine runs once on
 * the whole stream and once on the cuts, and the two runs must agree.  A
 * plain model (the end is the first "." CRLF at a line start; a line starts
 * at offset 0 or after CRLF; a leading dot goes; CRLF becomes LF) says what
 * must come out: whenever the machine reports no fault its output is the
 * model's, so it holds no CR, no NUL and no LF that was not a CRLF; every
 * limit the model sees crossed, and every bare CR or LF or NUL, is a
 * fault; and where the model sees nothing wrong the machine must not fault
 * either.  A third run, on the cuts with stop_at_header_end, must agree
 * with the first in all but holding back a header line's start until more
 * comes: it stops once, never in the call that ends the data, and where the
 * model's header block ends when the message is whole and fine, with the
 * model's Message-ID: and Date: fields. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "data.h"
#include "fuzz.h"

#define SETUP_OCTETS 5

struct model {
	size_t consumed;
	bool done;
	bool bare;		/* a CR or LF that is not part of a CRLF */
	bool nul;		/* a NUL in the text */
	char *out;
	size_t outlen;
	size_t longest_line;
	uint64_t header_size;
	unsigned received;
	size_t header_end;	/* where in out the header block ends */
	bool message_id, date;
};

static void model_decode(const char *in, size_t len, struct model *m)
{
	size_t i = 0, line = 0;

	while (i < len) {
		if (len - i >= 3 && memcmp(in + i, ".\r\n", 3) == 0) {
			m->done = true;
			m->consumed = i + 3;
			return;
		}
		if (in[i] == '.')
			i++;
		for (; i < len; i++) {
			if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n') {
				m->out[m->outlen++] = '\n';
				line = 0;
				i += 2;
				break;
			}
			if (in[i] == '\r' && i + 1 == len)
				continue;	/* may yet be a CRLF */
			if (in[i] == '\r' || in[i] == '\n') {
				m->bare = true;
				continue;
			}
			if (in[i] == '\0')
				m->nul = true;
			m->out[m->outlen++] = in[i];
			if (++line > m->longest_line)
				m->longest_line = line;
		}
	}
	m->consumed = len;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* How many of a header line's octets are header: up to the first one that
 * cannot be in a field name or the white space after it (at most
 * DATA_FIELD_NAME_MAX of those), or all of a line "name" *WSP ":" value.
 * NAME gets the name's length. */
static size_t header_part(const char *s, size_t n, bool first, bool *field, bool *name_only,
			  size_t *name)
{
	size_t k = 0;

	*field = false;
	*name_only = false;
	*name = 0;
	if (n > 0 && is_wsp(s[0]) && !first) {
		*field = true;
		return n;
	}
	while (k < n && (unsigned char)s[k] > 32 && (unsigned char)s[k] < 127 && s[k] != ':')
		k++;
	*name = k;
	if (k == 0)
		return 0;
	if (k > DATA_FIELD_NAME_MAX)
		return DATA_FIELD_NAME_MAX;
	while (k < n && is_wsp(s[k]))
		k++;
	if (k > DATA_FIELD_NAME_MAX)
		return DATA_FIELD_NAME_MAX;
	if (k == n) {
		*name_only = true;
		return n;
	}
	if (s[k] == ':')
		*field = true;
	return *field ? n : k;
}

/* The header: lines that are fields or continuations, up to the first line
 * that is neither (a blank line, or one with no ':' after a name). */
static void model_header(struct model *m)
{
	size_t at = 0;

	while (at < m->outlen) {
		const char *s = m->out + at;
		const char *nl = memchr(s, '\n', m->outlen - at);
		size_t n = nl ? (size_t)(nl - s) : m->outlen - at, name;
		bool field, name_only;
		size_t part = header_part(s, n, at == 0, &field, &name_only, &name);

		m->header_end = at;
		m->header_size += part;
		if (n == 0 || name_only) {
			m->header_size += nl != NULL;	/* the line end, still header */
			return;
		}
		if (!field)
			return;
		m->header_size += nl != NULL;
		if (nl != NULL && name == 8 && strncasecmp(s, "received", 8) == 0)
			m->received++;
		if (name == 10 && strncasecmp(s, "message-id", 10) == 0)
			m->message_id = true;
		if (name == 4 && strncasecmp(s, "date", 4) == 0)
			m->date = true;
		if (nl == NULL)
			return;
		at += n + 1;
	}
	m->header_end = at;
}

struct run {
	struct data_state d;
	size_t consumed;
	char *out;
	size_t outlen;
	size_t stop_at;		/* output before the stop; SIZE_MAX: none */
};

/* Feeds IN in reads of the sizes CUTS gives (0: all at once). */
static void machine_run(const struct data_limits *limits, const char *in, size_t len,
			unsigned cuts, struct run *r)
{
	bool stopping = limits->stop_at_header_end;

	data_start(&r->d, limits);
	r->consumed = 0;
	r->outlen = 0;
	r->stop_at = SIZE_MAX;
	while (r->consumed < len && !r->d.done) {
		size_t want = len - r->consumed, got_out = 0;
		if (cuts != 0) {
			cuts = cuts * 1103515245u + 12345u;
			size_t cut = 1 + (cuts >> 16) % 17;
			if (cut < want)
				want = cut;
		}
		bool before = r->d.header_end;
		size_t used = data_feed(&r->d, in + r->consumed, want, r->out + r->outlen, &got_out);
		bool stop = r->d.header_end && !before;
		FUZZ_CHECK(used <= want && got_out <= used + (stopping ? DATA_HELD_MAX : 0));
		FUZZ_CHECK(used == want || r->d.done || stop);
		FUZZ_CHECK(!(stop && r->d.done) && (stopping || !r->d.header_end));
		FUZZ_CHECK(!before || r->d.header_end);
		r->consumed += used;
		r->outlen += got_out;
		FUZZ_CHECK(r->outlen <= r->consumed);
		if (stop)
			r->stop_at = r->outlen;
	}
	size_t got_out = 1;
	char scratch[1];
	if (r->d.done) {
		FUZZ_CHECK(r->d.header_end == stopping);
		FUZZ_CHECK(data_feed(&r->d, "x", 1, scratch, &got_out) == 0 && got_out == 0);
	}
}

static void limits_from(const uint8_t *setup, struct data_limits *l)
{
	if (setup[0] & 0x80) {
		l->max_line_length = setup[1] & 1 ? 2048 : 998;	/* past DATA_FIELD_NAME_MAX */
		l->max_received = 30;
		l->max_header_size = 1u << 20;
		l->max_message_size = 1u << 24;
		return;
	}
	l->max_line_length = 1 + setup[0];
	l->max_received = setup[1] % 8;
	l->max_header_size = 1 + setup[2] * 8u;
	l->max_message_size = 1 + setup[3] * 64u;
}

static void compare(const struct data_limits *l, const struct model *m, const struct run *r)
{
	enum data_fault f = r->d.fault;

	FUZZ_CHECK(r->consumed == m->consumed);
	FUZZ_CHECK(r->d.done == m->done);
	if (m->bare || m->nul)
		FUZZ_CHECK(f != DATA_OK);
	if (m->longest_line > l->max_line_length)
		FUZZ_CHECK(f != DATA_OK);
	if (m->outlen > l->max_message_size)
		FUZZ_CHECK(f != DATA_OK);
	if (m->header_size > l->max_header_size)
		FUZZ_CHECK(f != DATA_OK);
	if (m->received > l->max_received)
		FUZZ_CHECK(f != DATA_OK);
	if (!m->bare && !m->nul && m->longest_line <= l->max_line_length &&
	    m->outlen <= l->max_message_size && m->header_size <= l->max_header_size &&
	    m->received <= l->max_received)
		FUZZ_CHECK(f == DATA_OK);
	if (f == DATA_OK) {
		FUZZ_CHECK(r->outlen == m->outlen);
		FUZZ_CHECK(memcmp(r->out, m->out, m->outlen) == 0);
		FUZZ_CHECK(memchr(r->out, '\r', r->outlen) == NULL);
		FUZZ_CHECK(memchr(r->out, '\0', r->outlen) == NULL);
		FUZZ_CHECK(r->d.size == r->outlen);
	}
	FUZZ_CHECK(strlen(data_fault_reply(f)) > 4);
}

/* The run with stop_at_header_end against the whole run without it. */
static void compare_stopping(const struct model *m, const struct run *whole, const struct run *r)
{
	FUZZ_CHECK(r->consumed == whole->consumed && r->d.done == whole->d.done);
	FUZZ_CHECK(r->d.fault == whole->d.fault && r->d.size == whole->d.size);
	FUZZ_CHECK(r->outlen <= whole->outlen);
	FUZZ_CHECK(memcmp(r->out, whole->out, r->outlen) == 0);
	if (!r->d.done)
		return;	/* a header line's start may be held back yet */
	FUZZ_CHECK(r->outlen == whole->outlen);
	FUZZ_CHECK(r->d.has_message_id == whole->d.has_message_id);
	FUZZ_CHECK(r->d.has_date == whole->d.has_date);
	if (r->d.fault != DATA_OK)
		return;
	FUZZ_CHECK(r->stop_at == m->header_end);
	FUZZ_CHECK(r->d.has_message_id == m->message_id && r->d.has_date == m->date);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct data_limits limits = { 0 };
	struct model m = { 0 };
	struct run whole, cut, stopping;

	if (size < SETUP_OCTETS)
		return 0;
	limits_from(data, &limits);
	unsigned cuts = 1u + data[4];
	const char *in = (const char *)data + SETUP_OCTETS;
	size_t len = size - SETUP_OCTETS;

	m.out = malloc(len + 1);
	whole.out = malloc(len + 1);
	cut.out = malloc(len + 1);
	stopping.out = malloc(len + 1);
	if (m.out == NULL || whole.out == NULL || cut.out == NULL || stopping.out == NULL)
		goto done;
	model_decode(in, len, &m);
	model_header(&m);
	machine_run(&limits, in, len, 0, &whole);
	machine_run(&limits, in, len, cuts, &cut);
	compare(&limits, &m, &whole);
	compare(&limits, &m, &cut);
	FUZZ_CHECK(whole.d.fault == cut.d.fault);
	FUZZ_CHECK(whole.d.size == cut.d.size);
	limits.stop_at_header_end = true;
	machine_run(&limits, in, len, cuts, &stopping);
	compare_stopping(&m, &whole, &stopping);
done:
	free(m.out);
	free(whole.out);
	free(cut.out);
	free(stopping.out);
	return 0;
}
