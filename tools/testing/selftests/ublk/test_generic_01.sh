#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# ABI equality: our include/uapi/linux/ublk_cmd.h against Linux 6.1's as
# Debian ships it (sizes, offsets, field sizes and signedness, constant
# values, inline helpers, upstream numbers of the additions), and the
# check list itself covers every #define and struct field of 6.1's header.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test generic_01
_require_prog abi_check

HDR=/usr/include/linux/ublk_cmd.h
[ -r "$HDR" ] || _skip "$HDR missing (linux-libc-dev)"

./abi_check || _fail "ublk_cmd.h differs from Linux 6.1"

names=$(./abi_check -l) || _fail "abi_check -l"

# what the 6.1 header defines: every #define but the include guard, every
# struct (its sizeof) and every field of it (its offsetof), named as
# abi_check names its entries
wanted=$(awk '
	/^#[ \t]*define[ \t]+[A-Za-z_0-9]+/ {
		sub(/^#[ \t]*define[ \t]+/, "")
		sub(/[^A-Za-z_0-9].*$/, "")
		if ($0 != "USER_BLK_DRV_CMD_INC_H")
			print
		next
	}
	/^struct [a-z_0-9]+ \{/ { s = $2; print "sizeof(struct " s ")"; next }
	/^\};/ { s = ""; next }
	s && /^[ \t]*(__u|__s|struct )/ {
		sub(/[ \t]*\/\*.*$/, "")
		f = $NF; sub(/;.*/, "", f); sub(/\[.*/, "", f)
		print "offsetof(struct " s ", " f ")"
	}' "$HDR" | sort -u)
[ "$(grep -c '^UBLK' <<< "$wanted")" -ge 40 ] || _fail "could not parse $HDR"
grep -q '^offsetof(struct ublk_params, discard)$' <<< "$wanted" ||
	_fail "could not parse the structs of $HDR"

missing=$(comm -23 <(echo "$wanted") <(sort -u <<< "$names"))
if [ -n "$missing" ]; then
	echo "defined by $HDR but not checked:"
	echo "$missing"
	missing=1
else
	missing=0
fi

[ "$missing" = 0 ] || _fail "abi_list.h misses definitions of the 6.1 header"
_log "$(wc -l <<< "$names") entries; all $(wc -l <<< "$wanted") definitions of $HDR covered"
exit 0
