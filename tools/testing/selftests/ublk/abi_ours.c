// SPDX-License-Identifier: GPL-2.0
/*
 * The ABI table of the project's own <linux/ublk_cmd.h>: built with
 * -I../../../../include/uapi first on the include path.
 */
#include <errno.h>
#include <linux/ublk_cmd.h>

/* make sure the include path picked our header, not the system's */
#ifndef UBLK_CMD_GET_FEATURES
#error "build with -I include/uapi first: this is the project's side"
#endif

#define ABI_TABLE_FN abi_ours_table
#include "abi_list.h"

/*
 * Beyond 6.1 our header carries numbers later upstream kernels assigned.
 * The expected values are written out as literals (computed by hand from
 * _IOC(dir, 'u', nr, size): _IOR is dir 2, _IOWR dir 3; sizeof(struct
 * ublksrv_ctrl_cmd) is 0x20, sizeof(struct ublksrv_io_cmd) is 0x10), so a
 * wrong direction or struct in our macros shows up here.
 */
#define FACT(c, v)	{ #c, (unsigned long long)(c), (v) },

const struct abi_fact *abi_ours_facts(unsigned int *nr)
{
	static const struct abi_fact facts[] = {
		FACT(UBLK_CMD_GET_FEATURES, 0x13)
		FACT(UBLK_F_CMD_IOCTL_ENCODE, 1ULL << 6)
		FACT(UBLK_FEATURES_LEN, 8)
		FACT(UBLK_U_CMD_GET_QUEUE_AFFINITY, 0x80207501)
		FACT(UBLK_U_CMD_GET_DEV_INFO, 0x80207502)
		FACT(UBLK_U_CMD_ADD_DEV, 0xc0207504)
		FACT(UBLK_U_CMD_DEL_DEV, 0xc0207505)
		FACT(UBLK_U_CMD_START_DEV, 0xc0207506)
		FACT(UBLK_U_CMD_STOP_DEV, 0xc0207507)
		FACT(UBLK_U_CMD_SET_PARAMS, 0xc0207508)
		FACT(UBLK_U_CMD_GET_PARAMS, 0x80207509)
		FACT(UBLK_U_CMD_START_USER_RECOVERY, 0xc0207510)
		FACT(UBLK_U_CMD_END_USER_RECOVERY, 0xc0207511)
		FACT(UBLK_CMD_GET_DEV_INFO2, 0x12)
		FACT(UBLK_U_CMD_GET_DEV_INFO2, 0x80207512)
		FACT(UBLK_U_CMD_GET_FEATURES, 0x80207513)
		FACT(UBLK_U_CMD_QUIESCE_DEV, 0xc0207516)
		FACT(UBLK_F_USER_RECOVERY_FAIL_IO, 1ULL << 9)
		FACT(UBLK_F_QUIESCE, 1ULL << 12)
		FACT(UBLK_S_DEV_FAIL_IO, 3)
		FACT(UBLK_U_IO_FETCH_REQ, 0xc0107520)
		FACT(UBLK_U_IO_COMMIT_AND_FETCH_REQ, 0xc0107521)
		FACT(UBLK_U_IO_NEED_GET_DATA, 0xc0107522)
	};

	*nr = ARRAY_SIZE(facts);
	return facts;
}
