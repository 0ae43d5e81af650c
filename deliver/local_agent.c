#include "local_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "local_protocol.h"
#include "log.h"
#include "packet.h"
#include "spawner.h"
#include "spool.h"
#include "util.h"

/* Deliveries one worker holds at once; more for the same login or
 * Maildir go to a further worker.  A worker writes and fsyncs its files
 * one after another, so a few workers side by side (their fsyncs
 * overlapping) drained a burst to one Maildir faster than one worker
 * holding all of local_concurrency; each still shares one fsync of new/
 * among the deliveries it holds. */
#define WORKER_INFLIGHT_MAX 4
#define WHY_MAX 512
#define KEY_MAX (PATH_MAX + 16)

/* A delivery handed to a worker and not yet reported. */
struct job {
	uint64_t id;
	void *cookie;
	struct job *next;
};

/* One tern-local worker: SOCK -1 when the place is free. */
struct worker {
	int sock;
	pid_t pid;
	char key[KEY_MAX];	/* "login NAME" or "maildir PATH": whom it serves */
	struct job *jobs;
	size_t held;		/* jobs */
	unsigned long handed;	/* deliveries handed to it in all */
	bool retiring;		/* takes no more: it said bye, or has had its share */
	int64_t progress_ms;	/* its last report, or the hand-over that woke it */
};

struct local_agents {
	struct spawner spawner;
	bool changes_identity;
	unsigned timeout_s;
	struct worker *workers;	/* NWORKERS places, one per delivery at most */
	size_t nworkers;
	size_t busy;		/* deliveries in flight, over all workers */
	uint64_t next_id;
	char why[WHY_MAX];	/* local_agents_start's last reason */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct local_agents *local_agents_new(const struct tern_conf *conf, const char *program,
				      bool changes_identity, unsigned concurrency)
{
	struct local_agents *agents = calloc(1, sizeof *agents);

	if (agents == NULL)
		return NULL;
	agents->nworkers = concurrency > 0 ? concurrency : 1;
	agents->workers = calloc(agents->nworkers, sizeof *agents->workers);
	if (agents->workers == NULL) {
		free(agents);
		return NULL;
	}
	for (size_t i = 0; i < agents->nworkers; i++)
		agents->workers[i].sock = -1;
	agents->changes_identity = changes_identity;
	agents->timeout_s = conf->local_timeout;
	agents->next_id = 1;
	if (spawner_start(&agents->spawner, program, changes_identity) < 0) {
		free(agents->workers);
		free(agents);
		return NULL;
	}
	return agents;
}

bool local_agents_full(const struct local_agents *agents)
{
	return agents->busy >= agents->nworkers;
}

bool local_agents_idle(const struct local_agents *agents)
{
	return agents->busy == 0;
}

/* ---- workers ---- */

static void close_worker(struct worker *w)
{
	close(w->sock);
	w->sock = -1;
	w->pid = 0;
	w->key[0] = '\0';
}

/* Every delivery W held comes back TEMPORARY with WHY; W is closed. */
static void fail_worker(struct local_agents *agents, struct worker *w, const char *why,
			local_done_fn *done, void *ctx)
{
	struct job *jobs = w->jobs;

	w->jobs = NULL;
	agents->busy -= w->held;
	w->held = 0;
	close_worker(w);
	for (struct job *j = jobs, *next; j; j = next) {
		next = j->next;
		void *cookie = j->cookie;
		free(j);
		done(ctx, cookie, LOCAL_TEMPORARY, why);
	}
}

static void kill_worker(struct local_agents *agents, struct worker *w, const char *reason,
			const char *why, local_done_fn *done, void *ctx)
{
	log_event("worker_killed", "pid=%ld for=%s reason=%s held=%zu", (long)w->pid, w->key,
		  reason, w->held);
	spawner_kill(&agents->spawner, w->pid);
	fail_worker(agents, w, why, done, ctx);
}

static struct worker *find_worker(struct local_agents *agents, const char *key)
{
	for (size_t i = 0; i < agents->nworkers; i++) {
		struct worker *w = &agents->workers[i];
		if (w->sock >= 0 && !w->retiring && w->held < WORKER_INFLIGHT_MAX &&
		    strcmp(w->key, key) == 0)
			return w;
	}
	return NULL;
}

/* A free place, closing an idle worker of another identity if need be
 * (there is one: each worker that holds something holds a delivery, and
 * fewer than NWORKERS are in flight). */
static struct worker *free_place(struct local_agents *agents)
{
	struct worker *idle = NULL;

