#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of "make demo": a tour of ublk with the selftests' kublk
# server. Creates a loop-backed ublk device, puts ext4 on it, writes and
# reads back files, then kills the server and recovers the device with the
# filesystem still mounted, and cleans up. Prints every step and command.
#
# Runs in the VM as root, ublk_drv loaded; KUBLK overrides the server path.

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
KUBLK=${KUBLK:-$HERE/../selftests/ublk/kublk}
ERRNO_TOOL=$HERE/../selftests/ublk/ublk_errno
WORK=""
MNT=""
DEV=""
STEP=0

step()
{
	STEP=$((STEP + 1))
	echo
	echo "== step $STEP: $*"
}

# run CMD...: show the command, run it, stop the demo if it fails
run()
{
	echo "   \$ $*"
	"$@" 2>&1 | sed 's/^/     /'
	local rc=${PIPESTATUS[0]}

	if [ "$rc" -ne 0 ]; then
		echo "demo: '$*' failed (exit $rc)" >&2
		exit 1
	fi
}

# shellcheck disable=SC2317 # the EXIT trap
cleanup()
{
	local rc=$?

	trap - EXIT
	echo
	echo "== cleanup"
	if [ -n "$MNT" ] && mountpoint -q "$MNT"; then
		echo "   \$ umount $MNT"
		umount "$MNT" || umount -l "$MNT"
	fi
	if [ -n "$DEV" ]; then
		echo "   \$ kublk del -n $DEV"
		timeout 60 "$KUBLK" del -n "$DEV"
	fi
	[ -n "$WORK" ] && rm -rf "$WORK"
	if [ "$rc" -eq 0 ]; then
		echo "demo: done"
	else
		echo "demo: FAILED (exit $rc)"
	fi
	exit "$rc"
}

[ "$(id -u)" -eq 0 ] || { echo "demo: run as root" >&2; exit 1; }
[ -x "$KUBLK" ] || { echo "demo: $KUBLK not built" >&2; exit 1; }
[ -c /dev/ublk-control ] || { echo "demo: ublk_drv is not loaded" >&2; exit 1; }

WORK=$(mktemp -d /tmp/ublk-demo.XXXXXX) || exit 1
MNT=$WORK/mnt
mkdir -p "$MNT" "$WORK/src"
trap cleanup EXIT
trap 'exit 1' INT TERM

step "what the driver supports (GET_FEATURES)"
run "$KUBLK" features

step "a 256 MiB backing file in tmpfs"
run truncate -s 256M "$WORK/disk.img"

step "a ublk device served by kublk's loop target, 2 queues, recovery + reissue"
echo "   \$ $KUBLK add -t loop -f $WORK/disk.img -q 2 -r -i"
DEV=$(timeout 60 "$KUBLK" add -t loop -f "$WORK/disk.img" -q 2 -r -i) || {
	echo "demo: kublk add failed" >&2
	DEV=""
	exit 1
}
echo "     device id $DEV: /dev/ublkb$DEV (block), /dev/ublkc$DEV (server side)"
run "$KUBLK" list -n "$DEV"
run blockdev --getsize64 "/dev/ublkb$DEV"

step "an ext4 filesystem on /dev/ublkb$DEV, mounted"
run mkfs.ext4 -q -F "/dev/ublkb$DEV"
run mount "/dev/ublkb$DEV" "$MNT"
run df -h "$MNT"

step "write files through the filesystem"
for i in 1 2 3 4; do
	head -c $((i * 1024 * 1024)) /dev/urandom > "$WORK/src/file$i"
done
run cp "$WORK/src/file1" "$WORK/src/file2" "$WORK/src/file3" "$WORK/src/file4" "$MNT/"
run sync
(cd "$WORK/src" && sha256sum file*) > "$WORK/sums"
run ls -l "$MNT"

step "read them back after a remount (from the device, not the page cache)"
run umount "$MNT"
run mount "/dev/ublkb$DEV" "$MNT"
echo "   \$ (cd $MNT && sha256sum -c $WORK/sums)"
(cd "$MNT" && sha256sum -c "$WORK/sums") 2>&1 | sed 's/^/     /'
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "demo: checksums differ" >&2; exit 1; }

step "kill the server (kill -9) while the filesystem stays mounted"
PID=$(timeout 10 "$KUBLK" list -n "$DEV" | awk 'NR == 2 { print $6 }')
if [ -x "$ERRNO_TOOL" ]; then
	# one process kills and polls the state, so the figure is the driver's
	echo "   \$ ublk_errno kill-wait $DEV QUIESCED    (kill -9 $PID, poll GET_DEV_INFO)"
	MS=$(timeout 20 "$ERRNO_TOOL" kill-wait "$DEV" QUIESCED 10000)
else
	run kill -9 "$PID"
	echo "   \$ $KUBLK wait-state -n $DEV QUIESCED"
	MS=$(timeout 20 "$KUBLK" wait-state -n "$DEV" QUIESCED -t 10000)
fi || {
	echo "demo: the device did not become QUIESCED" >&2
	exit 1
}
echo "     QUIESCED ${MS} ms after the kill: /dev/ublkb$DEV stays, its I/O waits"
run "$KUBLK" list -n "$DEV"

step "start a new server for the same device"
run "$KUBLK" recover -n "$DEV"
run "$KUBLK" list -n "$DEV"

step "the files are still there, and the filesystem still takes writes"
echo 3 > /proc/sys/vm/drop_caches
echo "   \$ (cd $MNT && sha256sum -c $WORK/sums)"
(cd "$MNT" && sha256sum -c "$WORK/sums") 2>&1 | sed 's/^/     /'
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "demo: checksums differ" >&2; exit 1; }
run cp "$WORK/src/file4" "$MNT/file5"
run sync
run cmp "$WORK/src/file4" "$MNT/file5"

step "unmount and check the filesystem"
run umount "$MNT"
run e2fsck -fn "/dev/ublkb$DEV"

step "remove the device"
run "$KUBLK" del -n "$DEV"
if [ -e "/dev/ublkb$DEV" ] || [ -e "/dev/ublkc$DEV" ]; then
	echo "demo: device nodes of $DEV still there" >&2
	exit 1
fi
echo "     /dev/ublkb$DEV and /dev/ublkc$DEV are gone"
DEV=""
exit 0
