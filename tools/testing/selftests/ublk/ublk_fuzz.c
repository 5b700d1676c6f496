// SPDX-License-Identifier: GPL-2.0
/*
 * ublk_fuzz: throw random and hostile ublk control and I/O commands at the
 * driver from several processes and threads at once, kill servers (and the
 * fuzzer's own workers) with SIGKILL at random moments, and keep block I/O
 * in flight on /dev/ublkbN while they die.
 *
 *	ublk_fuzz --seed N --ops M [--procs P] [--time S] [--log FILE]
 *		  [--ids A-B] [--max-age S] [--without CLASS,...] [--quiet]
 *
 * --ops M	stop after about M commands (control + I/O, all processes)
 * --time S	or after S seconds, whichever comes first (default 60)
 * --procs P	fuzzing worker processes (default 3)
 * --ids A-B	device ids the workers aim at (default 0-7); ADD_DEV with
 *		id -1 may get others, which are tracked and deleted too
 * --max-age S	a monitor deletes devices older than S seconds (default 20),
 *		so that I/O waiting on a QUIESCED device never waits longer
 *		than the hung-task timeout because of the fuzzer itself
 * --log FILE	the command log (default: stdout); --quiet: no log
 * --without CLASS,...  switch operation classes off (all on by default):
 *		kill	   SIGKILL of servers, I/O helpers and workers
 *		selfkill   workers SIGKILLing themselves
 *		async	   IOSQE_ASYNC on control and I/O commands
 *		sqpoll	   SQPOLL rings
 *		defer	   DEFER_TASKRUN|SINGLE_ISSUER rings
 *		blockio	   block I/O helpers on /dev/ublkbN
 *		badaddr	   NULL, unmapped, read-only and kernel buffer addresses
 *		threads	   one server thread per queue
 *		scenario   scripted add/params/serve/start/kill/recover/del runs
 *
 *	ublk_fuzz --repro sqpoll-stop|kill-del|dup-id|chunk-lbs [--log FILE]
 *		one finding as a fixed sequence (see repro_main())
 *
 * Every worker, server and helper draws from its own generator, seeded from
 * --seed, its worker number and its generation (a worker killed and
 * restarted gets the next one): the command sequence of each process is
 * reproducible from the seed; their interleaving depends on timing. Each
 * command is one log line:
 *	<ms> <who> <command and arguments> = <result>
 * who is wI.G (worker I, generation G), sI.G.K (its K-th server child),
 * bI.G.K (block I/O helper), M (the monitor), C (the final clean-up).
 *
 * Nothing may hang the fuzzer itself: control commands are bounded by
 * SIGALRM (which interrupts the driver's interruptible waits) and CQE waits
 * by timeouts; the supervising process never enters the driver. At the end
 * it kills every process it started, deletes every device it knows of, and
 * reports any process that would not die (stuck in the kernel).
 *
 * Exit status: 0 everything exited and every device was deleted; 1 a process
 * is stuck or a device could not be deleted; 2 usage or set-up error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <linux/fs.h>

#include <liburing.h>

#include "../../../../include/uapi/linux/ublk_cmd.h"

#define CTRL_DEV	"/dev/ublk-control"
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
/* the kernel's spelling; userspace has no <linux/compiler.h> */
#define __ublk_attr(x)	__attribute__(x)
#define __printf(a, b)	__ublk_attr((format(printf, a, b)))
#define RES_TIMEOUT	(INT_MIN + 1)
#define RES_SUBMIT	(INT_MIN + 2)
#define NO_QUEUE	((__u16)-1)
#define PTR(p)		((__u64)(uintptr_t)(p))
#define DESC_STRIDE	(UBLK_MAX_QUEUE_DEPTH * sizeof(struct ublksrv_io_desc))
#define MAX_PROCS	16
#define MAX_KIDS	12
#define MAX_TRACKED	256
#define MAX_SRV_QUEUES	4

enum {
	W_KILL, W_SELFKILL, W_ASYNC, W_SQPOLL, W_DEFER, W_BLOCKIO, W_BADADDR,
	W_THREADS, W_SCENARIO, W_NR,
};

static const char *const class_names[W_NR] = {
	"kill", "selfkill", "async", "sqpoll", "defer", "blockio", "badaddr",
	"threads", "scenario",
};

static bool without[W_NR];

/* --repro: servers with fixed behaviour (no random death, no bad input) */
static bool plain_server;
static int plain_ring = -1;	/* ring set-up flags of plain servers */

/* shared by every process of the campaign (MAP_SHARED) */
struct shared {
	atomic_long ops;
	atomic_int stop;
	atomic_int nr_tracked;
	atomic_uint tracked[MAX_TRACKED];	/* ids ADD_DEV returned */
	atomic_long by_res_timeout;
	atomic_long adds, dels, starts, kills, servers, helpers, ios;
};

static struct shared *sh;

static unsigned long long opt_seed = 1;
static long opt_ops = 10000;
static int opt_procs = 3;
static int opt_time = 60;
static unsigned int id_lo, id_hi = 7;
static int opt_max_age = 20;
static int log_fd = 1;
static bool quiet;
static long long t_start;
static long page_size;
static int nr_cpus;

/* ---------------------------------------------------------------------- */
/* time, randomness, logging */

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

struct rng {
	unsigned long long s;
};

static unsigned long long splitmix(unsigned long long *x)
{
	unsigned long long z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_init(struct rng *r, unsigned long long a,
		     unsigned long long b, unsigned long long c)
{
	unsigned long long x = a * 1000003ULL ^ (b << 40) ^ (c << 20);

	r->s = splitmix(&x);
}

static unsigned long long rnd(struct rng *r)
{
	return splitmix(&r->s);
}

/* 0..n-1 */
static unsigned int below(struct rng *r, unsigned int n)
{
	return n ? rnd(r) % n : 0;
}

/* true with probability 1/n */
static bool one_in(struct rng *r, unsigned int n)
{
	return below(r, n) == 0;
}

/* arr is evaluated once: sizeof does not evaluate its operand */
#define PICK(r, arr)	((arr)[below(r, sizeof(arr) / sizeof((arr)[0]))])

static __thread char who[32] = "?";

static void __printf(1, 2) logf_(const char *fmt, ...)
{
	char line[512];
	long long t = now_ms() - t_start;
	va_list ap;
	int n;

	if (quiet)
		return;
	n = snprintf(line, sizeof(line), "%lld %s ", t, who);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(log_fd, line, n) < 0)
		quiet = true;
}

static const char *res_str(int res, char *buf, size_t len)
{
	const char *name;

	if (res == RES_TIMEOUT)
		return "TIMEOUT";
	if (res == RES_SUBMIT)
		return "SUBMITFAIL";
	if (res >= 0) {
		snprintf(buf, len, "%d", res);
		return buf;
	}
	name = strerrorname_np(-res);
	snprintf(buf, len, "-%s", name ? name : "?");
	return buf;
}

static bool stopping(void)
{
	return atomic_load(&sh->stop) ||
	       atomic_load(&sh->ops) >= opt_ops ||
	       now_ms() - t_start >= opt_time * 1000LL;
}

static void count_ops(long n)
{
	atomic_fetch_add(&sh->ops, n);
}

static void track_id(unsigned int id)
{
	int i, n = atomic_load(&sh->nr_tracked);

	if (id >= id_lo && id <= id_hi)
		return;
	for (i = 0; i < n && i < MAX_TRACKED; i++)
		if (atomic_load(&sh->tracked[i]) == id)
			return;
	n = atomic_fetch_add(&sh->nr_tracked, 1);
	if (n < MAX_TRACKED)
		atomic_store(&sh->tracked[n], id);
}

/* ---------------------------------------------------------------------- */
/* hostile buffers */

static void *unmapped_page, *ro_page, *guard_end;