	for (size_t i = 0; i < agents->nworkers; i++) {
		struct worker *w = &agents->workers[i];
		if (w->sock < 0)
			return w;
		if (w->held == 0 && idle == NULL)
			idle = w;
	}
	if (idle != NULL)
		close_worker(idle);
	return idle;
}

static struct worker *new_worker(struct local_agents *agents, const struct local_delivery *dl,
				 const char *key)
{
	struct worker *w = free_place(agents);
	int sock;
	pid_t pid;

	if (w == NULL) {
		snprintf(agents->why, sizeof agents->why, "4.3.0 no place for a tern-local worker");
		return NULL;
	}
	if (spawner_local_worker(&agents->spawner, dl->login, dl->maildir, &sock, &pid,
				 agents->why, sizeof agents->why) < 0)
		return NULL;
	fd_nonblock(sock);
	memset(w, 0, sizeof *w);
	w->sock = sock;
	w->pid = pid;
	str_copy(w->key, sizeof w->key, key);
	log_event("worker_start", "pid=%ld kind=local for=%s", (long)pid, key);
	return w;
}

/* The message a worker reads, LENGTH octets from offset 0: mess/ID, the
 * message alone (TERN2).  A message queued before mess/ (TERN1) has its
 * envelope after it, which names every recipient, Bcc too: a worker that
 * runs as someone else gets a copy of the message alone (a memfd).  This
 * is the one place that changes once no TERN1 file is left to deliver. */
static int message_for_worker(const struct local_agents *agents,
			      const struct local_delivery *dl)
{
	int message = spool_open_message(dl->spool, SPOOL_QUEUE, dl->id, dl->format, dl->msglen);
	if (message < 0 || dl->format == SPOOL_FORMAT_V2 || !agents->changes_identity)
		return message;
	int copy = memfd_create("tern-message", MFD_CLOEXEC);
	off_t offset = 0;
	while (copy >= 0 && (uint64_t)offset < dl->msglen) {
		ssize_t n = sendfile(copy, message, &offset, (size_t)(dl->msglen - (uint64_t)offset));
		if (n <= 0) {
			close(copy);
			copy = -1;
		}
	}
	close(message);
	return copy;
}

static int hand_over(struct local_agents *agents, struct worker *w,
		     const struct local_delivery *dl, void *cookie)
{
	char packet[LOCAL_REQUEST_MAX];
	struct job *job = malloc(sizeof *job);
	struct local_request req = { .id = agents->next_id, .length = dl->msglen,
				     .maildir = dl->maildir, .recipient = dl->rcpt,
				     .sender = dl->sender };

	ssize_t n = local_request_encode(packet, sizeof packet, &req);
	if (job == NULL || n < 0) {
		free(job);
		snprintf(agents->why, sizeof agents->why, "4.3.0 the delivery does not fit a request");
		return -1;
	}
	int message = message_for_worker(agents, dl);
	if (message < 0) {
		free(job);
		snprintf(agents->why, sizeof agents->why, "4.3.0 cannot open the queued message");
		return -1;
	}
	int sent = packet_send(w->sock, packet, (size_t)n, message);
	int saved = errno;
	close(message);
	if (sent < 0) {
		free(job);
		snprintf(agents->why, sizeof agents->why,
			 "4.3.0 cannot hand the delivery to tern-local: %s", strerror(saved));
		w->retiring = true;	/* its end is gone, or it takes nothing in */
		return -1;
	}
	job->id = agents->next_id++;
	job->cookie = cookie;
	job->next = w->jobs;
	w->jobs = job;
	if (w->held++ == 0)
		w->progress_ms = now_ms();
	if (++w->handed >= LOCAL_WORKER_DELIVERIES_MAX)
		w->retiring = true;
	agents->busy++;
	return 0;
}

int local_agents_start(struct local_agents *agents, const struct local_delivery *delivery,
		       void *cookie, const char **why)
{
	char key[KEY_MAX];

	*why = NULL;
	if (local_agents_full(agents))
		return -1;
	snprintf(key, sizeof key, "%s %s", delivery->login ? "login" : "maildir",
		 delivery->login ? delivery->login : delivery->maildir);
	struct worker *w = find_worker(agents, key);
	if (w == NULL)
		w = new_worker(agents, delivery, key);
	if (w == NULL || hand_over(agents, w, delivery, cookie) < 0) {
		*why = agents->why;
		return -1;
	}
	return 0;
}

size_t local_agents_pollfds(struct local_agents *agents, struct pollfd *fds, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < agents->nworkers && n < max; i++)
		if (agents->workers[i].sock >= 0)
			fds[n++] = (struct pollfd){ .fd = agents->workers[i].sock, .events = POLLIN };
	return n;
}

