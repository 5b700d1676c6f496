#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ext4 on the loop target with REISSUE survives a server crash: files are
# being written (each fsynced) when the server is killed; after recovery
# the writer finishes without an error, every file matches its sha256sum
# after umount + e2fsck -fn (clean) + remount.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_04
_require_ublk

NFILES=16
src=$UBLK_DATA/src
mnt=$UBLK_DATA/mnt
sums=$UBLK_TMP/sha256
done_list=$UBLK_TMP/done
mkdir -p "$src" "$mnt" || _fail "mkdir"
for i in $(seq "$NFILES"); do
	head -c $((2 << 20)) /dev/urandom > "$src/f$i" || _fail "source files"
done
(cd "$src" && sha256sum f*) > "$sums" || _fail "sha256sum"
: > "$done_list"

# shellcheck disable=SC2317 # called through _bg
_writer()
{
	local i

	for i in $(seq "$NFILES"); do
		dd if="$src/f$i" of="$mnt/f$i" bs=1M conv=fsync status=none || return 1
		echo "f$i" >> "$done_list"
	done
}

# shellcheck disable=SC2317 # called through _wait_until
_nr_done_at_least()
{
	[ "$(wc -l < "$done_list")" -ge "$1" ]
}

file=$(_make_backing_file 256) || _fail "backing file"
dev=$(_add_ublk_dev -t loop -f "$file" -q 2 -d 32 -r -i) || _fail "kublk add -r -i"
mkfs.ext4 -q -F "/dev/ublkb$dev" || _fail "mkfs.ext4"
mount "/dev/ublkb$dev" "$mnt" || _fail "mount"

_bg _writer
writer=$UBLK_LAST_PID
_wait_until 60000 _nr_done_at_least 3 || _fail "writer made no progress"
kill -0 "$writer" 2>/dev/null || _fail "writer ended before the crash"

q_ms=$(_crash "$dev") || _fail "crash"
l_ms=$(_recover "$dev") || _fail "kublk recover"
_log "crashed after $(wc -l < "$done_list") files: kill->QUIESCED $q_ms ms, START->LIVE $l_ms ms"

_wait_pid "$writer" 120 || _fail "writer failed across the crash"
[ "$(wc -l < "$done_list")" = "$NFILES" ] || _fail "not every file written"
sync || _fail "sync"
umount "$mnt" || _fail "umount"
e2fsck -fn "/dev/ublkb$dev" || _fail "e2fsck after crash + recovery"
mount "/dev/ublkb$dev" "$mnt" || _fail "remount"
(cd "$mnt" && sha256sum -c --quiet "$sums") || _fail "checksums differ"
umount "$mnt" || _fail "umount"
_log "$NFILES files intact, fsck clean"
_del_ublk_dev "$dev" || _fail "kublk del"
exit 0
