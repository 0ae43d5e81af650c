"""Least privilege in local delivery (DESIGN.md promise 6), as far as this
release goes: outside an instance, tern-deliver running as root runs
tern-local as the Maildir's owner, and never as root."""
import contextlib
import os
import pwd
import shutil
import subprocess

from harness import Instance, Skip, install_tree, wait_until

TEST_USER = "terntestbox"


def make_user():
    if os.geteuid() != 0:
        raise Skip("needs root")
    subprocess.run(["userdel", TEST_USER], stderr=subprocess.DEVNULL)
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin",
                    TEST_USER], check=True)
    return pwd.getpwnam(TEST_USER)


def spool_owner():
    """tern-queue, who owns the spool outside an instance (as make install
    adds it)."""
    if subprocess.run(["id", "tern-queue"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "tern-queue"], check=True)
    return pwd.getpwnam("tern-queue")


def queue_as_owner(sbin):
    """tern-smtpd's environment: its tern-queue runs as the spool's owner,
    as the installed set-uid one does (this copy is not set-uid, so that
    it reads the instance's tern.conf)."""
    spool_owner()
    wrapper = os.path.join(os.path.dirname(sbin), "tern-queue-as-owner")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec setpriv --reuid=tern-queue --regid=tern-queue --init-groups "
                "%s\n" % os.path.join(sbin, "tern-queue"))
    os.chmod(wrapper, 0o755)
    return {"QMAILQUEUE": wrapper}


def installed_mode(t):
    """Turns the instance into an installed-style configuration, its spool
    owned by tern-queue (tern-deliver, started as root, works in it as
    tern-queue)."""
    with open(t.conf) as f:
        text = f.read().replace("instance = yes", "instance = no")
    with open(t.conf, "w") as f:
        f.write(text + "\nspool = ../spool\n")
    owner = spool_owner()
    chown_tree(t.spool, owner.pw_uid, owner.pw_gid)


def chown_tree(path, uid, gid):
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in files:
            os.chown(os.path.join(root, name), uid, gid)


@contextlib.contextmanager
def owned_by(user, sbin, rcpts):
    """An installed-style instance whose bob Maildir belongs to USER, with a
    message from alice to RCPTS sent."""
    with Instance(deliver=False, bindir=sbin, smtpd_env=queue_as_owner(sbin)) as t:
        installed_mode(t)
        chown_tree(t.maildir("bob"), user.pw_uid, user.pw_gid)
        t.start_deliver()
        with t.smtp() as s:
            s.sendmail("alice@example.test", rcpts, b"Subject: p\r\n\r\nx\r\n")
        yield t


