/* auth: SASL PLAIN and LOGIN, credentials, sender ownership (smtpd/auth.h).
 * smtpd/auth.c is not in libtern.a, so it is compiled in here, once. */
#include <check.h>
#include <crypt.h>
#include <limits.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../../smtpd/auth.h"
#include "../../smtpd/auth.c"
#include "helpers.h"
#include "suites.h"

#define B64_BUFFER (AUTH_RESPONSE_MAX + 1)

/* Base64 of the LEN octets at RAW (NULs allowed) into OUT (B64_BUFFER). */
static void encode_raw(const char *raw, size_t len, char *out)
{
	ck_assert(b64_ntop((const unsigned char *)raw, len, out, B64_BUFFER) >= 0);
}

static enum auth_decode plain(const char *raw, size_t len, char *name, char *password)
{
	char b64[B64_BUFFER];

	encode_raw(raw, len, b64);
	return auth_decode_plain(b64, name, password);
}

/* sizeof a literal holding NULs, without its own final NUL */
#define RAW(s) s, sizeof s - 1

START_TEST(plain_good)
{
	char name[AUTH_NAME_MAX], password[AUTH_PASSWORD_MAX];

	ck_assert_int_eq(plain(RAW("\0alice\0secret"), name, password), AUTH_DECODED);
	ck_assert_str_eq(name, "alice");
	ck_assert_str_eq(password, "secret");
	/* the authzid may repeat the authcid */
	ck_assert_int_eq(plain(RAW("alice\0alice\0pass word"), name, password), AUTH_DECODED);
	ck_assert_str_eq(name, "alice");
	ck_assert_str_eq(password, "pass word");
	/* RFC 4616's own example */
	ck_assert_int_eq(auth_decode_plain("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", name, password),
			 AUTH_DECODED);
	ck_assert_str_eq(name, "tim");
	ck_assert_str_eq(password, "tanstaaftanstaaf");
	/* an empty password decodes: auth_verify is the one that refuses it */
	ck_assert_int_eq(plain(RAW("\0alice\0"), name, password), AUTH_DECODED);
	ck_assert_str_eq(name, "alice");
	ck_assert_str_eq(password, "");
}
END_TEST

START_TEST(plain_other_identity)
{
	char name[AUTH_NAME_MAX], password[AUTH_PASSWORD_MAX];

	ck_assert_int_eq(plain(RAW("bob\0alice\0secret"), name, password), AUTH_OTHER_IDENTITY);
	ck_assert_str_eq(name, "alice");
	ck_assert_str_eq(password, "");
	/* the same identity is the same octets */
	ck_assert_int_eq(plain(RAW("Alice\0alice\0secret"), name, password), AUTH_OTHER_IDENTITY);
}
END_TEST

START_TEST(plain_malformed)
{
	char name[AUTH_NAME_MAX], password[AUTH_PASSWORD_MAX];
	static const struct {
		const char *raw;
		size_t len;
	} bad[] = {
		{ RAW("") },
		{ RAW("alice") },
		{ RAW("alice\0secret") },
		{ RAW("\0alice") },
		{ RAW("\0\0secret") },		/* empty authcid */
		{ RAW("\0alice\0sec\0ret") },	/* a NUL in the password */
		{ RAW("\0alice\0secret\0") },
		{ RAW("\0\0\0") },
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(plain(bad[i].raw, bad[i].len, name, password), AUTH_MALFORMED);
		ck_assert_str_eq(name, "");
		ck_assert_str_eq(password, "");
	}
	/* "=" is the empty response: no parts at all */
	ck_assert_int_eq(auth_decode_plain("=", name, password), AUTH_MALFORMED);
	ck_assert_int_eq(auth_decode_plain("", name, password), AUTH_MALFORMED);
}
END_TEST

