/* test_inject.c: host library injection against real objects. The test
 * compiles a fake host tree of shared libraries with real sonames and real
 * GLIBC version needs (arc4random: GLIBC_2.36, pthread_create: GLIBC_2.34),
 * gives it a linker cache made by the real ldconfig (`ldconfig -r`, in a user
 * namespace), and fake images whose libc.so.6 defines GLIBC versions up to a
 * chosen one, then checks what husk_inject_* binds or refuses. */
#include "husk_config.h"
#include "husk.h"
#include "conf.h"
#include "inject.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[PATH_MAX];
static char root[PATH_MAX + 16];

static int sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	if (r != 0)
		printf("# command failed (%d): %s\n", r, cmd);
	return r;
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		return;
	}
	fputs(text, f);
	fclose(f);
}

/* A shared library at DIR/FILE with SONAME whose code is C. */
static int lib(const char *dir, const char *file, const char *soname, const char *c,
	const char *extra)
{
	char src[PATH_MAX + 64];

	snprintf(src, sizeof(src), "%s/src.c", base);
	put(src, c);
	return sh("cc -shared -fPIC -o '%s/%s' -Wl,-soname,%s '%s' %s -L'%s' 2>&1", dir, file,
		soname, src, extra ? extra : "", dir);
}

static char *fmt(const char *f, ...)
{
	static char bufs[8][PATH_MAX + 256];
	static int k;
	char *b = bufs[k++ % 8];
	va_list ap;

	va_start(ap, f);
	vsnprintf(b, sizeof(bufs[0]), f, ap);
	va_end(ap);
	return b;
}

/* A fake image: merged-/usr layout (/lib -> usr/lib), a libc.so.6 defining
 * GLIBC versions up to `top` (NULL: no libc at all), an ld.so.cache made by
 * ldconfig (unless no_cache: the loader's default directories then), and
 * optionally a fake MPI library SONAME.MINOR. */
static void image(const char *name, const char *top, const char *mpi_soname,
	const char *minor, int no_cache)
{
	static const char *const versions[] = { "2.2.5", "2.3", "2.14", "2.17", "2.28", "2.31",
		"2.34", "2.35", "2.36", "2.99", NULL };
	char img[PATH_MAX + 64], dir[PATH_MAX + 128], script[2048] = "";
	size_t n = 0;

	snprintf(img, sizeof(img), "%s/%s", base, name);
	snprintf(dir, sizeof(dir), "%s/usr/lib/x86_64-linux-gnu", img);
	sh("mkdir -p '%s' '%s/etc' && ln -s usr/lib '%s/lib'", dir, img, img);
	put(fmt("%s/etc/ld.so.conf", img), "/usr/lib/x86_64-linux-gnu\n");
	if (top) {
		const char *prev = NULL;
		for (int i = 0; versions[i]; i++) {
			n += (size_t)snprintf(script + n, sizeof(script) - n,
				"GLIBC_%s { global: f%d; }%s%s;\n", versions[i], i,
				prev ? " GLIBC_" : "", prev ? prev : "");
			prev = versions[i];
			if (!strcmp(versions[i], top))
				break;
		}
		put(fmt("%s/libc.map", base), script);
		lib(dir, "libc.so.6", "libc.so.6", "int f0,f1,f2,f3,f4,f5,f6,f7,f8,f9;\n",
			fmt("-nostdlib -Wl,--version-script='%s/libc.map'", base));
	}
	if (mpi_soname)
		lib(dir, fmt("%s.%s", mpi_soname, minor), mpi_soname,
			"int MPI_Init(void) { return 0; }\n", "-nostdlib");
	if (!no_cache)
		sh("unshare -r /sbin/ldconfig -r '%s' 2>&1", img);
}

static int open_image(struct husk_image *img, const char *name)
{
	struct husk_err err = { 0 };
	int r = husk_image_open(img, fmt("%s/%s", base, name), &err);

	if (r < 0)
		printf("# %s\n", err.msg);
	return r;
}

/* Inject into a fresh husk_host: one profile (p, flags), or with c the MPI
 * that husk_inject_mpi picks among c's profiles. Returns the status (-2: the
 * image could not be opened) and leaves the message in err. */
