/* helpers: temporary folders and small file utilities for the unit tests.
 *
 * main() makes one scratch folder before any test runs and removes it after
 * the last one, so a failing test (whose child exits early, skipping its
 * own clean-up) never leaves anything behind. */
#ifndef TERN_UNIT_HELPERS_H
#define TERN_UNIT_HELPERS_H

#include <limits.h>
#include <stddef.h>

/* Makes the scratch root (main only); 0 on success. */
int test_root_create(void);
/* Removes the scratch root and everything in it (main only). */
void test_root_remove(void);

/* A fresh, empty folder inside the scratch root; its absolute path goes to
 * OUT (PATH_MAX).  Fails the running test if it cannot be made. */
void test_mkdir(char *out);
/* Removes PATH and everything under it; quiet if missing. */
void test_rm_rf(const char *path);

/* Writes TEXT to DIR/NAME (creating or replacing); fails the test on error. */
void test_write_file(const char *dir, const char *name, const char *text);
/* Reads a whole file into a NUL-terminated malloc'd buffer (free it);
 * *LEN gets its length when LEN is not NULL.  NULL if it cannot be read. */
char *test_read_file(const char *path, size_t *len);
/* DIR/NAME into OUT (PATH_MAX); fails the test if too long. */
void test_path(char *out, const char *dir, const char *name);

#endif
