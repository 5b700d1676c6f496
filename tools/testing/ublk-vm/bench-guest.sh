#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of "make bench": ublk against the kernel's own drivers, and
# the latency of user recovery. Runs in the VM (run.sh guest) as root with
# cwd = repo root, ublk_drv loaded and $UBLK_RESULTS = the run's results
# folder (a 9p share written back to the host). See BENCH.md.
#
#   run.sh guest tools/testing/ublk-vm/bench-guest.sh [BENCH_KEY=VALUE...]
#
# The VM does not inherit the host's environment: knobs are KEY=VALUE
# arguments (bench-run.sh turns the host's BENCH_* variables into them).
#   BENCH_QUICK=1       development run: runtime 2 s, no ramp, 1 round,
#                       5 recovery cycles, 4 s timeline
#   BENCH_RUNTIME=S     seconds of each fio run (default 2.5)
#   BENCH_RAMP=S        fio ramp_time before each run (default 0.5)
#   BENCH_ROUNDS=N      rounds of every workload x contender (default 3)
#   BENCH_CYCLES=N      kill/recover cycles, busy and idle (default 20)
#   BENCH_TIMELINE=S    timeline run: kill S/2 s after the first I/O, stop
#                       S/2 s after LIVE (default 6)
#   BENCH_ONLY=REGEX    only workloads whose name matches (grep -E)
#   BENCH_PARTS=LIST    any of fio,recovery,timeline,idle,beyond,ref (default
#                       the first five; beyond: handover, FAIL_IO, the
#                       recovery deadline, a self-recovering device; ref:
#                       ours against Linux 6.1's module, kublk and ublksrv)
#   BENCH_DEADLINE_MS=T recovery deadline of the beyond part (default 1000)
#   BENCH_IDLE=S        seconds of each idle window (default 5)
#   BENCH_LOOP_SIZE=SZ  tmpfs backing file of both loop contenders (1G)
#   BENCH_RECOVERY_TARGET=null|loop   target of the recovery cycles (null)
#   BENCH_STANDBY=0|1   also BENCH_CYCLES busy cycles with a standby server
#                       (kublk recover --standby, armed before the kill) (1)
#   BENCH_KUBLK_ARGS=".." extra arguments for the throughput runs' kublk add,
#                       e.g. "--comp-in-task" (none)
#   BENCH_REF_KO=PATH   part ref: Linux 6.1's ublk_drv.ko (ref-module.sh;
#                       bench-run.sh passes it)
#   BENCH_OURS_KO=PATH  part ref: our module (default: the one loaded)
#   BENCH_REF_ROUNDS=N  part ref: rounds, each both modules (9; quick 2)
#   BENCH_REF_CYCLES=N  part ref: kill/recover cycles per module, server
#                       and busy/idle (5; quick 3)
#
# Nothing here fails on timing: the exit status is 0 unless a device could
# not be set up or a part could not run.

set -u

for arg in "$@"; do
	case "$arg" in
	BENCH_*=*)	export "${arg?}" ;;
	*)		echo "bench: ignoring argument '$arg' (want BENCH_KEY=VALUE)" ;;
	esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=ab-module.sh
. "$HERE/ab-module.sh"
REPO=$(cd "$HERE/../../.." && pwd -P)
KUBLK=$REPO/tools/testing/selftests/ublk/kublk
UEVENT=$REPO/tools/testing/selftests/ublk/ublk_uevent
RES=${UBLK_RESULTS:-/tmp/bench-results}
WORK=/tmp/bench
mkdir -p "$RES" "$WORK" || exit 1

if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
	: "${BENCH_RUNTIME:=2}" "${BENCH_RAMP:=0}" "${BENCH_ROUNDS:=1}"
	: "${BENCH_CYCLES:=5}" "${BENCH_TIMELINE:=4}" "${BENCH_IDLE:=3}"
	: "${BENCH_REF_ROUNDS:=2}" "${BENCH_REF_CYCLES:=3}"
fi
RUNTIME=${BENCH_RUNTIME:-2.5}
RAMP=${BENCH_RAMP:-0.5}
ROUNDS=${BENCH_ROUNDS:-3}
CYCLES=${BENCH_CYCLES:-20}
TIMELINE=${BENCH_TIMELINE:-6}
ONLY=${BENCH_ONLY:-}
PARTS=${BENCH_PARTS:-fio,recovery,timeline,idle,beyond}
DEADLINE_MS=${BENCH_DEADLINE_MS:-1000}
IDLE=${BENCH_IDLE:-5}
LOOP_SIZE=${BENCH_LOOP_SIZE:-1G}
REC_TARGET=${BENCH_RECOVERY_TARGET:-null}
STANDBY=${BENCH_STANDBY:-1}
read -r -a KUBLK_ARGS <<< "${BENCH_KUBLK_ARGS:-}"
REF_ROUNDS=${BENCH_REF_ROUNDS:-9}
REF_CYCLES=${BENCH_REF_CYCLES:-5}
declare -A MOD_KO=([ours]=${BENCH_OURS_KO:-$(modinfo -n ublk_drv 2>/dev/null)}
		   [ref]=${BENCH_REF_KO:-})
RUNTIME_MS=$(awk -v s="$RUNTIME" 'BEGIN { printf "%d", s * 1000 }')
RAMP_MS=$(awk -v s="$RAMP" 'BEGIN { printf "%d", s * 1000 }')
HALF=$(awk -v s="$TIMELINE" 'BEGIN { print s / 2 }')
LOOP_FILE=$WORK/loop.img
CPUSTAT=$WORK/bench-cpustat

T_START=$EPOCHREALTIME
failures=0
BG_PIDS=()

say() { echo "bench: $*"; }
warn() { echo "bench: WARNING: $*"; failures=$((failures + 1)); }
elapsed() { local s=${EPOCHREALTIME%.*} t=${T_START%.*}; echo $((s - t)); }
part() { case ",$PARTS," in *",$1,"*) return 0 ;; esac; return 1; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# ---------------------------------------------------------------- devices

declare -A DEV		# "contender:queues" -> block device name (no /dev/)
declare -A UBLK_ID	# same key -> ublk device id
declare -A SRV		# same key -> its server, kublk (unset) or ublksrv
CONTENDERS=(nullblk ublk-null loop ublk-loop)

server_pid() { "$KUBLK" list -n "$1" 2>/dev/null | awk 'NR == 2 { print $6 }'; }

make_loop_file() {
	fallocate -l "$LOOP_SIZE" "$LOOP_FILE" 2>/dev/null ||
		dd if=/dev/zero of="$LOOP_FILE" bs=1M status=none \
			count=$(($(numfmt --from=iec "$LOOP_SIZE") >> 20))
}