static void setup_bad_buffers(void)
{
	char *p;

	unmapped_page = mmap(NULL, page_size, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(unmapped_page, page_size);
	ro_page = mmap(NULL, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	/* a writable page followed by an inaccessible one */
	p = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mprotect(p + page_size, page_size, PROT_NONE);
	guard_end = p + page_size;
}

/* a buffer address: mostly `good', sometimes one the kernel must refuse */
static __u64 pick_addr(struct rng *r, void *good, unsigned int len,
		       const char **name)
{
	static const __u64 kernel[] = {
		0xffffffff81000000ULL, 0xffff888000000000ULL,
		0xffffffffffffffffULL, 0x8000000000000000ULL,
	};

	if (without[W_BADADDR] || below(r, 8)) {
		*name = "buf";
		return PTR(good);
	}
	switch (below(r, 6)) {
	case 0:
		*name = "NULL";
		return 0;
	case 1:
		*name = "unmapped";
		return PTR(unmapped_page);
	case 2:
		*name = "ro";
		return PTR(ro_page);
	case 3:
		*name = "kernel";
		return PICK(r, kernel);
	case 4:
		*name = "guard";
		return PTR(guard_end) - (len ? len / 2 + 1 : 1);
	default:
		*name = "odd";
		return PTR(good) + 1 + below(r, 7);
	}
}

/* ---------------------------------------------------------------------- */
/* rings */

struct cring {
	struct io_uring ring;
	int fd;			/* the file the SQEs point at */
	bool sqe128;
	bool open;
	const char *kind;
	__u64 seq;
};

static unsigned int pick_ring_flags(struct rng *r, const char **kind)
{
	unsigned int f = 0;

	switch (below(r, 10)) {
	case 0:
		if (!without[W_SQPOLL]) {
			*kind = "sqpoll";
			return IORING_SETUP_SQPOLL;
		}
		break;
	case 1:
	case 2:
		if (!without[W_DEFER]) {
			*kind = "defer";
			return IORING_SETUP_SINGLE_ISSUER |
			       IORING_SETUP_DEFER_TASKRUN;
		}
		break;
	case 3:
		*kind = "coop";
		return IORING_SETUP_COOP_TASKRUN;
	}
	*kind = "plain";
	return f;
}

static int cring_init(struct cring *c, int fd, unsigned int entries,
		      unsigned int flags, bool sqe128, const char *kind)
{
	struct io_uring_params p;
	int ret;

	memset(c, 0, sizeof(*c));
	memset(&p, 0, sizeof(p));
	p.flags = flags | (sqe128 ? IORING_SETUP_SQE128 : 0);
	if (flags & IORING_SETUP_SQPOLL)
		p.sq_thread_idle = 20;
	ret = io_uring_queue_init_params(entries, &c->ring, &p);
	if (ret < 0 && (flags & ~IORING_SETUP_SQE128)) {
		/* a flag this kernel does not have: plain ring then */
		memset(&p, 0, sizeof(p));
		p.flags = sqe128 ? IORING_SETUP_SQE128 : 0;
		kind = "plain";
		ret = io_uring_queue_init_params(entries, &c->ring, &p);
	}
	if (ret < 0)
		return ret;
	c->fd = fd;
	c->sqe128 = sqe128;
	c->open = true;
	c->kind = kind;
	return 0;
}

static void cring_exit(struct cring *c)
{
	if (c->open)
		io_uring_queue_exit(&c->ring);
	c->open = false;
}

/* set by the SIGALRM handler: relaxed atomics keep it signal-safe */
static sig_atomic_t alarm_fired;

static void on_alarm(int sig)
{
	(void)sig;
	__atomic_store_n(&alarm_fired, 1, __ATOMIC_RELAXED);
}

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

static void catch_alarm(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;	/* no SA_RESTART: interrupt waits */
	sigaction(SIGALRM, &sa, NULL);
}

/* wait for the CQE of `ud', dropping others */
static int wait_ud(struct io_uring *ring, __u64 ud, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	for (;;) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts;
		long long left = end - now_ms();
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

/*
 * One control command on ring c. A command that is still pending when the
 * time is up leaves the ring unusable (its CQE may come any time, into
 * buffers we keep): the ring is then dropped and reopened by the caller.
 */
static int ctrl_send(struct cring *c, __u32 op, struct ublksrv_ctrl_cmd *cmd,
		     unsigned int sqe_flags, int timeout_ms)
{
	struct io_uring_sqe *sqe;
	int ret;

	sqe = io_uring_get_sqe(&c->ring);
	if (!sqe)
		return RES_SUBMIT;
	memset(sqe, 0, c->sqe128 ? 128 : 64);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = c->fd;
	sqe->cmd_op = op;
	sqe->flags = sqe_flags;
	memcpy(sqe->cmd, cmd, c->sqe128 ? sizeof(*cmd) : 16);
	sqe->user_data = ++c->seq;

	alarm_ms(timeout_ms);
	ret = io_uring_submit(&c->ring);
	if (ret != 1) {
		alarm_off();
		if (ret == -EINTR && __atomic_load_n(&alarm_fired, __ATOMIC_RELAXED))
			return -EINTR;
		return ret < 0 ? ret : RES_SUBMIT;
	}
	ret = wait_ud(&c->ring, c->seq, timeout_ms);
	alarm_off();
	count_ops(1);
	if (ret == RES_TIMEOUT)
		atomic_fetch_add(&sh->by_res_timeout, 1);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* control commands */

static const char *const ctrl_names[] = {
	[UBLK_CMD_GET_QUEUE_AFFINITY] = "AFFINITY",
	[UBLK_CMD_GET_DEV_INFO] = "INFO",
	[UBLK_CMD_ADD_DEV] = "ADD",
	[UBLK_CMD_DEL_DEV] = "DEL",
	[UBLK_CMD_START_DEV] = "START",
	[UBLK_CMD_STOP_DEV] = "STOP",
	[UBLK_CMD_SET_PARAMS] = "SETP",
	[UBLK_CMD_GET_PARAMS] = "GETP",
	[UBLK_CMD_START_USER_RECOVERY] = "SREC",
	[UBLK_CMD_END_USER_RECOVERY] = "EREC",
	[UBLK_CMD_GET_DEV_INFO2] = "INFO2",
	[UBLK_CMD_GET_FEATURES] = "FEAT",
	[UBLK_CMD_QUIESCE_DEV] = "QUIESCE",
};

static const char *op_name(__u32 op, char *buf, size_t len)
{
	unsigned int nr = op & 0xff;
	const char *n = nr < ARRAY_SIZE(ctrl_names) && ctrl_names[nr] ?
		ctrl_names[nr] : "op";

	if (op >> 8)
		snprintf(buf, len, "%s/0x%x", n, op);
	else
		snprintf(buf, len, "%s/%u", n, op);
	return buf;
}

/* the command as the 6.1 opcode or as one of the ioctl encodings */
static __u32 encode(struct rng *r, unsigned int nr, bool sane)
{
	unsigned int sz = sizeof(struct ublksrv_ctrl_cmd);

	switch (below(r, sane ? 2 : 6)) {
	case 0:
		return nr;
	case 1:
		return nr == UBLK_CMD_GET_QUEUE_AFFINITY ||
		       nr == UBLK_CMD_GET_DEV_INFO ||
		       nr == UBLK_CMD_GET_PARAMS ||
		       nr == UBLK_CMD_GET_DEV_INFO2 ||
		       nr == UBLK_CMD_GET_FEATURES ?
			_IOR('u', nr, struct ublksrv_ctrl_cmd) :
			_IOWR('u', nr, struct ublksrv_ctrl_cmd);
	case 2:
		return _IOWR('u', nr, struct ublksrv_ctrl_cmd);
	case 3:
		return _IOW('u', nr, struct ublksrv_ctrl_cmd);
	case 4:
		return _IOC(_IOC_READ | _IOC_WRITE, 'u', nr, sz + 8 * below(r, 3) - 8);
	default:
		return _IOC(_IOC_READ, 'v', nr, sz);
	}
}

struct worker;

static __u32 pick_dev_id(struct rng *r)
{
	static const __u32 odd[] = { 0xffffffffU, 0x7fffffffU, 1U << 20,
				     (1U << 20) - 1, 0x10000 };

	if (!one_in(r, 12))
		return id_lo + below(r, id_hi - id_lo + 1);
	return one_in(r, 2) ? PICK(r, odd) : (__u32)rnd(r);
}

static __u16 pick_u16(struct rng *r, const __u16 *vals, unsigned int n)
{
	return one_in(r, 6) ? (__u16)rnd(r) : vals[below(r, n)];
}

static void random_info(struct rng *r, struct ublksrv_ctrl_dev_info *info,
			__u32 id, bool sane)
{
	static const __u16 nrq[] = { 0, 1, 1, 2, 2, 4, 4096, 4097, 0xffff };
	static const __u16 depth[] = { 0, 1, 2, 4, 16, 64, 128, 4095, 4096,
				       4097, 0xffff };
	static const __u32 maxio[] = { 0, 1, 4095, 4096, 65536, 524288,
				       1 << 20, (1 << 20) + 1, 1 << 30,
				       0xffffffffU };
	static const __u64 good_flags[] = {
		0, UBLK_F_USER_RECOVERY,
		UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE,
		UBLK_F_URING_CMD_COMP_IN_TASK, UBLK_F_NEED_GET_DATA,
		UBLK_F_CMD_IOCTL_ENCODE,
		UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_FAIL_IO,
		UBLK_F_USER_RECOVERY | UBLK_F_QUIESCE,
	};
	unsigned int i;

	memset(info, 0, sizeof(*info));
	info->dev_id = id;
	if (sane) {
		info->nr_hw_queues = 1 + below(r, nr_cpus < 2 ? 1 : 2);
		info->queue_depth = 1U << below(r, 8);
		info->max_io_buf_bytes = 65536U << below(r, 5);
		for (i = 0; i < 3; i++)
			info->flags |= PICK(r, good_flags);
		if (one_in(r, 8))
			info->flags |= UBLK_F_SUPPORT_ZERO_COPY;
		if (one_in(r, 3))
			info->ublksrv_pid = getpid();
		return;
	}
	info->nr_hw_queues = pick_u16(r, nrq, ARRAY_SIZE(nrq));
	info->queue_depth = pick_u16(r, depth, ARRAY_SIZE(depth));
	info->max_io_buf_bytes = one_in(r, 6) ? (__u32)rnd(r) : PICK(r, maxio);
	info->flags = one_in(r, 4) ? rnd(r) : PICK(r, good_flags) |
		      PICK(r, good_flags);
	info->state = below(r, 4);
	info->ublksrv_pid = one_in(r, 2) ? (int)rnd(r) : getpid();
	if (one_in(r, 3))
		info->reserved0 = rnd(r);
	info->ublksrv_flags = rnd(r);
}

static void random_params(struct rng *r, struct ublk_params *p, bool sane)
{
	static const __u8 shifts[] = { 0, 8, 9, 9, 12, 12, 13, 31, 255 };
	static const __u32 maxsec[] = { 0, 1, 8, 255, 256, 1024, 2048, 4096,
					0xffffffffU };
	static const __u32 chunk[] = { 0, 0, 1, 8, 3, 128, 0x80000000U };
	static const __u64 devsec[] = { 0, 1, 8, 2048, 1ULL << 21, 1ULL << 31,
					1ULL << 40, 1ULL << 54, 1ULL << 55,
					~0ULL >> 9, ~0ULL };
	static const __u64 vbm[] = { 0, 0, 4095, 511, 4096, 65535, ~0ULL };
	static const __u32 gran[] = { 0, 1, 256, 512, 4096, 3, 1U << 31 };
	static const __u32 dsec[] = { 0, 0, 1, 8, 2048, 0xffffffffU };
	static const __u16 dseg[] = { 0, 1, 1, 2, 256, 0xffff };

	memset(p, 0, sizeof(*p));
	p->len = sizeof(*p);
	p->types = UBLK_PARAM_TYPE_BASIC;
	if (sane) {
		p->basic.logical_bs_shift = 9 + below(r, 4);
		p->basic.physical_bs_shift = 12;
		p->basic.max_sectors = 1024;
		p->basic.dev_sectors = (1ULL << 11) << below(r, 10);
		if (one_in(r, 3)) {
			p->types |= UBLK_PARAM_TYPE_DISCARD;
			p->discard.discard_granularity = 4096;
			p->discard.max_discard_sectors = 1 << 16;
			p->discard.max_write_zeroes_sectors = 1 << 16;
			p->discard.max_discard_segments = 1;
		}
		return;
	}
	if (one_in(r, 5))
		p->len = PICK(r, ((const __u32[]){ 0, 4, 8, 9, 40, 63, 64,
				  128, 0xffff, 0xffffffffU }));
	p->types = one_in(r, 5) ? (__u32)rnd(r) : below(r, 4);
	p->basic.attrs = one_in(r, 4) ? (__u32)rnd(r) : below(r, 16);
	p->basic.logical_bs_shift = PICK(r, shifts);
	p->basic.physical_bs_shift = PICK(r, shifts);
	p->basic.io_opt_shift = PICK(r, shifts);
	p->basic.io_min_shift = PICK(r, shifts);
	p->basic.max_sectors = PICK(r, maxsec);
	p->basic.chunk_sectors = PICK(r, chunk);
	p->basic.dev_sectors = PICK(r, devsec);
	p->basic.virt_boundary_mask = PICK(r, vbm);
	p->discard.discard_alignment = one_in(r, 2) ? 0 : (__u32)rnd(r);
	p->discard.discard_granularity = PICK(r, gran);
	p->discard.max_discard_sectors = PICK(r, dsec);
	p->discard.max_write_zeroes_sectors = PICK(r, dsec);
	p->discard.max_discard_segments = PICK(r, dseg);
	p->discard.reserved0 = one_in(r, 4) ? 1 : 0;
}

/* one control command, logged */
static int ctrl_do(struct cring *c, struct rng *r, __u32 op,
		   struct ublksrv_ctrl_cmd *cmd, unsigned int sqe_flags,
		   int timeout_ms, const char *extra)
{
	unsigned int nr = op & 0xff;
	char ob[32], rb[32];
	int res;

	/* commands that may never come back are also logged before */
	if (nr == UBLK_CMD_DEL_DEV || nr == UBLK_CMD_STOP_DEV ||
	    nr == UBLK_CMD_START_DEV || nr == UBLK_CMD_END_USER_RECOVERY ||
	    nr == UBLK_CMD_START_USER_RECOVERY || nr == UBLK_CMD_ADD_DEV ||
	    nr == UBLK_CMD_QUIESCE_DEV)
		logf_("%s[%s] id=%d d0=%lld ...", op_name(op, ob, sizeof(ob)),
		      c->kind, (int)cmd->dev_id, (long long)cmd->data[0]);
	res = ctrl_send(c, op, cmd, sqe_flags, timeout_ms);
	logf_("%s[%s%s] id=%d q=%d len=%u addr=0x%llx d0=%lld d1=0x%llx%s %s = %s",
	      op_name(op, ob, sizeof(ob)), c->kind, c->sqe128 ? "" : ",sqe64",
	      (int)cmd->dev_id, (short)cmd->queue_id, cmd->len,
	      (unsigned long long)cmd->addr, (long long)cmd->data[0],
	      (unsigned long long)cmd->data[1],
	      sqe_flags & IOSQE_ASYNC ? " async" : "", extra ? extra : "",
	      res_str(res, rb, sizeof(rb)));
	(void)r;
	return res;
}

/* ---------------------------------------------------------------------- */
/* processes a worker starts */

enum kid_kind { K_SERVER, K_HELPER, K_KILLER };

struct kid {
	pid_t pid;
	enum kid_kind kind;
	unsigned int dev;
};

struct worker {
	int idx, gen;
	struct rng r;
	struct cring ctrl[3];	/* sqe128 rings of various set-ups */
	struct cring bad;	/* a 64-byte SQE ring */
	int ctrl_fd;
	struct kid kids[MAX_KIDS];
	int nr_kids;
	int nr_forks;
	void *buf;		/* 64 KiB for command payloads */
};

static void reap_kids(struct worker *w)
{
	int i, st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (i = 0; i < w->nr_kids; i++) {
			if (w->kids[i].pid == pid) {
				w->kids[i] = w->kids[--w->nr_kids];
				break;
			}
		}
	}
}

static void add_kid(struct worker *w, pid_t pid, enum kid_kind kind,
		    unsigned int dev)
{
	if (pid <= 0)
		return;
	if (w->nr_kids == MAX_KIDS) {
		/* the oldest goes */
		kill(w->kids[0].pid, SIGKILL);
		w->kids[0] = w->kids[--w->nr_kids];
	}
	w->kids[w->nr_kids++] = (struct kid){ pid, kind, dev };
}

static pid_t find_server(struct worker *w, unsigned int dev)
{
	int i;

	for (i = w->nr_kids - 1; i >= 0; i--)
		if (w->kids[i].kind == K_SERVER && w->kids[i].dev == dev)
			return w->kids[i].pid;
	return 0;
}

static void set_who(const char *fmt, ...) __printf(1, 2);
static void set_who(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(who, sizeof(who), fmt, ap);
	va_end(ap);
}

/* a child's own generator, from the parent's */
static void child_rng(struct rng *parent, struct rng *child)
{
	child->s = rnd(parent) ^ 0x5851f42d4c957f2dULL;
}

/* ---------------------------------------------------------------------- */
/* the server: fetch tags, serve I/O (a null target), die in some way */

struct srv {
	struct rng r;
	int cfd;
	__u32 dev;
	struct ublksrv_ctrl_dev_info info;
	long long deadline;
	unsigned int fetch_skip;	/* 1 in N tags not fetched (0: none) */
	bool bogus;			/* interleave wrong commands */
	int die_in;			/* requests until death (0: never) */
};

enum death { D_KILL, D_EXIT, D_EXEC, D_CLOSE, D_HANG, D_THREAD, D_NR };
static const char *const death_names[] = {
	"sigkill", "exit", "exec", "close-ring", "hang", "thread-exit",
};

struct qctx {
	struct srv *s;
	int q;			/* -1: every queue from this thread */
	struct rng r;
	char name[48];
};

#define UD(q, tag, op)	(((__u64)(op) << 32) | ((__u64)(q) << 16) | (tag))
#define UD_TAG(ud)	((ud) & 0xffff)
#define UD_Q(ud)	(((ud) >> 16) & 0xffff)

static const char *io_name(unsigned int op)
{
	switch (op & 0xff) {
	case UBLK_IO_FETCH_REQ: return "FETCH";
	case UBLK_IO_COMMIT_AND_FETCH_REQ: return "COMMIT";
	case UBLK_IO_NEED_GET_DATA: return "GETDATA";
	default: return "IOOP";
	}
}

static int io_queue_cmd(struct io_uring *ring, int fd, unsigned int op,
			__u16 q, __u16 tag, __s32 result, __u64 addr,
			bool async, bool sqe128)
{
	struct ublksrv_io_cmd cmd = { .q_id = q, .tag = tag, .result = result,
				      .addr = addr };
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
		if (!sqe)
			return -EBUSY;
	}
	memset(sqe, 0, sqe128 ? 128 : 64);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = fd;
	sqe->cmd_op = op;
	sqe->flags = async ? IOSQE_ASYNC : 0;
	memcpy(sqe->cmd, &cmd, sizeof(cmd));
	sqe->user_data = UD(q, tag, op & 0xff);
	count_ops(1);
	return 0;
}

static unsigned int io_op(struct rng *r, unsigned int nr, bool encoded)
{
	if (!encoded || one_in(r, 2))
		return nr;
	return _IOWR('u', nr, struct ublksrv_io_cmd);
}

static void die_now(struct qctx *qc, struct cring *c, enum death d)
{
	logf_("DIE %s", death_names[d]);
	switch (d) {
	case D_KILL:
		raise(SIGKILL);
		break;
	case D_EXIT:
		_exit(0);
	case D_EXEC:
		execl("/bin/true", "true", (char *)NULL);
		_exit(0);
	case D_CLOSE:
		cring_exit(c);
		sleep_ms(qc->s->deadline - now_ms() > 0 ?
			 (int)(qc->s->deadline - now_ms()) : 0);
		_exit(0);
	case D_HANG:
		while (now_ms() < qc->s->deadline)
			sleep_ms(50);
		_exit(0);
	case D_THREAD:
		if (qc->q >= 0)
			pthread_exit(NULL);
		raise(SIGKILL);
		break;
	default:
		break;
	}
}

static void *serve_queues(void *arg)
{
	struct qctx *qc = arg;
	struct srv *s = qc->s;
	struct rng *r = &qc->r;
	unsigned int depth = s->info.queue_depth ? s->info.queue_depth : 1;
	unsigned int maxio = s->info.max_io_buf_bytes;
	int q0 = qc->q >= 0 ? qc->q : 0;
	int q1 = qc->q >= 0 ? qc->q + 1 : s->info.nr_hw_queues;
	bool encoded = s->info.flags & UBLK_F_CMD_IOCTL_ENCODE;
	struct ublksrv_io_desc *desc[MAX_SRV_QUEUES] = { NULL };
	unsigned int outstanding = 0, entries, served = 0;
	const char *kind = "plain";
	void *buf = NULL;
	struct cring c;
	bool sqe128 = one_in(r, 4), async_all;
	int q, ret;
	unsigned int t;

	strcpy(who, qc->name);
	if (depth > UBLK_MAX_QUEUE_DEPTH)
		depth = UBLK_MAX_QUEUE_DEPTH;
	if (q1 > MAX_SRV_QUEUES)
		q1 = MAX_SRV_QUEUES;
	if (maxio < 4096 || maxio > (1 << 20))
		maxio = 1 << 20;
	if (posix_memalign(&buf, 4096, maxio))
		return NULL;
	memset(buf, 0, maxio);

	entries = 1;
	while (entries < depth * (q1 - q0) && entries < 4096)
		entries <<= 1;
	if (plain_server) {
		sqe128 = false;
		kind = plain_ring ? "forced" : "plain";
	}
	ret = cring_init(&c, s->cfd, entries, plain_server ? (unsigned int)plain_ring :
			 pick_ring_flags(r, &kind), sqe128, kind);
	if (ret) {
		logf_("server ring %s = %d", kind, ret);
		return NULL;
	}
	async_all = !without[W_ASYNC] && !plain_server && one_in(r, 40);

	for (q = q0; q < q1; q++) {
		size_t len = (depth * sizeof(struct ublksrv_io_desc) +
			      page_size - 1) & ~(page_size - 1);
		void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, s->cfd,
			       UBLKSRV_CMD_BUF_OFFSET + q *
			       ((DESC_STRIDE + page_size - 1) & ~(page_size - 1)));

		desc[q] = p == MAP_FAILED ? NULL : p;
		if (!desc[q])
			logf_("mmap q%d len %zu = -%s", q, len,
			      strerrorname_np(errno));
	}

	logf_("serve q%d-%d depth %u ring %s%s%s skip 1/%u", q0, q1 - 1, depth,
	      kind, sqe128 ? ",sqe128" : "", async_all ? " async" : "",
	      s->fetch_skip);
	for (q = q0; q < q1; q++) {
		for (t = 0; t < depth; t++) {
			const char *an = "buf";
			__u64 addr = PTR(buf);

			if (s->fetch_skip && one_in(r, s->fetch_skip))
				continue;
			if (!plain_server && one_in(r, 64))
				addr = pick_addr(r, buf, maxio, &an);
			if (io_queue_cmd(&c.ring, s->cfd,
					 io_op(r, UBLK_IO_FETCH_REQ, encoded),
					 q, t, 0, addr, async_all ||
					 (!without[W_ASYNC] && !plain_server &&
					  one_in(r, 500)),
					 sqe128) == 0)
				outstanding++;
			if (addr != PTR(buf))
				logf_("FETCH q%d t%u addr %s", q, t, an);
		}
	}
	logf_("FETCH q%d-%d x%u", q0, q1 - 1, outstanding);
	if (s->bogus) {
		int i;

		for (i = 0; i < 8; i++) {
			static const unsigned int ops[] = {
				UBLK_IO_FETCH_REQ, UBLK_IO_COMMIT_AND_FETCH_REQ,
				UBLK_IO_NEED_GET_DATA, 0x23, 0,
			};
			unsigned int op = PICK(r, ops);
			__u16 bq = one_in(r, 2) ? q0 : (__u16)rnd(r);
			__u16 bt = one_in(r, 2) ? below(r, depth + 2) :
				   (__u16)rnd(r);
			const char *an;
			__u64 addr = pick_addr(r, buf, maxio, &an);

			io_queue_cmd(&c.ring, s->cfd, io_op(r, op, true), bq, bt,
				     (int)rnd(r), addr, false, sqe128);
			logf_("BOGUS %s/0x%x q%u t%u addr %s", io_name(op), op,
			      bq, bt, an);
			outstanding++;
		}
	}
	io_uring_submit(&c.ring);

	while (outstanding && now_ms() < s->deadline) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = { 0, 50 * 1000000 };
		unsigned int head, seen = 0;

		ret = io_uring_submit_and_wait_timeout(&c.ring, &cqe, 1, &ts, NULL);
		if (ret < 0 && ret != -ETIME && ret != -EINTR) {
			logf_("wait = %d", ret);
			break;
		}
		io_uring_for_each_cqe(&c.ring, head, cqe) {
			__u16 tag = UD_TAG(cqe->user_data);
			__u16 qq = UD_Q(cqe->user_data);
			struct ublksrv_io_desc *iod;
			int res = cqe->res, result;
			char rb[32];

			seen++;
			if (res == UBLK_IO_RES_OK && qq < MAX_SRV_QUEUES &&
			    desc[qq] && tag < depth) {
				unsigned int op;

				iod = &desc[qq][tag];
				op = ublksrv_get_op(iod);
				if (s->die_in && ++served >= (unsigned int)s->die_in)
					die_now(qc, &c, below(r, D_NR));
				result = op == UBLK_IO_OP_READ ||
					 op == UBLK_IO_OP_WRITE ?
					 (int)iod->nr_sectors << 9 : 0;
				if (!plain_server && one_in(r, 50))
					result = PICK(r, ((const int[]){ -EIO,
							  -ENOSPC, 0, 1, 511, INT_MAX,
							  INT_MIN, result / 2 }));
				io_queue_cmd(&c.ring, s->cfd,
					     io_op(r, UBLK_IO_COMMIT_AND_FETCH_REQ,
						   encoded),
					     qq, tag, result, PTR(buf), false,
					     sqe128);
				if (one_in(r, 100))
					logf_("COMMIT q%u t%u op %u res %d",
					      qq, tag, op, result);
			} else if (res == UBLK_IO_RES_NEED_GET_DATA) {
				io_queue_cmd(&c.ring, s->cfd,
					     io_op(r, UBLK_IO_NEED_GET_DATA,
						   encoded),
					     qq, tag, 0, PTR(buf), false, sqe128);
			} else {
				outstanding--;
				if (res != UBLK_IO_RES_ABORT || one_in(r, 64))
					logf_("%s q%u t%u = %s",
					      io_name(cqe->user_data >> 32),
					      qq, tag,
					      res_str(res, rb, sizeof(rb)));
			}
		}
		io_uring_cq_advance(&c.ring, seen);
	}
	logf_("server q%d-%d leaves, %u outstanding", q0, q1 - 1, outstanding);
	cring_exit(&c);
	return NULL;
}

