// SPDX-License-Identifier: GPL-2.0
/*
 * args_trigger: makes the guest kernel run a function with arguments a .tc case chose,
 * for the cases that check probe arguments the shell cannot pass (tcscripts/).
 *
 * usage: args_trigger mmap ADDR LEN PROT FLAGS FD OFFSET
 *          mmap(2) with exactly these six values (numbers in C notation, FD may be -1),
 *          then munmap of what it got; prints the result. ksys_mmap_pgoff() receives
 *          OFFSET / page size as its sixth argument.
 *
 * Built like kprobe_multi.c: the tree's nolibc, static, no libc.
 */

#ifndef NOLIBC
#include "nolibc.h"
#endif

static unsigned long number(const char *s)
{
	if (s[0] == '-')
		return -strtoul(s + 1, NULL, 0);
	return strtoul(s, NULL, 0);
}

int main(int argc, char **argv)
{
	if (argc == 8 && strcmp(argv[1], "mmap") == 0) {
		unsigned long len = number(argv[3]);
		void *got = mmap((void *)number(argv[2]), len, (int)number(argv[4]),
				 (int)number(argv[5]), (int)number(argv[6]), (off_t)number(argv[7]));

		printf("mmap=%lx errno=%d\n", (unsigned long)got, got == MAP_FAILED ? errno : 0);
		if (got != MAP_FAILED)
			munmap(got, len);
		return got == MAP_FAILED;
	}
	printf("usage: %s mmap ADDR LEN PROT FLAGS FD OFFSET\n", argv[0]);
	return 2;
}
