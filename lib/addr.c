#include "addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

struct cursor {
	const char *s;
	size_t len;
	size_t pos;
};

static int peek(const struct cursor *c)
{
	return c->pos < c->len ? (unsigned char)c->s[c->pos] : -1;
}

/* Length of the UTF-8 sequence at P (well-formed, non-ASCII), or 0. */
static size_t utf8_sequence(const unsigned char *p, size_t avail)
{
	size_t n;
	unsigned cp;

	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		n = 2, cp = p[0] & 0x1F;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		n = 3, cp = p[0] & 0x0F;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

size_t utf8_char_length(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	if (len == 0)
		return 0;
	return p[0] < 0x80 ? 1 : utf8_sequence(p, len);
}

bool utf8_valid(const char *s, size_t len, bool *has_non_ascii)
{
	const unsigned char *p = (const unsigned char *)s;
	bool non_ascii = false;

	for (size_t i = 0; i < len;) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_sequence(p + i, len - i);
		if (n == 0)
			return false;
		non_ascii = true;
		i += n;
	}
	if (has_non_ascii)
		*has_non_ascii = non_ascii;
	return true;
}

static bool is_atext(int c)
{
	return c > 0 && c < 128 && (isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Takes one non-ASCII UTF-8 character, if there is one. */
static bool take_utf8(struct cursor *c, struct mailbox *m)
{
	if (peek(c) < 0x80)
		return false;
	size_t n = utf8_sequence((const unsigned char *)c->s + c->pos, c->len - c->pos);
	if (n == 0)
		return false;
	c->pos += n;
	m->utf8 = true;
	return true;
}

static enum addr_status parse_dot_string(struct cursor *c, struct mailbox *m,
					 char *out, size_t outsize)
{
	size_t start = c->pos;

	for (;;) {
		size_t atom = c->pos;
		for (;;) {
			if (is_atext(peek(c)))
				c->pos++;
			else if (!take_utf8(c, m))
				break;
		}
		if (c->pos == atom)
			return ADDR_SYNTAX;
		if (peek(c) != '.')
			break;
		c->pos++;
	}
	size_t n = c->pos - start;
	if (n > ADDR_LOCAL_MAX || n >= outsize)
		return ADDR_TOO_LONG;
	memcpy(out, c->s + start, n);
	out[n] = '\0';
	return ADDR_OK;
}

static bool content_is_dot_string(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '.' ) {
			if (s[i + 1] == '.')
				return false;
			continue;
		}
		if (!is_atext(ch) && ch < 0x80)
			return false;
	}
	return true;
}

static enum addr_status parse_quoted_string(struct cursor *c, struct mailbox *m,
					    char *out, size_t outsize)
{
	char content[ADDR_LOCAL_MAX * 2 + 1];
	size_t n = 0;

	c->pos++; /* opening quote */
	for (;;) {
		int ch = peek(c);
		if (ch < 0)
			return ADDR_SYNTAX;
		if (ch == '"') {
			c->pos++;
			break;
		}
		if (ch == '\\') {
			c->pos++;
			ch = peek(c);
			if (ch < 32 || ch > 126)
				return ADDR_SYNTAX;
		} else if (ch >= 0x80) {
			size_t start = c->pos;
			if (!take_utf8(c, m))
				return ADDR_SYNTAX;
			if (n + (c->pos - start) >= sizeof content)
				return ADDR_TOO_LONG;
			memcpy(content + n, c->s + start, c->pos - start);
			n += c->pos - start;
			continue;
		} else if (ch < 32 || ch > 126) {
			return ADDR_SYNTAX;
		}
		if (n + 1 >= sizeof content)
			return ADDR_TOO_LONG;
		content[n++] = (char)ch;
		c->pos++;
	}
	if (n > ADDR_LOCAL_MAX)
		return ADDR_TOO_LONG;
	content[n] = '\0';
	if (content_is_dot_string(content, n)) {
		if (n >= outsize)
			return ADDR_TOO_LONG;
		memcpy(out, content, n + 1);
		return ADDR_OK;
	}
	/* Keep it quoted, escaping only what must be. */
	size_t o = 0;
	if (o < outsize)
		out[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (content[i] == '"' || content[i] == '\\') {
			if (o + 1 >= outsize)
				return ADDR_TOO_LONG;
			out[o++] = '\\';
		}
		if (o + 1 >= outsize)
			return ADDR_TOO_LONG;
		out[o++] = content[i];
	}
	if (o + 2 > outsize)
		return ADDR_TOO_LONG;
	out[o++] = '"';
	out[o] = '\0';
	return ADDR_OK;
}

