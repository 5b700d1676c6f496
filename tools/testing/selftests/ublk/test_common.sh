#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Helpers sourced by every test_<group>_<NN>.sh. A test calls
# _prep_test NAME first; cleanup runs on EXIT whatever happens.
#
# Exit codes: 0 pass, 1 fail, 4 skip (kselftest's KSFT_SKIP).
# Environment:
#	UBLK_RESULTS	where per-test scratch dirs go (default /tmp)
#	KUBLK		the server binary (default ./kublk)
#	UBLKSRV		a built ublksrv-1.0 folder (the compat tests' server;
#			the VM harness sets it, without it they skip)
#	UBLK_TIMEOUT_SCALE  integer factor for every timeout and wait below
#			(default 1; the VM's debug kernel runs several times
#			slower). Tests pass unscaled numbers to the helpers.

UBLK_SKIP_CODE=4
UBLK_TIMEOUT_SCALE=${UBLK_TIMEOUT_SCALE:-1}

UBLK_TEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$UBLK_TEST_DIR" || exit 1
KUBLK=${KUBLK:-./kublk}

UBLK_TEST_NAME=""
UBLK_TMP=""		# per-test scratch (logs, fio output)
UBLK_DATA=""		# per-test data dir in /tmp (backing files, mounts)
UBLK_BG_PIDS=()		# background jobs to kill at cleanup
UBLK_FAILED=0

_log()
{
	echo "[${UBLK_TEST_NAME:-ublk}] $*"
}

_fail()
{
	echo "FAIL: [${UBLK_TEST_NAME:-ublk}] $*" >&2
	UBLK_FAILED=1
	exit 1
}

_skip()
{
	echo "SKIP: [${UBLK_TEST_NAME:-ublk}] $*"
	exit "$UBLK_SKIP_CODE"
}

# _assert DESCRIPTION CMD...: run CMD, fail the test if it fails
_assert()
{
	local what=$1

	shift
	"$@" || _fail "$what (command: $*)"
}

_now_ms()
{
	local s

	s=$(date +%s%N)
	echo $((s / 1000000))
}

# UBLK_NO_KMSG=1 (for host-side runs of test_generic_01.sh) leaves the
# kernel log alone: no markers, no log check
_kmsg()
{
	[ -n "$UBLK_NO_KMSG" ] && return 0
	echo "$*" 2>/dev/null > /dev/kmsg || true
}

# _prep_test NAME: marker in the kernel log, scratch dirs, cleanup trap
_prep_test()
{
	UBLK_TEST_NAME=$1
	UBLK_START_MARKER="ublk-selftest: $UBLK_TEST_NAME start"
	_kmsg "$UBLK_START_MARKER"
	mkdir -p "${UBLK_RESULTS:-/tmp}" || exit 1
	UBLK_TMP=$(mktemp -d "${UBLK_RESULTS:-/tmp}/ublk-$UBLK_TEST_NAME.XXXXXX") ||
		exit 1
	UBLK_DATA=$(mktemp -d "/tmp/ublk-data-$UBLK_TEST_NAME.XXXXXX") ||
		exit 1
	trap _cleanup_test EXIT
	trap 'exit 1' INT TERM
	_log "start (scratch $UBLK_TMP)"
}

# the driver must be loaded (the harness does it)
_require_driver()
{
	[ "$(id -u)" -eq 0 ] || _skip "must run as root"
	[ -c /dev/ublk-control ] || _fail "/dev/ublk-control missing: ublk_drv not loaded"
}

# ... and kublk and ublk_errno (raw commands, kill-wait) built
_require_ublk()
{
	_require_driver
	[ -x "$KUBLK" ] || _fail "$KUBLK not built"
	[ -x ./ublk_errno ] || _fail "./ublk_errno not built"
}

# _require_prog NAME: a binary of this directory must be built
_require_prog()
{
	[ -x "./$1" ] || _fail "./$1 not built (make)"
}

# nr_cpu_ids: what the driver caps nr_hw_queues to
_possible_cpus()
{
	local last

	last=$(sed 's/.*[-,]//' /sys/devices/system/cpu/possible)
	echo $((last + 1))
}

