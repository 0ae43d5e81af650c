"""tern-smtpd sessions as a whole: deadlines, NUL in the data, content sent
before the 354, MAIL parameters after HELO, the HELO name in the trace.

Raw sockets and t.conversation() as in test_smtpd.py, whose helpers these
tests share.
"""
import os
import socket
import time

from harness import Instance, replies, wait_until
from test_smtpd import (SENDER, Raw, all_mail, assert_nothing_queued, final_lines, lines,
                        queue_id, transaction)


def _open_transaction(r, rcpt="alice@example.test"):
    """EHLO, MAIL, RCPT and DATA, one at a time; the DATA reply."""
    assert r.cmd("EHLO client.test").startswith("250")
    assert r.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
    assert r.cmd("RCPT TO:<%s>" % rcpt).startswith("250")
    return r.cmd("DATA")


# ---- deadlines ----

def _trickle(r, unit, limit=30.0):
    """Sends UNIT every half second until the server says anything but 250
    (or LIMIT seconds pass); that reply, or None."""
    deadline = time.monotonic() + limit
    r.sock.settimeout(0.5)
    try:
        while time.monotonic() < deadline:
            while b"\r\n" in r.pending:
                line = r.reply()
                if not line.startswith("250"):
                    return line
            try:
                r.send(unit)
            except OSError:
                pass  # closed: its last reply is still to be read
            try:
                chunk = r.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return r.reply() if b"\r\n" in r.pending else None
            r.pending += chunk
    finally:
        r.sock.settimeout(10)
    return None


