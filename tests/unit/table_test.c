/* table: lookup tables compiled to cdb (lib/table.h). */
#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "helpers.h"
#include "suites.h"
#include "table.h"

/* Collects what table_compile_all / table_check report. */
struct reports {
	char text[8192];
	int lines;
};

static void collect(const char *line, void *arg)
{
	struct reports *r = arg;
	size_t n = strlen(r->text);
	snprintf(r->text + n, sizeof r->text - n, "%s\n", line);
	r->lines++;
}

/* An instance folder with tern.conf; C is loaded from it. */
static struct tern_conf *instance(char *dir)
{
	char path[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = calloc(1, sizeof *c);

	ck_assert(c != NULL);
	test_mkdir(dir);
	test_write_file(dir, "tern.conf", "instance = yes\n");
	test_path(path, dir, "tern.conf");
	ck_assert_msg(conf_load(c, path, err, sizeof err) == 0, "%s", err);
	return c;
}

static void compile_ok(const struct tern_conf *c)
{
	struct reports r = { "", 0 };
	int rc = table_compile_all(c, collect, &r);
	ck_assert_msg(rc == 0, "compile failed: %s", r.text);
	ck_assert_msg(r.lines == 0, "compile reported: %s", r.text);
}

static enum table_result lookup(const struct tern_conf *c, const char *name, const char *key,
				char *value, size_t size)
{
	struct table t;
	table_init(&t, c, name);
	enum table_result r = table_lookup(&t, key, value, size);
	table_close(&t);
	return r;
}

static void check_value(const struct tern_conf *c, const char *name, const char *key,
			const char *want)
{
	char value[TABLE_VALUE_MAX];
	enum table_result r = lookup(c, name, key, value, sizeof value);
	ck_assert_msg(r == TABLE_FOUND, "%s: '%s' gave %d", name, key, r);
	ck_assert_str_eq(value, want);
}

static void check_result(const struct tern_conf *c, const char *name, const char *key,
			 enum table_result want)
{
	char value[TABLE_VALUE_MAX];
	enum table_result r = lookup(c, name, key, value, sizeof value);
	ck_assert_msg(r == want, "%s: '%s' gave %d, want %d", name, key, r, want);
}

START_TEST(found_and_not_found)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);

	test_write_file(dir, "domains", "# local domains\n\nexample.test\nother.test system\n");
	test_write_file(dir, "mailboxes", "user@example.test ../mail/user/Maildir\n"
					  "  second@example.test\t\t/abs/Maildir  \n");
	test_write_file(dir, "aliases", "postmaster@example.test user@example.test\n"
					"team@example.test user@example.test, second@example.test\n");
	compile_ok(c);
	check_value(c, "domains", "example.test", "");
	check_value(c, "domains", "other.test", "system");
	check_result(c, "domains", "nope.test", TABLE_NOTFOUND);
	check_result(c, "domains", "# local domains", TABLE_NOTFOUND);
	check_value(c, "mailboxes", "user@example.test", "../mail/user/Maildir");
	check_value(c, "mailboxes", "second@example.test", "/abs/Maildir");
	check_result(c, "mailboxes", "nobody@example.test", TABLE_NOTFOUND);
	check_value(c, "aliases", "postmaster@example.test", "user@example.test");
	check_value(c, "aliases", "team@example.test", "user@example.test, second@example.test");

	/* a NULL value just asks whether the key is there */
	struct table t;
	table_init(&t, c, "mailboxes");
	ck_assert_int_eq(table_lookup(&t, "user@example.test", NULL, 0), TABLE_FOUND);
	ck_assert_int_eq(table_lookup(&t, "x@example.test", NULL, 0), TABLE_NOTFOUND);
	/* and the same handle answers again */
	ck_assert_int_eq(table_lookup(&t, "user@example.test", NULL, 0), TABLE_FOUND);
	table_close(&t);
	free(c);
}
END_TEST

