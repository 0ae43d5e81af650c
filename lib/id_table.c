#include "id_table.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ID_TABLE_FIRST_BUCKETS 64

/* FNV-1a, 64 bits. */
static uint64_t id_hash(const char *id)
{
	uint64_t h = 14695981039346656037ULL;

	for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return h;
}

static size_t bucket_of(const struct id_table *t, const char *id)
{
	return (size_t)(id_hash(id) & (t->nbuckets - 1));
}

void id_table_init(struct id_table *t)
{
	t->buckets = NULL;
	t->nbuckets = 0;
	t->n = 0;
}

void id_table_free(struct id_table *t)
{
	free(t->buckets);
	id_table_init(t);
}

/* Rehashes into NBUCKETS buckets; -1 (the table as it was) if out of memory. */
static int resize(struct id_table *t, size_t nbuckets)
{
	struct id_node **buckets = calloc(nbuckets, sizeof *buckets);

	if (buckets == NULL)
		return -1;
	struct id_table bigger = { buckets, nbuckets, t->n };
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct id_node *node = t->buckets[i], *next; node; node = next) {
			next = node->next;
			size_t b = bucket_of(&bigger, node->id);
			node->next = buckets[b];
			buckets[b] = node;
		}
	}
	free(t->buckets);
	*t = bigger;
	return 0;
}

int id_table_add(struct id_table *t, struct id_node *node)
{
	if (t->nbuckets == 0 && resize(t, ID_TABLE_FIRST_BUCKETS) < 0)
		return -1;
	if (t->n >= t->nbuckets && t->nbuckets <= SIZE_MAX / 2 / sizeof *t->buckets)
		(void)resize(t, t->nbuckets * 2);	/* else only slower */
	size_t b = bucket_of(t, node->id);
	node->next = t->buckets[b];
	t->buckets[b] = node;
	t->n++;
	return 0;
}

struct id_node *id_table_find(const struct id_table *t, const char *id)
{
	if (t->nbuckets == 0)
		return NULL;
	for (struct id_node *node = t->buckets[bucket_of(t, id)]; node; node = node->next)
		if (strcmp(node->id, id) == 0)
			return node;
	return NULL;
}

void id_table_remove(struct id_table *t, struct id_node *node)
{
	if (t->nbuckets == 0)
		return;
	for (struct id_node **p = &t->buckets[bucket_of(t, node->id)]; *p; p = &(*p)->next) {
		if (*p == node) {
			*p = node->next;
			node->next = NULL;
			t->n--;
			return;
		}
	}
}
