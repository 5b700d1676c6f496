#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# One queue thread of ublksrv's daemon dies (2 queues, recovery on): gdb
# makes that thread alone call exit(2) (SIGKILL would take the whole
# process) while the other threads stay stopped, the device goes QUIESCED,
# then the rest of the daemon is killed, ublk recover brings the device
# back LIVE, and data written before the death still verifies.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test compat_06
_require_ublksrv
_require_prog kublk
_have_program fio
_have_program gdb

[ "$(_possible_cpus)" -ge 2 ] || _skip "needs 2 CPUs for 2 queues"

_fio_region()
{
	_run_fio --name=region --filename="/dev/ublkb$dev" --rw=randwrite \
		--bs=4k --size=16M --direct=1 --ioengine=libaio --iodepth=16 \
		--verify=crc32c --verify_fatal=1 --randseed=12 "$@"
}

file=$(_make_backing_file 64) || _fail "backing file"
dev=$(_ublksrv_add -t loop -q 2 -d 32 -r 1 -f "$file" --buffered_io) ||
	_fail "ublk add -r 1"
_ublksrv_wait_state "$dev" LIVE || _fail "not LIVE"
pid=$(_ublksrv_pid "$dev")
[ -n "$pid" ] && kill -0 "$pid" || _fail "no daemon pid in ublk list"
_fio_region --do_verify=1 --output="$UBLK_TMP/before.log" ||
	_fail "write+verify before the thread death"

mapfile -t tids < <(_ublksrv_queue_tids "$pid")
_log "daemon $pid, queue threads (user threads but main): ${tids[*]}"
[ ${#tids[@]} = 2 ] || _fail "daemon $pid has ${#tids[@]} queue threads, want 2"
# queue 1's, as ublk list names it
tid=$(_ublksrv list -n "$dev" | sed -n 's/^[[:space:]]*queue 1: tid \([0-9]*\).*/\1/p')
[[ " ${tids[*]} " == *" $tid "* ]] ||
	_fail "ublk list's queue 1 tid '$tid' is not one of the daemon's queue threads"

# gdb stops every thread, lets only queue 1's run (scheduler-locking) to
# call exit(2), waits (kublk wait-state, GET_DEV_INFO) until the driver
# quiesced the device with the rest of the daemon still there but stopped,
# then kills it: ublksrv, left running, would exit by itself and remove
# the saved device data that ublk recover needs
timeout 120 gdb -q -batch -nx -p "$pid" \
	-ex "set scheduler-locking on" \
	-ex "python [t.switch() for t in gdb.selected_inferior().threads() if t.ptid[1] == $tid]" \
	-ex "thread" \
	-ex "call ((long (*)(long, long))syscall)(60, 0)" \
	-ex "shell st=\$(cut -d' ' -f3 /proc/$pid/task/$tid/stat 2>/dev/null); case \$st in ''|Z|X) echo 0;; *) echo \$st;; esac > $UBLK_TMP/tid.rc" \
	-ex "shell $KUBLK wait-state -n $dev QUIESCED -t 20000 > $UBLK_TMP/wait.log 2>&1; echo \$? > $UBLK_TMP/wait.rc" \
	-ex "shell ls /proc/$pid/task > $UBLK_TMP/tasks 2>&1" \
	-ex "kill" \
	> "$UBLK_TMP/gdb.log" 2>&1
grep -v '^\[New LWP' "$UBLK_TMP/gdb.log"
[ "$(cat "$UBLK_TMP/tid.rc" 2>/dev/null)" = 0 ] ||
	_fail "queue thread $tid did not exit (state $(cat "$UBLK_TMP/tid.rc" 2>/dev/null))"
[ "$(cat "$UBLK_TMP/wait.rc" 2>/dev/null)" = 0 ] ||
	_fail "not QUIESCED after queue thread $tid exited: $(cat "$UBLK_TMP/wait.log")"
grep -qx "$pid" "$UBLK_TMP/tasks" ||
	_fail "the daemon's main thread was gone before QUIESCED: not a single-thread death"
_log "thread $tid exited alone (daemon threads left: $(tr '\n' ' ' < "$UBLK_TMP/tasks")): QUIESCED after $(_first_number "$(cat "$UBLK_TMP/wait.log")") ms of waiting"
_wait_until 10000 _pid_gone "$pid" || _fail "daemon $pid does not die"
_ublksrv_state_is "$dev" QUIESCED || _fail "ublk list: not QUIESCED"
_ublksrv recover -n "$dev" || _fail "ublk recover -n $dev"
_ublksrv_wait_state "$dev" LIVE 10000 || _fail "not LIVE after ublk recover"
[ "$(_ublksrv_field "$dev" nr_hw_queues)" = 2 ] || _fail "queues changed"

_fio_region --verify_only --output="$UBLK_TMP/old.log" ||
	_fail "data written before the thread death does not verify"
_fio_region --offset=32M --do_verify=1 --output="$UBLK_TMP/after.log" ||
	_fail "write+verify after recovery"
_ublksrv_del "$dev" || _fail "ublk del"
exit 0