START_TEST(plain_bad_base64)
{
	char name[AUTH_NAME_MAX], password[AUTH_PASSWORD_MAX];
	static const char *const bad[] = {
		"AGFsaWNlAHNlY3JldA",		/* "=" padding left out */
		"AGFsaWNlAHNlY3JldA=",		/* too little of it */
		"AGFsaWNlAHNlY3JldA===",	/* too much */
		"AGFsaWNlAHNl=Y3JldA==",	/* "=" inside */
		"=AGFsaWNlAHNlY3JldA=",
		"AGFsaWNl AHNlY3JldA==",	/* a blank */
		"AGFsaWNlAHNlY3JldA==\r",
		"AGFsaWNlAHNlY3JldA==\n",
		"AGFsaWNlAHNlY3Jld!==",
		"AGFsaWNlAHNlY3Jl-_==",		/* the URL alphabet */
		"AGFsaWNlAHNlY3JldB==",		/* bits set past the last octet */
		"AGFsaWNlAHNlY3Jlda=",
		"====",
		"A===",
		"*",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(auth_decode_plain(bad[i], name, password) == AUTH_BAD_BASE64,
			      "'%s' decoded", bad[i]);
		ck_assert_str_eq(name, "");
		ck_assert_str_eq(password, "");
	}
	/* the same text, well padded, is fine */
	ck_assert_int_eq(auth_decode_plain("AGFsaWNlAHNlY3JldA==", name, password), AUTH_DECODED);
	ck_assert_str_eq(password, "secret");
}
END_TEST

/* "\0" NAME_LEN x 'n' "\0" PASSWORD_LEN x 'p', decoded */
static enum auth_decode plain_sized(size_t authzid_len, size_t name_len, size_t password_len)
{
	static char raw[AUTH_RESPONSE_MAX];
	char name[AUTH_NAME_MAX], password[AUTH_PASSWORD_MAX];
	size_t n = 0;

	ck_assert(authzid_len + name_len + password_len + 2 <= AUTH_RESPONSE_MAX / 4 * 3);
	memset(raw + n, 'n', authzid_len);
	n += authzid_len;
	raw[n++] = '\0';
	memset(raw + n, 'n', name_len);
	n += name_len;
	raw[n++] = '\0';
	memset(raw + n, 'p', password_len);
	n += password_len;
	enum auth_decode r = plain(raw, n, name, password);
	if (r == AUTH_DECODED) {
		ck_assert_uint_eq(strlen(name), name_len);
		ck_assert_uint_eq(strlen(password), password_len);
	}
	return r;
}

START_TEST(plain_too_long)
{
	ck_assert_int_eq(plain_sized(0, AUTH_NAME_MAX - 1, AUTH_PASSWORD_MAX - 1), AUTH_DECODED);
	ck_assert_int_eq(plain_sized(AUTH_NAME_MAX - 1, AUTH_NAME_MAX - 1, AUTH_PASSWORD_MAX - 1),
			 AUTH_DECODED);
	ck_assert_int_eq(plain_sized(0, AUTH_NAME_MAX, 8), AUTH_MALFORMED);
	ck_assert_int_eq(plain_sized(0, 8, AUTH_PASSWORD_MAX), AUTH_MALFORMED);
	ck_assert_int_eq(plain_sized(AUTH_NAME_MAX, 8, 8), AUTH_MALFORMED);
	ck_assert_int_eq(plain_sized(0, 8, 8000), AUTH_MALFORMED);

	/* the longest line AUTH takes, all of it base64 */
	static char b64[AUTH_RESPONSE_MAX + 1];
	char name[AUTH_NAME_MAX], password[AUTH_PASSWORD_MAX];
	memset(b64, 'A', AUTH_RESPONSE_MAX);
	b64[AUTH_RESPONSE_MAX] = '\0';
	ck_assert_int_eq(auth_decode_plain(b64, name, password), AUTH_MALFORMED);
}
END_TEST