static bool is_let_dig(int c)
{
	return c >= 0 && c < 128 && isalnum(c);
}

static enum addr_status parse_domain_name(struct cursor *c, struct mailbox *m,
					  char *out, size_t outsize)
{
	size_t start = c->pos;

	for (;;) {
		size_t label = c->pos;
		int last = -1;
		for (;;) {
			int ch = peek(c);
			if (is_let_dig(ch) || (ch == '-' && c->pos > label)) {
				last = ch;
				c->pos++;
			} else if (take_utf8(c, m)) {
				last = 'u';
			} else {
				break;
			}
		}
		if (c->pos == label || last == '-' || c->pos - label > 63)
			return ADDR_SYNTAX;
		if (peek(c) != '.')
			break;
		c->pos++;
	}
	size_t n = c->pos - start;
	if (n > ADDR_DOMAIN_MAX || n >= outsize)
		return ADDR_TOO_LONG;
	memcpy(out, c->s + start, n);
	out[n] = '\0';
	str_lower(out);
	return ADDR_OK;
}

static enum addr_status parse_address_literal(struct cursor *c, char *out,
					      size_t outsize)
{
	size_t start = c->pos;
	char inner[ADDR_DOMAIN_MAX + 1];
	unsigned char bin[16];

	c->pos++;
	while (peek(c) >= 33 && peek(c) <= 126 && peek(c) != '[' && peek(c) != ']' &&
	       peek(c) != '\\')
		c->pos++;
	if (peek(c) != ']')
		return ADDR_SYNTAX;
	size_t n = c->pos - start - 1;
	c->pos++;
	if (n == 0 || n >= sizeof inner)
		return n == 0 ? ADDR_SYNTAX : ADDR_TOO_LONG;
	memcpy(inner, c->s + start + 1, n);
	inner[n] = '\0';
	if (strncasecmp(inner, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, inner + 5, bin) != 1)
			return ADDR_SYNTAX;
	} else if (isdigit((unsigned char)inner[0])) {
		if (inet_pton(AF_INET, inner, bin) != 1)
			return ADDR_SYNTAX;
	} else {
		/* General-address-literal: Standardized-tag ":" 1*dcontent */
		char *colon = strchr(inner, ':');
		if (colon == NULL || colon == inner || colon[1] == '\0')
			return ADDR_SYNTAX;
		for (char *p = inner; p < colon; p++)
			if (!is_let_dig((unsigned char)*p) && *p != '-')
				return ADDR_SYNTAX;
	}
	size_t total = c->pos - start;
	if (total >= outsize)
		return ADDR_TOO_LONG;
	memcpy(out, c->s + start, total);
	out[total] = '\0';
	return ADDR_OK;
}

static enum addr_status parse_domain(struct cursor *c, struct mailbox *m,
				     char *out, size_t outsize)
{
	if (peek(c) == '[')
		return parse_address_literal(c, out, outsize);
	return parse_domain_name(c, m, out, outsize);
}

/* A-d-l ":" — parsed for syntax, then ignored. */
static enum addr_status skip_source_route(struct cursor *c)
{
	struct mailbox scratch;
	char domain[ADDR_DOMAIN_MAX + 1];

	for (;;) {
		if (peek(c) != '@')
			return ADDR_SYNTAX;
		c->pos++;
		enum addr_status st = parse_domain(c, &scratch, domain, sizeof domain);
		if (st != ADDR_OK)
			return st;
		if (peek(c) == ',') {
			c->pos++;
			continue;
		}
		if (peek(c) != ':')
			return ADDR_SYNTAX;
		c->pos++;
		return ADDR_OK;
	}
}

