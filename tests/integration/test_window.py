"""tern-deliver's active window (active_limit, tern.conf(5)): a queue larger
than the window is delivered whole and once each, whether its messages
wait in memory or only on disk (new mail while the window is full,
deferred messages taken out of memory, queue/ at start)."""
import os
import re
import shutil
import time

import spool_format

from harness import Instance, wait_until

SENDER = "sender@remote.test"


def body(n):
    return ("Subject: backlog %d\r\nMessage-ID: <backlog%d@client.test>\r\n\r\nmessage %d\r\n"
            % (n, n, n)).encode()


def send_many(t, count, rcpt="bob@example.test"):
    with t.smtp() as s:
        for n in range(count):
            s.sendmail(SENDER, [rcpt], body(n))


def subjects(t, user):
    found = []
    for raw in t.messages(user):
        m = re.search(rb"^Subject: (.*?)\r?$", raw, re.M)
        found.append(m.group(1).decode() if m else None)
    return sorted(found)


def expected(count):
    return sorted("backlog %d" % n for n in range(count))


def deferrals(t):
    """How often each queue id was deferred, from the log."""
    counts = {}
    for qid in re.findall(r"deferred id=(\S+)", t.log("deliver")):
        counts[qid] = counts.get(qid, 0) + 1
    return counts


def make_maildir(path):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


def assert_each_once(t, user, count):
    t.wait_for_messages(user, count, timeout=60)
    t.wait_spool_empty(timeout=30)
    assert subjects(t, user) == expected(count), subjects(t, user)


def test_new_mail_beyond_the_window_arrives_once_each():
    with Instance(conf="active_limit = 3", deliver=False) as t:
        send_many(t, 20)        # all in incoming/ before tern-deliver starts
        t.start_deliver()
        assert_each_once(t, "bob", 20)


def test_deferred_messages_out_of_memory_are_retried_from_disk():
    with Instance(conf="active_limit = 3\nretry_first = 1s\nretry_max = 1s") as t:
        shutil.rmtree(t.maildir("bob"))
        send_many(t, 12)
        # every one tried again at least once: read back after leaving memory
        wait_until(lambda: len(deferrals(t)) == 12 and min(deferrals(t).values()) >= 2,
                   60, "12 messages deferred twice each")
        make_maildir(t.maildir("bob"))
        assert_each_once(t, "bob", 12)


def test_flush_reaches_messages_held_only_on_disk():
    with Instance(conf="active_limit = 3\nretry_first = 1h\nretry_max = 1h") as t:
        shutil.rmtree(t.maildir("bob"))
        send_many(t, 10)
        wait_until(lambda: len(deferrals(t)) == 10, 30, "10 messages deferred")
        make_maildir(t.maildir("bob"))
        t.ternctl("flush")
        assert_each_once(t, "bob", 10)


def test_a_request_by_id_reaches_a_message_on_disk():
    with Instance(conf="active_limit = 2\nretry_first = 1h\nretry_max = 1h") as t:
        shutil.rmtree(t.maildir("bob"))
        send_many(t, 6)
        wait_until(lambda: len(deferrals(t)) == 6, 30, "6 messages deferred")
        first = next(iter(deferrals(t)))        # long out of memory by now
        assert t.ternctl("hold", first).stdout == "hold: done\n"
        assert "request_unknown" not in t.log("deliver")
        make_maildir(t.maildir("bob"))
        assert t.ternctl("release", first).stdout == "release: done\n"
        t.wait_for_messages("bob", 1)
        wait_until(lambda: not os.path.exists(os.path.join(t.spool, "queue", first)), 20,
                   "the released message to leave the queue")
        assert len(t.messages("bob")) == 1      # the others wait their hour
        assert len(os.listdir(os.path.join(t.spool, "queue"))) == 5


def test_a_queue_larger_than_the_window_at_start_is_read_whole():
    with Instance(conf="active_limit = 4\nretry_first = 1h\nretry_max = 1h") as t:
        shutil.rmtree(t.maildir("bob"))
        send_many(t, 15)
        wait_until(lambda: len(deferrals(t)) == 15, 30, "15 messages deferred")
        t.stop_deliver()
        make_maildir(t.maildir("bob"))
        t.start_deliver()
        t.ternctl("flush")
        assert_each_once(t, "bob", 15)


def test_new_mail_does_not_wait_behind_a_window_full_of_idle_messages():
    with Instance(conf="active_limit = 5\nretry_first = 1h\nretry_max = 1h") as t:
        shutil.rmtree(t.maildir("bob"))
        send_many(t, 5)         # the queue fits: all five stay in memory, idle
        wait_until(lambda: len(deferrals(t)) == 5, 30, "5 messages deferred")
        send_many(t, 3, rcpt="alice@example.test")  # the window is full
        t.wait_for_messages("alice", 3)             # not in an hour
        assert subjects(t, "alice") == expected(3), subjects(t, "alice")
        assert len(deferrals(t)) == 5


def test_cleanup_keeps_an_old_empty_message_known_only_on_disk():
    """An empty TERN1 message starts with its envelope block ("time "), as a
    torn TERN2 envelope does: one out of memory is still not torn."""
    with Instance(conf="active_limit = 1", deliver=False, smtpd=False) as t:
        old = int(time.time()) - 3 * 86400
        ids = ["EmptyOld%d" % n for n in range(3)]
        for qid in ids:
            spool_format.write_tern1(t.spool, "queue", qid, b"", SENDER,
                                     ["bob@example.test"], old)
            with open(os.path.join(t.spool, "state", qid), "wb") as f:
                f.write(spool_format.state_file([("deferred", old + 10 * 86400, 1,
                                                  "bob@example.test", "bob@example.test",
                                                  "4.3.0 bench")]))
            os.utime(os.path.join(t.spool, "queue", qid), (old, old))
        t.start_deliver()       # cleanup runs at start, the three on disk alone
        assert sorted(os.listdir(os.path.join(t.spool, "queue"))) == ids
        assert "cleanup path=" not in t.log("deliver"), t.log("deliver")
