/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kublk: the ublk selftest server.
 *
 * One process serves one device. Its main thread sends the control
 * commands and then only waits; each hardware queue is served by its own
 * thread with its own io_uring, which carries both the ublk I/O commands
 * for that queue and the target's own I/O (the loop target's file I/O).
 * A CQE's user_data says which tag it is for and whether it completes a
 * ublk command or a target I/O.
 */
#ifndef KUBLK_H
#define KUBLK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>

#include <liburing.h>
#include <linux/ublk_cmd.h>

#ifndef UBLK_CMD_GET_FEATURES
#error "not the project's ublk_cmd.h: build with -I<tree>/include/uapi"
#endif

/*
 * The kernel's spellings of a few helpers; userspace has no
 * <linux/compiler.h>, and tools/include is not on the path standalone.
 */
#define __ublk_attr(x)		__attribute__(x)
#ifndef __printf
#define __printf(a, b)		__ublk_attr((format(printf, a, b)))
#endif
#ifndef __noreturn
#define __noreturn		__ublk_attr((noreturn))
#endif
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif
#ifndef BIT_ULL
#define BIT_ULL(nr)		(1ULL << (nr))
#endif

#define UBLK_CTRL_DEV		"/dev/ublk-control"
#define UBLK_CDEV_FMT		"/dev/ublkc%u"
#define UBLK_BDEV_FMT		"/dev/ublkb%u"
#define KUBLK_RUN_DIR		"/run/ublk"	/* env KUBLK_RUN_DIR overrides */

#define KUBLK_DEF_QUEUES	1
#define KUBLK_DEF_DEPTH		128
#define KUBLK_DEF_BUF_BYTES	(512U << 10)
#define KUBLK_DEF_NULL_SIZE	BIT_ULL(30)
#define KUBLK_DEF_LBS_SHIFT	9
#define KUBLK_DEF_PBS_SHIFT	12

