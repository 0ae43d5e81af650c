"""What a connection costs tern-smtpd before it does any work: tern.conf
read once, and a table opened only when a command needs it (issue 7,
item 5)."""
import os
import re
import shutil
import socket
import subprocess

import harness

from harness import Instance

OPENED = re.compile(r'^\d+\s+(?:open|openat|openat2)\((?:AT_FDCWD|\d+<[^>]*>|\d+), "([^"]*)"')


def traced_session(t, commands):
    """Runs one tern-smtpd over a socketpair under strace -f, sends the
    COMMANDS (bytes) in one write and reads until it closes; returns
    (the transcript, every path it tried to open)."""
    if shutil.which("strace") is None:
        raise AssertionError("strace is needed (make deps installs it)")
    trace_path = os.path.join(t.dir, "open-trace")
    # LeakSanitizer cannot run under ptrace
    env = t.env({"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=0"}
                if harness.SANITIZED else None)
    client, server = socket.socketpair()
    with client, open(t.smtpd_log, "ab") as log:
        with server:
            strace = subprocess.Popen(
                ["strace", "-f", "-o", trace_path, "-e", "trace=open,openat,openat2",
                 t.program("tern-smtpd"), "-C", t.conf],
                stdin=server, stdout=server, stderr=log, env=env)
        client.settimeout(20)
        client.sendall(commands)
        transcript = b""
        while True:
            chunk = client.recv(4096)
            if not chunk:
                break
            transcript += chunk
    assert strace.wait(timeout=20) == 0
    with open(trace_path) as f:
        paths = [m.group(1) for m in map(OPENED.match, f) if m]
    return transcript.decode("utf-8", "replace"), paths


def test_ehlo_quit_reads_tern_conf_once_and_opens_no_table():
    with Instance(smtpd=False, deliver=False) as t:
        transcript, paths = traced_session(t, b"EHLO client.test\r\nQUIT\r\n")
        assert harness.replies(transcript) == ["220", "250", "221"], transcript
        assert paths.count(t.conf) == 1, paths
        assert not [p for p in paths if p.endswith(".cdb")], paths


def test_rcpt_opens_the_tables_it_needs():
    """The other side of the test above: the trace does see table opens."""
    with Instance(smtpd=False, deliver=False) as t:
        transcript, paths = traced_session(
            t, b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\n"
               b"RCPT TO:<alice@example.test>\r\nQUIT\r\n")
        assert harness.replies(transcript) == ["220", "250", "250", "250", "221"], transcript
        assert paths.count(t.conf) == 1, paths
        assert os.path.join(t.etc, "domains.cdb") in paths, paths
        assert os.path.join(t.etc, "mailboxes.cdb") in paths, paths
