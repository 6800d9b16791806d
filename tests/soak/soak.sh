#!/bin/sh
# Soak test (not in the default suite): three VMs under load while device
# processes are killed at random. Every read must return its device's value
# (on_failure: hold: nothing is lost or answered by the fallback), the
# broker must count exactly the accesses the scripts made (nothing
# duplicated), every VM must finish (nothing hangs), and the broker's RSS
# must stay flat.
#
#   tests/soak/soak.sh [BUILD_DIR] [SECONDS]     (default build, 180)
set -eu
build=$(cd "${1:-build}" && pwd)
secs=${2:-180}
tmp=$(mktemp -d)
trap 'kill "$broker" 2>/dev/null || true; rm -rf "$tmp"' EXIT
fail() { echo "soak: FAIL: $*" >&2; exit 1; }

# Each vCPU reads for about SECONDS: 1 ms of sleep per 5 reads.
iters=$((secs * 200))
cat >"$tmp/cpu.txt" <<S
repeat $iters
  pio read 0x80 4 0x5a5a5a5a
  mmio read 0x1000 4 0xa5a5a5a5
  pio read 0x80 2 0x5a5a
  mmio read 0x1004 1 0xa5
  pio write 0x80 4 seq
  sleep 1
end
S
vms=""
for v in a b c; do
	vms="$vms
  - name: $v
    backend: sim
    vcpus: 2
    scripts: [cpu.txt, cpu.txt]
    devices:
      - { name: pio, program: ioreq-dev-null, pio: [\"0x80+4\"], on_failure: hold, deadline_ms: 30000,
          restart_limit: 1000, args: [--pattern, \"0x5a5a5a5a\"] }
      - { name: mmio, program: ioreq-dev-null, mmio: [\"0x1000+8\"], on_failure: hold, deadline_ms: 30000,
          restart_limit: 1000, args: [--pattern, \"0xa5a5a5a5\"] }"
done
printf 'broker: { runtime_dir: %s/run }\nvms:%s\n' "$tmp" "$vms" >"$tmp/soak.yaml"

"$build/bin/ioreq-brokerd" --config "$tmp/soak.yaml" --exit-with-vms 2>"$tmp/broker.log" &
broker=$!
ctl() { "$build/bin/ioreqctl" --socket "$tmp/run/control" "$@"; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$broker/status"; }
sleep 2
rss0=$(rss)
kills=0
end=$(($(date +%s) + secs))
while [ "$(date +%s)" -lt "$end" ] && kill -0 "$broker" 2>/dev/null; do
	pids=$(ctl --json devices 2>/dev/null | tr ',' '\n' | sed -n 's/.*"pid": \([1-9][0-9]*\).*/\1/p')
	victim=$(echo "$pids" | shuf -n 1)
	[ -n "$victim" ] && kill -9 "$victim" 2>/dev/null && kills=$((kills + 1))
	sleep "$(shuf -i 5-15 -n 1 | sed "s/.$/.&/")"
done
rss1=$(rss 2>/dev/null || echo "$rss0")
wait "$broker" && status=0 || status=$?
expected=$((3 * 2 * iters * 5))
got=$(sed -n 's/^ioreq-brokerd: vm [a-z]*: \([0-9]*\) requests, .*/\1/p' "$tmp/broker.log" | awk '{s += $1} END {print s}')
echo "soak: $secs s, $kills devices killed, $got requests (expected $expected), broker RSS ${rss0} kB -> ${rss1} kB"
[ "$status" -eq 0 ] || { grep -v ' started \| ready ' "$tmp/broker.log" | tail -20; fail "broker exited $status: a read did not return its device's value"; }
[ "$got" -eq "$expected" ] || fail "the broker counted $got requests, the scripts made $expected"
[ "$kills" -gt 0 ] || fail "no device was killed"
[ "$rss1" -le $((rss0 + rss0 / 5 + 1024)) ] || fail "broker RSS grew from $rss0 kB to $rss1 kB"
echo "soak: ok"
