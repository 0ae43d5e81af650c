"""The queue service (tern-queue --service, kept by tern-deliver): what
tern-smtpd's clients see, what lands in the spool, and what a hostile or
broken local client cannot do to the other sessions."""
import array
import fcntl
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import harness
from harness import Instance, Skip, read_log, replies, wait_until

SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
BODY = b"Subject: through the service\r\n\r\nline one\r\nline two\r\n"


def socket_path(t):
    return os.path.join(t.spool, "public", "queue")


def service_pids(t):
    """The tern-queue --service processes of T's tern-deliver."""
    if t.deliver_proc is None:
        return []
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == t.deliver_proc.pid and b"--service" in argv:
            found.append(int(pid))
    return found


def the_service(t):
    return wait_until(lambda: service_pids(t), 10, "the queue service")[0]


def envelope(sender, rcpts):
    return b"F" + sender.encode() + b"\0" + b"".join(
        b"T" + r.encode() + b"\0" for r in rcpts) + b"\0"


def sealed_memfd(data, seals=SEALS):
    fd = os.memfd_create("test-message", os.MFD_ALLOW_SEALING)
    os.write(fd, data)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


class Client:
    """A raw client of the queue socket, speaking tern-queue(8)'s protocol."""

    def __init__(self, t, greet=True, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(socket_path(t))
        self.pending = b""
        if greet:
            assert self.line() == b"ready", "no greeting"

    def line(self):
        while b"\n" not in self.pending:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError(self.pending)
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line

    def begin(self, qid, fd):
        self.sock.sendmsg([b"begin %s\n" % qid.encode()],
                          [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])

    def end(self, msglen, env):
        self.sock.sendall(b"end %d %d\n" % (msglen, len(env)) + env)

    def send_memfd(self, qid, data, env, seals=SEALS):
        fd = sealed_memfd(data, seals)
        try:
            self.begin(qid, fd)
        finally:
            os.close(fd)
        self.end(len(data), env)

    def closed(self):
        """True once the service has closed its side (EOF)."""
        try:
            while True:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return True
                self.pending += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def qid_for(n):
    return "Svc%d%s" % (n, format(int(time.time() * 1000000), "x"))


def incoming_ids(t):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(t.spool, "incoming", "*")))


def queued_or_delivered(t, qid):
    """True if QID is in the spool or in some Maildir (by its Received id or the log)."""
    return any(os.path.basename(p) == qid for p in t.spool_files()) or \
        ("delivered id=%s " % qid) in t.log("deliver")


def send_smtp(t, sender, rcpt="alice@example.test", body=BODY):
    """One message over SMTP: (reply code, reply text)."""
    with t.smtp() as c:
        c.ehlo("client.test")
        c.mail(sender)
        c.rcpt(rcpt)
        code, text = c.data(body)
        return code, text.decode()


# ---- the ordinary path ----

def test_message_goes_through_the_service_and_accepted_has_uid():
    with Instance() as t:
        pid = the_service(t)
        # nothing of tern-deliver's but the socket (fd 0) and its log (1, 2);
        # read once the service has made its signalfd (a slow start, under
        # ASan, may be caught before it); tern.conf, opened and closed before
        # it, may go between listdir and readlink: then read again
        def open_fds():
            try:
                fds = {int(fd): os.readlink("/proc/%d/fd/%s" % (pid, fd))
                       for fd in os.listdir("/proc/%d/fd" % pid)}
            except FileNotFoundError:
                return None
            return fds if "anon_inode:[signalfd]" in fds.values() else None
        fds = wait_until(open_fds, 10, "the service's signalfd")
        assert fds[0].startswith("socket:") and fds[1] == fds[2] == t.deliver_log, fds
        assert [fds[fd] for fd in fds if fd > 2] == ["anon_inode:[signalfd]"], fds
        st = os.stat(os.path.join(t.spool, "public"))
        assert st.st_mode & 0o777 == 0o711, oct(st.st_mode)
        assert os.stat(socket_path(t)).st_mode & 0o777 == 0o666
        code, text = send_smtp(t, "sender@client.test")
        assert code == 250, text
        qid = text.rsplit(" ", 1)[1]
        msgs = t.wait_for_messages("alice", 1)
        assert b"line one\nline two\n" in msgs[0]
        assert ("id %s" % qid).encode() in msgs[0]  # the Received header tern-smtpd wrote
        line = "tern-queue[%d]: accepted id=%s uid=%d from=sender@client.test rcpts=1 size=" % (
            pid, qid, os.getuid())
        assert line in t.log("deliver"), t.log("deliver")
        assert "accepted id=%s ip=127.0.0.1 from=sender@client.test rcpts=1" % qid \
            in t.log("smtpd")
        t.wait_spool_empty()
        assert os.listdir(os.path.join(t.spool, "tmp")) == []