START_TEST(login_text)
{
	char out[AUTH_NAME_MAX], b64[B64_BUFFER];

	ck_assert_int_eq(auth_decode_text("YWxpY2U=", out, sizeof out), AUTH_DECODED);
	ck_assert_str_eq(out, "alice");
	ck_assert_int_eq(auth_decode_text("=", out, sizeof out), AUTH_DECODED);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(auth_decode_text("", out, sizeof out), AUTH_DECODED);
	ck_assert_str_eq(out, "");
	/* no NUL inside */
	encode_raw(RAW("ali\0ce"), b64);
	ck_assert_int_eq(auth_decode_text(b64, out, sizeof out), AUTH_MALFORMED);
	ck_assert_str_eq(out, "");
	encode_raw(RAW("alice\0"), b64);
	ck_assert_int_eq(auth_decode_text(b64, out, sizeof out), AUTH_MALFORMED);
	/* it must fit with its NUL */
	ck_assert_int_eq(auth_decode_text("YWxpY2U=", out, 6), AUTH_DECODED);
	ck_assert_int_eq(auth_decode_text("YWxpY2U=", out, 5), AUTH_MALFORMED);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(auth_decode_text("YWxpY2U", out, sizeof out), AUTH_BAD_BASE64);
	ck_assert_int_eq(auth_decode_text("YWxp Y2U=", out, sizeof out), AUTH_BAD_BASE64);
	ck_assert_int_eq(auth_decode_text("YWxpY2V=", out, sizeof out), AUTH_BAD_BASE64);

	static char big[AUTH_RESPONSE_MAX + 1];
	char password[AUTH_PASSWORD_MAX];
	memset(big, 'p', AUTH_PASSWORD_MAX - 1);
	encode_raw(big, AUTH_PASSWORD_MAX - 1, b64);
	ck_assert_int_eq(auth_decode_text(b64, password, sizeof password), AUTH_DECODED);
	ck_assert_uint_eq(strlen(password), AUTH_PASSWORD_MAX - 1);
	encode_raw(big, AUTH_PASSWORD_MAX, b64);
	ck_assert_int_eq(auth_decode_text(b64, password, sizeof password), AUTH_MALFORMED);
	memset(big, 'A', AUTH_RESPONSE_MAX);
	big[AUTH_RESPONSE_MAX] = '\0';
	ck_assert_int_eq(auth_decode_text(big, password, sizeof password), AUTH_MALFORMED);
}
END_TEST

START_TEST(encode_round_trip)
{
	char b64[64], back[64];

	ck_assert_int_eq(auth_encode("Username:", b64, sizeof b64), 12);
	ck_assert_str_eq(b64, "VXNlcm5hbWU6");
	ck_assert_int_eq(auth_encode("Password:", b64, sizeof b64), 12);
	ck_assert_str_eq(b64, "UGFzc3dvcmQ6");
	static const char *const texts[] = { "", "a", "ab", "abc", "abcd", "p\xc3\xa4ss w+/=" };
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		ck_assert(auth_encode(texts[i], b64, sizeof b64) >= 0);
		ck_assert_int_eq(auth_decode_text(b64, back, sizeof back), AUTH_DECODED);
		ck_assert_str_eq(back, texts[i]);
	}
	/* no room for the NUL */
	ck_assert_int_eq(auth_encode("Username:", b64, 12), -1);
}
END_TEST

/* ---- auth_verify ---- */

struct instance {
	char dir[PATH_MAX];
	struct tern_conf conf;
};

static void collect(const char *line, void *arg)
{
	(void)arg;
	ck_abort_msg("table compile: %s", line);
}

/* A fresh instance with tern.conf; its tables are written by the test. */
static struct instance *instance_make(void)
{
	char path[PATH_MAX], err[CONF_ERROR_MAX];
	struct instance *in = calloc(1, sizeof *in);

	ck_assert(in != NULL);
	test_mkdir(in->dir);
	test_write_file(in->dir, "tern.conf", "instance = yes\nhostname = mx.example.test\n");
	test_path(path, in->dir, "tern.conf");
	ck_assert_msg(conf_load(&in->conf, path, err, sizeof err) == 0, "%s", err);
	return in;
}

static void compile(struct instance *in)
{
	ck_assert_int_eq(table_compile_all(&in->conf, collect, NULL), 0);
}

static void make_hash(const char *prefix, const char *password, char *out, size_t outsize)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data data;

	ck_assert(crypt_gensalt_rn(prefix, 0, NULL, 0, salt, sizeof salt) != NULL);
	memset(&data, 0, sizeof data);
	const char *hash = crypt_rn(password, salt, &data, sizeof data);
	ck_assert(hash != NULL && hash[0] != '*');
	ck_assert(strncmp(hash, prefix, strlen(prefix)) == 0);
	ck_assert(str_copy(out, outsize, hash));
}

