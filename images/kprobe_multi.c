// SPDX-License-Identifier: GPL-2.0
/*
 * kprobe_multi: BPF kprobe_multi checks for the guest, with raw bpf(2) and no libbpf.
 *
 * Built per arch against the tree under test's tools/include/nolibc and its UAPI
 * headers (for syscall numbers only: the few bpf(2) structures used here are spelled
 * out below, so the program builds on a host whose linux/bpf.h predates session probes).
 *
 * usage: kprobe_multi --list
 *        kprobe_multi [--prefix SYSCALL_SYMBOL_PREFIX] CASE
 *        kprobe_multi --dump big|little     (the BPF program's bytes, for host tests)
 *
 * Each CASE prints one KTAP result. A kernel without fprobe answers EOPNOTSUPP on
 * link create: that is a SKIP with its reason, never a pass or a fail.
 */

#ifndef NOLIBC
#include "nolibc.h"
#endif

/* nolibc's raw syscall macros were my_syscallN up to 6.x and are __nolibc_syscallN in
 * newer trees (7.2): the program builds against either tree's nolibc. */
#if !defined(my_syscall0) && defined(__nolibc_syscall0)
#define my_syscall0(num) __nolibc_syscall0(num)
#define my_syscall3(num, a1, a2, a3) __nolibc_syscall3(num, a1, a2, a3)
#endif

/* ---- bpf(2) ABI, as in include/uapi/linux/bpf.h ------------------------------ */
#define CMD_MAP_CREATE		0
#define CMD_MAP_LOOKUP_ELEM	1
#define CMD_PROG_LOAD		5
#define CMD_LINK_CREATE		28
#define MAP_TYPE_ARRAY		2
#define PROG_TYPE_KPROBE	2
#define ATTACH_KPROBE_MULTI	42
#define ATTACH_KPROBE_SESSION	56
#define F_KPROBE_MULTI_RETURN	1u

#define HELPER_MAP_LOOKUP_ELEM		1
#define HELPER_GET_CURRENT_PID_TGID	14
#define HELPER_GET_FUNC_IP		173
#define HELPER_GET_ATTACH_COOKIE	174

typedef unsigned long long u64 __attribute__((aligned(8)));
typedef unsigned int u32;

struct map_create_attr {
	u32 map_type, key_size, value_size, max_entries, map_flags;
};

struct map_elem_attr {
	u32 map_fd, pad;
	u64 key, value, flags;
};

struct prog_load_attr {
	u32 prog_type, insn_cnt;
	u64 insns, license;
	u32 log_level, log_size;
	u64 log_buf;
	u32 kern_version, prog_flags;
	char prog_name[16];
	u32 prog_ifindex, expected_attach_type;
};

struct link_create_attr {
	u32 prog_fd, target_fd, attach_type, flags;
	struct {
		u32 flags, cnt;
		u64 syms, addrs, cookies;
	} kprobe_multi;
};

static long bpf(int cmd, void *attr, unsigned long size)
{
	/* A negative errno, or the fd / 0. */
	return my_syscall3(__NR_bpf, cmd, attr, size);
}

/* ---- BPF instruction encoding ------------------------------------------------
 * struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; } in the
 * target's byte order. The bitfields put dst_reg in the low nibble on little-endian
 * and in the high nibble on big-endian (s390x), so the bytes are laid out by hand:
 * one encoder serves both orders, and the host tests check each.
 */
#define MAX_INSNS 64

enum { R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 };

struct prog {
	unsigned char bytes[8 * MAX_INSNS];
	int n;
	int big_endian;
};

static void put_le_be(unsigned char *p, unsigned long v, int size, int big_endian)
{
	for (int i = 0; i < size; i++)
		p[big_endian ? size - 1 - i : i] = (unsigned char)(v >> (8 * i));
}

