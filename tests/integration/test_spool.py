"""The spool under stress: lost pokes, files that are not regular files, the
fsyncs of the crash argument, failed loads, and file-size limits."""
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import threading

import harness
from harness import Instance, wait_until

SENDER = b"sender@remote.test"
MESSAGE = b"Subject: spool test\n\nbody line\n"


def envelope(*rcpts):
    return b"F" + SENDER + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts) + b"\0"


def folder(t, name):
    return sorted(os.listdir(os.path.join(t.spool, name)))


def queue(t, rcpt=b"alice@example.test", message=MESSAGE, qid=None):
    code, err = t.queue(envelope(rcpt), message, qid)
    assert code == 0, (code, err)


def fault_env(**faults):
    env = {"LD_PRELOAD": harness.FAULT_SHIM, "TERN_FAULT_PROGRAM": "tern-deliver"}
    env.update(faults)
    if harness.SANITIZED:
        env["ASAN_OPTIONS"] = "abort_on_error=0:detect_leaks=1:verify_asan_link_order=0"
    if not os.path.exists(harness.FAULT_SHIM):
        raise AssertionError("build %s first" % harness.FAULT_SHIM)
    return env


def ternctl(t, *args):
    """ternctl with a deadline: a hang is a failure, not a stuck test run."""
    r = subprocess.run([t.program("ternctl"), "-C", t.conf] + list(args), timeout=20,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=t.env())
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def deliver_pid(t):
    pids = re.findall(r"tern-deliver\[(\d+)\]: start ", t.log("deliver"))
    return int(pids[-1])


def move_out(t, sub, qid, outside):
    """Moves SUB/QID out of the spool into OUTSIDE; returns the new path."""
    os.makedirs(outside, exist_ok=True)
    target = os.path.join(outside, qid)
    os.rename(os.path.join(t.spool, sub, qid), target)
    return target


# ---- a lost poke ----

def test_a_message_whose_poke_was_lost_is_delivered_anyway():
    with Instance(smtpd=False) as t:
        trigger = os.path.join(t.spool, "trigger")
        # tern-deliver keeps reading the FIFO it opened; tern-queue's poke
        # finds no trigger and goes nowhere
        os.rename(trigger, trigger + ".away")
        queue(t, qid="Lost1")
        assert not os.path.exists(trigger)
        (msg,) = t.wait_for_messages("alice", 1, timeout=70)
        assert msg.endswith(MESSAGE)
        t.wait_spool_empty()
        # that scan made the trigger anew and holds it open: the next poke
        # wakes tern-deliver at once, not at the next scan 30 s later
        wait_until(lambda: "trigger_renewed" in t.log("deliver"), 10, "a new trigger")
        assert stat.S_ISFIFO(os.lstat(trigger).st_mode)
        queue(t, rcpt=b"bob@example.test", qid="Poked1")
        t.wait_for_messages("bob", 1, timeout=20)


# ---- files that are not regular files ----

def test_fifos_in_the_spool_do_not_hang_tern_deliver():
    with Instance(smtpd=False, deliver=False) as t:
        # a message in queue/ whose state file is a FIFO: all pending again
        queue(t, qid="Stated1")
        os.rename(os.path.join(t.spool, "incoming", "Stated1"),
                  os.path.join(t.spool, "queue", "Stated1"))
        os.mkfifo(os.path.join(t.spool, "state", "Stated1"))
        os.mkfifo(os.path.join(t.spool, "queue", "Fifo1"))
        os.mkfifo(os.path.join(t.spool, "incoming", "Fifo2"))
        os.mkfifo(os.path.join(t.spool, "control", "counters"))
        os.mkfifo(os.path.join(t.spool, "control", "request.Fifo3"))
        t.start_deliver()
        t.wait_for_messages("alice", 1)
        queue(t, rcpt=b"bob@example.test")
        t.wait_for_messages("bob", 1)
        log = t.log("deliver")
        for qid in ("Fifo1", "Fifo2"):
            assert re.search(r"error id=%s what=open error=\"not a regular file; skipped\""
                             % qid, log), log
        assert "request.Fifo3 error=\"not a regular file; removed\"" in log, log
        assert len(t.messages("alice")) == 1
        t.stop_deliver()  # SIGTERM stops it (within the harness's 30 s)
        assert "stop spool=" in t.log("deliver")


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


