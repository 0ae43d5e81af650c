#include "schedule.h"

#include <stdint.h>

unsigned retry_delay(unsigned attempts, unsigned first, unsigned max, unsigned jitter)
{
	uint64_t delay = first > 0 ? first : 1;

	for (unsigned i = 1; i < attempts && delay < max; i++)
		delay *= 2;
	if (delay > max)
		delay = max;
	uint64_t spread = delay / 10;
	if (spread > 0)
		delay = delay - spread + jitter % (2 * spread + 1);
	return delay > 0 ? (unsigned)delay : 1;
}

bool lifetime_over(time_t queued, time_t now, unsigned lifetime)
{
	return now - queued >= (time_t)lifetime;
}
