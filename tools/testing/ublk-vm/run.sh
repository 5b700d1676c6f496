#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# ublk VM harness, the one entry point (the top-level Makefile calls it).
#
#   run.sh check [PATTERN...]     deps, build, boot Debian's 6.1 kernel in
#                                 QEMU, run the kselftests, print TAP and
#                                 "N passed, N failed"
#   run.sh guest SCRIPT [ARG...]  same VM, but runs the bash SCRIPT (a path
#                                 in the repo) instead of the tests
#   run.sh checkpatch             checkpatch.pl --strict on the driver files
#   run.sh sparse                 module build with C=2 CHECK=sparse
#
# PATTERN: a glob (test_loop_*.sh) or a substring (recover) of a test name.
#
# UBLK_KERNEL=debug (make check KERNEL=debug) boots the debug kernel instead
# of Debian's image: debug-kernel.sh builds it from linux-source-6.1 with
# debug.config (KASAN, lockdep, KFENCE, kmemleak, ...) once, then the cache
# serves it; ublk_drv.ko is built against that tree, timeouts scale by
# UBLK_TIMEOUT_SCALE and a kmemleak scan after the tests is one more item.
#
# Exit status: 0 all passed, 1 a test failed, 2 infrastructure failure
# (setup, build, VM did not boot, runner wrote nothing).
#
# Results: results/<timestamp>/ (and results/latest): status (this exit
# status: make turns every failure into 2), build.log,
# console.log (serial), dmesg.txt (whole guest kernel log), tap.txt,
# tests/<name>/{output.log,dmesg.log} and whatever the test put in its
# $UBLK_RESULTS; for guest scripts output.log and exit-status.
#
# Environment:
#   KDIR                kernel headers (default: Debian's linux-headers-amd64;
#                       with UBLK_KERNEL=debug: the debug kernel's build tree)
#   UBLK_KERNEL         stock (default) or debug
#   UBLK_TIMEOUT_SCALE  factor for every test timeout and wait (default 1,
#                       debug kernel 5)
#   UBLK_VM_CACHE       cache of kernel image, checkpatch and the ublksrv
#                       build (/var/cache/ublk-vm)
#   UBLK_PEERS          folder of ublksrv's tarball (default ../shared/peers)
#   UBLK_RESULTS_BASE   where results/<timestamp> go (default: <repo>/results)
#   UBLK_TEST_DIR       run the test_*.sh of another folder (harness trials;
#                       skips the selftests build)
#   UBLK_NO_MODULE=1    neither build nor load ublk_drv (harness trials)
#   UBLK_SKIP_BUILD=1   use what is built already
#   UBLK_MODULE=PATH    load this ublk_drv.ko (or .ko.xz) instead of building
#                       one (the DKMS check boots the module dkms built)
#   UBLK_VM_MEM         guest RAM (default 4G)
#   UBLK_VM_SMP         guest CPUs (default 2)
#   UBLK_VM_CPU         QEMU -cpu model and flags (default max)
#   UBLK_VM_APPEND      more guest kernel parameters
#   UBLK_VM_TIMEOUT     whole VM run limit in seconds (default 3600, debug
#                       kernel 4800)
#   UBLK_VM_BOOT_TIMEOUT  seconds for the guest to come up (default 180)

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../../.." && pwd -P)
SETUP=$HERE/setup.sh
CACHE=${UBLK_VM_CACHE:-/var/cache/ublk-vm}
export UBLK_VM_CACHE=$CACHE
SELFTEST_DIR=$REPO/tools/testing/selftests/ublk
# Kernel log lines that fail a test or a guest script (passed to the guest).
# The second line is what the debug kernel adds to BUG:/WARNING: reports:
# KASAN, KFENCE, UBSAN, lockdep and RCU-lockdep splats, debugobjects, list
# corruption, soft lockups.
KMSG_BAD='WARNING:|BUG:|Oops|blocked for more than|possible circular locking|lockdep|general protection|Call Trace'
KMSG_BAD+='|KASAN:|KFENCE:|UBSAN:|sleeping function called from invalid context|possible recursive locking|inconsistent lock state|suspicious RCU usage|ODEBUG:|list_(add|del) corruption|soft lockup'
KERNEL=${UBLK_KERNEL:-stock}
case "$KERNEL" in
stock)	TIMEOUT_SCALE=${UBLK_TIMEOUT_SCALE:-1} VM_TIMEOUT=3600 BOOT_TIMEOUT=180
	VM_CPU=max ;;
