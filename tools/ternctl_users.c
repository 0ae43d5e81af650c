#include "ternctl_users.h"

#include <string.h>

#include "addr.h"

bool users_name_valid(const char *name, const char **why)
{
	size_t len = strlen(name);

	if (len == 0) {
		*why = "is empty";
		return false;
	}
	if (len > USERS_NAME_MAX) {
		*why = "is longer than 255 octets";
		return false;
	}
	if (name[0] == '#') {
		*why = "starts with '#' (a comment in the table)";
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch <= ' ' || ch == 0x7F) {
			*why = "holds white space or a control character";
			return false;
		}
	}
	if (!utf8_valid(name, len, NULL)) {
		*why = "is not UTF-8";
		return false;
	}
	return true;
}

size_t users_rewrite_size(size_t len, const char *name, const char *hash)
{
	return len + strlen(name) + strlen(hash) + 3;	/* LF before, blank, LF */
}

/* The key of the table line LINE (LEN octets, its LF excluded), as
 * lib/table.c reads it: a CR at the end cut, then after leading blanks,
 * up to a blank. */
static bool line_is_for(const char *line, size_t len, const char *name)
{
	size_t i = 0, nlen = strlen(name);

	if (len > 0 && line[0] == '#')
		return false;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	size_t start = i;
	while (i < len && line[i] != ' ' && line[i] != '\t')
		i++;
	return i - start == nlen && memcmp(line + start, name, nlen) == 0;
}

struct out_buf {
	char *p;
	size_t size, used;
};

static bool put(struct out_buf *o, const char *s, size_t len)
{
	if (len > o->size - o->used)
		return false;
	memcpy(o->p + o->used, s, len);
	o->used += len;
	return true;
}

static bool put_entry(struct out_buf *o, const char *name, const char *hash)
{
	return put(o, name, strlen(name)) && put(o, " ", 1) && put(o, hash, strlen(hash)) &&
	       put(o, "\n", 1);
}

int users_rewrite(const char *text, size_t len, const char *name, const char *hash,
		  char *out, size_t outsize, size_t *outlen)
{
	struct out_buf o = { out, outsize, 0 };
	bool done = false;
	size_t pos = 0;

	while (pos < len) {
		const char *lf = memchr(text + pos, '\n', len - pos);
		size_t line = lf ? (size_t)(lf - (text + pos)) : len - pos;
		size_t whole = lf ? line + 1 : line;
		if (!line_is_for(text + pos, line, name)) {
			if (!put(&o, text + pos, whole))
				return -1;
		} else if (!done) {
			if (!put_entry(&o, name, hash))
				return -1;
			done = true;
		}
		pos += whole;
	}
	if (!done) {
		if (o.used > 0 && out[o.used - 1] != '\n' && !put(&o, "\n", 1))
			return -1;
		if (!put_entry(&o, name, hash))
			return -1;
	}
	*outlen = o.used;
	return 0;
}
