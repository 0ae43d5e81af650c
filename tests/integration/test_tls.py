"""TLS in tern-smtpd: STARTTLS (RFC 3207) and implicit TLS (RFC 8314, --tls),
with real clients (smtplib, swaks, curl, gnutls-cli) on loopback, against
instances made by `ternctl init` (which writes etc/tls/cert.pem and key.pem).
"""
import os
import re
import socket
import ssl
import subprocess
import time

import harness
from harness import Instance, wait_until

SENDER = "sender@remote.test"
MESSAGE = b"Subject: over TLS\r\n\r\nsecret body\r\n"


client_context = harness.tls_client_context


def received_header(msg):
    m = re.search(rb"^Received:.*\n(?:[ \t].*\n)*", msg, re.M)
    assert m, msg
    return re.sub(rb"\n[ \t]+", b" ", m.group(0)).decode()


def smtpd_pids(t):
    """The tern-smtpd processes tcpserver has running now."""
    out = subprocess.run(["pgrep", "-P", str(t.smtpd_proc.pid)], capture_output=True,
                         text=True).stdout
    return [int(p) for p in out.split()]


def maps_of_session(t, sock):
    """/proc/PID/maps of the one tern-smtpd serving SOCK (already greeted)."""
    pids = wait_until(lambda: smtpd_pids(t), 5, "the tern-smtpd of the session")
    assert len(pids) == 1, pids
    with open("/proc/%d/maps" % pids[0]) as f:
        return f.read()


