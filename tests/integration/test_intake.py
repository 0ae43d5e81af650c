"""tern-deliver's take-in: a new message is read where tern-queue left it,
in incoming/, and moves to queue/ only before its first state file.

See tern-deliver(8) (incoming/) and tern-queue(8) (CRASH SAFETY)."""
import contextlib
import os
import shutil
import signal
import subprocess

import harness
from harness import Instance, wait_until
from test_spool import fault_env  # the shim, in tern-deliver only

BODY = "Subject: intake\r\n\r\nline one\r\n"


def send(t, rcpts):
    with t.smtp() as c:
        c.ehlo("client.test")
        c.mail("sender@client.test")
        for r in rcpts:
            c.rcpt(r)
        code, text = c.data(BODY)
        assert code == 250, text
        return text.decode().rsplit(" ", 1)[1]


def folder_has(t, folder, qid):
    return os.path.exists(os.path.join(t.spool, folder, qid))


def make_maildir(path):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


def traced_deliver(t, out):
    """tern-deliver under strace -f, its link/fsync calls with paths."""
    starts = t.log("deliver").count("start spool=")
    log = open(t.deliver_log, "ab")
    t.deliver_proc = subprocess.Popen(
        ["strace", "-f", "-y", "-qq", "-o", out, "-e", "trace=link,fsync",
         t.program("tern-deliver"), "-C", t.conf],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        # LeakSanitizer cannot run under ptrace
        env=t.env({"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=0"}
                  if harness.SANITIZED else None))
    log.close()
    wait_until(lambda: t.log("deliver").count("start spool=") > starts, 20,
               "tern-deliver to start")


def stop_traced(t):
    """SIGTERM to tern-deliver itself (strace would detach and leave it)."""
    if t.deliver_proc is None:
        return
    tracer = t.deliver_proc.pid
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
        with open("/proc/%d/task/%d/children" % (tracer, tracer)) as f:
            (child,) = f.read().split()
        os.kill(int(child), signal.SIGTERM)
    t.deliver_proc.wait(timeout=30)
    t.deliver_proc = None


@contextlib.contextmanager
def traced(t, out):
    """tern-deliver under strace for the block, stopped after it, even when
    an assertion fails in it."""
    traced_deliver(t, out)
    try:
        yield
    finally:
        stop_traced(t)


def logged_removed(t, qids):
    """Every one of QIDS removed, in the log (a moment after its files go)."""
    return all("removed id=%s" % q in t.log("deliver") for q in qids)


def test_a_message_delivered_at_once_never_moves_to_queue():
    with Instance(deliver=False) as t:
        out = os.path.join(t.dir, "deliver.strace")
        with traced(t, out):
            qids = [send(t, ["alice@example.test"]) for _ in range(3)]
            t.wait_for_messages("alice", 3)
            t.wait_spool_empty()
            wait_until(lambda: logged_removed(t, qids), 20, "the removals logged")
            log = t.log("deliver")
            for qid in qids:
                assert "delivered id=%s " % qid in log, log
        with open(out) as f:
            calls = f.read()
        # no link into queue/, no fsync of it (the next test's deferral has both)
        assert "/spool/queue" not in calls, calls


def test_a_deferred_message_moves_to_queue_before_its_state_file():
    with Instance(deliver=False, conf="retry_first = 1h\nretry_max = 1h") as t:
        out = os.path.join(t.dir, "deliver.strace")
        shutil.rmtree(t.maildir("bob"))
        with traced(t, out):
            qid = send(t, ["alice@example.test", "bob@example.test"])
            t.wait_for_messages("alice", 1)
            wait_until(lambda: folder_has(t, "state", qid), 20, "bob's deferral recorded")
            assert folder_has(t, "queue", qid) and not folder_has(t, "incoming", qid)
        with open(out) as f:
            calls = [line for line in f.read().splitlines() if "/spool/" in line]
        link = next(i for i, c in enumerate(calls)
                    if "link(" in c and "/spool/incoming/%s" % qid in c)
        synced = next(i for i, c in enumerate(calls)
                      if c.split(None, 1)[1].startswith("fsync(") and c.rstrip().endswith("= 0")
                      and "/spool/queue>" in c)
        assert link < synced, calls
        # restarted, bob's delivery is still due, alice's is done: once each
        make_maildir(t.maildir("bob"))
        t.start_deliver()
        t.ternctl("flush")
        t.wait_for_messages("bob", 1)
        t.wait_spool_empty()
        assert len(t.messages("alice")) == 1 and len(t.messages("bob")) == 1


def test_a_message_left_in_incoming_by_a_crash_is_taken_in_as_new():
    with Instance(deliver=False) as t:
        shutil.rmtree(t.maildir("bob"))
        qid = send(t, ["bob@example.test"])
        # a state file left beside it is no past of its own (a crash between
        # a removal's unlinks, or an administrator's copy): discarded
        with open(os.path.join(t.spool, "state", qid), "w") as f:
            f.write("garbage\n")
        make_maildir(t.maildir("bob"))
        t.start_deliver()
        t.wait_for_messages("bob", 1)
        t.wait_spool_empty()
        assert "error id=%s what=state error=\"a leftover state file, removed\"" % qid \
            in t.log("deliver"), t.log("deliver")



def test_a_message_whose_commit_was_taken_back_is_dropped_not_kept():
    # tern-deliver may read a message in incoming/ while its commit is
    # still under way; if that commit then fails, tern-queue takes the
    # name back (the client was refused) and the move before the first
    # state file finds no incoming/ID: link(2) says ENOENT, injected here
    env = fault_env(TERN_FAULT="link", TERN_FAULT_ERRNO="2", TERN_FAULT_TIMES="1")
    with Instance(deliver=False, conf="retry_first = 1s\nretry_max = 1s") as t:
        shutil.rmtree(t.maildir("bob"))
        t.start_deliver(env)
        qid = send(t, ["alice@example.test", "bob@example.test"])
        wait_until(lambda: "removed id=%s" % qid in t.log("deliver"), 20, "its removal")
        log = t.log("deliver")
        assert "error id=%s what=gone " % qid in log, log
        t.wait_spool_empty()
        # no retry of bob, no report of it: the message was never acknowledged
        make_maildir(t.maildir("bob"))
        t.ternctl("flush")
        assert len(t.messages("alice")) == 1 and t.messages("bob") == []
        assert log.count("delivered id=%s " % qid) == 1, log
