#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ublksrv (a third-party 6.1 server) against our module, null target, 1 and
# 2 queues: ublk add, ublk list shows the device LIVE with the queues and
# depth asked for, fio randread and randwrite at depths 1 to 128 without an
# error, ublk del removes it.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test compat_01
_require_ublksrv
_have_program fio

for q in 1 2; do
	dev=$(_ublksrv_add -t null -q "$q" -d 128) || _fail "ublk add -t null -q $q"
	_ublksrv_wait_state "$dev" LIVE || _fail "ublk list: not LIVE"
	[ "$(_ublksrv_field "$dev" nr_hw_queues)" = "$q" ] ||
		_fail "ublk list: nr_hw_queues $(_ublksrv_field "$dev" nr_hw_queues), want $q"
	[ "$(_ublksrv_field "$dev" queue_depth)" = 128 ] ||
		_fail "ublk list: queue_depth $(_ublksrv_field "$dev" queue_depth), want 128"
	# one fio, one job after the other (starting fio is dear under TCG)
	jobs=()
	for rw in randread randwrite; do
		for qd in 1 16 128; do
			jobs+=(--name="$rw-qd$qd" --rw=$rw --iodepth=$qd --stonewall)
		done
	done
	json=$UBLK_TMP/fio-$q.json
	_run_fio --filename="/dev/ublkb$dev" --bs=4k --direct=1 \
		--ioengine=libaio --numjobs="$q" --time_based --runtime=1 \
		--output-format=json --output="$json" "${jobs[@]}" ||
		_fail "fio on $q queue(s) (exit $?)"
	_fio_jobs "$json" > "$UBLK_TMP/jobs" || _fail "cannot parse $json"
	[ "$(wc -l < "$UBLK_TMP/jobs")" = $((6 * q)) ] ||
		_fail "fio ran $(wc -l < "$UBLK_TMP/jobs") jobs, want $((6 * q))"
	while read -r job ios errs; do
		_log "queues=$q $job: $ios I/Os, $errs errors"
		[ "$errs" = 0 ] && [ "$ios" -gt 0 ] || _fail "fio $job: $ios I/Os, $errs errors"
	done < "$UBLK_TMP/jobs"
	_ublksrv_del "$dev" || _fail "ublk del -n $dev"
done
exit 0
