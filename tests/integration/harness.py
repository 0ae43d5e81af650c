"""Test harness: real tern instances on loopback, driven by real clients.

Every instance is made by `ternctl init` in a temporary folder, runs
tern-smtpd under tcpserver (-H -R -l localhost) on a free 127.0.0.1 port and
tern-deliver in the background, and sets dns_server on loopback.  Nothing
here talks to any address outside 127.0.0.0/8, and only .test domains
are used.
"""
import contextlib
import glob
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("TERN_BUILD", os.path.join(ROOT, "build")))
SANITIZED = os.path.basename(BUILD) == "asan"
FAULT_SHIM = os.path.join(BUILD, "fault-shim.so")


class Skip(Exception):
    """Raise to skip a test, with the reason."""


def program(name):
    return os.path.join(BUILD, name)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=20.0, what="condition"):
    """Polls PREDICATE until true; raises AssertionError after TIMEOUT."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def tls_client_context():
    """A client's TLS context that takes the self-signed certificate of an
    instance (`ternctl init` makes one)."""
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def sanitizer_env(env):
    env = dict(env)
    env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


class Instance:
    """One tern instance: config, tables, spool, Maildirs, and its servers."""

    def __init__(self, domains=("example.test", "other.test"), users=("alice", "bob"),
                 conf=None, deliver=True, smtpd=True, smtpd_env=None, hostname=None,
                 bindir=None, smtpd_args=()):
        self.bindir = bindir or BUILD
        self.dir = tempfile.mkdtemp(prefix="tern-test-")
        os.chmod(self.dir, 0o755)
        self.domains = list(domains)
        self.users = list(users)
        args = [self.program("ternctl"), "init", self.dir]
        for d in domains:
            args += ["--domain", d]
        for u in users:
            args += ["--user", u]
        if hostname:
            args += ["--hostname", hostname]
        run(args)
        self.etc = os.path.join(self.dir, "etc")
        self.conf = os.path.join(self.etc, "tern.conf")
        self.spool = os.path.join(self.dir, "spool")
        if conf:
            self.add_conf(conf)
        self.port = None
        self.smtpd_proc = None
        self.deliver_proc = None
        self.smtpd_log = os.path.join(self.dir, "smtpd.log")
        self.deliver_log = os.path.join(self.dir, "deliver.log")
        self.smtpd_env = dict(smtpd_env or {})
        self.smtpd_args = list(smtpd_args)  # tern-smtpd's flags: --tls, --submission
        if smtpd:
            self.start_smtpd()
        if deliver:
            self.start_deliver()

    def program(self, name):
        return os.path.join(self.bindir, name)

    # ---- configuration ----
    def add_conf(self, text):
        with open(self.conf, "a") as f:
            f.write("\n" + text.strip() + "\n")

    def write_table(self, name, text, compile=True):
        with open(os.path.join(self.etc, name), "w") as f:
            f.write(text)
        if compile:
            self.ternctl("compile")

    def ternctl(self, *args, check=True, input=None):
        return run([self.program("ternctl"), "-C", self.conf] + list(args), check=check,
                   input=input)

    # ---- servers ----
    def env(self, extra=None):
        env = dict(os.environ)
        env["TERN_CONFIG"] = self.conf
        env.update(extra or {})
        return sanitizer_env(env) if SANITIZED else env

    def start_smtpd(self, extra_env=None):
        self.port = free_port()
        env = self.env(dict(self.smtpd_env, **(extra_env or {})))
        log = open(self.smtpd_log, "ab")
        self.smtpd_proc = subprocess.Popen(
            ["tcpserver", "-H", "-R", "-l", "localhost", "-c", "200", "-b", "200",
             "127.0.0.1", str(self.port), self.program("tern-smtpd"), "-C", self.conf]
            + self.smtpd_args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=env,
            start_new_session=True)
        log.close()
        wait_until(self._listening, 10, "tcpserver to listen")

    def _listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                if "--tls" not in self.smtpd_args:  # that one waits for a handshake
                    s.recv(100)
            return True
        except OSError:
            return False

    def stop_smtpd(self):
        if self.smtpd_proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.smtpd_proc.pid, signal.SIGTERM)
            self.smtpd_proc.wait()
            self.smtpd_proc = None

    def start_deliver(self, extra_env=None):
        starts = self.log("deliver").count("start spool=")
        log = open(self.deliver_log, "ab")
        self.deliver_proc = subprocess.Popen(
            [self.program("tern-deliver"), "-C", self.conf], stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, env=self.env(extra_env))
        log.close()
        wait_until(lambda: self.log("deliver").count("start spool=") > starts, 10, "tern-deliver to start")

    def stop_deliver(self, sig=signal.SIGTERM):
        if self.deliver_proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.deliver_proc.send_signal(sig)
            self.deliver_proc.wait(timeout=30)
            self.deliver_proc = None

    def stop(self):
        self.stop_smtpd()
        self.stop_deliver()

    def close(self):
        """Stops everything; fails if tern-deliver had died on its own or a
        sanitizer complained; removes the folder."""
        died = self.deliver_proc.poll() if self.deliver_proc is not None else None
        self.stop()
        if died is not None:
            raise AssertionError("tern-deliver exited by itself (%d):\n%s"
                                 % (died, self.log("deliver")[-3000:]))
        problems = self.sanitizer_reports()
        if problems:
            raise AssertionError("sanitizer report:\n" + problems)
        shutil.rmtree(self.dir, ignore_errors=True)

    def sanitizer_reports(self):
        return sanitizer_lines(self.log("smtpd") + self.log("deliver"))

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.close()
        else:
            self.stop()
            print("  (kept %s for a look)" % self.dir)

    # ---- looking at results ----
    def log(self, which="smtpd"):
        return read_log(self.smtpd_log if which == "smtpd" else self.deliver_log)

    def maildir(self, user):
        return os.path.join(self.dir, "mail", user, "Maildir")

    def messages(self, user):
        """The messages in USER's Maildir new/, as bytes, oldest name first."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.maildir(user), "new", "*"))):
            with open(path, "rb") as f:
                out.append(f.read())
        return out

    def wait_for_messages(self, user, count, timeout=20):
        return wait_until(lambda: len(self.messages(user)) >= count and self.messages(user),
                          timeout, "%d message(s) for %s" % (count, user))

    def spool_files(self):
        """Every file under the spool's message folders (not control/)."""
        out = []
        for sub in ("tmp", "mess", "incoming", "queue", "state"):
            out += glob.glob(os.path.join(self.spool, sub, "*"))
        return out

    def wait_spool_empty(self, timeout=20):
        wait_until(lambda: not self.spool_files(), timeout, "an empty spool")

    # ---- clients ----
    def smtp(self, helo="client.test"):
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname=helo, timeout=30)

    def conversation(self, data, wait=0.5, timeout=10, wait_for_354=True):
        """Sends raw DATA (bytes) as a pipelining client does (RFC 2920 3.1):
        the commands in one write up to each DATA, the message only once that
        DATA got 354, then the message and what follows in one write.
        WAIT_FOR_354=False sends it all in one write, as a client that does
        not wait.  Returns everything the server said."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            transcript = _Transcript(s)
            owed = 1  # replies the server owes: the banner, one a command line or message
            rest = data
            while wait_for_354:
                upto = _through_data_command(rest)
                if upto < 0:
                    break
                s.sendall(rest[:upto])
                owed += rest[:upto].count(b"\n")
                rest = rest[upto:]
                if not transcript.is_354(owed):
                    break
                end = _message_length(rest)
                if end < 0:
                    break  # the message never ends
                s.sendall(rest[:end])
                owed += 1
                rest = rest[end:]
            with contextlib.suppress(OSError):
                s.sendall(rest)
                s.shutdown(socket.SHUT_WR)
            return transcript.rest()

    def queue(self, envelope, message=b"Subject: queued directly\n\nbody line\n", qid=None,
              extra_env=None):
        """Runs tern-queue as qmail-queue is run: MESSAGE on fd 0, ENVELOPE
        (bytes, raw) on fd 1, a pipe written from a thread; TERN_QID if QID.
        Returns (exit code, stderr)."""
        env = self.env(extra_env)
        env.pop("TERN_QID", None)
        if qid is not None:
            env["TERN_QID"] = qid
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen([self.program("tern-queue")], stdin=subprocess.PIPE,
                                    stdout=read_end, stderr=subprocess.PIPE, env=env)
        finally:
            os.close(read_end)

        def feed():
            try:
                with os.fdopen(write_end, "wb") as f:
                    f.write(envelope)
            except BrokenPipeError:
                pass  # tern-queue refused before reading it all
        writer = threading.Thread(target=feed)
        writer.start()
        try:
            _, err = proc.communicate(message, timeout=60)
        finally:
            writer.join()
        return proc.returncode, err.decode("utf-8", "replace")

    def swaks(self, *args, check=False):
        return run(["swaks", "--server", "127.0.0.1:%d" % self.port, "--helo", "client.test"]
                   + list(args), check=check)


def _through_data_command(commands):
    """The length of COMMANDS up to and including its first DATA line, or -1."""
    at = 0
    while True:
        end = commands.find(b"\r\n", at)
        if end < 0:
            return -1
        if commands[at:end].upper() == b"DATA":
            return end + 2
        at = end + 2


def _message_length(data):
    """The length of the message at the start of DATA through its CRLF.CRLF, or -1."""
    if data.startswith(b".\r\n"):
        return 3
    end = data.find(b"\r\n.\r\n")
    return end + 5 if end >= 0 else -1


class _Transcript:
    """What a server says on a socket, read as far as the caller needs."""

    def __init__(self, sock):
        self.sock = sock
        self.data = b""

    def _replies(self):
        return [l for l in self.data.split(b"\r\n")[:-1]
                if len(l) >= 3 and l[:3].isdigit() and l[3:4] in (b" ", b"")]

    def is_354(self, count):
        """Reads up to the COUNTth reply; true if it is 354."""
        while len(self._replies()) < count:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            if not chunk:
                return False
            self.data += chunk
        return self._replies()[count - 1].startswith(b"354")

    def rest(self):
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            self.data += chunk
        return self.data.decode("utf-8", "replace")


def read_log(path):
    """A log file's text; "" if it is not there yet."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def sanitizer_lines(text):
    """The lines of TEXT in which a sanitizer complained, joined."""
    return "\n".join(l for l in text.splitlines()
                     if "AddressSanitizer" in l or "runtime error" in l
                     or "LeakSanitizer" in l)


