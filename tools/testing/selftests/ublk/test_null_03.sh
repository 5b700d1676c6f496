#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Server killed without recovery: I/O running on the device fails within a
# few seconds (fio exits with errors instead of hanging), the device is
# stopped (DEAD, /dev/ublkbN removed) or gone, kublk del works, and no task
# is left in D state.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test null_03
_require_ublk
_require_prog ublk_errno
_have_program fio

for q in 1 2; do
	dev=$(_add_ublk_dev -t null -q "$q" -d 32) || _fail "kublk add"
	pid=$(_server_pid "$dev")
	[ -n "$pid" ] || _fail "no server pid"

	_bg _run_fio --name=crash --filename="/dev/ublkb$dev" --rw=randrw \
		--bs=4k --direct=1 --ioengine=libaio --iodepth=32 \
		--numjobs="$q" --time_based --runtime=60 \
		--output="$UBLK_TMP/fio-$q.log"
	fio_pid=$UBLK_LAST_PID
	_wait_io_progress "$dev" 1000 || _fail "fio did no I/O"

	t0=$(_now_ms)
	kill -9 "$pid"
	_wait_pid "$fio_pid" 30
	rc=$?
	[ "$rc" = 124 ] && _fail "fio still blocked 30 s after the server died"
	[ "$rc" = 0 ] && _fail "fio succeeded although the server died"
	_log "q=$q: fio failed (exit $rc) $(($(_now_ms) - t0)) ms after kill -9"

	_wait_until 10000 _dead_or_gone "$dev" ||
		_fail "device $dev is $(./ublk_errno state "$dev"), not DEAD"
	_wait_until 10000 test ! -e "/dev/ublkb$dev" ||
		_fail "/dev/ublkb$dev still there after the server died"
	_wait_until 10000 _pid_gone "$pid" || _fail "server $pid still alive"

	if [ "$(./ublk_errno state "$dev")" != -19 ]; then
		_del_ublk_dev "$dev" || _fail "kublk del of the dead device"
	fi
	_wait_until 5000 _dev_gone "$dev" || _fail "device $dev still there"
	_check_no_hung_tasks || _fail "task stuck in D state"
done
exit 0