START_TEST(keys_are_lowercased)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);

	test_write_file(dir, "domains", "Example.TEST\n");
	test_write_file(dir, "mailboxes", "User@Example.TEST ../Mail/User/Maildir\n");
	test_write_file(dir, "aliases", "Sales@EXAMPLE.test Boss@Example.TEST\n");
	test_write_file(dir, "routes", "Remote.TEST [127.0.0.1]:2525\n");
	compile_ok(c);
	check_value(c, "domains", "example.test", "");
	/* values keep their case */
	check_value(c, "mailboxes", "user@example.test", "../Mail/User/Maildir");
	check_value(c, "aliases", "sales@example.test", "Boss@Example.TEST");
	check_value(c, "routes", "remote.test", "[127.0.0.1]:2525");
	free(c);
}
END_TEST

START_TEST(first_domain_key)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);

	test_write_file(dir, "domains", "# comment\n\nFirst.TEST\nsecond.test\nthird.test system\n");
	compile_ok(c);
	check_value(c, "domains", TABLE_FIRST_DOMAIN_KEY, "first.test");
	check_value(c, "domains", "second.test", "");
	free(c);
}
END_TEST

START_TEST(text_without_cdb_is_tempfail)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct tern_conf *c = instance(dir);

	test_write_file(dir, "aliases", "a@example.test b@example.test\n");
	check_result(c, "aliases", "a@example.test", TABLE_TEMPFAIL);
	check_result(c, "aliases", "zzz@example.test", TABLE_TEMPFAIL);
	/* even an empty text file */
	test_write_file(dir, "domains", "");
	check_result(c, "domains", "example.test", TABLE_TEMPFAIL);
	/* compiled, then the cdb goes missing again */
	compile_ok(c);
	check_value(c, "aliases", "a@example.test", "b@example.test");
	check_result(c, "domains", "example.test", TABLE_NOTFOUND);
	test_path(path, dir, "aliases.cdb");
	ck_assert_int_eq(unlink(path), 0);
	check_result(c, "aliases", "a@example.test", TABLE_TEMPFAIL);
	free(c);
}
END_TEST

START_TEST(neither_text_nor_cdb_is_empty)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);

	for (size_t i = 0; table_names[i] != NULL; i++)
		check_result(c, table_names[i], "anything@example.test", TABLE_NOTFOUND);
	check_result(c, "domains", TABLE_FIRST_DOMAIN_KEY, TABLE_NOTFOUND);
	/* compiling nothing is fine and makes nothing */
	compile_ok(c);
	check_result(c, "aliases", "anything@example.test", TABLE_NOTFOUND);
	struct table t;
	table_init(&t, c, "relay");
	ck_assert_int_eq(table_match_network(&t, "127.0.0.1"), TABLE_NOTFOUND);
	table_close(&t);
	free(c);
}
END_TEST

START_TEST(cdb_that_is_not_a_cdb)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);

	test_write_file(dir, "domains", "example.test\n");
	test_write_file(dir, "domains.cdb", "");
	check_result(c, "domains", "example.test", TABLE_TEMPFAIL);
	check_result(c, "domains", "other.test", TABLE_TEMPFAIL);
	test_write_file(dir, "domains.cdb", "this is not a cdb file at all\n");
	check_result(c, "domains", "example.test", TABLE_TEMPFAIL);
	check_result(c, "domains", "other.test", TABLE_TEMPFAIL);
	free(c);
}
END_TEST

START_TEST(cdb_without_text_is_read)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct tern_conf *c = instance(dir);

	test_write_file(dir, "domains", "example.test\n");
	compile_ok(c);
	test_path(path, dir, "domains");
	ck_assert_int_eq(unlink(path), 0);
	check_value(c, "domains", "example.test", "");
	check_result(c, "domains", "other.test", TABLE_NOTFOUND);
	free(c);
}
END_TEST

/* Each cdb takes its text's owner, group and mode: a users of 0640
 * root:tern-smtpd must give a users.cdb tern-smtpd can read.  Not root, the
 * only owner we can give is our own. */
