/* tls_module: what tern-smtpd asks of its TLS module, tern-smtpd-tls.so.
 *
 * tern-smtpd never links GnuTLS: every connection is a new process, and
 * linking it would run GnuTLS's initialisation at every exec.  The module,
 * which does link it, is loaded with dlopen when a session asks for TLS
 * (STARTTLS, or --tls), and found as a sibling program is found.  It
 * exports one symbol, TLS_MODULE_SYMBOL, a struct tls_module.
 *
 * Promises of the module: it never blocks (the descriptors are
 * non-blocking; it answers TLS_WANT_READ or TLS_WANT_WRITE and the caller
 * waits, with its own deadlines); it reads only IN_FD and writes only
 * OUT_FD; certificates are chosen by SNI among the pairs given; session
 * tickets are never issued; an error text never holds key material. */
#ifndef TERN_TLS_MODULE_H
#define TERN_TLS_MODULE_H

#include <stddef.h>
#include <sys/types.h>

#define TLS_MODULE_NAME "tern-smtpd-tls.so"
#define TLS_MODULE_SYMBOL "tern_tls_module"
#define TLS_MODULE_VERSION 1
#define TLS_ERROR_MAX 256
#define TLS_NAME_MAX 64

enum tls_status {
	TLS_OK = 0,
	TLS_FAILED = -1,
	TLS_WANT_READ = -2,
	TLS_WANT_WRITE = -3,
};

struct tls_params {
	const char *certs;	/* comma list of PEM files, paired in order with */
	const char *keys;	/* this one */
	const char *priority;	/* GnuTLS priority string */
	int in_fd, out_fd;
};

struct tls_conn;

struct tls_module {
	unsigned version;	/* TLS_MODULE_VERSION */
	/* Loads the credentials and makes a server session on the fds;
	 * NULL with ERR set when a file or the priority cannot be used. */
	struct tls_conn *(*open)(const struct tls_params *p, char *err, size_t errsize);
	/* TLS_OK when the handshake is done, TLS_WANT_*, or TLS_FAILED. */
	int (*handshake)(struct tls_conn *c);
	/* Octets read (> 0), 0 at the client's close, TLS_WANT_*, TLS_FAILED. */
	ssize_t (*read)(struct tls_conn *c, void *buf, size_t len);
	/* Octets written (> 0), TLS_WANT_*, TLS_FAILED.  After a TLS_WANT_*,
	 * the same buffer must be offered again. */
	ssize_t (*write)(struct tls_conn *c, const void *buf, size_t len);
	/* Octets decrypted and not yet read: readable without waiting. */
	size_t (*pending)(struct tls_conn *c);
	/* "TLS1.3" and "TLS_AES_256_GCM_SHA384", after the handshake. */
	void (*describe)(struct tls_conn *c, char version[TLS_NAME_MAX],
			 char cipher[TLS_NAME_MAX]);
	/* Why the last call failed, for the log. */
	const char *(*error)(struct tls_conn *c);
	/* Sends the closure alert if it can without waiting, and frees C. */
	void (*close)(struct tls_conn *c);
};

#endif
