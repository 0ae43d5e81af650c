#!/usr/bin/python3
"""tern-deliver with a backlog: start-up time, RSS and RSS per queued
message with COUNT deferred messages in queue/ (tests/bench/backlog.py),
their Maildir unwritable, in a scratch instance (ternctl init).

Start-up is from exec to the log's "start" line (queue/ listed whole);
"all read" until tern-deliver has used no CPU for half a second (every
message read once); RSS is VmRSS and VmHWM of /proc/PID/status then.
BACKLOG_CONF: lines added to tern.conf (e.g. "active_limit = 1000");
BACKLOG_FORMAT: the spool format written, 2 (TERN2, default) or 1.
Usage: backlog_measure.py BUILD_DIR [COUNT...]   (default 100000)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for %d" % (field, pid))


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])	# utime + stime


def wait_idle(pid, start):
    """Seconds from START until PID used no CPU for half a second: every
    message read once (those beyond the window read as it takes them)."""
    last, since = cpu_ticks(pid), time.monotonic()
    while time.monotonic() - since < 0.5:
        time.sleep(0.05)
        now = cpu_ticks(pid)
        if now != last:
            last, since = now, time.monotonic()
    return since - start


def measure(build, count, extra_conf=""):
    work = tempfile.mkdtemp(prefix="tern-backlog-")
    try:
        subprocess.run([os.path.join(build, "ternctl"), "init", work, "--domain",
                        "example.test", "--user", "alice"], check=True,
                       stdout=subprocess.DEVNULL)
        conf = os.path.join(work, "etc", "tern.conf")
        with open(conf, "a") as f:
            f.write("\n" + extra_conf + "\n")
        spool = os.path.join(work, "spool")
        maildir = os.path.join(work, "mail", "alice", "Maildir")
        shutil.rmtree(maildir, ignore_errors=True)
        with open(maildir, "w") as f:	# not a folder: unwritable, even for root
            f.write("")
        subprocess.run([sys.executable, os.path.join(HERE, "backlog.py"), spool, str(count),
                        "alice@example.test", "--format", os.environ.get("BACKLOG_FORMAT", "2")],
                       check=True)
        log_path = os.path.join(work, "deliver.log")
        log = open(log_path, "wb")
        start = time.monotonic()
        proc = subprocess.Popen([os.path.join(build, "tern-deliver"), "-C", conf],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        while True:
            with open(log_path, "rb") as f:
                if b" start spool=" in f.read():
                    break
            if proc.poll() is not None or time.monotonic() - start > 600:
                proc.kill()     # still loading, it looks at no signal
                proc.wait()
                raise AssertionError("tern-deliver did not start within 600 s")
            time.sleep(0.01)
        started = time.monotonic() - start
        settled = wait_idle(proc.pid, start)
        rss, hwm = status_kib(proc.pid, "VmRSS"), status_kib(proc.pid, "VmHWM")
        proc.terminate()
        proc.wait(timeout=60)
        with open(log_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        if " error " in text or "deferred id=" in text:   # none torn, none tried
            raise AssertionError("tern-deliver did not just load the backlog:\n"
                                 + text[-2000:])
        left = len(os.listdir(os.path.join(spool, "queue")))
        if left != count:
            raise AssertionError("%d of %d messages left in queue/" % (left, count))
        return started, settled, rss, hwm
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv):
    build = argv[0] if argv else "build"
    counts = [int(c) for c in argv[1:]] or [100000]
    extra = os.environ.get("BACKLOG_CONF", "")
    for count in counts:
        started, settled, rss, hwm = measure(build, count, extra)
        print("tern-deliver backlog: %d deferred messages: start-up %.2f s (all read %.2f s), "
              "RSS %.1f MiB (peak %.1f MiB), %.0f bytes per queued message"
              % (count, started, settled, rss / 1024, hwm / 1024, rss * 1024 / count),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
