"""Compiled tables as the programs read them: a cdb that is corrupt or cut
short under an open session is a temporary failure, never "not found" or a
crash; alias lists as tern-tables(5) writes them."""
import os
import re
import smtplib
import struct

from harness import Instance, wait_until

SENDER = "sender@remote.test"
FAST_RETRY = "retry_first = 1s\nretry_max = 1s"


# ---- helpers ----

def cdb_path(t, table):
    return os.path.join(t.etc, table + ".cdb")


def record_offset(data, key):
    """The offset of KEY's record in the cdb DATA (records follow the
    2048-octet table of contents and end where the first hash table begins)."""
    end = struct.unpack_from("<I", data, 0)[0]
    pos = 2048
    while pos + 8 <= end:
        klen, dlen = struct.unpack_from("<II", data, pos)
        if data[pos + 8:pos + 8 + klen] == key:
            return pos
        pos += 8 + klen + dlen
    raise AssertionError("no record for %r" % key)


def shorten_key_length(t, table, key):
    """Overwrites the key length of KEY's record in TABLE's cdb with one less:
    the same size, the table of contents intact."""
    path = cdb_path(t, table)
    with open(path, "rb") as f:
        data = f.read()
    pos = record_offset(data, key.encode())
    with open(path, "r+b") as f:
        f.seek(pos)
        f.write(struct.pack("<I", len(key) - 1))
    assert os.path.getsize(path) == len(data)


def wait_table_error(t, which, table):
    pattern = r"table_error table=%s hint=.*run ternctl compile" % table
    wait_until(lambda: re.search(pattern, t.log(which)), 10,
               "a %s log line naming ternctl compile for %s" % (which, table))


def rcpt(t, *addrs):
    """One session: the RCPT reply (code, text) for each of ADDRS."""
    with t.smtp() as s:
        s.ehlo()
        s.mail(SENDER)
        return [(code, text.decode()) for code, text in (s.rcpt(a) for a in addrs)]


# ---- corrupt records ----

def test_corrupt_domains_record_is_a_temporary_failure():
    with Instance() as t:
        assert rcpt(t, "alice@example.test")[0][0] == 250
        shorten_key_length(t, "domains", "example.test")
        for code, text in rcpt(t, "alice@example.test", "nobody@example.test"):
            assert (code, text[:6]) == (451, "4.3.0 "), (code, text)
        wait_table_error(t, "smtpd", "domains")
        assert "code=550" not in t.log("smtpd")


def test_corrupt_mailboxes_record_is_a_temporary_failure():
    with Instance(conf=FAST_RETRY) as t:
        t.stop_deliver()
        with t.smtp() as s:
            s.sendmail(SENDER, ["alice@example.test"], b"Subject: held\r\n\r\nbody\r\n")
        shorten_key_length(t, "mailboxes", "alice@example.test")
        ((code, text),) = rcpt(t, "alice@example.test")
        assert (code, text[:6]) == (451, "4.3.0 "), (code, text)
        wait_table_error(t, "smtpd", "mailboxes")

        # tern-deliver defers it the same way, and delivers once it is recompiled
        t.start_deliver()
        wait_table_error(t, "deliver", "mailboxes")
        assert t.messages("alice") == []
        t.ternctl("compile")
        t.wait_for_messages("alice", 1)
        t.wait_spool_empty()
        assert "5.1.1" not in t.log("deliver")


# ---- truncated under an open session ----

def big_mailboxes(t):
    """Enough entries that mailboxes.cdb spans several pages."""
    text = "alice@example.test ../mail/alice/Maildir\nbob@example.test ../mail/bob/Maildir\n"
    text += "".join("filler%d@example.test ../mail/filler%d/Maildir\n" % (i, i)
                    for i in range(600))
    t.write_table("mailboxes", text)
    assert os.path.getsize(cdb_path(t, "mailboxes")) > 4 * os.sysconf("SC_PAGE_SIZE")


def check_truncated_in_session(t, truncate):
    with t.smtp() as s:
        s.ehlo()
        s.mail(SENDER)
        assert s.rcpt("alice@example.test")[0] == 250  # the table is open now
        truncate(cdb_path(t, "mailboxes"))
        code, text = s.rcpt("bob@example.test")
        assert (code, text[:6]) == (451, b"4.3.0 "), (code, text)
        # the session lives on
        assert s.noop()[0] == 250
        assert s.rcpt("filler7@example.test")[0] == 451
        assert s.rset()[0] == 250
    wait_table_error(t, "smtpd", "mailboxes")
    assert "signal" not in t.log("smtpd").lower()


def test_cdb_emptied_in_place_during_a_session():
    with Instance() as t:
        big_mailboxes(t)

        def empty(path):
            os.close(os.open(path, os.O_WRONLY | os.O_TRUNC))
        check_truncated_in_session(t, empty)


def test_cdb_truncated_in_place_during_a_session():
    with Instance() as t:
        big_mailboxes(t)
        # the first page (the table of contents) stays, the rest goes
        check_truncated_in_session(
            t, lambda path: os.truncate(path, os.sysconf("SC_PAGE_SIZE")))


# ---- alias lists ----

MAILBOXES = "alice@example.test ../mail/alice/Maildir\nbob@example.test ../mail/bob/Maildir\n"


def test_alias_target_with_a_quoted_local_part():
    # tern-tables(5): a quoted local part may hold blanks and commas, in a
    # key and in a list; a target is never cut at its first blank.
    with Instance() as t:
        t.write_table("mailboxes", MAILBOXES +
                      '"john smith"@example.test ../mail/alice/Maildir\n'
                      '"smith, jane"@example.test ../mail/bob/Maildir\n')
        t.write_table("aliases", 'js@example.test "john smith"@example.test,'
                      ' "smith, jane"@example.test\n')
        assert [c for c, _ in rcpt(t, '"john smith"@example.test', '"smith, jane"@example.test',
                                   '"john"@example.test')] == [250, 250, 550]
        with t.smtp() as s:
            s.sendmail(SENDER, ["js@example.test"], b"Subject: quoted\r\n\r\nbody\r\n")
        (alice,) = t.wait_for_messages("alice", 1)
        (bob,) = t.wait_for_messages("bob", 1)
        t.wait_spool_empty()
        assert b'Delivered-To: "john smith"@example.test\n' in alice, alice
        assert b'Delivered-To: "smith, jane"@example.test\n' in bob, bob
        log = t.log("deliver")
        # log values are quoted (INTERFACES.md), so the targets' quotes are escaped
        assert r'to="\"john smith\"@example.test,\"smith, jane\"@example.test"' in log, log
        assert "bounced" not in log, log
