"""tern-local workers and the spawner: the worker protocol spoken directly,
a worker killed or stopped in a burst, what a worker holds (fds, identity,
environment), and what the spawner refuses."""
import array
import contextlib
import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time

import harness
from harness import Instance, Skip, install_tree, wait_until
from test_delivery import queue_directly
from test_privilege import (TEST_USER, chown_tree, installed_mode, make_user, owned_by,
                            queue_as_owner)

BURST = 200


# ---- the protocol, spoken to tern-local --worker directly ----

class Worker:
    """tern-local --worker with its socket on fd 3, as the spawner starts it."""

    def __init__(self, program):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        self.proc = subprocess.Popen([program, "--worker"], env={}, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     pass_fds=(3,), preexec_fn=lambda: os.dup2(theirs.fileno(), 3))
        theirs.close()
        self.sock.settimeout(20)

    def send(self, fields, fds=()):
        packet = b"".join(f + b"\0" for f in fields)
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self.sock.sendmsg([packet], ancillary)

    def deliver(self, delivery_id, message, maildir, rcpt=b"alice@example.test",
                sender=b"sender@remote.test", trailer=b"TERN1 envelope rcpt secret@x.test"):
        fd = os.memfd_create("message")
        os.write(fd, message + trailer)
        self.send([b"deliver", b"%d" % delivery_id, b"%d" % len(message),
                   maildir.encode(), rcpt, sender], [fd])
        os.close(fd)

    def report(self):
        packet = self.sock.recv(4096)
        assert packet, "the worker ended"
        ident, code, text = packet.decode().split(" ", 2)
        return int(ident), int(code), text

    def close(self):
        self.sock.close()
        _, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, err.decode("utf-8", "replace")


def test_a_worker_delivers_each_request_and_reports_it_by_id():
    with Instance(smtpd=False, deliver=False) as t:
        md = t.maildir("alice")
        w = Worker(t.program("tern-local"))
        for i in range(10):
            w.deliver(100 + i, b"Subject: %d\n\nbody %d\n" % (i, i), md)
        reports = {}
        for _ in range(10):
            ident, code, text = w.report()
            reports[ident] = (code, text)
        assert sorted(reports) == list(range(100, 110)), reports
        names = set()
        for ident, (code, text) in reports.items():
            assert code == 0 and text.startswith("2.0.0 delivered to %s/new/" % md), text
            path = text.split(" ", 3)[3]
            with open(path, "rb") as f:
                assert f.read() == (b"Return-Path: <sender@remote.test>\n"
                                    b"Delivered-To: alice@example.test\n"
                                    b"Subject: %d\n\nbody %d\n" % (ident - 100, ident - 100))
            names.add(os.path.basename(path))
        assert sorted(names) == sorted(os.listdir(os.path.join(md, "new")))
        assert os.listdir(os.path.join(md, "tmp")) == []
        assert w.close() == (0, "")


def test_a_worker_keeps_every_check_of_tern_local():
    with Instance(smtpd=False, deliver=False) as t:
        md = t.maildir("alice")
        w = Worker(t.program("tern-local"))
        w.deliver(1, b"Subject: x\n\nbody\n", "relative/Maildir")
        assert w.report() == (1, 100, "5.3.5 Maildir path is not absolute")
        w.deliver(2, b"Delivered-To: Alice@Example.test\nSubject: x\n\nbody\n", md)
        assert w.report() == (2, 100, "5.4.6 mail loop: already delivered to this address")
        link_md = os.path.join(t.dir, "linked")
        os.makedirs(os.path.join(link_md, "tmp"))
        os.symlink(os.path.join(md, "new"), os.path.join(link_md, "new"))
        w.deliver(3, b"Subject: x\n\nbody\n", link_md)
        ident, code, text = w.report()
        assert (ident, code) == (3, 111) and text.startswith("4.3.0 Maildir tmp/ or new/"), text
        assert os.listdir(os.path.join(md, "new")) == []
        assert os.listdir(os.path.join(link_md, "tmp")) == []
        # a message shorter than its stated length is a temporary failure
        fd = os.memfd_create("short")
        os.write(fd, b"Subject: short\n\n")
        w.send([b"deliver", b"4", b"1000", md.encode(), b"alice@example.test", b""], [fd])
        os.close(fd)
        ident, code, text = w.report()
        assert (ident, code) == (4, 111) and text.startswith("4.3.0 writing the message"), text
        assert os.listdir(os.path.join(md, "new")) == []
        assert os.listdir(os.path.join(md, "tmp")) == []
        assert w.close()[0] == 0


