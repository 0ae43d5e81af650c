"""tern-smtpd as a client sees it: replies, limits, smuggling, crashes, filters.

Byte-exact protocol tests talk over raw sockets (t.conversation() for a
client that pipelines all it can, Raw for a step-by-step dialogue); the rest
use smtplib or swaks.
"""
import json
import os
import re
import signal
import socket

import harness
from harness import Instance, replies, wait_until

SENDER = "sender@remote.test"


# ---- helpers ----

def lines(*items):
    """SMTP lines (str or bytes) joined with CRLF, as bytes."""
    return b"".join((i if isinstance(i, bytes) else i.encode()) + b"\r\n" for i in items)


def transaction(*rcpts, helo="EHLO client.test", sender=SENDER, mail_params=""):
    """The commands up to and including DATA."""
    cmds = [helo, "MAIL FROM:<%s>%s" % (sender, mail_params)]
    cmds += ["RCPT TO:<%s>" % r for r in rcpts]
    return lines(*cmds, "DATA")


def final_lines(text):
    """The last line of each reply in a raw transcript, e.g. '250 2.1.5 Ok'."""
    return [l for l in text.split("\r\n") if len(l) >= 4 and l[:3].isdigit() and l[3] == " "]


def queue_id(text):
    m = re.search(r"250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)", text)
    assert m, text
    return m.group(1)


def all_mail(t):
    return [m for u in t.users for m in t.messages(u)]


def assert_nothing_queued(t):
    assert t.spool_files() == [], t.spool_files()
    assert all_mail(t) == []
    assert "accepted id=" not in t.log("smtpd"), t.log("smtpd")


def header_block(msg):
    return msg.split(b"\n\n", 1)[0]


def received_header(msg):
    """The first Received header, unfolded, as str."""
    m = re.search(rb"^Received:.*\n(?:[ \t].*\n)*", header_block(msg) + b"\n", re.M)
    assert m, msg
    return re.sub(r"\s+", " ", m.group(0).decode()).strip()


class Raw:
    """A step-by-step raw SMTP dialogue: send bytes, read whole replies."""

    def __init__(self, t, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", t.port), timeout=timeout)
        self.pending = b""
        self.banner = self.reply()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else lines(data))

    def reply(self):
        """One whole reply, its lines joined with newlines."""
        got = []
        while True:
            while b"\r\n" not in self.pending:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("server closed; had %r" % (got, self.pending))
                self.pending += chunk
            line, self.pending = self.pending.split(b"\r\n", 1)
            got.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(got)

    def cmd(self, line):
        self.send(line)
        return self.reply()

    def wait_closed(self):
        """Waits (up to the socket timeout) for the server to close; returns
        what it sent before closing."""
        data = self.pending
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""  # killed with our bytes unread: the kernel resets
            if not chunk:
                return data.decode("utf-8", "replace")
            data += chunk

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def smtpd_pid(t, raw):
    """The pid of the tern-smtpd serving RAW, from its connect log line."""
    port = raw.sock.getsockname()[1]
    pattern = re.compile(r"tern-smtpd\[(\d+)\]: connect ip=127\.0\.0\.1 port=%d\b" % port)
    m = wait_until(lambda: pattern.search(t.log("smtpd")), 10, "the connect log line")
    pid = int(m.group(1))
    with open("/proc/%d/comm" % pid) as f:
        assert f.read().strip() == "tern-smtpd"
    return pid


# ---- commands ----

def test_banner_and_ehlo_keywords():
    with Instance() as t:
        with Raw(t) as r:
            assert r.banner.startswith("220 example.test "), r.banner
            ehlo = r.cmd("EHLO client.test").split("\n")
            assert ehlo[0] == "250-example.test", ehlo
            assert all(l.startswith("250-") for l in ehlo[:-1]) and ehlo[-1].startswith("250 ")
            keywords = {l[4:] for l in ehlo[1:]}
            assert keywords >= {"PIPELINING", "SIZE 36700160", "8BITMIME",
                                "ENHANCEDSTATUSCODES", "SMTPUTF8"}, keywords


