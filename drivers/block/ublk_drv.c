// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * ublk: a block device served by a userspace process.
 *
 * The server creates a device through /dev/ublk-control, then serves the
 * requests of /dev/ublkbN through io_uring commands on /dev/ublkcN: one
 * command per tag, held by the driver until a request arrives for that
 * tag (FETCH_REQ), then answered and re-armed in one go
 * (COMMIT_AND_FETCH_REQ). Each queue is served by one task, its daemon.
 *
 * With UBLK_F_USER_RECOVERY the block device outlives its server: when a
 * daemon exits, the queue is quiesced, the requests wait, and a new server
 * takes over with START_USER_RECOVERY / END_USER_RECOVERY. With FAIL_IO
 * they fail instead while no server serves the device, as they do once a
 * QUIESCED device's recovery deadline has passed; QUIESCE_DEV retires a
 * living server the same way, without a crash.
 *
 * Locks, outermost first:
 *
 *   ublk_ctl_mutex	the device IDR and ublk_dev_list. An id is reserved
 *			(NULL in the IDR) while ADD_DEV builds the device and
 *			while DEL_DEV takes it down; ublk_dev_list holds every
 *			device the death scan must see, a deleted one until
 *			it is stopped.
 *   ub->ctrl_mutex	serialises the control commands of one device, the
 *			driver's own stop and the answering of parked
 *			commands. Held by stop across del_gendisk(), so
 *			nothing that I/O completion depends on may take it:
 *			the death handler does not, and the partition scan
 *			runs in part_work, outside it.
 *   ub->lock		ub->dev_info.state and .ublksrv_pid, ub->disk (set
 *			and cleared with the state; the death handler reads
 *			the two together), ub->stopping, ub->handover, the
 *			recovery deadline, the parked commands, each queue's
 *			daemon, readiness counters and canceling flag, the
 *			opener of /dev/ublkcN, and the hand-back of a slot
 *			between FREE and FETCHED by anyone but its daemon's
 *			data path. Never held while waiting for the server
 *			or for I/O.
 *
 * Flags read locklessly on the I/O path: ubq->fail_io (no server serves
 * the queue and requests may not wait: set for good by a stop or when
 * the device cannot recover, and in FAIL_IO, where END_USER_RECOVERY
 * clears it, both under ub->lock) and ub->quiescing (set by the death
 * handler or QUIESCE_DEV while it waits for completions to wake it).
 *
 * Who unquiesces the request queue: it is quiesced from a LIVE device's
 * death handling or QUIESCE_DEV until whoever moves the state on, under
 * ub->lock, out of QUIESCED (or out of a finished handover): END to LIVE,
 * the deadline to FAIL_IO, or a stop. FAIL_IO keeps it running, failing
 * each request in ublk_queue_rq().
 *
 * The disk's lifetime: it exists while LIVE and QUIESCED. Whoever ends
 * that (stop, a failed add_disk()) clears ub->disk under ub->lock, then
 * flushes death_work before put_disk(), so a death handler that saw LIVE
 * finishes with the disk first.
 *
 * Who owns an I/O slot (struct ublk_io, one per tag):
 *
 *   state	    command held	request	    owner, next step
 *   FREE	    none		none	    nobody: waits for FETCH_REQ
 *   FETCHED	    yes (io->cmd)	none or	    driver: the next request of
 *					queued	    this tag is handed over by
 *						    completing io->cmd
 *   GET_DATA	    none		yes	    server: owes NEED_GET_DATA
 *   AT_SERVER	    none		yes	    server: owes COMMIT_AND_FETCH
 *
 * While the daemon lives, only it moves a slot out of FETCHED, GET_DATA or
 * AT_SERVER: in the task work that hands over a request and in the
 * commands it issues. Once it is exiting, the death handler owns the
 * slots of its queue; before touching them it waits until no task work of
 * the queue is pending. ublk_abort_fetched() also takes back the FETCHED
 * slots of a live daemon, but only where no request can reach them: with
 * the queue quiesced and every queue settled (the death handler and
 * QUIESCE_DEV, which alone handles a death during a handover), or with
 * the disk deleted (stop). A FETCHED slot moves on only when a request
 * arrives, so the daemon cannot race with it there.
 *
 * Death detection: 6.1 gives a driver no callback when the task that
 * issued an io_uring command exits, and its io_uring cancels nothing of a
 * uring_cmd. The driver listens to the sched_process_exit tracepoint: a
 * task that has an io_uring context and exits while daemons exist kicks a
 * scan of the devices. Nothing runs periodically.
 */

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/idr.h>
#include <linux/io_uring.h>
#include <linux/io_uring_types.h>
#include <linux/llist.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/nospec.h>
#include <linux/sched/task.h>
#include <linux/task_work.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <uapi/linux/ublk_cmd.h>

#define UBLK_MINORS		BIT(MINORBITS)
#define UBLK_MAX_NR_QUEUES	4096
#define UBLK_MAX_IO_BUF_BYTES	SZ_1M

/* flags ADD_DEV accepts; ZERO_COPY is accepted and cleared, as in 6.1 */
#define UBLK_F_ALL (UBLK_F_SUPPORT_ZERO_COPY | UBLK_F_URING_CMD_COMP_IN_TASK | \
		    UBLK_F_NEED_GET_DATA | UBLK_F_USER_RECOVERY | \
		    UBLK_F_USER_RECOVERY_REISSUE | UBLK_F_CMD_IOCTL_ENCODE | \
		    UBLK_F_USER_RECOVERY_FAIL_IO | UBLK_F_QUIESCE)
/* flags GET_FEATURES reports */
#define UBLK_F_SUPPORTED	(UBLK_F_ALL & ~UBLK_F_SUPPORT_ZERO_COPY)

/* the control commands this driver knows, as a mask of opcodes */
#define UBLK_CTRL_OPS	(BIT(UBLK_CMD_GET_QUEUE_AFFINITY) | \
			 BIT(UBLK_CMD_GET_DEV_INFO) | BIT(UBLK_CMD_ADD_DEV) | \
			 BIT(UBLK_CMD_DEL_DEV) | BIT(UBLK_CMD_START_DEV) | \
			 BIT(UBLK_CMD_STOP_DEV) | BIT(UBLK_CMD_SET_PARAMS) | \
			 BIT(UBLK_CMD_GET_PARAMS) | \
			 BIT(UBLK_CMD_START_USER_RECOVERY) | \
			 BIT(UBLK_CMD_END_USER_RECOVERY) | \
			 BIT(UBLK_CMD_GET_DEV_INFO2) | \
			 BIT(UBLK_CMD_GET_FEATURES) | \
			 BIT(UBLK_CMD_QUIESCE_DEV))

#define UBLK_PARAM_TYPE_ALL	(UBLK_PARAM_TYPE_BASIC | UBLK_PARAM_TYPE_DISCARD)
#define UBLK_ATTR_ALL		(UBLK_ATTR_READ_ONLY | UBLK_ATTR_ROTATIONAL | \
				 UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA)

/* a planned handover (QUIESCE_DEV) of a LIVE device; ub->lock */
enum ublk_handover {
	UBLK_HANDOVER_NONE,
	UBLK_HANDOVER_DRAINING,	/* QUIESCE_DEV waits for the server */
	UBLK_HANDOVER_DONE,	/* QUIESCED when /dev/ublkcN is released */
};

enum ublk_io_state {
	UBLK_IO_FREE,
	UBLK_IO_FETCHED,
	UBLK_IO_GET_DATA,
	UBLK_IO_AT_SERVER,
};

/* per-request driver data */
struct ublk_rq_data {
	struct llist_node	node;	/* in ubq->rq_list until handed over */
};

/* per-command driver data, in io_uring_cmd.pdu */
struct ublk_uring_cmd_pdu {
	struct ublk_queue	*ubq;
};

struct ublk_io {
	u64			addr;	/* the server's buffer for this tag */
	struct io_uring_cmd	*cmd;	/* the held command, FETCHED only */
	/*
	 * enum ublk_io_state. Out of AT_SERVER and GET_DATA only by
	 * cmpxchg(): the daemon's answer and an abort race for the request.
	 */
	int			state;
};

struct ublk_queue {
	struct ublk_device	*dev;
	u16			q_id;
	u16			q_depth;
	unsigned long		flags;		/* ub->dev_info.flags */

	/* q_depth descriptors, mapped read-only by the server */
	struct ublksrv_io_desc	*io_desc;

	/* the task serving this queue, with a reference; ub->lock */
	struct task_struct	*daemon;

	/* requests waiting for the daemon's task work, newest first */
	struct llist_head	rq_list;
	struct callback_head	tw;
	/* task works queued and not finished; the death handler waits */
	atomic_t		nr_tw;

	/* slots fetched since the queue was (re)started; ub->lock */
	unsigned int		nr_io_ready;
	/* stopped: FETCH_REQ is refused; ub->lock */
	bool			canceling;
	/*
	 * no server serves the queue and requests may not wait: set by a
	 * stop for good, and in FAIL_IO until END_USER_RECOVERY
	 */
	bool			fail_io;

	struct ublk_io		ios[];
};

/*
 * A START_DEV or END_USER_RECOVERY that has to wait for the server is
 * parked here instead of sleeping in its submitter's io_uring_enter():
 * whoever makes it answerable completes it (the FETCH_REQ that makes the
 * device ready, a stop, the death of the awaited server, the exit of the
 * submitter), so no task blocks on it.
 */
struct ublk_parked_cmd {
	struct io_uring_cmd	*cmd;
	struct task_struct	*task;		/* the submitter, referenced */
	int			pid;		/* data[0] */
};

struct ublk_device {
	struct gendisk		*disk;		/* LIVE and QUIESCED only */
	struct blk_mq_tag_set	tag_set;
	struct ublk_queue	**queues;

	/* state and ublksrv_pid change under ub->lock */
	struct ublksrv_ctrl_dev_info dev_info;
	struct ublk_params	params;		/* ub->ctrl_mutex */

	/* /dev/ublkcN; its refcount is the device's */
	struct device		cdev_dev;
	struct cdev		cdev;
	/* the one open file of /dev/ublkcN, if any; ub->lock */
	struct file		*cdev_file;

	struct mutex		ctrl_mutex;	/* see the top of the file */
	struct mutex		lock;		/* see the top of the file */

	/* queues whose every slot is fetched; ub->lock */
	unsigned int		nr_queues_ready;
	/* STOP_DEV or DEL_DEV has begun: no more requeueing; ub->lock */
	bool			stopping;
	/* a death or a handover is being handled: completions wake ub->wait */
	bool			quiescing;
	/* enum ublk_handover; ub->lock */
	u8			handover;
	/* the death handler waits here for task works and in-flight I/O */
	wait_queue_head_t	wait;

	struct work_struct	death_work;	/* a daemon is exiting */
	struct work_struct	stop_work;	/* no recovery: stop ourselves */

	/* a stop waits too long for a living server: fail what it holds */
	struct delayed_work	abort_work;

	/* the recovery deadline: ms QUIESCED before FAIL_IO, 0 for never */
	unsigned int		recovery_timeout_ms;
	/* when it falls, if deadline_armed; both ub->lock */
	unsigned long		deadline;
	bool			deadline_armed;
	struct delayed_work	deadline_work;

	/* parked START_DEV and END_USER_RECOVERY; ub->lock */
	struct ublk_parked_cmd	start_cmd;
	struct ublk_parked_cmd	end_cmd;
	/* every queue got ready while a command is parked */
	struct work_struct	ready_work;
	/* the partition scan, after START_DEV: never under ctrl_mutex */
	struct work_struct	part_work;

	/* in ublk_dev_list from ADD_DEV until DEL_DEV has stopped it */
	struct list_head	node;
	/* the last reference is gone: free on ublk_wq, never inline */
	struct work_struct	free_work;
};

static DEFINE_MUTEX(ublk_ctl_mutex);
/* id -> device; NULL while the id is being added or deleted */
static DEFINE_IDR(ublk_index_idr);
/* every device the death scan must see, deleted ones until stopped */
static LIST_HEAD(ublk_dev_list);
static dev_t ublk_chr_devt;
static struct class *ublk_chr_class;

/* devices not yet freed; module exit waits for zero */
static atomic_t ublk_nr_devs = ATOMIC_INIT(0);
static DECLARE_WAIT_QUEUE_HEAD(ublk_devs_wq);
/* frees, partition scans, parked commands, stop aborts; flushed at exit */
static struct workqueue_struct *ublk_wq;

