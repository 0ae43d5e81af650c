/* ternctl queue, and the requests (flush, delete, hold, release, bounce)
 * that ternctl leaves in the spool's control folder for tern-deliver. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "atomic.h"
#include "spool.h"
#include "ternctl.h"
#include "util.h"

#define REQUEST_WAIT_SECONDS 10

struct listed {
	char id[QID_MAX];
	char dir[16];
};

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct listed *)a)->id, ((const struct listed *)b)->id);
}

/* Every committed message, in incoming/ or queue/, oldest first. */
static struct listed *list_messages(const char *spool, size_t *count)
{
	static const char *const dirs[] = { SPOOL_INCOMING, SPOOL_QUEUE };
	struct listed *list = NULL;
	size_t n = 0, cap = 0;
	char path[PATH_MAX];

	for (size_t d = 0; d < 2; d++) {
		if (spool_path(path, sizeof path, spool, dirs[d], NULL) < 0)
			continue;
		DIR *dir = opendir(path);
		if (dir == NULL) {
			free(list);
			return NULL;
		}
		struct dirent *e;
		while ((e = readdir(dir)) != NULL) {
			if (!qid_valid(e->d_name))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				struct listed *more = realloc(list, cap * sizeof *list);
				if (more == NULL) {
					closedir(dir);
					free(list);
					return NULL;
				}
				list = more;
			}
			str_copy(list[n].id, sizeof list[n].id, e->d_name);
			str_copy(list[n].dir, sizeof list[n].dir, dirs[d]);
			n++;
		}
		closedir(dir);
	}
	if (n > 0)
		qsort(list, n, sizeof *list, by_id);
	/* in both folders for a moment while tern-deliver takes it in */
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		if (kept == 0 || strcmp(list[kept - 1].id, list[i].id) != 0)
			list[kept++] = list[i];
	*count = kept;
	return list ? list : calloc(1, sizeof *list);
}

/* S as a JSON string, valid UTF-8 whatever S holds: each octet that is
 * not part of a well-formed UTF-8 character becomes U+FFFD. */
static void json_string(FILE *f, const char *s)
{
	size_t len = strlen(s);

	fputc('"', f);
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		size_t n = utf8_char_length(s + i, len - i);
		if (n == 0) {
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fwrite(s + i, 1, n, f);
		i += n;
	}
	fputc('"', f);
}

static const char *shown_state(enum rcpt_state s)
{
	if (s == RCPT_FAILED)
		return "bounced";
	if (s == RCPT_EXPANDED)
		return "delivered";
	return rcpt_state_name(s);
}

struct message_view {
	struct envelope env;
	struct rcpt_record *rcpts;
	size_t nrcpts;
	bool have_state;
};

/* Opens an envelope file, in M's folder or in queue/ if tern-deliver took
 * it in while we looked (M's folder then says so); SPOOL_NOT_REGULAR
 * (said on stderr) for anything but a regular file, which is never read. */
static int open_envelope(const char *spool, struct listed *m)
{
	char path[PATH_MAX];

	if (spool_path(path, sizeof path, spool, m->dir, m->id) < 0)
		return -1;
	int fd = spool_open(path);
	if (fd == -1 && errno == ENOENT && strcmp(m->dir, SPOOL_INCOMING) == 0 &&
	    spool_path(path, sizeof path, spool, SPOOL_QUEUE, m->id) == 0) {
		fd = spool_open(path);
		str_copy(m->dir, sizeof m->dir, SPOOL_QUEUE);
	}
	if (fd == SPOOL_NOT_REGULAR)
		fprintf(stderr, "ternctl: %s: not a regular file; skipped\n", path);
	return fd;
}

/* The message M's envelope describes, open at its first octet; for a
 * TERN2 message its length checked, and with CHECK (a message not yet
 * taken in, which tern-deliver has not verified) its CRC too: a torn one
 * is never shown (-1 with EBADMSG). */
