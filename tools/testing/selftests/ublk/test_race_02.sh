#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ADD_DEV and DEL_DEV of one id from two processes at once, and an ADD_DEV
# that fails while writing the device info back (a read-only buffer)
# against a DEL_DEV of the same id: an id is free only once DEL_DEV has
# returned (no sysfs "duplicate filename" on the next ADD), and a failing
# ADD_DEV never publishes its device (the DEL always answers -ENODEV).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test race_02
_require_ublk
_require_prog ublk_errno

./ublk_errno race-adddel 300 || _fail "ADD_DEV/DEL_DEV races"
if _dmesg_since_start | grep -q 'duplicate filename'; then
	_fail "sysfs duplicate filename: an id was reused before DEL_DEV ended"
fi
_check_no_hung_tasks || _fail "task stuck in D state"
exit 0
