// SPDX-License-Identifier: GPL-2.0
/*
 * readelf: the part of binutils' readelf the tree's selftests read, for a guest without
 * binutils (busybox has no readelf applet). dynevent/add_remove_uprobe.tc takes the
 * entry point from `readelf -hW BIN` (the last field of its "Entry point address:"
 * line) and the LOAD segments from `readelf -lW BIN` (fields Type Offset VirtAddr
 * PhysAddr FileSiz MemSiz Flg Align, in binutils' order and notation). Both ELF classes
 * and both byte orders (s390x is big-endian). Any other option is refused with exit 2:
 * a case that wants more of readelf says so instead of reading a wrong answer.
 *
 * usage: readelf [-h] [-l] [-W] FILE   (options may be combined: -hW, -lW)
 *
 * Built like kprobe_multi.c: the tree's nolibc, static, no libc. nolibc's printf has no
 * field widths, so numbers are formatted here.
 */

#ifndef NOLIBC
#include "nolibc.h"
#endif

static int big_endian, elf64;

static unsigned long field(const unsigned char *p, int size)
{
	unsigned long v = 0;
	int i;

	for (i = 0; i < size; i++)
		v = (v << 8) | p[big_endian ? i : size - 1 - i];
	return v;
}

/* "0x" and at least `digits` hex digits, as binutils prints addresses and sizes. */
static void hex(unsigned long v, int digits)
{
	char buf[24];
	int n = 0, i;

	do {
		buf[n++] = "0123456789abcdef"[v & 0xf];
		v >>= 4;
	} while (v || n < digits);
	fputs("0x", stdout);
	for (i = n - 1; i >= 0; i--)
		putchar(buf[i]);
}

static void pad(const char *s, int width)
{
	int n = strlen(s);

	fputs(s, stdout);
	while (n++ < width)
		putchar(' ');
}

static int read_at(int fd, unsigned long off, unsigned char *buf, unsigned long len)
{
	unsigned long got = 0;

	if (lseek(fd, off, SEEK_SET) < 0)
		return -1;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n <= 0)
			return -1;
		got += n;
	}
	return 0;
}

static const char *segment_type(unsigned long type)
{
	switch (type) {
	case 0: return "NULL";
	case 1: return "LOAD";
	case 2: return "DYNAMIC";
	case 3: return "INTERP";
	case 4: return "NOTE";
	case 6: return "PHDR";
	case 7: return "TLS";
	case 0x6474e550: return "GNU_EH_FRAME";
	case 0x6474e551: return "GNU_STACK";
	case 0x6474e552: return "GNU_RELRO";
	case 0x6474e553: return "GNU_PROPERTY";
	}
	return NULL;
}

static const char *elf_type(unsigned long type)
{
	switch (type) {
	case 1: return "REL (Relocatable file)";
	case 2: return "EXEC (Executable file)";
	case 3: return "DYN (Position-Independent Executable file)";
	case 4: return "CORE (Core file)";
	}
	return "<unknown>";
}

static void header(const unsigned char *eh, unsigned long entry)
{
	printf("ELF Header:\n");
	printf("  Class:                             %s\n", elf64 ? "ELF64" : "ELF32");
	printf("  Data:                              2's complement, %s endian\n",
	       big_endian ? "big" : "little");
	printf("  Type:                              %s\n", elf_type(field(eh + 16, 2)));
	printf("  Machine:                           %lu\n", field(eh + 18, 2));
	fputs("  Entry point address:               ", stdout);
	hex(entry, 1);
	putchar('\n');
}

static int segments(int fd, const unsigned char *eh)
{
	unsigned long phoff = elf64 ? field(eh + 32, 8) : field(eh + 28, 4);
	unsigned long entsize = field(eh + (elf64 ? 54 : 42), 2);
	unsigned long count = field(eh + (elf64 ? 56 : 44), 2);
	int addr = elf64 ? 16 : 8, size = elf64 ? 6 : 5;
	unsigned char ph[56];
	unsigned long i;

	if (entsize < (elf64 ? 56u : 32u) || entsize > sizeof(ph))
		return -1;
	printf("\nProgram Headers:\n");
	printf("  Type           Offset   VirtAddr           PhysAddr           FileSiz  MemSiz   Flg Align\n");
	for (i = 0; i < count; i++) {
		unsigned long type, flags, off, vaddr, paddr, filesz, memsz, align;
		const char *name;
		int w = elf64 ? 8 : 4;

		if (read_at(fd, phoff + i * entsize, ph, entsize))
			return -1;
		type = field(ph, 4);
		if (elf64) {
			flags = field(ph + 4, 4);
			off = field(ph + 8, w);
			vaddr = field(ph + 16, w);
			paddr = field(ph + 24, w);
			filesz = field(ph + 32, w);
			memsz = field(ph + 40, w);
			align = field(ph + 48, w);
		} else {
			off = field(ph + 4, w);
			vaddr = field(ph + 8, w);
			paddr = field(ph + 12, w);
			filesz = field(ph + 16, w);
			memsz = field(ph + 20, w);
			flags = field(ph + 24, w);
			align = field(ph + 28, w);
		}
		fputs("  ", stdout);
		name = segment_type(type);
		if (name) {
			pad(name, 14);
		} else {
			hex(type, 8);
			fputs("     ", stdout);
		}
		putchar(' ');
		hex(off, 6);
		putchar(' ');
		hex(vaddr, addr);
		putchar(' ');
		hex(paddr, addr);
		putchar(' ');
		hex(filesz, size);
		putchar(' ');
		hex(memsz, size);
		printf(" %c%c%c ", flags & 4 ? 'R' : ' ', flags & 2 ? 'W' : ' ', flags & 1 ? 'E' : ' ');
		hex(align, 1);
		putchar('\n');
	}
	return 0;
}

int main(int argc, char **argv)
{
	int want_header = 0, want_segments = 0, i, fd;
	const char *file = NULL;
	unsigned char eh[64];

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] != '-') {
			if (file)
				goto usage;
			file = a;
			continue;
		}
		for (a++; *a; a++) {
			if (*a == 'h')
				want_header = 1;
			else if (*a == 'l')
				want_segments = 1;
			else if (*a != 'W')
				goto usage;
		}
	}
	if (!file || !(want_header || want_segments))
		goto usage;
	fd = open(file, O_RDONLY);
	if (fd < 0 || read_at(fd, 0, eh, sizeof(eh)) ||
	    eh[0] != 0x7f || eh[1] != 'E' || eh[2] != 'L' || eh[3] != 'F' ||
	    (eh[4] != 1 && eh[4] != 2) || (eh[5] != 1 && eh[5] != 2)) {
		printf("readelf: Error: %s: not an ELF file this readelf can read\n", file);
		return 1;
	}
	elf64 = eh[4] == 2;
	big_endian = eh[5] == 2;
	if (want_header)
		header(eh, elf64 ? field(eh + 24, 8) : field(eh + 24, 4));
	if (want_segments && segments(fd, eh)) {
		printf("readelf: Error: %s: cannot read its program headers\n", file);
		return 1;
	}
	return 0;
usage:
	printf("usage: readelf [-h] [-l] [-W] FILE (this readelf has only the ELF header and the program headers)\n");
	return 2;
}