def test_a_worker_ends_at_a_request_without_its_message():
    with Instance(smtpd=False, deliver=False) as t:
        w = Worker(t.program("tern-local"))
        w.send([b"deliver", b"1", b"5", t.maildir("alice").encode(), b"a@example.test", b""])
        assert w.sock.recv(4096) == b""
        code, err = w.close()
        assert code == 111 and "malformed request" in err, (code, err)
        assert os.listdir(os.path.join(t.maildir("alice"), "new")) == []


def test_a_worker_refuses_a_request_with_two_fds():
    with Instance(smtpd=False, deliver=False) as t:
        w = Worker(t.program("tern-local"))
        fds = [os.memfd_create("a"), os.memfd_create("b")]
        for fd in fds:
            os.write(fd, b"Subject: x\n\nbody\n")
        w.send([b"deliver", b"1", b"17", t.maildir("alice").encode(), b"a@example.test", b""],
               fds)
        assert w.sock.recv(4096) == b""
        code, err = w.close()
        assert code == 111 and "Protocol error" in err, (code, err)
        assert os.listdir(os.path.join(t.maildir("alice"), "new")) == []


# ---- a worker killed or stopped in a burst ----

def worker_pids(t):
    return [int(p) for p in re.findall(r"worker_start pid=(\d+) ", t.log("deliver"))]


def worker_writing(t, tmp):
    """A worker with a file in TMP open, or None."""
    for pid in worker_pids(t):
        try:
            if any(target.startswith(tmp + "/") for target in fd_links(pid).values()):
                return pid
        except FileNotFoundError:
            pass  # ended meanwhile
    return None


def counters_delivered(t, user):
    seen = set()
    for path in glob.glob(os.path.join(t.maildir(user), "new", "*")):
        with open(path, "rb") as f:
            m = re.search(rb"\ncounter=(\d+)\n", f.read())
        if m:
            seen.add(int(m.group(1)))
    return seen


def queue_burst(t):
    filler = b"x" * 76 + b"\n"
    for i in range(BURST):
        queue_directly(t, b"sender@remote.test", [b"alice@example.test"],
                       b"Subject: burst %d\n\ncounter=%d\n" % (i, i) + filler * 600)


def burst_with_a_worker_hit(sig, conf):
    with Instance(smtpd=False, deliver=False, conf=conf) as t:
        queue_burst(t)
        t.start_deliver()
        new, tmp = (os.path.join(t.maildir("alice"), sub) for sub in ("new", "tmp"))
        wait_until(lambda: len(os.listdir(new)) >= 20, 20, "some deliveries")
        # hit one while it writes a message: it holds that delivery at least
        first = wait_until(lambda: worker_writing(t, tmp), 20, "a worker writing a message")
        os.kill(first, sig)
        assert len(os.listdir(new)) < BURST, "the burst was over before the worker was hit"
        wait_until(lambda: len(counters_delivered(t, "alice")) == BURST, 60,
                   "every message of the burst")
        assert counters_delivered(t, "alice") == set(range(BURST))
        t.wait_spool_empty(30)
        log = t.log("deliver")
        assert len(worker_pids(t)) >= 2, log[:2000]
        deferred = [line for line in log.splitlines() if "deferred id=" in line]
        assert deferred and all("rcpt=alice@example.test" in line and "tern-local" in line
                                for line in deferred), deferred
        return t, log, first


def test_kill_9_of_a_worker_in_a_burst_loses_nothing():
    burst_with_a_worker_hit(signal.SIGKILL, "retry_first = 1s\nretry_max = 1s")


def test_a_stopped_worker_is_killed_at_its_deadline_and_nothing_is_lost():
    _, log, first = burst_with_a_worker_hit(
        signal.SIGSTOP, "retry_first = 1s\nretry_max = 1s\nlocal_timeout = 2s")
    assert re.search(r"worker_killed pid=%d .*reason=timeout" % first, log), log
    assert "4.3.0 tern-local timed out" in log, log


