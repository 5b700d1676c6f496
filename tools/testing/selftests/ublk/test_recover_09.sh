#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# UBLK_F_USER_RECOVERY_FAIL_IO (kublk add -e): when the server dies the
# device goes to FAIL_IO. The K writes the server held (kublk --hold K)
# fail, each exactly once; a new request fails at once instead of
# waiting; /dev/ublkbN, its id and the sysfs state stay; kublk recover
# brings the device LIVE and I/O succeeds again. A second crash, under
# fio this time, ends in FAIL_IO again and recovers again.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_09
_require_ublk
_have_program fio

K=4

# shellcheck disable=SC2317 # called through _wait_until
_dmesg_has_eio()
{
	_dmesg_since_start | grep -q "I/O error, dev ublkb$1"
}
feat=$("$KUBLK" features) || _fail "kublk features"
(( feat & (1 << 9) )) || _fail "GET_FEATURES lacks UBLK_F_USER_RECOVERY_FAIL_IO: $feat"

dev=$(_add_ublk_dev -t null -q 2 -d 16 -r -e --hold "$K") || _fail "kublk add -r -e"
flags=$(_list_field "$dev" FLAGS)
(( flags & (1 << 9) )) || _fail "device flags $flags lack FAIL_IO"
pid=$(_server_pid "$dev")

_held_writes "$dev" "$K" || _fail "the server never held the $K writes"
writers=("${UBLK_WRITERS[@]}")
kill -9 "$pid"
ms=$(_wait_state "$dev" FAIL_IO) || _fail "not FAIL_IO after the kill: $(_dev_state "$dev")"
_log "kill->FAIL_IO $ms ms"
failed=0
for w in "${writers[@]}"; do
	_wait_pid "$w" 30
	rc=$?
	[ "$rc" = 124 ] && _fail "a held write still waits in FAIL_IO"
	[ "$rc" != 0 ] && failed=$((failed + 1))
done
[ "$failed" = "$K" ] || _fail "$failed of the $K held writes failed, want $K"
_log "ok - the $K held writes failed"

# new I/O fails at once: a read that waited would hit the timeout (124)
_timeout 20 dd if="/dev/ublkb$dev" of=/dev/null bs=4k count=1 iflag=direct \
	status=none 2>/dev/null
rc=$?
[ "$rc" = 124 ] && _fail "a read waits in FAIL_IO"
[ "$rc" = 0 ] && _fail "a read succeeded in FAIL_IO"
[ -b "/dev/ublkb$dev" ] || _fail "/dev/ublkb$dev is gone in FAIL_IO"
[ "$(_list_field "$dev" STATE)" = FAIL_IO ] || _fail "kublk list does not show FAIL_IO"
[ "$(cat "/sys/class/ublk-char/ublkc$dev/state")" = FAIL_IO ] ||
	_fail "sysfs state is not FAIL_IO"
_log "ok - new I/O fails at once, the device stays"

l_ms=$(_recover "$dev") || _fail "kublk recover from FAIL_IO"
[ "$(_dev_state "$dev")" = LIVE ] || _fail "not LIVE after recover"
_log "FAIL_IO: START->LIVE $l_ms ms"
dd if=/dev/zero of="/dev/ublkb$dev" bs=64k count=16 oflag=direct status=none ||
	_fail "write after recovery"
dd if="/dev/ublkb$dev" of=/dev/null bs=64k count=16 iflag=direct status=none ||
	_fail "read after recovery"

# again under fio: errors now, but nothing may wait
json=$UBLK_TMP/fio.json
# fio itself in the background (not _run_fio's timeout), to get the SIGTERM
_bg fio --eta=never --name=failio --filename="/dev/ublkb$dev" --rw=randrw --bs=4k \
	--direct=1 --ioengine=libaio --iodepth=16 --number_ios=100000 \
	--continue_on_error=io --output-format=json --output="$json"
fio_pid=$UBLK_LAST_PID
_wait_io_progress "$dev" 64 || _fail "fio did no I/O"
kill -9 "$(_server_pid "$dev")"
_wait_state "$dev" FAIL_IO > /dev/null || _fail "not FAIL_IO after the second kill"
# failed I/O does not count towards number_ios: stop fio. A fio with a
# request waiting in the driver could not exit (it would sit in D state).
_wait_until 10000 _dmesg_has_eio "$dev" || _fail "no I/O error logged in FAIL_IO"
kill -TERM "$fio_pid"
_wait_pid "$fio_pid" 30
[ $? = 124 ] && _fail "fio cannot exit in FAIL_IO: a request waits"
errs=$(_fio_json_errors "$json") || _fail "cannot parse $json"
[ "$errs" -gt 0 ] || _fail "fio saw no error in FAIL_IO"
_log "fio in FAIL_IO: $errs errors, none waited"
_recover "$dev" > /dev/null || _fail "second kublk recover"
dd if="/dev/ublkb$dev" of=/dev/null bs=4k count=16 iflag=direct status=none ||
	_fail "read after the second recovery"
_del_ublk_dev "$dev" || _fail "kublk del"
exit 0
