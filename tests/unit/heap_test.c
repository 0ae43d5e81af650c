/* heap, id_table and wake_queue: tern-deliver's schedule, its index by
 * queue id and its backlog beyond the active window (lib/heap.h,
 * lib/id_table.h, lib/wake_queue.h). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "id_table.h"
#include "suites.h"
#include "wake_queue.h"

#define MANY 5000

struct item {
	struct heap_node node;
	struct id_node by_id;
	char id[16];
	bool gone;
};

static struct item *items_make(size_t n)
{
	struct item *items = calloc(n, sizeof *items);

	ck_assert_ptr_nonnull(items);
	for (size_t i = 0; i < n; i++) {
		heap_node_init(&items[i].node);
		snprintf(items[i].id, sizeof items[i].id, "Q%zu", i);
		items[i].by_id.id = items[i].id;
	}
	return items;
}

/* Pops everything, checking that it comes in (when, order) order. */
static size_t drain_in_order(struct heap *h)
{
	struct heap_node *prev = NULL, *top;
	size_t n = 0;

	while ((top = heap_top(h)) != NULL) {
		if (prev != NULL)
			ck_assert(prev->when < top->when ||
				  (prev->when == top->when && prev->order < top->order));
		heap_remove(h, top);
		ck_assert(!heap_contains(top));
		prev = top;
		n++;
	}
	return n;
}

START_TEST(heap_gives_the_earliest_first)
{
	struct heap h;
	struct item *items = items_make(MANY);

	heap_init(&h);
	ck_assert_ptr_null(heap_top(&h));
	srandom(7);
	for (size_t i = 0; i < MANY; i++) {
		items[i].node.when = random() % 1000;	/* many equal: order decides */
		items[i].node.order = i;
		ck_assert_int_eq(heap_push(&h, &items[i].node), 0);
		ck_assert(heap_contains(&items[i].node));
	}
	ck_assert_uint_eq(drain_in_order(&h), MANY);
	heap_free(&h);
	free(items);
}
END_TEST

START_TEST(heap_equal_times_come_in_arrival_order)
{
	struct heap h;
	struct item *items = items_make(100);

	heap_init(&h);
	for (size_t i = 0; i < 100; i++) {
		items[i].node.when = 42;
		items[i].node.order = i;
		heap_push(&h, &items[i].node);
	}
	for (size_t i = 0; i < 100; i++) {
		struct heap_node *top = heap_top(&h);
		ck_assert_ptr_eq(top, &items[i].node);
		heap_remove(&h, top);
	}
	heap_free(&h);
	free(items);
}
END_TEST

START_TEST(heap_remove_and_update_anywhere)
{
	struct heap h;
	struct item *items = items_make(MANY);

	heap_init(&h);
	ck_assert_int_eq(heap_reserve(&h, MANY), 0);
	srandom(11);
	for (size_t i = 0; i < MANY; i++) {
		items[i].node.when = random() % 100000;
		items[i].node.order = i;
		heap_push(&h, &items[i].node);
	}
	for (size_t i = 0; i < MANY; i += 3) {	/* out of the middle */
		heap_remove(&h, &items[i].node);
		items[i].gone = true;
	}
	heap_remove(&h, &items[0].node);	/* twice: nothing */
	for (size_t i = 1; i < MANY; i += 3)	/* later and sooner */
		heap_update(&h, &items[i].node, i % 2 ? 0 : 200000);
	heap_update(&h, &items[0].node, 5);	/* not in the heap: only its time */
	ck_assert(!heap_contains(&items[0].node));
	ck_assert_int_eq(items[0].node.when, 5);
	size_t left = 0;
	for (size_t i = 0; i < MANY; i++)
		left += !items[i].gone;
	ck_assert_uint_eq(drain_in_order(&h), left);
	heap_free(&h);
	free(items);
}
END_TEST

