#!/bin/sh
# Installs the Debian 12 packages that building and testing ioreq-broker needs.
# Idempotent: quiet and fast when everything is already there.
set -eu

PACKAGES="build-essential cmake pkg-config git
libnng-dev libprotobuf-c-dev protobuf-c-compiler
libsystemd-dev systemd libcmocka-dev libyaml-dev libseccomp-dev linux-libc-dev
libelf-dev"
# --fuzz: clang and its libFuzzer runtime, for tests/fuzz/run.sh
[ "${1:-}" = --fuzz ] && PACKAGES="$PACKAGES clang libclang-rt-14-dev"
# --qemu: what test_integration_vhost_user boots: QEMU (the vhost-user front
# end), busybox for its initramfs, e2fsprogs to read its disk from the host,
# and Debian's kernel, unpacked (never installed) into the cache directory
# ${IOREQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ioreq-broker}/linux.
qemu=false
if [ "${1:-}" = --qemu ]; then
	qemu=true
	PACKAGES="$PACKAGES qemu-system-x86 busybox-static e2fsprogs xz-utils"
fi

# The kernel of linux-image-amd64 (its one dependency, linux-image-VERSION),
# unpacked once; a marker file says the unpacking finished.
unpack_kernel() {
	cache=${IOREQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ioreq-broker}
	[ -e "$cache/linux/.done" ] && return 0
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n 1)
	if [ -z "$pkg" ]; then
		echo "install-deps: cannot find the package of linux-image-amd64's kernel" >&2
		return 1
	fi
	echo "install-deps: unpacking $pkg into $cache/linux" >&2
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	(cd "$tmp" && apt-get download -qq "$pkg" >/dev/null) || return 1
	rm -rf "$cache/linux"
	mkdir -p "$cache/linux"
	dpkg-deb -x "$tmp"/*.deb "$cache/linux"
	touch "$cache/linux/.done"
}

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	[ "$qemu" = true ] && unpack_kernel
	exit 0
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
[ "$qemu" = true ] && unpack_kernel
exit 0