def test_helo():
    with Instance() as t:
        with Raw(t) as r:
            assert r.cmd("HELO bad\x01name.test").startswith("501 5.5.4 ")
            assert r.cmd("HELO client.test") == "250 example.test"
            assert r.cmd("MAIL FROM:<%s>" % SENDER).startswith("250 ")
            assert r.cmd("RCPT TO:<alice@example.test>").startswith("250 ")


def test_commands_are_case_insensitive():
    with Instance() as t:
        out = t.conversation(lines("ehlo client.test", "mail from:<%s>" % SENDER,
                                   "rcpt to:<alice@example.test>", "NoOp", "data",
                                   "Subject: lower", "", "x", ".", "quit"))
        assert replies(out) == ["220", "250", "250", "250", "250", "354", "250", "221"], out
        (msg,) = t.wait_for_messages("alice", 1)
        assert b"Subject: lower\n" in msg


def test_noop_and_rset():
    with Instance() as t:
        with Raw(t) as r:
            assert r.cmd("NOOP") == "250 2.0.0 Ok"
            r.cmd("EHLO client.test")
            assert r.cmd("MAIL FROM:<%s>" % SENDER).startswith("250 ")
            assert r.cmd("RSET") == "250 2.0.0 Ok"
            # RSET ended the transaction: a new MAIL is not nested.
            assert r.cmd("MAIL FROM:<%s>" % SENDER).startswith("250 ")


def test_vrfy_does_not_disclose():
    with Instance() as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            known = r.cmd("VRFY alice@example.test")
            unknown = r.cmd("VRFY nobody@example.test")
            assert known.startswith("252 "), known
            assert known == unknown
            assert "alice" not in known


def test_help_and_expn():
    with Instance() as t:
        with Raw(t) as r:
            assert r.cmd("HELP").startswith("214 ")
            assert r.cmd("EXPN postmaster@example.test").startswith("502 ")


def test_unknown_command():
    with Instance() as t:
        with Raw(t) as r:
            assert r.cmd("FROB x").startswith("500 5.5.2 ")
            assert r.cmd("NOOP") == "250 2.0.0 Ok"


def test_mail_before_helo():
    with Instance() as t:
        with Raw(t) as r:
            assert r.cmd("MAIL FROM:<%s>" % SENDER).startswith("503 5.5.1 ")


def test_rcpt_before_mail():
    with Instance() as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            assert r.cmd("RCPT TO:<alice@example.test>").startswith("503 5.5.1 ")


def test_data_before_rcpt():
    with Instance() as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            assert r.cmd("DATA").startswith("503 5.5.1 ")  # no MAIL
            assert r.cmd("MAIL FROM:<%s>" % SENDER).startswith("250 ")
            reply = r.cmd("DATA")  # MAIL but no RCPT
            assert reply.startswith("503 5.5.1 "), reply
        assert t.spool_files() == []


def test_nested_mail():
    with Instance() as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            assert r.cmd("MAIL FROM:<%s>" % SENDER).startswith("250 ")
            assert r.cmd("MAIL FROM:<%s>" % SENDER).startswith("503 5.5.1 ")


def test_quit_closes():
    with Instance() as t:
        with Raw(t) as r:
            assert r.cmd("QUIT").startswith("221 2.0.0")
            assert r.wait_closed() == ""
        wait_until(lambda: "disconnect ip=127.0.0.1 msgs=0 errors=0" in t.log("smtpd"))


# ---- pipelining ----