def test_local_delivery_runs_as_the_maildir_owner():
    user = make_user()
    root, sbin = install_tree()
    try:
        with owned_by(user, sbin, ["bob@example.test"]) as t:
            t.wait_for_messages("bob", 1)
            new = os.path.join(t.maildir("bob"), "new")
            (name,) = os.listdir(new)
            st = os.stat(os.path.join(new, name))
            assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)
            t.wait_spool_empty()
    finally:
        subprocess.run(["userdel", TEST_USER], stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


def test_a_maildir_owned_by_root_is_never_delivered_as_root():
    if os.geteuid() != 0:
        raise Skip("needs root")
    root, sbin = install_tree()
    try:
        run_as_root_owned_maildir(sbin)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_as_root_owned_maildir(sbin):
    with Instance(deliver=False, bindir=sbin, smtpd_env=queue_as_owner(sbin)) as t:
        installed_mode(t)
        t.start_deliver()
        with t.smtp() as s:
            s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: p\r\n\r\nx\r\n")
        wait_until(lambda: "deferred id=" in t.log("deliver"), 20, "a deferral")
        assert "never root" in t.log("deliver")
        assert t.messages("bob") == []


# A tern-local worker that keeps what its first request's fd holds, all
# of it, and its uid, then reports a temporary failure.
SPY_WORKER = """#!/usr/bin/python3
import array, os, socket
sock = socket.socket(fileno=3)
packet, ancillary, _, _ = sock.recvmsg(16384, socket.CMSG_SPACE(4))
fd = array.array("i", ancillary[0][2][:4])[0]
data, offset = b"", 0
while True:
    chunk = os.pread(fd, 65536, offset)
    if not chunk:
        break
    data, offset = data + chunk, offset + len(chunk)
with open("%s/stdin", "wb") as f:
    f.write(data)
with open("%s/uid", "w") as f:
    f.write(str(os.getuid()))
sock.send(packet.split(b"\\0")[1] + b" 111 4.3.0 spy")
"""


def test_tern_local_as_the_owner_reads_the_message_only():
    # The spool file's envelope lists every recipient, Bcc included: a
    # tern-local running as one of them must get the message alone.
    # (Ported from a one-shot spy that read fd 0 to a worker that reads
    # the fd of its request: the same checks on what it could read.)
    user = make_user()
    root, sbin = install_tree()
    seen = os.path.join(root, "seen")
    os.mkdir(seen)
    os.chown(seen, user.pw_uid, user.pw_gid)
    spy = os.path.join(root, "libexec", "tern", "tern-local")
    with open(spy, "w") as f:
        f.write(SPY_WORKER % (seen, seen))
    os.chmod(spy, 0o755)
    try:
        with owned_by(user, sbin, ["bob@example.test", "secret@example.test"]) as t:
            wait_until(lambda: os.path.exists(os.path.join(seen, "uid")), 20, "the spy")
            with open(os.path.join(seen, "stdin"), "rb") as f:
                data = f.read()
            assert data.endswith(b"Subject: p\n\nx\n"), data
            assert b"secret@" not in data and b"rcpt " not in data and b"TERN1" not in data
            assert b"TERN2" not in data
            wait_until(lambda: open(os.path.join(seen, "uid")).read().strip(), 5, "uid")
            with open(os.path.join(seen, "uid")) as f:
                assert int(f.read()) == user.pw_uid
    finally:
        subprocess.run(["userdel", TEST_USER], stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


def test_a_users_symlink_cannot_borrow_another_identity():
    # bob's Maildir is a symlink that the mailbox user made, pointing into
    # another account's Maildir; written "Maildir/" as qmail users do.
    user = make_user()
    other = pwd.getpwnam("daemon")
    root, sbin = install_tree()
    try:
        with Instance(deliver=False, bindir=sbin, smtpd_env=queue_as_owner(sbin)) as t:
            installed_mode(t)
            target = os.path.join(t.dir, "daemon-maildir")
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(target, sub))
            chown_tree(target, other.pw_uid, other.pw_gid)
            os.chmod(target, 0o700)
            link = t.maildir("bob")
            shutil.rmtree(link)
            os.symlink(target, link)
            os.lchown(link, user.pw_uid, user.pw_gid)
            t.write_table("mailboxes", "bob@example.test ../mail/bob/Maildir/\n")
            t.start_deliver()
            with t.smtp() as s:
                s.sendmail("alice@example.test", ["bob@example.test"], b"Subject: p\r\n\r\nx\r\n")
            wait_until(lambda: "deferred id=" in t.log("deliver"), 20, "a deferral")
            assert os.listdir(os.path.join(target, "new")) == []
    finally:
        subprocess.run(["userdel", TEST_USER], stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


def test_a_bounce_from_a_root_started_tern_deliver_uses_its_tern_conf():
    """tern-deliver started as root with -C works as tern-queue; the
    tern-queue it runs for a bounce is then no set-id program, so it reads
    the same tern.conf and the bounce reaches the sender."""
    user = make_user()
    root, sbin = install_tree()
    try:
        with Instance(deliver=False, bindir=sbin, smtpd_env=queue_as_owner(sbin)) as t:
            installed_mode(t)
            chown_tree(t.maildir("bob"), user.pw_uid, user.pw_gid)
            with open(os.path.join(t.etc, "aliases")) as f:
                aliases = f.read()
            t.write_table("aliases", aliases + "lost@example.test nobody@example.test\n")
            t.start_deliver()
            with t.smtp() as s:
                s.sendmail("bob@example.test", ["lost@example.test"], b"Subject: b\r\n\r\nx\r\n")
            (report,) = t.wait_for_messages("bob", 1)
            assert b"nobody@example.test" in report and b"5.1.1" in report, report
            t.wait_spool_empty()
            assert "report=dsn" in t.log("deliver"), t.log("deliver")
    finally:
        subprocess.run(["userdel", TEST_USER], stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)
