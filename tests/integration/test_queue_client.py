"""The queue client (lib/queue_client) as tern-smtpd and tern-deliver use it:
queue_timeout for a queue program that never reads or never exits, reports
(bounces) that never stall tern-deliver's scheduling, and default signal
dispositions in every program tern starts."""
import os
import shutil
import signal
import subprocess

from harness import Instance, install_tree, wait_until
from test_privilege import TEST_USER, chown_tree, installed_mode, make_user, queue_as_owner

SENDER = "sender@client.test"
FAST_RETRY = "retry_first = 1s\nretry_max = 1s"


def script(path, text):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + text)
    os.chmod(path, 0o755)
    return path


def read_pid(path):
    def pid():
        try:
            with open(path) as f:
                text = f.read().strip()
        except FileNotFoundError:
            return None
        return int(text) if text else None
    return wait_until(pid, 20, "a pid in " + path)


def group_alive(pgid):
    """Is any process left whose process group (or pid) is PGID?"""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pgid or int(fields[2]) == pgid:
            return True
    return False


def with_filter(t, text):
    t.start_smtpd({"QMAILQUEUE": script(os.path.join(t.dir, "filter.sh"), text)})


# ---- queue_timeout in tern-smtpd ----

def hung_queue_program(text, message):
    """A QMAILQUEUE program that runs TEXT (after writing its pid) the first
    time and is tern-queue after, under queue_timeout = 2s: the client gets
    451 4.3.0 for MESSAGE, the session goes on (its next message is
    queued), and the program is gone afterwards."""
    with Instance(smtpd=False, conf="queue_timeout = 2s") as t:
        pidfile = os.path.join(t.dir, "filter.pid")
        with_filter(t, "if mkdir %s/hung 2>/dev/null; then\n    echo $$ > %s\n%sfi\nexec %s\n"
                    % (t.dir, pidfile, text, t.program("tern-queue")))
        with t.smtp() as s:
            s.ehlo()
            assert s.mail(SENDER)[0] == 250
            assert s.rcpt("alice@example.test")[0] == 250
            code, reply = s.data(message)
            assert code == 451 and reply.startswith(b"4.3.0"), (code, reply)
            assert s.rset()[0] == 250
            assert s.noop()[0] == 250
            s.sendmail(SENDER, ["alice@example.test"], b"Subject: next\r\n\r\nx\r\n")
            assert s.quit()[0] == 221
        pid = read_pid(pidfile)
        wait_until(lambda: not group_alive(pid), 10, "the queue program to be gone")
        assert "what=queue_timeout" in t.log("smtpd"), t.log("smtpd")
        (raw,) = t.wait_for_messages("alice", 1)
        assert b"Subject: next" in raw
        t.wait_spool_empty()


def test_a_queue_program_that_never_reads_gets_451():
    # 2 MB: far more than a pipe holds, so the writes block.
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 2000
    hung_queue_program("sleep 100000\n", big)


def test_a_queue_program_that_never_exits_gets_451():
    hung_queue_program("cat >/dev/null\ncat <&1 >/dev/null\nsleep 100000\n",
                       b"Subject: small\r\n\r\nbody\r\n")


# ---- tern-deliver's reports ----

def hanging_queue_tree():
    """An installed tree whose tern-queue hangs the first time tern-deliver
    runs it as the program (writing its pid to ROOT/hung/pid); otherwise
    the real one."""
    root, sbin = install_tree()
    os.rename(os.path.join(sbin, "tern-queue"), os.path.join(sbin, "real-tern-queue"))
    hung = os.path.join(root, "hung")
    script(os.path.join(sbin, "tern-queue"),
           'if [ "$1" != --service ] && [ "$(cat /proc/$PPID/comm)" = tern-deliver ] &&\n'
           '   mkdir %s 2>/dev/null; then\n'
           '    echo $$ > %s/pid\n    sleep 100000\nfi\n'
           'exec "$(dirname "$0")/real-tern-queue" "$@"\n' % (hung, hung))
    return root, sbin, os.path.join(hung, "pid")


# The reports' program path: a queue_socket that cannot be bound leaves
# tern-deliver without a queue service, so its reports run tern-queue
# (test_service.py has a hanging service).
NO_SERVICE = "queue_socket = /nonexistent/queue\n"


def queue_directly(t, sender, rcpts, message=b"Subject: direct\n\nhi\n"):
    envelope = b"F" + sender + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts) + b"\0"
    code, err = t.queue(envelope, message)
    assert code == 0, (code, err)


