#include "requests.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver.h"
#include "log.h"
#include "util.h"

void apply_to_message(struct deliver *d, struct message *m, const char *verb, time_t now)
{
	for (size_t i = 0; i < m->n; i++) {
		struct rcpt_record *r = &m->rcpts[i];
		if (strcmp(verb, "flush") == 0 && r->state == RCPT_DEFERRED) {
			r->next_try = now;
		} else if (strcmp(verb, "hold") == 0 &&
			   (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED)) {
			r->state = RCPT_HELD;
			m->dirty = true;
		} else if (strcmp(verb, "release") == 0 && r->state == RCPT_HELD) {
			r->state = RCPT_PENDING;
			r->next_try = now;
			m->dirty = true;
		} else if (strcmp(verb, "bounce") == 0 &&
			   (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED ||
			    r->state == RCPT_HELD)) {
			fail(m, r, "5.0.0 returned to sender by the postmaster");
		}
	}
	if (strcmp(verb, "delete") == 0)
		m->doomed = true;
	/* recorded before the request file goes, even with deliveries in flight */
	if (m->dirty && record_state(d, m) == 0)
		m->dirty = false;
	settle(d, m, now);
}

static void apply_request(struct deliver *d, char *text, time_t now)
{
	char *save = NULL;
	char *verb = strtok_r(text, " \n", &save);
	bool any = false;

	if (verb == NULL)
		return;
	log_event("request", "verb=%s", verb);
	for (char *id = strtok_r(NULL, " \n", &save); id; id = strtok_r(NULL, " \n", &save)) {
		any = true;
		take_in_one(d, id);	/* it may still be in incoming/ */
		struct message *m = load_one(d, id);	/* or on disk alone */
		if (m != NULL)
			apply_to_message(d, m, verb, now);
		else
			log_event("request_unknown", "verb=%s id=%s", verb, id);
	}
	if (!any && strcmp(verb, "flush") == 0) {
		wake_queue_flush_all(&d->backlog, now);	/* each as it is read again */
		for (struct message *m = d->store.head, *next; m; m = next) {
			next = m->next;
			apply_to_message(d, m, verb, now);
		}
	}
}

void apply_requests(struct deliver *d, time_t now)
{
	char path[PATH_MAX], file[PATH_MAX];

	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_CONTROL, NULL) < 0)
		return;
	DIR *dir = opendir(path);
	if (dir == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (strncmp(e->d_name, "request.", 8) != 0)
			continue;
		if (path_join(file, sizeof file, path, e->d_name) < 0)
			continue;
		int fd = spool_open(file);
		if (fd == SPOOL_NOT_REGULAR) {	/* ternctl makes none such */
			log_event("error", "what=request path=%s error=\"not a regular file; "
				  "removed\"", file);
			unlink(file);
			continue;
		}
		FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
		if (f == NULL) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		char *text = NULL;
		size_t size = 0;
		ssize_t n = getdelim(&text, &size, '\0', f);
		fclose(f);
		if (n < 0) {
			free(text);
			continue;	/* unreadable now: try again at the next poke */
		}
		apply_request(d, text, now);
		free(text);
		unlink(file);
	}
	closedir(dir);
}
