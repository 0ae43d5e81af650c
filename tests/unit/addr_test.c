/* addr: RFC 5321 paths and mailboxes (lib/addr.h). */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "suites.h"

/* Parses the C string S as a path with FLAGS. */
static enum addr_status path(const char *s, int flags, struct mailbox *m, size_t *used)
{
	size_t scratch;
	return addr_parse_path(s, strlen(s), flags, m, used ? used : &scratch);
}

static void check_path(const char *s, int flags, const char *local, const char *domain)
{
	struct mailbox m;
	size_t used = 0;
	enum addr_status st = path(s, flags, &m, &used);
	ck_assert_msg(st == ADDR_OK, "%s: status %d", s, st);
	ck_assert_str_eq(m.local, local);
	ck_assert_str_eq(m.domain, domain);
	ck_assert_uint_eq(used, strlen(s));
}

static void check_path_fails(const char *s, int flags, enum addr_status want)
{
	struct mailbox m;
	enum addr_status st = path(s, flags, &m, NULL);
	ck_assert_msg(st == want, "%s: status %d, want %d", s, st, want);
}

START_TEST(plain_address)
{
	struct mailbox m;
	char out[ADDR_BUFFER];

	check_path("<user@example.test>", 0, "user", "example.test");
	check_path("<first.last+tag@mx.example.test>", 0, "first.last+tag", "mx.example.test");
	check_path("<a-b_c=d@x-y.test>", 0, "a-b_c=d", "x-y.test");
	ck_assert_int_eq(addr_parse("user@example.test", &m), ADDR_OK);
	ck_assert_str_eq(m.local, "user");
	ck_assert_str_eq(m.domain, "example.test");
	ck_assert(!m.utf8);
	addr_format(&m, out, sizeof out);
	ck_assert_str_eq(out, "user@example.test");
}
END_TEST

START_TEST(path_needs_brackets)
{
	struct mailbox m;
	size_t used;

	check_path_fails("user@example.test", 0, ADDR_SYNTAX);
	check_path_fails("<user@example.test", 0, ADDR_SYNTAX);
	check_path_fails("<user@example.test ", 0, ADDR_SYNTAX);
	check_path_fails("< user@example.test>", 0, ADDR_SYNTAX);
	check_path_fails("<user@example.test >", 0, ADDR_SYNTAX);
	check_path_fails("<user>", 0, ADDR_SYNTAX);
	check_path_fails("<@example.test>", 0, ADDR_SYNTAX);
	check_path_fails("<user@>", 0, ADDR_SYNTAX);
	ck_assert_int_eq(addr_parse_path("", 0, ADDR_ALLOW_NULL | ADDR_ALLOW_POSTMASTER,
					 &m, &used), ADDR_SYNTAX);
	/* LEN is respected: the '>' beyond it does not count */
	ck_assert_int_eq(addr_parse_path("<a@b.test>", 9, 0, &m, &used), ADDR_SYNTAX);
	ck_assert_int_eq(addr_parse_path("<>", 1, ADDR_ALLOW_NULL, &m, &used), ADDR_SYNTAX);
	ck_assert_int_eq(addr_parse("<user@example.test>", &m), ADDR_SYNTAX);
	ck_assert_int_eq(addr_parse("", &m), ADDR_SYNTAX);
	ck_assert_int_eq(addr_parse("user", &m), ADDR_SYNTAX);
	ck_assert_int_eq(addr_parse("user@example.test ", &m), ADDR_SYNTAX);
}
END_TEST

START_TEST(null_path)
{
	struct mailbox m;
	size_t used = 0;
	char out[ADDR_BUFFER] = "junk";

	ck_assert_int_eq(path("<>", ADDR_ALLOW_NULL, &m, &used), ADDR_OK);
	ck_assert_uint_eq(used, 2);
	ck_assert_str_eq(m.local, "");
	ck_assert_str_eq(m.domain, "");
	addr_format(&m, out, sizeof out);
	ck_assert_str_eq(out, "");
	check_path_fails("<>", 0, ADDR_SYNTAX);
	check_path_fails("<>", ADDR_ALLOW_POSTMASTER, ADDR_SYNTAX);
	ck_assert_int_eq(addr_parse("", &m), ADDR_SYNTAX);
}
END_TEST

