# SPDX-License-Identifier: GPL-2.0
#
# TAP output of the ship checks (deb-check.sh, series.sh), sourced:
#	tap STATUS TEXT	"ok N - TEXT" when STATUS is 0, else "not ok N - TEXT"
#	tap_summary	the plan and the "N passed, N failed" line; returns
#			non-zero if an item failed

tap_n=0 tap_failed=0

tap() {
	tap_n=$((tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $tap_n - $2"
	else
		echo "not ok $tap_n - $2"
		tap_failed=$((tap_failed + 1))
	fi
}

tap_summary() {
	echo "1..$tap_n"
	echo "$((tap_n - tap_failed)) passed, $tap_failed failed"
	[ "$tap_failed" -eq 0 ]
}