def test_pipelining_in_one_write():
    with Instance() as t:
        out = t.conversation(
            transaction("alice@example.test", "nobody@example.test", "bob@example.test")
            + lines("Subject: pipelined", "", "one write", ".", "QUIT"))
        assert replies(out) == ["220", "250", "250", "250", "550", "250", "354", "250",
                                "221"], out
        assert "550 5.1.1 " in out
        qid = queue_id(out)
        (a,) = t.wait_for_messages("alice", 1)
        (b,) = t.wait_for_messages("bob", 1)
        assert b"Delivered-To: alice@example.test\n" in a
        assert b"Delivered-To: bob@example.test\n" in b
        assert a.endswith(b"\n\none write\n") and b.endswith(b"\n\none write\n")
        t.wait_spool_empty()
        assert all_mail(t) == [a, b]
        log = t.log("smtpd")
        assert "accepted id=%s ip=127.0.0.1 from=%s rcpts=2 size=" % (qid, SENDER) in log, log
        wait_until(lambda: "disconnect ip=127.0.0.1 msgs=1 " in t.log("smtpd"))


# ---- recipients ----

def test_unknown_local_user():
    with Instance() as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            r.cmd("MAIL FROM:<%s>" % SENDER)
            assert r.cmd("RCPT TO:<nobody@example.test>").startswith("550 5.1.1 ")
        wait_until(lambda: re.search(r"rejected ip=127\.0\.0\.1 code=550 reason=\"5\.1\.1 ",
                                     t.log("smtpd")), 10, "the rejected log line")


def test_postmaster():
    with Instance() as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            r.cmd("MAIL FROM:<%s>" % SENDER)
            for rcpt in ("postmaster", "Postmaster", "postmaster@example.test",
                         "postmaster@other.test", "POSTMASTER@OTHER.TEST"):
                reply = r.cmd("RCPT TO:<%s>" % rcpt)
                assert reply.startswith("250 "), (rcpt, reply)
            r.cmd("RSET")
            r.cmd("MAIL FROM:<%s>" % SENDER)
            assert r.cmd("RCPT TO:<postmaster>").startswith("250 ")
            assert r.cmd("DATA").startswith("354")
            r.send(lines("Subject: to the postmaster", "", "hi", "."))
            assert r.reply().startswith("250 ")
        # The aliases table sends the postmaster to alice.
        (msg,) = t.wait_for_messages("alice", 1)
        assert b"Subject: to the postmaster\n" in msg
        t.wait_spool_empty()


def test_plus_tag():
    with Instance() as t:
        with t.smtp() as s:
            s.ehlo()
            assert s.mail(SENDER)[0] == 250
            assert s.rcpt("alice+news@example.test")[0] == 250
            s.data(b"Subject: tagged\r\n\r\nx\r\n")
        (msg,) = t.wait_for_messages("alice", 1)
        assert b"Delivered-To: alice+news@example.test\n" in msg


def test_relay_denied():
    with Instance() as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            r.cmd("MAIL FROM:<%s>" % SENDER)
            assert r.cmd("RCPT TO:<u@remote.test>").startswith("550 5.7.1 ")
            assert r.cmd("DATA").startswith("5")
        assert_nothing_queued(t)


def test_relayclient_relays():
    with Instance(smtpd_env={"RELAYCLIENT": ""}) as t:
        with t.smtp() as s:
            s.ehlo()
            s.mail(SENDER)
            assert s.rcpt("u@remote.test")[0] == 250
            code, text = s.data(b"Subject: relayed\r\n\r\nx\r\n")
            assert code == 250, text
        qid = queue_id("250 " + text.decode())

        def deferred():
            q = json.loads(t.ternctl("queue", "--json").stdout)
            return [m for m in q if m["id"] == qid and m["rcpts"][0]["state"] == "deferred"]
        (m,) = wait_until(deferred, 20, "the relayed message to be deferred")
        assert [r["addr"] for r in m["rcpts"]] == ["u@remote.test"]
        assert m["sender"] == SENDER


def test_relay_table():
    with Instance() as t:
        t.write_table("relay", "127.0.0.0/8\n")
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            r.cmd("MAIL FROM:<%s>" % SENDER)
            assert r.cmd("RCPT TO:<u@remote.test>").startswith("250 ")


