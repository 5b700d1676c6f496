#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Crash and recover with REISSUE (-r -i), loop target, under fio write +
# crc32c verify, 1 and 2 queues: zero I/O errors, verification passes and
# the device still equals its backing file.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_02
_require_ublk
_have_program fio

file=$(_make_backing_file 128) || _fail "backing file"
for q in 1 2; do
	dev=$(_add_ublk_dev -t loop -f "$file" -q "$q" -d 32 -r -i) ||
		_fail "kublk add -r -i"
	json=$UBLK_TMP/fio-$q.json
	_bg _run_fio --name=reissue --filename="/dev/ublkb$dev" --rw=randwrite \
		--bs=4k --size=32M --offset_increment=32M --numjobs="$q" \
		--direct=1 --ioengine=libaio --iodepth=16 --verify=crc32c \
		--do_verify=1 --verify_fatal=1 --output-format=json \
		--output="$json"
	fio_pid=$UBLK_LAST_PID
	_wait_io_progress "$dev" 500 || _fail "fio did no I/O"
	kill -0 "$fio_pid" 2>/dev/null || _fail "fio ended before the crash"

	q_ms=$(_crash "$dev") || _fail "crash"
	l_ms=$(_recover "$dev") || _fail "kublk recover"
	_log "queues=$q: kill->QUIESCED $q_ms ms, START->LIVE $l_ms ms"

	_wait_pid "$fio_pid" 120 || _fail "fio write+verify failed across the crash"
	errs=$(_fio_json_errors "$json") || _fail "cannot parse $json"
	[ "$errs" = 0 ] || _fail "$errs I/O errors with REISSUE"
	cmp <(dd if="/dev/ublkb$dev" bs=1M iflag=direct status=none) "$file" ||
		_fail "device and backing file differ"
	_log "queues=$q: 0 errors, data verified"
	_del_ublk_dev "$dev" || _fail "kublk del"
done
exit 0
