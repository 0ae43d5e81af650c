"""The newcomer's path: a message in over SMTP lands in the Maildir."""
import json
import re
import subprocess

import harness

from harness import Instance, wait_until


def test_swaks_message_lands_in_maildir():
    with Instance() as t:
        r = t.swaks("--from", "sender@remote.test", "--to", "alice@example.test",
                    "--header", "Subject: hello from swaks")
        assert "250 2.0.0 Ok: queued as " in r.stdout, r.stdout
        qid = r.stdout.split("queued as ")[1].split()[0]
        (msg,) = t.wait_for_messages("alice", 1)
        assert msg.startswith(b"Return-Path: <sender@remote.test>\nDelivered-To: alice@example.test\n")
        assert b"Received: from client.test ([127.0.0.1])" in msg
        assert ("id " + qid).encode() in msg
        assert b"Subject: hello from swaks\n" in msg
        assert b"\r" not in msg
        t.wait_spool_empty()
        wait_until(lambda: "delivered id=%s rcpt=alice@example.test" % qid in t.log("deliver"))
        assert "accepted id=%s" % qid in t.log("smtpd")


def test_smtplib_multiple_recipients_and_plus_tag():
    with Instance() as t:
        with t.smtp() as s:
            refused = s.sendmail("sender@remote.test",
                                 ["alice@example.test", "bob+lists@example.test",
                                  "alice@other.test"],
                                 b"Subject: multi\r\n\r\nbody line\r\n")
            assert refused == {}
        alice = t.wait_for_messages("alice", 2)
        bob = t.wait_for_messages("bob", 1)
        assert b"Delivered-To: bob+lists@example.test\n" in bob[0]
        assert all(m.endswith(b"\nbody line\n") for m in alice + bob)
        t.wait_spool_empty()


def test_queue_json_lists_a_waiting_message():
    with Instance(deliver=False) as t:
        with t.smtp() as s:
            s.sendmail("sender@remote.test", ["alice@example.test"], b"Subject: x\r\n\r\nx\r\n")
        out = json.loads(t.ternctl("queue", "--json").stdout)
        assert len(out) == 1
        m = out[0]
        assert m["sender"] == "sender@remote.test"
        assert m["rcpts"] == [{"addr": "alice@example.test", "state": "pending",
                               "next_try": None, "last_error": None}]
        assert isinstance(m["age_s"], int) and m["size"] > 0
        t.start_deliver()
        t.wait_for_messages("alice", 1)
        t.wait_spool_empty()
        assert json.loads(t.ternctl("queue", "--json").stdout) == []


def needed_libraries(name):
    out = subprocess.run(["readelf", "-d", harness.program(name)], stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def test_programs_link_only_what_they_use():
    """A plaintext session never pays for GnuTLS at exec (DESIGN.md), and
    the per-message programs load no table library."""
    smtpd = needed_libraries("tern-smtpd")
    assert smtpd and not any("gnutls" in lib for lib in smtpd), smtpd
    # tinycdb is linked in whole (the Makefile's CDB_STATIC): one shared
    # object fewer to map at every connection's exec
    assert not any("cdb" in lib for lib in smtpd), smtpd
    for name in ("tern-queue", "tern-local"):
        libs = needed_libraries(name)
        assert not any("gnutls" in lib or "cdb" in lib for lib in libs), (name, libs)
