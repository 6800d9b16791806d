#!/bin/sh
# The Debian packages (debian/), built by dpkg-buildpackage from the tracked
# files alone: lintian-clean, built with dpkg-buildflags' hardening, each
# holding and depending on what it should; unpacked into a scratch root, the
# units verify, the programs run, and a device builds with pkg-config against
# libioreq-device-dev and runs against libioreq-device1.
# Usage: test_package.sh SOURCE_DIR BUILD_DIR. The packages stay in
# BUILD_DIR/deb for test_package_install.sh. Exit 77 (skipped) without the
# tools: ./deploy/install-deps.sh --package installs them.
set -eu
src=$1
build=$2
out=$build/deb
fail() { echo "FAIL: $*" >&2; exit 1; }

for tool in dpkg-buildpackage dh lintian blhc git pkg-config; do
	if ! command -v "$tool" >/dev/null; then
		echo "SKIP: $tool is missing (./deploy/install-deps.sh --package)" >&2
		exit 77
	fi
done
git -C "$src" rev-parse --git-dir >/dev/null 2>&1 || fail "$src is not a git checkout: the packages build from its tracked files"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out" "$tmp/ioreq-broker"

# The tracked files as the work tree has them (one deleted but not committed
# yet is left out): nothing of a build directory or of this machine.
git -C "$src" ls-files -z | tar -C "$src" --null -T - --ignore-failed-read -cf - 2>/dev/null |
	tar -C "$tmp/ioreq-broker" -xf -
(cd "$tmp/ioreq-broker" && DEB_BUILD_OPTIONS="nocheck parallel=2" nice dpkg-buildpackage -us -uc -b) \
	>"$out/build.log" 2>&1 || { tail -n 40 "$out/build.log"; fail "dpkg-buildpackage (all of it: $out/build.log)"; }
mv "$tmp"/*.deb "$tmp"/*.changes "$tmp"/*.buildinfo "$out/"
echo "built: $(cd "$out" && echo *.deb)"

version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
grep -q "^project(ioreq-broker VERSION $version " "$src/CMakeLists.txt" ||
	fail "debian/changelog's version $version is not the project's (CMakeLists.txt)"

lintian --fail-on error,warning,info --display-info "$out"/*.changes || fail "lintian"
# Every compiler and linker line took dpkg-buildflags' flags.
blhc "$out/build.log" || fail "blhc: hardening flags missing from the build"

deb() { echo "$out/${1}_${version}_amd64.deb"; }
for p in ioreq-broker libioreq-device1 libioreq-device-dev ioreq-broker-dbgsym libioreq-device1-dbgsym; do
	[ -f "$(deb $p)" ] || fail "no package $p"
	dpkg-deb -x "$(deb $p)" "$tmp/$p"
done
has() {
	p=$1
	shift
	for f in "$@"; do
		[ -e "$tmp/$p/$f" ] || fail "$f is not in $p"
	done
}

# ioreq-broker: the programs, the device programs this build makes, the
# units, the sysusers and tmpfiles snippets, the configuration (a conffile).
has ioreq-broker usr/bin/ioreq-brokerd usr/bin/ioreqctl usr/bin/ioreq-launch usr/bin/ioreq-remote \
	usr/lib/systemd/system/ioreq-broker.service usr/lib/systemd/system/ioreq-broker.socket \
	usr/lib/sysusers.d/ioreq-broker.conf usr/lib/tmpfiles.d/ioreq-broker.conf etc/ioreq-broker/broker.yaml \
	usr/share/ioreq-broker/examples/sim/two-vms.yaml usr/share/ioreq-broker/control.proto \
	usr/share/doc/ioreq-broker/copyright
for d in "$build"/bin/ioreq-dev-*; do
	has ioreq-broker "usr/bin/${d##*/}"
done
dpkg-deb -I "$(deb ioreq-broker)" conffiles | grep -qx /etc/ioreq-broker/broker.yaml ||
	fail "broker.yaml is not a conffile"
for s in postinst prerm postrm; do
	dpkg-deb -I "$(deb ioreq-broker)" $s >"$tmp/$s" || fail "ioreq-broker has no $s"
done
grep -q "systemd-sysusers.*ioreq-broker.conf" "$tmp/postinst" || fail "postinst does not create the ioreq user"
grep -q "systemd-tmpfiles.*--create ioreq-broker.conf" "$tmp/postinst" || fail "postinst does not run tmpfiles"
grep -q "deb-systemd-helper enable 'ioreq-broker.socket'" "$tmp/postinst" || fail "postinst does not enable the socket"
! grep -q "enable 'ioreq-broker.service'" "$tmp/postinst" || fail "postinst enables the service"
grep -q "stop 'ioreq-broker.socket'" "$tmp/prerm" || fail "prerm does not stop the socket"