static int try_inject(const char *image_name, const struct husk_profile *p, unsigned flags,
	const struct husk_conf *c, struct husk_host *h, struct husk_err *err)
{
	struct husk_image img;
	struct husk_inject *ctx;
	int r;

	memset(err, 0, sizeof(*err));
	husk_host_init(h);
	if (open_image(&img, image_name) < 0)
		return -2;
	if (husk_inject_open(&ctx, &img, err) < 0) {
		husk_image_close(&img);
		return -2;
	}
	r = c ? husk_inject_mpi(ctx, h, c, err) : husk_inject_profile(ctx, h, p, flags, err);
	if (r < 0)
		printf("# %s: %s\n", image_name, err->msg);
	husk_inject_close(ctx);
	husk_image_close(&img);
	return r;
}

static int try_profile(const char *image_name, const struct husk_profile *p, unsigned flags,
	struct husk_host *h, struct husk_err *err)
{
	return try_inject(image_name, p, flags, NULL, h, err);
}

static bool has_bind(const struct husk_host *h, const char *dst, const char *src_suffix)
{
	for (size_t i = 0; i < h->n_binds; i++) {
		size_t a = strlen(h->binds[i].src), b = strlen(src_suffix);
		if (!strcmp(h->binds[i].dst, dst) && h->binds[i].ro && a >= b &&
		    !strcmp(h->binds[i].src + a - b, src_suffix))
			return true;
	}
	return false;
}

static const struct husk_host_item *item(const struct husk_host *h, const char *what,
	const char *name)
{
	for (size_t i = 0; i < h->n_items; i++)
		if (!strcmp(h->items[i].what, what) && !strcmp(h->items[i].name, name))
			return &h->items[i];
	return NULL;
}

static int sparse_reads;
static int read_at(void *data, uint64_t off, size_t len, void *dst)
{
	sparse_reads++;
	return pread(*(int *)data, dst, len, (off_t)off) == (ssize_t)len ? 0 : -1;
}

static void test_parsers(void)
{
	char *buf = NULL;
	size_t len = 0;
	struct husk_ldcache c;
	struct husk_elf e;
	const char *libc;
	FILE *f;

	CHECK("2.34 > 2.4", husk_version_cmp("2.34", "2.4") > 0);
	CHECK("2.3 < 2.3.4", husk_version_cmp("2.3", "2.3.4") < 0);
	CHECK("2.36 == 2.36", husk_version_cmp("2.36", "2.36") == 0);
	CHECK("'' < 2.2.5", husk_version_cmp("", "2.2.5") < 0);
	CHECK("10.1 > 9.99", husk_version_cmp("10.1", "9.99") > 0);
	CHECK("glibc: libc.so.6", husk_soname_is_glibc("libc.so.6"));
	CHECK("glibc: libpthread.so.0", husk_soname_is_glibc("libpthread.so.0"));
	CHECK("glibc: ld-linux-x86-64.so.2", husk_soname_is_glibc("ld-linux-x86-64.so.2"));
	CHECK("not glibc: libmpi.so.40", !husk_soname_is_glibc("libmpi.so.40"));
	CHECK("not glibc: libstdc++.so.6", !husk_soname_is_glibc("libstdc++.so.6"));

	/* The machine's own cache and libc: what glibc says of itself. */
	f = fopen("/etc/ld.so.cache", "re");
	if (f) {
		size_t cap = 1 << 20;
		buf = malloc(cap);
		while (buf && !feof(f)) {
			len += fread(buf + len, 1, cap - len, f);
			if (len == cap)
				buf = realloc(buf, cap *= 2);
		}
		fclose(f);
	}
	CHECK("the host's ld.so.cache parses", buf && husk_ldcache_parse(buf, len, &c) == 0);
	libc = buf ? husk_ldcache_find(&c, "libc.so.6", NULL) : NULL;
	CHECK("the host's cache has libc.so.6", libc != NULL);
	if (libc) {
		int fd = open(libc, O_RDONLY | O_CLOEXEC);
		struct stat st;
		char *lb = NULL;
		if (fd >= 0 && fstat(fd, &st) == 0 && (lb = malloc((size_t)st.st_size)) &&
		    read(fd, lb, (size_t)st.st_size) == st.st_size && husk_elf_parse(lb,
		    (size_t)st.st_size, &e) == 0) {
			CHECK_STR("libc.so.6 defines GLIBC_ up to gnu_get_libc_version()",
				e.glibc_defined, gnu_get_libc_version());
			CHECK_STR("libc.so.6's soname", e.soname, "libc.so.6");
			husk_elf_free(&e);
			sparse_reads = 0;
			CHECK("libc.so.6 read piecewise", husk_elf_parse_sparse(read_at, &fd,
				(size_t)st.st_size, &e) == 0);
			CHECK_STR("  the same glibc version", e.glibc_defined, gnu_get_libc_version());
			CHECK("  in a few reads", sparse_reads > 0 && sparse_reads < 8);
			CHECK("libc.so.6 is of this machine", e.machine == husk_elf_native_machine());
			husk_elf_free(&e);
		} else {
			CHECK("parse the host's libc.so.6", 0);
		}
		free(lb);
		if (fd >= 0)
			close(fd);
	}
	if (buf) {
		husk_ldcache_free(&c);
		memcpy(buf, "glibc-ld.so.cache1.0", 20);
		CHECK("a cache of another format is refused", husk_ldcache_parse(buf, len, &c) < 0 &&
			errno == EINVAL);
		CHECK("a truncated cache is refused", husk_ldcache_parse("glibc-ld.so.cache1.1", 20,
			&c) < 0);
	}
	free(buf);
	CHECK("text is not ELF", husk_elf_parse("hello, world, this is not an ELF object at all"
		" and it is long enough", 66, &e) < 0 && errno == EINVAL);
}