START_TEST(cdb_takes_owner_group_and_mode)
{
	char dir[PATH_MAX], text[PATH_MAX], cdb[PATH_MAX];
	struct tern_conf *c = instance(dir);
	uid_t uid = geteuid() == 0 ? 4321 : geteuid();
	gid_t gid = geteuid() == 0 ? 8765 : getegid();
	struct stat st;

	test_write_file(dir, "users", "alice $y$j9T$salt$hash\n");
	test_write_file(dir, "domains", "example.test\n");
	test_path(text, dir, "users");
	ck_assert_int_eq(chown(text, uid, gid), 0);
	ck_assert_int_eq(chmod(text, 0640), 0);
	test_path(cdb, dir, "domains");
	ck_assert_int_eq(chmod(cdb, 0604), 0);
	compile_ok(c);
	test_path(cdb, dir, "users.cdb");
	ck_assert_int_eq(stat(cdb, &st), 0);
	ck_assert_uint_eq(st.st_uid, uid);
	ck_assert_uint_eq(st.st_gid, gid);
	ck_assert_uint_eq(st.st_mode & 07777, 0640);
	test_path(cdb, dir, "domains.cdb");
	ck_assert_int_eq(stat(cdb, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0604);
	ck_assert_uint_eq(st.st_uid, geteuid());
	check_value(c, "users", "alice", "$y$j9T$salt$hash");
	free(c);
}
END_TEST

/* The same key twice (or twice once lowercased) either compiles, the key
 * then found, or is reported as FILE:LINE: like any bad line; it is never
 * an I/O error that names no line. */
static void check_duplicate(const char *name, const char *text, const char *key,
			    const char *where)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);
	struct reports r = { "", 0 };

	test_write_file(dir, name, text);
	if (table_compile_all(c, collect, &r) == 0) {
		check_result(c, name, key, TABLE_FOUND);
	} else {
		ck_assert_msg(strncmp(r.text, where, strlen(where)) == 0,
			      "%s with a repeated key: reports '%s', want '%s...'", name,
			      r.text, where);
	}
	free(c);
}

START_TEST(repeated_keys)
{
	check_duplicate("domains", "a.test\nb.test\na.test\n", "a.test", "domains:3: ");
	check_duplicate("mailboxes", "U@a.test /x\nu@a.test /y\n", "u@a.test", "mailboxes:2: ");
	check_duplicate("aliases", "x@a.test u@a.test\nx@a.test v@a.test\n", "x@a.test",
			"aliases:2: ");
	check_duplicate("relay", "127.0.0.0/8\n127.1.0.0/8\n", "127.0.0.0/8", "relay:2: ");
}
END_TEST

/* A mailboxes table big enough that its cdb is well over 3000 octets. */
static void write_big_mailboxes(const char *dir)
{
	char *text = malloc(64 * 1024), line[128];
	ck_assert(text != NULL);
	text[0] = '\0';
	for (int i = 0; i < 300; i++) {
		snprintf(line, sizeof line, "user%d@example.test ../mail/user%d/Maildir\n", i, i);
		strcat(text, line);
	}
	test_write_file(dir, "mailboxes", text);
	free(text);
}

static void check_truncated(off_t size)
{
	char dir[PATH_MAX], path[PATH_MAX], key[64];
	struct tern_conf *c = instance(dir);
	struct stat st;

	test_write_file(dir, "domains", "example.test\n");
	write_big_mailboxes(dir);
	compile_ok(c);
	check_value(c, "mailboxes", "user7@example.test", "../mail/user7/Maildir");
	test_path(path, dir, "mailboxes.cdb");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_gt(st.st_size, size);
	ck_assert_int_eq(truncate(path, size), 0);

	/* every key, there or not, must be a temporary failure */
	int found = 0, notfound = 0, tempfail = 0;
	struct table t;
	table_init(&t, c, "mailboxes");
	for (int i = 0; i < 400; i++) {
		snprintf(key, sizeof key, "user%d@example.test", i);
		char value[TABLE_VALUE_MAX];
		switch (table_lookup(&t, key, value, sizeof value)) {
		case TABLE_FOUND: found++; break;
		case TABLE_NOTFOUND: notfound++; break;
		case TABLE_TEMPFAIL: tempfail++; break;
		}
	}
	table_close(&t);
	ck_assert_msg(found == 0 && notfound == 0,
		      "cdb truncated to %lld octets: %d found, %d not found, %d tempfail",
		      (long long)size, found, notfound, tempfail);
	free(c);
}

