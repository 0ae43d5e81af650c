/* spawner: the small process that starts tern-deliver's workers, forked
 * by tern-deliver at start while it is still root (tern-deliver(8),
 * SPAWNER).
 *
 * It keeps one SOCK_SEQPACKET socket to tern-deliver and trusts nothing
 * said over it beyond "a worker of kind local for this login" or "for
 * this Maildir": it derives the uid, gid and groups itself (the login's
 * passwd entry, or the Maildir's owner as lstat(2) reports it, a symbolic
 * link counting as its target's only when root made it), never uid 0
 * unless nothing changes identity (an instance, or not started as root),
 * drops with initgroups, setgid and setuid and checks all three, and
 * execs only the worker program it was given at start, with the argv
 * "tern-local --worker", an empty environment, /dev/null as fds 0 and 1,
 * its own fd 2, and the worker's end of a fresh socketpair as fd 3 and
 * nothing else.  tern-deliver gets the other end and the pid.  It kills
 * (SIGKILL) a worker on request, but only one it started and has not yet
 * reaped, and it reaps them all.  It never opens the spool or a message,
 * and ends when tern-deliver's end of its socket closes.
 *
 * Promises to tern-deliver: spawner_local_worker() answers within
 * SPAWNER_REPLY_SECONDS or fails; on failure TEXT holds a status line
 * ("4.3.0 ..."), the reason a delivery is deferred. */
#ifndef TERN_SPAWNER_H
#define TERN_SPAWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SPAWNER_REPLY_SECONDS 10

struct spawner {
	int sock;		/* -1: none */
	pid_t pid;
	uint64_t next_seq;	/* of requests, so that a late reply is known */
};

/* Forks the spawner.  CHANGES_IDENTITY: workers take on the identity of
 * the login or Maildir they serve (tern-deliver started as root outside
 * an instance); else they run as the caller.  PROGRAM is tern-local's
 * path.  0, or -1 with errno set. */
int spawner_start(struct spawner *s, const char *program, bool changes_identity);

/* A new worker for LOGIN (not NULL) or else MAILDIR: 0 with its socket
 * (close-on-exec) in *SOCK and its pid in *PID, or -1 with the reason in
 * TEXT. */
int spawner_local_worker(struct spawner *s, const char *login, const char *maildir,
			 int *sock, pid_t *pid, char *text, size_t size);

/* Asks the spawner to kill worker PID (SIGKILL). */
void spawner_kill(struct spawner *s, pid_t pid);

/* Closes tern-deliver's end: the spawner then ends, and waits no more
 * for its workers, which end on their own sockets' end of file. */
void spawner_stop(struct spawner *s);

#endif