static enum auth_verdict verify(struct instance *in, const char *name, const char *password)
{
	struct table users;

	table_init(&users, &in->conf, "users");
	enum auth_verdict v = auth_verify(&in->conf, &users, name, password);
	table_close(&users);
	return v;
}

START_TEST(verify_users_table)
{
	struct instance *in = instance_make();
	char yescrypt[CRYPT_OUTPUT_SIZE], sha512[CRYPT_OUTPUT_SIZE], text[4 * CRYPT_OUTPUT_SIZE];

	make_hash("$y$", "alice's secret", yescrypt, sizeof yescrypt);
	make_hash("$6$", "bob pass", sha512, sizeof sha512);
	snprintf(text, sizeof text, "alice %s\nbob\t%s\nlocked !%s\nodd ?nohash\n", yescrypt,
		 sha512, sha512);
	test_write_file(in->dir, "users", text);
	compile(in);

	ck_assert_int_eq(verify(in, "alice", "alice's secret"), AUTH_GRANTED);
	ck_assert_int_eq(verify(in, "alice", "alice's secreT"), AUTH_DENIED);
	ck_assert_int_eq(verify(in, "alice", "alice's secret "), AUTH_DENIED);
	ck_assert_int_eq(verify(in, "alice", "bob pass"), AUTH_DENIED);
	ck_assert_int_eq(verify(in, "bob", "bob pass"), AUTH_GRANTED);
	ck_assert_int_eq(verify(in, "bob", "bob pas"), AUTH_DENIED);
	/* names are keys as given */
	ck_assert_int_eq(verify(in, "Alice", "alice's secret"), AUTH_DENIED);
	ck_assert_int_eq(verify(in, "carol", "alice's secret"), AUTH_DENIED);
	ck_assert_int_eq(verify(in, "locked", "bob pass"), AUTH_DENIED);
	ck_assert_int_eq(verify(in, "odd", "?nohash"), AUTH_DENIED);
	ck_assert_int_eq(verify(in, "alice", ""), AUTH_DENIED);
	free(in);
}
END_TEST

START_TEST(verify_empty_password_no_lookup)
{
	struct instance *in = instance_make();

	/* broken users table: a lookup would be a TEMPFAIL, so a DENIED means none */
	test_write_file(in->dir, "users", "alice $6$x$y\n");
	ck_assert_int_eq(verify(in, "alice", "secret"), AUTH_TEMPFAIL);
	ck_assert_int_eq(verify(in, "alice", ""), AUTH_DENIED);

	char name[AUTH_NAME_MAX], password[AUTH_PASSWORD_MAX];
	ck_assert_int_eq(plain(RAW("\0alice\0"), name, password), AUTH_DECODED);
	ck_assert_int_eq(verify(in, name, password), AUTH_DENIED);
	free(in);
}
END_TEST

START_TEST(verify_broken_table)
{
	struct instance *in = instance_make();

	test_write_file(in->dir, "users", "alice $6$x$y\n");
	ck_assert_int_eq(verify(in, "alice", "secret"), AUTH_TEMPFAIL);
	ck_assert_int_eq(verify(in, "nobody", "secret"), AUTH_TEMPFAIL);
	/* a cdb cut short is broken too */
	compile(in);
	char cdb[PATH_MAX];
	test_path(cdb, in->dir, "users.cdb");
	ck_assert(truncate(cdb, 10) == 0);
	ck_assert_int_eq(verify(in, "alice", "secret"), AUTH_TEMPFAIL);
	free(in);
}
END_TEST

START_TEST(verify_no_users_table)
{
	struct instance *in = instance_make();

	/* neither text nor cdb: an empty table, nobody known */
	ck_assert_int_eq(verify(in, "alice", "secret"), AUTH_DENIED);
	free(in);
}
END_TEST

