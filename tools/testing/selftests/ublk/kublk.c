// SPDX-License-Identifier: GPL-2.0
/*
 * kublk: a ublk server and control tool for the selftests.
 *
 * "kublk add" forks a server process (the device's daemon) which adds the
 * device, starts one thread per hardware queue and START_DEVs it; the
 * parent prints the device id once the device is LIVE. "kublk recover"
 * does the same for a QUIESCED device with START/END_USER_RECOVERY. The
 * other commands are one-shot control commands.
 *
 * Server threads:
 *	main	control commands, then waits: joins queue threads, and on
 *		SIGUSR1 reads <run>/ublkN.killq and kills that queue thread
 *		(SIGUSR2, whose handler makes the thread exit on its own)
 *	queue	its own io_uring; FETCH every tag, then serve until every
 *		tag got UBLK_IO_RES_ABORT (or another error)
 *
 * Files under /run/ublk (or $KUBLK_RUN_DIR): ublkN.conf (what recover
 * needs to rebuild the target), ublkN.log (the daemon's stderr once
 * ready), ublkN.killq (kill-queue request).
 */
#include "kublk.h"

#include <dirent.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define KUBLK_STATUS_FD		3	/* daemon: pipe to the waiting parent */
#define KUBLK_CDEV_WAIT_MS	5000
#define KUBLK_BDEV_WAIT_MS	5000
#define KUBLK_BUSY_WAIT_MS	3000	/* recover: old server still closing */
#define KUBLK_JOIN_WAIT_MS	10000
#define KUBLK_DEL_WAIT_MS	30000
#define KUBLK_KILLQ_WAIT_MS	5000

static bool kublk_ioctl_encode;		/* --ioctl-encode */
/* set by the SIGUSR2 handler: relaxed atomics keep it signal-safe */
static __thread sig_atomic_t kublk_queue_killed;

/* ---------------------------------------------------------------------
 * Small helpers
 */

static double kublk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void kublk_sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static size_t kublk_round_up(size_t val, size_t align)
{
	return (val + align - 1) / align * align;
}

static size_t kublk_page_size(void)
{
	return sysconf(_SC_PAGESIZE);
}

static const char *kublk_state_name(unsigned int state)
{
	switch (state) {
	case UBLK_S_DEV_DEAD:
		return "DEAD";
	case UBLK_S_DEV_LIVE:
		return "LIVE";
	case UBLK_S_DEV_QUIESCED:
		return "QUIESCED";
	case UBLK_S_DEV_FAIL_IO:
		return "FAIL_IO";
	}
	return "UNKNOWN";
}

static const char *kublk_run_dir(void)
{
	const char *dir = getenv("KUBLK_RUN_DIR");

	return dir && *dir ? dir : KUBLK_RUN_DIR;
}

static void kublk_path(char *buf, size_t len, __u32 id, const char *ext)
{
	snprintf(buf, len, "%s/ublk%u.%s", kublk_run_dir(), id, ext);
}

static int kublk_mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];
	char *p;

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(tmp, 0755);
		*p = '/';
	}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/* make sure fds 0-2 exist, so that no pipe or device lands there */
static void kublk_std_fds(void)
{
	int fd;

	do {
		fd = open("/dev/null", O_RDWR);
	} while (fd >= 0 && fd <= 2);
	if (fd > 2)
		close(fd);
}

/* ---------------------------------------------------------------------
 * Control commands on /dev/ublk-control
 */

/* a command's name and its ioctl encoding, by its legacy number */
struct kublk_cmd {
	unsigned int nr;
	unsigned int op;
	const char *name;
};

#define KUBLK_CTRL(x)	{ UBLK_CMD_##x, UBLK_U_CMD_##x, #x }
#define KUBLK_IO(x)	{ UBLK_IO_##x, UBLK_U_IO_##x, #x }

static const struct kublk_cmd kublk_ctrl_cmds[] = {
	KUBLK_CTRL(GET_QUEUE_AFFINITY),
	KUBLK_CTRL(GET_DEV_INFO),
	KUBLK_CTRL(ADD_DEV),
	KUBLK_CTRL(DEL_DEV),
	KUBLK_CTRL(START_DEV),
	KUBLK_CTRL(STOP_DEV),
	KUBLK_CTRL(SET_PARAMS),
	KUBLK_CTRL(GET_PARAMS),
	KUBLK_CTRL(START_USER_RECOVERY),
	KUBLK_CTRL(END_USER_RECOVERY),
	KUBLK_CTRL(GET_FEATURES),
	KUBLK_CTRL(QUIESCE_DEV),
};

static const struct kublk_cmd kublk_io_cmds[] = {
	KUBLK_IO(FETCH_REQ),
	KUBLK_IO(COMMIT_AND_FETCH_REQ),
	KUBLK_IO(NEED_GET_DATA),
};

static const struct kublk_cmd *kublk_cmd_find(const struct kublk_cmd *tbl,
					      size_t n, unsigned int nr)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (tbl[i].nr == nr)
			return &tbl[i];
	return NULL;
}

static const char *kublk_cmd_name(const struct kublk_cmd *tbl, size_t n,
				  unsigned int nr, const char *unknown)
{
	const struct kublk_cmd *c = kublk_cmd_find(tbl, n, nr);

	return c ? c->name : unknown;
}

/* cmd_op of an SQE: the legacy number, or its ioctl encoding (-u) */
static unsigned int kublk_cmd_op(const struct kublk_cmd *tbl, size_t n,
				 unsigned int nr)
{
	const struct kublk_cmd *c = kublk_cmd_find(tbl, n, nr);

	return kublk_ioctl_encode && c ? c->op : nr;
}

static const char *ublk_ctrl_name(unsigned int nr)
{
	return kublk_cmd_name(kublk_ctrl_cmds, ARRAY_SIZE(kublk_ctrl_cmds), nr,
			      "UNKNOWN_CMD");
}

static unsigned int ublk_ctrl_op(unsigned int nr)
{
	return kublk_cmd_op(kublk_ctrl_cmds, ARRAY_SIZE(kublk_ctrl_cmds), nr);
}

static const char *ublk_io_name(unsigned int nr)
{
	return kublk_cmd_name(kublk_io_cmds, ARRAY_SIZE(kublk_io_cmds), nr,
			      "UNKNOWN_IO");
}

static unsigned int ublk_io_op(unsigned int nr)
{
	return kublk_cmd_op(kublk_io_cmds, ARRAY_SIZE(kublk_io_cmds), nr);
}

/* report a failed control command; returns res */
static int ublk_ctrl_failed(unsigned int nr, __u32 dev_id, int res)
{
	if (dev_id == UINT_MAX)
		kublk_err("%s: %s", ublk_ctrl_name(nr), strerror(-res));
	else
		kublk_err("%s (device %u): %s", ublk_ctrl_name(nr), dev_id,
			  strerror(-res));
	return res;
}

static int ublk_ctrl_open(struct ublk_ctrl *ctrl)
{
	int ret;

	ctrl->fd = open(UBLK_CTRL_DEV, O_RDWR | O_CLOEXEC);
	if (ctrl->fd < 0) {
		ret = -errno;
		kublk_err("open %s: %s", UBLK_CTRL_DEV, strerror(-ret));
		return ret;
	}
	ret = io_uring_queue_init(4, &ctrl->ring, IORING_SETUP_SQE128);
	if (ret < 0) {
		kublk_err("io_uring_queue_init (SQE128): %s", strerror(-ret));
		close(ctrl->fd);
		return ret;
	}
	return 0;
}

static void ublk_ctrl_close(struct ublk_ctrl *ctrl)
{
	io_uring_queue_exit(&ctrl->ring);
	close(ctrl->fd);
}

/* send one command; its CQE comes later */
static int ublk_ctrl_send(struct ublk_ctrl *ctrl, unsigned int nr,
			  const struct ublksrv_ctrl_cmd *cmd)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ctrl->ring);

	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, ctrl->fd, NULL, 0, 0);
	sqe->cmd_op = ublk_ctrl_op(nr);
	memset(sqe->cmd, 0, 80);
	memcpy(sqe->cmd, cmd, sizeof(*cmd));
	return io_uring_submit(&ctrl->ring);
}

/* send one command and wait for its result: 0 or a negative errno */
static int ublk_ctrl_submit(struct ublk_ctrl *ctrl, unsigned int nr,
			    const struct ublksrv_ctrl_cmd *cmd)
{
	struct io_uring_cqe *cqe;
	int ret;

	ret = ublk_ctrl_send(ctrl, nr, cmd);
	if (ret < 0)
		return ret;
	do {
		ret = io_uring_wait_cqe(&ctrl->ring, &cqe);
	} while (ret == -EINTR);
	if (ret < 0)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(&ctrl->ring, cqe);
	return ret;
}

static int ublk_ctrl_cmd(struct ublk_ctrl *ctrl, unsigned int nr,
			 __u32 dev_id, __u64 data0, void *buf, __u16 len)
{
	struct ublksrv_ctrl_cmd cmd = {
		.dev_id		= dev_id,
		.queue_id	= (__u16)-1,
		.len		= len,
		.addr		= (uintptr_t)buf,
		.data		= { data0, 0 },
	};

	return ublk_ctrl_submit(ctrl, nr, &cmd);
}

static int ublk_ctrl_get_info(struct ublk_ctrl *ctrl, __u32 dev_id,
			      struct ublksrv_ctrl_dev_info *info)
{
	memset(info, 0, sizeof(*info));
	return ublk_ctrl_cmd(ctrl, UBLK_CMD_GET_DEV_INFO, dev_id, 0, info,
			     sizeof(*info));
}

/* a command without payload, failure reported */
static int ublk_ctrl_simple(struct ublk_ctrl *ctrl, unsigned int nr,
			    __u32 dev_id, __u64 data0)
{
	int ret = ublk_ctrl_cmd(ctrl, nr, dev_id, data0, NULL, 0);

	return ret < 0 ? ublk_ctrl_failed(nr, dev_id, ret) : 0;
}

/* ---------------------------------------------------------------------
 * The conf file: what "recover" needs to rebuild the target
 */

