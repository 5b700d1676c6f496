#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest-side kselftest runner: guest-tests.sh TESTDIR RESDIR [PATTERN...]
#
# Loads ublk_drv (TAP item "module load"), runs every TESTDIR/test_*.sh but
# test_common.sh in sorted order, the fuzz group last, or those matching a
# PATTERN (a glob, else a substring of the name), then unloads the module
# ("module unload"). Prints
# TAP on stdout and ends with "N passed, N failed[, N skipped]".
#
# Each test runs with cwd TESTDIR, UBLK_RESULTS=RESDIR/tests/NAME (its own
# folder, where output.log and dmesg.log also go), stdin /dev/null, under
# the timeout of TESTDIR/settings (timeout=N, default 300 s). Exit 0 passes,
# 4 skips, anything else fails. A test also fails when the kernel log since
# its start marker has a WARNING, BUG, Oops, hung task, lockdep report,
# general protection fault or call trace (on the debug kernel also KASAN,
# KFENCE, UBSAN, lockdep, ...); so do the two module items. On a kernel with
# kmemleak (UBLK_KERNEL=debug) a last item "kmemleak" scans for leaks and
# fails on any unreferenced object allocated by ublk_drv.
#
# Environment (from run.sh): UBLK_KMSG_BAD (the kernel log regex),
# UBLK_NO_MODULE=1 (run without ublk_drv, harness trials), UBLK_REPO (to
# print paths relative to it), UBLK_TIMEOUT_SCALE (factor for the per-test
# timeout and the module items' limits; test_common.sh scales its waits by
# it too), UBLK_KERNEL.

testdir=$1
resdir=$2
shift 2
patterns=("$@")

KMSG_BAD=${UBLK_KMSG_BAD:?the host passes the kernel log patterns}
MARK='ublk-selftest:'

rel() { echo "${1#"${UBLK_REPO:-/}"/}"; }

scale=${UBLK_TIMEOUT_SCALE:-1}
export UBLK_TIMEOUT_SCALE=$scale
timeout_secs=300
if [ -f "$testdir/settings" ]; then
	t=$(sed -n 's/^timeout=\([0-9][0-9]*\)$/\1/p' "$testdir/settings" | tail -n1)
	[ -n "$t" ] && timeout_secs=$t
fi
timeout_secs=$((timeout_secs * scale))
kmemleak=
[ "${UBLK_KERNEL:-}" = debug ] && kmemleak=1

matches() {
	local name=$1 p

	[ ${#patterns[@]} -eq 0 ] && return 0
	for p in "${patterns[@]}"; do
		# shellcheck disable=SC2053	# $p as a glob, on purpose
		[[ $name == $p || $name == *"$p"* ]] && return 0
	done
	return 1
}

shopt -s nullglob
tests=()
last=()
for name in "$testdir"/test_*.sh; do	# sorted: the guest's locale is C.UTF-8
	name=${name##*/}
	[ "$name" = test_common.sh ] && continue
	matches "$name" || continue
	# The fuzz campaign may wedge a buggy driver for good (tasks in D
	# state abort every later test): it runs after the others.
	case $name in
	test_fuzz_*) last+=("$name") ;;
	*) tests+=("$name") ;;
	esac
done
tests+=("${last[@]}")

if [ ${#tests[@]} -eq 0 ]; then
	echo "# no test in $testdir matches: ${patterns[*]:-test_*.sh}"
	echo "no-tests" > "$resdir/runner-error"
	exit 2
fi

# The host reads this to name tests the guest never reported (VM died).
printf '%s\n' "module load" "${tests[@]}" "module unload" ${kmemleak:+kmemleak} \
	> "$resdir/tests.list"

n=0 passed=0 failed=0 skipped=0
abort=		# set when a test left unkillable tasks behind

echo "TAP version 13"
echo "1..$(( ${#tests[@]} + 2 + ${kmemleak:-0} ))"

kmsg() { echo "$MARK $*" > /dev/kmsg; }

# Kernel log lines since the last "start NAME" marker, into $2.
kernel_slice() {
	dmesg 2>/dev/null | awk -v m="$MARK start $1" '
		{ buf[NR] = $0 }
		index($0, m) && substr($0, index($0, m) + length(m)) == "" { s = NR }
		END { if (s) for (i = s; i <= NR; i++) print buf[i] }' > "$2"
}

# Report one TAP item. $1 ok|fail|skip, $2 name, $3 why (skip or failure).
report() {
	local res=$1 name=$2 why=$3

	n=$((n + 1))
	case "$res" in
	ok)	passed=$((passed + 1)); echo "ok $n - $name" ;;
	skip)	skipped=$((skipped + 1)); echo "ok $n - $name # SKIP${why:+ $why}" ;;
	fail)	failed=$((failed + 1)); echo "not ok $n - $name${why:+ # $why}" ;;
	esac
}

