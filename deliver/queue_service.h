/* queue_service: tern-deliver's keeping of the queue service
 * (`tern-queue --service`, tern-queue(8)).
 *
 * Promises: tern-deliver itself makes the spool's public/ folder (its
 * own, 0711: nobody else can put a name there) and binds, listens on and
 * keeps the queue socket (0666: any local user may connect, as any may run
 * the set-uid program), so a service that dies or restarts loses no
 * connection waiting to be accepted.  The service runs with that socket
 * as its fd 0, as tern-deliver's own user (the spool's owner; never root
 * outside an instance: tern-deliver has become the spool's owner before,
 * and exec drops the saved root id), its stdout and stderr tern-deliver's,
 * no other fd.  When it ends, it is started again after a pause that
 * doubles with each quick death (queue_service_timeout says when); after
 * a few quick deaths in a row the socket's name is removed until the next
 * start, so that clients run the program at once instead of waiting for a
 * greeting that cannot come; at
 * queue_service_stop it gets SIGTERM (SIGKILL if it lingers), and the
 * socket's name is removed, so clients run the tern-queue program. */
#ifndef TERN_DELIVER_QUEUE_SERVICE_H
#define TERN_DELIVER_QUEUE_SERVICE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"

struct queue_service {
	bool enabled;		/* queue_service_open succeeded */
	int listen_fd;		/* -1: none bound now */
	pid_t pid;		/* 0: not running */
	char program[PATH_MAX];
	char config[PATH_MAX];
	char socket[PATH_MAX];
	int64_t start_at_ms;	/* when to start it (again), CLOCK_MONOTONIC */
	int64_t started_ms;
	unsigned quick_deaths;
};

/* Makes public/ and the socket for the tern-queue at PROGRAM.  0, or -1
 * with a log line (tern-deliver then runs without a service). */
int queue_service_open(struct queue_service *s, const struct tern_conf *conf,
		       const char *program);
/* Starts the service if it is not running and its time has come. */
void queue_service_start(struct queue_service *s);
/* Reaps the service if it has ended (after SIGCHLD). */
void queue_service_reap(struct queue_service *s);
/* Milliseconds until queue_service_start has work (-1: none): a poll
 * timeout. */
int queue_service_timeout(const struct queue_service *s);
/* Stops the service and removes the socket's name. */
void queue_service_stop(struct queue_service *s);

#endif