START_TEST(truncated_cdb_100)
{
	check_truncated(100);
}
END_TEST

START_TEST(truncated_cdb_3000)
{
	check_truncated(3000);
}
END_TEST

START_TEST(truncated_cdb_one_short)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct tern_conf *c = instance(dir);
	struct stat st;

	write_big_mailboxes(dir);
	compile_ok(c);
	test_path(path, dir, "mailboxes.cdb");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(truncate(path, st.st_size - 1), 0);
	check_result(c, "mailboxes", "user1@example.test", TABLE_TEMPFAIL);
	check_result(c, "mailboxes", "nobody@example.test", TABLE_TEMPFAIL);
	free(c);
}
END_TEST

/* No NAME.cdb.tmp (or other stray file) is left in DIR. */
static void check_no_leftovers(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	ck_assert(d != NULL);
	while ((e = readdir(d)) != NULL)
		ck_assert_msg(strstr(e->d_name, ".tmp") == NULL, "left behind: %s", e->d_name);
	closedir(d);
}

START_TEST(bad_line_reported)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);
	struct reports r = { "", 0 };

	test_write_file(dir, "domains", "example.test\n");
	test_write_file(dir, "mailboxes", "user@example.test /m/user\n"
					  "# fine\n"
					  "not-an-address /m/x\n"
					  "nopath@example.test\n");
	ck_assert_int_ne(table_compile_all(c, collect, &r), 0);
	ck_assert_msg(strstr(r.text, "mailboxes:3: ") != NULL, "reports: %s", r.text);
	ck_assert_msg(strstr(r.text, "mailboxes:4: ") != NULL, "reports: %s", r.text);
	ck_assert_int_eq(r.lines, 2);
	/* nothing was compiled, and nothing left behind */
	check_result(c, "domains", "example.test", TABLE_TEMPFAIL);
	check_result(c, "mailboxes", "user@example.test", TABLE_TEMPFAIL);
	check_no_leftovers(dir);
	free(c);
}
END_TEST

START_TEST(bad_lines_in_every_table)
{
	static const struct { const char *name, *text, *want; } cases[] = {
		{ "domains", "ok.test\n[127.0.0.1]\n", "domains:2: " },
		{ "domains", "ok.test\nbad..test\n", "domains:2: " },
		{ "domains", "ok.test\nx.test maybe\n", "domains:2: " },
		{ "aliases", "a@x.test\n", "aliases:1: " },
		{ "aliases", "a@x.test b@x.test\nc@x.test b@@x\n", "aliases:2: " },
		{ "relay", "127.0.0.0/8\n300.0.0.0/8\n", "relay:2: " },
		{ "relay", "1.2.3.4/33\n", "relay:1: " },
		{ "users", "alice\n", "users:1: " },
		{ "senders", "alice not an address\n", "senders:1: " },
		{ "routes", "x.test\n", "routes:1: " },
		{ "routes", "x.test [127.0.0.1] tls=sometimes\n", "routes:1: " },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char dir[PATH_MAX];
		struct tern_conf *c = instance(dir);
		struct reports r = { "", 0 };
		test_write_file(dir, cases[i].name, cases[i].text);
		ck_assert_msg(table_compile_all(c, collect, &r) != 0, "%s accepted: %s",
			      cases[i].name, cases[i].text);
		ck_assert_msg(strncmp(r.text, cases[i].want, strlen(cases[i].want)) == 0,
			      "%s: reports '%s', want '%s...'", cases[i].name, r.text,
			      cases[i].want);
		/* table_check says the same without compiling */
		struct reports rc = { "", 0 };
		ck_assert_int_eq(table_check(c, cases[i].name, collect, &rc), 1);
		ck_assert_str_eq(rc.text, r.text);
		free(c);
	}
}
END_TEST

