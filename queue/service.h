/* service: tern-queue as a long-running service (`tern-queue --service`),
 * started and supervised by tern-deliver, which hands it the listening
 * queue socket as fd 0.
 *
 * Promises: one poll loop, nothing in it ever blocks on a client (its
 * socket is non-blocking, and a descriptor it gives is read in ways that
 * never wait, whatever flags the client sets on it, only as far as it has
 * data), each connection's state is its own, and no connection
 * lasts more than queue_timeout without progress.  A message is
 * committed only with queue/commit.h, in a batch with every other message
 * that became whole in the same round, and its client hears 0 only after
 * commit_batch said it is durable.  Whatever fails or goes away, its
 * tmp/ file is removed.  The protocol is tern-queue(8)'s "The queue
 * service". */
#ifndef TERN_QUEUE_SERVICE_H
#define TERN_QUEUE_SERVICE_H

/* Runs the service on tern.conf at CONFIG_PATH until SIGTERM or SIGINT:
 * the exit status (0 after a signal, 111 if it could not start). */
int service_main(const char *config_path);

#endif
