#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host side of the benchmark: boot the VM (run.sh guest) on bench-guest.sh
# with every BENCH_* variable of the environment passed on as a KEY=VALUE
# argument (the guest does not inherit the host's environment).
# The VM is set up by bench-vm.sh (no ERMS, TSC clocksource).
#
#   BENCH_QUICK=1 tools/testing/ublk-vm/bench-run.sh
#   tools/testing/ublk-vm/bench-run.sh BENCH_RUNTIME=10 BENCH_ROUNDS=3
#   BENCH_PARTS=ref tools/testing/ublk-vm/bench-run.sh    (make ab-ref)
#
# With part ref in BENCH_PARTS, ref-module.sh builds (or finds cached)
# Linux 6.1's ublk_drv.ko first and the guest gets it as BENCH_REF_KO.
#
# See BENCH.md for the knobs and the output.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=bench-vm.sh
. "$HERE/bench-vm.sh"
args=()
while read -r v; do
	args+=("$v=${!v}")
done < <(compgen -e | grep '^BENCH_')
# part ref: Linux 6.1's own module, built once into the cache
if [[ ",${BENCH_PARTS:-}," = *,ref,* ]] && [ -z "${BENCH_REF_KO:-}" ]; then
	ko=$("$HERE/ref-module.sh") || exit 2
	args+=("BENCH_REF_KO=$ko")
fi
# the guest cannot see which CPU model QEMU was given: tell it (run.sh)
args+=("BENCH_VM_CPU=$UBLK_VM_CPU")
exec "$HERE/run.sh" guest "$HERE/bench-guest.sh" "${args[@]}" "$@"
