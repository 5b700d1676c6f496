#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# START_DEV sent by a process other than the server, while the server
# dies: on its first request (the partition scan's read: the server kills
# itself there, so the window is hit every round, which its SIGKILL exit
# status proves), with half its tags fetched (START_DEV parked), and after
# fetching every tag but before START_DEV. START_DEV must answer, the
# device end QUIESCED (recovery) or DEAD, and DEL_DEV work at once.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test race_03
_require_ublk
_require_prog ublk_errno

./ublk_errno race-start 6 || _fail "START_DEV against a dying server"
_check_no_hung_tasks || _fail "task stuck in D state"
exit 0
