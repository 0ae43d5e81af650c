#include "wake_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void wake_queue_init(struct wake_queue *q)
{
	memset(q, 0, sizeof *q);
}

void wake_queue_free(struct wake_queue *q)
{
	free(q->entries);
	wake_queue_init(q);
}

/* Signed difference, so that ORDER may wrap round without harm. */
static bool before(const struct wake_entry *a, const struct wake_entry *b)
{
	return a->when < b->when || (a->when == b->when && (int32_t)(a->order - b->order) < 0);
}

static void swap(struct wake_entry *a, struct wake_entry *b)
{
	struct wake_entry t = *a;
	*a = *b;
	*b = t;
}

static void sift_up(struct wake_queue *q, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!before(&q->entries[i], &q->entries[parent]))
			break;
		swap(&q->entries[i], &q->entries[parent]);
		i = parent;
	}
}

static void sift_down(struct wake_queue *q, size_t i)
{
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= q->n)
			break;
		if (child + 1 < q->n && before(&q->entries[child + 1], &q->entries[child]))
			child++;
		if (!before(&q->entries[child], &q->entries[i]))
			break;
		swap(&q->entries[i], &q->entries[child]);
		i = child;
	}
}

int wake_queue_add(struct wake_queue *q, const char *id, time_t when, unsigned flags)
{
	if (strlen(id) >= QID_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 256;
		struct wake_entry *more = realloc(q->entries, cap * sizeof *more);
		if (more == NULL)
			return -1;
		q->entries = more;
		q->cap = cap;
	}
	struct wake_entry *e = &q->entries[q->n];
	memset(e, 0, sizeof *e);
	e->when = when;
	e->order = q->added++;
	e->flags = flags;
	str_copy(e->id, sizeof e->id, id);
	sift_up(q, q->n++);
	return 0;
}

const struct wake_entry *wake_queue_top(const struct wake_queue *q)
{
	return q->n > 0 ? &q->entries[0] : NULL;
}

bool wake_queue_pop(struct wake_queue *q, struct wake_entry *out)
{
	if (q->n == 0)
		return false;
	*out = q->entries[0];
	q->entries[0] = q->entries[--q->n];
	sift_down(q, 0);
	return true;
}

void wake_queue_flush_all(struct wake_queue *q, time_t now)
{
	for (size_t i = 0; i < q->n; i++) {
		if (q->entries[i].when > now)
			q->entries[i].when = now;
		q->entries[i].flags |= WAKE_FLUSHED;
	}
	for (size_t i = q->n / 2; i-- > 0;)	/* heapify: the times changed */
		sift_down(q, i);
}