_have_program()
{
	command -v "$1" >/dev/null 2>&1 || _skip "$1 not installed"
}

# _bg CMD...: run CMD in the background, remember it for cleanup;
# the pid is in $UBLK_LAST_PID
_bg()
{
	"$@" &
	UBLK_LAST_PID=$!
	UBLK_BG_PIDS+=("$UBLK_LAST_PID")
}

_kill_tree()
{
	local pid=$1 child

	for child in $(pgrep -P "$pid"); do
		_kill_tree "$child"
	done
	kill -9 "$pid" 2>/dev/null
}

# _scaled N: N times UBLK_TIMEOUT_SCALE
_scaled()
{
	echo $(($1 * UBLK_TIMEOUT_SCALE))
}

# _timeout SECS CMD...: timeout(1) with SECS scaled
_timeout()
{
	local secs=$1

	shift
	timeout "$(_scaled "$secs")" "$@"
}

# _wait_until TIMEOUT_MS CMD...: poll CMD every 10 ms until it succeeds
_wait_until()
{
	local timeout=$(($1 * UBLK_TIMEOUT_SCALE)) end

	shift
	end=$(($(_now_ms) + timeout))
	until "$@"; do
		[ "$(_now_ms)" -gt "$end" ] && return 1
		sleep 0.01
	done
	return 0
}

# _pid_state PID: the state letter of /proc/PID/stat (R, S, D, T, Z...)
_pid_state()
{
	local rest

	read -r rest < "/proc/$1/stat" 2>/dev/null || return 1
	rest=${rest##*) }
	echo "${rest%% *}"
}

# gone, or a zombie (its files are released already)
_pid_gone()
{
	local st

	kill -0 "$1" 2>/dev/null || return 0
	st=$(_pid_state "$1") || return 0
	[ "$st" = Z ]
}

_dev_gone()
{
	[ ! -e "/dev/ublkb$1" ] && [ ! -e "/dev/ublkc$1" ]
}

# the driver reports the device DEAD, or does not know it (-ENODEV)
_dead_or_gone()
{
	local st

	st=$(./ublk_errno state "$1")
	[ "$st" = DEAD ] || [ "$st" = -19 ]
}

# _wait_pid PID TIMEOUT_S: wait for a background job; its status, or 124
_wait_pid()
{
	local pid=$1 timeout=$(($2 * UBLK_TIMEOUT_SCALE)) end

	end=$(($(_now_ms) + timeout * 1000))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$(_now_ms)" -gt "$end" ]; then
			_kill_tree "$pid"
			wait "$pid" 2>/dev/null
			return 124
		fi
		sleep 0.05
	done
	wait "$pid"
}

# ---------------------------------------------------------------------------
# kublk wrappers

# _add_ublk_dev ARGS...: ./kublk add ARGS; echoes the id. Use as
#	dev=$(_add_ublk_dev -t null) || _fail "add"
_add_ublk_dev()
{
	local id

	id=$(_timeout 60 "$KUBLK" add "$@") || {
		echo "FAIL: kublk add $* failed" >&2
		return 1
	}
	if ! [[ "$id" =~ ^[0-9]+$ ]]; then
		echo "FAIL: kublk add $* printed '$id', not an id" >&2
		return 1
	fi
	echo "$id"
}

_del_ublk_dev()
{
	_timeout 60 "$KUBLK" del -n "$1"
}

# _wait_state ID STATE [TIMEOUT_MS]: prints the ms waited
_wait_state()
{
	local ms=$(_scaled "${3:-10000}")

	timeout $((ms / 1000 + 10)) "$KUBLK" wait-state -n "$1" "$2" -t "$ms"
}

_dev_state()
{
	_timeout 10 "$KUBLK" state -n "$1" 2>/dev/null
}

# _list_field ID COLUMN: one column of `kublk list -n ID' by header name
_list_field()
{
	_timeout 10 "$KUBLK" list -n "$1" 2>/dev/null | awk -v col="$2" -v id="$1" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
		c && $1 == id { print $c; exit }'
}

_server_pid()
{
	_list_field "$1" PID
}

# _recover ID [ARGS]: kublk recover; prints the START->LIVE ms (or "?")
_recover()
{
	local id=$1 out ms

	shift
	out=$(_timeout 60 "$KUBLK" recover -n "$id" "$@" 2>&1) || {
		echo "kublk recover -n $id: $out" >&2
		return 1
	}
	ms=$(echo "$out" | sed -n 's/.*START->LIVE[^0-9]*\([0-9.]*\).*/\1/p' | head -n 1)
	echo "${ms:-?}"
}

# _crash ID: SIGKILL the device's server and wait until the device is
# QUIESCED; prints the ms from the kill to QUIESCED, measured in one
# process (ublk_errno kill-wait polls GET_DEV_INFO every 100 us).
# Use as: ms=$(_crash "$dev") || _fail "..."
_crash()
{
	_timeout 30 ./ublk_errno kill-wait "$1" QUIESCED "$(_scaled 10000)"
}

# _first_number TEXT: the first number in TEXT (kublk wait-state output)
_first_number()
{
	echo "$1" | grep -o '[0-9][0-9.]*' | head -n 1
}

# is PID stopped (SIGSTOP)?
_pid_stopped()
{
	[ "$(_pid_state "$1")" = T ]
}

# _holds_file PID PATH: does process PID, or a descendant, have PATH open?
_holds_file()
{
	local fd child

	for fd in /proc/"$1"/fd/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = "$2" ] && return 0
	done
	for child in $(pgrep -P "$1"); do
		_holds_file "$child" "$2" && return 0
	done
	return 1
}

