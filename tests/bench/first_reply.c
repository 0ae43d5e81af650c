/* first_reply: how long an SMTP server takes to its 220 greeting, for
 * make bench.  Prints the median, 10th and 90th percentile in ms.
 *
 *   first_reply exec N PROGRAM [ARG...]
 *       N times: fork, exec PROGRAM with a socketpair as fd 0 and 1 (as
 *       inetd or tcpserver would), time from just before the fork to the
 *       end of the 220 line; then QUIT and wait for it to exit.
 *   first_reply connect N PORT
 *       N times: connect to 127.0.0.1:PORT, time from just before connect()
 *       to the end of the 220 line; then QUIT and read to the close. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REPLY_MAX 4096
#define RUNS_MAX 100000

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Reads FD until a line that starts "220 " has ended: 0, or -1 on EOF,
 * an error or any other reply. */
static int read_greeting(int fd)
{
	char buf[REPLY_MAX];
	size_t have = 0, line = 0;

	while (have < sizeof buf) {
		ssize_t n = read(fd, buf + have, sizeof buf - have);
		if (n <= 0)
			return -1;
		have += (size_t)n;
		for (char *nl; (nl = memchr(buf + line, '\n', have - line)) != NULL;) {
			if (have - line < 4 || strncmp(buf + line, "220", 3) != 0)
				return -1;
			if (buf[line + 3] == ' ')
				return 0;
			line = (size_t)(nl - buf) + 1;
		}
	}
	return -1;
}

static void quit_and_drain(int fd)
{
	char buf[REPLY_MAX];

	if (write(fd, "QUIT\r\n", 6) != 6)
		return;
	while (read(fd, buf, sizeof buf) > 0)
		;
}

static double exec_once(char **argv)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	double start = now_ms();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	close(sv[1]);
	double took = read_greeting(sv[0]) == 0 ? now_ms() - start : -1;
	quit_and_drain(sv[0]);
	close(sv[0]);
	int status;
	waitpid(pid, &status, 0);
	return took;
}

static double connect_once(int port)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	double start = now_ms();
	double took = -1;
	if (connect(fd, (struct sockaddr *)&to, sizeof to) == 0 && read_greeting(fd) == 0)
		took = now_ms() - start;
	quit_and_drain(fd);
	close(fd);
	return took;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int usage(void)
{
	fprintf(stderr, "usage: first_reply exec N PROGRAM [ARG...]\n"
		"       first_reply connect N PORT\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return usage();
	long runs = strtol(argv[2], NULL, 10);
	bool exec_mode = strcmp(argv[1], "exec") == 0;
	if (runs < 1 || runs > RUNS_MAX || (!exec_mode && strcmp(argv[1], "connect") != 0) ||
	    (!exec_mode && argc != 4))
		return usage();
	int port = exec_mode ? 0 : atoi(argv[3]);
	double *took = malloc((size_t)runs * sizeof *took);
	if (took == NULL)
		return 1;
	for (long i = 0; i < runs; i++) {
		took[i] = exec_mode ? exec_once(argv + 3) : connect_once(port);
		if (took[i] < 0) {
			fprintf(stderr, "first_reply: run %ld got no 220 greeting\n", i + 1);
			free(took);
			return 1;
		}
	}
	qsort(took, (size_t)runs, sizeof *took, by_value);
	printf("%.2f %.2f %.2f\n", took[runs / 2], took[runs / 10], took[runs * 9 / 10]);
	free(took);
	return 0;
}
