#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Crash and recover under fio, null target, without REISSUE, 1 and 2
# queues: kill -9 the server while fio runs (continue_on_error), wait for
# QUIESCED, kublk recover; fio finishes, I/O flows after recovery, and fio
# saw at most queues x depth errors (only requests the dead server held).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_01
_require_ublk
_have_program fio

DEPTH=32
for q in 1 2; do
	dev=$(_add_ublk_dev -t null -q "$q" -d "$DEPTH" -r) || _fail "kublk add -r"
	nq=$(_list_field "$dev" QUEUES)
	json=$UBLK_TMP/fio-$q.json
	_bg _run_fio --name=recover --filename="/dev/ublkb$dev" --rw=randrw \
		--bs=4k --direct=1 --ioengine=libaio --iodepth="$DEPTH" \
		--numjobs="$q" --time_based --runtime=10 --continue_on_error=io \
		--output-format=json --output="$json"
	fio_pid=$UBLK_LAST_PID
	_wait_io_progress "$dev" 2000 || _fail "fio did no I/O"

	q_ms=$(_crash "$dev") || _fail "crash"
	kill -0 "$fio_pid" 2>/dev/null || _fail "fio ended when the server died"
	l_ms=$(_recover "$dev") || _fail "kublk recover"
	[ "$(_dev_state "$dev")" = LIVE ] || _fail "not LIVE after recover"
	_log "queues=$q: kill->QUIESCED $q_ms ms, START->LIVE $l_ms ms"
	ios_live=$(_dev_ios_total "$dev")

	_wait_pid "$fio_pid" 60
	rc=$?
	[ "$rc" = 124 ] && _fail "fio hung after recovery"
	[ -s "$json" ] || _fail "fio wrote no result (exit $rc)"
	errs=$(_fio_json_errors "$json") || _fail "cannot parse $json"
	ios=$(_fio_json_ios "$json")
	[ "$(_dev_ios_total "$dev")" -gt "$ios_live" ] ||
		_fail "no I/O completed after recovery"
	_log "queues=$q: fio exit $rc, $ios I/Os, $errs errors (limit $((nq * DEPTH)))"
	[ "$errs" -le $((nq * DEPTH)) ] ||
		_fail "$errs I/O errors, more than queues x depth = $((nq * DEPTH))"
	_del_ublk_dev "$dev" || _fail "kublk del"
done
exit 0
