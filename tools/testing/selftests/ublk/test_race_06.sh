#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A server killed while the driver copies a request's data to or from its
# buffer, with REISSUE: no I/O error. A SIGKILL makes a page fault in the
# copy give up when the fault has to wait for the server's mmap lock, and
# the copy fails; that is the server dying, not a bad buffer, so the
# request must wait for the next server like every other one it held.
# kublk --churn-mm keeps the buffers unpopulated (every copy faults) and
# the mmap lock taken for writing; UBLK_RACE06_KILLS kills (default 40)
# under 64K random reads and writes, each followed by a recovery.
# Before the fix this failed at the 14th kill, with 3 reads and a write
# failed at once (and, without --churn-mm's mprotect(), at the 30th).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test race_06
_require_ublk
_have_program fio

kills=${UBLK_RACE06_KILLS:-40}
dev=$(_add_ublk_dev -t null -q 1 -d 32 -r -i --churn-mm) || _fail "kublk add"
log=$UBLK_TMP/fio.json
# fio runs until told to stop, after the kills; the limit is a safety net
UBLK_FIO_TIMEOUT=$((kills * 30 + 120))
_bg _run_fio --name=race06 --filename="/dev/ublkb$dev" --rw=randrw --bs=64k \
	--direct=1 --ioengine=libaio --iodepth=16 --time_based --runtime=3600 \
	--output-format=json --output="$log"
fio=$UBLK_LAST_PID
# fio prints its first error before the json
_fio_first_error() { grep -m1 -E 'io_u error|fio: .*error' "$1"; }
_wait_io_progress "$dev" 64 || _fail "fio did no I/O"

for i in $(seq 1 "$kills"); do
	kill -0 "$fio" 2>/dev/null || _fail "kill $i: fio has ended: $(_fio_first_error "$log")"
	_wait_io_progress "$dev" 16 "$(_scaled 60000)" ||
		_fail "kill $i: no I/O since the last recovery"
	_crash "$dev" > /dev/null || _fail "kill $i: device not QUIESCED"
	_recover "$dev" --churn-mm > /dev/null || _fail "kill $i: kublk recover"
done
_wait_io_progress "$dev" 16 "$(_scaled 60000)" || _fail "no I/O after the last recovery"
# $fio is the subshell of _bg; timeout(1) below it passes SIGINT on to fio,
# which then ends cleanly and writes its json
pkill -INT -P "$fio"
_wait_pid "$fio" 60
errors=$(_fio_json_errors "$log") && [ -n "$errors" ] ||
	_fail "no fio json output: $(head -c 300 "$log")"
[ "$errors" -eq 0 ] || _fail "$errors I/O errors after $kills kills"
_log "$kills kills under copies to and from a faulting buffer: no I/O error"
_del_ublk_dev "$dev" || _fail "kublk del"
_check_no_hung_tasks || _fail "task stuck in D state"
exit 0
