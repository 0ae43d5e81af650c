"""ternctl as a mail administrator uses it: init, check, compile, the
queue listings, and the requests (flush, hold, release, delete, bounce)
that tern-deliver applies.  See ternctl(8), tern.conf(5), tern-tables(5)."""
import glob
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time

import harness
from harness import Instance, run, wait_until

TERNCTL = harness.program("ternctl")
TABLES = ("domains", "mailboxes", "aliases", "users", "senders", "relay", "routes")
MESSAGE = b"Subject: ternctl test\n\nbody line\n"
SLOW_RETRY = "retry_first = 1h\nretry_max = 4h"
PENDING = "pending; tern-deliver will apply it when it runs"


# ---- helpers ----

def inject(t, sender, rcpts, message=MESSAGE, qid=None):
    """Queues MESSAGE through tern-queue as qmail-queue is fed; returns the id
    (QID when given; else the one new file in incoming/ or queue/)."""
    before = set(queued_ids(t))
    envelope = b"F" + sender.encode() + b"\0"
    envelope += b"".join(b"T" + r.encode() + b"\0" for r in rcpts) + b"\0"
    code, err = t.queue(envelope, message, qid)
    assert code == 0, (code, err)
    if qid is not None:
        return qid
    (new,) = set(queued_ids(t)) - before
    return new


def queued_ids(t):
    return [os.path.basename(p) for d in ("incoming", "queue")
            for p in glob.glob(os.path.join(t.spool, d, "*"))]


def queue_json(t):
    r = t.ternctl("queue", "--json")
    assert r.stderr == "", r.stderr
    return json.loads(r.stdout)


def entry(t, qid):
    """The queue --json entry of QID, or None."""
    for m in queue_json(t):
        if m["id"] == qid:
            return m
    return None


def rcpt_states(t, qid):
    m = entry(t, qid)
    return {r["addr"]: r["state"] for r in m["rcpts"]} if m else None


def wait_state(t, qid, addr, state):
    wait_until(lambda: (rcpt_states(t, qid) or {}).get(addr) == state, 20,
               "%s of %s to be %s" % (addr, qid, state))