# blocks read/written since boot: "ios_read ios_written"
_dev_ios()
{
	awk '{ print $1, $5 }' "/sys/block/ublkb$1/stat" 2>/dev/null
}

# _dev_ios_total ID: reads + writes completed on /dev/ublkbID
_dev_ios_total()
{
	local r w

	read -r r w < <(_dev_ios "$1") || return 1
	echo $((r + w))
}

_ios_at_least()
{
	local now

	now=$(_dev_ios_total "$1") || return 1
	[ "$now" -ge "$2" ]
}

# _inflight_at_least ID N: N or more requests of /dev/ublkbID in flight
_inflight_at_least()
{
	local r w

	read -r r w < "/sys/block/ublkb$1/inflight" 2>/dev/null || return 1
	[ $((r + w)) -ge "$2" ]
}

# _held_writes ID K: K one-block direct writes in the background, for a
# server started with --hold K; returns once all K are in flight (their
# pids in UBLK_WRITERS), 1 if they never are
_held_writes()
{
	local i

	UBLK_WRITERS=()
	for i in $(seq 1 "$2"); do
		_bg dd if=/dev/zero of="/dev/ublkb$1" bs=4k count=1 seek="$i" \
			oflag=direct status=none
		UBLK_WRITERS+=("$UBLK_LAST_PID")
	done
	_wait_until 20000 _inflight_at_least "$1" "$2"
}

# _wait_io_progress ID N [TIMEOUT_MS]: wait until N more I/Os completed
_wait_io_progress()
{
	local base

	base=$(_dev_ios_total "$1") || return 1
	_wait_until "${3:-20000}" _ios_at_least "$1" $((base + $2))
}

