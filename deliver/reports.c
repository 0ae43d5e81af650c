#include "reports.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "deliver.h"
#include "dispatch.h"
#include "dsn.h"
#include "log.h"
#include "route.h"
#include "spool.h"

#define DOUBLE_BOUNCE_SENDER "#@[]"

struct report_job *free_report(struct deliver *d)
{
	for (size_t i = 0; i < REPORTS_MAX; i++)
		if (d->reports[i].msg == NULL)
			return &d->reports[i];
	return NULL;
}

/* The recipients one DSN reports on, with their status codes. */
struct report {
	struct dsn_rcpt *rcpts;
	char (*codes)[16];
	size_t *index;		/* each one's place in the message */
	size_t n;
};

static bool is_failed(const struct rcpt_record *r)
{
	return r->state == RCPT_FAILED;
}

static bool needs_delay_warning(const struct rcpt_record *r)
{
	return r->state == RCPT_DEFERRED && !r->warned;
}

/* Gathers the recipients of M that WANTED picks; -1 if out of memory. */
static int report_gather(struct report *rep, const struct message *m,
			 bool (*wanted)(const struct rcpt_record *), const char *default_status,
			 time_t now)
{
	rep->n = 0;
	rep->rcpts = calloc(m->n, sizeof *rep->rcpts);
	rep->codes = calloc(m->n, sizeof *rep->codes);
	rep->index = calloc(m->n, sizeof *rep->index);
	if (rep->rcpts == NULL || rep->codes == NULL || rep->index == NULL)
		return -1;
	for (size_t i = 0; i < m->n; i++) {
		const struct rcpt_record *r = &m->rcpts[i];
		if (!wanted(r))
			continue;
		struct dsn_rcpt *out = &rep->rcpts[rep->n];
		out->addr = r->addr;
		out->orcpt = r->orcpt;
		out->diagnostic = dsn_split_status(r->last_error, default_status, rep->codes[rep->n]);
		out->status = rep->codes[rep->n];
		out->last_attempt = now;
		rep->index[rep->n++] = i;
	}
	return 0;
}

static void report_free(struct report *rep)
{
	free(rep->rcpts);
	free(rep->codes);
	free(rep->index);
}

/* The report on REP's recipients of M, written whole into a memory file,
 * so that tern-queue never waits for this process nor this process for it. */