START_TEST(id_table_finds_adds_and_removes)
{
	struct id_table t;
	struct item *items = items_make(MANY);

	id_table_init(&t);
	ck_assert_ptr_null(id_table_find(&t, "Q1"));
	for (size_t i = 0; i < MANY; i++)
		ck_assert_int_eq(id_table_add(&t, &items[i].by_id), 0);
	ck_assert_uint_eq(t.n, MANY);
	ck_assert_uint_ge(t.nbuckets, MANY);	/* it grew */
	for (size_t i = 0; i < MANY; i++)
		ck_assert_ptr_eq(id_table_find(&t, items[i].id), &items[i].by_id);
	ck_assert_ptr_null(id_table_find(&t, "Q"));
	ck_assert_ptr_null(id_table_find(&t, "Q5000"));
	for (size_t i = 0; i < MANY; i += 2)
		id_table_remove(&t, &items[i].by_id);
	id_table_remove(&t, &items[0].by_id);	/* twice: nothing */
	ck_assert_uint_eq(t.n, MANY / 2);
	for (size_t i = 0; i < MANY; i++)
		ck_assert_ptr_eq(id_table_find(&t, items[i].id), i % 2 ? &items[i].by_id : NULL);
	id_table_free(&t);
	ck_assert_ptr_null(id_table_find(&t, "Q1"));
	free(items);
}
END_TEST

START_TEST(wake_queue_gives_the_earliest_first)
{
	struct wake_queue q;
	struct wake_entry e, prev;
	char id[QID_MAX];

	wake_queue_init(&q);
	ck_assert_ptr_null(wake_queue_top(&q));
	ck_assert(!wake_queue_pop(&q, &e));
	srandom(3);
	for (int i = 0; i < MANY; i++) {
		snprintf(id, sizeof id, "W%d", i);
		ck_assert_int_eq(wake_queue_add(&q, id, random() % 500, 0), 0);
	}
	ck_assert_uint_eq(q.n, MANY);
	for (int i = 0; i < MANY; i++) {
		ck_assert(wake_queue_pop(&q, &e));
		if (i > 0)
			ck_assert(prev.when < e.when ||
				  (prev.when == e.when && prev.order < e.order));
		prev = e;
	}
	ck_assert_ptr_null(wake_queue_top(&q));
	wake_queue_free(&q);
}
END_TEST

START_TEST(wake_queue_keeps_the_id_and_refuses_a_long_one)
{
	struct wake_queue q;
	struct wake_entry e;
	char long_id[QID_MAX + 1];

	wake_queue_init(&q);
	memset(long_id, 'a', QID_MAX);
	long_id[QID_MAX] = '\0';
	ck_assert_int_eq(wake_queue_add(&q, long_id, 1, 0), -1);
	ck_assert_int_eq(wake_queue_add(&q, "later", 20, 0), 0);
	ck_assert_int_eq(wake_queue_add(&q, "sooner", 10, 0), 0);
	ck_assert_str_eq(wake_queue_top(&q)->id, "sooner");
	ck_assert(wake_queue_pop(&q, &e));
	ck_assert_str_eq(e.id, "sooner");
	ck_assert_int_eq(e.when, 10);
	ck_assert_uint_eq(e.flags, 0);
	wake_queue_free(&q);
}
END_TEST

START_TEST(wake_queue_flush_makes_all_due_in_arrival_order)
{
	struct wake_queue q;
	struct wake_entry e;
	char id[QID_MAX];

	wake_queue_init(&q);
	for (int i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "F%d", i);
		wake_queue_add(&q, id, 1000 - i, 0);	/* the last added due first */
	}
	wake_queue_add(&q, "early", 5, 0);
	wake_queue_flush_all(&q, 50);
	ck_assert(wake_queue_pop(&q, &e));
	ck_assert_str_eq(e.id, "early");	/* already due sooner: kept */
	ck_assert_int_eq(e.when, 5);
	for (int i = 0; i < 100; i++) {
		ck_assert(wake_queue_pop(&q, &e));
		snprintf(id, sizeof id, "F%d", i);
		ck_assert_str_eq(e.id, id);
		ck_assert_int_eq(e.when, 50);
		ck_assert_uint_eq(e.flags, WAKE_FLUSHED);
	}
	wake_queue_free(&q);
}
END_TEST

Suite *heap_suite(void)
{
	Suite *s = suite_create("heap");
	TCase *tc = tcase_create("heap");

	tcase_add_test(tc, heap_gives_the_earliest_first);
	tcase_add_test(tc, heap_equal_times_come_in_arrival_order);
	tcase_add_test(tc, heap_remove_and_update_anywhere);
	tcase_add_test(tc, id_table_finds_adds_and_removes);
	tcase_add_test(tc, wake_queue_gives_the_earliest_first);
	tcase_add_test(tc, wake_queue_keeps_the_id_and_refuses_a_long_one);
	tcase_add_test(tc, wake_queue_flush_makes_all_due_in_arrival_order);
	suite_add_tcase(s, tc);
	return s;
}
