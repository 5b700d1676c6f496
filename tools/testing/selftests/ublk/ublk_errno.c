// SPDX-License-Identifier: GPL-2.0
/*
 * ublk_errno: send raw ublk control and I/O commands, good and bad, and
 * check that each one is answered with the errno the driver documents.
 *
 *	ublk_errno ctrl		control-command argument checks (devices 900+)
 *	ublk_errno io		I/O-command checks against a device this
 *				program serves itself (device 920)
 *	ublk_errno recovery	START/END_USER_RECOVERY without a crash (910+)
 *	ublk_errno crash	recovery commands around a real server crash,
 *				a crash during recovery, I/O waiting while
 *				QUIESCED (device 930)
 *
 * Each case prints "ok - <what>" or "FAIL - <what>: got X want Y"; the exit
 * status is 1 if any case failed.
 *
 * Raw single commands, for the shell tests; each prints the CQE result
 * (0 or -errno) and exits 0 when the command completed at all:
 *	ublk_errno start-recovery ID
 *	ublk_errno end-recovery ID PID
 *	ublk_errno stop ID
 *	ublk_errno del ID
 *	ublk_errno state ID		DEAD, LIVE or QUIESCED
 *	ublk_errno info ID		key=value fields of GET_DEV_INFO
 *	ublk_errno features		plain=0x.. encoded=0x.. (GET_FEATURES)
 *
 * And a process helper for the crash tests (exit 1 on timeout):
 *	ublk_errno kill-wait ID STATE [TIMEOUT_MS]
 *		SIGKILL the device's server (ublksrv_pid) and poll
 *		GET_DEV_INFO every 100 us until the device is in STATE;
 *		prints the ms from the kill
 *
 * No case may hang the program when the driver is wrong: CQE waits have a
 * timeout, and control commands (which the driver runs synchronously in
 * io_uring_enter) are bounded by SIGALRM, which interrupts an interruptible
 * wait in the driver.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <linux/capability.h>

#include <liburing.h>

/* the project's ABI header (a superset of 6.1's), whatever -I says */
#include "../../../../include/uapi/linux/ublk_cmd.h"

#define CTRL_DEV		"/dev/ublk-control"
#define RES_TIMEOUT		(INT_MIN + 1)	/* no answer in time */
#define RES_SUBMIT		(INT_MIN + 2)	/* io_uring refused the SQE */
#define INJ_UDATA		BIT_ULL(63)	/* user_data of injected cmds */
#define DESC_STRIDE		(UBLK_MAX_QUEUE_DEPTH * \
				 sizeof(struct ublksrv_io_desc))
#define MAX_QUEUES		4
#define MAX_DEPTH		64
#define CTRL_TIMEOUT_MS		5000	/* a command that must not block */
#define START_TIMEOUT_MS	30000	/* START_DEV, END_USER_RECOVERY, DEL */
#define IO_TIMEOUT_MS		5000
#define DEV_SECTORS		(16ULL << 11)	/* 16 MiB */

/* the kernel's spellings; userspace has no <linux/compiler.h> */
#define __ublk_attr(x)		__attribute__(x)
#define __printf(a, b)		__ublk_attr((format(printf, a, b)))
#define __aligned(x)		__ublk_attr((aligned(x)))
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define BIT_ULL(nr)		(1ULL << (nr))

static int nr_pass, nr_fail;
static long page_size;

/* ---------------------------------------------------------------------- */
/* reporting */

static const char *res_name(int res, char *buf, size_t len)
{
	const char *name;

	if (res == RES_TIMEOUT)
		return "timeout";
	if (res == RES_SUBMIT)
		return "submit failed";
	if (res >= 0) {
		snprintf(buf, len, "%d", res);
		return buf;
	}
	name = strerrorname_np(-res);
	snprintf(buf, len, "-%s", name ? name : "?");
	return buf;
}

static void vreport(bool ok, const char *got, const char *want,
		    const char *fmt, va_list ap)
{
	printf("%s - ", ok ? "ok" : "FAIL");
	vprintf(fmt, ap);
	if (!ok && got && want)
		printf(": got %s want %s", got, want);
	else if (!ok && got)
		printf(": %s", got);
	printf("\n");
	fflush(stdout);
	if (ok)
		nr_pass++;
	else
		nr_fail++;
}

/* a command result against the expected one (0 or -errno) */
static bool __printf(3, 4)
expect_res(int got, int want, const char *fmt, ...)
{
	char g[64], w[64];
	va_list ap;
	bool ok = got == want;

	va_start(ap, fmt);
	vreport(ok, res_name(got, g, sizeof(g)), res_name(want, w, sizeof(w)),
		fmt, ap);
	va_end(ap);
	return ok;
}

/* a value against the expected one */
static bool __printf(3, 4)
expect_val(long long got, long long want, const char *fmt, ...)
{
	char g[32], w[32];
	va_list ap;
	bool ok = got == want;

	snprintf(g, sizeof(g), "%lld", got);
	snprintf(w, sizeof(w), "%lld", want);
	va_start(ap, fmt);
	vreport(ok, g, w, fmt, ap);
	va_end(ap);
	return ok;
}

/* a condition; `why' says what was seen when it does not hold */
static bool __printf(3, 4)
expect_true(bool ok, const char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(ok, why, NULL, fmt, ap);
	va_end(ap);
	return ok;
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* nr_cpu_ids: one more than the last CPU in /sys/.../cpu/possible */
static int possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
	char buf[256], *p;
	int last = 0;

	if (!f)
		return (int)sysconf(_SC_NPROCESSORS_CONF);
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return (int)sysconf(_SC_NPROCESSORS_CONF);
	}
	fclose(f);
	/* "0-3" or "0,2-5": the number after the last '-' or ',' */
	p = buf + strcspn(buf, "\n");
	*p = '\0';
	p = strrchr(buf, '-');
	if (!p || strrchr(buf, ',') > p)
		p = strrchr(buf, ',');
	last = atoi(p ? p + 1 : buf);
	return last + 1;
}

static bool wait_path(const char *path, bool present, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	for (;;) {
		bool there = access(path, F_OK) == 0;

		if (there == present)
			return true;
		if (now_ms() > end)
			return false;
		sleep_ms(5);
	}
}

/* an address that is certainly not mapped */
static void *unmapped_addr(void)
{
	void *p = mmap(NULL, page_size, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return (void *)8;
	munmap(p, page_size);
	return p;
}

/* ---------------------------------------------------------------------- */
/* control commands */

/* set by the SIGALRM handler: relaxed atomics keep it signal-safe */
static sig_atomic_t alarm_fired;

static void on_alarm(int sig)
{
	(void)sig;
	__atomic_store_n(&alarm_fired, 1, __ATOMIC_RELAXED);
}

static void install_alarm(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART: interrupt waits */
	sigaction(SIGALRM, &sa, NULL);
}

/* arm a timer that interrupts a blocking command after ms */
static void alarm_ms(int ms)
{
	struct itimerval it = { { 0, 0 }, { ms / 1000, (ms % 1000) * 1000 } };

	__atomic_store_n(&alarm_fired, 0, __ATOMIC_RELAXED);
	setitimer(ITIMER_REAL, &it, NULL);
}

static void alarm_off(void)
{
	struct itimerval it = { { 0, 0 }, { 0, 0 } };

	setitimer(ITIMER_REAL, &it, NULL);
}

/* wait for the CQE with user_data `ud', dropping stale ones */
static int wait_udata(struct io_uring *ring, __u64 ud, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	for (;;) {
		struct io_uring_cqe *cqe;
		long long left = end - now_ms();
		struct __kernel_timespec ts;
		int ret, res;

		if (left < 0)
			return RES_TIMEOUT;
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
		if (ret == -ETIME)
			return RES_TIMEOUT;
		if (ret == -EINTR)
			continue;
		if (ret < 0)
			return ret;
		res = cqe->res;
		ret = cqe->user_data == ud;
		io_uring_cqe_seen(ring, cqe);
		if (ret)
			return res;
	}
}

struct ctrl {
	int fd;
	bool sqe128;
	struct io_uring ring;
	__u64 seq;
};

static int ctrl_open(struct ctrl *c, bool sqe128)
{
	struct io_uring_params p;
	int ret;

	memset(c, 0, sizeof(*c));
	c->fd = open(CTRL_DEV, O_RDWR | O_CLOEXEC);
	if (c->fd < 0)
		return -errno;
	memset(&p, 0, sizeof(p));
	p.flags = sqe128 ? IORING_SETUP_SQE128 : 0;
	ret = io_uring_queue_init_params(8, &c->ring, &p);
	if (ret < 0) {
		close(c->fd);
		return ret;
	}
	c->sqe128 = sqe128;
	return 0;
}

static void ctrl_close(struct ctrl *c)
{
	io_uring_queue_exit(&c->ring);
	close(c->fd);
}

/*
 * Send one control command; return the CQE result, RES_TIMEOUT if no answer
 * came in time, or -EINTR if the alarm interrupted a blocking command.
 */
static int ctrl_cmd_t(struct ctrl *c, __u32 op, __u32 dev_id, __u16 q_id,
		      __u16 len, __u64 addr, __u64 d0, __u64 d1,
		      int timeout_ms)
{
	struct ublksrv_ctrl_cmd cmd = {
		.dev_id = dev_id, .queue_id = q_id, .len = len,
		.addr = addr, .data = { d0, d1 },
	};
	struct io_uring_sqe *sqe;
	int ret;

	sqe = io_uring_get_sqe(&c->ring);
	if (!sqe)
		return RES_SUBMIT;
	memset(sqe, 0, c->sqe128 ? 128 : 64);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = c->fd;
	sqe->cmd_op = op;
	/* a 64-byte SQE only has 16 bytes of command area */
	memcpy(sqe->cmd, &cmd, c->sqe128 ? sizeof(cmd) : 16);
	sqe->user_data = ++c->seq;

	alarm_ms(timeout_ms);
	ret = io_uring_submit(&c->ring);
	if (ret != 1) {
		alarm_off();
		return ret < 0 && ret != -EINTR ? ret : RES_SUBMIT;
	}
	ret = wait_udata(&c->ring, c->seq, timeout_ms);
	alarm_off();
	if (ret == -EINTR && __atomic_load_n(&alarm_fired, __ATOMIC_RELAXED))
		return RES_TIMEOUT;
	return ret;
}

/* Submit one control command without waiting; returns its user_data. */
static __u64 ctrl_submit(struct ctrl *c, __u32 op, __u32 dev_id, __u64 d0)
{
	struct ublksrv_ctrl_cmd cmd = {
		.dev_id = dev_id, .queue_id = (__u16)-1, .data = { d0, 0 },
	};
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);

	if (!sqe)
		return 0;
	memset(sqe, 0, 128);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = c->fd;
	sqe->cmd_op = op;
	memcpy(sqe->cmd, &cmd, sizeof(cmd));
	sqe->user_data = ++c->seq;
	return io_uring_submit(&c->ring) == 1 ? c->seq : 0;
}

static int ctrl_cmd(struct ctrl *c, __u32 op, __u32 dev_id, __u16 q_id,
		    __u16 len, __u64 addr, __u64 d0)
{
	return ctrl_cmd_t(c, op, dev_id, q_id, len, addr, d0, 0,
			  CTRL_TIMEOUT_MS);
}

#define NO_QUEUE	((__u16)-1)
#define PTR(p)		((__u64)(uintptr_t)(p))

static void info_init(struct ublksrv_ctrl_dev_info *info, __u32 id,
		      __u16 nr_queues, __u16 depth, __u32 max_io, __u64 flags)
{
	memset(info, 0, sizeof(*info));
	info->dev_id = id;
	info->nr_hw_queues = nr_queues;
	info->queue_depth = depth;
	info->max_io_buf_bytes = max_io;
	info->flags = flags;
}

static int add_dev(struct ctrl *c, struct ublksrv_ctrl_dev_info *info)
{
	return ctrl_cmd(c, UBLK_CMD_ADD_DEV, info->dev_id, NO_QUEUE,
			sizeof(*info), PTR(info), 0);
}

static int get_info(struct ctrl *c, __u32 id, struct ublksrv_ctrl_dev_info *info)
{
	memset(info, 0, sizeof(*info));
	return ctrl_cmd(c, UBLK_CMD_GET_DEV_INFO, id, NO_QUEUE,
			sizeof(*info), PTR(info), 0);
}

static int get_state(struct ctrl *c, __u32 id)
{
	struct ublksrv_ctrl_dev_info info;
	int ret = get_info(c, id, &info);

	return ret < 0 ? ret : info.state;
}

static int del_dev(struct ctrl *c, __u32 id)
{
	return ctrl_cmd_t(c, UBLK_CMD_DEL_DEV, id, NO_QUEUE, 0, 0, 0, 0,
			  START_TIMEOUT_MS);
}

static int stop_dev(struct ctrl *c, __u32 id)
{
	return ctrl_cmd_t(c, UBLK_CMD_STOP_DEV, id, NO_QUEUE, 0, 0, 0, 0,
			  START_TIMEOUT_MS);
}

static int start_dev(struct ctrl *c, __u32 id, __s64 pid, int timeout_ms)
{
	return ctrl_cmd_t(c, UBLK_CMD_START_DEV, id, NO_QUEUE, 0, 0,
			  (__u64)pid, 0, timeout_ms);
}

static int start_recovery(struct ctrl *c, __u32 id)
{
	return ctrl_cmd(c, UBLK_CMD_START_USER_RECOVERY, id, NO_QUEUE, 0, 0, 0);
}

