/* ternctl: shared pieces of the administration tool's subcommands. */
#ifndef TERN_TERNCTL_H
#define TERN_TERNCTL_H

#include <time.h>

#include "conf.h"

enum { CTL_OK = 0, CTL_REFUSED = 1, CTL_USAGE = 2, CTL_TEMPORARY = 111 };

struct ctl {
	const char *config_flag;	/* -C FILE, or NULL */
	int argc;			/* the subcommand's own arguments */
	char **argv;
};

int ctl_load_conf(const struct ctl *ctl, struct tern_conf *conf);

int cmd_init(struct ctl *ctl);
int cmd_compile(struct ctl *ctl);
int cmd_check(struct ctl *ctl);
int cmd_queue(struct ctl *ctl);
int cmd_show(struct ctl *ctl);
int cmd_stats(struct ctl *ctl);
int cmd_passwd(struct ctl *ctl);
int cmd_request(struct ctl *ctl, const char *verb);	/* flush, delete, hold, ... */

/* Writes a self-signed certificate and key for HOSTNAME (0600 key). */
int tls_make_certificate(const char *hostname, const char *cert_path, const char *key_path);

/* Checks every pair of the comma lists CERTS and KEYS (tern.conf's
 * tls_cert, tls_key) at NOW: each error goes to stderr as "FILE: message"
 * and counts; a certificate expiring within 14 days is a warning, which
 * does not.  Returns the count of errors; empty lists have none. */
int tls_check(const char *certs, const char *keys, time_t now);

#endif
