#include "tls.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* The module stays loaded for the rest of the process: unloading GnuTLS
 * would only cost its deinit. */
static const struct tls_module *load_module(char *err, size_t errsize)
{
	char path[PATH_MAX];

	if (find_program(TLS_MODULE_NAME, path, sizeof path) < 0) {
		snprintf(err, errsize, "cannot find %s next to tern-smtpd or in libexec",
			 TLS_MODULE_NAME);
		return NULL;
	}
	void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (handle == NULL) {
		snprintf(err, errsize, "cannot load %s: %s", path, dlerror());
		return NULL;
	}
	const struct tls_module *m = dlsym(handle, TLS_MODULE_SYMBOL);
	if (m == NULL || m->version != TLS_MODULE_VERSION) {
		snprintf(err, errsize, "%s is not a tern TLS module of version %d", path,
			 TLS_MODULE_VERSION);
		dlclose(handle);
		return NULL;
	}
	return m;
}

int tls_start(struct io_tls *t, const struct tern_conf *conf, int in_fd, int out_fd,
	      char *err, size_t errsize)
{
	struct tls_params p = {
		.certs = conf->tls_cert, .keys = conf->tls_key, .priority = conf->tls_priority,
		.in_fd = in_fd, .out_fd = out_fd,
	};

	memset(t, 0, sizeof *t);
	if (conf->tls_cert[0] == '\0' || conf->tls_key[0] == '\0') {
		snprintf(err, errsize, "tls_cert and tls_key are not set");
		return -1;
	}
	const struct tls_module *m = load_module(err, errsize);
	if (m == NULL)
		return -1;
	struct tls_conn *c = m->open(&p, err, errsize);
	if (c == NULL)
		return -1;
	t->module = m;
	t->conn = c;
	t->in_fd = in_fd;
	t->out_fd = out_fd;
	return 0;
}

void tls_end(struct io_tls *t)
{
	if (t->conn != NULL)
		t->module->close(t->conn);
	t->conn = NULL;
}
