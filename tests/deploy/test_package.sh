#!/bin/sh
# The .deb builds; unpacked into a scratch root (dpkg -x) it holds working
# units, programs and the device library. Usage: test_package.sh BUILD_DIR
set -eu
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cpack --config "$build/CPackConfig.cmake" -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1 || { cat "$tmp/cpack.log"; fail "cpack"; }
deb=$(ls "$tmp"/pkg/ioreq-broker_*.deb)
dpkg-deb -f "$deb" Depends | grep -q libnng1 || fail "Depends lacks libnng1: $(dpkg-deb -f "$deb" Depends)"
dpkg-deb -f "$deb" Depends | grep -q libprotobuf-c1 || fail "Depends lacks libprotobuf-c1"

root=$tmp/root
dpkg -x "$deb" "$root"
for f in usr/bin/ioreq-brokerd usr/bin/ioreqctl usr/bin/ioreq-launch usr/bin/ioreq-dev-ram usr/bin/ioreq-dev-null \
	usr/lib/systemd/system/ioreq-broker.service usr/lib/systemd/system/ioreq-broker.socket \
	usr/lib/sysusers.d/ioreq-broker.conf etc/ioreq-broker/broker.yaml usr/include/ioreq/device.h; do
	[ -e "$root/$f" ] || fail "$f is not in the package"
done
pc=$(find "$root/usr/lib" -name ioreq-device.pc)
[ -n "$pc" ] && [ -n "$(find "$root/usr/lib" -name libioreq-device.a)" ] || fail "the device library is not in the package"
pcdir=$(dirname "$pc")

# The units, verified inside the root; systemd's own targets and /bin/kill come
# from this machine, as they would from the system the package lands on.
mkdir -p "$root/lib/systemd/system" "$root/bin"
cp -L /lib/systemd/system/*.target "$root/lib/systemd/system/"
cp -L /bin/kill "$root/bin/kill"
systemd-analyze verify --root="$root" ioreq-broker.socket ioreq-broker.service || fail "systemd-analyze verify"
score=$(systemd-analyze security --offline=true --root="$root" ioreq-broker.service 2>/dev/null |
	sed -n 's/.*Overall exposure level for ioreq-broker.service: \([0-9.]*\).*/\1/p')
echo "exposure: $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 4.0) }' || fail "exposure $score above 4.0"

# The programs run from the root, and the packaged example configuration is valid.
"$root/usr/bin/ioreqctl" --help >/dev/null || fail "ioreqctl --help"
sed "s|/usr/share|$root/usr/share|" "$root/etc/ioreq-broker/broker.yaml" >"$tmp/broker.yaml"
PATH="$root/usr/bin:$PATH" "$root/usr/bin/ioreq-brokerd" --check "$tmp/broker.yaml" || fail "example config"

# A third-party device builds against the installed library through pkg-config.
cat >"$tmp/mydev.c" <<'C'
#include <ioreq/device.h>
int main(int argc, char **argv)
{
	const char *url, *name;
	return ioreq_dev_take_args(&argc, argv, &url, &name) == 0 ? 0 : 2;
}
C
sed -i "s|^prefix=.*|prefix=$root/usr|" "$pc"
cc -o "$tmp/mydev" "$tmp/mydev.c" $(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs --static ioreq-device) ||
	fail "a device does not build against the package"
"$tmp/mydev" --socket ipc:///x --name y || fail "the third-party device does not run"
echo "package ok"
