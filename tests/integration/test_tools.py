"""The tools' edges: ternctl init with many names, ternctl queue --json
with bytes that are not UTF-8, and tern-queue refusing such addresses.
See ternctl(8) and tern-queue(8)."""
import glob
import json
import os
import shutil
import tempfile

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
