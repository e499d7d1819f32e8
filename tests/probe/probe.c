/*
 * probe: a tiny static program that lives in the test image as /probe and
 * reports, from inside a husk container, what the black-box tests need to
 * check: ids, capabilities, open fds, environment, mounts, whether a write
 * succeeds, and how signals and exit statuses travel through the launcher.
 *
 * Output is one `key=value` line per fact on stdout, so shell tests can grep
 * for exact lines.  It must build with plain `gcc -static -O2 -Wall` and no
 * other library, and it must not depend on anything in the image: user names
 * are read from /etc/passwd by hand because static glibc cannot load NSS.
 *
 * Usage: probe SUBCOMMAND [ARG...]   (run `probe` alone for the list)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The errno names tests compare against; anything else prints as E<number>. */
static const char *errno_name(int e)
{
	static const struct { int e; const char *name; } names[] = {
		{ EROFS, "EROFS" }, { EACCES, "EACCES" }, { EPERM, "EPERM" },
		{ ENOENT, "ENOENT" }, { ENOTDIR, "ENOTDIR" }, { EISDIR, "EISDIR" },
		{ EEXIST, "EEXIST" }, { ENOSPC, "ENOSPC" }, { EIO, "EIO" },
		{ ELOOP, "ELOOP" }, { EINVAL, "EINVAL" }, { EBUSY, "EBUSY" },
		{ ETXTBSY, "ETXTBSY" }, { EDQUOT, "EDQUOT" }, { EXDEV, "EXDEV" },
		{ ENAMETOOLONG, "ENAMETOOLONG" }, { ENOTCONN, "ENOTCONN" },
		{ EOVERFLOW, "EOVERFLOW" }, { EBADF, "EBADF" },
	};
	static char buf[32];

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].e == e)
			return names[i].name;
	snprintf(buf, sizeof buf, "E%d", e);
	return buf;
}

/* The signals `probe signals` listens for, with the names it logs. */
static const struct { int sig; const char *name; } watched[] = {
	{ SIGTERM, "TERM" }, { SIGINT, "INT" }, { SIGHUP, "HUP" },
	{ SIGQUIT, "QUIT" }, { SIGUSR1, "USR1" }, { SIGUSR2, "USR2" },
	{ SIGCONT, "CONT" }, { SIGWINCH, "WINCH" },
};
#define N_WATCHED (sizeof watched / sizeof watched[0])

static long parse_num(const char *s, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end) {
		fprintf(stderr, "probe: bad %s '%s'\n", what, s);
		exit(2);
	}
	return v;
}

/* Sleep the whole interval even if signals interrupt it. */
static void sleep_seconds(long seconds)
{
	struct timespec ts = { .tv_sec = seconds, .tv_nsec = 0 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Name of an id in a passwd- or group-style file, or "?" if absent. */
static void name_of(const char *file, unsigned long id, char *out, size_t len)
{
	FILE *f = fopen(file, "re");
	char line[1024];

	snprintf(out, len, "?");
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		/* name:password:id:... with possibly empty fields, so no strtok */
		char *pw = strchr(line, ':'), *num = pw ? strchr(pw + 1, ':') : NULL, *end;

		if (!num)
			continue;
		*pw = '\0';
		if (strtoul(num + 1, &end, 10) == id && end != num + 1 && *end == ':') {
			snprintf(out, len, "%.*s", (int)len - 1, line);
			break;
		}
	}
	fclose(f);
}

static int cmd_ids(void)
{
	gid_t groups[256];
	int n = getgroups(256, groups);
	char name[256];

	printf("uid=%u\neuid=%u\ngid=%u\negid=%u\ngroups=", getuid(), geteuid(), getgid(), getegid());
	for (int i = 0; i < n; i++)
		printf("%s%u", i ? "," : "", groups[i]);
	printf("\n");
	name_of("/etc/passwd", getuid(), name, sizeof name);
	printf("user=%s\n", name);
	name_of("/etc/group", getgid(), name, sizeof name);
	printf("group=%s\n", name);
	return 0;
}

/* Copy the capability and no_new_privs lines of /proc/self/status. */
static int cmd_caps(void)
{
	static const char *keys[] = { "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:" };
	FILE *f = fopen("/proc/self/status", "re");
	char line[512];

	if (!f) {
		printf("caps=%s\n", errno_name(errno));
		return 1;
	}
	while (fgets(line, sizeof line, f)) {
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
			size_t k = strlen(keys[i]);
			if (strncmp(line, keys[i], k) == 0) {
				char *v = line + k;
				v += strspn(v, " \t");
				v[strcspn(v, "\n")] = '\0';
				printf("%.*s=%s\n", (int)(k - 1), keys[i], v);
			}
		}
	}
	fclose(f);
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* fds=0,1,2 then one fdN=TARGET line per fd; the fd used to list is left out. */
static int cmd_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int fds[1024], n = 0;
	struct dirent *e;

	if (!d) {
		printf("fds=%s\n", errno_name(errno));
		return 1;
	}
	while ((e = readdir(d)) && n < 1024) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd != dirfd(d))
			fds[n++] = fd;
	}
	qsort(fds, n, sizeof fds[0], cmp_int);
	printf("fds=");
	for (int i = 0; i < n; i++)
		printf("%s%d", i ? "," : "", fds[i]);
	printf("\n");
	for (int i = 0; i < n; i++) {
		char path[64], target[4096];
		ssize_t len;

		snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
		len = readlink(path, target, sizeof target - 1);
		target[len < 0 ? 0 : len] = '\0';
		printf("fd%d=%s\n", fds[i], len < 0 ? errno_name(errno) : target);
	}
	closedir(d);
	return 0;
}

