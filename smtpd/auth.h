/* auth: SASL PLAIN and LOGIN for tern-smtpd (RFC 4954, 4616), credential checks and
 * sender ownership for submission.
 *
 * Promises: base64 is taken strictly (RFC 4648 alphabet, '=' padding to a multiple of
 * four, no blanks, no stray bits after the last octet); "=" alone is the empty response
 * (RFC 4954 4).  A decoded name or password never holds a NUL and always fits its buffer,
 * or the decode fails.  Nothing here writes a log line, and every copy of a password this
 * module makes is wiped (explicit_bzero) before its storage is left; the caller wipes its
 * own.  A users table that cannot be read is a temporary failure, never a denial, and an
 * unknown user costs the crypt(3) work of a known one.  A checkpassword child never gets
 * the client connection (fd 0 and 1 are /dev/null), and never outlives its timeout. */
#ifndef TERN_SMTPD_AUTH_H
#define TERN_SMTPD_AUTH_H

#include <stddef.h>

#include "conf.h"
#include "table.h"

#define AUTH_LIBCRYPT "libcrypt.so.1"	/* loaded at the first password check */
#define AUTH_RESPONSE_MAX 12288		/* longest client response line, RFC 4954 4 */
#define AUTH_NAME_MAX 256
#define AUTH_PASSWORD_MAX 1024
#define AUTH_CHECKPASSWORD_TIMEOUT_S 30
#define AUTH_FAILURE_DELAY_FIRST_MS 1000
#define AUTH_FAILURE_DELAY_MAX_MS 8000

enum auth_decode { AUTH_DECODED, AUTH_BAD_BASE64, AUTH_MALFORMED, AUTH_OTHER_IDENTITY };

/* Base64 (b64_pton from libresolv) of "authzid\0authcid\0passwd".  AUTH_MALFORMED: not three
 * parts, a part too long, an empty authcid, a NUL where none belongs.  AUTH_OTHER_IDENTITY:
 * a non-empty authzid other than authcid (case-sensitive equal is the same identity); NAME
 * then holds the authcid (for the log) and PASSWORD is empty.  Outputs NUL-terminated name
 * and password; on any other failure both are empty. */
enum auth_decode auth_decode_plain(const char *b64, char name[AUTH_NAME_MAX],
				   char password[AUTH_PASSWORD_MAX]);

/* One LOGIN step: base64 of a name or password (no NUL allowed inside), into OUT
 * (NUL-terminated; AUTH_MALFORMED if it does not fit OUTSIZE). */
enum auth_decode auth_decode_text(const char *b64, char *out, size_t outsize);

/* Base64 of TEXT for the 334 challenges ("Username:", "Password:"), via b64_ntop.
 * The length written (without its NUL), or -1 if OUTSIZE is too small. */
int auth_encode(const char *text, char *out, size_t outsize);

enum auth_verdict { AUTH_GRANTED, AUTH_DENIED, AUTH_TEMPFAIL };

/* Checks NAME/PASSWORD against the users table (name -> crypt(3) hash, via crypt_rn) or, when
 * conf->auth_checkpassword is set, that program (the checkpassword interface: fd 3 carries
 * "name\0password\0timestamp\0", argv = { program, "/bin/true", NULL }, exit 0 granted, 1
 * denied, anything else or AUTH_CHECKPASSWORD_TIMEOUT_S passing (the child's process group is
 * killed) tempfail).  The caller must not ignore SIGCHLD, so that the child can be reaped.
 * An empty password is always denied, without a lookup.  A broken table (TABLE_TEMPFAIL)
 * is AUTH_TEMPFAIL.  An unknown user, or a hash crypt(3) refuses, is denied after hashing a
 * fixed dummy.  The password buffer is the caller's to wipe (explicit_bzero). */
enum auth_verdict auth_verify(const struct tern_conf *conf, struct table *users,
			      const char *name, const char *password);

/* Submission: may NAME use ADDRESS (as addr_format writes it, e.g. "alice@example.test";
 * "" is the null sender) as its envelope sender?  The senders table gives NAME a comma list
 * of addresses and "@domain"s.  Domain compared lowercased; local part lowercased too (tables
 * match lowercased); with conf->recipient_delimiter set, "alice+tag@d" is owned when
 * "alice@d" is.  The null sender is never owned.  TABLE_FOUND owned, TABLE_NOTFOUND not,
 * TABLE_TEMPFAIL table broken. */
enum table_result auth_sender_owned(const struct tern_conf *conf, struct table *senders,
				    const char *name, const char *address);

/* Delay before the reply to the Nth failed AUTH (1-based) in a session, in milliseconds:
 * AUTH_FAILURE_DELAY_FIRST_MS doubled with each failure after the first, at most
 * AUTH_FAILURE_DELAY_MAX_MS; 0 for N = 0. */
unsigned auth_failure_delay_ms(unsigned failures);

#endif
