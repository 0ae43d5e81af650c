/* tern-deliver: the long-running scheduler.  It takes committed messages in
 * from incoming/, hands each local recipient to tern-local (at most
 * local_concurrency at once), retries temporary failures with backoff,
 * bounces permanent ones with an RFC 3464 report through tern-queue, applies
 * ternctl's requests, and removes a message once every recipient is done.
 * It alone records recipient state (state/ID) and removes messages.
 *
 * This file: setup, privileges, the lock, and the loop; the modules
 * deliver.h lists do the rest. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "conf.h"
#include "deliver.h"
#include "dispatch.h"
#include "intake.h"
#include "log.h"
#include "queue_service.h"
#include "recipient.h"
#include "requests.h"
#include "spool.h"
#include "trigger.h"
#include "util.h"

#define LOCK_TRIES 20		/* tenths of a second */
#define SPOOL_OWNER "tern-queue"	/* the set-uid tern-queue's owner */
#define SPOOL_TOP_MODE 0711
#define AGENT_POLLFDS_MAX 1000	/* fds of the local agents polled at once: a worker
				   for each of local_concurrency's most */

static int signal_pipe[2] = { -1, -1 };	/* the handlers' only way in */

static void on_signal(int sig)
{
	unsigned char c = (unsigned char)sig;
	int saved = errno;
	(void)!write(signal_pipe[1], &c, 1);
	errno = saved;
}

static void run_loop(struct deliver *d)
{
	struct pollfd fds[2 + AGENT_POLLFDS_MAX];

	for (;;) {
		time_t now = time(NULL);
		if (!d->stopping)
			queue_service_start(&d->service);
		if (!d->stopping)
			dispatch(d, now);
		write_counters(d, now, false);
		if (d->stopping && local_agents_idle(d->agents) && reports_timeout(d) < 0)
			break;
		if (now >= d->next_cleanup)
			cleanup(d, now);
		fds[0] = (struct pollfd){ .fd = d->trigger_fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = signal_pipe[0], .events = POLLIN };
		size_t nagent = local_agents_pollfds(d->agents, fds + 2, AGENT_POLLFDS_MAX);
		int timeout = d->stopping ? sooner(reports_timeout(d),
						   local_agents_timeout_ms(d->agents))
					  : sooner(next_timeout(d, now),
						   queue_service_timeout(&d->service));
		if (poll(fds, 2 + nagent, timeout) < 0 && errno != EINTR) {
			log_event("error", "what=poll error=%s", strerror(errno));
			sleep(1);
		}
		bool agents_ready = false;
		for (size_t i = 0; i < nagent; i++)
			if (fds[2 + i].revents != 0)
				agents_ready = true;
		if (fds[1].revents & POLLIN) {
			unsigned char sig[64];
			ssize_t n = read(signal_pipe[0], sig, sizeof sig);
			for (ssize_t i = 0; i < n; i++)
				if (sig[i] == SIGTERM || sig[i] == SIGINT)
					d->stopping = true;
			agents_ready = true;
			queue_service_reap(&d->service);
		}
		if (agents_ready || local_agents_timeout_ms(d->agents) == 0)
			collect_deliveries(d);
		check_reports(d, time(NULL));
		bool poked = fds[0].revents & POLLIN;
		if (poked)
			trigger_drain(d->trigger_fd);
		now = time(NULL);
		if (!d->stopping && (poked || now >= d->next_scan)) {
			scan_incoming(d, now);
			apply_requests(d, now);
		}
	}
	write_counters(d, time(NULL), true);
}

/* Makes the spool's top folder, as root, for OWNER (0711: a later socket
 * lives under it; everything below is 0700); an existing one must
 * already be OWNER's.  Says what is wrong on stderr. */
