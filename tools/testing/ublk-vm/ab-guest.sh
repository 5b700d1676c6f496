#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of ab-run.sh: swap two ublk_drv builds between fio runs in
# one boot and compare them. Arguments are KEY=VALUE:
#   AB_KO_BASE, AB_KO_NEW   the two modules (paths the guest sees)
#   AB_ROUNDS=N             rounds; odd ones run base first (4)
#   AB_RUNTIME=S            seconds of each fio run, after 1 s of ramp (4)
#   AB_WORKLOADS="Q:RW[:DEPTH] ..."  ublk null with Q queues, 4k RW at
#                           iodepth DEPTH (128: batched as in make bench)
#                           ("1:randread 2:randread 2:randwrite 1:randread:1")
#   AB_KUBLK_ARGS=".."      extra kublk add arguments, both sides
#   AB_KUBLK_ARGS_BASE, AB_KUBLK_ARGS_NEW   more, one side only: with
#                           BASE=HEAD and a clean tree, an A/B of two
#                           kublk options on the same driver
# Prints one line per run and a summary: median IOPS of each side, the
# change, how many rounds the new driver won, and the server's CPU per
# I/O. Nothing here is pass/fail; the exit status is 0 unless a run
# could not be set up.

set -u

for arg in "$@"; do
	case "$arg" in
	AB_*=*)	export "${arg?}" ;;
	*)	echo "ab: ignoring argument '$arg'" ;;
	esac
done

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=ab-module.sh
. "$HERE/ab-module.sh"
KUBLK=$HERE/../selftests/ublk/kublk
ROUNDS=${AB_ROUNDS:-4}
RUNTIME=${AB_RUNTIME:-4}
RAMP=1
WORKLOADS=${AB_WORKLOADS:-1:randread 2:randread 2:randwrite 1:randread:1}
read -r -a KARGS <<< "${AB_KUBLK_ARGS:-}"
read -r -a KARGS_BASE <<< "${AB_KUBLK_ARGS_BASE:-}"
read -r -a KARGS_NEW <<< "${AB_KUBLK_ARGS_NEW:-}"
HZ=$(getconf CLK_TCK)
LOG=${UBLK_RESULTS:-/tmp}/ab.tsv
failures=0

warn() { echo "ab: WARNING: $*"; failures=$((failures + 1)); }

for side in BASE NEW; do
	ko=AB_KO_$side
	[ -r "${!ko:-}" ] || { warn "no module for $side: ${!ko:-unset}"; exit 1; }
done
ab_module_unload || exit 1

# kublk's CPU time (user + system) in clock ticks
srv_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# one_run SIDE Q RW DEPTH: prints "IOPS server-us-per-IO"
one_run() {
	local side=$1 q=$2 rw=$3 depth=$4 ko id pid t0 t1 out batch=() args

	ko=AB_KO_${side^^}
	args=("${KARGS[@]}")
	if [ "$side" = base ]; then
		args+=("${KARGS_BASE[@]}")
	else
		args+=("${KARGS_NEW[@]}")
	fi
	ab_module_use "${!ko}" || { warn "cannot load the $side module"; return 1; }
	if ! id=$(timeout 60 "$KUBLK" add -t null -q "$q" "${args[@]}"); then
		warn "kublk add failed ($side)"
		ab_module_unload
		return 1
	fi
	id=${id//[^0-9]/}
	echo none > "/sys/block/ublkb$id/queue/scheduler"
	pid=$(pgrep -o -x kublk)
	[ "$depth" -ge 16 ] && batch=(--iodepth_batch_submit=16 --iodepth_batch_complete_min=16)
	t0=$(srv_ticks "$pid")
	out=$(fio --name=ab --filename="/dev/ublkb$id" --ioengine=io_uring --direct=1 \
		--thread --time_based --ramp_time="$RAMP" --runtime="$RUNTIME" --rw="$rw" \
		--bs=4k --iodepth="$depth" "${batch[@]}" --numjobs="$q" \
		--cpus_allowed=0-$((q - 1)) --cpus_allowed_policy=split \
		--norandommap --randrepeat=0 --group_reporting --output-format=json)
	t1=$(srv_ticks "$pid")
	timeout 60 "$KUBLK" del -n "$id" > /dev/null || warn "kublk del failed ($side)"
	ab_module_unload || warn "rmmod failed ($side)"
	# the server's ticks cover the ramp too: scale the I/O count to it
	echo "$out" | python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
iops = j["read"]["iops"] + j["write"]["iops"]
rt, ramp, ticks, hz = (float(a) for a in sys.argv[1:5])
print("%d %.1f" % (iops, ticks / hz * 1e6 / (iops * (rt + ramp)) if iops else 0))
' "$RUNTIME" "$RAMP" "$((t1 - t0))" "$HZ"
}

echo "ab: base $AB_BASE_REV ${KARGS_BASE[*]} vs new (working tree) ${KARGS_NEW[*]}, $ROUNDS rounds of ${RUNTIME} s, workloads: $WORKLOADS"
printf 'round\tworkload\tside\tiops\tsrv_us_per_io\n' > "$LOG"
for r in $(seq "$ROUNDS"); do
	order="base new"
	[ $((r % 2)) = 0 ] && order="new base"
	for w in $WORKLOADS; do
		IFS=: read -r q rw depth <<< "$w"
		depth=${depth:-128}
		for side in $order; do
			res=$(one_run "$side" "$q" "$rw" "$depth") || continue
			printf '%s\t%s\t%s\t%s\t%s\n' "$r" "${q}q-$rw-qd$depth" "$side" \
				"${res% *}" "${res#* }" >> "$LOG"
			echo "ab: round $r ${q}q $rw qd$depth $side: IOPS ${res% *}, server ${res#* } us/IO"
		done
	done
done

python3 - "$LOG" <<'PY'
import csv, statistics as st, sys
from collections import defaultdict
runs = defaultdict(dict)
for row in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    runs[row["workload"]].setdefault(row["round"], {})[row["side"]] = row
print("ab: workload               base IOPS   new IOPS  change  new won  server us/IO base -> new")
for w, rounds in runs.items():
    pairs = [r for r in rounds.values() if "base" in r and "new" in r]
    if not pairs:
        continue
    b = st.median(float(p["base"]["iops"]) for p in pairs)
    n = st.median(float(p["new"]["iops"]) for p in pairs)
    won = sum(float(p["new"]["iops"]) > float(p["base"]["iops"]) for p in pairs)
    sb = st.median(float(p["base"]["srv_us_per_io"]) for p in pairs)
    sn = st.median(float(p["new"]["srv_us_per_io"]) for p in pairs)
    print("ab: %-22s %9.0f %10.0f %+6.1f%%  %d of %d  %5.1f -> %.1f"
          % (w, b, n, 100 * (n / b - 1), won, len(pairs), sb, sn))
PY
[ "$failures" = 0 ]
