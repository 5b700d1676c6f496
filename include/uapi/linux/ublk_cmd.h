/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
#ifndef USER_BLK_DRV_CMD_INC_H
#define USER_BLK_DRV_CMD_INC_H

#include <linux/types.h>
#include <linux/ioctl.h>

/*
 * ublk: a block device served by a userspace process.
 *
 * The server drives two kinds of file, both through IORING_OP_URING_CMD:
 *
 *  /dev/ublk-control	control commands (UBLK_CMD_*), payload in the
 *			80-byte command area of a 128-byte SQE
 *			(IORING_SETUP_SQE128), laid out as struct
 *			ublksrv_ctrl_cmd;
 *  /dev/ublkcN		I/O commands (UBLK_IO_*), payload laid out as
 *			struct ublksrv_io_cmd, plus a read-only mmap of
 *			the per-queue array of struct ublksrv_io_desc.
 *
 * Every value below that Linux 6.1 also defines has the 6.1 value; the
 * additions carry the numbers later upstream kernels gave them.
 */

/* Control commands: sqe->cmd_op on /dev/ublk-control. */
#define	UBLK_CMD_GET_QUEUE_AFFINITY	0x01
#define	UBLK_CMD_GET_DEV_INFO	0x02
#define	UBLK_CMD_ADD_DEV		0x04
#define	UBLK_CMD_DEL_DEV		0x05
#define	UBLK_CMD_START_DEV	0x06
#define	UBLK_CMD_STOP_DEV	0x07
#define	UBLK_CMD_SET_PARAMS	0x08
#define	UBLK_CMD_GET_PARAMS	0x09
#define	UBLK_CMD_START_USER_RECOVERY	0x10
#define	UBLK_CMD_END_USER_RECOVERY	0x11
/* later than 6.1: GET_DEV_INFO, as servers of unprivileged devices ask it */
#define	UBLK_CMD_GET_DEV_INFO2	0x12
/* later than 6.1: the flags this driver supports, as a __u64 at addr */
#define	UBLK_CMD_GET_FEATURES	0x13
/*
 * later than 6.1 (6.16), only with UBLK_F_QUIESCE: a planned handover.
 * New requests wait, the living server finishes what it holds, its
 * FETCH commands are answered with UBLK_IO_RES_ABORT, and the device is
 * QUIESCED once the server has released /dev/ublkcN. Upstream defines
 * the ioctl encoding only; the driver accepts the bare number as well.
 */
#define	UBLK_CMD_QUIESCE_DEV	0x16

/*
 * The same commands encoded ioctl-style (later than 6.1; enabled by
 * nothing, the driver accepts both encodings).
 */