def test_a_hanging_bounce_does_not_stall_delivery():
    root, sbin, pidfile = hanging_queue_tree()
    try:
        with Instance(bindir=sbin, conf="queue_timeout = 1h\n" + NO_SERVICE + FAST_RETRY) as t:
            queue_directly(t, b"bob@example.test", [b"nobody@example.test"])
            pid = read_pid(pidfile)
            with t.smtp() as s:
                s.sendmail(SENDER, ["alice@example.test"], b"Subject: meanwhile\r\n\r\nx\r\n")
            (raw,) = t.wait_for_messages("alice", 1)
            assert b"Subject: meanwhile" in raw
            assert group_alive(pid)  # the report still waits for its tern-queue
            os.kill(pid, signal.SIGKILL)
            (report,) = t.wait_for_messages("bob", 1)  # retried, with the real one
            assert b"nobody@example.test" in report
            t.wait_spool_empty()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_bounce_past_queue_timeout_is_killed_and_retried():
    root, sbin, pidfile = hanging_queue_tree()
    try:
        with Instance(bindir=sbin, conf="queue_timeout = 2s\n" + NO_SERVICE + FAST_RETRY) as t:
            queue_directly(t, b"bob@example.test", [b"nobody@example.test"])
            pid = read_pid(pidfile)
            wait_until(lambda: not group_alive(pid), 20, "the hung tern-queue to be killed")
            (report,) = t.wait_for_messages("bob", 1)
            assert b"nobody@example.test" in report
            t.wait_spool_empty()
            log = t.log("deliver")
            assert "what=bounce" in log and "timed out" in log, log
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- signal dispositions in children ----

# grep's own: what the script's shell got (dash passes on what it was
# given ignored, but blocks signals itself while it waits for a command).
SIGNALS = "grep -E '^Sig(Ign|Blk):' /proc/self/status > %s\n"
# glibc's posix_spawn leaves its two internal signals (32, 33) ignored; no
# program can use those, so only the standard ones count here.
STANDARD_SIGNALS = (1 << 31) - 1


def assert_default_signals(path):
    with open(path) as f:
        fields = dict(line.split(":") for line in f.read().splitlines())
    ignored = int(fields["SigIgn"], 16)
    blocked = int(fields["SigBlk"], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1)), "SIGPIPE ignored: %x" % ignored
    assert ignored & STANDARD_SIGNALS == 0 and blocked == 0, fields


def test_a_queue_filter_starts_with_default_signals():
    with Instance(smtpd=False) as t:
        seen = os.path.join(t.dir, "signals")
        with_filter(t, SIGNALS % seen + "cat >/dev/null\ncat <&1 >/dev/null\nexit 0\n")
        with t.smtp() as s:
            s.sendmail(SENDER, ["alice@example.test"], b"Subject: s\r\n\r\nx\r\n")
        assert_default_signals(seen)


def spy_local(root, seen):
    """tern-local replaced by a script that notes its signals in SEEN, then
    runs the real one."""
    libexec = os.path.join(root, "libexec", "tern")
    os.rename(os.path.join(libexec, "tern-local"), os.path.join(libexec, "real-tern-local"))
    script(os.path.join(libexec, "tern-local"),
           SIGNALS % seen + 'exec "$(dirname "$0")/real-tern-local" "$@"\n')


def test_tern_local_starts_with_default_signals():
    root, sbin = install_tree()
    seen = os.path.join(root, "signals")
    spy_local(root, seen)
    try:
        with Instance(bindir=sbin) as t:
            with t.smtp() as s:
                s.sendmail(SENDER, ["alice@example.test"], b"Subject: s\r\n\r\nx\r\n")
            t.wait_for_messages("alice", 1)
            assert_default_signals(seen)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_tern_local_as_the_owner_starts_with_default_signals():
    # As root, tern-deliver forks to take on the Maildir owner's identity:
    # that child resets its signals too.
    user = make_user()
    root, sbin = install_tree()
    box = os.path.join(root, "seen")
    os.mkdir(box)
    os.chown(box, user.pw_uid, user.pw_gid)
    seen = os.path.join(box, "signals")
    spy_local(root, seen)
    try:
        with Instance(deliver=False, bindir=sbin,
                      smtpd_env=queue_as_owner(sbin)) as t:
            installed_mode(t)
            chown_tree(t.maildir("bob"), user.pw_uid, user.pw_gid)
            t.start_deliver()
            with t.smtp() as s:
                s.sendmail(SENDER, ["bob@example.test"], b"Subject: s\r\n\r\nx\r\n")
            t.wait_for_messages("bob", 1)
            assert_default_signals(seen)
    finally:
        subprocess.run(["userdel", TEST_USER], stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)
