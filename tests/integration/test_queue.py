"""tern-queue fed directly, as qmail-queue is: message on fd 0, envelope on fd 1."""
import glob
import json
import os
import re
import subprocess

import harness
import spool_format
from harness import Instance

SENDER = b"sender@remote.test"
MESSAGE = b"Subject: queued directly\n\nbody line\n"
GOOD = b"F" + SENDER + b"\0Talice@example.test\0\0"


def queue(t, envelope, message=MESSAGE, qid=None):
    return t.queue(envelope, message, qid)


def incoming(t):
    return sorted(glob.glob(os.path.join(t.spool, "incoming", "*")))


def test_good_envelope_lands_in_incoming():
    with Instance(smtpd=False, deliver=False) as t:
        code, err = queue(t, GOOD)
        assert code == 0, err
        (path,) = incoming(t)
        qid = os.path.basename(path)
        mess = os.path.join(t.spool, "mess", qid)
        assert sorted(t.spool_files()) == sorted([path, mess])
        with open(mess, "rb") as f:
            assert f.read() == MESSAGE      # the message alone
        with open(path, "rb") as f:
            block = f.read()                # the envelope file: block and TERN2 footer
        assert re.fullmatch(rb"time \d+\nfrom sender@remote\.test\nrcpt alice@example\.test\n"
                            rb"TERN2 ([0-9a-f]{16}) ([0-9a-f]{8}) ([0-9a-f]{8}) ([0-9a-f]{8})\n",
                            block), block
        footer = block[-50:].split()
        assert int(footer[1], 16) == len(MESSAGE)
        assert int(footer[2], 16) == len(block) - 50
        assert int(footer[3], 16) == spool_format.crc32c(MESSAGE)
        assert int(footer[4], 16) == spool_format.crc32c(block[:-9])
        (m,) = json.loads(t.ternctl("queue", "--json").stdout)
        assert m["id"] == qid
        assert m["sender"] == SENDER.decode()
        assert [r["addr"] for r in m["rcpts"]] == ["alice@example.test"]


def test_good_envelope_is_delivered():
    with Instance(smtpd=False) as t:
        code, err = queue(t, GOOD)
        assert code == 0, err
        (msg,) = t.wait_for_messages("alice", 1)
        assert msg.startswith(b"Return-Path: <sender@remote.test>\n"
                              b"Delivered-To: alice@example.test\n")
        assert msg.endswith(b"\n" + MESSAGE)
        t.wait_spool_empty()


def test_wrong_lead_byte():
    with Instance(smtpd=False, deliver=False) as t:
        for envelope in (b"X" + GOOD[1:],
                         b"Talice@example.test\0\0",
                         b"F" + SENDER + b"\0Xalice@example.test\0\0"):
            code, err = queue(t, envelope)
            assert code == 91, (envelope, code, err)
            assert t.spool_files() == []


def test_envelope_cut_before_final_nul():
    with Instance(smtpd=False, deliver=False) as t:
        for envelope in (GOOD[:-1], GOOD[:-2], b"F" + SENDER):
            code, err = queue(t, envelope)
            assert code == 54, (envelope, code, err)
            assert t.spool_files() == []


def test_empty_envelope():
    with Instance(smtpd=False, deliver=False) as t:
        code, err = queue(t, b"")
        assert code == 54, (code, err)
        assert t.spool_files() == []


def test_address_too_long():
    def address(size):
        domain = b"@example.test"
        return b"a" * (size - len(domain)) + domain

    with Instance(smtpd=False, deliver=False) as t:
        code, err = queue(t, b"F" + SENDER + b"\0T" + address(1003) + b"\0\0")
        assert code == 11, (code, err)
        code, err = queue(t, b"F" + address(1003) + b"\0Talice@example.test\0\0")
        assert code == 11, (code, err)
        assert t.spool_files() == []
        code, err = queue(t, b"F" + SENDER + b"\0T" + address(1002) + b"\0\0")
        assert code == 0, (code, err)
        assert len(incoming(t)) == 1


