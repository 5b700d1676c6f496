#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Host dependencies of the ublk VM harness, idempotent: whatever is already
# there is left alone.
#
#   setup.sh [all]     install missing Debian packages, fetch and unpack the
#                      kernel image that matches the kernel headers
#   setup.sh packages  install missing Debian packages only
#   setup.sh kdir      print the kernel headers directory (installs nothing)
#   setup.sh kver      print the kernel release, e.g. 6.1.0-56-amd64
#   setup.sh image     print the unpacked kernel image root (fetches it)
#   setup.sh checkpatch  print the path of checkpatch.pl (fetches it)
#   setup.sh source-deb [VERSION]  print the path of the linux-source-6.1
#                      .deb of VERSION (default: the archive's) in the
#                      cache (downloads it once)
#   setup.sh ublksrv   print the directory of the built ublksrv (builds it
#                      once from the peers tarball; exit 2 if that fails)
#
# Environment: UBLK_VM_CACHE (default /var/cache/ublk-vm), KDIR (a kernel
# headers directory to use instead of Debian's linux-headers-amd64),
# UBLK_PEERS (the folder with ublksrv's tarball; default ../shared/peers
# beside the repository, or beside its main checkout for a git worktree).

set -euo pipefail

CACHE=${UBLK_VM_CACHE:-/var/cache/ublk-vm}

# Everything the build, the VM and the guest-side tools need. The guest runs
# the host's binaries, so fio, mkfs.ext4 etc. are listed here too. make deb
# and its check need debhelper, dh-dkms, lintian and dkms (openssl: dkms'
# signing key), the patch series git and what an in-tree kernel build
# needs (flex, bison, bc, libelf-dev, libssl-dev).
PACKAGES=(
	make gcc libc6-dev pkg-config liburing-dev
	linux-headers-amd64 kmod
	qemu-system-x86 busybox-static cpio gzip xz-utils
	util-linux procps coreutils e2fsprogs fio
	perl sparse gnuplot-nox
	autoconf automake libtool g++ gdb
	dkms debhelper dh-dkms lintian git openssl
	flex bison bc libelf-dev libssl-dev
)

# ublksrv, the third-party server of the compat tests (built from the peers
# tarball, run as a black box): its autotools build needs these.
UBLKSRV_PACKAGES=(autoconf automake libtool pkg-config g++ make liburing-dev)
UBLKSRV_TARBALL=ublksrv-1.0-c7170a8.tar.gz
UBLKSRV_SHA256=e078566048ac159a55abf3216a3b3400c23e1d627b33abb7d4b25eaf13321534

log() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }

need_root() {
	[ "$(id -u)" -eq 0 ] || die "$1 needs root (run as root or install it by hand)"
}

apt_updated=
apt_update_once() {
	[ -n "$apt_updated" ] && return 0
	need_root "apt-get update"
	log "apt-get update"
	apt-get update -qq >&2 || die "apt-get update failed"
	apt_updated=1
}

pkg_installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

install_packages() {
	local missing=() p

	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	apt_update_once
	log "apt-get install ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends "${missing[@]}" >&2 ||
		die "apt-get install ${missing[*]} failed"
}

# The kernel release of a headers tree. Debian's include/config/kernel.release
# holds the upstream version, so read the one the modules get (vermagic).
kver_of() {
	sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' \
		"$1/include/generated/utsrelease.h" 2>/dev/null
}

# Headers directory: $KDIR, else the ABI that the installed (or, before
# installing, the candidate) linux-headers-amd64 depends on.
find_kdir() {
	local abi=

	if [ -n "${KDIR:-}" ]; then
		echo "$KDIR"
		return 0
	fi
	if pkg_installed linux-headers-amd64; then
		abi=$(dpkg-query -W -f='${Depends}' linux-headers-amd64 |
			grep -o 'linux-headers-[^ ,]*-amd64' | head -n1)
	fi
	if [ -z "$abi" ]; then
		abi=$(cd /usr/src 2>/dev/null &&
			ls -d linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1)
	fi
	if [ -z "$abi" ]; then
		abi=$(apt-cache depends linux-headers-amd64 2>/dev/null |
			grep -o 'linux-headers-[^ ,]*-amd64' | head -n1)
	fi
	[ -n "$abi" ] || return 1
	echo "/usr/src/$abi"
}

