/* A self-signed certificate for an instance (ternctl init), and the check
 * of the configured certificates and keys (ternctl check). */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ternctl.h"
#include "util.h"

#define CERT_VALIDITY (10L * 365 * 86400)
#define CERT_WARN_DAYS 14		/* ternctl check warns this close to expiry */
#define PEM_FILE_MAX (1L << 20)		/* a certificate chain or key larger is refused */
#define KEY_ID_MAX 64

static int write_pem(const char *path, const gnutls_datum_t *pem, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	if (fchmod(fd, mode) < 0 || write_all(fd, pem->data, pem->size) < 0 || fsync(fd) < 0) {
		close(fd);
		return -1;
	}
	return close(fd);
}

static int failed(const char *what, int code)
{
	fprintf(stderr, "ternctl: certificate: %s: %s\n", what, gnutls_strerror(code));
	return -1;
}

int tls_make_certificate(const char *hostname, const char *cert_path, const char *key_path)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t pem = { NULL, 0 };
	unsigned char serial[16];
	time_t now = time(NULL);
	int r, result = -1;

	if ((r = gnutls_global_init()) < 0)
		return failed("init", r);
	if ((r = gnutls_x509_privkey_init(&key)) < 0 ||
	    (r = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
			GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0) {
		failed("key", r);
		goto out;
	}
	if ((r = gnutls_x509_crt_init(&crt)) < 0 ||
	    (r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial)) < 0) {
		failed("certificate", r);
		goto out;
	}
	serial[0] &= 0x7F;
	if ((r = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (r = gnutls_x509_crt_set_serial(crt, serial, sizeof serial)) < 0 ||
	    (r = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
	    (r = gnutls_x509_crt_set_expiration_time(crt, now + CERT_VALIDITY)) < 0 ||
	    (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, hostname,
					       (unsigned)strlen(hostname))) < 0 ||
	    (r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, hostname,
						      (unsigned)strlen(hostname),
						      GNUTLS_FSAN_SET)) < 0 ||
	    (r = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (r = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0) {
		failed("certificate", r);
		goto out;
	}
	if ((r = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &pem)) < 0) {
		failed("export key", r);
		goto out;
	}
	if (write_pem(key_path, &pem, 0600) < 0) {
		perror(key_path);
		goto out;
	}
	gnutls_free(pem.data);
	pem.data = NULL;
	if ((r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem)) < 0) {
		failed("export certificate", r);
		goto out;
	}
	if (write_pem(cert_path, &pem, 0644) < 0) {
		perror(cert_path);
		goto out;
	}
	result = 0;
out:
	gnutls_free(pem.data);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	if (key)
		gnutls_x509_privkey_deinit(key);
	gnutls_global_deinit();
	return result;
}

/* ---- ternctl check ---- */

/* Why FD (open on a file of tern.conf) is no certificate or key file:
 * 0 if it can be read whole, else an errno value. */
static int pem_file_problem(int fd, struct stat *st)
{
	if (fstat(fd, st) < 0)
		return errno;
	if (S_ISDIR(st->st_mode))
		return EISDIR;
	if (!S_ISREG(st->st_mode))
		return EINVAL;
	return st->st_size > PEM_FILE_MAX ? EFBIG : 0;
}

/* PATH's contents into OUT (gnutls_free it); -1 with errno set. */
static int read_pem(const char *path, gnutls_datum_t *out)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	out->data = NULL;
	if (fd < 0)
		return -1;
	int problem = pem_file_problem(fd, &st);
	if (problem == 0 && (out->data = gnutls_malloc((size_t)st.st_size + 1)) == NULL)
		problem = ENOMEM;
	if (problem == 0) {
		ssize_t got = read_full(fd, out->data, (size_t)st.st_size);
		if (got != st.st_size)
			problem = got < 0 ? errno : EIO;
	}
	close(fd);
	if (problem != 0) {
		gnutls_free(out->data);
		out->data = NULL;
		errno = problem;
		return -1;
	}
	out->data[st.st_size] = '\0';
	out->size = (unsigned)st.st_size;
	return 0;
}

static void format_date(time_t when, char *out, size_t size)
{
	struct tm tm;

	if (gmtime_r(&when, &tm) == NULL || strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, size, "@%lld", (long long)when);
}

/* The dates of certificate INDEX of CERT (0: the server's own); 1 when it
 * is not valid now, a warning alone when it soon will not be. */
static int check_dates(const char *cert, gnutls_x509_crt_t crt, unsigned index, time_t now)
{
	char date[64], which[48] = "";
	time_t expires = gnutls_x509_crt_get_expiration_time(crt);
	time_t begins = gnutls_x509_crt_get_activation_time(crt);

	if (index > 0)
		snprintf(which, sizeof which, " (number %u in the chain)", index + 1);
	if (expires == (time_t)-1 || begins == (time_t)-1) {
		fprintf(stderr, "%s: the certificate%s has no readable validity dates\n", cert, which);
		return 1;
	}
	if (expires <= now) {
		format_date(expires, date, sizeof date);
		fprintf(stderr, "%s: the certificate%s expired on %s\n", cert, which, date);
		return 1;
	}
	if (begins > now) {
		format_date(begins, date, sizeof date);
		fprintf(stderr, "%s: the certificate%s is not valid before %s\n", cert, which, date);
		return 1;
	}
	if (expires - now < CERT_WARN_DAYS * 86400L) {
		format_date(expires, date, sizeof date);
		long days = (long)((expires - now + 86399) / 86400);
		fprintf(stderr, "%s: warning: the certificate%s expires on %s, in %ld day%s\n",
			cert, which, date, days, days == 1 ? "" : "s");
	}
	return 0;
}