def _queue_programs(t):
    """The tern-queue processes tern-smtpd started for T (they carry TERN_QID)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/comm" % pid) as f:
                if f.read().strip() != "tern-queue":
                    continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if (b"TERN_CONFIG=" + t.conf.encode()) in env and any(
                e.startswith(b"TERN_QID=") for e in env):
            found.append(int(pid))
    return found


def _trickle_data(t, expect):
    """A message that comes one octet every half second; the session must
    end with EXPECT and leave nothing behind."""
    with Raw(t, timeout=30) as r:
        assert _open_transaction(r).startswith("354")
        r.send(b"Subject: slow\r\n\r\n")
        wait_until(lambda: _queue_programs(t), 10, "tern-queue to start")
        wait_until(t.spool_files, 10, "the message in spool/tmp")
        assert _trickle(r, b"x") == expect
        assert r.wait_closed() == ""
    wait_until(lambda: "disconnect ip=127.0.0.1 msgs=0" in t.log("smtpd"), 10, "the session's end")
    wait_until(lambda: not _queue_programs(t), 10, "tern-queue to exit")
    assert_nothing_queued(t)


# These watch the tern-queue program's process: without tern-deliver there is
# no queue service, so tern-smtpd runs the program (test_service.py has the
# service's side of a stalled client).
def test_data_min_rate_ends_a_trickle():
    with Instance(conf="data_timeout = 2s\ndata_min_rate = 1000", deliver=False) as t:
        _trickle_data(t, "421 4.4.2 Error: data rate too low")


def test_session_timeout_ends_a_data_trickle():
    # data_min_rate = 0 turns the rate check off; the session still ends
    with Instance(conf="data_timeout = 2s\ndata_min_rate = 0\nsession_timeout = 5s",
                  deliver=False) as t:
        _trickle_data(t, "421 4.4.2 Error: session time limit exceeded")


def test_session_timeout_ends_a_noop_trickle():
    with Instance(conf="session_timeout = 3s") as t:
        with Raw(t, timeout=30) as r:
            assert r.cmd("EHLO client.test").startswith("250")
            assert _trickle(r, b"NOOP\r\n") == "421 4.4.2 Error: session time limit exceeded"
            assert r.wait_closed() == ""
        wait_until(lambda: "disconnect ip=127.0.0.1 msgs=0" in t.log("smtpd"))


def test_data_above_the_minimum_rate_is_taken():
    with Instance(conf="data_timeout = 1s\ndata_min_rate = 100") as t:
        with Raw(t, timeout=30) as r:
            assert _open_transaction(r).startswith("354")
            r.send(b"Subject: steady\r\n\r\n")
            for _ in range(20):  # about 1000 octets a second for two seconds
                r.send(b"x" * 98 + b"\r\n")
                time.sleep(0.1)
            r.send(b".\r\n")
            queue_id(r.reply())
        (msg,) = t.wait_for_messages("alice", 1)
        assert msg.endswith(b"\n\n" + (b"x" * 98 + b"\n") * 20), msg


# ---- NUL in the data ----

def test_nul_in_data_refused():
    with Instance() as t:
        out = t.conversation(transaction("alice@example.test")
                             + b"Subject: x\r\n\r\nb\0dy\r\n.\r\n" + lines("QUIT"))
        assert final_lines(out)[-2:] == ["550 5.6.0 Message refused: NUL in DATA",
                                         "221 2.0.0 Bye"], out
        assert_nothing_queued(t)


def test_nul_next_to_a_dot_does_not_end_data():
    with Instance() as t:
        with Raw(t) as r:
            assert _open_transaction(r).startswith("354")
            # Were either line an end of data, HELP would be answered (214).
            r.send(b"Subject: x\r\n\r\na\r\n\0.\r\nHELP\r\n.\0\r\nHELP\r\n.\r\n")
            assert r.reply() == "550 5.6.0 Message refused: NUL in DATA"
            assert r.cmd("NOOP") == "250 2.0.0 Ok"
            assert r.cmd("QUIT").startswith("221 ")
            assert r.wait_closed() == ""
        assert_nothing_queued(t)


# ---- MAIL parameters after HELO ----

def test_size_and_body_after_helo():
    with Instance() as t:
        with Raw(t) as r:
            assert r.cmd("HELO old.client.test").startswith("250 ")
            assert r.cmd("MAIL FROM:<a@b.test> SIZE=3005") == "250 2.1.0 Ok"
            assert r.cmd("RSET") == "250 2.0.0 Ok"
            assert r.cmd("MAIL FROM:<a@b.test> FOO=bar").startswith("555 5.5.4 ")
            assert r.cmd("MAIL FROM:<a@b.test> SMTPUTF8") == "555 5.5.4 SMTPUTF8 needs EHLO"
            assert r.cmd("MAIL FROM:<%s> SIZE=3005 BODY=8BITMIME" % SENDER) == "250 2.1.0 Ok"
            assert r.cmd("RCPT TO:<alice@example.test>").startswith("250 ")
            assert r.cmd("DATA").startswith("354 ")
            r.send(lines("Subject: 8bit after HELO", "", b"caf\xc3\xa9", "."))
            qid = queue_id(r.reply())
        (msg,) = t.wait_for_messages("alice", 1)
        assert b" with SMTP id %s" % qid.encode() in msg, msg
        assert msg.endswith(b"\n\ncaf\xc3\xa9\n"), msg


# ---- the HELO name in the trace ----

def _received_for(t, helo, user="alice"):
    """Sends one message after HELO (bytes); the first line of its Received
    header, as delivered to USER's Maildir."""
    before = len(t.messages(user))
    with Raw(t) as r:
        assert r.cmd(b"EHLO " + helo + b"\r\n").startswith("250")
        assert r.cmd("MAIL FROM:<%s>" % SENDER).startswith("250")
        assert r.cmd("RCPT TO:<%s@example.test>" % user).startswith("250")
        assert r.cmd("DATA").startswith("354")
        r.send(lines("Subject: trace", "", "x", "."))
        queue_id(r.reply())
    msg = t.wait_for_messages(user, before + 1)[-1]
    header = msg.split(b"\n\n", 1)[0]
    assert all(b < 0x80 for b in header), header
    return header[header.index(b"Received: "):].split(b"\n", 1)[0]


def test_helo_name_in_received_cannot_forge_a_trace():
    with Instance() as t:
        assert (_received_for(t, b"spoof.test([192.0.2.1])")
                == b"Received: from unknown (helo=spoof.test\\([192.0.2.1]\\)) ([127.0.0.1])")
        assert (_received_for(t, b"h\xe9\xff")
                == b"Received: from unknown (helo=h\\xE9\\xFF) ([127.0.0.1])")
        assert (_received_for(t, b"a)(b\\c")
                == b"Received: from unknown (helo=a\\)\\(b\\\\c) ([127.0.0.1])")