static int emit(struct prog *p, int code, int dst, int src, int off, int imm)
{
	unsigned char *b = p->bytes + 8 * p->n;

	b[0] = (unsigned char)code;
	b[1] = (unsigned char)(p->big_endian ? (dst << 4) | src : (src << 4) | dst);
	put_le_be(b + 2, (unsigned short)off, 2, p->big_endian);
	put_le_be(b + 4, (unsigned int)imm, 4, p->big_endian);
	return p->n++;
}

/* Jump offsets are in instructions, from the one after the jump. */
static void patch_off(struct prog *p, int at, int target)
{
	put_le_be(p->bytes + 8 * at + 2, (unsigned short)(target - at - 1), 2, p->big_endian);
}

#define MOV64_REG	0xbf	/* BPF_ALU64 | BPF_MOV | BPF_X */
#define MOV64_IMM	0xb7	/* BPF_ALU64 | BPF_MOV | BPF_K */
#define ADD64_IMM	0x07	/* BPF_ALU64 | BPF_ADD | BPF_K */
#define RSH64_IMM	0x77	/* BPF_ALU64 | BPF_RSH | BPF_K */
#define JEQ_IMM		0x15	/* BPF_JMP | BPF_JEQ | BPF_K */
#define JGT_IMM		0x25	/* BPF_JMP | BPF_JGT | BPF_K */
#define JNE_IMM		0x55	/* BPF_JMP | BPF_JNE | BPF_K */
#define CALL		0x85	/* BPF_JMP | BPF_CALL */
#define EXIT		0x95	/* BPF_JMP | BPF_EXIT */
#define STX_W		0x63	/* BPF_STX | BPF_MEM | BPF_W */
#define STX_DW		0x7b	/* BPF_STX | BPF_MEM | BPF_DW */
#define ATOMIC_DW	0xdb	/* BPF_STX | BPF_ATOMIC | BPF_DW, imm BPF_ADD */
#define LD_IMM64	0x18	/* BPF_LD | BPF_DW | BPF_IMM */
#define PSEUDO_MAP_FD	1

/* The map: slot c (c < 8) counts hits that carried cookie c, slot 8 + c holds the
 * last bpf_get_func_ip() seen with cookie c. */
#define SLOTS 16

/*
 * The program, for every case: count a hit when the current task is ours.
 *   r6 = ctx; if (get_current_pid_tgid() >> 32 != pid) return 0;
 *   c = get_attach_cookie(ctx); if (c > 7) return 0; ip = get_func_ip(ctx);
 *   atomic map[c] += 1; map[8 + c] = ip; return 0;
 */
static void build_program(struct prog *p, int map_fd, int pid)
{
	int j_pid, j_cookie, j_null1, j_null2, out;

	p->n = 0;
	emit(p, MOV64_REG, R6, R1, 0, 0);
	emit(p, CALL, 0, 0, 0, HELPER_GET_CURRENT_PID_TGID);
	emit(p, RSH64_IMM, R0, 0, 0, 32);
	j_pid = emit(p, JNE_IMM, R0, 0, 0, pid);
	emit(p, MOV64_REG, R1, R6, 0, 0);
	emit(p, CALL, 0, 0, 0, HELPER_GET_ATTACH_COOKIE);
	emit(p, MOV64_REG, R7, R0, 0, 0);
	j_cookie = emit(p, JGT_IMM, R7, 0, 0, 7);
	emit(p, MOV64_REG, R1, R6, 0, 0);
	emit(p, CALL, 0, 0, 0, HELPER_GET_FUNC_IP);
	emit(p, MOV64_REG, R8, R0, 0, 0);
	/* map[c] += 1 */
	emit(p, STX_W, R10, R7, -4, 0);
	emit(p, MOV64_REG, R2, R10, 0, 0);
	emit(p, ADD64_IMM, R2, 0, 0, -4);
	emit(p, LD_IMM64, R1, PSEUDO_MAP_FD, 0, map_fd);
	emit(p, 0, 0, 0, 0, 0);
	emit(p, CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM);
	j_null1 = emit(p, JEQ_IMM, R0, 0, 0, 0);
	emit(p, MOV64_IMM, R1, 0, 0, 1);
	emit(p, ATOMIC_DW, R0, R1, 0, 0);
	/* map[8 + c] = ip */
	emit(p, ADD64_IMM, R7, 0, 0, 8);
	emit(p, STX_W, R10, R7, -4, 0);
	emit(p, MOV64_REG, R2, R10, 0, 0);
	emit(p, ADD64_IMM, R2, 0, 0, -4);
	emit(p, LD_IMM64, R1, PSEUDO_MAP_FD, 0, map_fd);
	emit(p, 0, 0, 0, 0, 0);
	emit(p, CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM);
	j_null2 = emit(p, JEQ_IMM, R0, 0, 0, 0);
	emit(p, STX_DW, R0, R8, 0, 0);
	out = emit(p, MOV64_IMM, R0, 0, 0, 0);
	emit(p, EXIT, 0, 0, 0, 0);
	patch_off(p, j_pid, out);
	patch_off(p, j_cookie, out);
	patch_off(p, j_null1, out);
	patch_off(p, j_null2, out);
}

