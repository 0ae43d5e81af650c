#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

struct line {
	char *buf;
	int size;
	int len;
};

static void put_char(struct line *l, char c)
{
	if (l->len < l->size - 1)
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
	if (s == NULL)
		s = "";
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

/* Copies a printf conversion such as "%lld" from FORMAT into SPEC. */
static const char *conversion(const char *format, char *spec, size_t size)
{
	size_t n = 0;

	spec[n++] = *format++;
	while (*format && strchr("lzh", *format) && n < size - 2)
		spec[n++] = *format++;
	if (*format)
		spec[n++] = *format++;
	spec[n] = '\0';
	return format;
}

static void put_formatted(struct line *l, const char *format, va_list ap)
{
	char spec[8], num[32];

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
		format = conversion(format, spec, sizeof spec);
		if (strcmp(spec, "%s") == 0) {
			put_value(l, va_arg(ap, const char *));
			continue;
		}
		if (strcmp(spec, "%d") == 0)
			snprintf(num, sizeof num, "%d", va_arg(ap, int));
		else if (strcmp(spec, "%u") == 0)
			snprintf(num, sizeof num, "%u", va_arg(ap, unsigned));
		else if (strcmp(spec, "%ld") == 0)
			snprintf(num, sizeof num, "%ld", va_arg(ap, long));
		else if (strcmp(spec, "%lu") == 0)
			snprintf(num, sizeof num, "%lu", va_arg(ap, unsigned long));
		else if (strcmp(spec, "%lld") == 0)
			snprintf(num, sizeof num, "%lld", va_arg(ap, long long));
		else if (strcmp(spec, "%llu") == 0)
			snprintf(num, sizeof num, "%llu", va_arg(ap, unsigned long long));
		else if (strcmp(spec, "%zu") == 0)
			snprintf(num, sizeof num, "%zu", va_arg(ap, size_t));
		else
			snprintf(num, sizeof num, "?");
		put_text(l, num);
	}
}

static int format_line(char *buf, int size, const char *event,
		       const char *format, va_list ap)
{
	struct line l = { buf, size, 0 };
	char head[64];

	snprintf(head, sizeof head, "%s[%ld]: ", program_invocation_short_name,
		 (long)getpid());
	put_text(&l, head);
	put_text(&l, event);
	if (format[0] != '\0')
		put_char(&l, ' ');
	put_formatted(&l, format, ap);
	buf[l.len] = '\0';
	return l.len;
}

int log_format(char *buf, int size, const char *event, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	int len = format_line(buf, size, event, format, ap);
	va_end(ap);
	return len;
}

void log_event(const char *event, const char *format, ...)
{
	char buf[LOG_LINE_MAX + 1];
	va_list ap;
	int saved = errno;

	va_start(ap, format);
	int len = format_line(buf, LOG_LINE_MAX, event, format, ap);
	va_end(ap);
	buf[len++] = '\n';
	(void)write_all(2, buf, (size_t)len);
	errno = saved;
}