def test_bounce_goes_through_the_service():
    with Instance() as t:
        the_service(t)
        t.write_table("aliases", "a@example.test b@example.test\nb@example.test a@example.test\n")
        code, text = send_smtp(t, "alice@example.test", rcpt="a@example.test")
        assert code == 250, text
        qid = text.rsplit(" ", 1)[1]
        (bounce,) = t.wait_for_messages("alice", 1)
        assert bounce.startswith(b"Return-Path: <>\n"), bounce[:100]
        assert qid.encode() in bounce
        # the bounce was committed by the service: its accepted line, from <>
        assert re.search(r"tern-queue\[\d+\]: accepted id=\w+ uid=%d from=\"\" rcpts=1 "
                         % os.getuid(), t.log("deliver")), t.log("deliver")
        t.wait_spool_empty()


# ---- falling back to the program ----

def test_a_connection_made_while_the_service_restarts_is_served():
    with Instance() as t:
        old = the_service(t)
        os.kill(old, signal.SIGKILL)
        c = Client(t, greet=False)  # waits in the backlog tern-deliver keeps
        assert c.line() == b"ready"
        new = the_service(t)
        assert new != old
        c.send_memfd(qid_for(80), b"Subject: restart\n\nkept\n",
                     envelope("r@client.test", ["alice@example.test"]))
        assert c.line() == b"0"
        t.wait_for_messages("alice", 1)
        assert re.search(r"queue_service_ended pid=%d status=-1 signal=9 restart_ms=\d+" % old,
                         t.log("deliver")), t.log("deliver")
        c.close()


def test_tern_deliver_stopped_smtpd_runs_the_program():
    with Instance() as t:
        the_service(t)
        t.stop_deliver()
        assert not os.path.exists(socket_path(t))
        code, text = send_smtp(t, "fallback@client.test")
        assert code == 250, text
        qid = text.rsplit(" ", 1)[1]
        assert incoming_ids(t) == [qid]
        t.start_deliver()
        msgs = t.wait_for_messages("alice", 1)
        assert b"line one\nline two\n" in msgs[0]
        assert "accepted id=%s uid=" % qid not in t.log("deliver")


def test_service_killed_with_its_socket_left_smtpd_runs_the_program():
    with Instance() as t:
        pid = the_service(t)
        t.stop_deliver(signal.SIGKILL)  # no cleanup: the socket's name stays
        wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
                   open("/proc/%d/stat" % pid).read().split()[2] == "Z", 10,
                   "the service to end with tern-deliver")
        assert os.path.exists(socket_path(t))
        code, text = send_smtp(t, "stale@client.test")
        assert code == 250, text
        assert incoming_ids(t) == [text.rsplit(" ", 1)[1]]


