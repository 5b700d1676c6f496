#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The patch series of ublk against Linux 6.1 as Debian ships it in
# linux-source-6.1 (the version of the stock VM image), and its check.
#
#   series.sh base           unpack linux-source-6.1 into the cache as a git
#                            tree (once); prints the tree
#   series.sh make OUTDIR    write the series into OUTDIR: a cover letter and
#                            one patch per logical step (git format-patch)
#   series.sh check OUTDIR   make the series into OUTDIR, then on the cached
#                            tree: git am one patch at a time, each followed
#                            by a build of drivers/block/ublk_drv.o (with
#                            Debian's config plus CONFIG_BLK_DEV_UBLK=m);
#                            at the end make M=drivers/block modules
#                            (ublk_drv.ko for Debian's release) without a
#                            warning, checkpatch.pl --strict on every patch,
#                            make headers and the selftests built through
#                            kselftest's lib.mk.
#                            Prints TAP and "N passed, N failed".
#
# The series is built without a checkout: each step's files become blobs and
# trees on top of the base commit (git plumbing), so "make patches" takes
# seconds once the base tree exists. The driver patch replaces upstream's
# file wholesale (git's own diff, nothing of the old file is looked at here).
#
# Tree: $UBLK_VM_CACHE/linux-git/<debian version>/ (a .base tag on the
# unpacked source, Debian's config in .config; build outputs stay there
# between runs, so a warm check rebuilds little). One check at a time (flock).
#
# Environment: UBLK_VM_CACHE, UBLK_SERIES_AUTHOR ("Name <mail>", default the
# MAINTAINERS entry's M: line), KDIR (Debian's headers, for their .config).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../../.." && pwd -P)
SETUP=$HERE/setup.sh
CACHE=${UBLK_VM_CACHE:-/var/cache/ublk-vm}
export UBLK_VM_CACHE=$CACHE
VERSION=$(dpkg-parsechangelog -l "$REPO/tools/ublk-dkms/debian/changelog" -S Version)
# Bump when the base tree's recipe changes (forces a new unpack).
RECIPE=1

log() { echo "series: $*" >&2; }
die() { echo "series: error: $*" >&2; exit 2; }

# The Debian version of linux-source-6.1 to build against: the stock image's.
base_version() {
	local image ver

	image=$("$SETUP" image) || die "no kernel image (make setup)"
	read -r ver < "$image/.unpacked" || die "no version in $image/.unpacked"
	echo "$ver"
}

tree_dir() { echo "$CACHE/linux-git/$1"; }

# linux-source-6.1 VERSION as a git tree with the tag "base", once.
ensure_base() {
	local ver=$1 tree deb tmp t0=$SECONDS

	tree=$(tree_dir "$ver")
	if [ -f "$tree/.ublk-base" ] && [ "$(cat "$tree/.ublk-base")" = "$RECIPE" ]; then
		echo "$tree"
		return 0
	fi
	deb=$("$HERE/setup.sh" source-deb "$ver") ||
		die "cannot download linux-source-6.1=$ver"
	mkdir -p "$CACHE/linux-git"
	tmp=$tree.tmp
	rm -rf "$tmp" "$tree"
	mkdir -p "$tmp"
	log "unpacking $(basename "$deb") into $tree"
	dpkg-deb --fsys-tarfile "$deb" |
		tar -xOf - ./usr/src/linux-source-6.1.tar.xz |
		xz -dc -T0 | tar -xf - -C "$tmp" --strip-components=1 ||
		die "cannot unpack $deb"
	[ -f "$tmp/Makefile" ] || die "$deb has no kernel tree"
	log "making it a git tree"
	(cd "$tmp" && git init -q && git add -A -f &&
	 git -c user.name=debian -c user.email=debian@localhost commit -q \
		-m "Debian linux-source-6.1 $ver" && git tag base) >&2 ||
		die "git init of the tree failed"
	echo "$RECIPE" > "$tmp/.ublk-base"
	mv "$tmp" "$tree"
	log "base tree ready in $((SECONDS - t0)) s"
	echo "$tree"
}

# --- the series --------------------------------------------------------

