#!/bin/bash
# ioreqctl's bash completion, driven as bash drives it: COMP_WORDS and
# COMP_CWORD set, the function that complete -p names called, COMPREPLY
# checked; VM and device names come from a real broker.
#   test_completion.sh SRC_DIR BIN_DIR
set -u
src=$1 bin=$2
tmp=$(mktemp -d)
broker=""
fail=0
trap '[ -n "$broker" ] && kill "$broker" 2>/dev/null; wait; rm -rf "$tmp"' EXIT

# shellcheck source=/dev/null
. "$src/deploy/bash-completion/ioreqctl"
spec=$(complete -p ioreqctl) || { echo "test_completion: no completion for ioreqctl"; exit 1; }
fn=$(sed -n 's/.* -F \([^ ]*\) .*/\1/p' <<<"$spec")

# expect "WORDS..." "EXPECTED REPLY (sorted, space-separated)"
expect() {
	local line=$1 want=$2 got
	read -ra COMP_WORDS <<<"$line"
	[[ $line == *" " ]] && COMP_WORDS+=("")
	COMP_WORDS[0]=$bin/ioreqctl
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	"$fn" ioreqctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
	got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//')
	if [[ $got != "$want" ]]; then
		echo "test_completion: '$line': got '$got', want '$want'"
		fail=1
	fi
}

cat >"$tmp/loop.txt" <<'X'
repeat 1000000
  pio write 0x60 1 1
  sleep 5
end
X
cat >"$tmp/c.yaml" <<X
broker: { runtime_dir: $tmp/run }
vms:
  - name: alpha
    backend: sim
    vcpus: 1
    scripts: [loop.txt]
    devices:
      - { name: sink, program: ioreq-dev-null, pio: ["0x60..0x63"] }
      - { name: scratch, program: ioreq-dev-ram, mmio: ["0x1000+0x100"] }
  - { name: beta, backend: sim, vcpus: 1, autostart: false }
X
"$bin/ioreq-brokerd" --config "$tmp/c.yaml" 2>"$tmp/log" &
broker=$!
for _ in $(seq 100); do
	[ -S "$tmp/run/control" ] && break
	sleep 0.1
done
sock="--socket $tmp/run/control"

expect "ioreqctl " "devices events metrics reload stats status top vm vms"
expect "ioreqctl st" "stats status"
expect "ioreqctl --js" "--json"
expect "ioreqctl status --" "--follow --help --json --once --socket --version"
expect "ioreqctl vm " "reset start stop"
expect "ioreqctl vm re" "reset"
expect "ioreqctl $sock vm reset " "alpha beta"
expect "ioreqctl $sock --json vms a" "alpha"
expect "ioreqctl $sock stats alpha " "scratch sink"
expect "ioreqctl $sock stats alpha s" "scratch sink"
expect "ioreqctl $sock devices " "alpha beta"
expect "ioreqctl $sock stats alpha sink " ""
expect "ioreqctl --socket=$tmp/run/control vm start b" "beta"
# no broker: no names, and no noise
expect "ioreqctl --socket $tmp/nothing vm start " ""

[ $fail = 0 ] && echo "test_completion: ok"
exit $fail