START_TEST(bare_postmaster)
{
	struct mailbox m;
	char out[ADDR_BUFFER];

	check_path("<Postmaster>", ADDR_ALLOW_POSTMASTER, "postmaster", "");
	check_path("<postmaster>", ADDR_ALLOW_POSTMASTER, "postmaster", "");
	check_path("<POSTMASTER>", ADDR_ALLOW_POSTMASTER, "postmaster", "");
	check_path("<PoStMaStEr>", ADDR_ALLOW_POSTMASTER | ADDR_ALLOW_NULL, "postmaster", "");
	ck_assert_int_eq(path("<Postmaster>", ADDR_ALLOW_POSTMASTER, &m, NULL), ADDR_OK);
	addr_format(&m, out, sizeof out);
	ck_assert_str_eq(out, "postmaster");
	check_path_fails("<Postmaster>", 0, ADDR_SYNTAX);
	check_path_fails("<Postmaster>", ADDR_ALLOW_NULL, ADDR_SYNTAX);
	check_path_fails("<postmasterx>", ADDR_ALLOW_POSTMASTER, ADDR_SYNTAX);
	check_path_fails("<postmaste>", ADDR_ALLOW_POSTMASTER, ADDR_SYNTAX);
	check_path_fails("<>", ADDR_ALLOW_POSTMASTER, ADDR_SYNTAX);
	/* with a domain it is an ordinary address */
	check_path("<Postmaster@Example.TEST>", ADDR_ALLOW_POSTMASTER, "Postmaster", "example.test");
	ck_assert_int_eq(addr_parse("postmaster", &m), ADDR_SYNTAX);
}
END_TEST

START_TEST(quoted_local_parts)
{
	struct mailbox m;
	char out[ADDR_BUFFER];

	check_path("<\"john doe\"@x.test>", 0, "\"john doe\"", "x.test");
	check_path("<\"john\"@x.test>", 0, "john", "x.test");
	check_path("<\"john.doe\"@x.test>", 0, "john.doe", "x.test");
	check_path("<\"a\\\"b\"@x.test>", 0, "\"a\\\"b\"", "x.test");
	check_path("<\"a\\\\b\"@x.test>", 0, "\"a\\\\b\"", "x.test");
	/* an escaped ordinary character is just that character */
	check_path("<\"\\j\\o\\e\"@x.test>", 0, "joe", "x.test");
	check_path("<\"a\\ b\"@x.test>", 0, "\"a b\"", "x.test");
	/* not a dot-string: keeps its quotes */
	check_path("<\"john..doe\"@x.test>", 0, "\"john..doe\"", "x.test");
	check_path("<\".john\"@x.test>", 0, "\".john\"", "x.test");
	check_path("<\"john.\"@x.test>", 0, "\"john.\"", "x.test");
	check_path("<\"a,b\"@x.test>", 0, "\"a,b\"", "x.test");

	ck_assert_int_eq(addr_parse("\"john doe\"@X.Test", &m), ADDR_OK);
	ck_assert_str_eq(m.local, "\"john doe\"");
	ck_assert_str_eq(m.domain, "x.test");
	addr_format(&m, out, sizeof out);
	ck_assert_str_eq(out, "\"john doe\"@x.test");
	/* what addr_format writes parses back to the same mailbox */
	struct mailbox again;
	ck_assert_int_eq(addr_parse(out, &again), ADDR_OK);
	ck_assert_str_eq(again.local, m.local);
	ck_assert_str_eq(again.domain, m.domain);

	check_path_fails("<\"john@x.test>", 0, ADDR_SYNTAX);
	check_path_fails("<\"john\"doe@x.test>", 0, ADDR_SYNTAX);
	check_path_fails("<john\"doe\"@x.test>", 0, ADDR_SYNTAX);
	check_path_fails("<\"john\\\"@x.test>", 0, ADDR_SYNTAX);
}
END_TEST