/* runs in the forked server process */
static void server_main(struct rng *r, __u32 dev, int mode,
			pid_t start_as)
{
	struct cring ctl;
	struct ublksrv_ctrl_cmd cmd = { .dev_id = dev, .queue_id = NO_QUEUE };
	struct srv s;
	struct qctx qcs[MAX_SRV_QUEUES + 1];
	pthread_t th[MAX_SRV_QUEUES];
	char path[64];
	int ctl_fd, res, q, nq, lifetime_ms;
	bool threads;

	memset(&s, 0, sizeof(s));
	s.r = *r;
	s.dev = dev;
	lifetime_ms = plain_server ? 60000 : 300 + below(r, 4000);
	s.deadline = now_ms() + lifetime_ms;
	catch_alarm();

	ctl_fd = open(CTRL_DEV, O_RDWR);
	if (ctl_fd < 0 || cring_init(&ctl, ctl_fd, 4, 0, true, "plain"))
		_exit(1);
	cmd.len = sizeof(s.info);
	cmd.addr = PTR(&s.info);
	res = ctrl_send(&ctl, UBLK_CMD_GET_DEV_INFO, &cmd, 0, 1000);
	logf_("server for %u: INFO = %d (q %u depth %u flags 0x%llx state %u)",
	      dev, res, s.info.nr_hw_queues, s.info.queue_depth,
	      (unsigned long long)s.info.flags, s.info.state);
	if (res < 0)
		_exit(0);
	/* the backstop: whatever else happens, this process goes */
	signal(SIGALRM, SIG_DFL);
	alarm(lifetime_ms / 1000 + 3);

	snprintf(path, sizeof(path), "/dev/ublkc%u", dev);
	s.cfd = open(path, O_RDWR);
	if (s.cfd < 0) {
		logf_("open %s = -%s", path, strerrorname_np(errno));
		_exit(0);
	}
	if (!plain_server && one_in(r, 6)) {
		/* a fork that keeps /dev/ublkcN open for a while */
		pid_t h = fork();

		if (h == 0) {
			alarm(5);
			sleep_ms(below(r, 3000));
			_exit(0);
		}
		logf_("holder %d keeps %s open", h, path);
	}
	if (!plain_server && one_in(r, 5))
		s.fetch_skip = 1 + below(r, 16);
	s.bogus = !plain_server && one_in(r, 8);
	if (!plain_server && !without[W_KILL] && one_in(r, 3))
		s.die_in = 1 + below(r, 64);

	nq = s.info.nr_hw_queues;
	if (nq > MAX_SRV_QUEUES)
		nq = MAX_SRV_QUEUES;
	threads = !without[W_THREADS] && !plain_server && nq >= 1 &&
		  one_in(r, 2);
	if (threads) {
		for (q = 0; q < nq; q++) {
			qcs[q] = (struct qctx){ .s = &s, .q = q };
			child_rng(r, &qcs[q].r);
			snprintf(qcs[q].name, sizeof(qcs[q].name), "%s/q%d",
				 who, q);
			if (pthread_create(&th[q], NULL, serve_queues, &qcs[q]))
				th[q] = 0;
		}
	} else {
		qcs[0] = (struct qctx){ .s = &s, .q = -1 };
		child_rng(r, &qcs[0].r);
		snprintf(qcs[0].name, sizeof(qcs[0].name), "%s", who);
		if (pthread_create(&th[0], NULL, serve_queues, &qcs[0]))
			th[0] = 0;
		nq = 1;
	}

	/* mode 1: START_DEV from here; 2: recovery, END from here */
	if (mode) {
		__u64 pid = start_as ? start_as : getpid();

		sleep_ms(below(r, 50));
		if (one_in(r, 16))
			pid = PICK(r, ((const __u64[]){ 0, -1ULL, 1ULL << 32,
				       0x7fffffff, 1 }));
		memset(&cmd, 0, sizeof(cmd));
		cmd.dev_id = dev;
		cmd.queue_id = NO_QUEUE;
		cmd.data[0] = pid;
		catch_alarm();
		res = ctrl_do(&ctl, r, mode == 1 ? UBLK_CMD_START_DEV :
			      UBLK_CMD_END_USER_RECOVERY, &cmd, 0,
			      500 + below(r, 3000), " (server)");
		signal(SIGALRM, SIG_DFL);
		alarm(lifetime_ms / 1000 + 3);
		if (mode == 1)
			atomic_fetch_add(&sh->starts, 1);
	}
	for (q = 0; q < nq; q++)
		if (th[q])
			pthread_join(th[q], NULL);
	_exit(0);
}

