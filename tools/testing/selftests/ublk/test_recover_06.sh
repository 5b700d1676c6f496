#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# START/END_USER_RECOVERY errnos: the raw cases without a crash
# (ublk_errno recovery) and around real crashes (ublk_errno crash: LIVE ->
# -EBUSY, /dev/ublkcN held by another process -> -EBUSY, START twice,
# END pid 0 -> -EINVAL, a server dying half-way through recovery, I/O
# waiting while QUIESCED); then the same on a kublk device, and kublk
# recover still works after repeated STARTs.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test recover_06
_require_ublk
_require_prog ublk_errno

_timeout 120 ./ublk_errno recovery || _fail "recovery errno cases"
_timeout 300 ./ublk_errno crash || _fail "crash errno cases"

dev=$(_add_ublk_dev -t null -q 2 -r) || _fail "kublk add -r"
pid=$(_server_pid "$dev")
_expect_res "START_USER_RECOVERY on a LIVE device" -16 \
	./ublk_errno start-recovery "$dev"
_expect_res "END_USER_RECOVERY on a LIVE device" -16 \
	./ublk_errno end-recovery "$dev" "$pid"

q_ms=$(_crash "$dev") || _fail "crash"
_log "kill->QUIESCED $q_ms ms"
_wait_until 10000 _pid_gone "$pid" || _fail "server $pid still alive"
_expect_res "START_USER_RECOVERY after the crash" 0 \
	_start_recovery_settled "$dev"
_expect_res "START_USER_RECOVERY again (no server attached yet)" 0 \
	./ublk_errno start-recovery "$dev"
_expect_res "END_USER_RECOVERY with pid 0" -22 \
	./ublk_errno end-recovery "$dev" 0
[ "$(_dev_state "$dev")" = QUIESCED ] || _fail "not QUIESCED between START and END"

l_ms=$(_recover "$dev") || _fail "kublk recover after repeated STARTs"
[ "$(_dev_state "$dev")" = LIVE ] || _fail "not LIVE after recover"
_log "kublk recover after two raw STARTs: START->LIVE $l_ms ms"
dd if="/dev/ublkb$dev" of=/dev/null bs=64k count=64 iflag=direct status=none ||
	_fail "read after recovery"
_del_ublk_dev "$dev" || _fail "kublk del"
exit 0
