#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Device parameters reach the block layer: --lbs/--pbs 4096 (sysfs block
# sizes, a 512-byte direct write refused), size from the file, write cache
# "write back", --ro (read-only, writes refused, file untouched),
# --rotational.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test loop_02
_require_ublk

_sysq()
{
	cat "/sys/block/ublkb$1/queue/$2"
}

file=$(_make_backing_file 64) || _fail "backing file"
dd if=/dev/urandom of="$file" bs=1M count=64 conv=notrunc status=none ||
	_fail "fill the backing file"

dev=$(_add_ublk_dev -t loop -f "$file" --lbs 4096 --pbs 4096) ||
	_fail "kublk add --lbs 4096 --pbs 4096"
[ "$(_sysq "$dev" logical_block_size)" = 4096 ] ||
	_fail "logical_block_size $(_sysq "$dev" logical_block_size), want 4096"
[ "$(_sysq "$dev" physical_block_size)" = 4096 ] ||
	_fail "physical_block_size $(_sysq "$dev" physical_block_size), want 4096"
[ "$(blockdev --getss "/dev/ublkb$dev")" = 4096 ] || _fail "blockdev --getss"
[ "$(blockdev --getsize64 "/dev/ublkb$dev")" = "$(stat -c %s "$file")" ] ||
	_fail "device size differs from the file size"
[ "$(_sysq "$dev" write_cache)" = "write back" ] ||
	_fail "write_cache is '$(_sysq "$dev" write_cache)', want 'write back'"
[ "$(_sysq "$dev" rotational)" = 0 ] || _fail "rotational without --rotational"
[ "$(blockdev --getro "/dev/ublkb$dev")" = 0 ] || _fail "read-only without --ro"
if dd if=/dev/zero of="/dev/ublkb$dev" bs=512 count=1 oflag=direct \
	status=none 2>/dev/null; then
	_fail "a 512-byte direct write to a 4096-byte-sector device succeeded"
fi
dd if=/dev/zero of="/dev/ublkb$dev" bs=4096 count=1 seek=1 oflag=direct \
	status=none || _fail "a 4096-byte direct write failed"
_del_ublk_dev "$dev" || _fail "kublk del"
_log "lbs/pbs 4096, size, write back: ok"

sum=$(sha256sum < "$file")
dev=$(_add_ublk_dev -t loop -f "$file" --ro) || _fail "kublk add --ro"
[ "$(blockdev --getro "/dev/ublkb$dev")" = 1 ] || _fail "--ro device not read-only"
[ "$(cat "/sys/block/ublkb$dev/ro")" = 1 ] || _fail "sysfs ro is not 1"
if err=$(dd if=/dev/zero of="/dev/ublkb$dev" bs=4k count=1 oflag=direct \
	status=none 2>&1); then
	_fail "write to a read-only device succeeded"
fi
grep -qiE "not permitted|read-only|permission denied" <<< "$err" ||
	_fail "write to the --ro device failed with '$err', not EPERM/EROFS/EACCES"
dd if="/dev/ublkb$dev" of=/dev/null bs=1M count=4 iflag=direct status=none ||
	_fail "read from the --ro device"
_del_ublk_dev "$dev" || _fail "kublk del"
[ "$(sha256sum < "$file")" = "$sum" ] || _fail "the --ro device changed its file"
_log "--ro: writes refused ($err), file unchanged"

dev=$(_add_ublk_dev -t loop -f "$file" --rotational) || _fail "kublk add --rotational"
[ "$(_sysq "$dev" rotational)" = 1 ] || _fail "--rotational: rotational is not 1"
_del_ublk_dev "$dev" || _fail "kublk del"
_log "--rotational: ok"
exit 0
