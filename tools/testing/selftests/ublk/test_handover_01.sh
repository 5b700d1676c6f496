#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Planned handover (UBLK_F_QUIESCE, kublk handover): 20 in a row, each
# under fio writes, 5 each on loop with 1 and 2 queues (write+verify) and
# null with 1 and 2 queues, without REISSUE. Every handover must end LIVE
# with a new server, the old one gone, and fio with no error and every
# block verified: nothing a server held is lost when it is asked to go.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test handover_01
_require_ublk
_have_program fio

ROUNDS=5
feat=$("$KUBLK" features) || _fail "kublk features"
(( feat & (1 << 12) )) || _fail "GET_FEATURES lacks UBLK_F_QUIESCE: $feat"
file=$(_make_backing_file 32) || _fail "backing file"

# _handover ID: kublk handover; prints its QUIESCE->LIVE ms
_handover()
{
	local out

	out=$(_timeout 60 "$KUBLK" handover -n "$1" 2>&1) || {
		echo "kublk handover -n $1: $out" >&2
		return 1
	}
	echo "$out" | sed -n 's/.*QUIESCE->LIVE \([0-9.]*\).*/\1/p'
}

n=0
stalls=()
for cfg in "loop 1" "loop 2" "null 1" "null 2"; do
	read -r tgt q <<< "$cfg"
	if [ "$tgt" = loop ]; then
		args=(-t loop -f "$file")
		verify=(--verify=crc32c --verify_fatal=1 --do_verify=1)
	else
		args=(-t null)
		verify=()
	fi
	dev=$(_add_ublk_dev "${args[@]}" -q "$q" -d 32 -r --quiesce) ||
		_fail "kublk add $cfg"
	for r in $(seq 1 "$ROUNDS"); do
		n=$((n + 1))
		log=$UBLK_TMP/fio$n.log
		old=$(_server_pid "$dev")
		_bg _run_fio --name="handover$n" --filename="/dev/ublkb$dev" \
			--rw=randwrite --bs=4k --size=4M --direct=1 \
			--ioengine=libaio --iodepth=16 --rate_iops=,600 \
			--randseed="$n" "${verify[@]}" --output="$log"
		fio=$UBLK_LAST_PID
		_wait_io_progress "$dev" 64 || _fail "handover $n: fio did no I/O"
		ms=$(_handover "$dev") || _fail "handover $n ($cfg)"
		stalls+=("$ms")
		[ "$(_dev_state "$dev")" = LIVE ] || _fail "handover $n: not LIVE"
		new=$(_server_pid "$dev")
		[ "$new" != "$old" ] || _fail "handover $n: still server $old"
		_wait_until 10000 _pid_gone "$old" ||
			_fail "handover $n: old server $old did not exit"
		_wait_pid "$fio" 120 ||
			_fail "handover $n ($cfg): fio failed: $(tail -n 5 "$log")"
		_log "handover $n: $tgt, $q queue(s), QUIESCE->LIVE $ms ms," \
			"no error${verify:+, verified}"
	done
	_del_ublk_dev "$dev" || _fail "kublk del"
done
_log "$n handovers, QUIESCE->LIVE ms: ${stalls[*]}"
_check_no_hung_tasks || _fail "task stuck in D state"
exit 0
