/* test_unpack.c: filling a root for `husk build` from tar archives (rootfs
 * tars and OCI layers with whiteouts), host directories (COPY) and SquashFS
 * images, as the build worker does it: root of a user namespace that maps
 * only the caller. Hostile archives must fail with an error naming the entry
 * and leave a sentinel directory beside the root untouched. */
#include "husk_config.h"
#include "husk.h"
#include "import.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

static char base[PATH_MAX];

/* A case: DIR/root (where things go) and DIR/sentinel/keep (must stay). */
struct box {
	char *dir, *root, *sentinel;
	int fd;
};

static struct box box_new(const char *name)
{
	struct box b;

	b.dir = fmt("%s/%s", base, name);
	b.root = fmt("%s/root", b.dir);
	b.sentinel = fmt("%s/sentinel", b.dir);
	mkdir(b.dir, 0755);
	mkdir(b.root, 0755);
	chmod(b.root, 0755);   /* whatever the umask */
	mkdir(b.sentinel, 0755);
	if (run(fmt("echo keep >'%s/keep'", b.sentinel)) != 0)
		printf("# cannot make the sentinel\n");
	b.fd = open(b.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return b;
}

/* Nothing appeared beside the root, and the sentinel is as it was. */
static bool intact(struct box *b)
{
	int fd = open(b->sentinel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	bool ok = fd >= 0 && count_entries(b->sentinel) == 1 && count_entries(b->dir) ==
		3 + count_entries(b->root) && has_content(fd, "keep", "keep\n");
	struct stat st;

	ok = ok && fstatat(fd, "keep", &st, 0) == 0 && st.st_nlink == 1;
	if (fd >= 0)
		close(fd);
	return ok;
}

static const char *tarpath(const char *name)
{
	return fmt("%s/tars/%s", base, name);
}

static int untar(struct box *b, const char *tar, bool whiteouts,
	struct husk_unpack_stats *st, struct husk_err *err)
{
	int fd = open(tar, O_RDONLY | O_CLOEXEC), r;

	r = husk_unpack_tar(b->fd, fd, whiteouts, fmt("archive '%s'", strrchr(tar, '/') + 1), st,
		err);
	close(fd);
	return r;
}

/* Extract the entries, expecting an error whose message holds `want`
 * (and the archive's name), with the sentinel left alone. */
static void hostile(const char *name, const struct ent *e, size_t n, bool whiteouts,
	const char *want)
{
	struct box b = box_new(name);
	struct husk_unpack_stats st = { 0 };
	struct husk_err err = { 0 };
	const char *tar = tarpath(fmt("%s.tar", name));
	int r;

	if (make_tar(tar, NULL, e, n) < 0) {
		CHECK(fmt("%s: make the archive", name), false);
		return;
	}
	r = untar(&b, tar, whiteouts, &st, &err);
	CHECK(fmt("%s: refused, naming '%s'", name, want), r == -1 &&
		says(err.msg, want, fmt("archive '%s.tar'", name), NULL));
	CHECK(fmt("%s: nothing written outside the root", name), intact(&b));
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_good_tar(void)
{
	struct box b = box_new("good");
	struct husk_unpack_stats st = { 0 };
	struct husk_err err = { 0 };
	const struct ent e[] = {
		{ 'd', "./", NULL, 0700, 0 },             /* the root: ignored */
		{ 'd', "./etc/", NULL, 0, 0 },
		{ 'f', "./etc/hostname", "box\n", 0644, 1234567890 },
		{ 'f', "bin/tool", "#!/bin/sh\n", 04755, 0 },   /* no entry for bin/ */
		{ 'd', "ro/", NULL, 0555, 0 },
		{ 'f', "ro/inside", "x", 0, 0 },           /* after its read-only directory */
		{ 'l', "usr/lib/abs", "/usr/lib/x86_64-linux-gnu", 0777, 0 },
		{ 'l', "usr/lib/rel", "../../etc/hostname", 0777, 0 },
		{ 'h', "etc/hostname.hard", "./etc/hostname", 0, 0 },
		{ 'p', "run/fifo", NULL, 0600, 0 },
		{ 'c', "dev/null", NULL, 0666, 0 },
		{ 'b', "dev/sda", NULL, 0660, 0 },
		{ 'f', ".wh.plain", "kept without whiteouts", 0, 0 },
		{ 'd', "x/y/", NULL, 0700, 1111 },
		{ 'f', "x/y/z", "z", 0, 0 },                 /* changes y after its entry */
		{ 'd', "twice/", NULL, 0700, 0 },
		{ 'd', "twice/", NULL, 0750, 0 },             /* the last listing wins */
		{ 'f', "over", "first", 0, 0 },
		{ 'f', "over", "second", 0600, 0 },
	};
	const char *tar = tarpath("good.tar");
	int r;

	CHECK("good: make the archive", make_tar(tar, NULL, e, N(e)) == 0);
	r = untar(&b, tar, false, &st, &err);
	CHECK("good: extracts", r == 0);
	if (r < 0)
		printf("# %s\n", err.msg);
	CHECK("good: the root keeps its mode", (mode_of(b.fd, ".") & 07777) == 0755);
	CHECK("good: file content", has_content(b.fd, "etc/hostname", "box\n"));
	CHECK("good: file mode and mtime", (mode_of(b.fd, "etc/hostname") & 07777) == 0644 &&
		mtime_of(b.fd, "etc/hostname") == 1234567890);
	CHECK("good: setuid bit kept", (mode_of(b.fd, "bin/tool") & 07777) == 04755);
	CHECK("good: a parent not listed is made 0755",
		S_ISDIR(mode_of(b.fd, "bin")) && (mode_of(b.fd, "bin") & 07777) == 0755);
	CHECK("good: a read-only directory gets its mode after its entries",
		(mode_of(b.fd, "ro") & 07777) == 0555 && has_content(b.fd, "ro/inside", "x"));
	CHECK("good: absolute symlink kept as is", link_is(b.fd, "usr/lib/abs",
		"/usr/lib/x86_64-linux-gnu"));
	CHECK("good: relative symlink kept", link_is(b.fd, "usr/lib/rel", "../../etc/hostname"));
	CHECK("good: hard link shares the inode", same_inode(b.fd, "etc/hostname",
		"etc/hostname.hard"));
	CHECK("good: FIFO made", S_ISFIFO(mode_of(b.fd, "run/fifo")) &&
		(mode_of(b.fd, "run/fifo") & 07777) == 0600);
	CHECK("good: devices skipped", !exists(b.fd, "dev/null") && !exists(b.fd, "dev/sda"));
	CHECK("good: devices counted", st.skipped == 2 && !strcmp(st.first_skipped, "dev/null"));
	CHECK("good: .wh. names are plain files without whiteouts",
		has_content(b.fd, ".wh.plain", "kept without whiteouts"));
	CHECK("good: directory mtime set after its entries", mtime_of(b.fd, "x/y") == 1111 &&
		(mode_of(b.fd, "x/y") & 07777) == 0700);
	CHECK("good: a directory listed twice gets the last mode",
		(mode_of(b.fd, "twice") & 07777) == 0750);
	CHECK("good: a later entry replaces an earlier one", has_content(b.fd, "over", "second") &&
		(mode_of(b.fd, "over") & 07777) == 0600);
	CHECK("good: bytes counted", st.bytes == strlen("box\n#!/bin/sh\nx") +
		strlen("kept without whiteouts") + strlen("zfirstsecond"));
	CHECK("good: entries counted", st.entries >= 14);
	CHECK("good: nothing written outside", intact(&b));
}

/* The same archive compressed, and read from a pipe. */
static void test_gzip_pipe(void)
{
	struct box b = box_new("gzpipe");
	struct husk_unpack_stats st = { 0 };
	struct husk_err err = { 0 };
	const struct ent e[] = {
		{ 'd', "a/", NULL, 0, 0 },
		{ 'f', "a/file", "data", 0640, 0 },
		{ 'l', "a/link", "file", 0, 0 },
	};
	const char *tar = tarpath("gz.tar.gz");
	int p[2], status = -1, r;
	pid_t pid;

	CHECK("gzip: make the archive", make_tar(tar, "gzip", e, N(e)) == 0);
	if (pipe(p) < 0)
		return;
	if ((pid = fork()) == 0) {
		int fd = open(tar, O_RDONLY);
		char buf[4096];
		ssize_t n;
		close(p[0]);
		while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
			if (write(p[1], buf, (size_t)n) != n)
				_exit(1);
		_exit(0);
	}
	close(p[1]);
	r = husk_unpack_tar(b.fd, p[0], false, "stdin", &st, &err);
	close(p[0]);
	waitpid(pid, &status, 0);
	CHECK("gzip: a compressed archive read from a pipe extracts", r == 0 &&
		has_content(b.fd, "a/file", "data") && link_is(b.fd, "a/link", "file") &&
		(mode_of(b.fd, "a/file") & 07777) == 0640);
	if (r < 0)
		printf("# %s\n", err.msg);
	CHECK("gzip: nothing written outside", intact(&b));
}

static void test_hostile(void)
{
	char *out = fmt("%s/hostile-parent/sentinel", base);
	char *out2 = fmt("%s/hostile-hardlink/sentinel", base);
	const struct ent dotdot[] = { { 'f', "../evil", "x", 0, 0 } };
	const struct ent dotdot2[] = { { 'd', "a/", NULL, 0, 0 }, { 'f', "./a/../../evil", "x", 0, 0 } };
	const struct ent absolute[] = { { 'f', "/abs", "x", 0, 0 } };
	const struct ent parent[] = { { 'l', "a", out, 0, 0 }, { 'f', "a/pwned", "x", 0, 0 } };
	const struct ent climb[] = { { 'l', "up", "../../..", 0, 0 }, { 'f', "up/x", "x", 0, 0 } };
	const struct ent climb2[] = { { 'l', "sub/l", "../../x", 0, 0 } };
	const struct ent dotlink[] = { { 'l', "d", ".", 0, 0 }, { 'f', "d/x", "x", 0, 0 } };
	const struct ent hl_up[] = { { 'h', "h", "../outside", 0, 0 } };
	const struct ent hl_abs[] = { { 'h', "h", "/etc/passwd", 0, 0 } };
	const struct ent hl_missing[] = { { 'h', "h", "missing", 0, 0 } };
	const struct ent hl_through[] = { { 'l', "s", out2, 0, 0 }, { 'h', "h", "s/keep", 0, 0 } };
	const struct ent wh_dot[] = { { 'f', "x/.wh..", "", 0, 0 } };
	const struct ent wh_up[] = { { 'f', "../.wh.x", "", 0, 0 } };
	const struct ent root_file[] = { { 'f', ".", "x", 0, 0 } };

	hostile("hostile-dotdot", dotdot, N(dotdot), false, "entry '../evil': a '..' component");
	hostile("hostile-dotdot2", dotdot2, N(dotdot2), false, "entry './a/../../evil'");
	hostile("hostile-absolute", absolute, N(absolute), false, "entry '/abs': absolute path");
	hostile("hostile-parent", parent, N(parent), false,
		"entry 'a/pwned': 'a' is a symbolic link");
	hostile("hostile-climb", climb, N(climb), false, "entry 'up': symbolic link target "
		"'../../..' leads out of the root");
	hostile("hostile-climb2", climb2, N(climb2), false, "entry 'sub/l'");
	hostile("hostile-dotlink", dotlink, N(dotlink), false, "entry 'd/x': 'd' is a symbolic link");
	hostile("hostile-hardlink-up", hl_up, N(hl_up), false, "entry 'h': hard link target '../outside'");
	hostile("hostile-hardlink-abs", hl_abs, N(hl_abs), false,
		"entry 'h': hard link target '/etc/passwd': absolute");
	hostile("hostile-hardlink-missing", hl_missing, N(hl_missing), false,
		"hard link target 'missing' does not exist");
	hostile("hostile-hardlink", hl_through, N(hl_through), false,
		"entry 'h': 's' is a symbolic link");
	hostile("hostile-whiteout-dot", wh_dot, N(wh_dot), true, "entry 'x/.wh..': whiteout");
	hostile("hostile-whiteout-up", wh_up, N(wh_up), true, "entry '../.wh.x'");
	hostile("hostile-root-file", root_file, N(root_file), false, "entry '.': names the root");
}

/* A symlink left by one layer is not a way out for the next. */
static void test_hostile_layers(void)
{
	const char *names[] = { "layers-write", "layers-whiteout", "layers-opaque" };

	for (int i = 0; i < 3; i++) {
		struct box b = box_new(names[i]);
		struct husk_unpack_stats st = { 0 };
		struct husk_err err = { 0 };
		const struct ent l1[] = { { 'l', "lib", b.sentinel, 0, 0 } };
		const struct ent l2[][1] = {
			{ { 'f', "lib/pwned", "x", 0, 0 } },
			{ { 'f', "lib/.wh.keep", "", 0, 0 } },
			{ { 'f', "lib/.wh..wh..opq", "", 0, 0 } },
		};
		const char *t1 = tarpath(fmt("%s-1.tar", names[i]));
		const char *t2 = tarpath(fmt("%s-2.tar", names[i]));
		int r1, r2;

		make_tar(t1, NULL, l1, 1);
		make_tar(t2, "gzip", l2[i], 1);
		r1 = untar(&b, t1, true, &st, &err);
		r2 = untar(&b, t2, true, &st, &err);
		CHECK(fmt("%s: a later layer cannot go through an earlier symlink", names[i]),
			r1 == 0 && r2 == -1 && says(err.msg, fmt("entry '%s'", l2[i][0].path),
				"'lib' is a symbolic link", NULL));
		CHECK(fmt("%s: nothing written or removed outside", names[i]), intact(&b));
	}
}

static void test_corrupt(void)
{
	struct box b = box_new("corrupt");
	struct husk_unpack_stats st = { 0 };
	struct husk_err err = { 0 };
	char big[20000];
	const struct ent e[] = { { 'f', "first", "1", 0, 0 }, { 'f', "big", big, 0, 0 } };
	const char *tar = tarpath("trunc.tar"), *gz = tarpath("trunc.tar.gz");
	const char *junk = tarpath("junk.tar");

	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	make_tar(tar, NULL, e, N(e));
	make_tar(gz, "gzip", e, N(e));
	CHECK("corrupt: truncate", truncate(tar, 5000) == 0 && truncate(gz, 60) == 0);
	CHECK("corrupt: a truncated tar is an error naming the entry",
		untar(&b, tar, false, &st, &err) == -1 &&
		says(err.msg, "archive 'trunc.tar'", "'big'", "truncated", NULL));
	CHECK("corrupt: a truncated gzip stream is an error",
		untar(&b, gz, false, &st, &err) == -1 && says(err.msg, "archive 'trunc.tar.gz'", NULL));
	run(fmt("head -c 3000 /dev/urandom >'%s'", junk));
	CHECK("corrupt: not an archive", untar(&b, junk, false, &st, &err) == -1 &&
		says(err.msg, "archive 'junk.tar'", "not a tar archive", NULL));
	CHECK("corrupt: nothing written outside", intact(&b));
}

static void test_whiteouts(void)
{
	struct box b = box_new("whiteouts");
	struct husk_unpack_stats st = { 0 };
	struct husk_err err = { 0 };
	const struct ent l1[] = {
		{ 'f', "d/old", "old", 0, 0 },
		{ 'f', "d/keep", "keep", 0, 0 },
		{ 'f', "top", "top", 0, 0 },
		{ 'f', "opq/x", "x", 0, 0 },
		{ 'f', "opq/sub/y", "y", 0, 0 },
		{ 'f', "w", "w1", 0, 0 },
		{ 'f', "gone/inner/file", "f", 0, 0 },
		{ 'f', "x/content", "c", 0, 0 },
		{ 'l', "y", "/somewhere", 0, 0 },
		{ 'f', "f1", "one", 0, 0 },
		{ 'h', "f2", "f1", 0, 0 },
		{ 'f', "m/lower", "l", 0, 0 },
	};
	const struct ent l2[] = {
		{ 'f', "d/.wh.old", "", 0, 0 },
		{ 'f', ".wh.top", "", 0, 0 },
		{ 'f', "opq/new", "n", 0, 0 },           /* before the marker */
		{ 'f', "opq/.wh..wh..opq", "", 0, 0 },
		{ 'f', "opq/later", "l", 0, 0 },         /* after it */
		{ 'f', "w", "w2", 0, 0 },
		{ 'f', ".wh.w", "", 0, 0 },               /* same layer: w stays */
		{ 'f', ".wh.gone", "", 0, 0 },
		{ 'f', "x", "now a file", 0, 0 },
		{ 'd', "y/", NULL, 0, 0 },
		{ 'f', "y/z", "z", 0, 0 },
		{ 'f', "f2", "two", 0, 0 },
		{ 'd', "m/", NULL, 0, 0 },
		{ 'f', "m/upper", "u", 0, 0 },
		{ 'f', ".wh.m", "", 0, 0 },               /* m written here: its lower content goes */
		{ 'f', ".wh.never-was", "", 0, 0 },
		{ 'f', "nodir/.wh.x", "", 0, 0 },
		{ 'f', ".wh..wh.plnk", "", 0, 0 },        /* aufs bookkeeping */
	};
	const char *t1 = tarpath("wh1.tar"), *t2 = tarpath("wh2.tar.gz");
	int r;

	make_tar(t1, NULL, l1, N(l1));
	make_tar(t2, "gzip", l2, N(l2));
	r = untar(&b, t1, true, &st, &err);
	if (r == 0)
		r = untar(&b, t2, true, &st, &err);
	CHECK("whiteouts: two layers apply", r == 0);
	if (r < 0)
		printf("# %s\n", err.msg);
	CHECK("whiteouts: .wh.NAME removes NAME", !exists(b.fd, "d/old") && !exists(b.fd, "top"));
	CHECK("whiteouts: its siblings stay", has_content(b.fd, "d/keep", "keep"));
	CHECK("whiteouts: a whited-out directory goes with its contents", !exists(b.fd, "gone"));
	CHECK("whiteouts: opaque directory loses what lower layers put in it",
		!exists(b.fd, "opq/x") && !exists(b.fd, "opq/sub"));
	CHECK("whiteouts: opaque directory keeps its own layer's entries, before and after",
		has_content(b.fd, "opq/new", "n") && has_content(b.fd, "opq/later", "l"));
	CHECK("whiteouts: a whiteout spares the same layer's entry", has_content(b.fd, "w", "w2"));
	CHECK("whiteouts: ... but not what lower layers left inside it",
		!exists(b.fd, "m/lower") && has_content(b.fd, "m/upper", "u"));
	CHECK("whiteouts: a file replaces a directory", has_content(b.fd, "x", "now a file"));
	CHECK("whiteouts: a directory replaces a symlink, without following it",
		S_ISDIR(mode_of(b.fd, "y")) && has_content(b.fd, "y/z", "z"));
	CHECK("whiteouts: replacing a hard link leaves the other name alone",
		has_content(b.fd, "f1", "one") && has_content(b.fd, "f2", "two"));
	CHECK("whiteouts: no whiteout file in the result",
		run(fmt("test -z \"$(find '%s' -name '.wh.*')\"", b.root)) == 0);
	CHECK("whiteouts: nothing written outside", intact(&b));
}

/* ---- husk_copy_in --------------------------------------------------------- */

static void make_host_tree(const char *src)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timespec ts[2] = { { 1234, 0 }, { 1234, 0 } };
	int s;

	run(fmt("mkdir -p '%s/sub/ro' && printf a >'%s/a.txt' && chmod 0640 '%s/a.txt' && "
		"printf b >'%s/sub/b' && chmod 0755 '%s/sub/b' && printf c >'%s/sub/ro/c' && "
		"chmod 0555 '%s/sub/ro' && ln -s a.txt '%s/link' && ln -s /etc/passwd '%s/abs' && "
		"printf h >'%s/h1' && ln '%s/h1' '%s/h2' && mkfifo '%s/fifo' && chmod 4711 '%s/sub/b'",
		src, src, src, src, src, src, src, src, src, src, src, src, src, src));
	utimensat(AT_FDCWD, fmt("%s/a.txt", src), ts, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", src);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		printf("# cannot make a socket in the source tree\n");
	if (s >= 0)
		close(s);
}

static void test_copy_in(const char *mode)
{
	struct box b = box_new(fmt("copy-%s", mode));
	struct husk_unpack_stats st = { 0 };
	struct husk_err err = { 0 };
	char *src = fmt("%s/copy-src-%s", base, mode), *file = fmt("%s/a.txt", src);
	char *lib = fmt("%s/copy-lib-%s", base, mode);
	int r;

	make_host_tree(src);
	r = husk_copy_in(b.fd, src, "/opt/app/", &st, &err);
	CHECK(fmt("copy (%s): a directory's contents go into dst", mode), r == 0 &&
		has_content(b.fd, "opt/app/a.txt", "a") && has_content(b.fd, "opt/app/sub/b", "b") &&
		!exists(b.fd, fmt("opt/app/copy-src-%s", mode)));
	if (r < 0)
		printf("# %s\n", err.msg);
	CHECK(fmt("copy (%s): modes and mtimes kept", mode), (mode_of(b.fd, "opt/app/a.txt") & 07777) == 0640 &&
		mtime_of(b.fd, "opt/app/a.txt") == 1234 &&
		(mode_of(b.fd, "opt/app/sub/b") & 07777) == 04711);
	CHECK(fmt("copy (%s): read-only directory copied with its content", mode),
		(mode_of(b.fd, "opt/app/sub/ro") & 07777) == 0555 &&
		has_content(b.fd, "opt/app/sub/ro/c", "c"));
	CHECK(fmt("copy (%s): symlinks copied, not followed", mode), link_is(b.fd, "opt/app/link", "a.txt") &&
		link_is(b.fd, "opt/app/abs", "/etc/passwd"));
	CHECK(fmt("copy (%s): hard links kept", mode), same_inode(b.fd, "opt/app/h1", "opt/app/h2"));
	CHECK(fmt("copy (%s): FIFO made", mode), S_ISFIFO(mode_of(b.fd, "opt/app/fifo")));
	CHECK(fmt("copy (%s): socket skipped and counted", mode), !exists(b.fd, "opt/app/sock") &&
		st.skipped == 1 && strstr(st.first_skipped, "sock"));
	CHECK(fmt("copy (%s): bytes counted", mode), st.bytes == 4);

	CHECK(fmt("copy (%s): a file into dst/ keeps its name", mode),
		husk_copy_in(b.fd, file, "/etc/", &st, &err) == 0 && has_content(b.fd, "etc/a.txt", "a"));
	CHECK(fmt("copy (%s): a file to a new name", mode),
		husk_copy_in(b.fd, file, "/etc/renamed", &st, &err) == 0 &&
		has_content(b.fd, "etc/renamed", "a") && (mode_of(b.fd, "etc/renamed") & 07777) == 0640);
	CHECK(fmt("copy (%s): a file into an existing directory without a slash", mode),
		husk_copy_in(b.fd, file, "/opt", &st, &err) == 0 && has_content(b.fd, "opt/a.txt", "a"));
	CHECK(fmt("copy (%s): a relative dst is taken from /", mode),
		husk_copy_in(b.fd, file, "rel/dir/", &st, &err) == 0 &&
		has_content(b.fd, "rel/dir/a.txt", "a"));
	CHECK(fmt("copy (%s): missing parents are made 0755", mode),
		(mode_of(b.fd, "rel") & 07777) == 0755 && (mode_of(b.fd, "rel/dir") & 07777) == 0755);

	/* The rootfs's own symlinks are followed inside it, never out. */
	symlinkat(b.sentinel, b.fd, "out");
	symlinkat("../../../../../../../..", b.fd, "up");
	r = husk_copy_in(b.fd, file, "/out/", &st, &err);
	CHECK(fmt("copy (%s): dst through a symlink to a host path missing in the root is an error", mode),
		r == -1 && says(err.msg, "into the image: '/out'", "No such file", NULL) && intact(&b));
	run(fmt("mkdir -p '%s%s'", b.root, b.sentinel));
	r = husk_copy_in(b.fd, file, "/out/", &st, &err);
	CHECK(fmt("copy (%s): dst through an absolute symlink lands inside the root", mode), r == 0 &&
		has_content(b.fd, fmt("%s/a.txt", b.sentinel + 1), "a"));
	r = husk_copy_in(b.fd, file, "/up/x.txt", &st, &err);
	CHECK(fmt("copy (%s): dst through a climbing symlink lands inside the root", mode), r == 0 &&
		has_content(b.fd, "x.txt", "a"));
	symlinkat(fmt("%s/keep", b.sentinel), b.fd, "etc/target");
	r = husk_copy_in(b.fd, file, "/etc/target", &st, &err);
	CHECK(fmt("copy (%s): an existing symlink at dst is replaced, not written through", mode), r == 0 &&
		has_content(b.fd, "etc/target", "a") && !S_ISLNK(mode_of(b.fd, "etc/target")));

	/* A tree onto an image where /lib -> usr/lib (merged /usr). */
	run(fmt("mkdir -p '%s/lib' && printf so >'%s/lib/libx.so'", lib, lib));
	mkdirat(b.fd, "usr", 0755);
	mkdirat(b.fd, "usr/lib", 0755);
	symlinkat("usr/lib", b.fd, "lib");
	r = husk_copy_in(b.fd, lib, "/", &st, &err);
	CHECK(fmt("copy (%s): a directory symlink in the image is followed inside it", mode), r == 0 &&
		has_content(b.fd, "usr/lib/libx.so", "so") && link_is(b.fd, "lib", "usr/lib"));

	r = husk_copy_in(b.fd, fmt("%s/missing", base), "/x", &st, &err);
	CHECK(fmt("copy (%s): a missing source is an error naming it", mode), r == -1 &&
		says(err.msg, "cannot copy", "/missing'", "No such file", NULL));
	r = husk_copy_in(b.fd, src, "/etc/renamed", &st, &err);
	CHECK(fmt("copy (%s): a directory onto a file is an error", mode), r == -1 &&
		says(err.msg, "'/etc/renamed' exists in the image and is not a directory", NULL));
	CHECK(fmt("copy (%s): nothing written outside", mode), intact(&b));
}

/* ---- SquashFS ------------------------------------------------------------- */

static void test_squashfs(void)
{
	struct box b = box_new("sqfs");
	struct husk_unpack_stats st = { 0 };
	struct husk_err err = { 0 };
	char *src = fmt("%s/sqfs-src", base), *img = fmt("%s/tars/img.sqfs", base);
	char *bad = fmt("%s/tars/trunc.sqfs", base);
	int r;

	if (system("command -v mksquashfs >/dev/null") != 0) {
		printf("skip - squashfs: mksquashfs not installed (squashfs-tools)\n");
		return;
	}
	run(fmt("mkdir -p '%s/dir' && printf data >'%s/f' && chmod 4755 '%s/f' && ln '%s/f' '%s/h' && "
		"ln -s f '%s/l' && mkfifo '%s/p' && printf g >'%s/dir/g' && chmod 0700 '%s/dir' && "
		"touch -h -d @1234 '%s/f' '%s/l' && "
		"mksquashfs '%s' '%s' -noappend -nopad -quiet -no-progress -p 'dev d 755 0 0' "
		"-p 'dev/null c 666 0 0 1 3' >/dev/null", src, src, src, src, src, src, src, src, src,
		src, src, src, img));
	r = husk_import_squashfs(b.fd, b.root, img, &st, &err);
	CHECK("squashfs: extracts", r == 0);
	if (r < 0)
		printf("# %s\n", err.msg);
	CHECK("squashfs: files, modes and mtimes", has_content(b.fd, "f", "data") &&
		(mode_of(b.fd, "f") & 07777) == 04755 && mtime_of(b.fd, "f") == 1234 &&
		has_content(b.fd, "dir/g", "g") && (mode_of(b.fd, "dir") & 07777) == 0700);
	CHECK("squashfs: symlink", link_is(b.fd, "l", "f") && mtime_of(b.fd, "l") == 1234);
	CHECK("squashfs: hard link", same_inode(b.fd, "f", "h"));
	CHECK("squashfs: FIFO", S_ISFIFO(mode_of(b.fd, "p")));
	CHECK("squashfs: device skipped and counted", !exists(b.fd, "dev/null") &&
		S_ISDIR(mode_of(b.fd, "dev")) && st.skipped == 1 &&
		!strcmp(st.first_skipped, "dev/null"));
	run(fmt("head -c $(($(stat -c %%s '%s') / 2)) '%s' >'%s'", img, img, bad));
	r = husk_import_squashfs(b.fd, b.root, bad, &st, &err);
	CHECK("squashfs: a truncated image is an error naming it", r == -1 &&
		says(err.msg, "trunc.sqfs", "truncated", NULL));
	printf("# %s\n", err.msg);
	r = husk_import_squashfs(b.fd, b.root, tarpath("good.tar"), &st, &err);
	CHECK("squashfs: not an image", r == -1 && says(err.msg, "good.tar", NULL));
	CHECK("squashfs: nothing written outside", intact(&b));
}

/* ---- source detection --------------------------------------------------------- */

static void detect(const char *name, const char *path, int want)
{
	enum husk_source_kind k = 0;
	struct husk_err err = { 0 };
	int r = husk_source_detect(path, &k, &err);

	if (want < 0) {
		CHECK(fmt("detect: %s is refused", name), r == -1 && strstr(err.msg, path));
		printf("# %s\n", err.msg);
	} else {
		CHECK(fmt("detect: %s is %s", name, husk_source_kind_name(want)), r == 0 &&
			(int)k == want);
		if (r < 0)
			printf("# %s\n", err.msg);
	}
}

static void test_detect(void)
{
	const char *d = fmt("%s/detect", base);
	const struct ent oci[] = { { 'f', "oci-layout", "{}", 0, 0 }, { 'f', "./index.json", "{}", 0, 0 } };
	const struct ent docker[] = { { 'f', "abc/layer.tar", "", 0, 0 }, { 'f', "manifest.json", "[]", 0, 0 } };
	const struct ent plain[] = { { 'f', "etc/passwd", "", 0, 0 }, { 'f', "index.json", "{}", 0, 0 } };

	run(fmt("mkdir -p '%s/layout' '%s/rootfs' && echo '{}' >'%s/layout/oci-layout' && "
		"echo '{}' >'%s/layout/index.json' && echo '{}' >'%s/rootfs/index.json'", d, d, d, d, d));
	detect("a directory", fmt("%s/rootfs", d), HUSK_SRC_DIR);
	detect("an OCI layout", fmt("%s/layout", d), HUSK_SRC_OCI_LAYOUT);
	make_tar(fmt("%s/oci.tar.gz", d), "gzip", oci, N(oci));
	make_tar(fmt("%s/docker.tar", d), NULL, docker, N(docker));
	make_tar(fmt("%s/rootfs.tar.xz", d), "xz", plain, N(plain));
	detect("an OCI archive (gzip)", fmt("%s/oci.tar.gz", d), HUSK_SRC_OCI_ARCHIVE);
	detect("a Docker archive", fmt("%s/docker.tar", d), HUSK_SRC_DOCKER_ARCHIVE);
	detect("a rootfs tar (xz)", fmt("%s/rootfs.tar.xz", d), HUSK_SRC_TAR);
	run(fmt("printf 'hsqs' >'%s/x.sqfs' && head -c 200 /dev/zero >>'%s/x.sqfs'", d, d));
	detect("a SquashFS image", fmt("%s/x.sqfs", d), HUSK_SRC_SQUASHFS);
	run(fmt("printf '# syntax=x\\n\\n   # comment\\n  from debian:12 AS base\\nRUN true\\n' >'%s/Recipe'", d));
	detect("a recipe", fmt("%s/Recipe", d), HUSK_SRC_RECIPE);
	run(fmt("printf 'FROM\\tscratch\\n' >'%s/tab'", d));
	detect("a recipe with a tab", fmt("%s/tab", d), HUSK_SRC_RECIPE);
	run(fmt("printf '# c\\nRUN make\\nFROM x\\n' >'%s/notrecipe'", d));
	detect("a text whose first instruction is not FROM", fmt("%s/notrecipe", d), -1);
	run(fmt("printf 'FROMAGE x\\n' >'%s/fromage'", d));
	detect("FROMAGE", fmt("%s/fromage", d), -1);
	run(fmt("head -c 5000 /dev/urandom >'%s/junk' && : >'%s/empty'", d, d));
	detect("random bytes", fmt("%s/junk", d), -1);
	detect("an empty file", fmt("%s/empty", d), -1);
	detect("a missing path", fmt("%s/missing", d), -1);
	CHECK("detect: kind names", !strcmp(husk_source_kind_name(HUSK_SRC_DOCKER_ARCHIVE),
		"docker-archive") && !strcmp(husk_source_kind_name(HUSK_SRC_OCI_LAYOUT), "oci-layout") &&
		!strcmp(husk_source_kind_name(HUSK_SRC_DIR), "directory"));
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/husk-unpack-XXXXXX");
	if (!mkdtemp(base))
		return 1;
	if (enter_build_userns() < 0) {
		printf("skip - import tests: cannot enter a user namespace: %s\n", strerror(errno));
		run(fmt("rm -rf '%s'", base));
		return 0;
	}
	/* Modes in the image must not depend on the builder's umask. */
	umask(077);
	mkdir(fmt("%s/tars", base), 0755);
	test_good_tar();
	test_gzip_pipe();
	test_hostile();
	test_hostile_layers();
	test_corrupt();
	test_whiteouts();
	test_copy_in("openat2");
	husk_resolve_force_fallback(true);   /* kernels before 5.6 */
	test_copy_in("fallback");
	husk_resolve_force_fallback(false);
	test_squashfs();
	test_detect();
	if (run(fmt("chmod -R u+rwX '%s' && rm -rf '%s'", base, base)) != 0)
		printf("# could not remove %s\n", base);
	return unit_done();
}
