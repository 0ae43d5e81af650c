/* recipient: what an address means here (lib/recipient.h). */
#include <check.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "helpers.h"
#include "recipient.h"
#include "suites.h"
#include "table.h"

struct fixture {
	char dir[PATH_MAX];
	struct tern_conf conf;
	struct recipient_tables tables;
};

static void ignore(const char *line, void *arg)
{
	(void)arg;
	ck_abort_msg("table problem: %s", line);
}

/* An instance with tables compiled; CONF_TEXT is its tern.conf. */
static struct fixture *setup(const char *conf_text)
{
	struct fixture *f = calloc(1, sizeof *f);
	char path[PATH_MAX], err[CONF_ERROR_MAX];

	ck_assert(f != NULL);
	test_mkdir(f->dir);
	test_write_file(f->dir, "tern.conf", conf_text);
	test_write_file(f->dir, "domains", "example.test\nsecond.test\nsys.test system\n");
	test_write_file(f->dir, "mailboxes",
			"user@example.test ../mail/user/Maildir\n"
			"other@second.test /abs/other/Maildir\n"
			"user+special@example.test /special/Maildir\n");
	test_write_file(f->dir, "aliases",
			"postmaster@example.test user@example.test\n"
			"abuse@example.test user@example.test\n"
			"list@example.test user@example.test, other@second.test\n");
	test_path(path, f->dir, "tern.conf");
	ck_assert_msg(conf_load(&f->conf, path, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(table_compile_all(&f->conf, ignore, NULL), 0);
	recipient_tables_init(&f->tables, &f->conf);
	return f;
}

static struct fixture *setup_default(void)
{
	return setup("instance = yes\nrecipient_delimiter = +\n");
}

static void teardown(struct fixture *f)
{
	recipient_tables_close(&f->tables);
	free(f);
}

/* Resolves the bare address ADDR (or a path, when it starts with '<'). */
static void resolve(struct fixture *f, const char *addr, struct resolution *out)
{
	struct mailbox m;
	size_t used;

	if (addr[0] == '<')
		ck_assert_int_eq(addr_parse_path(addr, strlen(addr), ADDR_ALLOW_POSTMASTER, &m,
						 &used), ADDR_OK);
	else
		ck_assert_msg(addr_parse(addr, &m) == ADDR_OK, "cannot parse %s", addr);
	recipient_resolve(&f->tables, &m, out);
}

static void check_kind(struct fixture *f, const char *addr, enum resolution_kind want)
{
	struct resolution r;
	resolve(f, addr, &r);
	ck_assert_msg(r.kind == want, "%s: kind %d, want %d", addr, r.kind, want);
}

static bool same_place(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];
	return realpath(a, ra) != NULL && realpath(b, rb) != NULL && strcmp(ra, rb) == 0;
}

START_TEST(mailbox)
{
	struct fixture *f = setup_default();
	struct resolution r;
	char want[PATH_MAX];

	resolve(f, "user@example.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_MAILBOX);
	ck_assert_str_eq(r.key, "user@example.test");
	ck_assert(r.value[0] == '/');
	/* ../mail/user/Maildir from tern.conf's folder */
	test_path(want, f->dir, "../mail/user/Maildir");
	char top[PATH_MAX];
	test_path(top, f->dir, "../mail");
	mkdir(top, 0700);
	test_path(top, f->dir, "../mail/user");
	mkdir(top, 0700);
	mkdir(want, 0700);
	ck_assert_msg(same_place(r.value, want), "value '%s', want '%s'", r.value, want);

	resolve(f, "other@second.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_MAILBOX);
	ck_assert_str_eq(r.value, "/abs/other/Maildir");

	/* case does not matter */
	resolve(f, "USER@Example.TEST", &r);
	ck_assert_int_eq(r.kind, RESOLVE_MAILBOX);
	ck_assert_str_eq(r.key, "user@example.test");
	teardown(f);
}
END_TEST

START_TEST(alias)
{
	struct fixture *f = setup_default();
	struct resolution r;

	resolve(f, "list@example.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_ALIAS);
	ck_assert_str_eq(r.key, "list@example.test");
	ck_assert_str_eq(r.value, "user@example.test, other@second.test");
	resolve(f, "Abuse@EXAMPLE.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_ALIAS);
	ck_assert_str_eq(r.value, "user@example.test");
	teardown(f);
}
END_TEST

START_TEST(plus_tags)
{
	struct fixture *f = setup_default();
	struct resolution r;

	resolve(f, "user+tag@example.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_MAILBOX);
	ck_assert_str_eq(r.key, "user@example.test");
	resolve(f, "user+@example.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_MAILBOX);
	resolve(f, "user+a+b@example.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_MAILBOX);
	resolve(f, "list+x@example.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_ALIAS);
	ck_assert_str_eq(r.value, "user@example.test, other@second.test");
	/* the whole address first */
	resolve(f, "user+special@example.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_MAILBOX);
	ck_assert_str_eq(r.value, "/special/Maildir");
	/* no user before the tag */
	check_kind(f, "+tag@example.test", RESOLVE_UNKNOWN);
	check_kind(f, "nobody+tag@example.test", RESOLVE_UNKNOWN);
	teardown(f);
}
END_TEST

START_TEST(no_delimiter_no_stripping)
{
	struct fixture *f = setup("instance = yes\nrecipient_delimiter =\n");

	check_kind(f, "user@example.test", RESOLVE_MAILBOX);
	check_kind(f, "user+tag@example.test", RESOLVE_UNKNOWN);
	teardown(f);
}
END_TEST

START_TEST(unknown_and_remote)
{
	struct fixture *f = setup_default();

	check_kind(f, "nobody@example.test", RESOLVE_UNKNOWN);
	check_kind(f, "user@second.test", RESOLVE_UNKNOWN);
	check_kind(f, "\"user x\"@example.test", RESOLVE_UNKNOWN);
	check_kind(f, "someone@elsewhere.test", RESOLVE_REMOTE);
	check_kind(f, "user@sub.example.test", RESOLVE_REMOTE);
	check_kind(f, "postmaster@elsewhere.test", RESOLVE_REMOTE);
	check_kind(f, "user@[127.0.0.1]", RESOLVE_REMOTE);
	/* relay tricks stay at the local domain */
	check_kind(f, "user%elsewhere.test@example.test", RESOLVE_UNKNOWN);
	check_kind(f, "elsewhere.test!user@example.test", RESOLVE_UNKNOWN);
	check_kind(f, "\"user@elsewhere.test\"@example.test", RESOLVE_UNKNOWN);
	teardown(f);
}
END_TEST

START_TEST(postmaster_everywhere)
{
	struct fixture *f = setup_default();
	struct resolution r;

	resolve(f, "postmaster@example.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_ALIAS);
	ck_assert_str_eq(r.value, "user@example.test");
	/* second.test has no postmaster of its own */
	resolve(f, "postmaster@second.test", &r);
	ck_assert_msg(r.kind == RESOLVE_ALIAS || r.kind == RESOLVE_POSTMASTER, "kind %d", r.kind);
	if (r.kind == RESOLVE_ALIAS)
		ck_assert_str_eq(r.value, "user@example.test");
	resolve(f, "PostMaster@Second.TEST", &r);
	ck_assert(r.kind == RESOLVE_ALIAS || r.kind == RESOLVE_POSTMASTER);
	resolve(f, "postmaster@sys.test", &r);
	ck_assert(r.kind == RESOLVE_ALIAS || r.kind == RESOLVE_POSTMASTER);
	teardown(f);
}
END_TEST

START_TEST(bare_postmaster)
{
	struct fixture *f = setup_default();
	struct resolution r;
	char first[ADDR_DOMAIN_MAX + 1];

	ck_assert_int_eq(recipient_first_domain(&f->tables, first, sizeof first), 0);
	ck_assert_str_eq(first, "example.test");
	resolve(f, "<Postmaster>", &r);
	ck_assert_int_eq(r.kind, RESOLVE_ALIAS);
	ck_assert_str_eq(r.key, "postmaster@example.test");
	ck_assert_str_eq(r.value, "user@example.test");
	teardown(f);
}
END_TEST

START_TEST(bare_postmaster_without_domains)
{
	struct fixture *f = calloc(1, sizeof *f);
	char path[PATH_MAX], err[CONF_ERROR_MAX], first[64];
	struct resolution r;

	ck_assert(f != NULL);
	test_mkdir(f->dir);
	test_write_file(f->dir, "tern.conf", "instance = yes\n");
	test_path(path, f->dir, "tern.conf");
	ck_assert_msg(conf_load(&f->conf, path, err, sizeof err) == 0, "%s", err);
	recipient_tables_init(&f->tables, &f->conf);
	ck_assert_int_ne(recipient_first_domain(&f->tables, first, sizeof first), 0);
	resolve(f, "<postmaster>", &r);
	ck_assert_int_eq(r.kind, RESOLVE_POSTMASTER);
	check_kind(f, "user@example.test", RESOLVE_REMOTE);
	teardown(f);
}
END_TEST

/* An account of this machine that can take mail (not root, owns its
 * home, a plain lower-case name); false if there is none. */
static bool deliverable_account(char *login, size_t size, char *home, size_t homesize)
{
	struct passwd *pw;
	struct stat st;
	bool found = false;

	setpwent();
	while (!found && (pw = getpwent()) != NULL) {
		if (pw->pw_uid == 0 || pw->pw_dir[0] != '/' || stat(pw->pw_dir, &st) < 0 ||
		    st.st_uid != pw->pw_uid || !S_ISDIR(st.st_mode) ||
		    strspn(pw->pw_name, "abcdefghijklmnopqrstuvwxyz0123456789") !=
		    strlen(pw->pw_name) || strlen(pw->pw_name) >= size)
			continue;
		snprintf(login, size, "%s", pw->pw_name);
		snprintf(home, homesize, "%s", pw->pw_dir);
		found = true;
	}
	endpwent();
	return found;
}

START_TEST(system_domain)
{
	struct fixture *f = setup_default();
	struct resolution r;
	char login[64], home[PATH_MAX], addr[128];

	/* root never takes mail as an account (qmail-getpw): aliases only */
	check_kind(f, "root@sys.test", RESOLVE_UNKNOWN);
	check_kind(f, "root+tag@sys.test", RESOLVE_UNKNOWN);
	if (deliverable_account(login, sizeof login, home, sizeof home)) {
		snprintf(addr, sizeof addr, "%s@sys.test", login);
		resolve(f, addr, &r);
		ck_assert_int_eq(r.kind, RESOLVE_SYSTEM);
		ck_assert_str_eq(r.key, login);
		char want[PATH_MAX + 16];
		snprintf(want, sizeof want, "%s/Maildir", home);
		ck_assert_str_eq(r.value, want);
		snprintf(addr, sizeof addr, "%s+tag@sys.test", login);
		resolve(f, addr, &r);
		ck_assert_int_eq(r.kind, RESOLVE_SYSTEM);
		ck_assert_str_eq(r.key, login);
	}
	check_kind(f, "no-such-user-here-4711@sys.test", RESOLVE_UNKNOWN);
	/* a local part never names a path */
	check_kind(f, "a/b@sys.test", RESOLVE_UNKNOWN);
	check_kind(f, "\"../root\"@sys.test", RESOLVE_UNKNOWN);
	check_kind(f, "\".root\"@sys.test", RESOLVE_UNKNOWN);
	/* the system fallback is only for `system` domains */
	check_kind(f, "root@example.test", RESOLVE_UNKNOWN);
	teardown(f);
}
END_TEST

START_TEST(unreadable_tables_tempfail)
{
	char path[PATH_MAX];
	struct resolution r;
	struct fixture *f;

	/* domains: text without its cdb */
	f = setup_default();
	test_path(path, f->dir, "domains.cdb");
	ck_assert_int_eq(unlink(path), 0);
	resolve(f, "user@example.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_TEMPFAIL);
	ck_assert_ptr_nonnull(r.failed_table);
	ck_assert_str_eq(r.failed_table, "domains");
	check_kind(f, "someone@elsewhere.test", RESOLVE_TEMPFAIL);
	check_kind(f, "<postmaster>", RESOLVE_TEMPFAIL);
	teardown(f);

	/* mailboxes */
	f = setup_default();
	test_path(path, f->dir, "mailboxes.cdb");
	ck_assert_int_eq(unlink(path), 0);
	resolve(f, "user@example.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_TEMPFAIL);
	ck_assert_str_eq(r.failed_table, "mailboxes");
	check_kind(f, "nobody@example.test", RESOLVE_TEMPFAIL);
	check_kind(f, "someone@elsewhere.test", RESOLVE_REMOTE);
	teardown(f);

	/* aliases: an unknown user might be an alias, so no 550 */
	f = setup_default();
	test_path(path, f->dir, "aliases.cdb");
	ck_assert_int_eq(unlink(path), 0);
	resolve(f, "nobody@example.test", &r);
	ck_assert_int_eq(r.kind, RESOLVE_TEMPFAIL);
	ck_assert_str_eq(r.failed_table, "aliases");
	check_kind(f, "list@example.test", RESOLVE_TEMPFAIL);
	teardown(f);

	/* a cdb that is not whole */
	f = setup_default();
	test_path(path, f->dir, "domains.cdb");
	ck_assert_int_eq(truncate(path, 100), 0);
	check_kind(f, "user@example.test", RESOLVE_TEMPFAIL);
	check_kind(f, "someone@elsewhere.test", RESOLVE_TEMPFAIL);
	teardown(f);
}
END_TEST

Suite *recipient_suite(void)
{
	Suite *s = suite_create("recipient");
	TCase *tc = tcase_create("resolve");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, mailbox);
	tcase_add_test(tc, alias);
	tcase_add_test(tc, plus_tags);
	tcase_add_test(tc, no_delimiter_no_stripping);
	tcase_add_test(tc, unknown_and_remote);
	tcase_add_test(tc, postmaster_everywhere);
	tcase_add_test(tc, bare_postmaster);
	tcase_add_test(tc, bare_postmaster_without_domains);
	tcase_add_test(tc, system_domain);
	tcase_add_test(tc, unreadable_tables_tempfail);
	suite_add_tcase(s, tc);
	return s;
}
