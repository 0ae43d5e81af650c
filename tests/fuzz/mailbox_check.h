/* mailbox_check: the invariants of a mailbox that lib/addr.c accepted
 * (lib/addr.h's promises), for the address and command harnesses. */
#ifndef TERN_FUZZ_MAILBOX_CHECK_H
#define TERN_FUZZ_MAILBOX_CHECK_H

#include <stdbool.h>
#include <string.h>

#include "addr.h"
#include "fuzz.h"

static bool has_ascii_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 32 || *s == 127)
			return true;
	return false;
}

static bool has_non_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

static bool has_upper_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			return true;
	return false;
}

static bool same_mailbox(const struct mailbox *a, const struct mailbox *b)
{
	return strcmp(a->local, b->local) == 0 && strcmp(a->domain, b->domain) == 0 &&
	       a->utf8 == b->utf8;
}

/* M was accepted as a path with FLAGS (ADDR_ALLOW_*). */
static void mailbox_check(const struct mailbox *m, int flags)
{
	char text[ADDR_BUFFER], path[ADDR_BUFFER + 2];
	struct mailbox again;
	size_t used;

	FUZZ_CHECK(memchr(m->local, '\0', sizeof m->local) != NULL);
	FUZZ_CHECK(memchr(m->domain, '\0', sizeof m->domain) != NULL);
	FUZZ_CHECK(!has_ascii_control(m->local) && !has_ascii_control(m->domain));
	FUZZ_CHECK(m->utf8 == (has_non_ascii(m->local) || has_non_ascii(m->domain)));
	FUZZ_CHECK(utf8_valid(m->local, strlen(m->local), NULL));
	FUZZ_CHECK(utf8_valid(m->domain, strlen(m->domain), NULL));
	if (m->domain[0] == '\0') {
		/* the null path or bare postmaster, each only where allowed */
		if (m->local[0] == '\0')
			FUZZ_CHECK(flags & ADDR_ALLOW_NULL);
		else
			FUZZ_CHECK((flags & ADDR_ALLOW_POSTMASTER) &&
				   strcmp(m->local, "postmaster") == 0);
		return;
	}
	FUZZ_CHECK(m->local[0] != '\0');
	FUZZ_CHECK(strlen(m->local) + 1 + strlen(m->domain) <= ADDR_MAX);
	if (m->domain[0] != '[')
		FUZZ_CHECK(!has_upper_ascii(m->domain));

	/* What tern writes into envelopes and tables reads back as itself. */
	addr_format(m, text, sizeof text);
	FUZZ_CHECK(strlen(text) == strlen(m->local) + 1 + strlen(m->domain));
	FUZZ_CHECK(addr_parse(text, &again) == ADDR_OK);
	FUZZ_CHECK(same_mailbox(m, &again));
	size_t n = (size_t)snprintf(path, sizeof path, "<%s>", text);
	FUZZ_CHECK(addr_parse_path(path, n, flags, &again, &used) == ADDR_OK);
	FUZZ_CHECK(used == n);
	FUZZ_CHECK(same_mailbox(m, &again));
}

#endif
