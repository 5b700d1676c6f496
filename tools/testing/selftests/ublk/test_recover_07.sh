#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# STOP/DEL in every state of a recovery-enabled device: LIVE, idle and
# under fio; QUIESCED with a reader blocked on the device; between
# START_USER_RECOVERY and END with a blocked reader; raw STOP_DEV then
# DEL_DEV on a QUIESCED device. The device goes away, blocked I/O fails,
# no task hangs. The reader cases use REISSUE, so the crash itself fails
# none of the reader's requests: they wait, and only the del may end them.
# A server that dies while STOP_DEV or DEL_DEV runs (seen blocked in the
# driver first) is test_race_01's.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_07
_require_ublk
_require_prog ublk_errno

# _start_reader ID: a direct reader that runs until the device fails it
_start_reader()
{
	_bg dd if="/dev/ublkb$1" of=/dev/null bs=4k count=100000000 \
		iflag=direct status=none
	reader=$UBLK_LAST_PID
	_wait_io_progress "$1" 100 || _fail "reader did no I/O"
}

# _check_reader_failed: the blocked reader must end, with an error
_check_reader_failed()
{
	_wait_pid "$reader" 30
	case $? in
	0) _fail "reader succeeded on a deleted device" ;;
	124) _fail "reader still blocked 30 s after del" ;;
	esac
}

_check_gone()
{
	_wait_until 10000 _dev_gone "$1" || _fail "device $1 still there"
	[ "$(./ublk_errno state "$1")" = -19 ] || _fail "driver still knows $1"
	_check_no_hung_tasks || _fail "task stuck in D state"
}

# LIVE
dev=$(_add_ublk_dev -t null -r) || _fail "kublk add -r"
pid=$(_server_pid "$dev")
_del_ublk_dev "$dev" || _fail "del of a LIVE device"
_check_gone "$dev"
_wait_until 10000 _pid_gone "$pid" || _fail "server $pid still alive"
_log "LIVE: del ok"

# LIVE under I/O: del while fio reads and writes (REISSUE: the del, not
# the server, is what fails the requests)
dev=$(_add_ublk_dev -t null -q 2 -r -i) || _fail "kublk add -r -i"
pid=$(_server_pid "$dev")
_bg fio --name=del --filename="/dev/ublkb$dev" --rw=randrw --direct=1 \
	--ioengine=libaio --iodepth=32 --numjobs=2 --time_based --runtime=120 \
	--output=/dev/null 2> /dev/null
fio=$UBLK_LAST_PID
_wait_io_progress "$dev" 1000 || _fail "fio did no I/O"
_del_ublk_dev "$dev" || _fail "del of a LIVE device under I/O"
_wait_pid "$fio" 30
case $? in
0) _fail "fio succeeded on a device deleted under it" ;;
124) _fail "fio still running 30 s after del" ;;
esac
_check_gone "$dev"
_wait_until 10000 _pid_gone "$pid" || _fail "server $pid still alive"
_log "LIVE under fio: del ok, fio failed"

# QUIESCED, reader blocked
dev=$(_add_ublk_dev -t null -q 2 -r -i) || _fail "kublk add -r -i"
_start_reader "$dev"
_crash "$dev" > /dev/null || _fail "crash"
kill -0 "$reader" 2>/dev/null || _fail "reader ended when the server died (REISSUE)"
_del_ublk_dev "$dev" || _fail "del of a QUIESCED device"
_check_reader_failed
_check_gone "$dev"
_log "QUIESCED: del ok, blocked reader failed"

# between START_USER_RECOVERY and END_USER_RECOVERY, reader blocked
dev=$(_add_ublk_dev -t null -q 2 -r -i) || _fail "kublk add -r -i"
pid=$(_server_pid "$dev")
_start_reader "$dev"
_crash "$dev" > /dev/null || _fail "crash"
_wait_until 10000 _pid_gone "$pid" || _fail "server $pid still alive"
_expect_res "START_USER_RECOVERY" 0 _start_recovery_settled "$dev"
[ "$(_dev_state "$dev")" = QUIESCED ] || _fail "not QUIESCED after START"
_del_ublk_dev "$dev" || _fail "del between START and END"
_check_reader_failed
_check_gone "$dev"
_log "between START and END: del ok, blocked reader failed"

# QUIESCED: raw STOP_DEV, then raw DEL_DEV
dev=$(_add_ublk_dev -t null -r) || _fail "kublk add -r"
pid=$(_server_pid "$dev")
_crash "$dev" > /dev/null || _fail "crash"
_wait_until 10000 _pid_gone "$pid" || _fail "server $pid still alive"
_expect_res "STOP_DEV on a QUIESCED device" 0 ./ublk_errno stop "$dev"
[ "$(./ublk_errno state "$dev")" = DEAD ] || _fail "not DEAD after STOP_DEV"
_wait_until 10000 test ! -e "/dev/ublkb$dev" || _fail "/dev/ublkb$dev still there"
_expect_res "STOP_DEV again" 0 ./ublk_errno stop "$dev"
_expect_res "START_USER_RECOVERY on the stopped device" -16 \
	./ublk_errno start-recovery "$dev"
_expect_res "DEL_DEV" 0 ./ublk_errno del "$dev"
_check_gone "$dev"
_log "QUIESCED: raw STOP then DEL ok"
exit 0
