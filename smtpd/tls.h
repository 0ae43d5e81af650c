/* tls: TLS for one tern-smtpd session, through the module loaded on demand.
 *
 * Promises: a session that never calls tls_start() never loads the module
 * nor GnuTLS; tls_start() either gives a session ready for its handshake
 * or says in ERR why not (module missing, a certificate or key that cannot
 * be loaded, a bad tls_priority), leaving nothing behind. */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stddef.h>

#include "conf.h"
#include "io.h"
#include "tls_module.h"

/* Loads the module and makes a server session on fds IN_FD and OUT_FD
 * with CONF's certificates, keys and priority.  0, or -1 with ERR set. */
int tls_start(struct io_tls *t, const struct tern_conf *conf, int in_fd, int out_fd,
	      char *err, size_t errsize);

/* Sends the closure alert if it can, and frees the session. */
void tls_end(struct io_tls *t);

#endif