# libioreq-device1: the library under its SONAME, exporting only the API.
lib=$(find "$tmp/libioreq-device1" -name 'libioreq-device.so.1.*' -type f)
[ -n "$lib" ] || fail "libioreq-device1 holds no libioreq-device.so.1"
readelf -d "$lib" | grep -q 'SONAME.*\[libioreq-device.so.1\]' || fail "SONAME is not libioreq-device.so.1"
nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^IOREQ_DEVICE_1$' |
	grep -v '^ioreq_\(dev\|mem\|vq\|virtio\)_[a-z_]*@@IOREQ_DEVICE_1$' >"$tmp/stray" || true
[ ! -s "$tmp/stray" ] || fail "the library exports more than its API: $(cat "$tmp/stray")"
dpkg-deb -I "$(deb libioreq-device1)" symbols >/dev/null || fail "libioreq-device1 has no symbols file"
has libioreq-device-dev usr/include/ioreq/device.h usr/include/ioreq/virtq.h usr/include/ioreq/virtio.h \
	usr/share/ioreq-device/ioreq.proto

# dh_strip took the debugging information out, into the dbgsym packages.
for f in "$tmp"/ioreq-broker/usr/bin/* "$lib"; do
	! readelf -S "$f" | grep -q '\.debug_info' || fail "${f##*/} is not stripped"
done

# Depends: the runtime libraries, found by dpkg-shlibdeps; no -dev package;
# the -dev package on exactly its library.
depends() { dpkg-deb -f "$(deb "$1")" Depends; }
for p in ioreq-broker libioreq-device1; do
	for l in libc6 libnng1 libprotobuf-c1 libseccomp2; do
		depends $p | grep -q "\b$l\b" || fail "$p does not depend on $l: $(depends $p)"
	done
	! depends $p | grep -q -- '-dev\b' || fail "$p depends on a -dev package: $(depends $p)"
done
for l in libsystemd0 libyaml-0-2 libelf1 systemd; do
	depends ioreq-broker | grep -q "\b$l\b" || fail "ioreq-broker does not depend on $l: $(depends ioreq-broker)"
done
depends libioreq-device-dev | grep -q "libioreq-device1 (= $version)" ||
	fail "libioreq-device-dev does not depend on libioreq-device1 (= $version): $(depends libioreq-device-dev)"

# The units verify inside the package's root; systemd's own targets and
# /bin/kill come from this machine, as they would on the system it lands on.
root=$tmp/ioreq-broker
mkdir -p "$root/lib/systemd/system" "$root/bin"
cp -L /lib/systemd/system/*.target "$root/lib/systemd/system/"
cp -L /bin/kill "$root/bin/kill"
systemd-analyze verify --root="$root" ioreq-broker.socket ioreq-broker.service || fail "systemd-analyze verify"
score=$(systemd-analyze security --offline=true --root="$root" ioreq-broker.service 2>/dev/null |
	sed -n 's/.*Overall exposure level for ioreq-broker.service: \([0-9.]*\).*/\1/p')
echo "exposure: $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 4.0) }' || fail "exposure $score above 4.0"

# The programs run from the root, and the packaged configuration is valid.
"$root/usr/bin/ioreqctl" --help >/dev/null || fail "ioreqctl --help"
sed "s|/usr/share|$root/usr/share|" "$root/etc/ioreq-broker/broker.yaml" >"$tmp/broker.yaml"
"$root/usr/bin/ioreq-brokerd" --check "$tmp/broker.yaml" || fail "the packaged configuration"

# A third-party device: libioreq-device1 and -dev unpacked into one root,
# built with what pkg-config says and nothing else. Whatever the .pc file
# requires must come from a package libioreq-device-dev depends on.
dev=$tmp/devroot
dpkg-deb -x "$(deb libioreq-device1)" "$dev"
dpkg-deb -x "$(deb libioreq-device-dev)" "$dev"
pcdir=$(dirname "$(find "$dev" -name ioreq-device.pc)")
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$dev" PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1
for m in $(pkg-config --print-requires --print-requires-private ioreq-device | awk '{print $1}'); do
	owner=$(dpkg -S "*/pkgconfig/$m.pc" 2>/dev/null | cut -d: -f1 | head -n 1)
	depends libioreq-device-dev | grep -q "\b${owner:-?}\b" ||
		fail "ioreq-device.pc requires $m, which no dependency of libioreq-device-dev provides"
done
cat >"$tmp/mydev.c" <<'C'
#include <ioreq/device.h>
#include <ioreq/virtio.h>
#include <ioreq/virtq.h>
int main(int argc, char **argv)
{
	const char *url, *name;
	return ioreq_dev_take_args(&argc, argv, &url, &name) == 0 ? 0 : 2;
}
C
# shellcheck disable=SC2046 # pkg-config's output is words
cc -Wall -Werror -o "$tmp/mydev" "$tmp/mydev.c" $(pkg-config --cflags --libs ioreq-device) ||
	fail "a device does not build with pkg-config --cflags --libs ioreq-device"
readelf -d "$tmp/mydev" | grep -q 'NEEDED.*\[libioreq-device.so.1\]' || fail "the device does not link libioreq-device.so.1"
LD_LIBRARY_PATH="$dev/usr/lib/x86_64-linux-gnu" "$tmp/mydev" --socket ipc:///x --name y ||
	fail "the third-party device does not run"
echo "package ok"
