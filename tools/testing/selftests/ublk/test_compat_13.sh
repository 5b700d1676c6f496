#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ublksrv's own test generic/003 (its tests/run_test.sh, run as a black box) with
# ublksrv's ublk as the server and our module: passes when it runs to the
# end without printing a failure (see _ublksrv_suite).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test compat_13
_require_ublksrv
_have_program fio
# it formats the device with the filesystem type of the root (its output
# says "with fstype(overlay)...failed" in the VM, where nothing can make
# an overlay on a block device) and then waits for minutes
[ "$(awk '$2 == "/" { t = $3 } END { print t }' /proc/mounts)" != overlay ] ||
	_skip "generic/003 formats the device with the root's fstype, overlay in this VM"
_ublksrv_suite generic/003
exit 0