static int kublk_conf_write(const struct kublk_dev *dev)
{
	const struct ublk_param_basic *b = &dev->params.basic;
	const struct kublk_cfg *cfg = &dev->cfg;
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	FILE *f;
	int ret;

	ret = kublk_mkdir_p(kublk_run_dir());
	if (ret) {
		kublk_err("mkdir %s: %s", kublk_run_dir(), strerror(-ret));
		return ret;
	}
	kublk_path(path, sizeof(path), dev->info.dev_id, "conf");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f) {
		ret = -errno;
		kublk_err("create %s: %s", tmp, strerror(-ret));
		return ret;
	}
	fprintf(f, "target=%s\nfile=%s\ndirect=%d\nsize=%llu\n", cfg->tgt,
		cfg->file, cfg->direct, (unsigned long long)cfg->size);
	fprintf(f, "lbs=%u\npbs=%u\nro=%d\nrotational=%d\ndiscard=%d\n",
		b->logical_bs_shift, b->physical_bs_shift, cfg->ro,
		cfg->rotational, !cfg->no_discard);
	fprintf(f, "queues=%u\ndepth=%u\nbuf=%u\nflags=0x%llx\npid=%d\n",
		dev->info.nr_hw_queues, dev->info.queue_depth,
		dev->info.max_io_buf_bytes,
		(unsigned long long)dev->info.flags, getpid());
	if (fclose(f) || rename(tmp, path)) {
		ret = -errno;
		kublk_err("write %s: %s", path, strerror(-ret));
		unlink(tmp);
		return ret;
	}
	return 0;
}

static void kublk_conf_remove(__u32 dev_id)
{
	char path[PATH_MAX];

	kublk_path(path, sizeof(path), dev_id, "conf");
	unlink(path);
	kublk_path(path, sizeof(path), dev_id, "killq");
	unlink(path);
}

/* the target keys only; values already set (from the CLI) win */
static void kublk_conf_apply(struct kublk_cfg *cfg, const char *key,
			     const char *val)
{
	if (!strcmp(key, "target") && !cfg->tgt[0])
		snprintf(cfg->tgt, sizeof(cfg->tgt), "%s", val);
	else if (!strcmp(key, "file") && !cfg->file[0])
		snprintf(cfg->file, sizeof(cfg->file), "%s", val);
	else if (!strcmp(key, "direct"))
		cfg->direct |= atoi(val) != 0;
}

static int kublk_conf_read(__u32 dev_id, struct kublk_cfg *cfg)
{
	char path[PATH_MAX], line[PATH_MAX + 64];
	char *val;
	FILE *f;

	kublk_path(path, sizeof(path), dev_id, "conf");
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		val = strchr(line, '=');
		if (!val)
			continue;
		*val++ = '\0';
		kublk_conf_apply(cfg, line, val);
	}
	fclose(f);
	return 0;
}

/* ---------------------------------------------------------------------
 * I/O path, queue thread context
 */

struct io_uring_sqe *kublk_get_sqe(struct kublk_queue *q)
{
	struct io_uring_sqe *sqe;

	/* the ring has room for a command and a target I/O per tag */
	while (!(sqe = io_uring_get_sqe(&q->ring)))
		io_uring_submit(&q->ring);
	return sqe;
}

static void ublk_queue_io_cmd(struct kublk_queue *q, int tag, unsigned int nr,
			      int result)
{
	struct io_uring_sqe *sqe = kublk_get_sqe(q);
	struct ublksrv_io_cmd *cmd = (struct ublksrv_io_cmd *)sqe->cmd;

	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, q->dev->cdev_fd, NULL, 0, 0);
	sqe->cmd_op = ublk_io_op(nr);
	cmd->q_id = q->q_id;
	cmd->tag = tag;
	cmd->result = result;
	cmd->addr = (uintptr_t)q->ios[tag].buf;
	sqe->user_data = kublk_ud(tag, nr, 0, false);
	q->cmd_inflight++;
}

void ublk_complete_io(struct kublk_queue *q, int tag, int res)
{
	ublk_queue_io_cmd(q, tag, UBLK_IO_COMMIT_AND_FETCH_REQ, res);
}

static void ublk_tag_done(struct kublk_queue *q, int tag)
{
	if (q->ios[tag].done)
		return;
	q->ios[tag].done = true;
	q->nr_done++;
}

/*
 * --hold N: the first N write requests of the device are never answered,
 * so a test knows exactly what a server holds when it dies or is stopped.
 * Writes only: the partition scan's reads must not take a hold.
 */