static pid_t spawn_server(struct worker *w, __u32 dev, int mode)
{
	struct rng cr;
	pid_t pid;
	int k = ++w->nr_forks;

	child_rng(&w->r, &cr);
	pid = fork();
	if (pid == 0) {
		set_who("s%d.%d.%d", w->idx, w->gen, k);
		server_main(&cr, dev, mode, 0);
		_exit(0);
	}
	if (pid > 0) {
		add_kid(w, pid, K_SERVER, dev);
		atomic_fetch_add(&sh->servers, 1);
	}
	logf_("spawn server s%d.%d.%d pid %d dev %u mode %d", w->idx, w->gen,
	      k, pid, dev, mode);
	return pid;
}

/* ---------------------------------------------------------------------- */
/* block I/O helper: requests in flight when servers die */

static void helper_main(struct rng *r, __u32 dev)
{
	char path[64];
	struct io_uring ring;
	unsigned long long size = 0;
	unsigned int qd = 1 + below(r, 16), inflight = 0, i, errors = 0;
	int fd, lifetime_ms = 200 + below(r, 3000);
	long long end = now_ms() + lifetime_ms;
	void *buf;

	signal(SIGALRM, SIG_DFL);
	alarm(lifetime_ms / 1000 + 2);
	snprintf(path, sizeof(path), "/dev/ublkb%u", dev);
	fd = open(path, (one_in(r, 4) ? O_RDONLY : O_RDWR) |
		  (one_in(r, 3) ? 0 : O_DIRECT));
	if (fd < 0) {
		logf_("open %s = -%s", path, strerrorname_np(errno));
		_exit(0);
	}
	if (ioctl(fd, BLKGETSIZE64, &size) || size < 4096)
		size = 4096;
	if (posix_memalign(&buf, 4096, qd * 131072) ||
	    io_uring_queue_init(qd, &ring, 0))
		_exit(1);
	memset(buf, 0x5a, qd * 131072);
	logf_("blockio %s size %llu qd %u", path, size, qd);
	if (one_in(r, 4)) {
		unsigned long long range[2] = { 0, size < 1 << 20 ? size : 1 << 20 };
		int ret = ioctl(fd, one_in(r, 2) ? BLKDISCARD : BLKZEROOUT, range);

		logf_("discard/zeroout = %d", ret ? -errno : 0);
	}
	while (now_ms() < end) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = { 0, 100 * 1000000 };

		while (inflight < qd) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			unsigned int len = 512U << below(r, 9);
			unsigned long long off;

			if (!sqe)
				break;
			if (len > 131072)
				len = 131072;
			off = (rnd(r) % (size / 4096)) * 4096;
			if (off + len > size)
				len = 4096;
			i = below(r, qd);
			if (one_in(r, 3))
				io_uring_prep_write(sqe, fd, (char *)buf + i * 131072,
						    len, off);
			else if (one_in(r, 20))
				io_uring_prep_fsync(sqe, fd, 0);
			else
				io_uring_prep_read(sqe, fd, (char *)buf + i * 131072,
						   len, off);
			inflight++;
		}
		io_uring_submit(&ring);
		if (io_uring_wait_cqe_timeout(&ring, &cqe, &ts) == 0) {
			int res = cqe->res;

			atomic_fetch_add(&sh->ios, 1);
			io_uring_cqe_seen(&ring, cqe);
			inflight--;
			if (res < 0 && ++errors % 64 == 1)
				logf_("blockio error %d (%u so far)", res, errors);
			if (res < 0)
				sleep_ms(5);
		}
	}
	_exit(0);
}

