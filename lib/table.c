#include "table.h"

#include <arpa/inet.h>
#include <cdb.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "atomic.h"
#include "util.h"

const char *const table_names[] = {
	"domains", "mailboxes", "aliases", "users", "senders", "relay", "routes", NULL,
};

void table_init(struct table *t, const struct tern_conf *c, const char *name)
{
	char file[64];

	memset(t, 0, sizeof *t);
	t->fd = -1;
	str_copy(t->name, sizeof t->name, name);
	snprintf(file, sizeof file, "%s.cdb", name);
	if (conf_path(c, file, t->cdb_path, sizeof t->cdb_path) < 0)
		t->cdb_path[0] = '\0';
}

/* The cdb format: a table of contents of 256 (position, count) pairs, the
 * records (key length, data length, key, data), then the 256 hash tables
 * of (hash, record position) slots; every number a uint32 LE. */
#define CDB_TOC_SIZE 2048
#define CDB_PAIR 8

/* Reads exactly LEN octets at POS; false on an error or a short read. */
static bool read_at(int fd, void *buf, size_t len, uint64_t pos)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
		pos += (size_t)n;
	}
	return true;
}

/* Every hash table lies inside the file after the contents, and the
 * furthest ends exactly at its last octet: a truncated file fails here.
 * The records end where the first hash table begins. */
static bool cdb_layout(struct table *t, const unsigned char toc[CDB_TOC_SIZE])
{
	uint64_t size = (uint64_t)t->size, end = CDB_TOC_SIZE, first = size;

	for (unsigned i = 0; i < 256; i++) {
		uint64_t pos = cdb_unpack(toc + CDB_PAIR * i);
		uint64_t n = cdb_unpack(toc + CDB_PAIR * i + 4);
		if (pos < CDB_TOC_SIZE || pos > size || n > (size - pos) / CDB_PAIR)
			return false;
		if (pos < first)
			first = pos;
		if (n > 0 && pos + CDB_PAIR * n > end)
			end = pos + CDB_PAIR * n;
	}
	t->records_end = (uint32_t)first;
	return end == size;
}

