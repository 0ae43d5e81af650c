/* conf: tern.conf (lib/conf.h). */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "helpers.h"
#include "suites.h"

START_TEST(durations)
{
	static const struct { const char *s; unsigned v; } good[] = {
		{ "0", 0 }, { "90", 90 }, { "90s", 90 }, { "5m", 300 }, { "2h", 7200 },
		{ "5d", 432000 }, { "1d", 86400 }, { "4294967295", 4294967295u },
		{ "4294967295s", 4294967295u },
	};
	static const char *const bad[] = {
		"", "s", "m", "5x", "5M", "5 m", " 5m", "5m ", "-5", "+5", "1.5h", "5mm",
		"4294967296", "49711d", "99999999999999999999999", "5ms", "five",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		unsigned v = 12345;
		ck_assert_msg(conf_parse_duration(good[i].s, &v) == 0, "'%s' refused", good[i].s);
		ck_assert_msg(v == good[i].v, "'%s': %u, want %u", good[i].s, v, good[i].v);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		unsigned v = 12345;
		ck_assert_msg(conf_parse_duration(bad[i], &v) != 0, "'%s' accepted", bad[i]);
		ck_assert_uint_eq(v, 12345);
	}
}
END_TEST

START_TEST(sizes)
{
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "0", 0 }, { "100", 100 }, { "512K", 524288 }, { "35M", 35ULL << 20 },
		{ "1G", 1ULL << 30 }, { "64M", 64ULL << 20 },
		{ "18446744073709551615", UINT64_MAX },
		{ "17179869183G", 17179869183ULL << 30 },
	};
	static const char *const bad[] = {
		"", "K", "1T", "1KB", "1 K", " 1K", "-1", "+1", "1.5M", "ten",
		"18446744073709551616", "17179869184G", "18014398509481984K",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		uint64_t v = 12345;
		ck_assert_msg(conf_parse_size(good[i].s, &v) == 0, "'%s' refused", good[i].s);
		ck_assert_msg(v == good[i].v, "'%s': %llu", good[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		uint64_t v = 12345;
		ck_assert_msg(conf_parse_size(bad[i], &v) != 0, "'%s' accepted", bad[i]);
		ck_assert_uint_eq(v, 12345);
	}
}
END_TEST

START_TEST(booleans)
{
	bool b = false;

	ck_assert_int_eq(conf_parse_bool("yes", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(conf_parse_bool("no", &b), 0);
	ck_assert(!b);
	static const char *const bad[] = { "", "y", "n", "true", "false", "1", "0", "yes ",
					   "nope", "on", "off" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		b = true;
		ck_assert_msg(conf_parse_bool(bad[i], &b) != 0, "'%s' accepted", bad[i]);
		ck_assert(b);
	}
}
END_TEST

/* Writes TEXT as DIR/tern.conf and loads it; returns conf_load's answer. */
static int load(struct tern_conf *c, const char *dir, const char *text, char *err,
		size_t errsize)
{
	char path[PATH_MAX];

	test_write_file(dir, "tern.conf", text);
	test_path(path, dir, "tern.conf");
	err[0] = '\0';
	return conf_load(c, path, err, errsize);
}

static struct tern_conf *new_conf(void)
{
	/* the struct is large (several PATH_MAX fields): keep it off the stack */
	struct tern_conf *c = calloc(1, sizeof *c);
	ck_assert(c != NULL);
	return c;
}

static void check_fails_at(const char *text, const char *prefix)
{
	char dir[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	ck_assert_msg(load(c, dir, text, err, sizeof err) != 0, "accepted: %s", text);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
		      "error '%s', want it to start '%s'", err, prefix);
	ck_assert_msg(strlen(err) > strlen(prefix), "no message after '%s'", prefix);
	free(c);
}

static void check_loads(const char *text)
{
	char dir[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	ck_assert_msg(load(c, dir, text, err, sizeof err) == 0, "refused: %s: %s", text, err);
	free(c);
}

START_TEST(defaults)
{
	char dir[PATH_MAX], err[CONF_ERROR_MAX], path[PATH_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	ck_assert_msg(load(c, dir, "hostname = mx.example.test\n", err, sizeof err) == 0,
		      "%s", err);
	test_path(path, dir, "tern.conf");
	ck_assert_str_eq(c->path, path);
	ck_assert_str_eq(c->dir, dir);
	ck_assert_str_eq(c->hostname, "mx.example.test");
	ck_assert(!c->instance);
	ck_assert_str_eq(c->spool, SPOOLDIR);
	ck_assert_uint_eq(c->max_message_size, 35ULL << 20);
	ck_assert_uint_eq(c->max_recipients, 100);
	ck_assert_uint_eq(c->max_errors, 20);
	ck_assert_uint_eq(c->max_line_length, 2048);
	ck_assert_uint_eq(c->max_header_size, 1ULL << 20);
	ck_assert_uint_eq(c->max_received, 100);
	ck_assert_uint_eq(c->command_timeout, 300);
	ck_assert_uint_eq(c->data_timeout, 600);
	ck_assert_uint_eq(c->data_min_rate, 500);
	ck_assert_uint_eq(c->session_timeout, 3600);
	ck_assert_uint_eq(c->queue_timeout, 600);
	ck_assert_uint_eq(c->queue_minfree, 64ULL << 20);
	ck_assert_str_eq(c->recipient_delimiter, "");
	ck_assert_uint_eq(c->local_concurrency, 20);
	ck_assert_uint_eq(c->active_limit, 20000);
	ck_assert_uint_eq(c->local_timeout, 600);
	ck_assert_uint_eq(c->remote_concurrency, 50);
	ck_assert_uint_eq(c->remote_concurrency_per_destination, 10);
	ck_assert_uint_eq(c->retry_first, 300);
	ck_assert_uint_eq(c->retry_max, 4 * 3600);
	ck_assert_uint_eq(c->queue_lifetime, 5 * 86400);
	ck_assert(!c->delay_warning);
	ck_assert_uint_eq(c->delay_warning_after, 4 * 3600);
	ck_assert_uint_eq(c->bounce_max_size, 256ULL << 10);
	ck_assert_str_eq(c->dns_server, "");
	ck_assert_uint_eq(c->smtp_port, 25);
	ck_assert_str_eq(c->tls_cert, "");
	ck_assert_str_eq(c->tls_key, "");
	ck_assert_str_eq(c->tls_priority, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2");
	ck_assert_uint_eq(c->tls_handshake_timeout, 30);
	ck_assert_str_eq(c->tls_ca_file, "");
	ck_assert(!c->auth_plaintext);
	ck_assert_uint_eq(c->auth_max_failures, 3);
	ck_assert_str_eq(c->auth_checkpassword, "");
	ck_assert(c->received_auth);
	free(c);
}
END_TEST

START_TEST(empty_file)
{
	char dir[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	/* an empty tern.conf is all defaults, and so lacks the hostname */
	test_mkdir(dir);
	ck_assert_int_ne(load(c, dir, "", err, sizeof err), 0);
	ck_assert_msg(strncmp(err, "tern.conf:", 10) == 0, "error '%s'", err);
	ck_assert_msg(strstr(err, "hostname") != NULL, "error '%s'", err);

	/* in an instance, empty but for instance = yes, it is all defaults */
	ck_assert_msg(load(c, dir, "instance = yes\n", err, sizeof err) == 0, "%s", err);
	ck_assert(c->instance);
	ck_assert_uint_eq(c->max_message_size, 35ULL << 20);
	ck_assert_uint_eq(c->max_recipients, 100);
	ck_assert_uint_eq(c->queue_lifetime, 5 * 86400);
	ck_assert(c->hostname[0] != '\0');
	free(c);
}
END_TEST

START_TEST(values_are_read)
{
	char dir[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	ck_assert_msg(load(c, dir,
			   "hostname = mx.test\n"
			   "max_message_size = 10M\n"
			   "max_recipients = 5\n"
			   "command_timeout = 90s\n"
			   "queue_lifetime = 2d\n"
			   "delay_warning = yes\n"
			   "recipient_delimiter = +-\n"
			   "dns_server = 127.0.0.1:5353\n"
			   "smtp_port = 2525\n"
			   "bounce_max_size = 512K\n"
			   "received_auth = no\n"
			   "tls_priority = NORMAL\n",
			   err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(c->max_message_size, 10ULL << 20);
	ck_assert_uint_eq(c->max_recipients, 5);
	ck_assert_uint_eq(c->command_timeout, 90);
	ck_assert_uint_eq(c->queue_lifetime, 2 * 86400);
	ck_assert(c->delay_warning);
	ck_assert_str_eq(c->recipient_delimiter, "+-");
	ck_assert_str_eq(c->dns_server, "127.0.0.1:5353");
	ck_assert_uint_eq(c->smtp_port, 2525);
	ck_assert_uint_eq(c->bounce_max_size, 512 * 1024);
	ck_assert(!c->received_auth);
	ck_assert_str_eq(c->tls_priority, "NORMAL");
	free(c);
}
END_TEST

START_TEST(spacing_and_line_ends)
{
	char dir[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	ck_assert_msg(load(c, dir, "  hostname=mx.test  \n\n   \n"
				   "max_recipients\t=\t9\t\r\n"
				   "max_errors = 4\r\n"
				   "data_timeout = 1m",	/* no final newline */
			   err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(c->hostname, "mx.test");
	ck_assert_uint_eq(c->max_recipients, 9);
	ck_assert_uint_eq(c->max_errors, 4);
	ck_assert_uint_eq(c->data_timeout, 60);
	free(c);
}
END_TEST

START_TEST(comments_only_at_line_start)
{
	char dir[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	ck_assert_msg(load(c, dir, "# hostname = commented.test\n"
				   "#bogus line\n"
				   "hostname = mx.test\n"
				   "tls_priority = NORMAL # not a comment\n",
			   err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(c->hostname, "mx.test");
	ck_assert_str_eq(c->tls_priority, "NORMAL # not a comment");
	free(c);

	/* a '#' after white space does not start a comment */
	check_fails_at("hostname = mx.test\n  # indented\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\n\t# hostname = x\n", "tern.conf:2: ");
}
END_TEST

START_TEST(last_one_wins)
{
	char dir[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	ck_assert_msg(load(c, dir, "hostname = a.test\nmax_recipients = 5\n"
				   "hostname = b.test\nmax_recipients = 7\n",
			   err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(c->hostname, "b.test");
	ck_assert_uint_eq(c->max_recipients, 7);
	free(c);
}
END_TEST

START_TEST(unknown_key)
{
	char dir[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	check_fails_at("hostname = mx.test\n\nbogus = 1\n", "tern.conf:3: ");
	test_mkdir(dir);
	ck_assert_int_ne(load(c, dir, "hostname = mx.test\n# c\nmax_recipient = 1\n",
			      err, sizeof err), 0);
	ck_assert_msg(strncmp(err, "tern.conf:3: ", 13) == 0, "error '%s'", err);
	ck_assert_msg(strstr(err, "max_recipient") != NULL, "error '%s'", err);
	check_fails_at("Hostname = mx.test\n", "tern.conf:1: ");
	check_fails_at("hostname = mx.test\nno equals sign here\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\n= value\n", "tern.conf:2: ");
	free(c);
}
END_TEST

START_TEST(bad_values)
{
	check_fails_at("hostname = mx.test\nmax_recipients = lots\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nmax_recipients =\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nmax_recipients = 10K\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nmax_recipients = -1\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nmax_recipients = 4294967296\n", "tern.conf:2: ");
	check_fails_at("instance = maybe\n", "tern.conf:1: ");
	check_fails_at("hostname = mx.test\n\n\ncommand_timeout = 5x\n", "tern.conf:4: ");
	check_fails_at("hostname = mx.test\nmax_message_size = 35Q\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nsmtp_port = 0\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nsmtp_port = 65536\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\ndelay_warning = 1\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nqueue_lifetime = forever\n", "tern.conf:2: ");
}
END_TEST

START_TEST(values_out_of_range)
{
	check_fails_at("hostname = mx.test\nmax_recipients = 0\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nmax_recipients = 10001\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nmax_recipients = 4294967295\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nlocal_concurrency = 0\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\ncommand_timeout = 0\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\ndata_timeout = 30d\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nsession_timeout = 0\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nqueue_timeout = 2d\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\nmax_message_size = 2000000G\n", "tern.conf:2: ");
	check_fails_at("hostname = two words\n", "tern.conf:1: ");
	check_fails_at("hostname = a..b\n", "tern.conf:1: ");
	check_fails_at("hostname = mx.test\ndns_server = banana split\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\ndns_server = 127.0.0.1:0\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\ndns_server = ::1\n", "tern.conf:2: ");
	check_fails_at("hostname = mx.test\ndns_server = [::1\n", "tern.conf:2: ");
}
END_TEST

START_TEST(values_at_the_edges_of_their_range)
{
	static const char *const good[] = {
		"hostname = mx.test\nmax_recipients = 10000\n",
		"hostname = mx.test\nmax_recipients = 1\nmax_errors = 0\n",
		"hostname = [192.0.2.1]\n",
		"hostname = mx.test\ndns_server = 127.0.0.1\n",
		"hostname = mx.test\ndns_server = 127.0.0.1:5353\n",
		"hostname = mx.test\ndns_server = [::1]:53\n",
		"hostname = mx.test\ndns_server = [::1]\n",
		"hostname = mx.test\nqueue_minfree = 1000000G\n",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		check_loads(good[i]);
}
END_TEST

START_TEST(error_names_the_file_by_its_base_name)
{
	char dir[PATH_MAX], path[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	test_write_file(dir, "other.conf", "hostname = mx.test\nbogus = 1\n");
	test_path(path, dir, "other.conf");
	ck_assert_int_ne(conf_load(c, path, err, sizeof err), 0);
	ck_assert_msg(strncmp(err, "other.conf:2: ", 14) == 0, "error '%s'", err);

	/* a file that is not there: an error, with something to say */
	test_path(path, dir, "missing.conf");
	err[0] = '\0';
	ck_assert_int_ne(conf_load(c, path, err, sizeof err), 0);
	ck_assert(err[0] != '\0');
	free(c);
}
END_TEST

/* True when A and B name the same existing file. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

START_TEST(relative_spool)
{
	char top[PATH_MAX], dir[PATH_MAX], want[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(top);
	test_path(dir, top, "etc");
	ck_assert_int_eq(mkdir(dir, 0700), 0);

	ck_assert_msg(load(c, dir, "hostname = mx.test\nspool = myspool\n", err,
			   sizeof err) == 0, "%s", err);
	test_path(want, dir, "myspool");
	ck_assert_str_eq(c->spool, want);

	ck_assert_msg(load(c, dir, "hostname = mx.test\nspool = /var/tmp/abs\n", err,
			   sizeof err) == 0, "%s", err);
	ck_assert_str_eq(c->spool, "/var/tmp/abs");

	ck_assert_msg(load(c, dir, "hostname = mx.test\nspool = ../q\n", err,
			   sizeof err) == 0, "%s", err);
	ck_assert(c->spool[0] == '/');
	test_path(want, top, "q");
	ck_assert_int_eq(mkdir(want, 0700), 0);
	ck_assert_msg(same_file(c->spool, want), "spool '%s', want '%s'", c->spool, want);

	/* the order of the lines does not matter */
	ck_assert_msg(load(c, dir, "spool = s2\ninstance = yes\n", err, sizeof err) == 0,
		      "%s", err);
	test_path(want, dir, "s2");
	ck_assert_str_eq(c->spool, want);

	/* other paths too */
	ck_assert_msg(load(c, dir, "hostname = mx.test\ntls_ca_file = ca.pem\n", err,
			   sizeof err) == 0, "%s", err);
	test_path(want, dir, "ca.pem");
	ck_assert_str_eq(c->tls_ca_file, want);
	free(c);
}
END_TEST

/* conf.h: "relative paths come back resolved against tern.conf's folder";
 * tls_cert and tls_key are comma lists of paths (ternctl init writes
 * "tls_cert = tls/cert.pem"). */
START_TEST(relative_tls_paths)
{
	char dir[PATH_MAX], want[2 * PATH_MAX + 2], a[PATH_MAX], b[PATH_MAX],
	     err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	ck_assert_msg(load(c, dir, "hostname = mx.test\ntls_cert = tls/cert.pem\n"
				   "tls_key = tls/key.pem\n", err, sizeof err) == 0, "%s", err);
	test_path(want, dir, "tls/cert.pem");
	ck_assert_str_eq(c->tls_cert, want);
	test_path(want, dir, "tls/key.pem");
	ck_assert_str_eq(c->tls_key, want);

	ck_assert_msg(load(c, dir, "hostname = mx.test\ntls_cert = a.pem,/abs/b.pem\n"
				   "tls_key = a.key,/abs/b.key\n", err, sizeof err) == 0, "%s", err);
	test_path(a, dir, "a.pem");
	snprintf(want, sizeof want, "%s,/abs/b.pem", a);
	ck_assert_str_eq(c->tls_cert, want);
	test_path(b, dir, "a.key");
	snprintf(want, sizeof want, "%s,/abs/b.key", b);
	ck_assert_str_eq(c->tls_key, want);
	free(c);
}
END_TEST

START_TEST(instance_spool)
{
	char top[PATH_MAX], dir[PATH_MAX], want[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(top);
	test_path(dir, top, "etc");
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_msg(load(c, dir, "instance = yes\n", err, sizeof err) == 0, "%s", err);
	ck_assert(c->instance);
	ck_assert(c->spool[0] == '/');
	/* conf.dir + "/../spool", in whatever spelling */
	test_path(want, dir, "../spool");
	ck_assert_int_eq(mkdir(want, 0700), 0);
	ck_assert_msg(same_file(c->spool, want), "spool '%s', want '%s'", c->spool, want);
	char real_got[PATH_MAX], real_want[PATH_MAX];
	ck_assert(realpath(c->spool, real_got) != NULL);
	ck_assert(realpath(want, real_want) != NULL);
	ck_assert_str_eq(real_got, real_want);

	/* the other instance defaults (INTERFACES.md) */
	ck_assert_str_eq(c->recipient_delimiter, "+");
	ck_assert_str_eq(c->dns_server, "127.0.0.1");
	test_path(want, dir, "tls/cert.pem");
	ck_assert_str_eq(c->tls_cert, want);
	test_path(want, dir, "tls/key.pem");
	ck_assert_str_eq(c->tls_key, want);
	/* each of them can be set otherwise, empty included */
	ck_assert_msg(load(c, dir, "instance = yes\nrecipient_delimiter =\n"
				   "dns_server = 127.0.0.2:53\ntls_cert = /x/c.pem\n"
				   "tls_key = /x/k.pem\n", err, sizeof err) == 0, "%s", err);
	ck_assert_str_eq(c->recipient_delimiter, "");
	ck_assert_str_eq(c->dns_server, "127.0.0.2:53");
	ck_assert_str_eq(c->tls_cert, "/x/c.pem");
	ck_assert_str_eq(c->tls_key, "/x/k.pem");

	/* an explicit spool still wins */
	ck_assert_msg(load(c, dir, "instance = yes\nspool = /var/tmp/x\n", err, sizeof err) == 0,
		      "%s", err);
	ck_assert_str_eq(c->spool, "/var/tmp/x");
	/* and without instance = yes the compiled-in spool stays */
	ck_assert_msg(load(c, dir, "instance = no\nhostname = h.test\n", err, sizeof err) == 0,
		      "%s", err);
	ck_assert_str_eq(c->spool, SPOOLDIR);
	free(c);
}
END_TEST

START_TEST(hostname_required_unless_instance)
{
	char dir[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	ck_assert_int_ne(load(c, dir, "instance = no\nmax_recipients = 3\n", err, sizeof err), 0);
	ck_assert_msg(strncmp(err, "tern.conf:", 10) == 0, "error '%s'", err);
	ck_assert_msg(strstr(err, "hostname") != NULL, "error '%s'", err);
	ck_assert_int_ne(load(c, dir, "hostname =\n", err, sizeof err), 0);
	ck_assert_msg(strstr(err, "hostname") != NULL, "error '%s'", err);
	ck_assert_msg(load(c, dir, "instance = yes\n", err, sizeof err) == 0, "%s", err);
	ck_assert_msg(load(c, dir, "instance = yes\nhostname = i.test\n", err, sizeof err) == 0,
		      "%s", err);
	ck_assert_str_eq(c->hostname, "i.test");
	free(c);
}
END_TEST

START_TEST(relative_config_path)
{
	char dir[PATH_MAX], cwd[PATH_MAX], want[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	test_write_file(dir, "tern.conf", "hostname = mx.test\nspool = sp\n");
	ck_assert(getcwd(cwd, sizeof cwd) != NULL);
	ck_assert_int_eq(chdir(dir), 0);
	int r = conf_load(c, "tern.conf", err, sizeof err);
	ck_assert_int_eq(chdir(cwd), 0);
	ck_assert_msg(r == 0, "%s", err);
	test_path(want, dir, "tern.conf");
	ck_assert_str_eq(c->path, want);
	ck_assert_str_eq(c->dir, dir);
	test_path(want, dir, "sp");
	ck_assert_str_eq(c->spool, want);
	free(c);
}
END_TEST

START_TEST(conf_path_resolves)
{
	char dir[PATH_MAX], out[PATH_MAX], want[PATH_MAX], err[CONF_ERROR_MAX];
	struct tern_conf *c = new_conf();

	test_mkdir(dir);
	ck_assert_msg(load(c, dir, "hostname = mx.test\n", err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(conf_path(c, "/etc/passwd", out, sizeof out), 0);
	ck_assert_str_eq(out, "/etc/passwd");
	ck_assert_int_eq(conf_path(c, "aliases", out, sizeof out), 0);
	test_path(want, dir, "aliases");
	ck_assert_str_eq(out, want);
	ck_assert_int_eq(conf_path(c, "../mail/u/Maildir", out, sizeof out), 0);
	ck_assert(out[0] == '/');
	ck_assert(strstr(out, "mail/u/Maildir") != NULL);
	/* too small a buffer fails rather than truncating */
	char tiny[8];
	ck_assert_int_ne(conf_path(c, "aliases", tiny, sizeof tiny), 0);
	free(c);
}
END_TEST

START_TEST(choose_path)
{
	unsetenv("TERN_CONFIG");
	ck_assert_str_eq(conf_choose_path(NULL, false), CONFDIR "/tern.conf");
	ck_assert_str_eq(conf_choose_path("/x/y.conf", false), "/x/y.conf");
	setenv("TERN_CONFIG", "/env/tern.conf", 1);
	ck_assert_str_eq(conf_choose_path(NULL, false), "/env/tern.conf");
	ck_assert_str_eq(conf_choose_path("/x/y.conf", false), "/x/y.conf");
	ck_assert_str_eq(conf_choose_path("/x/y.conf", true), CONFDIR "/tern.conf");
	ck_assert_str_eq(conf_choose_path(NULL, true), CONFDIR "/tern.conf");
	unsetenv("TERN_CONFIG");
}
END_TEST

Suite *conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *values = tcase_create("values");
	TCase *load_tc = tcase_create("load");

	tcase_add_test(values, durations);
	tcase_add_test(values, sizes);
	tcase_add_test(values, booleans);
	suite_add_tcase(s, values);

	tcase_set_timeout(load_tc, 30);
	tcase_add_test(load_tc, defaults);
	tcase_add_test(load_tc, empty_file);
	tcase_add_test(load_tc, values_are_read);
	tcase_add_test(load_tc, spacing_and_line_ends);
	tcase_add_test(load_tc, comments_only_at_line_start);
	tcase_add_test(load_tc, last_one_wins);
	tcase_add_test(load_tc, unknown_key);
	tcase_add_test(load_tc, bad_values);
	tcase_add_test(load_tc, error_names_the_file_by_its_base_name);
	tcase_add_test(load_tc, relative_spool);
	tcase_add_test(load_tc, relative_tls_paths);
	tcase_add_test(load_tc, instance_spool);
	tcase_add_test(load_tc, values_out_of_range);
	tcase_add_test(load_tc, values_at_the_edges_of_their_range);
	tcase_add_test(load_tc, hostname_required_unless_instance);
	tcase_add_test(load_tc, relative_config_path);
	tcase_add_test(load_tc, conf_path_resolves);
	tcase_add_test(load_tc, choose_path);
	suite_add_tcase(s, load_tc);
	return s;
}