def test_a_peer_that_is_not_the_spool_owner_is_not_used():
    if os.getuid() != 0:
        raise Skip("needs root: a fake service run by another uid")
    fake_dir = tempfile.mkdtemp(prefix="tern-test-fake-")
    os.chmod(fake_dir, 0o777)
    path = os.path.join(fake_dir, "queue")
    got = os.path.join(fake_dir, "got")
    script = (
        "import os, socket\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "s.bind(%r); os.chmod(%r, 0o666); s.listen(8)\n"
        "open(%r + '.ready', 'w').close()\n"
        "while True:\n"
        "    c, _ = s.accept(); c.settimeout(2)\n"
        "    data = b''\n"
        "    try:\n"
        "        c.sendall(b'ready\\n')\n"
        "        while True:\n"
        "            d = c.recv(4096)\n"
        "            if not d: break\n"
        "            data += d\n"
        "    except OSError: pass\n"
        "    open(%r, 'ab').write(b'conn:' + data + b'\\n'); c.close()\n"
    ) % (path, path, got, got)
    fake = subprocess.Popen(["/usr/bin/python3", "-c", script], user=65534, group=65534)
    try:
        wait_until(lambda: os.path.exists(got + ".ready"), 10, "the fake service")
        with Instance(deliver=False, conf="queue_socket = %s" % path) as t:
            code, text = send_smtp(t, "wrong-peer@client.test")
            assert code == 250, text
            assert incoming_ids(t) == [text.rsplit(" ", 1)[1]]
            assert "error what=queue_socket peer_uid=65534 spool_owner=%d" % os.getuid() \
                in t.log("smtpd"), t.log("smtpd")
            # the fake got a connection, and not one octet of it
            wait_until(lambda: os.path.exists(got), 10, "the fake's record")
            with open(got, "rb") as f:
                assert f.read() == b"conn:\n"
    finally:
        fake.kill()
        fake.wait()
        shutil.rmtree(fake_dir, ignore_errors=True)


# ---- what the service takes ----

def test_sealed_memfd_is_queued_and_delivered():
    with Instance() as t:
        c = Client(t)
        qid = qid_for(1)
        c.send_memfd(qid, b"Subject: memfd\n\nsealed body\n",
                     envelope("m@client.test", ["alice@example.test"]))
        assert c.line() == b"0"
        msgs = t.wait_for_messages("alice", 1)
        assert msgs[0] == b"Subject: memfd\n\nsealed body\n" or \
            msgs[0].endswith(b"Subject: memfd\n\nsealed body\n")
        # the connection carries a second message
        c.send_memfd(qid_for(2), b"Subject: two\n\n2\n",
                     envelope("m@client.test", ["alice@example.test"]))
        assert c.line() == b"0"
        t.wait_for_messages("alice", 2)
        c.close()


def test_wrong_fd_types_are_refused():
    with Instance() as t:
        env = envelope("x@client.test", ["alice@example.test"])
        data = b"Subject: refused\n\nbody\n"
        # a regular file
        path = os.path.join(t.dir, "plain")
        with open(path, "wb") as f:
            f.write(data)
        fd = os.open(path, os.O_RDONLY)
        c = Client(t)
        c.begin(qid_for(3), fd)
        os.close(fd)
        c.end(len(data), env)
        assert c.line() == b"54"
        # an unsealed memfd, and one sealed against writes only
        for seals in (0, fcntl.F_SEAL_WRITE):
            c.send_memfd(qid_for(4 + seals), data, env, seals=seals)
            assert c.line() == b"54"
        # the write end of a pipe
        r, w = os.pipe()
        c.begin(qid_for(9), w)
        os.close(w)
        os.close(r)
        c.end(0, env)
        assert c.line() == b"54"
        c.close()
        assert incoming_ids(t) == []
        assert t.messages("alice") == []
        for folder in ("tmp", "mess"):
            assert os.listdir(os.path.join(t.spool, folder)) == [], folder
        assert "message fd neither a pipe nor a sealed memfd" in t.log("deliver")


def test_two_fds_or_none_end_the_connection():
    with Instance() as t:
        data = b"Subject: x\n\ny\n"
        a, b = sealed_memfd(data), sealed_memfd(data)
        c = Client(t)
        c.sock.sendmsg([b"begin %s\n" % qid_for(10).encode()],
                       [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [a, b]))])
        assert c.closed()
        d = Client(t)
        d.sock.sendall(b"begin %s\n" % qid_for(11).encode())
        assert d.closed()
        os.close(a)
        os.close(b)
        assert incoming_ids(t) == []
        for folder in ("tmp", "mess"):
            assert os.listdir(os.path.join(t.spool, folder)) == [], folder


