#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# One queue thread dies (kublk kill-queue -q 1 on a 2-queue device): the
# device becomes QUIESCED, the old server goes away, kublk recover brings
# it back, old data still verifies and new writes verify.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_05
_require_ublk
_have_program fio

[ "$(_possible_cpus)" -ge 2 ] || _skip "needs 2 CPUs for 2 queues"

file=$(_make_backing_file 64) || _fail "backing file"
dev=$(_add_ublk_dev -t loop -f "$file" -q 2 -d 32 -r) || _fail "kublk add -r"
[ "$(_list_field "$dev" QUEUES)" = 2 ] || _fail "device has not 2 queues"

# _region_fio OFFSET_MB ARGS...: 16 MiB write+verify job, 2 jobs (CPUs)
_region_fio()
{
	local off=$1

	shift
	_run_fio --name=region --filename="/dev/ublkb$dev" --rw=randwrite \
		--bs=4k --offset="${off}M" --size=8M --offset_increment=8M \
		--numjobs=2 --direct=1 --ioengine=libaio --iodepth=16 \
		--verify=crc32c --verify_fatal=1 --randseed=77 "$@"
}

_region_fio 0 --do_verify=1 --output="$UBLK_TMP/before.log" ||
	_fail "write+verify before the queue death"
pid=$(_server_pid "$dev")

t0=$(_now_ms)
_timeout 20 "$KUBLK" kill-queue -n "$dev" -q 1 || _fail "kublk kill-queue"
t1=$(_now_ms)
_wait_state "$dev" QUIESCED 10000 > /dev/null ||
	_fail "device $(_dev_state "$dev"), not QUIESCED, after queue 1's thread died"
_log "queue 1 killed: kill-queue took $((t1 - t0)) ms," \
	"QUIESCED at most $(($(_now_ms) - t1)) ms later"
_wait_until 10000 _pid_gone "$pid" ||
	_fail "old server $pid still alive: the driver must abort every queue's commands on quiesce"

l_ms=$(_recover "$dev") || _fail "kublk recover"
[ "$(_dev_state "$dev")" = LIVE ] || _fail "not LIVE after recover"
[ "$(_list_field "$dev" QUEUES)" = 2 ] || _fail "queues changed"
_log "recovered: START->LIVE $l_ms ms"

_region_fio 0 --verify_only --output="$UBLK_TMP/old.log" ||
	_fail "data written before the queue death does not verify"
_region_fio 16 --do_verify=1 --output="$UBLK_TMP/after.log" ||
	_fail "write+verify after recovery"
_del_ublk_dev "$dev" || _fail "kublk del"
exit 0
