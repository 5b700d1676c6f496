#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make deb: build ublk-dkms_<version>_all.deb with Debian's own tools
# (debhelper with dh-dkms) from a staging copy of what the package ships:
# dkms.conf (debian/ublk-dkms.dkms), the driver, its Makefile and the uapi
# header. The version is debian/changelog's, the tree's one version.
#
#   mkdeb.sh OUTDIR     writes OUTDIR/ublk-dkms_<version>_all.deb, runs
#                       lintian on it (an E: line fails) and prints the
#                       package's path last
#
# Exit status: 0 built and lintian found no error, 1 lintian errors,
# 2 the build failed.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
OUT=${1:?usage: $0 OUTDIR}

log() { echo "deb: $*" >&2; }

ver=$(dpkg-parsechangelog -l "$HERE/debian/changelog" -S Version)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd -P)
stage=$OUT/ublk-$ver
rm -rf "$stage" "$OUT"/ublk*.deb "$OUT"/ublk_*.changes "$OUT"/ublk_*.buildinfo
mkdir -p "$stage/drivers/block" "$stage/include/uapi/linux"
cp -a "$HERE/debian" "$stage/"
cp "$REPO/drivers/block/ublk_drv.c" "$REPO/drivers/block/Makefile" "$stage/drivers/block/"
cp "$REPO/include/uapi/linux/ublk_cmd.h" "$stage/include/uapi/linux/"

log "dpkg-buildpackage -b in $stage"
if ! (cd "$stage" && dpkg-buildpackage -b -us -uc) > "$OUT/build.log" 2>&1; then
	tail -n 30 "$OUT/build.log" | sed 's/^/  /' >&2
	log "the package build failed (log: $OUT/build.log)"
	exit 2
fi
deb=$OUT/ublk-dkms_${ver}_all.deb
[ -f "$deb" ] || { log "no $deb"; exit 2; }
rm -rf "$stage"

lintian --tag-display-limit 0 -I "$deb" > "$OUT/lintian.log" 2>&1 || true
sed 's/^/  lintian: /' "$OUT/lintian.log" >&2
errors=$(grep -c '^E: ' "$OUT/lintian.log" || true)
warnings=$(grep -c '^W: ' "$OUT/lintian.log" || true)
log "lintian: $errors error(s), $warnings warning(s)"
echo "$deb"
[ "$errors" -eq 0 ] || exit 1