/*
 * START_USER_RECOVERY once the last holder of /dev/ublkcN is gone: the
 * release may trail the process exit a little (io_uring teardown), so an
 * -EBUSY is retried for up to timeout_ms.
 */
static int start_recovery_settled(struct ctrl *c, __u32 id, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	int ret;

	while ((ret = start_recovery(c, id)) == -EBUSY && now_ms() < end)
		sleep_ms(2);
	return ret;
}

static int end_recovery(struct ctrl *c, __u32 id, __s64 pid, int timeout_ms)
{
	return ctrl_cmd_t(c, UBLK_CMD_END_USER_RECOVERY, id, NO_QUEUE, 0, 0,
			  (__u64)pid, 0, timeout_ms);
}

static void params_init(struct ublk_params *p)
{
	memset(p, 0, sizeof(*p));
	p->len = sizeof(*p);
	p->types = UBLK_PARAM_TYPE_BASIC;
	p->basic.logical_bs_shift = 9;
	p->basic.physical_bs_shift = 12;
	p->basic.io_opt_shift = 12;
	p->basic.io_min_shift = 9;
	p->basic.max_sectors = 128;	/* 64 KiB, the max_io_buf_bytes used */
	p->basic.dev_sectors = DEV_SECTORS;
}

static int set_params(struct ctrl *c, __u32 id, struct ublk_params *p)
{
	return ctrl_cmd(c, UBLK_CMD_SET_PARAMS, id, NO_QUEUE, sizeof(*p),
			PTR(p), 0);
}

static const char *state_name(int s)
{
	switch (s) {
	case UBLK_S_DEV_DEAD:
		return "DEAD";
	case UBLK_S_DEV_LIVE:
		return "LIVE";
	case UBLK_S_DEV_QUIESCED:
		return "QUIESCED";
	case UBLK_S_DEV_FAIL_IO:
		return "FAIL_IO";
	}
	return "?";
}

/* poll the state until it is `want'; return ms waited or -1 */
static long long wait_state(struct ctrl *c, __u32 id, int want, int timeout_ms)
{
	long long start = now_ms();

	for (;;) {
		if (get_state(c, id) == want)
			return now_ms() - start;
		if (now_ms() - start > timeout_ms)
			return -1;
		sleep_ms(1);
	}
}

/* remove leftovers of an earlier, interrupted run */
static void del_quietly(struct ctrl *c, __u32 id)
{
	if (get_state(c, id) >= 0) {
		stop_dev(c, id);
		del_dev(c, id);
	}
}

/* ---------------------------------------------------------------------- */
/* a minimal null server, used by the io and crash modes */

struct srv;

struct srv_queue {
	struct srv *srv;
	int q_id;
	bool encoded;		/* send UBLK_U_IO_* rather than plain ops */
	int nr_fetch;		/* tags [0, nr_fetch) are fetched at start */
	struct io_uring ring;
	struct ublksrv_io_desc *descs;
	size_t descs_len;
	char *bufs[MAX_DEPTH];
	pthread_t thread;

	/* below: protected by lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool primed;		/* initial fetches submitted */
	int fetch_more;		/* tags to fetch next: [nr_fetch, fetch_more) */
	bool inj_pending, inj_submitted, inj_done;
	__u32 inj_op;
	struct ublksrv_io_cmd inj_cmd;
	int inj_res;
	int nr_aborted;		/* fetches answered with UBLK_IO_RES_ABORT */
	int nr_served;		/* requests completed */
	int nr_bad;		/* CQEs with a result a server cannot expect */
	bool quit;
};

/* race-start: a child server SIGKILLs itself on its first request */
static bool srv_die_on_io;

struct srv {
	int cdev_fd;
	__u32 dev_id;
	int nr_queues;
	int depth;
	unsigned int max_io;
	struct srv_queue q[MAX_QUEUES];
};

static __u32 io_op(const struct srv_queue *q, __u32 op)
{
	if (!q->encoded)
		return op;
	switch (op) {
	case UBLK_IO_FETCH_REQ:
		return UBLK_U_IO_FETCH_REQ;
	case UBLK_IO_COMMIT_AND_FETCH_REQ:
		return UBLK_U_IO_COMMIT_AND_FETCH_REQ;
	case UBLK_IO_NEED_GET_DATA:
		return UBLK_U_IO_NEED_GET_DATA;
	}
	return op;
}

static int queue_io_cmd(struct io_uring *ring, int fd, __u32 op,
			const struct ublksrv_io_cmd *cmd, __u64 ud)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe)
		return -EBUSY;
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = fd;
	sqe->cmd_op = op;
	/* struct ublksrv_io_cmd fits the 16 bytes of a 64-byte SQE */
	memcpy(sqe->cmd, cmd, sizeof(*cmd));
	sqe->user_data = ud;
	return 0;
}

static void queue_tag_cmd(struct srv_queue *q, __u32 op, int tag, int result)
{
	struct ublksrv_io_cmd cmd = {
		.q_id = q->q_id, .tag = tag, .result = result,
		.addr = PTR(q->bufs[tag]),
	};

	if (queue_io_cmd(&q->ring, q->srv->cdev_fd, io_op(q, op), &cmd, tag)) {
		io_uring_submit(&q->ring);
		queue_io_cmd(&q->ring, q->srv->cdev_fd, io_op(q, op), &cmd,
			     tag);
	}
}

/* serve one request like a null device; return the COMMIT result */
static int serve(struct srv_queue *q, int tag)
{
	const struct ublksrv_io_desc *iod = &q->descs[tag];
	unsigned int bytes = iod->nr_sectors << 9;

	switch (ublksrv_get_op(iod)) {
	case UBLK_IO_OP_READ:
		if (bytes > q->srv->max_io)
			return -EIO;
		memset(q->bufs[tag], 0, bytes);
		return bytes;
	case UBLK_IO_OP_WRITE:
		return bytes;
	case UBLK_IO_OP_FLUSH:
	case UBLK_IO_OP_DISCARD:
	case UBLK_IO_OP_WRITE_ZEROES:
		return 0;
	}
	return -EOPNOTSUPP;
}

static void handle_cqe(struct srv_queue *q, struct io_uring_cqe *cqe)
{
	int tag = cqe->user_data & 0xffff;
	int res = cqe->res;

	if (cqe->user_data & INJ_UDATA) {
		pthread_mutex_lock(&q->lock);
		if (!q->inj_done) {
			q->inj_res = res;
			q->inj_done = true;
			pthread_cond_broadcast(&q->cond);
		}
		pthread_mutex_unlock(&q->lock);
		return;
	}
	if (res == UBLK_IO_RES_OK && srv_die_on_io)
		kill(getpid(), SIGKILL);
	if (res == UBLK_IO_RES_OK) {
		queue_tag_cmd(q, UBLK_IO_COMMIT_AND_FETCH_REQ, tag,
			      serve(q, tag));
		pthread_mutex_lock(&q->lock);
		q->nr_served++;
		pthread_mutex_unlock(&q->lock);
	} else if (res == UBLK_IO_RES_NEED_GET_DATA) {
		queue_tag_cmd(q, UBLK_IO_NEED_GET_DATA, tag, 0);
	} else {
		pthread_mutex_lock(&q->lock);
		if (res == UBLK_IO_RES_ABORT) {
			q->nr_aborted++;
		} else {
			q->nr_bad++;
			fprintf(stderr, "queue %d tag %d: unexpected CQE %d\n",
				q->q_id, tag, res);
		}
		pthread_cond_broadcast(&q->cond);
		pthread_mutex_unlock(&q->lock);
	}
}

static void *queue_thread(void *arg)
{
	struct srv_queue *q = arg;
	int tag, fetched;

	for (tag = 0; tag < q->nr_fetch; tag++)
		queue_tag_cmd(q, UBLK_IO_FETCH_REQ, tag, 0);
	io_uring_submit(&q->ring);
	fetched = q->nr_fetch;

	pthread_mutex_lock(&q->lock);
	q->primed = true;
	q->fetch_more = fetched;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);

	for (;;) {
		struct __kernel_timespec ts = { 0, 20 * 1000000 };
		struct io_uring_cqe *cqe;
		bool quit;

		pthread_mutex_lock(&q->lock);
		while (fetched < q->fetch_more)
			queue_tag_cmd(q, UBLK_IO_FETCH_REQ, fetched++, 0);
		if (q->inj_pending && !q->inj_submitted) {
			queue_io_cmd(&q->ring, q->srv->cdev_fd, q->inj_op,
				     &q->inj_cmd, INJ_UDATA);
			q->inj_submitted = true;
		}
		quit = q->quit;
		pthread_mutex_unlock(&q->lock);

		io_uring_submit(&q->ring);
		if (quit)
			break;
		if (io_uring_wait_cqe_timeout(&q->ring, &cqe, &ts))
			continue;
		while (io_uring_peek_cqe(&q->ring, &cqe) == 0) {
			handle_cqe(q, cqe);
			io_uring_cqe_seen(&q->ring, cqe);
		}
	}
	return NULL;
}

/*
 * Have queue thread q send one command and wait for its CQE; returns the
 * result or RES_TIMEOUT.
 */
static int q_inject_addr(struct srv_queue *q, __u32 op, __u16 q_id,
			 __u16 tag, __u64 addr, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	int res;

	pthread_mutex_lock(&q->lock);
	q->inj_op = op;
	memset(&q->inj_cmd, 0, sizeof(q->inj_cmd));
	q->inj_cmd.q_id = q_id;
	q->inj_cmd.tag = tag;
	q->inj_cmd.addr = addr;
	q->inj_pending = true;
	q->inj_submitted = false;
	q->inj_done = false;
	while (!q->inj_done && now_ms() < end) {
		pthread_mutex_unlock(&q->lock);
		sleep_ms(2);
		pthread_mutex_lock(&q->lock);
	}
	res = q->inj_done ? q->inj_res : RES_TIMEOUT;
	/* a late answer to a timed-out command is dropped by handle_cqe */
	q->inj_pending = false;
	pthread_mutex_unlock(&q->lock);
	return res;
}

static int q_inject(struct srv_queue *q, __u32 op, __u16 q_id, __u16 tag,
		    int timeout_ms)
{
	return q_inject_addr(q, op, q_id, tag,
			     PTR(q->bufs[tag < q->srv->depth ? tag : 0]),
			     timeout_ms);
}

/* wait until queue q saw `n' aborted fetches; false on timeout */
static bool q_wait_aborted(struct srv_queue *q, int n, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	bool ok;

	pthread_mutex_lock(&q->lock);
	while (q->nr_aborted < n && now_ms() < end) {
		pthread_mutex_unlock(&q->lock);
		sleep_ms(2);
		pthread_mutex_lock(&q->lock);
	}
	ok = q->nr_aborted >= n;
	pthread_mutex_unlock(&q->lock);
	return ok;
}

static size_t descs_len(int depth)
{
	size_t len = depth * sizeof(struct ublksrv_io_desc);

	return (len + page_size - 1) & ~(page_size - 1);
}

static off_t descs_off(int q_id)
{
	size_t stride = (DESC_STRIDE + page_size - 1) & ~(page_size - 1);

	return UBLKSRV_CMD_BUF_OFFSET + (off_t)q_id * stride;
}

/* mmap the descriptors, allocate buffers, start the queue threads */
static int srv_start(struct srv *s, int nr_fetch_q0)
{
	sigset_t all, old;
	int i, t, ret;

	for (i = 0; i < s->nr_queues; i++) {
		struct srv_queue *q = &s->q[i];

		q->srv = s;
		q->q_id = i;
		q->encoded = i & 1;
		q->nr_fetch = i == 0 ? nr_fetch_q0 : s->depth;
		pthread_mutex_init(&q->lock, NULL);
		pthread_cond_init(&q->cond, NULL);
		q->descs_len = descs_len(s->depth);
		q->descs = mmap(NULL, q->descs_len, PROT_READ, MAP_SHARED,
				s->cdev_fd, descs_off(i));
		if (q->descs == MAP_FAILED) {
			ret = -errno;
			fprintf(stderr, "mmap queue %d: %s\n", i,
				strerror(errno));
			return ret;
		}
		for (t = 0; t < s->depth; t++) {
			if (posix_memalign((void **)&q->bufs[t], page_size,
					   s->max_io))
				return -ENOMEM;
		}
		ret = io_uring_queue_init(2 * s->depth + 8, &q->ring, 0);
		if (ret < 0)
			return ret;
	}

	/* the alarm that bounds control commands is the main thread's */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < s->nr_queues; i++)
		pthread_create(&s->q[i].thread, NULL, queue_thread, &s->q[i]);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	for (i = 0; i < s->nr_queues; i++) {
		struct srv_queue *q = &s->q[i];

		pthread_mutex_lock(&q->lock);
		while (!q->primed)
			pthread_cond_wait(&q->cond, &q->lock);
		pthread_mutex_unlock(&q->lock);
	}
	return 0;
}

static void srv_stop(struct srv *s)
{
	int i, t;

	for (i = 0; i < s->nr_queues; i++) {
		struct srv_queue *q = &s->q[i];

		pthread_mutex_lock(&q->lock);
		q->quit = true;
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->thread, NULL);
		io_uring_queue_exit(&q->ring);
		munmap(q->descs, q->descs_len);
		for (t = 0; t < s->depth; t++)
			free(q->bufs[t]);
	}
}

/* ---------------------------------------------------------------------- */
/* block I/O on /dev/ublkbN from a helper thread, so a hang is reported */

struct blk_io {
	char path[64];
	off_t off;
	bool write;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	ssize_t ret;
	int err;
};

