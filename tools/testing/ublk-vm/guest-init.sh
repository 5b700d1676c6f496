#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Stage 2 of the ublk VM, PID 1 after switch_root: the root is the host's /
# (read-only 9p) under a tmpfs overlay. Sets up the guest, runs the test
# runner or a guest script, then powers off. $1 is the env file the host
# wrote (UBLK_MODE, UBLK_REPO, UBLK_RESDIR, UBLK_KVER, UBLK_MODTREE, ...).

# shellcheck disable=SC1090
. "$1"

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8 TMPDIR=/tmp

# shellcheck disable=SC2317	# the EXIT trap
power_off() {
	sync
	umount "$UBLK_RESDIR" 2>/dev/null
	echo o > /proc/sysrq-trigger
	sleep 600
}
trap power_off EXIT

say() { echo "ublk-vm: $*" > /dev/console; }

# Fresh tmpfs on /tmp and /run, unless the host paths this run needs live
# there (a clone in /tmp): then the overlay's view of them stays.
uses_host() {
	local p

	for p in "$UBLK_REPO" "$UBLK_RESDIR" "$UBLK_MODTREE" "$UBLK_TEST_DIR" \
		 "$UBLK_SCRIPT"; do
		case "$p/" in "$1"/*) return 0 ;; esac
	done
	return 1
}
uses_host /tmp || mount -t tmpfs -o mode=1777 tmpfs /tmp
uses_host /run || mount -t tmpfs -o mode=0755 tmpfs /run
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
hostname ublk-vm

if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 \
		results "$UBLK_RESDIR"; then
	say "cannot mount the results share on $UBLK_RESDIR"
	exit 1
fi

# The module tree the host laid out: the image's modules plus extra/.
mkdir -p "/lib/modules/$UBLK_KVER"
mount --bind "$UBLK_MODTREE/lib/modules/$UBLK_KVER" "/lib/modules/$UBLK_KVER"
modprobe configfs 2>/dev/null &&
	mount -t configfs configfs /sys/kernel/config 2>/dev/null

# Report a hung task within a test's run, without panicking.
echo 0 > /proc/sys/kernel/hung_task_panic
echo "${UBLK_HUNG_TASK_SECS:-60}" > /proc/sys/kernel/hung_task_timeout_secs
ulimit -c 0

read -r up _ < /proc/uptime
echo "$up" > "$UBLK_RESDIR/booted"
say "booted in ${up} s, mode $UBLK_MODE"

cd "$UBLK_REPO" || exit 1
case "$UBLK_MODE" in
tests)
	bash "$UBLK_REPO/tools/testing/ublk-vm/guest-tests.sh" \
		"$UBLK_TEST_DIR" "$UBLK_RESDIR" "${UBLK_PATTERNS[@]}" \
		> "$UBLK_RESDIR/tap.txt" 2>&1 < /dev/null
	;;
script)
	export UBLK_RESULTS=$UBLK_RESDIR
	rc=0
	if [ -z "${UBLK_NO_MODULE:-}" ] && ! modprobe ublk_drv; then
		echo "modprobe ublk_drv failed" > "$UBLK_RESDIR/output.log"
		rc=1
	else
		echo "ublk-vm: start $UBLK_SCRIPT" > /dev/kmsg
		bash "$UBLK_SCRIPT" "${UBLK_ARGS[@]}" \
			> "$UBLK_RESDIR/output.log" 2>&1 < /dev/null || rc=$?
	fi
	echo "$rc" > "$UBLK_RESDIR/exit-status"
	;;
esac

dmesg > "$UBLK_RESDIR/dmesg.txt" 2>&1
say "done"
exit 0
