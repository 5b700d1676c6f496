#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Recovery with ublksrv, REISSUE: ublk add -t loop -r 1 -i 1 (1 and 2
# queues), fio randwrite with crc32c verify running, kill -9 of ublksrv's
# daemon, the device goes QUIESCED, ublk recover -n N brings it back LIVE
# under a new daemon; fio sees no I/O error and every block verifies, as
# the requests the dead daemon held were reissued to the new one.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test compat_04
_require_ublksrv
_require_prog ublk_errno
_have_program fio

MB=64
DEPTH=32
for q in 1 2; do
	file=$(_make_backing_file $MB) || _fail "backing file"
	dev=$(_ublksrv_add -t loop -q "$q" -d $DEPTH -r 1 -i 1 -f "$file" --buffered_io) ||
		_fail "ublk add -r 1 -i 1"
	_ublksrv_wait_state "$dev" LIVE || _fail "not LIVE"
	pid=$(_ublksrv_pid "$dev")
	[ -n "$pid" ] && kill -0 "$pid" || _fail "no daemon pid in ublk list"
	log=$UBLK_TMP/fio-$q.log
	_bg _run_fio --name=reissue --filename="/dev/ublkb$dev" --rw=randwrite \
		--bs=4k --direct=1 --ioengine=libaio --iodepth=$DEPTH --size=${MB}M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --output="$log"
	fio_pid=$UBLK_LAST_PID
	_wait_io_progress "$dev" 1000 || _fail "fio did no I/O"

	# ublk_errno kill-wait: kill -9 of the daemon pid GET_DEV_INFO gives,
	# timed to QUIESCED in one process (polling ublk list is dear)
	q_ms=$(_crash "$dev") || _fail "kill -9 $pid: not QUIESCED"
	t1=$(_now_ms)
	_ublksrv_state_is "$dev" QUIESCED || _fail "ublk list: not QUIESCED"
	kill -0 "$fio_pid" 2>/dev/null || _fail "fio ended when the daemon died"
	_wait_until 10000 _pid_gone "$pid" || _fail "daemon $pid still alive"
	_ublksrv recover -n "$dev" || _fail "ublk recover -n $dev"
	_ublksrv_wait_state "$dev" LIVE 10000 || _fail "not LIVE after ublk recover"
	t2=$(_now_ms)
	npid=$(_ublksrv_pid "$dev")
	[ -n "$npid" ] && [ "$npid" != "$pid" ] && kill -0 "$npid" ||
		_fail "ublk list: daemon pid '$npid' after recovery (old $pid)"
	_log "queues=$q: kill->QUIESCED $q_ms ms, then ublk recover->LIVE $((t2 - t1)) ms"

	_wait_pid "$fio_pid" 120
	rc=$?
	[ "$rc" = 124 ] && _fail "fio hung after recovery"
	[ "$rc" = 0 ] || { cat "$log"; _fail "fio failed (exit $rc) after a REISSUE recovery"; }
	grep -q 'err= 0' "$log" || { cat "$log"; _fail "fio reported errors"; }
	# every block written was read back and checked
	grep -Eq "issued rwts: total=$((MB * 256)),$((MB * 256))," "$log" ||
		{ cat "$log"; _fail "fio did not read back all $((MB * 256)) blocks"; }
	_log "queues=$q: fio wrote and verified $MB MiB, no error"
	_ublksrv_del "$dev" || _fail "ublk del"
	rm -f "$file"
done
exit 0