def test_envelope_checks_are_the_programs():
    with Instance() as t:
        data = b"Subject: x\n\ny\n"
        c = Client(t)
        cases = [
            (envelope("a" * 1003 + "@client.test", ["alice@example.test"]), b"11"),
            (b"Xs@client.test\0Talice@example.test\0\0", b"91"),
            (envelope("s@client.test", ["al\rice@example.test"]), b"31"),
            (b"Fs@client.test\0Talice@example.test\0", b"54"),  # no final NUL
        ]
        for n, (env, want) in enumerate(cases):
            c.send_memfd(qid_for(20 + n), data, env)
            assert c.line() == want, (env[:40], want)
        # a length that is not what the fd held
        fd = sealed_memfd(data)
        c.begin(qid_for(30), fd)
        os.close(fd)
        c.end(len(data) + 1, envelope("s@client.test", ["alice@example.test"]))
        assert c.line() == b"54"
        c.close()
        assert incoming_ids(t) == []
        for folder in ("tmp", "mess"):
            assert os.listdir(os.path.join(t.spool, folder)) == [], folder


def test_oversized_message_is_refused():
    with Instance(conf="max_message_size = 1K") as t:
        c = Client(t)
        c.send_memfd(qid_for(40), b"x" * (1024 + 8 * 1024 + 1),
                     envelope("s@client.test", ["alice@example.test"]))
        assert c.line() == b"31"
        # through a pipe, which it stops reading
        r, w = os.pipe()
        c.begin(qid_for(41), r)
        os.close(r)
        sent = 0
        try:
            while sent < 200000:
                sent += os.write(w, b"y" * 4096)
        except BrokenPipeError:
            pass
        os.close(w)
        c.end(sent, envelope("s@client.test", ["alice@example.test"]))
        assert c.line() == b"31"
        assert sent < 200000  # the service closed the pipe
        c.close()
        assert incoming_ids(t) == []
        for folder in ("tmp", "mess"):
            assert os.listdir(os.path.join(t.spool, folder)) == [], folder


# ---- hostile and broken clients ----

def test_garbage_oversized_envelope_and_stalls_do_not_hold_up_a_session():
    with Instance(conf="queue_timeout = 6s") as t:
        garbage = Client(t)
        garbage.sock.sendall(b"\x00\xffhello there\n")
        huge = Client(t)
        fd = sealed_memfd(b"x\n")
        huge.begin(qid_for(50), fd)
        os.close(fd)
        huge.sock.sendall(b"end 2 99999999999\n")
        silent = Client(t)  # says nothing at all
        r, w = os.pipe()
        stalled = Client(t)  # begins, writes half a message, stalls
        stalled.begin(qid_for(51), r)
        os.close(r)
        os.write(w, b"Subject: half\n")
        halfline = Client(t)
        halfline.sock.sendall(b"beg")
        wait_until(lambda: os.listdir(os.path.join(t.spool, "mess")), 10,
                   "the stalled message file")

        start = time.monotonic()
        code, text = send_smtp(t, "meanwhile@client.test")
        assert code == 250, text
        assert time.monotonic() - start < 4.5  # well inside queue_timeout
        t.wait_for_messages("alice", 1)

        assert garbage.closed()
        assert huge.line() == b"31"
        assert huge.closed()
        # the stalled ones are closed at queue_timeout, and leave nothing
        for c in (silent, stalled, halfline):
            c.sock.settimeout(10)
            assert c.closed()
        os.close(w)
        wait_until(lambda: os.listdir(os.path.join(t.spool, "tmp")) == []
                   and os.listdir(os.path.join(t.spool, "mess")) == [], 10,
                   "an empty tmp/ and mess/")
        assert "what=queue_timeout" in t.log("deliver")
        assert "what=protocol" in t.log("deliver")
        assert incoming_ids(t) == []


def test_envelopes_announced_at_once_are_bounded():
    with Instance() as t:
        data = b"Subject: x\n\ny\n"
        big = 10 * 1000 * 1000  # under the program's limit, which one may send
        held = []
        for n in range(3):  # 30 MB announced and waiting: within one uid's 32 MiB
            c = Client(t)
            fd = sealed_memfd(data)
            c.begin(qid_for(90 + n), fd)
            os.close(fd)
            c.sock.sendall(b"end %d %d\n" % (len(data), big))
            held.append(c)
        over = Client(t)
        fd = sealed_memfd(data)
        over.begin(qid_for(99), fd)
        os.close(fd)
        over.sock.sendall(b"end %d %d\n" % (len(data), big))
        assert over.line() == b"51"
        assert over.closed()
        # the others still wait for their envelopes: a small one still passes
        small = Client(t)
        small.send_memfd(qid_for(100), data, envelope("s@client.test", ["alice@example.test"]))
        assert small.line() == b"0"
        for c in held + [small]:
            c.close()
        t.wait_for_messages("alice", 1)


