/* requests: ternctl's requests, control/request.* files (ternctl(8)).
 *
 * Promises: apply_requests() applies each request file (flush, hold,
 * release, bounce, delete, for the ids it names or, flush alone, for
 * all), takes in from incoming/ first a message it names that is still
 * there, records the changed state before it removes the file, and logs
 * "request" (and "request_unknown" for an id it does not hold).  A file
 * it cannot read now stays for the next poke; one that is not a regular
 * file is removed.  A message the window holds only on disk is read for
 * a request that names it; "flush" for all reaches those too, each as it
 * is read again. */
#ifndef TERN_REQUESTS_H
#define TERN_REQUESTS_H

#include <time.h>

struct deliver;
struct message;

void apply_requests(struct deliver *d, time_t now);
/* VERB (a request's) applied to M, recorded and settled. */
void apply_to_message(struct deliver *d, struct message *m, const char *verb, time_t now);

#endif
