#!/usr/bin/python3
"""Runs every test_* function of tests/integration/test_*.py.

Prints one line per test and ends with
'integration: N passed, N failed, N skipped'; exits 1 on any failure.
Usage: run.py [-k SUBSTRING] [FILE...]
"""
import glob
import importlib.util
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


def load(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv):
    pattern = None
    if len(argv) >= 2 and argv[0] == "-k":
        pattern, argv = argv[1], argv[2:]
    files = argv or sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    passed = failed = skipped = 0
    failures = []
    for path in files:
        module = load(path)
        tests = [(n, f) for n, f in vars(module).items()
                 if n.startswith("test_") and callable(f)]
        tests.sort(key=lambda t: t[1].__code__.co_firstlineno)
        for name, func in tests:
            full = "%s.%s" % (module.__name__, name)
            if pattern and pattern not in full:
                continue
            start = time.monotonic()
            try:
                func()
            except harness.Skip as e:
                skipped += 1
                print("skip  %s: %s" % (full, e), flush=True)
                continue
            except Exception:
                failed += 1
                failures.append(full)
                print("FAIL  %s (%.1fs)" % (full, time.monotonic() - start), flush=True)
                traceback.print_exc(file=sys.stdout)
                continue
            passed += 1
            print("ok    %s (%.1fs)" % (full, time.monotonic() - start), flush=True)
    if failures:
        print("failed: " + " ".join(failures))
    print("integration: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
