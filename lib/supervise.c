/* supervise.c: finding and ending every process of a container.
 *
 * The supervisor is a child subreaper (PR_SET_CHILD_SUBREAPER, Linux 3.4):
 * when a process of the container dies, its children are re-parented to the
 * supervisor rather than to init, so every descendant stays findable through
 * /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN, Linux 4.2) and, failing
 * that, through the parent field of every /proc/PID/stat. */
#include "husk_config.h"
#include "husk.h"
#include "ns.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
	SIGCONT, SIGWINCH, SIGALRM, SIGPWR, SIGXCPU };

int husk_signals_forwarded(int *sigs, int max)
{
	int n = (int)(sizeof(forwarded) / sizeof(forwarded[0]));

	for (int i = 0; i < n && i < max; i++)
		sigs[i] = forwarded[i];
	return n;
}

/* Children of pid through the "children" files of its threads. */
static int children_of(int proc_fd, pid_t pid, pid_t *out, int max)
{
	char path[64];
	autoclose int tfd = -1;
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "%d/task", (int)pid);
	if ((tfd = openat(proc_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if (!(d = fdopendir(tfd)))
		return -1;
	tfd = -1;
	while ((de = readdir(d))) {
		autofree char *buf = NULL;
		char cpath[300];
		char *p;

		if (de->d_name[0] == '.')
			continue;
		snprintf(cpath, sizeof(cpath), "%d/task/%s/children", (int)pid, de->d_name);
		if (husk_read_fileat(proc_fd, cpath, &buf, NULL, 1 << 20) < 0) {
			if (errno == ENOENT && n == 0) {
				closedir(d);
				return -1;  /* no CONFIG_PROC_CHILDREN */
			}
			continue;
		}
		for (p = buf; *p;) {
			char *end;
			long c = strtol(p, &end, 10);
			if (end == p)
				break;
			if (n < max)
				out[n++] = (pid_t)c;
			p = end;
		}
	}
	closedir(d);
	return n;
}

/* Fallback: scan every /proc/PID/stat for a parent of pid. */
static int children_scan(int proc_fd, pid_t pid, pid_t *out, int max)
{
	autoclose int dfd = openat(proc_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	int n = 0;

	if (dfd < 0 || !(d = fdopendir(dfd)))
		return -1;
	dfd = -1;
	while ((de = readdir(d))) {
		autofree char *buf = NULL;
		char spath[300];
		char *rp;
		int ppid;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(spath, sizeof(spath), "%s/stat", de->d_name);
		if (husk_read_fileat(proc_fd, spath, &buf, NULL, 4096) < 0)
			continue;
		/* "pid (comm) S ppid": comm may hold spaces and ')', use the last ')'. */
		if (!(rp = strrchr(buf, ')')) || sscanf(rp + 1, " %*c %d", &ppid) != 1)
			continue;
		if (ppid == pid && n < max)
			out[n++] = (pid_t)atoi(de->d_name);
	}
	closedir(d);
	return n;
}

/* Send sig to every descendant of root (not root itself). Returns how many
 * processes were signalled. */
int husk_kill_descendants(int proc_fd, pid_t root, int sig)
{
	enum { MAXP = 65536 };
	pid_t *queue = malloc(MAXP * sizeof(pid_t));
	int head = 0, tail = 0, count = 0;

	if (!queue)
		return -1;
	queue[tail++] = root;
	while (head < tail) {
		pid_t p = queue[head++];
		int n = children_of(proc_fd, p, queue + tail, MAXP - tail);
		if (n < 0)
			n = children_scan(proc_fd, p, queue + tail, MAXP - tail);
		if (n > 0)
			tail += n;
	}
	/* Signal the deepest first: a parent killed first would re-parent its
	 * children to us between the scan and the kill, which is harmless, but
	 * this order makes a single pass usually enough. */
	for (int i = tail - 1; i >= 1; i--)
		if (kill(queue[i], sig) == 0)
			count++;
	free(queue);
	return count;
}

/* Kill (SIGKILL) the processes whose parent is us, as far as one look at
 * /proc finds them, without allocating anything; returns how many. */
static int kill_children_noalloc(void)
{
	char path[64], buf[4096];
	pid_t self = getpid();
	int n = 0;
	ssize_t len;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)self);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		/* Single-threaded: the main thread's children are all of ours. */
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[len > 0 ? len : 0] = '\0';
		for (char *p = buf, *end; ; p = end) {
			long c = strtol(p, &end, 10);
			if (end == p)
				break;
			if (c > 1 && kill((pid_t)c, SIGKILL) == 0)
				n++;
		}
		return n;
	}
	/* No CONFIG_PROC_CHILDREN: every /proc/PID/stat, read with getdents64. */
	if ((fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return 0;
	while ((len = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < len;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);
			char stat[512], spath[300], *rp;
			ssize_t got;
			int sfd;

			off += de->d_reclen;
			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			snprintf(spath, sizeof(spath), "/proc/%s/stat", de->d_name);
			if ((sfd = open(spath, O_RDONLY | O_CLOEXEC)) < 0)
				continue;
			got = read(sfd, stat, sizeof(stat) - 1);
			close(sfd);
			stat[got > 0 ? got : 0] = '\0';
			/* "pid (comm) S ppid": the last ')' ends comm. */
			if ((rp = strrchr(stat, ')')) && rp[1] && rp[2] && rp[3] &&
			    atoi(rp + 4) == (int)self &&
			    kill((pid_t)atoi(de->d_name), SIGKILL) == 0)
				n++;
		}
	}
	close(fd);
	return n;
}

void husk_end_children(void)
{
	for (;;) {
		kill_children_noalloc();
		/* One at least dies of it (or none is left); a killed one's
		 * children come to us, a subreaper, for the next round. */
		if (waitpid(-1, NULL, 0) < 0)
			return;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}

/* SIGKILL every descendant, again while new ones appear (a dying process may
 * have forked), then reap until none is left. */
void husk_kill_all_and_reap(int proc_fd)
{
	while (husk_kill_descendants(proc_fd, getpid(), SIGKILL) > 0)
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	while (waitpid(-1, NULL, 0) > 0)
		;
}