# A tern-local worker that reports every request under another id.
LYING_WORKER = """#!/usr/bin/python3
import socket
sock = socket.socket(fileno=3)
while True:
    packet = sock.recv(16384)
    if not packet:
        break
    sock.send(b"%d 0 2.0.0 delivered to nowhere" % (int(packet.split(b"\\0")[1]) + 1000))
"""


def test_a_report_for_a_delivery_not_handed_to_that_worker_is_refused():
    root, sbin = install_tree()
    liar = os.path.join(root, "libexec", "tern", "tern-local")
    with open(liar, "w") as f:
        f.write(LYING_WORKER)
    try:
        with Instance(smtpd=False, deliver=False, bindir=sbin,
                      conf="retry_first = 1h\nretry_max = 1h") as t:
            t.start_deliver()
            queue_directly(t, b"sender@remote.test", [b"alice@example.test"])
            wait_until(lambda: "deferred id=" in t.log("deliver"), 20, "a deferral")
            log = t.log("deliver")
            (pid,) = worker_pids(t)
            assert re.search(r"worker_killed pid=%d .*reason=report held=1" % pid, log), log
            assert "4.3.0 tern-local reported what it was not given" in log, log
            assert "delivered id=" not in log, log
            wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
                       open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z",
                       10, "the lying worker killed")
            assert len(folder_names(t.spool, "queue")) == 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


def folder_names(spool, name):
    return os.listdir(os.path.join(spool, name))


# ---- what a worker holds ----

def assert_empty_environment(pid):
    """PID's environment is empty; a sanitizer build's workers keep only
    the sanitizer's own settings."""
    with open("/proc/%d/environ" % pid, "rb") as f:
        names = [entry.split(b"=", 1)[0] for entry in f.read().split(b"\0") if entry]
    allowed = [b"ASAN_OPTIONS", b"UBSAN_OPTIONS", b"LSAN_OPTIONS"] if harness.SANITIZED else []
    assert all(name in allowed for name in names), names


def fd_links(pid):
    links = {}
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            links[int(name)] = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except FileNotFoundError:
            pass  # closed while we looked
    return links


def test_a_worker_holds_only_its_fds_and_the_messages_it_was_given():
    with Instance(smtpd=False, deliver=False, conf="retry_first = 1s\nretry_max = 1s") as t:
        queue_burst(t)
        t.start_deliver()
        (pid, *_) = wait_until(lambda: worker_pids(t), 20, "a worker")
        spool_queue = os.path.join(t.spool, "queue") + "/"
        spool_mess = os.path.join(t.spool, "mess") + "/"
        maildir = t.maildir("alice")
        samples = 0
        while len(counters_delivered(t, "alice")) < BURST:
            try:
                links = fd_links(pid)
            except FileNotFoundError:
                break  # it may end once idle; the idle check below needs one alive
            samples += 1
            assert links.get(0) == "/dev/null" and links.get(1) == "/dev/null", links
            assert 2 in links and links.get(3, "").startswith("socket:"), links
            for fd, target in links.items():
                if fd > 3:
                    assert (target.startswith(spool_queue) or target.startswith(spool_mess) or
                            target == maildir or
                            target.startswith(maildir + "/") or
                            target.startswith("/memfd:tern-message") or
                            (harness.SANITIZED and  # AddressSanitizer reads its maps
                             target.startswith("/proc/%d/" % pid))), (fd, target)
        assert samples > 0
        t.wait_spool_empty(30)
        pids = worker_pids(t)
        alive = [p for p in pids if os.path.exists("/proc/%d" % p)]
        assert alive, pids
        links = wait_until(lambda: len(fd_links(alive[-1])) == 4 and fd_links(alive[-1]), 10,
                           "an idle worker")
        assert sorted(links) == [0, 1, 2, 3], links
        assert links[3].startswith("socket:"), links
        with open("/proc/%d/cmdline" % alive[-1], "rb") as f:
            assert f.read() == b"tern-local\0--worker\0"
        assert_empty_environment(alive[-1])


# ---- as root: identity, environment, the spawner ----