static int make_spool_top(const char *spool, const struct passwd *owner)
{
	struct stat st;
	bool made = mkdir(spool, SPOOL_TOP_MODE) == 0;

	if (!made && errno != EEXIST)
		goto failed;
	int fd = open(spool, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		goto failed;
	if (fstat(fd, &st) < 0 || (made && (fchown(fd, owner->pw_uid, owner->pw_gid) < 0 ||
					    fchmod(fd, SPOOL_TOP_MODE) < 0))) {
		close(fd);
		goto failed;
	}
	close(fd);
	if (!made && st.st_uid != owner->pw_uid) {
		fprintf(stderr, "tern-deliver: %s: owned by uid %lu, not %s (chown -R %s: %s)\n",
			spool, (unsigned long)st.st_uid, SPOOL_OWNER, SPOOL_OWNER, spool);
		return -1;
	}
	return 0;
failed:
	fprintf(stderr, "tern-deliver: %s: %s\n", spool, strerror(errno));
	return -1;
}

/* From here on works as OWNER, all of it: real, effective and saved
 * user and group ids and the groups; root is gone for good (the spawner,
 * forked before, keeps it to start workers).  So everything tern-deliver
 * creates in the spool is OWNER's, and the tern-queue it runs for reports
 * is not set-id (it reads tern-deliver's own tern.conf). */
static int become_spool_owner(const struct passwd *owner)
{
	uid_t uid = owner->pw_uid, ruid, euid, suid;
	gid_t gid = owner->pw_gid, rgid, egid, sgid;

	if (initgroups(owner->pw_name, gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		return -1;
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0 ||
	    ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid)
		return -1;
#ifdef TERN_SANITIZE
	/* LeakSanitizer's check at exit ptraces this process, which the
	 * change of credentials forbids until it is made dumpable again. */
	prctl(PR_SET_DUMPABLE, 1);
#endif
	return 0;
}

/* The spool and its folders, trigger and all: outside an instance, as
 * root, owned by SPOOL_OWNER, whom the set-uid tern-queue runs as. */
static int prepare_spool(struct deliver *d)
{
	const char *spool = d->conf.spool;

	if (d->as_root) {
		struct passwd *pw = getpwnam(SPOOL_OWNER);
		if (pw == NULL) {
			fprintf(stderr, "tern-deliver: no user %s (make install creates it)\n",
				SPOOL_OWNER);
			return -1;
		}
		if (make_spool_top(spool, pw) < 0)
			return -1;
		if (become_spool_owner(pw) < 0) {
			fprintf(stderr, "tern-deliver: cannot become %s: %s\n", SPOOL_OWNER,
				strerror(errno));
			return -1;
		}
	}
	if (spool_create(spool) < 0) {
		fprintf(stderr, "tern-deliver: %s: %s\n", spool, strerror(errno));
		return -1;
	}
	return 0;
}

/* One tern-deliver a spool: two would deliver everything twice.  The lock
 * goes with the process, kill -9 included; a moment's wait covers a child
 * of a killed one that has not yet reached exec. */
static int lock_spool(struct deliver *d)
{
	char path[PATH_MAX];

	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_CONTROL, "deliver.lock") < 0)
		return -1;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "tern-deliver: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (int tries = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; tries++) {
		if (errno != EWOULDBLOCK || tries == LOCK_TRIES) {
			fprintf(stderr, "tern-deliver: %s: %s\n", path, errno == EWOULDBLOCK
				? "another tern-deliver is running on this spool" : strerror(errno));
			close(fd);
			return -1;
		}
		struct timespec pause = { 0, 100 * 1000 * 1000 };
		nanosleep(&pause, NULL);
	}
	return 0;	/* fd stays open, and locked, until the process ends */
}

static unsigned local_concurrency(const struct deliver *d)
{
	return d->conf.local_concurrency > 0 ? d->conf.local_concurrency : 1;
}

static int setup(struct deliver *d, const char *config_flag)
{
	char err[CONF_ERROR_MAX], path[PATH_MAX];

	if (conf_load(&d->conf, conf_choose_path(config_flag, false), err, sizeof err) < 0) {
		fprintf(stderr, "tern-deliver: %s\n", err);
		return -1;
	}
	if (find_program("tern-local", d->local_program, sizeof d->local_program) < 0 ||
	    find_program("tern-queue", d->queue_program, sizeof d->queue_program) < 0) {
		fprintf(stderr, "tern-deliver: cannot find tern-local and tern-queue\n");
		return -1;
	}
	/* Only as root outside an instance do workers run as the Maildir's
	 * owner; the spawner that starts them is forked here, before
	 * tern-deliver gives root up for good in prepare_spool. */
	d->as_root = !d->conf.instance && getuid() == 0;
	d->agents = local_agents_new(&d->conf, d->local_program, d->as_root, local_concurrency(d));
	if (d->agents == NULL) {
		fprintf(stderr, "tern-deliver: cannot start the spawner: %s\n", strerror(errno));
		return -1;
	}
	if (prepare_spool(d) < 0)
		return -1;
	if (lock_spool(d) < 0)
		return -1;
	d->have_remote = find_program("tern-remote", path, sizeof path) == 0;
	recipient_tables_init(&d->tables, &d->conf);
	if ((d->trigger_fd = trigger_open(d->conf.spool)) < 0) {
		fprintf(stderr, "tern-deliver: trigger: %s\n", strerror(errno));
		return -1;
	}
	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);	/* over a file-size limit: EFBIG, a write error */
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	return 0;
}

int main(int argc, char **argv)
{
	struct deliver d;
	const char *flag = NULL;

	memset(&d, 0, sizeof d);
	store_init(&d.store);
	wake_queue_init(&d.backlog);
	d.trigger_fd = -1;
	d.service.listen_fd = -1;
	if (argc == 3 && strcmp(argv[1], "-C") == 0)
		flag = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: tern-deliver [-C FILE]\n");
		return 2;
	}
	umask(077);
	if (setup(&d, flag) < 0) {
		local_agents_stop(d.agents);
		return 111;
	}
	time_t now = time(NULL);
	read_counters(&d);
	if (load_queue(&d) < 0) {
		fprintf(stderr, "tern-deliver: cannot list the spool's queue/ whole\n");
		return 111;
	}
	scan_incoming(&d, now);
	cleanup(&d, now);
	apply_requests(&d, now);
	queue_service_open(&d.service, &d.conf, d.queue_program);
	log_event("start", "spool=%s local_concurrency=%u", d.conf.spool, local_concurrency(&d));
	run_loop(&d);
	queue_service_stop(&d.service);
	log_event("stop", "spool=%s", d.conf.spool);
	free_messages(&d.store);
	wake_queue_free(&d.backlog);
	local_agents_stop(d.agents);
	recipient_tables_close(&d.tables);
	id_list_free(&d.retry);
	return 0;
}
