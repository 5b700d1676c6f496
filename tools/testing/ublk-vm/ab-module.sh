# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Swapping ublk_drv builds in one boot, the one code path of make ab
# (ab-guest.sh) and of the benchmark's "ours vs 6.1's module" part
# (bench-guest.sh, part ref). Sourced; every function returns non-zero
# and says why on stderr when it cannot do its job.
#
#   ab_module_use KO    unload whatever ublk_drv is loaded, load KO
#   ab_module_unload    unload ublk_drv (nothing loaded is fine)
#
# Every ublk device must be deleted first. A server that is still exiting
# holds /dev/ublkcN, and so the module, for a moment after `del': the
# unload waits for the module's reference count to drop (10 s at most).

# ab_module_refs: the loaded ublk_drv's reference count, empty if none
ab_module_refs() {
	cat /sys/module/ublk_drv/refcnt 2>/dev/null
}

ab_module_unload() {
	local i n

	[ -d /sys/module/ublk_drv ] || return 0
	for ((i = 0; i < 200; i++)); do
		n=$(ab_module_refs)
		[ "${n:-0}" = 0 ] && break
		sleep 0.05
	done
	if ! rmmod ublk_drv; then
		echo "ab: rmmod ublk_drv failed (refcnt $(ab_module_refs), devices: $(ls /dev/ublkc* 2>/dev/null | tr '\n' ' '))" >&2
		return 1
	fi
}

ab_module_use() {
	ab_module_unload || return 1
	insmod "$1" || { echo "ab: insmod $1 failed" >&2; return 1; }
	[ -c /dev/ublk-control ] ||
		{ echo "ab: $1 is loaded but there is no /dev/ublk-control" >&2; return 1; }
}