author() {
	if [ -n "${UBLK_SERIES_AUTHOR:-}" ]; then
		echo "$UBLK_SERIES_AUTHOR"
		return
	fi
	sed -n '/^UBLK USERSPACE BLOCK DRIVER$/,/^$/s/^M:[[:space:]]*//p' \
		"$REPO/MAINTAINERS" | head -n1
}

# put PATH [MODE] < content: stage the blob for PATH in the temporary index
put() {
	local blob

	blob=$(git hash-object -w --stdin)
	git update-index --add --cacheinfo "${2:-100644},$blob,$1"
}

# put_file PATH: the project's file, executable bit kept (test scripts)
put_file() {
	local mode=100644

	[ -x "$REPO/$1" ] && mode=100755
	put "$1" "$mode" < "$REPO/$1"
}

# put_tree DIR: DIR as the project has it (its tracked files), replacing
# whatever the base had there (files are removed by name, unread)
put_tree() {
	local f

	while read -r f; do
		git update-index --force-remove "$f"
	done < <(git ls-tree -r --name-only base -- "$1")
	while read -r f; do
		put_file "$f"
	done < <(env -u GIT_DIR -u GIT_INDEX_FILE git -C "$REPO" ls-files -- "$1")
}

# The base's drivers/block/Kconfig with its BLK_DEV_UBLK entry replaced by
# ours (Kconfig.ublk without its header comment), or ours appended before
# the closing endif when the base has none.
kconfig_merged() {
	local ours

	ours=$(sed '/^#/d; /./,$!d' "$REPO/drivers/block/Kconfig.ublk")
	git show base:drivers/block/Kconfig | awk -v ours="$ours" '
		/^config BLK_DEV_UBLK$/ { print ours; print ""; skip = 1; done = 1; next }
		skip && /^(config|menuconfig|source|endif|if|comment|menu)/ { skip = 0 }
		skip { next }
		/^endif # BLK_DEV$/ && !done { print ours; print ""; done = 1 }
		{ print }'
}

# The base's drivers/block/Makefile, with our obj- line when it lacks one.
makefile_merged() {
	local line

	line=$(grep -F 'obj-$(CONFIG_BLK_DEV_UBLK)' "$REPO/drivers/block/Makefile")
	git show base:drivers/block/Makefile > "$1.mk"
	grep -qF 'CONFIG_BLK_DEV_UBLK' "$1.mk" || echo "$line" >> "$1.mk"
	cat "$1.mk"
	rm -f "$1.mk"
}

# tools/testing/selftests/Makefile with ublk in TARGETS (sorted in).
selftests_targets() {
	git show base:tools/testing/selftests/Makefile | awk '
		/^TARGETS \+= / && !done && $3 > "ublk" { print "TARGETS += ublk"; done = 1 }
		{ print }'
}

# MAINTAINERS: the base's UBLK entry gains our F: lines that are part of
# the series (the VM harness is not), kept sorted.
maintainers_merged() {
	local ours

	ours=$(sed -n '/^UBLK USERSPACE BLOCK DRIVER$/,/^$/p' "$REPO/MAINTAINERS" |
		grep '^F:' | grep -v 'tools/testing/ublk-vm')
	git show base:MAINTAINERS | awk -v ours="$ours" '
		function flush(   n, i, j, t, k) {
			n = split(ours, add, "\n")
			for (i = 1; i <= n; i++)
				if (!(add[i] in have)) { f[++nf] = add[i]; have[add[i]] = 1 }
			for (i = 1; i <= nf; i++)
				for (j = i + 1; j <= nf; j++)
					if (f[j] < f[i]) { t = f[i]; f[i] = f[j]; f[j] = t }
			for (i = 1; i <= nf; i++) print f[i]
		}
		/^UBLK USERSPACE BLOCK DRIVER$/ { in_e = 1; print; next }
		in_e && /^F:/ { f[++nf] = $0; have[$0] = 1; next }
		in_e && /^$/ { flush(); in_e = 0 }
		{ print }'
}