# ublk_add KEY ARGS...: kublk add, remembered for cleanup
ublk_add() {
	local key=$1 id

	shift
	id=$(timeout 60 "$KUBLK" add "$@" 2> "$WORK/add.err") || {
		warn "kublk add $* failed: $(tr '\n' ' ' < "$WORK/add.err")"
		return 1
	}
	id=${id//[^0-9]/}
	[ -b "/dev/ublkb$id" ] || { warn "kublk add $*: no /dev/ublkb$id"; return 1; }
	UBLK_ID[$key]=$id
	DEV[$key]=ublkb$id
}

# ublksrv ARGS...: ublksrv's ublk (a black box, driven by its command
# line as test_common.sh's _ublksrv_* do), bounded by `timeout'
ublksrv() {
	timeout 60 "$UBLKSRV/ublk" "$@"
}

# ublksrv_add KEY ARGS...: ublk add ARGS, remembered for cleanup; waits
# for LIVE (its add returns once the daemon is forked)
ublksrv_add() {
	local key=$1 out id

	shift
	[ -x "${UBLKSRV:-}/ublk" ] || { warn "no ublksrv (UBLKSRV=${UBLKSRV:-unset})"; return 1; }
	out=$(ublksrv add "$@" 2>&1) || { warn "ublk add $* failed: $(echo "$out" | tr '\n' ' ')"; return 1; }
	id=$(echo "$out" | sed -n 's/^dev id \([0-9][0-9]*\):.*/\1/p' | head -n 1)
	[ -n "$id" ] || { warn "ublk add $* printed no id: $(echo "$out" | tr '\n' ' ')"; return 1; }
	UBLK_ID[$key]=$id
	DEV[$key]=ublkb$id
	SRV[$key]=ublksrv
	"$KUBLK" wait-state -n "$id" LIVE -t 30000 > /dev/null ||
		{ warn "ublk add $*: device $id not LIVE"; return 1; }
	[ -b "/dev/ublkb$id" ] || { warn "ublk add $*: no /dev/ublkb$id"; return 1; }
}

# srv_del KEY: delete the device with its own server's command, wait for
# the server to be gone (it holds the module until then)
srv_del() {
	local key=$1 id=${UBLK_ID[$1]} pid i

	pid=$(server_pid "$id")
	if [ "${SRV[$key]:-kublk}" = ublksrv ]; then
		ublksrv del -n "$id" > /dev/null 2>&1
	else
		timeout 30 "$KUBLK" del -n "$id" > /dev/null 2>&1
	fi || return 1
	for ((i = 0; i < 200; i++)); do
		[ -n "$pid" ] && [ "$pid" -gt 0 ] && kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	unset "UBLK_ID[$key]" "DEV[$key]" "SRV[$key]"
}

set_sched() {
	local q=/sys/block/$1/queue/scheduler

	[ -w "$q" ] && echo none > "$q" 2>/dev/null
	sed -n 's/.*\[\(.*\)\].*/\1/p' "$q" 2>/dev/null
}

setup_nullblk() {
	local q d cfg=/sys/kernel/config/nullb

	modprobe null_blk nr_devices=0 || { warn "modprobe null_blk failed"; return 1; }
	[ -d "$cfg" ] || { warn "no null_blk configfs ($cfg)"; return 1; }
	for q in 1 2; do
		# the disk is named after the configfs directory
		d=$cfg/nullbq$q
		mkdir "$d" || { warn "mkdir $d"; return 1; }
		# 1 GiB like the ublk null device; memory_backed=0, softirq
		# completion (null_blk's default), 128 tags like ublk/loop.
		if ! { echo 1024 > "$d/size" && echo 2 > "$d/queue_mode" &&
			echo "$q" > "$d/submit_queues" &&
			echo 128 > "$d/hw_queue_depth" &&
			echo 0 > "$d/memory_backed" && echo 1 > "$d/irqmode" &&
			echo 1 > "$d/power"; }; then
			warn "configuring $d failed"
			return 1
		fi
		[ -b "/dev/${d##*/}" ] || { warn "no /dev/${d##*/}"; return 1; }
		DEV[nullblk:$q]=${d##*/}
	done
}

setup_devices() {
	local q key dev

	setup_nullblk
	for q in 1 2; do
		ublk_add "ublk-null:$q" -t null -q "$q" "${KUBLK_ARGS[@]}"
	done

	modprobe loop
	if make_loop_file; then
		if dev=$(losetup --direct-io=off -f --show "$LOOP_FILE"); then
			DEV[loop:1]=${dev#/dev/}
			DEV[loop:2]=${dev#/dev/}
		else
			warn "losetup failed"
		fi
		for q in 1 2; do
			ublk_add "ublk-loop:$q" -t loop -q "$q" -f "$LOOP_FILE" \
				"${KUBLK_ARGS[@]}"
		done
	else
		warn "cannot create $LOOP_FILE"
	fi

	{
		echo "| contender | queues | device | scheduler |"
		echo "|---|---|---|---|"
		for key in nullblk:1 nullblk:2 ublk-null:1 ublk-null:2 loop:1 ublk-loop:1 ublk-loop:2; do
			[ -n "${DEV[$key]:-}" ] || continue
			echo "| ${key%%:*} | ${key##*:} | ${DEV[$key]} | $(set_sched "${DEV[$key]}") |"
		done
	} > "$RES/devices.md"
	say "devices: $(for key in "${!DEV[@]}"; do printf '%s=%s ' "$key" "${DEV[$key]}"; done)"
}

cleanup() {
	local p key d

	trace_set 0 2>/dev/null

	for p in "${BG_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null
	done
	BG_PIDS=()
	for key in "${!UBLK_ID[@]}"; do
		srv_del "$key" 2>/dev/null
	done
	[ -n "${DEV[loop:1]:-}" ] && losetup -d "/dev/${DEV[loop:1]}" 2>/dev/null
	for d in /sys/kernel/config/nullb/nullbq*; do
		[ -d "$d" ] && echo 0 > "$d/power" 2>/dev/null && rmdir "$d" 2>/dev/null
	done
	rm -f "$LOOP_FILE"
	UBLK_ID=()
	DEV=()
	SRV=()
}
trap cleanup EXIT

# ---------------------------------------------------------------- fio runs

WORKLOADS=()
for q in 1 2; do
	for d in qd1 qd32 qd128b; do
		for rw in randread randwrite; do
			WORKLOADS+=("4k-$rw-$d-${q}q")
		done
	done
done
WORKLOADS+=(128k-read-qd32-1q 128k-write-qd32-1q)
if [ -n "$ONLY" ]; then
	mapfile -t WORKLOADS < <(printf '%s\n' "${WORKLOADS[@]}" | grep -E -- "$ONLY")
fi

# wl_opts WORKLOAD: the workload's fio options, one per line
wl_opts() {
	local IFS=- bs rw qd q

	read -r bs rw qd q <<< "$1"
	q=${q%q}
	printf '%s\n' "bs=$bs" "rw=$rw" "numjobs=$q"
	case "$qd" in
	qd128b)	printf '%s\n' iodepth=128 iodepth_batch_submit=16 iodepth_batch_complete_min=16 ;;
	*)	echo "iodepth=${qd#qd}" ;;
	esac
	case "$rw" in
	rand*)	printf '%s\n' norandommap randrepeat=0 ;;
	esac
	# one job per queue: job N on CPU N, which blk-mq maps to queue N
	[ "$q" -gt 1 ] && printf '%s\n' "cpus_allowed=0-$((q - 1))" cpus_allowed_policy=split
}

# fio_global: the [global] section of the job files
fio_global() {
	echo "[global]"
	printf '%s\n' ioengine=io_uring direct=1 thread time_based \
		"runtime=${RUNTIME_MS}ms" "ramp_time=${RAMP_MS}ms" group_reporting \
		lat_percentiles=1 log_avg_msec=500 log_unix_epoch=1 stonewall new_group
}

# round_jobfile ROUND: one fio job file for the whole round, one section
# per workload and contender ("WORKLOAD@CONTENDER"), run one after the
# other (stonewall): A B A B in odd rounds, B A B A in even ones. One fio
# process per round: starting fio costs seconds under TCG.
round_jobfile() {
	local r=$1 wl c q
	local -a order=(nullblk ublk-null loop ublk-loop)

	[ $((r % 2)) -eq 0 ] && order=(ublk-null nullblk ublk-loop loop)
	fio_global
	for wl in "${WORKLOADS[@]}"; do
		q=${wl##*-}
		q=${q%q}
		for c in "${order[@]}"; do
			[ -n "${DEV[$c:$q]:-}" ] || continue
			echo
			echo "[$wl@$c]"
			echo "filename=/dev/${DEV[$c:$q]}"
			echo "write_iops_log=$RES/fio/logs/r$r/$wl@$c"
			wl_opts "$wl"
		done
	done
}

# fio_summary JSON: per workload "contender IOPS ... | ratios"
fio_summary() {
	awk '
	function si(x) { return x >= 1e6 ? sprintf("%.3gM", x / 1e6) : x >= 1e3 ? sprintf("%.3gk", x / 1e3) : sprintf("%.0f", x) }
	/"jobname" :/ {
		gsub(/[",]/, "", $3); split($3, p, "@"); wl = p[1]; c = p[2]; sec = ""
		if (!(wl in seen)) { seen[wl] = 1; wls[++n] = wl }
		cs[wl] = cs[wl] " " c
	}
	/"(read|write)" : \{/ { sec = $1 }
	/"trim" : \{/ { sec = "" }
	/"iops" : / && sec != "" { v = $3 + 0; if (v > iops[wl, c]) iops[wl, c] = v; sec = "" }
	END {
		for (i = 1; i <= n; i++) {
			wl = wls[i]; s = ""
			m = split(cs[wl], list, " ")
			for (k = 1; k <= m; k++)
				s = s sprintf(" %s %s", list[k], si(iops[wl, list[k]]))
			if (iops[wl, "nullblk"] && iops[wl, "ublk-null"] != "")
				s = s sprintf(" | ublk-null/null_blk %.2f", iops[wl, "ublk-null"] / iops[wl, "nullblk"])
			if (iops[wl, "loop"] && iops[wl, "ublk-loop"] != "")
				s = s sprintf(" ublk-loop/loop %.2f", iops[wl, "ublk-loop"] / iops[wl, "loop"])
			printf "%-22s%s\n", wl, s
		}
	}' "$1" 2>/dev/null
}

run_fio_part() {
	local r key cpid njobs secs rc
	local -a pids=()

	njobs=$(( ${#WORKLOADS[@]} * ${#CONTENDERS[@]} ))
	secs=$(awk -v n="$njobs" -v t="$RUNTIME" -v r="$RAMP" 'BEGIN { printf "%d", n * (t + r + 0.4) + 5 }')
	say "fio: ${#WORKLOADS[@]} workloads x ${#CONTENDERS[@]} contenders x $ROUNDS rounds, ${RUNTIME} s + ${RAMP} s ramp each (about ${secs} s a round)"
	# CPU accounting over the whole part (10 Hz); bench-report.py cuts
	# out each job's window (from its iops log) and the server's share.
	: > "$RES/fio/servers.txt"
	for key in "${!UBLK_ID[@]}"; do
		pids+=("$(server_pid "${UBLK_ID[$key]}")")
		echo "$key ${pids[-1]}" >> "$RES/fio/servers.txt"
	done
	"$CPUSTAT" 100000 "$WORK/cpu.txt" "${pids[@]}" &
	cpid=$!
	BG_PIDS+=("$cpid")
	for ((r = 1; r <= ROUNDS; r++)); do
		mkdir -p "$RES/fio/logs/r$r"
		round_jobfile "$r" > "$RES/fio/r$r.fio"
		say "round $r/$ROUNDS: $njobs fio jobs ($(elapsed) s so far)"
		timeout -k 5 $((secs * 2 + 120)) fio --output-format=json \
			--output="$WORK/fio.json" "$RES/fio/r$r.fio" > "$WORK/fio.out" 2>&1
		rc=$?
		cp "$WORK/fio.json" "$RES/fio/r$r.json"
		[ "$rc" -eq 0 ] || warn "fio round $r exited $rc: $(tail -n 3 "$WORK/fio.out" | tr '\n' ' ')"
		fio_summary "$RES/fio/r$r.json" | sed "s/^/bench: [r$r] /"
	done
	kill -TERM "$cpid"
	wait "$cpid"
	cp "$WORK/cpu.txt" "$RES/fio/cpu.txt"
}

# ---------------------------------------------------------------- recovery

# kill_watched ID STATE OUT: start `kublk wait-state STATE' (output to OUT),
# give it 0.3 s to be polling, kill -9 the server; the kill time in TK, the
# waiter's pid in WPID (its own start-up is not counted)
TK=''
WPID=''
kill_watched() {
	local pid

	pid=$(server_pid "$1")
	[ -n "$pid" ] && [ "$pid" -gt 0 ] || return 1
	"$KUBLK" wait-state -n "$1" "$2" -t 30000 > "$3" 2>&1 &
	WPID=$!
	sleep 0.3
	TK=$EPOCHREALTIME
	kill -9 "$pid"
}

# kill_recover ID TSV CYCLE: kill -9 the server, wait for QUIESCED, recover.
# Appends "cycle t_kill t_quiesced t_live start_live_ms waitstate_ms".
# Nothing is exec'd between QUIESCED and recover: a process start costs
# 0.1 s and more here.
# With SERVER ublksrv (4th argument) its `ublk recover' starts the new
# server and a `kublk wait-state LIVE' tells LIVE (an upper bound: it
# adds a process start); START -> LIVE is then not known (nan). A 7th
# column has when the recover command returned.
kill_recover() {
	local id=$1 tsv=$2 c=$3 srv=${4:-kublk} tk tq tl tr= sl ws rc

	kill_watched "$id" QUIESCED "$WORK/ws.out" ||
		{ warn "cycle $c: no server pid for $id"; return 1; }
	tk=$TK
	wait "$WPID" || { warn "cycle $c: not QUIESCED: $(cat "$WORK/ws.out")"; return 1; }
	tq=$EPOCHREALTIME
	if [ "$srv" = ublksrv ]; then
		ublksrv recover -n "$id" > /dev/null 2> "$WORK/rec.err"
		rc=$?
		tr=$EPOCHREALTIME
		if [ "$rc" != 0 ] ||
		   ! "$KUBLK" wait-state -n "$id" LIVE -t 30000 > /dev/null 2>> "$WORK/rec.err"; then
			warn "cycle $c: ublk recover failed: $(tr '\n' ' ' < "$WORK/rec.err")"
			return 1
		fi
	elif ! "$KUBLK" recover -n "$id" > /dev/null 2> "$WORK/rec.err"; then
		warn "cycle $c: kublk recover failed: $(tr '\n' ' ' < "$WORK/rec.err")"
		return 1
	fi
	tl=$EPOCHREALTIME
	read -r ws _ < "$WORK/ws.out"
	sl=$(sed -n 's/.*START->LIVE \([0-9.]*\) ms.*/\1/p' "$WORK/rec.err" | head -n1)
	echo "$c $tk $tq $tl ${sl:-nan} ${ws:-nan} ${tr:-$tl}" >> "$tsv"
	printf 'bench: %s cycle %2d: kill->QUIESCED %6s ms, START->LIVE %6s ms, kill->LIVE %7s ms%s\n' \
		"$(basename "$tsv" .tsv)" "$c" "$(ms_between "$tk" "$tq")" "${sl:-?}" "$(ms_between "$tk" "$tl")" \
		"${tr:+ (ublk recover returned after $(ms_between "$tk" "$tr") ms)}"
}

# kill_recover_standby ID TSV CYCLE: the same with the new server started
# first ("kublk recover --standby" returns once it is armed; it takes over
# at QUIESCED). Its START->LIVE line goes to the daemon log; LIVE is when a
# "wait-state LIVE" started after QUIESCED returns (an upper bound).
kill_recover_standby() {
	local id=$1 tsv=$2 c=$3 log=${KUBLK_RUN_DIR:-/run/ublk}/ublk$1.log
	local tk tq tl sl ws n0 n i

	n0=$(grep -c 'START->LIVE' "$log" 2>/dev/null)
	if ! "$KUBLK" recover --standby -n "$id" > /dev/null 2> "$WORK/rec.err"; then
		warn "cycle $c: kublk recover --standby failed: $(tr '\n' ' ' < "$WORK/rec.err")"
		return 1
	fi
	kill_watched "$id" QUIESCED "$WORK/ws.out" ||
		{ warn "cycle $c: no server pid for $id"; return 1; }
	tk=$TK
	wait "$WPID" || { warn "cycle $c: not QUIESCED: $(cat "$WORK/ws.out")"; return 1; }
	tq=$EPOCHREALTIME
	"$KUBLK" wait-state -n "$id" LIVE -t 30000 > /dev/null 2>&1 ||
		{ warn "cycle $c: the standby server did not make it LIVE"; return 1; }
	tl=$EPOCHREALTIME
	for ((i = 0; i < 100; i++)); do
		n=$(grep -c 'START->LIVE' "$log" 2>/dev/null)
		[ "${n:-0}" -gt "${n0:-0}" ] && break
		sleep 0.05
	done
	read -r ws _ < "$WORK/ws.out"
	sl=$(sed -n 's/.*START->LIVE \([0-9.]*\) ms.*/\1/p' "$log" | tail -n1)
	echo "$c $tk $tq $tl ${sl:-nan} ${ws:-nan}" >> "$tsv"
	printf 'bench: standby cycle %2d: kill->QUIESCED %6s ms, START->LIVE %6s ms, kill->LIVE <= %7s ms\n' \
		"$c" "$(ms_between "$tk" "$tq")" "${sl:-?}" "$(ms_between "$tk" "$tl")"
}

# rec_dev TARGET [SERVER]: a recovery-enabled (-r -i) device of kublk
# (default) or ublksrv, 1 queue of depth 128; prints its id
rec_dev() {
	local id a=(-t "$1" -q 1 -d 128 -r 1 -i 1)

	case "${2:-kublk}:$1" in
	ublksrv:*)
		[ "$1" = loop ] && a+=(-f "$LOOP_FILE" --buffered_io)
		id=$(ublksrv add "${a[@]}" 2>&1 |
			sed -n 's/^dev id \([0-9][0-9]*\):.*/\1/p' | head -n 1)
		[ -n "$id" ] && "$KUBLK" wait-state -n "$id" LIVE -t 30000 > /dev/null ||
			{ warn "ublk add -t $1 -r 1 -i 1: no LIVE device"; return 1; }
		;;
	kublk:loop)	id=$("$KUBLK" add -t loop -f "$LOOP_FILE" -r -i 2> "$WORK/add.err") ;;
	*)	id=$("$KUBLK" add -t null -r -i 2> "$WORK/add.err") ;;
	esac || { warn "kublk add -t $1 -r -i: $(tr '\n' ' ' < "$WORK/add.err")"; return 1; }
	id=${id//[^0-9]/}
	set_sched "ublkb$id" > /dev/null
	echo "$id"
}

# wait_io DEV [TIMEOUT_S]: until the device has completed some I/O
wait_io() {
	local f=/sys/block/$1/stat end a e
	end=$(( ${EPOCHREALTIME%.*} + ${2:-60} ))

	while [ "${EPOCHREALTIME%.*}" -lt "$end" ]; do
		read -r a _ _ _ e _ < "$f"
		[ $((a + e)) -gt 100 ] && return 0
		sleep 0.1
	done
	warn "no I/O on $1 after ${2:-60} s"
	return 1
}

# fio_start DEV JSON LOGPREFIX: 4k random writes, qd 32, 1 job, in the
# background until fio_stop; every completion logged (epoch ms, latency)
# for the stall and the timeline. fio itself is the background job (not a
# subshell around it), so that its pid gets the signal.
FIO_PID=
fio_start() {
	fio --name=recovery --filename="/dev/$1" --ioengine=io_uring --direct=1 \
		--rw=randwrite --bs=4k --iodepth=32 --norandommap --randrepeat=0 \
		--time_based --runtime=3600 --continue_on_error=all \
		--write_lat_log="$3" --log_avg_msec=0 --log_unix_epoch=1 \
		--disable_slat=1 \
		--output-format=json --output="$2" > "$WORK/rec-fio.out" 2>&1 &
	FIO_PID=$!
	BG_PIDS+=("$FIO_PID")
}

# fio_stop: SIGTERM (fio stops, writes its logs and JSON), then wait
fio_stop() {
	kill -TERM "$FIO_PID" 2>/dev/null
	wait "$FIO_PID"
}

run_recovery_part() {
	local dir=$RES/recovery id c

	mkdir -p "$dir"
	: > "$dir/busy.tsv"
	: > "$dir/idle.tsv"
	say "recovery: $CYCLES cycles on a busy ublk $REC_TARGET device (-r -i, fio 4k randwrite qd32), then $CYCLES idle"

	id=$(rec_dev "$REC_TARGET") || return 1
	fio_start "ublkb$id" "$WORK/busy-fio.json" "$WORK/busy"
	wait_io "ublkb$id"
	sleep 1
	for ((c = 1; c <= CYCLES; c++)); do
		kill_recover "$id" "$dir/busy.tsv" "$c" || break
		sleep 1
	done
	if [ "$STANDBY" != 0 ]; then
		: > "$dir/standby.tsv"
		say "recovery: $CYCLES more busy cycles, the new server armed first (kublk recover --standby)"
		for ((c = 1; c <= CYCLES; c++)); do
			kill_recover_standby "$id" "$dir/standby.tsv" "$c" || break
			sleep 1
		done
	fi
	fio_stop
	cp "$WORK/busy-fio.json" "$dir/busy-fio.json" 2>/dev/null
	gzip -c "$WORK/busy_lat.1.log" > "$dir/busy-lat.log.gz"
	timeout 30 "$KUBLK" del -n "$id" > /dev/null 2>&1 || warn "kublk del -n $id failed"

	id=$(rec_dev "$REC_TARGET") || return 1
	sleep 0.5
	for ((c = 1; c <= CYCLES; c++)); do
		kill_recover "$id" "$dir/idle.tsv" "$c" || break
		sleep 0.3
	done
	timeout 30 "$KUBLK" del -n "$id" > /dev/null 2>&1 || warn "kublk del -n $id failed"
}

# ---------------------------------------------------------------- timeline

run_timeline_part() {
	local dir=$RES/timeline id

	mkdir -p "$dir"
	: > "$dir/events.tsv"
	say "timeline: 4k random writes (qd32) on a ublk loop device with REISSUE, kill -9 ${HALF} s after the first I/O, stop ${HALF} s after LIVE"
	id=$(rec_dev loop) || return 1
	# fio takes seconds to start under TCG: count from its first I/O, and
	# stop it with a signal rather than by its runtime
	fio_start "ublkb$id" "$WORK/tl-fio.json" "$WORK/tl"
	wait_io "ublkb$id"
	sleep "$HALF"
	kill_recover "$id" "$dir/events.tsv" 1
	sleep "$HALF"
	fio_stop
	cp "$WORK/tl-fio.json" "$dir/fio.json" 2>/dev/null
	gzip -c "$WORK/tl_lat.1.log" > "$dir/lat.log.gz"
	timeout 30 "$KUBLK" del -n "$id" > /dev/null 2>&1 || warn "kublk del -n $id failed"
}

# ---------------------------------------------------------------- idle

TRACE=/sys/kernel/tracing
TRACE_EVENTS=(workqueue/workqueue_queue_work timer/timer_start timer/hrtimer_start)

# trace_set 0|1: the trace events of the idle windows off or on (emptied)
trace_set() {
	local e

	[ -e "$TRACE/events/${TRACE_EVENTS[0]}/enable" ] || return 1
	echo 0 > "$TRACE/tracing_on"
	[ "$1" = 1 ] && : > "$TRACE/trace"
	for e in "${TRACE_EVENTS[@]}"; do
		echo "$1" > "$TRACE/events/$e/enable"
	done
	echo "$1" > "$TRACE/tracing_on"
}

# the whole guest: "busy_ticks context_switches interrupts" (/proc/stat)
guest_counters() {
	awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 } /^ctxt/ { c = $2 }
	     /^intr/ { i = $2 } END { print b, c, i }' /proc/stat
}

# server_switches PID...: context switches of all their threads, or nan
server_switches() {
	[ $# -eq 0 ] && { echo nan; return; }
	local p

	for p in "$@"; do
		cat /proc/"$p"/task/*/status 2>/dev/null
	done | awk '/^(non)?voluntary_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}

# idle_window STATE [SERVER_PID...]: IDLE seconds in which nothing is
# asked of the devices. Appends "state seconds busy_ms context_switches
# interrupts trace_events ublk_events server_switches" to idle.tsv; the
# ublk events themselves go to idle/STATE-ublk.txt.
idle_window() {
	local state=$1 dir=$RES/idle b0 c0 i0 b1 c1 i1 s0 s1 t0 t1 ms cpu ev=nan uev=nan

	shift
	trace_set 1 || say "idle: no tracefs events, no event counts"
	s0=$(server_switches "$@")
	read -r b0 c0 i0 < <(guest_counters)
	t0=$EPOCHREALTIME
	sleep "$IDLE"	# the measured window: absence is the point
	read -r b1 c1 i1 < <(guest_counters)
	t1=$EPOCHREALTIME
	s1=$(server_switches "$@")
	if trace_set 0; then
		grep -v '^#' "$TRACE/trace" > "$WORK/idle-trace.txt"
		ev=$(grep -c . "$WORK/idle-trace.txt")
		grep -i ublk "$WORK/idle-trace.txt" > "$dir/$state-ublk.txt"
		uev=$(grep -c . "$dir/$state-ublk.txt")
		[ "$uev" -gt 0 ] || rm -f "$dir/$state-ublk.txt"
	fi
	[ "$s0" = nan ] || s1=$((s1 - s0))
	ms=$(ms_between "$t0" "$t1")
	cpu=$(((b1 - b0) * 1000 / $(getconf CLK_TCK)))
	echo "$state $ms $cpu $((c1 - c0)) $((i1 - i0)) $ev $uev $s1" >> "$dir/idle.tsv"
	say "idle: $state: $cpu ms CPU, $((c1 - c0)) context switches, $((i1 - i0)) interrupts, $ev timer/work events ($uev from ublk), server switches $s1 in $ms ms"
}

run_idle_part() {
	local dir=$RES/idle keys=(idle-null:2 idle-loop:1) key pids=() readers=() p i ok=1

	mkdir -p "$dir"
	: > "$dir/idle.tsv"
	say "idle: ${IDLE} s windows: no ublk device; ublk null (2 queues) and ublk loop LIVE with no I/O; both QUIESCED (servers killed) with a read waiting on each"
	idle_window none
	ublk_add idle-null:2 -t null -q 2 -r || return 1
	ublk_add idle-loop:1 -t loop -q 1 -f "$LOOP_FILE" -r || return 1
	for key in "${keys[@]}"; do
		pids+=("$(server_pid "${UBLK_ID[$key]}")")
	done
	idle_window live "${pids[@]}"

	for p in "${pids[@]}"; do
		kill -9 "$p"
	done
	for key in "${keys[@]}"; do
		"$KUBLK" wait-state -n "${UBLK_ID[$key]}" QUIESCED -t 30000 > /dev/null ||
			{ warn "idle: device ${UBLK_ID[$key]} not QUIESCED"; return 1; }
		dd if="/dev/${DEV[$key]}" of=/dev/null bs=4k count=1 iflag=direct status=none &
		readers+=($!)
		BG_PIDS+=($!)
	done
	for p in "${readers[@]}"; do
		for ((i = 0; i < 100; i++)); do
			[ "$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null)" = D ] && break
			sleep 0.05
		done
	done
	idle_window quiesced

	for key in "${keys[@]}"; do
		"$KUBLK" recover -n "${UBLK_ID[$key]}" > /dev/null 2> "$WORK/rec.err" ||
			{ warn "idle: kublk recover failed: $(tr '\n' ' ' < "$WORK/rec.err")"; ok=0; }
	done
	for p in "${readers[@]}"; do
		for ((i = 0; i < 300; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$p" 2>/dev/null; then
			warn "idle: a read still waits 30 s after recovery"
			ok=0
		elif ! wait "$p"; then
			warn "idle: a read waiting on a QUIESCED device failed"
			ok=0
		fi
	done
	[ "$ok" = 1 ] && say "idle: the waiting reads completed after recovery"
	for key in "${keys[@]}"; do
		timeout 30 "$KUBLK" del -n "${UBLK_ID[$key]}" > /dev/null 2>&1 ||
			warn "kublk del -n ${UBLK_ID[$key]} failed"
		unset "UBLK_ID[$key]" "DEV[$key]"
	done
}

# ---------------------------------------------------------------- beyond 6.1

# beyond_dev ARGS...: a null device with kublk add ARGS; prints its id
beyond_dev() {
	local id

	id=$("$KUBLK" add -t null "$@" 2> "$WORK/add.err") ||
		{ warn "kublk add -t null $*: $(tr '\n' ' ' < "$WORK/add.err")"; return 1; }
	id=${id//[^0-9]/}
	set_sched "ublkb$id" > /dev/null
	echo "$id"
}

# handover_cycle ID TSV CYCLE: kublk handover under fio; the row has the
# layout of kill_recover's, "kill" being when QUIESCE_DEV was sent
handover_cycle() {
	local id=$1 tsv=$2 c=$3 tk tl qq sl

	tk=$EPOCHREALTIME
	if ! "$KUBLK" handover -n "$id" > /dev/null 2> "$WORK/ho.err"; then
		warn "handover $c: $(tr '\n' ' ' < "$WORK/ho.err")"
		return 1
	fi
	tl=$EPOCHREALTIME
	qq=$(sed -n 's/.*QUIESCE->QUIESCED \([0-9.]*\) ms.*/\1/p' "$WORK/ho.err")
	sl=$(sed -n 's/.*START->LIVE \([0-9.]*\) ms.*/\1/p' "$WORK/ho.err")
	echo "$c $tk $(awk -v a="$tk" -v q="${qq:-0}" 'BEGIN { printf "%.6f", a + q / 1000 }') $tl ${sl:-nan} nan" >> "$tsv"
	printf 'bench: handover %2d: QUIESCE->QUIESCED %6s ms, START->LIVE %6s ms, QUIESCE->LIVE %7s ms\n' \
		"$c" "${qq:-?}" "${sl:-?}" "$(ms_between "$tk" "$tl")"
}

# failio_cycle ID TSV CYCLE: kill in FAIL_IO mode; "c t_kill t_failio
# t_first_eio t_live": the state as polled from before the kill, and the
# first new direct read that fails
failio_cycle() {
	local id=$1 tsv=$2 c=$3 tk tq te tl

	kill_watched "$id" FAIL_IO /dev/null || { warn "FAIL_IO cycle $c: no server"; return 1; }
	tk=$TK
	while dd if="/dev/ublkb$id" of=/dev/null bs=4k count=1 iflag=direct \
		status=none 2> /dev/null; do :; done
	te=$EPOCHREALTIME
	wait "$WPID" || { warn "FAIL_IO cycle $c: not FAIL_IO"; return 1; }
	tq=$EPOCHREALTIME
	"$KUBLK" recover -n "$id" > /dev/null 2>&1 || { warn "FAIL_IO cycle $c: recover failed"; return 1; }
	tl=$EPOCHREALTIME
	echo "$c $tk $tq $te $tl" >> "$tsv"
	printf 'bench: FAIL_IO cycle %2d: kill->first EIO %6s ms, FAIL_IO seen after %6s ms\n' \
		"$c" "$(ms_between "$tk" "$te")" "$(ms_between "$tk" "$tq")"
}

# deadline_cycle ID TSV CYCLE: kill, then wait for the deadline's FAIL_IO;
# "c t_kill t_failio": a reader blocked since the kill gets EIO then
deadline_cycle() {
	local id=$1 tsv=$2 c=$3 tk tf

	kill_watched "$id" QUIESCED /dev/null || { warn "deadline cycle $c: no server"; return 1; }
	tk=$TK
	wait "$WPID"
	dd if="/dev/ublkb$id" of=/dev/null bs=4k count=1 iflag=direct status=none 2> /dev/null &&
		{ warn "deadline cycle $c: a read succeeded without a server"; return 1; }
	tf=$EPOCHREALTIME
	"$KUBLK" recover -n "$id" > /dev/null 2>&1 || { warn "deadline cycle $c: recover failed"; return 1; }
	echo "$c $tk $tf" >> "$tsv"
	printf 'bench: deadline %s ms, cycle %2d: kill->EIO of a waiting read %7s ms\n' \
		"$DEADLINE_MS" "$c" "$(ms_between "$tk" "$tf")"
}

# selfrec_cycle ID TSV CYCLE: kill; ublk_uevent runs kublk recover at the
# QUIESCED uevent; kill_recover's row layout, "live" from a wait-state
# LIVE started at QUIESCED (an upper bound)
selfrec_cycle() {
	local id=$1 tsv=$2 c=$3 tk tq tl

	kill_watched "$id" QUIESCED /dev/null || { warn "self-recovery cycle $c: no server"; return 1; }
	tk=$TK
	wait "$WPID" || { warn "self-recovery cycle $c: not QUIESCED"; return 1; }
	tq=$EPOCHREALTIME
	"$KUBLK" wait-state -n "$id" LIVE -t 30000 > /dev/null 2>&1 ||
		{ warn "self-recovery cycle $c: not LIVE again"; return 1; }
	tl=$EPOCHREALTIME
	echo "$c $tk $tq $tl nan nan" >> "$tsv"
	printf 'bench: self-recovery cycle %2d: kill->QUIESCED %6s ms, kill->LIVE <= %7s ms\n' \
		"$c" "$(ms_between "$tk" "$tq")" "$(ms_between "$tk" "$tl")"
}

run_beyond_part() {
	local dir=$RES/beyond id c n lpid

	mkdir -p "$dir"
	: > "$dir/handover.tsv"
	: > "$dir/failio.tsv"
	: > "$dir/deadline.tsv"
	: > "$dir/selfrec.tsv"
	echo "$DEADLINE_MS" > "$dir/deadline_ms"

	say "beyond: $CYCLES planned handovers under fio (null, -r --quiesce, no REISSUE)"
	id=$(beyond_dev -r --quiesce) || return 1
	fio_start "ublkb$id" "$WORK/handover-fio.json" "$WORK/handover"
	wait_io "ublkb$id"
	sleep 1
	for ((c = 1; c <= CYCLES; c++)); do
		handover_cycle "$id" "$dir/handover.tsv" "$c" || break
		sleep 0.5
	done
	fio_stop
	cp "$WORK/handover-fio.json" "$dir/handover-fio.json" 2>/dev/null
	gzip -c "$WORK/handover_lat.1.log" > "$dir/handover-lat.log.gz"
	timeout 30 "$KUBLK" del -n "$id" > /dev/null 2>&1 || warn "kublk del -n $id failed"

	say "beyond: $CYCLES kills in FAIL_IO mode (-r -e)"
	id=$(beyond_dev -r -e) || return 1
	for ((c = 1; c <= CYCLES; c++)); do
		failio_cycle "$id" "$dir/failio.tsv" "$c" || break
	done
	timeout 30 "$KUBLK" del -n "$id" > /dev/null 2>&1 || warn "kublk del -n $id failed"

	n=$((CYCLES < 5 ? CYCLES : 5))
	say "beyond: $n kills with a recovery deadline of $DEADLINE_MS ms"
	id=$(beyond_dev -r --recovery-timeout "$DEADLINE_MS") || return 1
	for ((c = 1; c <= n; c++)); do
		deadline_cycle "$id" "$dir/deadline.tsv" "$c" || break
	done
	timeout 30 "$KUBLK" del -n "$id" > /dev/null 2>&1 || warn "kublk del -n $id failed"

	say "beyond: $CYCLES kills of a self-recovering device under fio (-r -i, ublk_uevent runs kublk recover)"
	id=$(beyond_dev -r -i) || return 1
	"$UEVENT" -n "$id" -s QUIESCED -x "$KUBLK recover -n $id > /dev/null 2>&1" \
		> "$WORK/uevent.log" 2>&1 &
	lpid=$!
	BG_PIDS+=("$lpid")
	fio_start "ublkb$id" "$WORK/selfrec-fio.json" "$WORK/selfrec"
	wait_io "ublkb$id"
	sleep 1
	for ((c = 1; c <= CYCLES; c++)); do
		selfrec_cycle "$id" "$dir/selfrec.tsv" "$c" || break
		sleep 1
	done
	fio_stop
	kill "$lpid" 2>/dev/null
	cp "$WORK/selfrec-fio.json" "$dir/selfrec-fio.json" 2>/dev/null
	gzip -c "$WORK/selfrec_lat.1.log" > "$dir/selfrec-lat.log.gz"
	timeout 30 "$KUBLK" del -n "$id" > /dev/null 2>&1 || warn "kublk del -n $id failed"
}

# ---------------------------------------------------------------- ours vs 6.1

# Part ref: our module against Linux 6.1's own (ref-module.sh), each
# serving kublk and ublksrv, swapped in this boot (ab-module.sh). Rounds
# run "ours" then "ref" when odd, "ref" then "ours" when even; a half
# loads its module, adds a null and a loop device with 1 and 2 queues for
# each server, runs one fio process over every workload and device, then
# deletes them and unloads. null_blk (module-independent) runs in the
# first half of each round, for ublk's CPU per I/O over null_blk's. Then
# REF_CYCLES kill/recover cycles, busy and idle, for each module and
# server. Results in ref/ (see BENCH.md); the kernel log of each half is
# in ref/dmesg.txt, marked per phase, and the report lists any warning.
REF_MODULES=(ours ref)
REF_SERVERS=(kublk ublksrv)

# ref_phase TEXT: a kernel log marker, so that a warning can be pinned on
# the module that was loaded
ref_phase() {
	echo "bench-ref: $*" > /dev/kmsg
	say "ref: $*"
}

# ref_devices: the 8 ublk devices of a half on the loaded module
ref_devices() {
	local q key ok=0

	for q in 1 2; do
		ublk_add "kublk-null:$q" -t null -q "$q" "${KUBLK_ARGS[@]}" || ok=1
		ublk_add "kublk-loop:$q" -t loop -q "$q" -f "$LOOP_FILE" "${KUBLK_ARGS[@]}" || ok=1
		ublksrv_add "ublksrv-null:$q" -t null -q "$q" -d 128 || ok=1
		ublksrv_add "ublksrv-loop:$q" -t loop -q "$q" -d 128 -f "$LOOP_FILE" --buffered_io || ok=1
	done
	for key in "${!DEV[@]}"; do
		set_sched "${DEV[$key]}" > /dev/null
	done
	return $ok
}

# ref_del_all: delete every ublk device (the module can go then)
ref_del_all() {
	local key

	for key in "${!UBLK_ID[@]}"; do
		srv_del "$key" || warn "deleting $key (device ${UBLK_ID[$key]}) failed"
	done
}

# ref_jobfile ROUND MODULE WITH_NULLBLK: the half's fio job file, sections
# "WORKLOAD@SERVER-TARGET" (and "@nullblk"), servers alternating by round
ref_jobfile() {
	local r=$1 m=$2 wl c q
	local -a order=(kublk-null ublksrv-null kublk-loop ublksrv-loop)

	[ $((r % 2)) -eq 0 ] && order=(ublksrv-null kublk-null ublksrv-loop kublk-loop)
	[ "$3" = 1 ] && order=(nullblk "${order[@]}")
	fio_global
	for wl in "${WORKLOADS[@]}"; do
		q=${wl##*-}
		q=${q%q}
		for c in "${order[@]}"; do
			[ -n "${DEV[$c:$q]:-}" ] || continue
			echo
			echo "[$wl@$c]"
			echo "filename=/dev/${DEV[$c:$q]}"
			echo "write_iops_log=$RES/ref/fio/logs/r$r-$m/$wl@$c"
			wl_opts "$wl"
		done
	done
}

# ref_half ROUND MODULE WITH_NULLBLK
ref_half() {
	local r=$1 m=$2 dir=$RES/ref/fio key cpid secs rc njobs
	local -a pids=()

	ref_phase "round $r: $m module (${MOD_KO[$m]})"
	ab_module_use "${MOD_KO[$m]}" || { warn "cannot load the $m module"; return 1; }
	ref_devices || warn "round $r, $m: not every device could be added"
	mkdir -p "$dir/logs/r$r-$m"
	: > "$dir/r$r-$m.servers.txt"
	for key in "${!UBLK_ID[@]}"; do
		pids+=("$(server_pid "${UBLK_ID[$key]}")")
		echo "$key ${pids[-1]}" >> "$dir/r$r-$m.servers.txt"
	done
	ref_jobfile "$r" "$m" "$3" > "$dir/r$r-$m.fio"
	njobs=$(grep -c '^\[.*@' "$dir/r$r-$m.fio")
	secs=$(awk -v n="$njobs" -v t="$RUNTIME" -v r="$RAMP" 'BEGIN { printf "%d", n * (t + r + 0.4) + 5 }')
	"$CPUSTAT" 100000 "$WORK/cpu.txt" "${pids[@]}" &
	cpid=$!
	BG_PIDS+=("$cpid")
	say "ref: round $r/$REF_ROUNDS, $m: $njobs fio jobs (about $secs s; $(elapsed) s so far)"
	timeout -k 5 $((secs * 2 + 120)) fio --output-format=json \
		--output="$WORK/fio.json" "$dir/r$r-$m.fio" > "$WORK/fio.out" 2>&1
	rc=$?
	kill -TERM "$cpid"
	wait "$cpid"
	cp "$WORK/cpu.txt" "$dir/r$r-$m.cpu.txt"
	cp "$WORK/fio.json" "$dir/r$r-$m.json"
	[ "$rc" -eq 0 ] || warn "ref round $r ($m) fio exited $rc: $(tail -n 3 "$WORK/fio.out" | tr '\n' ' ')"
	fio_summary "$dir/r$r-$m.json" | sed "s/^/bench: [r$r $m] /"
	ref_del_all
}

# ref_recovery MODULE SERVER: REF_CYCLES busy cycles (fio 4k randwrite
# qd32) and REF_CYCLES idle ones, on a -r -i device of REC_TARGET
ref_recovery() {
	local m=$1 s=$2 dir=$RES/ref/recovery id c

	ref_phase "recovery: $m module, $s"
	mkdir -p "$dir"
	: > "$dir/$m-$s-busy.tsv"
	: > "$dir/$m-$s-idle.tsv"
	id=$(rec_dev "$REC_TARGET" "$s") || return 1
	fio_start "ublkb$id" "$WORK/ref-fio.json" "$WORK/ref"
	wait_io "ublkb$id"
	sleep 1
	for ((c = 1; c <= REF_CYCLES; c++)); do
		kill_recover "$id" "$dir/$m-$s-busy.tsv" "$c" "$s" || break
		sleep 1
	done
	fio_stop
	cp "$WORK/ref-fio.json" "$dir/$m-$s-busy-fio.json" 2>/dev/null
	gzip -c "$WORK/ref_lat.1.log" > "$dir/$m-$s-busy-lat.log.gz"
	UBLK_ID[rec]=$id
	[ "$s" = ublksrv ] && SRV[rec]=ublksrv
	srv_del rec || warn "deleting device $id failed"

	id=$(rec_dev "$REC_TARGET" "$s") || return 1
	sleep 0.5
	for ((c = 1; c <= REF_CYCLES; c++)); do
		kill_recover "$id" "$dir/$m-$s-idle.tsv" "$c" "$s" || break
		sleep 0.3
	done
	UBLK_ID[rec]=$id
	[ "$s" = ublksrv ] && SRV[rec]=ublksrv
	srv_del rec || warn "deleting device $id failed"
}

run_ref_part() {
	local r m s first

	mkdir -p "$RES/ref/fio"
	[ -r "${MOD_KO[ref]}" ] || { warn "ref: no 6.1 module (BENCH_REF_KO=${MOD_KO[ref]})"; return 1; }
	[ -r "${MOD_KO[ours]}" ] || { warn "ref: no module of ours (BENCH_OURS_KO=${MOD_KO[ours]})"; return 1; }
	[ -x "${UBLKSRV:-}/ublk" ] || { warn "ref: no ublksrv (UBLKSRV=${UBLKSRV:-unset})"; return 1; }
	{
		echo "ours=${MOD_KO[ours]}"
		echo "ref=${MOD_KO[ref]}"
		echo "ublksrv=$UBLKSRV"
		echo "rounds=$REF_ROUNDS"
		echo "cycles=$REF_CYCLES"
	} > "$RES/ref/modules.env"
	say "ref: ours vs Linux 6.1's module, $REF_ROUNDS rounds of ${#WORKLOADS[@]} workloads x kublk/ublksrv x null/loop, then $REF_CYCLES kill/recover cycles busy and idle per module and server"
	[ -n "${DEV[nullblk:1]:-}" ] || setup_nullblk || return 1
	for ((r = 1; r <= REF_ROUNDS; r++)); do
		first=1
		for m in $([ $((r % 2)) = 1 ] && echo ours ref || echo ref ours); do
			ref_half "$r" "$m" "$first" || break 2
			first=0
		done
	done
	for m in "${REF_MODULES[@]}"; do
		ab_module_use "${MOD_KO[$m]}" || { warn "cannot load the $m module"; break; }
		for s in "${REF_SERVERS[@]}"; do
			ref_recovery "$m" "$s"
		done
	done
	ref_phase "done: back to our module"
	ab_module_use "${MOD_KO[ours]}" || warn "cannot load our module again"
	dmesg > "$RES/ref/dmesg.txt"
	echo "$UBLK_KMSG_BAD" > "$RES/ref/kmsg-bad.txt"
}

# ---------------------------------------------------------------- main

# pingpong WHEN: the cost of a wake-up across vCPUs and on one vCPU (pipe
# round trips, 1 s each), to bench.env: it varies from boot to boot with
# the host's load, and ublk and loop pay it per I/O where null_blk does
# not. On one vCPU also between two threads: what a switch between
# processes (fio and a ublk server) costs more than one within a process.
pingpong() {
	local x y z

	x=$("$CPUSTAT" --pingpong 0 1 1 2>/dev/null)
	y=$("$CPUSTAT" --pingpong 0 0 1 2>/dev/null)
	z=$("$CPUSTAT" --pingpong-threads 0 0 1 2>/dev/null)
	printf '%s\n' "pingpong_cross_$1=$x" "pingpong_same_$1=$y" \
		"pingpong_threads_$1=$z" >> "$RES/bench.env"
	say "wake-up round trip ($1): across vCPUs ${x#* } us, on one vCPU ${y#* } us, between threads on one vCPU ${z#* } us (mean, max)"
}

clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)
{
	echo "date=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "kernel=$(uname -r)"
	echo "cpus=$(nproc)"
	grep -qw erms /proc/cpuinfo && echo "erms=1" || echo "erms=0"
	echo "vm_cpu=${BENCH_VM_CPU:-?}"
	echo "clocksource=$clocksource"
	echo "mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "fio=$(fio --version)"
	echo "runtime=$RUNTIME"
	echo "ramp=$RAMP"
	echo "rounds=$ROUNDS"
	echo "cycles=$CYCLES"
	echo "timeline=$TIMELINE"
	echo "idle=$IDLE"
	echo "only=$ONLY"
	echo "parts=$PARTS"
	echo "loop_size=$LOOP_SIZE"
	echo "recovery_target=$REC_TARGET"
	echo "standby=$STANDBY"
	echo "deadline_ms=$DEADLINE_MS"
	echo "kublk_args=${KUBLK_ARGS[*]}"
	echo "ref_rounds=$REF_ROUNDS"
	echo "ref_cycles=$REF_CYCLES"
	echo "quick=${BENCH_QUICK:-}"
	echo "git=$(git -C "$REPO" describe --always --dirty 2>/dev/null)"
} > "$RES/bench.env"

say "runtime ${RUNTIME} s, ramp ${RAMP} s, ${ROUNDS} round(s), ${CYCLES} recovery cycles, parts $PARTS; results in $RES"
[ -x "$KUBLK" ] || { warn "$KUBLK not built"; exit 1; }
cc -O2 -Wall -o "$CPUSTAT" "$HERE/bench-cpustat.c" || { warn "cannot build bench-cpustat"; exit 1; }
pingpong start
copy_4k=$("$CPUSTAT" --copy)
echo "copy_4k=$copy_4k" >> "$RES/bench.env"
say "4 KiB copy: ${copy_4k% *} us with rep movsb, ${copy_4k#* } us with rep movsq (the kernel copies with the first if the CPU has ERMS)"
clock_read=$("$CPUSTAT" --clock)
echo "clock_read=$clock_read" >> "$RES/bench.env"
say "clock read: $clock_read us ($clocksource clocksource)"
if part fio; then
	setup_devices
	mkdir -p "$RES/fio"
	[ ${#WORKLOADS[@]} -gt 0 ] && run_fio_part
	# the benchmark devices are not needed any more: less to schedule
	cleanup
fi
make_loop_file || warn "cannot create $LOOP_FILE"
part recovery && run_recovery_part
part timeline && run_timeline_part
part idle && run_idle_part
part beyond && run_beyond_part
part ref && [ ${#WORKLOADS[@]} -gt 0 ] && run_ref_part

pingpong end
echo "elapsed=$(elapsed)" >> "$RES/bench.env"
say "measurements done in $(elapsed) s, writing the report"
python3 "$HERE/bench-report.py" --report "$RES" || warn "bench-report.py failed"
say "report: $RES/report.md ($(elapsed) s in all)"
[ "$failures" -eq 0 ]
