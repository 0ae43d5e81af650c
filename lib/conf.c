#include "conf.h"

#include <ctype.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "spool.h"
#include "util.h"

enum kind {
	K_STRING, K_HOSTNAME, K_ADDRESS, K_PATH, K_PATH_LIST, K_BOOL, K_DURATION, K_SIZE,
	K_COUNT, K_PORT
};

struct key {
	const char *name;
	enum kind kind;
	size_t offset;
	size_t size;
	uint64_t min, max;	/* numbers: the allowed range, when max > 0 */
};

#define FIELD(name, kind) { #name, kind, offsetof(struct tern_conf, name), \
		sizeof(((struct tern_conf *)0)->name), 0, 0 }
#define RANGED(name, kind, min, max) { #name, kind, \
		offsetof(struct tern_conf, name), sizeof(((struct tern_conf *)0)->name), \
		min, max }

/* set_value's answer for a number outside its key's range; the caller
 * names the range. */
static const char out_of_range_text[] = "out of range";

/* No size setting goes above this, so no sum of two can overflow. */
#define SIZE_SETTING_MAX ((uint64_t)1 << 50)

static const struct key keys[] = {
	FIELD(hostname, K_HOSTNAME),
	FIELD(instance, K_BOOL),
	FIELD(spool, K_PATH),
	FIELD(max_message_size, K_SIZE),
	RANGED(max_recipients, K_COUNT, 1, SPOOL_RCPTS_MAX),
	FIELD(max_errors, K_COUNT),
	RANGED(max_line_length, K_COUNT, 1, 1 << 20),
	FIELD(max_header_size, K_SIZE),
	RANGED(max_received, K_COUNT, 1, 1000),
	RANGED(command_timeout, K_DURATION, 1, 86400),
	RANGED(data_timeout, K_DURATION, 1, 86400),
	RANGED(data_min_rate, K_COUNT, 0, 1 << 30),
	RANGED(session_timeout, K_DURATION, 1, 7 * 86400),
	RANGED(queue_timeout, K_DURATION, 1, 86400),
	FIELD(queue_minfree, K_SIZE),
	FIELD(queue_socket, K_PATH),
	RANGED(queue_connections, K_COUNT, 1, 100000),
	RANGED(queue_connections_per_uid, K_COUNT, 1, 100000),
	FIELD(recipient_delimiter, K_STRING),
	RANGED(local_concurrency, K_COUNT, 1, 1000),
	RANGED(active_limit, K_COUNT, 1, 100000000),
	RANGED(local_timeout, K_DURATION, 1, 86400),
	RANGED(remote_concurrency, K_COUNT, 1, 10000),
	RANGED(remote_concurrency_per_destination, K_COUNT, 1, 10000),
	FIELD(retry_first, K_DURATION),
	FIELD(retry_max, K_DURATION),
	FIELD(queue_lifetime, K_DURATION),
	FIELD(delay_warning, K_BOOL),
	FIELD(delay_warning_after, K_DURATION),
	FIELD(bounce_max_size, K_SIZE),
	FIELD(dns_server, K_ADDRESS),
	FIELD(smtp_port, K_PORT),
	FIELD(tls_cert, K_PATH_LIST),
	FIELD(tls_key, K_PATH_LIST),
	FIELD(tls_priority, K_STRING),
	RANGED(tls_handshake_timeout, K_DURATION, 1, 86400),
	FIELD(tls_ca_file, K_PATH),
	FIELD(auth_plaintext, K_BOOL),
	RANGED(auth_max_failures, K_COUNT, 1, 1000),
	FIELD(auth_checkpassword, K_PATH),
	FIELD(received_auth, K_BOOL),
};

const char *conf_choose_path(const char *flag, bool ignore_env)
{
	if (ignore_env)
		return CONFDIR "/tern.conf";
	if (flag != NULL && flag[0] != '\0')
		return flag;
	const char *env = getenv("TERN_CONFIG");
	if (env != NULL && env[0] != '\0')
		return env;
	return CONFDIR "/tern.conf";
}