# The notes run_timed collected, as TAP comments.
print_notes() {
	local line

	for line in "${notes[@]}"; do
		echo "#   $line"
	done
}

# Kill what is left in process group $1. Returns 1 if something survives
# SIGKILL for 10 s: a task stuck in the kernel.
reap_group() {
	local pg=$1 left i

	left=$(pgrep -g "$pg" -l 2>/dev/null | tr '\n' ' ')
	[ -z "$left" ] && return 0
	notes+=("note: killed processes left behind: $left")
	for ((i = 0; i < 100; i++)); do
		kill -KILL -- "-$pg" 2>/dev/null || return 0
		sleep 0.1
	done
	notes+=("stuck: unkillable after SIGKILL: $(pgrep -g "$pg" -l | tr '\n' ' ')")
	return 1
}

# Run "$@" with a timeout, stdout+stderr to $log. Sets rc: the exit status,
# 124 on timeout, 255 when a task of it is stuck in the kernel; and why: the
# failure in words (empty for 0 and 4). Notes go to the notes array.
run_timed() {
	local secs=$1 log=$2 tp t0=$EPOCHREALTIME

	shift 2
	notes=()
	# timeout(1) makes its own process group and signals all of it; after
	# -k it SIGKILLs the group, itself included.
	timeout -k 10 "$secs" "$@" > "$log" 2>&1 < /dev/null &
	tp=$!
	wait "$tp" 2>/dev/null
	rc=$?
	if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] &&
	     [ "$(secs_since "$t0" | cut -d. -f1)" -ge "$secs" ]; }; then
		rc=124
	fi
	if ! reap_group "$tp"; then
		rc=255
		abort=1
		echo w > /proc/sysrq-trigger	# blocked tasks into the log
	fi
	case "$rc" in
	0|4)	why= ;;
	124)	why="timed out after $secs s" ;;
	255)	why="a task is stuck in the kernel" ;;
	*)	why="exit status $rc" ;;
	esac
}

# Append the kernel log verdict to why.
kernel_why() {
	[ "$1" -eq 0 ] || why=${why:+$why, }"kernel log: warning/bug/hung task"
}

secs_since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# Check the kernel log slice of NAME; prints offending lines, returns 1 if any.
kernel_clean() {
	local name=$1 out=$2

	kmsg "end $name"
	kernel_slice "$name" "$out"
	if grep -Eq "$KMSG_BAD" "$out"; then
		grep -B1 -E "$KMSG_BAD" "$out" | head -n 30 | sed 's/^/#   kernel: /'
		return 1
	fi
	return 0
}

fail_details() {
	local name=$1 dir=$2

	echo "#   log: $(rel "$dir")/output.log, kernel: $(rel "$dir")/dmesg.log"
	if [ -s "$dir/output.log" ]; then
		echo "#   last lines of output:"
		tail -n 15 "$dir/output.log" | sed 's/^/#   | /'
	else
		echo "#   (no output)"
	fi
	echo "#   reproduce: make check T=$name"
}

# First item: the module loads, with a clean kernel log.
module_err=
name="module load"
if [ -n "${UBLK_NO_MODULE:-}" ]; then
	report skip "$name" "UBLK_NO_MODULE set"
else
	kmsg "start $name"
	run_timed $((60 * scale)) "$resdir/modprobe.log" modprobe ublk_drv
	if [ "$rc" -ne 0 ]; then
		module_err="modprobe ublk_drv: $why"
	elif [ ! -e /dev/ublk-control ]; then
		module_err="ublk_drv loaded but /dev/ublk-control is missing"
	fi
	why=$module_err
	kernel_out=$(kernel_clean "$name" "$resdir/dmesg-modprobe.log")
	kernel_why $?
	if [ -z "$why" ]; then
		report ok "$name" ""
	else
		report fail "$name" "$why"
		sed 's/^/#   | /' "$resdir/modprobe.log"
		[ -n "$kernel_out" ] && echo "$kernel_out"
		echo "#   kernel log: $(rel "$resdir")/dmesg-modprobe.log"
	fi
	print_notes
fi

