#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ublksrv's loop target keeps the data: fio writes with crc32c verify
# through /dev/ublkbN (2 queues, buffered backing file in tmpfs), then a
# byte compare both ways: data written through the device is the backing
# file's, and data written into the backing file reads back through the
# device (O_DIRECT, so no stale page cache hides a miss).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test compat_03
_require_ublksrv
_have_program fio
_have_program cmp

MB=32
file=$(_make_backing_file $MB) || _fail "backing file"
dev=$(_ublksrv_add -t loop -q 2 -d 64 -f "$file" --buffered_io) ||
	_fail "ublk add -t loop --buffered_io"
_ublksrv_wait_state "$dev" LIVE || _fail "not LIVE"

for bs in 4k 64k 512k; do
	_run_fio --name=verify --filename="/dev/ublkb$dev" --rw=randwrite \
		--bs=$bs --direct=1 --ioengine=libaio --iodepth=32 --size=${MB}M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 \
		--output="$UBLK_TMP/fio-$bs.log" ||
		{ cat "$UBLK_TMP/fio-$bs.log"; _fail "fio verify bs=$bs"; }
	grep -q 'err= 0' "$UBLK_TMP/fio-$bs.log" || _fail "fio bs=$bs reported errors"
	_log "fio randwrite+verify crc32c bs=$bs: ok"
done

# through the device into the file
ref=$UBLK_DATA/ref
head -c $((MB << 20)) /dev/urandom > "$ref"
dd if="$ref" of="/dev/ublkb$dev" bs=1M oflag=direct conv=fsync status=none ||
	_fail "dd to /dev/ublkb$dev"
cmp "$ref" "$file" || _fail "the backing file differs from what was written to the device"
_log "device -> backing file: $MB MiB identical"

# into the file, read through the device
head -c $((MB << 20)) /dev/urandom > "$ref"
dd if="$ref" of="$file" bs=1M conv=notrunc,fsync status=none || _fail "dd to $file"
dd if="/dev/ublkb$dev" bs=1M iflag=direct status=none | cmp - "$ref" ||
	_fail "the device reads differ from the backing file"
_log "backing file -> device: $MB MiB identical"

_ublksrv_del "$dev" || _fail "ublk del"
exit 0