/* daemon references held; the exit probe does nothing while zero */
static atomic_t ublk_nr_daemons = ATOMIC_INIT(0);
/* parked commands; their submitters' exit is watched as well */
static atomic_t ublk_nr_parked = ATOMIC_INIT(0);
static struct tracepoint *ublk_exit_tp;
static void ublk_scan_work_fn(struct work_struct *work);
static void ublk_ready_work_fn(struct work_struct *work);
static void ublk_part_work_fn(struct work_struct *work);
static DECLARE_WORK(ublk_scan_work, ublk_scan_work_fn);

static const struct block_device_operations ublk_bd_ops;
static struct miscdevice ublk_misc;

/*
 * How long a living server may keep requests unanswered once they must
 * end: the device is being stopped, or another queue's server died. Then
 * they fail (or, with REISSUE, wait for the next server), so STOP_DEV,
 * DEL_DEV and the death handler never wait for a server that will not
 * answer: one that hangs, exec()s or closed its ring.
 */
static unsigned int ublk_abort_timeout_ms = 10000;
module_param_named(abort_timeout_ms, ublk_abort_timeout_ms, uint, 0644);
MODULE_PARM_DESC(abort_timeout_ms,
		 "ms a living server may hold requests of a stopping device, or while another queue's server is gone, before they fail (min 100). Default: 10000");

/*
 * The default recovery deadline of a new device (sysfs: each device's
 * recovery_timeout_ms): how long it may stay QUIESCED before the requests
 * that wait and every new one fail, as in FAIL_IO, until a recovery.
 */
static unsigned int ublk_recovery_timeout_ms;
module_param_named(recovery_timeout_ms, ublk_recovery_timeout_ms, uint, 0644);
MODULE_PARM_DESC(recovery_timeout_ms,
		 "ms a new device may wait for a new server before waiting and new I/O fail (it stays recoverable); 0 waits forever. Default: 0");

static unsigned long ublk_abort_timeout(void)
{
	return msecs_to_jiffies(max(READ_ONCE(ublk_abort_timeout_ms), 100U));
}

/* ---- small predicates ---- */

static inline struct ublk_queue *ublk_get_queue(struct ublk_device *ub,
						unsigned int q_id)
{
	return ub->queues[q_id];
}

static inline struct ublksrv_io_desc *ublk_get_iod(struct ublk_queue *ubq,
						   unsigned int tag)
{
	return &ubq->io_desc[tag];
}

static inline struct ublk_uring_cmd_pdu *ublk_cmd_pdu(struct io_uring_cmd *cmd)
{
	return (struct ublk_uring_cmd_pdu *)cmd->pdu;
}

static inline bool ublk_dev_can_recover(const struct ublk_device *ub)
{
	return ub->dev_info.flags & UBLK_F_USER_RECOVERY;
}

static inline bool ublk_queue_can_reissue(const struct ublk_queue *ubq)
{
	return ubq->flags & UBLK_F_USER_RECOVERY_REISSUE;
}

static inline bool ublk_queue_need_get_data(const struct ublk_queue *ubq)
{
	return ubq->flags & UBLK_F_NEED_GET_DATA;
}

/* may a request the server has not seen wait for a new server? */
static inline bool ublk_queue_may_requeue(const struct ublk_queue *ubq)
{
	return (ubq->flags & UBLK_F_USER_RECOVERY) &&
		!READ_ONCE(ubq->dev->stopping);
}

static inline bool ublk_daemon_is_dying(struct task_struct *daemon)
{
	return !daemon || (daemon->flags & PF_EXITING);
}

static inline bool ublk_queue_daemon_dying(const struct ublk_queue *ubq)
{
	return ublk_daemon_is_dying(READ_ONCE(ubq->daemon));
}

static inline bool ublk_dev_ready(const struct ublk_device *ub)
{
	return READ_ONCE(ub->nr_queues_ready) == ub->dev_info.nr_hw_queues;
}

static inline int ublk_dev_state(struct ublk_device *ub)
{
	return READ_ONCE(ub->dev_info.state);
}

/* QUIESCED or FAIL_IO: a new server may take over */
static inline bool ublk_dev_waits_for_server(struct ublk_device *ub)
{
	int state = ublk_dev_state(ub);

	return state == UBLK_S_DEV_QUIESCED || state == UBLK_S_DEV_FAIL_IO;
}

static inline unsigned int ublk_queue_cmd_buf_size(const struct ublk_device *ub)
{
	return round_up(ub->dev_info.queue_depth *
			sizeof(struct ublksrv_io_desc), PAGE_SIZE);
}

/* the mmap stride between two queues' descriptor arrays (6.1 ABI) */
static inline unsigned int ublk_max_cmd_buf_size(void)
{
	return round_up(UBLK_MAX_QUEUE_DEPTH * sizeof(struct ublksrv_io_desc),
			PAGE_SIZE);
}

static const char * const ublk_state_names[] = {
	[UBLK_S_DEV_DEAD]	= "DEAD",
	[UBLK_S_DEV_LIVE]	= "LIVE",
	[UBLK_S_DEV_QUIESCED]	= "QUIESCED",
	[UBLK_S_DEV_FAIL_IO]	= "FAIL_IO",
};

/*
 * The only place the device state changes. Each change is announced with
 * a KOBJ_CHANGE uevent of /dev/ublkcN (UBLK_DEV_ID=, UBLK_STATE=), so that
 * udev or systemd can start a new server without a supervisor.
 */
static void ublk_set_state(struct ublk_device *ub, u16 state)
{
	char id_env[24], state_env[24], *envp[3];
	bool changed = ub->dev_info.state != state;

	lockdep_assert_held(&ub->lock);
	WRITE_ONCE(ub->dev_info.state, state);
	wake_up_all(&ub->wait);
	if (!changed)
		return;
	snprintf(id_env, sizeof(id_env), "UBLK_DEV_ID=%u", ub->dev_info.dev_id);
	snprintf(state_env, sizeof(state_env), "UBLK_STATE=%s",
		 ublk_state_names[state]);
	envp[0] = id_env;
	envp[1] = state_env;
	envp[2] = NULL;
	kobject_uevent_env(&ub->cdev_dev.kobj, KOBJ_CHANGE, envp);
}

static bool __ublk_dev_has_dying_daemon(struct ublk_device *ub)
{
	struct ublk_queue *ubq;
	int i;

	lockdep_assert_held(&ub->lock);
	for (i = 0; i < ub->dev_info.nr_hw_queues; i++) {
		ubq = ublk_get_queue(ub, i);
		if (ubq->daemon && (ubq->daemon->flags & PF_EXITING))
			return true;
	}
	return false;
}

static bool ublk_dev_has_dying_daemon(struct ublk_device *ub)
{
	bool dying;

	mutex_lock(&ub->lock);
	dying = __ublk_dev_has_dying_daemon(ub);
	mutex_unlock(&ub->lock);
	return dying;
}

/* Park @cmd in @pc; the caller returns -EIOCBQUEUED. */
static void __ublk_park(struct ublk_device *ub, struct ublk_parked_cmd *pc,
			struct io_uring_cmd *cmd, int pid)
{
	lockdep_assert_held(&ub->lock);
	/* the task that submitted it, also when it was issued from io-wq */
	pc->task = get_task_struct(cmd_to_io_kiocb(cmd)->task);
	pc->cmd = cmd;
	pc->pid = pid;
	atomic_inc(&ublk_nr_parked);
}

/* Take the command out of @pc, if any; complete it with ublk_answer(). */
static struct io_uring_cmd *__ublk_unpark(struct ublk_device *ub,
					  struct ublk_parked_cmd *pc, int *pid)
{
	struct io_uring_cmd *cmd = pc->cmd;

	lockdep_assert_held(&ub->lock);
	if (!cmd)
		return NULL;
	if (pid)
		*pid = pc->pid;
	put_task_struct(pc->task);
	pc->task = NULL;
	pc->cmd = NULL;
	atomic_dec(&ublk_nr_parked);
	return cmd;
}

static void ublk_answer(struct io_uring_cmd *cmd, int res)
{
	if (cmd)
		io_uring_cmd_done(cmd, res, 0, IO_URING_F_UNLOCKED);
}

/* Answer both parked commands, if any, with @start_res and @end_res. */
static void ublk_unpark_all(struct ublk_device *ub, int start_res, int end_res)
{
	struct io_uring_cmd *start, *end;

	mutex_lock(&ub->lock);
	start = __ublk_unpark(ub, &ub->start_cmd, NULL);
	end = __ublk_unpark(ub, &ub->end_cmd, NULL);
	mutex_unlock(&ub->lock);
	ublk_answer(start, start_res);
	ublk_answer(end, end_res);
}

/* Answer -EINTR to a parked command whose submitter is exiting. */
static void ublk_unpark_exiting(struct ublk_device *ub)
{
	struct io_uring_cmd *start = NULL, *end = NULL;

	mutex_lock(&ub->lock);
	if (ub->start_cmd.cmd && (ub->start_cmd.task->flags & PF_EXITING))
		start = __ublk_unpark(ub, &ub->start_cmd, NULL);
	if (ub->end_cmd.cmd && (ub->end_cmd.task->flags & PF_EXITING))
		end = __ublk_unpark(ub, &ub->end_cmd, NULL);
	mutex_unlock(&ub->lock);
	ublk_answer(start, -EINTR);
	ublk_answer(end, -EINTR);
}

/* ---- data path ---- */

/* what the server is told of a request: block layer bit -> uapi bit */
static const struct {
	blk_opf_t	req;
	u32		ublk;
} ublk_flag_map[] = {
	{ REQ_FAILFAST_DEV,		UBLK_IO_F_FAILFAST_DEV },
	{ REQ_FAILFAST_TRANSPORT,	UBLK_IO_F_FAILFAST_TRANSPORT },
	{ REQ_FAILFAST_DRIVER,		UBLK_IO_F_FAILFAST_DRIVER },
	{ REQ_META,			UBLK_IO_F_META },
	{ REQ_FUA,			UBLK_IO_F_FUA },
	{ REQ_NOUNMAP,			UBLK_IO_F_NOUNMAP },
	{ REQ_SWAP,			UBLK_IO_F_SWAP },
};

/* the operations a server serves: block layer op -> UBLK_IO_OP_* */
static const struct {
	enum req_op	req;
	u8		ublk;
} ublk_op_map[] = {
	{ REQ_OP_READ,		UBLK_IO_OP_READ },
	{ REQ_OP_WRITE,		UBLK_IO_OP_WRITE },
	{ REQ_OP_FLUSH,		UBLK_IO_OP_FLUSH },
	{ REQ_OP_DISCARD,	UBLK_IO_OP_DISCARD },
	{ REQ_OP_WRITE_ZEROES,	UBLK_IO_OP_WRITE_ZEROES },
};

/*
 * Describe @rq in its slot's descriptor, which the server reads once the
 * request is handed over. False for an operation servers do not know.
 */
static bool ublk_describe_rq(struct ublk_queue *ubq, struct request *rq)
{
	struct ublksrv_io_desc *iod = ublk_get_iod(ubq, rq->tag);
	unsigned int i;
	u32 op_flags;

	for (i = 0; i < ARRAY_SIZE(ublk_op_map); i++)
		if (ublk_op_map[i].req == req_op(rq))
			break;
	if (i == ARRAY_SIZE(ublk_op_map))
		return false;
	op_flags = ublk_op_map[i].ublk;
	for (i = 0; i < ARRAY_SIZE(ublk_flag_map); i++)
		if (rq->cmd_flags & ublk_flag_map[i].req)
			op_flags |= ublk_flag_map[i].ublk;

	iod->op_flags = op_flags;
	iod->start_sector = blk_rq_pos(rq);
	iod->nr_sectors = blk_rq_sectors(rq);
	return true;
}

/*
 * Copy @bytes of @rq's data to (WRITE) or from (READ) the server's buffer
 * at @uaddr. Runs in the daemon's context, so the user address is its own.
 */
static bool ublk_copy_rq_data(struct request *rq, u64 uaddr, unsigned int bytes,
			      bool to_server)
{
	struct req_iterator iter;
	struct bio_vec bv;
	unsigned int done = 0;

	rq_for_each_segment(bv, rq, iter) {
		unsigned int len = min(bv.bv_len, bytes - done);
		void __user *ubuf = u64_to_user_ptr(uaddr + done);
		unsigned long left;
		void *kaddr;

		if (!len)
			break;
		kaddr = bvec_kmap_local(&bv);
		if (to_server)
			left = copy_to_user(ubuf, kaddr, len);
		else
			left = copy_from_user(kaddr, ubuf, len);
		kunmap_local(kaddr);
		if (left)
			return false;
		done += len;
	}
	return true;
}

/*
 * A request that has not reached the server: it waits for the next server
 * if the device can recover, else it fails.
 */
static void ublk_abort_unsent_rq(struct ublk_queue *ubq, struct request *rq)
{
	if (ublk_queue_may_requeue(ubq))
		blk_mq_requeue_request(rq, false);
	else
		blk_mq_end_request(rq, BLK_STS_IOERR);
}

