/* spool_path() alone, so that a program that only names spool files
 * (tern-smtpd, through conf.c) does not link the spool writer and its
 * CRC code (whose CPU check runs at every start). */
#include "spool.h"

#include <errno.h>
#include <stdio.h>

int spool_path(char *out, size_t outsize, const char *spool, const char *dir,
	       const char *id)
{
	int n;

	if (id == NULL)
		n = snprintf(out, outsize, "%s/%s", spool, dir);
	else
		n = snprintf(out, outsize, "%s/%s/%s", spool, dir, id);
	if (n < 0 || (size_t)n >= outsize) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}
