#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Control-command errnos: every bad argument of every control command is
# answered with the documented errno (ublk_errno ctrl, devices 900-904).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test generic_02
_require_driver
_require_prog ublk_errno

_timeout 300 ./ublk_errno ctrl || _fail "control-command errno cases"
for id in 900 901 902 903 904; do
	_dev_gone "$id" || _fail "device $id left behind"
done
exit 0
