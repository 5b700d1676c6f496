#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# One queue thread of ublksrv's daemon dies (2 queues, recovery on): gdb
# makes that thread alone call exit(2) (SIGKILL would take the whole
# process), the device goes QUIESCED, the rest of the daemon goes away,
# ublk recover brings the device back LIVE, and data written before the
# death still verifies.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test compat_06
_require_ublksrv
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
# 2 s in the past: file times come from the coarse clock, so a file
# ublksrv writes in the same tick as the stamp would not be -newer
touch -d "@$(($(date +%s) - 2))" "$UBLK_TMP/stamp"
dev=$(_ublksrv_add -t loop -q 2 -d 32 -r 1 -f "$file" --buffered_io) ||
	_fail "ublk add -r 1"
_ublksrv_wait_state "$dev" LIVE || _fail "not LIVE"
pid=$(_ublksrv_pid "$dev")
[ -n "$pid" ] && kill -0 "$pid" || _fail "no daemon pid in ublk list"
_fio_region --do_verify=1 --output="$UBLK_TMP/before.log" ||
	_fail "write+verify before the thread death"

# the files ublk add wrote (ublksrv's state for recovery), kept aside
mapfile -t state < <(find /run /tmp /var/tmp -xdev -type f -newer "$UBLK_TMP/stamp" \
	2>/dev/null | grep -v "^$UBLK_DATA/")
_log "files ublksrv wrote: ${state[*]:-none}"
tar -cPf "$UBLK_TMP/state.tar" "${state[@]}" /dev/null 2>/dev/null ||
	_fail "cannot save ublksrv's state"

mapfile -t tids < <(_ublksrv_queue_tids "$pid")
_log "daemon $pid, queue threads (user threads but main): ${tids[*]}"
[ ${#tids[@]} = 2 ] || _fail "daemon $pid has ${#tids[@]} queue threads, want 2"
# queue 1's, as ublk list names it
tid=$(_ublksrv list -n "$dev" | sed -n 's/^[[:space:]]*queue 1: tid \([0-9]*\).*/\1/p')
[[ " ${tids[*]} " == *" $tid "* ]] ||
	_fail "ublk list's queue 1 tid '$tid' is not one of the daemon's queue threads"

# gdb makes queue 1's thread call exit(2). (Keeping the daemon's other
# threads stopped meanwhile does not work: the exiting thread waits for
# its io_uring workers, which gdb stops too.) ublksrv then exits by itself
# and removes the state it keeps for ublk recover, which a crash leaves
# behind: the files it wrote at add time are put back, as after a crash.
timeout -k 10 120 gdb -q -batch -nx -p "$pid" \
	-ex "python [t.switch() for t in gdb.selected_inferior().threads() if t.ptid[1] == $tid]" \
	-ex "thread" \
	-ex "call ((long (*)(long, long))syscall)(60, 0)" \
	> "$UBLK_TMP/gdb.log" 2>&1
grep -v '^\[New LWP' "$UBLK_TMP/gdb.log"
grep -q "LWP $tid) exited" "$UBLK_TMP/gdb.log" ||
	_fail "gdb did not see queue thread $tid exit"
_ublksrv_wait_state "$dev" QUIESCED 10000 ||
	_fail "not QUIESCED after queue thread $tid exited"
_log "queue thread $tid exited: QUIESCED"
_wait_until 10000 _pid_gone "$pid" || kill -9 "$pid"
_wait_until 10000 _pid_gone "$pid" || _fail "daemon $pid does not die"
_ublksrv_state_is "$dev" QUIESCED || _fail "ublk list: not QUIESCED once the daemon is gone"
tar -xPf "$UBLK_TMP/state.tar" || _fail "cannot put ublksrv's state back"
_ublksrv recover -n "$dev" || _fail "ublk recover -n $dev"
_ublksrv_wait_state "$dev" LIVE 10000 || _fail "not LIVE after ublk recover"
[ "$(_ublksrv_field "$dev" nr_hw_queues)" = 2 ] || _fail "queues changed"

_fio_region --verify_only --output="$UBLK_TMP/old.log" ||
	_fail "data written before the thread death does not verify"
_fio_region --offset=32M --do_verify=1 --output="$UBLK_TMP/after.log" ||
	_fail "write+verify after recovery"
_ublksrv_del "$dev" || _fail "ublk del"
exit 0