static int64_t deadline_ms(const struct local_agents *agents, const struct worker *w)
{
	return w->progress_ms + (int64_t)agents->timeout_s * 1000;
}

int local_agents_timeout_ms(const struct local_agents *agents)
{
	int64_t now = now_ms(), soonest = -1;

	for (size_t i = 0; i < agents->nworkers; i++) {
		const struct worker *w = &agents->workers[i];
		if (w->sock < 0 || w->held == 0)
			continue;
		int64_t left = deadline_ms(agents, w) - now;
		if (left < 0)
			left = 0;
		if (soonest < 0 || left < soonest)
			soonest = left;
	}
	return soonest > INT_MAX ? INT_MAX : (int)soonest;
}

/* The job ID that W holds, taken off its list; NULL if W holds none such. */
static struct job *take_job(struct worker *w, uint64_t id)
{
	for (struct job **p = &w->jobs; *p; p = &(*p)->next)
		if ((*p)->id == id) {
			struct job *job = *p;
			*p = job->next;
			w->held--;
			return job;
		}
	return NULL;
}

static enum local_outcome outcome_of(enum local_exit code)
{
	if (code == LOCAL_EXIT_DELIVERED)
		return LOCAL_DELIVERED;
	return code == LOCAL_EXIT_PERMANENT ? LOCAL_PERMANENT : LOCAL_TEMPORARY;
}

/* One packet from W.  False when W is gone (closed, its deliveries
 * failed) or has nothing more to say now. */
static bool take_report(struct local_agents *agents, struct worker *w, local_done_fn *done,
			void *ctx)
{
	char packet[LOCAL_REPORT_MAX + 1];
	struct local_report report;
	int fd;

	ssize_t n = packet_receive(w->sock, packet, sizeof packet - 1, &fd, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return false;
	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		fail_worker(agents, w, n == 0 ? "4.3.0 tern-local ended before it reported"
			    : "4.3.0 lost touch with tern-local", done, ctx);
		return false;
	}
	int kind = fd >= 0 ? -1 : local_report_parse(packet, (size_t)n, &report);
	struct job *job = kind == 1 ? take_job(w, report.id) : NULL;
	if (kind == 0) {
		w->retiring = true;
		return true;
	}
	if (job == NULL) {
		kill_worker(agents, w, "report", "4.3.0 tern-local reported what it was not given",
			    done, ctx);
		return false;
	}
	agents->busy--;
	w->progress_ms = now_ms();
	void *cookie = job->cookie;
	free(job);
	done(ctx, cookie, outcome_of(report.code),
	     report.code == LOCAL_EXIT_DELIVERED ? "" : report.text);
	return true;
}

/* A spawner that ended (it never should) is reaped and said so; new
 * deliveries are then deferred until tern-deliver starts again. */
static void check_spawner(struct local_agents *agents)
{
	pid_t pid = agents->spawner.pid;

	if (pid > 0 && waitpid(pid, NULL, WNOHANG) == pid) {
		log_event("error", "what=spawner pid=%ld error=ended", (long)pid);
		agents->spawner.pid = 0;
		spawner_stop(&agents->spawner);
	}
}

void local_agents_collect(struct local_agents *agents, local_done_fn *done, void *ctx)
{
	int64_t now = now_ms();

	check_spawner(agents);

	for (size_t i = 0; i < agents->nworkers; i++) {
		struct worker *w = &agents->workers[i];
		while (w->sock >= 0 && take_report(agents, w, done, ctx))
			;
		if (w->sock >= 0 && w->held > 0 && deadline_ms(agents, w) <= now)
			kill_worker(agents, w, "timeout", "4.3.0 tern-local timed out", done, ctx);
		if (w->sock >= 0 && w->retiring && w->held == 0)
			close_worker(w);
	}
}

void local_agents_stop(struct local_agents *agents)
{
	if (agents == NULL)
		return;
	for (size_t i = 0; i < agents->nworkers; i++) {
		struct worker *w = &agents->workers[i];
		if (w->sock >= 0)
			close(w->sock);
		for (struct job *j = w->jobs, *next; j; j = next) {
			next = j->next;
			free(j);
		}
	}
	spawner_stop(&agents->spawner);
	free(agents->workers);
	free(agents);
}
