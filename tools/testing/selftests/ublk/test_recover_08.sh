#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A crash during recovery: after the server is killed, `kublk recover
# --foreground' is stopped (SIGSTOP) the moment it has /dev/ublkcN open,
# i.e. after START_USER_RECOVERY, and killed there; once more after letting
# it run for 20 ms. The device must stay (or become again) QUIESCED, a
# second kublk recover brings it LIVE, and the data written before
# verifies. At least one kill must have landed before END_USER_RECOVERY
# (the device still QUIESCED while the new server was stopped).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_08
_require_ublk
_require_prog ublk_errno
_have_program fio

file=$(_make_backing_file 64) || _fail "backing file"
dev=$(_add_ublk_dev -t loop -f "$file" -q 2 -d 16 -r -i) || _fail "kublk add -r -i"

_data_fio()
{
	_run_fio --name=data --filename="/dev/ublkb$dev" --rw=randwrite \
		--bs=4k --size=16M --direct=1 --ioengine=libaio --iodepth=16 \
		--verify=crc32c --verify_fatal=1 --randseed=42 "$@"
}
_data_fio --do_verify=1 --output="$UBLK_TMP/write.log" || _fail "initial write+verify"

during=0
for run_ms in 0 0 20; do
	pid=$(_server_pid "$dev")
	q_ms=$(_crash "$dev") || _fail "crash"
	_wait_until 10000 _pid_gone "$pid" || _fail "server $pid still alive"

	# kublk recover stops itself before exec; stop-when-open resumes it
	# and stops it again the moment it has the cdev open
	_bg bash -c 'kill -STOP $$; exec "$@"' recover "$KUBLK" recover -n "$dev" --foreground
	rpid=$UBLK_LAST_PID
	_wait_until 10000 _pid_stopped "$rpid" || _fail "recover did not start"
	./ublk_errno stop-when-open "$rpid" "/dev/ublkc$dev" 20000 > /dev/null ||
		_fail "kublk recover never opened /dev/ublkc$dev"
	if [ "$run_ms" != 0 ]; then
		kill -CONT "$rpid"
		sleep "0.0$run_ms"
		kill -STOP "$rpid"
	fi
	st=$(./ublk_errno state "$dev")
	[ "$st" = QUIESCED ] && during=$((during + 1))
	kill -9 "$rpid"
	wait "$rpid" 2>/dev/null

	_wait_state "$dev" QUIESCED 10000 > /dev/null ||
		_fail "device $(_dev_state "$dev"), not QUIESCED, after the recovering server died"
	l_ms=$(_recover "$dev") || _fail "kublk recover after a crash during recovery"
	[ "$(_dev_state "$dev")" = LIVE ] || _fail "not LIVE after the second recover"
	_data_fio --verify_only --output="$UBLK_TMP/verify.log" ||
		_fail "data does not verify after a crash during recovery"
	_log "server crash ($q_ms ms to QUIESCED); new server killed $run_ms ms after" \
		"opening the cdev while the device was $st; recovered again in $l_ms ms," \
		"data verified"
done
[ "$during" -ge 1 ] || _fail "no kill landed between START and END_USER_RECOVERY"
_del_ublk_dev "$dev" || _fail "kublk del"
exit 0
