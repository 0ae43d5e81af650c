#include "packet.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Room for one descriptor, and a second so that a sender who sends more
 * is seen doing it instead of truncating silently. */
#define PACKET_FDS_ROOM 2

int packet_send(int sock, const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr header;
		char room[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		memset(&control, 0, sizeof control);
		msg.msg_control = control.room;
		msg.msg_controllen = sizeof control.room;
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n >= 0 && (size_t)n == len)
			return 0;
		if (n >= 0) {
			errno = EMSGSIZE;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

/* Every descriptor in MSG's control messages: the first in *FD, the
 * count returned; the others are closed. */
static int take_descriptors(struct msghdr *msg, int *fd)
{
	int count = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int one;
			memcpy(&one, CMSG_DATA(c) + i * sizeof(int), sizeof one);
			if (count++ == 0)
				*fd = one;
			else
				close(one);
		}
	}
	return count;
}

ssize_t packet_receive(int sock, void *buf, size_t size, int *fd, int flags)
{
	union {
		struct cmsghdr header;
		char room[CMSG_SPACE(PACKET_FDS_ROOM * sizeof(int))];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = control.room, .msg_controllen = sizeof control.room };
	ssize_t n;

	*fd = -1;
	do
		n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	int count = take_descriptors(&msg, fd);
	if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || count > 1) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		errno = EPROTO;
		return -1;
	}
	return n;
}
