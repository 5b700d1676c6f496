// SPDX-License-Identifier: GPL-2.0
/*
 * loop target: the device is a file (or a block device). Every request
 * becomes asynchronous I/O on the queue's own ring:
 *
 *	READ, WRITE	IORING_OP_READ/WRITE, the rest resubmitted when short;
 *			FUA writes carry RWF_DSYNC
 *	WRITE		to a regular file opened without O_DIRECT: pwritev2()
 *			right in the queue thread, see loop_write_sync()
 *	FLUSH		IORING_OP_FSYNC, IORING_FSYNC_DATASYNC
 *	DISCARD		fallocate PUNCH_HOLE | KEEP_SIZE
 *	WRITE_ZEROES	fallocate ZERO_RANGE | KEEP_SIZE with NOUNMAP,
 *			PUNCH_HOLE | KEEP_SIZE without; when the file system
 *			lacks that mode (-EOPNOTSUPP) the other one is tried
 */
#include "kublk.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#define LOOP_PUNCH	(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
#define LOOP_ZERO	(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)

/* the size of a regular file or block device; *regular tells which */
static __s64 loop_backing_size(int fd, bool *regular)
{
	struct stat st;
	__u64 bytes;

	if (fstat(fd, &st) < 0)
		return -errno;
	*regular = S_ISREG(st.st_mode);
	if (*regular)
		return st.st_size;
	if (!S_ISBLK(st.st_mode))
		return -EINVAL;
	if (ioctl(fd, BLKGETSIZE64, &bytes) < 0)
		return -errno;
	return bytes;
}

static void loop_set_params(struct kublk_dev *dev)
{
	struct ublk_params *p = &dev->params;
	__u32 gran = 4096;

	p->basic.attrs |= UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA;
	if (dev->cfg.no_discard)
		return;
	if (dev->cfg.lbs_shift > 12 && dev->cfg.lbs_shift < 32)
		gran = 1U << dev->cfg.lbs_shift;
	p->types |= UBLK_PARAM_TYPE_DISCARD;
	p->discard.discard_granularity = gran;
	p->discard.max_discard_sectors = UINT_MAX >> 9;
	p->discard.max_write_zeroes_sectors = UINT_MAX >> 9;
	p->discard.max_discard_segments = 1;
}

static int loop_check_size(struct kublk_dev *dev, __s64 bytes)
{
	struct kublk_cfg *cfg = &dev->cfg;

	if (bytes <= 0 || bytes % 512) {
		kublk_err("loop: %s: size %lld is not a positive multiple of 512",
			  cfg->file, (long long)bytes);
		return -EINVAL;
	}
	if (cfg->size > (__u64)bytes) {
		kublk_err("loop: %s: device size %llu exceeds file size %lld",
			  cfg->file, (unsigned long long)cfg->size,
			  (long long)bytes);
		return -EINVAL;
	}
	if (!cfg->size)
		cfg->size = bytes;
	return 0;
}

