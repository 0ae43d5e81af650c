"""The spool's two file formats (tern-queue(8), "Message files"): TERN2
(envelope file + mess/ID, CRC-32C) and TERN1 (message and envelope in one
file, as written before), read side by side; torn TERN2 files, as a crash
can leave them, never pass for whole ones."""
import json
import os
import re
import shutil
import subprocess
import time

import harness
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
            harness.wait_until(lambda: not os.path.exists(torn), 20,
                               "the old torn envelope to go")
            assert "cleanup path=%s" % torn in t.log("deliver")
        assert os.path.exists(os.path.join(queue, "NewTorn"))
        assert os.path.exists(os.path.join(queue, "OldTern1"))   # for the administrator
        path = os.path.join(mess, "OldOrphan")
        harness.wait_until(lambda: not os.path.exists(path), 20, "the old orphan to go")
        assert "cleanup path=%s" % path in t.log("deliver")
        assert os.path.exists(os.path.join(mess, "NewOrphan"))       # a writer may be at it
        assert os.path.exists(os.path.join(mess, "OldBeingWritten"))  # its tmp/ goes first
        assert t.messages("alice") == [] and t.messages("bob") == []



# ---- the writer: TERN2, linked before it syncs (tern-queue(8)) ----

ENVELOPE = b"Fs@remote.test\0Talice@example.test\0\0"


def test_tern_queue_links_before_it_syncs_and_confirms_after():
    if shutil.which("strace") is None:
        raise AssertionError("strace is needed (make deps installs it)")
    with Instance(smtpd=False, deliver=False) as t:
        msg, env, trace = (os.path.join(t.dir, n) for n in ("msg", "env", "trace"))
        spool_format.write_file(msg, NEW)
        spool_format.write_file(env, ENVELOPE)
        penv = t.env({"TERN_QID": "Lever1"})
        if harness.SANITIZED:   # LeakSanitizer cannot run under ptrace
            penv["ASAN_OPTIONS"] = "abort_on_error=0:detect_leaks=0"
        with open(msg, "rb") as fd0, open(env, "rb") as fd1:
            r = subprocess.run(["strace", "-y", "-o", trace, "-e",
                                "trace=sync_file_range,link,linkat,fdatasync,fsync,exit_group",
                                t.program("tern-queue")], stdin=fd0, stdout=fd1,
                               stderr=subprocess.PIPE, env=penv, timeout=60)
        assert r.returncode == 0, r.stderr
        with open(trace) as f:
            calls = [line.strip() for line in f if not line.startswith("+++")]

        def first(pattern):
            for i, call in enumerate(calls):
                if re.search(pattern, call):
                    assert call.endswith("= 0") or call.startswith("exit_group"), call
                    return i
            raise AssertionError("no %s in %s" % (pattern, calls))
        started = max(first(r"^sync_file_range\(\d+</[^>]*/spool/mess/Lever1>"),
                      first(r"^sync_file_range\(\d+</[^>]*/spool/tmp/Lever1>"))
        linked = first(r'^link\(".*/spool/tmp/Lever1", ".*/spool/incoming/Lever1"\)')
        synced = max(first(r"^fdatasync\(\d+</[^>]*/spool/mess/Lever1>"),
                     first(r"^fdatasync\(\d+</[^>]*/spool/tmp/Lever1>"))
        folders = max(first(r"^fsync\(\d+</[^>]*/spool/mess>"),
                      first(r"^fsync\(\d+</[^>]*/spool/incoming>"))
        assert started < linked < synced < folders < first(r"^exit_group\(0\)"), calls
        # and what it wrote reads back whole
        assert sorted(listed(t)) == ["Lever1"]
        with open(os.path.join(t.spool, "mess", "Lever1"), "rb") as f:
            assert f.read() == NEW


def test_a_failed_sync_is_53_and_leaves_nothing():
    with Instance(smtpd=False, deliver=False) as t:
        for call, path in (("fdatasync", "/spool/mess/"), ("fdatasync", "/spool/tmp/"),
                           ("fsync", "/spool/mess"), ("fsync", "/spool/incoming")):
            env = {"LD_PRELOAD": harness.FAULT_SHIM, "TERN_FAULT": call,
                   "TERN_FAULT_PATH": path}
            if harness.SANITIZED:
                env["ASAN_OPTIONS"] = "abort_on_error=0:detect_leaks=1:verify_asan_link_order=0"
            code, err = t.queue(ENVELOPE, NEW, extra_env=env)
            assert code == 53, (call, path, code, err)
            assert re.search(r"what=\"?%s" % call, err), (call, path, err)
            assert t.spool_files() == [], (call, path, t.spool_files())
        code, err = t.queue(ENVELOPE, NEW)
        assert code == 0, err
