#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Death at any moment: a bounded ublk_fuzz campaign (several seeds, several
# fuzzing processes, servers and the fuzzer's own workers SIGKILLed at
# random, block I/O in flight). The verdict comes from outside the fuzzer:
# after each seed the fuzzer has exited by itself, no task is in D state,
# every remaining ublk device can be deleted, and the kernel log has no
# WARNING, BUG, Oops, hung task, call trace or sysfs duplicate; at the end
# ublk_drv unloads and loads again.
#
# Knobs (make fuzz sets them for long campaigns):
#	UBLK_FUZZ_SEEDS		seeds, one campaign each (default "1 2 3 4")
#	UBLK_FUZZ_OPS		commands per seed (default 50000)
#	UBLK_FUZZ_TIME		seconds per seed at most (default 35)
#	UBLK_FUZZ_PROCS		fuzzing processes (default 3)
#	UBLK_FUZZ_WITHOUT	operation classes to switch off (ublk_fuzz
#				--without); empty by default: everything on
# Each seed's command log is kept in the test's results folder when it
# fails: rerun with ./ublk_fuzz --seed N --ops M --procs P --time S.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test fuzz_01
_require_driver
_require_prog ublk_fuzz
_require_prog ublk_errno

seeds=${UBLK_FUZZ_SEEDS:-1 2 3 4}
ops=${UBLK_FUZZ_OPS:-50000}
secs=${UBLK_FUZZ_TIME:-35}
procs=${UBLK_FUZZ_PROCS:-3}
without=${UBLK_FUZZ_WITHOUT:-}
ids=0-7

# A device the fuzzer leaves QUIESCED keeps its block-I/O helpers waiting,
# past the hung-task limit in a long seed (spec 9: no task in D state
# beyond it): devices added during the campaign get a recovery deadline
# (UBLK_FUZZ_DEADLINE_MS, 0 for none). The rmmod below resets it.
deadline_param=/sys/module/ublk_drv/parameters/recovery_timeout_ms
[ -w "$deadline_param" ] && echo "${UBLK_FUZZ_DEADLINE_MS:-20000}" > "$deadline_param"

# kernel log lines that fail the campaign, on top of _check_dmesg's
FUZZ_BAD='WARNING:|BUG:|BUG |Oops|general protection|blocked for more than|'
FUZZ_BAD+='INFO: task|Call Trace|cannot create duplicate filename|'
FUZZ_BAD+='kobject_add_internal failed|possible circular locking|lockdep|'
FUZZ_BAD+='refcount_t:|list_add corruption|list_del corruption|UBSAN|KASAN'

_ublk_ids()
{
	local f

	for f in /dev/ublkc[0-9]* /dev/ublkb[0-9]*; do
		[ -e "$f" ] && echo "${f#/dev/ublk?}"
	done | sort -un
}

# _bounded SECS OUT CMD...: CMD's stdout into OUT; 124 if it has not ended
# after SECS. Unlike timeout(1), never waits for a task stuck in the kernel.
_bounded()
{
	local secs=$1 out=$2 pid end

	shift 2
	"$@" > "$out" 2>&1 &
	pid=$!
	end=$(($(_now_ms) + secs * 1000))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$(_now_ms)" -gt "$end" ]; then
			kill -9 "$pid" 2>/dev/null
			return 124
		fi
		sleep 0.1
	done
	wait "$pid"
}

# kernel log since MARKER
_dmesg_since()
{
	dmesg 2>/dev/null | awk -v m="$1" '
		index($0, m) { n = 0; next }
		{ line[n++] = $0 }
		END { for (i = 0; i < n; i++) print line[i] }'
}