static void spawn_helper(struct worker *w, __u32 dev)
{
	struct rng cr;
	pid_t pid;
	int k = ++w->nr_forks;

	if (without[W_BLOCKIO])
		return;
	child_rng(&w->r, &cr);
	pid = fork();
	if (pid == 0) {
		set_who("b%d.%d.%d", w->idx, w->gen, k);
		helper_main(&cr, dev);
		_exit(0);
	}
	add_kid(w, pid, K_HELPER, dev);
	atomic_fetch_add(&sh->helpers, 1);
	logf_("spawn blockio b%d.%d.%d pid %d dev %u", w->idx, w->gen, k, pid,
	      dev);
}

/* a child that SIGKILLs `victim' after `ms': death during a command */
static void spawn_killer(struct worker *w, pid_t victim, int ms)
{
	pid_t pid;

	if (without[W_KILL] || victim <= 0)
		return;
	pid = fork();
	if (pid == 0) {
		sleep_ms(ms);
		kill(victim, SIGKILL);
		_exit(0);
	}
	add_kid(w, pid, K_KILLER, 0);
	atomic_fetch_add(&sh->kills, 1);
	logf_("killer: pid %d in %d ms", victim, ms);
}

/* ---------------------------------------------------------------------- */
/* worker operations */

static struct cring *worker_ring(struct worker *w, bool allow_bad)
{
	int i;

	if (allow_bad && one_in(&w->r, 40)) {
		if (!w->bad.open)
			cring_init(&w->bad, w->ctrl_fd, 4, 0, false, "plain");
		if (w->bad.open)
			return &w->bad;
	}
	i = below(&w->r, 4) ? 0 : 1 + below(&w->r, 2);
	if (!w->ctrl[i].open) {
		const char *kind = "plain";
		unsigned int f = i ? pick_ring_flags(&w->r, &kind) : 0;

		if (cring_init(&w->ctrl[i], w->ctrl_fd, 8, f, true, kind))
			return NULL;
	}
	return &w->ctrl[i];
}

/* a ring whose command is still pending is dropped */
static void ring_check(struct cring *c, int res)
{
	if (res == RES_TIMEOUT || res == RES_SUBMIT)
		cring_exit(c);
}

static unsigned int sqe_flags(struct worker *w)
{
	if (!without[W_ASYNC] && one_in(&w->r, 30))
		return IOSQE_ASYNC;
	return 0;
}

static int wcmd(struct worker *w, struct cring *c, __u32 op, __u32 dev,
		__u16 q, __u16 len, __u64 addr, __u64 d0, int tmo,
		const char *extra)
{
	struct ublksrv_ctrl_cmd cmd = { .dev_id = dev, .queue_id = q,
					.len = len, .addr = addr,
					.data = { d0, 0 } };
	int res;

	if (!c)
		return RES_SUBMIT;
	res = ctrl_do(c, &w->r, op, &cmd, sqe_flags(w), tmo, extra);
	ring_check(c, res);
	return res;
}

/* a completely random control command */
static void op_ctrl_random(struct worker *w)
{
	static const unsigned int nrs[] = {
		UBLK_CMD_GET_QUEUE_AFFINITY, UBLK_CMD_GET_DEV_INFO,
		UBLK_CMD_ADD_DEV, UBLK_CMD_DEL_DEV, UBLK_CMD_START_DEV,
		UBLK_CMD_STOP_DEV, UBLK_CMD_SET_PARAMS, UBLK_CMD_GET_PARAMS,
		UBLK_CMD_START_USER_RECOVERY, UBLK_CMD_END_USER_RECOVERY,
		UBLK_CMD_GET_DEV_INFO2, UBLK_CMD_GET_FEATURES,
		UBLK_CMD_QUIESCE_DEV, 0, 3, 0x0a, 0x14, 0x15, 0x17, 0x20, 0xff,
	};
	static const __u16 qids[] = { 0, 1, 2, NO_QUEUE, 4095, 4096 };
	static const __u16 lens[] = { 0, 1, 8, 16, 63, 64, 65, 80, 128, 4096,
				      0xffff };
	static const __u64 d0s[] = { 0, 1, -1ULL, 0x7fffffff, 0x80000000ULL,
				     1ULL << 32, 4194304 };
	struct rng *r = &w->r;
	unsigned int nr = PICK(r, nrs);
	struct cring *c = worker_ring(w, true);
	struct ublksrv_ctrl_cmd cmd;
	const char *an = "buf";
	__u64 d0;
	__u16 len;
	int res, tmo = 1000;

	if (!c)
		return;
	memset(w->buf, 0, 4096);
	len = pick_u16(r, lens, ARRAY_SIZE(lens));
	d0 = one_in(r, 3) ? (__u64)(find_server(w, 0) ?: getpid()) :
	     one_in(r, 4) ? rnd(r) : PICK(r, d0s);
	if (nr == UBLK_CMD_ADD_DEV) {
		random_info(r, w->buf, pick_dev_id(r), one_in(r, 3));
		if (one_in(r, 2))
			len = sizeof(struct ublksrv_ctrl_dev_info);
	} else if (nr == UBLK_CMD_SET_PARAMS) {
		random_params(r, w->buf, one_in(r, 3));
		if (one_in(r, 2))
			len = sizeof(struct ublk_params);
	} else if (nr == UBLK_CMD_GET_PARAMS) {
		((struct ublk_params *)w->buf)->len = one_in(r, 2) ?
			sizeof(struct ublk_params) : (__u32)rnd(r) & 0xff;
	} else if (nr == UBLK_CMD_START_DEV ||
		   nr == UBLK_CMD_END_USER_RECOVERY) {
		tmo = 200 + below(r, 1500);
	}
	memset(&cmd, 0, sizeof(cmd));
	cmd.dev_id = nr == UBLK_CMD_ADD_DEV && one_in(r, 2) ?
		((struct ublksrv_ctrl_dev_info *)w->buf)->dev_id :
		pick_dev_id(r);
	cmd.queue_id = pick_u16(r, qids, ARRAY_SIZE(qids));
	cmd.len = len;
	cmd.addr = pick_addr(r, w->buf, len, &an);
	cmd.data[0] = d0;
	cmd.data[1] = one_in(r, 4) ? rnd(r) : 0;
	if (nr == UBLK_CMD_ADD_DEV || nr == UBLK_CMD_SET_PARAMS) {
		struct ublksrv_ctrl_dev_info *i = w->buf;
		struct ublk_params *p = w->buf;
		char *e = (char *)w->buf + 32768;

		if (nr == UBLK_CMD_ADD_DEV)
			snprintf(e, 256, "%s info(id=%d q=%u d=%u io=%u f=0x%llx)",
				 an, (int)i->dev_id, i->nr_hw_queues,
				 i->queue_depth, i->max_io_buf_bytes,
				 (unsigned long long)i->flags);
		else
			snprintf(e, 256,
				 "%s params(len=%u t=0x%x a=0x%x lbs=%u pbs=%u ms=%u cs=%u sec=%llu vbm=0x%llx dg=%u dms=%u wz=%u dseg=%u)",
				 an, p->len, p->types, p->basic.attrs,
				 p->basic.logical_bs_shift,
				 p->basic.physical_bs_shift,
				 p->basic.max_sectors, p->basic.chunk_sectors,
				 (unsigned long long)p->basic.dev_sectors,
				 (unsigned long long)p->basic.virt_boundary_mask,
				 p->discard.discard_granularity,
				 p->discard.max_discard_sectors,
				 p->discard.max_write_zeroes_sectors,
				 p->discard.max_discard_segments);
		an = e;
	}
	res = ctrl_do(c, r, encode(r, nr, false), &cmd, sqe_flags(w), tmo, an);
	ring_check(c, res);
	if (nr == UBLK_CMD_ADD_DEV && res == 0 && cmd.addr == PTR(w->buf)) {
		track_id(((struct ublksrv_ctrl_dev_info *)w->buf)->dev_id);
		atomic_fetch_add(&sh->adds, 1);
	}
}

