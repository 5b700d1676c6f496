#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A crash during recovery, at the points `kublk recover --stop-at' makes
# certain: right after START_USER_RECOVERY (the char device not opened
# yet), with half of every queue's tags fetched, with every tag fetched
# but END_USER_RECOVERY not sent, and with END_USER_RECOVERY sent and
# parked in the driver (half the tags fetched). The new server stops
# itself there (SIGSTOP); the test sees it stopped, the device still
# QUIESCED, and kills it. A reader waits on the device through it all
# (REISSUE: no request may fail). The device must be QUIESCED again,
# a further kublk recover (a second START_USER_RECOVERY, also after the
# "start" round) must bring it LIVE, the reader must then finish with its
# data verified, and so must a full verify of what was written before.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_08
_require_ublk
_have_program fio

file=$(_make_backing_file 64) || _fail "backing file"
dev=$(_add_ublk_dev -t loop -f "$file" -q 2 -d 16 -r -i) || _fail "kublk add -r -i"

_data_fio()
{
	_run_fio --name=data --filename="/dev/ublkb$dev" --rw=randwrite \
		--bs=4k --size=16M --direct=1 --ioengine=libaio --iodepth=16 \
		--verify=crc32c --verify_fatal=1 --randseed=42 "$@"
}
_data_fio --do_verify=1 --output="$UBLK_TMP/write.log" || _fail "initial write+verify"

for point in start half fetched parked; do
	pid=$(_server_pid "$dev")
	q_ms=$(_crash "$dev") || _fail "crash"
	_wait_until 10000 _pid_gone "$pid" || _fail "server $pid still alive"

	# a reader whose requests wait while no server serves the device
	_bg _data_fio --verify_only --output="$UBLK_TMP/wait-$point.log"
	reader=$UBLK_LAST_PID

	rlog=$UBLK_TMP/recover-$point.log
	_bg "$KUBLK" recover -n "$dev" --foreground --stop-at "$point" 2> "$rlog"
	rpid=$UBLK_LAST_PID
	_wait_until 20000 _pid_stopped "$rpid" ||
		_fail "kublk recover --stop-at $point never stopped: $(cat "$rlog")"
	grep -q "stopping at $point" "$rlog" ||
		_fail "kublk recover stopped, but not at $point: $(cat "$rlog")"
	if [ "$point" = parked ]; then
		grep -q "END_USER_RECOVERY parked" "$rlog" ||
			_fail "END_USER_RECOVERY was not parked: $(cat "$rlog")"
	fi
	st=$(_dev_state "$dev")
	[ "$st" = QUIESCED ] ||
		_fail "device $st, not QUIESCED, with the new server stopped at $point"
	kill -0 "$reader" 2>/dev/null || _fail "the reader ended while nothing served the device"

	kill -9 "$rpid"
	wait "$rpid" 2>/dev/null
	_wait_until 10000 _pid_gone "$rpid" || _fail "recovering server $rpid still alive"
	_wait_state "$dev" QUIESCED 10000 > /dev/null ||
		_fail "device $(_dev_state "$dev"), not QUIESCED, after the server died at $point"
	kill -0 "$reader" 2>/dev/null || _fail "the reader ended when the recovering server died"

	l_ms=$(_recover "$dev") || _fail "kublk recover after a crash at $point"
	[ "$(_dev_state "$dev")" = LIVE ] || _fail "not LIVE after the second recover"
	_wait_pid "$reader" 60 ||
		_fail "the reader that waited through the crash at $point failed:" \
			"$(grep -i err "$UBLK_TMP/wait-$point.log" | head -n 3)"
	_data_fio --verify_only --output="$UBLK_TMP/verify.log" ||
		_fail "data does not verify after a crash at $point"
	_log "server crash ($q_ms ms to QUIESCED); new server killed at $point," \
		"device QUIESCED; recovered again in $l_ms ms, waiting reader and data verified"
done
_del_ublk_dev "$dev" || _fail "kublk del"
exit 0