static int report_file(struct deliver *d, struct message *m, const char *to,
		       const struct report *rep, bool delayed)
{
	int original = spool_open_message(d->conf.spool, SPOOL_QUEUE, m->id, m->format, m->msglen);
	if (original < 0)
		return -1;
	int report = memfd_create("tern-report", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	struct dsn_info info = {
		.hostname = d->conf.hostname, .queue_id = m->id, .to = to,
		.arrival = m->queued, .delayed = delayed,
	};
	int r = report < 0 ? -1 : dsn_write(report, &info, rep->rcpts, rep->n, original,
					    m->msglen, d->conf.bounce_max_size);
	close(original);
	if (r == 0 && lseek(report, 0, SEEK_SET) == 0)
		return report;
	if (report >= 0)
		close(report);
	return -1;
}

/* Hands the report on REP's recipients of M from FROM to TO to tern-queue;
 * the job holds M (in flight) until tern-queue confirms or fails.  REP's
 * index moves to the job.  -1 if it could not start. */
static int start_report(struct deliver *d, struct report_job *job, struct message *m,
			const char *from, const char *to, struct report *rep, bool delayed,
			const char *outcome)
{
	struct queue_target target = {
		.program = d->queue_program, .config = d->conf.path, .qid = NULL,
		.timeout = d->conf.queue_timeout,
		.socket = d->conf.queue_socket, .spool = d->conf.spool,
	};
	size_t envlen;
	char *envelope = queue_envelope(from, (char *[]){ (char *)to }, 1, &envlen);
	int report = envelope == NULL ? -1 : report_file(d, m, to, rep, delayed);
	int r = report < 0 ? -1 : queue_submit(&job->q, &target, report, envelope, envlen);

	free(envelope);
	if (report >= 0)
		close(report);
	if (r < 0)
		return -1;
	job->msg = m;
	job->rcpts = rep->index;
	job->n = rep->n;
	job->delayed = delayed;
	job->outcome = outcome;
	rep->index = NULL;
	m->inflight++;
	return 0;
}

/* Reports every FAILED recipient of M in one DSN, which marks them BOUNCED
 * once tern-queue has it (finish_report). */
void send_bounces(struct deliver *d, struct message *m, time_t now)
{
	struct report rep;
	struct report_job *job = free_report(d);

	if (strcmp(m->sender, DOUBLE_BOUNCE_SENDER) == 0) {
		/* a failed report to the postmaster: the end */
		for (size_t i = 0; i < m->n; i++)
			if (is_failed(&m->rcpts[i]))
				mark_bounced(d, m, &m->rcpts[i], "dropped");
		return;
	}
	if (job == NULL)
		return;	/* all busy: the next to finish brings it back here */
	if (report_gather(&rep, m, is_failed, "5.0.0", now) < 0) {
		report_free(&rep);
		for (size_t i = 0; i < m->n; i++)
			if (is_failed(&m->rcpts[i]))
				m->rcpts[i].next_try = now + d->conf.retry_first;
		return;
	}
	char postmaster[ADDR_BUFFER + 16];
	const char *to = m->sender, *from = "", *outcome = "dsn";
	if (m->sender[0] == '\0' || m->sender_refused) {
		postmaster_address(d, postmaster, sizeof postmaster);
		to = postmaster;
		from = DOUBLE_BOUNCE_SENDER;
		outcome = "postmaster";
	}
	if (start_report(d, job, m, from, to, &rep, false, outcome) < 0) {
		log_event("error", "id=%s what=bounce error=%s", m->id, "cannot start tern-queue");
		for (size_t i = 0; i < rep.n; i++)
			m->rcpts[rep.index[i]].next_try = now + d->conf.retry_first;
	}
	report_free(&rep);
}

/* delay_warning: tells the sender once about recipients still deferred
 * after delay_warning_after.  Reports never get one. */
void send_delay_warnings(struct deliver *d, struct message *m, time_t now)
{
	struct report_job *job;

	if (!d->conf.delay_warning || m->sender[0] == '\0' ||
	    strcmp(m->sender, DOUBLE_BOUNCE_SENDER) == 0 ||
	    now - m->queued < (time_t)d->conf.delay_warning_after ||
	    (job = free_report(d)) == NULL)
		return;
	struct report rep;
	if (report_gather(&rep, m, needs_delay_warning, "4.0.0", now) == 0 && rep.n > 0)
		start_report(d, job, m, "", m->sender, &rep, true, "delay_warning");
	report_free(&rep);
}

/* tern-queue has answered JOB with OUTCOME (queue_check's). */
static void finish_report(struct deliver *d, struct report_job *job, int outcome, time_t now)
{
	struct message *m = job->msg;

	if (outcome != 0)
		log_event("error", "id=%s what=%s error=%s", m->id,
			  job->delayed ? "delay_warning" : "bounce",
			  outcome == QUEUE_TIMED_OUT ? "tern-queue timed out"
						     : "tern-queue refused the report");
	/* A bounce the queue can never take (a sender tern-queue refuses)
	 * goes to the postmaster instead; one the postmaster's cannot, ends. */
	bool permanent = queue_refused_permanently(&job->q, outcome);
	bool never = !job->delayed && permanent;
	bool to_postmaster = strcmp(job->outcome, "postmaster") == 0;
	if (never && !to_postmaster)
		m->sender_refused = true;
	for (size_t i = 0; i < job->n; i++) {
		struct rcpt_record *r = &m->rcpts[job->rcpts[i]];
		if (never && to_postmaster && r->state == RCPT_FAILED) {
			mark_bounced(d, m, r, "dropped");
		} else if (never && r->state == RCPT_FAILED) {
			r->next_try = now;
		} else if (job->delayed && (outcome == 0 || permanent)) {
			r->warned = true;	/* a refused one is not tried again */
			m->dirty = true;
			if (outcome == 0)
				log_event("delay_warning", "id=%s rcpt=%s", m->id, r->addr);
		} else if (!job->delayed && r->state == RCPT_FAILED) {
			if (outcome == 0)
				mark_bounced(d, m, r, job->outcome);
			else
				r->next_try = now + d->conf.retry_first;
		}
	}
	free(job->rcpts);
	job->rcpts = NULL;
	job->msg = NULL;
	m->inflight--;
	settle(d, m, now);
}

void check_reports(struct deliver *d, time_t now)
{
	bool finished_any = false;

	for (size_t i = 0; i < REPORTS_MAX; i++) {
		struct report_job *job = &d->reports[i];
		if (job->msg == NULL)
			continue;
		int outcome = queue_check(&job->q);
		if (outcome != QUEUE_PENDING) {
			finish_report(d, job, outcome, now);
			finished_any = true;
		}
	}
	if (finished_any)
		wake_report_waiters(d, now);
}

int reports_timeout(const struct deliver *d)
{
	int wait = -1;

	for (size_t i = 0; i < REPORTS_MAX; i++) {
		if (d->reports[i].msg == NULL)
			continue;
		int left = queue_remaining_ms(&d->reports[i].q);
		if (wait < 0 || left < wait)
			wait = left;
	}
	return wait;
}
