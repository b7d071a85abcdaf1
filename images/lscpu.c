// SPDX-License-Identifier: GPL-2.0
/*
 * lscpu: the lines of util-linux's lscpu that the tree's cases read, for a guest without
 * util-linux. 7.2's 00basic/trace_marker_raw.tc writes its record ids in the CPU's byte
 * order and learns that order from `lscpu | grep -q 'Little Endian'`; without an lscpu
 * it takes every CPU for big-endian and reads its ids back wrong.
 *
 * Prints, in util-linux's words: the architecture (uname's machine), the byte order (the
 * one this program was compiled for, which is the guest's: it is built per arch) and
 * the on-line CPUs (sysfs). Options are not taken: exit 1 with a usage line.
 * Built like kprobe_multi.c: the tree's nolibc, static, no libc.
 */

#ifndef NOLIBC
#include "nolibc.h"
#endif

/* The file's first line, without its newline, into buf; its length, or -1. */
static int read_line(const char *path, char *buf, int size)
{
	int fd = open(path, O_RDONLY);
	int n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	for (int i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			buf[i] = 0;
			return i;
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	struct utsname u;
	char online[256];

	if (argc > 1) {
		fprintf(stderr, "usage: %s (no options: this lscpu prints the architecture, byte order "
			"and on-line CPUs)\n", argv[0]);
		return 1;
	}
	if (uname(&u) == 0)
		printf("Architecture:         %s\n", u.machine);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	printf("Byte Order:           Little Endian\n");
#else
	printf("Byte Order:           Big Endian\n");
#endif
	if (read_line("/sys/devices/system/cpu/online", online, sizeof(online)) > 0)
		printf("On-line CPU(s) list:  %s\n", online);
	return 0;
}