# la57=off: with 5-level paging KASAN reports wild accesses to the direct
# map from the first interrupts on (TCG's -cpu max has LA57).
debug)	TIMEOUT_SCALE=${UBLK_TIMEOUT_SCALE:-5} VM_TIMEOUT=4800 BOOT_TIMEOUT=600
	VM_CPU=max,la57=off ;;
*)	echo "ublk-vm: UBLK_KERNEL=$KERNEL: stock or debug" >&2; exit 2 ;;
esac
MAKE=${MAKE:-make}

say() { echo "ublk-vm: $*"; }

# Exit 2: the harness, not a test, failed.
infra() {
	say "INFRASTRUCTURE FAILURE: $*" >&2
	exit 2
}

usage() {
	sed -n '4,15p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

secs_since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

stage_t0=
stage_start() {
	stage_name=$1
	stage_t0=$EPOCHREALTIME
}
stage_done() {
	printf 'ublk-vm: %-6s %6s s%s\n' "$stage_name" "$(secs_since "$stage_t0")" "${1:+  ($1)}"
}

run_tmp=
qpid=
resdir=
cleanup() {
	local status=$?

	[ -n "$resdir" ] && echo "$status" > "$resdir/status"
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null
	[ -n "$run_tmp" ] && rm -rf "$run_tmp"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

new_resdir() {
	local base=${UBLK_RESULTS_BASE:-$REPO/results} ts i=1

	ts=$(date +%Y%m%d-%H%M%S)
	mkdir -p "$base" || infra "cannot create $base"
	resdir=$base/$ts
	while ! mkdir "$resdir" 2>/dev/null; do
		i=$((i + 1))
		resdir=$base/$ts-$i
	done
	ln -sfn "$(basename "$resdir")" "$base/latest"
}

rel() { echo "${1#"$REPO"/}"; }

# deps: packages, kernel headers, the matching kernel image and ublksrv
# (the compat tests' third-party server, built once into the cache). Sets
# kdir (module build tree), kver (release), image (root of lib/modules/$kver),
# vmlinux (what QEMU boots) and ublksrv.
do_deps() {
	stage_start deps
	"$SETUP" all || infra "setup failed (see above)"
	kdir=$("$SETUP" kdir) || infra "no kernel headers"
	kver=$("$SETUP" kver) || infra "no kernel release"
	image=$("$SETUP" image) || infra "no kernel image for $kver"
	ublksrv=$("$SETUP" ublksrv) || infra "no ublksrv build (see above)"
	vmlinux=$image/boot/vmlinux-$kver
	# The ELF vmlinux boots through PVH, seconds faster than vmlinuz.
	[ -f "$vmlinux" ] || vmlinux=$image/boot/vmlinuz-$kver
	stage_done "$kver"
	if [ "$KERNEL" = debug ]; then
		do_debug_kernel
	fi
}

# kernel: the debug kernel, same upstream version as the stock image, built
# once per (source version, debug.config) and cached.
do_debug_kernel() {
	local ver tree how=cached log

	stage_start kernel
	read -r ver < "$image/.unpacked" || infra "no version for $image"
	tree=$("$HERE/debug-kernel.sh" path "$ver") || infra "debug-kernel.sh path failed"
	if [ ! -f "$tree/.done" ] || [ ! -f "$tree/arch/x86/boot/bzImage" ]; then
		how=built
		log=$resdir/kernel-build.log
		say "building the debug kernel from linux-source-6.1 $ver (log: $(rel "$log"))"
		if ! tree=$(nice "$HERE/debug-kernel.sh" build "$ver" 2> "$log"); then
			grep -E '^debug-kernel:|error' "$log" | tail -n 30 | sed 's/^/  /' >&2
			infra "the debug kernel did not build (full log: $(rel "$log"))"
		fi
	fi
	"$HERE/debug-kernel.sh" check "$tree" || infra "$tree/.config lacks debug.config options"
	[ -n "${KDIR:-}" ] || kdir=$tree
	read -r kver < "$tree/release" || infra "no release in $tree"
	image=$tree/modroot
	vmlinux=$tree/arch/x86/boot/bzImage
	stage_done "$kver, $how: $tree"
}

# build: module, selftests, guest module tree and initramfs.
do_build() {
	local log=$resdir/build.log ko=$REPO/drivers/block/ublk_drv.ko vermagic

	stage_start build
	: > "$log"
	if [ -z "${UBLK_SKIP_BUILD:-}" ]; then
		if [ -z "${UBLK_NO_MODULE:-}" ] && [ -z "${UBLK_MODULE:-}" ]; then
			[ -f "$REPO/drivers/block/ublk_drv.c" ] ||
				infra "drivers/block/ublk_drv.c does not exist (UBLK_NO_MODULE=1 runs without it)"
			build_step "$log" "$MAKE" -C "$REPO" --no-print-directory module KDIR="$kdir"
		fi
		if [ -z "${UBLK_TEST_DIR:-}" ]; then
			[ -f "$SELFTEST_DIR/Makefile" ] ||
				infra "$(rel "$SELFTEST_DIR")/Makefile does not exist"
			build_step "$log" "$MAKE" -C "$REPO" --no-print-directory selftests
		fi
		grep -E '(warning|error):' "$log" | sed 's/^/  /'
	fi

	# Runs killed hard leave their temp dir behind: drop day-old ones.
	find "$CACHE" -maxdepth 1 -name 'run.*' -mmin +1440 -exec rm -rf {} + 2>/dev/null
	run_tmp=$(mktemp -d "$CACHE/run.XXXXXX") || infra "cannot create a temp dir in $CACHE"
	make_modtree "$run_tmp/modules"
	if [ -n "${UBLK_MODULE:-}" ] && [ -z "${UBLK_NO_MODULE:-}" ]; then
		ko=$run_tmp/ublk_drv.ko
		case "$UBLK_MODULE" in
		*.xz)	xz -dc "$UBLK_MODULE" > "$ko" ;;
		*)	cp "$UBLK_MODULE" "$ko" ;;
		esac || infra "cannot read UBLK_MODULE=$UBLK_MODULE"
		echo "+ UBLK_MODULE=$UBLK_MODULE" >> "$log"
	fi
	if [ -z "${UBLK_NO_MODULE:-}" ]; then
		[ -f "$ko" ] || infra "$(rel "$ko") was not built"
		vermagic=$(modinfo -F vermagic "$ko")
		[ "${vermagic%% *}" = "$kver" ] ||
			infra "$(rel "$ko") is built for ${vermagic%% *}, the VM runs $kver (make clean?)"
		mkdir -p "$run_tmp/modules/lib/modules/$kver/extra"
		cp "$ko" "$run_tmp/modules/lib/modules/$kver/extra/"
	fi
	depmod -b "$run_tmp/modules" "$kver" || infra "depmod failed"
	make_initramfs "$run_tmp/initramfs" "$run_tmp/initramfs.gz"
	stage_done
}