static bool cdb_open(struct table *t)
{
	unsigned char toc[CDB_TOC_SIZE];
	struct stat st;

	if (fstat(t->fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < CDB_TOC_SIZE ||
	    st.st_size > UINT32_MAX)
		return false;
	t->size = st.st_size;
	return read_at(t->fd, toc, sizeof toc, 0) && cdb_layout(t, toc);
}

static void table_open(struct table *t)
{
	char text[PATH_MAX];

	t->opened = true;
	if (t->cdb_path[0] == '\0') {
		t->broken = true;
		return;
	}
	t->fd = open(t->cdb_path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (t->fd >= 0) {
		if (!cdb_open(t)) {
			close(t->fd);
			t->fd = -1;
			t->broken = true;
		}
		return;
	}
	if (errno != ENOENT) {
		t->broken = true;
		return;
	}
	size_t len = strlen(t->cdb_path);
	str_copy(text, sizeof text, t->cdb_path);
	text[len - 4] = '\0';
	if (access(text, F_OK) == 0 || errno != ENOENT)
		t->broken = true;
	else
		t->empty = true;
}

/* Truncated or rewritten in place since it was opened? */
static bool cdb_changed(const struct table *t)
{
	struct stat st;

	return fstat(t->fd, &st) < 0 || st.st_size != t->size;
}

struct cdb_data {
	uint32_t pos, len;
};

enum record_match { RECORD_CORRUPT = -1, RECORD_OTHER, RECORD_KEY };

/* Checks the record at POS that a slot of hash HASH points to: inside the
 * records, its key no longer than TABLE_KEY_MAX and hashing to HASH.  When
 * its key is KEY (KLEN octets), where its data lies goes to OUT. */
static enum record_match record_check(const struct table *t, uint32_t hash, uint32_t pos,
				      const char *key, size_t klen, struct cdb_data *out)
{
	unsigned char head[CDB_PAIR], found[TABLE_KEY_MAX];

	if (pos < CDB_TOC_SIZE || pos > t->records_end || t->records_end - pos < CDB_PAIR ||
	    !read_at(t->fd, head, sizeof head, pos))
		return RECORD_CORRUPT;
	uint32_t found_len = cdb_unpack(head), data_len = cdb_unpack(head + 4);
	uint32_t room = t->records_end - pos - CDB_PAIR;
	if (found_len > TABLE_KEY_MAX || found_len > room || data_len > room - found_len ||
	    !read_at(t->fd, found, found_len, pos + CDB_PAIR) ||
	    cdb_hash(found, found_len) != hash)
		return RECORD_CORRUPT;
	if (found_len != klen || memcmp(found, key, klen) != 0)
		return RECORD_OTHER;
	out->pos = pos + CDB_PAIR + found_len;
	out->len = data_len;
	return RECORD_KEY;
}

/* Walks KEY's hash table from its slot to the first empty one, as cdb
 * readers do, checking every record on the way. */
static enum table_result cdb_search(const struct table *t, const char *key, size_t klen,
				    struct cdb_data *out)
{
	unsigned char pair[CDB_PAIR];
	uint32_t hash = cdb_hash(key, (unsigned)klen);
	uint32_t index = hash & 255;

	if (!read_at(t->fd, pair, sizeof pair, CDB_PAIR * index))
		return TABLE_TEMPFAIL;
	uint64_t table = cdb_unpack(pair), n = cdb_unpack(pair + 4);
	if (n == 0)
		return TABLE_NOTFOUND;
	if (table < t->records_end || table > (uint64_t)t->size ||
	    n > ((uint64_t)t->size - table) / CDB_PAIR)
		return TABLE_TEMPFAIL;
	uint64_t start = (hash >> 8) % n;
	for (uint64_t i = 0; i < n; i++) {
		if (!read_at(t->fd, pair, sizeof pair, table + CDB_PAIR * ((start + i) % n)))
			return TABLE_TEMPFAIL;
		uint32_t slot_hash = cdb_unpack(pair), record = cdb_unpack(pair + 4);
		if (record == 0)
			return TABLE_NOTFOUND;
		if ((slot_hash & 255) != index)
			return TABLE_TEMPFAIL;
		switch (record_check(t, slot_hash, record, key, klen, out)) {
		case RECORD_CORRUPT: return TABLE_TEMPFAIL;
		case RECORD_KEY: return TABLE_FOUND;
		case RECORD_OTHER: break;
		}
	}
	return TABLE_NOTFOUND;
}

enum table_result table_lookup(struct table *t, const char *key,
			       char *value, size_t valuesize)
{
	struct cdb_data data;

	if (!t->opened)
		table_open(t);
	if (t->broken)
		return TABLE_TEMPFAIL;
	if (t->empty)
		return TABLE_NOTFOUND;
	if (cdb_changed(t))
		return TABLE_TEMPFAIL;
	enum table_result r = cdb_search(t, key, strlen(key), &data);
	if (r != TABLE_FOUND || value == NULL)
		return r;
	if (data.len >= valuesize || !read_at(t->fd, value, data.len, data.pos))
		return TABLE_TEMPFAIL;
	/* no value compiled holds a NUL: a corrupt one, not a shorter one */
	if (memchr(value, '\0', data.len) != NULL)
		return TABLE_TEMPFAIL;
	value[data.len] = '\0';
	return TABLE_FOUND;
}

void table_close(struct table *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	t->opened = false;
	t->broken = false;
	t->empty = false;
}

int cidr_normalize(const char *in, char *out, size_t outsize)
{
	char addr[INET6_ADDRSTRLEN + 8];
	unsigned char bin[16];
	long prefix = -1;

	if (!str_copy(addr, sizeof addr, in))
		return -1;
	char *slash = strchr(addr, '/');
	if (slash != NULL) {
		char *end;
		*slash = '\0';
		if (!isdigit((unsigned char)slash[1]))
			return -1;
		prefix = strtol(slash + 1, &end, 10);
		if (*end != '\0')
			return -1;
	}
	int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	int bits = family == AF_INET6 ? 128 : 32;
	if (inet_pton(family, addr, bin) != 1)
		return -1;
	if (prefix < 0)
		prefix = bits;
	if (prefix > bits)
		return -1;
	for (int i = 0; i < bits / 8; i++) {
		int keep = (int)prefix - i * 8;
		if (keep >= 8)
			continue;
		bin[i] &= keep <= 0 ? 0 : (unsigned char)(0xFF << (8 - keep));
	}
	char text[INET6_ADDRSTRLEN];
	if (inet_ntop(family, bin, text, sizeof text) == NULL)
		return -1;
	int n = snprintf(out, outsize, "%s/%ld", text, prefix);
	return n < 0 || (size_t)n >= outsize ? -1 : 0;
}

enum table_result table_match_network(struct table *t, const char *address)
{
	char key[INET6_ADDRSTRLEN + 8], probe[INET6_ADDRSTRLEN + 8], v4[INET_ADDRSTRLEN];
	const char *plain = address;
	struct in6_addr six;

	/* an IPv4 client seen through an IPv6 socket, in any spelling */
	if (inet_pton(AF_INET6, address, &six) == 1 && IN6_IS_ADDR_V4MAPPED(&six)) {
		if (inet_ntop(AF_INET, &six.s6_addr[12], v4, sizeof v4) == NULL)
			return TABLE_NOTFOUND;
		plain = v4;
	}
	int bits = strchr(plain, ':') ? 128 : 32;
	for (int prefix = bits; prefix >= 0; prefix--) {
		snprintf(probe, sizeof probe, "%s/%d", plain, prefix);
		if (cidr_normalize(probe, key, sizeof key) < 0)
			return TABLE_NOTFOUND;
		enum table_result r = table_lookup(t, key, NULL, 0);
		if (r != TABLE_NOTFOUND)
			return r;
	}
	return TABLE_NOTFOUND;
}

/* ---- compiling ---- */

struct entry_sink {
	struct cdb_make *make;	/* NULL when only checking */
	const char *name;
	const char *file;
	void (*report)(const char *line, void *arg);
	void *arg;
	int errors;
	bool first_domain_done;
};

static void bad_line(struct entry_sink *sink, unsigned lineno, const char *fmt,
		     const char *detail)
{
	char message[TABLE_ERROR_MAX], line[TABLE_ERROR_MAX + 64];

	snprintf(message, sizeof message, fmt, detail);
	snprintf(line, sizeof line, "%s:%u: %s", sink->file, lineno, message);
	sink->report(line, sink->arg);
	sink->errors++;
}

static bool valid_address_list(const char *value, bool allow_domains)
{
	char item[TABLE_VALUE_MAX];
	struct mailbox m;
	int got;
	unsigned items = 0;

	while ((got = addr_list_next(&value, item, sizeof item)) > 0) {
		if (item[0] == '\0')
			continue;
		items++;
		if (strcasecmp(item, "postmaster") == 0)
			continue;
		if (allow_domains && item[0] == '@') {
			if (!addr_domain_valid(item + 1, ADDR_DOMAIN_LITERAL))
				return false;
			continue;
		}
		if (addr_parse(item, &m) != ADDR_OK)
			return false;
	}
	return got == 0 && items > 0;
}

static bool valid_route(const char *value)
{
	char copy[TABLE_VALUE_MAX];

	if (!str_copy(copy, sizeof copy, value) || copy[0] == '\0')
		return false;
	char *save = NULL;
	char *target = strtok_r(copy, " \t", &save);
	if (target == NULL)
		return false;
	if (strncmp(target, "lmtp:", 5) == 0) {
		if (strncmp(target + 5, "unix:", 5) == 0)
			return target[10] == '/';
		char *colon = strrchr(target + 5, ':');
		return colon != NULL && colon > target + 5 && atoi(colon + 1) > 0;
	}
	for (char *opt = strtok_r(NULL, " \t", &save); opt != NULL;
	     opt = strtok_r(NULL, " \t", &save)) {
		if (strcmp(opt, "tls=none") != 0 && strcmp(opt, "tls=may") != 0 &&
		    strcmp(opt, "tls=verify") != 0 && strncmp(opt, "auth=", 5) != 0)
			return false;
	}
	return target[0] != ':';
}

/* Validates and canonicalises one KEY VALUE line; returns an error format. */
static const char *canonical_entry(const char *table, char *key, size_t keysize,
				   const char *value)
{
	struct mailbox m;
	char canon[ADDR_BUFFER + 8];

	if (strcmp(table, "domains") == 0) {
		str_lower(key);
		if (!addr_domain_valid(key, 0))
			return "'%s' is not a domain";
		if (value[0] != '\0' && strcmp(value, "system") != 0)
			return "value must be empty or 'system', not '%s'";
	} else if (strcmp(table, "mailboxes") == 0 || strcmp(table, "aliases") == 0) {
		if (addr_parse(key, &m) != ADDR_OK)
			return "'%s' is not an address";
		str_lower(m.local);
		addr_format(&m, canon, sizeof canon);
		str_copy(key, keysize, canon);
		if (value[0] == '\0')
			return strcmp(table, "aliases") == 0 ? "alias '%s' has no target"
							     : "mailbox '%s' has no path";
		if (strcmp(table, "aliases") == 0 && !valid_address_list(value, false))
			return "bad address in the list of '%s'";
	} else if (strcmp(table, "users") == 0) {
		if (value[0] == '\0')
			return "user '%s' has no password hash";
	} else if (strcmp(table, "senders") == 0) {
		if (!valid_address_list(value, true))
			return "bad address in the list of '%s'";
	} else if (strcmp(table, "relay") == 0) {
		if (cidr_normalize(key, canon, sizeof canon) < 0)
			return "'%s' is not a network in CIDR form";
		str_copy(key, keysize, canon);
	} else if (strcmp(table, "routes") == 0) {
		str_lower(key);
		if (!valid_route(value))
			return "bad route for '%s'";
	}
	return NULL;
}

static int add_entry(struct entry_sink *sink, const char *key, const char *value)
{
	if (sink->make == NULL)
		return 0;
	return cdb_make_put(sink->make, key, (unsigned)strlen(key), value,
			    (unsigned)strlen(value), CDB_PUT_REPLACE);
}

/* An address key ends at the first blank outside its quoted local part,
 * as in "john smith"@example.test; any other at the first blank. */
static size_t key_length(const char *table, const char *line)
{
	if (strcmp(table, "mailboxes") == 0 || strcmp(table, "aliases") == 0)
		return addr_span_unquoted(line, " \t");
	return strcspn(line, " \t");
}

static int read_table(FILE *in, struct entry_sink *sink)
{
	char line[TABLE_VALUE_MAX + 512];
	unsigned lineno = 0;

	while (fgets(line, sizeof line, in) != NULL) {
		lineno++;
		size_t n = strlen(line);
		if (n > 0 && line[n - 1] != '\n' && !feof(in)) {
			bad_line(sink, lineno, "%s", "line too long");
			int ch;
			while ((ch = fgetc(in)) != EOF && ch != '\n')
				;
			continue;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' ||
				 line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0' || line[0] == '#')
			continue;
		char *value = s + key_length(sink->name, s);
		if (*value != '\0') {
			*value++ = '\0';
			value += strspn(value, " \t");
		}
		char key[TABLE_VALUE_MAX];
		if (!str_copy(key, sizeof key, s)) {
			bad_line(sink, lineno, "%s", "key too long");
			continue;
		}
		const char *problem = canonical_entry(sink->name, key, sizeof key, value);
		if (problem != NULL) {
			bad_line(sink, lineno, problem, key);
			continue;
		}
		if (add_entry(sink, key, value) < 0)
			return -1;
		if (strcmp(sink->name, "domains") == 0 && !sink->first_domain_done) {
			if (add_entry(sink, TABLE_FIRST_DOMAIN_KEY, key) < 0)
				return -1;
			sink->first_domain_done = true;
		}
	}
	return ferror(in) ? -1 : 0;
}

static void stderr_report(const char *line, void *arg)
{
	(void)arg;
	fprintf(stderr, "%s\n", line);
}

int table_check(const struct tern_conf *c, const char *name,
		void (*report)(const char *line, void *arg), void *arg)
{
	char path[PATH_MAX];
	struct entry_sink sink = { NULL, name, name, report ? report : stderr_report, arg, 0, false };

	if (conf_path(c, name, path, sizeof path) < 0)
		return -1;
	FILE *in = fopen(path, "re");
	if (in == NULL)
		return errno == ENOENT ? 0 : -1;
	int r = read_table(in, &sink);
	fclose(in);
	return r < 0 ? -1 : sink.errors;
}

/* The cdb gets the owner, group and permission bits of its text (users
 * stays readable by the group that needs it and by no one else).  Giving a
 * file away fails unless we are root or it is ours already: then the cdb
 * is not written, rather than left with an owner its readers cannot use. */
static int take_owner(int fd, const struct stat *text)
{
	if (fchown(fd, text->st_uid, text->st_gid) < 0)
		return -1;
	return fchmod(fd, text->st_mode & 0777);
}

enum { COMPILE_REPORTED = -2 };	/* failed, and said why */

/* Writes NAME.cdb.tmp from the text table NAME, into OUT (out->fd < 0:
 * there is no text table).  0, or -1 (errno) or COMPILE_REPORTED with
 * nothing left behind. */
static int compile_one(const struct tern_conf *c, const char *name,
		       struct entry_sink *sink, struct atomic_file *out)
{
	char path[PATH_MAX], cdb[PATH_MAX], file[64];
	struct cdb_make make;
	struct stat st;

	out->fd = -1;
	if (conf_path(c, name, path, sizeof path) < 0)
		return -1;
	FILE *in = fopen(path, "re");
	if (in == NULL)
		return errno == ENOENT ? 0 : -1;	/* its cdb goes, see below */
	snprintf(file, sizeof file, "%s.cdb", name);
	/* read-write: cdb_make_put(CDB_PUT_REPLACE) reads back earlier records */
	if (fstat(fileno(in), &st) < 0 || conf_path(c, file, cdb, sizeof cdb) < 0 ||
	    atomic_begin(out, cdb, NULL, 0600) < 0) {
		fclose(in);
		return -1;
	}
	if (take_owner(out->fd, &st) < 0) {
		char line[TABLE_ERROR_MAX];
		snprintf(line, sizeof line, "%s: cannot give %s its owner %lu:%lu and mode %03o: %s",
			 name, file, (unsigned long)st.st_uid, (unsigned long)st.st_gid,
			 (unsigned)(st.st_mode & 0777), strerror(errno));
		sink->report(line, sink->arg);
		atomic_abort(out);
		fclose(in);
		return COMPILE_REPORTED;
	}
	cdb_make_start(&make, out->fd);
	sink->make = &make;
	sink->name = name;
	sink->file = name;
	sink->first_domain_done = false;
	int r = read_table(in, sink);
	fclose(in);
	if (cdb_make_finish(&make) < 0)
		r = -1;
	if (r < 0)
		atomic_abort(out);
	return r;
}

int table_compile_all(const struct tern_conf *c,
		      void (*report)(const char *line, void *arg), void *arg)
{
	enum { N = sizeof table_names / sizeof table_names[0] };
	struct atomic_file out[N];
	struct entry_sink sink = { NULL, NULL, NULL, report ? report : stderr_report, arg, 0, false };
	bool system_error = false, removed = false;

	for (size_t i = 0; table_names[i] != NULL; i++) {
		int r = compile_one(c, table_names[i], &sink, &out[i]);
		if (r == COMPILE_REPORTED) {
			system_error = true;
		} else if (r < 0) {
			char line[PATH_MAX + 64];
			snprintf(line, sizeof line, "%s: %s", table_names[i], strerror(errno));
			sink.report(line, sink.arg);
			system_error = true;
		}
	}
	int failed = system_error || sink.errors > 0;
	for (size_t i = 0; table_names[i] != NULL; i++) {
		if (out[i].fd < 0)
			continue;
		if (failed)
			atomic_abort(&out[i]);
		else if (atomic_commit(&out[i]) < 0)
			system_error = true;
	}
	/* A table whose text was deleted is empty now: its old cdb goes too. */
	for (size_t i = 0; !failed && table_names[i] != NULL; i++) {
		char text[PATH_MAX], cdb[PATH_MAX], file[64];
		snprintf(file, sizeof file, "%s.cdb", table_names[i]);
		if (conf_path(c, table_names[i], text, sizeof text) < 0 ||
		    conf_path(c, file, cdb, sizeof cdb) < 0)
			continue;
		if (access(text, F_OK) < 0 && errno == ENOENT) {
			if (unlink(cdb) == 0)
				removed = true;
			else if (errno != ENOENT)
				system_error = true;
		}
	}
	if (removed && fsync_dir(c->dir) < 0)
		system_error = true;
	if (system_error)
		return -1;
	return failed ? 1 : 0;
}
