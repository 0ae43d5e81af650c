"""The queue service against a hostile local client: what a review found.
Each test is a way one client could harm the service or the others."""
import array
import fcntl
import os
import socket

from harness import Instance, Skip, wait_until
from test_service import Client, envelope, qid_for, sealed_memfd, send_smtp, the_service

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
        wait_until(lambda: os.path.exists(os.path.join(t.spool, "mess", qid)), 5,
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


class ClientAs(Client):
    """A raw client connected as another uid (SO_PEERCRED takes the
    effective one at connect), through public/ opened beforehand: the
    instance's spool is its owner's alone."""

    def __init__(self, t, uid, timeout=10):
        public = os.open(os.path.join(t.spool, "public"), os.O_PATH | os.O_DIRECTORY)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.pending = b""
        os.seteuid(uid)
        try:
            self.sock.connect("/proc/self/fd/%d/queue" % public)
        finally:
            os.seteuid(0)
            os.close(public)
        assert self.line() == b"ready", "no greeting"


def announce(c, qid, envlen, wait=0.3):
    """Begins a message on C and announces ENVLEN envelope octets, sending
    none of them: the reply if the service refused it within WAIT seconds,
    else None."""
    fd = sealed_memfd(BODY)
    c.begin(qid, fd)
    os.close(fd)
    c.sock.sendall(b"end %d %d\n" % (len(BODY), envlen))
    c.sock.settimeout(wait)
    try:
        return c.line()
    except socket.timeout:
        return None
    finally:
        c.sock.settimeout(10)


def test_one_uid_cannot_take_the_envelope_budget_from_the_others():
    """A local user announces large envelopes (the program's limit allows
    10 MB each) and sends none of them: the others' envelopes must still
    pass, or the service refuses every SMTP session's message with 51."""
    if os.getuid() != 0:
        raise Skip("needs root: clients of other uids")
    with Instance() as t:
        the_service(t)
        held = []
        n = 0
        for size in (10 ** 7, 10 ** 6, 10 ** 5, 10 ** 4, 10 ** 3, 10 ** 2, 16):
            while n < 200:  # as much as uid 65534 may announce, to the octet
                n += 1
                c = ClientAs(t, 65534)
                if announce(c, qid_for(400 + n), size, wait=0.1) is not None:
                    c.close()
                    break
                held.append(c)
        assert held
        try:
            code, text = send_smtp(t, "meanwhile@client.test")
            assert code == 250, (code, text)
            t.wait_for_messages("alice", 1)
            # a second uid may take what the first left, and the total holds
            for i in range(3):
                held.append(ClientAs(t, 65533))
                assert announce(held[-1], qid_for(390 + i), 10 ** 7) is None
            over = Client(t)
            assert announce(over, qid_for(398), 10 ** 7, wait=10) == b"51"
            assert "envelopes over the service's budget" in t.log("deliver")
            over.close()
        finally:
            for c in held:
                c.close()