# fails if a task stays in D state for 10 s (sampled every 0.5 s)
_check_no_hung_tasks()
{
	local stat rest state pid list

	for _ in $(seq 20); do
		list=""
		for stat in /proc/[0-9]*/stat; do
			read -r rest < "$stat" 2>/dev/null || continue
			pid=${rest%% *}
			rest=${rest##*) }
			state=${rest%% *}
			[ "$state" = D ] && list="$list $pid"
		done
		[ -z "$list" ] && return 0
		sleep 0.5
	done
	for pid in $list; do
		echo "D-state task $pid ($(cat "/proc/$pid/comm" 2>/dev/null)):" >&2
		cat "/proc/$pid/stack" >&2 2>/dev/null
	done
	return 1
}

# ---------------------------------------------------------------------------
# ublksrv (the compat tests): a third-party 6.1 server, driven as a black
# box through its `ublk' command line, like fio

UBLKSRV_USED=""

# _require_ublksrv: $UBLKSRV/ublk must exist; without $UBLKSRV (a kernel
# tree's kselftest run) the test skips, under the harness it is always set
_require_ublksrv()
{
	_require_driver
	[ -n "$UBLKSRV" ] ||
		_skip "UBLKSRV is not set (a built ublksrv-1.0 folder; make check sets it)"
	[ -x "$UBLKSRV/ublk" ] || _fail "UBLKSRV=$UBLKSRV has no built ublk"
	UBLKSRV_USED=1
}

# _ublksrv ARGS...: ublksrv's ublk, bounded by `timeout'
_ublksrv()
{
	timeout "${UBLKSRV_TIMEOUT:-60}" "$UBLKSRV/ublk" "$@"
}

# _ublksrv_add ARGS...: ublk add ARGS; echoes the id it printed. Use as
#	dev=$(_ublksrv_add -t null -q 2) || _fail "ublk add"
_ublksrv_add()
{
	local out id

	out=$(_ublksrv add "$@" 2>&1) || {
		echo "FAIL: ublk add $* failed (exit $?): $out" >&2
		return 1
	}
	id=$(echo "$out" | sed -n 's/^dev id \([0-9][0-9]*\):.*/\1/p' | head -n 1)
	if ! [[ "$id" =~ ^[0-9]+$ ]]; then
		echo "FAIL: ublk add $* printed '$out', no id" >&2
		return 1
	fi
	echo "$id"
}

# _ublksrv_field ID NAME: a "NAME value" field of `ublk list -n ID', e.g.
# state, nr_hw_queues, queue_depth, flags; "daemon pid" gives the pid
_ublksrv_field()
{
	_ublksrv list -n "$1" 2>/dev/null |
		sed -n "s/.*[[:space:]]$2 \\([^[:space:]]*\\).*/\\1/p" | head -n 1
}

_ublksrv_state()
{
	_ublksrv_field "$1" state
}

_ublksrv_pid()
{
	_ublksrv_field "$1" pid
}

_ublksrv_state_is()
{
	[ "$(_ublksrv_state "$1")" = "$2" ]
}

# _ublksrv_wait_state ID STATE [TIMEOUT_MS]: poll `ublk list' until the
# device is in STATE; on timeout say what it is in and fail
_ublksrv_wait_state()
{
	_wait_until "${3:-10000}" _ublksrv_state_is "$1" "$2" && return 0
	echo "FAIL: device $1 is '$(_ublksrv_state "$1")', not $2" >&2
	return 1
}

# _ublksrv_del ID: ublk del, then the device must be gone
# _ublksrv_del ID: ublk del, then wait until the device and its daemon are
# gone (a daemon still exiting holds /dev/ublkcN and the module)
_ublksrv_del()
{
	local pid

	pid=$(_ublksrv_pid "$1")
	_ublksrv del -n "$1" || return 1
	_wait_until 10000 _dev_gone "$1" || return 1
	[ -z "$pid" ] || [ "$pid" -le 0 ] || _wait_until 10000 _pid_gone "$pid"
}

# _ublksrv_queue_tids PID: the daemon's user threads but its main one, i.e.
# its queue threads: io_uring's workers (iou-wrk-*, iou-sqp-*) show in
# /proc/PID/task too and are left out
_ublksrv_queue_tids()
{
	local t comm

	for t in /proc/"$1"/task/*; do
		comm=$(cat "$t/comm" 2>/dev/null) || continue
		t=${t##*/}
		[ "$t" != "$1" ] && [[ $comm != iou-* ]] && echo "$t"
	done
}

