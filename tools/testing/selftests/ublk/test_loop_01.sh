#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# loop target data integrity: fio writes with crc32c verify data (bs 4k,
# 64k, 512k; 1 and 2 queues) on a buffered backing file in tmpfs, and once
# with --direct on ext4 on brd; afterwards the device content equals the
# backing file byte for byte.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test loop_01
_require_ublk
_have_program fio

MB=128

# _verify_run DEV Q BS: write + verify, one 32 MiB region per job
_verify_run()
{
	local dev=$1 q=$2 bs=$3

	_run_fio --name=verify --filename="/dev/ublkb$dev" --rw=randwrite \
		--bs="$bs" --size=32M --offset_increment=32M --numjobs="$q" \
		--direct=1 --ioengine=libaio --iodepth=16 --verify=crc32c \
		--do_verify=1 --verify_fatal=1 --group_reporting \
		--output="$UBLK_TMP/fio-$dev-$bs.log" ||
		_fail "fio verify bs=$bs q=$q failed: $(tail -n 5 "$UBLK_TMP/fio-$dev-$bs.log")"
	_log "bs=$bs queues=$q: written and verified"
}

# _same_as_file DEV FILE: the device reads back exactly the backing file
_same_as_file()
{
	cmp <(dd if="/dev/ublkb$1" bs=1M iflag=direct status=none) "$2" ||
		_fail "/dev/ublkb$1 differs from its backing file"
}

file=$(_make_backing_file $MB) || _fail "backing file"
for q in 1 2; do
	dev=$(_add_ublk_dev -t loop -f "$file" -q "$q" -d 64) ||
		_fail "kublk add loop -q $q"
	size=$(blockdev --getsize64 "/dev/ublkb$dev")
	[ "$size" = $((MB << 20)) ] || _fail "device is $size bytes, file $((MB << 20))"
	for bs in 4k 64k 512k; do
		_verify_run "$dev" "$q" "$bs"
	done
	_same_as_file "$dev" "$file"
	_del_ublk_dev "$dev" || _fail "kublk del"
done

file=$(_make_backing_file $MB direct) || _fail "backing file on ext4/brd"
dev=$(_add_ublk_dev -t loop -f "$file" --direct -q 2 -d 64) ||
	_fail "kublk add loop --direct"
for bs in 4k 512k; do
	_verify_run "$dev" 2 "$bs"
done
_same_as_file "$dev" "$file"
_del_ublk_dev "$dev" || _fail "kublk del"
exit 0