static void *blk_io_thread(void *arg)
{
	struct blk_io *b = arg;
	ssize_t ret = -1;
	void *buf = NULL;
	int fd, err = 0;

	fd = open(b->path, (b->write ? O_WRONLY : O_RDONLY) | O_DIRECT);
	if (fd < 0 || posix_memalign(&buf, 4096, 4096)) {
		err = errno;
	} else {
		memset(buf, 0x5a, 4096);
		ret = b->write ? pwrite(fd, buf, 4096, b->off) :
				 pread(fd, buf, 4096, b->off);
		err = ret < 0 ? errno : 0;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	pthread_mutex_lock(&b->lock);
	b->ret = ret;
	b->err = err;
	b->done = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

/* start 4 KiB of direct I/O; the struct must stay alive (it may hang) */
static struct blk_io *blk_io_start(__u32 id, off_t off, bool write)
{
	struct blk_io *b = calloc(1, sizeof(*b));
	sigset_t all, old;
	pthread_t th;

	if (!b)
		return NULL;
	snprintf(b->path, sizeof(b->path), "/dev/ublkb%u", id);
	b->off = off;
	b->write = write;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&th, NULL, blk_io_thread, b)) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		free(b);
		return NULL;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_detach(th);
	return b;
}

/* true if the I/O finished within timeout_ms */
static bool blk_io_wait(struct blk_io *b, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	bool done;

	pthread_mutex_lock(&b->lock);
	while (!b->done && now_ms() < end) {
		pthread_mutex_unlock(&b->lock);
		sleep_ms(2);
		pthread_mutex_lock(&b->lock);
	}
	done = b->done;
	pthread_mutex_unlock(&b->lock);
	return done;
}

static void expect_blk_io(__u32 id, off_t off, bool write, const char *when)
{
	struct blk_io *b = blk_io_start(id, off, write);

	if (!b) {
		expect_true(false, "no thread", "%s 4 KiB %s", when,
			    write ? "write" : "read");
		return;
	}
	if (!expect_true(blk_io_wait(b, IO_TIMEOUT_MS), "timeout",
			 "%s 4 KiB direct %s of /dev/ublkb%u completes", when,
			 write ? "write" : "read", id))
		return;	/* leak b: the thread may still touch it */
	expect_val(b->ret, 4096, "%s 4 KiB direct %s of /dev/ublkb%u (%s)",
		   when, write ? "write" : "read", id,
		   b->ret < 0 ? strerror(b->err) : "ok");
	free(b);
}

/* ---------------------------------------------------------------------- */
/* ctrl mode */

#define ID_A	900
#define ID_B	901
#define ID_C	902
#define ID_D	903
#define ID_E	904
#define ID_NONE	999

/* ADD_DEV that must fail; removes the device if the driver created one */
static void add_must_fail(struct ctrl *c, __u32 op, __u32 hdr_id, __u16 len,
			  __u64 addr, struct ublksrv_ctrl_dev_info *info,
			  int want, const char *what)
{
	struct ublksrv_ctrl_dev_info copy = *info;
	int ret;

	ret = ctrl_cmd(c, op, hdr_id, NO_QUEUE, len,
		       addr ? addr : PTR(&copy), 0);
	expect_res(ret, want, "ADD_DEV %s", what);
	if (ret == 0) {
		if (!addr)
			del_dev(c, copy.dev_id);
		del_quietly(c, hdr_id);
	}
}

static void ctrl_add_dev_cases(struct ctrl *c, int ncpu)
{
	struct ublksrv_ctrl_dev_info info, base, got;
	__u64 bad = PTR(unmapped_addr());
	int ret;

	info_init(&base, ID_A, 1, 32, 65536, 0);

	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, 63, 0, &base, -EINVAL,
		      "len 63");
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, 65, 0, &base, -EINVAL,
		      "len 65");
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, 0, 0, &base, -EINVAL,
		      "len 0");
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), bad, &base,
		      -EFAULT, "unmapped addr");
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info),
		      0xffff888000000000ULL, &base, -EFAULT,
		      "kernel addr");
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_B, sizeof(info), 0, &base,
		      -EINVAL, "header dev_id 901 != info.dev_id 900");

	info = base;
	info.dev_id = 1U << 20;
	add_must_fail(c, UBLK_CMD_ADD_DEV, 1U << 20, sizeof(info), 0, &info,
		      -EINVAL, "dev_id 1<<20");
	info.dev_id = 0xfffffffe;
	add_must_fail(c, UBLK_CMD_ADD_DEV, 0xfffffffe, sizeof(info), 0, &info,
		      -EINVAL, "dev_id 0xfffffffe");

	info = base;
	info.nr_hw_queues = 0;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "nr_hw_queues 0");
	info.nr_hw_queues = 4097;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "nr_hw_queues 4097");
	info = base;
	info.queue_depth = 0;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "queue_depth 0");
	info.queue_depth = 4097;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "queue_depth 4097");
	info = base;
	info.max_io_buf_bytes = 4095;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "max_io_buf_bytes 4095");
	info.max_io_buf_bytes = 0;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "max_io_buf_bytes 0");
	info = base;
	info.flags = 1ULL << 5;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "unknown flag bit 5");
	info.flags = 1ULL << 7;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "unknown flag bit 7");
	info.flags = 1ULL << 63;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "unknown flag bit 63");
	info.flags = UBLK_F_USER_RECOVERY_REISSUE;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "REISSUE without USER_RECOVERY");
	info.flags = UBLK_F_USER_RECOVERY_FAIL_IO;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "FAIL_IO without USER_RECOVERY");
	info.flags = UBLK_F_USER_RECOVERY_FAIL_IO | UBLK_F_USER_RECOVERY_REISSUE;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "FAIL_IO | REISSUE without USER_RECOVERY");
	info.flags = UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE |
		     UBLK_F_USER_RECOVERY_FAIL_IO;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "USER_RECOVERY | REISSUE | FAIL_IO");
	info.flags = UBLK_F_QUIESCE;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "QUIESCE without USER_RECOVERY");
	info.flags = UBLK_F_QUIESCE | UBLK_F_USER_RECOVERY_REISSUE;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EINVAL, "QUIESCE | REISSUE without USER_RECOVERY");
	expect_res(get_state(c, ID_A), -ENODEV,
		   "no device left behind by the failed ADD_DEVs");

	/* valid: the driver caps and cleans what it writes back */
	info_init(&info, ID_A, 64, 32, 1U << 30,
		  UBLK_F_SUPPORT_ZERO_COPY | UBLK_F_USER_RECOVERY);
	ret = add_dev(c, &info);
	expect_res(ret, 0, "ADD_DEV 900 (64 queues, 1 GiB buffers, ZERO_COPY)");
	expect_val(info.nr_hw_queues, ncpu < 64 ? ncpu : 64,
		   "ADD_DEV caps nr_hw_queues to the CPU count");
	expect_val(info.queue_depth, 32, "ADD_DEV keeps queue_depth");
	expect_val(info.max_io_buf_bytes, 1 << 20,
		   "ADD_DEV caps max_io_buf_bytes at 1 MiB");
	expect_val(info.flags & UBLK_F_SUPPORT_ZERO_COPY, 0,
		   "ADD_DEV clears UBLK_F_SUPPORT_ZERO_COPY");
	expect_val(!!(info.flags & UBLK_F_USER_RECOVERY), 1,
		   "ADD_DEV keeps UBLK_F_USER_RECOVERY");
	expect_val(!!(info.flags & UBLK_F_CMD_IOCTL_ENCODE), 1,
		   "ADD_DEV reports UBLK_F_CMD_IOCTL_ENCODE (as Linux 6.4)");
	expect_val(info.dev_id, ID_A, "ADD_DEV keeps dev_id");
	expect_val(info.state, UBLK_S_DEV_DEAD, "new device is DEAD");

	info_init(&info, ID_B, 4096, 4096, 3 * 4096 + 100, 0);
	ret = add_dev(c, &info);
	expect_res(ret, 0, "ADD_DEV 901 (4096 queues, depth 4096)");
	expect_val(info.nr_hw_queues, ncpu < 4096 ? ncpu : 4096,
		   "ADD_DEV caps 4096 queues to the CPU count");
	expect_val(info.queue_depth, 4096, "ADD_DEV accepts depth 4096");
	expect_val(info.max_io_buf_bytes, (3 * 4096 + 100) & ~(page_size - 1),
		   "ADD_DEV rounds max_io_buf_bytes down to the page size");

	info = base;
	add_must_fail(c, UBLK_CMD_ADD_DEV, ID_A, sizeof(info), 0, &info,
		      -EEXIST, "dev_id 900 again");

	info_init(&info, UINT32_MAX, 1, 8, 65536, 0);
	ret = ctrl_cmd(c, UBLK_CMD_ADD_DEV, UINT32_MAX, NO_QUEUE,
		       sizeof(info), PTR(&info), 0);
	expect_res(ret, 0, "ADD_DEV dev_id U32_MAX allocates an id");
	if (ret == 0) {
		expect_true(info.dev_id < (1U << 20) && info.dev_id != ID_A &&
			    info.dev_id != ID_B, "bad id",
			    "allocated id %u is free and < 1<<20",
			    info.dev_id);
		expect_res(del_dev(c, info.dev_id), 0,
			   "DEL_DEV the allocated id %u", info.dev_id);
	}

	info_init(&info, ID_C, 1, 8, 65536, UBLK_F_USER_RECOVERY |
		  UBLK_F_USER_RECOVERY_REISSUE | UBLK_F_NEED_GET_DATA |
		  UBLK_F_URING_CMD_COMP_IN_TASK);
	ret = ctrl_cmd(c, UBLK_U_CMD_ADD_DEV, ID_C, NO_QUEUE, sizeof(info),
		       PTR(&info), 0);
	expect_res(ret, 0, "UBLK_U_CMD_ADD_DEV (ioctl-encoded) 902, all flags");
	ret = get_info(c, ID_C, &got);
	expect_res(ret, 0, "GET_DEV_INFO 902");
	expect_val(got.flags & 0x1f, 0x1e, "902 keeps flags bits 1-4");
}

static void ctrl_get_info_cases(struct ctrl *c)
{
	struct ublksrv_ctrl_dev_info plain, enc;
	__u64 bad = PTR(unmapped_addr());

	expect_res(ctrl_cmd(c, UBLK_CMD_GET_DEV_INFO, ID_A, NO_QUEUE, 63,
			    PTR(&plain), 0), -EINVAL, "GET_DEV_INFO len 63");
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_DEV_INFO, ID_A, NO_QUEUE, 0,
			    PTR(&plain), 0), -EINVAL, "GET_DEV_INFO len 0");
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_DEV_INFO, ID_A, NO_QUEUE,
			    sizeof(plain), bad, 0), -EFAULT,
		   "GET_DEV_INFO unmapped addr");
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_DEV_INFO, ID_A, NO_QUEUE,
			    sizeof(plain), 0, 0), -EFAULT,
		   "GET_DEV_INFO NULL addr");

	memset(&plain, 0, sizeof(plain));
	memset(&enc, 0xff, sizeof(enc));
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_DEV_INFO, ID_A, NO_QUEUE,
			    sizeof(plain), PTR(&plain), 0), 0,
		   "GET_DEV_INFO 900");
	expect_val(plain.dev_id, ID_A, "GET_DEV_INFO reports dev_id");
	expect_val(plain.queue_depth, 32, "GET_DEV_INFO reports queue_depth");
	expect_val(plain.state, UBLK_S_DEV_DEAD, "GET_DEV_INFO reports DEAD");
	expect_res(ctrl_cmd(c, UBLK_U_CMD_GET_DEV_INFO, ID_A, NO_QUEUE,
			    sizeof(enc), PTR(&enc), 0), 0,
		   "UBLK_U_CMD_GET_DEV_INFO (ioctl-encoded) 900");
	expect_val(memcmp(&plain, &enc, sizeof(plain)), 0,
		   "both encodings of GET_DEV_INFO return the same bytes");
	memset(&enc, 0xff, sizeof(enc));
	expect_res(ctrl_cmd(c, UBLK_U_CMD_GET_DEV_INFO2, ID_A, NO_QUEUE,
			    sizeof(enc), PTR(&enc), 0), 0,
		   "UBLK_U_CMD_GET_DEV_INFO2 900");
	expect_val(memcmp(&plain, &enc, sizeof(plain)), 0,
		   "GET_DEV_INFO2 returns what GET_DEV_INFO does");
	memset(&enc, 0xff, sizeof(enc));
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_DEV_INFO2, ID_A, NO_QUEUE,
			    sizeof(enc), PTR(&enc), 0), 0,
		   "GET_DEV_INFO2 (plain opcode 0x12) 900");
	expect_val(memcmp(&plain, &enc, sizeof(plain)), 0,
		   "plain GET_DEV_INFO2 returns what GET_DEV_INFO does");
	expect_res(ctrl_cmd(c, UBLK_U_CMD_GET_DEV_INFO2, ID_A, NO_QUEUE, 63,
			    PTR(&enc), 0), -EINVAL, "GET_DEV_INFO2 len 63");
}

/*
 * The recovery combinations ADD_DEV accepts beyond 6.1 (FAIL_IO, QUIESCE),
 * and QUIESCE_DEV outside a LIVE device with UBLK_F_QUIESCE.
 */
