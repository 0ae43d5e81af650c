#include "outcome.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "deliver.h"
#include "dispatch.h"
#include "dsn.h"
#include "log.h"
#include "schedule.h"
#include "util.h"

void count(struct deliver *d, unsigned long long *counter)
{
	(*counter)++;
	d->counters.changed = true;
}

void read_counters(struct deliver *d)
{
	char path[PATH_MAX], name[32];
	unsigned long long value;

	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_CONTROL, "counters") < 0)
		return;
	int fd = spool_open(path);
	if (fd == SPOOL_NOT_REGULAR)
		log_event("error", "what=open path=%s error=\"not a regular file; skipped\"", path);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while (fscanf(f, "%31s %llu", name, &value) == 2) {
		if (strcmp(name, "delivered") == 0)
			d->counters.delivered = value;
		else if (strcmp(name, "deferred") == 0)
			d->counters.deferred = value;
		else if (strcmp(name, "bounced") == 0)
			d->counters.bounced = value;
	}
	fclose(f);
}

void write_counters(struct deliver *d, time_t now, bool force)
{
	char path[PATH_MAX], text[128];

	if (!d->counters.changed || (!force && now - d->counters.written < COUNTERS_INTERVAL))
		return;
	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_CONTROL, "counters") < 0)
		return;
	int len = snprintf(text, sizeof text, "delivered %llu\ndeferred %llu\nbounced %llu\n",
			   d->counters.delivered, d->counters.deferred, d->counters.bounced);
	if (len > 0 && (size_t)len < sizeof text &&
	    atomic_replace(path, NULL, text, (size_t)len, 0600) == 0) {
		d->counters.changed = false;
		d->counters.written = now;
	}
}

void fail(struct message *m, struct rcpt_record *r, const char *line)
{
	r->state = RCPT_FAILED;
	r->next_try = 0;
	str_copy(r->last_error, sizeof r->last_error, line);
	m->dirty = true;
}

void defer(struct deliver *d, struct message *m, struct rcpt_record *r, const char *line,
	   time_t now)
{
	r->attempts++;
	if (lifetime_over(m->queued, now, d->conf.queue_lifetime)) {
		char text[SPOOL_ERROR_MAX];
		const char *reason = line;
		char status[16];
		reason = dsn_split_status(line, "4.0.0", status);
		snprintf(text, sizeof text, "4.4.7 queue lifetime exceeded; last error: %s", reason);
		fail(m, r, text);
		return;
	}
	unsigned delay = retry_delay(r->attempts, d->conf.retry_first, d->conf.retry_max,
				     (unsigned)random());
	r->state = RCPT_DEFERRED;
	r->next_try = now + delay;
	str_copy(r->last_error, sizeof r->last_error, line);
	m->dirty = true;
	count(d, &d->counters.deferred);
	log_event("deferred", "id=%s rcpt=%s delay_s=%lld retry_s=%u reason=%s", m->id, r->addr,
		  (long long)(now - m->queued), delay, line);
}

void delivered(struct deliver *d, struct message *m, struct rcpt_record *r, const char *target)
{
	r->state = RCPT_DELIVERED;
	r->last_error[0] = '\0';
	m->dirty = true;
	count(d, &d->counters.delivered);
	log_event("delivered", "id=%s rcpt=%s to=%s", m->id, r->addr, target);
}

void mark_bounced(struct deliver *d, struct message *m, struct rcpt_record *r,
		  const char *outcome)
{
	r->state = RCPT_BOUNCED;
	m->dirty = true;
	count(d, &d->counters.bounced);
	log_event("bounced", "id=%s rcpt=%s report=%s reason=%s", m->id, r->addr, outcome,
		  r->last_error);
}

/* After a round: bounce what failed, remove what is done, record the
 * rest.  False if M is gone. */
static bool settle_message(struct deliver *d, struct message *m, time_t now)
{
	bool failed = false, open = false;

	if (m->inflight > 0)
		return true;
	if (m->doomed) {
		log_event("deleted", "id=%s", m->id);
		remove_message(&d->store, d->conf.spool, m);
		return false;
	}
	for (size_t i = 0; i < m->n; i++) {
		enum rcpt_state s = m->rcpts[i].state;
		if (s == RCPT_FAILED && m->rcpts[i].next_try <= now)
			failed = true;
		if (!finished(s))
			open = true;
	}
	if (failed) {
		if (m->dirty && record_state(d, m) == 0)
			m->dirty = false;
		if (m->doomed) {	/* taken back by its commit: no report */
			remove_message(&d->store, d->conf.spool, m);
			return false;
		}
		send_bounces(d, m, now);
		if (m->inflight > 0)
			return true;	/* its report's end settles it again */
		open = false;
		for (size_t i = 0; i < m->n; i++)
			if (!finished(m->rcpts[i].state))
				open = true;
	}
	if (!open) {
		remove_message(&d->store, d->conf.spool, m);
		return false;
	}
	send_delay_warnings(d, m, now);
	if (m->dirty) {
		if (record_state(d, m) == 0) {
			m->dirty = false;
		} else if (m->doomed) {	/* taken back by its commit (logged) */
			remove_message(&d->store, d->conf.spool, m);
			return false;
		} else {
			log_event("error", "id=%s what=state error=%s", m->id, strerror(errno));
		}
	}
	return true;
}

bool settle(struct deliver *d, struct message *m, time_t now)
{
	if (!settle_message(d, m, now))
		return false;
	schedule(d, m, now);
	return !evict_if_idle(d, m, now);
}
