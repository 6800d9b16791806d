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

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