# _ublksrv_procs: pids of the running ublksrv programs (this build's)
_ublksrv_procs()
{
	local p exe

	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		case "$exe" in "$UBLKSRV"/*) echo "${p#/proc/}" ;; esac
	done | tr '\n' ' '
}

# _ublksrv_sh_bash: several of ublksrv's test scripts need /bin/sh to be
# bash. In the VM (the root is a tmpfs overlay over the host's) point it
# there; never on a real root, where the test skips instead.
_ublksrv_sh_bash()
{
	[ "$(readlink -f /bin/sh)" = "$(readlink -f /bin/bash)" ] && return 0
	if [ -n "$UBLK_MODE" ] &&
	   [ "$(awk '$2 == "/" { t = $3 } END { print t }' /proc/mounts)" = overlay ]; then
		ln -sfn bash /bin/sh || _fail "cannot point the VM's /bin/sh at bash"
		_log "VM overlay root: /bin/sh -> bash for ublksrv's scripts"
		return 0
	fi
	_skip "ublksrv's test scripts need /bin/sh to be bash (it is $(readlink -f /bin/sh))"
}

# _ublksrv_suite GROUP/NNN [RUNTIME]: run one of ublksrv's own tests
# (tests/run_test.sh GROUP/NNN RUNTIME TMPDIR; TMPDIR is $UBLKSRV_SUITE_TMP,
# default a folder in tmpfs) in its own session, so that
# its scripts' kills (kill -9 of an empty pid, the whole group) stay inside,
# under a timeout. run_test.sh exits 0 whatever happened, so the verdict is
# what it printed and left: it fails on a timeout, on being killed, on a
# line that reports a failure, an error or an I/O error count, on a task
# left in D state and on a device left behind (its scripts delete theirs).
# A failure that names zero copy, user copy, FAIL_IO, qcow2 or nbd (not
# built or not run here) skips. The output is copied into this test's log.
_ublksrv_suite()
{
	local t=$1 secs=${2:-1} limit=${UBLKSRV_SUITE_TIMEOUT:-450} out pid rc bad
	local tmp need left pat

	_ublksrv_sh_bash
	# its loop perf tests run the kernel's loop driver beside ublk's for
	# comparison (loop/003 printed empty device names without it)
	[ -e /dev/loop-control ] || modprobe loop 2>/dev/null ||
		_log "no kernel loop driver: ublksrv's losetup comparisons will fail"
	tmp=${UBLKSRV_SUITE_TMP:-$UBLK_DATA/suite}
	mkdir -p "$tmp"
	out=$UBLK_TMP/run_test.log
	(cd "$UBLKSRV/tests" &&
	 exec setsid timeout -k 10 "$limit" ./run_test.sh "$t" "$secs" "$tmp") \
		> "$out" 2>&1 < /dev/null &
	pid=$!
	wait "$pid"
	rc=$?
	# what its session left behind (fio, ublk daemons), by its id
	kill -9 -- "-$pid" 2>/dev/null
	# ublksrv processes that left the session (daemons) and outlived the
	# test: they hold /dev/ublk* open, hence the module (generic/005's
	# failed qcow2 step left one, and rmmod ublk_drv then failed)
	left=$(_ublksrv_procs)
	if [ -n "$left" ]; then
		_log "ublksrv processes left behind by $t, killed: $left"
		kill -9 $left 2>/dev/null
	fi
	sed 's/^/| /' "$out"
	case $rc in
	0)	;;
	124)	_fail "ublksrv $t: timed out after $limit s" ;;
	137)	_fail "ublksrv $t: SIGKILLed (its own kill -9 of its group, or the timeout's)" ;;
	*)	_fail "ublksrv $t: run_test.sh exit $rc" ;;
	esac
	grep -q "running $t" "$out" || _fail "ublksrv $t: run_test.sh did not run it"
	_check_no_hung_tasks || _fail "ublksrv $t left a task in D state"
	left=$(_ublksrv list 2>/dev/null | grep -E '^dev id|state')
	[ -z "$left" ] ||
		_fail "ublksrv $t left devices behind: $(echo "$left" | tr '\n\t' '  ')"
	pat='fail|error|err=[[:space:]]*[1-9]|timeout|timed out|killed|unknown|'
	pat+='can.t|cannot|no such|not supported|invalid'
	bad=$(grep -Ei "${UBLKSRV_SUITE_BAD:-$pat}" "$out")
	[ -z "$bad" ] && { _log "ublksrv $t: ran clean"; return 0; }
	# what this setup lacks on purpose: not a driver failure
	need=$(grep -Eio 'zero.?copy|user.?copy|fail_io|qcow2|qemu-img|nbd' "$out" | head -n 1)
	[ -n "$need" ] && _skip "ublksrv $t needs $need: $(echo "$bad" | head -n 1)"
	_fail "ublksrv $t printed: $(echo "$bad" | head -n 3 | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------
# the kernel log since this test's marker

_dmesg_since_start()
{
	dmesg 2>/dev/null | awk -v m="$UBLK_START_MARKER" '
		index($0, m) { n = 0; next }
		{ line[n++] = $0 }
		END { for (i = 0; i < n; i++) print line[i] }'
}

_check_dmesg()
{
	local bad pat

	pat='WARNING:|BUG:|BUG |Oops|general protection|blocked for more than|'
	pat+='INFO: task|possible circular locking|possible recursive locking|'
	pat+='lockdep|RCU stall|UBSAN|KASAN|refcount_t:|list_add corruption|'
	pat+='list_del corruption'
	bad=$(_dmesg_since_start | grep -E "$pat")
	if [ -n "$bad" ]; then
		echo "kernel log since '$UBLK_START_MARKER':" >&2
		echo "$bad" >&2
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------------------
# fio

# _run_fio ARGS...: fio bounded by `timeout'; returns fio's status
_run_fio()
{
	_timeout "${UBLK_FIO_TIMEOUT:-120}" fio --eta=never "$@"
}

# _fio_json_clean FILE: the json part of a fio output into FILE.clean. fio
# prints its messages first, and one of them (an interrupted select() when
# it is told to stop) may end without a newline, before the opening brace.
_fio_json_clean()
{
	local f=$1

	awk '!on && /\{$/ { sub(/^[^{]*/, ""); on = 1 }
		on { print }
		on && /^\}/ { exit }' "$f" > "$f.clean"
	[ -s "$f.clean" ]
}

