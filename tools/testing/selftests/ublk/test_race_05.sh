#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A server that lives but never answers (kublk --hold 1 keeps its first
# write forever) must not keep anything waiting longer than the driver's
# abort_timeout_ms (set to 2 s here): DEL_DEV of such a device completes
# and the held write fails, with and without recovery; and when another
# queue's thread dies, the death handler takes the held write back from
# the living queue (REISSUE: it waits for the next server), the device
# goes QUIESCED, and after recovery the write completes.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test race_05
_require_ublk
_require_prog ublk_errno

param=/sys/module/ublk_drv/parameters/abort_timeout_ms
[ -w "$param" ] || _fail "$param missing"
old_timeout=$(cat "$param")
trap 'echo "$old_timeout" > "$param"; _cleanup_test' EXIT
echo 2000 > "$param"

_held_writer()
{
	_bg taskset -c 0 dd if=/dev/zero of="/dev/ublkb$1" bs=4k count=1 \
		oflag=direct status=none
	writer=$UBLK_LAST_PID
	_wait_until 10000 _inflight_at_least "$1" 1 ||
		_fail "the write never reached the server"
}

for rec in "" -r; do
	# shellcheck disable=SC2086	# $rec: one option or none
	dev=$(_add_ublk_dev -t null $rec --hold 1) || _fail "kublk add --hold 1"
	pid=$(_server_pid "$dev")
	_held_writer "$dev"
	t0=$(_now_ms)
	res=$(timeout 60 ./ublk_errno del "$dev") ||
		_fail "DEL_DEV hung on a server that does not answer"
	[ "$res" = 0 ] || _fail "DEL_DEV answered $res"
	_wait_pid "$writer" 30
	rc=$?
	[ "$rc" = 124 ] && _fail "the held write is still waiting"
	[ "$rc" = 0 ] && _fail "the held write succeeded on a deleted device"
	_log "${rec:-no recovery}: DEL_DEV with a write held took $(($(_now_ms) - t0)) ms;" \
		"the write failed"
	kill -9 "$pid" 2>/dev/null
	_wait_until 10000 _pid_gone "$pid" || _fail "server $pid still alive"
done

[ "$(_possible_cpus)" -ge 2 ] || { _log "one CPU: queue case skipped"; exit 0; }
dev=$(_add_ublk_dev -t null -q 2 -r -i --hold 1) || _fail "kublk add -q 2 --hold 1"
pid=$(_server_pid "$dev")
_held_writer "$dev"
t0=$(_now_ms)
timeout 20 "$KUBLK" kill-queue -n "$dev" -q 1 || _fail "kublk kill-queue"
_wait_state "$dev" QUIESCED 30000 > /dev/null ||
	_fail "$(_dev_state "$dev"), not QUIESCED: the death handler waits for the living queue"
_log "queue 1 died while queue 0 held a write: QUIESCED after $(($(_now_ms) - t0)) ms"
kill -0 "$writer" 2>/dev/null || _fail "the held write ended (REISSUE: it must wait)"
# the old server still waits for its held tag: it has to be killed
kill -9 "$pid"
_wait_until 10000 _pid_gone "$pid" || _fail "server $pid still alive"
_recover "$dev" > /dev/null || _fail "kublk recover"
_wait_pid "$writer" 30 || _fail "the reissued write did not complete after recovery"
_del_ublk_dev "$dev" || _fail "kublk del"
_check_no_hung_tasks || _fail "task stuck in D state"
exit 0