static void ctrl_beyond_cases(struct ctrl *c)
{
	static const struct {
		__u64 flags;
		const char *what;
	} ok[] = {
		{ UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_FAIL_IO,
		  "USER_RECOVERY | FAIL_IO" },
		{ UBLK_F_USER_RECOVERY | UBLK_F_QUIESCE,
		  "USER_RECOVERY | QUIESCE" },
		{ UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE |
		  UBLK_F_QUIESCE, "USER_RECOVERY | REISSUE | QUIESCE" },
		{ UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_FAIL_IO |
		  UBLK_F_QUIESCE, "USER_RECOVERY | FAIL_IO | QUIESCE" },
	};
	struct ublksrv_ctrl_dev_info info;
	__u64 feat = 0;
	unsigned int i;
	char what[128];

	expect_res(ctrl_cmd(c, UBLK_CMD_GET_FEATURES, UINT32_MAX, NO_QUEUE,
			    UBLK_FEATURES_LEN, PTR(&feat), 0), 0, "GET_FEATURES");
	expect_val(!!(feat & UBLK_F_USER_RECOVERY_FAIL_IO), 1,
		   "GET_FEATURES reports UBLK_F_USER_RECOVERY_FAIL_IO");
	expect_val(!!(feat & UBLK_F_QUIESCE), 1,
		   "GET_FEATURES reports UBLK_F_QUIESCE");

	for (i = 0; i < ARRAY_SIZE(ok); i++) {
		info_init(&info, ID_A, 1, 8, 65536, ok[i].flags);
		snprintf(what, sizeof(what), "ADD_DEV %s", ok[i].what);
		expect_res(add_dev(c, &info), 0, what);
		expect_val(info.flags & ok[i].flags, ok[i].flags,
			   "ADD_DEV keeps the recovery flags");
		snprintf(what, sizeof(what), "QUIESCE_DEV on a DEAD device (%s)",
			 ok[i].what);
		expect_res(ctrl_cmd(c, UBLK_U_CMD_QUIESCE_DEV, ID_A, NO_QUEUE,
				    0, 0, 0),
			   (ok[i].flags & UBLK_F_QUIESCE) ? -EBUSY : -EINVAL,
			   what);
		expect_res(ctrl_cmd(c, UBLK_CMD_QUIESCE_DEV, ID_A, NO_QUEUE,
				    0, 0, 0),
			   (ok[i].flags & UBLK_F_QUIESCE) ? -EBUSY : -EINVAL,
			   "QUIESCE_DEV, plain opcode 0x16");
		expect_res(start_recovery(c, ID_A), -EBUSY,
			   "START_USER_RECOVERY on a DEAD device");
		expect_res(del_dev(c, ID_A), 0, "DEL_DEV");
	}
	info_init(&info, ID_A, 1, 8, 65536, UBLK_F_USER_RECOVERY);
	expect_res(add_dev(c, &info), 0, "ADD_DEV USER_RECOVERY");
	expect_res(ctrl_cmd(c, UBLK_U_CMD_QUIESCE_DEV, ID_A, NO_QUEUE, 0, 0, 0),
		   -EINVAL, "QUIESCE_DEV without UBLK_F_QUIESCE");
	expect_res(del_dev(c, ID_A), 0, "DEL_DEV");
	expect_res(ctrl_cmd(c, UBLK_U_CMD_QUIESCE_DEV, ID_NONE, NO_QUEUE, 0, 0,
			    0), -ENODEV, "QUIESCE_DEV of no device");
}

static void ctrl_nodev_cases(struct ctrl *c)
{
	static const struct { __u32 op; const char *name; } ops[] = {
		{ UBLK_CMD_GET_QUEUE_AFFINITY, "GET_QUEUE_AFFINITY" },
		{ UBLK_CMD_GET_DEV_INFO, "GET_DEV_INFO" },
		{ UBLK_CMD_DEL_DEV, "DEL_DEV" },
		{ UBLK_CMD_START_DEV, "START_DEV" },
		{ UBLK_CMD_STOP_DEV, "STOP_DEV" },
		{ UBLK_CMD_SET_PARAMS, "SET_PARAMS" },
		{ UBLK_CMD_GET_PARAMS, "GET_PARAMS" },
		{ UBLK_CMD_START_USER_RECOVERY, "START_USER_RECOVERY" },
		{ UBLK_CMD_END_USER_RECOVERY, "END_USER_RECOVERY" },
		{ UBLK_U_CMD_GET_DEV_INFO, "UBLK_U_CMD_GET_DEV_INFO" },
		{ UBLK_U_CMD_GET_DEV_INFO2, "UBLK_U_CMD_GET_DEV_INFO2" },
	};
	static const __u32 ids[] = { ID_NONE, 1U << 20, UINT32_MAX };
	union {
		struct ublk_params p;
		unsigned char raw[512];
	} buf;
	struct ublk_params *p = &buf.p;
	unsigned int i, j;

	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		for (j = 0; j < ARRAY_SIZE(ids); j++) {
			__u16 len = sizeof(struct ublksrv_ctrl_dev_info);
			__u16 q_id = NO_QUEUE;

			/* arguments otherwise valid for the command */
			memset(&buf, 0, sizeof(buf));
			if (ops[i].op == UBLK_CMD_SET_PARAMS ||
			    ops[i].op == UBLK_CMD_GET_PARAMS) {
				params_init(p);
				len = sizeof(*p);
			} else if (ops[i].op == UBLK_CMD_GET_QUEUE_AFFINITY) {
				len = 8 * ((possible_cpus() + 63) / 64);
				q_id = 0;
			}
			expect_res(ctrl_cmd(c, ops[i].op, ids[j], q_id, len,
					    PTR(&buf), getpid()), -ENODEV,
				   "%s on missing device %u", ops[i].name,
				   ids[j]);
		}
	}
}

static void ctrl_affinity_cases(struct ctrl *c, int ncpu)
{
	struct ublksrv_ctrl_dev_info info;
	__u16 len = 8 * ((ncpu + 63) / 64);
	unsigned char mask[512];
	int ret, i, nbits = 0, high = 0;

	get_info(c, ID_A, &info);
	memset(mask, 0, sizeof(mask));
	/* 6.1's convention, as ublksrv sends it: queue in data[0], -1 in queue_id */
	ret = ctrl_cmd(c, UBLK_CMD_GET_QUEUE_AFFINITY, ID_A, NO_QUEUE, len,
		       PTR(mask), 0);
	expect_res(ret, 0, "GET_QUEUE_AFFINITY data[0] 0, queue_id 0xffff, len %u",
		   len);
	for (i = 0; i < len * 8; i++) {
		if (mask[i / 8] & (1 << (i % 8))) {
			nbits++;
			high += i >= ncpu;
		}
	}
	expect_true(ret || (nbits > 0 && !high), "empty or beyond nr_cpu_ids",
		    "queue 0 affinity has %d CPU(s), all < %d", nbits, ncpu);
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_QUEUE_AFFINITY, ID_A, 0, len,
			    PTR(mask), 0), 0,
		   "GET_QUEUE_AFFINITY data[0] 0, queue_id 0");
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_QUEUE_AFFINITY, ID_A, NO_QUEUE,
			    len, PTR(mask), info.nr_hw_queues), -EINVAL,
		   "GET_QUEUE_AFFINITY data[0] == nr_hw_queues (%u)",
		   info.nr_hw_queues);
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_QUEUE_AFFINITY, ID_A, NO_QUEUE,
			    len, PTR(mask), 1ULL << 32), -EINVAL,
		   "GET_QUEUE_AFFINITY data[0] 1 << 32 (not truncated)");
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_QUEUE_AFFINITY, ID_A, 0,
			    len, PTR(mask), ~0ULL), -EINVAL,
		   "GET_QUEUE_AFFINITY data[0] ~0");
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_QUEUE_AFFINITY, ID_A, 0, 4,
			    PTR(mask), 0), -EINVAL,
		   "GET_QUEUE_AFFINITY len 4 (not a multiple of 8)");
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_QUEUE_AFFINITY, ID_A, 0, 0,
			    PTR(mask), 0), -EINVAL,
		   "GET_QUEUE_AFFINITY len 0");
	if (ncpu > 64)
		expect_res(ctrl_cmd(c, UBLK_CMD_GET_QUEUE_AFFINITY, ID_A, 0,
				    8, PTR(mask), 0), -EINVAL,
			   "GET_QUEUE_AFFINITY len 8 < nr_cpu_ids bits");
}

struct param_case {
	const char *what;
	void (*mod)(struct ublk_params *p);
	int want;
};

static void p_lbs8(struct ublk_params *p)
{
	p->basic.logical_bs_shift = 8;
}

static void p_lbs13(struct ublk_params *p)
{
	p->basic.logical_bs_shift = 13;
}

static void p_pbs_lt_lbs(struct ublk_params *p)
{
	p->basic.logical_bs_shift = 12;
	p->basic.physical_bs_shift = 9;
}

static void p_maxsec0(struct ublk_params *p)
{
	p->basic.max_sectors = 0;
}

static void p_chunk3(struct ublk_params *p)
{
	p->basic.chunk_sectors = 3;
}

/* found by ublk_fuzz seed 3: bio_split() BUG_ON in the partition scan */
static void p_chunk1_lbs12(struct ublk_params *p)
{
	p->basic.logical_bs_shift = 12;
	p->basic.physical_bs_shift = 12;
	p->basic.chunk_sectors = 1;
}

static void p_chunk4_lbs12(struct ublk_params *p)
{
	p_chunk1_lbs12(p);
	p->basic.chunk_sectors = 4;
}

static void p_chunk8_lbs12(struct ublk_params *p)
{
	p_chunk1_lbs12(p);
	p->basic.chunk_sectors = 8;
}

static void p_chunk96(struct ublk_params *p)
{
	p->basic.chunk_sectors = 96;
}

static void p_attr16(struct ublk_params *p)
{
	p->basic.attrs = 1 << 4;
}

static void p_attr31(struct ublk_params *p)
{
	p->basic.attrs = 1U << 31;
}

static void p_vbm100(struct ublk_params *p)
{
	p->basic.virt_boundary_mask = 100;
}

static void p_vbm1023(struct ublk_params *p)
{
	p->basic.virt_boundary_mask = 1023;
}

static void p_vbm4096(struct ublk_params *p)
{
	p->basic.virt_boundary_mask = 4096;
}

static void p_discard(struct ublk_params *p)
{
	p->types |= UBLK_PARAM_TYPE_DISCARD;
	p->discard.discard_granularity = 4096;
	p->discard.max_discard_sectors = 2048;
	p->discard.max_write_zeroes_sectors = 2048;
	p->discard.max_discard_segments = 1;
}

static void p_discard_gran3(struct ublk_params *p)
{
	p_discard(p);
	p->discard.discard_granularity = 3;
}

static void p_discard_seg2(struct ublk_params *p)
{
	p_discard(p);
	p->discard.max_discard_segments = 2;
}

static void p_discard_gran0(struct ublk_params *p)
{
	p_discard(p);
	p->discard.discard_granularity = 0;
}

static void p_discard_gran256(struct ublk_params *p)
{
	p_discard(p);
	p->discard.discard_granularity = 256;
}

static void p_discard_gran2048_lbs12(struct ublk_params *p)
{
	p_discard(p);
	p->basic.logical_bs_shift = 12;
	p->basic.physical_bs_shift = 12;
	p->discard.discard_granularity = 2048;
}

static void p_nodiscard_gran0(struct ublk_params *p)
{
	p_discard(p);
	p->discard.max_discard_sectors = 0;
	p->discard.discard_granularity = 0;
	p->discard.max_discard_segments = 0;
}

static void p_devsec_big(struct ublk_params *p)
{
	p->basic.dev_sectors = 1ULL << 54;
}

static void p_devsec_max(struct ublk_params *p)
{
	p->basic.dev_sectors = (1ULL << 54) - 1;
}

static void p_lbs12(struct ublk_params *p)
{
	p->basic.logical_bs_shift = 12;
	p->basic.physical_bs_shift = 12;
}

static void p_chunk256(struct ublk_params *p)
{
	p->basic.chunk_sectors = 256;
}

static void p_vbm4095(struct ublk_params *p)
{
	p->basic.virt_boundary_mask = 4095;
}

static void p_attrs_all(struct ublk_params *p)
{
	p->basic.attrs = UBLK_ATTR_READ_ONLY | UBLK_ATTR_ROTATIONAL |
		 UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA;
}

static void p_none(struct ublk_params *p)
{
	(void)p;
}

static const struct param_case param_cases[] = {
	{ "logical_bs_shift 8", p_lbs8, -EINVAL },
	{ "logical_bs_shift 13", p_lbs13, -EINVAL },
	{ "physical_bs_shift 9 < logical_bs_shift 12", p_pbs_lt_lbs, -EINVAL },
	{ "max_sectors 0", p_maxsec0, -EINVAL },
	{ "chunk_sectors 3", p_chunk3, -EINVAL },
	{ "chunk_sectors 1 < 4 KiB logical blocks", p_chunk1_lbs12, -EINVAL },
	{ "chunk_sectors 4 < 4 KiB logical blocks", p_chunk4_lbs12, -EINVAL },
	{ "valid: chunk_sectors 8, 4 KiB logical blocks", p_chunk8_lbs12, 0 },
	{ "chunk_sectors 96", p_chunk96, -EINVAL },
	{ "attrs bit 4", p_attr16, -EINVAL },
	{ "attrs bit 31", p_attr31, -EINVAL },
	{ "virt_boundary_mask 100", p_vbm100, -EINVAL },
	{ "virt_boundary_mask 1023", p_vbm1023, -EINVAL },
	{ "virt_boundary_mask 4096", p_vbm4096, -EINVAL },
	{ "discard_granularity 3", p_discard_gran3, -EINVAL },
	{ "max_discard_segments 2 (one range per descriptor)", p_discard_seg2,
	  -EINVAL },
	{ "discard_granularity 0 with discard", p_discard_gran0, -EINVAL },
	{ "discard_granularity 256", p_discard_gran256, -EINVAL },
	{ "discard_granularity 2048 < 4 KiB logical blocks",
	  p_discard_gran2048_lbs12, -EINVAL },
	{ "dev_sectors 2^54 (bytes overflow loff_t)", p_devsec_big, -EINVAL },
	{ "valid: dev_sectors 2^54 - 1", p_devsec_max, 0 },
	{ "valid: discard type without discard, granularity 0",
	  p_nodiscard_gran0, 0 },
	{ "valid: 4 KiB logical blocks", p_lbs12, 0 },
	{ "valid: chunk_sectors 256", p_chunk256, 0 },
	{ "valid: virt_boundary_mask 4095", p_vbm4095, 0 },
	{ "valid: every attr", p_attrs_all, 0 },
	{ "valid: discard granularity 4096", p_discard, 0 },
	{ "valid: basic", p_none, 0 },
};