#define kublk_err(fmt, ...) \
	fprintf(stderr, "kublk: " fmt "\n", ##__VA_ARGS__)

/*
 * CQE user_data: bits 0-15 tag, 16-23 the ublk command (UBLK_IO_*) or the
 * target's op, 24-31 free for the target, bit 63 set for target I/O.
 */
#define KUBLK_UD_TGT		BIT_ULL(63)

static inline __u64 kublk_ud(unsigned int tag, unsigned int op,
			     unsigned int tgt_data, bool is_tgt)
{
	return (tag & 0xffff) | ((__u64)(op & 0xff) << 16) |
	       ((__u64)(tgt_data & 0xff) << 24) | (is_tgt ? KUBLK_UD_TGT : 0);
}

static inline unsigned int kublk_ud_tag(__u64 ud)
{
	return ud & 0xffff;
}

static inline unsigned int kublk_ud_op(__u64 ud)
{
	return (ud >> 16) & 0xff;
}

static inline unsigned int kublk_ud_tgt_data(__u64 ud)
{
	return (ud >> 24) & 0xff;
}

/* What the command line (or, on recover, the conf file) asks for. */
struct kublk_cfg {
	char tgt[16];			/* target name: null, loop */
	char file[PATH_MAX];		/* loop: backing file, absolute */
	__u32 dev_id;			/* U32_MAX: let the driver pick */
	unsigned int nr_queues;
	unsigned int depth;
	unsigned int buf_bytes;		/* max_io_buf_bytes asked for */
	__u64 flags;			/* UBLK_F_* */
	__u64 size;			/* bytes; 0: the target decides */
	int lbs_shift;			/* logical block size, log2 */
	int pbs_shift;			/* physical block size, log2; -1 unset */
	bool direct;			/* loop: O_DIRECT */
	bool ro;
	bool rotational;
	bool no_discard;
	bool foreground;
	bool standby;			/* recover: wait for QUIESCED first */
	unsigned int hold;		/* --hold: never answer the first N */
	bool defer_taskrun;		/* queue rings with DEFER_TASKRUN */
	bool handover;			/* recover: QUIESCE_DEV the old one */
	bool ignore_abort;		/* --ignore-abort: never exit on ABORT */
	bool churn_mm;			/* --churn-mm: contend the mmap lock */
	int recovery_timeout_ms;	/* --recovery-timeout; -1: unset */
	int stop_at;			/* recover --stop-at: KUBLK_STOP_* */
};

/* recover --stop-at: where the new server stops itself (tests) */
enum {
	KUBLK_STOP_NONE,
	KUBLK_STOP_START,	/* START_USER_RECOVERY done, cdev not open */
	KUBLK_STOP_HALF,	/* half of every queue's tags fetched */
	KUBLK_STOP_FETCHED,	/* every tag fetched, END not sent */
	KUBLK_STOP_PARKED,	/* half fetched, END sent and parked */
	KUBLK_STOP_NR,
};

/* One tag of one queue. */
struct ublk_io {
	char *buf;			/* max_io_buf_bytes, page aligned */
	unsigned int tgt_done;		/* target: bytes done so far */
	unsigned int tgt_step;		/* target: private step counter */
	bool done;			/* aborted: no command in flight */
};

struct kublk_dev;

/* One hardware queue, owned by its thread once started. */
struct kublk_queue {
	struct kublk_dev *dev;
	unsigned int q_id;
	unsigned int depth;
	struct io_uring ring;
	bool ring_ok;
	const struct ublksrv_io_desc *iods;	/* mmapped, indexed by tag */
	size_t iods_len;
	char *bufs;
	size_t bufs_len;
	struct ublk_io *ios;
	unsigned int nr_done;		/* tags with no command any more */
	unsigned int cmd_inflight;	/* ublk commands in flight */
	unsigned int tgt_inflight;	/* target I/Os in flight */
	int tgt_fd;			/* fd or fixed-file index */
	unsigned int tgt_sqe_flags;	/* IOSQE_FIXED_FILE or 0 */
	cpu_set_t cpus;			/* from GET_QUEUE_AFFINITY */
	bool has_cpus;
	pthread_t thread;
	bool created;
	bool joined;
	int exiting;			/* set by the thread just before exit */
};

struct ublk_ctrl {
	int fd;
	struct io_uring ring;
	bool ioctl_encode;		/* UBLK_U_CMD_* instead of 6.1 numbers */
};

struct ublk_tgt_ops {
	const char *name;
	/* before ADD_DEV (or recovery): open backing, fill cfg.size, params */
	int (*init)(struct kublk_dev *dev);
	void (*deinit)(struct kublk_dev *dev);
	/* optional, in the queue thread once its ring exists */
	int (*queue_init)(struct kublk_queue *q);
	/*
	 * A request is in q->iods[tag]. Return 0 once the target owns it
	 * (it calls ublk_complete_io() later or right away), or a negative
	 * errno to fail it at once.
	 */
	int (*queue_io)(struct kublk_queue *q, int tag);
	/* a CQE of target I/O (user_data has KUBLK_UD_TGT) */
	void (*tgt_io_done)(struct kublk_queue *q, int tag,
			    const struct io_uring_cqe *cqe);
};

struct kublk_dev {
	struct kublk_cfg cfg;
	const struct ublk_tgt_ops *ops;
	struct ublksrv_ctrl_dev_info info;	/* as the driver returned it */
	struct ublk_params params;
	struct ublk_ctrl ctrl;
	bool ctrl_open;
	bool recovering;		/* serving after END_USER_RECOVERY */
	int cdev_fd;
	int tgt_fd;			/* loop: backing file */
	bool tgt_sync_writes;		/* loop: pwritev2() in the queue thread */
	int status_fd;			/* daemon: pipe to the parent, or -1 */
	pthread_t main_thread;
	struct kublk_queue *queues;
	/*
	 * queue start-up handshake: each thread sets up its ring and
	 * buffers (nr_prepared counts those done, failed or not), waits for
	 * @go, then maps the descriptors and fetches (nr_started/nr_failed)
	 */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool spawned;
	bool go;
	int go_ret;			/* < 0: exit instead of fetching */
	unsigned int nr_prepared;
	bool prep_failed;
	unsigned int nr_started;
	unsigned int nr_failed;
	/* --hold: requests still to hold, all queues together (atomic) */
	unsigned int hold_left;
};

extern const struct ublk_tgt_ops null_tgt_ops;
extern const struct ublk_tgt_ops loop_tgt_ops;

/* for targets, queue thread context only */
struct io_uring_sqe *kublk_get_sqe(struct kublk_queue *q);
void ublk_complete_io(struct kublk_queue *q, int tag, int res);

static inline void kublk_tgt_sqe_issued(struct kublk_queue *q,
					struct io_uring_sqe *sqe, int tag,
					unsigned int op, unsigned int data)
{
	sqe->flags |= q->tgt_sqe_flags;
	sqe->user_data = kublk_ud(tag, op, data, true);
	q->tgt_inflight++;
}

#endif /* KUBLK_H */
