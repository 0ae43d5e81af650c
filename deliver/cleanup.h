/* cleanup: old files in the spool.
 *
 * Promises: cleanup() removes the tmp/ files older than SPOOL_TMP_MAX_AGE;
 * the mess/ files as old whose envelope is nowhere (tmp/, incoming/,
 * queue/, memory); the queue/ files as old that are not in memory, not
 * a whole TERN1 file (a message the window holds on disk alone may be
 * one, empty, starting with "time "), have no mess/ID and look like a
 * TERN2 envelope (empty, zeros or "time "); the state/ files of no
 * message (in memory, queue/ or incoming/) and the temporary files in
 * state/; and control/'s leftover temporary files older than an hour.
 * Each removal is logged ("cleanup"); it runs again an hour later
 * (d->next_cleanup). */
#ifndef TERN_CLEANUP_H
#define TERN_CLEANUP_H

#include <time.h>

struct deliver;

void cleanup(struct deliver *d, time_t now);

#endif