static int add_sane(struct worker *w, __u32 id, struct ublksrv_ctrl_dev_info *info)
{
	struct cring *c = worker_ring(w, false);
	char extra[96];
	int res;

	random_info(&w->r, info, id, true);
	snprintf(extra, sizeof(extra), " info(id=%d q=%u d=%u io=%u f=0x%llx)",
		 (int)info->dev_id, info->nr_hw_queues, info->queue_depth,
		 info->max_io_buf_bytes, (unsigned long long)info->flags);
	res = wcmd(w, c, encode(&w->r, UBLK_CMD_ADD_DEV, true), id, NO_QUEUE,
		   sizeof(*info), PTR(info), 0, 2000, extra);
	if (res == 0) {
		logf_("ADD -> id %u", info->dev_id);
		track_id(info->dev_id);
		atomic_fetch_add(&sh->adds, 1);
	}
	return res;
}

/*
 * Parameters for a device that is going to start: sane ones, or in one
 * case of three boundary values (the driver must refuse those the block
 * layer cannot take), then sane ones if those were refused.
 */
static int setp_sane(struct worker *w, __u32 id)
{
	struct ublk_params *p = (struct ublk_params *)((char *)w->buf + 8192);
	char extra[256];
	int res;

	if (one_in(&w->r, 3)) {
		random_params(&w->r, p, false);
		p->len = sizeof(*p);
		p->types |= UBLK_PARAM_TYPE_BASIC;
		snprintf(extra, sizeof(extra),
			 " params(t=0x%x a=0x%x lbs=%u pbs=%u ms=%u cs=%u sec=%llu vbm=0x%llx dg=%u dms=%u wz=%u dseg=%u)",
			 p->types, p->basic.attrs, p->basic.logical_bs_shift,
			 p->basic.physical_bs_shift, p->basic.max_sectors,
			 p->basic.chunk_sectors,
			 (unsigned long long)p->basic.dev_sectors,
			 (unsigned long long)p->basic.virt_boundary_mask,
			 p->discard.discard_granularity,
			 p->discard.max_discard_sectors,
			 p->discard.max_write_zeroes_sectors,
			 p->discard.max_discard_segments);
		res = wcmd(w, worker_ring(w, false),
			   encode(&w->r, UBLK_CMD_SET_PARAMS, true), id,
			   NO_QUEUE, sizeof(*p), PTR(p), 0, 2000, extra);
		if (res != -EINVAL)
			return res;
	}
	random_params(&w->r, p, true);
	return wcmd(w, worker_ring(w, false),
		    encode(&w->r, UBLK_CMD_SET_PARAMS, true), id, NO_QUEUE,
		    sizeof(*p), PTR(p), 0, 2000, NULL);
}

static int simple(struct worker *w, unsigned int nr, __u32 id, __u64 d0,
		  int tmo)
{
	int res = wcmd(w, worker_ring(w, false), encode(&w->r, nr, true), id,
		       NO_QUEUE, 0, 0, d0, tmo, NULL);

	if (nr == UBLK_CMD_DEL_DEV && res == 0)
		atomic_fetch_add(&sh->dels, 1);
	return res;
}

static void kill_kid(pid_t pid)
{
	if (without[W_KILL] || pid <= 0)
		return;
	kill(pid, SIGKILL);
	atomic_fetch_add(&sh->kills, 1);
	logf_("kill -9 %d", pid);
}

/* a well-formed command on a window id */
static void op_ctrl_sane(struct worker *w)
{
	struct rng *r = &w->r;
	__u32 id = pick_dev_id(r);
	struct ublksrv_ctrl_dev_info *info = w->buf;
	pid_t srv = find_server(w, id);

	switch (below(r, 11)) {
	case 10:
		simple(w, UBLK_CMD_QUIESCE_DEV, id, 0, 15000);
		break;
	case 0:
	case 1:
		add_sane(w, one_in(r, 3) ? -1U : id, info);
		break;
	case 2:
		setp_sane(w, id);
		break;
	case 3:
		simple(w, UBLK_CMD_START_DEV, id, srv ?: getpid(),
		       200 + below(r, 1500));
		break;
	case 4:
		simple(w, UBLK_CMD_STOP_DEV, id, 0, 5000);
		break;
	case 5:
		simple(w, UBLK_CMD_DEL_DEV, id, 0, 5000);
		break;
	case 6:
		simple(w, UBLK_CMD_START_USER_RECOVERY, id, 0, 2000);
		break;
	case 7:
		simple(w, UBLK_CMD_END_USER_RECOVERY, id, srv ?: getpid(),
		       200 + below(r, 1500));
		break;
	default:
		wcmd(w, worker_ring(w, false),
		     encode(r, UBLK_CMD_GET_DEV_INFO, true), id, NO_QUEUE,
		     sizeof(*info), PTR(info), 0, 1000, NULL);
		break;
	}
}

/*
 * A scripted life: add, params, a server, START (from the server or from
 * here), block I/O, then a death at a chosen moment and what follows it.
 */
static void op_scenario(struct worker *w)
{
	struct rng *r = &w->r;
	struct ublksrv_ctrl_dev_info *info =
		(struct ublksrv_ctrl_dev_info *)((char *)w->buf + 4096);
	__u32 id = one_in(r, 2) ? -1U : pick_dev_id(r);
	pid_t srv, srv2;
	int res, i, act;
	bool start_here = one_in(r, 2);

	logf_("scenario begin");
	res = add_sane(w, id, info);
	if (res)
		return;
	id = info->dev_id;
	if (setp_sane(w, id) && one_in(r, 2))
		return;
	srv = spawn_server(w, id, start_here ? 0 : 1);
	act = below(r, 7);
	if (act == 0)	/* death before or during START's wait / scan */
		spawn_killer(w, srv, below(r, 300));
	if (start_here) {
		sleep_ms(below(r, 30));
		simple(w, UBLK_CMD_START_DEV, id, srv, 500 + below(r, 2500));
	} else {
		sleep_ms(below(r, 200));
	}
	for (i = below(r, 3); i > 0; i--)
		spawn_helper(w, id);
	sleep_ms(below(r, 300));
	switch (act) {
	case 1:		/* death and DEL at once */
		kill_kid(srv);
		simple(w, UBLK_CMD_DEL_DEV, id, 0, 10000);
		break;
	case 2:		/* death, then recovery by a new server */
		kill_kid(srv);
		sleep_ms(below(r, 100));
		for (i = 0; i < 20; i++) {
			res = simple(w, UBLK_CMD_START_USER_RECOVERY, id, 0,
				     2000);
			if (res != -EBUSY)
				break;
			sleep_ms(50);
		}
		if (res)
			break;
		srv2 = spawn_server(w, id, one_in(r, 2) ? 2 : 0);
		if (one_in(r, 2)) {
			sleep_ms(below(r, 100));
			simple(w, UBLK_CMD_END_USER_RECOVERY, id, srv2,
			       500 + below(r, 2500));
		}
		if (one_in(r, 3))
			spawn_killer(w, srv2, below(r, 200));
		break;
	case 3:		/* death during STOP under I/O */
		spawn_killer(w, srv, below(r, 50));
		simple(w, UBLK_CMD_STOP_DEV, id, 0, 10000);
		break;
	case 4:		/* death during DEL under I/O */
		spawn_killer(w, srv, below(r, 50));
		simple(w, UBLK_CMD_DEL_DEV, id, 0, 10000);
		break;
	case 5:		/* live server, plain DEL */
		simple(w, UBLK_CMD_DEL_DEV, id, 0, 10000);
		break;
	default:	/* left to the server's own fate and the monitor */
		break;
	}
	logf_("scenario end");
}

static void op_kill(struct worker *w)
{
	if (!w->nr_kids)
		return;
	kill_kid(w->kids[below(&w->r, w->nr_kids)].pid);
}

static void worker_main(int idx, int gen)
{
	struct worker w;
	int i;

	memset(&w, 0, sizeof(w));
	w.idx = idx;
	w.gen = gen;
	set_who("w%d.%d", idx, gen);
	rng_init(&w.r, opt_seed, idx + 1, gen);
	catch_alarm();
	w.buf = aligned_alloc(4096, 65536);
	w.ctrl_fd = open(CTRL_DEV, O_RDWR);
	if (!w.buf || w.ctrl_fd < 0) {
		logf_("cannot open %s: %s", CTRL_DEV, strerror(errno));
		_exit(2);
	}
	logf_("worker start seed %llu pid %d", opt_seed, getpid());

	while (!stopping()) {
		unsigned int x = below(&w.r, 1000);

		reap_kids(&w);
		if (x < 380) {
			op_ctrl_random(&w);
		} else if (x < 650) {
			op_ctrl_sane(&w);
		} else if (x < 740) {
			__u32 id = pick_dev_id(&w.r);

			spawn_server(&w, id, below(&w.r, 3));
		} else if (x < 800) {
			spawn_helper(&w, pick_dev_id(&w.r));
		} else if (x < 850) {
			op_kill(&w);
		} else if (x < 960) {
			if (!without[W_SCENARIO])
				op_scenario(&w);
		} else if (x < 998) {
			sleep_ms(below(&w.r, 50));
		} else if (!without[W_SELFKILL] && !without[W_KILL]) {
			logf_("self kill");
			raise(SIGKILL);
		}
	}
	logf_("worker done");
	for (i = 0; i < w.nr_kids; i++)
		kill(w.kids[i].pid, SIGKILL);
	_exit(0);
}

/* ---------------------------------------------------------------------- */
/* monitor: devices older than --max-age are deleted */

