// SPDX-License-Identifier: GPL-2.0
/*
 * ublk_uevent: listen to the driver's state uevents, as udev would.
 *
 *   ublk_uevent [-n ID] [-c COUNT] [-t TIMEOUT_MS] [-s STATE -x COMMAND]
 *
 * Prints "ready" once it listens, then one line per KOBJ_CHANGE uevent of
 * a /dev/ublkcN ("<ms> <id> <state>", ms since it listened), for device
 * ID only with -n. With -s and -x, runs COMMAND through sh -c, with
 * UBLK_DEV_ID and UBLK_STATE in its environment, for every event of that
 * state, and waits for it: the stand-in for a udev rule in a VM that has
 * no udev. Exits 0 after COUNT events (default: run until killed), 1 on
 * a timeout or an error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define UEVENT_BUF	8192

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* the value of KEY= in the NUL-separated message, or NULL */
static const char *uevent_var(const char *msg, size_t len, const char *key)
{
	size_t klen = strlen(key);
	const char *p = msg, *end = msg + len;

	while (p < end) {
		size_t n = strnlen(p, end - p);

		if (n > klen && !strncmp(p, key, klen) && p[klen] == '=')
			return p + klen + 1;
		p += n + 1;
	}
	return NULL;
}

static int run_command(const char *cmd, const char *id, const char *state)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		setenv("UBLK_DEV_ID", id, 1);
		setenv("UBLK_STATE", state, 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void print_usage(void)
{
	fprintf(stderr,
		"usage: ublk_uevent [-n ID] [-c COUNT] [-t TIMEOUT_MS] [-s STATE -x COMMAND]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sockaddr_nl addr = {
		.nl_family	= AF_NETLINK,
		.nl_groups	= 1,	/* the kernel's uevent group */
	};
	const char *want_id = NULL, *on_state = NULL, *cmd = NULL;
	long count = -1, timeout_ms = -1;
	static char msg[UEVENT_BUF];
	double start, deadline;
	int fd, c;

	while ((c = getopt(argc, argv, "n:c:t:s:x:")) != -1) {
		switch (c) {
		case 'n':
			want_id = optarg;
			break;
		case 'c':
			count = strtol(optarg, NULL, 0);
			break;
		case 't':
			timeout_ms = strtol(optarg, NULL, 0);
			break;
		case 's':
			on_state = optarg;
			break;
		case 'x':
			cmd = optarg;
			break;
		default:
			print_usage();
		}
	}
	if (optind != argc || !on_state != !cmd)
		print_usage();

	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC,
		    NETLINK_KOBJECT_UEVENT);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		perror("ublk_uevent: netlink socket");
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	start = now_ms();
	deadline = timeout_ms < 0 ? -1 : start + timeout_ms;
	printf("ready\n");

	while (count) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		const char *id, *state;
		int wait = -1, ret;
		ssize_t len;

		if (deadline >= 0) {
			wait = deadline - now_ms();
			if (wait <= 0) {
				fprintf(stderr, "ublk_uevent: timed out\n");
				return 1;
			}
		}
		ret = poll(&pfd, 1, wait);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0) {
			perror("ublk_uevent: poll");
			return 1;
		}
		if (!ret)
			continue;
		len = recv(fd, msg, sizeof(msg) - 1, 0);
		if (len <= 0)
			continue;
		msg[len] = '\0';
		/* the kernel's own messages start with "ACTION@DEVPATH" */
		if (!strchr(msg, '@'))
			continue;
		id = uevent_var(msg, len, "UBLK_DEV_ID");
		state = uevent_var(msg, len, "UBLK_STATE");
		if (!id || !state || (want_id && strcmp(id, want_id)))
			continue;
		printf("%.1f %s %s\n", now_ms() - start, id, state);
		if (on_state && !strcmp(state, on_state)) {
			ret = run_command(cmd, id, state);
			if (ret)
				fprintf(stderr, "ublk_uevent: '%s' exited %d\n",
					cmd, ret);
		}
		if (count > 0)
			count--;
	}
	return 0;
}