/* Does the public key of CRT belong to KEY? */
static int check_match(const char *cert, const char *key_path, gnutls_x509_crt_t crt,
		       gnutls_x509_privkey_t key)
{
	unsigned char crt_id[KEY_ID_MAX], key_id[KEY_ID_MAX];
	size_t crt_len = sizeof crt_id, key_len = sizeof key_id;
	int r;

	if ((r = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, crt_id, &crt_len)) < 0 ||
	    (r = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, key_id,
						&key_len)) < 0) {
		fprintf(stderr, "%s: cannot compare it with %s: %s\n", cert, key_path,
			gnutls_strerror(r));
		return 1;
	}
	if (crt_len != key_len || memcmp(crt_id, key_id, crt_len) != 0) {
		fprintf(stderr, "%s: does not match its key %s\n", cert, key_path);
		return 1;
	}
	return 0;
}

static gnutls_x509_privkey_t load_key(const char *path)
{
	gnutls_datum_t pem;
	gnutls_x509_privkey_t key = NULL;
	int r;

	if (read_pem(path, &pem) < 0) {
		fprintf(stderr, "%s: cannot read the key: %s\n", path, strerror(errno));
		return NULL;
	}
	if ((r = gnutls_x509_privkey_init(&key)) < 0 ||
	    (r = gnutls_x509_privkey_import2(key, &pem, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
		fprintf(stderr, "%s: not a PEM private key (or one with a passphrase): %s\n", path,
			gnutls_strerror(r));
		if (key != NULL)
			gnutls_x509_privkey_deinit(key);
		key = NULL;
	}
	gnutls_free(pem.data);
	return key;
}

/* The chain in CERT, leaf first; 0 certificates when it cannot be read. */
static unsigned load_chain(const char *path, gnutls_x509_crt_t **chain)
{
	gnutls_datum_t pem;
	unsigned n = 0;
	int r;

	*chain = NULL;
	if (read_pem(path, &pem) < 0) {
		fprintf(stderr, "%s: cannot read the certificate: %s\n", path, strerror(errno));
		return 0;
	}
	r = gnutls_x509_crt_list_import2(chain, &n, &pem, GNUTLS_X509_FMT_PEM, 0);
	gnutls_free(pem.data);
	if (r < 0 || n == 0) {
		fprintf(stderr, "%s: not a PEM certificate: %s\n", path,
			r < 0 ? gnutls_strerror(r) : "no certificate in it");
		*chain = NULL;
		return 0;
	}
	return n;
}

static int check_pair(const char *cert, const char *key_path, time_t now)
{
	gnutls_x509_crt_t *chain;
	unsigned n = load_chain(cert, &chain);
	gnutls_x509_privkey_t key = load_key(key_path);
	int problems = (n == 0) + (key == NULL);

	for (unsigned i = 0; i < n; i++)
		problems += check_dates(cert, chain[i], i, now);
	if (n > 0 && key != NULL)
		problems += check_match(cert, key_path, chain[0], key);
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(chain[i]);
	gnutls_free(chain);
	if (key != NULL)
		gnutls_x509_privkey_deinit(key);
	return problems;
}

static unsigned count_items(const char *list)
{
	unsigned n = list[0] != '\0';

	for (; *list != '\0'; list++)
		n += *list == ',';
	return n;
}

/* The next item of the comma list *LIST into OUT. */
static bool next_item(const char **list, char *out, size_t size)
{
	size_t len = strcspn(*list, ",");

	if (len >= size)
		return false;
	memcpy(out, *list, len);
	out[len] = '\0';
	*list += len + ((*list)[len] == ',');
	return true;
}

int tls_check(const char *certs, const char *keys, time_t now)
{
	char cert[PATH_MAX], key[PATH_MAX];
	unsigned ncerts = count_items(certs), nkeys = count_items(keys);
	int problems = 0, r;

	if (ncerts != nkeys) {
		fprintf(stderr, "tern.conf: tls_cert names %u files and tls_key %u; they go in "
			"pairs\n", ncerts, nkeys);
		return 1;
	}
	if (ncerts == 0)
		return 0;
	if ((r = gnutls_global_init()) < 0) {
		fprintf(stderr, "ternctl check: GnuTLS: %s\n", gnutls_strerror(r));
		return 1;
	}
	while (*certs != '\0') {
		if (!next_item(&certs, cert, sizeof cert) || !next_item(&keys, key, sizeof key)) {
			fprintf(stderr, "tern.conf: tls_cert or tls_key: path too long\n");
			problems++;
			break;
		}
		problems += check_pair(cert, key, now);
	}
	gnutls_global_deinit();
	return problems;
}