/* A request the dead server had received: reissued only with REISSUE. */
static void ublk_abort_sent_rq(struct ublk_queue *ubq, struct request *rq)
{
	if (ublk_queue_can_reissue(ubq) && ublk_queue_may_requeue(ubq))
		blk_mq_requeue_request(rq, false);
	else
		blk_mq_end_request(rq, BLK_STS_IOERR);
}

/* Hand @rq to the server: copy its data, then complete the held command. */
static void ublk_start_io(struct ublk_queue *ubq, struct request *rq,
			  struct ublk_io *io, unsigned int issue_flags)
{
	struct io_uring_cmd *cmd = io->cmd;

	if (req_op(rq) == REQ_OP_WRITE &&
	    !ublk_copy_rq_data(rq, io->addr, blk_rq_bytes(rq), true)) {
		/*
		 * A bad buffer fails the request; the command stays. Or the
		 * daemon is being killed: a fatal signal makes the fault on
		 * its buffer give up (its mmap lock contended), and the
		 * request, which never reached it, waits for the next server.
		 */
		if (fatal_signal_pending(current))
			ublk_abort_unsent_rq(ubq, rq);
		else
			blk_mq_end_request(rq, BLK_STS_IOERR);
		return;
	}

	ublk_get_iod(ubq, rq->tag)->addr = io->addr;
	io->cmd = NULL;
	WRITE_ONCE(io->state, UBLK_IO_AT_SERVER);
	io_uring_cmd_done(cmd, UBLK_IO_RES_OK, 0, issue_flags);
}

static void ublk_dispatch_rq(struct ublk_queue *ubq, struct request *rq,
			     unsigned int issue_flags)
{
	struct ublk_io *io = &ubq->ios[rq->tag];
	struct io_uring_cmd *cmd;

	/*
	 * Check current, not the daemon: io_uring runs the work from a
	 * kworker once the daemon is past its last task_work_run(), and an
	 * exiting daemon can no longer take requests.
	 */
	if (unlikely(current != READ_ONCE(ubq->daemon) ||
		     (current->flags & PF_EXITING))) {
		ublk_abort_unsent_rq(ubq, rq);
		return;
	}
	/* a stop gave up on the server: nothing more goes to it */
	if (unlikely(READ_ONCE(ubq->fail_io))) {
		blk_mq_end_request(rq, BLK_STS_IOERR);
		return;
	}

	if (ublk_queue_need_get_data(ubq) && req_op(rq) == REQ_OP_WRITE) {
		cmd = io->cmd;
		io->cmd = NULL;
		WRITE_ONCE(io->state, UBLK_IO_GET_DATA);
		io_uring_cmd_done(cmd, UBLK_IO_RES_NEED_GET_DATA, 0, issue_flags);
		return;
	}
	ublk_start_io(ubq, rq, io, issue_flags);
}

static void ublk_dispatch_list(struct ublk_queue *ubq, unsigned int issue_flags)
{
	struct llist_node *list = llist_del_all(&ubq->rq_list);
	struct ublk_rq_data *data, *next;

	list = llist_reverse_order(list);
	llist_for_each_entry_safe(data, next, list, node)
		ublk_dispatch_rq(ubq, blk_mq_rq_from_pdu(data), issue_flags);
}

static void ublk_tw_done(struct ublk_queue *ubq)
{
	struct ublk_device *ub = ubq->dev;

	/*
	 * The put below may drop the last reference and let module exit go
	 * on: exit waits for an RCU grace period after the last free, so
	 * this tail of module code runs in a read-side section. The release
	 * it may call only queues the free.
	 */
	rcu_read_lock();
	/* pairs with the barrier of the death handler's wait_event() */
	if (atomic_dec_and_test(&ubq->nr_tw) && unlikely(READ_ONCE(ub->quiescing)))
		wake_up_all(&ub->wait);
	/* the reference taken when the work was queued */
	put_device(&ub->cdev_dev);
	rcu_read_unlock();
}

static void ublk_tw_fn(struct callback_head *head)
{
	struct ublk_queue *ubq = container_of(head, struct ublk_queue, tw);

	ublk_dispatch_list(ubq, IO_URING_F_UNLOCKED);
	ublk_tw_done(ubq);
}

static void ublk_cmd_tw_fn(struct io_uring_cmd *cmd, unsigned int issue_flags)
{
	struct ublk_queue *ubq = ublk_cmd_pdu(cmd)->ubq;

	ublk_dispatch_list(ubq, issue_flags);
	ublk_tw_done(ubq);
}

/*
 * Hand over through io_uring's task work on @cmd's ring? Not on a
 * DEFER_TASKRUN ring: only its one submitter runs that work, while it
 * waits in the ring; if that thread dies and the process keeps the ring,
 * the work never runs and the death handler would wait for it forever.
 * The daemon's own task work always runs, at the latest in its exit.
 */
static bool ublk_hand_over_in_ring(const struct ublk_queue *ubq,
				   struct io_uring_cmd *cmd)
{
	return (ubq->flags & UBLK_F_URING_CMD_COMP_IN_TASK) &&
		!(cmd_to_io_kiocb(cmd)->ctx->flags & IORING_SETUP_DEFER_TASKRUN);
}

/*
 * Queue @rq for the daemon. Only the request that finds the list empty
 * queues a task work; the work hands over everything queued by then.
 */
static void ublk_queue_to_daemon(struct ublk_queue *ubq, struct request *rq)
{
	struct ublk_rq_data *data = blk_mq_rq_to_pdu(rq);
	struct io_uring_cmd *cmd = ubq->ios[rq->tag].cmd;

	if (!llist_add(&data->node, &ubq->rq_list))
		return;

	get_device(&ubq->dev->cdev_dev);
	atomic_inc(&ubq->nr_tw);
	if (ublk_hand_over_in_ring(ubq, cmd)) {
		/* the slot is FETCHED: its command is ours to use */
		io_uring_cmd_complete_in_task(cmd, ublk_cmd_tw_fn);
		return;
	}
	if (task_work_add(ubq->daemon, &ubq->tw, TWA_SIGNAL_NO_IPI)) {
		/* the daemon ran its last task work: nobody else will */
		ublk_dispatch_list(ubq, IO_URING_F_UNLOCKED);
		ublk_tw_done(ubq);
	}
}

static blk_status_t ublk_queue_rq(struct blk_mq_hw_ctx *hctx,
				  const struct blk_mq_queue_data *bd)
{
	struct ublk_queue *ubq = hctx->driver_data;
	struct request *rq = bd->rq;

	/* no server will come: fail before anything is set up */
	if (unlikely(READ_ONCE(ubq->fail_io)))
		return BLK_STS_IOERR;
	if (unlikely(!ublk_describe_rq(ubq, rq)))
		return BLK_STS_NOTSUPP;

	blk_mq_start_request(rq);
	if (likely(!ublk_queue_daemon_dying(ubq)))
		ublk_queue_to_daemon(ubq, rq);
	else
		ublk_abort_unsent_rq(ubq, rq);
	return BLK_STS_OK;
}

/* the tag set's driver_data is ub->queues: hardware queue i is ours i */
static int ublk_init_hctx(struct blk_mq_hw_ctx *hctx, void *queues,
			  unsigned int hctx_idx)
{
	hctx->driver_data = ((struct ublk_queue **)queues)[hctx_idx];
	return 0;
}

static const struct blk_mq_ops ublk_mq_ops = {
	.init_hctx	= ublk_init_hctx,
	.queue_rq	= ublk_queue_rq,
};

/* Complete @rq with the server's @res; runs in the daemon's context. */
static void ublk_complete_rq(struct ublk_queue *ubq, struct request *rq,
			     u64 buf, int res)
{
	unsigned int bytes;

	if (res < 0) {
		blk_mq_end_request(rq, errno_to_blk_status(res));
		return;
	}

	if (req_op(rq) != REQ_OP_READ && req_op(rq) != REQ_OP_WRITE) {
		blk_mq_end_request(rq, BLK_STS_OK);
		return;
	}

	/* a read or write that moved nothing would be retried forever */
	if (!res) {
		blk_mq_end_request(rq, BLK_STS_IOERR);
		return;
	}

	bytes = min_t(unsigned int, res, blk_rq_bytes(rq));
	if (req_op(rq) == REQ_OP_READ &&
	    !ublk_copy_rq_data(rq, buf, bytes, false)) {
		/* a daemon being killed: as if it had died holding @rq */
		if (fatal_signal_pending(current))
			ublk_abort_sent_rq(ubq, rq);
		else
			blk_mq_end_request(rq, BLK_STS_IOERR);
		return;
	}

	/* a short transfer: the rest goes to the server again */
	if (blk_update_request(rq, BLK_STS_OK, bytes))
		blk_mq_requeue_request(rq, true);
	else
		__blk_mq_end_request(rq, BLK_STS_OK);
}

/* ---- I/O commands on /dev/ublkcN ---- */

static int ublk_io_fetch(struct ublk_queue *ubq, struct ublk_io *io,
			 struct io_uring_cmd *cmd, u64 addr)
{
	struct ublk_device *ub = ubq->dev;
	int ret = -EIOCBQUEUED;

	/* without NEED_GET_DATA a write is copied to addr at once */
	if (!addr && !ublk_queue_need_get_data(ubq))
		return -EINVAL;
	/*
	 * The daemon's death must reach the exit probe. An io-wq worker
	 * (IOSQE_ASYNC, IOSQE_IO_DRAIN) has no io_uring context, so the probe
	 * ignores it; an SQPOLL thread, when its process dies, first waits
	 * in io_uring's cancellation for the very commands it holds here and
	 * never gets to exit; an exiting task is past the probe already.
	 */
	if (!current->io_uring ||
	    (current->flags & (PF_IO_WORKER | PF_EXITING)))
		return -EINVAL;

	mutex_lock(&ub->lock);
	if (ubq->canceling) {
		ret = -ENODEV;
		goto out;
	}
	/* a handover took the server's slots back: it may not fetch again */
	if (ub->handover) {
		ret = -EBUSY;
		goto out;
	}
	if (ubq->daemon && ubq->daemon != current) {
		ret = -EINVAL;
		goto out;
	}
	if (io->state != UBLK_IO_FREE) {
		ret = -EBUSY;
		goto out;
	}
	if (!ubq->daemon) {
		ubq->daemon = get_task_struct(current);
		atomic_inc(&ublk_nr_daemons);
	}

	io->cmd = cmd;
	io->addr = addr;
	io->state = UBLK_IO_FETCHED;
	if (++ubq->nr_io_ready == ubq->q_depth) {
		WRITE_ONCE(ub->nr_queues_ready, ub->nr_queues_ready + 1);
		if (ublk_dev_ready(ub) &&
		    (ub->start_cmd.cmd || ub->end_cmd.cmd))
			queue_work(ublk_wq, &ub->ready_work);
	}
out:
	mutex_unlock(&ub->lock);
	return ret;
}

static int ublk_io_commit(struct ublk_queue *ubq, struct ublk_io *io,
			  struct io_uring_cmd *cmd,
			  const struct ublksrv_io_cmd *ub_cmd)
{
	struct ublk_device *ub = ubq->dev;
	struct request *rq;
	u64 buf = io->addr;

	/* an abort may have taken the request: then it is no longer ours */
	if (cmpxchg(&io->state, UBLK_IO_AT_SERVER, UBLK_IO_FREE) !=
	    UBLK_IO_AT_SERVER)
		return -EINVAL;
	rq = blk_mq_tag_to_rq(ub->tag_set.tags[ubq->q_id], ub_cmd->tag);
	if (WARN_ON_ONCE(!rq))
		return -EINVAL;

	/* re-arm before completing: the tag may be reused at once */
	io->cmd = cmd;
	io->addr = ub_cmd->addr;
	WRITE_ONCE(io->state, UBLK_IO_FETCHED);
	ublk_complete_rq(ubq, rq, buf, ub_cmd->result);

	if (unlikely(READ_ONCE(ub->quiescing)))
		wake_up_all(&ub->wait);
	return -EIOCBQUEUED;
}

static int ublk_io_get_data(struct ublk_queue *ubq, struct ublk_io *io,
			    const struct ublksrv_io_cmd *ub_cmd)
{
	struct request *rq;

	/* claimed as COMMIT claims: an abort may race for the request */
	if (cmpxchg(&io->state, UBLK_IO_GET_DATA, UBLK_IO_FREE) !=
	    UBLK_IO_GET_DATA)
		return -EINVAL;
	rq = blk_mq_tag_to_rq(ubq->dev->tag_set.tags[ubq->q_id], ub_cmd->tag);
	if (WARN_ON_ONCE(!rq))
		return -EINVAL;

	/* a bad buffer leaves the slot waiting for a better one */
	if (!ublk_copy_rq_data(rq, ub_cmd->addr, blk_rq_bytes(rq), true)) {
		WRITE_ONCE(io->state, UBLK_IO_GET_DATA);
		return -EFAULT;
	}

	io->addr = ub_cmd->addr;
	ublk_get_iod(ubq, ub_cmd->tag)->addr = io->addr;
	WRITE_ONCE(io->state, UBLK_IO_AT_SERVER);
	return UBLK_IO_RES_OK;
}

