// SPDX-License-Identifier: GPL-2.0
/*
 * null target: every request succeeds at once; READ returns whatever the
 * tag's buffer holds, WRITE data is dropped.
 */
#include "kublk.h"

static int null_init(struct kublk_dev *dev)
{
	if (!dev->cfg.size)
		dev->cfg.size = KUBLK_DEF_NULL_SIZE;
	return 0;
}

static void null_deinit(struct kublk_dev *dev)
{
	(void)dev;
}

static int null_queue_io(struct kublk_queue *q, int tag)
{
	const struct ublksrv_io_desc *iod = &q->iods[tag];
	int res;

	switch (ublksrv_get_op(iod)) {
	case UBLK_IO_OP_READ:
	case UBLK_IO_OP_WRITE:
		res = iod->nr_sectors << 9;
		break;
	case UBLK_IO_OP_FLUSH:
	case UBLK_IO_OP_DISCARD:
	case UBLK_IO_OP_WRITE_ZEROES:
		res = 0;
		break;
	default:
		return -EOPNOTSUPP;
	}
	ublk_complete_io(q, tag, res);
	return 0;
}

const struct ublk_tgt_ops null_tgt_ops = {
	.name		= "null",
	.init		= null_init,
	.deinit		= null_deinit,
	.queue_io	= null_queue_io,
};