/* The fake host: libold (strlen: GLIBC_2.2.5), libmid (needs libold;
 * pthread_create: GLIBC_2.34), libnew (arc4random: GLIBC_2.36), libplug
 * (needed by a plugin in the fake MPI's plugin directory), libfakempi.so.40
 * (needs libmid), the program fakeinfo (needs libold). */
static void host_tree(void)
{
	char *dir = fmt("%s/usr/lib/x86_64-linux-gnu", root);

	sh("mkdir -p '%s/fakempi/plugins' '%s/usr/bin' '%s/etc'", dir, root, root);
	put(fmt("%s/etc/ld.so.conf", root), "/usr/lib/x86_64-linux-gnu\n");
	lib(dir, "libold.so.1.0", "libold.so.1",
		"#include <string.h>\nsize_t old(const char *s) { return strlen(s); }\n", NULL);
	sh("ln -sf libold.so.1.0 '%s/libold.so'", dir);
	lib(dir, "libmid.so.1.0", "libmid.so.1", "#include <pthread.h>\n#include <stddef.h>\n"
		"size_t old(const char *);\nstatic void *run(void *a) { return a; }\n"
		"int mid(void) { pthread_t t; return pthread_create(&t, NULL, run, NULL) + "
		"(int)old(\"x\"); }\n", "-lold -lpthread");
	sh("ln -sf libmid.so.1.0 '%s/libmid.so'", dir);
	lib(dir, "libnew.so.1.0", "libnew.so.1",
		"#include <stdlib.h>\nunsigned nw(void) { return arc4random(); }\n", NULL);
	lib(dir, "libplug.so.1.0", "libplug.so.1",
		"#include <string.h>\nsize_t plug(const char *s) { return strlen(s); }\n", NULL);
	sh("ln -sf libplug.so.1.0 '%s/libplug.so'", dir);
	lib(dir, "libfakempi.so.40.30.4", "libfakempi.so.40", "int mid(void);\n"
		"int MPI_Init(void) { return mid(); }\n", "-lmid");
	lib(fmt("%s/fakempi/plugins", dir), "mca_fake.so", "mca_fake.so",
		"#include <stddef.h>\nsize_t plug(const char *);\nsize_t f(void) { return plug(\"a\"); }\n",
		fmt("-L'%s' -lplug", dir));
	/* A compiler runtime (libatomic's soname) whose host copy defines
	 * ATOM_1.0 and ATOM_2.0; libuse1 needs ATOM_1.0, libuse2 ATOM_2.0. */
	put(fmt("%s/atom.map", base), "ATOM_1.0 { global: a1; };\nATOM_2.0 { global: a2; } ATOM_1.0;\n");
	lib(dir, "libatomic.so.1.2.0", "libatomic.so.1", "int a1, a2;\n",
		fmt("-Wl,--version-script='%s/atom.map'", base));
	sh("ln -sf libatomic.so.1.2.0 '%s/libatomic.so'", dir);
	lib(dir, "libuse1.so.1.0", "libuse1.so.1", "extern int a1;\nint u1(void) { return a1; }\n",
		"-latomic");
	lib(dir, "libuse2.so.1.0", "libuse2.so.1", "extern int a2;\nint u2(void) { return a2; }\n",
		"-latomic");
	put(fmt("%s/src.c", base), "#include <stddef.h>\nsize_t old(const char *);\n"
		"int main(void) { return (int)old(\"\"); }\n");
	sh("cc -o '%s/usr/bin/fakeinfo' '%s/src.c' -L'%s' -lold", root, base, dir);
	sh("unshare -r /sbin/ldconfig -r '%s' 2>&1", root);
}

