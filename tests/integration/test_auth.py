"""AUTH (RFC 4954: PLAIN and LOGIN) and the submission service (RFC 6409)
in tern-smtpd, with smtplib, swaks and curl over STARTTLS and implicit TLS,
against instances made by `ternctl init`, passwords set by `ternctl passwd`.
Delays after failures are read from the log (delay_ms=), never timed.
"""
import base64
import os
import re
import smtplib
import subprocess

import harness
from harness import Instance, wait_until

PASSWORD = "correct horse 7"
SENDER = "sender@remote.test"
MESSAGE = b"Subject: authenticated\r\n\r\nbody\r\n"


client_context = harness.tls_client_context


def b64(data):
    return base64.b64encode(data).decode()


def with_user(t, name="alice", password=PASSWORD):
    t.ternctl("passwd", name, input=(password + "\n").encode())


def tls_session(t):
    s = t.smtp()
    s.starttls(context=client_context())
    s.ehlo()
    return s


def received_header(msg):
    m = re.search(rb"^Received:.*\n(?:[ \t].*\n)*", msg, re.M)
    assert m, msg
    return re.sub(rb"\n[ \t]+", b" ", m.group(0)).decode()


def assert_no_password_in(text, password=PASSWORD):
    assert password not in text
    for form in (b"\0alice\0" + password.encode(), password.encode()):
        assert b64(form) not in text


# ---- AUTH ----

