#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Features and ioctl encoding: GET_FEATURES (plain and UBLK_U_CMD_*) reports
# bits 1,2,3,4,6 and not 0; kublk features shows the recovery bits; the
# ioctl-encoded GET_DEV_INFO answers like the plain one, and a device set
# up and served with UBLK_U_* commands only works.

# shellcheck source=test_common.sh
. "$(dirname "$0")/test_common.sh"

_prep_test generic_04
_require_ublk
_require_prog ublk_errno

raw=$(./ublk_errno features) || _fail "GET_FEATURES"
_log "raw GET_FEATURES: $raw"
plain=${raw#plain=}
plain=${plain%% *}
enc=${raw##*encoded=}
[ "$plain" = "$enc" ] || _fail "plain ($plain) and encoded ($enc) GET_FEATURES differ"
for bit in 1 2 3 4 6; do
	(( (plain >> bit) & 1 )) || _fail "GET_FEATURES $plain lacks bit $bit"
done
(( plain & 1 )) && _fail "GET_FEATURES $plain advertises zero copy (bit 0)"

# kublk features: the mask in hex, or the feature names
out=$(_timeout 10 "$KUBLK" features) || _fail "kublk features"
_log "kublk features: $out"
hex=$(grep -o '0x[0-9a-fA-F]*' <<< "$out" | head -n 1)
if [ -n "$hex" ]; then
	[ $((hex)) -eq $((plain)) ] || _fail "kublk features says $hex, the driver $plain"
	(( (hex >> 3) & 1 )) || _fail "kublk features: no USER_RECOVERY bit"
	(( (hex >> 4) & 1 )) || _fail "kublk features: no USER_RECOVERY_REISSUE bit"
else
	grep -qi recovery <<< "$out" || _fail "kublk features does not show the recovery feature"
fi

# a device driven with plain commands, listed with both encodings
dev=$(_add_ublk_dev -t null -q 1) || _fail "kublk add"
info=$(./ublk_errno info "$dev") || _fail "GET_DEV_INFO $dev"
_log "$info"
grep -q "state=LIVE" <<< "$info" || _fail "device $dev not LIVE: $info"
plain_list=$(_timeout 10 "$KUBLK" list -n "$dev") || _fail "kublk list"
enc_list=$(_timeout 10 "$KUBLK" list -n "$dev" --ioctl-encode) ||
	_fail "kublk list --ioctl-encode"
[ "$plain_list" = "$enc_list" ] ||
	_fail "GET_DEV_INFO differs by encoding: '$plain_list' vs '$enc_list'"
_del_ublk_dev "$dev" || _fail "kublk del"

# a device driven entirely with UBLK_U_* encodings (control and I/O)
dev=$(_add_ublk_dev -t null -q 2 --ioctl-encode) || _fail "kublk add --ioctl-encode"
[ "$(_dev_state "$dev")" = LIVE ] || _fail "encoded device $dev not LIVE"
dd if="/dev/ublkb$dev" of=/dev/null bs=64k count=64 iflag=direct status=none ||
	_fail "read from the encoded device"
_timeout 60 "$KUBLK" del -n "$dev" --ioctl-encode || _fail "kublk del --ioctl-encode"
_wait_until 5000 _dev_gone "$dev" || _fail "device $dev still there after del"
exit 0