/*
 * Both the 6.1 plain opcodes and the later ioctl encoding are accepted:
 * @cmd_op must be either the bare number or _IOC(dir, 'u', nr, @size).
 */
static int ublk_decode_op(u32 cmd_op, size_t size)
{
	if (!(cmd_op & ~_IOC_NRMASK))
		return cmd_op;
	if (_IOC_TYPE(cmd_op) != 'u' || _IOC_SIZE(cmd_op) != size)
		return -EOPNOTSUPP;
	return _IOC_NR(cmd_op);
}

static int ublk_ch_uring_cmd(struct io_uring_cmd *cmd, unsigned int issue_flags)
{
	struct ublk_device *ub = cmd->file->private_data;
	const struct ublksrv_io_cmd *src = cmd->cmd;
	struct ublksrv_io_cmd ub_cmd;
	struct ublk_queue *ubq;
	struct ublk_io *io;
	int op;

	/* the SQE is shared with userspace: read each field once */
	ub_cmd.q_id = READ_ONCE(src->q_id);
	ub_cmd.tag = READ_ONCE(src->tag);
	ub_cmd.result = READ_ONCE(src->result);
	ub_cmd.addr = READ_ONCE(src->addr);

	op = ublk_decode_op(cmd->cmd_op, sizeof(ub_cmd));
	if (op != UBLK_IO_FETCH_REQ && op != UBLK_IO_COMMIT_AND_FETCH_REQ &&
	    op != UBLK_IO_NEED_GET_DATA)
		return -EOPNOTSUPP;

	if (ub_cmd.q_id >= ub->dev_info.nr_hw_queues)
		return -EINVAL;
	ubq = ublk_get_queue(ub, array_index_nospec(ub_cmd.q_id,
						    ub->dev_info.nr_hw_queues));
	if (ub_cmd.tag >= ubq->q_depth)
		return -EINVAL;
	io = &ubq->ios[array_index_nospec(ub_cmd.tag, ubq->q_depth)];

	ublk_cmd_pdu(cmd)->ubq = ubq;
	if (op == UBLK_IO_FETCH_REQ)
		return ublk_io_fetch(ubq, io, cmd, ub_cmd.addr);

	/* only the daemon may answer; it cannot change under its own feet */
	if (READ_ONCE(ubq->daemon) != current)
		return -EINVAL;
	if (op == UBLK_IO_COMMIT_AND_FETCH_REQ)
		return ublk_io_commit(ubq, io, cmd, &ub_cmd);
	if (!ublk_queue_need_get_data(ubq))
		return -EINVAL;
	return ublk_io_get_data(ubq, io, &ub_cmd);
}

/* ---- /dev/ublkcN file operations ---- */

/*
 * One server at a time: the first open owns /dev/ublkcN until its file is
 * released (by then the server's io_uring, which holds the file through
 * every command, is gone). START_USER_RECOVERY checks the same field.
 */
static int ublk_ch_open(struct inode *inode, struct file *filp)
{
	struct ublk_device *ub = container_of(inode->i_cdev,
					      struct ublk_device, cdev);
	int ret = 0;

	mutex_lock(&ub->lock);
	if (ub->cdev_file)
		ret = -EBUSY;
	else
		ub->cdev_file = filp;
	mutex_unlock(&ub->lock);
	filp->private_data = ub;
	return ret;
}

static void ublk_enter_quiesced(struct ublk_device *ub);

static int ublk_ch_release(struct inode *inode, struct file *filp)
{
	struct ublk_device *ub = filp->private_data;

	mutex_lock(&ub->lock);
	if (ub->cdev_file == filp) {
		ub->cdev_file = NULL;
		/* a handover ends when the old server lets go of the device */
		if (ub->handover == UBLK_HANDOVER_DONE && !ub->stopping)
			ublk_enter_quiesced(ub);
	}
	mutex_unlock(&ub->lock);
	return 0;
}

/*
 * The queue whose descriptors start at @vma's offset (one stride of
 * UBLK_MAX_QUEUE_DEPTH descriptors per queue, 6.1 layout), if the mapping
 * is read-only and no longer than its array.
 */
static struct ublk_queue *ublk_mmap_queue(struct ublk_device *ub,
					  const struct vm_area_struct *vma)
{
	u64 off = ((u64)vma->vm_pgoff << PAGE_SHIFT) - UBLKSRV_CMD_BUF_OFFSET;
	unsigned int nr = ub->dev_info.nr_hw_queues;
	u32 rem;
	u64 q;

	if (vma->vm_flags & VM_WRITE)
		return ERR_PTR(-EPERM);
	q = div_u64_rem(off, ublk_max_cmd_buf_size(), &rem);
	if (rem || q >= nr ||
	    vma->vm_end - vma->vm_start > ublk_queue_cmd_buf_size(ub))
		return ERR_PTR(-EINVAL);
	return ublk_get_queue(ub, array_index_nospec(q, nr));
}

static int ublk_ch_mmap(struct file *filp, struct vm_area_struct *vma)
{
	struct ublk_queue *ubq = ublk_mmap_queue(filp->private_data, vma);

	if (IS_ERR(ubq))
		return PTR_ERR(ubq);
	/* never writable later through mprotect(), never copied or dumped */
	vma->vm_flags = (vma->vm_flags & ~VM_MAYWRITE) | VM_DONTEXPAND |
			VM_DONTDUMP;
	return remap_pfn_range(vma, vma->vm_start,
			       PHYS_PFN(virt_to_phys(ubq->io_desc)),
			       vma->vm_end - vma->vm_start, vma->vm_page_prot);
}

static const struct file_operations ublk_ch_fops = {
	.owner		= THIS_MODULE,
	.open		= ublk_ch_open,
	.mmap		= ublk_ch_mmap,
	.uring_cmd	= ublk_ch_uring_cmd,
	.release	= ublk_ch_release,
	.llseek		= no_llseek,
};

/* ---- abort, quiesce, teardown ---- */

/*
 * Take back every FETCHED slot of @ubq (only if its daemon is exiting,
 * when @dying_only) and answer the commands with UBLK_IO_RES_ABORT, so the
 * server's io_uring can finish and /dev/ublkcN be released. The queue must
 * then be fetched again from scratch.
 */
static void ublk_abort_fetched(struct ublk_queue *ubq, bool dying_only)
{
	struct ublk_device *ub = ubq->dev;
	int tag;

	/* ub->lock: a FETCH may race on another slot of this queue */
	mutex_lock(&ub->lock);
	if (dying_only && !(ubq->daemon && (ubq->daemon->flags & PF_EXITING)))
		goto out;
	for (tag = 0; tag < ubq->q_depth; tag++) {
		struct ublk_io *io = &ubq->ios[tag];
		struct io_uring_cmd *cmd = io->cmd;

		if (io->state != UBLK_IO_FETCHED)
			continue;
		io->cmd = NULL;
		io->state = UBLK_IO_FREE;
		io_uring_cmd_done(cmd, UBLK_IO_RES_ABORT, 0, IO_URING_F_UNLOCKED);
	}
	if (ubq->nr_io_ready == ubq->q_depth)
		WRITE_ONCE(ub->nr_queues_ready, ub->nr_queues_ready - 1);
	ubq->nr_io_ready = 0;
out:
	mutex_unlock(&ub->lock);
}

/* Take a request back from the server: false if its answer came first. */
static bool ublk_claim_sent(struct ublk_io *io)
{
	return cmpxchg(&io->state, UBLK_IO_AT_SERVER, UBLK_IO_FREE) ==
			UBLK_IO_AT_SERVER ||
		cmpxchg(&io->state, UBLK_IO_GET_DATA, UBLK_IO_FREE) ==
			UBLK_IO_GET_DATA;
}

/*
 * Requests the server of @ubq holds: it died, or is alive but did not
 * answer in time. Fail or reissue each, once.
 */
static void ublk_abort_sent(struct ublk_queue *ubq)
{
	struct blk_mq_tags *tags = ubq->dev->tag_set.tags[ubq->q_id];
	int tag;

	for (tag = 0; tag < ubq->q_depth; tag++) {
		struct request *rq;

		if (!ublk_claim_sent(&ubq->ios[tag]))
			continue;
		rq = blk_mq_tag_to_rq(tags, tag);
		if (!WARN_ON_ONCE(!rq))
			ublk_abort_sent_rq(ubq, rq);
	}
}

struct ublk_inflight_iter {
	unsigned int	q_id;
	bool		busy;
};

static bool ublk_find_inflight(struct request *rq, void *data)
{
	struct ublk_inflight_iter *iter = data;

	if (rq->mq_hctx->queue_num != iter->q_id)
		return true;
	iter->busy = true;
	return false;
}

/* Has @ubq a started request? Sleeps not: used in a wait condition. */
static bool ublk_queue_has_inflight(struct ublk_queue *ubq)
{
	struct ublk_inflight_iter iter = { .q_id = ubq->q_id };

	blk_mq_tagset_busy_iter(&ubq->dev->tag_set, ublk_find_inflight, &iter);
	return iter.busy;
}

/*
 * Has @ubq nothing left that only its daemon could move? An exiting
 * daemon's pending task works must have run (they requeue or fail what
 * they hold); a living daemon must have answered every request it has.
 */
static bool ublk_queue_settled(struct ublk_queue *ubq)
{
	if (ublk_queue_daemon_dying(ubq))
		return !atomic_read(&ubq->nr_tw);
	return !ublk_queue_has_inflight(ubq);
}

static void ublk_set_fail_io(struct ublk_device *ub, bool fail)
{
	int i;

	for (i = 0; i < ub->dev_info.nr_hw_queues; i++)
		WRITE_ONCE(ublk_get_queue(ub, i)->fail_io, fail);
}

static void ublk_fail_future_io(struct ublk_device *ub)
{
	ublk_set_fail_io(ub, true);
}

/* (Re)start the recovery deadline of a QUIESCED device, if it has one. */
static void ublk_arm_deadline(struct ublk_device *ub)
{
	unsigned long delay = msecs_to_jiffies(ub->recovery_timeout_ms);

	lockdep_assert_held(&ub->lock);
	ub->deadline_armed = ub->recovery_timeout_ms != 0;
	if (!ub->deadline_armed)
		return;
	ub->deadline = jiffies + delay;
	mod_delayed_work(ublk_wq, &ub->deadline_work, delay);
}

/* No server now: requests wait for the next one, within the deadline. */
static void ublk_enter_quiesced(struct ublk_device *ub)
{
	lockdep_assert_held(&ub->lock);
	ub->handover = UBLK_HANDOVER_NONE;
	ublk_set_state(ub, UBLK_S_DEV_QUIESCED);
	ublk_arm_deadline(ub);
}

/*
 * No server, and requests may not wait (FAIL_IO mode, or the deadline
 * passed): what waits and what comes fails until END_USER_RECOVERY. The
 * caller unquiesces the queue if it was quiesced and kicks the requeue
 * list, where the requests taken back from the server wait.
 */
static void ublk_enter_fail_io(struct ublk_device *ub)
{
	lockdep_assert_held(&ub->lock);
	ublk_fail_future_io(ub);
	ub->deadline_armed = false;
	ublk_set_state(ub, UBLK_S_DEV_FAIL_IO);
}

/*
 * With the request queue quiesced, wait until no queue has anything left
 * that only its daemon could move. A living server that does not answer
 * in time loses its requests, a dead one's are taken back at once.
 */
static void ublk_settle_queues(struct ublk_device *ub)
{
	struct ublk_queue *ubq;
	int i;

	for (i = 0; i < ub->dev_info.nr_hw_queues; i++) {
		ubq = ublk_get_queue(ub, i);
		while (!wait_event_timeout(ub->wait, ublk_queue_settled(ubq),
					   ublk_abort_timeout()))
			if (!ublk_queue_daemon_dying(ubq))
				ublk_abort_sent(ubq);
		if (ublk_queue_daemon_dying(ubq))
			ublk_abort_sent(ubq);
	}
}

/*
 * A daemon of a LIVE device is exiting: quiesce, settle every queue, take
 * back every slot, then wait in QUIESCED for a new server, fail I/O in
 * FAIL_IO until one comes, or (no recovery, or a stop under way) fail
 * everything and let it go.
 */
