#!/bin/sh
# Builds ioreq-broker (installing the Debian packages it needs) and runs
# the demo or the test suite.
#
#   ./build.sh demo             build, then run the demo
#   ./build.sh test             build, then run every test
#   ./build.sh test --sanitize  the same under ASan + UBSan (in build-asan/)
#   ./build.sh test --tsan      the same under ThreadSanitizer (in build-tsan/)
#   ./build.sh build            only build
set -eu

cd "$(dirname "$0")"
what=${1:-build}
[ $# -gt 0 ] && shift

dir=build
flags="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
for arg in "$@"; do
	case $arg in
	--sanitize) dir=build-asan flags="$flags -DIOREQ_SANITIZE=ON" ;;
	--tsan) dir=build-tsan flags="$flags -DIOREQ_TSAN=ON" ;;
	*) echo "build.sh: unknown option $arg" >&2; exit 2 ;;
	esac
done
# CI builds with warnings as errors.
[ "${CI:-}" = true ] && flags="$flags -DIOREQ_WERROR=ON"

# The tests also boot a Linux guest under QEMU (test_integration_vhost_user)
# and build the Debian packages (test_package).
if [ "$what" = test ]; then
	./deploy/install-deps.sh --qemu --package
else
	./deploy/install-deps.sh
fi
# shellcheck disable=SC2086
cmake -S . -B "$dir" $flags >/dev/null
cmake --build "$dir" -j"$(nproc)"

case $what in
build) ;;
demo)
	# A real guest on /dev/kvm; without KVM, the scripted vCPUs of the sim backend.
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		exec "$dir/bin/ioreq-brokerd" --quiet --config examples/demo.yaml --exit-with-vms
	fi
	echo "build.sh: /dev/kvm is not usable here: running the sim example instead" >&2
	exec "$dir/bin/ioreq-brokerd" --config examples/sim/two-vms.yaml --exit-with-vms
	;;
test)
	exec ctest --test-dir "$dir" --output-on-failure -j2
	;;
*)
	echo "build.sh: unknown command $what (demo, test, build)" >&2
	exit 2
	;;
esac
