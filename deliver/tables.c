#include "tables.h"

#include <limits.h>
#include <string.h>

#include "deliver.h"
#include "util.h"

static struct file_seen look(const char *path)
{
	struct file_seen seen;
	struct stat st;

	memset(&seen, 0, sizeof seen);
	if (path[0] == '\0' || stat(path, &st) < 0)
		return seen;	/* absent, or not to be looked at: as absent */
	seen.exists = true;
	seen.dev = st.st_dev;
	seen.ino = st.st_ino;
	seen.size = st.st_size;
	seen.mtime = st.st_mtim;
	seen.ctime = st.st_ctim;
	return seen;
}

static bool same(const struct file_seen *a, const struct file_seen *b)
{
	if (a->exists != b->exists)
		return false;
	return !a->exists ||
	       (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
		a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
		a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec);
}

/* Has TABLE's cdb or its text changed since SEEN, which takes what is there now? */
static bool changed(const struct table *table, struct file_seen *cdb, struct file_seen *text)
{
	char text_path[PATH_MAX] = "";
	size_t len = strlen(table->cdb_path);

	if (len > 4 && str_copy(text_path, sizeof text_path, table->cdb_path))
		text_path[len - 4] = '\0';	/* NAME.cdb: NAME */
	struct file_seen cdb_now = look(table->cdb_path), text_now = look(text_path);
	bool differs = !same(&cdb_now, cdb) || !same(&text_now, text);
	*cdb = cdb_now;
	*text = text_now;
	return differs;
}

void tables_refresh(struct deliver *d)
{
	struct recipient_tables *t = &d->tables;
	const struct table *tables[TABLE_WATCHED] = { &t->domains, &t->mailboxes, &t->aliases };
	bool reopen = d->tables_seen.failed;

	for (size_t i = 0; i < TABLE_WATCHED; i++) {
		if (changed(tables[i], &d->tables_seen.cdb[i], &d->tables_seen.text[i]))
			reopen = true;
		if (tables[i]->broken)	/* unreadable: a fresh look each pass */
			reopen = true;
	}
	if (reopen)
		recipient_tables_close(t);
	d->tables_seen.failed = false;
}

void tables_failed(struct deliver *d)
{
	d->tables_seen.failed = true;
}