static void ublk_handle_live_death(struct ublk_device *ub,
				   struct request_queue *q)
{
	bool recover, fail;
	int i;

	WRITE_ONCE(ub->quiescing, true);
	blk_mq_quiesce_queue(q);
	ublk_settle_queues(ub);
	for (i = 0; i < ub->dev_info.nr_hw_queues; i++)
		ublk_abort_fetched(ublk_get_queue(ub, i), false);

	mutex_lock(&ub->lock);
	recover = ublk_dev_can_recover(ub) && !ub->stopping;
	fail = recover && (ub->dev_info.flags & UBLK_F_USER_RECOVERY_FAIL_IO);
	if (fail)
		ublk_enter_fail_io(ub);
	else if (recover)
		ublk_enter_quiesced(ub);
	else
		ublk_fail_future_io(ub);
	mutex_unlock(&ub->lock);
	WRITE_ONCE(ub->quiescing, false);

	if (recover && !fail) {
		dev_info(&ub->cdev_dev, "server gone, quiesced for recovery\n");
		return;
	}
	if (fail)
		dev_info(&ub->cdev_dev, "server gone, failing I/O until a recovery\n");
	blk_mq_unquiesce_queue(q);
	blk_mq_kick_requeue_list(q);
	if (!ublk_dev_can_recover(ub) && !READ_ONCE(ub->stopping))
		queue_work(system_unbound_wq, &ub->stop_work);
}

static void ublk_death_work_fn(struct work_struct *work)
{
	struct ublk_device *ub = container_of(work, struct ublk_device,
					      death_work);
	struct io_uring_cmd *start = NULL, *end = NULL;
	struct gendisk *disk = NULL;
	struct ublk_queue *ubq;
	int i;

	if (!ublk_dev_has_dying_daemon(ub))
		return;

	/*
	 * State and disk are read together: whoever ends LIVE and drops the
	 * disk (stop, a failed add_disk) flushes this work before putting it.
	 */
	mutex_lock(&ub->lock);
	if (ub->handover) {
		/*
		 * QUIESCE_DEV settles the queues and takes every slot back
		 * itself (it was woken by the scan); once it has, no slot
		 * can be fetched again.
		 */
		mutex_unlock(&ub->lock);
		return;
	}
	if (ub->dev_info.state == UBLK_S_DEV_LIVE)
		disk = ub->disk;
	mutex_unlock(&ub->lock);
	if (disk) {
		ublk_handle_live_death(ub, disk->queue);
		return;
	}

	/* no request reaches a daemon outside LIVE: just free its ring */
	for (i = 0; i < ub->dev_info.nr_hw_queues; i++) {
		ubq = ublk_get_queue(ub, i);
		ublk_abort_fetched(ubq, true);
	}
	/*
	 * The server START or END waited for will never be ready. Only if
	 * a daemon is still dying: once START_USER_RECOVERY has forgotten
	 * an old server (a handover's, which let go of /dev/ublkcN before
	 * this ran), a parked END waits for the new one.
	 */
	mutex_lock(&ub->lock);
	if (__ublk_dev_has_dying_daemon(ub)) {
		start = __ublk_unpark(ub, &ub->start_cmd, NULL);
		end = __ublk_unpark(ub, &ub->end_cmd, NULL);
	}
	mutex_unlock(&ub->lock);
	ublk_answer(start, -ENODEV);
	ublk_answer(end, -ENODEV);
}

/* Kicked by the exit probe: which devices lost a daemon? */
static void ublk_scan_work_fn(struct work_struct *work)
{
	struct ublk_device *ub;

	mutex_lock(&ublk_ctl_mutex);
	list_for_each_entry(ub, &ublk_dev_list, node) {
		ublk_unpark_exiting(ub);
		if (!ublk_dev_has_dying_daemon(ub))
			continue;
		/* a death handler may be waiting on this daemon's queue */
		wake_up_all(&ub->wait);
		queue_work(system_unbound_wq, &ub->death_work);
	}
	mutex_unlock(&ublk_ctl_mutex);
}

static void ublk_probe_task_exit(void *data, struct task_struct *tsk)
{
	/* every daemon has issued io_uring commands, so has io_uring */
	if ((!atomic_read(&ublk_nr_daemons) &&
	     !atomic_read(&ublk_nr_parked)) || !tsk->io_uring)
		return;
	schedule_work(&ublk_scan_work);
}

/* A stopped device: answer the server's remaining commands, refuse more. */
static void ublk_cancel_dev(struct ublk_device *ub)
{
	struct ublk_queue *ubq;
	int i;

	mutex_lock(&ub->lock);
	for (i = 0; i < ub->dev_info.nr_hw_queues; i++) {
		ubq = ublk_get_queue(ub, i);
		ubq->canceling = true;
	}
	mutex_unlock(&ub->lock);

	for (i = 0; i < ub->dev_info.nr_hw_queues; i++) {
		ubq = ublk_get_queue(ub, i);
		ublk_abort_fetched(ubq, false);
	}
}

static void __ublk_stop_dev(struct ublk_device *ub)
{
	struct gendisk *disk;
	bool quiesced;
	int state;

	lockdep_assert_held(&ub->ctrl_mutex);

	mutex_lock(&ub->lock);
	ub->stopping = true;
	state = ub->dev_info.state;
	mutex_unlock(&ub->lock);
	/* START_DEV and END_USER_RECOVERY will not succeed any more */
	ublk_unpark_all(ub, -EINVAL, -EBUSY);
	if (state == UBLK_S_DEV_DEAD)
		goto cancel;

	/* a death being handled now fails what it would have requeued */
	flush_work(&ub->death_work);
	/* after this the deadline moves nothing: the state is final */
	cancel_delayed_work_sync(&ub->deadline_work);
	mutex_lock(&ub->lock);
	/* QUIESCED, or a handover done: the queue is quiesced */
	quiesced = ub->dev_info.state == UBLK_S_DEV_QUIESCED ||
		   ub->handover == UBLK_HANDOVER_DONE;
	ub->handover = UBLK_HANDOVER_NONE;
	mutex_unlock(&ub->lock);
	if (quiesced) {
		ublk_fail_future_io(ub);
		blk_mq_unquiesce_queue(ub->disk->queue);
		blk_mq_kick_requeue_list(ub->disk->queue);
	}
	/* bounds the waits below on a server that does not answer */
	queue_delayed_work(ublk_wq, &ub->abort_work, ublk_abort_timeout());
	/* its reads are answered or failed now: wait for the scan */
	cancel_work_sync(&ub->part_work);

	del_gendisk(ub->disk);
	cancel_delayed_work_sync(&ub->abort_work);

	mutex_lock(&ub->lock);
	ublk_set_state(ub, UBLK_S_DEV_DEAD);
	ub->dev_info.ublksrv_pid = -1;
	disk = ub->disk;
	ub->disk = NULL;
	mutex_unlock(&ub->lock);
	/* one that saw LIVE during del_gendisk() still uses the disk */
	flush_work(&ub->death_work);
	put_disk(disk);
cancel:
	ublk_cancel_dev(ub);
}

/*
 * A stop has waited ublk_abort_timeout_ms for the server: nothing more
 * goes to it, and what it holds fails. Again every period until the stop
 * is past del_gendisk() (a hand-over may have raced with the first pass).
 */
static void ublk_abort_work_fn(struct work_struct *work)
{
	struct ublk_device *ub = container_of(to_delayed_work(work),
					      struct ublk_device, abort_work);
	int i;

	dev_info(&ub->cdev_dev, "stopping: failing what the server holds\n");
	ublk_fail_future_io(ub);
	for (i = 0; i < ub->dev_info.nr_hw_queues; i++)
		ublk_abort_sent(ublk_get_queue(ub, i));
	queue_delayed_work(ublk_wq, &ub->abort_work, ublk_abort_timeout());
}

/* QUIESCED for recovery_timeout_ms: fail I/O until a recovery. */
static void ublk_deadline_work_fn(struct work_struct *work)
{
	struct ublk_device *ub = container_of(to_delayed_work(work),
					      struct ublk_device, deadline_work);
	struct request_queue *q = NULL;

	/* a stop cancels us before it touches the disk */
	mutex_lock(&ub->lock);
	if (ub->dev_info.state == UBLK_S_DEV_QUIESCED && ub->deadline_armed &&
	    !ub->stopping && time_after_eq(jiffies, ub->deadline)) {
		ublk_enter_fail_io(ub);
		q = ub->disk->queue;
	}
	mutex_unlock(&ub->lock);
	if (!q)
		return;		/* recovered, stopped, or re-armed meanwhile */
	dev_info(&ub->cdev_dev, "no server for %u ms: failing I/O until a recovery\n",
		 ub->recovery_timeout_ms);
	blk_mq_unquiesce_queue(q);
	blk_mq_kick_requeue_list(q);
}

static void ublk_stop_work_fn(struct work_struct *work)
{
	struct ublk_device *ub = container_of(work, struct ublk_device,
					      stop_work);

	mutex_lock(&ub->ctrl_mutex);
	__ublk_stop_dev(ub);
	mutex_unlock(&ub->ctrl_mutex);
}

/* ---- device creation and release ---- */

static void ublk_deinit_queues(struct ublk_device *ub)
{
	int i;

	if (!ub->queues)
		return;
	for (i = 0; i < ub->dev_info.nr_hw_queues; i++) {
		struct ublk_queue *ubq = ub->queues[i];

		if (!ubq)
			continue;
		if (ubq->daemon) {
			put_task_struct(ubq->daemon);
			atomic_dec(&ublk_nr_daemons);
		}
		if (ubq->io_desc)
			free_pages((unsigned long)ubq->io_desc,
				   get_order(ublk_queue_cmd_buf_size(ub)));
		kfree(ubq);
	}
	kfree(ub->queues);
}

static int ublk_init_queues(struct ublk_device *ub)
{
	unsigned int depth = ub->dev_info.queue_depth;
	int i;

	ub->queues = kcalloc(ub->dev_info.nr_hw_queues, sizeof(*ub->queues),
			     GFP_KERNEL);
	if (!ub->queues)
		return -ENOMEM;

	for (i = 0; i < ub->dev_info.nr_hw_queues; i++) {
		struct ublk_queue *ubq;

		ubq = kzalloc(struct_size(ubq, ios, depth), GFP_KERNEL);
		if (!ubq)
			return -ENOMEM;
		ub->queues[i] = ubq;
		ubq->io_desc = (void *)__get_free_pages(GFP_KERNEL | __GFP_ZERO,
				get_order(ublk_queue_cmd_buf_size(ub)));
		if (!ubq->io_desc)
			return -ENOMEM;
		ubq->dev = ub;
		ubq->q_id = i;
		ubq->q_depth = depth;
		ubq->flags = ub->dev_info.flags;
		init_llist_head(&ubq->rq_list);
		init_task_work(&ubq->tw, ublk_tw_fn);
	}
	return 0;
}

static void ublk_free_unpublished(struct ublk_device *ub)
{
	ublk_deinit_queues(ub);
	mutex_destroy(&ub->lock);
	mutex_destroy(&ub->ctrl_mutex);
	kfree(ub);
	if (atomic_dec_and_test(&ublk_nr_devs))
		wake_up_all(&ublk_devs_wq);
}

static void ublk_free_work_fn(struct work_struct *work)
{
	struct ublk_device *ub = container_of(work, struct ublk_device,
					      free_work);

	if (ub->tag_set.tags)
		blk_mq_free_tag_set(&ub->tag_set);
	ublk_free_unpublished(ub);
}

/* May run in a task work's RCU read-side section: must not sleep. */
static void ublk_cdev_rel(struct device *dev)
{
	struct ublk_device *ub = container_of(dev, struct ublk_device, cdev_dev);

	queue_work(ublk_wq, &ub->free_work);
}

/* One hardware queue per server queue, one tag per slot. */
static int ublk_add_tag_set(struct ublk_device *ub)
{
	const struct ublksrv_ctrl_dev_info *info = &ub->dev_info;

	ub->tag_set = (struct blk_mq_tag_set) {
		.driver_data	= ub->queues,
		.ops		= &ublk_mq_ops,
		.flags		= BLK_MQ_F_SHOULD_MERGE,
		.nr_hw_queues	= info->nr_hw_queues,
		.queue_depth	= info->queue_depth,
		.cmd_size	= sizeof(struct ublk_rq_data),
		.numa_node	= NUMA_NO_NODE,
	};
	return blk_mq_alloc_tag_set(&ub->tag_set);
}

