#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Crash and recover under fio, null target, 1 and 2 queues.
#
# Exact counts first: the server holds K writes unanswered (kublk --hold K)
# and fio has exactly K in flight, all at the server, when it is killed;
# without REISSUE fio must see exactly K errors (a driver that also failed
# unsent or waiting requests would give more), with REISSUE none.
#
# Then kill -9 under a randrw load (continue_on_error), wait for QUIESCED,
# kublk recover: fio finishes, I/O completes after recovery, and fio saw
# at most queues x depth errors (only requests the dead server held).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_01
_require_ublk
_have_program fio

# _fio_errors JSON FIO_PID: wait for fio, set errs to its error count (not
# in a command substitution: a _fail here must end the test, and only the
# test's own shell can wait for its fio)
_fio_errors()
{
	_wait_pid "$2" 60
	[ $? = 124 ] && _fail "fio hung after recovery"
	[ -s "$1" ] || _fail "fio wrote no result"
	errs=$(_fio_json_errors "$1") || _fail "cannot parse $1"
}

K=8
for reissue in "" -i; do
	want=$K
	[ -n "$reissue" ] && want=0
	# shellcheck disable=SC2086	# $reissue: one option or none
	dev=$(_add_ublk_dev -t null -q 2 -d 32 -r $reissue --hold "$K") ||
		_fail "kublk add --hold $K"
	json=$UBLK_TMP/held$reissue.json
	_bg _run_fio --name=held --filename="/dev/ublkb$dev" --rw=randwrite \
		--bs=4k --direct=1 --ioengine=libaio --iodepth="$K" \
		--numjobs=1 --number_ios=2000 --continue_on_error=io \
		--output-format=json --output="$json"
	fio_pid=$UBLK_LAST_PID
	_wait_until 20000 _inflight_at_least "$dev" "$K" ||
		_fail "the server never held $K writes"
	q_ms=$(_crash "$dev") || _fail "crash with $K held"
	_recover "$dev" > /dev/null || _fail "kublk recover"
	_fio_errors "$json" "$fio_pid"
	_log "held $K writes${reissue:+ (REISSUE)}: killed ($q_ms ms to QUIESCED)," \
		"recovered, fio saw $errs errors"
	[ "$errs" = "$want" ] ||
		_fail "$errs I/O errors with $K requests at the dead" \
			"server${reissue:+ and REISSUE}, want $want"
	_del_ublk_dev "$dev" || _fail "kublk del"
done

DEPTH=32
for q in 1 2; do
	dev=$(_add_ublk_dev -t null -q "$q" -d "$DEPTH" -r) || _fail "kublk add -r"
	nq=$(_list_field "$dev" QUEUES)
	json=$UBLK_TMP/fio-$q.json
	_bg _run_fio --name=recover --filename="/dev/ublkb$dev" --rw=randrw \
		--bs=4k --direct=1 --ioengine=libaio --iodepth="$DEPTH" \
		--numjobs="$q" --time_based --runtime="$(_scaled 10)" \
		--continue_on_error=io \
		--output-format=json --output="$json"
	fio_pid=$UBLK_LAST_PID
	_wait_io_progress "$dev" 2000 || _fail "fio did no I/O"

	q_ms=$(_crash "$dev") || _fail "crash"
	kill -0 "$fio_pid" 2>/dev/null || _fail "fio ended when the server died"
	l_ms=$(_recover "$dev") || _fail "kublk recover"
	[ "$(_dev_state "$dev")" = LIVE ] || _fail "not LIVE after recover"
	_log "queues=$q: kill->QUIESCED $q_ms ms, START->LIVE $l_ms ms"
	# fio's time may be up by now on a slow machine: I/O of our own
	dd if="/dev/ublkb$dev" of=/dev/null bs=64k count=16 iflag=direct \
		status=none || _fail "no I/O completes after recovery"

	_fio_errors "$json" "$fio_pid"
	ios=$(_fio_json_ios "$json")
	_log "queues=$q: $ios I/Os, $errs errors (limit $((nq * DEPTH)))"
	[ "$errs" -le $((nq * DEPTH)) ] ||
		_fail "$errs I/O errors, more than queues x depth = $((nq * DEPTH))"
	_del_ublk_dev "$dev" || _fail "kublk del"
done
exit 0
