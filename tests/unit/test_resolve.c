/* test_resolve.c: paths inside a hostile root never lead outside it, with
 * openat2(RESOLVE_IN_ROOT) and with the fallback walk alike. */
#include "husk_config.h"
#include "husk.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[PATH_MAX], root[PATH_MAX + 16], outside[PATH_MAX + 16];

static void mk(const char *rel)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	mkdir(p, 0755);
}

static void ln(const char *target, const char *rel)
{
	char p[PATH_MAX + 64];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	if (symlink(target, p) < 0)
		perror(p);
}

/* Where does fd point, relative to root? "" for the root, or NULL outside. */
static char *where(int fd)
{
	char link[64], real[PATH_MAX], rroot[PATH_MAX];
	ssize_t n;
	size_t rl;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, real, sizeof(real) - 1)) < 0)
		return NULL;
	real[n] = '\0';
	if (!realpath(root, rroot))
		return NULL;
	rl = strlen(rroot);
	if (strncmp(real, rroot, rl) || (real[rl] && real[rl] != '/'))
		return strdup("OUTSIDE");
	return strdup(real[rl] ? real + rl : "/");
}

static void expect(int rootfd, const char *path, const char *want, const char *mode)
{
	char name[512];
	int fd = husk_resolve(rootfd, path, O_PATH);
	char *got = fd >= 0 ? where(fd) : NULL;

	snprintf(name, sizeof(name), "%s: '%s' resolves to '%s'", mode, path, want ? want : "error");
	if (want)
		CHECK_STR(name, got, want);
	else
		CHECK(name, fd < 0);
	if (fd >= 0)
		close(fd);
	free(got);
}

static void run_cases(int rootfd, const char *mode)
{
	expect(rootfd, "/", "/", mode);
	expect(rootfd, "/etc/passwd", "/etc/passwd", mode);
	expect(rootfd, "/tmp", "/etc", mode);                 /* /tmp -> /etc */
	expect(rootfd, "/home", "/", mode);                   /* /home -> / */
	expect(rootfd, "/home/etc/passwd", "/etc/passwd", mode);
	expect(rootfd, "/evil", "/", mode);                   /* /evil -> ../../../../.. */
	expect(rootfd, "/evil/etc", "/etc", mode);
	expect(rootfd, "/../../..", "/", mode);
	expect(rootfd, "/etc/../../..", "/", mode);
	expect(rootfd, "/abs", "/etc", mode);                 /* /abs -> /etc (absolute) */
	expect(rootfd, "/rel/passwd", "/etc/passwd", mode);   /* /rel -> etc */
	expect(rootfd, "/chain", "/etc/passwd", mode);        /* chain -> abs/passwd */
	expect(rootfd, "/loop", NULL, mode);                  /* loop -> loop */
	expect(rootfd, "/missing/x", NULL, mode);
	expect(rootfd, "/etc/passwd/x", NULL, mode);          /* ENOTDIR */
	expect(rootfd, "/out", NULL, mode);   /* /out -> a host path: looked up inside, absent */
}

int main(void)
{
	int rootfd, fd;
	bool created;
	unsigned long long mnt;
	char p[PATH_MAX + 64];

	snprintf(base, sizeof(base), "/tmp/husk-unit-XXXXXX");
	if (!mkdtemp(base))
		return 1;
	snprintf(root, sizeof(root), "%s/root", base);
	snprintf(outside, sizeof(outside), "%s/outside", base);
	mkdir(root, 0755);
	mkdir(outside, 0755);
	mk("etc");
	snprintf(p, sizeof(p), "%s/etc/passwd", root);
	close(open(p, O_CREAT | O_WRONLY, 0644));
	ln("/etc", "tmp");
	ln("/", "home");
	ln("../../../../..", "evil");
	ln("/etc", "abs");
	ln("etc", "rel");
	ln("abs/passwd", "chain");
	ln("loop", "loop");
	ln(outside, "out");

	rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	run_cases(rootfd, "openat2");
	husk_resolve_force_fallback(true);
	run_cases(rootfd, "fallback");

	/* Creation happens inside the root, following the image's symlinks
	 * inside it, and only on an allowed mount. */
	for (int pass = 0; pass < 2; pass++) {
		const char *mode = pass ? "fallback" : "openat2";
		char name[256];
		husk_resolve_force_fallback(pass == 1);
		CHECK("mount id of the root", husk_mount_id(rootfd, &mnt) == 0);
		snprintf(name, sizeof(name), "%s: create /evil/new%d/dir lands inside", mode, pass);
		snprintf(p, sizeof(p), "/evil/new%d/dir", pass);
		fd = husk_resolve_create(rootfd, p, false, &mnt, 1, &created);
		{
			char *w = fd >= 0 ? where(fd) : NULL;
			char want[64];
			snprintf(want, sizeof(want), "/new%d/dir", pass);
			CHECK_STR(name, w, want);
			free(w);
		}
		if (fd >= 0)
			close(fd);
		snprintf(name, sizeof(name), "%s: creating a file through /tmp lands in /etc", mode);
		snprintf(p, sizeof(p), "/tmp/file%d", pass);
		fd = husk_resolve_create(rootfd, p, true, &mnt, 1, &created);
		{
			char *w = fd >= 0 ? where(fd) : NULL;
			char want[64];
			snprintf(want, sizeof(want), "/etc/file%d", pass);
			CHECK_STR(name, w, want);
			free(w);
		}
		if (fd >= 0)
			close(fd);
		snprintf(name, sizeof(name), "%s: no creation on a mount that is not allowed", mode);
		snprintf(p, sizeof(p), "/forbidden%d", pass);
		fd = husk_resolve_create(rootfd, p, false, NULL, 0, &created);
		CHECK(name, fd < 0 && errno == EXDEV);
		snprintf(name, sizeof(name), "%s: n_allowed < 0 allows any mount", mode);
		snprintf(p, sizeof(p), "/evil/anymount%d", pass);
		fd = husk_resolve_create(rootfd, p, false, NULL, -1, &created);
		{
			char *w = fd >= 0 ? where(fd) : NULL;
			char want[64];
			snprintf(want, sizeof(want), "/anymount%d", pass);
			CHECK_STR(name, w, want);
			free(w);
		}
		if (fd >= 0)
			close(fd);
	}
	{
		struct stat st;
		CHECK("nothing was created outside the root",
			stat(outside, &st) == 0 && st.st_nlink == 2);
		snprintf(p, sizeof(p), "%s/new0", base);
		CHECK("nothing was created beside the root", stat(p, &st) < 0);
	}
	close(rootfd);
	{
		char cmd[PATH_MAX + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", base);
	}
	return unit_done();
}
