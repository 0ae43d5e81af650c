"""The queue service runs a batch's fsyncs side by side, on threads that
take no signal (lib/syncs.h, tern-queue(8) Group commit)."""
import os
import signal
import threading

from harness import Instance, wait_until
from test_service import send_smtp, the_service

SYNC_THREADS = 3  # lib/syncs.h


def tasks(pid):
    return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))


def blocked_signals(pid, tid):
    with open("/proc/%d/task/%d/status" % (pid, tid)) as f:
        for line in f:
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigBlk for %d/%d" % (pid, tid))


def test_the_service_has_sync_threads_that_block_every_signal():
    with Instance() as t:
        pid = the_service(t)
        ids = wait_until(lambda: len(tasks(pid)) == SYNC_THREADS + 1 and tasks(pid), 10,
                         "the sync threads")
        bit = lambda sig: 1 << (sig - 1)
        # every standard signal but those no one can block (SIGKILL, SIGSTOP)
        standard = sum(bit(sig) for sig in range(1, 32)
                       if sig not in (signal.SIGKILL, signal.SIGSTOP))
        for tid in ids:
            mask = blocked_signals(pid, tid)
            if tid != pid:
                assert mask & standard == standard, (tid, hex(mask))
            else:  # the main thread reads these on its signalfd
                assert mask & bit(signal.SIGTERM) and mask & bit(signal.SIGINT), hex(mask)
                assert mask & standard != standard, hex(mask)
        # the threads take nothing from the main thread: a signal still ends it
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: "service_end" in t.log("deliver"), 10, "the service's end")


def test_concurrent_sessions_are_committed_and_delivered_once_each():
    with Instance() as t:
        the_service(t)
        results = []

        def one(i):
            results.append(send_smtp(t, "s%d@client.test" % i))

        workers = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert [code for code, _ in results] == [250] * 20, results
        t.wait_for_messages("alice", 20)
        t.wait_spool_empty()
        qids = {text.rsplit(" ", 1)[1] for _, text in results}
        log = t.log("deliver")
        assert len(qids) == 20 and all(log.count("accepted id=%s " % q) == 1 for q in qids), log