static bool ublk_hold_request(struct kublk_queue *q, int tag)
{
	unsigned int left = __atomic_load_n(&q->dev->hold_left,
					    __ATOMIC_RELAXED);

	if (ublksrv_get_op(&q->iods[tag]) != UBLK_IO_OP_WRITE)
		return false;
	do {
		if (!left)
			return false;
	} while (!__atomic_compare_exchange_n(&q->dev->hold_left, &left,
					      left - 1, false, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	kublk_err("queue %u tag %d: holding the request (%u more to hold)",
		  q->q_id, tag, left - 1);
	return true;
}

static void ublk_handle_cmd_cqe(struct kublk_queue *q, int tag,
				const struct io_uring_cqe *cqe)
{
	unsigned int nr = kublk_ud_op(cqe->user_data);
	int ret;

	q->cmd_inflight--;
	if (cqe->res == UBLK_IO_RES_OK && ublk_hold_request(q, tag))
		return;
	if (cqe->res == UBLK_IO_RES_OK) {
		ret = q->dev->ops->queue_io(q, tag);
		if (ret < 0)
			ublk_complete_io(q, tag, ret);
		return;
	}
	if (cqe->res == UBLK_IO_RES_NEED_GET_DATA &&
	    nr != UBLK_IO_NEED_GET_DATA) {
		ublk_queue_io_cmd(q, tag, UBLK_IO_NEED_GET_DATA, 0);
		return;
	}
	if (cqe->res == UBLK_IO_RES_ABORT && q->dev->cfg.ignore_abort) {
		/* a server that does not let go: only a kill ends it */
		kublk_err("queue %u tag %d: ignoring UBLK_IO_RES_ABORT",
			  q->q_id, tag);
		return;
	}
	if (cqe->res != UBLK_IO_RES_ABORT)
		kublk_err("queue %u tag %d: %s: %s (%d)", q->q_id, tag,
			  ublk_io_name(nr),
			  cqe->res < 0 ? strerror(-cqe->res) : "bad result",
			  cqe->res);
	ublk_tag_done(q, tag);
}

static void ublk_handle_cqe(struct kublk_queue *q,
			    const struct io_uring_cqe *cqe)
{
	unsigned int tag = kublk_ud_tag(cqe->user_data);

	if (tag >= q->depth) {
		kublk_err("queue %u: CQE for tag %u", q->q_id, tag);
		return;
	}
	if (!(cqe->user_data & KUBLK_UD_TGT)) {
		ublk_handle_cmd_cqe(q, tag, cqe);
		return;
	}
	q->tgt_inflight--;
	q->dev->ops->tgt_io_done(q, tag, cqe);
}

static void ublk_queue_reap(struct kublk_queue *q)
{
	struct io_uring_cqe *cqe;
	unsigned int head, nr = 0;

	io_uring_for_each_cqe(&q->ring, head, cqe) {
		ublk_handle_cqe(q, cqe);
		nr++;
	}
	io_uring_cq_advance(&q->ring, nr);
}

/*
 * kill-queue: this thread alone ends, like a crash of one queue. It skips
 * every clean-up, but tells the main thread, which joins it (the kernel
 * clears the thread id pthread_join() waits on whatever way it exits).
 */
static void ublk_queue_check_killed(struct kublk_queue *q)
{
	if (!__atomic_load_n(&kublk_queue_killed, __ATOMIC_RELAXED))
		return;
	__atomic_store_n(&q->exiting, 1, __ATOMIC_RELEASE);
	pthread_kill(q->dev->main_thread, SIGRTMIN);
	syscall(SYS_exit, 0);
}

/* one submit-and-wait per round: new SQEs go with the wait for CQEs */
static int ublk_queue_serve(struct kublk_queue *q)
{
	int ret;

	while (q->nr_done < q->depth) {
		ublk_queue_check_killed(q);
		ret = io_uring_submit_and_wait(&q->ring, 1);
		ublk_queue_check_killed(q);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
		    ret != -EBUSY) {
			kublk_err("queue %u: io_uring_enter: %s", q->q_id,
				  strerror(-ret));
			return ret;
		}
		ublk_queue_reap(q);
	}
	return 0;
}

static int ublk_queue_fetch_all(struct kublk_queue *q)
{
	int stop_at = q->dev->cfg.stop_at;
	unsigned int tag, nr = q->depth;
	int ret;

	/* recover --stop-at half|parked: the other half is never fetched */
	if (stop_at == KUBLK_STOP_HALF || stop_at == KUBLK_STOP_PARKED)
		nr = q->depth / 2;
	for (tag = 0; tag < nr; tag++)
		ublk_queue_io_cmd(q, tag, UBLK_IO_FETCH_REQ, 0);
	ret = io_uring_submit(&q->ring);
	if (ret < 0)
		kublk_err("queue %u: submit FETCH_REQ: %s", q->q_id,
			  strerror(-ret));
	return ret < 0 ? ret : 0;
}

static int ublk_queue_init_ring(struct kublk_queue *q)
{
	unsigned int entries = 2 * q->depth;
	int ret;

	/* this thread is the ring's one submitter (SINGLE_ISSUER) */
	if (q->dev->cfg.defer_taskrun)
		ret = io_uring_queue_init(entries, &q->ring,
					  IORING_SETUP_SINGLE_ISSUER |
					  IORING_SETUP_DEFER_TASKRUN);
	else
		ret = io_uring_queue_init(entries, &q->ring,
					  IORING_SETUP_COOP_TASKRUN);
	if (ret == -EINVAL && !q->dev->cfg.defer_taskrun)
		ret = io_uring_queue_init(entries, &q->ring, 0);
	if (ret < 0) {
		kublk_err("queue %u: io_uring_queue_init: %s", q->q_id,
			  strerror(-ret));
		return ret;
	}
	q->ring_ok = true;
	return 0;
}

static int ublk_queue_map_iods(struct kublk_queue *q)
{
	size_t pg = kublk_page_size();
	size_t stride = kublk_round_up(UBLK_MAX_QUEUE_DEPTH *
				       sizeof(struct ublksrv_io_desc), pg);
	off_t off = UBLKSRV_CMD_BUF_OFFSET + (off_t)q->q_id * stride;
	void *p;
	int ret;

	q->iods_len = kublk_round_up(q->depth * sizeof(*q->iods), pg);
	p = mmap(NULL, q->iods_len, PROT_READ, MAP_SHARED | MAP_POPULATE,
		 q->dev->cdev_fd, off);
	if (p == MAP_FAILED) {
		ret = -errno;
		kublk_err("queue %u: mmap descriptors: %s", q->q_id,
			  strerror(-ret));
		return ret;
	}
	q->iods = p;
	return 0;
}

static int ublk_queue_alloc_bufs(struct kublk_queue *q)
{
	size_t pg = kublk_page_size();
	size_t stride = kublk_round_up(q->dev->info.max_io_buf_bytes, pg);
	unsigned int tag;
	void *p;
	int ret;

	if (!stride)
		stride = pg;
	q->bufs_len = stride * q->depth;
	p = mmap(NULL, q->bufs_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		ret = -errno;
		kublk_err("queue %u: buffers: %s", q->q_id, strerror(-ret));
		return ret;
	}
	q->bufs = p;
	for (tag = 0; tag < q->depth; tag++)
		q->ios[tag].buf = q->bufs + tag * stride;
	return 0;
}

/* what needs no /dev/ublkcN: a server taking over does it beforehand */
static int ublk_queue_prepare(struct kublk_queue *q)
{
	int ret;

	q->ios = calloc(q->depth, sizeof(*q->ios));
	if (!q->ios)
		return -ENOMEM;
	ret = ublk_queue_init_ring(q);
	if (!ret)
		ret = ublk_queue_alloc_bufs(q);
	if (!ret && q->dev->ops->queue_init)
		ret = q->dev->ops->queue_init(q);
	return ret;
}

static void ublk_queue_deinit(struct kublk_queue *q)
{
	if (q->ring_ok)
		io_uring_queue_exit(&q->ring);
	if (q->iods)
		munmap((void *)q->iods, q->iods_len);
	if (q->bufs)
		munmap(q->bufs, q->bufs_len);
	free(q->ios);
}

/* ---------------------------------------------------------------------
 * Queue threads, seen from the main thread
 */

/*
 * A queue thread reports its preparation (@ret) and waits until the main
 * thread lets it go on; returns @ret, else what the main thread decided.
 */
static int kublk_queue_prepared(struct kublk_dev *dev, int ret)
{
	pthread_mutex_lock(&dev->lock);
	dev->nr_prepared++;
	if (ret)
		dev->prep_failed = true;
	pthread_cond_broadcast(&dev->cond);
	while (!dev->go)
		pthread_cond_wait(&dev->cond, &dev->lock);
	if (!ret)
		ret = dev->go_ret;
	pthread_mutex_unlock(&dev->lock);
	return ret;
}

static void kublk_queue_started(struct kublk_dev *dev, int ret)
{
	pthread_mutex_lock(&dev->lock);
	if (ret)
		dev->nr_failed++;
	else
		dev->nr_started++;
	pthread_cond_broadcast(&dev->cond);
	pthread_mutex_unlock(&dev->lock);
}

/*
 * Queue threads are SCHED_BATCH: woken by a request, they do not preempt
 * the task that submitted it. Where the submitter shares the CPU (a queue
 * thread sits on the CPUs of its queue, which are its submitters' CPUs),
 * a SCHED_NORMAL thread that slept has the lower vruntime and preempts the
 * submitter at each request, so both ping-pong once per I/O; this way the
 * submitter queues all it has and sleeps, and the thread takes the batch.
 * Best effort: failing changes only the speed.
 */
static void ublk_queue_set_batch(void)
{
	struct sched_param sp = { .sched_priority = 0 };

	pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
}

static void *ublk_queue_thread(void *arg)
{
	struct kublk_queue *q = arg;
	struct kublk_dev *dev = q->dev;
	char name[16];
	sigset_t set;
	int ret;

	snprintf(name, sizeof(name), "kublk-q%u", q->q_id);
	pthread_setname_np(pthread_self(), name);
	ublk_queue_set_batch();
	if (q->has_cpus)
		pthread_setaffinity_np(pthread_self(), sizeof(q->cpus),
				       &q->cpus);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	ret = kublk_queue_prepared(dev, ublk_queue_prepare(q));
	if (!ret)
		ret = ublk_queue_map_iods(q);
	if (!ret)
		ret = ublk_queue_fetch_all(q);
	kublk_queue_started(dev, ret);
	if (!ret)
		ublk_queue_serve(q);
	ublk_queue_deinit(q);

	__atomic_store_n(&q->exiting, 1, __ATOMIC_RELEASE);
	pthread_kill(dev->main_thread, SIGRTMIN);
	return NULL;
}

static void kublk_get_affinity(struct kublk_dev *dev, struct kublk_queue *q)
{
	struct ublksrv_ctrl_cmd cmd = {
		.dev_id		= dev->info.dev_id,
		/* 6.1's convention: the queue is in data[0], not queue_id */
		.queue_id	= (__u16)-1,
		.len		= sizeof(q->cpus),
		.addr		= (uintptr_t)&q->cpus,
		.data		= { q->q_id, 0 },
	};

	/* best effort: a thread per queue near the CPUs that feed it */
	CPU_ZERO(&q->cpus);
	if (dev->info.nr_hw_queues < 2)
		return;
	if (!ublk_ctrl_submit(&dev->ctrl, UBLK_CMD_GET_QUEUE_AFFINITY, &cmd))
		q->has_cpus = CPU_COUNT(&q->cpus) > 0;
}

static int kublk_alloc_queues(struct kublk_dev *dev)
{
	unsigned int i, nr = dev->info.nr_hw_queues;

	if (!nr || !dev->info.queue_depth) {
		kublk_err("device %u: driver returned %u queues of depth %u",
			  dev->info.dev_id, nr, dev->info.queue_depth);
		return -EPROTO;
	}
	dev->queues = calloc(nr, sizeof(*dev->queues));
	if (!dev->queues)
		return -ENOMEM;
	for (i = 0; i < nr; i++) {
		dev->queues[i].dev = dev;
		dev->queues[i].q_id = i;
		dev->queues[i].depth = dev->info.queue_depth;
		dev->queues[i].tgt_fd = dev->tgt_fd;
		kublk_get_affinity(dev, &dev->queues[i]);
	}
	return 0;
}

/*
 * Create the queue threads; returns once each has its ring and buffers
 * (-EIO if one could not), the threads then wait for
 * kublk_release_queues().
 */
static int kublk_spawn_queues(struct kublk_dev *dev)
{
	unsigned int i, nr = dev->info.nr_hw_queues;
	struct kublk_queue *q;
	int ret;

	dev->hold_left = dev->cfg.hold;
	dev->spawned = true;
	for (i = 0; i < nr; i++) {
		q = &dev->queues[i];
		ret = pthread_create(&q->thread, NULL, ublk_queue_thread, q);
		if (!ret) {
			q->created = true;
			continue;
		}
		kublk_err("queue %u: pthread_create: %s", i, strerror(ret));
		q->joined = true;
		pthread_mutex_lock(&dev->lock);
		dev->nr_prepared++;
		dev->prep_failed = true;
		dev->nr_failed++;
		pthread_mutex_unlock(&dev->lock);
	}
	pthread_mutex_lock(&dev->lock);
	while (dev->nr_prepared < nr)
		pthread_cond_wait(&dev->cond, &dev->lock);
	ret = dev->prep_failed ? -EIO : 0;
	pthread_mutex_unlock(&dev->lock);
	return ret;
}

/* let the prepared queue threads fetch (@ret 0) or exit (@ret < 0) */
static void kublk_release_queues(struct kublk_dev *dev, int ret)
{
	pthread_mutex_lock(&dev->lock);
	dev->go = true;
	dev->go_ret = ret;
	pthread_cond_broadcast(&dev->cond);
	pthread_mutex_unlock(&dev->lock);
}

/* start every queue thread; returns once each has sent its FETCHes */
static int kublk_start_queues(struct kublk_dev *dev)
{
	unsigned int nr = dev->info.nr_hw_queues;
	int ret;

	if (!dev->spawned)
		kublk_spawn_queues(dev);	/* a failure counts in nr_failed */
	kublk_release_queues(dev, 0);
	pthread_mutex_lock(&dev->lock);
	while (dev->nr_started + dev->nr_failed < nr)
		pthread_cond_wait(&dev->cond, &dev->lock);
	ret = dev->nr_failed ? -EIO : 0;
	pthread_mutex_unlock(&dev->lock);
	return ret;
}

/*
 * Join the queue threads that have marked themselves exiting (every way
 * out of a queue thread does); returns how many are gone.
 */
static unsigned int kublk_reap_queues(struct kublk_dev *dev)
{
	unsigned int i, gone = 0;
	struct kublk_queue *q;

	for (i = 0; i < dev->info.nr_hw_queues; i++) {
		q = &dev->queues[i];
		if (!q->joined && __atomic_load_n(&q->exiting, __ATOMIC_ACQUIRE))
			q->joined = !pthread_join(q->thread, NULL);
		gone += q->joined;
	}
	return gone;
}

static bool kublk_join_queues(struct kublk_dev *dev, unsigned int ms)
{
	double end = kublk_now_ms() + ms;

	while (kublk_reap_queues(dev) < dev->info.nr_hw_queues) {
		if (kublk_now_ms() > end)
			return false;
		kublk_sleep_ms(1);
	}
	return true;
}

/* undo kublk_spawn_queues() when the threads were never let go */
static void kublk_cancel_queues(struct kublk_dev *dev)
{
	if (!dev->spawned)
		return;
	kublk_release_queues(dev, -ECANCELED);
	if (!kublk_join_queues(dev, KUBLK_JOIN_WAIT_MS))
		exit(1);	/* cannot free what a thread still uses */
}

/* SIGUSR1: kill the queue thread named in ublkN.killq */
static void kublk_handle_killq(struct kublk_dev *dev)
{
	char path[PATH_MAX];
	unsigned int q_id;
	int nr = 0;
	FILE *f;

	kublk_path(path, sizeof(path), dev->info.dev_id, "killq");
	f = fopen(path, "r");
	if (!f)
		return;
	nr = fscanf(f, "%u", &q_id);
	fclose(f);
	if (nr != 1 || q_id >= dev->info.nr_hw_queues ||
	    dev->queues[q_id].joined) {
		kublk_err("kill-queue: no live queue in %s", path);
	} else {
		kublk_err("kill-queue: killing queue %u", q_id);
		pthread_kill(dev->queues[q_id].thread, SIGUSR2);
	}
	unlink(path);
}

/*
 * --churn-mm: drop the queue buffers' pages (the driver's next copy to or
 * from a buffer faults) and flip the protection of a populated scratch
 * area (mprotect() holds the mmap lock for writing while it walks the
 * page tables, so the fault waits for it), without end. A server killed
 * meanwhile is killed while the driver copies: the fault gives up on the
 * fatal signal. The buffers' contents are lost: the null target only.
 */
#define KUBLK_CHURN_BYTES	(2U << 20)

static void *kublk_churn_thread(void *arg)
{
	struct kublk_dev *dev = arg;
	unsigned int i, flip = 0;
	char *p;

	pthread_setname_np(pthread_self(), "kublk-churn");
	p = mmap(NULL, KUBLK_CHURN_BYTES, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, KUBLK_CHURN_BYTES, MADV_NOHUGEPAGE);	/* many PTEs */
	memset(p, 1, KUBLK_CHURN_BYTES);
	for (;;) {
		for (i = 0; i < dev->info.nr_hw_queues; i++)
			if (dev->queues[i].bufs)
				madvise(dev->queues[i].bufs,
					dev->queues[i].bufs_len, MADV_DONTNEED);
		mprotect(p, KUBLK_CHURN_BYTES,
			 flip++ & 1 ? PROT_READ | PROT_WRITE : PROT_READ);
		sched_yield();
	}
	return NULL;
}

static void kublk_start_churn(struct kublk_dev *dev)
{
	pthread_t churn;

	if (strcmp(dev->ops->name, "null"))
		kublk_err("--churn-mm: null target only, ignored");
	else if (pthread_create(&churn, NULL, kublk_churn_thread, dev))
		kublk_err("--churn-mm: no thread");
}

/*
 * The main thread's life once the device is LIVE: asleep until a signal.
 * Every queue thread, also a killed one, sends SIGRTMIN as it ends, so
 * nothing here wakes up on a timer: an idle server costs no CPU.
 */
static void kublk_serve(struct kublk_dev *dev)
{
	sigset_t set;

	if (dev->cfg.churn_mm)
		kublk_start_churn(dev);

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMIN);
	while (kublk_reap_queues(dev) < dev->info.nr_hw_queues) {
		if (sigwaitinfo(&set, NULL) == SIGUSR1)
			kublk_handle_killq(dev);
	}
	kublk_err("device %u: every queue has exited", dev->info.dev_id);
}

