#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest side of `make fuzz': a long ublk_fuzz campaign, judged the way
# test_fuzz_01.sh judges its short one (it runs that test with larger
# knobs). Arguments: OPS SEEDS [PROCS [TIME [WITHOUT]]]
#	OPS	commands per seed
#	SEEDS	seeds, "1 2 3" or a range "1-20"
#	PROCS	fuzzing processes (default 3)
#	TIME	seconds per seed at most (default: OPS / 1000, at least 30)
#	WITHOUT	ublk_fuzz --without classes (default none)
# Hung-task reports come after 60 s; everything lands in results/latest.

ops=${1:?OPS}
seeds=${2:?SEEDS}
procs=${3:-3}
secs=${4:-}
without=${5:-}

if [[ $seeds =~ ^([0-9]+)-([0-9]+)$ ]]; then
	seeds=$(seq -s ' ' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}")
fi
[ -n "$secs" ] || secs=$((ops / 1000 < 30 ? 30 : ops / 1000))

cd "$(dirname "$0")/../selftests/ublk" || exit 1
echo "ublk fuzz campaign: seeds $seeds, $ops commands each, $procs procs," \
	"at most $secs s each${without:+, without $without}"
UBLK_FUZZ_SEEDS=$seeds UBLK_FUZZ_OPS=$ops UBLK_FUZZ_PROCS=$procs \
UBLK_FUZZ_TIME=$secs UBLK_FUZZ_WITHOUT=$without \
	bash ./test_fuzz_01.sh