# commit SUBJECT BODY: commit the temporary index on top of $parent
commit_step() {
	local tree msg who name mail

	tree=$(git write-tree)
	who=$(author)
	name=${who% <*} mail=${who##*<} mail=${mail%>}
	msg=$(printf '%s\n\n%s\n\nSigned-off-by: %s\n' "$1" "$2" "$who")
	parent=$(GIT_AUTHOR_NAME=$name GIT_AUTHOR_EMAIL=$mail \
		GIT_COMMITTER_NAME=$name GIT_COMMITTER_EMAIL=$mail \
		GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" \
		git commit-tree "$tree" -p "$parent" <<< "$msg")
}

make_series() {
	local out=$1 ver tree idx parent date who mail

	ver=$(base_version)
	tree=$(ensure_base "$ver")
	mkdir -p "$out"
	out=$(cd "$out" && pwd -P)
	rm -f "$out"/*.patch
	idx=$(mktemp)
	trap 'rm -f "$idx"' RETURN
	export GIT_DIR=$tree/.git GIT_INDEX_FILE=$idx
	git read-tree base
	parent=$(git rev-parse base)
	# One date for every commit: the same tree gives the same series.
	date=$(git -C "$REPO" log -1 --format=%cD HEAD)

	put_file include/uapi/linux/ublk_cmd.h
	commit_step "ublk: uapi: add the commands and flags of later kernels" \
"Bring include/uapi/linux/ublk_cmd.h to what the new driver implements.
Every struct, command, opcode, flag bit and state value of 6.1 keeps its
layout and number, so 6.1 servers work unchanged (the generic selftests
compare every size, offset and value with the system's 6.1 header). What
is added uses the numbers later upstream kernels assigned, so newer
servers work too: GET_DEV_INFO2 (6.3), UBLK_F_CMD_IOCTL_ENCODE and the
ioctl-encoded UBLK_U_CMD_* and UBLK_U_IO_* commands (6.4), GET_FEATURES
with UBLK_FEATURES_LEN, UBLK_F_USER_RECOVERY_FAIL_IO with the state
UBLK_S_DEV_FAIL_IO (6.13), and UBLK_F_QUIESCE with
UBLK_U_CMD_QUIESCE_DEV (6.16).

No definition 6.1 has changes value, so the 6.1 driver still builds with
this header and the series stays bisectable."

	put_file drivers/block/ublk_drv.c
	commit_step "ublk: replace the driver with one that survives server death" \
"With UBLK_F_USER_RECOVERY a ublk device is meant to outlive its server,
but 6.1 notices a dead server only through a 5 s polling work item and
answers a second START_USER_RECOVERY with -EINVAL, so a recovery tool that
died halfway leaves a device that can only be stopped.

Replace drivers/block/ublk_drv.c as a whole with a driver written for
this: the death of a queue's daemon is noticed when its task exits (no
polling, no cost while idle), the queue is quiesced, requests not yet
handed out wait, the ones the dead server held fail (or wait too with
UBLK_F_USER_RECOVERY_REISSUE), and START/END_USER_RECOVERY bring a new
server in; START may be sent again while no server is attached. STOP_DEV
and DEL_DEV work in every state, and the abort_timeout_ms module
parameter bounds how long they wait for a living server that never
answers. Every command validates its input and returns an errno; no
input from userspace may reach a WARN.

Beyond 6.1: UBLK_F_USER_RECOVERY_FAIL_IO fails I/O at once while no
server serves the device instead of letting it wait; QUIESCE_DEV hands a
LIVE device to a new server without a crash and without an I/O error; a
per-device recovery deadline (sysfs recovery_timeout_ms, module parameter
for the default, 0 = wait forever) fails waiting I/O after a server has
been gone that long, so tasks do not stay in D state forever; and every
state change is a KOBJ_CHANGE uevent of /dev/ublkcN (UBLK_DEV_ID,
UBLK_STATE) with a read-only sysfs 'state', so udev or systemd can start
a new server.

The wire conventions of 6.1 are kept (the queue index in data[0] for
GET_QUEUE_AFFINITY, the server pid in data[0] for START_DEV and
END_USER_RECOVERY): ublksrv v1.0 runs against it unchanged."

	kconfig_merged | put drivers/block/Kconfig
	makefile_merged "$idx" | put drivers/block/Makefile
	commit_step "ublk: Kconfig: describe user recovery, select TRACEPOINTS" \
"The driver learns of a server's death from the sched_process_exit
tracepoint, so select TRACEPOINTS rather than rely on another option to
have done it. It needs io_uring rather than forcing it
on, so depend on IO_URING instead of selecting it. And the help text now
says what a ublk device does when its server dies, which is what a user
enabling the option needs to know. drivers/block/Makefile already builds
ublk_drv.o from CONFIG_BLK_DEV_UBLK and stays as it is."

	put_file Documentation/block/ublk.rst
	commit_step "Documentation: ublk: document user recovery and each command" \
"Server authors need the exact contract: which fields of struct
ublksrv_ctrl_cmd each control command reads and writes and which errno it
returns, the device states and who moves between them, and the recovery
procedure step by step, the four recovery modes side by side, the planned
handover, the recovery deadline and the state uevents with a udev rule
and a systemd unit. Also spell out the data-safety caveat of
UBLK_F_USER_RECOVERY_REISSUE: a write may be done twice."

	put_tree tools/testing/selftests/ublk
	selftests_targets | put tools/testing/selftests/Makefile
	commit_step "selftests/ublk: add kublk and the ublk tests" \
"Add kselftests for ublk: kublk, a small ublk server with null and loop
targets and a recover command, and test_*.sh scripts grouped as generic
(ABI equality with 6.1's header, every errno), null, loop, recover
(kill -9 and recover under fio, with and without REISSUE, data
verified), handover, race, fuzz and soak, with ublk_uevent, a uevent
listener that stands in for udev. Tests that need ublksrv (compat) skip
without it. The file the directory held in Debian's tree goes: the tests
are these. The directory builds through lib.mk:

    make -C tools/testing/selftests TARGETS=ublk run_tests"

	maintainers_merged | put MAINTAINERS
	commit_step "MAINTAINERS: ublk: add the selftests" \
"Let get_maintainer.pl route changes of tools/testing/selftests/ublk/ to
the ublk entry, which already covers the driver, its uapi header and its
documentation."

	# The cover letter is "from" the committer: the same identity.
	who=$(author)
	mail=${who##*<} mail=${mail%>}
	git -c user.name="${who% <*}" -c user.email="$mail" \
		format-patch -q -B --cover-letter --no-signature \
		--subject-prefix="PATCH" -o "$out" base.."$parent"
	cover_letter "$out"/0000-cover-letter.patch "$ver"
	unset GIT_DIR GIT_INDEX_FILE
	log "wrote $(ls "$out"/*.patch | wc -l) files into $out"
}

# Fill in the cover letter's subject and blurb.
cover_letter() {
	local f=$1 ver=$2 blurb

	blurb=$(cat <<EOF
This series replaces the ublk driver of Linux 6.1 with one that keeps a
device across the death of its server (UBLK_F_USER_RECOVERY), against
Debian's linux-source-6.1 $ver. It is ublk $VERSION.

With recovery enabled, the death of a queue's daemon is noticed when its
task exits (6.1 polls every 5 s), the queue is quiesced and I/O waits,
the requests the dead server held fail or, with
UBLK_F_USER_RECOVERY_REISSUE, are issued again to the next server, and
START/END_USER_RECOVERY bring a new server in; START may be sent again
after a recovery tool died halfway. STOP_DEV and DEL_DEV work in every
state. Later upstream commands use upstream's numbers: GET_DEV_INFO2
(6.3), the ioctl encoding (6.4), GET_FEATURES, FAIL_IO (6.13) and the
planned handover QUIESCE_DEV (6.16). Of its own it adds a recovery
deadline and state uevents, so that a device can bring itself back
through udev. The 6.1 ABI is unchanged: 6.1 servers (ublksrv v1.0) run
as they are.

Patch 1 extends the uapi header, patch 2 replaces the driver, patch 3
updates Kconfig, patch 4 the documentation, patch 5 adds kselftests with
kublk, their ublk server, and patch 6 the MAINTAINERS entry. Every patch
builds (make drivers/block/ublk_drv.o with CONFIG_BLK_DEV_UBLK=m).

Testing: on Debian's 6.1 kernel (in QEMU), with the module built in this
tree from Debian's config plus CONFIG_BLK_DEV_UBLK=m:

    make headers
    make -C tools/testing/selftests TARGETS=ublk run_tests
EOF
)
	awk -v subj="ublk: user recovery that survives the server's death" \
	    -v blurb="$blurb" '
		/\*\*\* SUBJECT HERE \*\*\*/ { sub(/\*\*\* SUBJECT HERE \*\*\*/, subj) }
		/^\*\*\* BLURB HERE \*\*\*$/ { print blurb; next }
		{ print }' "$f" > "$f.new"
	mv "$f.new" "$f"
}

# --- the check ---------------------------------------------------------

# shellcheck source=tap.sh
. "$HERE/tap.sh"

# Debian's config, as the headers package has it, with CONFIG_BLK_DEV_UBLK=m
# and what a plain source tree cannot do switched off: BTF needs pahole and
# vmlinux, the trusted keys and the signing key name files of Debian's own
# build (modules stay unsigned, as "make module" builds them; struct module
# keeps its layout since MODULE_SIG stays on).
CONFIG_RECIPE="-m BLK_DEV_UBLK -d DEBUG_INFO_BTF -d MODULE_SIG_ALL"
CONFIG_RECIPE+=" --set-str SYSTEM_TRUSTED_KEYS '' --set-str SYSTEM_REVOCATION_KEYS ''"
CONFIG_RECIPE+=" --set-str MODULE_SIG_KEY certs/signing_key.pem"

config_key() {
	{ echo "$CONFIG_RECIPE"; cat "$1"; } | sha256sum | cut -c1-16
}

prepare_config() {
	local cfg=$1

	cp "$cfg" .config
	eval scripts/config --file .config "$CONFIG_RECIPE"
	make -s olddefconfig
	config_key "$cfg" > .ublk-config
}

# kmake LOG ARGS: make in the tree, nice, output into LOG; fails on a
# warning or error line of ours
kmake() {
	local log=$1

	shift
	nice make -j"$(nproc)" "$@" > "$log" 2>&1
}

check_series() {
	local out=$1 ver tree cp p name i log=$1/logs t0 rc kdir kver
	local -a patches

	mkdir -p "$out" && out=$(cd "$out" && pwd -P) && log=$out/logs
	make_series "$out" 2>&1 | sed 's/^/# /'
	# From here on a failing step is a "not ok", not the end.
	set +e
	ver=$(base_version)
	tree=$(tree_dir "$ver")
	patches=("$out"/[0-9][0-9][0-9][0-9]-*.patch)
	patches=("${patches[@]:1}")	# without 0000-cover-letter.patch
	cp=$("$SETUP" checkpatch) || die "cannot fetch checkpatch.pl"
	mkdir -p "$log"
	exec 8> "$CACHE/linux-git/$ver.lock"
	flock 8
	cd "$tree"
	git am --abort > /dev/null 2>&1 || true
	git checkout -q -f --detach base
	git clean -q -fd
	t0=$SECONDS
	kdir=$("$SETUP" kdir) || die "no kernel headers"
	kver=$("$SETUP" kver) || die "no kernel release"
	[ -f "$kdir/.config" ] || die "no $kdir/.config"
	if [ ! -f .config ] || [ "$(cat .ublk-config 2>/dev/null)" != "$(config_key "$kdir/.config")" ]; then
		prepare_config "$kdir/.config"
	fi
	# Debian's release string, so that the module loads into its kernel.
	kmake "$log/prepare.log" KERNELRELEASE="$kver" modules_prepare
	tap $? "base: Debian's config + CONFIG_BLK_DEV_UBLK=m, make modules_prepare ($((SECONDS - t0)) s)"

	i=0
	for p in "${patches[@]}"; do
		i=$((i + 1))
		name=$(basename "$p" .patch)
		git -c user.name=series -c user.email=series@localhost am -q "$p" \
			> "$log/$name.am.log" 2>&1
		rc=$?
		tap $rc "patch $i applies: $name"
		[ $rc -eq 0 ] || { git am --abort > /dev/null 2>&1; break; }
		t0=$SECONDS
		kmake "$log/$name.build.log" KERNELRELEASE="$kver" drivers/block/ublk_drv.o
		rc=$?
		if [ $rc -eq 0 ] && grep -E '(warning|error):' "$log/$name.build.log" > /dev/null; then
			rc=1
		fi
		tap $rc "patch $i builds: make drivers/block/ublk_drv.o ($((SECONDS - t0)) s)"
		[ $rc -eq 0 ] || sed 's/^/  /' "$log/$name.build.log" | tail -n 20
		# FILE_PATH_CHANGES asks whether MAINTAINERS needs updating for
		# new files: patch 6 does that, for the series as a whole.
		perl "$cp" --strict --no-tree --ignore FILE_PATH_CHANGES "$p" \
			> "$log/$name.checkpatch.log" 2>&1
		rc=$?
		tap $rc "patch $i checkpatch --strict: $(tail -n +1 "$log/$name.checkpatch.log" |
			grep -E '^total:' | head -n1)"
		[ $rc -eq 0 ] || grep -E '^(ERROR|WARNING|CHECK):' "$log/$name.checkpatch.log" | sed 's/^/  /'
	done

	# The module in-tree, as a distribution builds it: drivers/block with
	# Module.symvers of Debian's kernel, so modpost checks every symbol the
	# module takes (a plain "make drivers/block/ublk_drv.ko" wants vmlinux.o).
	cp "$kdir/Module.symvers" Module.symvers
	t0=$SECONDS
	rm -f drivers/block/ublk_drv.o drivers/block/ublk_drv.ko
	kmake "$log/module.log" KERNELRELEASE="$kver" modules_prepare &&
		kmake "$log/module.log.2" KERNELRELEASE="$kver" M=drivers/block modules
	rc=$?
	cat "$log/module.log.2" >> "$log/module.log" 2> /dev/null
	rm -f "$log/module.log.2"
	if [ $rc -eq 0 ] && grep -E '(warning|error):|WARNING' "$log/module.log" > /dev/null; then
		rc=1
	fi
	[ -f drivers/block/ublk_drv.ko ] &&
		[ "$(modinfo -F vermagic drivers/block/ublk_drv.ko | cut -d' ' -f1)" = "$kver" ] || rc=1
	tap $rc "in-tree: make M=drivers/block modules, ublk_drv.ko for $kver, no warning ($((SECONDS - t0)) s)"
	[ $rc -eq 0 ] || grep -E '(warning|error):|WARNING' "$log/module.log" | sed 's/^/  /'
	[ -f drivers/block/ublk_drv.ko ] && cp drivers/block/ublk_drv.ko "$out/"

	# The kselftests as kernel CI builds them: the uapi headers installed
	# (make headers), then lib.mk.
	t0=$SECONDS
	kmake "$log/headers.log" headers
	tap $? "make headers ($((SECONDS - t0)) s)"
	t0=$SECONDS
	make -C tools/testing/selftests TARGETS=ublk clean > /dev/null 2>&1
	kmake "$log/kselftest.log" -C tools/testing/selftests TARGETS=ublk
	rc=$?
	for p in kublk abi_check ublk_errno ublk_fuzz; do
		[ -x tools/testing/selftests/ublk/$p ] || rc=1
	done
	tap $rc "make -C tools/testing/selftests TARGETS=ublk (lib.mk) builds kublk and the helpers ($((SECONDS - t0)) s)"
	[ $rc -eq 0 ] || tail -n 20 "$log/kselftest.log" | sed 's/^/  /'
	echo "$tree" > "$out/tree"
	tap_summary
}

case "${1:-}" in
base)	ensure_base "$(base_version)" ;;
make)	[ -n "${2:-}" ] || die "usage: $0 make OUTDIR"; make_series "$2" ;;
check)	[ -n "${2:-}" ] || die "usage: $0 check OUTDIR"; check_series "$2" ;;
*)	die "usage: $0 base | make OUTDIR | check OUTDIR" ;;
esac
