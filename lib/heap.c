#include "heap.h"

#include <stdlib.h>

void heap_init(struct heap *h)
{
	h->nodes = NULL;
	h->n = h->cap = 0;
}

void heap_free(struct heap *h)
{
	for (size_t i = 0; i < h->n; i++)
		h->nodes[i]->index = HEAP_ABSENT;
	free(h->nodes);
	heap_init(h);
}

void heap_node_init(struct heap_node *node)
{
	node->when = 0;
	node->order = 0;
	node->index = HEAP_ABSENT;
}

bool heap_contains(const struct heap_node *node)
{
	return node->index != HEAP_ABSENT;
}

int heap_reserve(struct heap *h, size_t n)
{
	if (n <= h->cap)
		return 0;
	size_t cap = h->cap ? h->cap : 16;
	while (cap < n)
		cap *= 2;
	struct heap_node **more = realloc(h->nodes, cap * sizeof *more);
	if (more == NULL)
		return -1;
	h->nodes = more;
	h->cap = cap;
	return 0;
}

static bool before(const struct heap_node *a, const struct heap_node *b)
{
	return a->when < b->when || (a->when == b->when && a->order < b->order);
}

static void place(struct heap *h, size_t i, struct heap_node *node)
{
	h->nodes[i] = node;
	node->index = i;
}

static void sift_up(struct heap *h, size_t i)
{
	struct heap_node *node = h->nodes[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!before(node, h->nodes[parent]))
			break;
		place(h, i, h->nodes[parent]);
		i = parent;
	}
	place(h, i, node);
}

static void sift_down(struct heap *h, size_t i)
{
	struct heap_node *node = h->nodes[i];

	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= h->n)
			break;
		if (child + 1 < h->n && before(h->nodes[child + 1], h->nodes[child]))
			child++;
		if (!before(h->nodes[child], node))
			break;
		place(h, i, h->nodes[child]);
		i = child;
	}
	place(h, i, node);
}

int heap_push(struct heap *h, struct heap_node *node)
{
	if (heap_reserve(h, h->n + 1) < 0)
		return -1;
	place(h, h->n++, node);
	sift_up(h, node->index);
	return 0;
}

struct heap_node *heap_top(const struct heap *h)
{
	return h->n > 0 ? h->nodes[0] : NULL;
}

void heap_remove(struct heap *h, struct heap_node *node)
{
	size_t i = node->index;

	if (i == HEAP_ABSENT || i >= h->n || h->nodes[i] != node)
		return;
	node->index = HEAP_ABSENT;
	struct heap_node *last = h->nodes[--h->n];
	if (i == h->n)
		return;
	place(h, i, last);
	sift_down(h, i);
	sift_up(h, last->index);
}

void heap_update(struct heap *h, struct heap_node *node, time_t when)
{
	node->when = when;
	if (!heap_contains(node))
		return;
	sift_down(h, node->index);
	sift_up(h, node->index);
}
