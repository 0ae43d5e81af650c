"""tern-deliver and tern-local: what lands in the Maildir, aliases, retries,
bounces (RFC 3464, read back with Python's email package) and crash safety."""
import email
import email.policy
import glob
import json
import os
import pwd
import re
import shutil
import signal
import tempfile
import time

import harness
from harness import Instance, Skip, wait_until

FAST_RETRY = "retry_first = 1s\nretry_max = 1s"
ALIAS_LOOP = "a@example.test b@example.test\nb@example.test a@example.test\n"


def body(subject="test", text="hello"):
    return ("Subject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n%s\r\n"
            % (subject, re.sub(r"\W", "", subject) or "x", text)).encode()


def send(t, sender, rcpts, data=None):
    with t.smtp() as s:
        s.sendmail(sender, rcpts, data or body())


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def queue_json(t):
    return json.loads(t.ternctl("queue", "--json").stdout)


def rcpt_states(t):
    return {r["addr"]: r for m in queue_json(t) for r in m["rcpts"]}


def wait_state(t, addr, state, timeout=20):
    return wait_until(lambda: rcpt_states(t).get(addr, {}).get("state") == state
                      and rcpt_states(t)[addr], timeout, "%s to be %s" % (addr, state))


def dsn_parts(raw):
    """Checks the frame of an RFC 3464 report; returns (message, text part,
    per-message fields, list of per-recipient fields, returned part)."""
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert len(parts) == 3, [p.get_content_type() for p in parts]
    text, status, returned = parts
    assert text.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    blocks = [b for b in re.split(r"\r?\n\r?\n", _payload_text(status)) if b.strip()]
    fields = [dict((k.strip().lower(), v.strip()) for k, v in
                   (line.split(":", 1) for line in block.splitlines() if ":" in line))
              for block in blocks]
    return msg, text, fields[0], fields[1:], returned


def _payload_text(part):
    payload = part.get_payload()
    if isinstance(payload, list):  # compat32 parses delivery-status into blocks
        return "\n\n".join(p.as_string() for p in payload)
    return payload


# ---- the Maildir ----

def test_maildir_bytes_and_name():
    with Instance() as t:
        send(t, "sender@remote.test", ["alice@example.test", "bob@example.test"],
             body("two", "line one\r\n.leading dot\r\nline three"))
        (a,) = t.wait_for_messages("alice", 1)
        (b,) = t.wait_for_messages("bob", 1)
        lines = a.split(b"\n")
        assert lines[0] == b"Return-Path: <sender@remote.test>", lines[0]
        assert lines[1] == b"Delivered-To: alice@example.test", lines[1]
        assert lines[2].startswith(b"Received: from client.test ([127.0.0.1])")
        assert b"\r" not in a
        assert a.endswith(b"\n\nline one\n.leading dot\nline three\n"), a
        assert b.split(b"\n")[1] == b"Delivered-To: bob@example.test"
        assert a.split(b"\n", 2)[2] == b.split(b"\n", 2)[2]
        for user in ("alice", "bob"):
            md = t.maildir(user)
            assert os.listdir(os.path.join(md, "tmp")) == []
            assert os.listdir(os.path.join(md, "cur")) == []
            (name,) = os.listdir(os.path.join(md, "new"))
            assert re.fullmatch(r"\d+\.M\d+P\d+\.[^/:]+", name), name
        t.wait_spool_empty()
        assert "delivered id=" in t.log("deliver")


def test_plus_tag_and_case_reach_the_user():
    with Instance() as t:
        send(t, "sender@remote.test", ["Alice+Lists@Example.TEST"])
        (m,) = t.wait_for_messages("alice", 1)
        assert re.search(rb"^Delivered-To: alice\+lists@example\.test$", m, re.M | re.I), m


def test_every_message_gets_its_own_file():
    with Instance() as t:
        for i in range(5):
            send(t, "sender@remote.test", ["alice@example.test"], body("n%d" % i))
        msgs = t.wait_for_messages("alice", 5)
        subjects = sorted(re.search(rb"Subject: (n\d)", m).group(1) for m in msgs)
        assert subjects == [b"n0", b"n1", b"n2", b"n3", b"n4"]


# ---- aliases ----