void conf_defaults(struct tern_conf *c)
{
	memset(c, 0, sizeof *c);
	str_copy(c->spool, sizeof c->spool, SPOOLDIR);
	c->max_message_size = 35ULL << 20;
	c->max_recipients = 100;
	c->max_errors = 20;
	c->max_line_length = 2048;
	c->max_header_size = 1ULL << 20;
	c->max_received = 100;
	c->command_timeout = 5 * 60;
	c->data_timeout = 10 * 60;
	c->data_min_rate = 500;
	c->session_timeout = 3600;
	c->queue_timeout = 10 * 60;
	c->queue_minfree = 64ULL << 20;
	c->queue_connections = 500;
	c->queue_connections_per_uid = 250;
	c->local_concurrency = 20;
	c->active_limit = 20000;
	c->local_timeout = 10 * 60;
	c->remote_concurrency = 50;
	c->remote_concurrency_per_destination = 10;
	c->retry_first = 5 * 60;
	c->retry_max = 4 * 3600;
	c->queue_lifetime = 5 * 86400;
	c->delay_warning_after = 4 * 3600;
	c->bounce_max_size = 256ULL << 10;
	c->smtp_port = 25;
	str_copy(c->tls_priority, sizeof c->tls_priority,
		 "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2");
	c->tls_handshake_timeout = 30;
	c->auth_max_failures = 3;
	c->received_auth = true;
}

static int parse_number(const char *s, uint64_t *number, const char **suffix)
{
	char *end;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	*number = v;
	*suffix = end;
	return 0;
}

int conf_parse_duration(const char *s, unsigned *out)
{
	uint64_t v, unit;
	const char *suffix;

	if (parse_number(s, &v, &suffix) < 0)
		return -1;
	if (strcmp(suffix, "") == 0 || strcmp(suffix, "s") == 0)
		unit = 1;
	else if (strcmp(suffix, "m") == 0)
		unit = 60;
	else if (strcmp(suffix, "h") == 0)
		unit = 3600;
	else if (strcmp(suffix, "d") == 0)
		unit = 86400;
	else
		return -1;
	if (v > UINT32_MAX / unit)
		return -1;
	*out = (unsigned)(v * unit);
	return 0;
}

int conf_parse_size(const char *s, uint64_t *out)
{
	uint64_t v, unit;
	const char *suffix;

	if (parse_number(s, &v, &suffix) < 0)
		return -1;
	if (strcmp(suffix, "") == 0)
		unit = 1;
	else if (strcmp(suffix, "K") == 0 || strcmp(suffix, "k") == 0)
		unit = 1ULL << 10;
	else if (strcmp(suffix, "M") == 0)
		unit = 1ULL << 20;
	else if (strcmp(suffix, "G") == 0)
		unit = 1ULL << 30;
	else
		return -1;
	if (v > UINT64_MAX / unit)
		return -1;
	*out = v * unit;
	return 0;
}

