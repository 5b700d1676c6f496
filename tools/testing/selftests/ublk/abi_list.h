/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Everything Linux 6.1's <linux/ublk_cmd.h> defines, as an X-macro list.
 *
 * abi_ours.c expands it against the project's header and abi_sys.c against
 * the one Debian ships; abi_check.c compares the two tables entry by entry.
 * A definition missing here is a definition the test does not prove, so the
 * list follows the 6.1 header top to bottom. test_generic_01.sh cross-checks
 * the list against the 6.1 header's #defines and struct fields.
 *
 * Each entry expands to one or more {name, value} rows:
 *	ABI_STRUCT(s)		sizeof(struct s)
 *	ABI_FIELD(s, f)		offsetof(struct s, f), sizeof of the field
 *	ABI_SFIELD(s, f)	the same plus the signedness of a scalar field
 *	ABI_CONST(c)		value, sizeof and signedness of a #define
 *	ABI_EXPR(name, e)	the value of an expression (inline helpers)
 *
 * The includer includes one ublk_cmd.h (and <errno.h>, for
 * UBLK_IO_RES_ABORT) first, defines ABI_TABLE_FN to the name of its table
 * function, then includes this file.
 */
#ifndef UBLK_ABI_LIST_H
#define UBLK_ABI_LIST_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct abi_entry {
	const char *name;
	unsigned long long value;
};

/* a literal fact about our header: what it says and what upstream says */
struct abi_fact {
	const char *name;
	unsigned long long got;
	unsigned long long want;
};

const struct abi_entry *abi_ours_table(unsigned int *nr);
const struct abi_entry *abi_sys_table(unsigned int *nr);
const struct abi_fact *abi_ours_facts(unsigned int *nr);

/* inputs for the inline helpers; each has a different op and flag part */
#define ABI_SAMPLE0	0x00000000u
#define ABI_SAMPLE1	0xdeadbe05u
#define ABI_SAMPLE2	0x0001a003u
#define ABI_SAMPLE3	0xffffffffu

#define ABI_GET_OP(v)							\
	ublksrv_get_op(&(struct ublksrv_io_desc){ .op_flags = (v) })
#define ABI_GET_FLAGS(v)						\
	ublksrv_get_flags(&(struct ublksrv_io_desc){ .op_flags = (v) })

/*
 * Is the type signed? (integer constants and scalar fields, through
 * __typeof__; written with '>' so that -Wtype-limits has nothing to say
 * about unsigned types)
 */
#define ABI_IS_SIGNED(type)	(!((type)(-1) > (type)0))

/*
 * Each entry macro below is one initializer of a struct abi_group: up to
 * ABI_GROUP_ROWS {name, value} rows, flattened into the table in order.
 * The field rows find a member through ABI_MEMBER(), an lvalue in a
 * static object large and aligned enough for every ublk struct, so that
 * one expression gives the offset (its address), the size and the
 * signedness of the field.
 */
#define ABI_GROUP_ROWS		3

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif

struct abi_group {
	struct abi_entry row[ABI_GROUP_ROWS];
};

#define ABI_MEMBER(s, f)	((*(struct s const *)&abi_obj).f)
#define ABI_OFFSET(m)							\
	((unsigned long long)((const char *)&(m) - (const char *)&abi_obj))