def test_relay_tricks():
    # other.test is not local here.
    with Instance(domains=("example.test",)) as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            r.cmd("MAIL FROM:<%s>" % SENDER)
            for rcpt, expected in (("u%other.test@example.test", "550 5.1.1 "),
                                   ('"u@other.test"@example.test', "550 5.1.1 "),
                                   ("other.test!u@example.test", "550 5.1.1 "),
                                   ("@example.test:u@other.test", "550 5.7.1 "),
                                   ("u@other.test@example.test", "501 5.1.3 ")):
                reply = r.cmd("RCPT TO:<%s>" % rcpt)
                assert reply.startswith(expected), (rcpt, reply)
            assert r.cmd("DATA").startswith("5")
        assert_nothing_queued(t)


# ---- DATA ----

def test_dot_unstuffing():
    with Instance() as t:
        out = t.conversation(transaction("alice@example.test")
                             + lines("Subject: dots", "", "..x", "...", "..", "a.b", "."))
        assert replies(out)[-1] == "250", out
        (msg,) = t.wait_for_messages("alice", 1)
        assert msg.endswith(b"\n\n.x\n..\n.\na.b\n"), msg


def test_crlf_stored_as_lf():
    with Instance() as t:
        out = t.conversation(transaction("alice@example.test")
                             + lines("Subject: crlf", "", "line 1", "", "line 3", "."))
        assert replies(out)[-1] == "250", out
        (msg,) = t.wait_for_messages("alice", 1)
        assert b"\r" not in msg
        assert msg.endswith(b"Subject: crlf\n\nline 1\n\nline 3\n"), msg


def _refused_data(t, body):
    out = t.conversation(transaction("alice@example.test") + body + lines("QUIT"))
    assert replies(out)[-3:] == ["354", "550", "221"], out
    assert "550 5.6.0 " in out, out
    assert_nothing_queued(t)
    return out


def test_bare_lf_refused():
    with Instance() as t:
        _refused_data(t, b"Subject: x\r\n\r\na\nb\r\n.\r\n")


def test_bare_cr_refused():
    with Instance() as t:
        _refused_data(t, b"Subject: x\r\n\r\na\rb\r\n.\r\n")


def test_lf_dot_lf_does_not_end_data():
    with Instance() as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            r.cmd("MAIL FROM:<%s>" % SENDER)
            r.cmd("RCPT TO:<alice@example.test>")
            assert r.cmd("DATA").startswith("354")
            r.send(b"Subject: x\r\n\r\na\n.\n")
            r.sock.settimeout(1)
            try:
                early = r.sock.recv(100)
            except socket.timeout:
                early = None
            assert early is None, early  # still in DATA: no reply yet
            r.sock.settimeout(10)
            # A command now is still message text; only CRLF.CRLF ends it.
            r.send(b"NOOP\r\n.\r\n")
            assert r.reply().startswith("550 5.6.0 ")
            assert r.cmd("NOOP") == "250 2.0.0 Ok"
        assert_nothing_queued(t)


def test_line_too_long_in_data():
    with Instance(conf="max_line_length = 100") as t:
        out = t.conversation(
            transaction("alice@example.test") + lines("Subject: ok", "", "x" * 100, ".")
            + lines("MAIL FROM:<%s>" % SENDER, "RCPT TO:<alice@example.test>", "DATA",
                    "Subject: too long", "", "y" * 101, ".", "QUIT"))
        assert replies(out)[-7:] == ["354", "250", "250", "250", "354", "550", "221"], out
        assert "550 5.6.0 " in out
        (msg,) = t.wait_for_messages("alice", 1)
        assert b"Subject: ok\n" in msg
        t.wait_spool_empty()
        assert len(t.messages("alice")) == 1


def test_received_header_esmtp():
    with Instance() as t:
        out = t.conversation(transaction("alice@example.test", helo="EHLO client.test")
                             + lines("Subject: trace", "", "x", "."))
        qid = queue_id(out)
        (msg,) = t.wait_for_messages("alice", 1)
        received = received_header(msg)
        assert received.startswith("Received: from client.test ([127.0.0.1])"), received
        assert " with ESMTP id %s" % qid in received, received
        assert "<alice@example.test>" in received
        assert msg.index(b"Received:") < msg.index(b"Subject: trace")