def test_auth_is_not_offered_in_plaintext():
    with Instance(deliver=False) as t:
        with_user(t)
        with t.smtp() as s:
            code, text = s.ehlo()
            assert b"AUTH" not in text
            code, text = s.docmd("AUTH", "PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()))
            assert code == 503 and text.startswith(b"5.5.1"), (code, text)
            s.mail(SENDER)
            assert s.rcpt("someone@remote.test")[0] == 550  # no relaying for it


def test_auth_plaintext_setting_offers_it_without_tls():
    with Instance(deliver=False, conf="auth_plaintext = yes") as t:
        with_user(t)
        with t.smtp() as s:
            code, text = s.ehlo()
            assert b"AUTH PLAIN LOGIN" in text
            s.login("alice", PASSWORD)


def test_smtplib_login_over_starttls_relays_and_is_traced():
    with Instance(deliver=False) as t:
        with_user(t)
        with t.smtp() as s:
            s.starttls(context=client_context())
            code, text = s.ehlo()
            assert b"AUTH PLAIN LOGIN" in text, text
            s.mail(SENDER)
            assert s.rcpt("someone@remote.test")[0] == 550  # before AUTH: refused
            s.rset()
            assert s.login("alice", PASSWORD)[0] == 235
            s.sendmail("alice@example.test", ["someone@remote.test", "bob@example.test"],
                       MESSAGE)
        log = t.log()
        assert re.search(r"auth ip=127\.0\.0\.1 user=alice mechanism=PLAIN", log), log
        assert_no_password_in(log)
        t.start_deliver()
        msg = t.wait_for_messages("bob", 1)[0]
        rec = received_header(msg)
        assert "(authenticated as alice)" in rec, rec
        assert re.search(r"with ESMTPSA \(TLS1\.[23] ", rec), rec


def test_smtputf8_with_auth_over_tls_is_utf8smtpsa():
    with Instance() as t:
        with_user(t)
        with tls_session(t) as s:
            s.login("alice", PASSWORD)
            s.sendmail("alice@example.test", ["bob@example.test"], MESSAGE,
                       mail_options=["SMTPUTF8"])
        rec = received_header(t.wait_for_messages("bob", 1)[0])
        assert "with UTF8SMTPSA (TLS1." in rec, rec


def test_received_auth_no_leaves_the_name_out():
    with Instance(conf="received_auth = no") as t:
        with_user(t)
        with tls_session(t) as s:
            s.login("alice", PASSWORD)
            s.sendmail("alice@example.test", ["bob@example.test"], MESSAGE)
        rec = received_header(t.wait_for_messages("bob", 1)[0])
        assert "authenticated" not in rec and "alice" not in rec.split(" for ")[0], rec
        assert "with ESMTPSA" in rec


def test_login_mechanism_with_and_without_initial_response():
    with Instance(deliver=False) as t:
        with_user(t)
        with tls_session(t) as s:
            code, text = s.docmd("AUTH", "LOGIN")
            assert (code, base64.b64decode(text)) == (334, b"Username:")
            code, text = s.docmd(b64(b"alice"))
            assert (code, base64.b64decode(text)) == (334, b"Password:")
            assert s.docmd(b64(PASSWORD.encode()))[0] == 235
        with tls_session(t) as s:
            code, text = s.docmd("AUTH", "LOGIN " + b64(b"alice"))
            assert (code, base64.b64decode(text)) == (334, b"Password:")
            assert s.docmd(b64(PASSWORD.encode()))[0] == 235
        assert_no_password_in(t.log())


def test_plain_without_initial_response():
    with Instance(deliver=False) as t:
        with_user(t)
        with tls_session(t) as s:
            assert s.docmd("AUTH", "PLAIN") == (334, b"")
            assert s.docmd(b64(b"\0alice\0" + PASSWORD.encode()))[0] == 235


def test_wrong_password_gets_535_with_a_growing_delay_then_421():
    with Instance(deliver=False, conf="auth_max_failures = 3") as t:
        with_user(t)
        with tls_session(t) as s:
            for attempt in range(3):
                code, text = s.docmd("AUTH", "PLAIN " + b64(b"\0alice\0wrong" + bytes([48 + attempt])))
                assert code == 535 and text.startswith(b"5.7.8"), (code, text)
            try:
                code, text = s.getreply()
            except smtplib.SMTPServerDisconnected:
                raise AssertionError("no 421 after the last failure")
            assert code == 421, (code, text)
        delays = [int(d) for d in re.findall(r"auth_failed ip=127\.0\.0\.1 user=alice delay_ms=(\d+)",
                                             t.log())]
        assert len(delays) == 3 and delays[0] > 0 and delays[0] < delays[1] < delays[2], delays
        assert "wrong" not in t.log()


def test_auth_edge_cases():
    with Instance(deliver=False) as t:
        with_user(t)
        with tls_session(t) as s:
            assert s.docmd("AUTH", "CRAM-MD5")[0] == 504
            assert s.docmd("AUTH", "PLAIN !!!notbase64")[0] == 501
            assert s.docmd("AUTH", "PLAIN")[0] == 334
            assert s.docmd("*")[0] == 501  # cancelled
            code, _ = s.docmd("AUTH", "PLAIN " + b64(b"bob\0alice\0" + PASSWORD.encode()))
            assert code == 535  # another authorization identity
            code, _ = s.docmd("AUTH", "PLAIN " + b64(b"\0alice\0"))
            assert code in (501, 535)  # an empty password never succeeds
            assert s.docmd("AUTH", "PLAIN " + b64(b"alice\0alice\0" + PASSWORD.encode()))[0] == 235
            assert s.docmd("AUTH", "PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()))[0] == 503
        with tls_session(t) as s:
            s.mail(SENDER)
            assert s.docmd("AUTH", "PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()))[0] == 503


def test_an_over_long_response_gets_500_5_5_6():
    with Instance(deliver=False) as t:
        with_user(t)
        with tls_session(t) as s:
            assert s.docmd("AUTH", "PLAIN")[0] == 334
            code, text = s.docmd("A" * 13000)
            assert code == 500 and text.startswith(b"5.5.6"), (code, text)
            code, text = s.docmd("AUTH", "PLAIN " + "A" * 13000)
            assert code == 500 and text.startswith(b"5.5.6"), (code, text)
            assert s.noop()[0] == 250
            # 12288 octets of response are taken (and fail to decode as PLAIN)
            assert s.docmd("AUTH", "PLAIN")[0] == 334
            assert s.docmd(b64(b"x" * 9000))[0] == 501


def test_mail_auth_parameter_is_taken_when_auth_is_offered():
    with Instance(deliver=False) as t:
        with_user(t)
        with t.smtp() as s:
            s.ehlo()
            assert s.docmd("MAIL", "FROM:<%s> AUTH=<>" % SENDER)[0] == 555
        with tls_session(t) as s:
            assert s.docmd("MAIL", "FROM:<%s> AUTH=<>" % SENDER)[0] == 250
            s.rset()
            assert s.docmd("MAIL", "FROM:<%s> AUTH=alice+40example.test" % SENDER)[0] == 250
            s.rset()
            assert s.docmd("MAIL", "FROM:<%s> AUTH=bad=" % SENDER)[0] == 501


def test_an_unreadable_users_table_gives_454():
    with Instance(deliver=False) as t:
        with_user(t)
        os.unlink(os.path.join(t.etc, "users.cdb"))
        with tls_session(t) as s:
            code, text = s.docmd("AUTH", "PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()))
            assert code == 454 and text.startswith(b"4.7.0"), (code, text)
        assert "table_error table=users" in t.log()


def test_checkpassword_program():
    """The checkpassword interface: name and password on fd 3, NUL-ended."""
    with Instance(deliver=False) as t:
        script = os.path.join(t.dir, "checkpassword")
        seen = os.path.join(t.dir, "seen")
        with open(script, "w") as f:
            f.write("#!/usr/bin/python3\n"
                    "import os, sys\n"
                    "name, password = os.read(3, 4096).split(b'\\0')[:2]\n"
                    "open(%r, 'ab').write(name + b'\\n')\n"
                    "if (name, password) == (b'carol', b's3cret'):\n"
                    "    os.execv(sys.argv[1], sys.argv[1:])\n"
                    "sys.exit(1)\n" % seen)
        os.chmod(script, 0o755)
        t.add_conf("auth_checkpassword = %s" % script)
        with tls_session(t) as s:
            assert s.docmd("AUTH", "PLAIN " + b64(b"\0carol\0wrong"))[0] == 535
            assert s.docmd("AUTH", "PLAIN " + b64(b"\0carol\0s3cret"))[0] == 235
        with open(seen, "rb") as f:
            assert f.read() == b"carol\ncarol\n"


def test_swaks_auth_plain_and_login_over_starttls():
    with Instance() as t:
        with_user(t)
        for mech in ("PLAIN", "LOGIN"):
            r = t.swaks("--tls", "--auth", mech, "--auth-user", "alice", "--auth-password",
                        PASSWORD, "--from", "alice@example.test", "--to", "bob@example.test")
            assert r.returncode == 0, r.stdout + r.stderr
            assert "235 2.7.0" in r.stdout
        t.wait_for_messages("bob", 2)
        r = t.swaks("--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password",
                    "nope", "--from", "alice@example.test", "--to", "bob@example.test")
        assert r.returncode != 0 and "535 5.7.8" in r.stdout


def test_curl_with_user_over_starttls_and_smtps():
    with Instance() as t:
        with_user(t)
        implicit = Instance(smtpd_args=["--tls"], deliver=False)
        try:
            with_user(implicit)
            for url, inst in (("smtp://127.0.0.1:%d" % t.port, t),
                              ("smtps://127.0.0.1:%d" % implicit.port, implicit)):
                r = subprocess.run(
                    ["curl", "-sS", "-k", "--ssl-reqd", "--url", url, "--user",
                     "alice:" + PASSWORD, "--mail-from", "alice@example.test", "--mail-rcpt",
                     "bob@example.test", "-T", "-", "--connect-timeout", "10", "--max-time",
                     "30"], input=MESSAGE, capture_output=True)
                assert r.returncode == 0, r.stderr
                assert re.search(r"auth ip=\S+ user=alice", inst.log()), inst.log()
            t.wait_for_messages("bob", 1)
        finally:
            implicit.close()


# ---- submission ----

def test_submission_requires_auth_and_an_owned_sender():
    with Instance(smtpd_args=["--submission"]) as t:
        with_user(t)
        with tls_session(t) as s:
            code, text = s.docmd("MAIL", "FROM:<alice@example.test>")
            assert code == 530 and text.startswith(b"5.7.0"), (code, text)
            s.login("alice", PASSWORD)
            code, text = s.docmd("MAIL", "FROM:<bob@example.test>")
            assert code == 553 and text.startswith(b"5.7.1"), (code, text)
            assert s.docmd("MAIL", "FROM:<>")[0] == 553
            assert s.docmd("MAIL", "FROM:<alice@example.test>")[0] == 250
            assert s.rcpt("bob@example.test")[0] == 250
            assert s.data(b"Subject: no id, no date\r\n\r\nbody\r\n")[0] == 250
            s.rset()
            s.mail("alice+tag@other.test")
            s.rcpt("bob@example.test")
            s.data(b"Subject: kept\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
                   b"Message-ID: <mine@client.test>\r\n\r\nbody\r\n")
        msgs = t.wait_for_messages("bob", 2)
        added = [m for m in msgs if b"no id, no date" in m][0]
        head = added.split(b"\n\n", 1)[0]
        assert re.search(rb"^Message-ID: <[0-9A-Za-z]+@example\.test>$", head, re.M), head
        assert re.search(rb"^Date: \w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$", head,
                         re.M), head
        kept = [m for m in msgs if b"Subject: kept" in m][0]
        head = kept.split(b"\n\n", 1)[0]
        assert head.count(b"Message-ID:") == 1 and b"<mine@client.test>" in head
        assert head.lower().count(b"\ndate:") == 1


def test_submission_without_tls_offers_no_auth_and_takes_no_mail():
    with Instance(smtpd_args=["--submission"], deliver=False) as t:
        with_user(t)
        with t.smtp() as s:
            code, text = s.ehlo()
            assert b"AUTH" not in text and b"STARTTLS" in text
            assert s.docmd("MAIL", "FROM:<alice@example.test>")[0] == 530


def test_port_465_style_tls_submission_with_smtplib_and_swaks():
    with Instance(smtpd_args=["--tls", "--submission"]) as t:
        with_user(t)
        with smtplib.SMTP_SSL("127.0.0.1", t.port, local_hostname="client.test",
                              context=client_context(), timeout=30) as s:
            s.login("alice", PASSWORD)
            s.sendmail("alice@example.test", ["bob@example.test"], MESSAGE)
        r = t.swaks("--tlsc", "--auth", "LOGIN", "--auth-user", "alice", "--auth-password",
                    PASSWORD, "--from", "alice@example.test", "--to", "bob@example.test")
        assert r.returncode == 0, r.stdout + r.stderr
        msgs = t.wait_for_messages("bob", 2)
        assert all("with ESMTPSA" in received_header(m) for m in msgs)
