/* addr_fuzz: lib/addr.c's path and mailbox parsers on any octets.
 *
 * The input is parsed as a path under every combination of flags, in a
 * buffer of exactly its length (so a read past LEN is an ASan report), and
 * as a bare mailbox; whatever is accepted must satisfy mailbox_check().  The
 * domain check must agree with the mailbox parser on "x@" and the input,
 * and utf8_char_length() with utf8_valid(). */
#include <string.h>

#include "addr.h"
#include "fuzz.h"
#include "mailbox_check.h"

static void fuzz_path(const char *s, size_t len, int flags)
{
	struct mailbox m;
	size_t used = 0;

	enum addr_status st = addr_parse_path(s, len, flags, &m, &used);
	FUZZ_CHECK(st == ADDR_OK || st == ADDR_SYNTAX || st == ADDR_TOO_LONG);
	if (st != ADDR_OK)
		return;
	FUZZ_CHECK(used >= 2 && used <= len);
	FUZZ_CHECK(s[0] == '<' && s[used - 1] == '>');
	mailbox_check(&m, flags);
}

static void fuzz_mailbox(const char *s)
{
	struct mailbox m;
	char text[ADDR_BUFFER];

	enum addr_status st = addr_parse(s, &m);
	FUZZ_CHECK(st == ADDR_OK || st == ADDR_SYNTAX || st == ADDR_TOO_LONG);
	if (st != ADDR_OK)
		return;
	FUZZ_CHECK(m.domain[0] != '\0');
	mailbox_check(&m, 0);
	/* canonical: quotes only where needed, the domain lowered */
	addr_format(&m, text, sizeof text);
	FUZZ_CHECK(strlen(text) <= strlen(s));
}

/* addr_domain_valid(S) is exactly "x@S parses" (with the flags' limits). */
static void fuzz_domain(const char *s)
{
	char probe[ADDR_BUFFER + 2];
	struct mailbox m;
	size_t n = strlen(s);

	if (n + 3 > sizeof probe) {
		FUZZ_CHECK(!addr_domain_valid(s, ADDR_DOMAIN_LITERAL));
		return;
	}
	snprintf(probe, sizeof probe, "x@%s", s);
	bool parses = addr_parse(probe, &m) == ADDR_OK;
	bool literal = s[0] == '[';
	FUZZ_CHECK(addr_domain_valid(s, ADDR_DOMAIN_LITERAL) == parses);
	FUZZ_CHECK(addr_domain_valid(s, ADDR_DOMAIN_LITERAL | ADDR_DOMAIN_ASCII) ==
		   (parses && !m.utf8));
	FUZZ_CHECK(addr_domain_valid(s, 0) == (parses && !literal));
	FUZZ_CHECK(addr_domain_valid(s, ADDR_DOMAIN_ASCII) == (parses && !literal && !m.utf8));
}

/* Walking S a character at a time fails exactly where utf8_valid says. */
static void fuzz_utf8(const char *s, size_t len)
{
	bool walked = true, non_ascii = false, said_non_ascii = false;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_char_length(s + i, len - i);
		FUZZ_CHECK(n <= 4 && n <= len - i);
		if (n == 0) {
			walked = false;
			break;
		}
		FUZZ_CHECK((n == 1) == ((unsigned char)s[i] < 0x80));
		non_ascii |= n > 1;
		i += n;
	}
	FUZZ_CHECK(utf8_valid(s, len, &said_non_ascii) == walked);
	if (walked)
		FUZZ_CHECK(said_non_ascii == non_ascii);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *exact = malloc(size ? size : 1);
	char *text = malloc(size + 1);

	if (exact == NULL || text == NULL) {
		free(exact);
		free(text);
		return 0;
	}
	memcpy(exact, data, size);
	for (int flags = 0; flags <= (ADDR_ALLOW_NULL | ADDR_ALLOW_POSTMASTER); flags++)
		fuzz_path(exact, size, flags);
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_mailbox(text);
	fuzz_domain(text);
	fuzz_utf8(exact, size);
	free(exact);
	free(text);
	return 0;
}
