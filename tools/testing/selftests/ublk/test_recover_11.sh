#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# State uevents and a device that brings itself back. Every state change
# of /dev/ublkcN is a KOBJ_CHANGE uevent with UBLK_DEV_ID and UBLK_STATE;
# ublk_uevent (the stand-in for a udev rule: the VM has no udev) runs
# kublk recover when it sees QUIESCED. kill -9 under fio write+verify with
# REISSUE must bring the device LIVE again with no other step, fio must
# see no error and verify every block; the stall is measured. The events
# of the whole life (LIVE, QUIESCED, LIVE, DEAD) must arrive in order, and
# the read-only sysfs state must agree.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_11
_require_ublk
_require_prog ublk_uevent
_have_program fio

file=$(_make_backing_file 32) || _fail "backing file"
events=$UBLK_TMP/events.log

# _events ID: the states of ID's events so far, space separated
_events()
{
	awk -v id="$1" '$2 == id && NF == 3 { printf "%s%s", s, $3; s = " " }' "$events"
}

# shellcheck disable=SC2317 # called through _wait_until
_saw_state()
{
	_events "$1" | grep -qw "$2"
}

_bg ./ublk_uevent -s QUIESCED \
	-x "$KUBLK recover -n \$UBLK_DEV_ID >> $UBLK_TMP/recover.log 2>&1" \
	> "$events" 2> "$UBLK_TMP/listener.err"
listener=$UBLK_LAST_PID
_wait_until 10000 grep -qx ready "$events" || _fail "ublk_uevent did not start"

dev=$(_add_ublk_dev -t loop -f "$file" -q 2 -d 32 -r -i) || _fail "kublk add"
_wait_until 10000 _saw_state "$dev" LIVE || _fail "no LIVE event: $(_events "$dev")"
[ "$(cat "/sys/class/ublk-char/ublkc$dev/state")" = LIVE ] || _fail "sysfs state is not LIVE"
old=$(_server_pid "$dev")

log=$UBLK_TMP/fio.log
_bg _run_fio --name=selfrecover --filename="/dev/ublkb$dev" --rw=randwrite \
	--bs=4k --size=8M --direct=1 --ioengine=libaio --iodepth=16 \
	--rate_iops=,800 --verify=crc32c --verify_fatal=1 --do_verify=1 \
	--output="$log"
fio=$UBLK_LAST_PID
_wait_io_progress "$dev" 64 || _fail "fio did no I/O"

# shellcheck disable=SC2317 # called through _wait_until
_new_server_live()
{
	local pid

	[ "$(_dev_state "$1")" = LIVE ] || return 1
	pid=$(_server_pid "$1")
	[ -n "$pid" ] && [ "$pid" != "$2" ]
}

t0=$(_now_ms)
kill -9 "$old"
_wait_until 60000 _new_server_live "$dev" "$old" ||
	_fail "the device did not come back by itself: $(_dev_state "$dev")," \
		"events $(_events "$dev")"
stall=$(( $(_now_ms) - t0 ))
_log "self-recovery: kill -> LIVE with a new server $stall ms (events: $(_events "$dev"))"
_wait_pid "$fio" 120 || _fail "fio failed: $(tail -n 5 "$log")"
_log "ok - fio: no error, every write verified"

_del_ublk_dev "$dev" || _fail "kublk del"
_wait_until 10000 _saw_state "$dev" DEAD || _fail "no DEAD event: $(_events "$dev")"
got=$(_events "$dev")
[ "$got" = "LIVE QUIESCED LIVE DEAD" ] || _fail "events of device $dev: '$got'"
_log "ok - events in order: $got"
kill "$listener" 2>/dev/null
wait "$listener" 2>/dev/null
if [ -s "$UBLK_TMP/listener.err" ]; then
	_fail "ublk_uevent: $(cat "$UBLK_TMP/listener.err")"
fi
exit 0
