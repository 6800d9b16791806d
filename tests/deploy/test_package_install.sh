#!/bin/sh
# The packages test_package built, on this very system: installed with apt
# (the ioreq user and group exist, the socket is enabled and not the service,
# the configuration checks, a device builds against the installed library),
# upgraded to a higher version (a changed conffile survives, the postinst
# ran), and purged (nothing of them is left). It changes the system, so it
# runs only as root with IOREQ_TEST_INSTALL=1 (CI sets it); otherwise it
# skips (77). Packages left by an earlier run are purged first, and the user
# and groups the packages made are removed at the end if they were not there
# before. Usage: test_package_install.sh DEB_DIR
set -eu
debs=$(realpath "$1") # apt-get takes a file for a package name only by its path
pkgs="ioreq-broker libioreq-device1 libioreq-device-dev"
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "installs packages into this system: runs as root only"
[ "${IOREQ_TEST_INSTALL:-}" = 1 ] || skip "installs packages into this system: set IOREQ_TEST_INSTALL=1 to let it"
ls "$debs"/ioreq-broker_*_amd64.deb >/dev/null 2>&1 || skip "no packages in $debs (test_package makes them)"

export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -q -y -o DPkg::Lock::Timeout=300 "$@" >>"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; fail "apt-get $*"; }; }
installed() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^[ir]'; }
purge_all() {
	left=""
	for p in $pkgs; do
		installed "$p" && left="$left $p"
	done
	# shellcheck disable=SC2086 # a list of names
	[ -z "$left" ] || apt_get purge $left
}

tmp=$(mktemp -d)
had_user=$(getent passwd ioreq || true)
had_groups=$(getent group ioreq kvm | cut -d: -f1 || true)
cleanup() {
	purge_all || true
	# The packages leave the user, as Debian does; a test leaves the system as it found it.
	[ -n "$had_user" ] || userdel ioreq 2>/dev/null || true
	for g in ioreq kvm; do
		echo "$had_groups" | grep -qx $g || groupdel $g 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
purge_all

deb_files() {
	for p in $pkgs; do
		ls "$1"/"${p}"_*_amd64.deb
	done
}

# Install: dependencies come from the archive.
# shellcheck disable=SC2046 # file names without blanks
apt_get install $(deb_files "$debs")
for p in $pkgs; do
	installed "$p" || fail "$p is not installed"
	dpkg -L "$p" >>"$tmp/files"
done
getent passwd ioreq >/dev/null || fail "no user ioreq"
getent group ioreq >/dev/null || fail "no group ioreq"
id -nG ioreq | grep -qw kvm || fail "ioreq is not in group kvm"
wants=/etc/systemd/system/sockets.target.wants/ioreq-broker.socket
[ "$(readlink -f "$wants")" = "$(readlink -f /usr/lib/systemd/system/ioreq-broker.socket)" ] ||
	fail "the socket is not enabled"
! ls /etc/systemd/system/*.wants/ioreq-broker.service >/dev/null 2>&1 || fail "the service is enabled"
[ "$(stat -c %U:%G /run/ioreq-broker)" = ioreq:ioreq ] || fail "/run/ioreq-broker is not ioreq's"
ioreq-brokerd --check /etc/ioreq-broker/broker.yaml || fail "the installed configuration"
cat >"$tmp/mydev.c" <<'C'
#include <ioreq/device.h>
int main(int argc, char **argv)
{
	const char *url, *name;
	return ioreq_dev_take_args(&argc, argv, &url, &name) == 0 ? 0 : 2;
}
C
# shellcheck disable=SC2046 # pkg-config's output is words
cc -o "$tmp/mydev" "$tmp/mydev.c" $(pkg-config --cflags --libs ioreq-device) || fail "a device does not build"
"$tmp/mydev" --socket ipc:///x --name y || fail "a device does not run against the installed library"

# Upgrade: the same packages under a higher version. The administrator's
# change to the conffile stays; the postinst runs again (its tmpfiles step
# makes the runtime directory anew).
echo "# changed by test_package_install" >>/etc/ioreq-broker/broker.yaml
rm -rf /run/ioreq-broker
old=$(dpkg-query -W -f='${Version}' ioreq-broker)
new="$old+1"
mkdir "$tmp/new"
for f in $(deb_files "$debs"); do
	rm -rf "$tmp/unpacked"
	dpkg-deb -R "$f" "$tmp/unpacked"
	sed -i "s/^Version: .*/Version: $new/; s/(= $old)/(= $new)/g" "$tmp/unpacked/DEBIAN/control"
	dpkg-deb -b "$tmp/unpacked" "$tmp/new/" >/dev/null
done
# shellcheck disable=SC2046
apt_get install $(deb_files "$tmp/new")
for p in $pkgs; do
	[ "$(dpkg-query -W -f='${Version} ${db:Status-Abbrev}' "$p")" = "$new ii " ] || fail "$p was not upgraded to $new"
done
tail -n 1 /etc/ioreq-broker/broker.yaml | grep -qx "# changed by test_package_install" ||
	fail "the upgrade lost the change to broker.yaml"
[ -d /run/ioreq-broker ] || fail "the upgrade's postinst did not run (no /run/ioreq-broker)"
[ -L "$wants" ] || fail "the upgrade disabled the socket"
ioreq-brokerd --check /etc/ioreq-broker/broker.yaml || fail "the configuration after the upgrade"

# Purge: every file of the packages goes, and every directory no other
# package holds; the configuration and the runtime directory go too.
# shellcheck disable=SC2086 # a list of names
apt_get purge $pkgs
for p in $pkgs; do
	! installed "$p" || fail "$p is still there after the purge"
done
while read -r f; do
	[ "$f" != /. ] || continue
	[ -e "$f" ] || [ -L "$f" ] || continue
	if [ -d "$f" ] && [ ! -L "$f" ]; then
		dpkg -S "$f" >/dev/null 2>&1 || fail "the purge left $f"
	else
		fail "the purge left $f"
	fi
done <"$tmp/files"
for f in /etc/ioreq-broker /run/ioreq-broker "$wants"; do
	if [ -e "$f" ] || [ -L "$f" ]; then
		fail "the purge left $f"
	fi
done
echo "install, upgrade and purge ok"
