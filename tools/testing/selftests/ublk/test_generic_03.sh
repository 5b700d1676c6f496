#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# I/O-command errnos: ublk_errno adds device 920 and serves it itself, then
# sends bad opens, mmaps, FETCH/COMMIT/NEED_GET_DATA from the right and the
# wrong thread, and checks STOP_DEV aborts every outstanding fetch.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test generic_03
_require_driver
_require_prog ublk_errno

_timeout 300 ./ublk_errno io || _fail "I/O-command errno cases"
_dev_gone 920 || _fail "device 920 left behind"
_check_no_hung_tasks || _fail "task stuck in D state"
exit 0