static void monitor_main(void)
{
	long long seen[4096] = { 0 };
	unsigned int n = id_hi - id_lo + 1, i;
	struct cring c;
	int fd;

	set_who("M");
	catch_alarm();
	logf_("monitor pid %d", getpid());
	fd = open(CTRL_DEV, O_RDWR);
	if (fd < 0 || cring_init(&c, fd, 4, 0, true, "plain"))
		_exit(2);
	if (n > ARRAY_SIZE(seen))
		n = ARRAY_SIZE(seen);
	while (!stopping()) {
		for (i = 0; i < n && !stopping(); i++) {
			struct ublksrv_ctrl_dev_info info;
			struct ublksrv_ctrl_cmd cmd = {
				.dev_id = id_lo + i, .queue_id = NO_QUEUE,
				.len = sizeof(info), .addr = PTR(&info),
			};
			int res = ctrl_send(&c, UBLK_CMD_GET_DEV_INFO, &cmd, 0,
					    1000);

			if (res == RES_TIMEOUT || res == RES_SUBMIT) {
				logf_("INFO id=%u = %d (monitor)", id_lo + i, res);
				cring_exit(&c);
				if (cring_init(&c, fd, 4, 0, true, "plain"))
					_exit(2);
				continue;
			}
			if (res) {
				seen[i] = 0;
				continue;
			}
			if (!seen[i])
				seen[i] = now_ms();
			if (now_ms() - seen[i] > opt_max_age * 1000LL) {
				memset(&cmd, 0, sizeof(cmd));
				cmd.dev_id = id_lo + i;
				cmd.queue_id = NO_QUEUE;
				res = ctrl_send(&c, UBLK_CMD_DEL_DEV, &cmd, 0,
						10000);
				logf_("DEL id=%u (older than %d s) = %d",
				      id_lo + i, opt_max_age, res);
				seen[i] = 0;
				if (res == RES_TIMEOUT) {
					cring_exit(&c);
					if (cring_init(&c, fd, 4, 0, true,
						       "plain"))
						_exit(2);
				}
			}
		}
		sleep_ms(200);
	}
	_exit(0);
}

/* ---------------------------------------------------------------------- */
/* the end: delete every device the campaign may have made */

static void cleanup_main(void)
{
	unsigned int i, n, bad = 0;
	struct cring c;
	int fd;

	set_who("C");
	catch_alarm();
	logf_("clean-up pid %d", getpid());
	fd = open(CTRL_DEV, O_RDWR);
	if (fd < 0 || cring_init(&c, fd, 4, 0, true, "plain"))
		_exit(2);
	n = atomic_load(&sh->nr_tracked);
	if (n > MAX_TRACKED)
		n = MAX_TRACKED;
	for (i = 0; i < (id_hi - id_lo + 1) + n; i++) {
		__u32 id = i <= id_hi - id_lo ? id_lo + i :
			   atomic_load(&sh->tracked[i - (id_hi - id_lo + 1)]);
		struct ublksrv_ctrl_cmd cmd = { .dev_id = id,
						.queue_id = NO_QUEUE };
		char rb[32];
		int res = ctrl_send(&c, UBLK_CMD_DEL_DEV, &cmd, 0, 10000);

		if (res != -ENODEV || !quiet)
			logf_("DEL id=%u = %s", id, res_str(res, rb, sizeof(rb)));
		if (res != 0 && res != -ENODEV) {
			fprintf(stderr, "ublk_fuzz: clean-up DEL_DEV of %u: %s\n",
				id, res_str(res, rb, sizeof(rb)));
			bad++;
			if (res == RES_TIMEOUT || res == RES_SUBMIT) {
				cring_exit(&c);
				if (cring_init(&c, fd, 4, 0, true, "plain"))
					_exit(2);
			}
		}
	}
	_exit(bad ? 1 : 0);
}

/* ---------------------------------------------------------------------- */
/* the supervisor: never enters the driver */

static void report_stuck(pid_t pid)
{
	char path[64], buf[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			fprintf(stderr, "ublk_fuzz: STUCK %.*s\n",
				(int)strcspn(buf, "\n"), buf);
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/stack", pid);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0) {
			buf[n] = 0;
			fprintf(stderr, "%s", buf);
		}
	}
}

static pid_t pgids[4096];
static int nr_pgids;

static pid_t start_proc(int kind, int idx, int gen)
{
	pid_t pid = fork();

	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, 0);
		if (kind == 0)
			worker_main(idx, gen);
		else if (kind == 1)
			monitor_main();
		else
			cleanup_main();
		_exit(0);
	}
	if (pid > 0) {
		setpgid(pid, pid);
		if (nr_pgids < (int)ARRAY_SIZE(pgids))
			pgids[nr_pgids++] = pid;
	}
	return pid;
}

/* reap children until none is left or the time is up; 0 when none left */
static int reap_all(int timeout_ms, pid_t watch, int *watch_status)
{
	long long end = now_ms() + timeout_ms;
	int st;
	pid_t pid;

	for (;;) {
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
			if (pid == watch && watch_status)
				*watch_status = st;
		if (pid < 0 && errno == ECHILD)
			return 0;
		if (now_ms() > end)
			return -1;
		sleep_ms(20);
	}
}

static void kill_everything(void)
{
	int i;

	for (i = 0; i < nr_pgids; i++)
		kill(-pgids[i], SIGKILL);
}

/* the pids of our remaining children (adopted orphans included) */
static int list_children(pid_t *out, int max)
{
	char path[64], buf[512];
	int n = 0, fd;
	FILE *f;
	pid_t me = getpid();

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", me, me);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (n < max && fscanf(f, "%d", &out[n]) == 1)
		n++;
	fclose(f);
	(void)buf;
	(void)fd;
	return n;
}

/* ---------------------------------------------------------------------- */
/* --repro: the fuzzer's findings as fixed, minimal sequences */

/* state, wchan and kernel stack of every thread of pid */
static void show_tasks(pid_t pid)
{
	char path[320], buf[4096];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		FILE *f;
		size_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", pid,
			 de->d_name);
		f = fopen(path, "r");
		if (f) {
			n = fread(buf, 1, sizeof(buf) - 1, f);
			buf[n] = 0;
			fclose(f);
			/* pid (comm) state */
			printf("  task %.*s\n", (int)(strchr(buf, ')') ?
			       strchr(buf, ')') - buf + 3 : 40), buf);
		}
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stack", pid,
			 de->d_name);
		f = fopen(path, "r");
		if (f) {
			n = fread(buf, 1, sizeof(buf) - 1, f);
			buf[n] = 0;
			fclose(f);
			printf("%s", buf);
		}
	}
	closedir(d);
	fflush(stdout);
}

static int repro_dev(struct worker *w, __u64 flags, pid_t *srv)
{
	struct ublksrv_ctrl_dev_info *info = w->buf;
	struct ublk_params *p = (struct ublk_params *)((char *)w->buf + 8192);
	struct cring *c = &w->ctrl[0];
	int res;

	memset(info, 0, sizeof(*info));
	info->dev_id = -1U;
	info->nr_hw_queues = 1;
	info->queue_depth = 4;
	info->max_io_buf_bytes = 65536;
	info->flags = flags;
	res = wcmd(w, c, UBLK_CMD_ADD_DEV, -1U, NO_QUEUE, sizeof(*info),
		   PTR(info), 0, 2000, " info(q=1 d=4)");
	if (res)
		return -1;
	memset(p, 0, sizeof(*p));
	p->len = sizeof(*p);
	p->types = UBLK_PARAM_TYPE_BASIC;
	p->basic.logical_bs_shift = 9;
	p->basic.physical_bs_shift = 12;
	p->basic.max_sectors = 128;
	p->basic.dev_sectors = 1 << 15;
	if (wcmd(w, c, UBLK_CMD_SET_PARAMS, info->dev_id, NO_QUEUE, sizeof(*p),
		 PTR(p), 0, 2000, NULL))
		return -1;
	*srv = spawn_server(w, info->dev_id, 0);
	sleep_ms(300);			/* every tag fetched */
	return info->dev_id;
}

static int repro_state(struct worker *w, int id)
{
	struct ublksrv_ctrl_dev_info info;
	int res = wcmd(w, &w->ctrl[0], UBLK_CMD_GET_DEV_INFO, id, NO_QUEUE,
		       sizeof(info), PTR(&info), 0, 2000, NULL);

	return res ? res : info.state;
}

/*
 * sqpoll-stop: a server on an SQPOLL ring is SIGKILLed on a LIVE device
 *	with recovery; the device should become QUIESCED, STOP should work.
 * kill-del:	SIGKILL the server and DEL_DEV at once, block I/O running.
 * dup-id:	two processes ADD_DEV and DEL_DEV id 0 in a loop.
 * chunk-lbs:	SET_PARAMS with chunk_sectors (1) below the logical block
 *		size (4096), then START_DEV: the partition scan's read.
 * Each prints what happened; exit 1 when a command did not come back.
 */