static int ublk_validate_dev_info(struct ublksrv_ctrl_dev_info *info)
{
	u64 recovery = info->flags & (UBLK_F_USER_RECOVERY |
				      UBLK_F_USER_RECOVERY_REISSUE |
				      UBLK_F_USER_RECOVERY_FAIL_IO);

	if (info->flags & ~UBLK_F_ALL)
		return -EINVAL;
	/* none, USER_RECOVERY alone, with REISSUE or with FAIL_IO */
	if (recovery && recovery != UBLK_F_USER_RECOVERY &&
	    recovery != (UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE) &&
	    recovery != (UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_FAIL_IO))
		return -EINVAL;
	/* a handover needs a recovery to end it */
	if ((info->flags & UBLK_F_QUIESCE) &&
	    !(info->flags & UBLK_F_USER_RECOVERY))
		return -EINVAL;
	if (!info->nr_hw_queues || info->nr_hw_queues > UBLK_MAX_NR_QUEUES)
		return -EINVAL;
	if (!info->queue_depth || info->queue_depth > UBLK_MAX_QUEUE_DEPTH)
		return -EINVAL;
	if (info->max_io_buf_bytes < PAGE_SIZE)
		return -EINVAL;

	info->flags &= ~UBLK_F_SUPPORT_ZERO_COPY;
	/* as later kernels: tells newer servers to send ioctl-encoded ops */
	info->flags |= UBLK_F_CMD_IOCTL_ENCODE;
	info->nr_hw_queues = min_t(unsigned int, info->nr_hw_queues,
				   nr_cpu_ids);
	info->max_io_buf_bytes = round_down(min_t(u32, info->max_io_buf_bytes,
						  UBLK_MAX_IO_BUF_BYTES),
					    PAGE_SIZE);
	info->state = UBLK_S_DEV_DEAD;
	info->ublksrv_pid = -1;
	return 0;
}

/* ---- sysfs: /sys/class/ublk-char/ublkcN/ ---- */

static struct ublk_device *ublk_of_cdev(struct device *dev)
{
	return container_of(dev, struct ublk_device, cdev_dev);
}

static ssize_t state_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%s\n",
			  ublk_state_names[ublk_dev_state(ublk_of_cdev(dev))]);
}
static DEVICE_ATTR_RO(state);

static ssize_t recovery_timeout_ms_show(struct device *dev,
					struct device_attribute *attr,
					char *buf)
{
	return sysfs_emit(buf, "%u\n",
			  READ_ONCE(ublk_of_cdev(dev)->recovery_timeout_ms));
}

/* A change while QUIESCED counts the new limit from now; 0 disarms it. */
static ssize_t recovery_timeout_ms_store(struct device *dev,
					 struct device_attribute *attr,
					 const char *buf, size_t count)
{
	struct ublk_device *ub = ublk_of_cdev(dev);
	unsigned int ms;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	ret = kstrtouint(buf, 0, &ms);
	if (ret)
		return ret;
	mutex_lock(&ub->lock);
	WRITE_ONCE(ub->recovery_timeout_ms, ms);
	if (ub->dev_info.state == UBLK_S_DEV_QUIESCED && !ub->stopping)
		ublk_arm_deadline(ub);
	mutex_unlock(&ub->lock);
	return count;
}
static DEVICE_ATTR_RW(recovery_timeout_ms);

static struct attribute *ublk_chr_attrs[] = {
	&dev_attr_state.attr,
	&dev_attr_recovery_timeout_ms.attr,
	NULL,
};
ATTRIBUTE_GROUPS(ublk_chr);

/* Register /dev/ublkcN; from here on the device is freed by put_device(). */
static int ublk_add_chdev(struct ublk_device *ub)
{
	struct device *dev = &ub->cdev_dev;
	int ret;

	/* the minor is the device id: /dev/ublkcN and /dev/ublkbN match */
	device_initialize(dev);
	dev->class = ublk_chr_class;
	dev->groups = ublk_chr_groups;
	dev->parent = ublk_misc.this_device;
	dev->release = ublk_cdev_rel;
	dev->devt = ublk_chr_devt + ub->dev_info.dev_id;
	cdev_init(&ub->cdev, &ublk_ch_fops);

	ret = dev_set_name(dev, "ublkc%u", ub->dev_info.dev_id) ?:
		cdev_device_add(&ub->cdev, dev);
	if (ret)
		put_device(dev);
	return ret;
}

/* Reserve an id for @ub; it is published later by idr_replace(). */
static int ublk_alloc_dev_number(struct ublk_device *ub, u32 dev_id)
{
	u32 first = dev_id == U32_MAX ? 0 : dev_id;
	u32 end = dev_id == U32_MAX ? UBLK_MINORS : dev_id + 1;
	int ret;

	lockdep_assert_held(&ublk_ctl_mutex);
	ret = idr_alloc(&ublk_index_idr, NULL, first, end, GFP_KERNEL);
	if (ret == -ENOSPC)
		ret = dev_id == U32_MAX ? -ENOSPC : -EEXIST;
	if (ret >= 0)
		ub->dev_info.dev_id = ret;
	return ret;
}

static void ublk_release_id(int id)
{
	mutex_lock(&ublk_ctl_mutex);
	idr_remove(&ublk_index_idr, id);
	mutex_unlock(&ublk_ctl_mutex);
}

/* ---- block device ---- */

static void ublk_bd_free_disk(struct gendisk *disk)
{
	struct ublk_device *ub = disk->private_data;

	put_device(&ub->cdev_dev);
}

static const struct block_device_operations ublk_bd_ops = {
	.owner		= THIS_MODULE,
	.free_disk	= ublk_bd_free_disk,
};

/* The queue limits and disk attributes of the BASIC parameters. */
static void ublk_apply_basic(struct ublk_device *ub, struct gendisk *disk)
{
	const struct ublk_param_basic *p = &ub->params.basic;
	u32 max_sectors = ub->dev_info.max_io_buf_bytes >> SECTOR_SHIFT;
	struct request_queue *q = disk->queue;
	bool rotational = p->attrs & UBLK_ATTR_ROTATIONAL;

	blk_queue_logical_block_size(q, 1U << p->logical_bs_shift);
	blk_queue_physical_block_size(q, 1U << p->physical_bs_shift);
	blk_queue_io_min(q, 1U << p->io_min_shift);
	if (p->io_opt_shift)
		blk_queue_io_opt(q, 1U << p->io_opt_shift);
	/* a request never exceeds the server's buffer */
	blk_queue_max_hw_sectors(q, min(max_sectors, p->max_sectors));
	blk_queue_chunk_sectors(q, p->chunk_sectors);
	if (p->virt_boundary_mask)
		blk_queue_virt_boundary(q, p->virt_boundary_mask);

	blk_queue_write_cache(q, p->attrs & UBLK_ATTR_VOLATILE_CACHE,
			      p->attrs & UBLK_ATTR_FUA);
	(rotational ? blk_queue_flag_clear : blk_queue_flag_set)
		(QUEUE_FLAG_NONROT, q);
	set_disk_ro(disk, p->attrs & UBLK_ATTR_READ_ONLY);
	set_capacity(disk, p->dev_sectors);
}

/* Discard and write-zeroes limits, if the server set DISCARD params. */
static void ublk_apply_discard(struct ublk_device *ub, struct request_queue *q)
{
	const struct ublk_param_discard *p = &ub->params.discard;

	if (!(ub->params.types & UBLK_PARAM_TYPE_DISCARD))
		return;
	blk_queue_max_discard_sectors(q, p->max_discard_sectors);
	blk_queue_max_discard_segments(q, p->max_discard_segments);
	blk_queue_max_write_zeroes_sectors(q, p->max_write_zeroes_sectors);
	q->limits.discard_granularity = p->discard_granularity;
	q->limits.discard_alignment = p->discard_alignment;
}

static void ublk_apply_params(struct ublk_device *ub, struct gendisk *disk)
{
	ublk_apply_basic(ub, disk);
	ublk_apply_discard(ub, disk->queue);
}

/* the logical block size @p sets, or the default of 512 bytes */
static unsigned int ublk_params_lbs(const struct ublk_params *p)
{
	if (p->types & UBLK_PARAM_TYPE_BASIC)
		return 1U << p->basic.logical_bs_shift;
	return SECTOR_SIZE;
}

static int ublk_validate_params(const struct ublk_params *p)
{
	const struct ublk_param_basic *b = &p->basic;
	const struct ublk_param_discard *d = &p->discard;

	if (p->types & UBLK_PARAM_TYPE_BASIC) {
		if (b->attrs & ~UBLK_ATTR_ALL)
			return -EINVAL;
		if (b->logical_bs_shift < SECTOR_SHIFT ||
		    b->logical_bs_shift > PAGE_SHIFT)
			return -EINVAL;
		if (b->physical_bs_shift < b->logical_bs_shift ||
		    b->physical_bs_shift > 31)
			return -EINVAL;
		if (b->io_min_shift > 31 || b->io_opt_shift > 31)
			return -EINVAL;
		if (!b->max_sectors)
			return -EINVAL;
		/* the block layer counts bytes in a loff_t */
		if (b->dev_sectors > (u64)LLONG_MAX >> SECTOR_SHIFT)
			return -EINVAL;
		/* a chunk smaller than a block would split bios to nothing */
		if (b->chunk_sectors &&
		    (!is_power_of_2(b->chunk_sectors) ||
		     b->chunk_sectors < 1U << (b->logical_bs_shift - SECTOR_SHIFT)))
			return -EINVAL;
		if (b->virt_boundary_mask &&
		    (b->virt_boundary_mask < PAGE_SIZE - 1 ||
		     !is_power_of_2(b->virt_boundary_mask + 1)))
			return -EINVAL;
	}
	if (p->types & UBLK_PARAM_TYPE_DISCARD) {
		/*
		 * The descriptor carries one range: blk-mq must not merge
		 * discontiguous discards into one request (6.1: exactly 1).
		 */
		if (d->max_discard_sectors && d->max_discard_segments != 1)
			return -EINVAL;
		/* the block layer rounds discards down to the granularity */
		if (d->max_discard_sectors &&
		    (!is_power_of_2(d->discard_granularity) ||
		     d->discard_granularity < ublk_params_lbs(p)))
			return -EINVAL;
		if (d->discard_granularity &&
		    !is_power_of_2(d->discard_granularity))
			return -EINVAL;
	}
	return 0;
}

/* ---- control commands ---- */

static struct ublk_device *ublk_get_device_from_id(u32 id)
{
	struct ublk_device *ub;

	if (id >= UBLK_MINORS)
		return NULL;
	mutex_lock(&ublk_ctl_mutex);
	ub = idr_find(&ublk_index_idr, id);
	if (ub)
		get_device(&ub->cdev_dev);
	mutex_unlock(&ublk_ctl_mutex);
	return ub;
}

/*
 * The id is reserved (NULL in the IDR) until everything is in place and
 * userspace has its copy of the device info; only then is the device
 * published. Nothing here touches @ub once another task can find it.
 */
static int ublk_ctrl_add_dev(const struct ublksrv_ctrl_cmd *header)
{
	void __user *argp = u64_to_user_ptr(header->addr);
	struct ublksrv_ctrl_dev_info info;
	struct ublk_device *ub;
	int id, ret;

	if (header->len != sizeof(info))
		return -EINVAL;
	if (copy_from_user(&info, argp, sizeof(info)))
		return -EFAULT;
	if (header->dev_id != info.dev_id)
		return -EINVAL;
	if (info.dev_id != U32_MAX && info.dev_id >= UBLK_MINORS)
		return -EINVAL;
	ret = ublk_validate_dev_info(&info);
	if (ret)
		return ret;

	ub = kzalloc(sizeof(*ub), GFP_KERNEL);
	if (!ub)
		return -ENOMEM;
	mutex_init(&ub->ctrl_mutex);
	mutex_init(&ub->lock);
	init_waitqueue_head(&ub->wait);
	INIT_WORK(&ub->death_work, ublk_death_work_fn);
	INIT_WORK(&ub->stop_work, ublk_stop_work_fn);
	INIT_LIST_HEAD(&ub->node);
	INIT_WORK(&ub->free_work, ublk_free_work_fn);
	INIT_WORK(&ub->ready_work, ublk_ready_work_fn);
	INIT_WORK(&ub->part_work, ublk_part_work_fn);
	INIT_DELAYED_WORK(&ub->abort_work, ublk_abort_work_fn);
	INIT_DELAYED_WORK(&ub->deadline_work, ublk_deadline_work_fn);
	ub->recovery_timeout_ms = READ_ONCE(ublk_recovery_timeout_ms);
	ub->dev_info = info;
	atomic_inc(&ublk_nr_devs);

	mutex_lock(&ublk_ctl_mutex);
	id = ublk_alloc_dev_number(ub, info.dev_id);
	mutex_unlock(&ublk_ctl_mutex);
	if (id < 0) {
		ret = id;
		goto out_free_ub;
	}
	ret = ublk_init_queues(ub);
	if (ret)
		goto out_release_id;
	ret = ublk_add_tag_set(ub);
	if (ret)
		goto out_release_id;
	if (copy_to_user(argp, &ub->dev_info, sizeof(info))) {
		ret = -EFAULT;
		goto out_free_tag_set;
	}
	/* on failure this frees everything through ublk_cdev_rel() */
	ret = ublk_add_chdev(ub);
	if (ret) {
		ublk_release_id(id);
		return ret;
	}

	mutex_lock(&ublk_ctl_mutex);
	list_add_tail(&ub->node, &ublk_dev_list);
	idr_replace(&ublk_index_idr, ub, id);
	mutex_unlock(&ublk_ctl_mutex);
	return 0;

out_free_tag_set:
	blk_mq_free_tag_set(&ub->tag_set);
out_release_id:
	ublk_release_id(id);
out_free_ub:
	ublk_free_unpublished(ub);
	return ret;
}

