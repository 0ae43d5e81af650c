/* log: one line per event on stderr, "PROGRAM[PID]: EVENT key=value ...".
 *
 * The format string holds the key=value pairs.  Every %s value is written
 * as is when it is a plain word, or in double quotes (with \" and \\
 * escaped) when it holds a space, a quote, a control character or is empty;
 * control characters never reach the log.  %d %u %ld %lu %lld %llu %zu
 * behave as in printf.  The whole line goes out in one write(2), so lines
 * of concurrent processes never interleave. */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#define LOG_LINE_MAX 4096

void log_event(const char *event, const char *format, ...)
	__attribute__((format(printf, 2, 3)));

/* Formats into BUF instead of stderr (for tests); returns the length. */
int log_format(char *buf, int size, const char *event, const char *format, ...)
	__attribute__((format(printf, 4, 5)));

#endif
