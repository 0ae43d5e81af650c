#include "recipient.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

void recipient_tables_init(struct recipient_tables *t, const struct tern_conf *c)
{
	t->conf = c;
	table_init(&t->domains, c, "domains");
	table_init(&t->mailboxes, c, "mailboxes");
	table_init(&t->aliases, c, "aliases");
}

void recipient_tables_close(struct recipient_tables *t)
{
	table_close(&t->domains);
	table_close(&t->mailboxes);
	table_close(&t->aliases);
}

int recipient_first_domain(struct recipient_tables *t, char *out, size_t outsize)
{
	return table_lookup(&t->domains, TABLE_FIRST_DOMAIN_KEY, out, outsize) == TABLE_FOUND
		? 0 : -1;
}

static bool tempfail_with(struct resolution *out, const char *table, const char *hint)
{
	out->kind = RESOLVE_TEMPFAIL;
	out->failed_table = table;
	out->hint = hint;
	return true;
}

/* A compiled table that cannot be read. */
static bool tempfail(struct resolution *out, const char *table)
{
	return tempfail_with(out, table, "run ternctl compile");
}

/* Looks KEY up in mailboxes, then aliases.  True when OUT is final. */
static bool lookup_address(struct recipient_tables *t, const char *key,
			   struct resolution *out)
{
	enum table_result r;

	str_copy(out->key, sizeof out->key, key);
	r = table_lookup(&t->mailboxes, key, out->value, sizeof out->value);
	if (r == TABLE_TEMPFAIL)
		return tempfail(out, "mailboxes");
	if (r == TABLE_FOUND) {
		char path[TABLE_VALUE_MAX];
		out->kind = RESOLVE_MAILBOX;
		if (conf_path(t->conf, out->value, path, sizeof path) < 0)
			return tempfail(out, "mailboxes");
		str_copy(out->value, sizeof out->value, path);
		return true;
	}
	r = table_lookup(&t->aliases, key, out->value, sizeof out->value);
	if (r == TABLE_TEMPFAIL)
		return tempfail(out, "aliases");
	if (r == TABLE_FOUND) {
		out->kind = RESOLVE_ALIAS;
		return true;
	}
	return false;
}

/* qmail-getpw's rules: an account that can take mail is not root, and
 * owns its home folder.  True when OUT is final. */
static bool lookup_system(const char *login, struct resolution *out)
{
	struct stat st;

	if (!login_name_valid(login))
		return false;
	errno = 0;
	struct passwd *pw = getpwnam(login);
	/* NULL with one of these errnos is "no one"; any other, NSS could not answer */
	if (pw == NULL && errno != 0 && errno != ENOENT && errno != ESRCH &&
	    errno != EBADF && errno != EPERM)
		return tempfail_with(out, "passwd", "check the account database (NSS)");
	if (pw == NULL || pw->pw_uid == 0 || pw->pw_dir == NULL || pw->pw_dir[0] != '/')
		return false;
	if (stat(pw->pw_dir, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return false;
		return tempfail_with(out, "passwd", "check the account's home folder");
	}
	if (st.st_uid != pw->pw_uid || !S_ISDIR(st.st_mode))
		return false;
	out->kind = RESOLVE_SYSTEM;
	str_copy(out->key, sizeof out->key, login);
	snprintf(out->value, sizeof out->value, "%s/Maildir", pw->pw_dir);
	return true;
}

void recipient_resolve(struct recipient_tables *t, const struct mailbox *m,
		       struct resolution *out)
{
	char domain[ADDR_DOMAIN_MAX + 1], local[sizeof m->local], kind[16], key[ADDR_BUFFER];

	memset(out, 0, sizeof *out);
	str_copy(local, sizeof local, m->local);
	str_lower(local);
	str_copy(domain, sizeof domain, m->domain);
	if (domain[0] == '\0') {	/* bare postmaster */
		enum table_result r = table_lookup(&t->domains, TABLE_FIRST_DOMAIN_KEY,
						   domain, sizeof domain);
		if (r == TABLE_TEMPFAIL) {
			tempfail(out, "domains");
			return;
		}
		if (r == TABLE_NOTFOUND) {
			out->kind = RESOLVE_POSTMASTER;
			return;
		}
	}
	enum table_result r = table_lookup(&t->domains, domain, kind, sizeof kind);
	if (r == TABLE_TEMPFAIL) {
		tempfail(out, "domains");
		return;
	}
	if (r == TABLE_NOTFOUND) {
		out->kind = RESOLVE_REMOTE;
		return;
	}
	bool system = strcmp(kind, "system") == 0;
	/* the whole local part first: www-data is an account, not www's tag */
	snprintf(key, sizeof key, "%s@%s", local, domain);
	if (lookup_address(t, key, out) || (system && lookup_system(local, out)))
		return;
	const char *delimiters = t->conf->recipient_delimiter;
	size_t base_len = delimiters[0] != '\0' && local[0] != '"'
		? strcspn(local, delimiters) : strlen(local);
	if (base_len > 0 && base_len < strlen(local)) {
		local[base_len] = '\0';
		snprintf(key, sizeof key, "%s@%s", local, domain);
		if (lookup_address(t, key, out) || (system && lookup_system(local, out)))
			return;
	}
	if (strcmp(local, "postmaster") == 0) {
		char first[ADDR_DOMAIN_MAX + 1];
		if (recipient_first_domain(t, first, sizeof first) == 0) {
			snprintf(key, sizeof key, "postmaster@%s", first);
			if (strcmp(first, domain) != 0 && lookup_address(t, key, out))
				return;
		}
		out->kind = RESOLVE_POSTMASTER;
		return;
	}
	out->kind = RESOLVE_UNKNOWN;
}