/* undo kublk_start_queues() before START_DEV succeeded or after it */
static bool kublk_stop_queues(struct kublk_dev *dev)
{
	ublk_ctrl_simple(&dev->ctrl, UBLK_CMD_STOP_DEV, dev->info.dev_id, 0);
	if (kublk_join_queues(dev, KUBLK_JOIN_WAIT_MS))
		return true;
	kublk_err("device %u: queue threads did not exit, leaving the device",
		  dev->info.dev_id);
	return false;
}

static void kublk_sigusr2(int sig)
{
	(void)sig;
	__atomic_store_n(&kublk_queue_killed, 1, __ATOMIC_RELAXED);
}

/*
 * SIGUSR1 (kill-queue) and SIGRTMIN (a queue thread exits) are taken by
 * the main thread with sigwaitinfo(); SIGUSR2 only reaches queue threads.
 */
static void kublk_server_signals(struct kublk_dev *dev)
{
	struct sigaction sa = { .sa_handler = kublk_sigusr2 };
	sigset_t set;

	sigaction(SIGUSR2, &sa, NULL);	/* no SA_RESTART: end the wait */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGRTMIN);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	dev->main_thread = pthread_self();
}

/* ---------------------------------------------------------------------
 * Device bring-up, shared by add and recover
 */

static int kublk_open_cdev(struct kublk_dev *dev)
{
	double end = kublk_now_ms() + KUBLK_CDEV_WAIT_MS;
	char path[64];
	int ret;

	snprintf(path, sizeof(path), UBLK_CDEV_FMT, dev->info.dev_id);
	for (;;) {
		dev->cdev_fd = open(path, O_RDWR | O_CLOEXEC);
		if (dev->cdev_fd >= 0)
			return 0;
		ret = -errno;
		if (ret != -ENOENT && !(ret == -EBUSY && dev->recovering))
			break;
		if (kublk_now_ms() > end)
			break;
		kublk_sleep_ms(1);
	}
	kublk_err("open %s: %s", path, strerror(-ret));
	return ret;
}

static int kublk_wait_bdev(struct kublk_dev *dev)
{
	double end = kublk_now_ms() + KUBLK_BDEV_WAIT_MS;
	char path[64];

	snprintf(path, sizeof(path), UBLK_BDEV_FMT, dev->info.dev_id);
	while (access(path, F_OK)) {
		if (kublk_now_ms() > end) {
			kublk_err("%s did not appear", path);
			return -ETIMEDOUT;
		}
		kublk_sleep_ms(1);
	}
	return 0;
}

static int kublk_check_live(struct kublk_dev *dev)
{
	struct ublksrv_ctrl_dev_info info;
	__u32 id = dev->info.dev_id;
	int ret;

	ret = ublk_ctrl_get_info(&dev->ctrl, id, &info);
	if (ret < 0)
		return ublk_ctrl_failed(UBLK_CMD_GET_DEV_INFO, id, ret);
	if (info.state != UBLK_S_DEV_LIVE) {
		kublk_err("device %u is %s, not LIVE", id,
			  kublk_state_name(info.state));
		return -EIO;
	}
	return kublk_wait_bdev(dev);
}

static void kublk_redirect_log(struct kublk_dev *dev)
{
	char path[PATH_MAX];
	int fd;

	kublk_path(path, sizeof(path), dev->info.dev_id, "log");
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
	kublk_err("pid %d serving " UBLK_BDEV_FMT, getpid(), dev->info.dev_id);
}

/* the device is LIVE: tell whoever waits (stdout or the parent) */
static void kublk_announce(struct kublk_dev *dev)
{
	__s64 status = dev->info.dev_id;

	if (dev->status_fd < 0) {
		printf("%u\n", dev->info.dev_id);
		fflush(stdout);
		return;
	}
	kublk_redirect_log(dev);
	if (write(dev->status_fd, &status, sizeof(status)) != sizeof(status))
		kublk_err("cannot report readiness: %s", strerror(errno));
	close(dev->status_fd);
	dev->status_fd = -1;
}

static void kublk_server_exit(struct kublk_dev *dev)
{
	close(dev->cdev_fd);
	free(dev->queues);
	ublk_ctrl_close(&dev->ctrl);
	dev->ops->deinit(dev);
}

/* ---------------------------------------------------------------------
 * add
 */

static int kublk_add_dev(struct kublk_dev *dev)
{
	struct ublksrv_ctrl_dev_info *info = &dev->info;
	const struct kublk_cfg *cfg = &dev->cfg;
	int ret;

	memset(info, 0, sizeof(*info));
	info->nr_hw_queues = cfg->nr_queues;
	info->queue_depth = cfg->depth;
	info->max_io_buf_bytes = cfg->buf_bytes;
	info->dev_id = cfg->dev_id;
	info->flags = cfg->flags;
	ret = ublk_ctrl_cmd(&dev->ctrl, UBLK_CMD_ADD_DEV, cfg->dev_id, 0,
			    info, sizeof(*info));
	return ret < 0 ? ublk_ctrl_failed(UBLK_CMD_ADD_DEV, cfg->dev_id, ret) : 0;
}

/* --recovery-timeout: the device's recovery deadline, through sysfs */
static int kublk_set_recovery_timeout(__u32 id, int ms)
{
	char path[PATH_MAX];
	FILE *f;
	int ret = 0;

	if (ms < 0)
		return 0;
	snprintf(path, sizeof(path),
		 "/sys/class/ublk-char/ublkc%u/recovery_timeout_ms", id);
	f = fopen(path, "w");
	if (!f || fprintf(f, "%d\n", ms) < 0)
		ret = -errno;
	if (f && fclose(f) && !ret)
		ret = -errno;
	if (ret)
		kublk_err("write %s: %s", path, strerror(-ret));
	return ret;
}

static int kublk_set_params(struct kublk_dev *dev)
{
	struct ublk_params *p = &dev->params;
	struct ublk_param_basic *b = &p->basic;
	const struct kublk_cfg *cfg = &dev->cfg;
	int ret;

	p->len = sizeof(*p);
	p->types |= UBLK_PARAM_TYPE_BASIC;
	b->logical_bs_shift = cfg->lbs_shift;
	b->physical_bs_shift = cfg->pbs_shift;
	b->io_min_shift = cfg->lbs_shift;
	b->io_opt_shift = cfg->pbs_shift;
	b->max_sectors = dev->info.max_io_buf_bytes >> 9;
	b->dev_sectors = cfg->size >> 9;
	if (cfg->ro)
		b->attrs |= UBLK_ATTR_READ_ONLY;
	if (cfg->rotational)
		b->attrs |= UBLK_ATTR_ROTATIONAL;
	ret = ublk_ctrl_cmd(&dev->ctrl, UBLK_CMD_SET_PARAMS, dev->info.dev_id,
			    0, p, sizeof(*p));
	if (ret < 0)
		return ublk_ctrl_failed(UBLK_CMD_SET_PARAMS, dev->info.dev_id,
					ret);
	return 0;
}

static const char * const kublk_stop_names[KUBLK_STOP_NR] = {
	[KUBLK_STOP_START]	= "start",
	[KUBLK_STOP_HALF]	= "half",
	[KUBLK_STOP_FETCHED]	= "fetched",
	[KUBLK_STOP_PARKED]	= "parked",
};

/*
 * recover --stop-at: the new server stops itself (SIGSTOP stops every
 * thread) at a chosen point of the recovery, where a test sees it stopped
 * and kills it: a crash during recovery at a known moment. Continued
 * instead, it exits without any clean-up, a crash all the same.
 */
static void kublk_stop_here(struct kublk_dev *dev)
{
	const char *point = kublk_stop_names[dev->cfg.stop_at];

	kublk_err("recover: stopping at %s", point);
	raise(SIGSTOP);
	kublk_err("recover: continued at %s, exiting", point);
	_exit(1);
}

/*
 * --stop-at parked: END_USER_RECOVERY sent with half the tags fetched must
 * be parked by the driver, not answered; an answer given while it was
 * issued is in the CQ ring by the time io_uring_enter() has returned.
 */
static int kublk_park_end(struct kublk_dev *dev)
{
	struct ublksrv_ctrl_cmd cmd = {
		.dev_id		= dev->info.dev_id,
		.queue_id	= (__u16)-1,
		.data		= { getpid(), 0 },
	};
	struct io_uring_cqe *cqe;
	int ret;

	ret = ublk_ctrl_send(&dev->ctrl, UBLK_CMD_END_USER_RECOVERY, &cmd);
	if (ret < 0)
		return ublk_ctrl_failed(UBLK_CMD_END_USER_RECOVERY,
					dev->info.dev_id, ret);
	if (!io_uring_peek_cqe(&dev->ctrl.ring, &cqe)) {
		kublk_err("END_USER_RECOVERY with half the tags fetched answered %d, not parked",
			  cqe->res);
		return -EPROTO;
	}
	kublk_err("recover: END_USER_RECOVERY parked");
	return 0;
}

/* --stop-at half|fetched|parked, once the queues have sent their FETCHes */
static int kublk_stop_before_end(struct kublk_dev *dev)
{
	int ret;

	if (dev->cfg.stop_at == KUBLK_STOP_PARKED) {
		ret = kublk_park_end(dev);
		if (ret)
			return ret;
	}
	kublk_stop_here(dev);
	return -EINTR;		/* not reached: it exits */
}