def test_connections_per_uid_are_capped_and_smtpd_falls_back():
    with Instance(conf="queue_connections_per_uid = 2") as t:
        held = [Client(t), Client(t)]
        over = Client(t, greet=False)
        assert over.line() == b"busy"
        assert over.closed()
        code, text = send_smtp(t, "capped@client.test")
        assert code == 250, text
        t.wait_for_messages("alice", 1)
        assert "busy uid=%d" % os.getuid() in t.log("deliver")
        # not through the service: its accepted line is not there
        assert "accepted id=%s uid=" % text.rsplit(" ", 1)[1] not in t.log("deliver")
        for c in held:
            c.close()


def test_a_session_keeps_its_connection_from_one_message_to_the_next():
    with Instance(conf="queue_connections_per_uid = 1") as t:
        pid = the_service(t)
        with t.smtp() as c:
            c.sendmail("first@client.test", ["alice@example.test"], BODY)
            # the session holds the one connection its uid may have...
            other = Client(t, greet=False)
            assert other.line() == b"busy"
            # ...and its next message goes through it, not the program
            c.mail("second@client.test")
            c.rcpt("alice@example.test")
            code, text = c.data(BODY)
            assert code == 250, text
            qid = text.decode().rsplit(" ", 1)[1]
            assert "tern-queue[%d]: accepted id=%s uid=" % (pid, qid) in t.log("deliver")
            # a link gone stale (the service killed between messages): the
            # next message connects anew, nothing is lost
            os.kill(pid, signal.SIGKILL)
            new = wait_until(lambda: [p for p in service_pids(t) if p != pid], 10,
                             "the next service")[0]
            c.mail("third@client.test")
            c.rcpt("alice@example.test")
            code, text = c.data(BODY)
            assert code == 250, text
            qid = text.decode().rsplit(" ", 1)[1]
            wait_until(lambda: "tern-queue[%d]: accepted id=%s uid=" % (new, qid)
                       in t.log("deliver"), 10, "the new service's accepted line")
        msgs = t.wait_for_messages("alice", 3)
        assert len(msgs) == 3


# ---- group commit and its failures ----

def _fault_env():
    env = {"LD_PRELOAD": harness.FAULT_SHIM, "TERN_FAULT": "fsync",
           "TERN_FAULT_PROGRAM": "tern-queue", "TERN_FAULT_PATH": "/spool/incoming",
           "TERN_FAULT_TIMES": "1"}
    if harness.SANITIZED:
        env["ASAN_OPTIONS"] = "abort_on_error=0:detect_leaks=1:verify_asan_link_order=0"
    return env


def test_fsync_failure_fails_exactly_its_batch():
    with Instance(deliver=False) as t:
        t.start_deliver(extra_env=_fault_env())
        pid = the_service(t)
        clients = [Client(t) for _ in range(5)]
        qids = [qid_for(60 + i) for i in range(5)]
        os.kill(pid, signal.SIGSTOP)
        try:
            for c, qid in zip(clients, qids):
                c.send_memfd(qid, b"Subject: batch\n\n%s\n" % qid.encode(),
                             envelope("batch@client.test", ["alice@example.test"]))
        finally:
            os.kill(pid, signal.SIGCONT)
        answers = [c.line() for c in clients]
        failed = sorted(re.findall(r"error id=(\w+) uid=\d+ what=\"fsync incoming\"",
                                   t.log("deliver")))
        # the shim fired once: on one fsync of incoming/, that batch's
        assert failed, t.log("deliver")
        assert sorted(q for q, a in zip(qids, answers) if a == b"53") == failed, \
            (answers, failed)
        assert all(a in (b"0", b"53") for a in answers), answers
        assert len(failed) >= 2  # five whole in one round: one batch
        # the others of other batches (none here, or later ones) are queued
        later = Client(t)
        later.send_memfd(qid_for(70), b"Subject: after\n\nafter\n",
                         envelope("batch@client.test", ["alice@example.test"]))
        assert later.line() == b"0"
        t.wait_for_messages("alice", answers.count(b"0") + 1)
        for q in failed:
            assert not queued_or_delivered(t, q), q
            assert not os.path.exists(os.path.join(t.spool, "mess", q)), q
        assert os.listdir(os.path.join(t.spool, "tmp")) == []
        for c in clients + [later]:
            c.close()