/*
 * DEL_DEV: hide the id (a concurrent DEL_DEV gets -ENODEV, an ADD_DEV of
 * the same id -EEXIST), stop the device while the death scan still sees
 * it, drop /dev/ublkcN, and only then free the id: once DEL_DEV has
 * returned, the id may be added again.
 */
static int ublk_ctrl_del_dev(struct ublk_device *ub)
{
	int id = ub->dev_info.dev_id;

	mutex_lock(&ublk_ctl_mutex);
	if (idr_find(&ublk_index_idr, id) != ub) {
		mutex_unlock(&ublk_ctl_mutex);
		return -ENODEV;		/* a concurrent DEL_DEV won */
	}
	idr_replace(&ublk_index_idr, NULL, id);
	mutex_unlock(&ublk_ctl_mutex);

	mutex_lock(&ub->ctrl_mutex);
	__ublk_stop_dev(ub);
	mutex_unlock(&ub->ctrl_mutex);

	/* stopped: no request is left for a dying daemon to hold */
	mutex_lock(&ublk_ctl_mutex);
	list_del_init(&ub->node);
	mutex_unlock(&ublk_ctl_mutex);
	cancel_work_sync(&ub->death_work);
	cancel_work_sync(&ub->stop_work);
	cancel_work_sync(&ub->ready_work);
	cancel_delayed_work_sync(&ub->deadline_work);
	cdev_device_del(&ub->cdev, &ub->cdev_dev);

	ublk_release_id(id);
	/* the reference of ADD_DEV */
	put_device(&ub->cdev_dev);
	return 0;
}

/* The server's pid in data[0] of START_DEV and END_USER_RECOVERY. */
static int ublk_ctrl_pid(const struct ublksrv_ctrl_cmd *header)
{
	u64 pid = header->data[0];

	if (!pid || pid > PID_MAX_LIMIT)
		return -EINVAL;
	return pid;
}

/* May START_DEV go on? */
static int ublk_start_check(struct ublk_device *ub)
{
	lockdep_assert_held(&ub->ctrl_mutex);
	if (ub->stopping)
		return -EINVAL;
	if (ublk_dev_state(ub) != UBLK_S_DEV_DEAD)
		return -EEXIST;
	/* SET_PARAMS may run while START_DEV is parked: checked again */
	if (!(ub->params.types & UBLK_PARAM_TYPE_BASIC))
		return -EINVAL;
	return 0;
}

static void ublk_part_work_fn(struct work_struct *work)
{
	struct ublk_device *ub = container_of(work, struct ublk_device,
					      part_work);
	struct gendisk *disk = ub->disk;	/* stop cancels us first */
	struct block_device *bdev;

	/* what add_disk() would have done: the first open reads the table */
	clear_bit(GD_SUPPRESS_PART_SCAN, &disk->state);
	set_bit(GD_NEED_PART_SCAN, &disk->state);
	bdev = blkdev_get_by_dev(disk_devt(disk), FMODE_READ, NULL);
	if (!IS_ERR(bdev))
		blkdev_put(bdev, FMODE_READ);
}

/*
 * Every queue is ready: add the disk and go LIVE. add_disk() does no I/O
 * (its partition scan is suppressed): the scan runs afterwards in
 * part_work, so a server that dies meanwhile cannot leave ctrl_mutex
 * held by a task waiting for its reads.
 */
static int ublk_start_live(struct ublk_device *ub, int pid)
{
	struct gendisk *disk;
	int ret;

	lockdep_assert_held(&ub->ctrl_mutex);
	disk = blk_mq_alloc_disk(&ub->tag_set, ub);
	if (IS_ERR(disk))
		return PTR_ERR(disk);
	snprintf(disk->disk_name, DISK_NAME_LEN, "ublkb%d", ub->dev_info.dev_id);
	disk->fops = &ublk_bd_ops;
	disk->private_data = ub;
	ublk_apply_params(ub, disk);
	set_bit(GD_SUPPRESS_PART_SCAN, &disk->state);

	mutex_lock(&ub->lock);
	ub->disk = disk;
	ub->dev_info.ublksrv_pid = pid;
	ublk_set_state(ub, UBLK_S_DEV_LIVE);
	mutex_unlock(&ub->lock);

	get_device(&ub->cdev_dev);	/* dropped by ublk_bd_free_disk() */
	ret = add_disk(disk);
	if (ret) {
		mutex_lock(&ub->lock);
		ublk_set_state(ub, UBLK_S_DEV_DEAD);
		ub->dev_info.ublksrv_pid = -1;
		ub->disk = NULL;
		mutex_unlock(&ub->lock);
		flush_work(&ub->death_work);
		put_disk(disk);
		put_device(&ub->cdev_dev);
		return ret;
	}
	queue_work(ublk_wq, &ub->part_work);

	/* a daemon that died before LIVE had nobody to notice */
	if (ublk_dev_has_dying_daemon(ub))
		queue_work(system_unbound_wq, &ub->death_work);
	return 0;
}

/*
 * START_DEV: LIVE at once if every queue is ready, else parked until it
 * is (answered by ublk_ready_work_fn()).
 */
static int ublk_ctrl_start_dev(struct ublk_device *ub,
			       const struct ublksrv_ctrl_cmd *header,
			       struct io_uring_cmd *cmd)
{
	int pid = ublk_ctrl_pid(header);
	bool ready = false;
	int ret;

	if (pid < 0)
		return pid;

	mutex_lock(&ub->ctrl_mutex);
	ret = ublk_start_check(ub);
	if (ret)
		goto out_unlock;

	mutex_lock(&ub->lock);
	if (ub->start_cmd.cmd) {
		ret = -EBUSY;		/* one START_DEV at a time */
	} else if (__ublk_dev_has_dying_daemon(ub)) {
		ret = -ENODEV;		/* its server is gone already */
	} else if (ublk_dev_ready(ub)) {
		ready = true;
	} else {
		__ublk_park(ub, &ub->start_cmd, cmd, pid);
		ret = -EIOCBQUEUED;
	}
	mutex_unlock(&ub->lock);

	if (ready)
		ret = ublk_start_live(ub, pid);
out_unlock:
	mutex_unlock(&ub->ctrl_mutex);
	return ret;
}

static int ublk_ctrl_stop_dev(struct ublk_device *ub)
{
	mutex_lock(&ub->ctrl_mutex);
	__ublk_stop_dev(ub);
	mutex_unlock(&ub->ctrl_mutex);
	return 0;
}