/* DIR/NAME, mode 0755, holding SCRIPT; its path goes to the conf. */
static void checkpassword(struct instance *in, const char *name, const char *script)
{
	char path[PATH_MAX];

	test_write_file(in->dir, name, script);
	test_path(path, in->dir, name);
	ck_assert(chmod(path, 0755) == 0);
	ck_assert(str_copy(in->conf.auth_checkpassword, sizeof in->conf.auth_checkpassword,
			   path));
}

START_TEST(checkpassword_exit_codes)
{
	struct instance *in = instance_make();

	/* a users table that would grant: checkpassword replaces it */
	char hash[CRYPT_OUTPUT_SIZE], text[2 * CRYPT_OUTPUT_SIZE];
	make_hash("$6$", "secret", hash, sizeof hash);
	snprintf(text, sizeof text, "alice %s\n", hash);
	test_write_file(in->dir, "users", text);
	compile(in);

	checkpassword(in, "granted", "#!/bin/sh\nexit 0\n");
	ck_assert_int_eq(verify(in, "alice", "wrong"), AUTH_GRANTED);
	ck_assert_int_eq(verify(in, "alice", ""), AUTH_DENIED);
	checkpassword(in, "denied", "#!/bin/sh\nexit 1\n");
	ck_assert_int_eq(verify(in, "alice", "secret"), AUTH_DENIED);
	checkpassword(in, "temporary", "#!/bin/sh\nexit 111\n");
	ck_assert_int_eq(verify(in, "alice", "secret"), AUTH_TEMPFAIL);
	checkpassword(in, "misused", "#!/bin/sh\nexit 2\n");
	ck_assert_int_eq(verify(in, "alice", "secret"), AUTH_TEMPFAIL);
	checkpassword(in, "killed", "#!/bin/sh\nkill -9 $$\n");
	ck_assert_int_eq(verify(in, "alice", "secret"), AUTH_TEMPFAIL);
	checkpassword(in, "not-executable", "#!/bin/sh\nexit 0\n");
	char path[PATH_MAX];
	test_path(path, in->dir, "not-executable");
	ck_assert(chmod(path, 0644) == 0);
	ck_assert_int_eq(verify(in, "alice", "secret"), AUTH_TEMPFAIL);
	test_path(path, in->dir, "missing");
	ck_assert(str_copy(in->conf.auth_checkpassword, sizeof in->conf.auth_checkpassword,
			   path));
	ck_assert_int_eq(verify(in, "alice", "secret"), AUTH_TEMPFAIL);
	free(in);
}
END_TEST

/* Grants alice/"s3cret pass" only, if it gets /bin/true to run and nothing on fd 0;
 * exits 3 if the timestamp is missing. */
static const char reads_fd3[] =
	"#!/bin/sh\n"
	"input=$(tr '\\0' '\\n' <&3)\n"
	"name=$(printf '%s\\n' \"$input\" | sed -n 1p)\n"
	"pass=$(printf '%s\\n' \"$input\" | sed -n 2p)\n"
	"stamp=$(printf '%s\\n' \"$input\" | sed -n 3p)\n"
	"case $stamp in '<'*'@mx.example.test>') ;; *) exit 3 ;; esac\n"
	"[ -z \"$(cat)\" ] || exit 4\n"
	"[ \"$#\" = 1 ] && [ \"$1\" = /bin/true ] || exit 5\n"
	"[ \"$name\" = alice ] && [ \"$pass\" = 's3cret pass' ] && exec \"$@\"\n"
	"exit 1\n";

START_TEST(checkpassword_reads_fd3)
{
	struct instance *in = instance_make();

	checkpassword(in, "check", reads_fd3);
	ck_assert_int_eq(verify(in, "alice", "s3cret pass"), AUTH_GRANTED);
	ck_assert_int_eq(verify(in, "alice", "s3cret"), AUTH_DENIED);
	ck_assert_int_eq(verify(in, "bob", "s3cret pass"), AUTH_DENIED);
	free(in);
}
END_TEST