def status_ids(pid):
    with open("/proc/%d/status" % pid) as f:
        fields = dict(line.split(":", 1) for line in f.read().splitlines())
    uids = [int(x) for x in fields["Uid"].split()]
    gids = [int(x) for x in fields["Gid"].split()]
    groups = sorted(int(x) for x in fields["Groups"].split())
    return uids, gids, groups


def test_a_worker_holds_only_the_identity_it_was_started_for():
    user = make_user()
    root, sbin = install_tree()
    try:
        with owned_by(user, sbin, ["bob@example.test"]) as t:
            t.wait_for_messages("bob", 1)
            (pid,) = worker_pids(t)
            uids, gids, groups = status_ids(pid)
            assert uids == [user.pw_uid] * 4, uids
            assert gids == [user.pw_gid] * 4, gids
            assert groups == sorted(os.getgrouplist(TEST_USER, user.pw_gid)), groups
            assert_empty_environment(pid)
            deliver_uids, _, _ = status_ids(t.deliver_proc.pid)
            owner = pwd.getpwnam("tern-queue").pw_uid
            assert deliver_uids == [owner] * 4, deliver_uids
    finally:
        subprocess.run(["userdel", TEST_USER], stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


def pidfd_getfd(pid, fd):
    """A copy of PID's FD (pidfd_getfd(2), root may)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        got = libc.syscall(438, pidfd, fd, 0)  # SYS_pidfd_getfd
        if got < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
        return got
    finally:
        os.close(pidfd)


def spawner_socket(deliver_pid):
    """tern-deliver's end of its spawner's socket, taken while it has no
    worker (its only connected SOCK_SEQPACKET socket then)."""
    for name, target in fd_links(deliver_pid).items():
        if target.startswith("socket:"):
            fd = pidfd_getfd(deliver_pid, name)
            sock = socket.socket(fileno=fd)
            if (sock.type == socket.SOCK_SEQPACKET and
                    not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
                return sock
            sock.detach()
            os.close(fd)
    raise AssertionError("no spawner socket in %d" % deliver_pid)


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read()


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return found


def test_the_spawner_refuses_root_and_kills_only_its_own():
    # What a compromised tern-deliver could ask of the spawner: a worker as
    # root (by login or by a root-owned Maildir), a kill of someone else's
    # process.  Asked over tern-deliver's own socket to it.
    if os.geteuid() != 0:
        raise Skip("needs root")
    user = make_user()
    root, sbin = install_tree()
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        with installed_idle(user, sbin) as t:
            (spawner,) = [pid for pid in children_of(t.deliver_proc.pid)
                          if cmdline(pid) == cmdline(t.deliver_proc.pid)]  # forked, no exec
            sock = spawner_socket(t.deliver_proc.pid)
            sock.settimeout(10)
            asks = [(b"login", b"root"), (b"maildir", b"/root"), (b"maildir", b"/"),
                    (b"login", b"../../etc"), (b"maildir", b"relative/Maildir"),
                    (b"remote", TEST_USER.encode())]
            for seq, (kind, value) in enumerate(asks, 1000):
                sock.send(b"local\0%d\0%s\0%s\0" % (seq, kind, value))
                reply = sock.recv(4096)
                assert reply.startswith(b"no %d 4.3.0 " % seq), (kind, value, reply)
            sock.send(b"kill\0%d\0" % bystander.pid)
            sock.send(b"kill\0%d\0" % os.getpid())
            # a request it answers proves the kills were handled before it
            sock.send(b"local\0%d\0login\0root\0" % 2000)
            assert sock.recv(4096).startswith(b"no 2000 ")
            assert bystander.poll() is None
            assert children_of(spawner) == []
            assert t.log("deliver").count("not a worker of this spawner") == 2
            sock.close()
    finally:
        bystander.kill()
        bystander.wait()
        subprocess.run(["userdel", TEST_USER], stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def installed_idle(user, sbin):
    """An installed-style instance (tern-deliver started as root) with no
    mail, bob's Maildir USER's."""
    with Instance(deliver=False, bindir=sbin, smtpd_env=queue_as_owner(sbin)) as t:
        installed_mode(t)
        chown_tree(t.maildir("bob"), user.pw_uid, user.pw_gid)
        t.start_deliver()
        wait_until(lambda: "start spool=" in t.log("deliver"), 20, "tern-deliver")
        yield t
