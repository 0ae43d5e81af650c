#include "route.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "deliver.h"
#include "dispatch.h"
#include "log.h"
#include "recipient.h"
#include "tables.h"
#include "util.h"

#define ALIAS_HOPS_MAX 10

void postmaster_address(struct deliver *d, char *out, size_t size)
{
	char first[ADDR_DOMAIN_MAX + 1];

	if (recipient_first_domain(&d->tables, first, sizeof first) == 0)
		snprintf(out, size, "postmaster@%s", first);
	else
		snprintf(out, size, "postmaster");
}

/* Is ADDR already a destination of M (not counting aliases, which are
 * only ways there, nor the alias at EXCEPT being expanded)?  Aliases never
 * count, so a loop keeps expanding until ALIAS_HOPS_MAX stops it. */
static bool already_present(struct message *m, const char *addr, size_t except)
{
	for (size_t i = 0; i < m->n; i++)
		if (i != except && m->rcpts[i].state != RCPT_EXPANDED &&
		    strcasecmp(m->rcpts[i].addr, addr) == 0)
			return true;
	return false;
}

/* Replaces alias recipient R with its targets. */
static void expand_alias(struct deliver *d, struct message *m, size_t ri, const char *list)
{
	char target[TABLE_VALUE_MAX], expanded[TABLE_VALUE_MAX] = "";
	char postmaster[ADDR_BUFFER + 16];
	unsigned hops = m->rcpts[ri].hops + 1;

	if (hops > ALIAS_HOPS_MAX) {
		fail(m, &m->rcpts[ri], "5.4.6 alias loop: too many alias expansions");
		return;
	}
	/* a list from the table fits TARGET whole: no item is cut short */
	while (addr_list_next(&list, target, sizeof target) > 0) {
		char *item = target;
		if (item[0] == '\0')
			continue;
		if (strcasecmp(item, "postmaster") == 0) {
			postmaster_address(d, postmaster, sizeof postmaster);
			item = postmaster;
		}
		if (already_present(m, item, ri))
			continue;
		/* add_rcpt may move m->rcpts: keep no pointer across it */
		char orcpt[ADDR_BUFFER + 16];
		str_copy(orcpt, sizeof orcpt, m->rcpts[ri].orcpt);
		if (add_rcpt(m, item, orcpt, hops) < 0) {
			log_event("error", "id=%s what=memory", m->id);
			return;
		}
		/* a summary for the log: cut short, it still names the first targets */
		size_t len = strlen(expanded);
		if (snprintf(expanded + len, sizeof expanded - len, "%s%s", len ? "," : "", item) < 0)
			expanded[len] = '\0';
	}
	struct rcpt_record *r = &m->rcpts[ri];
	r->state = RCPT_EXPANDED;
	snprintf(r->last_error, sizeof r->last_error, "expanded to %s", expanded[0] ? expanded : "(already listed)");
	m->dirty = true;
	log_event("expanded", "id=%s rcpt=%s to=%s", m->id, r->addr, expanded);
}

static bool parse_recipient(const char *addr, struct mailbox *mb)
{
	if (addr_parse(addr, mb) == ADDR_OK)
		return true;
	if (strchr(addr, '@') == NULL && strcasecmp(addr, "postmaster") == 0) {
		memset(mb, 0, sizeof *mb);
		str_copy(mb->local, sizeof mb->local, "postmaster");
		return true;
	}
	return false;
}

/* One due recipient: route it.  False when no local slot is left. */
bool route(struct deliver *d, struct message *m, size_t ri, time_t now)
{
	struct rcpt_record *r = &m->rcpts[ri];
	struct mailbox mb;
	struct resolution res;
	char line[SPOOL_ERROR_MAX];

	if (!parse_recipient(r->addr, &mb)) {
		fail(m, r, "5.1.3 bad recipient address syntax");
		return true;
	}
	recipient_resolve(&d->tables, &mb, &res);
	switch (res.kind) {
	case RESOLVE_MAILBOX:
	case RESOLVE_SYSTEM:
		if (local_agents_full(d->agents))
			return false;
		deliver_locally(d, m, ri, &res);
		return true;
	case RESOLVE_ALIAS:
		expand_alias(d, m, ri, res.value);
		return true;
	case RESOLVE_REMOTE:
		defer(d, m, r, "4.4.0 remote delivery is not available: tern-remote is not installed",
		      now);
		return true;
	case RESOLVE_UNKNOWN:
		fail(m, r, "5.1.1 no such user here");
		return true;
	case RESOLVE_POSTMASTER:
		defer(d, m, r, "4.3.0 no mailbox or alias for postmaster; add one to aliases", now);
		return true;
	case RESOLVE_TEMPFAIL:
		snprintf(line, sizeof line, "4.3.0 table %s unreadable; %s", res.failed_table,
			 res.hint);
		log_event("table_error", "table=%s hint=%s", res.failed_table, res.hint);
		tables_failed(d);	/* opened anew at the next pass */
		defer(d, m, r, line, now);
		return true;
	}
	return true;
}
