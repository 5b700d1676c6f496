#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# fio on the null target: 4k randread and randwrite, 1 and 2 queues,
# device depth 1, 32, 128 with twice that many I/Os in flight (so tags run
# out and requests wait); each run a few seconds, no errors, I/O done.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test null_02
_require_ublk
_have_program fio

for q in 1 2; do
	for depth in 1 32 128; do
		dev=$(_add_ublk_dev -t null -q "$q" -d "$depth") ||
			_fail "kublk add -q $q -d $depth"
		for rw in randread randwrite; do
			json=$UBLK_TMP/fio-$q-$depth-$rw.json
			_run_fio --name=null --filename="/dev/ublkb$dev" \
				--rw="$rw" --bs=4k --direct=1 --ioengine=libaio \
				--iodepth=$((depth * 2)) --numjobs="$q" \
				--time_based --runtime=2 --output-format=json \
				--output="$json" ||
				_fail "fio $rw q=$q depth=$depth failed"
			errs=$(_fio_json_errors "$json")
			ios=$(_fio_json_ios "$json")
			[ "$errs" = 0 ] || _fail "fio $rw q=$q depth=$depth: $errs errors"
			[ "$ios" -gt 0 ] || _fail "fio $rw q=$q depth=$depth: no I/O"
			_log "q=$q depth=$depth $rw: $ios I/Os, 0 errors"
		done
		_del_ublk_dev "$dev" || _fail "kublk del -n $dev"
	done
done
exit 0