/*
 * Start the queue threads (each fetches every tag), then send @op
 * (START_DEV or END_USER_RECOVERY) with our pid; both return once every
 * tag is fetched, and the device must then be LIVE.
 */
static int kublk_go_live(struct kublk_dev *dev, unsigned int op)
{
	int ret;

	ret = kublk_start_queues(dev);
	if (ret)
		return ret;
	if (dev->cfg.stop_at && dev->cfg.stop_at != KUBLK_STOP_START)
		return kublk_stop_before_end(dev);
	ret = ublk_ctrl_simple(&dev->ctrl, op, dev->info.dev_id, getpid());
	return ret ? ret : kublk_check_live(dev);
}

static int kublk_add_server(struct kublk_dev *dev)
{
	int ret;

	ret = dev->ops->init(dev);
	if (ret)
		return ret;
	ret = ublk_ctrl_open(&dev->ctrl);
	if (ret)
		goto deinit_tgt;
	ret = kublk_add_dev(dev);
	if (ret)
		goto close_ctrl;
	ret = kublk_alloc_queues(dev);
	if (ret)
		goto del_dev;
	ret = kublk_set_params(dev);
	if (ret)
		goto free_queues;
	ret = kublk_set_recovery_timeout(dev->info.dev_id,
					 dev->cfg.recovery_timeout_ms);
	if (ret)
		goto free_queues;
	ret = kublk_open_cdev(dev);
	if (ret)
		goto free_queues;
	ret = kublk_conf_write(dev);
	if (ret)
		goto close_cdev;
	ret = kublk_go_live(dev, UBLK_CMD_START_DEV);
	if (ret)
		goto stop_queues;

	kublk_announce(dev);
	kublk_serve(dev);
	kublk_server_exit(dev);
	return 0;

stop_queues:
	if (!kublk_stop_queues(dev))
		exit(1);	/* threads still hold the device */
	kublk_conf_remove(dev->info.dev_id);
close_cdev:
	close(dev->cdev_fd);
free_queues:
	free(dev->queues);
del_dev:
	ublk_ctrl_simple(&dev->ctrl, UBLK_CMD_DEL_DEV, dev->info.dev_id, 0);
close_ctrl:
	ublk_ctrl_close(&dev->ctrl);
deinit_tgt:
	dev->ops->deinit(dev);
	return ret;
}

/* ---------------------------------------------------------------------
 * recover
 */

static const struct ublk_tgt_ops *kublk_tgts[] = {
	&null_tgt_ops,
	&loop_tgt_ops,
};

static const struct ublk_tgt_ops *kublk_find_tgt(const char *name)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(kublk_tgts); i++)
		if (!strcmp(kublk_tgts[i]->name, name))
			return kublk_tgts[i];
	return NULL;
}

/* the device as the driver keeps it, the target from the conf file */
static int kublk_recover_load(struct kublk_dev *dev)
{
	const struct ublk_param_basic *b = &dev->params.basic;
	struct kublk_cfg *cfg = &dev->cfg;
	__u32 id = cfg->dev_id;
	int ret;

	ret = ublk_ctrl_get_info(&dev->ctrl, id, &dev->info);
	if (ret < 0)
		return ublk_ctrl_failed(UBLK_CMD_GET_DEV_INFO, id, ret);
	dev->params.len = sizeof(dev->params);
	ret = ublk_ctrl_cmd(&dev->ctrl, UBLK_CMD_GET_PARAMS, id, 0,
			    &dev->params, sizeof(dev->params));
	if (ret < 0)
		return ublk_ctrl_failed(UBLK_CMD_GET_PARAMS, id, ret);
	cfg->size = b->dev_sectors << 9;
	cfg->lbs_shift = b->logical_bs_shift;
	cfg->pbs_shift = b->physical_bs_shift;
	cfg->ro = b->attrs & UBLK_ATTR_READ_ONLY;
	cfg->rotational = b->attrs & UBLK_ATTR_ROTATIONAL;
	cfg->no_discard = !(dev->params.types & UBLK_PARAM_TYPE_DISCARD);

	ret = kublk_conf_read(id, cfg);
	if (ret && !cfg->tgt[0]) {
		kublk_err("recover: no conf file for device %u (%s); give -t",
			  id, strerror(-ret));
		return ret;
	}
	dev->ops = kublk_find_tgt(cfg->tgt);
	if (!dev->ops) {
		kublk_err("recover: unknown target '%s'", cfg->tgt);
		return -EINVAL;
	}
	return 0;
}

/* QUIESCED or FAIL_IO: the device waits for a new server */
static bool kublk_state_recoverable(unsigned int state)
{
	return state == UBLK_S_DEV_QUIESCED || state == UBLK_S_DEV_FAIL_IO;
}

static bool kublk_is_quiesced(struct kublk_dev *dev)
{
	struct ublksrv_ctrl_dev_info info;

	return !ublk_ctrl_get_info(&dev->ctrl, dev->info.dev_id, &info) &&
	       kublk_state_recoverable(info.state);
}

/*
 * --standby: the new server is loaded and armed while the old one still
 * serves, and takes over as soon as the device is QUIESCED (or FAIL_IO),
 * so a crash costs no process start-up. handover waits here too, for the
 * old server to let go. Polls: a uevent would need a netlink socket.
 */
static int kublk_wait_quiesced(struct kublk_dev *dev)
{
	struct ublksrv_ctrl_dev_info info;
	__u32 id = dev->info.dev_id;
	int ret;

	for (;;) {
		ret = ublk_ctrl_get_info(&dev->ctrl, id, &info);
		if (ret < 0)
			return ublk_ctrl_failed(UBLK_CMD_GET_DEV_INFO, id, ret);
		if (kublk_state_recoverable(info.state))
			return 0;
		if (info.state != UBLK_S_DEV_LIVE) {
			kublk_err("recover: device %u stopped", id);
			return -ENODEV;
		}
		kublk_sleep_ms(1);
	}
}

/*
 * -EBUSY while QUIESCED means the old server has not closed /dev/ublkcN
 * yet (its io_uring teardown is still running): try again for a while.
 */
static int kublk_start_recovery(struct kublk_dev *dev, double *t0)
{
	double end = kublk_now_ms() + KUBLK_BUSY_WAIT_MS;
	__u32 id = dev->info.dev_id;
	int ret;

	for (;;) {
		*t0 = kublk_now_ms();
		ret = ublk_ctrl_cmd(&dev->ctrl, UBLK_CMD_START_USER_RECOVERY,
				    id, 0, NULL, 0);
		if (ret != -EBUSY || *t0 > end || !kublk_is_quiesced(dev))
			break;
		kublk_sleep_ms(1);
	}
	if (ret < 0)
		return ublk_ctrl_failed(UBLK_CMD_START_USER_RECOVERY, id, ret);
	return 0;
}

/*
 * handover: QUIESCE_DEV makes the old server finish what it holds and
 * exit; the device is QUIESCED once it has let go of /dev/ublkcN.
 */
static int kublk_quiesce(struct kublk_dev *dev, double *tq)
{
	__u32 id = dev->info.dev_id;
	int ret;

	*tq = kublk_now_ms();
	ret = ublk_ctrl_simple(&dev->ctrl, UBLK_CMD_QUIESCE_DEV, id, 0);
	if (ret)
		return ret;
	fprintf(stderr, "handover: QUIESCE_DEV %.1f ms\n", kublk_now_ms() - *tq);
	ret = kublk_wait_quiesced(dev);
	if (!ret)
		fprintf(stderr, "handover: QUIESCE->QUIESCED %.1f ms\n",
			kublk_now_ms() - *tq);
	return ret;
}

static int kublk_recover_server(struct kublk_dev *dev)
{
	double t0, tq = 0;
	int ret;

	dev->recovering = true;
	ret = ublk_ctrl_open(&dev->ctrl);
	if (ret)
		return ret;
	ret = kublk_recover_load(dev);
	if (ret)
		goto close_ctrl;
	ret = dev->ops->init(dev);
	if (ret)
		goto close_ctrl;
	ret = kublk_alloc_queues(dev);
	if (ret)
		goto deinit_tgt;
	/*
	 * Taking over a device that is still served: rings and buffers are
	 * set up while the old server runs, to shorten the stall
	 */
	if (dev->cfg.standby || dev->cfg.handover) {
		ret = kublk_spawn_queues(dev);
		if (ret)
			goto free_queues;
	}
	if (dev->cfg.standby) {
		kublk_announce(dev);	/* armed: the caller may crash the old one */
		ret = kublk_wait_quiesced(dev);
		if (ret)
			goto free_queues;
	}
	if (dev->cfg.handover) {
		/* loaded and armed: only now does the old server let go */
		ret = kublk_quiesce(dev, &tq);
		if (ret)
			goto free_queues;
	}
	ret = kublk_start_recovery(dev, &t0);
	if (ret)
		goto free_queues;
	if (dev->cfg.stop_at == KUBLK_STOP_START)
		kublk_stop_here(dev);
	ret = kublk_open_cdev(dev);
	if (ret)
		goto free_queues;	/* the device stays recoverable */
	kublk_conf_write(dev);
	/*
	 * From here a failure leaves queue threads with commands in flight:
	 * exit, which the driver sees as a crash during recovery.
	 */
	if (kublk_go_live(dev, UBLK_CMD_END_USER_RECOVERY))
		exit(1);
	fprintf(stderr, "recover: START->LIVE %.1f ms\n", kublk_now_ms() - t0);
	if (dev->cfg.handover)
		fprintf(stderr, "handover: QUIESCE->LIVE %.1f ms\n",
			kublk_now_ms() - tq);

	kublk_announce(dev);
	kublk_serve(dev);
	kublk_server_exit(dev);
	return 0;

free_queues:
	kublk_cancel_queues(dev);
	free(dev->queues);
deinit_tgt:
	dev->ops->deinit(dev);
close_ctrl:
	ublk_ctrl_close(&dev->ctrl);
	return ret;
}

/* ---------------------------------------------------------------------
 * Daemonising: the parent waits until the server is LIVE or failed
 */

static void kublk_close_from(int first)
{
	int fd;

	if (!close_range(first, ~0U, 0))
		return;
	for (fd = first; fd < 1024; fd++)
		close(fd);
}

/* child: own session, stdin/stdout to /dev/null, stderr to the parent */
static void kublk_child_stdio(int err_fd, int status_fd)
{
	int null_fd = open("/dev/null", O_RDWR);

	setsid();
	if (null_fd >= 0) {
		dup2(null_fd, STDIN_FILENO);
		dup2(null_fd, STDOUT_FILENO);
	}
	dup2(err_fd, STDERR_FILENO);
	if (status_fd != KUBLK_STATUS_FD)
		dup2(status_fd, KUBLK_STATUS_FD);
	kublk_close_from(KUBLK_STATUS_FD + 1);
}

