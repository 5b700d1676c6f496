#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Handovers that do not go to plan:
# - the old server ignores UBLK_IO_RES_ABORT (kublk --ignore-abort) and
#   keeps /dev/ublkcN: the device stays LIVE, its requests wait, until the
#   server is killed; then the handover completes and the waiting reads
#   succeed;
# - the server dies in the middle of QUIESCE_DEV, while it still holds
#   writes (--hold): QUIESCE_DEV returns, the device ends QUIESCED, and a
#   recovery brings it LIVE with the held writes reissued (REISSUE);
# - QUIESCE_DEV errnos: on a QUIESCED device, and twice.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test handover_02
_require_ublk
_have_program fio

# 1: the old server ignores the abort and is killed
dev=$(_add_ublk_dev -t null -q 2 -r --quiesce --ignore-abort) || _fail "kublk add"
old=$(_server_pid "$dev")
_bg "$KUBLK" handover -n "$dev" > "$UBLK_TMP/handover.log" 2>&1
hpid=$UBLK_LAST_PID
_wait_until 30000 grep -q "handover: QUIESCE_DEV" "$UBLK_TMP/handover.log" ||
	_fail "QUIESCE_DEV did not return: $(cat "$UBLK_TMP/handover.log")"
# the old server has its ABORTs and holds the file: still LIVE, I/O waits
[ "$(_dev_state "$dev")" = LIVE ] || _fail "not LIVE while the old server holds the file"
kill -0 "$old" || _fail "old server $old exited despite --ignore-abort"
_bg dd if="/dev/ublkb$dev" of=/dev/null bs=4k count=4 iflag=direct status=none
reader=$UBLK_LAST_PID
_wait_until 10000 _pid_waits_for_io "$reader" || _fail "the read does not wait"
kill -0 "$hpid" || _fail "kublk handover ended before the old server let go"
kill -9 "$old"
_wait_pid "$hpid" 60 || _fail "kublk handover after the kill: $(cat "$UBLK_TMP/handover.log")"
[ "$(_dev_state "$dev")" = LIVE ] || _fail "not LIVE after the handover"
_wait_pid "$reader" 30 || _fail "the read that waited failed"
_log "ok - old server ignored the abort, was killed, handover done, no error"

# errnos: QUIESCE_DEV on a QUIESCED device
_crash "$dev" > /dev/null || _fail "crash"
out=$("$KUBLK" quiesce -n "$dev" 2>&1) && _fail "QUIESCE_DEV on a QUIESCED device succeeded"
echo "$out" | grep -q "Device or resource busy" ||
	_fail "QUIESCE_DEV on a QUIESCED device: $out"
_recover "$dev" > /dev/null || _fail "kublk recover"
_del_ublk_dev "$dev" || _fail "kublk del"

# 2: the server dies in the middle of QUIESCE_DEV

# shellcheck disable=SC2317 # called through _wait_until
_draining()
{
	_dmesg_since_start | grep -q "ublkc$1: handover: draining"
}

K=2
dev=$(_add_ublk_dev -t null -q 1 -d 16 -r -i --quiesce --hold "$K") || _fail "kublk add --hold"
pid=$(_server_pid "$dev")
_held_writes "$dev" "$K" || _fail "the writes are not held"
writers=("${UBLK_WRITERS[@]}")
_bg "$KUBLK" quiesce -n "$dev"
qpid=$UBLK_LAST_PID
# QUIESCE_DEV now waits for the held writes: the window is open
_wait_until 20000 _draining "$dev" ||
	_fail "QUIESCE_DEV did not start draining"
kill -0 "$qpid" 2>/dev/null || _fail "QUIESCE_DEV returned with writes held"
kill -9 "$pid"
_wait_pid "$qpid" 60 || _fail "QUIESCE_DEV failed after the crash"
_wait_state "$dev" QUIESCED > /dev/null || _fail "not QUIESCED after a crash in the handover"
out=$("$KUBLK" quiesce -n "$dev" 2>&1) && _fail "a second QUIESCE_DEV succeeded"
_recover "$dev" > /dev/null || _fail "kublk recover after a crash in the handover"
for w in "${writers[@]}"; do
	_wait_pid "$w" 30 || _fail "a held write failed despite REISSUE"
done
_log "ok - crash in the middle of QUIESCE_DEV: QUIESCED, recovered, $K held writes reissued"
_del_ublk_dev "$dev" || _fail "kublk del"
exit 0
