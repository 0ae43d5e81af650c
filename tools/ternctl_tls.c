/* A self-signed certificate for an instance (ternctl init). */
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
