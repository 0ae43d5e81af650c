/* table: the lookup tables of tern-tables(5), text compiled to cdb.
 *
 * Promises: a lookup answers FOUND, NOTFOUND or TEMPFAIL, never "empty" for
 * a table that exists but cannot be read: a text table without its cdb, or a
 * cdb that cannot be opened or is corrupt, is TEMPFAIL.  A table with
 * neither file is empty.  The cdb is read with pread, never mapped, so a
 * file truncated under an open table is a TEMPFAIL, not a SIGBUS; a file
 * whose size changed since it was opened is TEMPFAIL too.  Each lookup
 * checks every record its hash slots lead to: inside the records, with a
 * key of at most TABLE_KEY_MAX octets that hashes to the slot's hash, or
 * the lookup is TEMPFAIL.  table_compile_all() replaces every cdb or none,
 * each by an atomic rename, so a reader sees a whole old or whole new table. */
#ifndef TERN_TABLE_H
#define TERN_TABLE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"

#define TABLE_VALUE_MAX 4096
#define TABLE_KEY_MAX (TABLE_VALUE_MAX - 1)	/* longer than any key compiled */
#define TABLE_ERROR_MAX 512

enum table_result { TABLE_FOUND, TABLE_NOTFOUND, TABLE_TEMPFAIL };

struct table {
	char name[32];
	char cdb_path[PATH_MAX];
	bool opened;
	bool empty;	/* neither text nor cdb */
	bool broken;	/* text without cdb, or unreadable cdb */
	int fd;
	off_t size;		/* of the cdb when opened */
	uint32_t records_end;	/* where the hash tables begin */
};

/* Every table tern knows, in compile order. */
extern const char *const table_names[];

void table_init(struct table *t, const struct tern_conf *c, const char *name);
enum table_result table_lookup(struct table *t, const char *key,
			       char *value, size_t valuesize);
void table_close(struct table *t);

/* Relay: is ADDRESS (text form, v4 or v6) inside a network the table lists? */
enum table_result table_match_network(struct table *t, const char *address);

/* Checks one text table; reports every bad line as "FILE:LINE: message"
 * through REPORT.  Returns the count of bad lines, or -1 if unreadable. */
int table_check(const struct tern_conf *c, const char *name,
		void (*report)(const char *line, void *arg), void *arg);

/* Compiles every text table to its cdb, all or none.  0 on success, 1 if a
 * table has bad lines, -1 on a system error (disk full, permissions); on
 * failure every problem went to REPORT and the old cdbs are kept. */
int table_compile_all(const struct tern_conf *c,
		      void (*report)(const char *line, void *arg), void *arg);

/* Canonical "network/prefix" for a CIDR or bare address; 0 on success. */
int cidr_normalize(const char *in, char *out, size_t outsize);

/* The key under which "domains" records its first domain. */
#define TABLE_FIRST_DOMAIN_KEY ""

#endif
