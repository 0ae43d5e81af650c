#!/bin/sh
# make check: the unit tests (check), then the integration tests with real
# clients; prints 'tests: N passed, N failed, N skipped' last.
# Usage: tests/check.sh BUILD_DIR
build=${1:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM
status=0

echo "== unit tests ($build/unit-tests)"
"$build/unit-tests" >"$out/unit" 2>&1 || status=1
cat "$out/unit"

echo "== integration tests"
TERN_BUILD="$build" /usr/bin/python3 tests/integration/run.py >"$out/integration" 2>&1 || status=1
cat "$out/integration"

echo "== man pages"
man_fail=0
man_pass=0
for page in man/*.[0-9]; do
	[ -f "$page" ] || continue
	warnings=$(LC_ALL=C.UTF-8 groff -man -ww -z "$page" 2>&1)
	if [ -n "$warnings" ]; then
		echo "FAIL  $page"; echo "$warnings"; man_fail=$((man_fail + 1)); status=1
	else
		man_pass=$((man_pass + 1))
	fi
done
echo "man: $man_pass passed, $man_fail failed, 0 skipped"

total() {
	sed -n "s/^$1: \([0-9]*\) passed, \([0-9]*\) failed\(, \([0-9]*\) skipped\)\{0,1\}.*/\1 \2 \4/p" "$2" | tail -n 1
}
set -- $(total unit "$out/unit")
up=${1:-0} uf=${2:-1} us=${3:-0}
set -- $(total integration "$out/integration")
ip=${1:-0} if_=${2:-1} is=${3:-0}
[ "$uf" = 0 ] && [ "$if_" = 0 ] || status=1
echo "tests: $((up + ip + man_pass)) passed, $((uf + if_ + man_fail)) failed, $((us + is)) skipped"
exit $status