int conf_parse_bool(const char *s, bool *out)
{
	if (strcmp(s, "yes") == 0)
		*out = true;
	else if (strcmp(s, "no") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* A comma list of paths, each resolved against tern.conf's folder. */
static const char *resolve_list(const struct tern_conf *c, const char *value, char *out,
				size_t size)
{
	char copy[CONF_LIST_MAX], one[PATH_MAX];
	size_t used = 0;

	if (!str_copy(copy, sizeof copy, value))
		return "value too long";
	out[0] = '\0';
	for (char *save = NULL, *item = strtok_r(copy, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		item = str_trim(item);
		if (item[0] == '\0')
			return "empty item in the list";
		if (conf_path(c, item, one, sizeof one) < 0)
			return "path too long";
		int w = snprintf(out + used, size - used, "%s%s", used ? "," : "", one);
		if (w < 0 || (size_t)w >= size - used)
			return "value too long";
		used += (size_t)w;
	}
	return NULL;
}

static bool out_of_range(const struct key *key, uint64_t number)
{
	return key->max > 0 && (number < key->min || number > key->max);
}

/* A port number, 1 to 65535, digits only. */
static bool parse_port(const char *s, unsigned *out)
{
	uint64_t number;

	if (s[0] == '\0' || strspn(s, "0123456789") != strlen(s) ||
	    conf_parse_size(s, &number) < 0 || number == 0 || number > 65535)
		return false;
	*out = (unsigned)number;
	return true;
}

/* A domain name or an address literal such as [192.0.2.1], in ASCII: what
 * a banner and a Received header can name. */
static bool valid_hostname(const char *s)
{
	return addr_domain_valid(s, ADDR_DOMAIN_LITERAL | ADDR_DOMAIN_ASCII);
}

bool conf_server_address_valid(const char *s)
{
	const char *host = s, *end, *port;
	int family = AF_INET;

	if (s[0] == '[') {
		host = s + 1;
		end = strchr(host, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return false;
		port = end[1] == ':' ? end + 2 : NULL;
		family = AF_INET6;
	} else {
		end = host + strcspn(host, ":");
		port = *end == ':' ? end + 1 : NULL;
	}
	char copy[INET6_ADDRSTRLEN];
	unsigned char binary[sizeof(struct in6_addr)];
	unsigned number;
	size_t n = (size_t)(end - host);
	if (n >= sizeof copy)
		return false;
	memcpy(copy, host, n);
	copy[n] = '\0';
	return inet_pton(family, copy, binary) == 1 && (port == NULL || parse_port(port, &number));
}

/* Stores VALUE into the field KEY describes; returns a message on error. */
static const char *set_value(struct tern_conf *c, const struct key *key,
			     const char *value)
{
	void *field = (char *)c + key->offset;
	uint64_t number;

	switch (key->kind) {
	case K_STRING:
		if (!str_copy(field, key->size, value))
			return "value too long";
		return NULL;
	case K_PATH:
		if (value[0] == '\0') {
			*(char *)field = '\0';
			return NULL;
		}
		if (conf_path(c, value, field, key->size) < 0)
			return "path too long";
		return NULL;
	case K_PATH_LIST:
		return resolve_list(c, value, field, key->size);
	case K_BOOL:
		return conf_parse_bool(value, field) < 0 ? "expected yes or no" : NULL;
	case K_HOSTNAME:
		if (!valid_hostname(value))
			return "expected a host name such as mail.example.org";
		return str_copy(field, key->size, value) ? NULL : "value too long";
	case K_ADDRESS:
		if (value[0] != '\0' && !conf_server_address_valid(value))
			return "expected IP, IP:port or [IPv6]:port";
		return str_copy(field, key->size, value) ? NULL : "value too long";
	case K_DURATION:
		if (conf_parse_duration(value, field) < 0)
			return "expected a duration such as 90s, 5m, 2h or 5d";
		return out_of_range(key, *(unsigned *)field) ? out_of_range_text : NULL;
	case K_SIZE:
		if (conf_parse_size(value, field) < 0)
			return "expected a size such as 512K, 35M or 1G";
		if (*(uint64_t *)field > SIZE_SETTING_MAX)
			return "expected a size of at most 1048576G";
		return NULL;
	case K_COUNT:
		if (conf_parse_size(value, &number) < 0 || number > UINT32_MAX
		    || strspn(value, "0123456789") != strlen(value))
			return "expected a whole number";
		if (out_of_range(key, number))
			return out_of_range_text;
		*(unsigned *)field = (unsigned)number;
		return NULL;
	case K_PORT:
		return parse_port(value, field) ? NULL : "expected a port number from 1 to 65535";
	}
	return "internal error";
}

static bool was_seen(const bool *seen, const char *name)
{
	const struct key *key = find_key(name);
	return key != NULL && seen[key - keys];
}

/* INTERFACES.md: what an instance (instance = yes) has unless it says. */
static void instance_defaults(struct tern_conf *c, const bool *seen)
{
	if (!was_seen(seen, "spool"))
		conf_path(c, "../spool", c->spool, sizeof c->spool);
	if (!was_seen(seen, "recipient_delimiter"))
		str_copy(c->recipient_delimiter, sizeof c->recipient_delimiter, "+");
	if (!was_seen(seen, "dns_server"))
		str_copy(c->dns_server, sizeof c->dns_server, "127.0.0.1");
	if (!was_seen(seen, "tls_cert"))
		conf_path(c, "tls/cert.pem", c->tls_cert, sizeof c->tls_cert);
	if (!was_seen(seen, "tls_key"))
		conf_path(c, "tls/key.pem", c->tls_key, sizeof c->tls_key);
}

static int set_location(struct tern_conf *c, const char *path)
{
	char cwd[PATH_MAX];

	if (path[0] == '/') {
		if (!str_copy(c->path, sizeof c->path, path))
			return -1;
	} else {
		if (getcwd(cwd, sizeof cwd) == NULL)
			return -1;
		if (path_join(c->path, sizeof c->path, cwd, path) < 0)
			return -1;
	}
	str_copy(c->dir, sizeof c->dir, c->path);
	char *slash = strrchr(c->dir, '/');
	if (slash == c->dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return 0;
}

static int fail(char *err, size_t errsize, const char *path, unsigned line,
		const char *message)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (line > 0)
		snprintf(err, errsize, "%s:%u: %s", base, line, message);
	else
		snprintf(err, errsize, "%s: %s", path, message);
	return -1;
}

int conf_load(struct tern_conf *c, const char *path, char *err, size_t errsize)
{
	char line[4096];
	unsigned lineno = 0;
	bool seen[sizeof keys / sizeof keys[0]] = { false };

	conf_defaults(c);
	if (set_location(c, path) < 0)
		return fail(err, errsize, path, 0, "path too long");
	FILE *f = fopen(c->path, "re");
	if (f == NULL)
		return fail(err, errsize, path, 0, strerror(errno));
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			fclose(f);
			return fail(err, errsize, path, lineno, "line too long");
		}
		char *s = str_trim(line);
		if (s[0] == '\0' || line[0] == '#')
			continue;
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			fclose(f);
			return fail(err, errsize, path, lineno, "expected key = value");
		}
		*eq = '\0';
		char *name = str_trim(s);
		char *value = str_trim(eq + 1);
		const struct key *key = find_key(name);
		if (key == NULL) {
			char message[300];
			snprintf(message, sizeof message, "unknown key '%.200s'", name);
			fclose(f);
			return fail(err, errsize, path, lineno, message);
		}
		const char *problem = set_value(c, key, value);
		if (problem != NULL) {
			char message[400];
			if (problem == out_of_range_text)
				snprintf(message, sizeof message, "%s: expected %s from %llu%s to %llu%s",
					 name, key->kind == K_DURATION ? "a duration" : "a number",
					 (unsigned long long)key->min, key->kind == K_DURATION ? "s" : "",
					 (unsigned long long)key->max, key->kind == K_DURATION ? "s" : "");
			else
				snprintf(message, sizeof message, "%s: %s", name, problem);
			fclose(f);
			return fail(err, errsize, path, lineno, message);
		}
		seen[key - keys] = true;
	}
	if (ferror(f)) {
		fclose(f);
		return fail(err, errsize, path, 0, strerror(errno));
	}
	fclose(f);
	if (c->instance)
		instance_defaults(c, seen);
	if (!c->instance && c->hostname[0] == '\0')
		return fail(err, errsize, path, lineno ? lineno : 1,
			    "hostname: required unless instance = yes");
	if (c->hostname[0] == '\0')
		str_copy(c->hostname, sizeof c->hostname, "localhost");
	if (c->queue_socket[0] == '\0' &&
	    spool_path(c->queue_socket, sizeof c->queue_socket, c->spool, SPOOL_PUBLIC,
		       SPOOL_QUEUE_SOCKET) < 0)
		return fail(err, errsize, path, 0, "spool: path too long");
	return 0;
}

/* Joins NAME to tern.conf's folder, folding each leading "../" into it. */
int conf_path(const struct tern_conf *c, const char *name, char *out, size_t outsize)
{
	char dir[PATH_MAX];

	if (name[0] == '/')
		return path_join(out, outsize, NULL, name);
	str_copy(dir, sizeof dir, c->dir);
	while (strncmp(name, "../", 3) == 0 || strcmp(name, "..") == 0) {
		char *slash = strrchr(dir, '/');
		if (slash == NULL || slash == dir)
			break;
		*slash = '\0';
		name += name[2] == '/' ? 3 : 2;
	}
	if (name[0] == '\0')
		return str_copy(out, outsize, dir) ? 0 : -1;
	return path_join(out, outsize, dir, name);
}
