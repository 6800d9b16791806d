#!/bin/sh
# Builds the fuzz targets with clang and runs each for SECONDS (default 30),
# starting from the corpus in tests/fuzz/corpus/ and the examples.
set -eu
cd "$(dirname "$0")/../.."
secs=${1:-30}
dir=build-fuzz
CC=clang cmake -S . -B "$dir" -DIOREQ_FUZZ=ON >/dev/null
cmake --build "$dir" -j"$(nproc)" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
targets="wire control config script memview evreg virtq ring"
for t in $targets; do mkdir -p "$work/$t"; done
cp examples/sim/*.yaml examples/*.yaml deploy/broker.yaml "$work/config/"
cp examples/sim/*.txt "$work/script/"
status=0
for t in $targets; do
	echo "fuzz_$t: ${secs}s"
	if ! "$dir/bin/fuzz_$t" -max_total_time="$secs" -max_len=4096 -timeout=10 \
		-artifact_prefix="$work/" "$work/$t" >"$work/$t.log" 2>&1; then
		tail -40 "$work/$t.log"
		status=1
	else
		grep -E '^Done|#[0-9]+.*DONE' "$work/$t.log" | tail -1
	fi
done
[ $status -eq 0 ] && echo "fuzzers: no crash"
exit $status
