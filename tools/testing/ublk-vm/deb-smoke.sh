#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of the DKMS check (deb-check.sh): the module loaded must be
# the one dkms built (its GNU build ID, $1, as the running kernel reports
# it in /sys/module/ublk_drv/notes), then the smoke test: add a
# device, fio, kill -9 the server, recover, del (test_recover_01.sh, null
# target, 1 and 2 queues, with and without REISSUE).

want=$1
# The note: namesz, descsz, type (4 bytes each), "GNU\0", then the ID.
have=$(od -An -v -tx1 -j16 /sys/module/ublk_drv/notes/.note.gnu.build-id 2>/dev/null |
	tr -d ' \n')
echo "loaded ublk_drv ($(modinfo -n ublk_drv)): build ID ${have:-none}, dkms built ${want:-?}"
[ -n "$want" ] && [ "$have" = "$want" ] || { echo "not the module dkms built"; exit 1; }
cd tools/testing/selftests/ublk || exit 1
bash ./test_recover_01.sh
