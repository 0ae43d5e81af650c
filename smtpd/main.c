/* tern-smtpd: the SMTP server side, one process per connection, speaking
 * on fds 0/1 under tcpserver, systemd (Accept=yes) or inetd. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "io.h"
#include "log.h"
#include "session.h"
#include "util.h"

static void address_text(const struct sockaddr_storage *ss, char *ip, size_t ipsize,
			 char *port, size_t portsize)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)ipsize);
		snprintf(port, portsize, "%u", ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)ipsize);
		snprintf(port, portsize, "%u", ntohs(in6->sin6_port));
	}
}

static void copy_env(char *out, size_t size, const char *name)
{
	const char *v = getenv(name);
	if (v != NULL && out[0] == '\0')
		snprintf(out, size, "%s", v);
}

/* tcpserver's, then systemd/inetd-style, then the socket itself. */
static void client_from_environment(struct client_info *c)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char port[16];

	memset(c, 0, sizeof *c);
	copy_env(c->ip, sizeof c->ip, "TCPREMOTEIP");
	copy_env(c->port, sizeof c->port, "TCPREMOTEPORT");
	copy_env(c->local_ip, sizeof c->local_ip, "TCPLOCALIP");
	copy_env(c->ip, sizeof c->ip, "REMOTE_ADDR");
	copy_env(c->port, sizeof c->port, "REMOTE_PORT");
	if (c->ip[0] == '\0') {
		len = sizeof ss;
		memset(&ss, 0, sizeof ss);
		if (getpeername(0, (struct sockaddr *)&ss, &len) == 0)
			address_text(&ss, c->ip, sizeof c->ip, c->port, sizeof c->port);
	}
	if (c->local_ip[0] == '\0') {
		len = sizeof ss;
		memset(&ss, 0, sizeof ss);
		if (getsockname(0, (struct sockaddr *)&ss, &len) == 0)
			address_text(&ss, c->local_ip, sizeof c->local_ip, port, sizeof port);
	}
	if (c->ip[0] == '\0')
		snprintf(c->ip, sizeof c->ip, "unknown");
	if (c->port[0] == '\0')
		snprintf(c->port, sizeof c->port, "0");
	c->relay_env = getenv("RELAYCLIENT") != NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: tern-smtpd [-C FILE] [--tls] [--submission]\n");
}

int main(int argc, char **argv)
{
	const char *flag = NULL;
	struct tern_conf conf;
	struct client_info client;
	struct session_mode mode = { false, false };
	char err[CONF_ERROR_MAX];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-C") == 0 && i + 1 < argc) {
			flag = argv[++i];
		} else if (strcmp(argv[i], "--tls") == 0) {
			mode.implicit_tls = true;
		} else if (strcmp(argv[i], "--submission") == 0) {
			mode.submission = true;
		} else {
			usage();
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);	/* an inherited SIG_IGN would let no checkpassword be reaped */
	/* Non-blocking, so that replies to a client that stops reading time
	 * out like reads do (io.c polls with the timeout on EAGAIN). */
	fd_nonblock(1);
	fd_nonblock(0);
	client_from_environment(&client);
	if (conf_load(&conf, conf_choose_path(flag, false), err, sizeof err) < 0) {
		struct writer w;
		log_event("config_error", "error=%s", err);
		if (mode.implicit_tls)
			return 111;	/* the client waits for a handshake, not a reply */
		writer_init(&w, 1, 30);
		writer_reply(&w, "421 4.3.0 Server configuration error, try again later");
		writer_flush(&w);
		return 111;
	}
	return session_run(&conf, &client, &mode);
}
