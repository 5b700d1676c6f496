#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# NEED_GET_DATA and COMP_IN_TASK modes on the null target (it cannot
# verify data): the device carries the flags, mixed-size reads and writes
# succeed with 1 and 2 queues.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test null_04
_require_ublk
_require_prog ublk_errno
_have_program fio

for mode in "--get-data" "--comp-in-task" "--get-data --comp-in-task"; do
	want=0
	[[ "$mode" == *get-data* ]] && want=$((want | 0x4))
	[[ "$mode" == *comp-in-task* ]] && want=$((want | 0x2))
	for q in 1 2; do
		# shellcheck disable=SC2086 # $mode is a list of options
		dev=$(_add_ublk_dev -t null -q "$q" -d 32 $mode) ||
			_fail "kublk add $mode"
		flags=$(./ublk_errno info "$dev" | sed -n 's/.*flags=\(0x[0-9a-f]*\).*/\1/p')
		[ -n "$flags" ] || _fail "GET_DEV_INFO $dev"
		[ $((flags & want)) = "$want" ] ||
			_fail "$mode: device flags $flags lack $(printf 0x%x "$want")"

		json=$UBLK_TMP/fio.json
		_run_fio --name=modes --filename="/dev/ublkb$dev" --rw=randrw \
			--bsrange=512-128k --direct=1 --ioengine=libaio \
			--iodepth=16 --numjobs="$q" --time_based --runtime=3 \
			--output-format=json --output="$json" ||
			_fail "fio $mode q=$q failed"
		errs=$(_fio_json_errors "$json")
		ios=$(_fio_json_ios "$json")
		[ "$errs" = 0 ] || _fail "fio $mode q=$q: $errs errors"
		[ "$ios" -gt 0 ] || _fail "fio $mode q=$q: no I/O"
		_log "$mode q=$q: flags $flags, $ios I/Os, 0 errors"
		_del_ublk_dev "$dev" || _fail "kublk del"
	done
done
exit 0