kver() {
	local kdir kv

	kdir=$(find_kdir) || die "no kernel headers found (run: make setup)"
	kv=$(kver_of "$kdir")
	if [ -z "$kv" ]; then
		# Not installed yet: the directory name carries the release.
		kv=${kdir##*/linux-headers-}
	fi
	echo "$kv"
}

# Fetch linux-image-KVER-unsigned into the cache (same version as the
# headers when the archive still has it) and unpack it once.
ensure_image() {
	local kv=$1 pkg hver deb root ver

	pkg=linux-image-$kv-unsigned
	root=$CACHE/kernel/$kv
	if [ -f "$root/.unpacked" ] && [ -f "$root/boot/vmlinuz-$kv" ]; then
		ensure_vmlinux "$root/boot" "$kv"
		echo "$root"
		return 0
	fi
	mkdir -p "$CACHE"
	hver=$(dpkg-query -W -f='${Version}' "linux-headers-$kv" 2>/dev/null || true)
	deb=$(ls "$CACHE/${pkg}_"*_amd64.deb 2>/dev/null | sort -V | tail -n1 || true)
	if [ -z "$deb" ]; then
		need_root "downloading $pkg"
		log "apt-get download $pkg${hver:+=$hver}"
		(cd "$CACHE" && { { [ -n "$hver" ] && apt-get download -qq "$pkg=$hver"; } ||
			apt-get download -qq "$pkg"; }) >&2 2>/dev/null ||
			{ apt_update_once; (cd "$CACHE" && apt-get download -qq "$pkg") >&2; } ||
			return 1
		deb=$(ls "$CACHE/${pkg}_"*_amd64.deb 2>/dev/null | sort -V | tail -n1)
		[ -n "$deb" ] || return 1
	fi
	ver=$(dpkg-deb -f "$deb" Version)
	log "unpacking $(basename "$deb")"
	rm -rf "$root.tmp"
	mkdir -p "$root.tmp"
	dpkg-deb -x "$deb" "$root.tmp"
	[ -f "$root.tmp/boot/vmlinuz-$kv" ] || die "$deb has no boot/vmlinuz-$kv"
	depmod -b "$root.tmp" "$kv"
	echo "$ver" > "$root.tmp/.unpacked"
	rm -rf "$root"
	mv "$root.tmp" "$root"
	ensure_vmlinux "$root/boot" "$kv"
	echo "$root"
}

# The uncompressed ELF vmlinux beside vmlinuz: QEMU boots it through PVH
# (CONFIG_PVH=y), which saves the slow decompression under TCG. Best effort:
# without it the VM boots vmlinuz.
ensure_vmlinux() {
	local boot=$1 kv=$2 off

	[ -f "$boot/vmlinux-$kv" ] && return 0
	off=$(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$boot/vmlinuz-$kv" |
		head -n1 | cut -d: -f1)
	[ -n "$off" ] || return 0
	tail -c +$((off + 1)) "$boot/vmlinuz-$kv" |
		xz -dc --single-stream > "$boot/vmlinux-$kv.tmp" 2>/dev/null
	if [ "$(head -c 4 "$boot/vmlinux-$kv.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
		mv "$boot/vmlinux-$kv.tmp" "$boot/vmlinux-$kv"
	else
		rm -f "$boot/vmlinux-$kv.tmp"
	fi
}

setup_all() {
	local kv root

	install_packages "${PACKAGES[@]}"
	kv=$(kver)
	[ -n "${KDIR:-}" ] || [ -f "$(find_kdir)/Makefile" ] ||
		install_packages "linux-headers-$kv"
	if ! root=$(ensure_image "$kv"); then
		# The archive moved on to a new ABI: follow it with the headers.
		[ -z "${KDIR:-}" ] || die "no linux-image-$kv-unsigned for KDIR=$KDIR"
		log "linux-image-$kv-unsigned is gone from the archive; upgrading linux-headers-amd64"
		apt_update_once
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends linux-headers-amd64 >&2
		kv=$(kver)
		root=$(ensure_image "$kv") || die "cannot fetch linux-image-$kv-unsigned"
	fi
	[ -f "$(find_kdir)/Makefile" ] || die "kernel headers $(find_kdir) missing"
}

# checkpatch.pl with the two data files it reads from its own directory,
# taken from Debian's linux-source-6.1 (only scripts/ is extracted).
# The linux-source-6.1 .deb of VERSION (default: the archive's) in the
# cache, downloaded once; prints its path.
ensure_source_deb() {
	local ver=${1:-} pkg=linux-source-6.1 pat='*' deb

	[ -n "$ver" ] && pkg+="=$ver" pat=$ver
	# shellcheck disable=SC2086 # $pat: a version, or * for any
	deb=$(ls "$CACHE"/linux-source-6.1_$pat"_all.deb" 2>/dev/null | sort -V | tail -n1 || true)
	if [ -z "$deb" ]; then
		need_root "downloading $pkg"
		mkdir -p "$CACHE"
		log "apt-get download $pkg"
		(cd "$CACHE" && apt-get download -qq "$pkg") >&2 2>/dev/null ||
			{ apt_update_once; (cd "$CACHE" && apt-get download -qq "$pkg") >&2; } ||
			die "cannot download $pkg"
		# shellcheck disable=SC2086
		deb=$(ls "$CACHE"/linux-source-6.1_$pat"_all.deb" | sort -V | tail -n1)
	fi
	echo "$deb"
}

ensure_checkpatch() {
	local dir=$CACHE/checkpatch deb tarball files tmp

	if [ -f "$dir/checkpatch.pl" ]; then
		echo "$dir/checkpatch.pl"
		return 0
	fi
	install_packages perl xz-utils
	mkdir -p "$CACHE"
	tmp=$(mktemp -d "$CACHE/checkpatch.XXXXXX")
	files=(scripts/checkpatch.pl scripts/spelling.txt scripts/const_structs.checkpatch)
	tarball=$CACHE/src/usr/src/linux-source-6.1.tar.xz
	if [ ! -f "$tarball" ]; then
		deb=$(ensure_source_deb) || exit 1
		log "extracting scripts/ from $(basename "$deb")"
		dpkg-deb --fsys-tarfile "$deb" |
			tar -xOf - ./usr/src/linux-source-6.1.tar.xz > "$tmp/src.tar.xz"
		tarball=$tmp/src.tar.xz
	else
		log "extracting scripts/ from $tarball"
	fi
	tar -xJf "$tarball" -C "$tmp" "${files[@]/#/linux-source-6.1/}"
	mkdir -p "$dir.new"
	mv "$tmp"/linux-source-6.1/scripts/* "$dir.new/"
	rm -rf "$tmp" "$dir"
	mv "$dir.new" "$dir"
	echo "$dir/checkpatch.pl"
}

# The folder that holds the peers' tarballs: $UBLK_PEERS, else shared/peers
# beside the repository (CI: a fresh clone with shared/ next to it), else
# beside the main checkout when this is a git worktree.
find_peers() {
	local repo common d

	if [ -n "${UBLK_PEERS:-}" ]; then
		echo "$UBLK_PEERS"
		return 0
	fi
	repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)
	for d in "$repo/../shared/peers" \
		 "$(common=$(git -C "$repo" rev-parse --path-format=absolute \
			--git-common-dir 2>/dev/null) && echo "$common/../../shared/peers")"; do
		[ -n "$d" ] && [ -f "$d/$UBLKSRV_TARBALL" ] &&
			{ (cd "$d" && pwd -P); return 0; }
	done
	return 1
}

# Build ublksrv once into $CACHE/ublksrv/<sha256 prefix>/ublksrv-1.0 with its
# own autotools (a .built stamp marks a finished build) and print that
# folder. The tarball's sha256 must be the one the peers README gives. Any
# failure exits 2: the compat tests cannot run, an infrastructure failure.
ensure_ublksrv() {
	local peers tarball dir src log t0 sum

	dir=$CACHE/ublksrv/${UBLKSRV_SHA256:0:16}
	src=$dir/ublksrv-1.0
	if [ -f "$dir/.built" ] && [ -x "$src/ublk" ]; then
		echo "$src"
		return 0
	fi
	peers=$(find_peers) ||
		{ echo "setup: error: no $UBLKSRV_TARBALL (set UBLK_PEERS to its folder)" >&2; exit 2; }
	tarball=$peers/$UBLKSRV_TARBALL
	[ -f "$tarball" ] ||
		{ echo "setup: error: $tarball missing (set UBLK_PEERS)" >&2; exit 2; }
	sum=$(sha256sum "$tarball" | cut -d' ' -f1)
	[ "$sum" = "$UBLKSRV_SHA256" ] ||
		{ echo "setup: error: $tarball: sha256 $sum, want $UBLKSRV_SHA256" >&2; exit 2; }
	install_packages "${UBLKSRV_PACKAGES[@]}"
	mkdir -p "$CACHE/ublksrv"
	# Built in place (configure and libtool record the absolute path), so
	# one build at a time; the .built stamp comes last.
	exec 9> "$CACHE/ublksrv/.lock"
	flock 9
	if [ -f "$dir/.built" ] && [ -x "$src/ublk" ]; then
		echo "$src"
		return 0
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	log=$dir/build.log
	t0=$(date +%s)
	log "building ublksrv from $tarball (log: $log)"
	if ! (tar -xzf "$tarball" -C "$dir" && cd "$src" &&
	      autoreconf -i && ./configure && make -j"$(nproc)") > "$log" 2>&1 ||
	   ! [ -x "$src/ublk" ]; then
		tail -n 40 "$log" | sed 's/^/  /' >&2
		echo "setup: error: the ublksrv build failed (log: $log)" >&2
		mv "$log" "$CACHE/ublksrv/failed-build.log" 2>/dev/null
		rm -rf "$dir"
		exit 2
	fi
	echo "$sum" > "$dir/.built"
	log "ublksrv built in $(($(date +%s) - t0)) s"
	exec 9>&-
	echo "$src"
}

case "${1:-all}" in
all)		setup_all; ensure_ublksrv > /dev/null ;;
packages)	install_packages "${PACKAGES[@]}" ;;
kdir)		find_kdir || die "no kernel headers found (run: make setup)" ;;
kver)		kver ;;
image)		ensure_image "$(kver)" || die "cannot fetch the kernel image" ;;
checkpatch)	ensure_checkpatch ;;
source-deb)	ensure_source_deb "${2:-}" ;;
ublksrv)	ensure_ublksrv ;;
*)		die "usage: $0 [all|kdir|kver|image|checkpatch|source-deb [VERSION]|ublksrv]" ;;
esac