def test_received_header_helo_smtp():
    with Instance() as t:
        out = t.conversation(transaction("alice@example.test", helo="HELO old.client.test")
                             + lines("Subject: trace", "", "x", "."))
        qid = queue_id(out)
        (msg,) = t.wait_for_messages("alice", 1)
        received = received_header(msg)
        assert received.startswith("Received: from old.client.test ([127.0.0.1])"), received
        assert " with SMTP id %s" % qid in received, received


def test_smtputf8():
    with Instance() as t:
        with open(os.path.join(t.etc, "mailboxes")) as f:
            mailboxes = f.read()
        t.write_table("mailboxes", mailboxes + "jörg@example.test ../mail/alice/Maildir\n")
        rcpt = "RCPT TO:<jörg@example.test>"
        without = t.conversation(lines("EHLO client.test", "MAIL FROM:<%s>" % SENDER, rcpt))
        assert "553 5.6.7 " in without, without
        out = t.conversation(lines("EHLO client.test", "MAIL FROM:<%s> SMTPUTF8" % SENDER,
                                   rcpt, "DATA", "Subject: grüße", "", "x", "."))
        assert replies(out) == ["220", "250", "250", "250", "354", "250"], out
        qid = queue_id(out)
        (msg,) = t.wait_for_messages("alice", 1)
        received = received_header(msg)
        assert " with UTF8SMTP id %s" % qid in received, received
        assert "Delivered-To: jörg@example.test\n".encode() in msg
        assert "Subject: grüße\n".encode() in msg


def test_too_many_received_headers():
    hops = ["Received: from hop%d.test by hop%d.test; Thu, 1 Jan 2026 00:00:00 +0000"
            % (i, i + 1) for i in range(6)]
    with Instance(conf="max_received = 5") as t:
        out = t.conversation(
            transaction("alice@example.test") + lines(*hops[:5], "Subject: 5 hops", "", "x", ".")
            + lines("MAIL FROM:<%s>" % SENDER, "RCPT TO:<alice@example.test>", "DATA",
                    *hops, "Subject: 6 hops", "", "x", ".", "QUIT"))
        assert replies(out)[-7:] == ["354", "250", "250", "250", "354", "554", "221"], out
        assert "554 5.4.6 " in out
        (msg,) = t.wait_for_messages("alice", 1)
        assert b"Subject: 5 hops\n" in msg
        t.wait_spool_empty()
        assert len(t.messages("alice")) == 1


# ---- limits ----

def test_size_parameter_over_limit():
    with Instance(conf="max_message_size = 10K") as t:
        with Raw(t) as r:
            ehlo = r.cmd("EHLO client.test")
            assert "250-SIZE 10240" in ehlo, ehlo
            assert r.cmd("MAIL FROM:<%s> SIZE=10241" % SENDER).startswith("552 5.3.4 ")
            assert r.cmd("MAIL FROM:<%s> SIZE=10240" % SENDER).startswith("250 ")


def test_message_over_limit_without_size():
    with Instance(conf="max_message_size = 10K") as t:
        body = lines(*(["x" * 99] * 120))  # 12000 octets
        out = t.conversation(transaction("alice@example.test")
                             + lines("Subject: big", "") + body + lines(".", "QUIT"))
        assert replies(out)[-3:] == ["354", "552", "221"], out
        assert "552 5.3.4 " in out
        assert_nothing_queued(t)


def test_header_too_large():
    with Instance(conf="max_header_size = 2K") as t:
        small_header_big_body = lines("Subject: small", "", *(["b" * 99] * 50))
        big_header = lines(*["X-Filler-%02d: %s" % (i, "h" * 80) for i in range(30)], "", "x")
        out = t.conversation(
            transaction("alice@example.test") + small_header_big_body + lines(".")
            + lines("MAIL FROM:<%s>" % SENDER, "RCPT TO:<alice@example.test>", "DATA")
            + big_header + lines(".", "QUIT"))
        assert replies(out)[-7:] == ["354", "250", "250", "250", "354", "552", "221"], out
        assert "552 5.3.4 " in out
        (msg,) = t.wait_for_messages("alice", 1)
        assert b"Subject: small\n" in msg
        t.wait_spool_empty()
        assert len(t.messages("alice")) == 1