/* ---- small helpers --------------------------------------------------------------- */
/* nolibc (6.12) has no snprintf: dst = a + b, cut to size. */
static void concat(char *dst, size_t size, const char *a, const char *b)
{
	size_t n = 0;

	for (const char *s = a; *s && n < size - 1; s++)
		dst[n++] = *s;
	for (const char *s = b; *s && n < size - 1; s++)
		dst[n++] = *s;
	dst[n] = 0;
}

static char verifier_log[16384];

static const char *errname(long err)
{
	switch (err) {
	case 0: return "success";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case EFAULT: return "EFAULT";
	case EINVAL: return "EINVAL";
	case ENOSYS: return "ENOSYS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EBUSY: return "EBUSY";
	default: return "errno";
	}
}

static int create_map(void)
{
	struct map_create_attr a = { MAP_TYPE_ARRAY, 4, 8, SLOTS, 0 };

	return (int)bpf(CMD_MAP_CREATE, &a, sizeof(a));
}

static unsigned long long map_get(int map_fd, u32 slot)
{
	unsigned long long value = 0;
	struct map_elem_attr a;

	memset(&a, 0, sizeof(a));
	a.map_fd = map_fd;
	a.key = (unsigned long)&slot;
	a.value = (unsigned long)&value;
	if (bpf(CMD_MAP_LOOKUP_ELEM, &a, sizeof(a)) < 0)
		return ~0ULL;
	return value;
}

static int load_program(int map_fd, int attach_type)
{
	static struct prog p;
	struct prog_load_attr a;
	long fd;

	p.big_endian = __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__;
	build_program(&p, map_fd, getpid());
	memset(&a, 0, sizeof(a));
	a.prog_type = PROG_TYPE_KPROBE;
	a.insn_cnt = (u32)p.n;
	a.insns = (unsigned long)p.bytes;
	a.license = (unsigned long)"GPL";
	a.log_level = 1;
	a.log_size = sizeof(verifier_log);
	a.log_buf = (unsigned long)verifier_log;
	a.expected_attach_type = (u32)attach_type;
	memcpy(a.prog_name, "kto_kmulti", 11);
	fd = bpf(CMD_PROG_LOAD, &a, sizeof(a));
	return (int)fd;
}

static long link_create(int prog_fd, int attach_type, u32 flags, u32 cnt, const char **syms,
			const unsigned long *addrs, const unsigned long long *cookies)
{
	struct link_create_attr a;

	memset(&a, 0, sizeof(a));
	a.prog_fd = (u32)prog_fd;
	a.attach_type = (u32)attach_type;
	a.kprobe_multi.flags = flags;
	a.kprobe_multi.cnt = cnt;
	a.kprobe_multi.syms = (unsigned long)syms;
	a.kprobe_multi.addrs = (unsigned long)addrs;
	a.kprobe_multi.cookies = (unsigned long)cookies;
	return bpf(CMD_LINK_CREATE, &a, sizeof(a));
}

