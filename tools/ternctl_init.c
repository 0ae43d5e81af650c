/* ternctl init, compile, check. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "atomic.h"
#include "spool.h"
#include "table.h"
#include "ternctl.h"
#include "util.h"

/* The names point into argv. */
struct init_args {
	const char *dir;
	const char **domains;
	size_t ndomains;
	const char **users;
	size_t nusers;
	const char *hostname;
	const char *dns_server;
};

static int make_dirs(const char *path, mode_t mode)
{
	char copy[PATH_MAX];

	if (!str_copy(copy, sizeof copy, path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = copy + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(copy, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static bool takes_value(const char *arg)
{
	return strcmp(arg, "--domain") == 0 || strcmp(arg, "--user") == 0 ||
	       strcmp(arg, "--hostname") == 0 || strcmp(arg, "--dns-server") == 0;
}

/* Fills A, whose arrays have room for every argument. */
static int parse_init_args(struct ctl *ctl, struct init_args *a)
{
	for (int i = 0; i < ctl->argc; i++) {
		const char *arg = ctl->argv[i];
		const char *value = i + 1 < ctl->argc ? ctl->argv[i + 1] : NULL;
		if (takes_value(arg) && value == NULL) {
			fprintf(stderr, "ternctl init: '%s' needs a value\n", arg);
			return -1;
		}
		if (strcmp(arg, "--domain") == 0) {
			a->domains[a->ndomains++] = value;
			i++;
		} else if (strcmp(arg, "--user") == 0) {
			a->users[a->nusers++] = value;
			i++;
		} else if (strcmp(arg, "--hostname") == 0) {
			a->hostname = value;
			i++;
		} else if (strcmp(arg, "--dns-server") == 0) {
			a->dns_server = value;
			i++;
		} else if (arg[0] != '-' && a->dir == NULL) {
			a->dir = arg;
		} else {
			fprintf(stderr, "ternctl init: unexpected argument '%s'\n", arg);
			return -1;
		}
	}
	if (a->dir == NULL || a->ndomains == 0 || a->nusers == 0) {
		fprintf(stderr, "usage: ternctl init DIR --domain D... --user NAME... "
			"[--hostname H] [--dns-server IP[:port]]\n");
		return -1;
	}
	for (size_t i = 0; i < a->ndomains; i++) {
		if (!addr_domain_valid(a->domains[i], ADDR_DOMAIN_ASCII)) {
			fprintf(stderr, "ternctl init: '%s' is not a domain name\n", a->domains[i]);
			return -1;
		}
	}
	for (size_t i = 0; i < a->nusers; i++) {
		if (!login_name_valid(a->users[i])) {
			fprintf(stderr, "ternctl init: '%s' is not a user name "
				"(lower-case letters, digits, '.', '_', '-')\n", a->users[i]);
			return -1;
		}
	}
	if (a->hostname == NULL)
		a->hostname = a->domains[0];
	if (!addr_domain_valid(a->hostname, ADDR_DOMAIN_ASCII)) {
		fprintf(stderr, "ternctl init: '%s' is not a host name\n", a->hostname);
		return -1;
	}
	if (a->dns_server != NULL && !conf_server_address_valid(a->dns_server)) {
		fprintf(stderr, "ternctl init: '%s' is not IP, IP:port or [IPv6]:port\n",
			a->dns_server);
		return -1;
	}
	return 0;
}

static FILE *open_table(const char *etc, const char *name, mode_t mode)
{
	char path[PATH_MAX];

	if (path_join(path, sizeof path, etc, name) < 0)
		return NULL;
	FILE *f = fopen(path, "we");
	if (f != NULL)
		fchmod(fileno(f), mode);
	return f;
}

static int close_table(FILE *f)
{
	if (f == NULL)
		return -1;
	int bad = ferror(f);
	return fclose(f) != 0 || bad ? -1 : 0;
}

/* Writes the draft tern.conf into OUT's temporary file. */
static int write_config(const struct init_args *a, struct atomic_file *out)
{
	int fd = dup(out->fd);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fprintf(f, "# tern instance made by ternctl init; see tern.conf(5).\n"
		   "hostname = %s\n"
		   "instance = yes\n"
		   "spool = ../spool\n"
		   "recipient_delimiter = +\n"
		   "dns_server = %s\n"
		   "tls_cert = tls/cert.pem\n"
		   "tls_key = tls/key.pem\n",
		a->hostname, a->dns_server ? a->dns_server : "127.0.0.1");
	return close_table(f);
}

static int write_tables(const struct init_args *a, const char *etc)
{
	FILE *f;
	int r = 0;

	f = open_table(etc, "domains", 0644);
	if (f) {
		fprintf(f, "# local domains; value 'system' sends unknown users to ~/Maildir\n");
		for (size_t i = 0; i < a->ndomains; i++)
			fprintf(f, "%s\n", a->domains[i]);
	}
	r |= close_table(f);
	f = open_table(etc, "mailboxes", 0644);
	if (f) {
		fprintf(f, "# address  Maildir (relative to this folder)\n");
		for (size_t u = 0; u < a->nusers; u++)
			for (size_t i = 0; i < a->ndomains; i++)
				fprintf(f, "%s@%s ../mail/%s/Maildir\n", a->users[u], a->domains[i],
					a->users[u]);
	}
	r |= close_table(f);
	f = open_table(etc, "aliases", 0644);
	if (f) {
		fprintf(f, "# address  addresses, comma-separated\n");
		for (size_t i = 0; i < a->ndomains; i++) {
			fprintf(f, "postmaster@%s %s@%s\n", a->domains[i], a->users[0], a->domains[0]);
			fprintf(f, "abuse@%s %s@%s\n", a->domains[i], a->users[0], a->domains[0]);
		}
	}
	r |= close_table(f);
	f = open_table(etc, "senders", 0644);
	if (f) {
		fprintf(f, "# AUTH name  addresses or @domain it may send as\n");
		for (size_t u = 0; u < a->nusers; u++) {
			fprintf(f, "%s ", a->users[u]);
			for (size_t i = 0; i < a->ndomains; i++)
				fprintf(f, "%s%s@%s", i ? "," : "", a->users[u], a->domains[i]);
			fprintf(f, "\n");
		}
	}
	r |= close_table(f);
	f = open_table(etc, "relay", 0644);
	if (f)
		fprintf(f, "# client networks allowed to relay, in CIDR form (127.0.0.0/8)\n");
	r |= close_table(f);
	f = open_table(etc, "users", 0600);
	if (f)
		fprintf(f, "# AUTH name  crypt(3) hash; set with ternctl passwd NAME\n");
	r |= close_table(f);
	f = open_table(etc, "routes", 0644);
	if (f)
		fprintf(f, "# DOMAIN or *  [HOST][:PORT] | HOST[:PORT] | lmtp:HOST:PORT "
			   "[tls=none|may|verify] [auth=FILE]\n");
	r |= close_table(f);
	return r;
}

static int make_maildirs(const char *dir, const struct init_args *a)
{
	static const char *const subdirs[] = { "tmp", "new", "cur" };
	char path[PATH_MAX];

	for (size_t u = 0; u < a->nusers; u++) {
		for (size_t i = 0; i < 3; i++) {
			if (snprintf(path, sizeof path, "%s/mail/%s/Maildir/%s", dir, a->users[u],
				     subdirs[i]) >= (int)sizeof path)
				return -1;
			if (make_dirs(path, 0700) < 0)
				return -1;
		}
	}
	return 0;
}

static int make_instance(const struct init_args *a)
{
	char dir[PATH_MAX], etc[PATH_MAX], path[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	struct tern_conf conf;

	if (make_dirs(a->dir, 0755) < 0 || realpath(a->dir, dir) == NULL) {
		fprintf(stderr, "ternctl init: %s: %s\n", a->dir, strerror(errno));
		return CTL_REFUSED;
	}
	if (path_join(etc, sizeof etc, dir, "etc") < 0 ||
	    path_join(path, sizeof path, etc, "tern.conf") < 0)
		return CTL_REFUSED;
	if (access(path, F_OK) == 0) {
		fprintf(stderr, "ternctl init: %s exists; not touching it\n", path);
		return CTL_REFUSED;
	}
	if (make_dirs(etc, 0755) < 0 || make_maildirs(dir, a) < 0 ||
	    write_tables(a, etc) < 0) {
		fprintf(stderr, "ternctl init: %s: %s\n", dir, strerror(errno));
		return CTL_REFUSED;
	}
	if (path_join(cert, sizeof cert, etc, "tls") < 0 || make_dirs(cert, 0700) < 0) {
		fprintf(stderr, "ternctl init: %s: %s\n", cert, strerror(errno));
		return CTL_REFUSED;
	}
	if (path_join(cert, sizeof cert, etc, "tls/cert.pem") < 0 ||
	    path_join(key, sizeof key, etc, "tls/key.pem") < 0 ||
	    tls_make_certificate(a->hostname, cert, key) < 0)
		return CTL_REFUSED;
	/* tern.conf last (written as tern.conf.new, put in place when all
	 * else is done): its presence means the instance is whole, and a
	 * failed init can simply be run again. */
	char err[CONF_ERROR_MAX], draft[PATH_MAX];
	struct atomic_file out;
	if (path_join(draft, sizeof draft, etc, "tern.conf.new") < 0 ||
	    atomic_begin(&out, path, draft, 0644) < 0) {
		fprintf(stderr, "ternctl init: %s: %s\n", draft, strerror(errno));
		return CTL_REFUSED;
	}
	if (write_config(a, &out) < 0) {
		fprintf(stderr, "ternctl init: %s: %s\n", draft, strerror(errno));
		atomic_abort(&out);
		return CTL_REFUSED;
	}
	if (conf_load(&conf, draft, err, sizeof err) < 0) {
		fprintf(stderr, "ternctl init: %s\n", err);
		atomic_abort(&out);
		return CTL_REFUSED;
	}
	if (spool_create(conf.spool) < 0) {
		fprintf(stderr, "ternctl init: %s: %s\n", conf.spool, strerror(errno));
		atomic_abort(&out);
		return CTL_REFUSED;
	}
	if (table_compile_all(&conf, NULL, NULL) != 0) {
		atomic_abort(&out);
		return CTL_REFUSED;
	}
	if (atomic_commit(&out) < 0) {
		fprintf(stderr, "ternctl init: %s: %s\n", path, strerror(errno));
		return CTL_REFUSED;
	}
	printf("instance ready in %s\n  config: %s\n  spool:  %s\n", dir, path, conf.spool);
	for (size_t u = 0; u < a->nusers; u++)
		printf("  mail for %s@%s lands in %s/mail/%s/Maildir/new/\n", a->users[u],
		       a->domains[0], dir, a->users[u]);
	return CTL_OK;
}

int cmd_init(struct ctl *ctl)
{
	size_t room = ctl->argc > 0 ? (size_t)ctl->argc : 1;
	struct init_args a = {
		.domains = calloc(room, sizeof *a.domains),
		.users = calloc(room, sizeof *a.users),
	};
	int r;

	if (a.domains == NULL || a.users == NULL) {
		fprintf(stderr, "ternctl init: %s\n", strerror(ENOMEM));
		r = CTL_TEMPORARY;
	} else if (parse_init_args(ctl, &a) < 0) {
		r = CTL_USAGE;
	} else {
		r = make_instance(&a);
	}
	free(a.domains);
	free(a.users);
	return r;
}

int cmd_compile(struct ctl *ctl)
{
	struct tern_conf conf;

	if (ctl->argc > 0) {
		fprintf(stderr, "usage: ternctl compile\n");
		return CTL_USAGE;
	}
	if (ctl_load_conf(ctl, &conf) < 0)
		return CTL_REFUSED;
	int r = table_compile_all(&conf, NULL, NULL);
	if (r != 0) {
		fprintf(stderr, "ternctl compile: nothing replaced; the old tables stay in use\n");
		return r < 0 ? CTL_TEMPORARY : CTL_REFUSED;
	}
	return CTL_OK;
}

/* A text table must have a cdb at least as new as itself. */
static int check_freshness(const struct tern_conf *conf, const char *name)
{
	char text[PATH_MAX], cdb[PATH_MAX], file[64];
	struct stat ts, cs;

	snprintf(file, sizeof file, "%s.cdb", name);
	if (conf_path(conf, name, text, sizeof text) < 0 ||
	    conf_path(conf, file, cdb, sizeof cdb) < 0)
		return 1;
	if (stat(text, &ts) < 0)
		return 0;
	if (stat(cdb, &cs) < 0) {
		fprintf(stderr, "%s:1: not compiled; run ternctl compile\n", name);
		return 1;
	}
	if (ts.st_mtim.tv_sec > cs.st_mtim.tv_sec ||
	    (ts.st_mtim.tv_sec == cs.st_mtim.tv_sec && ts.st_mtim.tv_nsec > cs.st_mtim.tv_nsec)) {
		fprintf(stderr, "%s:1: changed since it was compiled; run ternctl compile\n", name);
		return 1;
	}
	return 0;
}

int cmd_check(struct ctl *ctl)
{
	struct tern_conf conf;
	int problems = 0;

	if (ctl->argc > 0) {
		fprintf(stderr, "usage: ternctl check\n");
		return CTL_USAGE;
	}
	if (ctl_load_conf(ctl, &conf) < 0)
		return CTL_REFUSED;
	for (size_t i = 0; table_names[i] != NULL; i++) {
		int n = table_check(&conf, table_names[i], NULL, NULL);
		if (n < 0) {
			fprintf(stderr, "%s: %s\n", table_names[i], strerror(errno));
			problems++;
		} else {
			problems += n;
		}
		if (n == 0)
			problems += check_freshness(&conf, table_names[i]);
	}
	struct stat st;
	if (stat(conf.spool, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "tern.conf: spool %s is not a folder\n", conf.spool);
		problems++;
	}
	problems += tls_check(conf.tls_cert, conf.tls_key, time(NULL));
	if (problems > 0)
		return CTL_REFUSED;
	printf("%s: ok\n", conf.path);
	return CTL_OK;
}