class Raw:
    """A step-by-step client on a plain socket that can turn to TLS."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def reply(self):
        """One whole reply (all its lines), as str."""
        while True:
            m = re.search(rb"(?:^|\r\n)(\d{3}) [^\r\n]*\r\n", self.buf)
            if m:
                end = m.end()
                text, self.buf = self.buf[:end], self.buf[end:]
                return text.decode()
            data = self.sock.recv(4096)
            if not data:
                raise EOFError(self.buf)
            self.buf += data

    def send(self, data):
        self.sock.sendall(data)

    def starttls(self):
        assert self.buf == b"", self.buf
        self.sock = client_context().wrap_socket(self.sock, server_hostname="example.test")

    def close(self):
        self.sock.close()

    @classmethod
    def after_ehlo(cls, t):
        """A session that has had its greeting and its EHLO reply."""
        c = cls(t.port)
        c.reply()
        c.send(b"EHLO client.test\r\n")
        c.reply()
        return c


# ---- STARTTLS ----

def test_starttls_is_offered_and_a_message_goes_through_with_esmtps():
    with Instance() as t:
        with t.smtp() as s:
            code, text = s.ehlo()
            assert b"STARTTLS" in text.split(b"\n"), text
            assert s.starttls(context=client_context())[0] == 220
            code, text = s.ehlo()
            assert code == 250 and b"STARTTLS" not in text, text
            s.sendmail(SENDER, ["alice@example.test"], MESSAGE)
        msg = t.wait_for_messages("alice", 1)[0]
        assert b"secret body" in msg
        rec = received_header(msg)
        assert re.search(r"with ESMTPS \(TLS1\.[23] TLS_[A-Z0-9_]+\) id ", rec), rec
        log = t.log()
        assert re.search(r"tern-smtpd\[\d+\]: tls ip=127\.0\.0\.1 version=TLS1\.[23] "
                         r"cipher=TLS_\w+", log), log


def test_smtputf8_over_tls_is_traced_as_utf8smtps():
    with Instance() as t:
        with t.smtp() as s:
            s.starttls(context=client_context())
            s.ehlo()
            s.sendmail(SENDER, ["alice@example.test"], MESSAGE, mail_options=["SMTPUTF8"])
        rec = received_header(t.wait_for_messages("alice", 1)[0])
        assert re.search(r"with UTF8SMTPS \(TLS1\.[23] ", rec), rec


def test_a_plaintext_session_never_loads_gnutls_and_a_tls_one_does():
    with Instance() as t:
        plain = Raw(t.port)
        assert plain.reply().startswith("220 ")
        maps = maps_of_session(t, plain)
        assert "gnutls" not in maps and "tern-smtpd-tls" not in maps
        assert "libcrypt" not in maps  # AUTH loads it, at its first password
        plain.send(b"QUIT\r\n")
        plain.reply()
        plain.close()
        wait_until(lambda: not smtpd_pids(t), 5, "the plaintext session to end")
        tls = Raw(t.port)
        tls.reply()
        tls.send(b"EHLO client.test\r\n")
        tls.reply()
        tls.send(b"STARTTLS\r\n")
        assert tls.reply().startswith("220 2.0.0")
        tls.starttls()
        tls.send(b"NOOP\r\n")
        assert tls.reply().startswith("250")
        maps = maps_of_session(t, tls)
        assert "tern-smtpd-tls.so" in maps and "libgnutls" in maps, maps
        tls.close()


def test_tern_smtpd_does_not_link_gnutls():
    out = subprocess.run(["readelf", "-d", harness.program("tern-smtpd")], capture_output=True,
                         text=True, check=True).stdout
    assert "NEEDED" in out and "gnutls" not in out, out
    out = subprocess.run(["readelf", "-d", harness.program("tern-smtpd-tls.so")],
                         capture_output=True, text=True, check=True).stdout
    assert "libgnutls" in out, out


def test_plaintext_pipelined_after_starttls_is_thrown_away():
    """CVE-2011-0411: STARTTLS and RSET in one write; RSET is never answered,
    neither before the handshake nor after it."""
    with Instance() as t:
        c = Raw.after_ehlo(t)
        c.send(b"STARTTLS\r\nRSET\r\n")
        assert c.reply().startswith("220 2.0.0 Ready to start TLS")
        time.sleep(0.2)  # an answer to RSET in plaintext would be here by now
        c.starttls()     # fails if a plaintext reply came after the 220
        c.send(b"EHLO again.test\r\n")
        first = c.reply()
        assert first.startswith("250-example.test"), first  # not RSET's 250 2.0.0 Ok
        c.send(b"QUIT\r\n")
        assert c.reply().startswith("221")
        c.close()
        log = t.log()
        assert "code=" not in log, log


def test_starttls_then_plaintext_in_the_same_packet_fails_the_handshake():
    """Bytes pipelined after STARTTLS that reach the server after its read are
    taken for the handshake, which fails: the session ends, nothing answered."""
    with Instance() as t:
        c = Raw.after_ehlo(t)
        c.send(b"STARTTLS\r\n")
        assert c.reply().startswith("220 2.0.0")
        c.send(b"RSET\r\nMAIL FROM:<x@remote.test>\r\n")
        data = b""
        try:
            while True:
                got = c.sock.recv(4096)
                if not got:
                    break
                data += got
        except OSError:
            pass
        assert b"250" not in data, data
        c.close()
        wait_until(lambda: "what=handshake" in t.log(), 5, "the handshake error")


def test_a_transaction_begun_before_starttls_is_gone_after_it():
    with Instance() as t:
        c = Raw.after_ehlo(t)
        c.send(b"MAIL FROM:<%s>\r\n" % SENDER.encode())
        assert c.reply().startswith("250")
        c.send(b"STARTTLS\r\n")
        assert c.reply().startswith("220")
        c.starttls()
        c.send(b"RCPT TO:<alice@example.test>\r\n")
        assert c.reply().startswith("503 5.5.1"), "MAIL survived STARTTLS"
        c.send(b"MAIL FROM:<%s>\r\n" % SENDER.encode())
        assert c.reply().startswith("503 5.5.1"), "EHLO survived STARTTLS"
        c.send(b"EHLO client.test\r\n")
        assert c.reply().startswith("250-")
        c.send(b"MAIL FROM:<%s>\r\n" % SENDER.encode())
        assert c.reply().startswith("250 2.1.0")
        c.close()


def test_starttls_with_an_argument_and_inside_tls_are_refused():
    with Instance() as t:
        c = Raw.after_ehlo(t)
        c.send(b"STARTTLS now\r\n")
        assert c.reply().startswith("501 5.5.4")
        c.send(b"STARTTLS\r\n")
        assert c.reply().startswith("220")
        c.starttls()
        c.send(b"EHLO client.test\r\n")
        assert "STARTTLS" not in c.reply()
        c.send(b"STARTTLS\r\n")
        assert c.reply().startswith("503 5.5.1")
        c.close()


def test_an_unloadable_certificate_gives_454_and_a_log_line():
    with Instance() as t:
        with open(os.path.join(t.etc, "tls", "cert.pem"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        with t.smtp() as s:
            s.ehlo()
            code, text = s.docmd("STARTTLS")
            assert code == 454 and text.startswith(b"4.7.0"), (code, text)
            assert s.noop()[0] == 250  # the session goes on in plaintext
        log = t.log()
        assert re.search(r"tls_error ip=127\.0\.0\.1 what=load reason=\".*cert\.pem", log), log


def test_a_bad_priority_string_gives_454():
    with Instance(conf="tls_priority = NOT-A-PRIORITY") as t:
        with t.smtp() as s:
            s.ehlo()
            assert s.docmd("STARTTLS")[0] == 454
        assert "tls_priority" in t.log()


def test_no_starttls_without_a_certificate_setting():
    with Instance(conf="tls_cert =\ntls_key =") as t:
        with t.smtp() as s:
            code, text = s.ehlo()
            assert b"STARTTLS" not in text
            assert s.docmd("STARTTLS")[0] == 502


def test_tls_1_1_is_refused_and_1_2_taken_by_default():
    with Instance() as t:
        def handshake(version):
            ctx = client_context()
            ctx.minimum_version = ctx.maximum_version = version
            c = Raw(t.port)
            c.reply()
            c.send(b"EHLO client.test\r\nSTARTTLS\r\n")
            c.reply()
            assert c.reply().startswith("220")
            try:
                c.sock = ctx.wrap_socket(c.sock, server_hostname="example.test")
                return c.sock.version()
            except (ssl.SSLError, OSError):
                return None
            finally:
                c.close()
        assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
        try:
            refused = handshake(ssl.TLSVersion.TLSv1_1)
        except ValueError:
            raise harness.Skip("this Python's OpenSSL cannot even offer TLS 1.1")
        assert refused is None


def test_no_session_ticket_is_issued():
    with Instance() as t:
        c = Raw(t.port)
        c.reply()
        c.send(b"EHLO client.test\r\nSTARTTLS\r\n")
        c.reply()
        c.reply()
        c.starttls()
        c.send(b"NOOP\r\n")
        c.reply()  # a TLS 1.3 ticket would have come before this reply
        assert c.sock.session is not None
        assert not c.sock.session.has_ticket
        c.close()


def test_the_certificate_is_chosen_by_sni():
    with Instance(hostname="mail.example.test") as t:
        other = Instance(domains=("second.test",), hostname="mx.second.test", smtpd=False,
                         deliver=False)
        try:
            cert2 = os.path.join(other.etc, "tls", "cert.pem")
            key2 = os.path.join(other.etc, "tls", "key.pem")
            t.add_conf("tls_cert = tls/cert.pem, %s\ntls_key = tls/key.pem, %s" % (cert2, key2))

            def served(name):
                c = Raw(t.port)
                c.reply()
                c.send(b"EHLO client.test\r\nSTARTTLS\r\n")
                c.reply()
                c.reply()
                c.sock = client_context().wrap_socket(c.sock, server_hostname=name)
                der = c.sock.getpeercert(binary_form=True)
                c.close()
                return der

            def der_of(path):
                with open(path) as f:
                    return ssl.PEM_cert_to_DER_cert(f.read())
            assert served("mx.second.test") == der_of(cert2)
            assert served("mail.example.test") == der_of(os.path.join(t.etc, "tls", "cert.pem"))
        finally:
            other.close()


def test_swaks_starttls_delivers():
    with Instance() as t:
        r = t.swaks("--from", SENDER, "--to", "alice@example.test", "--tls")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "250 2.0.0 Ok: queued as" in r.stdout
        msg = t.wait_for_messages("alice", 1)[0]
        assert "with ESMTPS (TLS1." in received_header(msg)


def test_curl_smtp_with_ssl_reqd_delivers():
    with Instance() as t:
        r = subprocess.run(
            ["curl", "-sS", "--ssl-reqd", "-k", "--url", "smtp://127.0.0.1:%d" % t.port,
             "--mail-from", SENDER, "--mail-rcpt", "alice@example.test", "-T", "-",
             "--connect-timeout", "10", "--max-time", "30"],
            input=MESSAGE, capture_output=True)
        assert r.returncode == 0, r.stderr
        msg = t.wait_for_messages("alice", 1)[0]
        assert "with ESMTPS" in received_header(msg)


def test_gnutls_cli_sees_the_init_certificate_and_tls_1_3():
    with Instance(hostname="mail.example.test") as t:
        r = subprocess.run(
            ["gnutls-cli", "--insecure", "--starttls-proto=smtp", "--port", str(t.port),
             "127.0.0.1"], input=b"QUIT\r\n", capture_output=True, timeout=30)
        out = r.stdout.decode("utf-8", "replace")
        assert "Handshake was completed" in out, out + r.stderr.decode()
        assert "TLS1.3" in out, out
        assert "CN=mail.example.test" in out, out


# ---- implicit TLS ----

def test_implicit_tls_with_smtplib_smtp_ssl():
    with Instance(smtpd_args=["--tls"]) as t:
        with smtplib_ssl(t) as s:
            code, text = s.ehlo()
            assert code == 250 and b"STARTTLS" not in text
            s.sendmail(SENDER, ["alice@example.test"], MESSAGE)
        msg = t.wait_for_messages("alice", 1)[0]
        assert "with ESMTPS (TLS1." in received_header(msg)


def smtplib_ssl(t):
    import smtplib
    return smtplib.SMTP_SSL("127.0.0.1", t.port, local_hostname="client.test",
                            context=client_context(), timeout=30)


def test_implicit_tls_with_swaks_tlsc_and_curl_smtps():
    with Instance(smtpd_args=["--tls"]) as t:
        r = t.swaks("--from", SENDER, "--to", "alice@example.test", "--tlsc")
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run(
            ["curl", "-sS", "-k", "--url", "smtps://127.0.0.1:%d" % t.port,
             "--mail-from", SENDER, "--mail-rcpt", "bob@example.test", "-T", "-",
             "--connect-timeout", "10", "--max-time", "30"],
            input=MESSAGE, capture_output=True)
        assert r.returncode == 0, r.stderr
        t.wait_for_messages("alice", 1)
        t.wait_for_messages("bob", 1)


def test_implicit_tls_handshake_times_out():
    with Instance(smtpd_args=["--tls"], conf="tls_handshake_timeout = 1s") as t:
        def until_closed(s):
            data = b""
            while True:
                got = s.recv(4096)  # the server closes: no timeout here
                if not got:
                    return data
                data += got
        with socket.create_connection(("127.0.0.1", t.port), timeout=10) as s:
            s.sendall(b"EHLO plaintext.test\r\n")  # no handshake: never a reply
            data = until_closed(s)
            assert b"250" not in data and b"220" not in data, data
        with socket.create_connection(("127.0.0.1", t.port), timeout=10) as s:
            data = until_closed(s)  # at most an alert, never the greeting
            assert b"220" not in data, data
        wait_until(lambda: 'what=handshake reason="timed out"' in t.log(), 5,
                   "the handshake timeout in the log")


def test_implicit_tls_with_an_unloadable_key_closes_and_logs():
    with Instance(smtpd_args=["--tls"]) as t:
        with open(os.path.join(t.etc, "tls", "key.pem"), "w") as f:
            f.write("garbage\n")
        with socket.create_connection(("127.0.0.1", t.port), timeout=10) as s:
            try:
                ctx = client_context()
                ctx.wrap_socket(s, server_hostname="example.test")
                raise AssertionError("a handshake without a key")
            except (ssl.SSLError, OSError):
                pass
        wait_until(lambda: re.search(r"tls_error ip=\S+ what=load reason=\".*key\.pem", t.log()),
                   5, "the load error")