def test_max_recipients():
    users = ("alice", "bob", "carol", "dave")
    with Instance(users=users, conf="max_recipients = 3") as t:
        out = t.conversation(transaction(*("%s@example.test" % u for u in users))
                             + lines("Subject: four", "", "x", ".", "QUIT"))
        assert replies(out) == ["220", "250", "250", "250", "250", "250", "452", "354",
                                "250", "221"], out
        assert "452 4.5.3 " in out
        for u in users[:3]:
            t.wait_for_messages(u, 1)
        t.wait_spool_empty()
        assert t.messages("dave") == []
        assert all(len(t.messages(u)) == 1 for u in users[:3])


def test_command_line_too_long():
    with Instance() as t:
        out = t.conversation(lines("NOOP " + "x" * 505,      # 512 octets with CRLF
                                   "NOOP " + "x" * 506,      # 513
                                   "NOOP " + "x" * 5000 + " QUIT",
                                   "NOOP"))
        assert final_lines(out)[1:] == ["250 2.0.0 Ok"] + [
            "500 5.5.2 Error: line too long"] * 2 + ["250 2.0.0 Ok"], out


def test_nul_in_command():
    with Instance() as t:
        out = t.conversation(b"NOOP a\0b\r\nNOOP\r\n")
        assert replies(out) == ["220", "500", "250"], out
        assert "500 5.5.2 " in out


def test_max_errors():
    with Instance(conf="max_errors = 3") as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            r.cmd("MAIL FROM:<%s>" % SENDER)
            # Refused recipients count (no harvesting), bad commands too.
            for i in range(2):
                assert r.cmd("RCPT TO:<nobody%d@example.test>" % i).startswith("550 5.1.1")
            assert r.cmd("NOOP") == "250 2.0.0 Ok"
            r.send(lines("BOGUS 1", "NOOP"))
            rest = r.wait_closed()
        assert final_lines(rest) == [
            "500 5.5.2 Error: command not recognized",
            "421 4.7.0 Error: too many errors"], rest


def test_max_errors_starts_again_with_each_accepted_message():
    with Instance(conf="max_errors = 3", deliver=False) as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            for round in range(3):
                r.cmd("MAIL FROM:<%s>" % SENDER)
                for i in range(2):
                    assert r.cmd("RCPT TO:<gone%d@example.test>" % i).startswith("550 5.1.1")
                assert r.cmd("RCPT TO:<alice@example.test>").startswith("250")
                assert r.cmd("DATA").startswith("354")
                assert r.cmd("Subject: %d\r\n\r\nx\r\n." % round).startswith("250 2.0.0")
            assert r.cmd("NOOP") == "250 2.0.0 Ok"


def test_too_many_recipients_is_not_an_error():
    # 452 4.5.3 is flow control (RFC 5321 4.5.3.1.10), not a client's fault.
    with Instance(conf="max_errors = 2\nmax_recipients = 1") as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            r.cmd("MAIL FROM:<%s>" % SENDER)
            assert r.cmd("RCPT TO:<alice@example.test>").startswith("250")
            for _ in range(4):
                assert r.cmd("RCPT TO:<bob@example.test>").startswith("452 4.5.3")
            assert r.cmd("NOOP") == "250 2.0.0 Ok"