static int cmd_env(int argc, char **argv)
{
	if (argc == 0) {
		for (char **e = environ; *e; e++)
			printf("%s\n", *e);
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		const char *v = getenv(argv[i]);
		if (v)
			printf("%s=%s\n", argv[i], v);
		else
			printf("%s<unset>\n", argv[i]);
	}
	return 0;
}

static int cmd_cwd(void)
{
	char buf[4096];

	if (getcwd(buf, sizeof buf))
		printf("cwd=%s\n", buf);
	else
		printf("cwd=%s\n", errno_name(errno));
	return 0;
}

/* Create or truncate PATH and write to it; report the first errno met. */
static int cmd_write(const char *path)
{
	static const char text[] = "written by probe\n";
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0 || write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1) || close(fd) < 0)
		printf("write=%s\n", errno_name(errno));
	else
		printf("write=ok\n");
	return 0;
}

/* Die of signal SIG with its default action, whatever we inherited. */
static int cmd_kill(int sig)
{
	sigset_t set;

	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	fflush(stdout);
	kill(getpid(), sig);
	/* Still here: a pid-namespace init ignores signals it has no handler for. */
	fprintf(stderr, "probe: survived signal %d\n", sig);
	return 3;
}

static void append_line(const char *file, const char *line)
{
	int fd = open(file, O_WRONLY | O_APPEND | O_CLOEXEC);

	if (fd < 0 || write(fd, line, strlen(line)) < 0) {
		fprintf(stderr, "probe: cannot append to '%s': %s\n", file, strerror(errno));
		exit(1);
	}
	close(fd);
}

static void noop_handler(int sig)
{
	(void)sig;
}

/*
 * Log each watched signal to FILE, one line per delivery.  The signals are
 * blocked and taken with sigtimedwait, so nothing is lost between deliveries
 * and the log has no async-signal-safety problems; the no-op handlers make
 * sure none of them is ignored (an ignored signal is discarded, never queued).
 * FILE says "ready" only once all of that is in place.
 */
static int cmd_signals(const char *file, long seconds)
{
	struct sigaction sa = { .sa_handler = noop_handler };
	struct timespec now, deadline;
	char tmp[4096];
	sigset_t set;
	FILE *f;

	sigemptyset(&set);
	for (size_t i = 0; i < N_WATCHED; i++) {
		sigaction(watched[i].sig, &sa, NULL);
		sigaddset(&set, watched[i].sig);
	}
	sigprocmask(SIG_BLOCK, &set, NULL);

	snprintf(tmp, sizeof tmp, "%s.tmp", file);
	f = fopen(tmp, "we");
	if (!f || fputs("ready\n", f) < 0 || fclose(f) != 0 || rename(tmp, file) < 0) {
		fprintf(stderr, "probe: cannot write '%s': %s\n", file, strerror(errno));
		return 1;
	}

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += seconds;
	for (;;) {
		struct timespec left;
		char line[64];
		int sig;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = deadline.tv_sec - now.tv_sec;
		left.tv_nsec = deadline.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		if (left.tv_sec < 0)
			return 0;
		sig = sigtimedwait(&set, NULL, &left);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			return 0; /* EAGAIN: the time is up */
		}
		for (size_t i = 0; i < N_WATCHED; i++) {
			if (watched[i].sig != sig)
				continue;
			snprintf(line, sizeof line, "sig=%s\n", watched[i].name);
			append_line(file, line);
		}
		if (sig == SIGQUIT)
			return 0;
	}
}

/* mount=MOUNTPOINT opts=PER-MOUNT type=FSTYPE src=SOURCE super=SUPER-OPTIONS */
static int cmd_mounts(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];

	if (!f) {
		printf("mounts=%s\n", errno_name(errno));
		return 1;
	}
	while (fgets(line, sizeof line, f)) {
		char *field[6] = { 0 }, *sep, *type, *src, *super, *save = NULL;
		int n = 0;

		line[strcspn(line, "\n")] = '\0';
		sep = strstr(line, " - ");
		if (!sep)
			continue;
		*sep = '\0';
		type = strtok_r(sep + 3, " ", &save);
		src = strtok_r(NULL, " ", &save);
		super = strtok_r(NULL, " ", &save);
		for (char *t = strtok_r(line, " ", &save); t && n < 6; t = strtok_r(NULL, " ", &save))
			field[n++] = t;
		if (n < 6)
			continue;
		printf("mount=%s opts=%s type=%s src=%s super=%s\n", field[4], field[5],
		       type ? type : "?", src ? src : "?", super ? super : "?");
	}
	fclose(f);
	return 0;
}

