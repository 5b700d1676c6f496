#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ublksrv (a third-party 6.1 server) against our module, loop target in its
# default mode (O_DIRECT to a file on ext4 on a brd RAM disk), 1 and 2
# queues: ublk add, ublk list shows it LIVE with the queues asked for and
# direct I/O, fio randread and randwrite at depths 1 to 128 without an
# error, ublk del removes it.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test compat_02
_require_ublksrv
_have_program fio

file=$(_make_backing_file 128 direct) || _fail "backing file"
for q in 1 2; do
	dev=$(_ublksrv_add -t loop -q "$q" -d 128 -f "$file") ||
		_fail "ublk add -t loop -q $q"
	_ublksrv_wait_state "$dev" LIVE || _fail "ublk list: not LIVE"
	[ "$(_ublksrv_field "$dev" nr_hw_queues)" = "$q" ] ||
		_fail "ublk list: nr_hw_queues $(_ublksrv_field "$dev" nr_hw_queues), want $q"
	_ublksrv list -n "$dev" | grep -q '"direct_io":1' ||
		_fail "ublk list: the loop target does not use direct I/O"
	[ "$(blockdev --getsize64 "/dev/ublkb$dev")" = $((128 << 20)) ] ||
		_fail "/dev/ublkb$dev is not the backing file's 128 MiB"
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
