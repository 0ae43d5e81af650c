"""The spool's two file formats (tern-queue(8), "Message files"): TERN2
(envelope file + mess/ID, CRC-32C) and TERN1 (message and envelope in one
file, as written before), read side by side; torn TERN2 files, as a crash
can leave them, never pass for whole ones."""
import json
import os
import time

from harness import Instance
import spool_format

NOW = int(time.time())
OLD = b"Subject: written as TERN1\n\nold body\n"
NEW = b"Subject: written as TERN2\n\nnew body\n" + b"x" * 3000 + b"\n"


def listed(t):
    return {m["id"]: m for m in json.loads(t.ternctl("queue", "--json").stdout)}


def test_ternctl_reads_both_formats():
    with Instance(smtpd=False, deliver=False) as t:
        spool_format.write_tern1(t.spool, "queue", "Old1", OLD, "s@remote.test",
                                 ["alice@example.test"], NOW - 60)
        spool_format.write_tern2(t.spool, "queue", "New1", NEW, "",
                                 ["alice@example.test", "bob@example.test"], NOW - 30)
        spool_format.write_tern2(t.spool, "incoming", "New2", NEW, "s@remote.test",
                                 ["bob@example.test"], NOW)
        out = listed(t)
        assert sorted(out) == ["New1", "New2", "Old1"], out
        assert out["Old1"]["size"] == len(OLD) and out["Old1"]["sender"] == "s@remote.test"
        assert out["New1"]["size"] == len(NEW) and out["New1"]["sender"] == ""
        assert [r["addr"] for r in out["New1"]["rcpts"]] == ["alice@example.test",
                                                            "bob@example.test"]
        assert 25 <= out["New1"]["age_s"] < 3600, out["New1"]
        for qid, body in (("Old1", OLD), ("New1", NEW), ("New2", NEW)):
            r = t.ternctl("show", qid, check=False)
            assert r.returncode == 0, (qid, r.stderr)
            assert r.stdout.partition("\n\n")[2] == body.decode(), (qid, r.stdout[-200:])
        stats = t.ternctl("stats").stdout
        assert "tern_queue_messages 3\n" in stats, stats
        assert 'tern_queue_recipients{state="pending"} 4\n' in stats, stats


def torn_copies(t):
    """Writes TERN2 messages torn in the ways a crash tears them; their ids."""
    rcpts = ["alice@example.test"]
    spool = t.spool
    torn = []
    # message changed, same length: only its CRC tells (not yet taken in)
    spool_format.write_tern2(spool, "incoming", "TornCrc", NEW, "", rcpts, NOW)
    with open(os.path.join(spool, "mess", "TornCrc"), "r+b") as f:
        f.seek(100)
        f.write(b"\0" * 50)
    torn.append("TornCrc")
    # message cut short
    spool_format.write_tern2(spool, "queue", "TornShort", NEW, "", rcpts, NOW)
    os.truncate(os.path.join(spool, "mess", "TornShort"), 10)
    torn.append("TornShort")
    # no message at all
    spool_format.write_tern2(spool, "incoming", "TornNoMess", NEW, "", rcpts, NOW)
    os.unlink(os.path.join(spool, "mess", "TornNoMess"))
    torn.append("TornNoMess")
    # envelope zeroed, its size kept (the size made durable, not the data)
    spool_format.write_tern2(spool, "incoming", "TornZero", NEW, "", rcpts, NOW)
    path = os.path.join(spool, "incoming", "TornZero")
    size = os.path.getsize(path)
    spool_format.write_file(path, b"\0" * size)
    torn.append("TornZero")
    # envelope with one recipient changed in place: its CRC tells
    spool_format.write_tern2(spool, "incoming", "TornEnv", NEW, "", ["alice@example.test"],
                             NOW)
    path = os.path.join(spool, "incoming", "TornEnv")
    with open(path, "rb") as f:
        data = f.read()
    spool_format.write_file(path, data.replace(b"alice", b"alici"))
    torn.append("TornEnv")
    return torn


