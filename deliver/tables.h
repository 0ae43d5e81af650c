/* tables: tern-deliver's recipient tables (recipient.h), opened once and
 * opened anew only when one of their files changes.
 *
 * Promises: tables_refresh(), at the start of each dispatch pass, looks
 * at each table's cdb and text file (device, inode, size, mtime, ctime,
 * or its absence: a few stat calls, no open) and closes the tables when
 * any differs from the last look, or when a table is unreadable now, so
 * that the next lookup opens them again; an unreadable table stays a
 * temporary failure (TEMPFAIL) for as long as it is one.
 * tables_failed(), after a lookup that failed (TEMPFAIL), has the next
 * pass open them anew, so a table that failed in use is tried again. */
#ifndef TERN_TABLES_H
#define TERN_TABLES_H

#include <stdbool.h>
#include <sys/stat.h>

#define TABLE_WATCHED 3	/* domains, mailboxes, aliases */

struct deliver;

struct file_seen {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

struct table_watch {
	struct file_seen cdb[TABLE_WATCHED], text[TABLE_WATCHED];
	bool failed;		/* a lookup failed since the last pass */
};

void tables_refresh(struct deliver *d);
void tables_failed(struct deliver *d);

#endif
