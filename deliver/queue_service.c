#include "queue_service.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"
#include "util.h"

#define PUBLIC_MODE 0711
#define SOCKET_MODE 0666
#define RESTART_FIRST_MS 100
#define RESTART_MAX_MS (30 * 1000)
/* A service that ran this long did not die of its start. */
#define QUICK_DEATH_MS (10 * 1000)
#define STOP_WAIT_MS (5 * 1000)
/* Quick deaths in a row after which the socket goes until the next start. */
#define DEATHS_BEFORE_UNBIND 3
#define STOP_SLICE_MS 10

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* public/, ours and writable by nobody else, whatever it was before. */
static int make_public(const char *spool)
{
	char path[PATH_MAX];
	struct stat st;

	if (spool_path(path, sizeof path, spool, SPOOL_PUBLIC, NULL) < 0)
		return -1;
	if (mkdir(path, PUBLIC_MODE) < 0 && errno != EEXIST)
		return -1;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fstat(fd, &st) < 0 ? -1 : 0;
	if (r == 0 && st.st_uid != geteuid()) {
		errno = EPERM;
		r = -1;
	}
	if (r == 0 && (st.st_mode & 07777) != PUBLIC_MODE)
		r = fchmod(fd, PUBLIC_MODE);
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* Binds a fresh socket beside PATH and renames it into place, so that
 * PATH names a live socket or the old one, never nothing. */
static int bind_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char fresh[sizeof sa.sun_path];

	if (snprintf(fresh, sizeof fresh, "%s.new", path) >= (int)sizeof fresh) {
		errno = ENAMETOOLONG;
		return -1;
	}
	str_copy(sa.sun_path, sizeof sa.sun_path, fresh);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(fresh);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(fresh, SOCKET_MODE) < 0 ||
	    listen(fd, SOMAXCONN) < 0 || rename(fresh, path) < 0) {
		int saved = errno;
		unlink(fresh);
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int queue_service_open(struct queue_service *s, const struct tern_conf *conf,
		       const char *program)
{
	char public_socket[PATH_MAX];

	memset(s, 0, sizeof *s);
	s->listen_fd = -1;
	if (!str_copy(s->program, sizeof s->program, program) ||
	    !str_copy(s->config, sizeof s->config, conf->path) ||
	    !str_copy(s->socket, sizeof s->socket, conf->queue_socket)) {
		log_event("error", "what=queue_service error=\"path too long\"");
		return -1;
	}
	bool in_public = spool_path(public_socket, sizeof public_socket, conf->spool,
				    SPOOL_PUBLIC, SPOOL_QUEUE_SOCKET) == 0 &&
			 strcmp(public_socket, s->socket) == 0;
	if ((in_public && make_public(conf->spool) < 0) ||
	    (s->listen_fd = bind_socket(s->socket)) < 0) {
		log_event("error", "what=queue_service socket=%s error=%s", s->socket,
			  strerror(errno));
		return -1;
	}
	s->enabled = true;
	s->start_at_ms = now_ms();
	return 0;
}

/* The socket's name and descriptor go: connecting fails at once. */
static void unbind(struct queue_service *s)
{
	unlink(s->socket);
	close(s->listen_fd);
	s->listen_fd = -1;
}

void queue_service_start(struct queue_service *s)
{
	if (!s->enabled || s->pid > 0 || now_ms() < s->start_at_ms)
		return;
	if (s->listen_fd < 0 && (s->listen_fd = bind_socket(s->socket)) < 0) {
		log_event("error", "what=queue_service socket=%s error=%s", s->socket,
			  strerror(errno));
		s->start_at_ms = now_ms() + RESTART_MAX_MS;
		return;
	}
	char *argv[] = { s->program, "--service", "-C", s->config, NULL };
	const int fds[] = { s->listen_fd };
	int r = spawn_with_fds(&s->pid, s->program, argv, NULL, fds, 1);
	if (r != 0) {
		log_event("error", "what=queue_service program=%s error=%s", s->program,
			  strerror(r));
		s->pid = 0;
		s->start_at_ms = now_ms() + RESTART_MAX_MS;
		return;
	}
	s->started_ms = now_ms();
}

static int64_t restart_pause(unsigned deaths)
{
	int64_t pause = RESTART_FIRST_MS;

	for (unsigned i = 1; i < deaths && pause < RESTART_MAX_MS; i++)
		pause *= 2;
	return pause < RESTART_MAX_MS ? pause : RESTART_MAX_MS;
}

void queue_service_reap(struct queue_service *s)
{
	int status;

	if (s->pid <= 0 || waitpid(s->pid, &status, WNOHANG) != s->pid)
		return;
	int64_t now = now_ms();
	if (now - s->started_ms < QUICK_DEATH_MS)
		s->quick_deaths++;
	else
		s->quick_deaths = 0;
	int64_t pause = s->quick_deaths ? restart_pause(s->quick_deaths) : 0;
	log_event("queue_service_ended", "pid=%d status=%d signal=%d restart_ms=%lld",
		  (int)s->pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
		  WIFSIGNALED(status) ? WTERMSIG(status) : 0, (long long)pause);
	s->pid = 0;
	s->start_at_ms = now + pause;
	if (s->quick_deaths >= DEATHS_BEFORE_UNBIND && s->listen_fd >= 0)
		unbind(s);
}

int queue_service_timeout(const struct queue_service *s)
{
	if (!s->enabled || s->pid > 0)
		return -1;
	int64_t left = s->start_at_ms - now_ms();
	return left <= 0 ? 0 : left > RESTART_MAX_MS ? RESTART_MAX_MS : (int)left;
}

void queue_service_stop(struct queue_service *s)
{
	if (!s->enabled)
		return;
	s->enabled = false;
	if (s->listen_fd >= 0)
		unlink(s->socket);	/* new clients run the program from now on */
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		int waited = 0;
		while (waitpid(s->pid, NULL, WNOHANG) == 0) {
			if (waited >= STOP_WAIT_MS) {
				kill(s->pid, SIGKILL);
				while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
					;
				break;
			}
			struct timespec slice = { 0, STOP_SLICE_MS * 1000000L };
			nanosleep(&slice, NULL);
			waited += STOP_SLICE_MS;
		}
		s->pid = 0;
	}
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	s->listen_fd = -1;
}
