#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The debug kernel of the ublk VM (KASAN, lockdep, KFENCE, kmemleak, ...),
# built from Debian's linux-source-6.1 of the stock image's version with
# x86_64_defconfig + debug.config and the fixes in debug-kernel-patches/
# (applied with patch -p1 in file-name order), cached outside git:
#
#   $UBLK_VM_CACHE/debug-kernel/<debian version>-<fragment hash>/
#       .config, arch/x86/boot/bzImage (what QEMU boots: the PVH entry of
#       this vmlinux triple-faults, KASAN instruments code it runs before
#       the shadow exists), Module.symvers (KDIR for the out-of-tree module),
#       modroot/lib/modules/<release>/ (its modules, installed), release
#
#   debug-kernel.sh build VERSION   build unless cached; prints the tree
#   debug-kernel.sh path VERSION    prints the tree (builds nothing)
#   debug-kernel.sh check TREE      every fragment line is in TREE/.config
#
# VERSION is the Debian version of linux-source-6.1 (the stock image's).
# The build log goes to stderr; a fragment option that the merge dropped
# (a missing dependency) fails the build.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CACHE=${UBLK_VM_CACHE:-/var/cache/ublk-vm}
FRAGMENT=$HERE/debug.config
PATCHES=$HERE/debug-kernel-patches
# Bump when the recipe below changes in a way that needs a rebuild.
RECIPE=1

log() { echo "debug-kernel: $*" >&2; }
die() { echo "debug-kernel: error: $*" >&2; exit 1; }

# The kernel fixes the debug kernel needs, in the order they apply.
patch_list() {
	find "$PATCHES" -maxdepth 1 -name '*.patch' 2>/dev/null | LC_ALL=C sort
}

patches_hash() {
	local p

	{ for p in $(patch_list); do basename "$p"; cat "$p"; done; } |
		sha256sum | cut -c1-12
}

tree_of() {
	local key

	key=$( { echo "recipe $RECIPE"; cat "$FRAGMENT"; echo "patches $(patches_hash)"; } |
		sha256sum | cut -c1-12)
	echo "$CACHE/debug-kernel/$1-$key"
}

# Apply debug-kernel-patches/ to a freshly unpacked tree; .patches records
# which set it carries.
apply_patches() {
	local dir=$1 p

	for p in $(patch_list); do
		log "applying $(basename "$p")"
		patch -d "$dir" -p1 -s --batch --forward < "$p" >&2 ||
			die "$(basename "$p") does not apply to $dir"
	done
}

# linux-source-6.1 VERSION with debug-kernel-patches/, unpacked once into
# the cache (read-only after; a different patch set unpacks it again).
ensure_source() {
	local ver=$1 deb src=$CACHE/debug-kernel/src-$1 tmp phash

	phash=$(patches_hash)
	if [ -f "$src/.unpacked" ] && [ ! -f "$src/.patches" ]; then
		# Unpacked by a recipe without patches: still pristine.
		apply_patches "$src/linux-source-6.1"
		echo "$phash" > "$src/.patches"
	fi
	if [ -f "$src/.unpacked" ] && [ "$(cat "$src/.patches")" = "$phash" ]; then
		echo "$src/linux-source-6.1"
		return 0
	fi
	mkdir -p "$CACHE/debug-kernel"
	deb=$("$HERE/setup.sh" source-deb "$ver") ||
		die "cannot download linux-source-6.1=$ver"
	log "unpacking $(basename "$deb")"
	tmp=$src.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	dpkg-deb --fsys-tarfile "$deb" |
		tar -xOf - ./usr/src/linux-source-6.1.tar.xz |
		xz -dc -T0 | tar -xf - -C "$tmp" ||
		die "cannot unpack $deb"
	[ -f "$tmp/linux-source-6.1/Makefile" ] || die "$deb has no linux-source-6.1 tree"
	apply_patches "$tmp/linux-source-6.1"
	echo "$phash" > "$tmp/.patches"
	touch "$tmp/.unpacked"
	rm -rf "$src"
	mv "$tmp" "$src"
	echo "$src/linux-source-6.1"
}

# Every line of the fragment must hold in the .config: CONFIG_X=V exactly,
# "# CONFIG_X is not set" as not =y/=m.
check_config() {
	local cfg=$1/.config line opt bad=0

	while read -r line; do
		case "$line" in
		CONFIG_*=*)
			grep -qxF -- "$line" "$cfg" && continue
			opt=${line%%=*}
			log "$line requested, .config has: $(grep -E "^(# )?$opt[= ]" "$cfg" || echo 'nothing (a dependency is missing)')"
			bad=1
			;;
		"# CONFIG_"*" is not set")
			opt=${line#"# "}
			opt=${opt%% *}
			grep -qE "^$opt=[ym]$" "$cfg" || continue
			log "$opt is requested off, .config has: $(grep -E "^$opt=" "$cfg")"
			bad=1
			;;
		esac
	done < "$FRAGMENT"
	[ "$bad" -eq 0 ] || die "$FRAGMENT: options above did not survive the merge"
}

build() {
	local ver=$1 tree src rel jobs

	tree=$(tree_of "$ver")
	if [ -f "$tree/.done" ] && [ -f "$tree/arch/x86/boot/bzImage" ]; then
		echo "$tree"
		return 0
	fi
	for p in flex bison bc libelf-dev libssl-dev patch; do
		[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		log "apt-get install ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends "${missing[@]}" >&2 ||
			die "apt-get install ${missing[*]} failed"
	fi
	src=$(ensure_source "$ver")
	rm -rf "$tree"
	mkdir -p "$tree"
	jobs=$(nproc)
	log "configuring in $tree (x86_64_defconfig + $(basename "$FRAGMENT"))"
	(cd "$src" && scripts/kconfig/merge_config.sh -O "$tree" \
		arch/x86/configs/x86_64_defconfig "$FRAGMENT") >&2 ||
		die "merge_config.sh failed"
	check_config "$tree"
	log "building bzImage and modules (make -j$jobs, nice)"
	nice make -C "$src" O="$tree" -j"$jobs" -s bzImage modules >&2 ||
		die "kernel build failed"
	nice make -C "$src" O="$tree" -s INSTALL_MOD_PATH="$tree/modroot" \
		modules_install >&2 || die "modules_install failed"
	rel=$(cat "$tree/include/config/kernel.release")
	[ -d "$tree/modroot/lib/modules/$rel" ] || die "no modules installed for $rel"
	echo "$rel" > "$tree/release"
	touch "$tree/.done"
	echo "$tree"
}

case "${1:-}" in
build)	[ -n "${2:-}" ] || die "usage: $0 build VERSION"; missing=(); build "$2" ;;
path)	[ -n "${2:-}" ] || die "usage: $0 path VERSION"; tree_of "$2" ;;
check)	[ -n "${2:-}" ] || die "usage: $0 check TREE"; check_config "$2" ;;
*)	die "usage: $0 build|path VERSION, $0 check TREE" ;;
esac
