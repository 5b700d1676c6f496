#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of "make check-kselftest": the kselftests of the patched
# linux-source-6.1 tree (series.sh check built them there through lib.mk)
# run the way kernel CI runs them,
#
#   make -C tools/testing/selftests TARGETS=ublk run_tests
#
# against the module that tree built in-tree (run.sh loaded it; BUILDID is
# its GNU build ID, checked against the loaded module's). With test names
# after BUILDID only those run (TEST_PROGS on make's command line).
#
#   kselftest-guest.sh TREE BUILDID [TEST...]
# Passes when kselftest's runner printed a TAP line for every test and each
# is "ok" (a skip is "ok ... # SKIP").

tree=$1 buildid=$2
shift 2
want=$#
[ -d "$tree/tools/testing/selftests/ublk" ] || { echo "no selftests in $tree"; exit 1; }
# The note: namesz, descsz, type (4 bytes each), "GNU\0", then the ID.
have=$(od -An -v -tx1 -j16 /sys/module/ublk_drv/notes/.note.gnu.build-id | tr -d ' \n')
echo "module: $(modinfo -n ublk_drv), build ID $have, the tree built $buildid"
[ -n "$buildid" ] && [ "$have" = "$buildid" ] || { echo "not the tree's module"; exit 1; }
out=$UBLK_RESULTS/kselftest-tap.txt
args=(-C "$tree/tools/testing/selftests" TARGETS=ublk)
[ $# -gt 0 ] && args+=("TEST_PROGS=$*")
make -s "${args[@]}" run_tests 2>&1 | tee "$out"
[ "$want" -gt 0 ] ||
	want=$(find "$tree/tools/testing/selftests/ublk" -maxdepth 1 -name 'test_*.sh' \
		! -name test_common.sh | wc -l)
oks=$(grep -cE '^ok [0-9]+ selftests: ublk: ' "$out")
bad=$(grep -cE '^not ok [0-9]+ selftests: ublk: ' "$out")
echo "kselftest: $oks ok (of them $(grep -cE '^ok .*# SKIP' "$out") skipped), $bad not ok, $want expected"
[ "$bad" -eq 0 ] && [ "$oks" -eq "$want" ]