def test_fsync_failure_gives_smtp_451():
    with Instance(deliver=False) as t:
        t.start_deliver(extra_env=_fault_env())
        the_service(t)
        code, text = send_smtp(t, "fails@client.test")
        assert code == 451 and text.startswith("4.3.0"), (code, text)
        assert incoming_ids(t) == []
        code, text = send_smtp(t, "works@client.test")
        assert code == 250, text
        t.wait_for_messages("alice", 1)
        assert "fails@client.test" not in t.messages("alice")[0].decode()


def test_a_hanging_service_stalls_neither_delivery_nor_the_bounce():
    with Instance(conf="queue_timeout = 2s\nretry_first = 1s\nretry_max = 1s") as t:
        pid = the_service(t)
        os.kill(pid, signal.SIGSTOP)
        try:
            code, err = t.queue(envelope("bob@example.test", ["nobody@example.test"]))
            assert code == 0, err  # the program, run directly
            wait_until(lambda: "what=bounce" in t.log("deliver"), 20, "the bounce to time out")
            assert "timed out" in t.log("deliver")
            # meanwhile a session waits for no greeting longer than
            # queue_timeout, runs the program, and its mail is delivered
            code, text = send_smtp(t, "meanwhile@client.test")
            assert code == 250, text
            (raw,) = t.wait_for_messages("alice", 1)
            assert b"line one" in raw
        finally:
            os.kill(pid, signal.SIGCONT)
        (report,) = t.wait_for_messages("bob", 1, timeout=30)
        assert b"nobody@example.test" in report
        t.wait_spool_empty()
        # the reports that timed out were not committed after all: one bounce
        assert len(t.messages("bob")) == 1


def test_kill_of_the_service_mid_commit_loses_no_confirmed_message():
    with Instance() as t:
        the_service(t)
        results = []
        lock = threading.Lock()

        def client(n):
            for i in range(20):
                sender = "k%d-%d@client.test" % (n, i)
                try:
                    code, text = send_smtp(t, sender, body=b"Subject: %s\r\n\r\n%s\r\n"
                                           % (sender.encode(), b"z" * 2000))
                except Exception as e:  # noqa: BLE001 (a dropped session is an outcome)
                    code, text = 0, str(e)
                with lock:
                    results.append((sender, code, text))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for th in threads:
            th.start()
        kills = 0
        while any(th.is_alive() for th in threads) and kills < 6:
            accepted = t.log("deliver").count(": accepted id=")
            try:
                wait_until(lambda: t.log("deliver").count(": accepted id=") > accepted
                           or not any(th.is_alive() for th in threads), 30,
                           "more commits")
            except AssertionError:
                break
            pids = service_pids(t)
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                kills += 1
        for th in threads:
            th.join()
        assert kills >= 2, kills
        assert t.log("deliver").count("queue_service_ended") >= 2
        confirmed = [s for s, code, _ in results if code == 250]
        assert len(confirmed) > 0
        # every 250 arrives, whole
        def missing():
            delivered = b"\0".join(t.messages("alice"))
            return [s for s in confirmed if ("Subject: %s\n" % s).encode() not in delivered]
        try:
            wait_until(lambda: not missing(), 60, "every confirmed message")
        except AssertionError:
            raise AssertionError("lost: %s" % missing())
        delivered = t.messages("alice")
        # nothing half-written reached delivery
        assert "what=read" not in t.log("deliver")
        for m in delivered:
            assert m.endswith(b"z" * 2000 + b"\n"), m[:200]
        assert "what=torn" not in t.log("deliver")   # a kill tears nothing
        # what a killed service leaves is in tmp/ and mess/ only, files no
        # envelope names, which delivery never reads (tern-deliver removes
        # them by age)
        wait_until(lambda: not [p for p in t.spool_files()
                                if p[len(t.spool):].split("/")[1] not in ("tmp", "mess")],
                   30, "incoming/, queue/ and state/ empty")
