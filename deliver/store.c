#include "store.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

void store_init(struct message_store *store)
{
	memset(store, 0, sizeof *store);
	id_table_init(&store->by_id);
	heap_init(&store->schedule);
}

struct message *find_message(const struct message_store *store, const char *id)
{
	struct id_node *node = id_table_find(&store->by_id, id);

	return node == NULL ? NULL
			    : (struct message *)((char *)node - offsetof(struct message, by_id));
}

struct message *new_message(void)
{
	struct message *m = calloc(1, sizeof *m);

	if (m == NULL)
		return NULL;
	m->by_id.id = m->id;
	heap_node_init(&m->wake);
	return m;
}

int append_message(struct message_store *store, struct message *m)
{
	/* room in the schedule now, so that scheduling it never fails */
	if (heap_reserve(&store->schedule, store->count + 1) < 0 ||
	    id_table_add(&store->by_id, &m->by_id) < 0)
		return -1;
	m->wake.order = store->arrivals++;
	m->next = NULL;
	m->prev = store->tail;
	if (store->tail)
		store->tail->next = m;
	else
		store->head = m;
	store->tail = m;
	store->count++;
	return 0;
}

/* Grows M's marks to its capacity: -1 if out of memory. */
static int grow_marks(struct message *m, size_t old_cap)
{
	if (m->delivering == NULL)
		return 0;
	unsigned char *more = realloc(m->delivering, m->cap);
	if (more == NULL)
		return -1;
	memset(more + old_cap, 0, m->cap - old_cap);
	m->delivering = more;
	return 0;
}

int add_rcpt(struct message *m, const char *addr, const char *orcpt, unsigned hops)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 4, old_cap = m->cap;
		struct rcpt_record *more = realloc(m->rcpts, cap * sizeof *more);
		if (more == NULL)
			return -1;
		m->rcpts = more;
		m->cap = cap;
		if (grow_marks(m, old_cap) < 0) {
			m->cap = old_cap;	/* the marks still fit the old one */
			return -1;
		}
	}
	struct rcpt_record *r = &m->rcpts[m->n];
	memset(r, 0, sizeof *r);
	r->addr = strdup(addr);
	r->orcpt = strdup(orcpt);
	r->hops = hops;
	if (r->addr == NULL || r->orcpt == NULL) {
		free(r->addr);
		free(r->orcpt);
		return -1;
	}
	m->n++;
	return 0;
}

int set_delivering(struct message *m, size_t ri, bool on)
{
	if (m->delivering == NULL) {
		if (!on)
			return 0;
		m->delivering = calloc(m->cap ? m->cap : 1, 1);
		if (m->delivering == NULL)
			return -1;
	}
	m->delivering[ri] = on;
	return 0;
}

bool is_delivering(const struct message *m, size_t ri)
{
	return m->delivering != NULL && m->delivering[ri];
}

void free_message(struct message *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].orcpt);
	}
	free(m->rcpts);
	free(m->delivering);
	free(m->sender);
	free(m);
}

static void stop_waiting(struct message_store *store, struct message *m)
{
	if (!m->waiting)
		return;
	if (m->prev_waiting)
		m->prev_waiting->next_waiting = m->next_waiting;
	else
		store->waiting_head = m->next_waiting;
	if (m->next_waiting)
		m->next_waiting->prev_waiting = m->prev_waiting;
	else
		store->waiting_tail = m->prev_waiting;
	m->prev_waiting = m->next_waiting = NULL;
	m->waiting = false;
}

void wait_for_report(struct message_store *store, struct message *m)
{
	if (m->waiting)
		return;
	m->waiting = true;
	m->next_waiting = NULL;
	m->prev_waiting = store->waiting_tail;
	if (store->waiting_tail)
		store->waiting_tail->next_waiting = m;
	else
		store->waiting_head = m;
	store->waiting_tail = m;
}

struct message *take_waiting(struct message_store *store)
{
	struct message *m = store->waiting_head;

	if (m != NULL)
		stop_waiting(store, m);
	return m;
}

void schedule_message(struct message_store *store, struct message *m, time_t when)
{
	if (heap_contains(&m->wake)) {
		heap_update(&store->schedule, &m->wake, when);
		return;
	}
	m->wake.when = when;
	(void)heap_push(&store->schedule, &m->wake);	/* room kept by append_message */
}

void unschedule_message(struct message_store *store, struct message *m)
{
	heap_remove(&store->schedule, &m->wake);
}

static struct message *of_wake(const struct heap_node *node)
{
	return (struct message *)((char *)node - offsetof(struct message, wake));
}

struct message *next_due(const struct message_store *store, time_t now)
{
	struct heap_node *top = heap_top(&store->schedule);

	return top != NULL && top->when <= now ? of_wake(top) : NULL;
}

bool first_wake(const struct message_store *store, time_t *when)
{
	struct heap_node *top = heap_top(&store->schedule);

	if (top == NULL)
		return false;
	*when = top->when;
	return true;
}

static void unlink_message(struct message_store *store, struct message *m)
{
	unschedule_message(store, m);
	stop_waiting(store, m);
	id_table_remove(&store->by_id, &m->by_id);
	if (m->prev)
		m->prev->next = m->next;
	else
		store->head = m->next;
	if (m->next)
		m->next->prev = m->prev;
	else
		store->tail = m->prev;
	store->count--;
}

void remove_message(struct message_store *store, const char *spool, struct message *m)
{
	char path[PATH_MAX];

	/* mess/ID first: a crash in between leaves queue/ID without its
	 * message, which the next start discards as torn (every recipient
	 * was done), rather than an orphan mess/ID that only age removes
	 * (one being written cannot be told from it) */
	if (m->format == SPOOL_FORMAT_V2 &&
	    spool_path(path, sizeof path, spool, SPOOL_MESS, m->id) == 0)
		unlink(path);
	if (spool_path(path, sizeof path, spool, m->in_incoming ? SPOOL_INCOMING : SPOOL_QUEUE,
		       m->id) == 0)
		unlink(path);
	if (!m->in_incoming && spool_path(path, sizeof path, spool, SPOOL_STATE, m->id) == 0)
		unlink(path);
	log_event("removed", "id=%s", m->id);
	unlink_message(store, m);
	free_message(m);
}

void forget_message(struct message_store *store, struct message *m)
{
	unlink_message(store, m);
	free_message(m);
}

void free_messages(struct message_store *store)
{
	heap_free(&store->schedule);
	id_table_free(&store->by_id);
	for (struct message *m = store->head, *next; m; m = next) {
		next = m->next;
		free_message(m);
	}
	store_init(store);
}

void discard_state(const char *spool, const char *id)
{
	char path[PATH_MAX];

	if (spool_path(path, sizeof path, spool, SPOOL_STATE, id) == 0 && unlink(path) == 0)
		log_event("error", "id=%s what=state error=\"a leftover state file, removed\"", id);
}

bool finished(enum rcpt_state s)
{
	return s == RCPT_DELIVERED || s == RCPT_BOUNCED || s == RCPT_EXPANDED;
}