def test_ternctl_leaves_out_torn_files():
    with Instance(smtpd=False, deliver=False) as t:
        spool_format.write_tern2(t.spool, "incoming", "Whole", NEW, "", ["bob@example.test"],
                                 NOW)
        torn = torn_copies(t)
        assert sorted(listed(t)) == ["Whole"], listed(t)
        assert "tern_queue_messages 1\n" in t.ternctl("stats").stdout
        for qid in torn:
            r = t.ternctl("show", qid, check=False)
            assert r.returncode != 0 and "new body" not in r.stdout, (qid, r.stdout)
        # ternctl never changes the spool: every torn file is still there
        for qid in torn:
            assert any(os.path.exists(os.path.join(t.spool, d, qid))
                       for d in ("incoming", "queue")), qid


def bodies(t, user):
    return [m.split(b"\n\n", 1)[1] for m in t.messages(user)]


def test_deliver_delivers_both_formats_once():
    with Instance(smtpd=False, deliver=False) as t:
        spool_format.write_tern1(t.spool, "queue", "Old1", OLD, "s@remote.test",
                                 ["alice@example.test"], NOW - 60)
        spool_format.write_tern1(t.spool, "incoming", "Old2", OLD, "s@remote.test",
                                 ["bob@example.test"], NOW - 60)
        spool_format.write_tern2(t.spool, "queue", "New1", NEW, "s@remote.test",
                                 ["alice@example.test", "bob@example.test"], NOW - 30)
        spool_format.write_tern2(t.spool, "incoming", "New2", NEW, "s@remote.test",
                                 ["bob@example.test"], NOW)
        t.start_deliver()
        t.wait_for_messages("alice", 2)
        t.wait_for_messages("bob", 3)
        t.wait_spool_empty()
        assert sorted(bodies(t, "alice")) == sorted([OLD.split(b"\n\n", 1)[1],
                                                     NEW.split(b"\n\n", 1)[1]])
        assert len(t.messages("bob")) == 3
        log = t.log("deliver")
        for qid in ("Old1", "Old2", "New1", "New2"):
            assert "removed id=%s" % qid in log, (qid, log)
        assert "what=torn" not in log and "what=read" not in log, log


def test_deliver_removes_torn_files_and_delivers_the_rest():
    with Instance(smtpd=False, deliver=False) as t:
        spool_format.write_tern2(t.spool, "incoming", "Whole", NEW, "",
                                 ["bob@example.test"], NOW)
        torn = torn_copies(t)
        # a torn envelope with no mess/ID: no telling what it was; left alone
        spool_format.write_file(os.path.join(t.spool, "incoming", "Unknown"), b"\0" * 300)
        t.start_deliver()
        t.wait_for_messages("bob", 1)
        log = t.log("deliver")
        for qid in torn:
            assert "error id=%s what=torn" % qid in log, (qid, log)
            for d in ("incoming", "queue", "mess", "state"):
                assert not os.path.exists(os.path.join(t.spool, d, qid)), (qid, d)
        assert "error id=Unknown what=read error=\"Bad message\"" in log, log
        assert os.path.exists(os.path.join(t.spool, "queue", "Unknown"))
        os.unlink(os.path.join(t.spool, "queue", "Unknown"))
        t.wait_spool_empty()
        # nothing torn was delivered: only the whole one, and once
        assert t.messages("alice") == [] and len(t.messages("bob")) == 1
        assert bodies(t, "bob") == [NEW.split(b"\n\n", 1)[1]]


