// SPDX-License-Identifier: GPL-2.0
/*
 * The ABI table of Linux 6.1's <linux/ublk_cmd.h> as Debian 12 ships it in
 * linux-libc-dev: the oracle. Included by absolute path so that no -I can
 * substitute another header.
 */
#include <errno.h>
#include "/usr/include/linux/ublk_cmd.h"
#define ABI_TABLE_FN abi_sys_table
#include "abi_list.h"