def test_alias_to_two_targets_and_recursion():
    with Instance() as t:
        t.write_table("aliases", "team@example.test alice@example.test, sales@example.test\n"
                      "sales@example.test bob@example.test\n"
                      "postmaster@example.test alice@example.test\n")
        send(t, "sender@remote.test", ["team@example.test"])
        (a,) = t.wait_for_messages("alice", 1)
        (b,) = t.wait_for_messages("bob", 1)
        assert b"Delivered-To: alice@example.test\n" in a
        assert b"Delivered-To: bob@example.test\n" in b
        t.wait_spool_empty()
        log = t.log("deliver")
        assert "expanded id=" in log and "rcpt=team@example.test" in log, log


def test_alias_target_listed_twice_is_delivered_once():
    with Instance() as t:
        t.write_table("aliases", "a@example.test alice@example.test, b@example.test\n"
                      "b@example.test alice@example.test\n")
        send(t, "sender@remote.test", ["a@example.test", "alice@example.test"])
        t.wait_for_messages("alice", 1)
        t.wait_spool_empty()
        assert len(t.messages("alice")) == 1


def test_bare_postmaster_in_alias_value():
    with Instance() as t:
        t.write_table("aliases", "abuse@example.test postmaster\n"
                      "postmaster@example.test bob@example.test\n")
        send(t, "sender@remote.test", ["abuse@example.test"])
        (m,) = t.wait_for_messages("bob", 1)
        assert b"Delivered-To: bob@example.test\n" in m
        t.wait_spool_empty()
        assert t.messages("alice") == []


def test_alias_loop_bounces_with_5_4_6():
    with Instance() as t:
        t.write_table("aliases", ALIAS_LOOP)
        t.write_table("mailboxes", "carol@example.test ../mail/alice/Maildir\n")
        send(t, "carol@example.test", ["a@example.test"], body("looping"))
        (raw,) = t.wait_for_messages("alice", 1)
        msg, text, per_msg, per_rcpt, returned = dsn_parts(raw)
        assert raw.startswith(b"Return-Path: <>\n"), raw[:100]
        assert msg["To"] and "carol@example.test" in msg["To"]
        assert "reporting-mta" in per_msg
        (r,) = per_rcpt
        assert r["action"] == "failed"
        assert r["status"] == "5.4.6", r
        assert "a@example.test" in r.get("original-recipient", "") + r["final-recipient"]
        assert returned.get_content_type() == "message/rfc822"
        assert b"Subject: looping" in raw
        t.wait_spool_empty()
        assert re.search(r"bounced id=\S+ .*report=dsn", t.log("deliver")), t.log("deliver")


def test_alias_to_a_remote_address_waits_for_remote_delivery():
    with Instance() as t:
        t.write_table("aliases", "fwd@example.test someone@elsewhere.test, bob@example.test\n")
        send(t, "sender@remote.test", ["fwd@example.test"])
        t.wait_for_messages("bob", 1)
        r = wait_state(t, "someone@elsewhere.test", "deferred")
        assert "remote delivery is not available" in r["last_error"], r
        assert r["last_error"].startswith("4."), r


# ---- temporary failures and retries ----

def test_missing_maildir_is_deferred_then_flush_delivers():
    with Instance() as t:
        maildir = t.maildir("bob")
        shutil.rmtree(maildir)
        send(t, "sender@remote.test", ["bob@example.test"])
        r = wait_state(t, "bob@example.test", "deferred")
        assert r["last_error"].startswith("4.") and "Maildir" in r["last_error"], r
        assert r["next_try"] > time.time() - 5
        assert "deferred id=" in t.log("deliver")
        text = t.ternctl("queue").stdout
        assert "deferred" in text and "<bob@example.test>" in text, text
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub))
        t.ternctl("flush")
        t.wait_for_messages("bob", 1)
        t.wait_spool_empty()


def test_retry_time_survives_a_restart():
    with Instance(conf="retry_first = 3s\nretry_max = 3s") as t:
        maildir = t.maildir("bob")
        shutil.rmtree(maildir)
        send(t, "sender@remote.test", ["bob@example.test"])
        first = wait_state(t, "bob@example.test", "deferred")
        t.stop_deliver()
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, sub))
        t.start_deliver()
        # The restarted tern-deliver keeps the stored next-try time...
        assert rcpt_states(t)["bob@example.test"]["next_try"] == first["next_try"]
        # ...and delivers once it comes, with no flush.
        t.wait_for_messages("bob", 1, timeout=30)
        t.wait_spool_empty()


