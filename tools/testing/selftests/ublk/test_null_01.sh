#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# null target lifecycle, 1 and 2 queues: add -> LIVE with the asked queues
# and depth, 1 GiB block device, server alive; del -> both device nodes
# and the server process gone, the id unknown to the driver.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test null_01
_require_ublk
_require_prog ublk_errno

ncpu=$(_possible_cpus)
for q in 1 2; do
	want_q=$((q < ncpu ? q : ncpu))
	dev=$(_add_ublk_dev -t null -q "$q" -d 64) || _fail "kublk add -q $q"
	_log "device $dev: $(_timeout 10 "$KUBLK" list -n "$dev" | tail -n 1)"

	[ "$(_list_field "$dev" STATE)" = LIVE ] || _fail "list: $dev not LIVE"
	[ "$(_list_field "$dev" QUEUES)" = "$want_q" ] ||
		_fail "list: $dev has $(_list_field "$dev" QUEUES) queues, want $want_q"
	[ "$(_list_field "$dev" DEPTH)" = 64 ] ||
		_fail "list: $dev depth $(_list_field "$dev" DEPTH), want 64"
	[ "$(_dev_state "$dev")" = LIVE ] || _fail "state: $dev not LIVE"
	[ "$(./ublk_errno state "$dev")" = LIVE ] || _fail "GET_DEV_INFO: $dev not LIVE"

	[ -b "/dev/ublkb$dev" ] || _fail "/dev/ublkb$dev missing"
	[ -c "/dev/ublkc$dev" ] || _fail "/dev/ublkc$dev missing"
	size=$(blockdev --getsize64 "/dev/ublkb$dev") || _fail "blockdev"
	[ "$size" = 1073741824 ] || _fail "/dev/ublkb$dev is $size bytes, want 1 GiB"
	[ "$(find "/sys/block/ublkb$dev/mq/" -mindepth 1 -maxdepth 1 | wc -l)" = "$want_q" ] ||
		_fail "/sys/block/ublkb$dev/mq has not $want_q hardware queues"

	pid=$(_server_pid "$dev")
	[[ "$pid" =~ ^[1-9][0-9]*$ ]] || _fail "no server pid for $dev: '$pid'"
	kill -0 "$pid" || _fail "server $pid of $dev not running"
	dd if="/dev/ublkb$dev" of=/dev/null bs=1M count=4 iflag=direct status=none ||
		_fail "read from /dev/ublkb$dev"

	_del_ublk_dev "$dev" || _fail "kublk del -n $dev"
	_wait_until 5000 _dev_gone "$dev" || _fail "device nodes of $dev still there"
	_wait_until 5000 _pid_gone "$pid" || _fail "server $pid still running after del"
	[ -z "$(_list_field "$dev" STATE)" ] || _fail "kublk list still shows $dev"
	[ "$(./ublk_errno state "$dev")" = -19 ] || _fail "driver still knows $dev"
	_log "queues=$q: add, LIVE, 1 GiB, del ok"
done
exit 0
