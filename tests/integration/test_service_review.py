"""The queue service against a hostile local client: what a review found.
Each test is a way one client could harm the service or the others."""
import array
import fcntl
import os
import socket

from harness import Instance, wait_until
from test_service import Client, envelope, qid_for, sealed_memfd, the_service

BODY = b"Subject: review\n\nbody\n"


def service_fds(pid):
    """The service's open descriptors: {fd: what it names}."""
    found = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            found[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    return found


def test_descriptors_past_the_first_are_closed_not_kept():
    """Two descriptors fit the service's control buffer exactly (24 octets,
    as one does after alignment), three are truncated: none may stay open
    in the service once it has ended the connection."""
    with Instance() as t:
        pid = the_service(t)
        Client(t).close()  # the service has started serving
        before = len(service_fds(pid))
        for n in (2, 3):
            for i in range(5):
                fds = [sealed_memfd(BODY) for _ in range(n)]
                c = Client(t)
                c.sock.sendmsg([b"begin %s\n" % qid_for(200 + 10 * n + i).encode()],
                               [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
                for fd in fds:
                    os.close(fd)
                assert c.closed()
                c.close()
        # the connections are gone; so must be every memfd they sent
        wait_until(lambda: not [v for v in service_fds(pid).values() if "memfd:" in v], 5,
                   "the service to hold none of the clients' memfds: %s" % service_fds(pid))
        assert len(service_fds(pid)) <= before, service_fds(pid)



def test_a_client_that_clears_o_nonblock_on_its_pipe_does_not_block_the_service():
    """The pipe's file description is shared with the client, which can
    take O_NONBLOCK back after the service set it: a read of the empty pipe
    would then wait for as long as the client keeps the write end."""
    with Instance() as t:
        the_service(t)
        r, w = os.pipe()
        qid = qid_for(300)
        attacker = Client(t)
        attacker.begin(qid, r)
        wait_until(lambda: os.path.exists(os.path.join(t.spool, "tmp", qid)), 5,
                   "the service to take the message")
        try:  # a service that sets O_NONBLOCK does so at once
            wait_until(lambda: fcntl.fcntl(r, fcntl.F_GETFL) & os.O_NONBLOCK, 1, "O_NONBLOCK")
        except AssertionError:
            pass
        fcntl.fcntl(r, fcntl.F_SETFL, fcntl.fcntl(r, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        os.write(w, b"Subject: stall\n")  # some data; the write end stays open
        try:
            other = Client(t, timeout=5)  # greeted only if the loop still runs
            other.send_memfd(qid_for(301), BODY, envelope("o@client.test", ["alice@example.test"]))
            assert other.line() == b"0"
            other.close()
            t.wait_for_messages("alice", 1)
        finally:
            os.close(w)
            os.close(r)
            attacker.close()
