#include "dispatch.h"

#include <limits.h>
#include <stdlib.h>

#include "deliver.h"
#include "route.h"
#include "tables.h"
#include "util.h"

/* What a local delivery under way comes back to. */
struct delivery_ticket {
	struct message *msg;
	size_t rcpt;
	char target[PATH_MAX];
};

void deliver_locally(struct deliver *d, struct message *m, size_t ri,
		     const struct resolution *res)
{
	const char *why = NULL;
	struct delivery_ticket *ticket = calloc(1, sizeof *ticket);

	if (ticket == NULL || set_delivering(m, ri, true) < 0) {
		free(ticket);
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
		set_delivering(m, ri, false);
		if (why != NULL)
			defer(d, m, &m->rcpts[ri], why, time(NULL));
		return;
	}
	m->inflight++;
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
	set_delivering(m, ticket->rcpt, false);
	free(ticket);
	m->inflight--;
	settle(d, m, now);
}

void collect_deliveries(struct deliver *d)
{
	local_agents_collect(d->agents, delivery_done, d);
}

static bool due(const struct rcpt_record *r, time_t now)
{
	return (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED) && r->next_try <= now;
}

void schedule(struct deliver *d, struct message *m, time_t now)
{
	bool any = false, bounce_waits = false;
	time_t wake = 0;

	for (size_t i = 0; i < m->n && !m->doomed; i++) {
		const struct rcpt_record *r = &m->rcpts[i];
		bool waiting = (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED) &&
			       !is_delivering(m, i);
		if (r->state == RCPT_FAILED && m->inflight == 0) {
			/* its bounce: when a report job is free to take it */
			if (r->next_try <= now && free_report(d) == NULL)
				bounce_waits = true;
			else
				waiting = true;
		}
		if (waiting && (!any || r->next_try < wake)) {
			wake = r->next_try;
			any = true;
		}
	}
	if (bounce_waits)
		wait_for_report(&d->store, m);
	if (any)
		schedule_message(&d->store, m, wake);
	else
		unschedule_message(&d->store, m);
}

void wake_report_waiters(struct deliver *d, time_t now)
{
	size_t free_jobs = 0;

	for (size_t i = 0; i < REPORTS_MAX; i++)
		free_jobs += d->reports[i].msg == NULL;
	struct message *m;
	while (free_jobs-- > 0 && (m = take_waiting(&d->store)) != NULL)
		schedule(d, m, now);
}

/* Routes M's due recipients.  False when no local agent is left. */
static bool dispatch_message(struct deliver *d, struct message *m, time_t now)
{
	bool touched = false;

	for (size_t i = 0; i < m->n && !d->stopping && !m->doomed; i++) {
		if (!due(&m->rcpts[i], now) || is_delivering(m, i))
			continue;
		if (!route(d, m, i, now)) {
			schedule(d, m, now);
			return false;
		}
		touched = true;
	}
	bool failed_due = false;
	for (size_t i = 0; i < m->n; i++)
		if (m->rcpts[i].state == RCPT_FAILED && m->rcpts[i].next_try <= now)
			failed_due = true;
	bool open = false;
	for (size_t i = 0; i < m->n && !open; i++)
		open = !finished(m->rcpts[i].state);
	bool kept = true;
	if (touched || failed_due || m->doomed || !open)
		kept = settle(d, m, now);
	else
		schedule(d, m, now);
	/* still due now, it had nothing it could do (a start that could not
	 * even be tried): not again this second */
	if (kept && heap_contains(&m->wake) && m->wake.when <= now)
		schedule_message(&d->store, m, now + 1);
	return true;
}

void dispatch(struct deliver *d, time_t now)
{
	struct message *m;

	tables_refresh(d);
	take_from_backlog(d, now);
	while ((m = next_due(&d->store, now)) != NULL) {
		if (!dispatch_message(d, m, now))
			return;
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
	time_t first;

	if (first_wake(&d->store, &first) && first < wake)
		wake = first;
	bool read_now = false;	/* a read from the backlog needs no agent */
	if (backlog_due(d, &first)) {
		if (first <= now)
			read_now = true;
		else if (first < wake)
			wake = first;
	}
	if (d->counters.changed && d->counters.written + COUNTERS_INTERVAL < wake)
		wake = d->counters.written + COUNTERS_INTERVAL;
	int timeout;
	if (read_now)
		timeout = 0;
	else if (wake <= now)
		timeout = local_agents_full(d->agents) ? -1 : 0;
	else
		timeout = wake - now > 3600 ? 3600 * 1000 : (int)((wake - now) * 1000);
	timeout = sooner(timeout, local_agents_timeout_ms(d->agents));
	return sooner(timeout, reports_timeout(d));
}