static void kublk_copy_fd(int from, int to)
{
	char buf[4096];
	ssize_t n;

	for (;;) {
		n = read(from, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		if (write(to, buf, n) != n)
			return;
	}
}

/* the server failed before it was ready: say so if it did not */
static void kublk_reap_child(pid_t pid)
{
	int wstatus;

	if (waitpid(pid, &wstatus, 0) != pid)
		return;
	if (WIFSIGNALED(wstatus))
		kublk_err("server %d killed by signal %d", pid,
			  WTERMSIG(wstatus));
	else if (WIFEXITED(wstatus) && !WEXITSTATUS(wstatus))
		kublk_err("server %d exited before the device was ready", pid);
}

static int kublk_daemonize(struct kublk_dev *dev,
			   int (*server)(struct kublk_dev *dev))
{
	int err_pipe[2], status_pipe[2];
	__s64 status = -1;
	pid_t pid;

	if (pipe(err_pipe) || pipe(status_pipe)) {
		kublk_err("pipe: %s", strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		kublk_err("fork: %s", strerror(errno));
		return 1;
	}
	if (!pid) {
		close(err_pipe[0]);
		close(status_pipe[0]);
		kublk_child_stdio(err_pipe[1], status_pipe[1]);
		dev->status_fd = KUBLK_STATUS_FD;
		kublk_server_signals(dev);
		exit(server(dev) ? 1 : 0);
	}
	close(err_pipe[1]);
	close(status_pipe[1]);
	/* the child's stderr until it is ready (or gone) */
	kublk_copy_fd(err_pipe[0], STDERR_FILENO);
	if (read(status_pipe[0], &status, sizeof(status)) == sizeof(status) &&
	    status >= 0) {
		printf("%lld\n", (long long)status);
		return 0;
	}
	kublk_reap_child(pid);
	return 1;
}

static int kublk_run_server(struct kublk_dev *dev,
			    int (*server)(struct kublk_dev *dev))
{
	if (!dev->cfg.foreground)
		return kublk_daemonize(dev, server);
	kublk_server_signals(dev);
	return server(dev) ? 1 : 0;
}

/* ---------------------------------------------------------------------
 * Command line
 */

static const char kublk_usage_text[] =
"usage: kublk COMMAND [OPTIONS]\n"
"\n"
"  add -t null|loop [-n ID] [-q QUEUES] [-d DEPTH] [-b BUF_BYTES] [-f FILE]\n"
"      [--direct] [-s SIZE] [-r] [-i] [--get-data] [--comp-in-task]\n"
"      [--foreground] [--lbs N] [--pbs N] [--ro] [--rotational]\n"
"      [--no-discard] [--flags UBLK_F_BITS] [--hold N] [--defer-taskrun]\n"
"      [-e] [--quiesce] [--recovery-timeout MS] [--ignore-abort]\n"
"      [--churn-mm]\n"
"  recover -n ID [--foreground] [--standby] [-t TARGET] [-f FILE] [--direct]\n"
"      [--stop-at start|half|fetched|parked] [--churn-mm]\n"
"  handover -n ID [the options of recover]\n"
"  quiesce -n ID\n"
"  del -n ID | --all\n"
"  list [-n ID]\n"
"  state -n ID\n"
"  wait-state -n ID DEAD|LIVE|QUIESCED|FAIL_IO [-t TIMEOUT_MS]\n"
"  kill-queue -n ID -q QUEUE\n"
"  features\n"
"\n"
"add prints the device id once /dev/ublkbN is LIVE. Defaults: id chosen by\n"
"the driver, 1 queue, depth 128, 512K buffers, null size 1G, loop size the\n"
"file's. -r: UBLK_F_USER_RECOVERY, -i: UBLK_F_USER_RECOVERY_REISSUE,\n"
"-e: UBLK_F_USER_RECOVERY_FAIL_IO, --quiesce: UBLK_F_QUIESCE (handover).\n"
"handover: a new server takes over a LIVE device without a crash\n"
"(QUIESCE_DEV, then START/END_USER_RECOVERY); quiesce: QUIESCE_DEV only.\n"
"--recovery-timeout MS: the device's recovery deadline (sysfs).\n"
"--ignore-abort: the server never exits on UBLK_IO_RES_ABORT (tests).\n"
"--churn-mm (tests, null target): a thread keeps the server's mmap lock\n"
"busy and its buffers unpopulated, so the driver's copies fault.\n"
"--lbs/--pbs: a shift (9, 12) or a size in bytes (512, 4096).\n"
"SIZE and BUF_BYTES take K, M, G, T suffixes. Every command accepts\n"
"--ioctl-encode (send the UBLK_U_* command encodings). --hold N: never\n"
"answer the first N write requests (tests). --defer-taskrun: queue rings with\n"
"IORING_SETUP_DEFER_TASKRUN. --stop-at (tests): the new server stops itself\n"
"(SIGSTOP) after START_USER_RECOVERY, with half of every queue's tags\n"
"fetched, with all fetched before END_USER_RECOVERY, or with END parked\n"
"(half fetched).\n"
"State files and daemon logs: $KUBLK_RUN_DIR, default " KUBLK_RUN_DIR ".\n";

static void kublk_usage(FILE *out)
{
	fputs(kublk_usage_text, out);
}

static void __noreturn __printf(1, 2)
kublk_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "kublk: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n");
	kublk_usage(stderr);
	exit(2);
}

/* a number with an optional K/M/G/T suffix (binary), at most max */
static __u64 kublk_arg_num(const char *opt, const char *s, __u64 max,
			   bool suffix)
{
	unsigned long long val;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	val = strtoull(s, &end, 0);
	if (suffix && end != s && *end) {
		const char *units = strchr("KMGT", *end & ~0x20);

		if (units && *units)
			shift = 10 * (units - "KMGT" + 1);
		end += !!shift;
		if (shift && !strcmp(end, "iB"))
			end += 2;
	}
	if (!*s || *s == '-' || errno || end == s || *end ||
	    (shift && val > (ULLONG_MAX >> shift)) || (val << shift) > max)
		kublk_usage_error("invalid %s value '%s'", opt, s);
	return val << shift;
}

/* a block size: a shift below 256 passed as is, or a power of 2 bytes */
static int kublk_arg_bs(const char *opt, const char *s)
{
	__u64 val = kublk_arg_num(opt, s, UINT_MAX, true);

	if (val < 256)
		return val;
	if (val < 512 || (val & (val - 1)))
		kublk_usage_error("%s: '%s' is neither a shift nor a power of 2",
				  opt, s);
	return __builtin_ctzll(val);
}

static int kublk_arg_stop(const char *s)
{
	int i;

	for (i = KUBLK_STOP_START; i < KUBLK_STOP_NR; i++)
		if (!strcmp(s, kublk_stop_names[i]))
			return i;
	kublk_usage_error("invalid --stop-at point '%s'", s);
}

static __u32 kublk_arg_id(const char *s)
{
	if (!strcmp(s, "-1"))
		return UINT_MAX;
	return kublk_arg_num("-n", s, UINT_MAX, false);
}

enum {
	OPT_DIRECT = 256,
	OPT_GET_DATA,
	OPT_COMP_IN_TASK,
	OPT_FOREGROUND,
	OPT_STANDBY,
	OPT_LBS,
	OPT_PBS,
	OPT_RO,
	OPT_ROTATIONAL,
	OPT_NO_DISCARD,
	OPT_FLAGS,
	OPT_IOCTL,
	OPT_HOLD,
	OPT_DEFER_TASKRUN,
	OPT_QUIESCE,
	OPT_IGNORE_ABORT,
	OPT_CHURN_MM,
	OPT_RECOVERY_TIMEOUT,
	OPT_STOP_AT,
	OPT_ALL,
};

static const struct option kublk_dev_opts[] = {
	{ "type",		required_argument,	NULL, 't' },
	{ "number",		required_argument,	NULL, 'n' },
	{ "queues",		required_argument,	NULL, 'q' },
	{ "depth",		required_argument,	NULL, 'd' },
	{ "buf",		required_argument,	NULL, 'b' },
	{ "file",		required_argument,	NULL, 'f' },
	{ "size",		required_argument,	NULL, 's' },
	{ "recovery",		no_argument,		NULL, 'r' },
	{ "reissue",		no_argument,		NULL, 'i' },
	{ "direct",		no_argument,		NULL, OPT_DIRECT },
	{ "get-data",		no_argument,		NULL, OPT_GET_DATA },
	{ "comp-in-task",	no_argument,		NULL, OPT_COMP_IN_TASK },
	{ "foreground",		no_argument,		NULL, OPT_FOREGROUND },
	{ "standby",		no_argument,		NULL, OPT_STANDBY },
	{ "lbs",		required_argument,	NULL, OPT_LBS },
	{ "pbs",		required_argument,	NULL, OPT_PBS },
	{ "ro",			no_argument,		NULL, OPT_RO },
	{ "rotational",		no_argument,		NULL, OPT_ROTATIONAL },
	{ "no-discard",		no_argument,		NULL, OPT_NO_DISCARD },
	{ "flags",		required_argument,	NULL, OPT_FLAGS },
	{ "ioctl-encode",	no_argument,		NULL, OPT_IOCTL },
	{ "hold",		required_argument,	NULL, OPT_HOLD },
	{ "defer-taskrun",	no_argument,		NULL, OPT_DEFER_TASKRUN },
	{ "fail-io",		no_argument,		NULL, 'e' },
	{ "quiesce",		no_argument,		NULL, OPT_QUIESCE },
	{ "ignore-abort",	no_argument,		NULL, OPT_IGNORE_ABORT },
	{ "churn-mm",		no_argument,		NULL, OPT_CHURN_MM },
	{ "recovery-timeout",	required_argument,	NULL, OPT_RECOVERY_TIMEOUT },
	{ "stop-at",		required_argument,	NULL, OPT_STOP_AT },
	{ "help",		no_argument,		NULL, 'h' },
	{ NULL,			0,			NULL, 0 },
};

