#!/bin/sh
# Every man page renders at 80 columns without a warning from groff or man,
# and ioreq-broker.yaml(5) carries every key of the loader's reference.
#   test_man.sh MAN_DIR BROKERD
set -u
dir=$1 brokerd=$2
fail=0
# plain text: no bold, underline or colours
render() { LC_ALL=C.UTF-8 groff -man -Tutf8 -P-cbou "$1" 2>/dev/null; }
pages="ioreq-brokerd.8 ioreqctl.8 ioreq-broker.yaml.5 libioreq-device.3 ioreq-remote.1"

for page in $pages; do
	if [ ! -s "$dir/$page" ]; then
		echo "test_man: $dir/$page is missing"
		fail=1
		continue
	fi
	warnings=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$dir/$page" 2>&1)
	if command -v man >/dev/null; then
		warnings="$warnings$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$dir/$page" 2>&1 >/dev/null)"
	fi
	if [ -n "$warnings" ]; then
		echo "test_man: $page:"
		echo "$warnings"
		fail=1
	fi
	if ! render "$dir/$page" | grep -q "^NAME"; then
		echo "test_man: $page has no NAME section"
		fail=1
	fi
done

# Every key the loader knows is in the page, under its own name.
rendered=$(render "$dir/ioreq-broker.yaml.5")
for key in $("$brokerd" --print-config-reference | sed -n 's/^| `\([a-z_]*\)` |.*/\1/p'); do
	if ! printf '%s\n' "$rendered" | grep -q "^ *$key\$"; then
		echo "test_man: ioreq-broker.yaml(5) lacks the key $key"
		fail=1
	fi
done
[ $fail = 0 ] && echo "test_man: every page renders cleanly"
exit $fail
