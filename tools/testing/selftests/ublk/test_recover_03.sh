#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# 20 crash/recover cycles with REISSUE on the loop target. Each cycle
# writes and verifies (crc32c) a fresh 4 MiB region while the server is
# killed and recovered; at the end every region, written before up to 19
# later crashes, verifies again. Prints kill->QUIESCED and START->LIVE per
# cycle and their min/median/max (timing is reported, never judged).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_03
_require_ublk
_have_program fio

CYCLES=${UBLK_RECOVER_CYCLES:-20}
REGION=4	# MiB

file=$(_make_backing_file $((CYCLES * REGION + 16))) || _fail "backing file"
dev=$(_add_ublk_dev -t loop -f "$file" -q 2 -d 32 -r -i) || _fail "kublk add -r -i"

FIO_COMMON=(--filename="/dev/ublkb$dev" --rw=randwrite --bs=4k
	--size="${REGION}M" --direct=1 --ioengine=libaio --iodepth=16
	--verify=crc32c --verify_fatal=1)

# _region_job I: the job of region I (its seed lets --verify_only re-check
# exactly what cycle I wrote)
_region_job()
{
	echo "--name=region$1 --offset=$(($1 * REGION))M --randseed=$((1000 + $1))"
}

q_all=()
l_all=()
for i in $(seq 0 $((CYCLES - 1))); do
	log=$UBLK_TMP/cycle$i.log
	# writes limited to 500/s so the crash lands inside the job
	# shellcheck disable=SC2046 # _region_job prints several options
	_bg _run_fio "${FIO_COMMON[@]}" --do_verify=1 --rate_iops=,500 \
		--output="$log" $(_region_job "$i")
	fio_pid=$UBLK_LAST_PID
	_wait_io_progress "$dev" 64 || _fail "cycle $i: fio did no I/O"
	kill -0 "$fio_pid" 2>/dev/null || _fail "cycle $i: fio ended before the crash"

	q_ms=$(_crash "$dev") || _fail "cycle $i: crash"
	l_ms=$(_recover "$dev") || _fail "cycle $i: kublk recover"
	_wait_pid "$fio_pid" 120 ||
		_fail "cycle $i: write+verify failed: $(tail -n 5 "$log")"
	q_all+=("$q_ms")
	l_all+=("$l_ms")
	_log "cycle $i: kill->QUIESCED $q_ms ms, START->LIVE $l_ms ms, data verified"
done

jobs=()
for i in $(seq 0 $((CYCLES - 1))); do
	read -ra job <<< "$(_region_job "$i")"
	jobs+=("${job[@]}")
done
_run_fio "${FIO_COMMON[@]}" --verify_only --output="$UBLK_TMP/final.log" \
	"${jobs[@]}" || _fail "final check: not every region verifies:" \
		"$(grep -i err "$UBLK_TMP/final.log" | head -n 5)"
_log "all $CYCLES regions verify after $CYCLES crashes"
_stats "kill->QUIESCED ms" "${q_all[@]}"
_stats "START->LIVE ms" "${l_all[@]}"
_del_ublk_dev "$dev" || _fail "kublk del"
exit 0