def test_recipient_named_twice_in_any_case_is_kept_once():
    with Instance(deliver=False) as t:
        with t.smtp() as s:
            s.ehlo()
            s.mail(SENDER)
            for rcpt in ("alice@example.test", "Alice@Example.TEST", "ALICE@example.test",
                         "bob@example.test"):
                assert s.rcpt(rcpt)[0] == 250, rcpt
            assert s.data(b"Subject: once\r\n\r\nx\r\n")[0] == 250
        (m,) = json.loads(t.ternctl("queue", "--json").stdout)
        assert [r["addr"] for r in m["rcpts"]] == ["alice@example.test", "bob@example.test"]


def test_command_timeout():
    with Instance(conf="command_timeout = 1s") as t:
        with Raw(t, timeout=10) as r:
            r.cmd("EHLO client.test")
            assert r.reply().startswith("421 4.4.2 ")
            assert r.wait_closed() == ""


def test_data_timeout():
    with Instance(conf="data_timeout = 1s") as t:
        with Raw(t, timeout=10) as r:
            r.send(transaction("alice@example.test"))
            for _ in range(3):  # EHLO, MAIL, RCPT
                assert r.reply().startswith("250")
            assert r.reply().startswith("354")
            r.send(b"Subject: slow\r\n\r\nhalf a mess")
            assert r.reply().startswith("421 4.4.2 ")
            assert r.wait_closed() == ""
        wait_until(lambda: t.spool_files() == [], 10, "an empty spool")
        assert_nothing_queued(t)


def test_queue_minfree():
    with Instance(conf="queue_minfree = 1000000G") as t:
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            assert r.cmd("MAIL FROM:<%s>" % SENDER).startswith("452 4.3.1 ")


# ---- tables ----

def test_missing_cdb_tempfails():
    with Instance() as t:
        os.unlink(os.path.join(t.etc, "mailboxes.cdb"))
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            r.cmd("MAIL FROM:<%s>" % SENDER)
            assert r.cmd("RCPT TO:<alice@example.test>").startswith("451 4.3.0 ")
            assert r.cmd("RCPT TO:<nobody@example.test>").startswith("451 4.3.0 ")
        wait_until(lambda: re.search(r"tern-smtpd\[\d+\]: .*mailboxes.*ternctl compile",
                                     t.log("smtpd")), 10, "a log line naming ternctl compile")


def test_truncated_cdb_tempfails():
    with Instance() as t:
        os.truncate(os.path.join(t.etc, "aliases.cdb"), 10)
        with Raw(t) as r:
            r.cmd("EHLO client.test")
            r.cmd("MAIL FROM:<%s>" % SENDER)
            for rcpt in ("postmaster@example.test", "abuse@example.test",
                         "nobody@example.test"):
                reply = r.cmd("RCPT TO:<%s>" % rcpt)
                assert reply.startswith("451 4.3.0 "), (rcpt, reply)
        assert "code=550" not in t.log("smtpd")
        wait_until(lambda: "ternctl compile" in t.log("smtpd"), 10, "the compile hint")


# ---- crash safety ----

def _half_message(t, r):
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<%s>" % SENDER)
    r.cmd("RCPT TO:<alice@example.test>")
    assert r.cmd("DATA").startswith("354")
    r.send(b"Subject: half\r\n\r\n" + b"first half of the message\r\n" * 100)
    # tern-queue has its tmp file open.
    wait_until(t.spool_files, 10, "tern-queue to start")


def test_kill_smtpd_mid_data():
    with Instance() as t:
        with Raw(t) as r:
            pid = smtpd_pid(t, r)
            _half_message(t, r)
            os.kill(pid, signal.SIGKILL)
            assert r.wait_closed() == ""
        wait_until(lambda: t.spool_files() == [], 20, "tern-queue to clean up")
        assert_nothing_queued(t)


def test_client_disconnect_mid_data():
    with Instance() as t:
        with Raw(t) as r:
            _half_message(t, r)
        wait_until(lambda: t.spool_files() == [], 20, "tern-queue to clean up")
        wait_until(lambda: "disconnect ip=127.0.0.1 msgs=0" in t.log("smtpd"))
        assert_nothing_queued(t)


