#include "helpers.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[PATH_MAX];
static unsigned serial;

int test_root_create(void)
{
	const char *tmp = getenv("TMPDIR");

	if (tmp == NULL || tmp[0] != '/')
		tmp = "/tmp";
	int n = snprintf(root, sizeof root, "%s/tern-unit.XXXXXX", tmp);
	if (n < 0 || (size_t)n >= sizeof root)
		return -1;
	return mkdtemp(root) == NULL ? -1 : 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0 && errno != ENOENT) {
		/* a folder a test made unwritable: open it up and retry */
		chmod(path, 0700);
		remove(path);
	}
	return 0;
}

void test_rm_rf(const char *path)
{
	nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

void test_root_remove(void)
{
	if (root[0] != '\0')
		test_rm_rf(root);
}

void test_mkdir(char *out)
{
	/* a forked test sees the same serial as its siblings: add the pid */
	int n = snprintf(out, PATH_MAX, "%s/t%ld.%u", root, (long)getpid(), serial++);
	ck_assert_msg(root[0] != '\0', "no scratch root");
	ck_assert(n > 0 && n < PATH_MAX);
	ck_assert_msg(mkdir(out, 0700) == 0, "mkdir %s: %s", out, strerror(errno));
}

void test_path(char *out, const char *dir, const char *name)
{
	int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
	ck_assert(n > 0 && n < PATH_MAX);
}

void test_write_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];

	test_path(path, dir, name);
	FILE *f = fopen(path, "w");
	ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
	size_t len = strlen(text);
	ck_assert(fwrite(text, 1, len, f) == len);
	ck_assert(fclose(f) == 0);
}

char *test_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (buf == NULL)
			break;
		if (n + 1 >= cap) {
			char *more = realloc(buf, cap * 2);
			if (more == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = more;
			cap *= 2;
		}
		size_t got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	if (buf == NULL)
		return NULL;
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}
