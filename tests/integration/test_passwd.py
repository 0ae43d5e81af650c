"""ternctl passwd as an administrator uses it, and the owner, group and mode
every cdb takes from its text file.  See ternctl(8), tern-tables(5)."""
import grp
import os
import select
import stat
import struct
import subprocess
import warnings

import harness
from harness import Instance, Skip

TEST_GROUP = "tern-test-secret"


def cdb_get(path, key):
    """KEY's value in the cdb at PATH, or None (a reader of the format alone,
    so that the test does not trust tern's)."""
    key = key.encode()
    with open(path, "rb") as f:
        data = f.read()
    h = 5381
    for b in key:
        h = ((h * 33) ^ b) & 0xFFFFFFFF
    pos, slots = struct.unpack_from("<II", data, (h & 255) * 8)
    for i in range(slots):
        slot_hash, record = struct.unpack_from("<II", data, pos + ((h >> 8) + i) % slots * 8)
        if record == 0:
            return None
        klen, vlen = struct.unpack_from("<II", data, record)
        if slot_hash == h and data[record + 8:record + 8 + klen] == key:
            return data[record + 8 + klen:record + 8 + klen + vlen].decode()
    return None


def verifies(password, hashed):
    """Whether HASHED is crypt(3) of PASSWORD; Skip where Python has no crypt."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            raise Skip("no crypt module in this Python to verify the hash")
    return crypt.crypt(password, hashed) == hashed


def passwd(t, name, password, check=True):
    return t.ternctl("passwd", name, input=password, check=check)


def users_path(t):
    return os.path.join(t.etc, "users")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def owner(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def entries(t):
    return dict(line.split(None, 1) for line in read(users_path(t)).decode().splitlines()
                if line and not line.startswith("#"))


def test_creates_users_and_its_cdb():
    with Instance(smtpd=False, deliver=False) as t:
        os.unlink(users_path(t))
        os.unlink(users_path(t) + ".cdb")
        r = passwd(t, "alice", b"s3cret pass\n")
        assert r.stdout == "alice: password set\n" and r.stderr == "", (r.stdout, r.stderr)
        users = read(users_path(t)).decode()
        name, hashed = users.rstrip("\n").split(" ")
        assert name == "alice" and users.count("\n") == 1, users
        assert hashed.startswith("$y$") or hashed.startswith("$6$"), hashed
        # an instance: the caller's, private
        me = (os.geteuid(), os.getegid(), 0o600)
        assert owner(users_path(t)) == me, owner(users_path(t))
        assert owner(users_path(t) + ".cdb") == me
        assert cdb_get(users_path(t) + ".cdb", "alice") == hashed
        t.ternctl("check")
        assert verifies("s3cret pass", hashed)
        assert not verifies("s3cret pass\n", hashed)


def test_replacing_keeps_other_lines_and_comments():
    with Instance(smtpd=False, deliver=False) as t:
        text = ("# AUTH users\n\nbob $6$saltsalt$bobhash\n  # indented comment\n"
                "alice $6$old$oldhash\ncarol\t$6$c$carolhash\n")
        t.write_table("users", text)
        passwd(t, "alice", b"new one\r\n")
        after = read(users_path(t)).decode()
        alice = entries(t)["alice"]
        assert after == text.replace("$6$old$oldhash", alice), after
        assert verifies("new one", alice)
        cdb = users_path(t) + ".cdb"
        assert cdb_get(cdb, "alice") == alice
        assert cdb_get(cdb, "bob") == "$6$saltsalt$bobhash"
        assert cdb_get(cdb, "carol") == "$6$c$carolhash"
        # a new name is appended, the rest as it was
        passwd(t, "dave@example.test", b"x")
        dave = entries(t)["dave@example.test"]
        assert read(users_path(t)).decode() == after + "dave@example.test " + dave + "\n"
        assert cdb_get(cdb, "dave@example.test") == dave
        assert verifies("x", dave)


def test_refusals_change_nothing():
    with Instance(smtpd=False, deliver=False) as t:
        passwd(t, "alice", b"first\n")
        before = read(users_path(t)), read(users_path(t) + ".cdb")
        for name, password, code, said in (
                ("alice", b"\n", 1, "empty password refused"),
                ("alice", b"", 1, "no password given"),
                ("alice", b"\r\n", 1, "empty password refused"),
                ("alice", b"a\0b\n", 1, "NUL"),
                ("alice", b"x" * 512 + b"\n", 1, "longer than 511"),
                ("alice", b"x" * 512 + b"\r\n", 1, "longer than 511"),
                ("alice", b"x" * 5000, 1, "longer than 511"),
                ("a b", b"pw\n", 1, "user name 'a b' holds white space"),
                ("#alice", b"pw\n", 1, "starts with '#'"),
                ("tab\there", b"pw\n", 1, "white space or a control character"),
                ("x" * 256, b"pw\n", 1, "longer than 255"),
                ("-x", b"pw\n", 2, "usage: ternctl passwd NAME")):
            r = passwd(t, name, password, check=False)
            assert (r.returncode, r.stdout) == (code, ""), (name, password, r.returncode,
                                                           r.stdout, r.stderr)
            assert said in r.stderr, (name, r.stderr)
            assert (read(users_path(t)), read(users_path(t) + ".cdb")) == before, name
        r = t.ternctl("passwd", check=False)
        assert r.returncode == 2, r.returncode
        r = t.ternctl("passwd", "alice", "bob", check=False, input=b"pw\n")
        assert r.returncode == 2, r.returncode
        r = t.ternctl("passwd", "--help")
        assert r.stdout.startswith("usage: ternctl") and "passwd NAME" in r.stdout, r.stdout
        # 511 octets is still a password, with its CR LF too
        passwd(t, "alice", b"y" * 511 + b"\r\n")
        assert verifies("y" * 511, entries(t)["alice"])


def test_tables_that_do_not_compile_leave_users_as_it_was():
    with Instance(smtpd=False, deliver=False) as t:
        passwd(t, "alice", b"first\n")
        before = {n: read(os.path.join(t.etc, n)) for n in ("users", "users.cdb",
                                                             "aliases.cdb")}
        with open(os.path.join(t.etc, "aliases"), "a") as f:
            f.write("not@@an-address bob@example.test\n")
        r = passwd(t, "alice", b"second\n", check=False)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "aliases:" in r.stderr and "not@@an-address" in r.stderr, r.stderr
        assert "users and every cdb are as they were" in r.stderr, r.stderr
        after = {n: read(os.path.join(t.etc, n)) for n in before}
        assert after == before
        # a users that passwd would have made is not left behind either
        os.unlink(users_path(t))
        os.unlink(users_path(t) + ".cdb")
        r = passwd(t, "bob", b"pw\n", check=False)
        assert r.returncode == 1, r.returncode
        assert not os.path.exists(users_path(t))
        assert not os.path.exists(users_path(t) + ".cdb")


def test_users_of_another_kind_is_refused():
    with Instance(smtpd=False, deliver=False) as t:
        os.unlink(users_path(t))
        os.symlink(os.path.join(t.etc, "senders"), users_path(t))
        r = passwd(t, "alice", b"pw\n", check=False)
        assert r.returncode == 1 and "symbolic link" in r.stderr, (r.returncode, r.stderr)
        assert os.path.islink(users_path(t))


def need_root():
    if os.geteuid() != 0:
        raise Skip("needs root (chown to another group)")


def make_group():
    subprocess.run(["groupdel", TEST_GROUP], stderr=subprocess.DEVNULL)
    harness.run(["groupadd", TEST_GROUP])
    return grp.getgrnam(TEST_GROUP).gr_gid


def test_passwd_and_compile_keep_the_owner_and_group():
    """The issue's case: a 0640 root:tern-smtpd users must give a users.cdb
    of the same, or tern-smtpd cannot read it and every AUTH gets 454."""
    need_root()
    gid = make_group()
    try:
        with Instance(smtpd=False, deliver=False) as t:
            os.chown(users_path(t), 0, gid)
            os.chmod(users_path(t), 0o640)
            passwd(t, "alice", b"pw\n")
            assert owner(users_path(t)) == (0, gid, 0o640)
            assert owner(users_path(t) + ".cdb") == (0, gid, 0o640)
            os.unlink(users_path(t) + ".cdb")
            t.ternctl("compile")
            assert owner(users_path(t) + ".cdb") == (0, gid, 0o640)
            # the other tables keep theirs too
            assert owner(os.path.join(t.etc, "domains.cdb")) == (0, 0, 0o644)
    finally:
        subprocess.run(["groupdel", TEST_GROUP], stderr=subprocess.DEVNULL)


def as_nobody(t, *args, input=None):
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           t.program("ternctl"), "-C", t.conf] + list(args), input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_an_owner_that_cannot_be_kept_replaces_nothing():
    """Not root, ternctl cannot give a file away: rather than a users.cdb
    owned by the wrong user, nothing is replaced."""
    need_root()
    with Instance(smtpd=False, deliver=False) as t:
        passwd(t, "alice", b"pw\n")
        nobody = (int(subprocess.check_output(["id", "-u", "nobody"])),
                  int(subprocess.check_output(["id", "-g", "nobody"])))
        for folder, _, files in os.walk(t.etc):
            for name in [folder] + [os.path.join(folder, f) for f in files]:
                os.chown(name, *nobody)
        os.chown(users_path(t), 0, 0)
        os.chmod(users_path(t), 0o644)
        before = {n: read(os.path.join(t.etc, n)) for n in os.listdir(t.etc)
                  if n.endswith(".cdb") or n == "users"}
        r = as_nobody(t, "compile")
        assert r.returncode == 111, (r.returncode, r.stderr)
        assert b"users: cannot give users.cdb its owner 0:0 and mode 644" in r.stderr, r.stderr
        r = as_nobody(t, "passwd", "alice", input=b"other\n")
        assert r.returncode == 111, (r.returncode, r.stderr)
        after = {n: read(os.path.join(t.etc, n)) for n in before}
        assert after == before
        assert not [n for n in os.listdir(t.etc) if n.endswith(".tmp")], os.listdir(t.etc)


def test_a_new_users_where_installed():
    """instance = no: a new users is 0640 root:tern-smtpd when that group
    exists, else 0600."""
    need_root()
    with Instance(smtpd=False, deliver=False) as t:
        with open(t.conf) as f:
            conf = f.read().replace("instance = yes\n", "instance = no\n")
        with open(t.conf, "w") as f:
            f.write(conf)
        os.unlink(users_path(t))
        passwd(t, "alice", b"pw\n")
        try:
            want = (0, grp.getgrnam("tern-smtpd").gr_gid, 0o640)
        except KeyError:
            want = (0, os.getegid(), 0o600)
        assert owner(users_path(t)) == want, owner(users_path(t))
        assert owner(users_path(t) + ".cdb") == want


def on_terminal(t, name, answers):
    """Runs ternctl passwd NAME with a terminal as stdin and stderr, giving
    each of ANSWERS after the prompt it waits for; returns (exit status,
    everything the terminal showed)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([t.program("ternctl"), "-C", t.conf, "passwd", name],
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    shown = b""
    try:
        for prompt, answer in answers:
            while not shown.endswith(prompt):
                # a safety net against a hang, not a timed assertion
                ready, _, _ = select.select([master], [], [], 30)
                assert ready, "no prompt %r after %r" % (prompt, shown)
                chunk = os.read(master, 4096)
                assert chunk, shown
                shown += chunk
            os.write(master, answer)
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:	# EIO: the other end is closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        code = proc.wait()
        os.close(master)
    return code, shown


def test_on_a_terminal_asks_twice_without_echo():
    with Instance(smtpd=False, deliver=False) as t:
        ask = b"New password for alice: "
        code, shown = on_terminal(t, "alice", [(ask, b"tty secret\n"),
                                               (b"Again: ", b"tty secret\n")])
        assert code == 0, shown
        assert b"tty secret" not in shown and b"alice: password set" in shown, shown
        assert verifies("tty secret", entries(t)["alice"])
        before = read(users_path(t))
        code, shown = on_terminal(t, "alice", [(ask, b"one\n"), (b"Again: ", b"two\n")])
        assert code == 1 and b"the passwords differ" in shown, (code, shown)
        code, shown = on_terminal(t, "alice", [(ask, b"\n")])
        assert code == 1 and b"empty password refused" in shown, (code, shown)
        assert read(users_path(t)) == before