static int repro_main(const char *name)
{
	struct worker w;
	pid_t srv, other;
	int id, res, i, st;

	memset(&w, 0, sizeof(w));
	set_who("R");
	rng_init(&w.r, opt_seed, 99, 0);
	catch_alarm();
	w.buf = aligned_alloc(4096, 65536);
	w.ctrl_fd = open(CTRL_DEV, O_RDWR);
	if (!w.buf || w.ctrl_fd < 0 ||
	    cring_init(&w.ctrl[0], w.ctrl_fd, 8, 0, true, "plain"))
		return 2;
	plain_server = true;

	if (!strcmp(name, "dup-id")) {
		other = fork();
		if (other == 0) {
			set_who("R2");
			if (cring_init(&w.ctrl[0], w.ctrl_fd, 8, 0, true,
				       "plain"))
				_exit(2);
		}
		for (i = 0; i < 300; i++) {
			struct ublksrv_ctrl_dev_info *info = w.buf;

			memset(info, 0, sizeof(*info));
			info->nr_hw_queues = 1;
			info->queue_depth = 4;
			info->max_io_buf_bytes = 65536;
			wcmd(&w, &w.ctrl[0], UBLK_CMD_ADD_DEV, 0, NO_QUEUE,
			     sizeof(*info), PTR(info), 0, 5000, NULL);
			res = wcmd(&w, &w.ctrl[0], UBLK_CMD_DEL_DEV, 0,
				   NO_QUEUE, 0, 0, 0, 5000, NULL);
			if (res == RES_TIMEOUT)
				_exit(1);
		}
		if (other == 0)
			_exit(0);
		waitpid(other, &st, 0);
		printf("dup-id: 300 ADD/DEL pairs from 2 processes done; see the kernel log\n");
		return 0;
	}
	if (!strcmp(name, "sqpoll-stop")) {
		plain_ring = IORING_SETUP_SQPOLL;
		id = repro_dev(&w, UBLK_F_USER_RECOVERY, &srv);
		if (id < 0)
			return 2;
		res = wcmd(&w, &w.ctrl[0], UBLK_CMD_START_DEV, id, NO_QUEUE, 0,
			   0, srv, 5000, NULL);
		printf("sqpoll-stop: START = %d, state %d\n", res,
		       repro_state(&w, id));
		sleep_ms(200);
		/* we must get the CPU to look at what the kill leads to */
		{
			struct sched_param sp = { .sched_priority = 50 };

			sched_setscheduler(0, SCHED_FIFO, &sp);
		}
		kill(srv, SIGKILL);
		logf_("kill -9 %d", srv);
		sleep_ms(2000);
		if (waitpid(srv, &st, WNOHANG) != srv) {
			printf("sqpoll-stop: server %d has not exited 2 s after SIGKILL:\n",
			       srv);
			show_tasks(srv);
		}
		printf("sqpoll-stop: 2 s after kill -9 of the server: state %d (QUIESCED is %d)\n",
		       repro_state(&w, id), UBLK_S_DEV_QUIESCED);
		fflush(stdout);
		res = wcmd(&w, &w.ctrl[0], UBLK_CMD_STOP_DEV, id, NO_QUEUE, 0,
			   0, 0, 10000, NULL);
		printf("sqpoll-stop: STOP = %d%s\n", res,
		       res == RES_TIMEOUT ? " (TIMEOUT: stuck)" : "");
		return res == RES_TIMEOUT ? 1 : 0;
	}
	if (!strcmp(name, "kill-del")) {
		plain_ring = 0;
		id = repro_dev(&w, 0, &srv);
		if (id < 0)
			return 2;
		res = wcmd(&w, &w.ctrl[0], UBLK_CMD_START_DEV, id, NO_QUEUE, 0,
			   0, srv, 5000, NULL);
		printf("kill-del: START = %d\n", res);
		spawn_helper(&w, id);
		sleep_ms(300);
		kill(srv, SIGKILL);
		res = wcmd(&w, &w.ctrl[0], UBLK_CMD_DEL_DEV, id, NO_QUEUE, 0,
			   0, 0, 10000, NULL);
		printf("kill-del: DEL = %d%s\n", res,
		       res == RES_TIMEOUT ? " (TIMEOUT: stuck)" : "");
		return res == RES_TIMEOUT ? 1 : 0;
	}
	if (!strcmp(name, "chunk-lbs")) {
		struct ublk_params *p = (struct ublk_params *)
					((char *)w.buf + 8192);

		plain_ring = 0;
		id = repro_dev(&w, 0, &srv);
		if (id < 0)
			return 2;
		/* 4K logical blocks, chunks of one 512-byte sector */
		p->basic.logical_bs_shift = 12;
		p->basic.chunk_sectors = 1;
		res = wcmd(&w, &w.ctrl[0], UBLK_CMD_SET_PARAMS, id, NO_QUEUE,
			   sizeof(*p), PTR(p), 0, 2000, NULL);
		printf("chunk-lbs: SET_PARAMS lbs 4096 chunk_sectors 1 = %d\n",
		       res);
		if (res)
			return 0;	/* refused: nothing to reproduce */
		res = wcmd(&w, &w.ctrl[0], UBLK_CMD_START_DEV, id, NO_QUEUE, 0,
			   0, srv, 5000, NULL);
		printf("chunk-lbs: START = %d (the partition scan reads now)\n",
		       res);
		fflush(stdout);
		sleep_ms(2000);
		res = wcmd(&w, &w.ctrl[0], UBLK_CMD_DEL_DEV, id, NO_QUEUE, 0,
			   0, 0, 10000, NULL);
		printf("chunk-lbs: DEL = %d%s\n", res,
		       res == RES_TIMEOUT ? " (TIMEOUT: stuck)" : "");
		return res == RES_TIMEOUT ? 1 : 0;
	}
	fprintf(stderr, "unknown repro %s\n", name);
	return 2;
}

static void print_usage(void)
{
	fprintf(stderr,
		"usage: ublk_fuzz --seed N --ops M [--procs P] [--time S] [--log FILE]\n"
		"		 [--ids A-B] [--max-age S] [--without CLASS,...] [--quiet]\n"
		"       ublk_fuzz --repro sqpoll-stop|kill-del|dup-id|chunk-lbs [--log FILE]\n"
		"classes: kill selfkill async sqpoll defer blockio badaddr threads scenario\n");
	exit(2);
}

static void parse_without(char *arg)
{
	char *tok, *save = NULL;
	int i;

	for (tok = strtok_r(arg, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < W_NR; i++)
			if (!strcmp(tok, class_names[i]))
				break;
		if (i == W_NR) {
			fprintf(stderr, "unknown class %s\n", tok);
			print_usage();
		}
		without[i] = true;
	}
}

#define FUZZ_SUMMARY_FMT "ublk_fuzz: seed %llu: %ld commands in %.1f s; adds %ld dels %ld starts %ld servers %ld helpers %ld kills %ld block-ios %ld timeouts %ld\n"

int main(int argc, char **argv)
{
	int gens[MAX_PROCS] = { 0 }, i, st, cleanup_status = -1, stuck = 0;
	pid_t workers[MAX_PROCS], monitor, cleaner, left[256];
	struct rng sr;
	long long next_kill;
	const char *repro = NULL;
	int n;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--quiet")) {
			quiet = true;
			continue;
		}
		if (!v)
			print_usage();
		i++;
		if (!strcmp(a, "--seed")) {
			opt_seed = strtoull(v, NULL, 0);
		} else if (!strcmp(a, "--ops")) {
			opt_ops = strtol(v, NULL, 0);
		} else if (!strcmp(a, "--procs")) {
			opt_procs = atoi(v);
		} else if (!strcmp(a, "--time")) {
			opt_time = atoi(v);
		} else if (!strcmp(a, "--max-age")) {
			opt_max_age = atoi(v);
		} else if (!strcmp(a, "--ids")) {
			if (sscanf(v, "%u-%u", &id_lo, &id_hi) != 2 ||
			    id_hi < id_lo || id_hi - id_lo > 1000)
				print_usage();
		} else if (!strcmp(a, "--log")) {
			log_fd = open(v, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC,
				      0644);
			if (log_fd < 0) {
				perror(v);
				return 2;
			}
		} else if (!strcmp(a, "--repro")) {
			repro = v;
		} else if (!strcmp(a, "--without")) {
			parse_without(strdup(v));
		} else {
			print_usage();
		}
	}
	if (opt_procs < 1 || opt_procs > MAX_PROCS)
		print_usage();

	page_size = sysconf(_SC_PAGESIZE);
	nr_cpus = sysconf(_SC_NPROCESSORS_CONF);
	t_start = now_ms();
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return 2;
	memset(sh, 0, sizeof(*sh));
	setup_bad_buffers();
	if (access(CTRL_DEV, R_OK | W_OK)) {
		perror(CTRL_DEV);
		return 2;
	}
	if (repro) {
		setvbuf(stdout, NULL, _IOLBF, 0);
		opt_ops = LONG_MAX;
		opt_time = 3600;
		return repro_main(repro);
	}
	/* orphans of killed workers come to us, so we can reap them */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	set_who("S");
	printf("ublk_fuzz: seed %llu ops %ld procs %d time %d s ids %u-%u\n",
	       opt_seed, opt_ops, opt_procs, opt_time, id_lo, id_hi);
	fflush(stdout);
	logf_("seed %llu ops %ld procs %d time %d ids %u-%u", opt_seed,
	      opt_ops, opt_procs, opt_time, id_lo, id_hi);

	rng_init(&sr, opt_seed, 0, 0);
	for (i = 0; i < opt_procs; i++)
		workers[i] = start_proc(0, i, 0);
	monitor = start_proc(1, 0, 0);
	next_kill = now_ms() + 200 + below(&sr, 2000);

	while (!stopping()) {
		pid_t pid;

		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			for (i = 0; i < opt_procs; i++) {
				if (pid != workers[i])
					continue;
				if (WIFEXITED(st) && WEXITSTATUS(st) == 2) {
					fprintf(stderr, "ublk_fuzz: worker set-up failed\n");
					atomic_store(&sh->stop, 1);
				}
				workers[i] = start_proc(0, i, ++gens[i]);
				logf_("worker %d restarted as gen %d", i,
				      gens[i]);
			}
		}
		if (!without[W_KILL] && now_ms() > next_kill) {
			i = below(&sr, opt_procs);
			logf_("kill -9 worker w%d.%d pid %d", i, gens[i],
			      workers[i]);
			kill(workers[i], SIGKILL);
			atomic_fetch_add(&sh->kills, 1);
			next_kill = now_ms() + 500 + below(&sr, 4000);
		}
		sleep_ms(20);
	}
	atomic_store(&sh->stop, 1);

	/* workers finish their command (bounded by its timeout) */
	{
		long long end = now_ms() + 15000;
		bool alive;

		do {
			alive = false;
			reap_all(0, 0, NULL);
			for (i = 0; i < opt_procs; i++)
				if (kill(workers[i], 0) == 0 &&
				    waitpid(workers[i], &st, WNOHANG) == 0)
					alive = true;
			if (kill(monitor, 0) == 0 &&
			    waitpid(monitor, &st, WNOHANG) == 0)
				alive = true;
			if (alive)
				sleep_ms(50);
		} while (alive && now_ms() < end);
	}
	kill_everything();
	reap_all(3000, 0, NULL);

	cleaner = start_proc(2, 0, 0);
	if (reap_all(40000, cleaner, &cleanup_status))
		kill_everything();
	if (reap_all(5000, cleaner, &cleanup_status)) {
		n = list_children(left, ARRAY_SIZE(left));
		for (i = 0; i < n; i++)
			report_stuck(left[i]);
		stuck = n ? n : 1;
	}

	printf(FUZZ_SUMMARY_FMT, opt_seed, atomic_load(&sh->ops),
	       (now_ms() - t_start) / 1000.0, atomic_load(&sh->adds),
	       atomic_load(&sh->dels), atomic_load(&sh->starts),
	       atomic_load(&sh->servers), atomic_load(&sh->helpers),
	       atomic_load(&sh->kills), atomic_load(&sh->ios),
	       atomic_load(&sh->by_res_timeout));
	if (stuck)
		printf("ublk_fuzz: FAIL: %d process(es) would not exit\n", stuck);
	if (!WIFEXITED(cleanup_status) || WEXITSTATUS(cleanup_status))
		printf("ublk_fuzz: FAIL: clean-up could not delete every device (status 0x%x)\n",
		       cleanup_status);
	else if (!stuck)
		printf("ublk_fuzz: clean\n");
	return stuck || !WIFEXITED(cleanup_status) ||
	       WEXITSTATUS(cleanup_status) ? 1 : 0;
}
