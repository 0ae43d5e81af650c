#include "store.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct message *find_message(const struct message_store *store, const char *id)
{
	for (struct message *m = store->head; m; m = m->next)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

void append_message(struct message_store *store, struct message *m)
{
	m->next = NULL;
	m->prev = store->tail;
	if (store->tail)
		store->tail->next = m;
	else
		store->head = m;
	store->tail = m;
}

int add_rcpt(struct message *m, const char *addr, const char *orcpt, unsigned hops)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 4;
		struct rcpt_record *more = realloc(m->rcpts, cap * sizeof *more);
		if (more == NULL)
			return -1;
		m->rcpts = more;
		m->cap = cap;
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

void free_message(struct message *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].orcpt);
	}
	free(m->rcpts);
	free(m->sender);
	free(m);
}

static void unlink_message(struct message_store *store, struct message *m)
{
	if (m->prev)
		m->prev->next = m->next;
	else
		store->head = m->next;
	if (m->next)
		m->next->prev = m->prev;
	else
		store->tail = m->prev;
}

void remove_message(struct message_store *store, const char *spool, struct message *m)
{
	char path[PATH_MAX];

	/* queue/ first: a crash in between leaves only an orphan mess/ID
	 * and state file, which cleanup removes, tern-queue counts as a
	 * taken id, and take_in discards for a message from incoming/ */
	if (spool_path(path, sizeof path, spool, SPOOL_QUEUE, m->id) == 0)
		unlink(path);
	if (m->format == SPOOL_FORMAT_V2 &&
	    spool_path(path, sizeof path, spool, SPOOL_MESS, m->id) == 0)
		unlink(path);
	if (spool_path(path, sizeof path, spool, SPOOL_STATE, m->id) == 0)
		unlink(path);
	log_event("removed", "id=%s", m->id);
	unlink_message(store, m);
	free_message(m);
}

void free_messages(struct message_store *store)
{
	for (struct message *m = store->head, *next; m; m = next) {
		next = m->next;
		free_message(m);
	}
	store->head = store->tail = NULL;
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