def test_a_symlink_in_incoming_is_not_followed():
    with Instance(smtpd=False, deliver=False) as t:
        outside = os.path.join(t.dir, "outside")
        queue(t, qid="Linked1")
        in_target = move_out(t, "incoming", "Linked1", outside)
        os.symlink(in_target, os.path.join(t.spool, "incoming", "Linked1"))
        queue(t, qid="Linked2")
        q_target = move_out(t, "incoming", "Linked2", outside)
        os.symlink(q_target, os.path.join(t.spool, "queue", "Linked2"))
        with open(in_target, "rb") as f:
            before = f.read()
        t.start_deliver()
        queue(t, rcpt=b"bob@example.test")
        t.wait_for_messages("bob", 1)
        log = t.log("deliver")
        for qid in ("Linked1", "Linked2"):
            assert ("error id=%s what=open error=\"not a regular file; skipped\"" % qid) in log, log
        assert t.messages("alice") == []
        with open(in_target, "rb") as f:
            assert f.read() == before
        assert os.path.exists(q_target)


# ---- the fsyncs of the crash argument ----

def strace_calls(text):
    """strace -f output as (pid, call) pairs, each call whole: a call
    another process interrupted ("<unfinished ...>") is joined with its
    "<... resumed>" rest."""
    calls, pending = [], {}
    for line in text.splitlines():
        pid, _, call = line.partition(" ")
        call = call.strip()
        if call.endswith("<unfinished ...>"):
            pending[pid] = call[:-len("<unfinished ...>")].rstrip()
        elif call.startswith("<... ") and pid in pending:
            calls.append((pid, pending.pop(pid) + call.split("resumed>", 1)[1]))
        else:
            calls.append((pid, call))
    return calls