static int loop_init(struct kublk_dev *dev)
{
	struct kublk_cfg *cfg = &dev->cfg;
	char abs[PATH_MAX];
	int flags, fd, ret;
	bool regular = false;
	__s64 bytes;

	if (!cfg->file[0]) {
		kublk_err("loop: a backing file is required (-f FILE)");
		return -EINVAL;
	}
	if (realpath(cfg->file, abs))
		snprintf(cfg->file, sizeof(cfg->file), "%s", abs);

	flags = (cfg->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	if (cfg->direct)
		flags |= O_DIRECT;
	fd = open(cfg->file, flags);
	if (fd < 0) {
		ret = -errno;
		kublk_err("loop: open %s: %s", cfg->file, strerror(-ret));
		return ret;
	}
	bytes = loop_backing_size(fd, &regular);
	if (bytes < 0) {
		kublk_err("loop: size of %s: %s", cfg->file, strerror(-bytes));
		close(fd);
		return bytes;
	}
	ret = loop_check_size(dev, bytes);
	if (ret) {
		close(fd);
		return ret;
	}
	dev->tgt_fd = fd;
	dev->tgt_sync_writes = !cfg->direct && regular;
	loop_set_params(dev);
	return 0;
}

static void loop_deinit(struct kublk_dev *dev)
{
	if (dev->tgt_fd >= 0)
		close(dev->tgt_fd);
	dev->tgt_fd = -1;
}

/* use the file as fixed file 0 of the queue's ring when the kernel lets us */
static int loop_queue_init(struct kublk_queue *q)
{
	int fd = q->dev->tgt_fd;

	if (!io_uring_register_files(&q->ring, &fd, 1)) {
		q->tgt_fd = 0;
		q->tgt_sqe_flags = IOSQE_FIXED_FILE;
	} else {
		q->tgt_fd = fd;
		q->tgt_sqe_flags = 0;
	}
	return 0;
}

static int loop_zero_mode(const struct ublksrv_io_desc *iod,
			  const struct ublk_io *io)
{
	bool nounmap = ublksrv_get_flags(iod) & (UBLK_IO_F_NOUNMAP >> 8);

	/* step 1 is the fallback after -EOPNOTSUPP */
	if (io->tgt_step)
		nounmap = !nounmap;
	return nounmap ? LOOP_ZERO : LOOP_PUNCH;
}

static void loop_prep_rw(struct kublk_queue *q, struct io_uring_sqe *sqe,
			 int tag, unsigned int op)
{
	const struct ublksrv_io_desc *iod = &q->iods[tag];
	struct ublk_io *io = &q->ios[tag];
	__u64 off = (iod->start_sector << 9) + io->tgt_done;
	unsigned int len = (iod->nr_sectors << 9) - io->tgt_done;
	char *buf = io->buf + io->tgt_done;

	if (op == UBLK_IO_OP_READ) {
		io_uring_prep_read(sqe, q->tgt_fd, buf, len, off);
		return;
	}
	io_uring_prep_write(sqe, q->tgt_fd, buf, len, off);
	if (ublksrv_get_flags(iod) & (UBLK_IO_F_FUA >> 8))
		sqe->rw_flags = RWF_DSYNC;
}

/* queue the (rest of the) target I/O of this tag */
static void loop_issue(struct kublk_queue *q, int tag)
{
	const struct ublksrv_io_desc *iod = &q->iods[tag];
	struct io_uring_sqe *sqe = kublk_get_sqe(q);
	unsigned int op = ublksrv_get_op(iod);
	off_t off = iod->start_sector << 9;
	off_t len = (off_t)iod->nr_sectors << 9;

	switch (op) {
	case UBLK_IO_OP_READ:
	case UBLK_IO_OP_WRITE:
		loop_prep_rw(q, sqe, tag, op);
		break;
	case UBLK_IO_OP_FLUSH:
		io_uring_prep_fsync(sqe, q->tgt_fd, IORING_FSYNC_DATASYNC);
		break;
	case UBLK_IO_OP_DISCARD:
		io_uring_prep_fallocate(sqe, q->tgt_fd, LOOP_PUNCH, off, len);
		break;
	default: /* UBLK_IO_OP_WRITE_ZEROES, checked by loop_queue_io() */
		io_uring_prep_fallocate(sqe, q->tgt_fd,
					loop_zero_mode(iod, &q->ios[tag]),
					off, len);
		break;
	}
	kublk_tgt_sqe_issued(q, sqe, tag, op, 0);
}

/*
 * A buffered write to a regular file is only a copy into the page cache,
 * but io_uring of 6.1 never tries it inline: without FMODE_BUF_WASYNC
 * (tmpfs and ext4 lack it) every such write goes to an io-wq worker, two
 * context switches and a cross-CPU wake-up per write, which cost more than
 * the write itself. Do it here, as the kernel loop driver's worker does;
 * like that worker, the queue waits while the page cache throttles.
 */
static int loop_write_sync(struct kublk_queue *q, int tag)
{
	const struct ublksrv_io_desc *iod = &q->iods[tag];
	struct ublk_io *io = &q->ios[tag];
	unsigned int total = iod->nr_sectors << 9;
	int flags = 0;
	struct iovec iov;
	ssize_t ret;

	if (ublksrv_get_flags(iod) & (UBLK_IO_F_FUA >> 8))
		flags = RWF_DSYNC;
	while (io->tgt_done < total) {
		iov.iov_base = io->buf + io->tgt_done;
		iov.iov_len = total - io->tgt_done;
		ret = pwritev2(q->dev->tgt_fd, &iov, 1,
			       (iod->start_sector << 9) + io->tgt_done, flags);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			return ret < 0 ? -errno : -EIO;
		io->tgt_done += ret;
	}
	return total;
}

static int loop_queue_io(struct kublk_queue *q, int tag)
{
	const struct ublksrv_io_desc *iod = &q->iods[tag];
	struct ublk_io *io = &q->ios[tag];
	__u64 bytes = (__u64)iod->nr_sectors << 9;

	switch (ublksrv_get_op(iod)) {
	case UBLK_IO_OP_READ:
	case UBLK_IO_OP_WRITE:
		if (!bytes || bytes > q->dev->info.max_io_buf_bytes)
			return -EINVAL;
		break;
	case UBLK_IO_OP_FLUSH:
	case UBLK_IO_OP_DISCARD:
	case UBLK_IO_OP_WRITE_ZEROES:
		break;
	default:
		return -EOPNOTSUPP;
	}
	io->tgt_done = 0;
	io->tgt_step = 0;
	if (q->dev->tgt_sync_writes &&
	    ublksrv_get_op(iod) == UBLK_IO_OP_WRITE) {
		ublk_complete_io(q, tag, loop_write_sync(q, tag));
		return 0;
	}
	loop_issue(q, tag);
	return 0;
}

static void loop_rw_done(struct kublk_queue *q, int tag, int res)
{
	const struct ublksrv_io_desc *iod = &q->iods[tag];
	struct ublk_io *io = &q->ios[tag];
	unsigned int total = iod->nr_sectors << 9;

	if (res < 0) {
		ublk_complete_io(q, tag, res);
		return;
	}
	if (!res) {
		/* past the end of the file: writes fail, reads see zeroes */
		if (ublksrv_get_op(iod) != UBLK_IO_OP_READ) {
			ublk_complete_io(q, tag, -EIO);
			return;
		}
		memset(io->buf + io->tgt_done, 0, total - io->tgt_done);
		res = total - io->tgt_done;
	}
	io->tgt_done += res;
	if (io->tgt_done < total) {
		loop_issue(q, tag);
		return;
	}
	ublk_complete_io(q, tag, total);
}

static void loop_io_done(struct kublk_queue *q, int tag,
			 const struct io_uring_cqe *cqe)
{
	struct ublk_io *io = &q->ios[tag];
	unsigned int op = kublk_ud_op(cqe->user_data);

	switch (op) {
	case UBLK_IO_OP_READ:
	case UBLK_IO_OP_WRITE:
		loop_rw_done(q, tag, cqe->res);
		return;
	case UBLK_IO_OP_WRITE_ZEROES:
		if (cqe->res == -EOPNOTSUPP && !io->tgt_step) {
			io->tgt_step = 1;
			loop_issue(q, tag);
			return;
		}
		break;
	}
	ublk_complete_io(q, tag, cqe->res);
}

const struct ublk_tgt_ops loop_tgt_ops = {
	.name		= "loop",
	.init		= loop_init,
	.deinit		= loop_deinit,
	.queue_init	= loop_queue_init,
	.queue_io	= loop_queue_io,
	.tgt_io_done	= loop_io_done,
};
