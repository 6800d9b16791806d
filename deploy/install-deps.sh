#!/bin/sh
# Installs the Debian 12 packages that building and testing ioreq-broker needs.
# Idempotent: quiet and fast when everything is already there.
set -eu

PACKAGES="build-essential cmake pkg-config git
libnng-dev libprotobuf-c-dev protobuf-c-compiler
libsystemd-dev systemd libcmocka-dev libyaml-dev libseccomp-dev linux-libc-dev
libelf-dev scdoc groff-base libmbedtls-dev openssl iproute2"
# Options, any of them together:
# --fuzz: clang and its libFuzzer runtime, for tests/fuzz/run.sh
# --qemu: what test_integration_vhost_user boots: QEMU (the vhost-user front
# end), busybox for its initramfs, e2fsprogs to read its disk from the host,
# and Debian's kernel, unpacked (never installed) into the cache directory
# ${IOREQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ioreq-broker}/linux.
# --package: what building and checking the Debian packages takes
# (debian/, tests/deploy/): debhelper with its sysusers sequence, lintian,
# blhc, and scdoc for the man pages.
qemu=false
for arg in "$@"; do
	case $arg in
	--fuzz) PACKAGES="$PACKAGES clang libclang-rt-14-dev" ;;
	--qemu)
		qemu=true
		PACKAGES="$PACKAGES qemu-system-x86 busybox-static e2fsprogs"
		;;
	--package) PACKAGES="$PACKAGES debhelper dpkg-dev fakeroot lintian blhc scdoc" ;;
	*) echo "install-deps: unknown option $arg (--fuzz, --qemu, --package)" >&2; exit 2 ;;
	esac
done

kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n 1
}

# The kernel of linux-image-amd64 (its one dependency, linux-image-VERSION),
# unpacked once; a marker file says the unpacking finished.
unpack_kernel() {
	cache=${IOREQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ioreq-broker}
	[ -e "$cache/linux/.done" ] && return 0
	pkg=$(kernel_package)
	if [ -z "$pkg" ]; then
		# No package lists yet (a fresh machine whose packages were all there).
		$SUDO apt-get update -qq >/dev/null || true
		pkg=$(kernel_package)
	fi
	if [ -z "$pkg" ]; then
		echo "install-deps: cannot find the package of linux-image-amd64's kernel" >&2
		return 1
	fi
	echo "install-deps: unpacking $pkg into $cache/linux" >&2
	tmp=$(mktemp -d)
	# shellcheck disable=SC2064
	trap "rm -rf '$tmp'" EXIT
	# Into a directory of ours: no need for apt's sandbox user.
	(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" "$pkg" >/dev/null) || return 1
	rm -rf "$cache/linux"
	mkdir -p "$cache/linux" || return 1
	dpkg-deb -x "$tmp"/*.deb "$cache/linux" || return 1
	touch "$cache/linux/.done"
}

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
# Without a kernel (offline, say) only the vhost-user test cannot run: it
# skips, saying why; the rest goes on.
kernel() {
	[ "$qemu" = true ] || return 0
	unpack_kernel || echo "install-deps: no kernel unpacked: test_integration_vhost_user will skip" >&2
}
if [ -z "$missing" ]; then
	kernel
	exit 0
fi

echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
kernel
exit 0
