#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Idle devices cost nothing: with a LIVE device that has no I/O and a
# QUIESCED one whose server was killed while a read waits on it, for 6 s
# (longer than a 5 s monitor period) the kernel queues no ublk work and
# arms no ublk timer, nothing runs in a kublk thread, and the idle server
# does not wake up once. After that the waiting read completes once a
# new server takes over.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test generic_05
_require_ublk

IDLE_S=6

live=$(_add_ublk_dev -t null -q 2) || _fail "kublk add"
quiesced=$(_add_ublk_dev -t null -q 1 -r) || _fail "kublk add -r"
_crash "$quiesced" > /dev/null || _fail "device $quiesced not QUIESCED after the kill"

_bg dd if="/dev/ublkb$quiesced" of=/dev/null bs=4k count=1 iflag=direct status=none
reader=$UBLK_LAST_PID
_wait_until 5000 _pid_waits_for_io "$reader" ||
	_fail "a read of QUIESCED device $quiesced does not wait (state $(_pid_state "$reader"))"

server=$(_server_pid "$live")
[ -d "/proc/${server:-none}" ] || _fail "no server pid for device $live"
switches=$(_ctxt_switches "$server")

_trace_start workqueue/workqueue_queue_work timer/timer_start timer/hrtimer_start
# the measured window: there is nothing to wait for, absence is the point
sleep "$IDLE_S"
_trace_stop
switches=$(($(_ctxt_switches "$server") - switches))
events=$(_trace_lines) || _fail "trace"

_log "${IDLE_S} s idle: $(grep -c . <<< "$events") timer and work events in the guest"
bad=$(grep -i ublk <<< "$events")
msg="ublk work, timer or thread events in an idle window, the first:"
[ -z "$bad" ] || _fail "$(grep -c . <<< "$bad") $msg
$(head -n 5 <<< "$bad")"
[ "$switches" -eq 0 ] ||
	_fail "the idle server of device $live was scheduled $switches times in ${IDLE_S} s"
[ "$(_dev_state "$quiesced")" = QUIESCED ] || _fail "device $quiesced left QUIESCED"
_pid_waits_for_io "$reader" || _fail "the read on device $quiesced stopped waiting"
_log "no ublk event, 0 wake-ups of server $server, the read on $quiesced still waits"

_recover "$quiesced" > /dev/null || _fail "kublk recover"
_wait_pid "$reader" 30 || _fail "the waiting read failed after recovery"
_log "the waiting read completed after recovery"
_del_ublk_dev "$live" || _fail "kublk del $live"
_del_ublk_dev "$quiesced" || _fail "kublk del $quiesced"
exit 0
