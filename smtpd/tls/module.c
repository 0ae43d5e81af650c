/* tern-smtpd-tls.so: the GnuTLS server side of tern-smtpd, loaded only by
 * a session that asks for TLS.  See tls_module.h for what it promises. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "tls_module.h"

#define TLS_PAIRS_MAX 16
#define TLS_PATH_MAX 4096

struct tls_conn {
	gnutls_session_t session;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t priority;
	int in_fd, out_fd;
	char error[TLS_ERROR_MAX];
};

static ssize_t pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
	const struct tls_conn *c = ptr;

	return read(c->in_fd, buf, len);
}

static ssize_t push(gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
	const struct tls_conn *c = ptr;

	return write(c->out_fd, buf, len);
}

/* GnuTLS asks this only with a timeout of its own; the caller's poll
 * does the waiting, so this never waits. */
static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
	const struct tls_conn *c = ptr;
	struct pollfd p = { .fd = c->in_fd, .events = POLLIN };

	(void)ms;
	int n = poll(&p, 1, 0);
	return n < 0 ? -1 : n;
}

static void set_error(char *err, size_t size, const char *what, const char *file, int code)
{
	if (file != NULL)
		snprintf(err, size, "%s %s: %s", what, file, gnutls_strerror(code));
	else
		snprintf(err, size, "%s: %s", what, gnutls_strerror(code));
}

/* The next item of a comma list at *LIST into OUT; false at its end. */
static bool next_item(const char **list, char *out, size_t size)
{
	const char *p = *list;

	while (*p == ',' || *p == ' ')
		p++;
	if (*p == '\0')
		return false;
	size_t n = strcspn(p, ",");
	size_t keep = n;
	while (keep > 0 && p[keep - 1] == ' ')
		keep--;
	if (keep >= size)
		keep = size - 1;
	memcpy(out, p, keep);
	out[keep] = '\0';
	*list = p + n;
	return true;
}

static int load_pairs(struct tls_conn *c, const struct tls_params *p, char *err, size_t size)
{
	const char *certs = p->certs, *keys = p->keys;
	char cert[TLS_PATH_MAX], key[TLS_PATH_MAX];
	int pairs = 0;

	while (next_item(&certs, cert, sizeof cert)) {
		if (!next_item(&keys, key, sizeof key)) {
			snprintf(err, size, "certificate %s has no key in tls_key", cert);
			return -1;
		}
		if (++pairs > TLS_PAIRS_MAX) {
			snprintf(err, size, "more than %d certificates", TLS_PAIRS_MAX);
			return -1;
		}
		int r = gnutls_certificate_set_x509_key_file(c->cred, cert, key,
							     GNUTLS_X509_FMT_PEM);
		if (r < 0) {
			snprintf(err, size, "cannot load certificate %s with key %s: %s", cert,
				 key, gnutls_strerror(r));
			return -1;
		}
	}
	if (pairs == 0) {
		snprintf(err, size, "no certificate in tls_cert");
		return -1;
	}
	if (next_item(&keys, key, sizeof key)) {
		snprintf(err, size, "key %s has no certificate in tls_cert", key);
		return -1;
	}
	return 0;
}

static void tls_close(struct tls_conn *c)
{
	if (c == NULL)
		return;
	if (c->session != NULL) {
		gnutls_bye(c->session, GNUTLS_SHUT_WR);	/* once: it may want to wait */
		gnutls_deinit(c->session);
	}
	if (c->priority != NULL)
		gnutls_priority_deinit(c->priority);
	if (c->cred != NULL)
		gnutls_certificate_free_credentials(c->cred);
	free(c);
}

static struct tls_conn *tls_open(const struct tls_params *p, char *err, size_t size)
{
	struct tls_conn *c = calloc(1, sizeof *c);
	const char *where = NULL;
	int r;

	if (c == NULL) {
		snprintf(err, size, "out of memory");
		return NULL;
	}
	c->in_fd = p->in_fd;
	c->out_fd = p->out_fd;
	if ((r = gnutls_certificate_allocate_credentials(&c->cred)) < 0) {
		set_error(err, size, "credentials", NULL, r);
		goto fail;
	}
	if (load_pairs(c, p, err, size) < 0)
		goto fail;
	if ((r = gnutls_priority_init(&c->priority, p->priority, &where)) < 0) {
		snprintf(err, size, "tls_priority at \"%.40s\": %s", where ? where : "",
			 gnutls_strerror(r));
		goto fail;
	}
	if ((r = gnutls_init(&c->session, GNUTLS_SERVER | GNUTLS_NO_TICKETS)) < 0 ||
	    (r = gnutls_priority_set(c->session, c->priority)) < 0 ||
	    (r = gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, c->cred)) < 0) {
		set_error(err, size, "session", NULL, r);
		goto fail;
	}
	gnutls_certificate_server_set_request(c->session, GNUTLS_CERT_IGNORE);
	gnutls_transport_set_ptr(c->session, c);
	gnutls_transport_set_pull_function(c->session, pull);
	gnutls_transport_set_push_function(c->session, push);
	gnutls_transport_set_pull_timeout_function(c->session, pull_timeout);
	return c;
fail:
	tls_close(c);
	return NULL;
}

/* What a GnuTLS result means to the caller. */
static int status_of(struct tls_conn *c, int r, const char *what)
{
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
		return gnutls_record_get_direction(c->session) ? TLS_WANT_WRITE : TLS_WANT_READ;
	set_error(c->error, sizeof c->error, what, NULL, r);
	return TLS_FAILED;
}

static int tls_handshake(struct tls_conn *c)
{
	int r;

	do
		r = gnutls_handshake(c->session);
	while (r < 0 && r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED &&
	       gnutls_error_is_fatal(r) == 0);
	return r == 0 ? TLS_OK : status_of(c, r, "handshake");
}

static ssize_t tls_read(struct tls_conn *c, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = gnutls_record_recv(c->session, buf, len);
		if (n >= 0)
			return n;
		if (n == GNUTLS_E_REHANDSHAKE || n == GNUTLS_E_WARNING_ALERT_RECEIVED)
			continue;	/* refused by not answering; TLS 1.3 has none */
		if (n == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;	/* a client that closed without an alert */
		return status_of(c, (int)n, "read");
	}
}

static ssize_t tls_write(struct tls_conn *c, const void *buf, size_t len)
{
	ssize_t n = gnutls_record_send(c->session, buf, len);

	return n >= 0 ? n : status_of(c, (int)n, "write");
}

static size_t tls_pending(struct tls_conn *c)
{
	return gnutls_record_check_pending(c->session);
}

static void tls_describe(struct tls_conn *c, char version[TLS_NAME_MAX],
			 char cipher[TLS_NAME_MAX])
{
	const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(c->session));
	const char *s = gnutls_ciphersuite_get(c->session);

	snprintf(version, TLS_NAME_MAX, "%s", v ? v : "unknown");
	snprintf(cipher, TLS_NAME_MAX, "%s", s ? s : "unknown");
}

static const char *tls_error(struct tls_conn *c)
{
	return c->error;
}

const struct tls_module tern_tls_module = {
	.version = TLS_MODULE_VERSION,
	.open = tls_open,
	.handshake = tls_handshake,
	.read = tls_read,
	.write = tls_write,
	.pending = tls_pending,
	.describe = tls_describe,
	.error = tls_error,
	.close = tls_close,
};
