/* ternctl_users: the text of the users table, as ternctl passwd edits it.
 *
 * Promises: users_name_valid() accepts only names that the table can hold
 * as a key and that AUTH can send (UTF-8, no white space or control
 * character, not starting with '#', 1 to USERS_NAME_MAX octets).
 * users_rewrite() keeps every line and comment as it was, octet for octet,
 * except NAME's: its first line becomes "NAME HASH", any later one goes,
 * and without one a line is appended. */
#ifndef TERN_TERNCTL_USERS_H
#define TERN_TERNCTL_USERS_H

#include <stdbool.h>
#include <stddef.h>

#define USERS_NAME_MAX 255

/* On false, *WHY says what is wrong with NAME. */
bool users_name_valid(const char *name, const char **why);

/* Room users_rewrite() needs for a text of LEN octets. */
size_t users_rewrite_size(size_t len, const char *name, const char *hash);

/* TEXT (LEN octets) with NAME's line set to HASH, into OUT; *OUTLEN gets
 * its length.  -1 if OUTSIZE is too small. */
int users_rewrite(const char *text, size_t len, const char *name, const char *hash,
		  char *out, size_t outsize, size_t *outlen);

#endif