def traced_deliver(t, trace_path, calls):
    """Starts T's tern-deliver under strace -f -y, tracing CALLS into
    TRACE_PATH; returns (the environment, the strace process)."""
    # LeakSanitizer cannot run under ptrace
    env = t.env({"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=0"}
                if harness.SANITIZED else None)
    with open(t.deliver_log, "ab") as log:
        strace = subprocess.Popen(
            ["strace", "-f", "-y", "-o", trace_path, "-e", "trace=" + calls,
             t.program("tern-deliver"), "-C", t.conf],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    return env, strace


def fsync_after(trace, sub):
    """Checks that every successful link or rename into the spool's SUB/
    in TRACE is followed by an fsync of SUB/ itself before that process's
    next one; returns how many there were."""
    into = re.compile(r'^(link|rename)\w*\(.*"[^"]*/spool/%s/[^"/]+"' % sub)
    folder_fd = "/spool/%s>" % sub
    calls = strace_calls(trace)
    found = 0
    for i, (pid, call) in enumerate(calls):
        if not into.search(call) or not call.endswith("= 0"):
            continue
        found += 1
        for later_pid, later in calls[i + 1:]:
            if later_pid != pid:
                continue
            if later.startswith("fsync(") and folder_fd in later and later.endswith("= 0"):
                break
            assert not into.search(later), "no fsync of %s/ after: %s" % (sub, call)
        else:
            raise AssertionError("no fsync of %s/ after: %s" % (sub, call))
    return found


def test_take_in_state_and_requests_fsync_their_folders():
    if shutil.which("strace") is None:
        raise AssertionError("strace is needed (make deps installs it)")
    with Instance(smtpd=False, deliver=False) as t:
        # bob's Maildir is missing: his delivery is deferred, so a state
        # file is written
        shutil.rmtree(os.path.join(t.dir, "mail", "bob"))
        trace_path = os.path.join(t.dir, "trace")
        env, strace = traced_deliver(t, trace_path,
                                     "fsync,rename,renameat,renameat2,link,linkat")
        try:
            wait_until(lambda: "start spool=" in t.log("deliver"), 20, "tern-deliver to start")
            code, err = t.queue(envelope(b"alice@example.test", b"bob@example.test"), MESSAGE,
                                "Synced1")
            assert code == 0, err
            t.wait_for_messages("alice", 1)
            wait_until(lambda: os.path.exists(os.path.join(t.spool, "state", "Synced1")),
                       20, "a state file")
            wait_until(lambda: os.path.exists(os.path.join(t.spool, "control", "counters")),
                       20, "the counters")
            r = subprocess.run(["strace", "-f", "-y", "-o", trace_path + ".ctl", "-e",
                                "trace=fsync,rename,renameat,renameat2",
                                t.program("ternctl"), "-C", t.conf, "flush"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               timeout=60)
            assert r.returncode == 0, r
        finally:
            os.kill(deliver_pid(t), signal.SIGTERM)
            strace.wait(timeout=30)
        with open(trace_path) as f:
            trace = f.read()
        for sub in ("queue", "state", "control"):
            assert fsync_after(trace, sub) >= 1, (sub, trace)
        with open(trace_path + ".ctl") as f:
            ctl_trace = f.read()
        assert fsync_after(ctl_trace, "control") == 1, ctl_trace


def test_a_failed_fsync_of_queue_leaves_the_message_in_incoming():
    # a message moves to queue/ only before its first state file: here
    # bob's deferral (alice's delivery is made at once)
    env = fault_env(TERN_FAULT="fsync", TERN_FAULT_PATH="/spool/queue", TERN_FAULT_TIMES="1")
    with Instance(smtpd=False, deliver=False, conf="retry_first = 1s\nretry_max = 1s") as t:
        shutil.rmtree(t.maildir("bob"))
        t.start_deliver(env)
        code, err = t.queue(envelope(b"alice@example.test", b"bob@example.test"), MESSAGE,
                            "Unsynced1")
        assert code == 0, (code, err)
        wait_until(lambda: "what=fsync path=" in t.log("deliver"), 20, "the failed fsync")
        assert re.search(r"error what=fsync path=\S+/spool/queue error=\"?Input/output error",
                         t.log("deliver")), t.log("deliver")
        assert "error id=Unsynced1 what=state " in t.log("deliver"), t.log("deliver")
        assert folder(t, "incoming") == ["Unsynced1"]
        assert "Unsynced1" not in folder(t, "queue") and "Unsynced1" not in folder(t, "state")
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(t.maildir("bob"), sub))
        t.wait_for_messages("bob", 1)
        t.wait_spool_empty()
        assert len(t.messages("alice")) == 1 and len(t.messages("bob")) == 1


# ---- a failed load is retried ----

def test_a_message_that_could_not_be_read_is_retried():
    # read from queue/ at start (where a message with a past waits)
    env = fault_env(TERN_FAULT="pread", TERN_FAULT_PATH="/spool/queue/Unread1",
                    TERN_FAULT_TIMES="1")
    with Instance(smtpd=False, deliver=False) as t:
        queue(t, qid="Unread1")
        os.rename(os.path.join(t.spool, "incoming", "Unread1"),
                  os.path.join(t.spool, "queue", "Unread1"))
        t.start_deliver(env)
        wait_until(lambda: "id=Unread1 what=read" in t.log("deliver"), 20, "the failed read")
        assert "error id=Unread1 what=read error=\"Input/output error\"" in t.log("deliver"), \
            t.log("deliver")
        # kept for a later scan; the scan after start-up may already have
        # taken it again, and delivered it
        assert (folder(t, "queue") == ["Unread1"]
                or "delivered id=Unread1 " in t.log("deliver")), t.log("deliver")
        queue(t, rcpt=b"bob@example.test")  # a poke: the next scan
        t.wait_for_messages("bob", 1)
        (msg,) = t.wait_for_messages("alice", 1)
        assert msg.endswith(MESSAGE)
        t.wait_spool_empty()
        assert len(t.messages("alice")) == 1  # once, whichever scan took it


def test_a_new_message_that_could_not_be_read_moves_to_queue_and_is_retried():
    env = fault_env(TERN_FAULT="pread", TERN_FAULT_PATH="/spool/incoming/Unread2",
                    TERN_FAULT_TIMES="1")
    with Instance(smtpd=False, deliver=False) as t:
        t.start_deliver(env)
        queue(t, qid="Unread2")
        (msg,) = t.wait_for_messages("alice", 1)
        assert msg.endswith(MESSAGE)
        # logged once the worker's report is in, a moment after the file
        wait_until(lambda: "delivered id=Unread2 " in t.log("deliver"), 10, "the delivery")
        log = t.log("deliver")
        assert "error id=Unread2 what=read error=\"Input/output error\"" in log, log
        t.wait_spool_empty()


# ---- file-size limits ----

def run_limited(args, message, env_bytes, limit, env):
    """Runs ARGS as qmail-queue is run (MESSAGE on fd 0, ENV_BYTES on fd 1)
    with RLIMIT_FSIZE at LIMIT octets.  Returns (exit code, stdout, stderr);
    a negative code is the signal that killed it."""
    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    read_end, write_end = (None, None)
    if env_bytes is not None:
        read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                stdout=read_end if read_end is not None else subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, preexec_fn=limit_file_size)
    finally:
        if read_end is not None:
            os.close(read_end)
    writer = None
    if write_end is not None:
        def feed():
            try:
                with os.fdopen(write_end, "wb") as f:
                    f.write(env_bytes)
            except BrokenPipeError:
                pass
        writer = threading.Thread(target=feed)
        writer.start()
    try:
        out, err = proc.communicate(message, timeout=60)
    finally:
        if writer is not None:
            writer.join()
    return (proc.returncode, (out or b"").decode("utf-8", "replace"),
            err.decode("utf-8", "replace"))