def install_tree():
    """Copies the programs into a fresh folder in the installed layout
    (sbin/, libexec/tern/), mode 755 all the way, so that unprivileged
    users can run them wherever the source tree lives.  Returns
    (root, sbin); remove root when done."""
    root = tempfile.mkdtemp(prefix="tern-install-")
    os.chmod(root, 0o755)
    sbin = os.path.join(root, "sbin")
    libexec = os.path.join(root, "libexec", "tern")
    os.makedirs(sbin)
    os.makedirs(libexec)
    for name in ("tern-smtpd", "tern-queue", "tern-deliver", "ternctl"):
        shutil.copy2(program(name), sbin)
    shutil.copy2(program("tern-local"), libexec)
    for path in (root, os.path.dirname(libexec), libexec, sbin):
        os.chmod(path, 0o755)
    return root, sbin


def run(args, check=True, input=None, env=None):
    r = subprocess.run(args, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env)
    r.stdout = r.stdout.decode("utf-8", "replace")
    r.stderr = r.stderr.decode("utf-8", "replace")
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(args), r.returncode, r.stdout,
                                                      r.stderr))
    return r


def replies(text):
    """The reply codes in a raw server transcript, in order."""
    return [line[:3] for line in text.split("\r\n") if len(line) >= 3 and line[:3].isdigit()
            and (len(line) == 3 or line[3] in " ")]
