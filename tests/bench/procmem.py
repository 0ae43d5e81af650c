#!/usr/bin/python3
"""procmem: memory and CPU of a process tree, read from /proc, for make bench.

  procmem.py sample ROOT_PID NAME...
      Every SAMPLE_INTERVAL s until SIGTERM: Pss and Rss (smaps_rollup) of
      every process below ROOT_PID whose comm is one of the NAMEs.  Then one
      line per NAME: "NAME median_pss_kB max_pss_kB median_rss_kB samples
      processes" (0s when none was seen).
  procmem.py settle ROOT_PID QUIET_S DEADLINE_S
      Waits until the CPU time (utime + stime) of ROOT_PID and everything
      below it has not grown for QUIET_S seconds, DEADLINE_S at most.  Then
      "idle|busy seconds rss_kB pss_kB processes largest_rss_kB largest_comm":
      idle, and seconds from ROOT_PID's start (its starttime in /proc) to
      the last sample at which the CPU time grew; or busy at the deadline,
      and the seconds since its start.  Memory is the whole tree's then.
"""
import os
import re
import signal
import statistics
import sys
import time

SAMPLE_INTERVAL = 0.1
SETTLE_INTERVAL = 0.05
TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    """The fields of /proc/PID/stat after the comm, and the comm."""
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    comm = text[text.index("(") + 1:text.rindex(")")]
    return comm, text[text.rindex(")") + 2:].split()


def tree(root):
    """{pid: comm} for ROOT and every process below it."""
    children, comms = {}, {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            comm, fields = stat_fields(int(name))
        except (OSError, ValueError):
            continue
        comms[int(name)] = comm
        children.setdefault(int(fields[1]), []).append(int(name))
    out, unvisited = {}, [root]
    while unvisited:
        pid = unvisited.pop()
        if pid in comms:
            out[pid] = comms[pid]
        unvisited += children.get(pid, [])
    return out


def memory(pid):
    """(Pss, Rss) in kB, or None if PID is gone."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            text = f.read()
    except OSError:
        return None
    pss = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    rss = re.search(r"^Rss:\s+(\d+) kB", text, re.M)
    if not pss or not rss:
        return None
    return int(pss.group(1)), int(rss.group(1))


def cpu_ticks(pid):
    try:
        _, fields = stat_fields(pid)
    except (OSError, ValueError):
        return 0
    return int(fields[11]) + int(fields[12])


def sample(root, names):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    seen = {name: ([], [], set()) for name in names}
    while not stop:
        for pid, comm in tree(root).items():
            if comm in seen:
                m = memory(pid)
                if m:
                    seen[comm][0].append(m[0])
                    seen[comm][1].append(m[1])
                    seen[comm][2].add(pid)
        time.sleep(SAMPLE_INTERVAL)
    for name in names:
        pss, rss, pids = seen[name]
        if not pss:
            print(name, 0, 0, 0, 0, 0)
            continue
        print(name, int(statistics.median(pss)), max(pss), int(statistics.median(rss)),
              len(pss), len(pids))


def settle(root, quiet, deadline):
    _, fields = stat_fields(root)
    started = int(fields[19]) / TICKS
    end = time.monotonic() + deadline
    last_cpu, last_growth = -1, time.clock_gettime(time.CLOCK_BOOTTIME)
    status = "busy"
    while time.monotonic() < end:
        procs = tree(root)
        if root not in procs:
            sys.exit("procmem: process %d is gone" % root)
        cpu = sum(cpu_ticks(pid) for pid in procs)
        now = time.clock_gettime(time.CLOCK_BOOTTIME)
        if cpu != last_cpu:
            last_cpu, last_growth = cpu, now
        elif now - last_growth >= quiet:
            status = "idle"
            break
        time.sleep(SETTLE_INTERVAL)
    if status == "busy":
        last_growth = time.clock_gettime(time.CLOCK_BOOTTIME)
    rss = pss = 0
    largest = (0, "-")
    for pid, comm in procs.items():
        m = memory(pid)
        if m:
            pss += m[0]
            rss += m[1]
            largest = max(largest, (m[1], comm))
    print(status, "%.2f" % (last_growth - started), rss, pss, len(procs), largest[0],
          largest[1])


def main(argv):
    if len(argv) >= 3 and argv[0] == "sample":
        sample(int(argv[1]), argv[2:])
    elif len(argv) == 4 and argv[0] == "settle":
        settle(int(argv[1]), float(argv[2]), float(argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
