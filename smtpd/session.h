/* session: one SMTP session of tern-smtpd, from banner to close.
 *
 * Promises: every command gets the RFC 5321 reply with an enhanced status
 * code; only recipients that got 250 reach the envelope; a message is
 * answered 250 only after tern-queue exited 0; every limit of tern.conf
 * holds, and after max_errors bad commands the session ends with 421. */
#ifndef TERN_SESSION_H
#define TERN_SESSION_H

#include "conf.h"

struct client_info {
	char ip[64];
	char port[16];
	char local_ip[64];
	bool relay_env;		/* RELAYCLIENT was set */
};

/* tern-smtpd's flags. */
struct session_mode {
	bool implicit_tls;	/* --tls: the handshake before the greeting */
	bool submission;	/* --submission: AUTH before MAIL, owned senders */
};

/* Runs the session on fds 0/1; returns the process exit code. */
int session_run(const struct tern_conf *conf, const struct client_info *client,
		const struct session_mode *mode);

#endif