START_TEST(all_or_none)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);
	struct reports r = { "", 0 };

	test_write_file(dir, "domains", "old.test\n");
	test_write_file(dir, "mailboxes", "u@old.test /old\n");
	test_write_file(dir, "aliases", "a@old.test u@old.test\n");
	compile_ok(c);

	/* a good change to domains and aliases, a bad line in mailboxes */
	test_write_file(dir, "domains", "new.test\n");
	test_write_file(dir, "mailboxes", "u@new.test /new\nbroken line here\n");
	test_write_file(dir, "aliases", "a@new.test u@new.test\n");
	ck_assert_int_ne(table_compile_all(c, collect, &r), 0);
	ck_assert_msg(strstr(r.text, "mailboxes:2: ") != NULL, "reports: %s", r.text);

	/* every old cdb is still there, unchanged */
	check_value(c, "domains", "old.test", "");
	check_result(c, "domains", "new.test", TABLE_NOTFOUND);
	check_value(c, "domains", TABLE_FIRST_DOMAIN_KEY, "old.test");
	check_value(c, "mailboxes", "u@old.test", "/old");
	check_result(c, "mailboxes", "u@new.test", TABLE_NOTFOUND);
	check_value(c, "aliases", "a@old.test", "u@old.test");
	check_result(c, "aliases", "a@new.test", TABLE_NOTFOUND);
	check_no_leftovers(dir);

	/* fixed, all of them move on together */
	test_write_file(dir, "mailboxes", "u@new.test /new\n");
	compile_ok(c);
	check_value(c, "domains", "new.test", "");
	check_value(c, "mailboxes", "u@new.test", "/new");
	check_value(c, "aliases", "a@new.test", "u@new.test");
	check_result(c, "aliases", "a@old.test", TABLE_NOTFOUND);
	check_no_leftovers(dir);
	free(c);
}
END_TEST

START_TEST(open_table_keeps_its_version)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);
	char value[TABLE_VALUE_MAX];
	struct table t;

	test_write_file(dir, "mailboxes", "u@x.test /one\n");
	compile_ok(c);
	table_init(&t, c, "mailboxes");
	ck_assert_int_eq(table_lookup(&t, "u@x.test", value, sizeof value), TABLE_FOUND);
	ck_assert_str_eq(value, "/one");
	test_write_file(dir, "mailboxes", "u@x.test /two\n");
	compile_ok(c);
	/* the handle still reads the whole old table */
	ck_assert_int_eq(table_lookup(&t, "u@x.test", value, sizeof value), TABLE_FOUND);
	ck_assert_str_eq(value, "/one");
	table_close(&t);
	/* reopened, the whole new one */
	check_value(c, "mailboxes", "u@x.test", "/two");
	free(c);
}
END_TEST

START_TEST(value_too_long_for_buffer)
{
	char dir[PATH_MAX], small[4];
	struct tern_conf *c = instance(dir);

	test_write_file(dir, "mailboxes", "u@x.test /a/long/path\n");
	compile_ok(c);
	/* never a truncated value passed off as the answer */
	ck_assert_int_ne(lookup(c, "mailboxes", "u@x.test", small, sizeof small), TABLE_FOUND);
	free(c);
}
END_TEST

static void check_cidr(const char *in, const char *want)
{
	char out[64];
	ck_assert_msg(cidr_normalize(in, out, sizeof out) == 0, "'%s' refused", in);
	ck_assert_str_eq(out, want);
}

START_TEST(cidr_forms)
{
	check_cidr("127.0.0.0/8", "127.0.0.0/8");
	check_cidr("127.1.2.3/8", "127.0.0.0/8");
	check_cidr("10.0.0.1", "10.0.0.1/32");
	check_cidr("192.168.1.255/23", "192.168.0.0/23");
	check_cidr("0.0.0.0/0", "0.0.0.0/0");
	check_cidr("1.2.3.4/0", "0.0.0.0/0");
	check_cidr("::1", "::1/128");
	check_cidr("::1/128", "::1/128");
	check_cidr("2001:DB8::1/32", "2001:db8::/32");
	check_cidr("2001:db8:ffff::/33", "2001:db8:8000::/33");
	check_cidr("::/0", "::/0");

	static const char *const bad[] = {
		"", "abc", "300.0.0.0/8", "1.2.3.4/33", "::1/129", "1.2.3.4/", "1.2.3.4/x",
		"1.2.3.4/8x", "1.2.3.4/-1", "1.2.3/24", "/8", "1.2.3.4 /8", "::g/64",
	};
	char out[64];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(cidr_normalize(bad[i], out, sizeof out) != 0, "'%s' accepted",
			      bad[i]);
	char tiny[8];
	ck_assert_int_ne(cidr_normalize("127.0.0.0/8", tiny, sizeof tiny), 0);
}
END_TEST

