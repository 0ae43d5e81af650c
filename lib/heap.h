/* heap: a binary min-heap of nodes embedded in the caller's items, for
 * schedules ("which is due first").
 *
 * Promises: heap_top() is the node with the least WHEN and, among equal
 * WHENs, the least ORDER (the caller's tie-break, e.g. arrival order);
 * push, remove and update cost O(log n), top O(1).  The heap holds
 * pointers only: a node stays the caller's, and must be removed before
 * its item goes.  heap_reserve() makes room ahead, after which a push
 * for each reserved place cannot fail. */
#ifndef TERN_HEAP_H
#define TERN_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define HEAP_ABSENT SIZE_MAX

struct heap_node {
	time_t when;
	uint64_t order;
	size_t index;		/* its place in the heap, or HEAP_ABSENT */
};

struct heap {
	struct heap_node **nodes;
	size_t n, cap;
};

void heap_init(struct heap *h);
void heap_free(struct heap *h);
void heap_node_init(struct heap_node *node);
bool heap_contains(const struct heap_node *node);

/* Room for N nodes in all: 0, or -1 if out of memory. */
int heap_reserve(struct heap *h, size_t n);
/* NODE (not in a heap) goes in with its WHEN and ORDER: 0, or -1. */
int heap_push(struct heap *h, struct heap_node *node);
/* NULL when empty. */
struct heap_node *heap_top(const struct heap *h);
/* NODE, if in H, comes out. */
void heap_remove(struct heap *h, struct heap_node *node);
/* NODE, in H, moves to its place for WHEN. */
void heap_update(struct heap *h, struct heap_node *node, time_t when);

#endif