/* The address of a symbol from /proc/kallsyms (0 when absent or hidden). */
static unsigned long kallsyms_lookup(const char *name)
{
	static char buf[65536];
	char line[512];
	int fd = open("/proc/kallsyms", O_RDONLY);
	unsigned long found = 0;
	size_t len = 0, nlen = strlen(name);
	ssize_t got;

	if (fd < 0)
		return 0;
	while (!found && (got = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < got && !found; i++) {
			if (buf[i] != '\n') {
				if (len < sizeof(line) - 1)
					line[len++] = buf[i];
				continue;
			}
			line[len] = 0;
			len = 0;
			/* "ffffffff81234560 T name" or "... t name\t[module]" */
			char *sym = strchr(line, ' ');
			if (!sym || !(sym = strchr(sym + 1, ' ')))
				continue;
			sym++;
			if (strncmp(sym, name, nlen) == 0 && (sym[nlen] == 0 || sym[nlen] == '\t'))
				found = strtoul(line, NULL, 16);
		}
	}
	close(fd);
	return found;
}

/* ---- the cases ------------------------------------------------------------------- */
#define N_CALLS 17

static const char *prefix = "";
static char sym_getpid[96], sym_getppid[96], sym_gettid[96];

static void trigger(long nr, int times)
{
	for (int i = 0; i < times; i++)
		my_syscall0(nr);
}

struct attached {
	int map_fd, prog_fd, link_fd;
	long err;          /* the failing step's errno, 0 when attached */
	const char *step;  /* "map create", "program load", "link create" */
};

static struct attached attach(int attach_type, u32 flags, u32 cnt, const char **syms,
			      const unsigned long *addrs, const unsigned long long *cookies)
{
	struct attached at = { -1, -1, -1, 0, "" };
	long r;

	r = create_map();
	if (r < 0) {
		at.err = -r;
		at.step = "map create";
		return at;
	}
	at.map_fd = (int)r;
	r = load_program(at.map_fd, attach_type);
	if (r < 0) {
		at.err = -r;
		at.step = "program load";
		return at;
	}
	at.prog_fd = (int)r;
	r = link_create(at.prog_fd, attach_type, flags, cnt, syms, addrs, cookies);
	if (r < 0) {
		at.err = -r;
		at.step = "link create";
		return at;
	}
	at.link_fd = (int)r;
	return at;
}

static void detach(struct attached *at)
{
	if (at->link_fd >= 0)
		close(at->link_fd);
	if (at->prog_fd >= 0)
		close(at->prog_fd);
	if (at->map_fd >= 0)
		close(at->map_fd);
}

static const char *current_case;

static int result(int ok, const char *directive)
{
	printf("%s 1 kprobe_multi/%s%s%s\n", ok ? "ok" : "not ok", current_case,
	       directive ? " # " : "", directive ? directive : "");
	return ok ? 0 : 1;
}

/* A failed attach: SKIP where the kernel lacks the feature, FAIL otherwise. */
static int attach_failed(struct attached *at, const char *lacking)
{
	int rc;

	if (at->step[0] == 'p')
		printf("# verifier log:\n%s\n", verifier_log);
	printf("# %s failed: %s (%ld)\n", at->step, errname(at->err), at->err);
	if (at->err == EOPNOTSUPP && at->step[0] == 'l')
		rc = result(1, "SKIP kernel has no fprobe for kprobe_multi");
	else if (at->err == ENOSYS)
		rc = result(1, "SKIP kernel has no bpf(2) syscall");
	else if (lacking && at->err == EINVAL)
		rc = result(1, lacking);
	else
		rc = result(0, NULL);
	detach(at);
	return rc;
}

