/* deliver: the state tern-deliver's modules share.
 *
 * Promises: one struct deliver per process, made and freed by main.c;
 * every module takes it by pointer and keeps no state of its own.  Who
 * owns what: the messages are the store's (store.h), the running local
 * deliveries the local agents' (local_agent.h, opaque), the reports in
 * flight reports.h's, the counters outcome.h's. */
#ifndef TERN_DELIVER_H
#define TERN_DELIVER_H

#include <limits.h>
#include <stdbool.h>
#include <time.h>

#include "conf.h"
#include "intake.h"
#include "local_agent.h"
#include "outcome.h"
#include "queue_service.h"
#include "recipient.h"
#include "reports.h"
#include "store.h"
#include "tables.h"
#include "wake_queue.h"

struct deliver {
	struct tern_conf conf;
	struct recipient_tables tables;
	char local_program[PATH_MAX];
	char queue_program[PATH_MAX];
	bool have_remote;
	bool as_root;		/* started as root outside an instance */
	struct message_store store;
	struct wake_queue backlog;	/* beyond the active window (intake.h) */
	time_t last_sweep;	/* of the window for idle messages */
	struct local_agents *agents;
	struct table_watch tables_seen;
	struct report_job reports[REPORTS_MAX];
	int trigger_fd;
	bool stopping;
	time_t next_cleanup;
	time_t next_scan;	/* of incoming/, poke or not */
	struct id_list retry;	/* messages in queue/ whose load failed */
	struct counters counters;
	struct queue_service service;
};

#endif