static void test_host_tree(void)
{
	char *buf = NULL;
	size_t len = 0, cap = 1 << 16;
	FILE *f = fopen(fmt("%s/etc/ld.so.cache", root), "re");
	struct husk_ldcache c;
	struct husk_elf e;

	buf = malloc(cap);
	if (f) {
		len = fread(buf, 1, cap, f);
		fclose(f);
	}
	CHECK("ldconfig -r made a cache of the fake host", len > 0);
	CHECK("the fake host's cache parses", husk_ldcache_parse(buf, len, &c) == 0);
	CHECK_STR("libmid.so.1 in the fake cache", husk_ldcache_find(&c, "libmid.so.1", NULL),
		"/usr/lib/x86_64-linux-gnu/libmid.so.1");
	CHECK("no libabsent.so.1 in the fake cache", !husk_ldcache_find(&c, "libabsent.so.1",
		NULL));
	husk_ldcache_free(&c);
	free(buf);

	f = fopen(fmt("%s/usr/lib/x86_64-linux-gnu/libmid.so.1.0", root), "re");
	buf = malloc(cap = 1 << 20);
	len = f ? fread(buf, 1, cap, f) : 0;
	if (f)
		fclose(f);
	CHECK("libmid parses", husk_elf_parse(buf, len, &e) == 0);
	CHECK_STR("libmid's soname", e.soname, "libmid.so.1");
	CHECK("libmid needs libold.so.1", e.needed && (!strcmp(e.needed[0], "libold.so.1") ||
		(e.needed[1] && !strcmp(e.needed[1], "libold.so.1"))));
	CHECK_STR("libmid needs GLIBC_2.34 (pthread_create)", e.glibc_needed, "2.34");
	CHECK_STR("libmid defines no glibc", e.glibc_defined, "");
	husk_elf_free(&e);
	free(buf);
}