static int expect_count(int map_fd, u32 slot, unsigned long long want, const char *what)
{
	unsigned long long got = map_get(map_fd, slot);

	printf("# %s%s: %llu hits, expected %llu\n", got == want ? "" : "wrong: ", what, got, want);
	return got == want;
}

/* Attach one probe on getpid's entry function, make N_CALLS getpid calls, expect
 * `per_call` hits each; `lacking` is the SKIP text when the kernel refuses the type. */
static int count_getpid_hits(int attach_type, u32 flags, const char **syms,
			     const unsigned long *addrs, unsigned long long per_call,
			     const char *what, const char *lacking)
{
	struct attached at = attach(attach_type, flags, 1, syms, addrs, NULL);
	int ok;

	if (at.err)
		return attach_failed(&at, lacking);
	trigger(__NR_getpid, N_CALLS);
	ok = expect_count(at.map_fd, 0, per_call * N_CALLS, what);
	detach(&at);
	return result(ok, NULL);
}

static int case_attach_by_symbol(void)
{
	const char *syms[] = { sym_getpid };

	return count_getpid_hits(ATTACH_KPROBE_MULTI, 0, syms, NULL, 1, sym_getpid, NULL);
}

static int case_attach_by_address(void)
{
	unsigned long addrs[1] = { kallsyms_lookup(sym_getpid) };

	if (!addrs[0]) {
		printf("# %s has no address in /proc/kallsyms\n", sym_getpid);
		return result(0, NULL);
	}
	printf("# %s at %lx\n", sym_getpid, addrs[0]);
	return count_getpid_hits(ATTACH_KPROBE_MULTI, 0, NULL, addrs, 1, sym_getpid, NULL);
}

static int case_return_probe(void)
{
	const char *syms[] = { sym_getpid };

	return count_getpid_hits(ATTACH_KPROBE_MULTI, F_KPROBE_MULTI_RETURN, syms, NULL, 1,
				 "return probe on getpid", NULL);
}

static int case_cookies(void)
{
	/* Distinct cookies and distinct call counts: a hit filed under the wrong
	 * cookie shows up as a wrong count in two slots. */
	const char *syms[] = { sym_getpid, sym_getppid, sym_gettid };
	const unsigned long long cookies[] = { 1, 2, 3 };
	const long nrs[] = { __NR_getpid, __NR_getppid, __NR_gettid };
	const int times[] = { 3, 5, 7 };
	struct attached at = attach(ATTACH_KPROBE_MULTI, 0, 3, syms, NULL, cookies);
	int ok = 1;

	if (at.err)
		return attach_failed(&at, NULL);
	for (int i = 0; i < 3; i++)
		trigger(nrs[i], times[i]);
	ok &= expect_count(at.map_fd, 0, 0, "no cookie");
	for (int i = 0; i < 3; i++) {
		char what[128], label[] = "cookie N on ";

		label[7] = (char)('0' + cookies[i]);
		concat(what, sizeof(what), label, syms[i]);
		ok &= expect_count(at.map_fd, (u32)cookies[i], (unsigned long long)times[i], what);
	}
	detach(&at);
	return result(ok, NULL);
}

static int case_func_ip(void)
{
	const char *syms[] = { sym_getpid };
	unsigned long want = kallsyms_lookup(sym_getpid);
	struct attached at;
	unsigned long long got;
	int ok;

	if (!want) {
		printf("# %s has no address in /proc/kallsyms\n", sym_getpid);
		return result(0, NULL);
	}
	at = attach(ATTACH_KPROBE_MULTI, 0, 1, syms, NULL, NULL);
	if (at.err)
		return attach_failed(&at, NULL);
	trigger(__NR_getpid, 1);
	got = map_get(at.map_fd, 8);
	ok = got == want;
	printf("# %sbpf_get_func_ip() = %llx, /proc/kallsyms %s = %lx\n", ok ? "" : "wrong: ",
	       got, sym_getpid, want);
	detach(&at);
	return result(ok, NULL);
}

