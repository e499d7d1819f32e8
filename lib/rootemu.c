/* rootemu.c: root emulation for the RUN steps of `husk build`.
 *
 * A build step runs as uid 0 in a user namespace where only the caller is
 * mapped. Package managers then do things root may do but an unprivileged
 * namespace may not: chown files to system users (_apt, man, messagebus),
 * drop to another user with setresuid/setgroups, create device nodes. Each
 * fails with EINVAL or EPERM and aborts the install. Like fakeroot, but
 * without LD_PRELOAD (so static binaries are covered too), a seccomp filter
 * answers these calls with success and does nothing: every file stays owned
 * by the caller (the image is made with all files owned by root anyway), the
 * process stays uid 0, and no device node is made (containers get /dev from
 * the host). Other calls are untouched.
 *
 * Callers that check the result of a dropped privilege (apt's sandbox user)
 * are told not to drop: husk build writes an apt configuration for that. */
#include "husk_config.h"
#include "husk.h"
#include "ns.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
#define HUSK_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define HUSK_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HUSK_AUDIT_ARCH AUDIT_ARCH_PPC64LE
#endif

#ifdef HUSK_AUDIT_ARCH

/* Calls that succeed without effect, whatever their arguments. */
static const int faked[] = {
#ifdef SYS_chown
	SYS_chown,
#endif
#ifdef SYS_lchown
	SYS_lchown,
#endif
	SYS_fchown, SYS_fchownat,
	SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid, SYS_setresgid,
	SYS_setgroups, SYS_setfsuid, SYS_setfsgid,
};

/* The low 32 bits of argument i (little-endian layout of seccomp_data). */
#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))

#define MAX_INSNS 64

struct prog {
	struct sock_filter insn[MAX_INSNS];
	unsigned short n;
};

static void emit(struct prog *p, struct sock_filter f)
{
	if (p->n < MAX_INSNS)
		p->insn[p->n++] = f;
}

/* mknod/mknodat: fake only character and block devices (mode in argument
 * mode_arg); FIFOs and regular files are made for real. */
static void emit_mknod(struct prog *p, int nr, int mode_arg)
{
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 6));
	emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(mode_arg)));
	emit(p, (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, S_IFMT));
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, S_IFCHR, 2, 0));
	emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, S_IFBLK, 1, 0));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0));
	/* reload the syscall number for what follows */
	emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		offsetof(struct seccomp_data, nr)));
}

int husk_root_emulation(struct husk_err *err)
{
	struct prog p = { .n = 0 };
	const unsigned n_faked = sizeof(faked) / sizeof(faked[0]);
	struct sock_fprog fprog;

	/* Another architecture's calls (i386 on x86_64) are left alone. */
	emit(&p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		offsetof(struct seccomp_data, arch)));
	emit(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, HUSK_AUDIT_ARCH, 1, 0));
	emit(&p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	emit(&p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		offsetof(struct seccomp_data, nr)));
#ifdef SYS_mknod
	emit_mknod(&p, SYS_mknod, 1);
#endif
	emit_mknod(&p, SYS_mknodat, 2);
	/* One comparison per faked call; a match jumps to the final "fake". */
	for (unsigned i = 0; i < n_faked; i++)
		emit(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)faked[i],
			(unsigned char)(n_faked - i), 0));
	emit(&p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
	emit(&p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0));
	if (p.n >= MAX_INSNS)
		return husk_err_set(err, 0, "root emulation: filter too long (a bug in husk)");
	fprog.len = p.n;
	fprog.filter = p.insn;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) < 0)
		return husk_err_set(err, errno, "root emulation: cannot install the seccomp filter");
	return 0;
}

#else

int husk_root_emulation(struct husk_err *err)
{
	husk_warn("root emulation is not available on this architecture; a build step that "
		"changes file owners or users may fail");
	(void)err;
	return 0;
}

#endif
