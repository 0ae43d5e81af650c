/* ternctl_users: the users text as ternctl passwd rewrites it. */
#include <check.h>
#include <string.h>

#include "suites.h"
#include "ternctl_users.h"

/* TEXT rewritten for NAME and HASH must be WANT. */
static void check_rewrite(const char *text, const char *name, const char *hash,
			  const char *want)
{
	char out[1024];
	size_t len = 0, size = users_rewrite_size(strlen(text), name, hash);

	ck_assert_uint_le(size, sizeof out);
	ck_assert_int_eq(users_rewrite(text, strlen(text), name, hash, out, size, &len), 0);
	ck_assert_msg(len == strlen(want) && memcmp(out, want, len) == 0,
		      "'%s' gave '%.*s', want '%s'", text, (int)len, out, want);
}

START_TEST(appends_to_an_empty_or_new_file)
{
	check_rewrite("", "alice", "$y$h", "alice $y$h\n");
	check_rewrite("# comment\n", "alice", "$y$h", "# comment\nalice $y$h\n");
	check_rewrite("bob $6$b", "alice", "$y$h", "bob $6$b\nalice $y$h\n");
}
END_TEST

START_TEST(replaces_the_line_keeps_the_rest)
{
	check_rewrite("# users\nalice $6$old\n\n  # indented\nbob\t$6$b  \n", "alice", "$y$new",
		      "# users\nalice $y$new\n\n  # indented\nbob\t$6$b  \n");
	check_rewrite("bob $6$b\r\n  alice\t$6$old\r\ncarol $6$c", "alice", "$y$new",
		      "bob $6$b\r\nalice $y$new\ncarol $6$c");
	/* a key alone, with no hash (a bad line compile would refuse) */
	check_rewrite("alice\nbob $6$b\n", "alice", "$y$n", "alice $y$n\nbob $6$b\n");
	check_rewrite("alice\r\n", "alice", "$y$n", "alice $y$n\n");
}
END_TEST

START_TEST(only_the_exact_key)
{
	check_rewrite("#alice $6$c\nalicea $6$a\nAlice $6$A\nali $6$i\n", "alice", "$y$n",
		      "#alice $6$c\nalicea $6$a\nAlice $6$A\nali $6$i\nalice $y$n\n");
}
END_TEST

START_TEST(later_repeats_go)
{
	check_rewrite("alice $6$1\nbob $6$b\nalice $6$2\n", "alice", "$y$n",
		      "alice $y$n\nbob $6$b\n");
}
END_TEST

START_TEST(too_small_a_buffer)
{
	char out[8];
	size_t len;

	ck_assert_int_eq(users_rewrite("bob $6$b\n", 9, "alice", "$y$n", out, sizeof out, &len),
			 -1);
}
END_TEST

START_TEST(names)
{
	static const char *const good[] = { "alice", "alice@example.test", "a.b-c_d+e",
					    "j\xc3\xb6rg", "x#y", "A" };
	static const char *const bad[] = { "", "#alice", "a b", "a\tb", "a\nb", "a\rb",
					   "a\x7f", "\x01", "\xff\xfe", "j\xc3" };
	char longest[USERS_NAME_MAX + 2];
	const char *why;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(users_name_valid(good[i], &why), "'%s' refused: %s", good[i], why);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why = NULL;
		ck_assert_msg(!users_name_valid(bad[i], &why), "'%s' accepted", bad[i]);
		ck_assert_ptr_nonnull(why);
	}
	memset(longest, 'a', USERS_NAME_MAX);
	longest[USERS_NAME_MAX] = '\0';
	ck_assert(users_name_valid(longest, &why));
	longest[USERS_NAME_MAX] = 'a';
	longest[USERS_NAME_MAX + 1] = '\0';
	ck_assert(!users_name_valid(longest, &why));
}
END_TEST

Suite *users_suite(void)
{
	Suite *s = suite_create("users");
	TCase *tc = tcase_create("rewrite");

	tcase_add_test(tc, appends_to_an_empty_or_new_file);
	tcase_add_test(tc, replaces_the_line_keeps_the_rest);
	tcase_add_test(tc, only_the_exact_key);
	tcase_add_test(tc, later_repeats_go);
	tcase_add_test(tc, too_small_a_buffer);
	tcase_add_test(tc, names);
	suite_add_tcase(s, tc);
	return s;
}
