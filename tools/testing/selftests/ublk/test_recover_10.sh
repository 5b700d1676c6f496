#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The recovery deadline (/sys/class/ublk-char/ublkcN/recovery_timeout_ms,
# kublk add --recovery-timeout, module parameter recovery_timeout_ms):
# with T and no new server, a reader blocked on the QUIESCED device gets
# EIO no sooner than T after the kill and not much later, the device goes
# to FAIL_IO, and no task hangs; a new server then brings it LIVE. A limit
# written while QUIESCED counts from the write. With T = 0 a reader waits
# until the recovery and then succeeds (the 6.1 behaviour).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_10
_require_ublk

T=$(_scaled 2000)
SLACK=$(_scaled 3000)
param=/sys/module/ublk_drv/parameters/recovery_timeout_ms

[ "$(cat "$param")" = 0 ] || _fail "module parameter default is $(cat "$param")"

# _read_bg ID: one direct read in the background; its pid in $UBLK_LAST_PID
_read_bg()
{
	_bg dd if="/dev/ublkb$1" of=/dev/null bs=4k count=1 iflag=direct status=none
}

dev=$(_add_ublk_dev -t null -r --recovery-timeout "$T") || _fail "kublk add"
attr=/sys/class/ublk-char/ublkc$dev/recovery_timeout_ms
[ "$(cat "$attr")" = "$T" ] || _fail "$attr is $(cat "$attr"), want $T"

t_kill=$(_now_ms)
_crash "$dev" > /dev/null || _fail "crash"
_read_bg "$dev"
reader=$UBLK_LAST_PID
_wait_pid "$reader" 60
rc=$?
t_fail=$(( $(_now_ms) - t_kill ))
[ "$rc" = 124 ] && _fail "the reader still waits after 60 s"
[ "$rc" = 0 ] && _fail "the reader succeeded without a server"
[ "$t_fail" -ge "$T" ] || _fail "the reader failed $t_fail ms after the kill, before T = $T ms"
[ "$t_fail" -le $((T + SLACK)) ] ||
	_fail "the reader failed $t_fail ms after the kill, T = $T ms"
[ "$(_dev_state "$dev")" = FAIL_IO ] || _fail "not FAIL_IO after the deadline"
_log "deadline $T ms: the reader got EIO $t_fail ms after the kill"
_check_no_hung_tasks || _fail "task stuck in D state"

_recover "$dev" > /dev/null || _fail "kublk recover after the deadline"
[ "$(_dev_state "$dev")" = LIVE ] || _fail "not LIVE after recover"
dd if="/dev/ublkb$dev" of=/dev/null bs=4k count=16 iflag=direct status=none ||
	_fail "read after the recovery"

# a new limit written while QUIESCED counts from the write
echo 0 > "$attr" || _fail "write 0 to $attr"
_crash "$dev" > /dev/null || _fail "second crash"
_read_bg "$dev"
reader=$UBLK_LAST_PID
t_set=$(_now_ms)
echo "$T" > "$attr" || _fail "write $T to $attr"
_wait_pid "$reader" 60
rc=$?
t_fail=$(( $(_now_ms) - t_set ))
case $rc in
0 | 124) _fail "reader status $rc after the limit was set" ;;
esac
[ "$t_fail" -le $((T + SLACK)) ] || _fail "failed $t_fail ms after the write, T = $T ms"
_log "limit written while QUIESCED: EIO $t_fail ms after the write"
_recover "$dev" > /dev/null || _fail "kublk recover"

# T = 0: the reader waits through a crash and succeeds after recovery
echo 0 > "$attr" || _fail "write 0 to $attr"
_crash "$dev" > /dev/null || _fail "third crash"
_read_bg "$dev"
reader=$UBLK_LAST_PID
sleep "$(( (T + SLACK) / 1000 + 1 ))"	# longer than any deadline above
kill -0 "$reader" 2>/dev/null || _fail "with T = 0 the reader did not wait"
[ "$(_dev_state "$dev")" = QUIESCED ] || _fail "with T = 0 the device left QUIESCED"
_recover "$dev" > /dev/null || _fail "kublk recover with T = 0"
_wait_pid "$reader" 30 || _fail "with T = 0 the waiting read failed"
_log "T = 0: the read waited for the recovery and succeeded"
_del_ublk_dev "$dev" || _fail "kublk del"

# the module parameter is what a new device gets
echo 1500 > "$param" || _fail "set $param"
dev=$(_add_ublk_dev -t null -r) || { echo 0 > "$param"; _fail "kublk add"; }
got=$(cat "/sys/class/ublk-char/ublkc$dev/recovery_timeout_ms")
echo 0 > "$param"
[ "$got" = 1500 ] || _fail "a new device got $got, the parameter is 1500"
_del_ublk_dev "$dev" || _fail "kublk del"
exit 0
