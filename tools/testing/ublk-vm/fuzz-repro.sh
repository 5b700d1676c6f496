#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest script: run ublk_fuzz's fixed reproductions of its findings, one
# after the other, each bounded in time, and show the kernel's view after
# each (device states, tasks in D state and their stacks).
#	run.sh guest tools/testing/ublk-vm/fuzz-repro.sh [NAME...]
# NAME: dup-id, sqpoll-stop, kill-del, chunk-lbs (default: all, in that
# order, from the least to the most wedging).

cd "$(dirname "$0")/../selftests/ublk" || exit 1
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(dup-id sqpoll-stop kill-del chunk-lbs)
rc=0

dstate() {
	local s p

	for s in /proc/[0-9]*/stat; do
		p=${s#/proc/}
		p=${p%/stat}
		[ "$(awk '{ print $3 }' "$s" 2>/dev/null)" = D ] || continue
		echo "D: $p $(cat /proc/"$p"/comm 2>/dev/null)"
		sed 's/^/    /' /proc/"$p"/stack 2>/dev/null
	done
}

for name in "${names[@]}"; do
	echo "=== repro $name"
	echo "ublk-fuzz-repro: $name start" > /dev/kmsg
	./ublk_fuzz --repro "$name" --log "$UBLK_RESULTS/repro-$name.log" &
	pid=$!
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "$name: still running after 30 s"
		rc=1
	else
		wait "$pid" || rc=1
	fi
	sleep 2
	echo "--- D-state tasks after $name:"
	dstate
	echo "--- kernel log of $name:"
	dmesg | awk -v m="ublk-fuzz-repro: $name start" 'index($0, m) { p = 1 } p' |
		grep -v '^\s*$' | head -n 60
	echo "--- command log of $name:"
	cat "$UBLK_RESULTS/repro-$name.log"
done
echo w > /proc/sysrq-trigger
exit $rc