static void test_profiles(void)
{
	struct husk_host h;
	struct husk_err err;
	char *mid[] = { "libmid.so.1", NULL }, *old[] = { "libold.so.1", NULL };
	char *nw[] = { "libnew.so.1", NULL }, *absent[] = { "libabsent.so.3", NULL };
	char *glob[] = { "libmi?.so.*", NULL }, *prog[] = { "fakeinfo", NULL };
	char *mid_absent[] = { "libmid.so.1", "libabsent.so.3", NULL };
	char *use1[] = { "libuse1.so.1", NULL }, *use2[] = { "libuse2.so.1", NULL };
	char *paths[] = { "/usr/lib/*/fakempi:/.husk-host/fakempi", "/nowhere/*:/x", NULL };
	char *env[] = { "FAKE_PLUGINS=${libdir:libfakempi.so.40}/fakempi/plugins", NULL };
	struct husk_profile p = { .name = "test", .kind = HUSK_PROFILE_GPU, .libraries = mid,
		.file = "test.conf", .line = 1 };
	const struct husk_host_item *it;

	CHECK("libmid into a glibc 2.36 image: accepted", try_profile("img236", &p, 0, &h,
		&err) == 0);
	CHECK("  libmid bound at /.husk-host/lib/libmid.so.1", has_bind(&h,
		"/.husk-host/lib/libmid.so.1", "/usr/lib/x86_64-linux-gnu/libmid.so.1.0"));
	CHECK("  and libold, which it needs", has_bind(&h, "/.husk-host/lib/libold.so.1",
		"/usr/lib/x86_64-linux-gnu/libold.so.1.0"));
	CHECK("  but not libc.so.6", !has_bind(&h, "/.husk-host/lib/libc.so.6", ""));
	CHECK("  two binds in all", h.n_binds == 2);
	CHECK("  /.husk-host/lib leads LD_LIBRARY_PATH", h.ld_library_path &&
		!strcmp(h.ld_library_path[0], "/.husk-host/lib") && !h.ld_library_path[1]);
	it = item(&h, "library", "libmid.so.1");
	CHECK("  provenance: libmid, its file and glibc", it && it->detail &&
		strstr(it->detail, "/usr/lib/x86_64-linux-gnu/libmid.so.1.0") &&
		strstr(it->detail, "glibc 2.34"));
	CHECK("  provenance: the profile", item(&h, "profile", "test") != NULL);
	husk_host_free(&h);

	CHECK("libmid into a glibc 2.17 image: refused", try_profile("img217", &p, 0, &h,
		&err) < 0);
	CHECK("  the message names the library, its need and the image's glibc",
		strstr(err.msg, "'libmid.so.1'") && strstr(err.msg, "needs glibc 2.34") &&
		strstr(err.msg, "has glibc 2.17") && strstr(err.msg, "img217"));
	CHECK("  nothing bound", h.n_binds == 0);
	husk_host_free(&h);

	CHECK("the same, read through the image's default directories (no ld.so.cache)",
		try_profile("img217nocache", &p, 0, &h, &err) < 0 && strstr(err.msg, "has glibc 2.17"));
	husk_host_free(&h);

	p.libraries = old;
	CHECK("libold (GLIBC_2.2.5) into the glibc 2.17 image: accepted",
		try_profile("img217", &p, 0, &h, &err) == 0 && h.n_binds == 1);
	husk_host_free(&h);

	p.libraries = nw;
	CHECK("libnew (arc4random, GLIBC_2.36) into a glibc 2.34 image: refused",
		try_profile("img234nocache", &p, 0, &h, &err) < 0 &&
		strstr(err.msg, "needs glibc 2.36") && strstr(err.msg, "has glibc 2.34"));
	husk_host_free(&h);
	CHECK("  with HUSK_INJECT_LEAVE_OUT: left out, launch goes on",
		try_profile("img234nocache", &p, HUSK_INJECT_LEAVE_OUT, &h, &err) == 0 &&
		h.n_binds == 0);
	husk_host_free(&h);

	p.libraries = mid;
	CHECK("an image without glibc: refused", try_profile("imgnolibc", &p, 0, &h, &err) < 0 &&
		strstr(err.msg, "has no glibc"));
	husk_host_free(&h);

	p.libraries = absent;
	CHECK("a library the host lacks: refused, named", try_profile("img236", &p, 0, &h,
		&err) < 0 && strstr(err.msg, "'libabsent.so.3'") &&
		strstr(err.msg, "linker cache"));
	husk_host_free(&h);
	CHECK("  with HUSK_INJECT_LEAVE_OUT: skipped", try_profile("img236", &p,
		HUSK_INJECT_LEAVE_OUT, &h, &err) == 0 && h.n_binds == 0);
	husk_host_free(&h);

	p.libraries = mid_absent;
	CHECK("a missing library after the first: skipped", try_profile("img236", &p, 0, &h,
		&err) == 0 && h.n_binds == 2);
	husk_host_free(&h);

	p.libraries = glob;
	CHECK("a glob over the host cache's sonames", try_profile("img236", &p, 0, &h,
		&err) == 0 && has_bind(&h, "/.husk-host/lib/libmid.so.1", "libmid.so.1.0") &&
		has_bind(&h, "/.husk-host/lib/libold.so.1", "libold.so.1.0") && h.n_binds == 2);
	husk_host_free(&h);

	p.libraries = NULL;
	p.programs = prog;
	setenv("PATH", "/usr/local/bin:/usr/bin", 1);
	CHECK("a program from the host PATH, with its libraries", try_profile("img236", &p, 0, &h,
		&err) == 0 && has_bind(&h, "/.husk-host/bin/fakeinfo", "/usr/bin/fakeinfo") &&
		has_bind(&h, "/.husk-host/lib/libold.so.1", "libold.so.1.0") &&
		h.path && !strcmp(h.path[0], "/.husk-host/bin"));
	husk_host_free(&h);

	p.programs = NULL;
	p.paths = paths;
	p.env = env;
	CHECK("a path entry with a glob: the tree bound, one matching nothing skipped", try_profile("img236", &p, 0, &h,
		&err) == 0 && has_bind(&h, "/.husk-host/fakempi", "/usr/lib/x86_64-linux-gnu/fakempi") &&
		!has_bind(&h, "/x", ""));
	CHECK("  the libraries its plugins need are injected",
		has_bind(&h, "/.husk-host/lib/libplug.so.1", "libplug.so.1.0"));
	CHECK("  the plugins themselves are not bound one by one",
		!has_bind(&h, "/.husk-host/lib/mca_fake.so", ""));
	CHECK_STR("  env with ${libdir:...}", husk_env_get(&h.env, "FAKE_PLUGINS"),
		"/usr/lib/x86_64-linux-gnu/fakempi/plugins");
	husk_host_free(&h);

	p.paths = NULL;
	p.env = NULL;
	p.libraries = use1;
	CHECK("a runtime the image has and that serves the host library: the image's is kept",
		try_profile("img236", &p, 0, &h, &err) == 0 && has_bind(&h,
		"/.husk-host/lib/libuse1.so.1", "libuse1.so.1.0") && h.n_binds == 1);
	husk_host_free(&h);
	p.libraries = use2;
	CHECK("a runtime the image has but too old for the host library: the host's is injected",
		try_profile("img236", &p, 0, &h, &err) == 0 && has_bind(&h,
		"/.husk-host/lib/libatomic.so.1", "libatomic.so.1.2.0") && h.n_binds == 2);
	husk_host_free(&h);
	p.libraries = use1;
	CHECK("a runtime the image lacks: the host's is injected", try_profile("img217", &p, 0,
		&h, &err) == 0 && has_bind(&h, "/.husk-host/lib/libatomic.so.1", "libatomic.so.1.2.0"));
	husk_host_free(&h);

	/* SquashFS images: /lib is a symlink read through husk's reader. */
	p.paths = NULL;
	p.env = NULL;
	p.libraries = mid;
	CHECK("SquashFS image with glibc 2.36: accepted", try_profile("img236.sqfs", &p, 0, &h,
		&err) == 0 && h.n_binds == 2);
	husk_host_free(&h);
	CHECK("SquashFS image with glibc 2.17: refused", try_profile("img217.sqfs", &p, 0, &h,
		&err) < 0 && strstr(err.msg, "has glibc 2.17"));
	husk_host_free(&h);
}

