#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Recovery with ublksrv, without REISSUE: ublk add -t null -r 1 (1 and 2
# queues), fio randrw with continue_on_error, kill -9 of the daemon,
# QUIESCED, ublk recover, LIVE; fio keeps going, its I/O completes after
# the recovery, and only the requests the dead daemon held failed: at most
# queues x depth errors.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test compat_05
_require_ublksrv
_require_prog ublk_errno
_have_program fio

DEPTH=32
for q in 1 2; do
	dev=$(_ublksrv_add -t null -q "$q" -d $DEPTH -r 1) || _fail "ublk add -r 1"
	_ublksrv_wait_state "$dev" LIVE || _fail "not LIVE"
	pid=$(_ublksrv_pid "$dev")
	[ -n "$pid" ] && kill -0 "$pid" || _fail "no daemon pid in ublk list"
	json=$UBLK_TMP/fio-$q.json
	# fio itself in the background (no timeout wrapper) so that SIGINT
	# reaches it: it then stops and writes its report
	_bg fio --eta=never --name=noreissue --filename="/dev/ublkb$dev" \
		--rw=randrw --bs=4k --direct=1 --ioengine=libaio --iodepth=$DEPTH \
		--numjobs="$q" --time_based --runtime=300 --continue_on_error=io \
		--output-format=json --output="$json"
	fio_pid=$UBLK_LAST_PID
	_wait_io_progress "$dev" 500 || _fail "fio did no I/O"

	q_ms=$(_crash "$dev") || _fail "kill -9 $pid: not QUIESCED"
	_ublksrv_state_is "$dev" QUIESCED || _fail "ublk list: not QUIESCED"
	kill -0 "$fio_pid" 2>/dev/null || _fail "fio ended when the daemon died"
	_wait_until 10000 _pid_gone "$pid" || _fail "daemon $pid still alive"
	_ublksrv recover -n "$dev" || _fail "ublk recover -n $dev"
	_ublksrv_wait_state "$dev" LIVE 10000 || _fail "not LIVE after ublk recover"
	_log "queues=$q: kill->QUIESCED $q_ms ms, LIVE again"
	_wait_io_progress "$dev" 500 || _fail "no I/O completed after recovery"
	kill -0 "$fio_pid" 2>/dev/null || _fail "fio stopped"
	kill -INT "$fio_pid"
	_wait_pid "$fio_pid" 60
	rc=$?
	[ "$rc" = 124 ] && _fail "fio did not stop on SIGINT"
	[ -s "$json" ] || _fail "fio wrote no result (exit $rc)"
	errs=$(_fio_json_errors "$json") || _fail "cannot parse $json"
	ios=$(_fio_json_ios "$json")
	_log "queues=$q: fio exit $rc, $ios I/Os, $errs errors (limit $((q * DEPTH)))"
	[ "$errs" -le $((q * DEPTH)) ] ||
		_fail "$errs I/O errors, more than queues x depth = $((q * DEPTH))"
	_ublksrv_del "$dev" || _fail "ublk del"
done
exit 0