def test_maildir_tmp_symlink_is_not_followed():
    with Instance(conf=FAST_RETRY) as t:
        elsewhere = tempfile.mkdtemp(prefix="tern-elsewhere-")
        try:
            tmp = os.path.join(t.maildir("bob"), "tmp")
            os.rmdir(tmp)
            os.symlink(elsewhere, tmp)
            send(t, "sender@remote.test", ["bob@example.test"])
            r = wait_state(t, "bob@example.test", "deferred")
            assert r["last_error"].startswith("4."), r
            assert os.listdir(elsewhere) == []
            assert t.messages("bob") == []
        finally:
            shutil.rmtree(elsewhere)


def test_unreadable_mailboxes_table_defers_never_bounces():
    with Instance(conf=FAST_RETRY) as t:
        t.stop_deliver()
        send(t, "sender@remote.test", ["bob@example.test"])
        os.rename(os.path.join(t.etc, "mailboxes.cdb"), os.path.join(t.etc, "saved.cdb"))
        t.start_deliver()
        r = wait_state(t, "bob@example.test", "deferred")
        assert "4.3.0" in r["last_error"] and "mailboxes" in r["last_error"], r
        assert "table_error table=mailboxes" in t.log("deliver")
        os.rename(os.path.join(t.etc, "saved.cdb"), os.path.join(t.etc, "mailboxes.cdb"))
        t.wait_for_messages("bob", 1)
        t.wait_spool_empty()
        assert t.messages("alice") == []  # no bounce went anywhere


def bob_gone_carol_reads_alice(t):
    """Bob's Maildir is missing; carol@example.test, a sender whose reports
    are read in alice's Maildir, is added."""
    shutil.rmtree(t.maildir("bob"))
    t.write_table("mailboxes", "carol@example.test ../mail/alice/Maildir\n"
                  "bob@example.test ../mail/bob/Maildir\n")


def test_queue_lifetime_returns_the_message_with_4_4_7():
    with Instance(conf=FAST_RETRY + "\nqueue_lifetime = 2s") as t:
        bob_gone_carol_reads_alice(t)
        send(t, "carol@example.test", ["bob@example.test"], body("late"))
        (raw,) = t.wait_for_messages("alice", 1, timeout=30)
        _, text, _, (r,), returned = dsn_parts(raw)
        assert r["action"] == "failed"
        assert r["status"] == "4.4.7", r
        assert "bob@example.test" in r["final-recipient"]
        assert "diagnostic-code" in r or "Maildir" in text.get_payload()
        assert b"Subject: late" in raw
        t.wait_spool_empty()


def test_delay_warning_is_sent_once():
    conf = FAST_RETRY + "\ndelay_warning = yes\ndelay_warning_after = 1s"
    with Instance(conf=conf) as t:
        bob_gone_carol_reads_alice(t)
        send(t, "carol@example.test", ["bob@example.test"], body("slow"))
        (raw,) = t.wait_for_messages("alice", 1, timeout=30)
        _, _, _, (r,), _ = dsn_parts(raw)
        assert r["action"] == "delayed", r
        assert r["status"].startswith("4."), r
        wait_until(lambda: t.log("deliver").count("deferred id=") >= 4, 30, "more retries")
        assert len(t.messages("alice")) == 1  # warned once only
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(t.maildir("bob"), sub))
        t.ternctl("flush")
        t.wait_for_messages("bob", 1)
        t.wait_spool_empty()


# ---- bounces of bounces ----

def test_big_message_bounces_with_headers_only():
    with Instance(conf="bounce_max_size = 2K") as t:
        t.write_table("aliases", ALIAS_LOOP)
        t.write_table("mailboxes", "carol@example.test ../mail/alice/Maildir\n")
        big = body("bulky", ("x" * 70 + "\r\n") * 200)
        send(t, "carol@example.test", ["a@example.test"], big)
        (raw,) = t.wait_for_messages("alice", 1)
        _, _, _, _, returned = dsn_parts(raw)
        assert returned.get_content_type() == "text/rfc822-headers"
        assert b"Subject: bulky" in raw
        assert b"x" * 70 not in raw
        assert len(raw) < 4096