static int ublk_ctrl_get_dev_info(struct ublk_device *ub,
				  const struct ublksrv_ctrl_cmd *header)
{
	struct ublksrv_ctrl_dev_info info;

	if (header->len < sizeof(info))
		return -EINVAL;
	mutex_lock(&ub->lock);
	info = ub->dev_info;
	mutex_unlock(&ub->lock);
	if (copy_to_user(u64_to_user_ptr(header->addr), &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

/* The CPUs mapped to the queue in data[0] (6.1: queue_id is not read). */
static int ublk_ctrl_get_queue_affinity(struct ublk_device *ub,
					const struct ublksrv_ctrl_cmd *header)
{
	const unsigned int *map = ub->tag_set.map[HCTX_TYPE_DEFAULT].mq_map;
	u64 q_id = header->data[0];
	cpumask_var_t mask;
	unsigned int len;
	int cpu, ret = 0;

	if (q_id >= ub->dev_info.nr_hw_queues)
		return -EINVAL;
	if (header->len * BITS_PER_BYTE < nr_cpu_ids ||
	    header->len & (sizeof(unsigned long) - 1))
		return -EINVAL;
	if (!zalloc_cpumask_var(&mask, GFP_KERNEL))
		return -ENOMEM;

	for_each_possible_cpu(cpu)
		if (map[cpu] == q_id)
			cpumask_set_cpu(cpu, mask);

	len = min_t(unsigned int, header->len, cpumask_size());
	if (copy_to_user(u64_to_user_ptr(header->addr), cpumask_bits(mask),
			 len))
		ret = -EFAULT;
	free_cpumask_var(mask);
	return ret;
}

/* the fixed part of struct ublk_params: len and types */
#define UBLK_PARAMS_HDR_LEN	offsetof(struct ublk_params, basic)

static int ublk_ctrl_set_params(struct ublk_device *ub,
				const struct ublksrv_ctrl_cmd *header)
{
	struct ublk_params p = {};
	unsigned int len;
	int ret;

	if (header->len < UBLK_PARAMS_HDR_LEN)
		return -EINVAL;
	len = min_t(unsigned int, header->len, sizeof(p));
	if (copy_from_user(&p, u64_to_user_ptr(header->addr), len))
		return -EFAULT;
	p.len = len;
	/* parameter types of later kernels are ignored, as they would be */
	p.types &= UBLK_PARAM_TYPE_ALL;
	ret = ublk_validate_params(&p);
	if (ret)
		return ret;

	mutex_lock(&ub->ctrl_mutex);
	if (ublk_dev_state(ub) != UBLK_S_DEV_DEAD)
		ret = -EACCES;
	else
		ub->params = p;
	mutex_unlock(&ub->ctrl_mutex);
	return ret;
}

static int ublk_ctrl_get_params(struct ublk_device *ub,
				const struct ublksrv_ctrl_cmd *header)
{
	struct ublk_params p;
	unsigned int len;

	if (header->len < UBLK_PARAMS_HDR_LEN)
		return -EINVAL;
	len = min_t(unsigned int, header->len, sizeof(p));
	mutex_lock(&ub->ctrl_mutex);
	p = ub->params;
	mutex_unlock(&ub->ctrl_mutex);
	p.len = len;
	if (copy_to_user(u64_to_user_ptr(header->addr), &p, len))
		return -EFAULT;
	return 0;
}

/*
 * Forget the old server: every slot is FREE by now (its commands were
 * answered before the char device could be released), so a new process
 * can fetch every tag again.
 */
static int ublk_ctrl_start_recovery(struct ublk_device *ub)
{
	struct ublk_queue *ubq;
	int i, tag, ret;

	if (!ublk_dev_can_recover(ub))
		return -EINVAL;

	mutex_lock(&ub->ctrl_mutex);
	mutex_lock(&ub->lock);
	ret = -EBUSY;
	if (!ublk_dev_waits_for_server(ub) || ub->cdev_file)
		goto out_unlock;

	for (i = 0; i < ub->dev_info.nr_hw_queues; i++) {
		ubq = ublk_get_queue(ub, i);
		for (tag = 0; tag < ubq->q_depth; tag++)
			WARN_ON_ONCE(ubq->ios[tag].state != UBLK_IO_FREE);
		if (ubq->daemon) {
			put_task_struct(ubq->daemon);
			atomic_dec(&ublk_nr_daemons);
			WRITE_ONCE(ubq->daemon, NULL);
		}
		ubq->nr_io_ready = 0;
	}
	WRITE_ONCE(ub->nr_queues_ready, 0);
	ub->dev_info.ublksrv_pid = -1;
	ret = 0;
out_unlock:
	mutex_unlock(&ub->lock);
	mutex_unlock(&ub->ctrl_mutex);
	return ret;
}

/*
 * Every queue of the new server is ready: LIVE again. A QUIESCED device's
 * queue is quiesced; a FAIL_IO one's is not, but fails every request.
 */
static int ublk_end_recovery_live(struct ublk_device *ub, int pid)
{
	struct request_queue *q = ub->disk->queue;	/* QUIESCED: set */
	int state;

	lockdep_assert_held(&ub->ctrl_mutex);
	mutex_lock(&ub->lock);
	state = ub->dev_info.state;
	if (!ublk_dev_waits_for_server(ub) || ub->stopping ||
	    !ublk_dev_ready(ub)) {
		mutex_unlock(&ub->lock);
		return -EBUSY;
	}
	if (state == UBLK_S_DEV_FAIL_IO)
		ublk_set_fail_io(ub, false);
	ub->deadline_armed = false;
	ub->dev_info.ublksrv_pid = pid;
	ublk_set_state(ub, UBLK_S_DEV_LIVE);
	mutex_unlock(&ub->lock);

	if (state == UBLK_S_DEV_QUIESCED)
		blk_mq_unquiesce_queue(q);
	blk_mq_kick_requeue_list(q);
	dev_info(&ub->cdev_dev, "recovered, server pid %d\n", pid);

	/* the new server may already be gone again */
	if (ublk_dev_has_dying_daemon(ub))
		queue_work(system_unbound_wq, &ub->death_work);
	return 0;
}

/*
 * END_USER_RECOVERY: LIVE at once if the new server is ready, else parked
 * until it is.
 */
static int ublk_ctrl_end_recovery(struct ublk_device *ub,
				  const struct ublksrv_ctrl_cmd *header,
				  struct io_uring_cmd *cmd)
{
	int pid = ublk_ctrl_pid(header);
	bool ready = false;
	int ret = 0;

	if (!ublk_dev_can_recover(ub))
		return -EINVAL;
	if (!ublk_dev_waits_for_server(ub))
		return -EBUSY;
	if (pid < 0)
		return pid;

	mutex_lock(&ub->ctrl_mutex);
	mutex_lock(&ub->lock);
	if (!ublk_dev_waits_for_server(ub) || ub->stopping ||
	    ub->end_cmd.cmd) {
		ret = -EBUSY;
	} else if (__ublk_dev_has_dying_daemon(ub)) {
		/* the old server's queues: START_USER_RECOVERY comes first */
		ret = -EBUSY;
	} else if (ublk_dev_ready(ub)) {
		ready = true;
	} else {
		__ublk_park(ub, &ub->end_cmd, cmd, pid);
		ret = -EIOCBQUEUED;
	}
	mutex_unlock(&ub->lock);

	if (ready)
		ret = ublk_end_recovery_live(ub, pid);
	mutex_unlock(&ub->ctrl_mutex);
	return ret;
}

/*
 * QUIESCE_DEV, a planned handover: no new request reaches the server, the
 * requests it holds complete as usual, then its FETCH commands are
 * answered with UBLK_IO_RES_ABORT so that it can exit. The device is
 * QUIESCED once /dev/ublkcN is released (ublk_ch_release()), and a new
 * server takes over with START/END_USER_RECOVERY: without a crash, no
 * request fails. A server that dies meanwhile is handled here, as a
 * crash; one that does not answer in time loses its requests.
 */
static int ublk_ctrl_quiesce_dev(struct ublk_device *ub)
{
	struct request_queue *q;
	int i, ret = 0;

	if (!(ub->dev_info.flags & UBLK_F_QUIESCE))
		return -EINVAL;

	mutex_lock(&ub->ctrl_mutex);
	mutex_lock(&ub->lock);
	/* not LIVE, a handover under way, or a death being handled */
	if (ub->dev_info.state != UBLK_S_DEV_LIVE || ub->stopping ||
	    ub->handover || __ublk_dev_has_dying_daemon(ub))
		ret = -EBUSY;
	else
		ub->handover = UBLK_HANDOVER_DRAINING;
	q = ub->disk ? ub->disk->queue : NULL;
	mutex_unlock(&ub->lock);
	if (ret)
		goto out;

	dev_info(&ub->cdev_dev, "handover: draining the server\n");
	WRITE_ONCE(ub->quiescing, true);
	blk_mq_quiesce_queue(q);
	ublk_settle_queues(ub);
	for (i = 0; i < ub->dev_info.nr_hw_queues; i++)
		ublk_abort_fetched(ublk_get_queue(ub, i), false);
	WRITE_ONCE(ub->quiescing, false);

	mutex_lock(&ub->lock);
	ub->handover = UBLK_HANDOVER_DONE;
	if (!ub->cdev_file)
		ublk_enter_quiesced(ub);
	mutex_unlock(&ub->lock);
out:
	mutex_unlock(&ub->ctrl_mutex);
	return ret;
}

/* Every queue got ready while a START or END was parked: answer it. */
static void ublk_ready_work_fn(struct work_struct *work)
{
	struct ublk_device *ub = container_of(work, struct ublk_device,
					      ready_work);
	struct io_uring_cmd *start = NULL, *end = NULL;
	int start_pid = 0, end_pid = 0;

	mutex_lock(&ub->ctrl_mutex);
	mutex_lock(&ub->lock);
	if (ublk_dev_ready(ub)) {
		start = __ublk_unpark(ub, &ub->start_cmd, &start_pid);
		end = __ublk_unpark(ub, &ub->end_cmd, &end_pid);
	}
	mutex_unlock(&ub->lock);

	if (start)
		ublk_answer(start, ublk_start_check(ub) ?:
			    ublk_start_live(ub, start_pid));
	if (end)
		ublk_answer(end, ublk_end_recovery_live(ub, end_pid));
	mutex_unlock(&ub->ctrl_mutex);
}

static int ublk_ctrl_get_features(const struct ublksrv_ctrl_cmd *header)
{
	u64 features = UBLK_F_SUPPORTED;

	if (header->len < UBLK_FEATURES_LEN)
		return -EINVAL;
	if (copy_to_user(u64_to_user_ptr(header->addr), &features,
			 UBLK_FEATURES_LEN))
		return -EFAULT;
	return 0;
}

static int ublk_ctrl_uring_cmd(struct io_uring_cmd *cmd,
			       unsigned int issue_flags)
{
	struct ublksrv_ctrl_cmd header;
	struct ublk_device *ub;
	int op, ret;

	if (!(issue_flags & IO_URING_F_SQE128))
		return -EINVAL;
	/* the SQE is shared with userspace: work on one copy */
	memcpy(&header, cmd->cmd, sizeof(header));

	op = ublk_decode_op(cmd->cmd_op, sizeof(header));
	if (op < 0 || op >= BITS_PER_LONG || !(UBLK_CTRL_OPS & BIT(op)))
		return -EOPNOTSUPP;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (op == UBLK_CMD_ADD_DEV)
		return ublk_ctrl_add_dev(&header);
	if (op == UBLK_CMD_GET_FEATURES)
		return ublk_ctrl_get_features(&header);

	ub = ublk_get_device_from_id(header.dev_id);
	if (!ub)
		return -ENODEV;

	switch (op) {
	case UBLK_CMD_GET_QUEUE_AFFINITY:
		ret = ublk_ctrl_get_queue_affinity(ub, &header);
		break;
	case UBLK_CMD_GET_DEV_INFO:
	case UBLK_CMD_GET_DEV_INFO2:	/* every device here is privileged */
		ret = ublk_ctrl_get_dev_info(ub, &header);
		break;
	case UBLK_CMD_DEL_DEV:
		ret = ublk_ctrl_del_dev(ub);
		break;
	case UBLK_CMD_START_DEV:
		ret = ublk_ctrl_start_dev(ub, &header, cmd);
		break;
	case UBLK_CMD_STOP_DEV:
		ret = ublk_ctrl_stop_dev(ub);
		break;
	case UBLK_CMD_SET_PARAMS:
		ret = ublk_ctrl_set_params(ub, &header);
		break;
	case UBLK_CMD_GET_PARAMS:
		ret = ublk_ctrl_get_params(ub, &header);
		break;
	case UBLK_CMD_START_USER_RECOVERY:
		ret = ublk_ctrl_start_recovery(ub);
		break;
	case UBLK_CMD_END_USER_RECOVERY:
		ret = ublk_ctrl_end_recovery(ub, &header, cmd);
		break;
	case UBLK_CMD_QUIESCE_DEV:
		ret = ublk_ctrl_quiesce_dev(ub);
		break;
	default:
		ret = -EOPNOTSUPP;
		break;
	}
	put_device(&ub->cdev_dev);
	return ret;
}

/* /dev/ublk-control: nothing but io_uring commands */
static const struct file_operations ublk_ctl_fops = {
	.owner		= THIS_MODULE,
	.uring_cmd	= ublk_ctrl_uring_cmd,
	.open		= nonseekable_open,
	.llseek		= noop_llseek,
};

static struct miscdevice ublk_misc = {
	.name		= "ublk-control",
	.fops		= &ublk_ctl_fops,
	.minor		= MISC_DYNAMIC_MINOR,
};

/* ---- module init and exit ---- */

static void ublk_find_exit_tp(struct tracepoint *tp, void *priv)
{
	if (!strcmp(tp->name, "sched_process_exit"))
		*(struct tracepoint **)priv = tp;
}

static int ublk_register_exit_probe(void)
{
	for_each_kernel_tracepoint(ublk_find_exit_tp, &ublk_exit_tp);
	if (!ublk_exit_tp) {
		pr_err("ublk: no sched_process_exit tracepoint\n");
		return -ENOENT;
	}
	return tracepoint_probe_register(ublk_exit_tp,
					 (void *)ublk_probe_task_exit, NULL);
}

static void ublk_unregister_exit_probe(void)
{
	tracepoint_probe_unregister(ublk_exit_tp, (void *)ublk_probe_task_exit,
				    NULL);
	tracepoint_synchronize_unregister();
	cancel_work_sync(&ublk_scan_work);
}

/* The char device region and class of every /dev/ublkcN. */
static int ublk_chr_register(void)
{
	int ret;

	ret = alloc_chrdev_region(&ublk_chr_devt, 0, UBLK_MINORS, "ublk-char");
	if (ret)
		return ret;
	ublk_chr_class = class_create(THIS_MODULE, "ublk-char");
	if (!IS_ERR(ublk_chr_class))
		return 0;
	unregister_chrdev_region(ublk_chr_devt, UBLK_MINORS);
	return PTR_ERR(ublk_chr_class);
}

static void ublk_chr_unregister(void)
{
	class_destroy(ublk_chr_class);
	unregister_chrdev_region(ublk_chr_devt, UBLK_MINORS);
}

static int __init ublk_init(void)
{
	int ret;

	BUILD_BUG_ON(sizeof(struct ublksrv_ctrl_cmd) != 32);
	BUILD_BUG_ON(sizeof(struct ublksrv_ctrl_dev_info) != 64);
	BUILD_BUG_ON(sizeof(struct ublksrv_io_desc) != 24);
	BUILD_BUG_ON(sizeof(struct ublksrv_io_cmd) != 16);
	BUILD_BUG_ON(sizeof(struct ublk_param_basic) != 32);
	BUILD_BUG_ON(sizeof(struct ublk_param_discard) != 20);
	BUILD_BUG_ON(sizeof(struct ublk_params) != 64);
	BUILD_BUG_ON(sizeof(struct ublk_uring_cmd_pdu) >
		     sizeof_field(struct io_uring_cmd, pdu));
	BUILD_BUG_ON((u64)UBLKSRV_IO_BUF_OFFSET <
		     (u64)UBLK_MAX_NR_QUEUES * ublk_max_cmd_buf_size());

	ublk_wq = alloc_workqueue("ublk", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!ublk_wq)
		return -ENOMEM;
	ret = ublk_chr_register();
	if (ret)
		goto destroy_wq;
	ret = ublk_register_exit_probe();
	if (ret)
		goto unregister_chr;
	/* last: from here on ADD_DEV can be sent */
	ret = misc_register(&ublk_misc);
	if (ret)
		goto unregister_probe;
	return 0;

unregister_probe:
	ublk_unregister_exit_probe();
unregister_chr:
	ublk_chr_unregister();
destroy_wq:
	destroy_workqueue(ublk_wq);
	return ret;
}

static void __exit ublk_exit(void)
{
	struct ublk_device *ub;
	int id = 0;

	/* nobody holds /dev/ublk-control open, so no device is being added */
	for (;;) {
		mutex_lock(&ublk_ctl_mutex);
		ub = idr_get_next(&ublk_index_idr, &id);
		if (ub)
			get_device(&ub->cdev_dev);
		mutex_unlock(&ublk_ctl_mutex);
		if (!ub)
			break;
		ublk_ctrl_del_dev(ub);
		put_device(&ub->cdev_dev);
		id = 0;
	}
	/* a task work of an exiting daemon may still hold a device */
	wait_event(ublk_devs_wq, !atomic_read(&ublk_nr_devs));
	/* the task work that dropped it is past its read-side section */
	synchronize_rcu();
	destroy_workqueue(ublk_wq);

	misc_deregister(&ublk_misc);
	ublk_unregister_exit_probe();
	ublk_chr_unregister();
	idr_destroy(&ublk_index_idr);
}

module_init(ublk_init);
module_exit(ublk_exit);

MODULE_AUTHOR("ublk developers");
MODULE_DESCRIPTION("Userspace block device with user recovery");
MODULE_LICENSE("GPL");
