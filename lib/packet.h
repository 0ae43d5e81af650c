/* packet: one datagram over a SOCK_SEQPACKET socket (tern-local's
 * workers), or one read of a stream socket (the queue service), with at
 * most one file descriptor beside it (SCM_RIGHTS).
 *
 * Promises: packet_send() sends the whole packet or fails with errno set
 * (EINTR retried).  packet_receive() returns one whole packet: its length,
 * 0 at end of file, or -1 with errno set; a packet longer than the buffer
 * (MSG_TRUNC), a control message cut short (MSG_CTRUNC), or more than one
 * descriptor, is refused with EPROTO and every descriptor that came with
 * it closed.  Received descriptors are close-on-exec (MSG_CMSG_CLOEXEC).
 * *FD is the descriptor that came, or -1. */
#ifndef TERN_PACKET_H
#define TERN_PACKET_H

#include <stddef.h>
#include <sys/types.h>

/* FD < 0: no descriptor goes with the packet. */
int packet_send(int sock, const void *buf, size_t len, int fd);
/* FLAGS: 0 or MSG_DONTWAIT. */
ssize_t packet_receive(int sock, void *buf, size_t size, int *fd, int flags);

#endif
