#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Same-boot A/B of two ublk_drv builds: the driver of git revision BASE
# (default HEAD) against the driver of the working tree, one VM boot,
# the two modules swapped between fio runs (A B, then B A, ...). Under
# TCG absolute figures move by 10-40% between boots; within one boot a
# driver change of a few percent shows.
#
#   make ab                       working tree against HEAD
#   make ab BASE=v1 AB_ROUNDS=6   against another revision, more rounds
#   tools/testing/ublk-vm/ab-run.sh [BASE] [AB_KEY=VALUE...]
#
# Knobs (environment or KEY=VALUE arguments, see ab-guest.sh):
#   AB_ROUNDS (4), AB_RUNTIME (4 s), AB_WORKLOADS, AB_KUBLK_ARGS,
#   AB_KUBLK_ARGS_BASE, AB_KUBLK_ARGS_NEW (one side's kublk only).
# The same kublk (the working tree's) serves both drivers.
# The VM is the benchmark's (bench-vm.sh: no ERMS, TSC clocksource).

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../../.." && pwd -P)
# shellcheck source=bench-vm.sh
. "$HERE/bench-vm.sh"

base=HEAD
args=()
for a in "$@"; do
	case "$a" in
	AB_*=*)	args+=("$a") ;;
	*)	base=$a ;;
	esac
done
while read -r v; do
	args+=("$v=${!v}")
done < <(compgen -e | grep '^AB_')

rev=$(git -C "$REPO" rev-parse --verify --quiet "$base^{commit}") || {
	echo "ab: no such revision: $base" >&2
	exit 2
}
kdir=${KDIR:-$("$HERE/setup.sh" kdir 2>/dev/null)}
[ -d "$kdir" ] || { echo "ab: no kernel headers: run 'make setup'" >&2; exit 2; }

# not /tmp: the guest mounts a fresh tmpfs there
tmp=$(mktemp -d /var/tmp/ublk-ab.XXXXXX) || exit 2
cleanup() {
	git -C "$REPO" worktree remove --force "$tmp/base" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

git -C "$REPO" worktree add --detach --quiet "$tmp/base" "$rev" || exit 2
for side in base new; do
	src=$REPO
	[ "$side" = base ] && src=$tmp/base
	make -s -C "$kdir" M="$src/drivers/block" modules > "$tmp/build-$side.log" 2>&1 || {
		echo "ab: building the $side driver failed:" >&2
		tail -20 "$tmp/build-$side.log" >&2
		exit 2
	}
	cp "$src/drivers/block/ublk_drv.ko" "$tmp/ublk_$side.ko" || exit 2
done

echo "ab: base $(git -C "$REPO" log -1 --format='%h %s' "$rev")"
echo "ab: new  working tree ($(git -C "$REPO" describe --always --dirty))"
"$HERE/run.sh" guest "$HERE/ab-guest.sh" "AB_KO_BASE=$tmp/ublk_base.ko" \
	"AB_KO_NEW=$tmp/ublk_new.ko" "AB_BASE_REV=$(git -C "$REPO" rev-parse --short "$rev")" \
	"${args[@]}"
