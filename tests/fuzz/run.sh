#!/bin/sh
# Runs the libFuzzer harnesses that `make fuzz-build` made.
#
#   run.sh explore BUILD SECONDS NAME...   make fuzz: each harness for SECONDS,
#       its working corpus BUILD/NAME/ (kept between runs), seeded from
#       tests/fuzz/corpus/NAME/
#   run.sh ci BUILD RUNS NAME...           make fuzz-ci: replay each committed
#       corpus, then RUNS inputs from seed 1, so the result depends only on
#       the code
#
# A crash or broken invariant leaves its input in BUILD/artifacts/ and makes
# the exit status 1; every harness runs either way.
set -u
mode=$1 build=$2 amount=$3
shift 3
status=0
artifacts=$build/artifacts
mkdir -p "$artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT INT TERM

# The harness's output goes to BUILD/NAME-MODE.log; its last lines are shown, or
# more of it if it failed.
run() {
	name=$1
	shift
	log=$build/$name-$mode.log
	dict=""
	[ -f "tests/fuzz/$name.dict" ] && dict="-dict=tests/fuzz/$name.dict"
	# shellcheck disable=SC2086
	if "$build/${name}_fuzz" -timeout=30 -artifact_prefix="$artifacts/$name-" \
		$dict "$@" >"$log" 2>&1; then
		tail -n 1 "$log"
		return 0
	fi
	tail -n 40 "$log"
	echo "FAIL  $name: the input is in $artifacts/; fix the code, then keep the" \
		"minimised input (${name}_fuzz -minimize_crash=1 -runs=10000 FILE) in" \
		"tests/fuzz/corpus/$name/"
	status=1
	return 1
}

passed=0 failed=0
for name in "$@"; do
	seeds=tests/fuzz/corpus/$name
	if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
		echo "FAIL  $name: no seeds in $seeds/"
		status=1
		failed=$((failed + 1))
		continue
	fi
	before=$status
	case $mode in
	explore)
		echo "== fuzz $name for ${amount}s (corpus $build/$name/)"
		mkdir -p "$build/$name"
		run "$name" -max_total_time="$amount" "$build/$name" "$seeds"
		;;
	ci)
		echo "== fuzz $name: replay $seeds/, then $amount runs from seed 1"
		rm -rf "${scratch:?}/$name"
		mkdir -p "$scratch/$name"
		run "$name" -runs=0 "$scratch/$name" "$seeds" &&
			run "$name" -seed=1 -runs="$amount" "$scratch/$name" "$seeds"
		;;
	*)
		echo "run.sh: unknown mode '$mode'" >&2
		exit 2
		;;
	esac
	if [ "$status" = "$before" ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed, 0 skipped"
exit $status