static enum addr_status parse_mailbox(struct cursor *c, struct mailbox *m)
{
	enum addr_status st;

	if (peek(c) == '"')
		st = parse_quoted_string(c, m, m->local, sizeof m->local);
	else
		st = parse_dot_string(c, m, m->local, sizeof m->local);
	if (st != ADDR_OK)
		return st;
	if (peek(c) != '@')
		return ADDR_SYNTAX;
	c->pos++;
	return parse_domain(c, m, m->domain, sizeof m->domain);
}

static enum addr_status check_total(const struct mailbox *m)
{
	return strlen(m->local) + 1 + strlen(m->domain) > ADDR_MAX ? ADDR_TOO_LONG : ADDR_OK;
}

enum addr_status addr_parse_path(const char *s, size_t len, int flags,
				 struct mailbox *m, size_t *used)
{
	struct cursor c = { s, len, 0 };

	memset(m, 0, sizeof *m);
	if (peek(&c) != '<')
		return ADDR_SYNTAX;
	c.pos++;
	if (peek(&c) == '>' && (flags & ADDR_ALLOW_NULL)) {
		*used = c.pos + 1;
		return ADDR_OK;
	}
	if ((flags & ADDR_ALLOW_POSTMASTER) && len - c.pos >= 11 &&
	    strncasecmp(s + c.pos, "postmaster>", 11) == 0) {
		str_copy(m->local, sizeof m->local, "postmaster");
		*used = c.pos + 11;
		return ADDR_OK;
	}
	if (peek(&c) == '@') {
		enum addr_status st = skip_source_route(&c);
		if (st != ADDR_OK)
			return st;
	}
	enum addr_status st = parse_mailbox(&c, m);
	if (st != ADDR_OK)
		return st;
	if (peek(&c) != '>')
		return ADDR_SYNTAX;
	*used = c.pos + 1;
	return check_total(m);
}

enum addr_status addr_parse(const char *s, struct mailbox *m)
{
	struct cursor c = { s, strlen(s), 0 };

	memset(m, 0, sizeof *m);
	enum addr_status st = parse_mailbox(&c, m);
	if (st != ADDR_OK)
		return st;
	if (c.pos != c.len)
		return ADDR_SYNTAX;
	return check_total(m);
}

bool addr_domain_valid(const char *s, int flags)
{
	struct cursor c = { s, strlen(s), 0 };
	struct mailbox m;
	char domain[ADDR_DOMAIN_MAX + 1];

	memset(&m, 0, sizeof m);
	if (c.len > ADDR_MAX - 2 || (s[0] == '[' && !(flags & ADDR_DOMAIN_LITERAL)))
		return false;	/* - 2: room for "x@" */
	if (parse_domain(&c, &m, domain, sizeof domain) != ADDR_OK || c.pos != c.len)
		return false;
	return !(m.utf8 && (flags & ADDR_DOMAIN_ASCII));
}

void addr_format(const struct mailbox *m, char *out, size_t outsize)
{
	if (m->domain[0] == '\0')
		snprintf(out, outsize, "%s", m->local);
	else
		snprintf(out, outsize, "%s@%s", m->local, m->domain);
}

size_t addr_span_unquoted(const char *s, const char *stops)
{
	bool quoted = false;
	size_t i = 0;

	for (; s[i] != '\0'; i++) {
		if (quoted && s[i] == '\\' && s[i + 1] != '\0')
			i++;
		else if (s[i] == '"')
			quoted = !quoted;
		else if (!quoted && strchr(stops, s[i]) != NULL)
			break;
	}
	return i;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int addr_list_next(const char **cursor, char *out, size_t outsize)
{
	const char *item = *cursor;

	if (*item == '\0')
		return 0;
	size_t len = addr_span_unquoted(item, ",");
	*cursor = item[len] == ',' ? item + len + 1 : item + len;
	while (len > 0 && is_blank(*item))
		item++, len--;
	while (len > 0 && is_blank(item[len - 1]))
		len--;
	if (len >= outsize)
		return -1;
	memcpy(out, item, len);
	out[len] = '\0';
	return 1;
}