build_step() {
	local log=$1

	shift
	echo "+ $*" >> "$log"
	if ! "$@" >> "$log" 2>&1; then
		tail -n 60 "$log" | sed 's/^/  /' >&2
		infra "build failed: $* (full log: $(rel "$log"))"
	fi
}

# Hard links of the image's modules; depmod then writes its own indexes.
make_modtree() {
	local dst=$1/lib/modules/$kver

	mkdir -p "$1/lib/modules"
	cp -al "$image/lib/modules/$kver" "$dst" || infra "cannot link the module tree"
	rm -f "$dst"/modules.{dep,dep.bin,alias,alias.bin,softdep,symbols,symbols.bin} \
		"$dst"/modules.{builtin.bin,builtin.alias.bin,devname}
}

make_initramfs() {
	local dir=$1 out=$2 ko name i=0 bb

	mkdir -p "$dir"/{bin,modules,proc,sys,dev}
	bb=$(command -v busybox) || infra "busybox missing"
	! ldd "$bb" > /dev/null 2>&1 ||
		infra "$bb is linked dynamically: apt-get install busybox-static"
	cp "$bb" "$dir/bin/busybox"
	cp "$HERE/initramfs-init" "$dir/init"
	chmod 755 "$dir/init" "$dir/bin/busybox"
	: > "$dir/modules/order"
	while read -r ko; do
		i=$((i + 1))
		name=$(printf '%02d-%s' "$i" "$(basename "${ko%.xz}")")
		case "$ko" in
		*.xz)	xz -dc "$ko" > "$dir/modules/$name" ;;
		*)	cp "$ko" "$dir/modules/$name" ;;
		esac
		echo "$name" >> "$dir/modules/order"
	done < <(boot_modules | awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
	# A kernel with all of them built in (the debug one) has nothing to load.
	[ "$i" -gt 0 ] || ! boot_modules | grep -qv '^builtin ' ||
		infra "cannot resolve the initramfs modules"
	echo "$HERE/guest-init.sh" > "$dir/stage2"
	write_guest_env > "$dir/ublkvm.env"
	(cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) > "$out" ||
		infra "cannot pack the initramfs"
}

