#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ublksrv's own test loop/003 (its tests/run_test.sh, run as a black box) with
# ublksrv's ublk as the server and our module: passes when it runs to the
# end without printing a failure (see _ublksrv_suite).

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test compat_33
_require_ublksrv
_have_program fio
# it runs the kernel's loop driver with --direct-io=on on files in its
# temp dir: tmpfs has no O_DIRECT on 6.1 (losetup printed no device), so
# the temp dir is ext4 on a brd RAM disk, room for its 1 GiB file
f=$(_make_backing_file 1200 direct) || _fail "ext4 on brd"
rm -f "$f"
UBLKSRV_SUITE_TMP=${f%/*}/suite
_ublksrv_suite loop/003
exit 0
