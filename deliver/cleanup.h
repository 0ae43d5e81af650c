/* cleanup: old files in the spool.
 *
 * Promises: cleanup() removes the tmp/ files older than SPOOL_TMP_MAX_AGE,
 * the state/ files of no message (in memory, queue/ or incoming/) and
 * the temporary files in state/, and control/'s leftover temporary files older than an
 * hour; each removal is logged ("cleanup"); it runs again an hour later
 * (d->next_cleanup). */
#ifndef TERN_CLEANUP_H
#define TERN_CLEANUP_H

#include <time.h>

struct deliver;

void cleanup(struct deliver *d, time_t now);

#endif
