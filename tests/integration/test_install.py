"""The rules of the wrong account: system accounts at RCPT and the
delimiter.  All of it needs root (it adds test users)."""
import atexit
import contextlib
import glob
import os
import pwd
import grp
import re
import shutil
import signal
import smtplib
import stat
import subprocess
import tempfile

import harness
from harness import Instance, Skip, free_port, run, wait_until

BOX = "terni6box"        # a plain mailbox, its Maildir its own
GROUPED = "terni6grp"    # a Maildir owned GROUPED:root, folders via SUPPLEMENTARY
SUPPLEMENTARY = "terni6sup"
SPOOL_FOLDERS = ("tmp", "incoming", "queue", "state", "control")
SOURCES = ("Makefile", "lib", "queue", "smtpd", "deliver", "tools", "man", "etc")


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root")


def add_user(name, home="/nonexistent"):
    subprocess.run(["userdel", name], stderr=subprocess.DEVNULL)
    subprocess.run(["groupdel", name], stderr=subprocess.DEVNULL)
    run(["useradd", "-M", "-U", "-d", home, "-s", "/usr/sbin/nologin", name])
    return pwd.getpwnam(name)


def remove_user(name):
    subprocess.run(["userdel", name], stderr=subprocess.DEVNULL)
    subprocess.run(["groupdel", name], stderr=subprocess.DEVNULL)


def make_maildir(path, uid, gid, sub_owner=None, sub_mode=0o700):
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(path, sub))
        os.chown(os.path.join(path, sub), *(sub_owner or (uid, gid)))
        os.chmod(os.path.join(path, sub), sub_mode)
    os.chown(path, uid, gid)
    os.chmod(path, 0o700)


def as_user(name, args):
    """Runs ARGS as NAME with NAME's group and no other."""
    return subprocess.run(["setpriv", "--reuid=" + name, "--regid=" + name, "--clear-groups"]
                          + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# ---- system accounts at RCPT (an instance; root to add accounts) ----

@contextlib.contextmanager
def system_accounts(*names, conf=None):
    """Accounts NAMES, each with a home and Maildir of its own, a
    `system` domain sys.test, and an instance to send with."""
    need_root()
    homes = tempfile.mkdtemp(prefix="tern-i6-homes-")
    os.chmod(homes, 0o755)
    try:
        users = {}
        for name in names:
            home = os.path.join(homes, name)
            os.mkdir(home)
            users[name] = add_user(name, home)
            os.chown(home, users[name].pw_uid, users[name].pw_gid)
            make_maildir(os.path.join(home, "Maildir"), users[name].pw_uid,
                         users[name].pw_gid)
        with Instance(conf=conf) as t:
            t.write_table("domains", "example.test\nsys.test system\n")
            yield t, homes
    finally:
        for name in names:
            remove_user(name)
        shutil.rmtree(homes, ignore_errors=True)


def rcpt_codes(t, addrs):
    with t.smtp() as s:
        s.ehlo()
        assert s.docmd("MAIL FROM:<sender@remote.test>")[0] == 250
        return [s.docmd("RCPT TO:<%s>" % a) for a in addrs]


def new_mail(homes, name):
    return glob.glob(os.path.join(homes, name, "Maildir", "new", "*"))


def test_the_whole_local_part_is_an_account_before_the_delimiter_split():
    with system_accounts("terni6w", "terni6w-data", conf="recipient_delimiter = -") as (t, homes):
        with open(t.conf) as f:
            assert "recipient_delimiter = -" in f.read()
        with t.smtp() as s:
            s.sendmail("sender@remote.test", ["terni6w-data@sys.test"], b"Subject: a\r\n\r\nx\r\n")
        (m,) = wait_until(lambda: new_mail(homes, "terni6w-data"), 20, "the delivery")
        with open(m, "rb") as f:
            assert b"Delivered-To: terni6w-data@sys.test\n" in f.read()
        assert new_mail(homes, "terni6w") == []
        # the delimiter still works for what is not an account
        with t.smtp() as s:
            s.sendmail("sender@remote.test", ["terni6w-tag@sys.test"], b"Subject: b\r\n\r\nx\r\n")
        wait_until(lambda: new_mail(homes, "terni6w"), 20, "the tagged delivery")
        assert len(new_mail(homes, "terni6w-data")) == 1


def test_accounts_that_can_never_take_mail_are_refused_at_rcpt():
    with system_accounts("terni6ok", "terni6roothome") as (t, homes):
        os.chown(os.path.join(homes, "terni6roothome"), 0, 0)
        nohome = add_user("terni6nohome", os.path.join(homes, "missing"))
        try:
            replies = rcpt_codes(t, ["root@sys.test", "terni6nohome@sys.test",
                                     "terni6roothome@sys.test", "terni6ok@sys.test"])
            for code, text in replies[:3]:
                assert code == 550 and b"5.1.1" in text, replies
            assert replies[3][0] == 250, replies
            # root's mail goes through aliases
            t.write_table("aliases", "root@sys.test terni6ok@sys.test\n")
            assert rcpt_codes(t, ["root@sys.test"])[0][0] == 250
            with t.smtp() as s:
                s.sendmail("sender@remote.test", ["root@sys.test"], b"Subject: r\r\n\r\nx\r\n")
            wait_until(lambda: new_mail(homes, "terni6ok"), 20, "root's mail")
        finally:
            remove_user(nohome.pw_name)