/* options with a value; false if c is not one of them */
static bool kublk_dev_opt_value(struct kublk_cfg *cfg, int c, const char *arg)
{
	switch (c) {
	case 't':
		snprintf(cfg->tgt, sizeof(cfg->tgt), "%s", arg);
		break;
	case 'n':
		cfg->dev_id = kublk_arg_id(arg);
		break;
	case 'q':
		cfg->nr_queues = kublk_arg_num("-q", arg, USHRT_MAX, false);
		break;
	case 'd':
		cfg->depth = kublk_arg_num("-d", arg, USHRT_MAX, false);
		break;
	case 'b':
		cfg->buf_bytes = kublk_arg_num("-b", arg, UINT_MAX, true);
		break;
	case 'f':
		snprintf(cfg->file, sizeof(cfg->file), "%s", arg);
		break;
	case 's':
		cfg->size = kublk_arg_num("-s", arg, ULLONG_MAX, true);
		break;
	case OPT_LBS:
		cfg->lbs_shift = kublk_arg_bs("--lbs", arg);
		break;
	case OPT_PBS:
		cfg->pbs_shift = kublk_arg_bs("--pbs", arg);
		break;
	case OPT_FLAGS:
		cfg->flags |= kublk_arg_num("--flags", arg, ULLONG_MAX, false);
		break;
	case OPT_HOLD:
		cfg->hold = kublk_arg_num("--hold", arg, UINT_MAX, false);
		break;
	case OPT_RECOVERY_TIMEOUT:
		cfg->recovery_timeout_ms = kublk_arg_num("--recovery-timeout",
							 arg, INT_MAX, false);
		break;
	case OPT_STOP_AT:
		cfg->stop_at = kublk_arg_stop(arg);
		break;
	default:
		return false;
	}
	return true;
}

/* options without a value; false if c is not one of them */
static bool kublk_dev_opt_flag(struct kublk_cfg *cfg, int c)
{
	switch (c) {
	case 'r':
		cfg->flags |= UBLK_F_USER_RECOVERY;
		break;
	case 'i':
		cfg->flags |= UBLK_F_USER_RECOVERY_REISSUE;
		break;
	case 'e':
		cfg->flags |= UBLK_F_USER_RECOVERY_FAIL_IO;
		break;
	case OPT_QUIESCE:
		cfg->flags |= UBLK_F_QUIESCE;
		break;
	case OPT_IGNORE_ABORT:
		cfg->ignore_abort = true;
		break;
	case OPT_CHURN_MM:
		cfg->churn_mm = true;
		break;
	case OPT_GET_DATA:
		cfg->flags |= UBLK_F_NEED_GET_DATA;
		break;
	case OPT_COMP_IN_TASK:
		cfg->flags |= UBLK_F_URING_CMD_COMP_IN_TASK;
		break;
	case OPT_DIRECT:
		cfg->direct = true;
		break;
	case OPT_FOREGROUND:
		cfg->foreground = true;
		break;
	case OPT_STANDBY:
		cfg->standby = true;
		break;
	case OPT_RO:
		cfg->ro = true;
		break;
	case OPT_ROTATIONAL:
		cfg->rotational = true;
		break;
	case OPT_NO_DISCARD:
		cfg->no_discard = true;
		break;
	case OPT_IOCTL:
		kublk_ioctl_encode = true;
		break;
	case OPT_DEFER_TASKRUN:
		cfg->defer_taskrun = true;
		break;
	default:
		return false;
	}
	return true;
}

static void kublk_parse_dev_opts(int argc, char **argv, struct kublk_cfg *cfg)
{
	int c;

	while ((c = getopt_long(argc, argv, "t:n:q:d:b:f:s:rieh",
				kublk_dev_opts, NULL)) != -1) {
		if (c == 'h') {
			kublk_usage(stdout);
			exit(0);
		}
		if (!kublk_dev_opt_value(cfg, c, optarg) &&
		    !kublk_dev_opt_flag(cfg, c))
			kublk_usage_error("%s: bad option", argv[0]);
	}
	if (optind < argc)
		kublk_usage_error("%s: unexpected argument '%s'", argv[0],
				  argv[optind]);
}

static struct kublk_dev *kublk_dev_new(void)
{
	struct kublk_dev *dev = calloc(1, sizeof(*dev));
	struct kublk_cfg *cfg;

	if (!dev) {
		kublk_err("out of memory");
		exit(1);
	}
	cfg = &dev->cfg;
	cfg->dev_id = UINT_MAX;
	cfg->nr_queues = KUBLK_DEF_QUEUES;
	cfg->depth = KUBLK_DEF_DEPTH;
	cfg->buf_bytes = KUBLK_DEF_BUF_BYTES;
	cfg->lbs_shift = KUBLK_DEF_LBS_SHIFT;
	cfg->pbs_shift = -1;
	cfg->recovery_timeout_ms = -1;
	dev->cdev_fd = -1;
	dev->tgt_fd = -1;
	dev->status_fd = -1;
	pthread_mutex_init(&dev->lock, NULL);
	pthread_cond_init(&dev->cond, NULL);
	return dev;
}

static int cmd_add(int argc, char **argv)
{
	struct kublk_dev *dev = kublk_dev_new();
	struct kublk_cfg *cfg = &dev->cfg;

	kublk_parse_dev_opts(argc, argv, cfg);
	if (!cfg->tgt[0])
		kublk_usage_error("add: -t TARGET is required");
	if (cfg->stop_at)
		kublk_usage_error("add: --stop-at is a recover option");
	dev->ops = kublk_find_tgt(cfg->tgt);
	if (!dev->ops)
		kublk_usage_error("add: unknown target '%s'", cfg->tgt);
	if (cfg->pbs_shift < 0)
		cfg->pbs_shift = cfg->lbs_shift > KUBLK_DEF_PBS_SHIFT ?
				 cfg->lbs_shift : KUBLK_DEF_PBS_SHIFT;
	return kublk_run_server(dev, kublk_add_server);
}

static int cmd_recover(int argc, char **argv)
{
	struct kublk_dev *dev = kublk_dev_new();

	kublk_parse_dev_opts(argc, argv, &dev->cfg);
	if (dev->cfg.dev_id == UINT_MAX)
		kublk_usage_error("%s: -n ID is required", argv[0]);
	dev->cfg.handover = !strcmp(argv[0], "handover");
	return kublk_run_server(dev, kublk_recover_server);
}

/* ---------------------------------------------------------------------
 * One-shot commands
 */

struct kublk_args {
	__u32 dev_id;
	bool has_id;
	bool all;
	int queue;
	unsigned int timeout_ms;
	const char *pos;		/* one positional argument */
};

static const struct option kublk_tool_opts[] = {
	{ "number",		required_argument,	NULL, 'n' },
	{ "queue",		required_argument,	NULL, 'q' },
	{ "timeout",		required_argument,	NULL, 't' },
	{ "all",		no_argument,		NULL, OPT_ALL },
	{ "ioctl-encode",	no_argument,		NULL, OPT_IOCTL },
	{ "help",		no_argument,		NULL, 'h' },
	{ NULL,			0,			NULL, 0 },
};

static void kublk_tool_opt(struct kublk_args *a, int c, const char *cmd)
{
	switch (c) {
	case 'n':
		a->dev_id = kublk_arg_num("-n", optarg, UINT_MAX, false);
		a->has_id = true;
		break;
	case 'q':
		a->queue = kublk_arg_num("-q", optarg, USHRT_MAX, false);
		break;
	case 't':
		a->timeout_ms = kublk_arg_num("-t", optarg, UINT_MAX, false);
		break;
	case OPT_ALL:
		a->all = true;
		break;
	case OPT_IOCTL:
		kublk_ioctl_encode = true;
		break;
	case 'h':
		kublk_usage(stdout);
		exit(0);
	default:
		kublk_usage_error("%s: bad option", cmd);
	}
}

/* shorts: the short options this command takes; long ones are checked */
static void kublk_parse_tool(int argc, char **argv, const char *shorts,
			     struct kublk_args *a)
{
	int c;

	memset(a, 0, sizeof(*a));
	a->queue = -1;
	a->timeout_ms = 10000;
	while ((c = getopt_long(argc, argv, shorts, kublk_tool_opts,
				NULL)) != -1) {
		if (c == OPT_ALL && strcmp(argv[0], "del"))
			c = '?';
		if ((c == 'q' || c == 't') && !strchr(shorts, c))
			c = '?';
		kublk_tool_opt(a, c, argv[0]);
	}
	if (optind < argc)
		a->pos = argv[optind++];
	if (optind < argc)
		kublk_usage_error("%s: unexpected argument '%s'", argv[0],
				  argv[optind]);
}

static void kublk_need_id(const struct kublk_args *a, const char *cmd)
{
	if (!a->has_id)
		kublk_usage_error("%s: -n ID is required", cmd);
}

static void kublk_no_pos(const struct kublk_args *a, const char *cmd)
{
	if (a->pos)
		kublk_usage_error("%s: unexpected argument '%s'", cmd, a->pos);
}

static int kublk_id_cmp(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

static void kublk_scan_ids(const char *dir, __u32 **ids, unsigned int *nr)
{
	struct dirent *de;
	unsigned int id;
	__u32 *tmp;
	char c;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (sscanf(de->d_name, "ublkc%u%c", &id, &c) != 1)
			continue;
		tmp = realloc(*ids, (*nr + 1) * sizeof(**ids));
		if (!tmp)
			break;
		*ids = tmp;
		(*ids)[(*nr)++] = id;
	}
	closedir(d);
}

/* every device id, sorted, from sysfs and /dev */
static unsigned int kublk_list_ids(__u32 **ids)
{
	unsigned int i, n = 0, nr = 0;

	*ids = NULL;
	kublk_scan_ids("/sys/class/ublk-char", ids, &nr);
	kublk_scan_ids("/dev", ids, &nr);
	if (!nr)
		return 0;
	qsort(*ids, nr, sizeof(**ids), kublk_id_cmp);
	for (i = 0; i < nr; i++)
		if (!n || (*ids)[n - 1] != (*ids)[i])
			(*ids)[n++] = (*ids)[i];
	return n;
}