static int try_mpi(const char *image_name, struct husk_host *h, struct husk_err *err)
{
	char *ompi_libs[] = { "libfakempi.so.40", NULL }, *mpich_libs[] = { "libfakempi.so.12", NULL };
	char *ompi_env[] = { "OPAL_FAKE=${libdir:libfakempi.so.40}", NULL };
	struct husk_profile profiles[] = {
		{ .name = "openmpi", .kind = HUSK_PROFILE_MPI, .flavour = "openmpi",
		  .libraries = ompi_libs, .env = ompi_env, .file = "openmpi.conf", .line = 1 },
		{ .name = "mpich", .kind = HUSK_PROFILE_MPI, .flavour = "mpich",
		  .libraries = mpich_libs, .file = "mpich.conf", .line = 1 },
	};
	struct husk_conf c = { .profiles = profiles, .n_profiles = 2 };

	return try_inject(image_name, NULL, 0, &c, h, err);
}

static void test_mpi(void)
{
	struct husk_host h;
	struct husk_err err;
	const struct husk_host_item *it;

	CHECK("--mpi=host, image built against the host's flavour: accepted",
		try_mpi("mpi40", &h, &err) == 0);
	CHECK("  the MPI library bound", has_bind(&h, "/.husk-host/lib/libfakempi.so.40",
		"libfakempi.so.40.30.4"));
	CHECK("  with what it needs", has_bind(&h, "/.husk-host/lib/libmid.so.1", "libmid.so.1.0") &&
		has_bind(&h, "/.husk-host/lib/libold.so.1", "libold.so.1.0") && h.n_binds == 3);
	CHECK_STR("  the profile's env", husk_env_get(&h.env, "OPAL_FAKE"),
		"/usr/lib/x86_64-linux-gnu");
	it = item(&h, "mpi", "openmpi");
	CHECK("  provenance: the flavour, host and image libraries", it && it->detail &&
		strstr(it->detail, "libfakempi.so.40.30.4") && strstr(it->detail, "libfakempi.so.40.20.1"));
	husk_host_free(&h);

	CHECK("image built against mpich, host has openmpi: refused", try_mpi("mpi12", &h, &err) < 0 &&
		strstr(err.msg, "built against mpich (libfakempi.so.12)") &&
		strstr(err.msg, "libfakempi.so.40 for openmpi") && h.n_binds == 0);
	husk_host_free(&h);
	CHECK("image without MPI: refused", try_mpi("img236", &h, &err) < 0 &&
		strstr(err.msg, "has no MPI library"));
	husk_host_free(&h);
	CHECK("image with a newer MPI than the host's: refused", try_mpi("mpi40new", &h, &err) < 0 &&
		strstr(err.msg, "newer than the host's"));
	husk_host_free(&h);
	CHECK("image with the host's MPI but an old glibc: refused", try_mpi("mpi40old", &h, &err) < 0 &&
		strstr(err.msg, "needs glibc 2.34") && strstr(err.msg, "--mpi=container"));
	husk_host_free(&h);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(base, sizeof(base), "%s/husk-inject-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(root, sizeof(root), "%s/host", base);
	test_parsers();
	host_tree();
	test_host_tree();
	image("img236", "2.36", NULL, NULL, 0);
	/* img236's own libatomic.so.1 defines ATOM_1.0 only. */
	put(fmt("%s/atom1.map", base), "ATOM_1.0 { global: a1; };\n");
	lib(fmt("%s/img236/usr/lib/x86_64-linux-gnu", base), "libatomic.so.1", "libatomic.so.1",
		"int a1;\n", fmt("-nostdlib -Wl,--version-script='%s/atom1.map'", base));
	sh("unshare -r /sbin/ldconfig -r '%s/img236' 2>&1", base);
	image("img217", "2.17", NULL, NULL, 0);
	image("img217nocache", "2.17", NULL, NULL, 1);
	image("img234nocache", "2.34", NULL, NULL, 1);
	image("imgnolibc", NULL, NULL, NULL, 0);
	image("mpi40", "2.36", "libfakempi.so.40", "20.1", 0);
	image("mpi40new", "2.36", "libfakempi.so.40", "40.1", 0);
	image("mpi40old", "2.31", "libfakempi.so.40", "20.1", 0);
	image("mpi12", "2.36", "libfakempi.so.12", "0.1", 0);
	sh("mksquashfs '%s/img236' '%s/img236.sqfs' -quiet -no-progress -all-root >/dev/null "
		"&& mksquashfs '%s/img217' '%s/img217.sqfs' -quiet -no-progress -all-root >/dev/null",
		base, base, base, base);
	setenv("HUSK_HOST_ROOT", root, 1);
	test_profiles();
	test_mpi();
	sh("rm -rf '%s'", base);
	return unit_done();
}