START_TEST(quoted_escapes_that_do_not_fit)
{
	/* 40 escaped quotes: 40 octets of content, 82 once re-escaped */
	char s[200] = "<\"";
	for (int i = 0; i < 40; i++)
		strcat(s, "\\\"");
	strcat(s, "\"@x.test>");
	struct mailbox m;
	enum addr_status st = path(s, 0, &m, NULL);
	ck_assert_int_eq(st, ADDR_TOO_LONG);
}
END_TEST

START_TEST(domain_lowercased)
{
	check_path("<User@Example.TEST>", 0, "User", "example.test");
	check_path("<USER@MX.EXAMPLE.TEST>", 0, "USER", "mx.example.test");
}
END_TEST

START_TEST(domain_syntax)
{
	check_path_fails("<u@-x.test>", 0, ADDR_SYNTAX);
	check_path_fails("<u@x-.test>", 0, ADDR_SYNTAX);
	check_path_fails("<u@x..test>", 0, ADDR_SYNTAX);
	check_path_fails("<u@.x.test>", 0, ADDR_SYNTAX);
	check_path_fails("<u@x.test.>", 0, ADDR_SYNTAX);
	check_path_fails("<u@x_y.test>", 0, ADDR_SYNTAX);
	check_path_fails("<u@x y.test>", 0, ADDR_SYNTAX);
	check_path("<u@a-b.x1.test>", 0, "u", "a-b.x1.test");
	check_path("<u@localhost>", 0, "u", "localhost");
	check_path_fails("<.u@x.test>", 0, ADDR_SYNTAX);
	check_path_fails("<u.@x.test>", 0, ADDR_SYNTAX);
	check_path_fails("<u..v@x.test>", 0, ADDR_SYNTAX);
	check_path_fails("<u v@x.test>", 0, ADDR_SYNTAX);
	check_path_fails("<u(c)@x.test>", 0, ADDR_SYNTAX);
}
END_TEST

START_TEST(address_literals)
{
	check_path("<u@[127.0.0.1]>", 0, "u", "[127.0.0.1]");
	check_path("<u@[IPv6:::1]>", 0, "u", "[IPv6:::1]");
	check_path("<u@[IPv6:2001:db8::1]>", 0, "u", "[IPv6:2001:db8::1]");
	check_path_fails("<u@[300.1.1.1]>", 0, ADDR_SYNTAX);
	check_path_fails("<u@[1.2.3]>", 0, ADDR_SYNTAX);
	check_path_fails("<u@[1.2.3.4.5]>", 0, ADDR_SYNTAX);
	check_path_fails("<u@[IPv6:zz::1]>", 0, ADDR_SYNTAX);
	check_path_fails("<u@[IPv6:1.2.3.4]>", 0, ADDR_SYNTAX);
	check_path_fails("<u@[127.0.0.1>", 0, ADDR_SYNTAX);
	check_path_fails("<u@[]>", 0, ADDR_SYNTAX);
	check_path_fails("<u@[127.0.0.1]x>", 0, ADDR_SYNTAX);
	check_path_fails("<u@[127.0.0.1 ]>", 0, ADDR_SYNTAX);

	struct mailbox m;
	ck_assert_int_eq(addr_parse("u@[127.0.0.1]", &m), ADDR_OK);
	ck_assert_str_eq(m.domain, "[127.0.0.1]");
	ck_assert_int_eq(addr_parse("u@[300.1.1.1]", &m), ADDR_SYNTAX);
}
END_TEST