/* is pid a kublk process (not a stranger that reused a dead pid)? */
static bool kublk_pid_is_server(pid_t pid)
{
	char path[64], comm[32] = "";
	FILE *f;

	if (pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	return !strncmp(comm, "kublk", 5);
}

static bool kublk_pid_gone(pid_t pid)
{
	char path[64], state = 'R';
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
		state = 'R';
	fclose(f);
	return state == 'Z' || state == 'X';
}

static bool kublk_wait_pid(pid_t pid, int pidfd, unsigned int ms)
{
	double end = kublk_now_ms() + ms;
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

	if (pidfd >= 0)
		return poll(&pfd, 1, ms) == 1;
	while (!kublk_pid_gone(pid)) {
		if (kublk_now_ms() > end)
			return false;
		kublk_sleep_ms(1);
	}
	return true;
}

static int kublk_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

static int kublk_del_one(struct ublk_ctrl *ctrl, __u32 id)
{
	struct ublksrv_ctrl_dev_info info;
	int ret, err = 0, pidfd = -1;
	pid_t pid = 0;

	ret = ublk_ctrl_get_info(ctrl, id, &info);
	if (ret < 0) {
		ublk_ctrl_failed(UBLK_CMD_GET_DEV_INFO, id, ret);
		return 1;
	}
	if (kublk_pid_is_server(info.ublksrv_pid)) {
		pid = info.ublksrv_pid;
		pidfd = kublk_pidfd_open(pid);
	}
	if (ublk_ctrl_simple(ctrl, UBLK_CMD_STOP_DEV, id, 0))
		err = 1;
	if (ublk_ctrl_simple(ctrl, UBLK_CMD_DEL_DEV, id, 0)) {
		err = 1;
	} else {
		kublk_conf_remove(id);
		if (pid && !kublk_wait_pid(pid, pidfd, KUBLK_DEL_WAIT_MS)) {
			kublk_err("del: server %d of device %u still runs",
				  pid, id);
			err = 1;
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	return err;
}

static int cmd_del(int argc, char **argv)
{
	struct ublk_ctrl ctrl;
	struct kublk_args a;
	unsigned int i, nr;
	__u32 *ids;
	int err = 0;

	kublk_parse_tool(argc, argv, "n:h", &a);
	kublk_no_pos(&a, "del");
	if (a.all == a.has_id)
		kublk_usage_error("del: give -n ID or --all");
	if (ublk_ctrl_open(&ctrl))
		return 1;
	if (a.has_id) {
		err = kublk_del_one(&ctrl, a.dev_id);
	} else {
		nr = kublk_list_ids(&ids);
		for (i = 0; i < nr; i++)
			err |= kublk_del_one(&ctrl, ids[i]);
		free(ids);
	}
	ublk_ctrl_close(&ctrl);
	return err;
}

static int kublk_list_one(struct ublk_ctrl *ctrl, __u32 id, bool quiet)
{
	struct ublksrv_ctrl_dev_info info;
	struct kublk_cfg cfg = { .tgt = "" };
	int ret;

	ret = ublk_ctrl_get_info(ctrl, id, &info);
	if (ret < 0 && quiet)
		return 0;	/* gone since the directory scan */
	if (ret < 0) {
		ublk_ctrl_failed(UBLK_CMD_GET_DEV_INFO, id, ret);
		return 1;
	}
	kublk_conf_read(id, &cfg);
	printf("%u %s %u %u 0x%llx %d %s\n", info.dev_id,
	       kublk_state_name(info.state), info.nr_hw_queues,
	       info.queue_depth, (unsigned long long)info.flags,
	       info.ublksrv_pid, cfg.tgt[0] ? cfg.tgt : "-");
	return 0;
}

static int cmd_list(int argc, char **argv)
{
	struct ublk_ctrl ctrl;
	struct kublk_args a;
	unsigned int i, nr;
	__u32 *ids;
	int err = 0;

	kublk_parse_tool(argc, argv, "n:h", &a);
	kublk_no_pos(&a, "list");
	if (ublk_ctrl_open(&ctrl))
		return 1;
	printf("ID STATE QUEUES DEPTH FLAGS PID TARGET\n");
	if (a.has_id) {
		err = kublk_list_one(&ctrl, a.dev_id, false);
	} else {
		nr = kublk_list_ids(&ids);
		for (i = 0; i < nr; i++)
			kublk_list_one(&ctrl, ids[i], true);
		free(ids);
	}
	ublk_ctrl_close(&ctrl);
	return err;
}

static int cmd_state(int argc, char **argv)
{
	struct ublksrv_ctrl_dev_info info;
	struct ublk_ctrl ctrl;
	struct kublk_args a;
	int ret;

	kublk_parse_tool(argc, argv, "n:h", &a);
	kublk_need_id(&a, "state");
	kublk_no_pos(&a, "state");
	if (ublk_ctrl_open(&ctrl))
		return 1;
	ret = ublk_ctrl_get_info(&ctrl, a.dev_id, &info);
	ublk_ctrl_close(&ctrl);
	if (ret < 0) {
		ublk_ctrl_failed(UBLK_CMD_GET_DEV_INFO, a.dev_id, ret);
		return 1;
	}
	printf("%s\n", kublk_state_name(info.state));
	return 0;
}

static int kublk_parse_state(const char *s)
{
	static const char *const names[] = {
		"DEAD", "LIVE", "QUIESCED", "FAIL_IO"
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcasecmp(s, names[i]))
			return i;
	return kublk_arg_num("STATE", s, USHRT_MAX, false);
}

static int kublk_wait_state(struct ublk_ctrl *ctrl, __u32 id,
			    unsigned int state, unsigned int timeout_ms)
{
	struct ublksrv_ctrl_dev_info info;
	double start = kublk_now_ms(), elapsed;
	int ret;

	for (;;) {
		ret = ublk_ctrl_get_info(ctrl, id, &info);
		if (ret < 0) {
			ublk_ctrl_failed(UBLK_CMD_GET_DEV_INFO, id, ret);
			return 1;
		}
		elapsed = kublk_now_ms() - start;
		if (info.state == state) {
			printf("%.1f\n", elapsed);
			return 0;
		}
		if (elapsed >= timeout_ms) {
			kublk_err("wait-state: device %u is %s, not %s, after %u ms",
				  id, kublk_state_name(info.state),
				  kublk_state_name(state), timeout_ms);
			return 1;
		}
		kublk_sleep_ms(1);
	}
}

static int cmd_wait_state(int argc, char **argv)
{
	struct ublk_ctrl ctrl;
	struct kublk_args a;
	int state, ret;

	kublk_parse_tool(argc, argv, "n:t:h", &a);
	kublk_need_id(&a, "wait-state");
	if (!a.pos)
		kublk_usage_error("wait-state: STATE is required");
	state = kublk_parse_state(a.pos);
	if (ublk_ctrl_open(&ctrl))
		return 1;
	ret = kublk_wait_state(&ctrl, a.dev_id, state, a.timeout_ms);
	ublk_ctrl_close(&ctrl);
	return ret;
}

static int kublk_write_killq(__u32 id, int queue)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	FILE *f;
	int ret;

	ret = kublk_mkdir_p(kublk_run_dir());
	kublk_path(path, sizeof(path), id, "killq");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = ret ? NULL : fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", queue) < 0 || fclose(f) ||
	    rename(tmp, path)) {
		ret = -errno;
		kublk_err("kill-queue: write %s: %s", path, strerror(-ret));
		return ret;
	}
	return 0;
}

static int kublk_kill_queue(struct ublk_ctrl *ctrl, __u32 id, int queue)
{
	struct ublksrv_ctrl_dev_info info;
	double end = kublk_now_ms() + KUBLK_KILLQ_WAIT_MS;
	char path[PATH_MAX];
	int ret;

	ret = ublk_ctrl_get_info(ctrl, id, &info);
	if (ret < 0)
		return ublk_ctrl_failed(UBLK_CMD_GET_DEV_INFO, id, ret);
	if (queue >= info.nr_hw_queues || info.ublksrv_pid <= 0) {
		kublk_err("kill-queue: device %u has %u queues, server pid %d",
			  id, info.nr_hw_queues, info.ublksrv_pid);
		return -EINVAL;
	}
	ret = kublk_write_killq(id, queue);
	if (ret)
		return ret;
	kublk_path(path, sizeof(path), id, "killq");
	if (kill(info.ublksrv_pid, SIGUSR1)) {
		ret = -errno;
		kublk_err("kill-queue: kill %d: %s", info.ublksrv_pid,
			  strerror(-ret));
		unlink(path);
		return ret;
	}
	/* the server removes the file once it has signalled the thread */
	while (!access(path, F_OK)) {
		if (kublk_now_ms() > end) {
			kublk_err("kill-queue: server %d did not answer",
				  info.ublksrv_pid);
			unlink(path);
			return -ETIMEDOUT;
		}
		kublk_sleep_ms(1);
	}
	return 0;
}

static int cmd_kill_queue(int argc, char **argv)
{
	struct ublk_ctrl ctrl;
	struct kublk_args a;
	int ret;

	kublk_parse_tool(argc, argv, "n:q:h", &a);
	kublk_need_id(&a, "kill-queue");
	kublk_no_pos(&a, "kill-queue");
	if (a.queue < 0)
		kublk_usage_error("kill-queue: -q QUEUE is required");
	if (ublk_ctrl_open(&ctrl))
		return 1;
	ret = kublk_kill_queue(&ctrl, a.dev_id, a.queue);
	ublk_ctrl_close(&ctrl);
	return ret ? 1 : 0;
}

/* quiesce: QUIESCE_DEV alone; the old server exits, nobody takes over */
static int cmd_quiesce(int argc, char **argv)
{
	struct ublk_ctrl ctrl;
	struct kublk_args a;
	double t0;
	int ret;

	kublk_parse_tool(argc, argv, "n:h", &a);
	kublk_need_id(&a, "quiesce");
	kublk_no_pos(&a, "quiesce");
	if (ublk_ctrl_open(&ctrl))
		return 1;
	t0 = kublk_now_ms();
	ret = ublk_ctrl_simple(&ctrl, UBLK_CMD_QUIESCE_DEV, a.dev_id, 0);
	ublk_ctrl_close(&ctrl);
	if (ret)
		return 1;
	printf("%.1f\n", kublk_now_ms() - t0);
	return 0;
}

static int cmd_features(int argc, char **argv)
{
	struct ublk_ctrl ctrl;
	struct kublk_args a;
	__u64 features = 0;
	int ret;

	kublk_parse_tool(argc, argv, "h", &a);
	kublk_no_pos(&a, "features");
	if (ublk_ctrl_open(&ctrl))
		return 1;
	ret = ublk_ctrl_cmd(&ctrl, UBLK_CMD_GET_FEATURES, UINT_MAX, 0,
			    &features, UBLK_FEATURES_LEN);
	ublk_ctrl_close(&ctrl);
	if (ret < 0) {
		ublk_ctrl_failed(UBLK_CMD_GET_FEATURES, UINT_MAX, ret);
		return 1;
	}
	printf("0x%llx\n", (unsigned long long)features);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} kublk_cmds[] = {
	{ "add",	cmd_add },
	{ "recover",	cmd_recover },
	{ "handover",	cmd_recover },
	{ "quiesce",	cmd_quiesce },
	{ "del",	cmd_del },
	{ "list",	cmd_list },
	{ "state",	cmd_state },
	{ "wait-state",	cmd_wait_state },
	{ "kill-queue",	cmd_kill_queue },
	{ "features",	cmd_features },
};

int main(int argc, char **argv)
{
	unsigned int i;

	kublk_std_fds();
	if (argc < 2)
		kublk_usage_error("a command is required");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		kublk_usage(stdout);
		return 0;
	}
	for (i = 0; i < ARRAY_SIZE(kublk_cmds); i++)
		if (!strcmp(argv[1], kublk_cmds[i].name))
			return kublk_cmds[i].fn(argc - 1, argv + 1);
	kublk_usage_error("unknown command '%s'", argv[1]);
}
