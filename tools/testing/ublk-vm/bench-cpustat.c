// SPDX-License-Identifier: GPL-2.0
/*
 * bench-cpustat: CPU accounting for "make bench" (built by bench-guest.sh
 * into /tmp/bench, never into the repo).
 *
 *   bench-cpustat PERIOD_US OUTFILE [PID...]
 *
 * Until SIGTERM/SIGINT, every PERIOD_US writes one line:
 *   <CLOCK_REALTIME s> <user nice system idle iowait irq softirq steal>
 *   <ctxt> <utime+stime of each PID, -1 once gone>
 * in clock ticks (USER_HZ), after a "# pids: PID..." line. Realtime, so
 * that the report can cut out a fio job by the unix-epoch timestamps of
 * its IOPS log. A sample costs about 0.5 ms of CPU under TCG: keep the
 * period at 100 ms or more.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

	if (argc < 3) {
		fprintf(stderr, "usage: %s PERIOD_US OUTFILE [PID...]\n", argv[0]);
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