START_TEST(source_routes)
{
	struct mailbox m;
	char out[ADDR_BUFFER];

	check_path("<@a.test,@b.test:u@c.test>", 0, "u", "c.test");
	check_path("<@a.test:u@c.test>", 0, "u", "c.test");
	check_path("<@[127.0.0.1]:u@c.test>", 0, "u", "c.test");
	ck_assert_int_eq(path("<@a.test,@b.test:u@c.test>", 0, &m, NULL), ADDR_OK);
	addr_format(&m, out, sizeof out);
	ck_assert_str_eq(out, "u@c.test");
	check_path_fails("<@a.test u@c.test>", 0, ADDR_SYNTAX);
	check_path_fails("<@a.test,u@c.test>", 0, ADDR_SYNTAX);
	check_path_fails("<@:u@c.test>", 0, ADDR_SYNTAX);
	check_path_fails("<@a.test,:u@c.test>", 0, ADDR_SYNTAX);
	check_path_fails("<@a.test:>", 0, ADDR_SYNTAX);
	/* a route before the null path is not the null path */
	check_path_fails("<@a.test:>", ADDR_ALLOW_NULL, ADDR_SYNTAX);
}
END_TEST

START_TEST(utf8_addresses)
{
	struct mailbox m;

	ck_assert_int_eq(path("<j\xc3\xb6rg@example.test>", 0, &m, NULL), ADDR_OK);
	ck_assert_str_eq(m.local, "j\xc3\xb6rg");
	ck_assert(m.utf8);
	ck_assert_int_eq(path("<joe@b\xc3\xbc" "cher.TEST>", 0, &m, NULL), ADDR_OK);
	ck_assert_str_eq(m.domain, "b\xc3\xbc" "cher.test");
	ck_assert(m.utf8);
	ck_assert_int_eq(path("<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test>", 0,
			      &m, NULL), ADDR_OK);
	ck_assert(m.utf8);
	ck_assert_int_eq(path("<\"j\xc3\xb6 rg\"@x.test>", 0, &m, NULL), ADDR_OK);
	ck_assert(m.utf8);
	ck_assert_str_eq(m.local, "\"j\xc3\xb6 rg\"");
	ck_assert_int_eq(addr_parse("\xf0\x9f\x98\x80@x.test", &m), ADDR_OK);
	ck_assert(m.utf8);
	ck_assert_int_eq(path("<joe@x.test>", 0, &m, NULL), ADDR_OK);
	ck_assert(!m.utf8);
	/* a null path after a UTF-8 one does not keep the flag */
	ck_assert_int_eq(path("<>", ADDR_ALLOW_NULL, &m, NULL), ADDR_OK);
	ck_assert(!m.utf8);
}
END_TEST