#define UBLK_U_CMD_GET_QUEUE_AFFINITY	\
	_IOR('u', UBLK_CMD_GET_QUEUE_AFFINITY, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_GET_DEV_INFO		\
	_IOR('u', UBLK_CMD_GET_DEV_INFO, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_ADD_DEV		\
	_IOWR('u', UBLK_CMD_ADD_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_DEL_DEV		\
	_IOWR('u', UBLK_CMD_DEL_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_START_DEV		\
	_IOWR('u', UBLK_CMD_START_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_STOP_DEV		\
	_IOWR('u', UBLK_CMD_STOP_DEV, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_SET_PARAMS		\
	_IOWR('u', UBLK_CMD_SET_PARAMS, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_GET_PARAMS		\
	_IOR('u', UBLK_CMD_GET_PARAMS, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_START_USER_RECOVERY	\
	_IOWR('u', UBLK_CMD_START_USER_RECOVERY, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_END_USER_RECOVERY	\
	_IOWR('u', UBLK_CMD_END_USER_RECOVERY, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_GET_DEV_INFO2	\
	_IOR('u', UBLK_CMD_GET_DEV_INFO2, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_GET_FEATURES		\
	_IOR('u', UBLK_CMD_GET_FEATURES, struct ublksrv_ctrl_cmd)
#define UBLK_U_CMD_QUIESCE_DEV		\
	_IOWR('u', UBLK_CMD_QUIESCE_DEV, struct ublksrv_ctrl_cmd)

/* length of the GET_FEATURES answer */
#define UBLK_FEATURES_LEN	8

/*
 * I/O commands: sqe->cmd_op on /dev/ublkcN, one per (queue, tag).
 *
 * FETCH_REQ: hand the driver a buffer and wait for a request on this tag.
 *	Sent once per tag when a server starts (or recovers) a device. The
 *	CQE arrives when a request is ready: its descriptor is then in the
 *	mmapped array at index tag.
 *
 * COMMIT_AND_FETCH_REQ: report the result of the request on this tag
 *	and, in the same command, wait for the next one.
 *
 * NEED_GET_DATA: only with UBLK_F_NEED_GET_DATA. A WRITE is first
 *	announced with result UBLK_IO_RES_NEED_GET_DATA and no data; the
 *	server answers with this command carrying the buffer, and its CQE
 *	arrives once the data has been copied there.
 */
#define	UBLK_IO_FETCH_REQ		0x20
#define	UBLK_IO_COMMIT_AND_FETCH_REQ	0x21
#define	UBLK_IO_NEED_GET_DATA	0x22

#define	UBLK_U_IO_FETCH_REQ		\
	_IOWR('u', UBLK_IO_FETCH_REQ, struct ublksrv_io_cmd)
#define	UBLK_U_IO_COMMIT_AND_FETCH_REQ	\
	_IOWR('u', UBLK_IO_COMMIT_AND_FETCH_REQ, struct ublksrv_io_cmd)
#define	UBLK_U_IO_NEED_GET_DATA		\
	_IOWR('u', UBLK_IO_NEED_GET_DATA, struct ublksrv_io_cmd)

/* CQE result of an I/O command; only ABORT means "do not fetch again" */
#define UBLK_IO_RES_OK			0
#define UBLK_IO_RES_NEED_GET_DATA	1
#define UBLK_IO_RES_ABORT		(-ENODEV)

/* mmap offsets on /dev/ublkcN */
#define UBLKSRV_CMD_BUF_OFFSET	0
#define UBLKSRV_IO_BUF_OFFSET	0x80000000

/* a tag has 12 bits: at most 4096 requests in flight per queue */
#define UBLK_MAX_QUEUE_DEPTH	4096

/* Device flags, ublksrv_ctrl_dev_info.flags */

/* reserved, never implemented: the driver clears it */
#define UBLK_F_SUPPORT_ZERO_COPY	(1ULL << 0)

/*
 * Hand requests to the server through io_uring_cmd_complete_in_task()
 * rather than the driver's own task work.
 */
#define UBLK_F_URING_CMD_COMP_IN_TASK	(1ULL << 1)

/*
 * A WRITE reaches the server without data first (see NEED_GET_DATA), so
 * the server can pick the buffer once it knows the size.
 */
#define UBLK_F_NEED_GET_DATA (1UL << 2)

/*
 * When the server dies the block device stays: requests wait until a new
 * server has taken over with START_USER_RECOVERY and END_USER_RECOVERY.
 * Requests the dead server had received fail with an I/O error.
 */
#define UBLK_F_USER_RECOVERY	(1UL << 3)

/*
 * Only with UBLK_F_USER_RECOVERY: the requests the dead server had
 * received are handed to the new server as well, so a write may be done
 * twice.
 */
#define UBLK_F_USER_RECOVERY_REISSUE	(1UL << 4)

/*
 * later than 6.1: commands may be ioctl-encoded. Both encodings are always
 * accepted; ADD_DEV sets the bit in the flags it returns, which tells
 * newer servers to use the ioctl encoding.
 */
#define UBLK_F_CMD_IOCTL_ENCODE	(1UL << 6)

/*
 * later than 6.1 (6.13), only with UBLK_F_USER_RECOVERY and without
 * REISSUE: while no server serves the device it is in UBLK_S_DEV_FAIL_IO
 * and every request fails at once instead of waiting; a new server
 * brings it LIVE with START/END_USER_RECOVERY.
 */
#define UBLK_F_USER_RECOVERY_FAIL_IO	(1ULL << 9)

/*
 * later than 6.1 (6.16), only with UBLK_F_USER_RECOVERY: the device
 * accepts UBLK_U_CMD_QUIESCE_DEV, a handover to a new server without a
 * crash.
 */
#define UBLK_F_QUIESCE		(1ULL << 12)

/* Device states, ublksrv_ctrl_dev_info.state */
#define UBLK_S_DEV_DEAD	0
#define UBLK_S_DEV_LIVE	1
#define UBLK_S_DEV_QUIESCED	2
/* later than 6.1 (6.13): no server, and requests fail at once */
#define UBLK_S_DEV_FAIL_IO	3

/* the control command, in sqe->cmd */
struct ublksrv_ctrl_cmd {
	/* the device the command is for */
	__u32	dev_id;

	/* the queue, or -1 when the command is not about a queue */
	__u16	queue_id;
	/* length of the buffer at addr, in or out */
	__u16	len;
	__u64	addr;

	/* inline arguments */
	__u64	data[2];
};

struct ublksrv_ctrl_dev_info {
	__u16	nr_hw_queues;
	__u16	queue_depth;
	__u16	state;
	__u16	pad0;

	__u32	max_io_buf_bytes;
	__u32	dev_id;

	__s32	ublksrv_pid;
	__u32	pad1;

	__u64	flags;

	/* the server's own, stored and returned untouched by the driver */
	__u64	ublksrv_flags;

	__u64	reserved0;
	__u64	reserved1;
	__u64   reserved2;
};

#define		UBLK_IO_OP_READ		0
#define		UBLK_IO_OP_WRITE		1
#define		UBLK_IO_OP_FLUSH		2
#define		UBLK_IO_OP_DISCARD	3
#define		UBLK_IO_OP_WRITE_SAME	4
#define		UBLK_IO_OP_WRITE_ZEROES	5

#define		UBLK_IO_F_FAILFAST_DEV		(1U << 8)
#define		UBLK_IO_F_FAILFAST_TRANSPORT	(1U << 9)
#define		UBLK_IO_F_FAILFAST_DRIVER	(1U << 10)
#define		UBLK_IO_F_META			(1U << 11)
#define		UBLK_IO_F_FUA			(1U << 13)
#define		UBLK_IO_F_NOUNMAP		(1U << 15)
#define		UBLK_IO_F_SWAP			(1U << 16)

/*
 * One request, written by the driver into the mmapped array at its tag
 * before the CQE of the tag's command is posted; read by the server.
 */
struct ublksrv_io_desc {
	/* op: bit 0-7, flags: bit 8-31 */
	__u32		op_flags;

	__u32		nr_sectors;

	/* first sector, in 512-byte units */
	__u64		start_sector;

	/* the server's buffer for this tag, as the server gave it */
	__u64		addr;
};

static __inline__ __u8 ublksrv_get_op(const struct ublksrv_io_desc *iod)
{
	return iod->op_flags & 0xff;
}

static __inline__ __u32 ublksrv_get_flags(const struct ublksrv_io_desc *iod)
{
	return iod->op_flags >> 8;
}

/* the I/O command, in sqe->cmd */
struct ublksrv_io_cmd {
	__u16	q_id;

	__u16	tag;

	/* COMMIT_AND_FETCH_REQ: bytes done, or a negative errno */
	__s32	result;

	/* the server's buffer for this tag (FETCH and NEED_GET_DATA) */
	__u64	addr;
};

struct ublk_param_basic {
#define UBLK_ATTR_READ_ONLY            (1 << 0)
#define UBLK_ATTR_ROTATIONAL           (1 << 1)
#define UBLK_ATTR_VOLATILE_CACHE       (1 << 2)
#define UBLK_ATTR_FUA                  (1 << 3)
	__u32	attrs;
	__u8	logical_bs_shift;
	__u8	physical_bs_shift;
	__u8	io_opt_shift;
	__u8	io_min_shift;

	__u32	max_sectors;
	__u32	chunk_sectors;

	__u64   dev_sectors;
	__u64   virt_boundary_mask;
};

struct ublk_param_discard {
	__u32	discard_alignment;

	__u32	discard_granularity;
	__u32	max_discard_sectors;

	__u32	max_write_zeroes_sectors;
	__u16	max_discard_segments;
	__u16	reserved0;
};

struct ublk_params {
	/*
	 * Length of the structure as the sender knows it. For SET_PARAMS
	 * and GET_PARAMS the server sets it; the driver answers with the
	 * length it filled in.
	 */
	__u32	len;
#define UBLK_PARAM_TYPE_BASIC           (1 << 0)
#define UBLK_PARAM_TYPE_DISCARD         (1 << 1)
	__u32	types;			/* which of the parts below are set */

	struct ublk_param_basic		basic;
	struct ublk_param_discard	discard;
};

#endif
