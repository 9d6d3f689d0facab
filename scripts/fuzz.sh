#!/usr/bin/env bash
# Runs every Go fuzz target of the repository (func FuzzXxx(f *testing.F) in
# a *_test.go file, found with grep, so a new target is run without editing
# this script) for FUZZTIME each, one after the other, printing one line per
# target. It stops at the first failure with a non-zero exit and prints the
# path of the input that fails: go test keeps it in the package's
# testdata/fuzz/<target>/, from where plain `go test` runs it as a
# regression case once it is committed.
#
#   scripts/fuzz.sh                      # every target, 10 s each
#   FUZZTIME=60s scripts/fuzz.sh         # longer (or 5000x: a number of runs)
#   scripts/fuzz.sh 'Parquet|CSV'        # the targets whose name matches (grep -E)
#
# FUZZ_KEEP_CACHE=1 keeps the corpus earlier runs found (see below).
#
# FUZZMINIMIZETIME (default 100x) bounds how long the fuzzer shrinks each
# input that finds new code (and a failing one) before going on: at Go's
# default, 60 s per input, a short run would spend nearly all its time
# shrinking. A failing input is written whole or shrunk; either reproduces.
#
# With a duration FUZZTIME, Go 1.26's fuzzer may fail a target with a bare
# "context deadline exceeded" as the time runs out (golang/go#75804): with
# no failing input written, that is reported and passed.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime=${FUZZTIME:-10s}
minimizetime=${FUZZMINIMIZETIME:-100x}
only=${1:-}

# Every "dir name" pair, in a stable order. Directories Go ignores
# (testdata, vendor, names starting with . or _) are skipped.
found=$(
	find . -name '*_test.go' -not -path '*/testdata/*' -not -path '*/vendor/*' \
		-not -path '*/.*' -not -path '*/_*' -print0 |
		xargs -0 grep -HoE '^func Fuzz[A-Za-z0-9_]*\(' || true
)
targets=$(printf '%s\n' "$found" | sed -nE 's|^\./(.*/)?[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($|\1 \2|p' |
	sed -E 's|^/? |. |; s|/ | |' | sort -u)
if [ -n "$only" ]; then
	targets=$(printf '%s\n' "$targets" | awk -v re="$only" '$2 ~ re')
fi
if [ -z "$targets" ]; then
	echo "fuzz: no fuzz targets found${only:+ matching $only}" >&2
	exit 1
fi

# Each run starts from the seeds and the committed testdata/fuzz inputs:
# the corpus earlier runs left in the build cache grows to hundreds of
# inputs per target, and replaying them as baseline coverage took the whole
# 10 s (CI reported 0 new executions for three targets). FUZZ_KEEP_CACHE=1
# keeps it, for long local runs that build on earlier ones.
if [ -z "${FUZZ_KEEP_CACHE:-}" ]; then
	go clean -fuzzcache
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
count=0 started=$SECONDS
while read -r dir name; do
	pkg=./$dir
	[ "$dir" = . ] && pkg=.
	t0=$SECONDS
	rc=0
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimizetime" "$pkg" \
		</dev/null >"$out" 2>&1 || rc=$?
	execs=$(grep -oE 'execs: [0-9]+' "$out" | tail -1 | cut -d' ' -f2 || true)
	summary="$name $pkg: $((SECONDS - t0))s, ${execs:-0} execs"
	crasher=$(sed -nE 's|^.*Failing input written to (testdata/fuzz/[^ ]+).*$|\1|p' "$out" | tail -1)
	if [ "$rc" -eq 0 ] && grep -qE 'no (fuzz )?tests to (fuzz|run)' "$out"; then
		# A target go test does not see (a build tag?) must not pass unseen.
		cat "$out" >&2
		echo "FAIL $summary: go test found no target $name in $pkg" >&2
		exit 1
	elif [ "$rc" -eq 0 ] && [ "${execs:-0}" -eq 0 ]; then
		# The seeds ran, but the fuzzer tried nothing new: say so rather
		# than pass as if it had fuzzed.
		echo "ok   $summary (WARNING: no new inputs tried; the seeds alone ran: lengthen FUZZTIME)"
	elif [ "$rc" -eq 0 ]; then
		echo "ok   $summary"
	elif [ -z "$crasher" ] && grep -A1 -- "^--- FAIL: $name " "$out" | tail -1 | grep -qx '    context deadline exceeded'; then
		echo "ok   $summary (ended by a bare \"context deadline exceeded\": golang/go#75804, no failing input)"
	else
		cat "$out" >&2
		if [ -n "$crasher" ]; then
			[ "$dir" = . ] || crasher=$dir/$crasher
			echo "FAIL $summary: failing input $crasher" >&2
			echo "     re-run: go test -run '^$name/${crasher##*/}\$' $pkg" >&2
		else
			echo "FAIL $summary (go test exited with $rc)" >&2
		fi
		exit 1
	fi
	count=$((count + 1))
done <<<"$targets"
echo "fuzz: $count targets passed, ${fuzztime} each, in $((SECONDS - started))s"
