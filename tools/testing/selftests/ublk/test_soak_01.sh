#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Crash/recover soak with REISSUE: UBLK_SOAK_CYCLES cycles (default 20;
# `make soak CYCLES=N' for long runs), alternating null and loop targets
# and 1 and 2 queues, each under fio writes (write+verify on loop). Where
# the kill lands varies from cycle to cycle (seeded by UBLK_SOAK_SEED):
# under I/O after a random delay; inside the next recovery, 0-299 ms
# after kublk recover started (before START_USER_RECOVERY, between it and
# END, or just after LIVE); or right after the recovery went LIVE,
# when the new server has just fetched its tags. Every cycle must end
# LIVE with no I/O error and, on loop, every write verified.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test soak_01
_require_ublk
_have_program fio

CYCLES=${UBLK_SOAK_CYCLES:-20}
RANDOM=${UBLK_SOAK_SEED:-1}
_log "$CYCLES cycles, seed ${UBLK_SOAK_SEED:-1}"
file=$(_make_backing_file 64) || _fail "backing file"

# _kill_recovering ID: start kublk recover, kill its server after 0-299 ms
_kill_recovering()
{
	local dev=$1 ms=$((RANDOM % 300)) rpid

	_bg "$KUBLK" recover -n "$dev" --foreground > "$UBLK_TMP/killed.log" 2>&1
	rpid=$UBLK_LAST_PID
	sleep "$(printf '0.%03d' "$ms")"
	kill -9 "$rpid" 2>/dev/null
	wait "$rpid" 2>/dev/null
	echo "$ms"
}

# wherever the kill landed in the recovery, the device ends QUIESCED
_recover_settled()
{
	_wait_state "$1" QUIESCED 10000 > /dev/null ||
		_fail "device $1 is $(_dev_state "$1") after a kill in the recovery"
	_recover "$1" > /dev/null || _fail "kublk recover"
}

for i in $(seq 1 "$CYCLES"); do
	q=$(((i % 2) + 1))
	if [ $((i % 4)) -lt 2 ]; then
		tgt=(-t loop -f "$file")
		verify=(--verify=crc32c --verify_fatal=1 --do_verify=1)
	else
		tgt=(-t null)
		verify=()
	fi
	dev=$(_add_ublk_dev "${tgt[@]}" -q "$q" -d 32 -r -i) || _fail "cycle $i: kublk add"
	log=$UBLK_TMP/cycle$i.log
	_bg _run_fio --name="soak$i" --filename="/dev/ublkb$dev" --rw=randwrite \
		--bs=4k --size=8M --direct=1 --ioengine=libaio --iodepth=16 \
		--rate_iops=,800 --randseed="$i" "${verify[@]}" --output="$log"
	fio=$UBLK_LAST_PID
	_wait_io_progress "$dev" 32 || _fail "cycle $i: fio did no I/O"

	mode=$((RANDOM % 3))
	case $mode in
	0)	sleep "$(printf '0.%03d' $((RANDOM % 300)))"
		_crash "$dev" > /dev/null || _fail "cycle $i: crash under I/O"
		_recover "$dev" > /dev/null || _fail "cycle $i: kublk recover"
		what="kill under I/O" ;;
	1)	_crash "$dev" > /dev/null || _fail "cycle $i: crash"
		ms=$(_kill_recovering "$dev")
		_recover_settled "$dev"
		what="kill $ms ms into the recovery" ;;
	2)	_crash "$dev" > /dev/null || _fail "cycle $i: crash"
		_recover "$dev" > /dev/null || _fail "cycle $i: kublk recover"
		_crash "$dev" > /dev/null || _fail "cycle $i: crash right after LIVE"
		_recover "$dev" > /dev/null || _fail "cycle $i: kublk recover"
		what="kill right after the recovery went LIVE" ;;
	esac
	[ "$(_dev_state "$dev")" = LIVE ] || _fail "cycle $i: not LIVE"
	_wait_pid "$fio" 120 || _fail "cycle $i ($what): fio failed: $(tail -n 5 "$log")"
	_del_ublk_dev "$dev" || _fail "cycle $i: kublk del"
	_log "cycle $i: ${tgt[1]}, $q queue(s), $what: no error${verify:+, verified}"
done
_check_no_hung_tasks || _fail "task stuck in D state"
exit 0