# What the root over 9p needs: "insmod PATH" lines, "builtin NAME" when the
# kernel has it built in.
boot_modules() {
	modprobe -a -d "$image" -S "$kver" --show-depends \
		virtio_pci 9pnet_virtio 9p overlay 2>&1
}

# What stage 2 (guest-init.sh) sources.
write_guest_env() {
	local UBLK_REPO=$REPO UBLK_RESDIR=$resdir UBLK_KVER=$kver
	local UBLK_MODTREE=$run_tmp/modules UBLK_MODE=$mode
	local UBLK_TEST_DIR=${UBLK_TEST_DIR:-$SELFTEST_DIR}
	local UBLK_NO_MODULE=${UBLK_NO_MODULE:-}
	local UBLK_SCRIPT=${guest_script:-} UBLK_KMSG_BAD=$KMSG_BAD
	local UBLKSRV=$ublksrv
	local UBLK_KERNEL=$KERNEL UBLK_TIMEOUT_SCALE=$TIMEOUT_SCALE
	local UBLK_HUNG_TASK_SECS=60
	local -a UBLK_PATTERNS=("${patterns[@]}") UBLK_ARGS=("${guest_args[@]}")

	# The debug kernel's own default (debug.config) is 30 s.
	[ "$KERNEL" = debug ] && UBLK_HUNG_TASK_SECS=30
	export UBLK_REPO UBLK_RESDIR UBLK_KVER UBLK_MODTREE UBLK_MODE \
		UBLK_TEST_DIR UBLK_NO_MODULE UBLK_SCRIPT UBLK_KMSG_BAD UBLKSRV \
		UBLK_KERNEL UBLK_TIMEOUT_SCALE UBLK_HUNG_TASK_SECS
	declare -p UBLK_REPO UBLK_RESDIR UBLK_KVER UBLK_MODTREE UBLK_MODE \
		UBLK_TEST_DIR UBLK_NO_MODULE UBLK_SCRIPT UBLK_KMSG_BAD UBLKSRV \
		UBLK_KERNEL UBLK_TIMEOUT_SCALE UBLK_HUNG_TASK_SECS \
		UBLK_PATTERNS UBLK_ARGS |
		sed 's/^declare -\([a-zA-Z]*\) /declare -g\1 /'
}

