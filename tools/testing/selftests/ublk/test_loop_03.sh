#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Discard and write-zeroes reach the backing file: blkdiscard frees the
# file's blocks and the range reads back zeros; blkdiscard -z zeroes a
# range in the file; data outside both ranges is untouched; --no-discard
# turns discard off.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test loop_03
_require_ublk
_have_program blkdiscard

# _pattern MB: MB MiB of 0xaa
_pattern()
{
	tr '\000' '\252' < /dev/zero | head -c $(($1 << 20))
}

# _dev_range DEV OFF_MB LEN_MB: read a range of the device, bypassing cache
_dev_range()
{
	dd if="/dev/ublkb$1" bs=1M skip="$2" count="$3" iflag=direct status=none
}

_is_zero()
{
	cmp -s -n $(($1 << 20)) - /dev/zero
}

_is_pattern()
{
	cmp -s - <(_pattern "$1")
}

file=$(_make_backing_file 64) || _fail "backing file"
dev=$(_add_ublk_dev -t loop -f "$file") || _fail "kublk add loop"
b=/dev/ublkb$dev

[ "$(cat "/sys/block/ublkb$dev/queue/discard_max_bytes")" -gt 0 ] ||
	_fail "discard not enabled on the loop device"
[ "$(cat "/sys/block/ublkb$dev/queue/write_zeroes_max_bytes")" -gt 0 ] ||
	_fail "write zeroes not enabled on the loop device"

_pattern 64 | dd of="$b" bs=1M iflag=fullblock oflag=direct status=none ||
	_fail "fill the device"
full=$(stat -c %b "$file")
[ $((full * 512)) -ge $((60 << 20)) ] ||
	_fail "backing file holds $((full * 512)) bytes after filling 64 MiB"

# discard 8-24 MiB: blocks freed in the file, zeros read back
blkdiscard -o $((8 << 20)) -l $((16 << 20)) "$b" || _fail "blkdiscard"
after=$(stat -c %b "$file")
freed=$(((full - after) * 512))
[ "$freed" -ge $((15 << 20)) ] ||
	_fail "discarding 16 MiB freed only $freed bytes of the backing file"
_dev_range "$dev" 8 16 | _is_zero 16 || _fail "discarded range does not read zeros"
dd if="$file" bs=1M skip=8 count=16 status=none | _is_zero 16 ||
	_fail "discarded range of the backing file is not zero"
_log "discard of 16 MiB freed $freed bytes, reads zeros"

# write zeroes 32-40 MiB
blkdiscard -z -o $((32 << 20)) -l $((8 << 20)) "$b" || _fail "blkdiscard -z"
_dev_range "$dev" 32 8 | _is_zero 8 || _fail "zeroed range does not read zeros"
dd if="$file" bs=1M skip=32 count=8 status=none | _is_zero 8 ||
	_fail "zeroed range of the backing file is not zero"
_log "write zeroes of 8 MiB: zeros in the device and the file"

# everything else still holds the pattern
_dev_range "$dev" 0 8 | _is_pattern 8 || _fail "0-8 MiB changed"
_dev_range "$dev" 24 8 | _is_pattern 8 || _fail "24-32 MiB changed"
_dev_range "$dev" 40 24 | _is_pattern 24 || _fail "40-64 MiB changed"
_del_ublk_dev "$dev" || _fail "kublk del"

dev=$(_add_ublk_dev -t loop -f "$file" --no-discard) || _fail "kublk add --no-discard"
[ "$(cat "/sys/block/ublkb$dev/queue/discard_max_bytes")" = 0 ] ||
	_fail "--no-discard: discard still enabled"
if blkdiscard -o 0 -l $((1 << 20)) "/dev/ublkb$dev" 2>/dev/null; then
	_fail "--no-discard: blkdiscard succeeded"
fi
_dev_range "$dev" 0 1 | _is_pattern 1 || _fail "--no-discard: data changed"
_del_ublk_dev "$dev" || _fail "kublk del"
exit 0
