#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <wchar.h>

#include "util.h"

/* Longest conversion spec kept, "%-+ #0'4096.4096lld" and more. */
#define SPEC_MAX 48

struct line {
	char buf[LOG_LINE_MAX + 1];	/* room for the newline */
	size_t len;
	int saved_errno;		/* for %m */
};

enum length { LEN_NONE, LEN_HH, LEN_H, LEN_L, LEN_LL, LEN_J, LEN_Z, LEN_T, LEN_BIG_L };

/* One conversion as printf would read it, with any '*' already replaced
 * by the number it took. */
struct spec {
	char text[SPEC_MAX];
	size_t len;
	enum length length;
	char conversion;
};

static void put_char(struct line *l, char c)
{
	if (l->len < LOG_LINE_MAX)
		l->buf[l->len++] = c;
}

static void put_text(struct line *l, const char *s)
{
	for (; *s; s++)
		put_char(l, *s);
}

static int needs_quotes(const char *s)
{
	if (*s == '\0')
		return 1;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c == '"' || c == '\\' || c == 127)
			return 1;
	}
	return 0;
}

static void put_value(struct line *l, const char *s)
{
	if (!needs_quotes(s)) {
		put_text(l, s);
		return;
	}
	put_char(l, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			put_char(l, '\\');
			put_char(l, (char)c);
		} else if (c < ' ' || c == 127) {
			put_char(l, '?');
		} else {
			put_char(l, (char)c);
		}
	}
	put_char(l, '"');
}

static bool spec_add(struct spec *sp, char c)
{
	if (sp->len + 1 >= sizeof sp->text)
		return false;
	sp->text[sp->len++] = c;
	sp->text[sp->len] = '\0';
	return true;
}

static bool spec_add_number(struct spec *sp, long n)
{
	char digits[24];

	snprintf(digits, sizeof digits, "%ld", n);
	for (const char *p = digits; *p; p++)
		if (!spec_add(sp, *p))
			return false;
	return true;
}

/* Digits, or '*' taking an int: a width or precision.  A negative '*'
 * precision is left out, as printf does; a number past the line is
 * clamped to it, since nothing longer can be shown. */
static const char *take_number(const char *f, struct spec *sp, va_list *ap,
			       bool precision, bool *ok)
{
	if (*f == '*') {
		long n = va_arg(*ap, int);
		if (precision && n < 0)
			return f + 1;
		if (precision && !spec_add(sp, '.'))
			*ok = false;
		if (n > LOG_LINE_MAX || n < -LOG_LINE_MAX)
			n = n < 0 ? -LOG_LINE_MAX : LOG_LINE_MAX;
		if (!spec_add_number(sp, n))
			*ok = false;
		return f + 1;
	}
	if (precision && !spec_add(sp, '.'))
		*ok = false;
	long n = 0;
	for (; *f >= '0' && *f <= '9'; f++)
		n = n > LOG_LINE_MAX ? n : n * 10 + (*f - '0');
	if (n > LOG_LINE_MAX)
		n = LOG_LINE_MAX;
	if ((!precision || n > 0) && !spec_add_number(sp, n))
		*ok = false;
	return f;
}

static const char *take_length(const char *f, struct spec *sp)
{
	static const struct {
		const char *text;
		enum length length;
	} lengths[] = {
		{ "hh", LEN_HH }, { "h", LEN_H }, { "ll", LEN_LL }, { "l", LEN_L },
		{ "j", LEN_J }, { "z", LEN_Z }, { "t", LEN_T }, { "L", LEN_BIG_L },
	};

	sp->length = LEN_NONE;
	for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
		size_t n = strlen(lengths[i].text);
		if (strncmp(f, lengths[i].text, n) == 0) {
			sp->length = lengths[i].length;
			for (size_t k = 0; k < n; k++)
				spec_add(sp, f[k]);
			return f + n;
		}
	}
	return f;
}

/* Whether printf defines this length modifier for this conversion. */
static bool length_fits(char conversion, enum length length)
{
	if (strchr("diouxXn", conversion) != NULL)
		return length != LEN_BIG_L;
	if (strchr("eEfFgGaA", conversion) != NULL)
		return length == LEN_NONE || length == LEN_L || length == LEN_BIG_L;
	if (conversion == 'c' || conversion == 's')
		return length == LEN_NONE || length == LEN_L;
	return length == LEN_NONE;
}

/* Reads the conversion at F (just past its '%'), taking any '*'
 * arguments; returns what follows it, or NULL if printf would not know it. */
static const char *take_spec(const char *f, struct spec *sp, va_list *ap)
{
	bool ok = true;

	sp->len = 0;
	spec_add(sp, '%');
	while (*f && strchr("-+ #0'", *f) != NULL)
		ok = spec_add(sp, *f++) && ok;
	if (*f == '*' || (*f >= '1' && *f <= '9'))
		f = take_number(f, sp, ap, false, &ok);
	if (*f == '.')
		f = take_number(f + 1, sp, ap, true, &ok);
	f = take_length(f, sp);
	if (*f == '\0' || strchr("diouxXeEfFgGaAcspnm", *f) == NULL || !ok ||
	    !length_fits(*f, sp->length))
		return NULL;
	sp->conversion = *f;
	spec_add(sp, *f);
	return f + 1;
}

