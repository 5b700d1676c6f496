#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The three ways users take ublk, checked (make check-deb, check-patches,
# check-kselftest, check-ship; CI runs check-ship):
#
#   ship-check.sh deb         deb-check.sh: make deb + lintian, dpkg -i on
#                             this host, dkms' module in the VM (add, fio,
#                             kill -9, recover, del), dpkg -r
#   ship-check.sh patches     series.sh check: git am onto linux-source-6.1,
#                             a build after each patch, the in-tree module
#                             with Debian's config, checkpatch, lib.mk build
#   ship-check.sh kselftest   patches, then that tree's kselftests in the VM
#                             (make -C tools/testing/selftests TARGETS=ublk
#                             run_tests) with the module the tree built
#   ship-check.sh ship        all of them
#
# UBLK_KSELFTESTS: the tests check-kselftest runs (default a subset, see
# below; "all" for every test_*.sh). Results in results/ship-<timestamp>/.
# Prints each part's TAP, its time, and one "N passed, N failed"; exit 0
# when all passed, 2 when a part could not run (infrastructure), else 1.

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../../.." && pwd -P)
# One test of each main group: the ABI and errnos, null and loop I/O, and
# kill -9 + recover under fio (about 5 minutes in the VM).
KSELFTESTS=${UBLK_KSELFTESTS:-test_generic_01.sh test_generic_02.sh test_null_01.sh test_loop_01.sh test_recover_01.sh}

out=${UBLK_RESULTS_BASE:-$REPO/results}/ship-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out" || exit 2
passed=0 failed=0 status=0

# part NAME CMD...: run it, count its "N passed, N failed" line
part() {
	local name=$1 t0=$SECONDS rc line p f

	shift
	echo "ship: $name: $*"
	"$@" 2>&1 | tee "$out/$name.log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out/$name.log" | tail -n1)
	if [ -z "$line" ]; then
		line="0 passed, 1 failed"
		[ "$rc" -eq 0 ] && rc=2
	fi
	read -r p _ f _ <<< "${line//,/}"
	passed=$((passed + p))
	failed=$((failed + f))
	echo "ship: $name: $line (exit status $rc, $((SECONDS - t0)) s)"
	[ "$status" -eq 0 ] && status=$rc
	return "$rc"
}

kselftest_vm() {
	local tree ko rc
	local -a tests=()

	tree=$(cat "$out/patches/tree" 2>/dev/null)
	ko=$out/patches/ublk_drv.ko
	[ -n "$tree" ] && [ -f "$ko" ] || { echo "no patched tree or in-tree module"; return 2; }
	[ "$KSELFTESTS" = all ] || read -ra tests <<< "$KSELFTESTS"
	UBLK_MODULE=$ko UBLK_RESULTS_BASE=$out/vm \
		"$HERE/run.sh" guest tools/testing/ublk-vm/kselftest-guest.sh "$tree" \
		"$(readelf -n "$ko" | sed -n 's/.*Build ID: //p')" "${tests[@]}"
	rc=$?
	grep -E '^(ok|not ok) ' "$out"/vm/latest/kselftest-tap.txt > /dev/null 2>&1 || rc=2
	# One TAP item per kselftest, counted as such.
	p=$(grep -cE '^ok [0-9]+ selftests: ublk: ' "$out"/vm/latest/kselftest-tap.txt 2>/dev/null)
	f=$(grep -cE '^not ok [0-9]+ selftests: ublk: ' "$out"/vm/latest/kselftest-tap.txt 2>/dev/null)
	[ "$rc" -eq 0 ] || [ "${f:-0}" -gt 0 ] || f=1
	echo "${p:-0} passed, ${f:-0} failed"
	return "$rc"
}

case "${1:-ship}" in
deb)	part deb "$HERE/deb-check.sh" "$out/deb" ;;
patches) part patches "$HERE/series.sh" check "$out/patches" ;;
kselftest)
	part patches "$HERE/series.sh" check "$out/patches"
	part kselftest kselftest_vm ;;
ship)	part deb "$HERE/deb-check.sh" "$out/deb"
	part patches "$HERE/series.sh" check "$out/patches"
	part kselftest kselftest_vm ;;
*)	echo "usage: $0 deb|patches|kselftest|ship" >&2; exit 2 ;;
esac
echo "ship: results in ${out#"$REPO"/}/"
echo "$passed passed, $failed failed"
[ "$status" -ne 0 ] || [ "$failed" -eq 0 ] || status=1
exit "$status"