for name in "${tests[@]}"; do
	dir=$resdir/tests/$name
	mkdir -p "$dir"
	if [ -n "$module_err" ]; then
		report fail "$name" "not run: ublk_drv did not load"
		continue
	fi
	if [ -n "$abort" ]; then
		report fail "$name" "not run: an earlier test left unkillable tasks"
		continue
	fi

	run=(./"$name")
	[ -x "$testdir/$name" ] || run=(bash "./$name")
	kmsg "start $name"
	t0=$EPOCHREALTIME
	cd "$testdir" || exit 2
	run_timed "$timeout_secs" "$dir/output.log" env UBLK_RESULTS="$dir" "${run[@]}"
	cd / || exit 2
	secs=$(secs_since "$t0")

	kernel_out=$(kernel_clean "$name" "$dir/dmesg.log")
	kernel_why $?

	if [ -z "$why" ] && [ "$rc" -eq 4 ]; then
		reason=$(grep -v '^[[:space:]]*$' "$dir/output.log" | tail -n1 | cut -c1-100)
		report skip "$name" "$reason"
	elif [ -z "$why" ]; then
		report ok "$name" ""
	else
		report fail "$name" "$why"
		[ -n "$kernel_out" ] && echo "$kernel_out"
		fail_details "$name" "$dir"
	fi
	devs=(/dev/ublkb* /dev/ublkc*)
	[ ${#devs[@]} -gt 0 ] && notes+=("note: ublk devices left behind: ${devs[*]}")
	print_notes
	echo "# $name: ${secs} s"
done

# Last item: the module must unload cleanly once every test is done.
name="module unload"
if [ -n "${UBLK_NO_MODULE:-}" ]; then
	report skip "$name" "UBLK_NO_MODULE set"
elif [ -n "$module_err" ]; then
	report fail "$name" "not run: ublk_drv did not load"
elif [ -n "$abort" ]; then
	report fail "$name" "not run: an earlier test left unkillable tasks"
elif [ ! -d /sys/module/ublk_drv ]; then
	report ok "$name" ""
	echo "#   note: ublk_drv was already unloaded"
else
	kmsg "start $name"
	mod_base=$(awk '$1 == "ublk_drv" { print $6 }' /proc/modules)
	mod_size=$(awk '$1 == "ublk_drv" { print $2 }' /proc/modules)
	run_timed $((60 * scale)) "$resdir/rmmod.log" rmmod ublk_drv
	[ -n "$why" ] && why="rmmod ublk_drv: $why"
	kernel_out=$(kernel_clean "$name" "$resdir/dmesg-rmmod.log")
	kernel_why $?
	if [ -z "$why" ]; then
		report ok "$name" ""
	else
		report fail "$name" "$why"
		sed 's/^/#   | /' "$resdir/rmmod.log"
		[ -n "$kernel_out" ] && echo "$kernel_out"
		echo "#   kernel log: $(rel "$resdir")/dmesg-rmmod.log"
	fi
	print_notes
fi

# kmemleak's records ("unreferenced object ..." up to the next one) whose
# backtrace is in ublk_drv: by symbol while it is loaded, by the address
# range it had once it is gone (kmemleak then prints bare addresses).
ublk_leaks() {
	local base=${mod_base:-0} size=${mod_size:-0} rec= line addr hit=
	local re='\] 0x([0-9a-f]+)$'	# "[<hashed>] 0xADDR": no symbol

	while IFS= read -r line; do
		if [[ $line == "unreferenced object"* ]]; then
			[ -n "$hit" ] && printf '%s' "$rec"
			rec= hit=
		fi
		rec+="$line"$'\n'
		[[ $line == *"[ublk_drv]"* || $line == *" ublk_"* ]] && hit=1
		if [[ $line =~ $re ]] && [ "$size" -gt 0 ]; then
			addr=$((16#${BASH_REMATCH[1]}))
			[ "$addr" -ge $((base)) ] && [ "$addr" -lt $((base + size)) ] && hit=1
		fi
	done < "$1"
	[ -n "$hit" ] && printf '%s' "$rec"
}

# kmemleak only reports objects older than 5 s and unreferenced in two
# scans in a row: scan, wait, scan again.
if [ -n "$kmemleak" ]; then
	name=kmemleak
	kml=/sys/kernel/debug/kmemleak
	kmsg "start $name"
	why=
	if [ ! -e "$kml" ]; then
		why="no $kml (debugfs not mounted or kmemleak not built in)"
	elif ! { echo scan > "$kml" && sleep 6 && echo scan > "$kml"; } 2> "$resdir/kmemleak.err"; then
		why="kmemleak scan failed: $(cat "$resdir/kmemleak.err")"
		why+=" $(dmesg | grep -m1 'kmemleak:.*disabled')"
	else
		cat "$kml" > "$resdir/kmemleak.txt"
		ublk_leaks "$resdir/kmemleak.txt" > "$resdir/kmemleak-ublk.txt"
		[ -s "$resdir/kmemleak-ublk.txt" ] &&
			why="$(grep -c '^unreferenced object' "$resdir/kmemleak-ublk.txt") leak(s) from ublk_drv"
	fi
	kmsg "end $name"
	if [ -z "$why" ]; then
		report ok "$name" ""
	else
		report fail "$name" "$why"
		[ -s "$resdir/kmemleak-ublk.txt" ] &&
			head -n 40 "$resdir/kmemleak-ublk.txt" | sed 's/^/#   | /'
	fi
	nleaks=$(grep -c '^unreferenced object' "$resdir/kmemleak.txt" 2>/dev/null)
	echo "#   unreferenced objects in all: ${nleaks:-0} ($(rel "$resdir")/kmemleak.txt; ublk_drv's: kmemleak-ublk.txt)"
fi

summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary" > "$resdir/summary.txt"
echo "$summary"