def test_helo_domains_and_literals_kept_as_given():
    with Instance() as t:
        for helo in (b"DESKTOP_4F2K.corp_net.test", b"[192.0.2.1]", b"[IPv6:2001:db8::1]",
                     b"Client.Example.TEST"):
            assert _received_for(t, helo) == b"Received: from %s ([127.0.0.1])" % helo


def test_long_helo_name_bounded_in_received():
    with Instance() as t:
        name = b"x" * 64 + b"." + b"y" * 400  # a label over 63 and a name over 255
        line = _received_for(t, name)
        assert line.startswith(b"Received: from unknown (helo=" + b"x" * 64 + b".y"), line
        assert line.endswith(b"...) ([127.0.0.1])"), line
        assert len(line) < 200, line


# ---- content sent before the 354 ----

def _assert_refused_early(t, out):
    assert final_lines(out)[-1] == ("554 5.5.0 Error: message content sent before the 354"
                                    " reply"), out
    assert "354" not in replies(out), out
    wait_until(lambda: "disconnect ip=127.0.0.1 msgs=0" in t.log("smtpd"))
    assert_nothing_queued(t)


def test_content_before_354_refused():
    with Instance() as t:
        out = t.conversation(transaction("alice@example.test")
                             + lines("Subject: did not wait", "", "body", ".", "QUIT"),
                             wait_for_354=False)
        assert replies(out) == ["220", "250", "250", "250", "554"], out
        _assert_refused_early(t, out)


def test_content_before_354_is_never_parsed_as_commands():
    with Instance() as t:
        smuggled = lines("Subject: x", "", "x", ".", "MAIL FROM:<evil@remote.test>",
                         "RCPT TO:<bob@example.test>", "DATA", "Subject: smuggled", "", "y",
                         ".", "HELP", "QUIT")
        out = t.conversation(transaction("alice@example.test") + smuggled,
                             wait_for_354=False)
        assert replies(out) == ["220", "250", "250", "250", "554"], out
        _assert_refused_early(t, out)


def test_content_waiting_on_the_socket_before_354_refused():
    # The commands fill the server's 16384-octet read buffer to its last
    # octet, so that the content waits unread on the socket, not in it.
    with Instance() as t:
        head = transaction("alice@example.test")
        padding = 16384 - len(head)
        sizes = [250] * (padding // 250 - 1) + [250 + padding % 250]  # each under 512
        noops = b"".join(b"NOOP " + b"x" * (n - 7) + b"\r\n" for n in sizes)
        data = head[:-len(b"DATA\r\n")] + noops + b"DATA\r\n"
        assert len(data) == 16384
        out = t.conversation(data + lines("Subject: waiting", "", "body", ".", "QUIT"),
                             wait_for_354=False)
        assert replies(out)[-1] == "554", out
        _assert_refused_early(t, out)


def test_pipelining_that_waits_for_354_still_works():
    with Instance() as t:
        with Raw(t) as r:
            assert r.cmd("EHLO client.test").startswith("250")
            group = lines("MAIL FROM:<%s>" % SENDER, "RCPT TO:<alice@example.test>", "DATA")
            r.send(group)
            assert [r.reply()[:3] for _ in range(3)] == ["250", "250", "354"]
            # the next transaction right after the final dot, in the same write
            r.send(lines("Subject: first", "", "one", ".") + group.replace(b"alice", b"bob"))
            first = queue_id(r.reply())
            assert [r.reply()[:3] for _ in range(3)] == ["250", "250", "354"]
            r.send(lines("Subject: second", "", "two", ".", "QUIT"))
            second = queue_id(r.reply())
            assert r.reply().startswith("221")
            assert r.wait_closed() == ""
        assert first != second
        (a,) = t.wait_for_messages("alice", 1)
        (b,) = t.wait_for_messages("bob", 1)
        assert a.endswith(b"Subject: first\n\none\n") and b.endswith(b"Subject: second\n\ntwo\n")
        wait_until(lambda: "disconnect ip=127.0.0.1 msgs=2 " in t.log("smtpd"))
