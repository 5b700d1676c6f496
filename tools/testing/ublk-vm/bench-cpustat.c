// SPDX-License-Identifier: GPL-2.0
/*
 * bench-cpustat: CPU accounting for "make bench" (built by bench-guest.sh
 * into /tmp/bench, never into the repo).
 *
 *   bench-cpustat PERIOD_US OUTFILE [PID...]
 *   bench-cpustat --pingpong[-threads] CPU_A CPU_B [SECONDS]
 *   bench-cpustat --copy
 *   bench-cpustat --clock
 *
 * Until SIGTERM/SIGINT, every PERIOD_US writes one line:
 *   <CLOCK_REALTIME s> <user nice system idle iowait irq softirq steal>
 *   <ctxt> <utime+stime of each PID, -1 once gone>
 * in clock ticks (USER_HZ), after a "# pids: PID..." line. Realtime, so
 * that the report can cut out a fio job by the unix-epoch timestamps of
 * its IOPS log. A sample costs about 0.5 ms of CPU under TCG: keep the
 * period at 100 ms or more.
 *
 * --pingpong: two processes pinned on CPU_A and CPU_B pass a byte back and
 * forth over pipes for SECONDS (default 1); prints "ROUNDS MEAN_US MAX_US"
 * of the round trips: what a wake-up across (or on one) vCPU costs, which
 * is what ublk's server and loop's worker pay per I/O and null_blk not.
 * --pingpong-threads: the same between two threads of one process, which
 * share an address space: on one vCPU the difference is the cost of a
 * switch between processes (TCG drops its software TLB at each).
 *
 * --copy: microseconds of a 4 KiB copy with rep movsb and with rep movsq.
 * --clock: microseconds of a clock_gettime(CLOCK_MONOTONIC); fio reads
 * the clock several times per I/O and the block layer twice.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int read_file(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

/* utime + stime of a process (all its threads), -1 if gone */
static long long pid_ticks(const char *pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	if (read_file(path, buf, sizeof(buf)))
		return -1;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return ut + st;
}

static void ts_add_ns(struct timespec *ts, long ns)
{
	ts->tv_nsec += ns;
	while (ts->tv_nsec >= 1000000000L) {
		ts->tv_nsec -= 1000000000L;
		ts->tv_sec++;
	}
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

struct echo {
	int in, out, cpu;
};

/* the far end of the ping-pong: send back every byte until a 0 */
static void *echo(void *arg)
{
	struct echo *e = arg;
	char c;

	pin(e->cpu);
	while (read(e->in, &c, 1) == 1 && c)
		if (write(e->out, &c, 1) != 1)
			break;
	return NULL;
}

static int pingpong(int cpu_a, int cpu_b, double secs, bool thread)
{
	double t0, t, rt, sum = 0, max = 0;
	int ab[2], ba[2];
	struct echo e;
	pthread_t tid;
	pid_t child = 0;
	long n = 0;
	char c = 0;

	if (pipe(ab) || pipe(ba))
		return 1;
	e = (struct echo){ .in = ab[0], .out = ba[1], .cpu = cpu_b };
	if (thread) {
		if (pthread_create(&tid, NULL, echo, &e))
			return 1;
	} else {
		child = fork();
		if (child < 0)
			return 1;
		if (!child) {
			echo(&e);
			_exit(0);
		}
	}
	pin(cpu_a);
	c = 1;
	t0 = now_us();
	do {
		t = now_us();
		if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1)
			break;
		rt = now_us() - t;
		if (n++ > 0) {		/* the first one includes the peer's start */
			sum += rt;
			if (rt > max)
				max = rt;
		}
	} while (t - t0 < secs * 1e6);
	c = 0;
	if (thread) {
		if (write(ab[1], &c, 1) != 1)
			close(ab[1]);
		pthread_join(tid, NULL);
	} else {
		if (write(ab[1], &c, 1) != 1)
			kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	printf("%ld %.1f %.1f\n", n - 1, n > 1 ? sum / (n - 1) : 0, max);
	return 0;
}

static double copy_us(int movsb)
{
	static char src[4096] __attribute__((aligned(4096)));
	static char dst[4096] __attribute__((aligned(4096)));
	const int n = 2000;
	double t = now_us();
	int i;

	for (i = 0; i < n; i++) {
		void *d = dst, *s = src;
		long c = movsb ? 4096 : 512;

		if (movsb)
			asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(c) : : "memory");
		else
			asm volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(c) : : "memory");
	}
	return (now_us() - t) / n;
}

static double clock_us(void)
{
	const int n = 20000;
	struct timespec ts;
	double t = now_us();
	int i;

	for (i = 0; i < n; i++)
		clock_gettime(CLOCK_MONOTONIC, &ts);
	return (now_us() - t) / n;
}

int main(int argc, char **argv)
{
	static char buf[1 << 16];
	unsigned long long c[8], ctxt;
	struct timespec next, rt;
	struct sigaction sa;
	long period_ns;
	FILE *out;
	char *p;
	int i;

	if (argc == 2 && !strcmp(argv[1], "--copy")) {
		printf("%.2f %.2f\n", copy_us(1), copy_us(0));
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "--clock")) {
		printf("%.3f\n", clock_us());
		return 0;
	}
	if (argc >= 4 && (!strcmp(argv[1], "--pingpong") ||
			  !strcmp(argv[1], "--pingpong-threads")))
		return pingpong(atoi(argv[2]), atoi(argv[3]),
				argc > 4 ? atof(argv[4]) : 1,
				!strcmp(argv[1], "--pingpong-threads"));
	if (argc < 3) {
		fprintf(stderr, "usage: %s PERIOD_US OUTFILE [PID...]\n"
			"       %s --pingpong[-threads] CPU_A CPU_B [SECONDS]\n"
			"       %s --copy\n"
			"       %s --clock\n", argv[0], argv[0], argv[0], argv[0]);
		return 2;
	}
	period_ns = atol(argv[1]) * 1000L;
	if (period_ns <= 0)
		period_ns = 100000000L;
	out = fopen(argv[2], "w");
	if (!out) {
		fprintf(stderr, "bench-cpustat: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	fprintf(out, "# pids:");
	for (i = 3; i < argc; i++)
		fprintf(out, " %s", argv[i]);
	fprintf(out, "\n");
	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!stop) {
		clock_gettime(CLOCK_REALTIME, &rt);
		if (!read_file("/proc/stat", buf, sizeof(buf))) {
			memset(c, 0, sizeof(c));
			sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
			       &c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6], &c[7]);
			p = strstr(buf, "\nctxt ");
			ctxt = p ? strtoull(p + 6, NULL, 10) : 0;
			fprintf(out, "%.6f %llu %llu %llu %llu %llu %llu %llu %llu %llu",
				rt.tv_sec + rt.tv_nsec / 1e9, c[0], c[1], c[2], c[3],
				c[4], c[5], c[6], c[7], ctxt);
			for (i = 3; i < argc; i++)
				fprintf(out, " %lld", pid_ticks(argv[i]));
			fprintf(out, "\n");
		}
		ts_add_ns(&next, period_ns);
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	fclose(out);
	return 0;
}
