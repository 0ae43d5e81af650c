/* util: small helpers every tern program uses.
 *
 * Promises: write_all() writes every byte or fails with errno set; fsync_dir()
 * makes a directory's entries durable; path_join() never overflows and fails
 * instead of truncating; qid_make() returns a fresh queue id of [0-9A-Za-z];
 * find_program() locates a sibling tern program as INTERFACES.md orders it. */
#ifndef TERN_UTIL_H
#define TERN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define QID_MAX 32

int write_all(int fd, const void *buf, size_t len);
ssize_t read_full(int fd, void *buf, size_t len);
int fsync_dir(const char *path);
int path_join(char *out, size_t outsize, const char *dir, const char *name);
bool str_copy(char *out, size_t outsize, const char *in);
void str_lower(char *s);
/* Cuts spaces, tabs, CR and LF from both ends of S, in place. */
char *str_trim(char *s);
/* A plain login name: lower-case letters, digits, '.', '_', '-', not
 * starting with '.' or '-', at most 32 octets; never a path. */
bool login_name_valid(const char *name);

/* T in local time as RFC 5322 3.3 writes it: "Tue, 01 Dec 2026 10:00:00 +0100". */
#define RFC5322_DATE_MAX 64
void rfc5322_date(time_t t, char *out, size_t size);

void qid_make(char out[QID_MAX]);
bool qid_valid(const char *id);

/* Finds NAME next to the running executable, then ../libexec/tern/, then
 * ../sbin/, then the compiled-in LIBEXECDIR and PREFIX/sbin.  Returns 0 and
 * the path in OUT, or -1 if none is executable. */
int find_program(const char *name, char *out, size_t outsize);

/* Sets a file descriptor's non-blocking flag. */
int fd_nonblock(int fd);

/* posix_spawn PROGRAM with ARGV and ENVP (NULL: this environment), FDS[i]
 * becoming fd i in the child for each of the N (FDS[i] < 0: left as it
 * is).  Cheaper than fork: nothing of this process is copied.  The child
 * starts with every signal at its default and none blocked.  0 with *PID
 * set, or an errno value. */
int spawn_with_fds(pid_t *pid, const char *program, char *const argv[], char *const envp[],
		   const int *fds, size_t n);
/* The same, the child leading a process group of its own (kill(-pid)
 * then ends it and whatever it started). */
int spawn_group_with_fds(pid_t *pid, const char *program, char *const argv[],
			 char *const envp[], const int *fds, size_t n);
/* For a forked child before exec: every signal at its default, none
 * blocked, as spawn_with_fds gives. */
void signals_default(void);

#endif
