#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Deaths under every hand-over mode, with writes and verification running
# across them (REISSUE: no error allowed): one queue thread of a
# --comp-in-task server whose rings use IORING_SETUP_DEFER_TASKRUN dies
# while the process lives on (the task work of such a ring runs only in
# its dead submitter); the whole server dies under --comp-in-task and
# under --get-data (NEED_GET_DATA). Each ends QUIESCED, is recovered, and
# every write verifies.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test race_04
_require_ublk
_have_program fio

[ "$(_possible_cpus)" -ge 2 ] || _skip "needs 2 CPUs for 2 queues"

file=$(_make_backing_file 64) || _fail "backing file"

# _case NAME HOW ADD_ARGS...: HOW is kill-queue or kill
_case()
{
	local name=$1 how=$2 dev pid fio log=$UBLK_TMP/$1.log

	shift 2
	dev=$(_add_ublk_dev -t loop -f "$file" -q 2 -d 32 -r -i "$@") ||
		_fail "$name: kublk add $*"
	pid=$(_server_pid "$dev")
	_bg _run_fio --name="$name" --filename="/dev/ublkb$dev" \
		--rw=randwrite --bs=4k --size=16M --numjobs=2 \
		--offset_increment=16M --direct=1 --ioengine=libaio \
		--iodepth=16 --verify=crc32c --verify_fatal=1 --do_verify=1 \
		--rate_iops=,400 --randseed=11 --output="$log"
	fio=$UBLK_LAST_PID
	_wait_io_progress "$dev" 64 || _fail "$name: fio did no I/O"
	if [ "$how" = kill-queue ]; then
		timeout 20 "$KUBLK" kill-queue -n "$dev" -q 1 ||
			_fail "$name: kublk kill-queue"
	else
		kill -9 "$pid"
	fi
	_wait_state "$dev" QUIESCED 10000 > /dev/null ||
		_fail "$name: $(_dev_state "$dev"), not QUIESCED, after the death"
	_wait_until 10000 _pid_gone "$pid" || _fail "$name: server $pid still alive"
	_recover "$dev" > /dev/null || _fail "$name: kublk recover"
	_wait_pid "$fio" 120 || _fail "$name: write+verify failed: $(tail -n 5 "$log")"
	_del_ublk_dev "$dev" || _fail "$name: kublk del"
	_log "$name: QUIESCED, recovered, every write verified"
}

_case defer-taskrun kill-queue --comp-in-task --defer-taskrun
_case comp-in-task kill --comp-in-task
_case get-data kill --get-data
_check_no_hung_tasks || _fail "task stuck in D state"
exit 0