START_TEST(relay_networks)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);
	struct table t;

	test_write_file(dir, "relay", "# relay clients\n127.0.0.0/8\n::1/128\n"
				      "10.1.2.3/16\n2001:db8::/32\n192.0.2.7\n");
	compile_ok(c);
	table_init(&t, c, "relay");
	ck_assert_int_eq(table_match_network(&t, "127.1.2.3"), TABLE_FOUND);
	ck_assert_int_eq(table_match_network(&t, "127.0.0.1"), TABLE_FOUND);
	ck_assert_int_eq(table_match_network(&t, "10.0.0.1"), TABLE_NOTFOUND);
	ck_assert_int_eq(table_match_network(&t, "128.0.0.1"), TABLE_NOTFOUND);
	ck_assert_int_eq(table_match_network(&t, "126.255.255.255"), TABLE_NOTFOUND);
	ck_assert_int_eq(table_match_network(&t, "10.1.99.1"), TABLE_FOUND);
	ck_assert_int_eq(table_match_network(&t, "10.2.0.1"), TABLE_NOTFOUND);
	ck_assert_int_eq(table_match_network(&t, "192.0.2.7"), TABLE_FOUND);
	ck_assert_int_eq(table_match_network(&t, "192.0.2.8"), TABLE_NOTFOUND);
	ck_assert_int_eq(table_match_network(&t, "::1"), TABLE_FOUND);
	ck_assert_int_eq(table_match_network(&t, "::2"), TABLE_NOTFOUND);
	ck_assert_int_eq(table_match_network(&t, "0:0:0:0:0:0:0:1"), TABLE_FOUND);
	ck_assert_int_eq(table_match_network(&t, "2001:db8:1::5"), TABLE_FOUND);
	ck_assert_int_eq(table_match_network(&t, "2001:DB8::5"), TABLE_FOUND);
	ck_assert_int_eq(table_match_network(&t, "2001:db9::5"), TABLE_NOTFOUND);
	ck_assert_int_eq(table_match_network(&t, "::ffff:127.0.0.1"), TABLE_FOUND);
	ck_assert_int_eq(table_match_network(&t, "::FFFF:127.9.9.9"), TABLE_FOUND);
	ck_assert_int_eq(table_match_network(&t, "::ffff:10.0.0.1"), TABLE_NOTFOUND);
	ck_assert_int_eq(table_match_network(&t, "0:0:0:0:0:ffff:10.1.2.3"), TABLE_FOUND);
	ck_assert_int_eq(table_match_network(&t, "::ffff:a01:6301"), TABLE_FOUND);	/* 10.1.99.1 */
	ck_assert_int_eq(table_match_network(&t, "::ffff:a02:1"), TABLE_NOTFOUND);
	ck_assert_int_eq(table_match_network(&t, "not an address"), TABLE_NOTFOUND);
	ck_assert_int_eq(table_match_network(&t, ""), TABLE_NOTFOUND);
	table_close(&t);
	free(c);
}
END_TEST

START_TEST(relay_unreadable_is_tempfail)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);
	struct table t;

	test_write_file(dir, "relay", "127.0.0.0/8\n");
	table_init(&t, c, "relay");
	ck_assert_int_eq(table_match_network(&t, "127.0.0.1"), TABLE_TEMPFAIL);
	ck_assert_int_eq(table_match_network(&t, "10.0.0.1"), TABLE_TEMPFAIL);
	table_close(&t);
	free(c);
}
END_TEST

/* ---- corrupt records ---- */

static unsigned get_u32(const unsigned char *p)
{
	return p[0] | (unsigned)p[1] << 8 | (unsigned)p[2] << 16 | (unsigned)p[3] << 24;
}

