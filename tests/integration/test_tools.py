"""The tools' edges: ternctl init with many names, ternctl queue --json
with bytes that are not UTF-8, and tern-queue refusing such addresses.
See ternctl(8) and tern-queue(8)."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import harness
from harness import Instance, run

TERNCTL = harness.program("ternctl")


def read(path):
    with open(path) as f:
        return f.read()


def table_lines(t, name):
    return [l for l in read(os.path.join(t.etc, name)).splitlines()
            if l and not l.startswith("#")]


# ---- ternctl init ----

def test_init_takes_a_hundred_users_and_a_hundred_domains():
    domains = ["d%03d.example.test" % i for i in range(100)]
    users = ["user%03d" % i for i in range(100)]
    with Instance(domains=domains, users=users, deliver=True) as t:
        assert table_lines(t, "domains") == domains
        mailboxes = table_lines(t, "mailboxes")
        assert len(mailboxes) == 100 * 100
        assert "user099@d099.example.test ../mail/user099/Maildir" in mailboxes
        assert len(table_lines(t, "senders")) == 100
        assert t.ternctl("check").returncode == 0
        for u in ("user000", "user099"):
            assert os.path.isdir(os.path.join(t.maildir(u), "new"))
        with t.smtp() as s:
            s.sendmail("someone@outside.test", ["user099@d099.example.test"],
                       b"Subject: the last of a hundred\r\n\r\nbody\r\n")
        (message,) = t.wait_for_messages("user099", 1)
        assert b"Subject: the last of a hundred" in message


def test_init_names_an_option_without_its_value():
    base = tempfile.mkdtemp(prefix="tern-test-")
    try:
        for option in ("--user", "--domain", "--hostname", "--dns-server"):
            r = run([TERNCTL, "init", os.path.join(base, "x"), "--domain", "example.test",
                     "--user", "alice", option], check=False)
            assert r.returncode == 2, (option, r.returncode, r.stderr)
            assert "'%s' needs a value" % option in r.stderr, r.stderr
            assert not os.path.exists(os.path.join(base, "x", "etc", "tern.conf"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---- addresses that are not UTF-8 ----

NOT_UTF8 = (
    b"bad\xff@example.test",            # never valid
    b"bad\xc3@example.test",            # cut short
    b"bad\xc0\xaf@example.test",        # overlong '/'
    b"bad\xed\xa0\x80@example.test",    # a surrogate, U+D800
    b"bad\xf4\x90\x80\x80@example.test",  # past U+10FFFF
    b"bad\x80@example.test",            # a lone continuation octet
)


def envelope(sender, rcpts):
    return b"F" + sender + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts) + b"\0"


def test_queue_refuses_a_sender_that_is_not_utf8():
    with Instance(deliver=False, smtpd=False) as t:
        code, err = t.queue(b"Fbad\xff\0Talice@example.test\0\0")
        assert code == 31, (code, err)
        assert "address not UTF-8" in err, err
        for sender in NOT_UTF8:
            code, err = t.queue(envelope(sender, [b"alice@example.test"]))
            assert code == 31, (sender, code, err)
        assert t.spool_files() == []


def test_queue_refuses_a_recipient_that_is_not_utf8():
    with Instance(deliver=False, smtpd=False) as t:
        for rcpt in NOT_UTF8:
            code, err = t.queue(envelope(b"carol@example.test",
                                         [b"alice@example.test", rcpt]))
            assert code == 31, (rcpt, code, err)
        assert t.spool_files() == []


def test_queue_takes_well_formed_utf8():
    with Instance(deliver=False, smtpd=False) as t:
        sender = "j\u00f6rg@b\u00fccher.test".encode()
        rcpt = "\U0001f600\ud7ff\U0010ffff@example.test".encode("utf-8", "surrogatepass")
        code, err = t.queue(envelope(sender, [rcpt]))
        assert code == 0, (code, err)
        (m,) = json.loads(t.ternctl("queue", "--json").stdout.encode().decode("utf-8"))
        assert m["sender"] == sender.decode()
        assert [r["addr"] for r in m["rcpts"]] == [rcpt.decode()]


def place_message(spool, qid, sender, rcpts, message=b"Subject: by hand\n\nbody\n"):
    """Writes a committed message file into incoming/ as tern-queue lays it
    out (lib/spool.h), with whatever bytes it is given:
    the spool an older tern-queue may have left."""
    block = b"time %d\nfrom %s\n" % (int(time.time()), sender)
    block += b"".join(b"rcpt %s\n" % r for r in rcpts)
    footer = b"TERN1 %016x %08x\n" % (len(message), len(block))
    assert len(footer) == 32
    path = os.path.join(spool, "incoming", qid)
    with open(path, "wb") as f:
        f.write(message + block + footer)


def test_queue_json_is_utf8_whatever_the_spool_holds():
    with Instance(deliver=False, smtpd=False) as t:
        place_message(t.spool, "HandPlaced1", b"bad\xff\xfe@example.test",
                      [b"al\xc3ice@example.test", b"ok\xc3\xb6@example.test",
                       b"sur\xed\xa0\x80@example.test", b"q\"b\\s\x7f@example.test"])
        r = subprocess.run([TERNCTL, "-C", t.conf, "queue", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert r.returncode == 0 and r.stderr == b"", r.stderr
        (m,) = json.loads(r.stdout.decode("utf-8", "strict"))
        assert m["id"] == "HandPlaced1"
        assert m["sender"] == "bad\ufffd\ufffd@example.test"
        assert [x["addr"] for x in m["rcpts"]] == [
            "al\ufffdice@example.test", "ok\u00f6@example.test",
            "sur\ufffd\ufffd\ufffd@example.test", "q\"b\\s\x7f@example.test"]
        assert b"\\u007f" in r.stdout
        # the plain listing still shows the message
        assert "HandPlaced1" in t.ternctl("queue").stdout


def test_smtpd_refuses_an_address_that_is_not_utf8():
    """tern-smtpd never hands tern-queue such an address: a syntax error at
    MAIL and RCPT, with SMTPUTF8 or without."""
    with Instance(deliver=False) as t:
        for param in (b"", b" SMTPUTF8"):
            for bad in NOT_UTF8:
                text = t.conversation(
                    b"EHLO client.test\r\nMAIL FROM:<" + bad + b">" + param + b"\r\n"
                    b"MAIL FROM:<carol@example.test>" + param + b"\r\n"
                    b"RCPT TO:<" + bad + b">\r\nQUIT\r\n")
                codes = harness.replies(text)
                assert codes[0] == "220" and codes[1] == "250", text
                assert codes[2:5] == ["501", "250", "501"], (bad, param, text)
                assert "501 5.1.7 " in text and "501 5.1.3 " in text, text
        assert t.spool_files() == []
