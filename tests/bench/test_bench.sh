#!/bin/sh
# The benchmark still runs end to end (no figure is checked: performance is
# measured, not timed in tests): ioreq-bench --quick must exit 0 and every
# case must have run, but for those that need /dev/kvm where it is missing.
set -eu
bench=$1/bin/ioreq-bench
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

if ! "$bench" --quick --json >"$out" 2>"$err"; then
	cat "$err" >&2
	echo "test_bench: $bench --quick --json failed" >&2
	exit 1
fi
failed=$(grep -o '"id": "[^"]*", "title": "[^"]*"[^{}]*"ok": false, "why": "[^"]*"' "$out" || true)
# Both sides spinning on one CPU is not measured (the pinned placement).
failed=$(echo "$failed" | grep -v '"why": "polling needs two CPUs"' || true)
# The remote device over a veth pair needs root and ip (network namespaces).
failed=$(echo "$failed" | grep -v '"why": "veth: ' || true)
if ! { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }; then
	failed=$(echo "$failed" | grep -v '"why": "\(kvm backend not available: \)\{0,1\}\(no /dev/kvm\|/dev/kvm: \)' || true)
fi
if [ -n "$failed" ]; then
	echo "test_bench: cases that did not run:" >&2
	echo "$failed" >&2
	exit 1
fi
# The virtio-blk cases need nothing but the sim backend (the remote one
# goes over 127.0.0.1): they must have run.
for id in vblk vblk-remote; do
	if ! grep -q "\"id\": \"$id\", [^{}]*\"ok\": true" "$out"; then
		echo "test_bench: the virtio-blk case ($id) is missing" >&2
		exit 1
	fi
done
echo "test_bench: $(grep -o '"ok": true' "$out" | wc -l) cases ran"
