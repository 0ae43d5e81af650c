/* addr: RFC 5321 paths and mailboxes, with RFC 6531 UTF-8.
 *
 * Promises: a parsed mailbox never holds NUL, CR, LF or any other control
 * character; its local part is canonical (a quoted local part that is also a
 * dot-string loses its quotes) and its domain is lowercased; a source route
 * is parsed and dropped, as RFC 5321 4.1.1.3 says.  Nothing here interprets
 * '%', '!' or a quoted '@' as routing. */
#ifndef TERN_ADDR_H
#define TERN_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_MAX 254	/* RFC 5321 4.5.3.1.3: a path is 256 octets with <> */
#define ADDR_BUFFER (ADDR_LOCAL_MAX + 3 + 1 + ADDR_DOMAIN_MAX + 1)	/* local@domain */

struct mailbox {
	char local[ADDR_LOCAL_MAX + 3];	/* room for the quotes */
	char domain[ADDR_DOMAIN_MAX + 1];	/* empty for <> and bare postmaster */
	bool utf8;			/* holds non-ASCII characters */
};

enum addr_status { ADDR_OK = 0, ADDR_SYNTAX, ADDR_TOO_LONG };

#define ADDR_ALLOW_NULL 1		/* <> (MAIL FROM) */
#define ADDR_ALLOW_POSTMASTER 2		/* <Postmaster> (RCPT TO) */

/* Parses a path "<...>" at S (LEN octets); *USED gets the octets taken. */
enum addr_status addr_parse_path(const char *s, size_t len, int flags,
				 struct mailbox *m, size_t *used);

/* Parses a bare mailbox "local@domain" filling all of S (tables, envelopes). */
enum addr_status addr_parse(const char *s, struct mailbox *m);

#define ADDR_DOMAIN_LITERAL 1	/* also an address literal, [192.0.2.1] */
#define ADDR_DOMAIN_ASCII 2	/* no UTF-8 (U-labels) */

/* True if all of S is a domain a mailbox can hold: a domain name (UTF-8
 * allowed unless ADDR_DOMAIN_ASCII) or, with ADDR_DOMAIN_LITERAL, an
 * address literal; short enough that a mailbox at it fits ADDR_MAX. */
bool addr_domain_valid(const char *s, int flags);

/* "local@domain", "" for the null path, "postmaster" for bare postmaster. */
void addr_format(const struct mailbox *m, char *out, size_t outsize);

/* The length of the well-formed UTF-8 character at S (1 for ASCII), or 0
 * if the LEN octets at S do not start one: RFC 3629, so no overlong form,
 * no surrogate, nothing past U+10FFFF. */
size_t utf8_char_length(const char *s, size_t len);

/* The length of S up to its first octet from STOPS outside a quoted
 * string (where a backslash escapes the next octet). */
size_t addr_span_unquoted(const char *s, const char *stops);

/* The next item of the comma-separated address list at *CURSOR (aliases,
 * senders): a comma or blank inside a quoted local part is part of its
 * item.  The item, trimmed of spaces and tabs and possibly empty, goes to
 * OUT and *CURSOR moves past its comma.  1 for an item, 0 at the end of
 * the list, -1 if the item does not fit OUTSIZE. */
int addr_list_next(const char **cursor, char *out, size_t outsize);

/* True if S is well-formed UTF-8; *HAS_NON_ASCII (if given) tells whether
 * it holds any non-ASCII character. */
bool utf8_valid(const char *s, size_t len, bool *has_non_ascii);

#endif
