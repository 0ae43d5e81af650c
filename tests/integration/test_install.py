"""An installed tern (make install with PREFIX, CONFDIR, SPOOLDIR and
LIBEXECDIR under a temporary folder, no DESTDIR, the real set-uid
tern-queue) takes mail: tern-smtpd as tern-smtpd, tern-deliver started as
root, and the spool owned by tern-queue.  Also the rules of the wrong
account: system accounts at RCPT, the delimiter, and tern-local's groups.
All of it needs root (it adds the tern users and test users)."""
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
import time

import harness
import spool_format
from harness import Instance, Skip, free_port, run, wait_until

BOX = "terni6box"        # a plain mailbox, its Maildir its own
GROUPED = "terni6grp"    # a Maildir owned GROUPED:root, folders via SUPPLEMENTARY
SUPPLEMENTARY = "terni6sup"
SPOOL_FOLDERS = ("tmp", "mess", "incoming", "queue", "state", "control")
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


class Installed:
    """One make install under a temporary folder, its servers running."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="tern-i6-")
        os.chmod(self.root, 0o755)
        self.prefix = os.path.join(self.root, "usr")
        self.confdir = os.path.join(self.root, "etc", "tern")
        self.spool = os.path.join(self.root, "spool")
        self.libexec = os.path.join(self.prefix, "libexec", "tern")
        self.sbin = os.path.join(self.prefix, "sbin")
        self.conf = os.path.join(self.confdir, "tern.conf")
        self.mail = os.path.join(self.root, "mail")
        self.deliver_log = os.path.join(self.root, "deliver.log")
        self.smtpd_log = os.path.join(self.root, "smtpd.log")
        self.deliver_proc = self.smtpd_proc = None
        self.port = None
        self.deferred = None

    # ---- make install, after a default build (paths.stamp) ----
    def build_and_install(self):
        src = os.path.join(self.root, "src")
        os.mkdir(src)
        for name in SOURCES:
            copy = shutil.copytree if os.path.isdir(os.path.join(harness.ROOT, name)) \
                else shutil.copy2
            copy(os.path.join(harness.ROOT, name), os.path.join(src, name))
        # the build made with the default paths, timestamps kept: only the
        # stamp can tell make that its objects name the host's folders
        flavour = ["SANITIZE=1"] if harness.SANITIZED else []
        target = os.path.join(src, "build", "asan") if harness.SANITIZED \
            else os.path.join(src, "build")
        shutil.copytree(harness.BUILD, target, symlinks=True,
                        ignore=shutil.ignore_patterns("asan", "fuzz"))
        run(["make", "-s", "-C", src] + flavour +
            ["PREFIX=" + self.prefix, "CONFDIR=" + self.confdir, "SPOOLDIR=" + self.spool,
             "LIBEXECDIR=" + self.libexec, "install"])
        shutil.rmtree(src)

    def configure(self):
        with open(self.conf, "w") as f:
            f.write("hostname = mx.example.test\ndns_server = 127.0.0.1:%d\n"
                    "retry_first = 1s\nretry_max = 1s\n" % free_port())
        self.write_table("domains", "example.test\n")
        self.write_table("aliases", "postmaster@example.test %s@example.test\n" % BOX)
        self.write_table("mailboxes", "".join(
            "%s@example.test %s\n" % (user, os.path.join(self.mail, user, "Maildir"))
            for user in (BOX, GROUPED, "nomaildir")))

    def write_table(self, name, text):
        with open(os.path.join(self.confdir, name), "w") as f:
            f.write(text)

    def make_mailboxes(self):
        os.makedirs(self.mail)
        os.chmod(self.mail, 0o755)
        box = add_user(BOX)
        os.mkdir(os.path.join(self.mail, BOX))
        os.chmod(os.path.join(self.mail, BOX), 0o755)
        make_maildir(self.maildir(BOX), box.pw_uid, box.pw_gid)
        # GROUPED's Maildir has group root, and its folders belong to
        # root:SUPPLEMENTARY: only the account's own groups reach them
        subprocess.run(["groupdel", SUPPLEMENTARY], stderr=subprocess.DEVNULL)
        run(["groupadd", SUPPLEMENTARY])
        grouped = add_user(GROUPED)
        run(["usermod", "-a", "-G", SUPPLEMENTARY, GROUPED])
        sup = grp.getgrnam(SUPPLEMENTARY).gr_gid
        os.mkdir(os.path.join(self.mail, GROUPED))
        os.chmod(os.path.join(self.mail, GROUPED), 0o755)
        make_maildir(self.maildir(GROUPED), grouped.pw_uid, 0, sub_owner=(0, sup),
                     sub_mode=0o770)

    def maildir(self, user):
        return os.path.join(self.mail, user, "Maildir")

    # ---- servers ----
    def env(self):
        env = dict(os.environ)
        env.pop("TERN_CONFIG", None)   # the compiled-in CONFDIR, as installed
        return harness.sanitizer_env(env) if harness.SANITIZED else env

    def start(self):
        self.run_ternctl("compile")
        with open(self.deliver_log, "ab") as log:
            self.deliver_proc = subprocess.Popen(
                [os.path.join(self.sbin, "tern-deliver")], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, env=self.env())
        wait_until(lambda: "start spool=" in self.log("deliver")
                   or self.deliver_proc.poll() is not None, 20, "tern-deliver to start")
        assert self.deliver_proc.poll() is None, self.log("deliver")
        smtpd = pwd.getpwnam("tern-smtpd")
        self.port = free_port()
        with open(self.smtpd_log, "ab") as log:
            self.smtpd_proc = subprocess.Popen(
                ["tcpserver", "-H", "-R", "-l", "localhost", "-u", str(smtpd.pw_uid),
                 "-g", str(smtpd.pw_gid), "-c", "20", "-b", "20", "127.0.0.1",
                 str(self.port), os.path.join(self.sbin, "tern-smtpd")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                env=self.env(), start_new_session=True)
        wait_until(self.listening, 10, "tcpserver to listen")

    def listening(self):
        try:
            with smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test",
                              timeout=5) as s:
                s.noop()
            return True
        except OSError:
            return False

    def run_ternctl(self, *args):
        return run([os.path.join(self.sbin, "ternctl")] + list(args), env=self.env())

    def stop(self):
        if self.smtpd_proc is not None and self.smtpd_proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.smtpd_proc.pid, signal.SIGTERM)
            self.smtpd_proc.wait()
        if self.deliver_proc is not None and self.deliver_proc.poll() is None:
            self.deliver_proc.send_signal(signal.SIGTERM)
            self.deliver_proc.wait(timeout=30)

    def close(self):
        self.stop()
        for name in (BOX, GROUPED):
            remove_user(name)
        subprocess.run(["groupdel", SUPPLEMENTARY], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self, which):
        return harness.read_log(self.smtpd_log if which == "smtpd" else self.deliver_log)

    def sanitizer_reports(self):
        return harness.sanitizer_lines(self.log("smtpd") + self.log("deliver"))

    # ---- clients ----
    def send(self, rcpt):
        """One message to RCPT; returns its queue id from the 250 reply."""
        with smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test",
                          timeout=30) as s:
            s.ehlo()
            assert s.docmd("MAIL FROM:<sender@remote.test>")[0] == 250
            code, reply = s.docmd("RCPT TO:<%s>" % rcpt)
            assert code == 250, (code, reply)
            code, reply = s.data(b"Subject: installed\r\n\r\nhello\r\n")
            assert code == 250, (code, reply, self.log("smtpd"))
            return re.search(rb"queued as (\w+)", reply).group(1).decode()

    def messages(self, user):
        return glob.glob(os.path.join(self.maildir(user), "new", "*"))


_installed = None


def installed():
    """The installation the tests below share, made once (removed at exit)."""
    global _installed
    need_root()
    if _installed is None:
        inst = Installed()
        atexit.register(inst.close)
        inst.build_and_install()
        inst.configure()
        inst.make_mailboxes()
        inst.start()
        _installed = inst
    assert not _installed.sanitizer_reports(), _installed.sanitizer_reports()
    return _installed


def test_make_install_compiles_in_the_given_paths():
    t = installed()
    queue = os.path.join(t.sbin, "tern-queue")
    st = os.stat(queue)
    assert st.st_uid == pwd.getpwnam("tern-queue").pw_uid
    assert st.st_mode & stat.S_ISUID and stat.S_IMODE(st.st_mode) == 0o4711, oct(st.st_mode)
    text = run(["strings", queue]).stdout.splitlines()
    assert t.confdir + "/tern.conf" in text, "CONFDIR not compiled in"
    assert t.spool in text, "SPOOLDIR not compiled in"
    for line in text:
        assert not line.startswith(("/etc/tern", "/var/spool/tern", "/usr/local")), line


def test_an_installed_tern_takes_mail():
    t = installed()
    t.send(BOX + "@example.test")
    (path,) = wait_until(lambda: t.messages(BOX), 30, "the delivery")
    with open(path, "rb") as f:
        assert f.read().endswith(b"Subject: installed\n\nhello\n")
    box = pwd.getpwnam(BOX)
    assert os.stat(path).st_uid == box.pw_uid
    wait_until(lambda: "delivered id=" in t.log("deliver"), 20, "the delivered line")


def test_the_spool_is_tern_queues_and_closed_to_tern_smtpd():
    t = installed()
    owner = pwd.getpwnam("tern-queue")
    wait_until(lambda: os.path.exists(os.path.join(t.spool, "control", "counters")), 30,
               "the counters")
    top = os.stat(t.spool)
    assert (top.st_uid, top.st_gid) == (owner.pw_uid, owner.pw_gid)
    assert stat.S_IMODE(top.st_mode) & 0o077 in (0, 0o011), oct(top.st_mode)
    for name in SPOOL_FOLDERS:
        st = os.stat(os.path.join(t.spool, name))
        assert st.st_uid == owner.pw_uid and stat.S_IMODE(st.st_mode) == 0o700, \
            (name, st.st_uid, oct(st.st_mode))
    trigger = os.lstat(os.path.join(t.spool, "trigger"))
    assert stat.S_ISFIFO(trigger.st_mode) and trigger.st_uid == owner.pw_uid
    for name in ("counters", "deliver.lock"):
        st = os.stat(os.path.join(t.spool, "control", name))
        assert st.st_uid == owner.pw_uid, (name, st.st_uid)
    # tern-smtpd can list and read nothing there
    assert as_user("tern-smtpd", ["ls", t.spool]).returncode != 0
    for name in SPOOL_FOLDERS:
        r = as_user("tern-smtpd", ["ls", os.path.join(t.spool, name)])
        assert r.returncode != 0 and b"denied" in r.stderr, (name, r)
    r = as_user("tern-smtpd", ["cat", os.path.join(t.spool, "control", "counters")])
    assert r.returncode != 0 and b"denied" in r.stderr, r


def deferred_message(t):
    """The id of a message kept in the spool, deferred (made once)."""
    if t.deferred is None:
        t.deferred = t.send("nomaildir@example.test")   # no Maildir: deferred
        state = os.path.join(t.spool, "state", t.deferred)
        wait_until(lambda: os.path.exists(state), 30, "a state file")
    return t.deferred


def test_a_deferred_message_is_the_spool_owners():
    t = installed()
    owner = pwd.getpwnam("tern-queue")
    qid = deferred_message(t)
    assert os.stat(os.path.join(t.spool, "state", qid)).st_uid == owner.pw_uid
    assert os.stat(os.path.join(t.spool, "queue", qid)).st_uid == owner.pw_uid
    assert "deferred id=%s" % qid in t.log("deliver")


def test_a_taken_queue_id_is_refused_by_the_set_uid_tern_queue():
    t = installed()
    qid = deferred_message(t)
    # the set-uid tern-queue, run as tern-smtpd, with that id: refused
    before = {n: sorted(os.listdir(os.path.join(t.spool, n))) for n in SPOOL_FOLDERS[:4]}
    read_end, write_end = os.pipe()
    os.write(write_end, b"Fsender@remote.test\0T%s@example.test\0\0" % BOX.encode())
    os.close(write_end)
    env = t.env()
    env["TERN_QID"] = qid
    proc = subprocess.run(["setpriv", "--reuid=tern-smtpd", "--regid=tern-smtpd",
                           "--clear-groups", os.path.join(t.sbin, "tern-queue")],
                          input=b"Subject: again\n\nx\n", stdout=read_end,
                          stderr=subprocess.PIPE, env=env)
    os.close(read_end)
    assert proc.returncode == 71, (proc.returncode, proc.stderr)
    after = {n: sorted(os.listdir(os.path.join(t.spool, n))) for n in SPOOL_FOLDERS[:4]}
    assert after == before, (before, after)


def test_root_s_ternctl_requests_reach_tern_deliver():
    t = installed()
    qid = deferred_message(t)
    # written by root (with a umask that would make it root's alone),
    # applied by tern-deliver working as tern-queue
    saved = os.umask(0o077)
    try:
        t.run_ternctl("delete", qid)
    finally:
        os.umask(saved)
    wait_until(lambda: not os.path.exists(os.path.join(t.spool, "queue", qid)), 30,
               "the deletion")
    assert not os.path.exists(os.path.join(t.spool, "state", qid))
    assert [n for n in os.listdir(os.path.join(t.spool, "control"))
            if n.startswith("request.")] == []


def test_tern_local_runs_with_the_owners_groups_not_the_maildirs():
    t = installed()
    user = pwd.getpwnam(GROUPED)
    t.send(GROUPED + "@example.test")
    (path,) = wait_until(lambda: t.messages(GROUPED), 30, "the delivery")
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), (st.st_uid, st.st_gid)
    assert st.st_gid != 0


def test_a_spool_owned_by_someone_else_is_refused_at_start():
    t = installed()
    other = os.path.join(t.root, "other")
    os.makedirs(os.path.join(other, "spool"))
    conf = os.path.join(other, "tern.conf")
    with open(conf, "w") as f:
        f.write("hostname = mx.example.test\ndns_server = 127.0.0.1:%d\nspool = spool\n"
                % free_port())
    r = run([os.path.join(t.sbin, "tern-deliver"), "-C", conf], check=False, env=t.env())
    assert r.returncode == 111, r
    assert "owned by uid 0, not tern-queue (chown -R tern-queue:" in r.stderr, r.stderr
    assert os.listdir(os.path.join(other, "spool")) == []


def test_the_queue_service_runs_as_tern_queue_and_takes_tern_smtpds_mail():
    t = installed()
    owner = pwd.getpwnam("tern-queue")
    smtpd = pwd.getpwnam("tern-smtpd")

    def service():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
                with open("/proc/%s/status" % pid) as f:
                    status = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
            except OSError:
                continue
            if b"--service" in argv and int(status["PPid"]) == t.deliver_proc.pid:
                return int(pid), status
        return None
    pid, status = wait_until(service, 20, "the queue service")
    # real, effective, saved and file-system ids: tern-queue's, never root
    assert status["Uid"].split() == [str(owner.pw_uid)] * 4, status["Uid"]
    assert status["Gid"].split() == [str(owner.pw_gid)] * 4, status["Gid"]
    public = os.stat(os.path.join(t.spool, "public"))
    assert public.st_uid == owner.pw_uid and stat.S_IMODE(public.st_mode) == 0o711
    sock = os.lstat(os.path.join(t.spool, "public", "queue"))
    assert stat.S_ISSOCK(sock.st_mode) and sock.st_uid == owner.pw_uid
    assert stat.S_IMODE(sock.st_mode) == 0o666
    r = as_user("tern-smtpd", ["ls", os.path.join(t.spool, "public")])
    assert r.returncode != 0 and b"denied" in r.stderr, r
    # tern-smtpd's message goes through it: the service names tern-smtpd's uid
    qid = t.send(BOX + "@example.test")
    wait_until(lambda: "tern-queue[%d]: accepted id=%s uid=%d " % (pid, qid, smtpd.pw_uid)
               in t.log("deliver"), 20, "the service's accepted line")


def test_the_installed_servers_stop_cleanly():
    t = installed()
    t.stop()
    assert t.deliver_proc.returncode == 0, t.log("deliver")
    assert "stop spool=" in t.log("deliver")
    assert not t.sanitizer_reports(), t.sanitizer_reports()


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


def test_a_spool_of_the_format_before_is_delivered_after_the_upgrade():
    # TERN1 files (message and envelope in one file) and state files, as
    # tern-queue and a root-run tern-deliver wrote them before mess/ came
    # (tests/integration/spool_format.py writes their bytes), owned by
    # tern-queue: after the upgrade each recipient still due gets it once,
    # as the Maildir's owner, and what was delivered is not sent again.
    t = installed()
    t.stop()
    owner = pwd.getpwnam("tern-queue")
    ids = (owner.pw_uid, owner.pw_gid)
    now = int(time.time())
    old = b"Subject: queued before the upgrade\n\nold body %d\n"
    before = {user: set(t.messages(user)) for user in (BOX, GROUPED)}
    box, grouped = "%s@example.test" % BOX, "%s@example.test" % GROUPED
    spool_format.write_tern1(t.spool, "queue", "Upgrade1", old % 1, "s@remote.test",
                             [box, grouped], now - 600, owner=ids)
    spool_format.write_file(os.path.join(t.spool, "state", "Upgrade1"), spool_format.state_file(
        [("deferred", now - 60, 1, box, box, "4.2.0 over quota"),
         ("delivered", 0, 1, grouped, grouped, "")]), owner=ids)
    spool_format.write_tern1(t.spool, "incoming", "Upgrade2", old % 2, "",
                             [box, grouped], now - 300, owner=ids)
    t.start()
    wait_until(lambda: len(set(t.messages(BOX)) - before[BOX]) >= 2
               and len(set(t.messages(GROUPED)) - before[GROUPED]) >= 1, 30,
               "the old messages")
    for qid in ("Upgrade1", "Upgrade2"):
        wait_until(lambda: "removed id=%s" % qid in t.log("deliver"), 20, "removal")
        for folder in ("incoming", "queue", "mess", "state"):
            assert not os.path.exists(os.path.join(t.spool, folder, qid)), (folder, qid)
    got = {}
    for user in (BOX, GROUPED):
        got[user] = []
        for path in sorted(set(t.messages(user)) - before[user]):
            st = os.stat(path)
            assert st.st_uid == pwd.getpwnam(user).pw_uid, (path, st.st_uid)
            with open(path, "rb") as f:
                got[user].append(f.read())
    assert sorted(m.split(b"\n\n", 1)[1] for m in got[BOX]) == [b"old body 1\n",
                                                                b"old body 2\n"], got
    assert [m.split(b"\n\n", 1)[1] for m in got[GROUPED]] == [b"old body 2\n"], got
    for m in got[BOX] + got[GROUPED]:
        assert b"rcpt " not in m and b"TERN1" not in m, m