static void ctrl_params_cases(struct ctrl *c)
{
	struct ublk_params p, got;
	__u64 bad = PTR(unmapped_addr());
	unsigned int i;
	int ret;

	params_init(&p);
	expect_res(ctrl_cmd(c, UBLK_CMD_SET_PARAMS, ID_A, NO_QUEUE, 7,
			    PTR(&p), 0), -EINVAL, "SET_PARAMS len 7");
	expect_res(ctrl_cmd(c, UBLK_CMD_SET_PARAMS, ID_A, NO_QUEUE, 0,
			    PTR(&p), 0), -EINVAL, "SET_PARAMS len 0");
	expect_res(ctrl_cmd(c, UBLK_CMD_SET_PARAMS, ID_A, NO_QUEUE,
			    sizeof(p), bad, 0), -EFAULT,
		   "SET_PARAMS unmapped addr");
	for (i = 0; i < ARRAY_SIZE(param_cases); i++) {
		params_init(&p);
		param_cases[i].mod(&p);
		expect_res(set_params(c, ID_A, &p), param_cases[i].want,
			   "SET_PARAMS %s", param_cases[i].what);
	}

	/* the last case above is the plain basic set: read it back */
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_PARAMS, ID_A, NO_QUEUE, 7,
			    PTR(&got), 0), -EINVAL, "GET_PARAMS len 7");
	params_init(&p);
	memset(&got, 0, sizeof(got));
	got.len = sizeof(got);
	ret = ctrl_cmd(c, UBLK_CMD_GET_PARAMS, ID_A, NO_QUEUE, sizeof(got),
		       PTR(&got), 0);
	expect_res(ret, 0, "GET_PARAMS");
	expect_val(!!(got.types & UBLK_PARAM_TYPE_BASIC), 1,
		   "GET_PARAMS returns the basic part");
	expect_val(got.basic.dev_sectors, p.basic.dev_sectors,
		   "GET_PARAMS returns dev_sectors as set");
	expect_val(got.basic.logical_bs_shift, 9,
		   "GET_PARAMS returns logical_bs_shift as set");
	expect_val(got.basic.max_sectors, p.basic.max_sectors,
		   "GET_PARAMS returns max_sectors as set");
}

static void ctrl_misc_cases(struct ctrl *c)
{
	static const __u32 bad_ops[] = {
		0x00, 0x0a, 0x14, 0x3f, 0x20,
		_IOR('u', 0x3f, struct ublksrv_ctrl_cmd),
	};
	struct ublksrv_ctrl_dev_info info;
	struct ctrl small;
	__u64 feat = 0, feat_enc = 0;
	unsigned int i;
	int ret;

	for (i = 0; i < ARRAY_SIZE(bad_ops); i++)
		expect_res(ctrl_cmd(c, bad_ops[i], ID_A, NO_QUEUE,
				    sizeof(info), PTR(&info), 0),
			   -EOPNOTSUPP, "unknown control op 0x%x",
			   bad_ops[i]);

	ret = ctrl_open(&small, false);
	if (expect_res(ret, 0, "io_uring without SQE128 on ublk-control")) {
		expect_res(ctrl_cmd(&small, UBLK_CMD_GET_DEV_INFO, ID_A,
				    NO_QUEUE, sizeof(info), PTR(&info), 0),
			   -EINVAL, "GET_DEV_INFO from a ring without SQE128");
		ctrl_close(&small);
	}

	expect_res(ctrl_cmd(c, UBLK_CMD_GET_FEATURES, UINT32_MAX, NO_QUEUE, 7,
			    PTR(&feat), 0), -EINVAL, "GET_FEATURES len 7");
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_FEATURES, UINT32_MAX, NO_QUEUE, 0,
			    PTR(&feat), 0), -EINVAL, "GET_FEATURES len 0");
	expect_res(ctrl_cmd(c, UBLK_CMD_GET_FEATURES, UINT32_MAX, NO_QUEUE,
			    UBLK_FEATURES_LEN, PTR(&feat), 0), 0,
		   "GET_FEATURES");
	expect_val(feat & 0x5f, 0x5e,
		   "GET_FEATURES has bits 1,2,3,4,6 and not 0 (0x%llx)",
		   (unsigned long long)feat);
	expect_res(ctrl_cmd(c, UBLK_U_CMD_GET_FEATURES, UINT32_MAX, NO_QUEUE,
			    UBLK_FEATURES_LEN, PTR(&feat_enc), 0), 0,
		   "UBLK_U_CMD_GET_FEATURES (ioctl-encoded)");
	expect_val(feat_enc, feat, "both encodings of GET_FEATURES agree");

	/* START_DEV arguments (900 has BASIC params, 901 has none) */
	expect_res(start_dev(c, ID_A, 0, CTRL_TIMEOUT_MS), -EINVAL,
		   "START_DEV pid 0");
	expect_res(start_dev(c, ID_A, -1, CTRL_TIMEOUT_MS), -EINVAL,
		   "START_DEV pid -1");
	expect_res(start_dev(c, ID_B, getpid(), CTRL_TIMEOUT_MS), -EINVAL,
		   "START_DEV without BASIC params");
	expect_res(start_dev(c, ID_A, (1LL << 32) + getpid(), CTRL_TIMEOUT_MS),
		   -EINVAL, "START_DEV pid 2^32 + pid (not truncated)");

	expect_res(stop_dev(c, ID_A), 0, "STOP_DEV on a never-started device");
	expect_res(stop_dev(c, ID_A), 0, "STOP_DEV again");
	expect_res(get_state(c, ID_A), UBLK_S_DEV_DEAD,
		   "device still DEAD after STOP_DEV");
}

/* every control command needs CAP_SYS_ADMIN: try them without it */
static void ctrl_eperm_cases(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];
	struct ublksrv_ctrl_dev_info info;
	struct ctrl c;
	__u64 feat;
	pid_t pid;
	int status, ret;
	long long end;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		expect_true(false, strerror(errno), "fork for the EPERM cases");
		return;
	}
	if (pid == 0) {
		nr_pass = 0;
		nr_fail = 0;
		/* open as root first: only the capability will be missing */
		ret = ctrl_open(&c, true);
		if (!expect_res(ret, 0, "open ublk-control as root"))
			_exit(100);
		if (syscall(SYS_capget, &hdr, data)) {
			perror("capget");
			_exit(100);
		}
		data[CAP_SYS_ADMIN / 32].effective &=
			~(1U << (CAP_SYS_ADMIN % 32));
		data[CAP_SYS_ADMIN / 32].permitted &=
			~(1U << (CAP_SYS_ADMIN % 32));
		if (syscall(SYS_capset, &hdr, data)) {
			perror("capset");
			_exit(100);
		}
		expect_res(get_info(&c, ID_A, &info), -EPERM,
			   "GET_DEV_INFO without CAP_SYS_ADMIN");
		info_init(&info, ID_E, 1, 8, 65536, 0);
		ret = add_dev(&c, &info);
		expect_res(ret, -EPERM, "ADD_DEV without CAP_SYS_ADMIN");
		expect_res(del_dev(&c, ID_A), -EPERM,
			   "DEL_DEV without CAP_SYS_ADMIN");
		expect_res(ctrl_cmd(&c, UBLK_CMD_GET_FEATURES, UINT32_MAX,
				    NO_QUEUE, 8, PTR(&feat), 0), -EPERM,
			   "GET_FEATURES without CAP_SYS_ADMIN");
		_exit(nr_fail > 99 ? 99 : nr_fail);
	}

	end = now_ms() + 20000;
	while ((ret = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < end)
		sleep_ms(5);
	if (ret == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		expect_true(false, "timeout", "EPERM cases finish");
		return;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) == 100) {
		expect_true(false, "child error", "EPERM cases ran");
		return;
	}
	/* the child printed its own lines; count them here */
	nr_fail += WEXITSTATUS(status);
}

static void run_ctrl(void)
{
	int ncpu = possible_cpus();
	struct ctrl c;
	int id;

	if (!expect_res(ctrl_open(&c, true), 0, "open %s, SQE128 ring",
			CTRL_DEV))
		return;
	for (id = ID_A; id <= ID_E; id++)
		del_quietly(&c, id);
	del_quietly(&c, ID_NONE);

	ctrl_add_dev_cases(&c, ncpu);
	ctrl_get_info_cases(&c);
	ctrl_nodev_cases(&c);
	ctrl_affinity_cases(&c, ncpu);
	ctrl_params_cases(&c);
	ctrl_misc_cases(&c);
	ctrl_eperm_cases();

	expect_res(del_dev(&c, ID_A), 0, "DEL_DEV 900");
	expect_res(get_state(&c, ID_A), -ENODEV, "900 gone after DEL_DEV");
	expect_res(del_dev(&c, ID_A), -ENODEV, "DEL_DEV 900 again");
	expect_res(del_dev(&c, ID_B), 0, "DEL_DEV 901");
	expect_res(ctrl_cmd_t(&c, UBLK_U_CMD_DEL_DEV, ID_C, NO_QUEUE, 0, 0, 0,
			      0, START_TIMEOUT_MS), 0,
		   "UBLK_U_CMD_DEL_DEV (ioctl-encoded) 902");
	ctrl_beyond_cases(&c);
	for (id = ID_A; id <= ID_E; id++)
		del_quietly(&c, id);
	ctrl_close(&c);
}

/* ---------------------------------------------------------------------- */
/* recovery mode: START/END_USER_RECOVERY cases that need no crash */

#define ID_REC_NOFLAG	910
#define ID_REC_DEAD	911
#define ID_REC_REISSUE	912

static void run_recovery(void)
{
	struct ublksrv_ctrl_dev_info info;
	struct ublk_params p;
	struct ctrl c;

	if (!expect_res(ctrl_open(&c, true), 0, "open %s", CTRL_DEV))
		return;
	del_quietly(&c, ID_REC_NOFLAG);
	del_quietly(&c, ID_REC_DEAD);
	del_quietly(&c, ID_REC_REISSUE);
	params_init(&p);

	info_init(&info, ID_REC_NOFLAG, 1, 8, 65536, 0);
	expect_res(add_dev(&c, &info), 0, "ADD_DEV 910 without recovery");
	expect_res(set_params(&c, ID_REC_NOFLAG, &p), 0, "SET_PARAMS 910");
	expect_res(start_recovery(&c, ID_REC_NOFLAG), -EINVAL,
		   "START_USER_RECOVERY without UBLK_F_USER_RECOVERY");
	expect_res(end_recovery(&c, ID_REC_NOFLAG, getpid(), CTRL_TIMEOUT_MS),
		   -EINVAL, "END_USER_RECOVERY without UBLK_F_USER_RECOVERY");
	expect_res(ctrl_cmd(&c, UBLK_U_CMD_START_USER_RECOVERY, ID_REC_NOFLAG,
			    NO_QUEUE, 0, 0, 0), -EINVAL,
		   "UBLK_U_CMD_START_USER_RECOVERY without the flag");

	info_init(&info, ID_REC_DEAD, 1, 8, 65536, UBLK_F_USER_RECOVERY);
	expect_res(add_dev(&c, &info), 0, "ADD_DEV 911 with recovery");
	expect_res(set_params(&c, ID_REC_DEAD, &p), 0, "SET_PARAMS 911");
	expect_res(start_recovery(&c, ID_REC_DEAD), -EBUSY,
		   "START_USER_RECOVERY on a DEAD (never started) device");
	expect_res(end_recovery(&c, ID_REC_DEAD, getpid(), CTRL_TIMEOUT_MS),
		   -EBUSY, "END_USER_RECOVERY on a DEAD device");
	expect_res(stop_dev(&c, ID_REC_DEAD), 0, "STOP_DEV 911 (never started)");
	expect_res(start_recovery(&c, ID_REC_DEAD), -EBUSY,
		   "START_USER_RECOVERY after STOP_DEV");
	expect_res(get_state(&c, ID_REC_DEAD), UBLK_S_DEV_DEAD,
		   "911 still DEAD");

	info_init(&info, ID_REC_REISSUE, 1, 8, 65536,
		  UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE);
	expect_res(add_dev(&c, &info), 0, "ADD_DEV 912 with recovery+reissue");
	expect_res(start_recovery(&c, ID_REC_REISSUE), -EBUSY,
		   "START_USER_RECOVERY on a DEAD reissue device");
	expect_res(end_recovery(&c, ID_REC_REISSUE, getpid(),
				CTRL_TIMEOUT_MS), -EBUSY,
		   "END_USER_RECOVERY on a DEAD reissue device");

	expect_res(del_dev(&c, ID_REC_NOFLAG), 0, "DEL_DEV 910");
	expect_res(del_dev(&c, ID_REC_DEAD), 0, "DEL_DEV 911");
	expect_res(del_dev(&c, ID_REC_REISSUE), 0, "DEL_DEV 912");
	ctrl_close(&c);
}

