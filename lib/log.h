/* log: one line per event on stderr, "PROGRAM[PID]: EVENT key=value ...".
 *
 * The format string holds the key=value pairs.  Every conversion is
 * formatted by the C library (flags, width, precision and length modifier
 * as in printf, '*' included), and each one takes exactly the arguments
 * printf would take.  A %s or %c value is written as is when it is a plain
 * word, or in double quotes (with \" and \\ escaped) when it holds a space,
 * a quote, a control character or is empty; control characters never
 * reach the log.  %m (glibc's) is the text of errno as it was at the
 * call, quoted likewise; %n writes nothing (its argument is still taken).
 * A conversion printf does not define (or a positional one, %1$s) ends
 * the formatting: the rest of the format is written as it stands,
 * since the arguments it would take are unknown.  A line longer than
 * LOG_LINE_MAX is cut there.  The whole line goes out in one write(2), so
 * lines of concurrent processes never interleave, and errno is kept. */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#define LOG_LINE_MAX 4096

void log_event(const char *event, const char *format, ...)
	__attribute__((format(printf, 2, 3)));

#endif
