/* addr_fuzz: lib/addr.c's path and mailbox parsers on any octets.
 *
 * The input is parsed as a path under every combination of flags, in a
 * buffer of exactly its length (so a read past LEN is an ASan report), and
 * as a bare mailbox; whatever is accepted must satisfy mailbox_check(). */
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
	free(exact);
	free(text);
	return 0;
}
