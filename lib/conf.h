/* conf: tern.conf, "key = value" a line, as INTERFACES.md fixes it.
 *
 * Promises: conf_load() knows every key and its default; an unknown key or a
 * bad value fails with "tern.conf:LINE: message" in ERR and nothing else is
 * trusted; relative paths come back resolved against tern.conf's folder. */
#ifndef TERN_CONF_H
#define TERN_CONF_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef CONFDIR
#define CONFDIR "/etc/tern"
#endif
#ifndef SPOOLDIR
#define SPOOLDIR "/var/spool/tern"
#endif

#define CONF_ERROR_MAX 512
#define CONF_HOSTNAME_MAX 256
#define CONF_LIST_MAX 2048

struct tern_conf {
	char path[PATH_MAX];	/* tern.conf itself, absolute */
	char dir[PATH_MAX];	/* its folder: tables live here */
	char hostname[CONF_HOSTNAME_MAX];
	bool instance;
	char spool[PATH_MAX];
	uint64_t max_message_size;
	unsigned max_recipients;
	unsigned max_errors;
	unsigned max_line_length;
	uint64_t max_header_size;
	unsigned max_received;
	unsigned command_timeout;	/* seconds, as every duration here */
	unsigned data_timeout;
	unsigned data_min_rate;	/* bytes per second */
	unsigned session_timeout;
	unsigned queue_timeout;
	uint64_t queue_minfree;
	char queue_socket[PATH_MAX];	/* "" in the file: <spool>/public/queue */
	unsigned queue_connections;	/* the queue service's, in all */
	unsigned queue_connections_per_uid;
	char recipient_delimiter[16];
	unsigned local_concurrency;
	unsigned active_limit;	/* messages tern-deliver holds in memory */
	unsigned local_timeout;
	unsigned remote_concurrency;
	unsigned remote_concurrency_per_destination;
	unsigned retry_first;
	unsigned retry_max;
	unsigned queue_lifetime;
	bool delay_warning;
	unsigned delay_warning_after;
	uint64_t bounce_max_size;
	char dns_server[128];
	unsigned smtp_port;
	char tls_cert[CONF_LIST_MAX];
	char tls_key[CONF_LIST_MAX];
	char tls_priority[256];
	unsigned tls_handshake_timeout;
	char tls_ca_file[PATH_MAX];
	bool auth_plaintext;
	unsigned auth_max_failures;
	char auth_checkpassword[PATH_MAX];
	bool received_auth;
};

/* The file a program should read: FLAG (from -C) if given, else
 * $TERN_CONFIG, else CONFDIR/tern.conf.  IGNORE_ENV is for set-id use. */
const char *conf_choose_path(const char *flag, bool ignore_env);

void conf_defaults(struct tern_conf *c);
int conf_load(struct tern_conf *c, const char *path, char *err, size_t errsize);

/* Resolves NAME against tern.conf's folder unless it is absolute. */
int conf_path(const struct tern_conf *c, const char *name, char *out, size_t outsize);

/* Value parsers, shared with the tests. 0 on success. */
int conf_parse_duration(const char *s, unsigned *out);
int conf_parse_size(const char *s, uint64_t *out);
/* IP, IP:port or [IPv6]:port, as dns_server takes it. */
bool conf_server_address_valid(const char *s);
int conf_parse_bool(const char *s, bool *out);

#endif