def test_failed_bounce_goes_to_postmaster_once():
    # nobody@example.test does not exist, so the bounce to it fails for good.
    with Instance() as t:
        t.write_table("aliases", ALIAS_LOOP + "postmaster@example.test bob@example.test\n")
        t.stop_deliver()
        queue_directly(t, b"nobody@example.test", [b"a@example.test"])
        t.start_deliver()
        (raw,) = t.wait_for_messages("bob", 1)
        assert raw.startswith(b"Return-Path: <#@[]>\n"), raw[:80]
        msg, _, _, per_rcpt, _ = dsn_parts(raw)
        assert any(r["status"].startswith("5.") for r in per_rcpt)
        t.wait_spool_empty()
        assert len(t.messages("bob")) == 1
        assert t.messages("alice") == []
        assert re.search(r"bounced id=\S+ .*report=postmaster", t.log("deliver"))


def test_bounce_of_a_bounce_goes_to_postmaster():
    with Instance() as t:
        t.write_table("aliases", ALIAS_LOOP + "postmaster@example.test bob@example.test\n")
        send(t, "", ["a@example.test"], body("already a bounce"))
        (raw,) = t.wait_for_messages("bob", 1)
        assert raw.startswith(b"Return-Path: <#@[]>\n"), raw[:80]
        assert b"already a bounce" in raw
        t.wait_spool_empty()
        assert len(t.messages("bob")) == 1


def test_failed_postmaster_report_is_dropped_not_looped():
    with Instance() as t:
        t.write_table("aliases", ALIAS_LOOP + "postmaster@example.test gone@example.test\n")
        send(t, "", ["a@example.test"])
        wait_until(lambda: "report=dropped" in t.log("deliver"), 20, "a dropped report")
        t.wait_spool_empty()
        assert t.messages("alice") == [] and t.messages("bob") == []
        time.sleep(0.5)
        assert t.spool_files() == []


def queue_directly(t, sender, rcpts, message=b"Subject: direct\n\nhi\n", qid=None):
    envelope = b"F" + sender + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts) + b"\0"
    code, err = t.queue(envelope, message, qid)
    assert code == 0, (code, err)


def test_bounce_to_a_long_sender_keeps_the_address():
    # tern-queue takes addresses up to 1002 octets; this one is no valid
    # address, so its bounce fails in turn and the postmaster hears of it.
    sender = b"s" * 300 + b"@" + b"d" * 60 + b".test"
    with Instance() as t:
        queue_directly(t, sender, [b"nosuchuser@example.test"])
        (raw,) = t.wait_for_messages("alice", 1)  # postmaster@example.test
        assert raw.startswith(b"Return-Path: <#@[]>\n"), raw[:80]
        _, _, _, (r,), _ = dsn_parts(raw)
        assert r["final-recipient"] == "rfc822; " + sender.decode(), r
        t.wait_spool_empty()


def test_a_leftover_state_file_is_not_applied_to_a_new_message():
    with Instance(deliver=False) as t:
        queue_directly(t, b"sender@remote.test", [b"alice@example.test"], qid="Stale1")
        with open(os.path.join(t.spool, "state", "Stale1"), "w") as f:
            f.write("tern-state 1\ndelivered\t0\t1\t0\t-\talice@example.test"
                    "\talice@example.test\t\n")
        t.start_deliver()
        t.wait_for_messages("alice", 1)
        t.wait_spool_empty()


def test_one_tern_deliver_per_spool():
    with Instance() as t:
        second = harness.run([t.program("tern-deliver"), "-C", t.conf], check=False,
                             env=t.env())
        assert second.returncode == 111, second
        assert "another tern-deliver is running on this spool" in second.stderr
        send(t, "sender@remote.test", ["alice@example.test"])
        t.wait_for_messages("alice", 1)
        t.wait_spool_empty()
        assert len(t.messages("alice")) == 1


# ---- concurrency and crashes ----

def burst(t, count, rcpt="alice@example.test"):
    with t.smtp() as s:
        for i in range(count):
            s.sendmail("sender@remote.test", [rcpt], body("burst %d" % i))


def subjects(t, user):
    return {re.search(rb"Subject: (burst \d+)", m).group(1) for m in t.messages(user)}


def test_local_concurrency_one():
    with Instance(conf="local_concurrency = 1") as t:
        burst(t, 30)
        wait_until(lambda: len(subjects(t, "alice")) == 30, 60, "30 messages")
        t.wait_spool_empty()
        assert "local_concurrency=1" in t.log("deliver")