static void put_u32(unsigned char *p, unsigned v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* The offset in a cdb (BYTES, LEN octets) of the record whose key is KEY. */
static size_t record_offset(const unsigned char *bytes, size_t len, const char *key)
{
	size_t end = get_u32(bytes), klen = strlen(key);

	ck_assert(end <= len);
	for (size_t pos = 2048; pos + 8 <= end;) {
		size_t k = get_u32(bytes + pos), d = get_u32(bytes + pos + 4);
		if (k == klen && memcmp(bytes + pos + 8, key, klen) == 0)
			return pos;
		pos += 8 + k + d;
	}
	ck_abort_msg("no record for '%s'", key);
	return 0;
}

/* The offset of the hash slot that points at the record at RECORD. */
static size_t slot_offset(const unsigned char *bytes, size_t len, size_t record)
{
	for (size_t pos = get_u32(bytes); pos + 8 <= len; pos += 8)
		if (get_u32(bytes + pos + 4) == record)
			return pos;
	ck_abort_msg("no slot for the record at %zu", record);
	return 0;
}

enum corruption { KEY_LENGTH_SHORTER, KEY_LENGTH_HUGE, DATA_LENGTH_HUGE, KEY_OCTET,
		  SLOT_INTO_TOC, SLOT_PAST_DATA, SLOT_HASH };

/* Compiles TABLE from TEXT in a fresh instance, damages the record of KEY
 * in its cdb as HOW says (the file keeps its size and its table of
 * contents), and checks that looking KEY up is a temporary failure. */
static void check_corrupt(const char *table, const char *text, const char *key,
			  enum corruption how)
{
	char dir[PATH_MAX], path[PATH_MAX], value[TABLE_VALUE_MAX], file[64];
	struct tern_conf *c = instance(dir);
	size_t len;

	test_write_file(dir, table, text);
	compile_ok(c);
	ck_assert_int_eq(lookup(c, table, key, value, sizeof value), TABLE_FOUND);
	snprintf(file, sizeof file, "%s.cdb", table);
	test_path(path, dir, file);
	unsigned char *bytes = (unsigned char *)test_read_file(path, &len);
	ck_assert(bytes != NULL);
	size_t rec = record_offset(bytes, len, key), slot = slot_offset(bytes, len, rec);
	switch (how) {
	case KEY_LENGTH_SHORTER: put_u32(bytes + rec, (unsigned)strlen(key) - 1); break;
	case KEY_LENGTH_HUGE: put_u32(bytes + rec, 0xFFFFFFF0u); break;
	case DATA_LENGTH_HUGE: put_u32(bytes + rec + 4, (unsigned)len); break;
	case KEY_OCTET: bytes[rec + 8] ^= 0x20; break;
	case SLOT_INTO_TOC: put_u32(bytes + slot + 4, 100); break;
	case SLOT_PAST_DATA: put_u32(bytes + slot + 4, (unsigned)len - 4); break;
	case SLOT_HASH: put_u32(bytes + slot, get_u32(bytes + slot) ^ 0x100); break;
	}
	FILE *out = fopen(path, "r+");
	ck_assert(out != NULL);
	ck_assert_int_eq(fwrite(bytes, 1, len, out), len);
	ck_assert_int_eq(fclose(out), 0);
	free(bytes);
	enum table_result r = lookup(c, table, key, value, sizeof value);
	ck_assert_msg(r == TABLE_TEMPFAIL, "%s: corruption %d of '%s' gave %d", table, how,
		      key, r);
	free(c);
}

static const char corrupt_mailboxes[] =
	"alice@example.test ../mail/alice/Maildir\n"
	"bob@example.test ../mail/bob/Maildir\n";

START_TEST(corrupt_domain_record)
{
	check_corrupt("domains", "example.test\nother.test\n", "example.test",
		      KEY_LENGTH_SHORTER);
	check_corrupt("domains", "example.test\nother.test\n", "other.test", KEY_LENGTH_HUGE);
}
END_TEST

START_TEST(corrupt_mailbox_record)
{
	for (enum corruption how = KEY_LENGTH_SHORTER; how <= SLOT_HASH; how++)
		check_corrupt("mailboxes", corrupt_mailboxes, "alice@example.test", how);
}
END_TEST

/* ---- address lists ---- */

START_TEST(address_list_items)
{
	const char *list = " \"a, b\"@x.test ,c@x.test,,\"q\\\",x\"@y.test\t, d e ";
	static const char *const want[] = { "\"a, b\"@x.test", "c@x.test", "",
					    "\"q\\\",x\"@y.test", "d e" };
	char item[64];

	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		ck_assert_int_eq(addr_list_next(&list, item, sizeof item), 1);
		ck_assert_str_eq(item, want[i]);
	}
	ck_assert_int_eq(addr_list_next(&list, item, sizeof item), 0);

	const char *unterminated = "\"a, b@x.test, c@x.test";
	ck_assert_int_eq(addr_list_next(&unterminated, item, sizeof item), 1);
	ck_assert_str_eq(item, "\"a, b@x.test, c@x.test");

	const char *longer = "abcdefgh@x.test";
	char small[8];
	ck_assert_int_eq(addr_list_next(&longer, small, sizeof small), -1);
}
END_TEST