# _fio_json_errors FILE: total I/O errors of all jobs in a json output
_fio_json_errors()
{
	local f=$1

	_fio_json_clean "$f" || return 1
	if command -v jq >/dev/null 2>&1; then
		jq 'def errs: (.total_err // 0) +
				(if (.total_err // 0) == 0 and .error != 0 then 1 else 0 end);
			[.jobs[] | errs] | add' "$f.clean"
	else
		python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
n = 0
for j in d["jobs"]:
    t = j.get("total_err", 0)
    n += t if t else (1 if j.get("error", 0) else 0)
print(n)' "$f.clean"
	fi
}

# _fio_json_ios FILE: completed I/Os (read + write) of all jobs
_fio_json_ios()
{
	local f=$1

	_fio_json_clean "$f" || return 1
	if command -v jq >/dev/null 2>&1; then
		jq '[.jobs[] | .read.total_ios + .write.total_ios] | add' "$f.clean"
	else
		python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(j["read"]["total_ios"] + j["write"]["total_ios"] for j in d["jobs"]))' "$f.clean"
	fi
}

# _fio_jobs FILE: one line per job of a json output: name, completed I/Os
# (read + write), errors
_fio_jobs()
{
	local f=$1

	_fio_json_clean "$f" || return 1
	if command -v jq >/dev/null 2>&1; then
		jq -r 'def errs: (.total_err // 0) +
				(if (.total_err // 0) == 0 and .error != 0 then 1 else 0 end);
			.jobs[] |
			"\(.jobname) \(.read.total_ios + .write.total_ios) \(errs)"' "$f.clean"
	else
		python3 -c '
import json, sys
for j in json.load(open(sys.argv[1]))["jobs"]:
    t = j.get("total_err", 0)
    print(j["jobname"], j["read"]["total_ios"] + j["write"]["total_ios"],
          t if t else (1 if j.get("error", 0) else 0))' "$f.clean"
	fi
}

# ---------------------------------------------------------------------------
# backing files

# _make_backing_file SIZE_MB [direct]: echoes the path of a new file.
# Buffered: a sparse file in /tmp (tmpfs). Direct: tmpfs has no O_DIRECT
# on 6.1, so the file lives on ext4 on a brd RAM disk.
_make_backing_file()
{
	local mb=$1 mode=$2 file mnt

	if [ "$mode" = direct ]; then
		mnt=$UBLK_DATA/brd
		if [ ! -e "$UBLK_DATA/.brd" ]; then
			[ -e /sys/module/brd ] && ! rmmod brd 2>/dev/null && {
				echo "FAIL: brd loaded and busy" >&2
				return 1
			}
			modprobe brd rd_nr=1 rd_size=$(((mb + mb / 8 + 32) * 1024)) || {
				echo "FAIL: modprobe brd" >&2
				return 1
			}
			touch "$UBLK_DATA/.brd"
			mkdir -p "$mnt"
			if ! mkfs.ext4 -q -F /dev/ram0 >/dev/null ||
			   ! mount /dev/ram0 "$mnt"; then
				echo "FAIL: ext4 on /dev/ram0" >&2
				return 1
			fi
		fi
		file=$(mktemp "$mnt/backing.XXXXXX") || return 1
	else
		file=$(mktemp "$UBLK_DATA/backing.XXXXXX") || return 1
	fi
	truncate -s "${mb}M" "$file" || return 1
	echo "$file"
}

# ---------------------------------------------------------------------------
# raw command results (ublk_errno's single-command mode)

# _expect_res DESCRIPTION WANT CMD...: CMD prints a number; compare it
_expect_res()
{
	local what=$1 want=$2 got

	shift 2
	got=$("$@")
	if [ "$got" != "$want" ]; then
		_fail "$what: got '$got' want '$want'"
	fi
	_log "ok - $what ($got)"
}

# START_USER_RECOVERY after a crash: -EBUSY while the dead server's files
# are still being released, so retry that for up to 5 s; prints the result
_start_recovery_settled()
{
	local id=$1 end res

	end=$(($(_now_ms) + 5000))
	while :; do
		res=$(./ublk_errno start-recovery "$id")
		[ "$res" != -16 ] && break
		[ "$(_now_ms)" -gt "$end" ] && break
		sleep 0.02
	done
	echo "$res"
}

# ---------------------------------------------------------------------------
# idleness: who wakes up, what the kernel schedules

# _ctxt_switches PID: context switches of all PID's threads so far
_ctxt_switches()
{
	cat /proc/"$1"/task/*/status 2>/dev/null | awk '
		/^(non)?voluntary_ctxt_switches:/ { n += $2 }
		END { print n + 0 }'
}

# is PID asleep uninterruptibly (waiting for I/O)?
_pid_waits_for_io()
{
	[ "$(_pid_state "$1")" = D ]
}

UBLK_TRACE=""			# tracefs while _trace_start is in force
UBLK_TRACE_EVENTS=()
UBLK_TRACE_WAS_ON=""

# _trace_start GROUP/EVENT...: record these trace events from now on, in an
# emptied buffer; skips the test without tracefs. _trace_stop (or the
# cleanup) switches them off again.
_trace_start()
{
	local t e

	for t in /sys/kernel/tracing /sys/kernel/debug/tracing; do
		[ -e "$t/events/$1/enable" ] && UBLK_TRACE=$t && break
	done
	if [ -z "$UBLK_TRACE" ] && [ -d /sys/kernel/tracing ] &&
	   mount tracefs /sys/kernel/tracing -t tracefs 2>/dev/null &&
	   [ -e "/sys/kernel/tracing/events/$1/enable" ]; then
		UBLK_TRACE=/sys/kernel/tracing
	fi
	[ -n "$UBLK_TRACE" ] || _skip "no tracefs with event $1 (CONFIG_FTRACE)"

	UBLK_TRACE_WAS_ON=$(cat "$UBLK_TRACE/tracing_on")
	echo 0 > "$UBLK_TRACE/tracing_on"
	: > "$UBLK_TRACE/trace"
	for e in "$@"; do
		echo 1 > "$UBLK_TRACE/events/$e/enable" ||
			_fail "cannot enable trace event $e"
		UBLK_TRACE_EVENTS+=("$e")
	done
	echo 1 > "$UBLK_TRACE/tracing_on"
}

_trace_stop()
{
	local e

	[ -n "$UBLK_TRACE" ] || return 0
	echo 0 > "$UBLK_TRACE/tracing_on"
	for e in "${UBLK_TRACE_EVENTS[@]}"; do
		echo 0 > "$UBLK_TRACE/events/$e/enable"
	done
	UBLK_TRACE_EVENTS=()
}

# _trace_lines: the recorded events; fails if the buffer lost some
_trace_lines()
{
	if grep -q '^overrun: [1-9]' "$UBLK_TRACE"/per_cpu/cpu*/stats; then
		echo "FAIL: the trace buffer overran" >&2
		return 1
	fi
	grep -v '^#' "$UBLK_TRACE/trace"
}

# _trace_end: stop and give the buffer back as it was
_trace_end()
{
	[ -n "$UBLK_TRACE" ] || return 0
	_trace_stop
	: > "$UBLK_TRACE/trace"
	echo "${UBLK_TRACE_WAS_ON:-1}" > "$UBLK_TRACE/tracing_on"
	UBLK_TRACE=""
}

# ---------------------------------------------------------------------------

# _stats LABEL N...: print min/median/max of the numbers
_stats()
{
	local label=$1

	shift
	printf '%s\n' "$@" | sort -g | awk -v l="$label" '
		{ v[NR] = $1 }
		END {
			if (NR == 0) exit
			m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%s: n=%d min=%s median=%s max=%s\n", l, NR, v[1], m, v[NR]
		}'
}

_cleanup_test()
{
	local status=$? pid mnt

	trap - EXIT
	[ "$UBLK_FAILED" = 1 ] && status=1

	_trace_end
	for pid in "${UBLK_BG_PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null && _kill_tree "$pid"
	done
	# a job blocked on a QUIESCED device ends only once it is deleted
	for pid in "${UBLK_BG_PIDS[@]}"; do
		_wait_until 5000 _pid_gone "$pid" && wait "$pid" 2>/dev/null
	done

	# unmount whatever the test mounted, deepest first
	if [ -n "$UBLK_DATA" ]; then
		awk -v d="$UBLK_DATA" 'index($2, d) == 1 { print $2 }' /proc/mounts |
			sort -r | while read -r mnt; do
				umount "$mnt" 2>/dev/null || umount -l "$mnt"
			done
	fi

	if [ -n "$UBLKSRV_USED" ] && [ -c /dev/ublk-control ]; then
		_ublksrv list 2>/dev/null | sed -n 's/^dev id \([0-9]*\):.*/\1/p' |
			while read -r id; do
				_ublksrv del -n "$id" >/dev/null 2>&1 ||
					echo "cleanup: ublk del -n $id failed" >&2
			done
	fi
	if [ -x "$KUBLK" ] && [ -c /dev/ublk-control ]; then
		_timeout 60 "$KUBLK" del --all >/dev/null 2>&1 ||
			echo "cleanup: kublk del --all failed" >&2
	fi
	for pid in "${UBLK_BG_PIDS[@]}"; do
		_wait_until 10000 _pid_gone "$pid" && wait "$pid" 2>/dev/null
	done

	if [ -n "$UBLK_DATA" ]; then
		[ -e "$UBLK_DATA/.brd" ] && rmmod brd 2>/dev/null
		rm -rf "$UBLK_DATA"
	fi

	if [ -z "$UBLK_NO_KMSG" ] && [ -n "$UBLK_START_MARKER" ] &&
	   ! _check_dmesg; then
		echo "FAIL: [$UBLK_TEST_NAME] kernel log has warnings" >&2
		status=1
	fi

	if [ -n "$UBLK_TMP" ]; then
		if [ "$status" = 0 ] || [ "$status" = "$UBLK_SKIP_CODE" ]; then
			rm -rf "$UBLK_TMP"
		else
			echo "scratch kept in $UBLK_TMP" >&2
		fi
	fi

	# who holds the module: its refcount and the ublk files still open
	if [ -e /sys/module/ublk_drv/refcnt ]; then
		_log "ublk_drv refcnt $(cat /sys/module/ublk_drv/refcnt) after cleanup;" \
			"open ublk files: $(ls -l /proc/[0-9]*/fd/ 2>/dev/null |
				grep -c '/dev/ublk')"
	fi
	case $status in
	0) _log "PASS" ;;
	"$UBLK_SKIP_CODE") _log "SKIP" ;;
	*) _log "FAIL (exit $status)" ;;
	esac
	_kmsg "ublk-selftest: $UBLK_TEST_NAME end, status $status"
	exit "$status"
}
