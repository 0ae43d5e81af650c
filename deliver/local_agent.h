/* local_agent: runs local deliveries (a message into a Maildir), at most
 * CONCURRENCY at once.  The rest of tern-deliver hands a delivery in and
 * takes its outcome back; it never learns how a delivery is run.
 *
 * Promises: local_agents_start() starts one delivery of queue/ID, or
 * returns -1 with *WHY the temporary failure to record (NULL: nothing to
 * record, the recipient stays due); each started delivery comes back
 * exactly once through local_agents_collect(), with the COOKIE it was
 * started with, as DELIVERED (into the Maildir, durably, as tern-local(8)
 * says), PERMANENT or TEMPORARY, with the reply text (never NULL; ""
 * when delivered).  With CHANGES_IDENTITY (tern-deliver started as root)
 * a delivery runs as the Maildir's account, never root, and sees the
 * message alone, not its envelope; otherwise as tern-deliver.
 * local_agents_collect() is to be called when SIGCHLD came or one of the
 * fds local_agents_pollfds() gave is ready; local_agents_timeout_ms()
 * says how soon it needs a call anyway (-1: not). */
#ifndef TERN_LOCAL_AGENT_H
#define TERN_LOCAL_AGENT_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "spool.h"

enum local_outcome {
	LOCAL_DELIVERED,
	LOCAL_PERMANENT,
	LOCAL_TEMPORARY,
};

struct local_delivery {
	const char *spool;	/* the message is mess/ID (TERN2) or queue/ID there */
	const char *id;
	enum spool_format format;
	uint64_t msglen;
	const char *maildir;
	const char *login;	/* the system account, else NULL: the Maildir's owner */
	const char *rcpt;
	const char *sender;
};

typedef void local_done_fn(void *ctx, void *cookie, enum local_outcome outcome,
			   const char *text);

struct local_agents;

/* NULL if out of memory. */
struct local_agents *local_agents_new(const struct tern_conf *conf, const char *program,
				      bool changes_identity, unsigned concurrency);
bool local_agents_full(const struct local_agents *agents);
bool local_agents_idle(const struct local_agents *agents);
int local_agents_start(struct local_agents *agents, const struct local_delivery *delivery,
		       void *cookie, const char **why);
size_t local_agents_pollfds(struct local_agents *agents, struct pollfd *fds, size_t max);
int local_agents_timeout_ms(const struct local_agents *agents);
void local_agents_collect(struct local_agents *agents, local_done_fn *done, void *ctx);
/* Frees AGENTS; deliveries still running are not waited for. */
void local_agents_stop(struct local_agents *agents);

#endif
