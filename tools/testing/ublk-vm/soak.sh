#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of "make soak CYCLES=N SEED=S": test_soak_01.sh with N
# crash/recover cycles (ublk_drv is loaded by the harness).

set -u
cd "$(dirname "$0")/../selftests/ublk" || exit 1
UBLK_SOAK_CYCLES=${1:-1000} UBLK_SOAK_SEED=${2:-1} exec ./test_soak_01.sh