# boot + run: QEMU in the background under a timeout; the guest's output
# file is followed live. Sets vm_status (124: the host timeout hit).
do_vm() {
	local live=$1 vm_timeout=${UBLK_VM_TIMEOUT:-$VM_TIMEOUT}
	local boot_timeout=${UBLK_VM_BOOT_TIMEOUT:-$BOOT_TIMEOUT} t0 up
	local kernel=$vmlinux append=

	# Every KASAN report, not only the first one of the boot.
	[ "$KERNEL" = debug ] && append=" kasan_multi_shot"

	stage_start boot
	t0=$EPOCHREALTIME
	timeout -k 10 "$vm_timeout" qemu-system-x86_64 \
		-nodefaults -no-user-config -no-reboot \
		-accel tcg -cpu "${UBLK_VM_CPU:-$VM_CPU}" -smp "${UBLK_VM_SMP:-2}" -m "${UBLK_VM_MEM:-4G}" \
		-kernel "$kernel" -initrd "$run_tmp/initramfs.gz" \
		-append "console=ttyS0,115200 panic=-1 printk.devkmsg=on log_buf_len=8M hung_task_panic=0 mitigations=off no_timer_check$append${UBLK_VM_APPEND:+ $UBLK_VM_APPEND}" \
		-display none -monitor none -serial "file:$resdir/console.log" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
		-virtfs "local,path=$resdir,mount_tag=results,security_model=none,multidevs=remap" \
		> "$resdir/qemu.log" 2>&1 < /dev/null &
	qpid=$!

	while [ ! -f "$resdir/booted" ] && kill -0 "$qpid" 2>/dev/null; do
		if [ "$(secs_since "$t0" | cut -d. -f1)" -ge "$boot_timeout" ]; then
			kill "$qpid"
			break
		fi
		sleep 0.1
	done
	if [ ! -f "$resdir/booted" ]; then
		wait "$qpid"
		qpid=
		sed 's/^/  /' "$resdir/qemu.log" >&2
		tail -n 30 "$resdir/console.log" 2>/dev/null | sed 's/^/  console: /' >&2
		infra "the VM did not boot (console: $(rel "$resdir")/console.log)"
	fi
	read -r up < "$resdir/booted"
	stage_done "guest up at ${up} s"

	stage_start run
	tail -n +1 -F -s 0.2 --pid="$qpid" "$resdir/$live" 2>/dev/null |
		grep --line-buffered -Ev '^[0-9]+ passed, [0-9]+ failed'
	wait "$qpid"
	vm_status=$?
	qpid=
	if [ "$vm_status" -eq 124 ] || [ "$vm_status" -eq 137 ]; then
		say "the VM was killed after the ${vm_timeout} s limit (UBLK_VM_TIMEOUT)"
	fi
	stage_done
}

# The serial console since the last test's start marker (head and tail if
# long): where a crash or a hang shows.
console_tail() {
	local con=$resdir/console.log from n

	n=$(wc -l < "$con")
	from=$(grep -nE 'ublk-(selftest|vm): start' "$con" | tail -n1 | cut -d: -f1)
	if [ -n "$from" ]; then
		n=$((n - from + 1))
	elif [ "$n" -gt 40 ]; then
		n=40
	fi
	say "serial console since the last start marker ($(rel "$con")):"
	if [ "$n" -le 80 ]; then
		tail -n "$n" "$con"
	else
		tail -n "$n" "$con" | head -n 50
		echo "[... $((n - 70)) lines ...]"
		tail -n 20 "$con"
	fi | sed 's/^/  /'
}