START_TEST(quoted_local_parts_in_tables)
{
	char dir[PATH_MAX];
	struct tern_conf *c = instance(dir);

	test_write_file(dir, "mailboxes", "\"John Smith\"@x.test /js\n\"a,b\"@x.test\t/ab\n");
	test_write_file(dir, "aliases", "team@x.test \"john smith\"@x.test, \"a,b\"@x.test ,b@x.test\n"
					"\"the team\"@x.test team@x.test\n");
	compile_ok(c);
	check_value(c, "mailboxes", "\"john smith\"@x.test", "/js");
	check_value(c, "mailboxes", "\"a,b\"@x.test", "/ab");
	check_value(c, "aliases", "team@x.test",
		    "\"john smith\"@x.test, \"a,b\"@x.test ,b@x.test");
	check_value(c, "aliases", "\"the team\"@x.test", "team@x.test");
	free(c);

	static const char *const bad[] = {
		"a@x.test \"unterminated@x.test, b@x.test\n",
		"a@x.test john smith@x.test\n",
		"a@x.test ,\n",
		"\"a b@x.test c@x.test\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct reports r = { "", 0 };
		c = instance(dir);
		test_write_file(dir, "aliases", bad[i]);
		ck_assert_msg(table_compile_all(c, collect, &r) == 1, "accepted: %s", bad[i]);
		ck_assert_msg(strncmp(r.text, "aliases:1: ", 11) == 0, "%s: %s", bad[i], r.text);
		free(c);
	}
}
END_TEST

Suite *table_suite(void)
{
	Suite *s = suite_create("table");
	TCase *tc = tcase_create("lookup");
	TCase *cidr = tcase_create("cidr");
	TCase *lists = tcase_create("lists");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, found_and_not_found);
	tcase_add_test(tc, keys_are_lowercased);
	tcase_add_test(tc, first_domain_key);
	tcase_add_test(tc, text_without_cdb_is_tempfail);
	tcase_add_test(tc, neither_text_nor_cdb_is_empty);
	tcase_add_test(tc, cdb_that_is_not_a_cdb);
	tcase_add_test(tc, cdb_without_text_is_read);
	tcase_add_test(tc, repeated_keys);
	tcase_add_test(tc, cdb_takes_owner_group_and_mode);
	tcase_add_test(tc, truncated_cdb_100);
	tcase_add_test(tc, truncated_cdb_3000);
	tcase_add_test(tc, truncated_cdb_one_short);
	tcase_add_test(tc, corrupt_domain_record);
	tcase_add_test(tc, corrupt_mailbox_record);
	tcase_add_test(tc, quoted_local_parts_in_tables);
	tcase_add_test(tc, bad_line_reported);
	tcase_add_test(tc, bad_lines_in_every_table);
	tcase_add_test(tc, all_or_none);
	tcase_add_test(tc, open_table_keeps_its_version);
	tcase_add_test(tc, value_too_long_for_buffer);
	tcase_add_test(tc, relay_networks);
	tcase_add_test(tc, relay_unreadable_is_tempfail);
	suite_add_tcase(s, tc);

	tcase_add_test(cidr, cidr_forms);
	suite_add_tcase(s, cidr);

	tcase_add_test(lists, address_list_items);
	suite_add_tcase(s, lists);
	return s;
}