def test_tern_queue_under_a_file_size_limit_exits_53_and_cleans_up():
    with Instance(smtpd=False, deliver=False) as t:
        limit = 4096
        args = [t.program("tern-queue")]
        env = t.env()
        env.pop("TERN_QID", None)
        big = b"Subject: big\n\n" + b"x" * 20000 + b"\n"
        # over the limit in the message file; then in the envelope file
        # only (the message is a file of its own, mess/ID)
        many = envelope(*[b"user%04d@example.test" % i for i in range(300)])
        assert len(many) > limit
        for message, env_bytes in ((big, envelope(b"alice@example.test")), (MESSAGE, many)):
            for attempt in range(2):
                code, _, err = run_limited(args, message, env_bytes, limit, env)
                assert code == 53, (len(message), code, err)
                assert "File too large" in err, err
                assert t.spool_files() == [], t.spool_files()
        code, _, err = run_limited(args, MESSAGE, envelope(b"alice@example.test"), limit, env)
        assert code == 0, (code, err)
        assert len(folder(t, "incoming")) == 1


def test_tern_local_under_a_file_size_limit_defers_and_cleans_up():
    with Instance(smtpd=False, deliver=False) as t:
        md = t.maildir("alice")
        big = b"Subject: big\n\n" + b"x" * 200000 + b"\n"
        args = [t.program("tern-local"), "--length", str(len(big)), md,
                "alice@example.test", "sender@remote.test"]
        code, out, err = run_limited(args, big, None, 65536, t.env())
        assert code == 111, (code, out, err)
        assert out.startswith("4.3.0 ") and "File too large" in out, out
        assert os.listdir(os.path.join(md, "tmp")) == []
        assert os.listdir(os.path.join(md, "new")) == []

        # the same through tern-deliver, whose tern-local inherits its limit
        queue(t, message=big, qid="Big1")
        log = open(t.deliver_log, "ab")

        def limit_file_size():
            resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        proc = subprocess.Popen([t.program("tern-deliver"), "-C", t.conf],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=t.env(),
                                preexec_fn=limit_file_size)
        log.close()
        try:
            wait_until(lambda: "deferred id=Big1" in t.log("deliver"), 20, "a deferral")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        assert re.search(r"deferred id=Big1 rcpt=alice@example.test .*File too large",
                         t.log("deliver")), t.log("deliver")
        assert os.listdir(os.path.join(md, "tmp")) == []
        assert os.listdir(os.path.join(md, "new")) == []
        assert folder(t, "queue") == ["Big1"]


def test_a_take_in_cut_short_is_fsynced_before_incoming_goes():
    """A crash between the link into queue/ and its fsync leaves both names;
    the next tern-deliver must make queue/'s entry durable before it
    removes incoming/'s (else, without a journal, both can be lost)."""
    with Instance(smtpd=False, deliver=False) as t:
        queue(t, qid="HalfTaken1")
        os.link(os.path.join(t.spool, "incoming", "HalfTaken1"),
                os.path.join(t.spool, "queue", "HalfTaken1"))
        trace_path = os.path.join(t.dir, "trace")
        _, strace = traced_deliver(t, trace_path, "fsync,link,linkat,unlink,unlinkat")
        try:
            t.wait_for_messages("alice", 1)
            t.wait_spool_empty()
        finally:
            os.kill(deliver_pid(t), signal.SIGTERM)
            strace.wait(timeout=30)
        with open(trace_path) as f:
            calls = [call for _, call in strace_calls(f.read())]
        gone = [i for i, c in enumerate(calls)
                if c.startswith("unlink") and "/spool/incoming/HalfTaken1" in c]
        assert gone, calls
        synced = [i for i, c in enumerate(calls[:gone[0]])
                  if c.startswith("fsync(") and "/spool/queue>" in c]
        assert synced, calls