START_TEST(invalid_utf8_rejected)
{
	static const char *const bad[] = {
		"<j\xc3@x.test>",		/* truncated */
		"<j\xc3(@x.test>",		/* bad continuation */
		"<j\xff@x.test>",		/* never valid */
		"<j\x80@x.test>",		/* lone continuation */
		"<j\xc0\xaf@x.test>",		/* overlong '/' */
		"<j\xe0\x80\xaf@x.test>",	/* overlong, 3 octets */
		"<j\xed\xa0\x80@x.test>",	/* surrogate */
		"<j\xf4\x90\x80\x80@x.test>",	/* past U+10FFFF */
		"<j\xf8\x88\x80\x80\x80@x.test>",	/* 5 octets */
		"<joe@b\xc3.test>",
		"<joe@b\xff.test>",
		"<\"j\xc3\"@x.test>",
		"<\"j\xff\"@x.test>",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		check_path_fails(bad[i], 0, ADDR_SYNTAX);
	struct mailbox m;
	ck_assert_int_eq(addr_parse("j\xc3@x.test", &m), ADDR_SYNTAX);
	ck_assert_int_eq(addr_parse("j@x\xff.test", &m), ADDR_SYNTAX);
}
END_TEST

START_TEST(utf8_valid_function)
{
	bool non_ascii = true;

	ck_assert(utf8_valid("", 0, &non_ascii));
	ck_assert(!non_ascii);
	non_ascii = true;
	ck_assert(utf8_valid("plain ascii", 11, &non_ascii));
	ck_assert(!non_ascii);
	ck_assert(utf8_valid("j\xc3\xb6rg", 5, &non_ascii));
	ck_assert(non_ascii);
	ck_assert(utf8_valid("\xf0\x9f\x98\x80", 4, &non_ascii));
	ck_assert(non_ascii);
	ck_assert(utf8_valid("\xef\xbf\xbd", 3, NULL));
	ck_assert(!utf8_valid("\xc3", 1, &non_ascii));
	ck_assert(!utf8_valid("j\xc3\xb6rg", 2, &non_ascii));	/* LEN cuts a sequence */
	ck_assert(!utf8_valid("\xc0\x80", 2, NULL));
	ck_assert(!utf8_valid("\xed\xbf\xbf", 3, NULL));
	ck_assert(!utf8_valid("\xf4\x90\x80\x80", 4, NULL));
	ck_assert(!utf8_valid("\xfe", 1, NULL));
	ck_assert(!utf8_valid("ok\x80", 3, NULL));
}
END_TEST

START_TEST(utf8_char_lengths)
{
	static const struct {
		const char *s;
		size_t len, want;
	} cases[] = {
		{ "a", 1, 1 }, { "\x7f", 1, 1 }, { "", 0, 0 },
		{ "\xc2\x80", 2, 2 }, { "\xdf\xbf", 2, 2 },			/* U+0080, U+07FF */
		{ "\xe0\xa0\x80", 3, 3 }, { "\xed\x9f\xbf", 3, 3 },	/* U+0800, U+D7FF */
		{ "\xee\x80\x80", 3, 3 }, { "\xef\xbf\xbf", 3, 3 },	/* U+E000, U+FFFF */
		{ "\xf0\x90\x80\x80", 4, 4 }, { "\xf4\x8f\xbf\xbf", 4, 4 },	/* U+10000, U+10FFFF */
		{ "\xed\xa0\x80", 3, 0 }, { "\xed\xbf\xbf", 3, 0 },	/* surrogates */
		{ "\xf4\x90\x80\x80", 4, 0 },				/* U+110000 */
		{ "\xc0\x80", 2, 0 }, { "\xc1\xbf", 2, 0 },			/* overlong */
		{ "\xe0\x9f\xbf", 3, 0 }, { "\xf0\x8f\xbf\xbf", 4, 0 },
		{ "\xf5\x80\x80\x80", 4, 0 }, { "\xff", 1, 0 }, { "\xfe", 1, 0 },
		{ "\x80", 1, 0 }, { "\xbf", 1, 0 },				/* lone continuation */
		{ "\xc3\xb6", 1, 0 }, { "\xe2\x82\xac", 2, 0 },		/* cut by LEN */
		{ "\xc3(", 2, 0 }, { "\xe2\x28\xac", 3, 0 },			/* bad continuation */
		{ "\xc3\xb6rest", 6, 2 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ck_assert_msg(utf8_char_length(cases[i].s, cases[i].len) == cases[i].want,
			      "case %zu: %zu, not %zu", i,
			      utf8_char_length(cases[i].s, cases[i].len), cases[i].want);
}
END_TEST

START_TEST(relay_tricks_stay_local)
{
	struct mailbox m;

	check_path("<u%other.test@local.test>", 0, "u%other.test", "local.test");
	check_path("<u%other@local.test>", 0, "u%other", "local.test");
	check_path("<\"u@other.test\"@local.test>", 0, "\"u@other.test\"", "local.test");
	check_path("<other!u@local.test>", 0, "other!u", "local.test");
	check_path("<other.test!u@local.test>", 0, "other.test!u", "local.test");
	check_path_fails("<u@other@local.test>", 0, ADDR_SYNTAX);
	check_path_fails("<u@other.test@local.test>", 0, ADDR_SYNTAX);
	check_path_fails("<u@local.test@>", 0, ADDR_SYNTAX);

	ck_assert_int_eq(addr_parse("u%other@local.test", &m), ADDR_OK);
	ck_assert_str_eq(m.local, "u%other");
	ck_assert_str_eq(m.domain, "local.test");
	ck_assert_int_eq(addr_parse("\"u@other\"@local.test", &m), ADDR_OK);
	ck_assert_str_eq(m.domain, "local.test");
	ck_assert_str_eq(m.local, "\"u@other\"");
	ck_assert_int_eq(addr_parse("other!u@local.test", &m), ADDR_OK);
	ck_assert_str_eq(m.local, "other!u");
	ck_assert_str_eq(m.domain, "local.test");
	ck_assert_int_eq(addr_parse("u@other@local.test", &m), ADDR_SYNTAX);
}
END_TEST

START_TEST(length_limits)
{
	char s[1024], local[100], label[100];
	struct mailbox m;

	memset(local, 'a', 64);
	local[64] = '\0';
	snprintf(s, sizeof s, "<%s@x.test>", local);
	check_path(s, 0, local, "x.test");
	snprintf(s, sizeof s, "%s@x.test", local);
	ck_assert_int_eq(addr_parse(s, &m), ADDR_OK);

	memset(local, 'a', 65);
	local[65] = '\0';
	snprintf(s, sizeof s, "<%s@x.test>", local);
	check_path_fails(s, 0, ADDR_TOO_LONG);
	snprintf(s, sizeof s, "%s@x.test", local);
	ck_assert_int_eq(addr_parse(s, &m), ADDR_TOO_LONG);
	/* 65 octets with dots in it too */
	snprintf(s, sizeof s, "<a.%.63s@x.test>", local);
	check_path_fails(s, 0, ADDR_TOO_LONG);

	/* labels of 63 octets are fine, 64 are not */
	memset(label, 'b', 63);
	label[63] = '\0';
	snprintf(s, sizeof s, "<u@%s.test>", label);
	ck_assert_int_eq(path(s, 0, &m, NULL), ADDR_OK);
	memset(label, 'b', 64);
	label[64] = '\0';
	snprintf(s, sizeof s, "<u@%s.test>", label);
	ck_assert_int_ne(path(s, 0, &m, NULL), ADDR_OK);

	/* a whole address: 64 + 1 + 189 = 254 octets is the limit */
	memset(local, 'a', 64);
	local[64] = '\0';
	char domain[300];
	/* 189 = 62 + 1 + 62 + 1 + 58 + 1 + 4 */
	snprintf(domain, sizeof domain, "%.62s.%.62s.%.58s.test",
		 "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
		 "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
		 "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
	ck_assert_uint_eq(strlen(domain), 189);
	snprintf(s, sizeof s, "<%s@%s>", local, domain);
	ck_assert_int_eq(path(s, 0, &m, NULL), ADDR_OK);
	snprintf(s, sizeof s, "<%s@c%s>", local, domain);
	ck_assert_int_eq(path(s, 0, &m, NULL), ADDR_TOO_LONG);
	snprintf(s, sizeof s, "%s@c%s", local, domain);
	ck_assert_int_eq(addr_parse(s, &m), ADDR_TOO_LONG);

	/* a domain over 255 octets: refused, never overflowing */
	char big[400] = "<u@";
	for (int i = 0; i < 5; i++)
		strcat(big, "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd.");
	strcat(big, "test>");
	ck_assert_int_eq(path(big, 0, &m, NULL), ADDR_TOO_LONG);
}
END_TEST

/* No control character, in any place, gets through. */
START_TEST(control_characters_rejected)
{
	static const char *const templates[] = {
		"<u%cv@x.test>", "<%cuv@x.test>", "<uv%c@x.test>", "<uv@x%c.test>",
		"<uv@x.test%c>", "<\"u%cv\"@x.test>", "<\"u\\%cv\"@x.test>",
		"<@a%c.test:uv@x.test>",
	};
	struct mailbox m;
	char s[64], bare[64];
	size_t used;

	for (int ch = 0; ch < 128; ch++) {
		if (ch >= 32 && ch != 127)
			continue;
		for (size_t t = 0; t < sizeof templates / sizeof templates[0]; t++) {
			int n = snprintf(s, sizeof s, templates[t], ch);
			/* %c with NUL: the length still covers it */
			ck_assert(n > 0);
			enum addr_status st = addr_parse_path(s, (size_t)n, ADDR_ALLOW_NULL |
							      ADDR_ALLOW_POSTMASTER, &m, &used);
			ck_assert_msg(st != ADDR_OK, "template %zu char %d accepted", t, ch);
		}
	}
	/* the bare form, through addr_parse */
	for (int ch = 1; ch < 128; ch++) {
		if (ch >= 32 && ch != 127)
			continue;
		snprintf(bare, sizeof bare, "u%cv@x.test", ch);
		ck_assert_msg(addr_parse(bare, &m) != ADDR_OK, "char %d accepted", ch);
		snprintf(bare, sizeof bare, "\"u%cv\"@x.test", ch);
		ck_assert_msg(addr_parse(bare, &m) != ADDR_OK, "quoted char %d accepted", ch);
		snprintf(bare, sizeof bare, "uv@x%c.test", ch);
		ck_assert_msg(addr_parse(bare, &m) != ADDR_OK, "domain char %d accepted", ch);
	}
	/* an embedded NUL ends the string for addr_parse: the rest is not ignored */
	ck_assert_int_eq(addr_parse("u@x.test\0junk", &m), ADDR_OK);
	ck_assert_str_eq(m.domain, "x.test");
	/* and within addr_parse_path's LEN, a NUL is just a bad byte */
	ck_assert_int_ne(addr_parse_path("<u@x.test\0>", 11, 0, &m, &used), ADDR_OK);
	ck_assert_int_ne(addr_parse_path("<\0>", 3, ADDR_ALLOW_NULL, &m, &used), ADDR_OK);
}
END_TEST

START_TEST(used_stops_at_the_path)
{
	struct mailbox m;
	size_t used = 0;
	const char *s;

	s = "<a@b.test> SIZE=100 BODY=8BITMIME";
	ck_assert_int_eq(path(s, 0, &m, &used), ADDR_OK);
	ck_assert_uint_eq(used, 10);
	ck_assert_str_eq(s + used, " SIZE=100 BODY=8BITMIME");
	s = "<> SIZE=5";
	ck_assert_int_eq(path(s, ADDR_ALLOW_NULL, &m, &used), ADDR_OK);
	ck_assert_uint_eq(used, 2);
	s = "<Postmaster> NOTIFY=NEVER";
	ck_assert_int_eq(path(s, ADDR_ALLOW_POSTMASTER, &m, &used), ADDR_OK);
	ck_assert_uint_eq(used, 12);
	s = "<@a.test,@b.test:u@c.test> X=Y";
	ck_assert_int_eq(path(s, 0, &m, &used), ADDR_OK);
	ck_assert_uint_eq(used, strlen("<@a.test,@b.test:u@c.test>"));
	s = "<\"a b\"@c.test>>";
	ck_assert_int_eq(path(s, 0, &m, &used), ADDR_OK);
	ck_assert_uint_eq(used, strlen(s) - 1);
	s = "<u@[127.0.0.1]>xyz";
	ck_assert_int_eq(path(s, 0, &m, &used), ADDR_OK);
	ck_assert_uint_eq(used, strlen("<u@[127.0.0.1]>"));
}
END_TEST

START_TEST(format_fits_the_buffer)
{
	struct mailbox m;
	char small[8];

	ck_assert_int_eq(addr_parse("someone@example.test", &m), ADDR_OK);
	addr_format(&m, small, sizeof small);
	ck_assert_uint_eq(strlen(small), sizeof small - 1);
	ck_assert_mem_eq(small, "someone", 7);
}
END_TEST

START_TEST(domain_validity)
{
	static const char *const names[] = {
		"example.test", "a.b-c.test", "localhost", "x1.test", "EXAMPLE.TEST",
	};
	static const char *const not_domains[] = {
		"", ".", "a..test", ".a.test", "a.test.", "-a.test", "a-.test", "a_b.test",
		"a b.test", "a@b.test", "a.test>", "[192.0.2.1", "a.test\n", "\xff.test",
		"b\xc3.test", "[]",
	};
	char label[70], longest[ADDR_MAX], too_long[ADDR_MAX + 8];

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		for (int flags = 0; flags <= (ADDR_DOMAIN_LITERAL | ADDR_DOMAIN_ASCII); flags++)
			ck_assert_msg(addr_domain_valid(names[i], flags), "%s %d", names[i], flags);
	for (size_t i = 0; i < sizeof not_domains / sizeof not_domains[0]; i++)
		for (int flags = 0; flags <= (ADDR_DOMAIN_LITERAL | ADDR_DOMAIN_ASCII); flags++)
			ck_assert_msg(!addr_domain_valid(not_domains[i], flags), "'%s' %d",
				      not_domains[i], flags);
	/* address literals only when asked for */
	ck_assert(!addr_domain_valid("[192.0.2.1]", 0));
	ck_assert(!addr_domain_valid("[192.0.2.1]", ADDR_DOMAIN_ASCII));
	ck_assert(addr_domain_valid("[192.0.2.1]", ADDR_DOMAIN_LITERAL));
	ck_assert(addr_domain_valid("[IPv6:::1]", ADDR_DOMAIN_LITERAL | ADDR_DOMAIN_ASCII));
	ck_assert(!addr_domain_valid("[192.0.2.300]", ADDR_DOMAIN_LITERAL));
	/* UTF-8 unless ASCII is asked for */
	ck_assert(addr_domain_valid("b\xc3\xbc" "cher.test", 0));
	ck_assert(!addr_domain_valid("b\xc3\xbc" "cher.test", ADDR_DOMAIN_ASCII));
	/* a label of 63 octets, not 64 */
	memset(label, 'a', 63);
	strcpy(label + 63, ".test");
	ck_assert(addr_domain_valid(label, 0));
	memset(label, 'a', 64);
	strcpy(label + 64, ".test");
	ck_assert(!addr_domain_valid(label, 0));
	/* long enough that x@domain is ADDR_MAX, and one more */
	for (size_t i = 0; i < ADDR_MAX - 2; i++)
		longest[i] = i % 2 ? '.' : 'a';
	longest[ADDR_MAX - 2] = '\0';
	longest[ADDR_MAX - 3] = 'a';
	ck_assert(addr_domain_valid(longest, 0));
	snprintf(too_long, sizeof too_long, "a%s", longest);
	ck_assert(!addr_domain_valid(too_long, 0));
}
END_TEST

Suite *addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, plain_address);
	tcase_add_test(tc, path_needs_brackets);
	tcase_add_test(tc, null_path);
	tcase_add_test(tc, bare_postmaster);
	tcase_add_test(tc, quoted_local_parts);
	tcase_add_test(tc, quoted_escapes_that_do_not_fit);
	tcase_add_test(tc, domain_lowercased);
	tcase_add_test(tc, domain_syntax);
	tcase_add_test(tc, address_literals);
	tcase_add_test(tc, source_routes);
	tcase_add_test(tc, utf8_addresses);
	tcase_add_test(tc, invalid_utf8_rejected);
	tcase_add_test(tc, utf8_valid_function);
	tcase_add_test(tc, utf8_char_lengths);
	tcase_add_test(tc, relay_tricks_stay_local);
	tcase_add_test(tc, length_limits);
	tcase_add_test(tc, control_characters_rejected);
	tcase_add_test(tc, used_stops_at_the_path);
	tcase_add_test(tc, format_fits_the_buffer);
	tcase_add_test(tc, domain_validity);
	suite_add_tcase(s, tc);
	return s;
}