def test_quit_inside_data():
    with Instance() as t:
        out = t.conversation(transaction("alice@example.test")
                             + lines("Subject: x", "", "body", "QUIT"))
        assert replies(out)[-1] == "354", out  # QUIT was message text: no 221
        wait_until(lambda: "disconnect ip=127.0.0.1 msgs=0" in t.log("smtpd"))
        assert_nothing_queued(t)


# ---- QMAILQUEUE ----

def _filter(t, script):
    path = os.path.join(t.dir, "filter.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + script)
    os.chmod(path, 0o755)
    t.start_smtpd({"QMAILQUEUE": path})


def _send_one(t):
    return t.conversation(transaction("alice@example.test")
                          + lines("Subject: filtered", "", "body", ".", "QUIT"))


def test_qmailqueue_gets_message_and_envelope():
    with Instance(smtpd=False) as t:
        _filter(t, 'cat > "$D/message"\ncat <&1 > "$D/envelope"\n'
                   'printf "%s\\n%s\\n" "$TERN_QID" "$TERN_CONFIG" > "$D/vars"\nexit 0\n'
                   .replace("$D", t.dir))
        out = _send_one(t)
        qid = queue_id(out)
        with open(os.path.join(t.dir, "vars")) as f:
            assert f.read() == "%s\n%s\n" % (qid, t.conf)
        with open(os.path.join(t.dir, "message"), "rb") as f:
            msg = f.read()
        with open(os.path.join(t.dir, "envelope"), "rb") as f:
            envelope = f.read()
        assert msg.startswith(b"Received: from client.test ([127.0.0.1])"), msg
        assert ("id %s" % qid).encode() in msg
        assert msg.endswith(b"\nSubject: filtered\n\nbody\n"), msg
        assert envelope == b"F" + SENDER.encode() + b"\0Talice@example.test\0\0", envelope
        assert t.spool_files() == []


def test_qmailqueue_exit_31():
    with Instance(smtpd=False) as t:
        _filter(t, "cat >/dev/null\ncat <&1 >/dev/null\nexit 31\n")
        out = _send_one(t)
        assert replies(out)[-2:] == ["554", "221"], out


def test_qmailqueue_exit_82_custom_text():
    with Instance(smtpd=False) as t:
        _filter(t, "cat >/dev/null\ncat <&1 >/dev/null\nprintf 'Dno thanks' >&6\nexit 82\n")
        out = _send_one(t)
        assert replies(out)[-2:] == ["554", "221"], out
        assert "no thanks" in [l for l in out.split("\r\n") if l.startswith("554")][0], out


def test_qmailqueue_exit_71():
    with Instance(smtpd=False) as t:
        _filter(t, "cat >/dev/null\ncat <&1 >/dev/null\nexit 71\n")
        out = _send_one(t)
        assert replies(out)[-2:] == ["451", "221"], out


# ---- fault injection in tern-queue ----

def _fault(call, what):
    env = {"LD_PRELOAD": harness.FAULT_SHIM, "TERN_FAULT": call,
           "TERN_FAULT_PROGRAM": "tern-queue"}
    if harness.SANITIZED:
        env["ASAN_OPTIONS"] = "abort_on_error=0:detect_leaks=1:verify_asan_link_order=0"
    if not os.path.exists(harness.FAULT_SHIM):
        raise AssertionError("build %s first" % harness.FAULT_SHIM)
    # Without tern-deliver there is no queue service: tern-smtpd runs the
    # program, whose faults these are (test_service.py has the service's).
    with Instance(smtpd_env=env, deliver=False) as t:
        out = _send_one(t)
        assert replies(out)[-2:] == ["451", "221"], out
        assert "451 4.3.0 " in out
        assert t.spool_files() == []
        assert all_mail(t) == []
        assert re.search(r"tern-queue\[\d+\]: error .*what=\"?%s" % what, t.log("smtpd")), \
            t.log("smtpd")


def test_fault_fsync():
    _fault("fsync", "fsync")


def test_fault_link():
    _fault("link", "link")


def test_fault_write():
    _fault("write", "write")