def test_line_break_in_address():
    # Would forge a recipient line in the spool's envelope block.
    with Instance(smtpd=False, deliver=False) as t:
        code, err = queue(t, b"F" + SENDER + b"\0Talice@example.test\nrcpt evil@remote.test\0\0")
        assert code == 31, (code, err)
        assert t.spool_files() == []


def test_control_characters_in_address():
    # A TAB would shift the fields of tern-deliver's state file.
    with Instance(smtpd=False, deliver=False) as t:
        for bad in (b"al\tice@example.test", b"al\x01ice@example.test", b"al\x7fice@example.test"):
            code, err = queue(t, b"F" + SENDER + b"\0T" + bad + b"\0\0")
            assert code == 31, (bad, code, err)
        code, err = queue(t, b"F" + SENDER + b"\tx\0Talice@example.test\0\0")
        assert code == 31, (code, err)
        assert t.spool_files() == []


def test_too_many_recipients():
    with Instance(smtpd=False, deliver=False) as t:
        def envelope(n):
            return (b"F" + SENDER + b"\0" + b"".join(b"Tr%d@example.test\0" % i for i in range(n))
                    + b"\0")
        code, err = queue(t, envelope(10001))
        assert code == 31, (code, err)
        assert "too many recipients" in err, err
        assert t.spool_files() == []
        code, err = queue(t, envelope(10000))
        assert code == 0, (code, err)
        (m,) = json.loads(t.ternctl("queue", "--json").stdout)
        assert len(m["rcpts"]) == 10000


def test_malformed_qid():
    with Instance(smtpd=False, deliver=False) as t:
        code, err = queue(t, GOOD, qid="bad-id!")
        assert code == 71, (code, err)
        assert t.spool_files() == []


def test_qid_already_taken():
    with Instance(smtpd=False, deliver=False) as t:
        code, err = queue(t, GOOD, qid="Taken123")
        assert code == 0, err
        code, err = queue(t, GOOD, message=b"Subject: second\n\nx\n", qid="Taken123")
        assert code == 71, (code, err)
        (path,) = incoming(t)
        mess = os.path.join(t.spool, "mess", "Taken123")
        assert sorted(t.spool_files()) == sorted([path, mess])
        with open(mess, "rb") as f:
            assert f.read() == MESSAGE      # the first one's, untouched


def test_qid_of_a_leftover_state_file_is_taken():
    # A state file left by a crash must never be applied to a new message.
    with Instance(smtpd=False, deliver=False) as t:
        with open(os.path.join(t.spool, "state", "Left0ver"), "w") as f:
            f.write("tern-state 1\n")
        code, err = queue(t, GOOD, qid="Left0ver")
        assert code == 71, (code, err)
        assert incoming(t) == []


def test_valid_qid_names_the_file():
    with Instance(smtpd=False, deliver=False) as t:
        code, err = queue(t, GOOD, qid="Abc123xyz")
        assert code == 0, err
        assert incoming(t) == [os.path.join(t.spool, "incoming", "Abc123xyz")]


def test_a_full_disk_at_the_link_is_a_write_error():
    """ENOSPC or EDQUOT when the message is linked into incoming/ is 53
    ("write error or disk full"), not 62 (the queue directory)."""
    if not os.path.exists(harness.FAULT_SHIM):
        raise AssertionError("build %s first" % harness.FAULT_SHIM)
    with Instance(deliver=False, smtpd=False) as t:
        for number in (28, 122):  # ENOSPC, EDQUOT
            env = {"LD_PRELOAD": harness.FAULT_SHIM, "TERN_FAULT": "link",
                   "TERN_FAULT_ERRNO": str(number)}
            if harness.SANITIZED:
                env["ASAN_OPTIONS"] = "abort_on_error=0:detect_leaks=1:verify_asan_link_order=0"
            code, err = t.queue(b"Fa@client.test\0Talice@example.test\0\0", extra_env=env)
            assert code == 53, (number, code, err)
            assert "what=link" in err, err
        assert t.spool_files() == []
