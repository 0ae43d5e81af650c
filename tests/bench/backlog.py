#!/usr/bin/python3
"""Writes a backlog into a tern spool's queue/, as tern-queue and a first
delivery attempt would have left it: COUNT messages of SIZE octets from
SENDER to RCPT, each with a state file that has the recipient DEFERRED
until RETRY seconds from now (one attempt made).  With --pending, no state
files: every recipient is due at once.  --format 2 writes TERN2 (the
envelope in queue/ID, the message in mess/ID, tern-queue(8)), else TERN1.
Writes no fsync (a bench, not a spool to keep) and runs with tern-deliver
stopped.

Usage: backlog.py SPOOL COUNT RCPT [--sender S] [--size N] [--retry S] [--pending]
                  [--format 1|2]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
import spool_format  # noqa: E402

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def qid(n):
    """A valid queue id (lib/util.c qid_valid: alphanumeric, under 32),
    prefixed so that it never meets one qid_make makes (14 characters)."""
    digits = ""
    while True:
        n, r = divmod(n, 62)
        digits = ALPHABET[r] + digits
        if n == 0:
            break
    return "bk" + digits.rjust(6, "0")


def state_file(rcpt, next_try, error):
    """lib/spool.c spool_write_state's layout: one DEFERRED recipient."""
    return ("tern-state 1\ndeferred\t%d\t1\t0\t-\t%s\t%s\t%s\n"
            % (next_try, rcpt, rcpt, error)).encode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("spool")
    p.add_argument("count", type=int)
    p.add_argument("rcpt")
    p.add_argument("--sender", default="bench@example.test")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--retry", type=int, default=3600)
    p.add_argument("--pending", action="store_true")
    p.add_argument("--format", type=int, choices=(1, 2), default=1)
    a = p.parse_args()
    now = int(time.time())
    head = b"From: <%s>\nTo: <%s>\nSubject: backlog\n\n" % (a.sender.encode(), a.rcpt.encode())
    body = head + b"x" * max(0, a.size - len(head) - 1) + b"\n"
    error = "4.3.0 cannot write into the Maildir (bench)"
    queue = os.path.join(a.spool, "queue")
    state = os.path.join(a.spool, "state")
    mess = os.path.join(a.spool, "mess")
    # the same bytes for every message: its CRC-32C computed once
    if a.format == 2:
        envelope = spool_format.tern2_envelope(body, a.sender, [a.rcpt], now - 60)
    else:
        envelope = spool_format.tern1_file(body, a.sender, [a.rcpt], now - 60)
    for i in range(a.count):
        name = qid(i)
        if a.format == 2:
            with open(os.path.join(mess, name), "wb") as f:
                f.write(body)
        with open(os.path.join(queue, name), "wb") as f:
            f.write(envelope)
        if not a.pending:
            with open(os.path.join(state, name), "wb") as f:
                f.write(state_file(a.rcpt, now + a.retry, error))


if __name__ == "__main__":
    main()
