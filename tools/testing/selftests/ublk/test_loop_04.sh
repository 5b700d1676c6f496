#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ext4 on the loop target: mkfs, mount, write files, umount, e2fsck -fn
# clean, remount and every sha256sum matches; then again on a new device
# made from the same backing file (the data lives in the file).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test loop_04
_require_ublk

src=$UBLK_DATA/src
mnt=$UBLK_DATA/mnt
sums=$UBLK_TMP/sha256
mkdir -p "$src/dir" "$mnt" || _fail "mkdir"

i=0
for kb in 4 100 1024 3072 7168 13000; do
	head -c $((kb * 1024)) /dev/urandom > "$src/file$i" || _fail "source files"
	i=$((i + 1))
done
for i in $(seq 40); do
	head -c 4096 /dev/urandom > "$src/dir/small$i"
done
(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$sums" ||
	_fail "sha256sum of the sources"

_check_sums()
{
	(cd "$mnt" && sha256sum -c --quiet "$sums") || _fail "$1: checksums differ"
}

file=$(_make_backing_file 256) || _fail "backing file"
dev=$(_add_ublk_dev -t loop -f "$file" -q 2) || _fail "kublk add loop"
mkfs.ext4 -q -F "/dev/ublkb$dev" || _fail "mkfs.ext4"
mount "/dev/ublkb$dev" "$mnt" || _fail "mount"
cp -a "$src/." "$mnt/" || _fail "copy files"
umount "$mnt" || _fail "umount"
e2fsck -fn "/dev/ublkb$dev" || _fail "e2fsck after writing"
mount "/dev/ublkb$dev" "$mnt" || _fail "remount"
_check_sums "after remount"
umount "$mnt" || _fail "umount"
_del_ublk_dev "$dev" || _fail "kublk del"
_log "files written, fsck clean, checksums match"

dev=$(_add_ublk_dev -t loop -f "$file" -q 1) || _fail "kublk add loop again"
e2fsck -fn "/dev/ublkb$dev" || _fail "e2fsck on the new device"
mount "/dev/ublkb$dev" "$mnt" || _fail "mount on the new device"
_check_sums "new device on the same file"
umount "$mnt" || _fail "umount"
_del_ublk_dev "$dev" || _fail "kublk del"
_log "same files through a new device on the same backing file"
exit 0