static int format_signed(char *out, size_t size, const struct spec *sp, va_list *ap)
{
	switch (sp->length) {
	case LEN_L: return snprintf(out, size, sp->text, va_arg(*ap, long));
	case LEN_LL: return snprintf(out, size, sp->text, va_arg(*ap, long long));
	case LEN_J: return snprintf(out, size, sp->text, va_arg(*ap, intmax_t));
	case LEN_Z: return snprintf(out, size, sp->text, va_arg(*ap, ssize_t));
	case LEN_T: return snprintf(out, size, sp->text, va_arg(*ap, ptrdiff_t));
	default: return snprintf(out, size, sp->text, va_arg(*ap, int));
	}
}

static int format_unsigned(char *out, size_t size, const struct spec *sp, va_list *ap)
{
	switch (sp->length) {
	case LEN_L: return snprintf(out, size, sp->text, va_arg(*ap, unsigned long));
	case LEN_LL: return snprintf(out, size, sp->text, va_arg(*ap, unsigned long long));
	case LEN_J: return snprintf(out, size, sp->text, va_arg(*ap, uintmax_t));
	case LEN_Z: return snprintf(out, size, sp->text, va_arg(*ap, size_t));
	case LEN_T: return snprintf(out, size, sp->text, va_arg(*ap, ptrdiff_t));
	default: return snprintf(out, size, sp->text, va_arg(*ap, unsigned));
	}
}

static int format_float(char *out, size_t size, const struct spec *sp, va_list *ap)
{
	if (sp->length == LEN_BIG_L)
		return snprintf(out, size, sp->text, va_arg(*ap, long double));
	return snprintf(out, size, sp->text, va_arg(*ap, double));
}

/* A %s or %c value, as printf would write it (width, precision); a null
 * string is empty. */
static int format_text(char *out, size_t size, const struct spec *sp, va_list *ap)
{
	if (sp->conversion == 'c' && sp->length == LEN_L)
		return snprintf(out, size, sp->text, va_arg(*ap, wint_t));
	if (sp->conversion == 'c')
		return snprintf(out, size, sp->text, va_arg(*ap, int));
	if (sp->length == LEN_L) {
		const wchar_t *w = va_arg(*ap, const wchar_t *);
		return snprintf(out, size, sp->text, w ? w : L"");
	}
	const char *s = va_arg(*ap, const char *);
	return snprintf(out, size, sp->text, s ? s : "");
}

/* Formats one conversion, taking exactly its argument, and writes it. */
static void put_conversion(struct line *l, const struct spec *sp, va_list *ap)
{
	char out[LOG_LINE_MAX + 1];
	int n;

	switch (sp->conversion) {
	case 'd': case 'i':
		n = format_signed(out, sizeof out, sp, ap);
		break;
	case 'o': case 'u': case 'x': case 'X':
		n = format_unsigned(out, sizeof out, sp, ap);
		break;
	case 'c': case 's':
		if (format_text(out, sizeof out, sp, ap) < 0)
			str_copy(out, sizeof out, "?");
		put_value(l, out);
		return;
	case 'p':
		n = snprintf(out, sizeof out, sp->text, va_arg(*ap, void *));
		break;
	case 'n':
		(void)va_arg(*ap, void *);
		return;
	case 'm':
		put_value(l, strerror(l->saved_errno));
		return;
	default:
		n = format_float(out, sizeof out, sp, ap);
		break;
	}
	put_text(l, n < 0 ? "?" : out);
}

static void put_formatted(struct line *l, const char *format, va_list *ap)
{
	struct spec sp;

	while (*format) {
		if (*format != '%') {
			put_char(l, *format++);
			continue;
		}
		if (format[1] == '%') {
			put_char(l, '%');
			format += 2;
			continue;
		}
		const char *next = take_spec(format + 1, &sp, ap);
		if (next == NULL) {
			put_text(l, format);
			return;
		}
		put_conversion(l, &sp, ap);
		format = next;
	}
}

void log_event(const char *event, const char *format, ...)
{
	struct line l = { .len = 0, .saved_errno = errno };
	char head[64];
	va_list ap;

	snprintf(head, sizeof head, "%s[%ld]: ", program_invocation_short_name,
		 (long)getpid());
	put_text(&l, head);
	put_text(&l, event);
	if (format[0] != '\0')
		put_char(&l, ' ');
	va_start(ap, format);
	put_formatted(&l, format, &ap);
	va_end(ap);
	l.buf[l.len++] = '\n';
	(void)write_all(2, l.buf, l.len);
	errno = l.saved_errno;
}