/* True once process PID is gone or a zombie, within DEADLINE_S seconds. */
static bool process_ends(pid_t pid, int deadline_s)
{
	char path[64], stat_line[512];
	time_t until = time(NULL) + deadline_s;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	do {
		FILE *f = fopen(path, "r");
		if (f == NULL)
			return true;
		bool got = fgets(stat_line, sizeof stat_line, f) != NULL;
		fclose(f);
		const char *paren = got ? strrchr(stat_line, ')') : NULL;
		if (paren != NULL && (paren[2] == 'Z' || paren[2] == 'X'))
			return true;
		struct timespec nap = { 0, 10 * 1000 * 1000 };
		nanosleep(&nap, NULL);
	} while (time(NULL) <= until);
	return false;
}

START_TEST(checkpassword_timeout_kills)
{
	struct instance *in = instance_make();
	char pidfile[PATH_MAX], script[PATH_MAX * 4];

	/* the script and what it started (its process group) must both be killed */
	test_path(pidfile, in->dir, "sleeper.pid");
	int n = snprintf(script, sizeof script,
		 "#!/bin/sh\nsleep 600 </dev/null >/dev/null 2>&1 &\necho $! > '%s.new'\nmv '%s.new' '%s'\nwait\nexit 0\n",
		 pidfile, pidfile, pidfile);
	ck_assert(n > 0 && (size_t)n < sizeof script);
	checkpassword(in, "slow", script);
	int fd = input_pipe("alice\0secret\0\0", 14);
	ck_assert(fd >= 0);
	ck_assert_int_eq(run_checkpassword(in->conf.auth_checkpassword, fd, 2), AUTH_TEMPFAIL);
	close(fd);
	char *text = test_read_file(pidfile, NULL);
	ck_assert_msg(text != NULL, "the script did not start its sleep within the timeout");
	pid_t sleeper = (pid_t)atol(text);
	free(text);
	ck_assert(sleeper > 1);
	bool ended = process_ends(sleeper, 10);
	if (!ended)
		kill(sleeper, SIGKILL);	/* a failed test leaves nothing running */
	ck_assert_msg(ended, "the checkpassword's child lived on");
	free(in);
}
END_TEST

/* ---- sender ownership ---- */

static enum table_result owned(struct instance *in, const char *name, const char *address)
{
	struct table senders;

	table_init(&senders, &in->conf, "senders");
	enum table_result r = auth_sender_owned(&in->conf, &senders, name, address);
	table_close(&senders);
	return r;
}

START_TEST(sender_ownership)
{
	struct instance *in = instance_make();

	test_write_file(in->dir, "senders",
			"alice alice@example.test, @Example.ORG, Alice.Smith@Example.NET\n"
			"bob   bob@example.test\n"
			"www   www-data@example.test, \"john smith\"@example.test\n");
	compile(in);
	ck_assert_str_eq(in->conf.recipient_delimiter, "+");

	ck_assert_int_eq(owned(in, "alice", "alice@example.test"), TABLE_FOUND);
	ck_assert_int_eq(owned(in, "alice", "ALICE@example.test"), TABLE_FOUND);
	ck_assert_int_eq(owned(in, "alice", "alice.smith@example.net"), TABLE_FOUND);
	ck_assert_int_eq(owned(in, "alice", "anyone@example.org"), TABLE_FOUND);
	ck_assert_int_eq(owned(in, "alice", "Anyone@EXAMPLE.org"), TABLE_FOUND);
	ck_assert_int_eq(owned(in, "alice", "anyone@sub.example.org"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "alice", "anyone@example.test"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "alice", "bob@example.test"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "alice", "alicex@example.test"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "alice", "alice@example.test.evil.test"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "bob", "alice@example.test"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "bob", "bob@example.test"), TABLE_FOUND);
	ck_assert_int_eq(owned(in, "www", "www-data@example.test"), TABLE_FOUND);
	ck_assert_int_eq(owned(in, "www", "\"john smith\"@example.test"), TABLE_FOUND);
	ck_assert_int_eq(owned(in, "www", "\"John Smith\"@example.test"), TABLE_FOUND);

	/* the +tag, with a delimiter set */
	ck_assert_int_eq(owned(in, "alice", "alice+lists@example.test"), TABLE_FOUND);
	ck_assert_int_eq(owned(in, "alice", "Alice+Lists@example.test"), TABLE_FOUND);
	ck_assert_int_eq(owned(in, "alice", "bob+alice@example.test"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "alice", "+alice@example.test"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "bob", "bob+x+y@example.test"), TABLE_FOUND);
	in->conf.recipient_delimiter[0] = '\0';
	ck_assert_int_eq(owned(in, "alice", "alice+lists@example.test"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "alice", "alice@example.test"), TABLE_FOUND);
	str_copy(in->conf.recipient_delimiter, sizeof in->conf.recipient_delimiter, "-+");
	ck_assert_int_eq(owned(in, "alice", "alice-lists@example.test"), TABLE_FOUND);
	/* the whole local part first: www-data is www-data's own */
	ck_assert_int_eq(owned(in, "www", "www-data@example.test"), TABLE_FOUND);

	/* the null sender, an unknown name, nonsense */
	ck_assert_int_eq(owned(in, "alice", ""), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "carol", "alice@example.test"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "", "alice@example.test"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "alice", "postmaster"), TABLE_NOTFOUND);
	ck_assert_int_eq(owned(in, "alice", "not an address"), TABLE_NOTFOUND);
	free(in);
}
END_TEST