/* ---------------------------------------------------------------------- */
/* io mode: I/O-command checks against a device served from here */

#define ID_IO		920
#define IO_DEPTH	4
#define IO_MAX_IO	65536

static void io_mmap_cases(int fd, int nr_queues)
{
	size_t len = descs_len(IO_DEPTH);
	void *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	expect_val(p == MAP_FAILED ? errno : 0, EPERM,
		   "mmap of the descriptors with PROT_WRITE fails with EPERM");
	if (p != MAP_FAILED)
		munmap(p, len);

	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, page_size);
	expect_val(p == MAP_FAILED ? errno : 0, EINVAL,
		   "mmap at offset one page (not a queue start): EINVAL");
	if (p != MAP_FAILED)
		munmap(p, len);

	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, descs_off(nr_queues));
	expect_val(p == MAP_FAILED ? errno : 0, EINVAL,
		   "mmap of queue %d (== nr_queues): EINVAL", nr_queues);
	if (p != MAP_FAILED)
		munmap(p, len);

	p = mmap(NULL, len + page_size, PROT_READ, MAP_SHARED, fd, 0);
	expect_val(p == MAP_FAILED ? errno : 0, EINVAL,
		   "mmap one page longer than depth*24 rounded up: EINVAL");
	if (p != MAP_FAILED)
		munmap(p, len + page_size);

	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	expect_val(p == MAP_FAILED ? errno : 0, 0,
		   "mmap of queue 0 read-only, %zu bytes", len);
	if (p != MAP_FAILED)
		munmap(p, len);
}

/* commands a queue's own thread sends on tag 0 while the tag waits */
static void io_waiting_tag_cases(struct srv_queue *q, int nr_queues,
				 const char *when)
{
	expect_res(q_inject(q, UBLK_IO_FETCH_REQ, 0, 0, IO_TIMEOUT_MS), -EBUSY,
		   "%s: FETCH_REQ twice on tag 0", when);
	expect_res(q_inject(q, UBLK_IO_COMMIT_AND_FETCH_REQ, 0, 0,
			    IO_TIMEOUT_MS), -EINVAL,
		   "%s: COMMIT_AND_FETCH_REQ on a waiting tag", when);
	expect_res(q_inject(q, UBLK_IO_NEED_GET_DATA, 0, 0, IO_TIMEOUT_MS),
		   -EINVAL, "%s: NEED_GET_DATA on a waiting tag", when);
	expect_res(q_inject(q, UBLK_U_IO_COMMIT_AND_FETCH_REQ, 0, 0,
			    IO_TIMEOUT_MS), -EINVAL,
		   "%s: UBLK_U_IO_COMMIT_AND_FETCH_REQ on a waiting tag", when);
	expect_res(q_inject(q, 0x23, 0, 0, IO_TIMEOUT_MS), -EOPNOTSUPP,
		   "%s: unknown I/O op 0x23", when);
	expect_res(q_inject(q, _IOWR('u', 0x2f, struct ublksrv_io_cmd), 0, 0,
			    IO_TIMEOUT_MS), -EOPNOTSUPP,
		   "%s: unknown ioctl-encoded I/O op nr 0x2f", when);
	expect_res(q_inject(q, UBLK_IO_FETCH_REQ, nr_queues, 0, IO_TIMEOUT_MS),
		   -EINVAL, "%s: FETCH_REQ q_id %d == nr_queues", when,
		   nr_queues);
	expect_res(q_inject(q, UBLK_IO_FETCH_REQ, 0, IO_DEPTH, IO_TIMEOUT_MS),
		   -EINVAL, "%s: FETCH_REQ tag %d == depth", when, IO_DEPTH);
	expect_res(q_inject(q, UBLK_IO_FETCH_REQ, 0, 0xffff, IO_TIMEOUT_MS),
		   -EINVAL, "%s: FETCH_REQ tag 0xffff", when);
}

/*
 * Before any daemon exists: a FETCH_REQ sent with IOSQE_ASYNC runs in an
 * io-wq worker, one on an SQPOLL ring in its kernel thread; the driver
 * could not see either die: refused.
 */
static void io_async_fetch_case(int cdev_fd)
{
	static char buf[IO_MAX_IO] __aligned(4096);
	struct ublksrv_io_cmd cmd = { .q_id = 0, .tag = 0, .addr = PTR(buf) };
	struct io_uring ring;
	struct io_uring_sqe *sqe;

	if (!expect_res(io_uring_queue_init(4, &ring, 0), 0,
			"io_uring for the IOSQE_ASYNC case"))
		return;
	queue_io_cmd(&ring, cdev_fd, UBLK_IO_FETCH_REQ, &cmd, 7);
	sqe = &ring.sq.sqes[(ring.sq.sqe_tail - 1) & *ring.sq.kring_mask];
	sqe->flags |= IOSQE_ASYNC;
	io_uring_submit(&ring);
	expect_res(wait_udata(&ring, 7, IO_TIMEOUT_MS), -EINVAL,
		   "FETCH_REQ with IOSQE_ASYNC (an io-wq worker) before any daemon");
	io_uring_queue_exit(&ring);

	/* the SQPOLL thread of a dead process never exits: refused too */
	if (!expect_res(io_uring_queue_init(4, &ring, IORING_SETUP_SQPOLL), 0,
			"io_uring with SQPOLL"))
		return;
	queue_io_cmd(&ring, cdev_fd, UBLK_IO_FETCH_REQ, &cmd, 8);
	io_uring_submit(&ring);
	expect_res(wait_udata(&ring, 8, IO_TIMEOUT_MS), -EINVAL,
		   "FETCH_REQ from an SQPOLL ring's thread before any daemon");
	io_uring_queue_exit(&ring);
}

/*
 * One tag of queue 0 is still unfetched: START_DEV is parked (its
 * submitter returns at once), a second one is refused, and the parked one
 * checks the parameters again when the last tag arrives. Leaves every tag
 * fetched and the valid parameters @p set.
 */
static void io_parked_start_cases(struct ctrl *c, struct srv_queue *q0,
				  struct ublk_params *p)
{
	struct ublk_params none = *p;
	long long t0 = now_ms();
	__u64 ud;

	alarm_ms(CTRL_TIMEOUT_MS);
	ud = ctrl_submit(c, UBLK_CMD_START_DEV, ID_IO, getpid());
	alarm_off();
	expect_true(ud != 0, "blocked or failed",
		    "START_DEV with a tag missing returns from io_uring_enter (%lld ms)",
		    now_ms() - t0);
	expect_res(wait_udata(&c->ring, ud, 300), RES_TIMEOUT,
		   "START_DEV stays parked while a tag is missing");
	expect_res(start_dev(c, ID_IO, getpid(), CTRL_TIMEOUT_MS), -EBUSY,
		   "second START_DEV while one is parked");
	none.types = 0;
	expect_res(set_params(c, ID_IO, &none), 0,
		   "SET_PARAMS without BASIC while START_DEV is parked");

	/* queue 0's thread fetches its last tag: the device gets ready */
	pthread_mutex_lock(&q0->lock);
	q0->fetch_more = IO_DEPTH;
	pthread_mutex_unlock(&q0->lock);

	if (ud)
		expect_res(wait_udata(&c->ring, ud, START_TIMEOUT_MS), -EINVAL,
			   "parked START_DEV re-checks the params when ready");
	expect_res(set_params(c, ID_IO, p), 0, "SET_PARAMS 920 again");
}

static void run_io(void)
{
	struct ublksrv_ctrl_dev_info info;
	struct io_uring main_ring;
	struct ublksrv_io_cmd cmd;
	struct ublk_params p;
	struct srv s;
	char cpath[64], bpath[64];
	bool have_main_ring, started = false;
	struct ctrl c;
	int ncpu = possible_cpus(), fd, i, ret;

	snprintf(cpath, sizeof(cpath), "/dev/ublkc%d", ID_IO);
	snprintf(bpath, sizeof(bpath), "/dev/ublkb%d", ID_IO);
	memset(&s, 0, sizeof(s));

	if (!expect_res(ctrl_open(&c, true), 0, "open %s", CTRL_DEV))
		return;
	del_quietly(&c, ID_IO);

	info_init(&info, ID_IO, ncpu >= 2 ? 2 : 1, IO_DEPTH, IO_MAX_IO, 0);
	if (!expect_res(add_dev(&c, &info), 0,
			"ADD_DEV 920 (%u queues, depth %d)",
			info.nr_hw_queues, IO_DEPTH))
		goto out_ctrl;
	params_init(&p);
	if (!expect_res(set_params(&c, ID_IO, &p), 0, "SET_PARAMS 920"))
		goto out_del;

	s.dev_id = ID_IO;
	s.nr_queues = info.nr_hw_queues;
	s.depth = info.queue_depth;
	s.max_io = info.max_io_buf_bytes;

	expect_true(wait_path(cpath, true, 2000), "missing",
		    "%s exists after ADD_DEV", cpath);
	s.cdev_fd = open(cpath, O_RDWR | O_CLOEXEC);
	if (!expect_val(s.cdev_fd < 0 ? errno : 0, 0, "open %s", cpath))
		goto out_del;
	fd = open(cpath, O_RDWR | O_CLOEXEC);
	expect_val(fd < 0 ? errno : 0, EBUSY, "second open of %s: EBUSY",
		   cpath);
	if (fd >= 0)
		close(fd);

	io_mmap_cases(s.cdev_fd, s.nr_queues);

	io_async_fetch_case(s.cdev_fd);

	/* queue 0 leaves its last tag for the wrong-thread case below */
	ret = srv_start(&s, IO_DEPTH - 1);
	if (!expect_res(ret, 0, "server threads started"))
		goto out_close;

	io_waiting_tag_cases(&s.q[0], s.nr_queues, "before START_DEV");

	ret = io_uring_queue_init(8, &main_ring, 0);
	have_main_ring = ret == 0;
	if (expect_res(ret, 0, "io_uring for the main thread")) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.q_id = 0;
		cmd.tag = IO_DEPTH - 1;
		cmd.addr = PTR(s.q[0].bufs[IO_DEPTH - 1]);
		queue_io_cmd(&main_ring, s.cdev_fd, UBLK_IO_FETCH_REQ, &cmd,
			     1);
		io_uring_submit(&main_ring);
		expect_res(wait_udata(&main_ring, 1, IO_TIMEOUT_MS), -EINVAL,
			   "FETCH_REQ on queue 0 from another thread");
	}

	expect_res(q_inject_addr(&s.q[0], UBLK_IO_FETCH_REQ, 0, IO_DEPTH - 1,
				 0, IO_TIMEOUT_MS), -EINVAL,
		   "FETCH_REQ with addr 0 without NEED_GET_DATA");

	io_parked_start_cases(&c, &s.q[0], &p);

	ret = start_dev(&c, ID_IO, getpid(), START_TIMEOUT_MS);
	if (!expect_res(ret, 0, "START_DEV 920 (all tags fetched)"))
		goto out_stop;
	started = true;
	expect_res(start_dev(&c, ID_IO, getpid(), CTRL_TIMEOUT_MS), -EEXIST,
		   "START_DEV on a started device");
	expect_res(set_params(&c, ID_IO, &p), -EACCES,
		   "SET_PARAMS on a LIVE device");
	expect_res(get_info(&c, ID_IO, &info), 0, "GET_DEV_INFO 920");
	expect_val(info.state, UBLK_S_DEV_LIVE, "920 is LIVE after START_DEV");
	expect_val(info.ublksrv_pid, getpid(), "GET_DEV_INFO reports our pid");
	expect_res(start_recovery(&c, ID_IO), -EINVAL,
		   "START_USER_RECOVERY on a LIVE device without the flag");
	expect_true(wait_path(bpath, true, 2000), "missing",
		    "%s exists after START_DEV", bpath);

	io_waiting_tag_cases(&s.q[0], s.nr_queues, "LIVE");

	expect_blk_io(ID_IO, 0, true, "LIVE");
	expect_blk_io(ID_IO, 8192, false, "LIVE");

out_stop:
	expect_res(stop_dev(&c, ID_IO), 0, "STOP_DEV 920");
	if (started) {
		for (i = 0; i < s.nr_queues; i++)
			expect_true(q_wait_aborted(&s.q[i], IO_DEPTH, 10000),
				    "not all",
				    "queue %d: STOP_DEV aborts all %d fetches",
				    i, IO_DEPTH);
		expect_res(q_inject(&s.q[0], UBLK_IO_FETCH_REQ, 0, 0,
				    IO_TIMEOUT_MS), -ENODEV,
			   "FETCH_REQ after STOP_DEV");
		expect_res(get_state(&c, ID_IO), UBLK_S_DEV_DEAD,
			   "920 is DEAD after STOP_DEV");
		expect_res(stop_dev(&c, ID_IO), 0,
			   "STOP_DEV on a stopped device");
		expect_true(wait_path(bpath, false, 5000), "still there",
			    "%s removed by STOP_DEV", bpath);
	}
	for (i = 0; i < s.nr_queues; i++)
		expect_val(s.q[i].nr_bad, 0, "queue %d saw no unexpected CQE",
			   i);
	srv_stop(&s);
	if (have_main_ring)
		io_uring_queue_exit(&main_ring);
out_close:
	close(s.cdev_fd);
