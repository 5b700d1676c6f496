#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The DKMS package the way a Debian 12 admin takes it: make deb, lintian,
# dpkg -i on this host, dkms builds ublk_drv.ko for the kernel of the
# installed linux-headers-amd64 (6.1.0-<abi>-amd64; only that kernel's
# /lib/modules tree is touched, nothing is loaded into the host kernel),
# the VM boots with that very module and runs the smoke test
# (deb-smoke.sh: add, fio, kill -9, recover, del), then dpkg -r and every
# file the package or dkms put there must be gone. dkms signs the module
# with its MOK key (/var/lib/dkms/mok.key, made on its first build): the
# check wants a signature and removes a key that this run made.
#
#   deb-check.sh OUTDIR    prints TAP and "N passed, N failed"
#
# Exit status: 0 all passed, 1 a check failed, 2 infrastructure (ublk-dkms
# is installed already, the VM did not boot, ...). One run at a time on a
# host (flock).

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../../.." && pwd -P)
CACHE=${UBLK_VM_CACHE:-/var/cache/ublk-vm}
OUT=${1:?usage: $0 OUTDIR}

# shellcheck source=tap.sh
. "$HERE/tap.sh"
infra() { echo "deb-check: INFRASTRUCTURE FAILURE: $*" >&2; exit 2; }
finish() {
	tap_summary || exit 1
	exit 0
}

mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd -P) || infra "cannot create $OUT"
mkdir -p "$CACHE"
exec 9> "$CACHE/deb-check.lock"
flock 9
"$HERE/setup.sh" all > /dev/null || infra "setup failed"
kver=$("$HERE/setup.sh" kver) || infra "no kernel release"
ver=$(dpkg-parsechangelog -l "$REPO/tools/ublk-dkms/debian/changelog" -S Version)
mods=/lib/modules/$kver
[ -e "$mods/build" ] || infra "$mods/build missing: linux-headers-$kver is not installed"
case "$(dpkg-query -W -f='${db:Status-Status}' ublk-dkms 2>/dev/null)" in
''|not-installed|config-files) ;;
*) infra "ublk-dkms is installed on this host already; dpkg -r ublk-dkms first" ;;
esac

t0=$SECONDS
deb=$("$REPO/tools/ublk-dkms/mkdeb.sh" "$OUT" 2> "$OUT/mkdeb.log" | tail -n1)
rc=$?
grep -E '^  lintian: [EW]: ' "$OUT/mkdeb.log" | sed 's/^  /# /'
[ "$rc" -ne 2 ] && [ -f "$deb" ] || { cat "$OUT/mkdeb.log" >&2; infra "make deb failed"; }
tap "$rc" "make deb: $(basename "$deb"), $(grep '^deb: lintian:' "$OUT/mkdeb.log" | sed 's/^deb: //') ($((SECONDS - t0)) s)"

# What /lib/modules/$kver held before: depmod's indexes that dkms creates
# there are removed again afterwards, anything else left over fails.
before=$OUT/modules-before.txt after=$OUT/modules-after.txt
find "$mods" | sort > "$before"
# dkms makes itself a signing key (its MOK) on its first build; a key this
# run made goes again at the end, one that was there stays.
had_mok=
[ -e /var/lib/dkms/mok.key ] && had_mok=1

# Interrupted or killed half way, the host still ends without the package.
installed=
undo() {
	[ -n "$installed" ] || return 0
	echo "deb-check: removing ublk-dkms again" >&2
	DEBIAN_FRONTEND=noninteractive dpkg -r ublk-dkms > /dev/null 2>&1
	[ -n "$had_mok" ] || rm -f /var/lib/dkms/mok.key /var/lib/dkms/mok.pub
}
trap undo EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
installed=1
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" > "$OUT/dpkg-i.log" 2>&1
rc=$?
sed 's/^/# /' "$OUT/dpkg-i.log" | grep -iE 'building|error|warn|sign' | head -n 10
tap "$rc" "dpkg -i $(basename "$deb") ($((SECONDS - t0)) s)"

status=$(dkms status -m ublk -v "$ver" -k "$kver" 2>&1)
echo "# dkms status: $status"
ko=$(find "$mods" -path "$mods/build" -prune -o -path "$mods/source" -prune -o \
	-name 'ublk_drv.ko*' -print | head -n1)
rc=1
if [ -n "$ko" ] && [ "$(modinfo -F vermagic "$ko" | cut -d' ' -f1)" = "$kver" ] &&
   echo "$status" | grep -q 'installed'; then
	rc=0
fi
tap "$rc" "dkms built and installed ${ko:-no ublk_drv.ko} for $kver"
signer=
[ -n "$ko" ] && signer=$(modinfo -F signer "$ko")
tap "$([ -n "$signer" ] && echo 0 || echo 1)" \
	"dkms signed it with its MOK key /var/lib/dkms/mok.pub (signer: ${signer:-none})"
buildid=
[ -n "$ko" ] && buildid=$(readelf -n "$ko" | sed -n 's/.*Build ID: //p')
echo "# build ID of dkms' module: ${buildid:-none}"

if [ "$rc" -eq 0 ]; then
	t0=$SECONDS
	UBLK_MODULE=$ko UBLK_RESULTS_BASE=$OUT/vm \
		"$HERE/run.sh" guest tools/testing/ublk-vm/deb-smoke.sh "$buildid" \
		> "$OUT/vm.log" 2>&1
	rc=$?
	grep -E '^(ublk-vm: (deps|build|boot|run) |loaded ublk_drv|.*(QUIESCED|errors))' \
		"$OUT/vm.log" | sed 's/^/# /'
	[ "$rc" -eq 2 ] && { tail -n 30 "$OUT/vm.log" >&2; }
	tap "$rc" "VM with the dkms module: add, fio, kill -9, recover, del ($((SECONDS - t0)) s; log $OUT/vm.log)"
else
	tap 1 "VM with the dkms module: not run, no module"
fi

t0=$SECONDS
DEBIAN_FRONTEND=noninteractive dpkg -r ublk-dkms > "$OUT/dpkg-r.log" 2>&1
tap $? "dpkg -r ublk-dkms ($((SECONDS - t0)) s)"
installed=

[ -n "$had_mok" ] || rm -f /var/lib/dkms/mok.key /var/lib/dkms/mok.pub
# Leave the tree as it was: depmod's new index files go again.
find "$mods" | sort > "$after"
comm -13 "$before" "$after" | grep -E "^$mods/modules\.[a-z.]+$" | xargs -r rm -f
find "$mods" | sort > "$after"
left=$(comm -13 "$before" "$after")
[ -e "/usr/src/ublk-$ver" ] && left+=" /usr/src/ublk-$ver"
[ -e /var/lib/dkms/ublk ] && left+=" /var/lib/dkms/ublk"
[ -z "$(comm -23 "$before" "$after")" ] || left+=" (and files that were there before are gone: $(comm -23 "$before" "$after" | tr '\n' ' '))"
tap "$([ -z "${left// /}" ] && echo 0 || echo 1)" \
	"after dpkg -r: no module, source or dkms state left${left:+: $left}"
finish
