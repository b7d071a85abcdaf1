// SPDX-License-Identifier: GPL-2.0
/*
 * nice: run a command at another scheduling priority, for a guest whose busybox has no
 * nice applet (Debian's busybox-static leaves CONFIG_NICE out). 7.2's
 * trigger/inter-event/trigger-{onchange,snapshot}-action-hist.tc run `nice -n 1 ping ...`
 * so that sched_switch sees a task whose priority changed; without a nice they FAIL on
 * "nice: not found", which says nothing of the kernel.
 *
 * usage: nice [-n ADJUSTMENT | -ADJUSTMENT] COMMAND [ARG]...   (ADJUSTMENT defaults to 10)
 *
 * As coreutils': the new niceness is the current one plus ADJUSTMENT, clamped to
 * -20..19; a failure to change it is told and the command runs anyway; exit 125 on a
 * usage error, 126 when COMMAND was found but could not run, 127 when it was not found.
 * Built like kprobe_multi.c: the tree's nolibc, static, no libc.
 */

#ifndef NOLIBC
#include "nolibc.h"
#endif

/* nolibc's raw syscall macros were my_syscallN up to 6.x and are __nolibc_syscallN in
 * 7.x (as in kprobe_multi.c). */
#if !defined(my_syscall2) && defined(__nolibc_syscall2)
#define my_syscall2(num, a1, a2) __nolibc_syscall2(num, a1, a2)
#define my_syscall3(num, a1, a2, a3) __nolibc_syscall3(num, a1, a2, a3)
#endif

#define PRIO_PROCESS 0

static int parse_int(const char *s, int *out)
{
	int sign = 1, v = 0;

	if (*s == '-' || *s == '+')
		sign = *s++ == '-' ? -1 : 1;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 1000)
			return -1;
		v = v * 10 + (*s - '0');
	}
	*out = sign * v;
	return 0;
}

static void say(const char *a, const char *b, const char *c)
{
	write(2, a, strlen(a));
	write(2, b, strlen(b));
	write(2, c, strlen(c));
}

int main(int argc, char **argv)
{
	int adjustment = 10, i = 1, niceness, errno_seen = ENOENT;
	const char *path, *p;
	char buf[512];
	long got;

	if (i < argc && strcmp(argv[i], "-n") == 0) {
		if (i + 1 >= argc || parse_int(argv[i + 1], &adjustment))
			goto usage;
		i += 2;
	} else if (i < argc && argv[i][0] == '-' && argv[i][1] >= '0' && argv[i][1] <= '9') {
		if (parse_int(argv[i] + 1, &adjustment))
			goto usage;
		i++;
	}
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	if (i >= argc)
		goto usage;

	/* The raw getpriority returns 20 - niceness, so that it is never negative. */
	got = my_syscall2(__NR_getpriority, PRIO_PROCESS, 0);
	niceness = (got < 0 ? 0 : 20 - (int)got) + adjustment;
	if (niceness < -20)
		niceness = -20;
	if (niceness > 19)
		niceness = 19;
	if (my_syscall3(__NR_setpriority, PRIO_PROCESS, 0, niceness) < 0)
		say("nice: cannot set niceness", "", "\n");

	if (strchr(argv[i], '/')) {
		execve(argv[i], argv + i, environ);
		say("nice: cannot run ", argv[i], "\n");
		return errno == ENOENT ? 127 : 126;
	}
	path = getenv("PATH");
	if (!path)
		path = "/bin:/usr/bin";
	while (*path) {
		size_t len;

		p = strchr(path, ':');
		len = p ? (size_t)(p - path) : strlen(path);
		if (len + 1 + strlen(argv[i]) + 1 <= sizeof(buf)) {
			memcpy(buf, len ? path : ".", len ? len : 1);
			len = len ? len : 1;
			buf[len] = '/';
			strcpy(buf + len + 1, argv[i]);
			execve(buf, argv + i, environ);
			if (errno != ENOENT)
				errno_seen = errno;
		}
		if (!p)
			break;
		path = p + 1;
	}
	say("nice: ", argv[i], errno_seen == ENOENT ? ": not found\n" : ": cannot run\n");
	return errno_seen == ENOENT ? 127 : 126;
usage:
	say("usage: nice [-n ADJUSTMENT] COMMAND [ARG]...", "", "\n");
	return 125;
}
