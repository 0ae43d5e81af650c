/* table_fuzz: libFuzzer harness for the cdb table reader (lib/table.c).
 *
 * Each input is written whole as a table's cdb in a scratch folder and read
 * through the real API: table_lookup() of fixed keys and of the keys the
 * input's own records hold, table_match_network(), then the file is cut
 * short under the open table.  Checked, besides the sanitizers: a value
 * found is a string inside its buffer, a handle answers the same twice,
 * and a table whose file changed size since it was opened answers only
 * TABLE_TEMPFAIL.
 * Seeds: tests/fuzz/corpus/table/ (cdbs made by ternctl compile). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "table.h"

#define FUZZ_TABLE "fuzz"
#define FUZZ_CDB "fuzz.cdb"
#define KEYS_FROM_INPUT 8
#define KEY_FROM_INPUT_MAX 300

static const char *const fixed_keys[] = {
	TABLE_FIRST_DOMAIN_KEY, "example.test", "alice@example.test", "bob@example.test",
	"postmaster@example.test", "\"john smith\"@example.test", "127.0.0.0/8", "::1/128",
};

struct scratch {
	struct tern_conf conf;
	char cdb[PATH_MAX];
	bool ready;
};

/* One scratch folder for the whole run (libFuzzer calls us in one
 * thread), removed when the run ends. */
static struct scratch the_scratch;

static void remove_scratch(void)
{
	unlink(the_scratch.cdb);
	rmdir(the_scratch.conf.dir);
}

static struct scratch *scratch(void)
{
	struct scratch *s = &the_scratch;
	const char *tmp = getenv("TMPDIR");
	char dir[PATH_MAX];

	if (s->ready)
		return s;
	snprintf(dir, sizeof dir, "%s/table-fuzz-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("table_fuzz: mkdtemp");
		abort();
	}
	conf_defaults(&s->conf);
	snprintf(s->conf.dir, sizeof s->conf.dir, "%s", dir);
	snprintf(s->cdb, sizeof s->cdb, "%s/%s", dir, FUZZ_CDB);
	s->ready = true;
	atexit(remove_scratch);
	return s;
}

static void write_input(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(path);
		abort();
	}
	for (size_t done = 0; done < size;) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0) {
			perror(path);
			abort();
		}
		done += (size_t)n;
	}
	close(fd);
}

static uint32_t u32_at(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_lookup(struct table *t, const char *key)
{
	char value[TABLE_VALUE_MAX], again[TABLE_VALUE_MAX];

	enum table_result r = table_lookup(t, key, value, sizeof value);
	if (r == TABLE_FOUND && memchr(value, '\0', sizeof value) == NULL)
		abort();
	/* the same handle gives the same answer again */
	if (table_lookup(t, key, again, sizeof again) != r ||
	    (r == TABLE_FOUND && strcmp(value, again) != 0))
		abort();
	/* asked only whether it is there, never "not found" for a key found */
	if (r == TABLE_FOUND && table_lookup(t, key, NULL, 0) != TABLE_FOUND)
		abort();
}

/* Looks up the keys of the first records of the input, as a cdb reader
 * walking them from the table of contents would see them. */
static void lookup_own_keys(struct table *t, const uint8_t *data, size_t size)
{
	char key[KEY_FROM_INPUT_MAX + 1];
	size_t pos = 2048;

	for (int i = 0; i < KEYS_FROM_INPUT && pos + 8 <= size; i++) {
		uint32_t klen = u32_at(data + pos), dlen = u32_at(data + pos + 4);
		if (klen > KEY_FROM_INPUT_MAX || klen > size - pos - 8)
			return;
		memcpy(key, data + pos + 8, klen);
		key[klen] = '\0';	/* a key with a NUL is looked up cut short */
		check_lookup(t, key);
		if (dlen > size - pos - 8 - klen)
			return;
		pos += 8 + (size_t)klen + dlen;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scratch *s = scratch();
	struct table t;

	write_input(s->cdb, data, size);
	table_init(&t, &s->conf, FUZZ_TABLE);
	for (size_t i = 0; i < sizeof fixed_keys / sizeof fixed_keys[0]; i++)
		check_lookup(&t, fixed_keys[i]);
	lookup_own_keys(&t, data, size);
	(void)table_match_network(&t, "127.0.0.1");
	(void)table_match_network(&t, "::1");

	/* cut short under the open table: only temporary failures from now on */
	if (size > 0 && truncate(s->cdb, (off_t)(size / 2)) == 0)
		for (size_t i = 0; i < sizeof fixed_keys / sizeof fixed_keys[0]; i++)
			if (table_lookup(&t, fixed_keys[i], NULL, 0) != TABLE_TEMPFAIL)
				abort();
	table_close(&t);
	return 0;
}
