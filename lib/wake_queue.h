/* wake_queue: a compact min-heap of (when, queue id) by value, for the
 * messages tern-deliver knows only by id (its active window is full).
 *
 * Promises: wake_queue_top() is the entry with the least WHEN and, among
 * equal WHENs, the one added first; add and pop cost O(log n), top O(1),
 * wake_queue_flush_all() O(n).  An entry is WAKE_ENTRY_SIZE octets (48 on
 * LP64) and nothing else is kept per entry: 1,000,000 entries take 48 MB.
 * An id longer than QID_MAX - 1 is refused (-1, EINVAL). */
#ifndef TERN_WAKE_QUEUE_H
#define TERN_WAKE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util.h"

#define WAKE_FLUSHED 1u		/* ternctl flush came while it was here */

struct wake_entry {
	int64_t when;
	uint32_t order;
	uint32_t flags;
	char id[QID_MAX];
};

#define WAKE_ENTRY_SIZE sizeof(struct wake_entry)

struct wake_queue {
	struct wake_entry *entries;
	size_t n, cap;
	uint32_t added;
};

void wake_queue_init(struct wake_queue *q);
void wake_queue_free(struct wake_queue *q);
/* 0, or -1 if out of memory (or the id is too long). */
int wake_queue_add(struct wake_queue *q, const char *id, time_t when, unsigned flags);
/* NULL when empty. */
const struct wake_entry *wake_queue_top(const struct wake_queue *q);
/* The top comes out into *OUT; false when empty. */
bool wake_queue_pop(struct wake_queue *q, struct wake_entry *out);
/* Every entry due at NOW at the latest, and marked WAKE_FLUSHED. */
void wake_queue_flush_all(struct wake_queue *q, time_t now);

#endif