# a failed seed: blocked tasks into the log, the evidence into UBLK_TMP
_seed_failed()
{
	local seed=$1 why=$2 mark=$3

	echo "FAIL: seed $seed: $why" >&2
	echo w > /proc/sysrq-trigger 2>/dev/null
	sleep 1
	_dmesg_since "$mark" > "$UBLK_TMP/dmesg-$seed.txt"
	echo "--- last commands of seed $seed:" >&2
	tail -n 40 "$UBLK_TMP/fuzz-$seed.log" >&2
	echo "--- kernel log of seed $seed (first 80 lines of interest):" >&2
	grep -E -A12 "$FUZZ_BAD" "$UBLK_TMP/dmesg-$seed.txt" | head -n 80 >&2
	cp "$UBLK_TMP/fuzz-$seed.log" "$UBLK_TMP/dmesg-$seed.txt" \
		"${UBLK_RESULTS:-/tmp}/" 2>/dev/null
	echo "reproduce: ./ublk_fuzz --seed $seed --ops $ops --procs $procs" \
		"--time $secs --ids $ids${without:+ --without $without}" >&2
	UBLK_FAILED=1
}

total=0
t0=$(_now_ms)
for seed in $seeds; do
	mark="ublk-fuzz: seed $seed start"
	_kmsg "$mark"
	log=$UBLK_TMP/fuzz-$seed.log
	# the fuzzer ends itself: --time plus at most about 65 s of clean-up
	timeout -k 5 $((secs + 90)) ./ublk_fuzz --seed "$seed" --ops "$ops" \
		--procs "$procs" --time "$secs" --ids "$ids" --log "$log" \
		${without:+--without "$without"} > "$UBLK_TMP/out-$seed.txt" 2>&1
	rc=$?
	cat "$UBLK_TMP/out-$seed.txt"
	n=$(sed -n 's/.*: \([0-9]*\) commands in.*/\1/p' "$UBLK_TMP/out-$seed.txt")
	total=$((total + ${n:-0}))

	failed=""
	case $rc in
	0) ;;
	124|137) failed="ublk_fuzz did not exit by itself (killed by timeout)" ;;
	*) failed="ublk_fuzz exit status $rc (a stuck process or an undeletable device)" ;;
	esac

	if pgrep -x ublk_fuzz >/dev/null; then
		failed="${failed:+$failed; }ublk_fuzz processes left: $(pgrep -x ublk_fuzz |
			tr '\n' ' ')"
		kill -9 $(pgrep -x ublk_fuzz) 2>/dev/null
		sleep 2
	fi
	_check_no_hung_tasks || failed="${failed:+$failed; }tasks in D state"

	for id in $(_ublk_ids); do
		if ! _bounded 20 "$UBLK_TMP/del" ./ublk_errno del "$id"; then
			failed="${failed:+$failed; }DEL_DEV of left-over device $id"
			failed+=" did not return in 20 s"
			# the next DEL would wait for the same mutex
			break
		fi
		res=$(cat "$UBLK_TMP/del")
		if [ "$res" != 0 ] && [ "$res" != -19 ]; then
			failed="${failed:+$failed; }DEL_DEV of left-over device $id: $res"
		elif ! _wait_until 5000 _dev_gone "$id"; then
			failed="${failed:+$failed; }device $id still there after DEL_DEV"
		fi
	done

	bad=$(_dmesg_since "$mark" | grep -E "$FUZZ_BAD" | head -n 5)
	[ -n "$bad" ] && failed="${failed:+$failed; }kernel log: $(echo "$bad" | head -n 1)"

	if [ -n "$failed" ]; then
		_seed_failed "$seed" "$failed" "$mark"
		# a wedged driver makes the next seeds meaningless
		break
	fi
	_log "seed $seed clean"
done
_log "$total commands in $((($(_now_ms) - t0) / 1000)) s over seeds: $seeds"
[ -w "$deadline_param" ] && echo 0 > "$deadline_param"
[ "$UBLK_FAILED" = 1 ] && exit 1

# the module must go and come back (the harness loads it for later tests)
if [ -d /sys/module/ublk_drv ]; then
	_bounded 60 "$UBLK_TMP/rmmod" rmmod ublk_drv ||
		_fail "rmmod ublk_drv after the campaign: $(cat "$UBLK_TMP/rmmod")"
	modprobe ublk_drv || _fail "modprobe ublk_drv after rmmod"
	_wait_until 5000 test -c /dev/ublk-control ||
		_fail "/dev/ublk-control missing after modprobe"
fi
exit 0
