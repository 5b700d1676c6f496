#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The reference contender of the benchmark: Linux 6.1's own ublk_drv.ko,
# built out of tree from Debian's linux-source-6.1 against the installed
# linux-headers (Debian's kernel has CONFIG_BLK_DEV_UBLK unset), cached
# outside git:
#
#   $UBLK_VM_CACHE/ref-ublk/<debian version>/
#       ublk_drv.c (the source, copied, never edited), Kbuild (one line),
#       ublk_drv.ko, build.log, .built (the stamp: what it was built from)
#
#   ref-module.sh [build]   build unless the cache is valid; prints the .ko
#   ref-module.sh path      prints the .ko of a valid cache (builds nothing)
#
# The version is the stock VM image's (the one linux-source-6.1 the debug
# kernel and the patch series use too). The source file comes from, in
# this order: the patch series' base tree ($UBLK_VM_CACHE/linux-git/VER,
# its "base" tag, untouched by the series), an installed linux-source-6.1
# of that version (/usr/src/linux-source-6.1.tar.xz), the package file in
# the cache (apt-get download if missing). Only that one file is taken.
#
# The cache is valid when the stamp names the same recipe, version, kernel
# release and source checksum and the module's vermagic is that release.
# One stage line goes to stderr: "ref-module: build  T s  (built|cached ...)".
# Exit 2 when it cannot be built (an infrastructure failure).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
SETUP=$HERE/setup.sh
CACHE=${UBLK_VM_CACHE:-/var/cache/ublk-vm}
FILE=drivers/block/ublk_drv.c
# Bump when the recipe below changes in a way that needs a rebuild.
RECIPE=1

log() { echo "ref-module: $*" >&2; }
die() { echo "ref-module: error: $*" >&2; exit 2; }

T0=$EPOCHREALTIME
stage_done() {
	printf 'ref-module: %-6s %6s s  (%s)\n' build \
		"$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')" "$1" >&2
}

source_version() {
	local image ver

	image=$("$SETUP" image) || die "no kernel image (make setup)"
	read -r ver < "$image/.unpacked" || die "no version in $image/.unpacked"
	echo "$ver"
}

# fetch_source VER DEST: 6.1's ublk_drv.c of linux-source-6.1 VER into DEST
fetch_source() {
	local ver=$1 dest=$2 tree=$CACHE/linux-git/$1 deb tarball

	if [ -d "$tree/.git" ] &&
	   git -C "$tree" show "base:$FILE" > "$dest" 2>/dev/null && [ -s "$dest" ]; then
		log "source: $tree (tag base)"
		return 0
	fi
	tarball=/usr/src/linux-source-6.1.tar.xz
	if [ -f "$tarball" ] &&
	   [ "$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null)" = "$ver" ]; then
		log "source: $tarball"
		tar -xJOf "$tarball" "linux-source-6.1/$FILE" > "$dest" ||
			die "no $FILE in $tarball"
		return 0
	fi
	deb=$("$HERE/setup.sh" source-deb "$ver") ||
		die "cannot download linux-source-6.1=$ver"
	log "source: $(basename "$deb")"
	# the inner tarball is streamed: nothing but the one file is written
	dpkg-deb --fsys-tarfile "$deb" |
		tar -xOf - ./usr/src/linux-source-6.1.tar.xz | xz -dc |
		tar -xOf - "linux-source-6.1/$FILE" > "$dest" || true
	[ -s "$dest" ] || die "no $FILE in $deb"
}

stamp_of() {
	echo "recipe=$RECIPE version=$1 release=$2 source=$(sha256sum "$3" | cut -c1-16)"
}

valid() {
	local dir=$1 kv=$2 vm

	[ -f "$dir/.built" ] && [ -f "$dir/ublk_drv.ko" ] && [ -f "$dir/ublk_drv.c" ] || return 1
	[ "$(cat "$dir/.built")" = "$(stamp_of "$3" "$kv" "$dir/ublk_drv.c")" ] || return 1
	vm=$(modinfo -F vermagic "$dir/ublk_drv.ko" 2>/dev/null) || return 1
	[ "${vm%% *}" = "$kv" ]
}

build() {
	local ver kdir kv dir tmp

	ver=$(source_version)
	kdir=${KDIR:-$("$SETUP" kdir)} || die "no kernel headers (make setup)"
	kv=$("$SETUP" kver) || die "no kernel release"
	dir=$CACHE/ref-ublk/$ver
	if valid "$dir" "$kv" "$ver"; then
		stage_done "cached: $dir"
		echo "$dir/ublk_drv.ko"
		return 0
	fi
	[ "${1:-build}" = build ] || die "no valid build in $dir (run: $0 build)"
	mkdir -p "$CACHE/ref-ublk"
	exec 9> "$CACHE/ref-ublk/.lock"
	flock 9
	if valid "$dir" "$kv" "$ver"; then
		stage_done "cached: $dir"
		echo "$dir/ublk_drv.ko"
		return 0
	fi
	tmp=$dir.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	fetch_source "$ver" "$tmp/ublk_drv.c"
	echo 'obj-m := ublk_drv.o' > "$tmp/Kbuild"
	# Plain diagnostics: a warning names file and line but does not quote
	# the source (this tree is a black box to us).
	if ! make -C "$kdir" M="$tmp" KCFLAGS=-fdiagnostics-plain-output \
		modules > "$tmp/build.log" 2>&1 || [ ! -f "$tmp/ublk_drv.ko" ]; then
		grep -E 'error|Error' "$tmp/build.log" | tail -n 20 >&2
		die "the build failed (log: $tmp/build.log)"
	fi
	stamp_of "$ver" "$kv" "$tmp/ublk_drv.c" > "$tmp/.built"
	rm -rf "$dir"
	mv "$tmp" "$dir"
	valid "$dir" "$kv" "$ver" || die "$dir: the module does not match $kv"
	stage_done "built: linux-source-6.1 $ver for $kv, $dir"
	echo "$dir/ublk_drv.ko"
}

case "${1:-build}" in
build|path)	build "${1:-build}" ;;
*)		die "usage: $0 [build|path]" ;;
esac