out_del:
	expect_res(del_dev(&c, ID_IO), 0, "DEL_DEV 920");
	expect_true(wait_path(cpath, false, 5000), "still there",
		    "%s removed by DEL_DEV", cpath);
	expect_res(get_state(&c, ID_IO), -ENODEV, "920 gone after DEL_DEV");
out_ctrl:
	ctrl_close(&c);
}

/* ---------------------------------------------------------------------- */
/* crash mode: recovery commands around real server deaths */

#define ID_CRASH	930

/*
 * A one-queue null server in a child process. It fetches `nr_fetch' tags,
 * writes 'R' to ready_fd and serves until every fetch is aborted. With
 * cdev_fd < 0 it opens /dev/ublkcN itself.
 */
static void child_server(__u32 id, int depth, unsigned int max_io,
			 int cdev_fd, int nr_fetch, int ready_fd)
{
	struct srv s;
	char path[64];

	memset(&s, 0, sizeof(s));
	s.dev_id = id;
	s.nr_queues = 1;
	s.depth = depth;
	s.max_io = max_io;
	if (cdev_fd < 0) {
		snprintf(path, sizeof(path), "/dev/ublkc%u", id);
		cdev_fd = open(path, O_RDWR);
	}
	s.cdev_fd = cdev_fd;
	if (cdev_fd < 0 || srv_start(&s, nr_fetch)) {
		if (write(ready_fd, "E", 1) != 1)
			_exit(2);
		_exit(1);
	}
	if (write(ready_fd, "R", 1) != 1)
		_exit(1);
	pthread_mutex_lock(&s.q[0].lock);
	while (s.q[0].nr_aborted < nr_fetch)
		pthread_cond_wait(&s.q[0].cond, &s.q[0].lock);
	pthread_mutex_unlock(&s.q[0].lock);
	srv_stop(&s);
	_exit(s.q[0].nr_bad ? 3 : 0);
}

/* fork a child server; return its pid once it reported ready, or -1 */
static pid_t spawn_server(__u32 id, int depth, unsigned int max_io,
			  int cdev_fd, int nr_fetch)
{
	struct pollfd pfd;
	int pipefd[2];
	char ch = 0;
	pid_t pid;

	if (pipe(pipefd))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(pipefd[0]);
		child_server(id, depth, max_io, cdev_fd, nr_fetch, pipefd[1]);
	}
	close(pipefd[1]);
	if (pid < 0) {
		close(pipefd[0]);
		return -1;
	}
	pfd.fd = pipefd[0];
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 10000) != 1 || read(pipefd[0], &ch, 1) != 1 ||
	    ch != 'R') {
		close(pipefd[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	close(pipefd[0]);
	return pid;
}

/* reap pid within timeout_ms; return its status or -1 */
static int reap(pid_t pid, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t ret = waitpid(pid, &status, WNOHANG);

		if (ret == pid)
			return status;
		if (ret < 0 || now_ms() > end)
			return -1;
		sleep_ms(1);
	}
}

static void run_crash(void)
{
	struct ublksrv_ctrl_dev_info info;
	struct ublk_params p;
	struct blk_io *waiter;
	char cpath[64];
	pid_t srv_a = 0, holder = 0, srv_b, srv_c = 0;
	long long t0, ms;
	struct ctrl c;
	int fd, ret, status;
	__u64 ud;

	if (!expect_res(ctrl_open(&c, true), 0, "open %s", CTRL_DEV))
		return;
	del_quietly(&c, ID_CRASH);
	info_init(&info, ID_CRASH, 1, IO_DEPTH, IO_MAX_IO,
		  UBLK_F_USER_RECOVERY);
	if (!expect_res(add_dev(&c, &info), 0, "ADD_DEV 930 with recovery"))
		goto out_ctrl;
	params_init(&p);
	expect_res(set_params(&c, ID_CRASH, &p), 0, "SET_PARAMS 930");
	snprintf(cpath, sizeof(cpath), "/dev/ublkc%d", ID_CRASH);
	wait_path(cpath, true, 2000);

	/* server A and a holder process share A's open /dev/ublkc930 */
	fd = open(cpath, O_RDWR);
	if (!expect_val(fd < 0 ? errno : 0, 0, "open %s", cpath))
		goto out_del;
	srv_a = spawn_server(ID_CRASH, IO_DEPTH, IO_MAX_IO, fd, IO_DEPTH);
	fflush(stdout);
	holder = fork();
	if (holder == 0) {
		/* keeps the file open after A dies, like a forked child */
		for (;;)
			pause();
	}
	close(fd);
	if (!expect_true(srv_a > 0 && holder > 0, "spawn failed",
			 "server A and the cdev holder started"))
		goto out_kill;

	ret = start_dev(&c, ID_CRASH, srv_a, START_TIMEOUT_MS);
	if (!expect_res(ret, 0, "START_DEV 930 served by child A"))
		goto out_kill;
	expect_res(start_recovery(&c, ID_CRASH), -EBUSY,
		   "START_USER_RECOVERY on a LIVE device");
	expect_res(end_recovery(&c, ID_CRASH, srv_a, CTRL_TIMEOUT_MS), -EBUSY,
		   "END_USER_RECOVERY on a LIVE device");
	expect_blk_io(ID_CRASH, 0, false, "LIVE");

	/* crash A */
	t0 = now_ms();
	kill(srv_a, SIGKILL);
	status = reap(srv_a, 10000);
	expect_true(status >= 0, "still there",
		    "server A exits after SIGKILL (its commands completed)");
	if (status >= 0)
		srv_a = 0;
	ms = wait_state(&c, ID_CRASH, UBLK_S_DEV_QUIESCED, 10000);
	expect_true(ms >= 0, "not QUIESCED",
		    "930 QUIESCED %lld ms after SIGKILL of the server",
		    ms >= 0 ? now_ms() - t0 : -1);
	expect_res(set_params(&c, ID_CRASH, &p), -EACCES,
		   "SET_PARAMS on a QUIESCED device");
	expect_res(start_dev(&c, ID_CRASH, getpid(), CTRL_TIMEOUT_MS), -EEXIST,
		   "START_DEV on a QUIESCED device");
	expect_res(start_recovery(&c, ID_CRASH), -EBUSY,
		   "START_USER_RECOVERY while another process holds %s",
		   cpath);
	kill(holder, SIGKILL);
	expect_true(reap(holder, 10000) >= 0, "still there",
		    "cdev holder exits");
	holder = 0;

	expect_res(start_recovery_settled(&c, ID_CRASH, 5000), 0,
		   "START_USER_RECOVERY once the holder is gone");
	expect_res(start_recovery(&c, ID_CRASH), 0,
		   "START_USER_RECOVERY again before a server attached");
	expect_res(end_recovery(&c, ID_CRASH, 0, CTRL_TIMEOUT_MS), -EINVAL,
		   "END_USER_RECOVERY with pid 0");
	expect_res(end_recovery(&c, ID_CRASH, -1, CTRL_TIMEOUT_MS), -EINVAL,
		   "END_USER_RECOVERY with pid -1");
	expect_res(end_recovery(&c, ID_CRASH, (1LL << 32) + getpid(),
				CTRL_TIMEOUT_MS), -EINVAL,
		   "END_USER_RECOVERY with pid 2^32 + pid (not truncated)");
	expect_res(get_state(&c, ID_CRASH), UBLK_S_DEV_QUIESCED,
		   "930 still QUIESCED after START_USER_RECOVERY");

	/* a new server that attaches half-way and dies */
	srv_b = spawn_server(ID_CRASH, IO_DEPTH, IO_MAX_IO, -1, IO_DEPTH / 2);
	if (expect_true(srv_b > 0, "spawn failed",
			"server B opens %s and fetches %d of %d tags", cpath,
			IO_DEPTH / 2, IO_DEPTH)) {
		kill(srv_b, SIGKILL);
		expect_true(reap(srv_b, 10000) >= 0, "still there",
			    "server B exits after SIGKILL during recovery");
	}
	ms = wait_state(&c, ID_CRASH, UBLK_S_DEV_QUIESCED, 10000);
	expect_true(ms >= 0, "not QUIESCED",
		    "930 QUIESCED after server B died during recovery");
	expect_res(start_recovery_settled(&c, ID_CRASH, 5000), 0,
		   "START_USER_RECOVERY after a crash during recovery");

	/* END before any server: parked; its awaited server dies: -ENODEV */
	alarm_ms(CTRL_TIMEOUT_MS);
	ud = ctrl_submit(&c, UBLK_CMD_END_USER_RECOVERY, ID_CRASH, getpid());
	alarm_off();
	expect_true(ud != 0, "blocked or failed",
		    "END_USER_RECOVERY with no server returns from io_uring_enter");
	expect_res(wait_udata(&c.ring, ud, 300), RES_TIMEOUT,
		   "END_USER_RECOVERY stays parked while no server is ready");
	expect_res(end_recovery(&c, ID_CRASH, getpid(), CTRL_TIMEOUT_MS),
		   -EBUSY, "second END_USER_RECOVERY while one is parked");
	srv_b = spawn_server(ID_CRASH, IO_DEPTH, IO_MAX_IO, -1, IO_DEPTH / 2);
	if (expect_true(srv_b > 0, "spawn failed",
			"server B2 fetches %d of %d tags", IO_DEPTH / 2,
			IO_DEPTH)) {
		kill(srv_b, SIGKILL);
		expect_true(reap(srv_b, 10000) >= 0, "still there",
			    "server B2 exits after SIGKILL");
	}
	if (ud)
		expect_res(wait_udata(&c.ring, ud, 10000), -ENODEV,
			   "parked END_USER_RECOVERY fails when its server dies");
	expect_res(start_recovery_settled(&c, ID_CRASH, 5000), 0,
		   "START_USER_RECOVERY after server B2 died");

	/* I/O issued now waits for the next server */
	waiter = blk_io_start(ID_CRASH, 1 << 20, false);
	expect_true(waiter && !blk_io_wait(waiter, 300), "completed",
		    "a read issued while QUIESCED waits");

	srv_c = spawn_server(ID_CRASH, IO_DEPTH, IO_MAX_IO, -1, IO_DEPTH);
	if (!expect_true(srv_c > 0, "spawn failed", "server C started"))
		goto out_stop;
	t0 = now_ms();
	ret = end_recovery(&c, ID_CRASH, srv_c, START_TIMEOUT_MS);
	expect_res(ret, 0, "END_USER_RECOVERY with server C (%lld ms)",
		   now_ms() - t0);
	ret = get_info(&c, ID_CRASH, &info);
	expect_val(info.state, UBLK_S_DEV_LIVE, "930 LIVE after recovery");
	expect_val(info.ublksrv_pid, srv_c,
		   "GET_DEV_INFO reports server C's pid");
	if (waiter && expect_true(blk_io_wait(waiter, IO_TIMEOUT_MS),
				  "timeout",
				  "the waiting read completes after recovery"))
		expect_val(waiter->ret, 4096, "the waiting read succeeds");
	expect_blk_io(ID_CRASH, 2 << 20, false, "recovered");

out_stop:
	expect_res(stop_dev(&c, ID_CRASH), 0, "STOP_DEV 930");
	if (srv_c > 0) {
		status = reap(srv_c, 10000);
		expect_true(status >= 0 && WIFEXITED(status) &&
			    WEXITSTATUS(status) == 0, "no clean exit",
			    "server C sees every fetch aborted and exits");
		if (status < 0) {
			kill(srv_c, SIGKILL);
			reap(srv_c, 10000);
		}
	}
out_kill:
	if (srv_a > 0) {
		kill(srv_a, SIGKILL);
		reap(srv_a, 10000);
	}
	if (holder > 0) {
		kill(holder, SIGKILL);
		reap(holder, 10000);
	}
out_del:
	stop_dev(&c, ID_CRASH);
	expect_res(del_dev(&c, ID_CRASH), 0, "DEL_DEV 930");
out_ctrl:
	ctrl_close(&c);
}

/* ---------------------------------------------------------------------- */
/* single raw commands for the shell tests */

/* ---------------------------------------------------------------------- */
/* race modes: several processes, or a server's death, at the worst time */

#define ID_RACE		940
#define ID_RACE_RO	941

/*
 * One of four racers, for `iters' rounds:
 * 0, 1: ADD_DEV then DEL_DEV of ID_RACE (ADD 0 or -EEXIST, DEL 0 or
 *       -ENODEV): an ADD during the other's DEL must not find the id free
 *       while /dev/ublkcN still exists.
 * 2:    ADD_DEV of ID_RACE_RO from a read-only buffer (-EFAULT when the
 *       info is written back).
 * 3:    DEL_DEV of ID_RACE_RO: the failing ADD must never publish the
 *       device, so always -ENODEV.
 * Returns the number of unexpected answers.
 */
static int race_adddel_child(int role, int iters)
{
	struct ublksrv_ctrl_dev_info *ro, info;
	int i, ret, bad = 0, added = 0, seen = 0;
	struct ctrl c;

	if (ctrl_open(&c, true))
		return 1;
	ro = mmap(NULL, page_size, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ro == MAP_FAILED)
		return 1;
	info_init(ro, ID_RACE_RO, 1, 8, 65536, 0);
	mprotect(ro, page_size, PROT_READ);

	for (i = 0; i < iters; i++) {
		switch (role) {
		case 0:
		case 1:
			info_init(&info, ID_RACE, 1, 8, 65536, 0);
			ret = add_dev(&c, &info);
			if (ret == 0) {
				added++;
				ret = del_dev(&c, ID_RACE);
				if (ret && ret != -ENODEV)
					bad++;
			} else if (ret != -EEXIST) {
				bad++;
			}
			break;
		case 2:
			ret = add_dev(&c, ro);
			bad += ret != -EFAULT;
			break;
		default:
			ret = del_dev(&c, ID_RACE_RO);
			bad += ret != -ENODEV;
			break;
		}
		if (bad > seen) {
			printf("FAIL - racer %d round %d: unexpected %d\n",
			       role, i, ret);
			seen = bad;
		}
	}
	printf("racer %d: %d rounds, %d devices added, %d unexpected\n",
	       role, iters, added, bad);
	ctrl_close(&c);
	return bad;
}

static int run_race_adddel(int iters)
{
	pid_t pids[4];
	int i, status, failed = 0;
	struct ctrl c;

	for (i = 0; i < 4; i++) {
		fflush(stdout);
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(race_adddel_child(i, iters) ? 1 : 0);
	}
	for (i = 0; i < 4; i++) {
		status = reap(pids[i], 600000);
		if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
			printf("FAIL - racer %d: status %d\n", i, status);
			failed++;
		}
	}
	if (!ctrl_open(&c, true)) {
		expect_res(get_state(&c, ID_RACE), -ENODEV, "940 gone at the end");
		expect_res(get_state(&c, ID_RACE_RO), -ENODEV,
			   "941 never added");
		ctrl_close(&c);
	}
	if (!failed)
		printf("ok - %d rounds of 4 racers\n", iters);
	return failed || nr_fail ? 1 : 0;
}