static int open_body(const char *spool, const struct listed *m, const struct envelope *env,
		     bool check)
{
	int fd = spool_open_message(spool, m->dir, m->id, env->format, env->msglen);

	if (fd == -1 && errno == ENOENT && env->format == SPOOL_FORMAT_V1 &&
	    strcmp(m->dir, SPOOL_INCOMING) == 0)
		fd = spool_open_message(spool, SPOOL_QUEUE, m->id, env->format, env->msglen);
	if (fd == SPOOL_NOT_REGULAR) {
		fprintf(stderr, "ternctl: %s/%s/%s: not a regular file; skipped\n", spool,
			SPOOL_MESS, m->id);
		errno = EBADMSG;
		return -1;
	}
	if (fd >= 0 && check && spool_check_message(fd, env) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Reads M's envelope and state into V.  Its message is checked as above:
 * a torn TERN2 message (a crash's leftover, never acknowledged) is left
 * out like a torn envelope. */
static int load_view(const char *spool, struct listed *m, struct message_view *v, bool check)
{
	memset(v, 0, sizeof *v);
	int fd = open_envelope(spool, m);
	if (fd == SPOOL_NOT_REGULAR)
		errno = EBADMSG;
	if (fd < 0)
		return -1;
	int r = spool_read_envelope(fd, &v->env);
	close(fd);
	if (r < 0)
		return -1;
	if (v->env.format == SPOOL_FORMAT_V2) {
		int body = open_body(spool, m, &v->env,
				     check || strcmp(m->dir, SPOOL_INCOMING) == 0);
		if (body < 0) {
			spool_free_envelope(&v->env);
			return -1;
		}
		close(body);
	}
	int st = spool_read_state(spool, m->id, &v->rcpts, &v->nrcpts);
	if (st < 0) {
		spool_free_envelope(&v->env);
		return -1;
	}
	v->have_state = st == 1;
	return 0;
}

static void free_view(struct message_view *v)
{
	if (v->have_state)
		spool_free_state(v->rcpts, v->nrcpts);
	spool_free_envelope(&v->env);
}

static void print_json_message(FILE *f, const char *id, const struct message_view *v,
			       time_t now, bool first)
{
	fprintf(f, "%s{\"id\": ", first ? "" : ", ");
	json_string(f, id);
	fprintf(f, ", \"age_s\": %lld, \"size\": %llu, \"sender\": ",
		(long long)(now - v->env.queued), (unsigned long long)v->env.msglen);
	json_string(f, v->env.sender);
	fprintf(f, ", \"rcpts\": [");
	size_t n = v->have_state ? v->nrcpts : v->env.nrcpts;
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%s{\"addr\": ", i ? ", " : "");
		if (!v->have_state) {
			json_string(f, v->env.rcpts[i]);
			fprintf(f, ", \"state\": \"pending\", \"next_try\": null, \"last_error\": null}");
			continue;
		}
		const struct rcpt_record *r = &v->rcpts[i];
		json_string(f, r->addr);
		fprintf(f, ", \"state\": \"%s\", \"next_try\": ", shown_state(r->state));
		if (r->state == RCPT_DEFERRED || (r->state == RCPT_PENDING && r->next_try > 0))
			fprintf(f, "%lld", (long long)r->next_try);
		else
			fprintf(f, "null");
		fprintf(f, ", \"last_error\": ");
		if (r->last_error[0])
			json_string(f, r->last_error);
		else
			fprintf(f, "null");
		fprintf(f, "}");
	}
	fprintf(f, "]}");
}

static void print_text_message(FILE *f, const char *id, const struct message_view *v,
			       time_t now)
{
	fprintf(f, "%s  %llu octets  %llds old  from <%s>\n", id,
		(unsigned long long)v->env.msglen, (long long)(now - v->env.queued),
		v->env.sender);
	size_t n = v->have_state ? v->nrcpts : v->env.nrcpts;
	for (size_t i = 0; i < n; i++) {
		if (!v->have_state) {
			fprintf(f, "    pending    <%s>\n", v->env.rcpts[i]);
			continue;
		}
		const struct rcpt_record *r = &v->rcpts[i];
		fprintf(f, "    %-10s <%s>", shown_state(r->state), r->addr);
		if (r->state == RCPT_DEFERRED)
			fprintf(f, " next try in %llds", (long long)(r->next_try - now));
		if (r->last_error[0])
			fprintf(f, ": %s", r->last_error);
		fprintf(f, "\n");
	}
}

int cmd_queue(struct ctl *ctl)
{
	struct tern_conf conf;
	bool json = false;
	size_t n;

	for (int i = 0; i < ctl->argc; i++) {
		if (strcmp(ctl->argv[i], "--json") == 0) {
			json = true;
		} else {
			fprintf(stderr, "usage: ternctl queue [--json]\n");
			return CTL_USAGE;
		}
	}
	if (ctl_load_conf(ctl, &conf) < 0)
		return CTL_REFUSED;
	struct listed *list = list_messages(conf.spool, &n);
	if (list == NULL) {
		fprintf(stderr, "ternctl queue: %s: %s\n", conf.spool, strerror(errno));
		return CTL_TEMPORARY;
	}
	time_t now = time(NULL);
	bool first = true;
	if (json)
		printf("[");
	for (size_t i = 0; i < n; i++) {
		struct message_view v;
		if (load_view(conf.spool, &list[i], &v, false) < 0)
			continue;	/* delivered and removed while we looked */
		if (json)
			print_json_message(stdout, list[i].id, &v, now, first);
		else
			print_text_message(stdout, list[i].id, &v, now);
		first = false;
		free_view(&v);
	}
	if (json)
		printf("]\n");
	else if (first)
		printf("queue is empty\n");
	free(list);
	return CTL_OK;
}

/* Writes control/request.UNIQUE atomically and durably (by way of
 * control/tmp.UNIQUE, which tern-deliver never reads); its path in OUT. */
static int leave_request(const char *spool, const char *verb, struct ctl *ctl,
			 char *out, size_t outsize)
{
	char tmp[PATH_MAX], name[64], id[QID_MAX];
	char *text = NULL;
	size_t len = 0;

	qid_make(id);
	snprintf(name, sizeof name, "tmp.%s", id);
	if (spool_path(tmp, sizeof tmp, spool, SPOOL_CONTROL, name) < 0)
		return -1;
	snprintf(name, sizeof name, "request.%s", id);
	if (spool_path(out, outsize, spool, SPOOL_CONTROL, name) < 0)
		return -1;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL)
		return -1;
	fprintf(f, "%s", verb);
	for (int i = 0; i < ctl->argc; i++)
		fprintf(f, " %s", ctl->argv[i]);
	fprintf(f, "\n");
	bool bad = ferror(f) != 0;
	if (fclose(f) != 0 || bad) {
		free(text);
		errno = ENOMEM;
		return -1;
	}
	int r = atomic_replace(out, tmp, text, len, 0644);
	free(text);
	return r;
}

int cmd_request(struct ctl *ctl, const char *verb)
{
	struct tern_conf conf;
	char path[PATH_MAX];

	for (int i = 0; i < ctl->argc; i++) {
		if (!qid_valid(ctl->argv[i])) {
			fprintf(stderr, "ternctl %s: '%s' is not a queue id\n", verb, ctl->argv[i]);
			return CTL_REFUSED;
		}
	}
	if (strcmp(verb, "flush") != 0 && ctl->argc == 0) {
		fprintf(stderr, "usage: ternctl %s ID...\n", verb);
		return CTL_USAGE;
	}
	if (ctl_load_conf(ctl, &conf) < 0)
		return CTL_REFUSED;
	if (leave_request(conf.spool, verb, ctl, path, sizeof path) < 0) {
		fprintf(stderr, "ternctl %s: %s: %s\n", verb, conf.spool, strerror(errno));
		return CTL_TEMPORARY;
	}
	spool_poke(conf.spool);
	for (int tenths = 0; tenths < REQUEST_WAIT_SECONDS * 10; tenths++) {
		if (access(path, F_OK) < 0 && errno == ENOENT) {
			printf("%s: done\n", verb);
			return CTL_OK;
		}
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	printf("%s: pending; tern-deliver will apply it when it runs\n", verb);
	return CTL_OK;
}

/* ternctl show ID: the envelope, each recipient's state, then the message. */
int cmd_show(struct ctl *ctl)
{
	struct tern_conf conf;
	struct message_view v;
	char buf[65536];

	if (ctl->argc != 1 || !qid_valid(ctl->argv[0])) {
		fprintf(stderr, "usage: ternctl show ID\n");
		return CTL_USAGE;
	}
	if (ctl_load_conf(ctl, &conf) < 0)
		return CTL_REFUSED;
	struct listed m;
	str_copy(m.id, sizeof m.id, ctl->argv[0]);
	str_copy(m.dir, sizeof m.dir, SPOOL_INCOMING);
	if (load_view(conf.spool, &m, &v, true) < 0) {
		if (errno == ENOENT && access(conf.spool, X_OK) == 0) {
			fprintf(stderr, "ternctl show: no message %s in the queue\n", m.id);
			return CTL_REFUSED;
		}
		fprintf(stderr, "ternctl show: %s: %s: %s\n", conf.spool, m.id, strerror(errno));
		return CTL_TEMPORARY;
	}
	print_text_message(stdout, m.id, &v, time(NULL));
	printf("\n");
	fflush(stdout);
	int fd = open_body(conf.spool, &m, &v.env, false);
	uint64_t left = v.env.msglen;
	while (fd >= 0 && left > 0) {
		ssize_t n = read(fd, buf, left < sizeof buf ? (size_t)left : sizeof buf);
		if (n <= 0)
			break;
		fwrite(buf, 1, (size_t)n, stdout);
		left -= (uint64_t)n;
	}
	if (fd >= 0)
		close(fd);
	free_view(&v);
	return left == 0 ? CTL_OK : CTL_TEMPORARY;
}

static void read_counters(const char *spool, unsigned long long out[3])
{
	static const char *const names[] = { "delivered", "deferred", "bounced" };
	char path[PATH_MAX], name[32];
	unsigned long long value;

	out[0] = out[1] = out[2] = 0;
	if (spool_path(path, sizeof path, spool, SPOOL_CONTROL, "counters") < 0)
		return;
	int fd = spool_open(path);
	if (fd == SPOOL_NOT_REGULAR)
		fprintf(stderr, "ternctl: %s: not a regular file; skipped\n", path);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while (fscanf(f, "%31s %llu", name, &value) == 2)
		for (size_t i = 0; i < 3; i++)
			if (strcmp(name, names[i]) == 0)
				out[i] = value;
	fclose(f);
}

/* ternctl stats: Prometheus text, from the spool and the counter file, so
 * it works with tern-deliver stopped. */
int cmd_stats(struct ctl *ctl)
{
	struct tern_conf conf;
	size_t n;
	unsigned long long states[RCPT_EXPANDED + 1] = { 0 }, counters[3];
	long long oldest = 0;

	if (ctl->argc > 0) {
		fprintf(stderr, "usage: ternctl stats\n");
		return CTL_USAGE;
	}
	if (ctl_load_conf(ctl, &conf) < 0)
		return CTL_REFUSED;
	struct listed *list = list_messages(conf.spool, &n);
	if (list == NULL) {
		fprintf(stderr, "ternctl stats: %s: %s\n", conf.spool, strerror(errno));
		return CTL_TEMPORARY;
	}
	time_t now = time(NULL);
	size_t messages = 0;
	for (size_t i = 0; i < n; i++) {
		struct message_view v;
		if (load_view(conf.spool, &list[i], &v, false) < 0)
			continue;
		messages++;
		if (now - v.env.queued > oldest)
			oldest = now - v.env.queued;
		if (!v.have_state)
			states[RCPT_PENDING] += v.env.nrcpts;
		for (size_t r = 0; v.have_state && r < v.nrcpts; r++)
			states[v.rcpts[r].state]++;
		free_view(&v);
	}
	free(list);
	read_counters(conf.spool, counters);
	printf("# HELP tern_queue_messages Messages in the queue.\n"
	       "# TYPE tern_queue_messages gauge\n"
	       "tern_queue_messages %zu\n", messages);
	printf("# HELP tern_queue_recipients Recipients of queued messages, by state.\n"
	       "# TYPE tern_queue_recipients gauge\n");
	static const enum rcpt_state shown[] = { RCPT_PENDING, RCPT_DEFERRED, RCPT_HELD,
						 RCPT_DELIVERED, RCPT_BOUNCED };
	for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) {
		unsigned long long count = states[shown[i]];
		if (shown[i] == RCPT_BOUNCED)
			count += states[RCPT_FAILED];
		if (shown[i] == RCPT_DELIVERED)
			count += states[RCPT_EXPANDED];
		printf("tern_queue_recipients{state=\"%s\"} %llu\n", rcpt_state_name(shown[i]), count);
	}
	printf("# HELP tern_queue_oldest_age_seconds Age of the oldest queued message.\n"
	       "# TYPE tern_queue_oldest_age_seconds gauge\n"
	       "tern_queue_oldest_age_seconds %lld\n", oldest);
	printf("# HELP tern_deliveries_total Delivery attempts by result, since the spool was made.\n"
	       "# TYPE tern_deliveries_total counter\n"
	       "tern_deliveries_total{result=\"delivered\"} %llu\n"
	       "tern_deliveries_total{result=\"deferred\"} %llu\n"
	       "tern_deliveries_total{result=\"bounced\"} %llu\n",
	       counters[0], counters[1], counters[2]);
	return CTL_OK;
}
