#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ublksrv's own test loop/006 (its tests/run_test.sh, run as a black box) with
# ublksrv's ublk as the server and our module: passes when it runs to the
# end without printing a failure (see _ublksrv_suite).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test compat_36
_require_ublksrv
_have_program fio
_ublksrv_suite loop/006
exit 0
