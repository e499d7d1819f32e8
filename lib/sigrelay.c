/* sigrelay.c: a signal sent to `husk run` reaches the command exactly once.
 *
 * The top husk process relays the signals it receives to the supervisor,
 * which passes them on to the command. But some senders signal every process
 * of the tree themselves: the terminal (the foreground process group,
 * si_code SI_KERNEL), and Slurm's slurmstepd, which signals every process of
 * a job step for scancel, srun's own forwarding, `srun --signal` and the
 * time limit (proctrack/linuxproc walks the process tree, proctrack/pgid
 * signals the process group, proctrack/cgroup every pid of the step's
 * cgroup). Relaying those too would deliver them twice; a trap that counts,
 * or an application that checkpoints on SIGUSR1, would see two.
 *
 * The terminal's signals are never relayed. The supervisor marks a relayed
 * signal whose sender is a slurmstepd above us, and passes it on only if it
 * does not itself receive the same signal directly from the same slurmstepd:
 * then the sender signalled the whole tree, the command included. Which of
 * the two arrives first depends on the order in which slurmstepd walks the
 * tree, so the supervisor waits a moment (RELAY_WAIT_MS) for the direct one
 * before passing the relayed one on; that delay is only ever seen when
 * slurmstepd signals husk alone (`scancel --batch` with husk as the batch
 * script's own process). The relay goes through a pipe, not a signal: two
 * pending instances of one standard signal merge, and the sender would be
 * lost. */
#include "husk_config.h"
#include "husk.h"
#include "ns.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RELAY_WAIT_MS 300.0     /* how long a marked relay waits for the direct copy */
#define DIRECT_KEEP_MS 2000.0   /* how long a direct copy pairs with a later relay */

/* "comm" and parent of pid, from /proc/PID/stat: "pid (comm) S ppid ...". */
static int proc_stat(pid_t pid, char *comm, size_t len, pid_t *ppid)
{
	char path[64], buf[512], *l, *r;
	ssize_t n;
	int ppid_i;
	autoclose int fd = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return -1;
	buf[n] = '\0';
	if (!(l = strchr(buf, '(')) || !(r = strrchr(buf, ')')) || sscanf(r + 1, " %*c %d", &ppid_i) != 1)
		return -1;
	snprintf(comm, len, "%.*s", (int)(r - l - 1), l + 1);
	*ppid = (pid_t)ppid_i;
	return 0;
}

/* Is pid a slurmstepd among our ancestors? (The supervisor asks: its parent
 * is the top process, then come the top process's own ancestors.) */
static bool slurmstepd_ancestor(pid_t pid)
{
	char comm[64];
	pid_t p = getppid(), up;

	for (int depth = 0; p > 1 && depth < 64; depth++) {
		if (proc_stat(p, comm, sizeof(comm), &up) < 0)
			return false;
		if (p == pid)
			return strcmp(comm, "slurmstepd") == 0;
		p = up;
	}
	return false;
}

bool husk_signal_from_terminal(const siginfo_t *si)
{
	return si->si_code == SI_KERNEL;
}

int husk_relay_send(int fd, const siginfo_t *si)
{
	struct husk_relay_msg w = { .sig = si->si_signo, .code = si->si_code, .pid = si->si_pid };

	/* Nothing but the write: the top process may share its memory with the
	 * supervisor (run.c), which looks into the sender itself. */
	return write(fd, &w, sizeof(w)) == (ssize_t)sizeof(w) ? 0 : -1;
}

void husk_relay_decode(const struct husk_relay_msg *w, struct husk_relay *m)
{
	m->sig = w->sig;
	/* kill(2) from a slurmstepd above us (SI_USER: the kernel vouches for
	 * si_pid; sigqueue's SI_QUEUE would not). */
	m->origin = w->code == SI_USER && w->pid > 1 && slurmstepd_ancestor(w->pid) ? w->pid : 0;
}

void husk_relay_init(struct husk_relay_state *st)
{
	memset(st, 0, sizeof(*st));
}

static bool valid(int sig)
{
	return sig > 0 && sig < HUSK_NSIG;
}

void husk_relay_direct(struct husk_relay_state *st, int sig, pid_t from, double now)
{
	if (!valid(sig) || from <= 1)
		return;
	if (st->pend[sig] == from) {
		/* the relayed copy came first: the command has this one already */
		st->pend[sig] = 0;
		return;
	}
	st->direct[sig] = from;
	st->direct_t[sig] = now;
}

int husk_relay_received(struct husk_relay_state *st, const struct husk_relay *m, double now)
{
	int sig = m->sig;

	if (!valid(sig))
		return 0;
	if (!m->origin)
		return sig;    /* an ordinary sender: pass it on now */
	if (st->direct[sig] == m->origin && now - st->direct_t[sig] <= DIRECT_KEEP_MS) {
		st->direct[sig] = 0;
		return 0;      /* the direct copy came first */
	}
	if (st->pend[sig] && st->pend[sig] != m->origin)
		return sig;    /* another sender is pending: do not lose either */
	st->pend[sig] = m->origin;
	st->pend_t[sig] = now + RELAY_WAIT_MS;
	return 0;
}

int husk_relay_due(struct husk_relay_state *st, double now, int *timeout_ms)
{
	int due = 0;

	for (int sig = 1; sig < HUSK_NSIG; sig++) {
		if (!st->pend[sig])
			continue;
		if (st->pend_t[sig] <= now) {
			if (!due) {
				due = sig;
				st->pend[sig] = 0;
				continue;
			}
			*timeout_ms = 0;
		} else {
			int left = (int)(st->pend_t[sig] - now) + 1;
			if (*timeout_ms < 0 || left < *timeout_ms)
				*timeout_ms = left;
		}
	}
	return due;
}