cmd_check() {
	local tap plan reported passed failed skipped i name line
	local -a names failed_names

	if [ -n "${UBLK_TEST_DIR:-}" ]; then
		UBLK_TEST_DIR=$(cd "$UBLK_TEST_DIR" && pwd -P) ||
			infra "no such folder: UBLK_TEST_DIR"
	fi
	mode=tests
	new_resdir
	do_deps
	do_build
	do_vm tap.txt
	tap=$resdir/tap.txt

	if [ -f "$resdir/runner-error" ]; then
		infra "no test matches: ${patterns[*]}"
	fi
	plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' "$tap" 2>/dev/null | head -n1)
	[ -n "$plan" ] || { console_tail; infra "the test runner wrote no TAP plan ($(rel "$tap"))"; }

	# Items the guest never reported: it died or was killed.
	reported=$(grep -cE '^(not )?ok ' "$tap")
	if [ "$reported" -lt "$plan" ]; then
		console_tail
		mapfile -t names < "$resdir/tests.list"
		for ((i = reported + 1; i <= plan; i++)); do
			name=${names[i - 1]:-item $i}
			if [ "$i" -eq $((reported + 1)) ]; then
				line="not ok $i - $name # the VM died or hung during this item"
			else
				line="not ok $i - $name # not run: the VM died earlier"
			fi
			echo "$line" | tee -a "$tap"
		done
	fi

	passed=$(grep -E '^ok ' "$tap" | grep -vc '# SKIP')
	skipped=$(grep -E '^ok ' "$tap" | grep -c '# SKIP')
	failed=$(grep -cE '^not ok ' "$tap")
	mapfile -t failed_names < <(sed -n 's/^not ok [0-9]* - \(.*\)$/\1/p' "$tap" |
		sed 's/ # .*//')

	say "results: $(rel "$resdir")/ (tap.txt, console.log, dmesg.txt, tests/<name>/)"
	for name in "${failed_names[@]}"; do
		case "$name" in
		test_*)	say "FAILED $name: reproduce with: make check T=$name" ;;
		*)	say "FAILED $name: reproduce with: make check" ;;
		esac
	done
	line="$passed passed, $failed failed"
	[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
	echo "$line"
	[ "$failed" -eq 0 ]
}

cmd_guest() {
	local status

	[ -n "${guest_script:-}" ] || usage
	case "$guest_script" in
	/*)	;;
	*)	guest_script=$REPO/$guest_script ;;
	esac
	[ -f "$guest_script" ] || infra "no such guest script: $guest_script"
	mode=script
	new_resdir
	do_deps
	do_build
	do_vm output.log
	say "results: $(rel "$resdir")/ (output.log, console.log, dmesg.txt)"
	if [ ! -f "$resdir/exit-status" ]; then
		console_tail
		say "$(rel "$guest_script") did not finish: the VM died or hung"
		return 1
	fi
	read -r status < "$resdir/exit-status"
	say "$(rel "$guest_script") exited with status $status"
	if grep -qE "$KMSG_BAD" "$resdir/dmesg.txt"; then
		say "the guest kernel log has warnings ($(rel "$resdir")/dmesg.txt):"
		grep -B1 -E "$KMSG_BAD" "$resdir/dmesg.txt" | head -n 30 | sed 's/^/  /'
		return 1
	fi
	[ "$status" -eq 0 ]
}

cmd_checkpatch() {
	local cp f files=()

	cp=$("$SETUP" checkpatch) || infra "cannot fetch checkpatch.pl"
	for f in drivers/block/ublk_drv.c include/uapi/linux/ublk_cmd.h; do
		if [ -f "$REPO/$f" ]; then
			files+=("$f")
		else
			say "checkpatch: $f does not exist"
		fi
	done
	[ ${#files[@]} -gt 0 ] || return 1
	cd "$REPO" && perl "$cp" --strict --no-tree --show-types -f "${files[@]}"
}

cmd_sparse() {
	local kdir log rc bad

	"$SETUP" packages || infra "setup failed"
	kdir=$("$SETUP" kdir) || infra "no kernel headers (run: make setup)"
	log=$(mktemp)
	"$MAKE" -C "$kdir" M="$REPO/drivers/block" C=2 CHECK=sparse modules 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	bad=$(grep -E '(drivers/block/ublk_drv\.c|include/uapi/linux/ublk_cmd\.h):[0-9]+(:[0-9]+)?: ' "$log")
	rm -f "$log"
	[ "$rc" -eq 0 ] || { say "sparse: the module build failed"; return 1; }
	if [ -n "$bad" ]; then
		say "sparse: $(echo "$bad" | wc -l) warning line(s) in our files:"
		echo "$bad"
		return 1
	fi
	say "sparse: clean"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
patterns=()
guest_args=()
guest_script=
case "$cmd" in
check)		patterns=("$@"); cmd_check ;;
guest)		guest_script=${1:-}; [ $# -gt 0 ] && shift
		guest_args=("$@"); cmd_guest ;;
checkpatch)	cmd_checkpatch ;;
sparse)		cmd_sparse ;;
*)		usage ;;
esac
