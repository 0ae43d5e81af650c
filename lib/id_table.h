/* id_table: a hash table from names (queue ids) to nodes embedded in the
 * caller's items.
 *
 * Promises: find, add and remove cost O(1) on average: the table grows
 * (doubling) to keep at most one node per bucket on average, and when it
 * cannot grow it still takes the node, only slower; id_table_add fails
 * (-1) only when there is no bucket at all and none can be made.  A node
 * names its item by ID, which must not change while it is in the table;
 * the table holds pointers only, never copies. */
#ifndef TERN_ID_TABLE_H
#define TERN_ID_TABLE_H

#include <stddef.h>

struct id_node {
	struct id_node *next;
	const char *id;
};

struct id_table {
	struct id_node **buckets;
	size_t nbuckets;	/* 0 or a power of two */
	size_t n;
};

void id_table_init(struct id_table *t);
void id_table_free(struct id_table *t);
int id_table_add(struct id_table *t, struct id_node *node);
struct id_node *id_table_find(const struct id_table *t, const char *id);
/* NODE, if in T, comes out. */
void id_table_remove(struct id_table *t, struct id_node *node);

#endif