#define ABI_STRUCT(s)							\
	{ { { "sizeof(struct " #s ")", sizeof(struct s) } } },
#define __ABI_FIELD(oname, sname, m)					\
	{ { { oname, ABI_OFFSET(m) }, { sname, sizeof(m) } } },
#define ABI_FIELD(s, f)							\
	__ABI_FIELD("offsetof(struct " #s ", " #f ")",			\
		    "sizeof(struct " #s "." #f ")", ABI_MEMBER(s, f))
#define __ABI_SFIELD(oname, sname, gname, m)				\
	{ { { oname, ABI_OFFSET(m) }, { sname, sizeof(m) },		\
	    { .value = ABI_IS_SIGNED(__typeof__(m)), .name = gname } } },
#define ABI_SFIELD(s, f)						\
	__ABI_SFIELD("offsetof(struct " #s ", " #f ")",			\
		     "sizeof(struct " #s "." #f ")",			\
		     "signed(struct " #s "." #f ")", ABI_MEMBER(s, f))
#define ABI_CONST(c)							\
	{ { { #c, (unsigned long long)(c) }, { "sizeof(" #c ")", sizeof(c) }, \
	    { .value = ABI_IS_SIGNED(__typeof__(c)), .name = "signed(" #c ")" } } },
#define ABI_EXPR(name, e)						\
	{ { { name, (unsigned long long)(e) } } },

#endif /* UBLK_ABI_LIST_H */

/*
 * With ABI_TABLE_FN defined, defines `const struct abi_entry
 * *ABI_TABLE_FN(unsigned int *nr)', returning the table built from
 * whichever ublk_cmd.h the including file pulled in. The table is built
 * at run time because the helper entries call inline functions.
 */
#ifdef ABI_TABLE_FN
static const union {
	max_align_t align;
	char bytes[4096];
} abi_obj;

const struct abi_entry *ABI_TABLE_FN(unsigned int *nr)
{
	const struct abi_group tbl[] = {
		/* control commands */
		ABI_CONST(UBLK_CMD_GET_QUEUE_AFFINITY)
		ABI_CONST(UBLK_CMD_GET_DEV_INFO)
		ABI_CONST(UBLK_CMD_ADD_DEV)
		ABI_CONST(UBLK_CMD_DEL_DEV)
		ABI_CONST(UBLK_CMD_START_DEV)
		ABI_CONST(UBLK_CMD_STOP_DEV)
		ABI_CONST(UBLK_CMD_SET_PARAMS)
		ABI_CONST(UBLK_CMD_GET_PARAMS)
		ABI_CONST(UBLK_CMD_START_USER_RECOVERY)
		ABI_CONST(UBLK_CMD_END_USER_RECOVERY)
		/* I/O commands and their results */
		ABI_CONST(UBLK_IO_FETCH_REQ)
		ABI_CONST(UBLK_IO_COMMIT_AND_FETCH_REQ)
		ABI_CONST(UBLK_IO_NEED_GET_DATA)
		ABI_CONST(UBLK_IO_RES_OK)
		ABI_CONST(UBLK_IO_RES_NEED_GET_DATA)
		ABI_CONST(UBLK_IO_RES_ABORT)
		/* mmap offsets, depth limit */
		ABI_CONST(UBLKSRV_CMD_BUF_OFFSET)
		ABI_CONST(UBLKSRV_IO_BUF_OFFSET)
		ABI_CONST(UBLK_MAX_QUEUE_DEPTH)
		/* device flags */
		ABI_CONST(UBLK_F_SUPPORT_ZERO_COPY)
		ABI_CONST(UBLK_F_URING_CMD_COMP_IN_TASK)
		ABI_CONST(UBLK_F_NEED_GET_DATA)
		ABI_CONST(UBLK_F_USER_RECOVERY)
		ABI_CONST(UBLK_F_USER_RECOVERY_REISSUE)
		/* device states */
		ABI_CONST(UBLK_S_DEV_DEAD)
		ABI_CONST(UBLK_S_DEV_LIVE)
		ABI_CONST(UBLK_S_DEV_QUIESCED)
		/* struct ublksrv_ctrl_cmd */
		ABI_STRUCT(ublksrv_ctrl_cmd)
		ABI_SFIELD(ublksrv_ctrl_cmd, dev_id)
		ABI_SFIELD(ublksrv_ctrl_cmd, queue_id)
		ABI_SFIELD(ublksrv_ctrl_cmd, len)
		ABI_SFIELD(ublksrv_ctrl_cmd, addr)
		ABI_FIELD(ublksrv_ctrl_cmd, data)
		ABI_SFIELD(ublksrv_ctrl_cmd, data[0])
		ABI_SFIELD(ublksrv_ctrl_cmd, data[1])
		/* struct ublksrv_ctrl_dev_info */
		ABI_STRUCT(ublksrv_ctrl_dev_info)
		ABI_SFIELD(ublksrv_ctrl_dev_info, nr_hw_queues)
		ABI_SFIELD(ublksrv_ctrl_dev_info, queue_depth)
		ABI_SFIELD(ublksrv_ctrl_dev_info, state)
		ABI_SFIELD(ublksrv_ctrl_dev_info, pad0)
		ABI_SFIELD(ublksrv_ctrl_dev_info, max_io_buf_bytes)
		ABI_SFIELD(ublksrv_ctrl_dev_info, dev_id)
		ABI_SFIELD(ublksrv_ctrl_dev_info, ublksrv_pid)
		ABI_SFIELD(ublksrv_ctrl_dev_info, pad1)
		ABI_SFIELD(ublksrv_ctrl_dev_info, flags)
		ABI_SFIELD(ublksrv_ctrl_dev_info, ublksrv_flags)
		ABI_SFIELD(ublksrv_ctrl_dev_info, reserved0)
		ABI_SFIELD(ublksrv_ctrl_dev_info, reserved1)
		ABI_SFIELD(ublksrv_ctrl_dev_info, reserved2)
		/* I/O opcodes and request flags */
		ABI_CONST(UBLK_IO_OP_READ)
		ABI_CONST(UBLK_IO_OP_WRITE)
		ABI_CONST(UBLK_IO_OP_FLUSH)
		ABI_CONST(UBLK_IO_OP_DISCARD)
		ABI_CONST(UBLK_IO_OP_WRITE_SAME)
		ABI_CONST(UBLK_IO_OP_WRITE_ZEROES)
		ABI_CONST(UBLK_IO_F_FAILFAST_DEV)
		ABI_CONST(UBLK_IO_F_FAILFAST_TRANSPORT)
		ABI_CONST(UBLK_IO_F_FAILFAST_DRIVER)
		ABI_CONST(UBLK_IO_F_META)
		ABI_CONST(UBLK_IO_F_FUA)
		ABI_CONST(UBLK_IO_F_NOUNMAP)
		ABI_CONST(UBLK_IO_F_SWAP)
		/* struct ublksrv_io_desc and its helpers */
		ABI_STRUCT(ublksrv_io_desc)
		ABI_SFIELD(ublksrv_io_desc, op_flags)
		ABI_SFIELD(ublksrv_io_desc, nr_sectors)
		ABI_SFIELD(ublksrv_io_desc, start_sector)
		ABI_SFIELD(ublksrv_io_desc, addr)
		ABI_EXPR("sizeof(ublksrv_get_op())", sizeof(ABI_GET_OP(0)))
		ABI_EXPR("sizeof(ublksrv_get_flags())", sizeof(ABI_GET_FLAGS(0)))
		ABI_EXPR("ublksrv_get_op(0x00000000)", ABI_GET_OP(ABI_SAMPLE0))
		ABI_EXPR("ublksrv_get_op(0xdeadbe05)", ABI_GET_OP(ABI_SAMPLE1))
		ABI_EXPR("ublksrv_get_op(0x0001a003)", ABI_GET_OP(ABI_SAMPLE2))
		ABI_EXPR("ublksrv_get_op(0xffffffff)", ABI_GET_OP(ABI_SAMPLE3))
		ABI_EXPR("ublksrv_get_flags(0x00000000)", ABI_GET_FLAGS(ABI_SAMPLE0))
		ABI_EXPR("ublksrv_get_flags(0xdeadbe05)", ABI_GET_FLAGS(ABI_SAMPLE1))
		ABI_EXPR("ublksrv_get_flags(0x0001a003)", ABI_GET_FLAGS(ABI_SAMPLE2))
		ABI_EXPR("ublksrv_get_flags(0xffffffff)", ABI_GET_FLAGS(ABI_SAMPLE3))
		/* struct ublksrv_io_cmd */
		ABI_STRUCT(ublksrv_io_cmd)
		ABI_SFIELD(ublksrv_io_cmd, q_id)
		ABI_SFIELD(ublksrv_io_cmd, tag)
		ABI_SFIELD(ublksrv_io_cmd, result)
		ABI_SFIELD(ublksrv_io_cmd, addr)
		/* struct ublk_param_basic and its attributes */
		ABI_CONST(UBLK_ATTR_READ_ONLY)
		ABI_CONST(UBLK_ATTR_ROTATIONAL)
		ABI_CONST(UBLK_ATTR_VOLATILE_CACHE)
		ABI_CONST(UBLK_ATTR_FUA)
		ABI_STRUCT(ublk_param_basic)
		ABI_SFIELD(ublk_param_basic, attrs)
		ABI_SFIELD(ublk_param_basic, logical_bs_shift)
		ABI_SFIELD(ublk_param_basic, physical_bs_shift)
		ABI_SFIELD(ublk_param_basic, io_opt_shift)
		ABI_SFIELD(ublk_param_basic, io_min_shift)
		ABI_SFIELD(ublk_param_basic, max_sectors)
		ABI_SFIELD(ublk_param_basic, chunk_sectors)
		ABI_SFIELD(ublk_param_basic, dev_sectors)
		ABI_SFIELD(ublk_param_basic, virt_boundary_mask)
		/* struct ublk_param_discard */
		ABI_STRUCT(ublk_param_discard)
		ABI_SFIELD(ublk_param_discard, discard_alignment)
		ABI_SFIELD(ublk_param_discard, discard_granularity)
		ABI_SFIELD(ublk_param_discard, max_discard_sectors)
		ABI_SFIELD(ublk_param_discard, max_write_zeroes_sectors)
		ABI_SFIELD(ublk_param_discard, max_discard_segments)
		ABI_SFIELD(ublk_param_discard, reserved0)
		/* struct ublk_params */
		ABI_CONST(UBLK_PARAM_TYPE_BASIC)
		ABI_CONST(UBLK_PARAM_TYPE_DISCARD)
		ABI_STRUCT(ublk_params)
		ABI_SFIELD(ublk_params, len)
		ABI_SFIELD(ublk_params, types)
		ABI_FIELD(ublk_params, basic)
		ABI_FIELD(ublk_params, discard)
		ABI_SFIELD(ublk_params, basic.attrs)
		ABI_SFIELD(ublk_params, basic.logical_bs_shift)
		ABI_SFIELD(ublk_params, basic.physical_bs_shift)
		ABI_SFIELD(ublk_params, basic.io_opt_shift)
		ABI_SFIELD(ublk_params, basic.io_min_shift)
		ABI_SFIELD(ublk_params, basic.max_sectors)
		ABI_SFIELD(ublk_params, basic.chunk_sectors)
		ABI_SFIELD(ublk_params, basic.dev_sectors)
		ABI_SFIELD(ublk_params, basic.virt_boundary_mask)
		ABI_SFIELD(ublk_params, discard.discard_alignment)
		ABI_SFIELD(ublk_params, discard.discard_granularity)
		ABI_SFIELD(ublk_params, discard.max_discard_sectors)
		ABI_SFIELD(ublk_params, discard.max_write_zeroes_sectors)
		ABI_SFIELD(ublk_params, discard.max_discard_segments)
		ABI_SFIELD(ublk_params, discard.reserved0)
	};
	struct abi_entry *copy = malloc(sizeof(tbl));
	unsigned int g, r, n = 0;

	if (!copy)
		return NULL;
	for (g = 0; g < ARRAY_SIZE(tbl); g++)
		for (r = 0; r < ABI_GROUP_ROWS && tbl[g].row[r].name; r++)
			copy[n++] = tbl[g].row[r];
	*nr = n;
	return copy;
}
#endif /* ABI_TABLE_FN */
