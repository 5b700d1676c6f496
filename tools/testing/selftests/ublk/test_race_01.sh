#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A server that dies while DEL_DEV (or STOP_DEV) runs. Rounds with --hold 1 make the
# window certain: the server never answers its first write, so DEL_DEV is
# seen blocked in the driver (state D) waiting for it before the server
# is killed. Rounds
# without it kill the server and send DEL_DEV at the same moment, under
# fio. (--hold takes writes only: the partition scan reads.) With and
# without recovery. DEL_DEV must complete, the device be gone, and no task
# be left in D state.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test race_01
_require_ublk
_require_prog ublk_errno

_in_d_state()
{
	[ "$(_pid_state "$1")" = D ]
}

_check_gone()
{
	_wait_until 10000 _dev_gone "$1" || _fail "device $1 still there"
	[ "$(./ublk_errno state "$1")" = -19 ] || _fail "driver still knows $1"
}

# _del_during_death ID SERVER_PID blocked|at-once [stop]: DEL_DEV (or
# STOP_DEV, then DEL_DEV), the death, the command completes
_del_during_death()
{
	local dev=$1 pid=$2 cmd=${4:-del} del res

	./ublk_errno "$cmd" "$dev" > "$UBLK_RESULTS/del.out" &
	del=$!
	if [ "$3" = blocked ]; then
		_wait_until 20000 _in_d_state "$del" ||
			_fail "DEL_DEV never blocked on the held request"
	fi
	kill -9 "$pid"
	_wait_pid "$del" 30
	case $? in
	0) ;;
	124) _fail "DEL_DEV of $dev still running 30 s after its server died" ;;
	*) _fail "ublk_errno del failed" ;;
	esac
	res=$(cat "$UBLK_RESULTS/del.out")
	[ "$res" = 0 ] || _fail "$cmd answered $res"
	if [ "$cmd" = stop ]; then
		[ "$(./ublk_errno state "$dev")" = DEAD ] || _fail "not DEAD after STOP_DEV"
		[ "$(./ublk_errno del "$dev")" = 0 ] || _fail "DEL_DEV after STOP_DEV"
	fi
	_check_gone "$dev"
	_wait_until 10000 _pid_gone "$pid" || _fail "server $pid still alive"
}

for rec in -r ""; do
	for round in 1 2; do
		# shellcheck disable=SC2086	# $rec: one option or none
		dev=$(_add_ublk_dev -t null -q 2 $rec --hold 1) ||
			_fail "kublk add --hold 1"
		pid=$(_server_pid "$dev")
		_bg dd if=/dev/zero of="/dev/ublkb$dev" bs=4k count=16 \
			oflag=direct status=none
		writer=$UBLK_LAST_PID
		_wait_until 10000 _inflight_at_least "$dev" 1 ||
			_fail "the write never reached the server"
		# odd rounds: STOP_DEV is the command the server dies in
		_del_during_death "$dev" "$pid" blocked \
			"$([ "$round" = 1 ] && echo stop || echo del)"
		_wait_pid "$writer" 30
		[ $? = 124 ] && _fail "writer still blocked after the delete"
		_log "${rec:-no recovery} round $round: DEL_DEV blocked, server killed, DEL done"

		# shellcheck disable=SC2086
		dev=$(_add_ublk_dev -t null -q 2 $rec) || _fail "kublk add"
		pid=$(_server_pid "$dev")
		_bg fio --name=race --filename="/dev/ublkb$dev" --rw=randread \
			--direct=1 --ioengine=libaio --iodepth=32 --numjobs=2 \
			--time_based --runtime=30 --output=/dev/null 2> /dev/null
		fio=$UBLK_LAST_PID
		_wait_io_progress "$dev" 100 || _fail "fio did no I/O"
		_del_during_death "$dev" "$pid" at-once
		_wait_pid "$fio" 30
		[ $? = 124 ] && _fail "fio still running after the delete"
		_log "${rec:-no recovery} round $round: kill and DEL_DEV at once under fio"
	done
done
_check_no_hung_tasks || _fail "task stuck in D state"
exit 0