def snapshot(root, skip=()):
    """Every path under ROOT: its type and mode, and a regular file's bytes
    and mtime (FIFOs are never opened)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if any(rel == s or rel.startswith(s + os.sep) for s in skip):
                continue
            st = os.lstat(path)
            item = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode))
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    item += (f.read(), st.st_mtime_ns)
            out[rel] = item
    return out


def cdb_bytes(t):
    out = {}
    for name in TABLES:
        with open(os.path.join(t.etc, name + ".cdb"), "rb") as f:
            out[name] = f.read()
    return out


def conf_values(path):
    values = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def line_number(path, text):
    with open(path) as f:
        lines = f.read().split("\n")
    return lines.index(text) + 1


def ternctl_env(args, env_extra=None, drop=("TERN_CONFIG",)):
    env = dict(os.environ)
    for k in drop:
        env.pop(k, None)
    env.update(env_extra or {})
    return run([TERNCTL] + list(args), check=False, env=env)


def rcpt_code(t, addr):
    """The reply code tern-smtpd gives RCPT TO:<ADDR>, in a fresh session."""
    with t.smtp() as s:
        code, _ = s.ehlo()
        assert code == 250, code
        code, _ = s.mail("sender@remote.test")
        assert code == 250, code
        code, _ = s.rcpt(addr)
        return code


def metrics(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        out[name] = int(value)
    return out


def requests(t):
    return sorted(glob.glob(os.path.join(t.spool, "control", "request.*")))


# ---- init ----

def test_init_makes_a_whole_instance():
    with Instance(domains=("example.test", "other.test"), users=("alice", "bob"),
                  hostname="mx.example.test", smtpd=False, deliver=False) as t:
        values = conf_values(t.conf)
        assert values == {"hostname": "mx.example.test", "instance": "yes",
                          "spool": "../spool", "recipient_delimiter": "+",
                          "dns_server": "127.0.0.1", "tls_cert": "tls/cert.pem",
                          "tls_key": "tls/key.pem"}, values

        def table(name):
            with open(os.path.join(t.etc, name)) as f:
                return [l.split() for l in f.read().splitlines()
                        if l.strip() and not l.startswith("#")]

        assert table("domains") == [["example.test"], ["other.test"]]
        assert sorted(table("mailboxes")) == sorted(
            [[u + "@" + d, "../mail/%s/Maildir" % u] for u in ("alice", "bob")
             for d in ("example.test", "other.test")])
        assert sorted(table("aliases")) == sorted(
            [[a + "@" + d, "alice@example.test"] for a in ("postmaster", "abuse")
             for d in ("example.test", "other.test")])
        senders = {row[0]: "".join(row[1:]) for row in table("senders")}
        assert senders == {"alice": "alice@example.test,alice@other.test",
                           "bob": "bob@example.test,bob@other.test"}, senders
        assert table("relay") == [] and table("routes") == [] and table("users") == []
        for name in TABLES:
            text = os.path.join(t.etc, name)
            cdb = text + ".cdb"
            assert os.path.isfile(text), text
            assert os.path.isfile(cdb) and os.path.getsize(cdb) >= 2048, cdb
        assert stat.S_IMODE(os.stat(os.path.join(t.etc, "users")).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.join(t.etc, "users.cdb")).st_mode) == 0o600

        key = os.path.join(t.etc, "tls", "key.pem")
        cert = os.path.join(t.etc, "tls", "cert.pem")
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode) == 0o700
        info = run(["certtool", "-i", "--infile", cert]).stdout
        assert re.search(r"Subject: CN=mx\.example\.test$", info, re.M), info
        assert re.search(r"DNSname: mx\.example\.test$", info, re.M), info

        assert os.path.isdir(t.spool)
        assert stat.S_ISFIFO(os.stat(os.path.join(t.spool, "trigger")).st_mode)
        for user in ("alice", "bob"):
            for sub in ("tmp", "new", "cur"):
                path = os.path.join(t.maildir(user), sub)
                assert os.path.isdir(path) and os.listdir(path) == [], path
        # the instance it made is valid as it stands
        r = t.ternctl("check")
        assert r.stdout == "%s: ok\n" % t.conf and r.stderr == "", (r.stdout, r.stderr)


def test_init_defaults_and_report():
    top = tempfile.mkdtemp(prefix="tern-test-")
    try:
        target = os.path.join(top, "new", "mx")   # created, parents too
        r = run([TERNCTL, "init", target, "--domain", "first.test", "--domain", "second.test",
                 "--user", "carol", "--dns-server", "127.0.0.1:5353"], check=False)
        assert r.returncode == 0, r.stderr
        conf = os.path.join(target, "etc", "tern.conf")
        values = conf_values(conf)
        assert values["hostname"] == "first.test", values
        assert values["dns_server"] == "127.0.0.1:5353", values
        # it ends by saying where the configuration, the spool and the mail are
        assert conf in r.stdout, r.stdout
        assert os.path.join(target, "spool") in r.stdout, r.stdout
        assert os.path.join(target, "mail", "carol", "Maildir") in r.stdout, r.stdout
        info = run(["certtool", "-i", "--infile",
                    os.path.join(target, "etc", "tls", "cert.pem")]).stdout
        assert "CN=first.test" in info, info
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_init_refuses_an_existing_instance():
    with Instance(smtpd=False, deliver=False) as t:
        before = snapshot(t.dir)
        r = run([TERNCTL, "init", t.dir, "--domain", "changed.test", "--user", "mallory",
                 "--hostname", "changed.test"], check=False)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert t.conf in r.stderr, r.stderr
        assert snapshot(t.dir) == before
        assert not os.path.exists(os.path.join(t.dir, "mail", "mallory"))


def test_init_usage_errors():
    top = tempfile.mkdtemp(prefix="tern-test-")
    try:
        target = os.path.join(top, "mx")
        for args in (["--domain", "example.test"],                      # no --user
                     ["--user", "alice"],                               # no --domain
                     ["--domain", "example.test", "--user", "Alice"],   # upper case
                     ["--domain", "example.test", "--user", "-alice"],
                     ["--domain", "example.test", "--user", "a" * 33],
                     ["--domain", "bad_domain..test", "--user", "alice"],
                     ["--domain", "[127.0.0.1]", "--user", "alice"],
                     ["--domain", "example.test", "--user", "alice",
                      "--dns-server", "127.0.0.1\ninstance = no"],
                     ["--domain", "example.test", "--user", "alice",
                      "--hostname", "two words"]):
            r = run([TERNCTL, "init", target] + args, check=False)
            assert r.returncode == 2, (args, r.returncode, r.stderr)
            assert not os.path.exists(os.path.join(target, "etc", "tern.conf")), args
        r = run([TERNCTL, "init", "--domain", "example.test", "--user", "alice"], check=False)
        assert r.returncode == 2, (r.returncode, r.stderr)
    finally:
        shutil.rmtree(top, ignore_errors=True)


# ---- check ----

def test_check_ok():
    with Instance(smtpd=False, deliver=False) as t:
        r = t.ternctl("check", check=False)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "%s: ok\n" % t.conf
        assert r.stderr == ""


def test_check_reports_bad_conf_line():
    with Instance(smtpd=False, deliver=False) as t:
        with open(t.conf) as f:
            good = f.read()
        t.add_conf("# a comment\n\nmax_rcpts = 5")
        line = line_number(t.conf, "max_rcpts = 5")
        r = t.ternctl("check", check=False)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert re.search(r"^tern\.conf:%d: unknown key 'max_rcpts'$" % line, r.stderr,
                         re.M), r.stderr
        assert "ok" not in r.stdout
        # every command refuses an invalid tern.conf the same way
        for args in (("compile",), ("queue",), ("stats",)):
            r = t.ternctl(*args, check=False)
            assert r.returncode == 1, (args, r.returncode, r.stderr)
            assert "tern.conf:%d:" % line in r.stderr, (args, r.stderr)

        with open(t.conf, "w") as f:
            f.write(good)
        t.add_conf("max_recipients = 50\nmax_recipients = lots")
        line = line_number(t.conf, "max_recipients = lots")
        r = t.ternctl("check", check=False)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert re.search(r"^tern\.conf:%d: max_recipients: " % line, r.stderr, re.M), r.stderr

        with open(t.conf, "w") as f:
            f.write(good)
        t.add_conf("retry_first = soon")
        line = line_number(t.conf, "retry_first = soon")
        r = t.ternctl("check", check=False)
        assert r.returncode == 1 and "tern.conf:%d: retry_first" % line in r.stderr, r.stderr

        with open(t.conf, "w") as f:
            f.write(good)
        assert t.ternctl("check").stdout == "%s: ok\n" % t.conf


def test_check_reports_bad_alias_line():
    with Instance(smtpd=False, deliver=False) as t:
        t.write_table("aliases", "# aliases\n"
                                 "postmaster@example.test alice@example.test\n"
                                 "sales@example.test alice@example.test, bob@example.test\n"
                                 "\n"
                                 "broken@example.test alice@, bob@example.test\n"
                                 "abuse@example.test postmaster\n", compile=False)
        r = t.ternctl("check", check=False)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert re.search(r"^aliases:5: ", r.stderr, re.M), r.stderr
        assert not re.search(r"^aliases:[1-46]:", r.stderr, re.M), r.stderr
        assert r.stdout == ""


def test_check_reports_stale_and_uncompiled_tables():
    with Instance(smtpd=False, deliver=False) as t:
        aliases = os.path.join(t.etc, "aliases")
        cdb = aliases + ".cdb"
        with open(aliases, "a") as f:
            f.write("sales@example.test bob@example.test\n")
        # the text newer than its cdb, whatever the file system's clock grain
        now = time.time_ns()
        os.utime(cdb, ns=(now - 120 * 10**9, now - 120 * 10**9))
        os.utime(aliases, ns=(now - 60 * 10**9, now - 60 * 10**9))
        r = t.ternctl("check", check=False)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "aliases:1: changed since it was compiled; run ternctl compile" in r.stderr, \
            r.stderr
        assert "mailboxes" not in r.stderr, r.stderr

        t.ternctl("compile")
        r = t.ternctl("check", check=False)
        assert r.returncode == 0, r.stderr

        os.unlink(os.path.join(t.etc, "relay.cdb"))
        r = t.ternctl("check", check=False)
        assert r.returncode == 1, r.stderr
        assert "relay:1: not compiled; run ternctl compile" in r.stderr, r.stderr


def certtool(*args):
    run(["certtool"] + list(args))


def make_cert(folder, name, template):
    """A new key FOLDER/NAME.key and a certificate FOLDER/NAME.pem for it,
    self-signed with the certtool TEMPLATE."""
    key, cert, tmpl = (os.path.join(folder, name + ext) for ext in (".key", ".pem", ".tmpl"))
    with open(tmpl, "w") as f:
        f.write("cn = mx.example.test\n" + template)
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", key)
    certtool("--generate-self-signed", "--load-privkey", key, "--template", tmpl,
             "--outfile", cert)
    return cert, key


def check_with_tls(t, certs, keys):
    with open(t.conf, "a") as f:
        f.write("tls_cert = %s\ntls_key = %s\n" % (certs, keys))
    return t.ternctl("check", check=False)


def test_check_reports_certificate_problems():
    with Instance(smtpd=False, deliver=False) as t:
        with open(t.conf) as f:
            good = f.read()
        cert, key = os.path.join(t.etc, "tls", "cert.pem"), os.path.join(t.etc, "tls", "key.pem")
        soon, soon_key = make_cert(t.dir, "soon", "expiration_days = 5\n")
        old, old_key = make_cert(t.dir, "old", 'activation_date = "2020-01-01 00:00:00"\n'
                                                'expiration_date = "2021-01-01 00:00:00"\n')
        garbage = os.path.join(t.dir, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
        cases = (
            (garbage, key, garbage + ": not a PEM certificate"),
            (cert, garbage, garbage + ": not a PEM private key"),
            (os.path.join(t.dir, "missing.pem"), key,
             os.path.join(t.dir, "missing.pem") + ": cannot read the certificate"),
            (cert, os.path.join(t.dir, "nokey.pem"),
             os.path.join(t.dir, "nokey.pem") + ": cannot read the key"),
            (t.dir, key, t.dir + ": cannot read the certificate: Is a directory"),
            (cert, soon_key, cert + ": does not match its key " + soon_key),
            (soon, key, soon + ": does not match its key " + key),
            (old, old_key, old + ": the certificate expired on 2021-01-01 00:00:00 UTC"),
            # the second pair is checked too
            ("tls/cert.pem," + old, "tls/key.pem," + old_key, old + ": the certificate expired"),
            ("tls/cert.pem," + soon, "tls/key.pem", "tls_cert names 2 files and tls_key 1"),
        )
        for certs, keys, said in cases:
            with open(t.conf, "w") as f:
                f.write(good)
            r = check_with_tls(t, certs, keys)
            assert (r.returncode, r.stdout) == (1, ""), (certs, keys, r.returncode, r.stdout,
                                                         r.stderr)
            assert said in r.stderr, (said, r.stderr)

        # expiring soon: a warning naming the file and the date, and still ok
        for certs, keys in ((soon, soon_key), ("tls/cert.pem," + soon, "tls/key.pem," + soon_key)):
            with open(t.conf, "w") as f:
                f.write(good)
            r = check_with_tls(t, certs, keys)
            assert (r.returncode, r.stdout) == (0, "%s: ok\n" % t.conf), (r.returncode,
                                                                          r.stderr)
            (line,) = r.stderr.splitlines()
            m = re.match(r"^%s: warning: the certificate expires on "
                         r"(\d{4}-\d\d-\d\d) \d\d:\d\d:\d\d UTC, in [56] days$"
                         % re.escape(soon), line)
            assert m, line
            days = (time.mktime(time.strptime(m.group(1), "%Y-%m-%d")) -
                    time.mktime(time.gmtime())) / 86400
            assert 3.5 < days < 5.5, (line, days)

        # no TLS configured: nothing to check, even with no files
        with open(t.conf, "w") as f:
            f.write(good)
        os.unlink(cert)
        r = check_with_tls(t, "", "")
        assert (r.returncode, r.stdout, r.stderr) == (0, "%s: ok\n" % t.conf, ""), r.stderr


# ---- compile ----

def test_compile_is_all_or_none():
    with Instance(deliver=False) as t:
        old = cdb_bytes(t)
        assert rcpt_code(t, "carol@example.test") == 550
        assert rcpt_code(t, "sales@example.test") == 550
        # good edits to three tables, a bad line in two others
        with open(os.path.join(t.etc, "mailboxes"), "a") as f:
            f.write("carol@example.test ../mail/carol/Maildir\n")
        with open(os.path.join(t.etc, "domains"), "a") as f:
            f.write("third.test\n")
        with open(os.path.join(t.etc, "aliases"), "a") as f:
            f.write("sales@example.test alice@example.test\n")
            f.write("oops@example.test\n")
        bad_alias = line_number(os.path.join(t.etc, "aliases"), "oops@example.test")
        with open(os.path.join(t.etc, "relay"), "a") as f:
            f.write("192.0.2.0/99\n")
        bad_relay = line_number(os.path.join(t.etc, "relay"), "192.0.2.0/99")

        r = t.ternctl("compile", check=False)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert re.search(r"^aliases:%d: " % bad_alias, r.stderr, re.M), r.stderr
        assert re.search(r"^relay:%d: " % bad_relay, r.stderr, re.M), r.stderr
        assert cdb_bytes(t) == old
        assert glob.glob(os.path.join(t.etc, "*.tmp")) == []
        assert rcpt_code(t, "carol@example.test") == 550
        assert rcpt_code(t, "sales@example.test") == 550

        with open(os.path.join(t.etc, "aliases")) as f:
            fixed = f.read().replace("oops@example.test\n", "")
        t.write_table("aliases", fixed, compile=False)
        t.write_table("relay", "# none\n", compile=False)
        r = t.ternctl("compile", check=False)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), (r.returncode, r.stderr)
        new = cdb_bytes(t)
        for name in ("mailboxes", "domains", "aliases"):
            assert new[name] != old[name], name
        assert t.ternctl("check").returncode == 0
        assert rcpt_code(t, "carol@example.test") == 250
        assert rcpt_code(t, "sales@example.test") == 250
        assert rcpt_code(t, "anyone@third.test") == 550     # local now, but unknown


def test_compile_removes_the_cdb_of_a_removed_text_table():
    # tern-tables(5): after a compile the cdbs mirror the text files.
    with Instance(deliver=False) as t:
        t.write_table("relay", "127.0.0.0/8\n")
        with t.smtp() as s:
            s.ehlo()
            s.mail("sender@example.test")
            assert s.rcpt("someone@elsewhere.test")[0] == 250
        os.unlink(os.path.join(t.etc, "relay"))
        r = t.ternctl("compile", check=False)
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(os.path.join(t.etc, "relay.cdb"))
        assert t.ternctl("check", check=False).returncode == 0
        with t.smtp() as s:
            s.ehlo()
            s.mail("sender@example.test")
            code, reply = s.rcpt("someone@elsewhere.test")
            assert code == 550 and b"5.7.1" in reply, (code, reply)


# ---- where tern.conf comes from ----

def test_config_flag_and_environment():
    with Instance(smtpd=False, deliver=False) as t:
        ok = "%s: ok\n" % t.conf
        missing = os.path.join(t.dir, "nowhere", "tern.conf")
        for args, env in ((["-C", t.conf, "check"], {}),
                          (["check", "-C", t.conf], {}),
                          (["check"], {"TERN_CONFIG": t.conf}),
                          (["-C", t.conf, "check"], {"TERN_CONFIG": missing})):
            r = ternctl_env(args, env)
            assert (r.returncode, r.stdout) == (0, ok), (args, env, r.returncode, r.stderr)
        for args, env in ((["-C", missing, "check"], {"TERN_CONFIG": t.conf}),
                          (["check"], {"TERN_CONFIG": missing}),
                          (["queue", "-C", missing], {})):
            r = ternctl_env(args, env)
            assert r.returncode == 1, (args, env, r.returncode)
            assert missing in r.stderr, (args, r.stderr)
        # a relative -C is taken from the current folder
        r = subprocess.run([TERNCTL, "-C", "etc/tern.conf", "check"], cwd=t.dir,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert (r.returncode, r.stdout) == (0, ok), (r.returncode, r.stdout, r.stderr)
        r = ternctl_env(["check", "-C"])
        assert r.returncode == 2, r.returncode


def test_help_and_unknown_command():
    r = ternctl_env(["--help"])
    assert r.returncode == 0, r.returncode
    assert r.stdout.startswith("usage: ternctl"), r.stdout
    for command in ("init", "compile", "check", "queue", "show", "flush", "delete", "hold",
                    "release", "bounce", "stats", "passwd"):
        assert re.search(r"^\s+ternctl %s\b" % command, r.stdout, re.M), (command, r.stdout)
    for command in ("queue", "compile", "init", "flush", "passwd"):
        r = ternctl_env([command, "--help"])
        assert r.returncode == 0, (command, r.returncode)
        assert r.stdout.startswith("usage: ternctl") and command in r.stdout, r.stdout
    r = ternctl_env(["frobnicate"])
    assert r.returncode == 2, r.returncode
    assert "frobnicate" in r.stderr and r.stdout == "", (r.stdout, r.stderr)
    r = ternctl_env([])
    assert r.returncode == 2, r.returncode
    with Instance(smtpd=False, deliver=False) as t:
        r = t.ternctl("queue", "--bogus", check=False)
        assert r.returncode == 2, r.returncode
        for command in ("log", "setup"):
            r = t.ternctl(command, "alice", check=False)
            assert r.returncode == 1, (command, r.returncode)
            assert "not available in this release" in r.stderr, r.stderr


# ---- queue, show, stats (read from the spool only) ----

def test_queue_empty():
    with Instance(smtpd=False, deliver=False) as t:
        assert t.ternctl("queue").stdout == "queue is empty\n"
        assert json.loads(t.ternctl("queue", "--json").stdout) == []
        m = metrics(t.ternctl("stats").stdout)
        assert m["tern_queue_messages"] == 0
        assert m["tern_queue_oldest_age_seconds"] == 0
        for state in ("pending", "deferred", "held", "delivered", "bounced"):
            assert m['tern_queue_recipients{state="%s"}' % state] == 0, state
        for result in ("delivered", "deferred", "bounced"):
            assert m['tern_deliveries_total{result="%s"}' % result] == 0, result


def test_spool_that_cannot_be_read():
    # ternctl(8): 111 when the spool cannot be read (queue, stats, show)
    with Instance(smtpd=False, deliver=False) as t:
        t.add_conf("spool = ../nospool")
        missing = os.path.join(t.dir, "nospool")
        r = t.ternctl("check", check=False)
        assert r.returncode == 1 and missing in r.stderr, (r.returncode, r.stderr)
        for args in (("queue",), ("queue", "--json"), ("stats",)):
            r = t.ternctl(*args, check=False)
            assert r.returncode == 111, (args, r.returncode, r.stdout, r.stderr)
        assert not os.path.exists(missing)
        # show too: not "no such message" (exit 1), which would be untrue
        r = t.ternctl("show", "Abc123", check=False)
        assert r.returncode == 111, (r.returncode, r.stdout, r.stderr)


def test_queue_lists_waiting_messages():
    with Instance(smtpd=False, deliver=False) as t:
        first = inject(t, "s@remote.test", ["alice@example.test", "carol@remote.test"])
        second = inject(t, "", ["bob@example.test"], message=b"Subject: bounce\n\nx\n")
        assert re.fullmatch(r"[0-9A-Za-z]+", first) and re.fullmatch(r"[0-9A-Za-z]+", second)

        out = queue_json(t)
        assert [m["id"] for m in out] == [first, second], out
        for m in out:
            assert set(m) == {"id", "age_s", "size", "sender", "rcpts"}, m
            assert isinstance(m["age_s"], int) and 0 <= m["age_s"] < 3600, m
        assert out[0]["size"] == len(MESSAGE)
        assert out[0]["sender"] == "s@remote.test"
        assert out[0]["rcpts"] == [
            {"addr": "alice@example.test", "state": "pending", "next_try": None,
             "last_error": None},
            {"addr": "carol@remote.test", "state": "pending", "next_try": None,
             "last_error": None}]
        assert out[1]["sender"] == "" and out[1]["size"] == len(b"Subject: bounce\n\nx\n")

        text = t.ternctl("queue").stdout
        lines = text.splitlines()
        assert re.fullmatch(r"%s  %d octets  \d+s old  from <s@remote\.test>"
                            % (first, len(MESSAGE)), lines[0]), text
        assert lines[1] == "    pending    <alice@example.test>", text
        assert lines[2] == "    pending    <carol@remote.test>", text
        assert re.fullmatch(r"%s  \d+ octets  \d+s old  from <>" % second, lines[3]), text
        assert lines[4] == "    pending    <bob@example.test>", text
        assert len(lines) == 5, text

        m = metrics(t.ternctl("stats").stdout)
        assert m["tern_queue_messages"] == 2
        assert m['tern_queue_recipients{state="pending"}'] == 3
        assert m["tern_queue_oldest_age_seconds"] >= 0


def test_show():
    with Instance(smtpd=False, deliver=False) as t:
        qid = inject(t, "s@remote.test", ["alice@example.test"])
        r = t.ternctl("show", qid, check=False)
        assert r.returncode == 0, r.stderr
        head, sep, body = r.stdout.partition("\n\n")
        assert sep, r.stdout
        assert re.fullmatch(r"%s  %d octets  \d+s old  from <s@remote\.test>\n"
                            r"    pending    <alice@example\.test>" % (qid, len(MESSAGE)),
                            head), head
        assert body == MESSAGE.decode(), body     # as stored, without the envelope
        r = t.ternctl("show", "NoSuchId123", check=False)
        assert r.returncode == 1, (r.returncode, r.stdout)
        for args in ((), ("not-an-id",), (qid, qid)):
            r = t.ternctl("show", *args, check=False)
            assert r.returncode == 2, (args, r.returncode)


def test_queue_states_and_stats_with_deliver():
    with Instance(smtpd=False, conf=SLOW_RETRY) as t:
        with open(os.path.join(t.etc, "aliases"), "a") as f:
            f.write("team@example.test bob@example.test\n")
        t.ternctl("compile")
        qid = inject(t, "s@remote.test", ["alice@example.test", "team@example.test",
                                          "carol@remote.test", "nobody@example.test"],
                     qid="StatesOne")
        want = {"alice@example.test": "delivered", "team@example.test": "delivered",
                "bob@example.test": "delivered", "carol@remote.test": "deferred",
                "nobody@example.test": "bounced"}
        wait_until(lambda: rcpt_states(t, qid) == want and len(queue_json(t)) == 2
                   and all(r["state"] == "deferred" for m in queue_json(t)
                           if m["id"] != qid for r in m["rcpts"]),
                   20, "the recipients to settle")
        t1 = int(time.time())
        out = queue_json(t)
        (m,) = [m for m in out if m["id"] == qid]
        (report,) = [m for m in out if m["id"] != qid]
        rc = {r["addr"]: r for r in m["rcpts"]}
        assert rc["alice@example.test"]["next_try"] is None
        assert rc["alice@example.test"]["last_error"] is None
        assert rc["team@example.test"]["last_error"].startswith("expanded to "), rc
        assert "bob@example.test" in rc["team@example.test"]["last_error"], rc
        carol = rc["carol@remote.test"]
        assert isinstance(carol["next_try"], int), carol
        assert t1 + 45 * 60 <= carol["next_try"] <= t1 + 70 * 60, (carol, t1)  # 1h +- 10%
        assert carol["last_error"].startswith("4.4.0 "), carol
        assert rc["nobody@example.test"]["next_try"] is None
        assert rc["nobody@example.test"]["last_error"].startswith("5.1.1 "), rc
        # the bounce to the remote sender waits too
        assert report["sender"] == ""
        assert [r["addr"] for r in report["rcpts"]] == ["s@remote.test"]

        text = t.ternctl("queue").stdout
        assert re.search(r"^    deferred   <carol@remote\.test> next try in \d+s: 4\.4\.0 ",
                         text, re.M), text
        assert re.search(r"^    bounced    <nobody@example\.test>: 5\.1\.1 ", text, re.M), text
        assert re.search(r"^    delivered  <alice@example\.test>$", text, re.M), text

        t.stop_deliver()      # stats reads the spool and the counters file
        m = metrics(t.ternctl("stats").stdout)
        assert m["tern_queue_messages"] == 2, m
        assert m['tern_queue_recipients{state="pending"}'] == 0, m
        assert m['tern_queue_recipients{state="held"}'] == 0, m
        assert m['tern_queue_recipients{state="deferred"}'] == 2, m
        assert m['tern_queue_recipients{state="delivered"}'] == 3, m
        assert m['tern_queue_recipients{state="bounced"}'] == 1, m
        assert m['tern_deliveries_total{result="delivered"}'] == 2, m
        assert m['tern_deliveries_total{result="deferred"}'] == 2, m
        assert m['tern_deliveries_total{result="bounced"}'] == 1, m
        assert m["tern_queue_oldest_age_seconds"] >= 0


# ---- requests ----

def test_flush_with_deliver_running():
    with Instance(smtpd=False, conf=SLOW_RETRY) as t:
        for user in ("alice", "bob"):
            os.rename(t.maildir(user), t.maildir(user) + ".away")
        a = inject(t, "s@remote.test", ["alice@example.test"], qid="FlushA")
        b = inject(t, "s@remote.test", ["bob@example.test"], qid="FlushB")
        wait_state(t, a, "alice@example.test", "deferred")
        wait_state(t, b, "bob@example.test", "deferred")
        err = entry(t, a)["rcpts"][0]["last_error"]
        assert err.startswith("4.3.0 ") and "Maildir" in err, err
        for user in ("alice", "bob"):
            os.rename(t.maildir(user) + ".away", t.maildir(user))

        r = t.ternctl("flush", a)
        assert r.stdout == "flush: done\n", r.stdout
        (msg,) = t.wait_for_messages("alice", 1)
        assert msg.endswith(b"\n" + MESSAGE)
        wait_until(lambda: entry(t, a) is None, 20, "FlushA to leave the queue")
        assert rcpt_states(t, b) == {"bob@example.test": "deferred"}   # not named
        assert t.messages("bob") == []

        r = t.ternctl("flush")
        assert r.stdout == "flush: done\n", r.stdout
        t.wait_for_messages("bob", 1)
        t.wait_spool_empty()
        assert requests(t) == []

        r = t.ternctl("flush", "NoSuchId123")
        assert (r.returncode, r.stdout) == (0, "flush: done\n")
        assert "request_unknown verb=flush id=NoSuchId123" in t.log("deliver")
        r = t.ternctl("flush", "not-an-id", check=False)
        assert r.returncode == 1, r.returncode
        assert requests(t) == []


def test_flush_with_deliver_stopped_is_applied_at_start():
    with Instance(smtpd=False, conf=SLOW_RETRY) as t:
        os.rename(t.maildir("alice"), t.maildir("alice") + ".away")
        qid = inject(t, "s@remote.test", ["alice@example.test"], qid="FlushLater")
        wait_state(t, qid, "alice@example.test", "deferred")
        t.stop_deliver()
        os.rename(t.maildir("alice") + ".away", t.maildir("alice"))
        spool = snapshot(t.spool, skip=("control",))

        r = t.ternctl("flush")          # waits its 10 s, then says pending
        assert (r.returncode, r.stdout) == (0, "flush: " + PENDING + "\n"), \
            (r.returncode, r.stdout, r.stderr)
        (req,) = requests(t)
        with open(req) as f:
            assert f.read().split() == ["flush"]
        after = snapshot(t.spool, skip=("control",))      # ternctl changed nothing
        assert after == spool, sorted(k for k in set(spool) | set(after)
                                      if spool.get(k) != after.get(k))
        assert t.messages("alice") == []

        t.start_deliver()   # the harness only waits for the first run's "start"
        wait_until(lambda: t.log("deliver").count("start spool=") == 2
                   or t.deliver_proc.poll() is not None, 20, "tern-deliver to start again")
        assert t.deliver_proc.poll() is None, \
            "tern-deliver exited %r:\n%s" % (t.deliver_proc.poll(), t.log("deliver"))
        t.wait_for_messages("alice", 1)   # not in an hour: the waiting flush did it
        t.wait_spool_empty()
        assert requests(t) == []
        assert "request verb=flush" in t.log("deliver")


def test_hold_release_delete_bounce():
    with Instance(smtpd=False, conf=SLOW_RETRY) as t:
        held = inject(t, "alice@example.test", ["carol@remote.test"], qid="HoldMe")
        gone = inject(t, "alice@example.test", ["dave@remote.test"], qid="DeleteMe")
        back = inject(t, "alice@example.test", ["erin@remote.test"], qid="BounceMe")
        for qid, addr in ((held, "carol@remote.test"), (gone, "dave@remote.test"),
                          (back, "erin@remote.test")):
            wait_state(t, qid, addr, "deferred")

        assert t.ternctl("hold", held).stdout == "hold: done\n"
        (r,) = entry(t, held)["rcpts"]
        assert r["state"] == "held" and r["next_try"] is None, r
        m = metrics(t.ternctl("stats").stdout)
        assert m['tern_queue_recipients{state="held"}'] == 1, m

        assert t.ternctl("release", held).stdout == "release: done\n"
        # tried again at once: a second deferral of the same recipient
        wait_until(lambda: t.log("deliver").count("deferred id=%s rcpt=carol" % held) == 2,
                   20, "a second try of HoldMe")
        wait_state(t, held, "carol@remote.test", "deferred")

        assert t.ternctl("delete", gone).stdout == "delete: done\n"
        wait_until(lambda: entry(t, gone) is None, 20, "DeleteMe to go")

        assert t.ternctl("bounce", back).stdout == "bounce: done\n"
        (dsn,) = t.wait_for_messages("alice", 1)
        assert b"erin@remote.test" in dsn and b"returned to sender by the postmaster" in dsn
        assert b"dave@remote.test" not in dsn          # delete sent no bounce
        wait_until(lambda: entry(t, back) is None, 20, "BounceMe to go")
        assert [m["id"] for m in queue_json(t)] == [held]

        for verb in ("delete", "hold", "release", "bounce"):
            r = t.ternctl(verb, check=False)
            assert r.returncode == 2, (verb, r.returncode)
            r = t.ternctl(verb, held, "bad/id", check=False)
            assert r.returncode == 1, (verb, r.returncode)
        assert requests(t) == []
        assert rcpt_states(t, held) == {"carol@remote.test": "deferred"}