def test_orphan_message_files_are_removed_by_age():
    with Instance(smtpd=False, deliver=False) as t:
        mess = os.path.join(t.spool, "mess")
        for name in ("OldOrphan", "NewOrphan", "OldBeingWritten"):
            spool_format.write_file(os.path.join(mess, name), NEW)
        # its envelope is still being written in tmp/
        spool_format.write_file(os.path.join(t.spool, "tmp", "OldBeingWritten"), b"x")
        two_days = NOW - 2 * 86400
        for name in ("OldOrphan", "OldBeingWritten"):
            os.utime(os.path.join(mess, name), (two_days, two_days))
        # torn envelopes without mess/ID: one old, one new, and an old TERN1
        queue = os.path.join(t.spool, "queue")
        for name in ("OldTorn", "NewTorn"):
            spool_format.write_file(os.path.join(queue, name), b"\0" * 300)
        spool_format.write_file(os.path.join(queue, "OldCut"),
                                spool_format.tern2_envelope(NEW, "", ["a@example.test"],
                                                            NOW)[:40])
        spool_format.write_file(os.path.join(queue, "OldTern1"),
                                spool_format.tern1_file(OLD, "", ["a@example.test"], NOW)[:-1])
        for name in ("OldTorn", "OldCut", "OldTern1"):
            os.utime(os.path.join(queue, name), (two_days, two_days))
        t.start_deliver()   # cleans up at start
        for name in ("OldTorn", "OldCut"):
            torn = os.path.join(queue, name)
            harness_wait(lambda: not os.path.exists(torn), "the old torn envelope to go")
            assert "cleanup path=%s" % torn in t.log("deliver")
        assert os.path.exists(os.path.join(queue, "NewTorn"))
        assert os.path.exists(os.path.join(queue, "OldTern1"))   # for the administrator
        path = os.path.join(mess, "OldOrphan")
        harness_wait(lambda: not os.path.exists(path), "the old orphan to go")
        assert "cleanup path=%s" % path in t.log("deliver")
        assert os.path.exists(os.path.join(mess, "NewOrphan"))       # a writer may be at it
        assert os.path.exists(os.path.join(mess, "OldBeingWritten"))  # its tmp/ goes first
        assert t.messages("alice") == [] and t.messages("bob") == []


def harness_wait(predicate, what):
    import harness
    harness.wait_until(predicate, 20, what)


def test_a_spool_of_the_format_before_is_delivered_once_after_the_upgrade():
    # TERN1 files and state files as the code before mess/ wrote them, in
    # an instance: each recipient still due gets the message once, and
    # what was delivered or bounced already is not sent again.
    with Instance(smtpd=False, deliver=False) as t:
        state = os.path.join(t.spool, "state")
        spool_format.write_tern1(t.spool, "queue", "Up1", OLD, "s@remote.test",
                                 ["alice@example.test", "bob@example.test"], NOW - 600)
        spool_format.write_file(os.path.join(state, "Up1"), spool_format.state_file(
            [("delivered", 0, 1, "alice@example.test", "alice@example.test", ""),
             ("deferred", NOW - 5, 2, "bob@example.test", "bob@example.test",
              "4.2.2 over quota")]))
        spool_format.write_tern1(t.spool, "queue", "Up2", OLD, "",
                                 ["alice@example.test"], NOW - 500)
        spool_format.write_file(os.path.join(state, "Up2"), spool_format.state_file(
            [("pending", 0, 0, "alice@example.test", "alice@example.test", "")]))
        spool_format.write_tern1(t.spool, "incoming", "Up3", OLD, "s@remote.test",
                                 ["bob@example.test"], NOW - 400)
        t.start_deliver()
        t.wait_for_messages("alice", 1)
        t.wait_for_messages("bob", 2)
        t.wait_spool_empty()
        assert len(t.messages("alice")) == 1 and len(t.messages("bob")) == 2
        log = t.log("deliver")
        assert "delivered id=Up2 rcpt=alice@example.test" in log, log
        assert "id=Up1 rcpt=alice" not in log, log
        assert "delivered id=Up1 rcpt=bob@example.test" in log, log
        assert "delivered id=Up3 rcpt=bob@example.test" in log, log
