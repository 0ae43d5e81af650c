#include "dispatch.h"

#include <limits.h>
#include <stdlib.h>

#include "deliver.h"
#include "route.h"
#include "util.h"

/* What a local delivery under way comes back to. */
struct delivery_ticket {
	struct delivery_ticket *next;
	struct message *msg;
	size_t rcpt;
	char target[PATH_MAX];
};

void deliver_locally(struct deliver *d, struct message *m, size_t ri,
		     const struct resolution *res)
{
	const char *why = NULL;
	struct delivery_ticket *ticket = calloc(1, sizeof *ticket);

	if (ticket == NULL) {
		defer(d, m, &m->rcpts[ri], "4.3.0 cannot start tern-local", time(NULL));
		return;
	}
	ticket->msg = m;
	ticket->rcpt = ri;
	str_copy(ticket->target, sizeof ticket->target, res->value);
	struct local_delivery delivery = {
		.spool = d->conf.spool, .id = m->id, .format = m->format, .msglen = m->msglen,
		.maildir = res->value,
		.login = res->kind == RESOLVE_SYSTEM ? res->key : NULL,
		.rcpt = m->rcpts[ri].addr, .sender = m->sender,
	};
	if (local_agents_start(d->agents, &delivery, ticket, &why) < 0) {
		free(ticket);
		if (why != NULL)
			defer(d, m, &m->rcpts[ri], why, time(NULL));
		return;
	}
	ticket->next = d->tickets;
	d->tickets = ticket;
	m->inflight++;
}

static void forget_ticket(struct deliver *d, struct delivery_ticket *ticket)
{
	for (struct delivery_ticket **p = &d->tickets; *p; p = &(*p)->next)
		if (*p == ticket) {
			*p = ticket->next;
			break;
		}
	free(ticket);
}

static void delivery_done(void *ctx, void *cookie, enum local_outcome outcome, const char *text)
{
	struct deliver *d = ctx;
	struct delivery_ticket *ticket = cookie;
	struct message *m = ticket->msg;
	struct rcpt_record *r = &m->rcpts[ticket->rcpt];
	time_t now = time(NULL);

	if (outcome == LOCAL_DELIVERED)
		delivered(d, m, r, ticket->target);
	else if (outcome == LOCAL_PERMANENT)
		fail(m, r, text);
	else if (r->state != RCPT_HELD && r->state != RCPT_FAILED)
		/* (held or returned by a request while this delivery ran: kept) */
		defer(d, m, r, text, now);
	forget_ticket(d, ticket);
	m->inflight--;
	settle(d, m, now);
}

void collect_deliveries(struct deliver *d)
{
	local_agents_collect(d->agents, delivery_done, d);
}

void drop_tickets(struct deliver *d)
{
	for (struct delivery_ticket *t = d->tickets, *next; t; t = next) {
		next = t->next;
		free(t);
	}
	d->tickets = NULL;
}

static bool due(const struct rcpt_record *r, time_t now)
{
	return (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED) && r->next_try <= now;
}

static bool in_flight(const struct deliver *d, const struct message *m, size_t ri)
{
	for (const struct delivery_ticket *t = d->tickets; t; t = t->next)
		if (t->msg == m && t->rcpt == ri)
			return true;
	return false;
}

void dispatch(struct deliver *d, time_t now)
{
	/* Tables may have been recompiled: look again at each pass. */
	recipient_tables_close(&d->tables);
	for (struct message *m = d->store.head, *next; m; m = next) {
		next = m->next;
		bool touched = false;
		for (size_t i = 0; i < m->n && !d->stopping && !m->doomed; i++) {
			if (!due(&m->rcpts[i], now) || (m->inflight && in_flight(d, m, i)))
				continue;
			if (!route(d, m, i, now))
				return;
			touched = true;
		}
		bool failed_due = false;
		for (size_t i = 0; i < m->n; i++)
			if (m->rcpts[i].state == RCPT_FAILED && m->rcpts[i].next_try <= now)
				failed_due = true;
		bool open = false;
		for (size_t i = 0; i < m->n && !open; i++)
			open = !finished(m->rcpts[i].state);
		if (touched || failed_due || m->doomed || !open)
			settle(d, m, now);
	}
}

int sooner(int a, int b)
{
	if (a < 0)
		return b;
	return b < 0 || a < b ? a : b;
}

int next_timeout(struct deliver *d, time_t now)
{
	time_t wake = d->next_cleanup < d->next_scan ? d->next_cleanup : d->next_scan;

	for (struct message *m = d->store.head; m; m = m->next) {
		for (size_t i = 0; i < m->n; i++) {
			const struct rcpt_record *r = &m->rcpts[i];
			bool waiting = r->state == RCPT_PENDING || r->state == RCPT_DEFERRED ||
				       (r->state == RCPT_FAILED && m->inflight == 0 &&
					free_report(d) != NULL);
			if (waiting && !in_flight(d, m, i) && r->next_try < wake)
				wake = r->next_try;
		}
	}
	if (d->counters.changed && d->counters.written + COUNTERS_INTERVAL < wake)
		wake = d->counters.written + COUNTERS_INTERVAL;
	int timeout;
	if (wake <= now)
		timeout = local_agents_full(d->agents) ? -1 : 0;
	else
		timeout = wake - now > 3600 ? 3600 * 1000 : (int)((wake - now) * 1000);
	timeout = sooner(timeout, local_agents_timeout_ms(d->agents));
	return sooner(timeout, reports_timeout(d));
}