/* ADD_DEV + SET_PARAMS of ID_RACE, with or without recovery */
static bool race_add(struct ctrl *c, __u64 flags)
{
	struct ublksrv_ctrl_dev_info info;
	struct ublk_params p;

	del_quietly(c, ID_RACE);
	info_init(&info, ID_RACE, 1, IO_DEPTH, IO_MAX_IO, flags);
	params_init(&p);
	return expect_res(add_dev(c, &info), 0, "ADD_DEV 940") &&
		expect_res(set_params(c, ID_RACE, &p), 0, "SET_PARAMS 940");
}

/* the device can be deleted at once, and is gone */
static void race_del(struct ctrl *c, const char *when)
{
	long long t0 = now_ms();

	expect_res(del_dev(c, ID_RACE), 0, "%s: DEL_DEV (%lld ms)", when,
		   now_ms() - t0);
	expect_res(get_state(c, ID_RACE), -ENODEV, "%s: 940 gone", when);
}

/*
 * START_DEV sent by this process (not the server) while the server dies:
 * (a) on its first request, the partition scan's read, (b) with half its
 * tags fetched, START parked, (c) after fetching every tag, before START.
 * START must answer without waiting for a dead server, the device end in
 * a state the spec names, and DEL_DEV work at once.
 */
static int run_race_start(int iters)
{
	__u64 rec = UBLK_F_USER_RECOVERY;
	int i, ret, status, want;
	struct ctrl c;
	pid_t srv;
	__u64 ud;

	if (!expect_res(ctrl_open(&c, true), 0, "open %s", CTRL_DEV))
		return 1;
	for (i = 0; i < iters; i++) {
		__u64 flags = i & 1 ? 0 : rec;

		/* (a) death during the partition scan */
		if (!race_add(&c, flags))
			break;
		srv_die_on_io = true;
		srv = spawn_server(ID_RACE, IO_DEPTH, IO_MAX_IO, -1, IO_DEPTH);
		srv_die_on_io = false;
		if (!expect_true(srv > 0, "spawn failed", "server for (a)"))
			break;
		expect_res(start_dev(&c, ID_RACE, srv, START_TIMEOUT_MS), 0,
			   "(a) round %d: START_DEV from another process", i);
		status = reap(srv, 10000);
		expect_true(status >= 0 && WIFSIGNALED(status) &&
			    WTERMSIG(status) == SIGKILL, "not killed by itself",
			    "(a) round %d: the server died on the scan's read", i);
		want = flags ? UBLK_S_DEV_QUIESCED : UBLK_S_DEV_DEAD;
		expect_true(wait_state(&c, ID_RACE, want, 10000) >= 0,
			    state_name(get_state(&c, ID_RACE)),
			    "(a) round %d: %s after the death", i,
			    state_name(want));
		race_del(&c, "(a)");

		/* (b) death with half the tags fetched, START parked */
		if (!race_add(&c, flags))
			break;
		srv = spawn_server(ID_RACE, IO_DEPTH, IO_MAX_IO, -1,
				   IO_DEPTH / 2);
		if (!expect_true(srv > 0, "spawn failed", "server for (b)"))
			break;
		alarm_ms(CTRL_TIMEOUT_MS);
		ud = ctrl_submit(&c, UBLK_CMD_START_DEV, ID_RACE, srv);
		alarm_off();
		expect_res(wait_udata(&c.ring, ud, 100), RES_TIMEOUT,
			   "(b) round %d: START_DEV parked", i);
		kill(srv, SIGKILL);
		reap(srv, 10000);
		if (ud)
			expect_res(wait_udata(&c.ring, ud, 10000), -ENODEV,
				   "(b) round %d: parked START_DEV fails when the server dies",
				   i);
		expect_res(get_state(&c, ID_RACE), UBLK_S_DEV_DEAD,
			   "(b) round %d: DEAD", i);
		race_del(&c, "(b)");

		/* (c) death after every tag was fetched, before START */
		if (!race_add(&c, flags))
			break;
		srv = spawn_server(ID_RACE, IO_DEPTH, IO_MAX_IO, -1, IO_DEPTH);
		if (!expect_true(srv > 0, "spawn failed", "server for (c)"))
			break;
		kill(srv, SIGKILL);
		reap(srv, 10000);
		ret = start_dev(&c, ID_RACE, srv, START_TIMEOUT_MS);
		expect_true(ret == 0 || ret == -ENODEV, "other",
			    "(c) round %d: START_DEV after the death: %d", i,
			    ret);
		want = ret || !flags ? UBLK_S_DEV_DEAD : UBLK_S_DEV_QUIESCED;
		expect_true(wait_state(&c, ID_RACE, want, 10000) >= 0,
			    state_name(get_state(&c, ID_RACE)),
			    "(c) round %d: %s", i, state_name(want));
		race_del(&c, "(c)");
	}
	ctrl_close(&c);
	return nr_fail ? 1 : 0;
}

static int parse_u32(const char *s, __u32 *v)
{
	char *end;
	unsigned long x;

	errno = 0;
	x = strtoul(s, &end, 0);
	if (errno || *end || x > UINT32_MAX)
		return -1;
	*v = x;
	return 0;
}

static int print_res(int res)
{
	if (res == RES_TIMEOUT || res == RES_SUBMIT) {
		char buf[32];

		fprintf(stderr, "ublk_errno: %s\n",
			res_name(res, buf, sizeof(buf)));
		return 3;
	}
	printf("%d\n", res);
	return 0;
}

static int parse_state(const char *s)
{
	int i;

	for (i = UBLK_S_DEV_DEAD; i <= UBLK_S_DEV_FAIL_IO; i++)
		if (!strcasecmp(s, state_name(i)))
			return i;
	return -1;
}

static int run_kill_wait(int argc, char *argv[])
{
	struct timespec tick = { 0, 100 * 1000 };
	struct ublksrv_ctrl_dev_info info;
	int want, timeout_ms = 10000, ret;
	long long t0;
	struct ctrl c;
	__u32 id;

	want = -1;
	if (argc >= 4 && !parse_u32(argv[2], &id))
		want = parse_state(argv[3]);
	if (want < 0) {
		fprintf(stderr, "ublk_errno kill-wait ID STATE [MS]\n");
		return 2;
	}
	if (argc > 4)
		timeout_ms = atoi(argv[4]);
	ret = ctrl_open(&c, true);
	if (!ret)
		ret = get_info(&c, id, &info);
	if (ret || info.ublksrv_pid <= 0) {
		fprintf(stderr, "kill-wait: device %u: %s, server pid %d\n",
			id, ret ? strerror(-ret) : "ok",
			ret ? 0 : info.ublksrv_pid);
		return 2;
	}
	t0 = now_us();
	if (kill(info.ublksrv_pid, SIGKILL)) {
		fprintf(stderr, "kill-wait: kill %d: %s\n", info.ublksrv_pid,
			strerror(errno));
		return 2;
	}
	for (;;) {
		ret = get_state(&c, id);
		if (ret == want) {
			printf("%.1f\n", (now_us() - t0) / 1000.0);
			return 0;
		}
		if (ret < 0 || now_us() - t0 > timeout_ms * 1000LL) {
			fprintf(stderr, "kill-wait: device %u is %s, not %s,",
				id, ret < 0 ? "gone" : state_name(ret),
				state_name(want));
			fprintf(stderr, " %d ms after SIGKILL of %d\n",
				timeout_ms, info.ublksrv_pid);
			return 1;
		}
		nanosleep(&tick, NULL);
	}
}

static int run_raw(int argc, char *argv[])
{
	const char *cmd = argv[1];
	struct ublksrv_ctrl_dev_info info;
	__u64 feat = 0, feat_enc = 0;
	__u32 id = 0, pid = 0;
	struct ctrl c;
	int ret, res;

	if (!strcmp(cmd, "kill-wait"))
		return run_kill_wait(argc, argv);
	if (strcmp(cmd, "features") &&
	    (argc < 3 || parse_u32(argv[2], &id))) {
		fprintf(stderr, "ublk_errno %s: need a device id\n", cmd);
		return 2;
	}
	ret = ctrl_open(&c, true);
	if (ret) {
		fprintf(stderr, "ublk_errno: open %s: %s\n", CTRL_DEV,
			strerror(-ret));
		return 2;
	}

	if (!strcmp(cmd, "start-recovery")) {
		ret = print_res(start_recovery(&c, id));
	} else if (!strcmp(cmd, "end-recovery")) {
		if (argc < 4 || parse_u32(argv[3], &pid)) {
			fprintf(stderr, "ublk_errno end-recovery ID PID\n");
			ret = 2;
		} else {
			ret = print_res(end_recovery(&c, id, (__s32)pid,
						     START_TIMEOUT_MS));
		}
	} else if (!strcmp(cmd, "stop")) {
		ret = print_res(stop_dev(&c, id));
	} else if (!strcmp(cmd, "del")) {
		ret = print_res(del_dev(&c, id));
	} else if (!strcmp(cmd, "state")) {
		res = get_info(&c, id, &info);
		if (res == 0) {
			printf("%s\n", state_name(info.state));
			ret = 0;
		} else {
			ret = print_res(res);
			ret = ret ? ret : 1;
		}
	} else if (!strcmp(cmd, "info")) {
		res = get_info(&c, id, &info);
		if (res == 0) {
			printf("dev_id=%u state=%s nr_hw_queues=%u ",
			       info.dev_id, state_name(info.state),
			       info.nr_hw_queues);
			printf("queue_depth=%u max_io_buf_bytes=%u ",
			       info.queue_depth, info.max_io_buf_bytes);
			printf("ublksrv_pid=%d flags=0x%llx\n",
			       info.ublksrv_pid,
			       (unsigned long long)info.flags);
			ret = 0;
		} else {
			ret = print_res(res);
			ret = ret ? ret : 1;
		}
	} else if (!strcmp(cmd, "features")) {
		res = ctrl_cmd(&c, UBLK_CMD_GET_FEATURES, UINT32_MAX, NO_QUEUE,
			       UBLK_FEATURES_LEN, PTR(&feat), 0);
		ret = ctrl_cmd(&c, UBLK_U_CMD_GET_FEATURES, UINT32_MAX,
			       NO_QUEUE, UBLK_FEATURES_LEN, PTR(&feat_enc), 0);
		if (res || ret) {
			fprintf(stderr, "GET_FEATURES: %d / %d\n", res, ret);
			ret = 1;
		} else {
			printf("plain=0x%llx encoded=0x%llx\n",
			       (unsigned long long)feat,
			       (unsigned long long)feat_enc);
		}
	} else {
		fprintf(stderr, "ublk_errno: unknown command %s\n", cmd);
		ret = 2;
	}
	ctrl_close(&c);
	return ret;
}

static void print_usage(void)
{
	fprintf(stderr,
		"usage: ublk_errno ctrl|io|recovery|crash\n"
		"       ublk_errno start-recovery ID | end-recovery ID PID |\n"
		"                  stop ID | del ID | state ID | info ID |\n"
		"                  features | kill-wait ID STATE [MS]\n");
}

int main(int argc, char *argv[])
{
	const char *mode;

	if (argc < 2) {
		print_usage();
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	page_size = sysconf(_SC_PAGESIZE);
	install_alarm();
	signal(SIGPIPE, SIG_IGN);
	mode = argv[1];

	if (!strcmp(mode, "-h") || !strcmp(mode, "--help")) {
		print_usage();
		return 0;
	}
	if (!strcmp(mode, "race-adddel"))
		return run_race_adddel(argc > 2 ? atoi(argv[2]) : 200);
	if (!strcmp(mode, "race-start"))
		return run_race_start(argc > 2 ? atoi(argv[2]) : 5);
	if (!strcmp(mode, "ctrl"))
		run_ctrl();
	else if (!strcmp(mode, "io"))
		run_io();
	else if (!strcmp(mode, "recovery"))
		run_recovery();
	else if (!strcmp(mode, "crash"))
		run_crash();
	else
		return run_raw(argc, argv);

	printf("# %s: %d passed, %d failed\n", mode, nr_pass, nr_fail);
	return nr_fail ? 1 : 0;
}