def test_kill_deliver_during_a_burst_loses_nothing():
    with Instance() as t:
        with t.smtp() as s:
            for i in range(200):
                s.sendmail("sender@remote.test", ["alice@example.test"], body("burst %d" % i))
                if i in (50, 120, 190):
                    t.stop_deliver(signal.SIGKILL)
                    t.start_deliver()
        want = {("burst %d" % i).encode() for i in range(200)}
        wait_until(lambda: subjects(t, "alice") >= want, 120, "all 200 messages")
        t.wait_spool_empty(60)
        assert subjects(t, "alice") == want
        for sub in ("incoming", "queue", "state", "tmp"):
            assert os.listdir(os.path.join(t.spool, sub)) == []


# ---- system accounts ----

def test_system_domain_delivers_to_home_maildir():
    if os.geteuid() != 0:
        raise Skip("needs root to add a test account")
    login = "ternsys%d" % os.getpid()
    home = tempfile.mkdtemp(prefix="tern-home-")
    os.chmod(home, 0o755)
    harness.run(["useradd", "-M", "-d", home, "-s", "/usr/sbin/nologin", login])
    try:
        account = pwd.getpwnam(login)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(home, "Maildir", sub))
        # an account takes mail only if it owns its home (qmail-getpw)
        for path in [home, os.path.join(home, "Maildir")] + glob.glob(home + "/Maildir/*"):
            os.chown(path, account.pw_uid, account.pw_gid)
        with Instance() as t:
            t.write_table("domains", "example.test\nsys.test system\n")
            send(t, "sender@remote.test", [login + "@sys.test"])
            (m,) = wait_until(lambda: glob.glob(os.path.join(home, "Maildir", "new", "*")),
                              20, "system delivery")
            with open(m, "rb") as f:
                assert b"Delivered-To: %s@sys.test\n" % login.encode() in f.read()
            with t.smtp() as s:
                s.ehlo()
                code, _ = s.docmd("MAIL FROM:<sender@remote.test>")
                assert code == 250
                code, reply = s.docmd("RCPT TO:<nosuchaccount@sys.test>")
                assert code == 550 and b"5.1.1" in reply, (code, reply)
                code, reply = s.docmd("RCPT TO:<%s@sys.test>" % login)
                assert code == 250, (code, reply)
    finally:
        harness.run(["userdel", login], check=False)
        shutil.rmtree(home, ignore_errors=True)
    assert login not in [p.pw_name for p in pwd.getpwall()]


def test_no_busy_loop_while_a_bounce_waits_for_a_delivery():
    # A failed recipient whose message still has a delivery running must
    # not make tern-deliver poll with timeout 0 until that delivery ends.
    root, sbin = harness.install_tree()
    libexec = os.path.join(root, "libexec", "tern")
    os.rename(os.path.join(libexec, "tern-local"), os.path.join(libexec, "real-tern-local"))
    with open(os.path.join(libexec, "tern-local"), "w") as f:
        f.write('#!/bin/sh\nsleep 3\nexec "$(dirname "$0")/real-tern-local" "$@"\n')
    os.chmod(os.path.join(libexec, "tern-local"), 0o755)
    try:
        with Instance(bindir=sbin) as t:
            queue_directly(t, b"bob@example.test", [b"alice@example.test",
                                                      b"nobody@example.test"])
            wait_until(lambda: "bounced id=" in t.log("deliver") or
                       cpu_seconds(t.deliver_proc.pid) > 1.5, 20, "the slow delivery")
            t.wait_for_messages("alice", 1)
            used = cpu_seconds(t.deliver_proc.pid)
            assert used < 1.5, "tern-deliver used %.1f s of CPU waiting" % used
            t.wait_spool_empty()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_bounce_the_queue_refuses_goes_to_the_postmaster_once():
    """A sender tern-queue refuses for good (not UTF-8, left by an older
    tern-queue) cannot get its bounce: the postmaster gets it instead,
    once, and the message leaves the spool."""
    from test_tools import place_message
    with Instance(smtpd=False, conf="retry_first = 1s\nretry_max = 1s") as t:
        place_message(t.spool, "HandPlaced2", b"bad\xff@client.test", [b"nobody@example.test"])
        t.ternctl("flush")
        t.wait_spool_empty(30)
        (report,) = t.wait_for_messages("alice", 1)
        assert b"nobody@example.test" in report, report
        log = t.log("deliver")
        assert "rcpt=nobody@example.test report=postmaster" in log, log
        assert log.count("what=bounce") == 1, log