START_TEST(sender_broken_table)
{
	struct instance *in = instance_make();

	test_write_file(in->dir, "senders", "alice alice@example.test\n");
	ck_assert_int_eq(owned(in, "alice", "alice@example.test"), TABLE_TEMPFAIL);
	ck_assert_int_eq(owned(in, "nobody", "alice@example.test"), TABLE_TEMPFAIL);
	/* the null sender needs no table */
	ck_assert_int_eq(owned(in, "alice", ""), TABLE_NOTFOUND);
	free(in);
}
END_TEST

START_TEST(failure_delay)
{
	ck_assert_uint_eq(auth_failure_delay_ms(0), 0);
	ck_assert_uint_eq(auth_failure_delay_ms(1), 1000);
	ck_assert_uint_eq(auth_failure_delay_ms(2), 2000);
	ck_assert_uint_eq(auth_failure_delay_ms(3), 4000);
	ck_assert_uint_eq(auth_failure_delay_ms(4), AUTH_FAILURE_DELAY_MAX_MS);
	ck_assert_uint_eq(auth_failure_delay_ms(5), AUTH_FAILURE_DELAY_MAX_MS);
	ck_assert_uint_eq(auth_failure_delay_ms(1000), AUTH_FAILURE_DELAY_MAX_MS);
	ck_assert_uint_eq(auth_failure_delay_ms(UINT_MAX), AUTH_FAILURE_DELAY_MAX_MS);
	for (unsigned n = 1; n < 100; n++)
		ck_assert_uint_le(auth_failure_delay_ms(n), auth_failure_delay_ms(n + 1));
}
END_TEST

Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *sasl = tcase_create("sasl");
	TCase *verify_case = tcase_create("verify");
	TCase *senders = tcase_create("senders");

	tcase_add_test(sasl, plain_good);
	tcase_add_test(sasl, plain_other_identity);
	tcase_add_test(sasl, plain_malformed);
	tcase_add_test(sasl, plain_bad_base64);
	tcase_add_test(sasl, plain_too_long);
	tcase_add_test(sasl, login_text);
	tcase_add_test(sasl, encode_round_trip);
	suite_add_tcase(s, sasl);

	/* yescrypt and sleeping children: more than check's default 4 s under ASan */
	tcase_set_timeout(verify_case, 60);
	tcase_add_test(verify_case, verify_users_table);
	tcase_add_test(verify_case, verify_empty_password_no_lookup);
	tcase_add_test(verify_case, verify_broken_table);
	tcase_add_test(verify_case, verify_no_users_table);
	tcase_add_test(verify_case, checkpassword_exit_codes);
	tcase_add_test(verify_case, checkpassword_reads_fd3);
	tcase_add_test(verify_case, checkpassword_timeout_kills);
	suite_add_tcase(s, verify_case);

	tcase_add_test(senders, sender_ownership);
	tcase_add_test(senders, sender_broken_table);
	tcase_add_test(senders, failure_delay);
	suite_add_tcase(s, senders);
	return s;
}