static int case_session(void)
{
	/* The program returns 0 at entry, so the return half runs too: 2 hits a call. */
	const char *syms[] = { sym_getpid };

	return count_getpid_hits(ATTACH_KPROBE_SESSION, 0, syms, NULL, 2,
				 "session probe on getpid (entry + return)",
				 "SKIP kernel has no kprobe session probes (BPF_TRACE_KPROBE_SESSION, Linux 6.10)");
}

static int expect_error(u32 flags, u32 cnt, const char **syms, long want)
{
	struct attached at = attach(ATTACH_KPROBE_MULTI, flags, cnt, syms, NULL, NULL);
	int ok;

	if (at.err && at.step[0] != 'l')
		return attach_failed(&at, NULL);
	if (at.err == EOPNOTSUPP && want != EOPNOTSUPP)
		return attach_failed(&at, NULL);
	ok = at.err == want;
	printf("# %slink create: %s (%ld), expected %s (%ld)\n", ok ? "" : "wrong: ",
	       errname(at.err), at.err, errname(want), want);
	detach(&at);
	return result(ok, NULL);
}

static int case_error_unknown_symbol(void)
{
	const char *syms[] = { "kto_no_such_function" };

	return expect_error(0, 1, syms, ESRCH);
}

static int case_error_zero_cnt(void)
{
	const char *syms[] = { sym_getpid };

	return expect_error(0, 0, syms, EINVAL);
}

static int case_error_bad_flags(void)
{
	const char *syms[] = { sym_getpid };

	return expect_error(~F_KPROBE_MULTI_RETURN, 1, syms, EINVAL);
}

/* The host lists the cases by reading these CASE() lines: keep one per line. */
#define CASE(name) { #name, case_##name }
static const struct {
	const char *name;
	int (*run)(void);
} cases[] = {
	CASE(attach_by_symbol),
	CASE(attach_by_address),
	CASE(return_probe),
	CASE(cookies),
	CASE(func_ip),
	CASE(session),
	CASE(error_unknown_symbol),
	CASE(error_zero_cnt),
	CASE(error_bad_flags),
};

static int dump(const char *order)
{
	static struct prog p;

	p.big_endian = strcmp(order, "big") == 0;
	/* Fixed stand-ins for the map fd and pid, so the bytes are reproducible. */
	build_program(&p, 0x1234, 0x4321);
	/* nolibc's printf has no field widths. */
	for (int i = 0; i < 8 * p.n; i++)
		printf("%c%c%s", "0123456789abcdef"[p.bytes[i] >> 4], "0123456789abcdef"[p.bytes[i] & 15],
		       i % 8 == 7 ? "\n" : "");
	return 0;
}

int main(int argc, char **argv)
{
	int i = 1;

	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (unsigned long c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
			printf("%s\n", cases[c].name);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "--dump") == 0)
		return dump(argv[2]);
	if (argc > 2 && strcmp(argv[1], "--prefix") == 0) {
		prefix = argv[2];
		i = 3;
	}
	if (i != argc - 1) {
		printf("usage: %s --list | --dump big|little | [--prefix P] CASE\n", argv[0]);
		return 2;
	}
	concat(sym_getpid, sizeof(sym_getpid), prefix, "getpid");
	concat(sym_getppid, sizeof(sym_getppid), prefix, "getppid");
	concat(sym_gettid, sizeof(sym_gettid), prefix, "gettid");
	for (unsigned long c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		if (strcmp(argv[i], cases[c].name) == 0) {
			current_case = cases[c].name;
			printf("TAP version 13\n1..1\n");
			return cases[c].run();
		}
	}
	printf("unknown case %s; --list shows them\n", argv[i]);
	return 2;
}
