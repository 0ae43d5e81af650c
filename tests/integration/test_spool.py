"""The spool under stress: files that are not regular files."""
import json
import os
import subprocess

from harness import Instance

SENDER = b"sender@remote.test"
MESSAGE = b"Subject: spool test\n\nbody line\n"


def envelope(*rcpts):
    return b"F" + SENDER + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts) + b"\0"


def queue(t, rcpt=b"alice@example.test", message=MESSAGE, qid=None):
    code, err = t.queue(envelope(rcpt), message, qid)
    assert code == 0, (code, err)


def ternctl(t, *args):
    """ternctl with a deadline: a hang is a failure, not a stuck test run."""
    r = subprocess.run([t.program("ternctl"), "-C", t.conf] + list(args), timeout=20,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=t.env())
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def move_out(t, sub, qid, outside):
    """Moves SUB/QID out of the spool into OUTSIDE; returns the new path."""
    os.makedirs(outside, exist_ok=True)
    target = os.path.join(outside, qid)
    os.rename(os.path.join(t.spool, sub, qid), target)
    return target


# ---- files that are not regular files ----

def test_fifos_and_symlinks_in_the_spool_do_not_hang_ternctl():
    with Instance(smtpd=False, deliver=False) as t:
        queue(t, qid="Linked1")
        target = move_out(t, "incoming", "Linked1", os.path.join(t.dir, "outside"))
        os.symlink(target, os.path.join(t.spool, "queue", "Linked1"))
        os.mkfifo(os.path.join(t.spool, "queue", "Fifo1"))
        os.mkfifo(os.path.join(t.spool, "incoming", "Fifo2"))
        os.mkfifo(os.path.join(t.spool, "control", "counters"))
        queue(t, qid="Real1")
        code, out, err = ternctl(t, "queue", "--json")
        assert code == 0, (code, out, err)
        assert [m["id"] for m in json.loads(out)] == ["Real1"], out
        for name in ("queue/Linked1", "queue/Fifo1", "incoming/Fifo2"):
            assert "%s: not a regular file; skipped" % name in err, err
        code, out, err = ternctl(t, "stats")
        assert code == 0, (code, out, err)
        assert "tern_queue_messages 1\n" in out, out
        assert "control/counters: not a regular file; skipped" in err, err
        for qid in ("Linked1", "Fifo1"):
            code, out, err = ternctl(t, "show", qid)
            assert code != 0 and "not a regular file" in err, (qid, code, out, err)