/*
 * Leave N processes behind that the launcher must clean up: each is the
 * grandchild of a child that called setsid() and exited, so it is orphaned
 * and in a session of its own.  Their stdio goes to /dev/null so that a
 * caller reading our output does not wait for them.  They keep our argv, so
 * tests can find them by their command line even across a pid namespace.
 */
static int cmd_spawn_orphans(long n, long seconds)
{
	int pfd[2];

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		perror("probe: pipe");
		return 1;
	}
	fflush(stdout);
	for (long i = 0; i < n; i++) {
		pid_t child = fork(), grandchild;

		if (child < 0) {
			perror("probe: fork");
			return 1;
		}
		if (child == 0) {
			setsid();
			grandchild = fork();
			if (grandchild == 0) {
				int null = open("/dev/null", O_RDWR);
				for (int fd = 0; fd < 3; fd++) {
					if (null >= 0)
						dup2(null, fd);
					else
						close(fd);
				}
				close(pfd[0]);
				close(pfd[1]);
				sleep_seconds(seconds);
				_exit(0);
			}
			if (write(pfd[1], &grandchild, sizeof grandchild) != sizeof grandchild)
				_exit(1);
			_exit(grandchild < 0);
		}
		waitpid(child, NULL, 0);
	}
	close(pfd[1]);
	for (long i = 0; i < n; i++) {
		pid_t pid;
		if (read(pfd[0], &pid, sizeof pid) != sizeof pid || pid < 0) {
			fprintf(stderr, "probe: an orphan failed to start\n");
			return 1;
		}
		printf("orphan=%d\n", (int)pid);
	}
	return 0;
}

/* Was a setuid bit on our executable honoured, and may the mount honour one? */
static int cmd_setuid_info(void)
{
	struct statvfs vfs;
	struct stat st;

	printf("uid=%u\neuid=%u\n", getuid(), geteuid());
	if (stat("/proc/self/exe", &st) == 0)
		printf("exe_mode=%04o\nexe_uid=%u\n", (unsigned)(st.st_mode & 07777), st.st_uid);
	printf("suid_honoured=%s\n", geteuid() != getuid() ? "yes" : "no");
	if (statvfs("/proc/self/exe", &vfs) == 0)
		printf("nosuid=%s\nnodev=%s\nro=%s\n", vfs.f_flag & ST_NOSUID ? "yes" : "no",
		       vfs.f_flag & ST_NODEV ? "yes" : "no", vfs.f_flag & ST_RDONLY ? "yes" : "no");
	return 0;
}

static void usage(void)
{
	fputs("usage: probe ids | caps | fds | env [NAME...] | cwd | write PATH\n"
	      "       probe exit N | kill SIG | signals FILE SECONDS | mounts\n"
	      "       probe sleep SECONDS | spawn-orphans N SECONDS | setuid-info\n", stderr);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	int nargs = argc - 2, rc;

#define NEED(k) do { if (nargs != (k)) { usage(); return 2; } } while (0)
	if (!strcmp(cmd, "ids")) {
		NEED(0); rc = cmd_ids();
	} else if (!strcmp(cmd, "caps")) {
		NEED(0); rc = cmd_caps();
	} else if (!strcmp(cmd, "fds")) {
		NEED(0); rc = cmd_fds();
	} else if (!strcmp(cmd, "env")) {
		rc = cmd_env(nargs, argv + 2);
	} else if (!strcmp(cmd, "cwd")) {
		NEED(0); rc = cmd_cwd();
	} else if (!strcmp(cmd, "write")) {
		NEED(1); rc = cmd_write(argv[2]);
	} else if (!strcmp(cmd, "exit")) {
		NEED(1); rc = (int)parse_num(argv[2], "status");
	} else if (!strcmp(cmd, "kill")) {
		NEED(1); rc = cmd_kill((int)parse_num(argv[2], "signal"));
	} else if (!strcmp(cmd, "signals")) {
		NEED(2); rc = cmd_signals(argv[2], parse_num(argv[3], "seconds"));
	} else if (!strcmp(cmd, "mounts")) {
		NEED(0); rc = cmd_mounts();
	} else if (!strcmp(cmd, "sleep")) {
		NEED(1); sleep_seconds(parse_num(argv[2], "seconds")); rc = 0;
	} else if (!strcmp(cmd, "spawn-orphans")) {
		NEED(2); rc = cmd_spawn_orphans(parse_num(argv[2], "count"), parse_num(argv[3], "seconds"));
	} else if (!strcmp(cmd, "setuid-info")) {
		NEED(0); rc = cmd_setuid_info();
	} else {
		usage();
		return 2;
	}
#undef NEED
	if (fflush(stdout) != 0)
		return 1;
	return rc;
}
