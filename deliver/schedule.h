/* schedule: when tern-deliver tries a recipient again.
 *
 * Promises: retry_delay() doubles from FIRST with each attempt up to MAX,
 * then spreads it by up to a tenth either way (JITTER is any random
 * number), so recipients deferred together do not come back together. */
#ifndef TERN_SCHEDULE_H
#define TERN_SCHEDULE_H

#include <stdbool.h>
#include <time.h>

unsigned retry_delay(unsigned attempts, unsigned first, unsigned max, unsigned jitter);

/* True once a message queued at QUEUED has outlived LIFETIME. */
bool lifetime_over(time_t queued, time_t now, unsigned lifetime);

#endif
