/* recipient: what a recipient address means here, from the tables
 * (tern-tables(5)).  tern-smtpd asks at RCPT; tern-deliver at delivery.
 *
 * Order: a non-local domain is REMOTE.  For a local domain the address
 * itself, then the address without its +tag (recipient_delimiter), is looked
 * up in mailboxes, then aliases, then (a `system` domain) as an account of
 * that name: the whole local part is tried everywhere before the split.
 * An account takes mail only if it is not root and owns its home folder
 * (qmail-getpw's rules).  postmaster always exists (falling back to the
 * postmaster alias of the first domain).  Nothing here builds a path from
 * a local part except the system account, whose name must be a plain
 * login name. */
#ifndef TERN_RECIPIENT_H
#define TERN_RECIPIENT_H

#include "addr.h"
#include "conf.h"
#include "table.h"

enum resolution_kind {
	RESOLVE_MAILBOX,	/* value: Maildir path (absolute) */
	RESOLVE_ALIAS,		/* value: comma-separated addresses */
	RESOLVE_SYSTEM,		/* value: the account's ~/Maildir; key: login */
	RESOLVE_POSTMASTER,	/* postmaster with nowhere configured to go */
	RESOLVE_REMOTE,
	RESOLVE_UNKNOWN,	/* local domain, no such user */
	RESOLVE_TEMPFAIL,	/* a table could not be read */
};

struct resolution {
	enum resolution_kind kind;
	char key[ADDR_BUFFER];
	char value[TABLE_VALUE_MAX];
	const char *failed_table;	/* for TEMPFAIL: which one */
	const char *hint;		/* for TEMPFAIL: what the administrator should do */
};

struct recipient_tables {
	const struct tern_conf *conf;
	struct table domains, mailboxes, aliases;
};

void recipient_tables_init(struct recipient_tables *t, const struct tern_conf *c);
void recipient_tables_close(struct recipient_tables *t);

void recipient_resolve(struct recipient_tables *t, const struct mailbox *m,
		       struct resolution *out);

/* The first domain in `domains`, for bare postmaster; 0 if found. */
int recipient_first_domain(struct recipient_tables *t, char *out, size_t outsize);

#endif
