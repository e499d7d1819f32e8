/* inject.c: host libraries, programs and trees added to a container from a
 * profile (see inject.h for the layout inside and the host root), and
 * --mpi=host. Everything is decided before the launch, from the host's
 * linker cache and ELF headers and from the image read without mounting it:
 * the result is a list of read-only binds, variables and provenance lines in
 * a struct husk_host, or one error line saying what is incompatible. */
#include "husk_config.h"
#include "inject.h"
#include "sqfs.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#elif defined(__powerpc64__)
#define MULTIARCH "powerpc64le-linux-gnu"
#else
#define MULTIARCH "unknown-linux-gnu"
#endif

/* Where a loader finds libraries without a cache (the image's fallback). */
static const char *const image_lib_dirs[] = { "/lib/" MULTIARCH, "/usr/lib/" MULTIARCH,
	"/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib", NULL };

/* Compiler runtimes: when the image has its own copy, the image's is used
 * (the application was built with it, and a host copy that is older would
 * break it), provided it defines every version the host objects need. */
static const char *const runtime_sonames[] = { "libstdc++.so.6", "libgcc_s.so.1",
	"libgfortran.so.5", "libgfortran.so.4", "libquadmath.so.0", "libgomp.so.1",
	"libatomic.so.1", NULL };

#define MAX_SCAN_FILES 4096   /* ELF files looked at below one `path` entry */

struct injected {            /* a library already bound, for every profile */
	char *soname, *src;
};

struct image_obj {           /* an image ELF file already read */
	char *path;
	bool ok;
	struct husk_elf elf;
};

struct husk_inject {
	struct husk_image *img;
	char *root;                  /* "" or the host root, no trailing '/' */
	struct husk_ldcache host;
	int host_state;              /* 0 not read, 1 read, -1 none */
	struct husk_ldcache image;
	int image_state;
	int glibc_state;             /* 0 not looked, 1 found, -1 none */
	char glibc[32];              /* the image's, e.g. "2.36" */
	struct injected *inj;
	size_t n_inj;
	struct image_obj *image_objs;
	size_t n_image_objs;
};

/* One object of a profile's closure. */
enum obj_kind { OBJ_LIB, OBJ_PROGRAM, OBJ_PLUGIN };
struct obj {
	enum obj_kind kind;
	char *name;                  /* soname, program name, or plugin path */
	char *src;                   /* the real host file (below the host root) */
	char *needed_by;             /* the object that pulled it in, or NULL */
	struct husk_elf elf;
	bool left_out;
};
struct closure {
	struct husk_inject *ctx;
	const char *what;            /* "--mpi=host", "profile 'nvidia'" */
	unsigned flags;
	struct obj *v;
	size_t n;
	char **from_image;           /* runtimes left to the image's copy */
	size_t n_from_image;
	struct husk_err *err;
};

static bool strv_has(char **v, const char *s)
{
	for (; v && *v; v++)
		if (!strcmp(*v, s))
			return true;
	return false;
}

/* ---- context ----------------------------------------------------------------- */

int husk_inject_open(struct husk_inject **out, struct husk_image *img, struct husk_err *err)
{
	struct husk_inject *ctx = calloc(1, sizeof(*ctx));
	const char *root = getenv("HUSK_HOST_ROOT");

	if (!ctx)
		return husk_err_set(err, ENOMEM, "host injection");
	ctx->img = img;
	if (root && *root && strcmp(root, "/")) {
		if (root[0] != '/') {
			free(ctx);
			return husk_err_set(err, 0, "HUSK_HOST_ROOT '%s': not an absolute path; "
				"give the directory that stands for the host's /", root);
		}
		ctx->root = husk_path_normalize(root);
	} else {
		ctx->root = strdup("");
	}
	if (!ctx->root) {
		free(ctx);
		return husk_err_set(err, ENOMEM, "host injection");
	}
	*out = ctx;
	return 0;
}

void husk_inject_close(struct husk_inject *ctx)
{
	if (!ctx)
		return;
	husk_ldcache_free(&ctx->host);
	husk_ldcache_free(&ctx->image);
	for (size_t i = 0; i < ctx->n_inj; i++) {
		free(ctx->inj[i].soname);
		free(ctx->inj[i].src);
	}
	free(ctx->inj);
	for (size_t i = 0; i < ctx->n_image_objs; i++) {
		free(ctx->image_objs[i].path);
		husk_elf_free(&ctx->image_objs[i].elf);
	}
	free(ctx->image_objs);
	free(ctx->root);
	free(ctx);
}

const char *husk_inject_host_root(const struct husk_inject *ctx)
{
	return ctx->root;
}

/* A host path as husk opens it: below the host root. */
static char *host_path(const struct husk_inject *ctx, const char *path)
{
	return husk_strdup_printf("%s%s", ctx->root, path);
}

/* The same path as the host sees it (for messages and provenance). */
static const char *shown(const struct husk_inject *ctx, const char *real)
{
	size_t n = strlen(ctx->root);

	if (n && !strncmp(real, ctx->root, n) && real[n] == '/')
		return real + n;
	return real;
}

static int host_cache(struct husk_inject *ctx, const char *what, struct husk_err *err)
{
	autofree char *path = NULL;
	autofree char *buf = NULL;
	size_t len;

	if (ctx->host_state)
		return ctx->host_state > 0 ? 0 : -1;
	ctx->host_state = -1;
	if (!(path = host_path(ctx, "/etc/ld.so.cache")))
		return husk_err_set(err, ENOMEM, "%s", what);
	if (husk_read_fileat(AT_FDCWD, path, &buf, &len, 64 << 20) < 0) {
		husk_err_set(err, errno, "%s: host linker cache '%s'", what, path);
		return husk_err_hint(err, "run ldconfig on the host%s", *ctx->root ?
			" (or `ldconfig -r HUSK_HOST_ROOT`)" : ""), -1;
	}
	if (husk_ldcache_parse(buf, len, &ctx->host) < 0) {
		husk_err_set(err, 0, "%s: host linker cache '%s': not a glibc ld.so.cache "
			"(format 1.1)", what, path);
		return husk_err_hint(err, "run ldconfig on the host"), -1;
	}
	ctx->host_state = 1;
	return 0;
}

/* Map and parse a host file; 1 when it is not an ELF object of ours. */
static int elf_load(const char *path, struct husk_elf *e)
{
	autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	void *m;
	int r;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -1;
	if (!S_ISREG(st.st_mode) || st.st_size < 64)
		return 1;
	if ((m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
		return -1;
	r = husk_elf_parse(m, (size_t)st.st_size, e);
	munmap(m, (size_t)st.st_size);
	if (r < 0)
		return 1;
	if (e->machine != husk_elf_native_machine()) {
		husk_elf_free(e);
		return 1;
	}
	return 0;
}

/* Find soname the way the host's loader would through its cache: the first
 * entry that is an object of our machine. *real gets the file (below the
 * root, symlinks resolved). 1 when there is none. */
static int host_find(struct husk_inject *ctx, const char *soname, char **real, struct husk_elf *e)
{
	size_t pos = 0;
	const char *p;

	while ((p = husk_ldcache_find(&ctx->host, soname, &pos))) {
		autofree char *full = host_path(ctx, p);
		if (!full)
			return -1;
		if (elf_load(full, e) != 0)
			continue;
		if (!(*real = realpath(full, NULL))) {
			husk_elf_free(e);
			continue;
		}
		return 0;
	}
	return 1;
}

/* ---- the image, read without mounting it --------------------------------------- */

static int image_readlink(struct husk_inject *ctx, const char *path, char *buf, size_t size)
{
	ssize_t n;

	if (ctx->img->kind == HUSK_IMAGE_SQUASHFS) {
		struct husk_err e = { 0 };
		struct sqfs_reader *rd = husk_image_sqfs(ctx->img, &e);
		return rd ? husk_sqfs_reader_readlink(rd, path, buf, size) : -1;
	}
	/* Every directory above path was already checked not to be a symlink. */
	n = readlinkat(ctx->img->fd, path[1] ? path + 1 : ".", buf, size - 1);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

/* Resolve the symlinks of an image path as the container would see them
 * (absolute targets from the image's root, ".." never above it). */
static int image_realpath(struct husk_inject *ctx, const char *path, char out[PATH_MAX])
{
	char rest[PATH_MAX], target[PATH_MAX], tmp[PATH_MAX];
	char *p = rest;
	int links = 0;

	if (snprintf(rest, sizeof(rest), "%s", path) >= (int)sizeof(rest))
		return errno = ENAMETOOLONG, -1;
	out[0] = '\0';
	while (*p) {
		char *c, *end;
		size_t olen = strlen(out);
		int n;
		while (*p == '/')
			p++;
		if (!*p)
			break;
		c = p;
		end = strchr(p, '/');
		p = end ? end + 1 : p + strlen(p);
		if (end)
			*end = '\0';
		if (!strcmp(c, "."))
			continue;
		if (!strcmp(c, "..")) {
			char *slash = strrchr(out, '/');
			if (slash)
				*slash = '\0';
			continue;
		}
		if (olen + 1 + strlen(c) >= PATH_MAX)
			return errno = ENAMETOOLONG, -1;
		out[olen] = '/';
		strcpy(out + olen + 1, c);
		n = image_readlink(ctx, out, target, sizeof(target));
		if (n < 0 && errno == EINVAL)
			continue;       /* not a symlink */
		if (n < 0)
			return -1;
		if (++links > 40)
			return errno = ELOOP, -1;
		out[olen] = '\0';   /* the link's directory */
		if (target[0] == '/')
			out[0] = '\0';
		if (snprintf(tmp, sizeof(tmp), "%s/%s", target, p) >= (int)sizeof(tmp))
			return errno = ENAMETOOLONG, -1;
		strcpy(rest, tmp);
		p = rest;
	}
	if (!out[0])
		strcpy(out, "/");
	return 0;
}

static int image_cache(struct husk_inject *ctx)
{
	struct husk_err e = { 0 };
	autofree char *buf = NULL;
	size_t len;

	if (ctx->image_state)
		return ctx->image_state > 0 ? 0 : -1;
	ctx->image_state = -1;
	if (husk_image_read_file(ctx->img, "/etc/ld.so.cache", &buf, &len, 64 << 20, &e) != 0 ||
	    husk_ldcache_parse(buf, len, &ctx->image) < 0)
		return -1;
	ctx->image_state = 1;
	return 0;
}

/* Where the image's loader finds soname: through its cache, else in the
 * usual directories. The real path (symlinks resolved) in out; 1: none. */
static int image_find(struct husk_inject *ctx, const char *soname, char out[PATH_MAX])
{
	size_t pos = 0;
	const char *p;
	char cand[PATH_MAX];

	if (image_cache(ctx) == 0)
		while ((p = husk_ldcache_find(&ctx->image, soname, &pos)))
			if (image_realpath(ctx, p, out) == 0)
				return 0;
	for (int i = 0; image_lib_dirs[i]; i++) {
		snprintf(cand, sizeof(cand), "%s/%s", image_lib_dirs[i], soname);
		if (image_realpath(ctx, cand, out) == 0 && husk_image_exists(ctx->img, out))
			return 0;
	}
	return 1;
}

struct image_reader {
	struct husk_inject *ctx;
	const char *path;
	int fd;                      /* a directory image's file */
};

static int image_pread(void *data, uint64_t off, size_t len, void *dst)
{
	struct image_reader *r = data;

	if (r->fd < 0) {
		struct husk_err e = { 0 };
		struct sqfs_reader *rd = husk_image_sqfs(r->ctx->img, &e);
		return rd ? husk_sqfs_reader_pread(rd, r->path, off, len, dst) : -1;
	}
	while (len) {
		ssize_t n = pread(r->fd, dst, len, (off_t)off);
		if (n <= 0)
			return n < 0 ? -1 : (errno = EIO, -1);
		dst = (char *)dst + n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* Parse an image ELF file, once per launch, reading only the pieces that
 * matter (a libc.so.6 is 2 MB; its version table a few KB). NULL when it is
 * missing or not an ELF object of ours (err->msg stays empty), or on a read
 * error (err set). */
static const struct husk_elf *image_elf(struct husk_inject *ctx, const char *real,
	struct husk_err *err)
{
	struct image_reader rd = { .ctx = ctx, .path = real, .fd = -1 };
	struct image_obj *v;
	struct husk_elf e;
	uint64_t size = 0;
	struct stat st;
	int r;

	for (size_t i = 0; i < ctx->n_image_objs; i++)
		if (!strcmp(ctx->image_objs[i].path, real))
			return ctx->image_objs[i].ok ? &ctx->image_objs[i].elf : NULL;
	if (ctx->img->kind == HUSK_IMAGE_SQUASHFS) {
		struct sqfs_reader *sq = husk_image_sqfs(ctx->img, err);
		r = sq ? husk_sqfs_reader_size(sq, real, &size) : -1;
	} else if ((rd.fd = husk_resolve(ctx->img->fd, real, O_RDONLY | O_NOCTTY)) < 0) {
		r = errno == ENOENT ? 1 : -1;
	} else {
		r = fstat(rd.fd, &st) < 0 ? -1 : S_ISREG(st.st_mode) ? 0 : 1;
		size = (uint64_t)st.st_size;
	}
	if (r == 0 && husk_elf_parse_sparse(image_pread, &rd, (size_t)size, &e) < 0)
		r = errno == EINVAL ? 1 : -1;
	if (rd.fd >= 0)
		close(rd.fd);
	if (r < 0)
		return husk_err_set(err, errno, "image '%s': reading '%s'", ctx->img->path, real), NULL;
	if (r == 0 && e.machine != husk_elf_native_machine()) {
		husk_elf_free(&e);
		r = 1;
	}
	if (!(v = realloc(ctx->image_objs, (ctx->n_image_objs + 1) * sizeof(*v)))) {
		if (r == 0)
			husk_elf_free(&e);
		return husk_err_set(err, ENOMEM, "image '%s'", ctx->img->path), NULL;
	}
	ctx->image_objs = v;
	v = &v[ctx->n_image_objs++];
	v->path = strdup(real);
	v->ok = r == 0;
	if (r == 0)
		v->elf = e;
	else
		memset(&v->elf, 0, sizeof(v->elf));
	return v->ok ? &v->elf : NULL;
}

/* The image's glibc version (its libc.so.6's highest GLIBC_x.y). */
static int image_glibc(struct husk_inject *ctx, struct husk_err *err)
{
	char real[PATH_MAX];
	const struct husk_elf *e;

	if (ctx->glibc_state)
		return 0;
	ctx->glibc_state = -1;
	if (image_find(ctx, "libc.so.6", real) != 0)
		return 0;
	err->msg[0] = '\0';
	if (!(e = image_elf(ctx, real, err)))
		return err->msg[0] ? -1 : 0;
	if (e->glibc_defined[0]) {
		strcpy(ctx->glibc, e->glibc_defined);
		ctx->glibc_state = 1;
	}
	return 0;
}

/* ---- the closure of a profile ----------------------------------------------------- */

static bool injected(const struct husk_inject *ctx, const char *soname)
{
	for (size_t i = 0; i < ctx->n_inj; i++)
		if (!strcmp(ctx->inj[i].soname, soname))
			return true;
	return false;
}

static struct obj *closure_has(struct closure *w, const char *name)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->v[i].kind == OBJ_LIB && !strcmp(w->v[i].name, name))
			return &w->v[i];
	return NULL;
}

static void closure_free(struct closure *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->v[i].name);
		free(w->v[i].src);
		free(w->v[i].needed_by);
		husk_elf_free(&w->v[i].elf);
	}
	free(w->v);
	w->v = NULL;
	w->n = 0;
	for (size_t i = 0; i < w->n_from_image; i++)
		free(w->from_image[i]);
	free(w->from_image);
}

/* Take ownership of src and e. */
static int closure_add(struct closure *w, enum obj_kind kind, const char *name, char *src,
	struct husk_elf *e, const char *needed_by)
{
	struct obj *v = realloc(w->v, (w->n + 1) * sizeof(*v));

	if (!v) {
		free(src);
		husk_elf_free(e);
		return husk_err_set(w->err, ENOMEM, "%s", w->what);
	}
	w->v = v;
	v = &w->v[w->n++];
	memset(v, 0, sizeof(*v));
	v->kind = kind;
	v->src = src;
	v->elf = *e;
	v->name = strdup(name);
	v->needed_by = needed_by ? strdup(needed_by) : NULL;
	if (!v->name || (needed_by && !v->needed_by))
		return husk_err_set(w->err, ENOMEM, "%s", w->what);
	return 0;
}

/* Does the image's copy of runtime library soname define every version
 * the host objects need from it? 1 yes, 0 no, -1 error. */
static int image_runtime_ok(struct closure *w, const char *soname)
{
	char real[PATH_MAX];
	const struct husk_elf *e;
	int ok = 1;
	size_t n = strlen(soname);

	bool asked = false;

	for (size_t i = 0; i < w->n && !asked; i++)
		for (char **v = w->v[i].elf.vneed; v && *v && !asked; v++)
			asked = !strncmp(*v, soname, n) && (*v)[n] == ' ';
	if (!asked)
		return 1;   /* no version needed from it: any copy serves */
	if (image_find(w->ctx, soname, real) != 0)
		return 0;
	w->err->msg[0] = '\0';
	if (!(e = image_elf(w->ctx, real, w->err)))
		return w->err->msg[0] ? -1 : 0;
	for (size_t i = 0; i < w->n && ok; i++)
		for (char **v = w->v[i].elf.vneed; v && *v && ok; v++)
			if (!strncmp(*v, soname, n) && (*v)[n] == ' ' && !strv_has(e->vdef, *v + n + 1)) {
				husk_info("%s: the image's %s lacks %s, which '%s' needs: the host's is "
					"injected", w->what, soname, *v + n + 1, w->v[i].name);
				ok = 0;
			}
	return ok;
}

/* A compiler runtime (libstdc++, ...) that the image has: the application
 * was built with it, and a host copy older than it would break the
 * application, so the image's is kept unless it is too old for the host
 * objects (checked once the closure is complete). */
static bool runtime_in_image(struct closure *w, const char *soname)
{
	char real[PATH_MAX];

	return strv_has((char **)runtime_sonames, soname) && image_find(w->ctx, soname, real) == 0;
}

/* Resolve what object i needs, adding the host libraries to the closure. */
static int closure_deps(struct closure *w, size_t i)
{
	for (size_t k = 0; w->v[i].elf.needed[k]; k++) {
		const char *dep = w->v[i].elf.needed[k];
		autofree char *parent = strdup(w->v[i].name);
		struct husk_elf e;
		char *real = NULL;
		int r;

		if (!parent)
			return husk_err_set(w->err, ENOMEM, "%s", w->what);
		if (husk_soname_is_glibc(dep) || injected(w->ctx, dep) || closure_has(w, dep))
			continue;
		if (strv_has(w->from_image, dep))
			continue;
		if (runtime_in_image(w, dep)) {
			husk_debug("%s: %s (needed by %s) comes from the image", w->what, dep, parent);
			if (husk_strv_push(&w->from_image, &w->n_from_image, dep) < 0)
				return husk_err_set(w->err, ENOMEM, "%s", w->what);
			continue;
		}
		if ((r = host_find(w->ctx, dep, &real, &e)) < 0)
			return husk_err_set(w->err, errno, "%s: looking for '%s'", w->what, dep);
		if (r > 0) {
			/* The host's own loader would fail too; leave it to the image. */
			husk_warn("%s: '%s', needed by '%s', is not in the host's linker cache; "
				"the image's copy, if any, will be used", w->what, dep, parent);
			continue;
		}
		/* w->v may move: parent is a copy. */
		if (closure_add(w, OBJ_LIB, dep, real, &e, parent) < 0)
			return -1;
	}
	return 0;
}

static int add_library_opt(struct closure *w, const char *soname, bool optional);
static int add_library(struct closure *w, const char *soname)
{
	return add_library_opt(w, soname, false);
}

/* optional: a missing library is skipped (a profile's libraries after its
 * first, which alone must be on the host). */
static int add_library_opt(struct closure *w, const char *soname, bool optional)
{
	struct husk_elf e;
	char *real = NULL;
	int r;

	if (husk_soname_is_glibc(soname) || injected(w->ctx, soname) || closure_has(w, soname))
		return 0;
	if ((r = host_find(w->ctx, soname, &real, &e)) < 0)
		return husk_err_set(w->err, errno, "%s: looking for '%s'", w->what, soname);
	if (r > 0) {
		if (optional || (w->flags & HUSK_INJECT_LEAVE_OUT)) {
			husk_info("%s: '%s' is not on this host; left out", w->what, soname);
			return 0;
		}
		husk_err_set(w->err, 0, "%s: library '%s' is not in the host's linker cache "
			"('%s/etc/ld.so.cache')", w->what, soname, w->ctx->root);
		return husk_err_hint(w->err, "install it on the host and run ldconfig, or "
			"remove it from the profile"), -1;
	}
	return closure_add(w, OBJ_LIB, soname, real, &e, NULL);
}

/* Walk the closure to its end; then give every runtime left to the image a
 * last look, now that all the objects that need it are known, and inject the
 * host's copy of those the image's cannot serve (and walk again). */
static int closure_complete(struct closure *w)
{
	size_t done = 0;
	bool again = true;

	while (again) {
		again = false;
		for (; done < w->n; done++)
			if (closure_deps(w, done) < 0)
				return -1;
		for (size_t j = 0; j < w->n_from_image; j++) {
			int r = image_runtime_ok(w, w->from_image[j]);
			autofree char *soname = NULL;
			if (r < 0)
				return -1;
			if (r > 0)
				continue;
			soname = w->from_image[j];
			memmove(&w->from_image[j], &w->from_image[j + 1],
				(w->n_from_image - j) * sizeof(char *));
			w->n_from_image--;
			j--;
			if (add_library(w, soname) < 0)
				return -1;
			again = true;
		}
	}
	return 0;
}

/* A `library` entry: a soname, a glob over the host cache's sonames, or an
 * absolute glob over host files (below the host root). */
static int add_library_entry(struct closure *w, const char *entry, bool optional)
{
	struct husk_ldcache *c = &w->ctx->host;

	if (!strpbrk(entry, "*?["))
		return add_library_opt(w, entry, optional);
	if (entry[0] == '/') {
		autofree char *pat = host_path(w->ctx, entry);
		glob_t g;
		int r = 0;
		if (!pat || glob(pat, 0, NULL, &g) != 0)
			return 0;
		for (size_t i = 0; i < g.gl_pathc && r == 0; i++) {
			struct husk_elf e;
			char *real;
			if (elf_load(g.gl_pathv[i], &e) != 0)
				continue;
			if (!e.soname || husk_soname_is_glibc(e.soname) || injected(w->ctx, e.soname) ||
			    closure_has(w, e.soname) || !(real = realpath(g.gl_pathv[i], NULL))) {
				husk_elf_free(&e);
				continue;
			}
			r = closure_add(w, OBJ_LIB, e.soname, real, &e, NULL);
		}
		globfree(&g);
		return r;
	}
	for (size_t i = 0; i < c->n; i++)
		if (fnmatch(entry, c->v[i].soname, 0) == 0 && add_library(w, c->v[i].soname) < 0)
			return -1;
	return 0;
}

static int add_program(struct closure *w, const char *name)
{
	const char *path = getenv("PATH");
	autofree char *copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	char *save = NULL;

	if (!copy)
		return husk_err_set(w->err, ENOMEM, "%s", w->what);
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		autofree char *full = NULL;
		struct husk_elf e;
		char *real;
		if (d[0] != '/' || !(full = husk_strdup_printf("%s%s/%s", w->ctx->root, d, name)))
			continue;
		if (access(full, X_OK) != 0 || !(real = realpath(full, NULL)))
			continue;
		if (elf_load(real, &e) != 0)
			memset(&e, 0, sizeof(e));   /* a script: bound, nothing to walk */
		if (!e.needed && !(e.needed = calloc(1, sizeof(char *)))) {
			free(real);
			return husk_err_set(w->err, ENOMEM, "%s", w->what);
		}
		return closure_add(w, OBJ_PROGRAM, name, real, &e, NULL);
	}
	if (w->flags & HUSK_INJECT_LEAVE_OUT) {
		husk_info("%s: program '%s' is not in the host's PATH; left out", w->what, name);
		return 0;
	}
	husk_err_set(w->err, 0, "%s: program '%s' is not in the host's PATH", w->what, name);
	return husk_err_hint(w->err, "install it on the host or remove it from the profile"), -1;
}

/* The ELF files below a host tree bound in (plugin directories): what they
 * need is injected too, and they must suit the image's glibc as well. */
static int scan_tree(struct closure *w, const char *dir, int depth, size_t *count)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int r = 0;

	if (!d)
		return 0;
	while (r == 0 && (de = readdir(d)) && *count < MAX_SCAN_FILES) {
		autofree char *p = NULL;
		struct stat st;
		struct husk_elf e;
		if (de->d_name[0] == '.')
			continue;
		if (!(p = husk_strdup_printf("%s/%s", dir, de->d_name)) || lstat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth < 4) {
			r = scan_tree(w, p, depth + 1, count);
		} else if (S_ISREG(st.st_mode) && strstr(de->d_name, ".so")) {
			++*count;
			if (elf_load(p, &e) == 0) {
				char *src = strdup(p);
				r = src ? closure_add(w, OBJ_PLUGIN, p, src, &e, NULL) :
					husk_err_set(w->err, ENOMEM, "%s", w->what);
			}
		}
	}
	closedir(d);
	return r;
}

/* ${libdir:SONAME}: the host directory of SONAME (as the host names it).
 * Returns 1 when it is not on the host (the entry is skipped). */
static int expand(struct husk_inject *ctx, const char *in, char **out)
{
	const char *s = strstr(in, "${libdir:"), *end;
	autofree char *soname = NULL;
	autofree char *real = NULL;
	char *slash;
	struct husk_elf e;
	int r;

	if (!s) {
		*out = strdup(in);
		return *out ? 0 : -1;
	}
	if (!(end = strchr(s, '}')) || !(soname = strndup(s + 9, (size_t)(end - s - 9))))
		return errno = EINVAL, -1;
	if (ctx->host_state <= 0 || (r = host_find(ctx, soname, &real, &e)) != 0)
		return 1;
	husk_elf_free(&e);
	slash = strrchr(real, '/');
	*slash = '\0';
	*out = husk_strdup_printf("%.*s%s%s", (int)(s - in), in, shown(ctx, real), end + 1);
	if (*out && strstr(*out, "${libdir:")) {
		char *again = NULL;
		r = expand(ctx, *out, &again);
		free(*out);
		*out = again;
		return r;
	}
	return *out ? 0 : -1;
}

/* ---- checks and the result ------------------------------------------------------------ */

static int check_glibc(struct closure *w)
{
	struct husk_inject *ctx = w->ctx;

	if (image_glibc(ctx, w->err) < 0)
		return -1;
	for (size_t i = 0; i < w->n; i++) {
		struct obj *o = &w->v[i];
		if (!o->elf.glibc_needed[0] && !o->elf.needed[0])
			continue;   /* static, or a script */
		if (ctx->glibc_state < 0) {
			husk_err_set(w->err, 0, "%s: image '%s' has no glibc (no libc.so.6 with GLIBC "
				"versions), so the host's '%s' cannot run in it", w->what, ctx->img->path,
				shown(ctx, o->src));
			return husk_err_hint(w->err, "use an image built on a glibc distribution%s",
				strcmp(w->what, "--mpi=host") ? "" : ", or --mpi=container"), -1;
		}
		if (husk_version_cmp(o->elf.glibc_needed, ctx->glibc) <= 0)
			continue;
		if (w->flags & HUSK_INJECT_LEAVE_OUT) {
			husk_warn("%s: host library '%s' ('%s') needs glibc %s, the image has %s; "
				"left out", w->what, o->name, shown(ctx, o->src), o->elf.glibc_needed,
				ctx->glibc);
			o->left_out = true;
			continue;
		}
		husk_err_set(w->err, 0, "%s: host %s '%s' ('%s'%s%s) needs glibc %s, but image '%s' "
			"has glibc %s", w->what, o->kind == OBJ_PROGRAM ? "program" : "library",
			o->kind == OBJ_PLUGIN ? shown(ctx, o->name) : o->name, shown(ctx, o->src),
			o->needed_by ? ", needed by " : "", o->needed_by ? o->needed_by : "",
			o->elf.glibc_needed, ctx->img->path, ctx->glibc);
		return husk_err_hint(w->err, "use an image with glibc %s or newer%s",
			o->elf.glibc_needed, strcmp(w->what, "--mpi=host") ? "" :
			", or --mpi=container"), -1;
	}
	return 0;
}

static int add_dir_once(char ***list, const char *dir)
{
	return strv_has(*list, dir) ? 0 : husk_host_add_str(list, dir);
}

static int commit(struct closure *w, struct husk_host *h)
{
	struct husk_inject *ctx = w->ctx;

	for (size_t i = 0; i < w->n; i++) {
		struct obj *o = &w->v[i];
		autofree char *dst = NULL;
		autofree char *detail = NULL;
		struct injected *v;
		if (o->left_out || o->kind == OBJ_PLUGIN)
			continue;
		dst = husk_strdup_printf("%s/%s", o->kind == OBJ_LIB ? HUSK_HOST_LIBDIR :
			HUSK_HOST_BINDIR, o->name);
		detail = o->elf.glibc_needed[0] ? husk_strdup_printf("%s (needs glibc %s)",
			shown(ctx, o->src), o->elf.glibc_needed) : strdup(shown(ctx, o->src));
		if (!dst || !detail || husk_host_add_bind(h, o->src, dst, true, w->what) < 0 ||
		    husk_host_add_item(h, o->kind == OBJ_LIB ? "library" : "program", o->name,
		    detail) < 0 || add_dir_once(o->kind == OBJ_LIB ? &h->ld_library_path : &h->path,
		    o->kind == OBJ_LIB ? HUSK_HOST_LIBDIR : HUSK_HOST_BINDIR) < 0)
			return husk_err_set(w->err, errno, "%s: '%s'", w->what, o->name);
		if (o->kind != OBJ_LIB)
			continue;
		if (!(v = realloc(ctx->inj, (ctx->n_inj + 1) * sizeof(*v))))
			return husk_err_set(w->err, ENOMEM, "%s", w->what);
		ctx->inj = v;
		v[ctx->n_inj].soname = steal_ptr(&o->name);
		v[ctx->n_inj++].src = steal_ptr(&o->src);
	}
	return 0;
}

/* A host path below the root; a glob takes its first match (sorted), so
 * that a profile can name the multiarch directory with a '*'. NULL with
 * errno ENOENT when a glob matches nothing. */
static char *host_glob(struct husk_inject *ctx, const char *path)
{
	autofree char *full = host_path(ctx, path);
	glob_t g;
	char *r;

	if (!full || !strpbrk(path, "*?["))
		return steal_ptr(&full);
	if (glob(full, 0, NULL, &g) != 0 || !g.gl_pathc) {
		globfree(&g);
		errno = ENOENT;
		return NULL;
	}
	r = strdup(g.gl_pathv[0]);
	globfree(&g);
	if (!r)
		errno = ENOMEM;
	return r;
}

/* path = SRC[:DST] entries: binds (and the ELF files below, scanned). */
struct path_entry { char *src, *dst; };

static int parse_paths(struct closure *w, const struct husk_profile *p, struct path_entry **out,
	size_t *n_out)
{
	size_t count = 0;

	*out = NULL;
	*n_out = 0;
	for (char **e = p->paths; e && *e; e++) {
		autofree char *x = NULL;
		char *colon;
		struct stat st;
		struct path_entry *v;
		int r = expand(w->ctx, *e, &x);
		if (r < 0)
			return husk_err_set(w->err, errno, "%s: path '%s' (%s:%d)", w->what, *e,
				p->file ? p->file : "?", p->line);
		if (r > 0) {
			husk_info("%s: path '%s': its library is not on this host; skipped", w->what, *e);
			continue;
		}
		if ((colon = strchr(x, ':')))
			*colon++ = '\0';
		if (x[0] != '/' || (colon && colon[0] != '/'))
			return husk_err_set(w->err, 0, "%s: path '%s' (%s:%d): SRC and DST must be "
				"absolute", w->what, *e, p->file ? p->file : "?", p->line);
		if (!(v = realloc(*out, (*n_out + 1) * sizeof(*v))))
			return husk_err_set(w->err, ENOMEM, "%s", w->what);
		*out = v;
		v[*n_out].src = host_glob(w->ctx, x);
		/* Without DST, the path the glob matched, as the host names it. */
		if (colon) {
			v[*n_out].dst = strdup(colon);
		} else if (v[*n_out].src) {
			const char *root = husk_inject_host_root(w->ctx);
			size_t rl = strlen(root);
			const char *own = strncmp(v[*n_out].src, root, rl) ? v[*n_out].src :
				v[*n_out].src + rl;
			v[*n_out].dst = strdup(*own ? own : "/");
		} else {
			v[*n_out].dst = strdup(x);
		}
		if (errno == ENOENT && !v[*n_out].src) {
			husk_info("%s: path '%s' matches nothing on this host; skipped", w->what, x);
			free(v[*n_out].dst);
			continue;
		}
		if (!v[*n_out].src || !v[*n_out].dst)
			return husk_err_set(w->err, ENOMEM, "%s", w->what);
		if (stat(v[*n_out].src, &st) < 0) {
			husk_info("%s: path '%s' is not on this host; skipped", w->what, v[*n_out].src);
			free(v[*n_out].src);
			free(v[*n_out].dst);
			continue;
		}
		++*n_out;
		if (S_ISDIR(st.st_mode) && scan_tree(w, v[*n_out - 1].src, 0, &count) < 0)
			return -1;
	}
	return 0;
}

static int inject(struct husk_inject *ctx, struct husk_host *h, const struct husk_profile *p,
	unsigned flags, const char *what, struct husk_err *err)
{
	struct closure w = { .ctx = ctx, .what = what, .flags = flags, .err = err };
	struct path_entry *paths = NULL;
	size_t n_paths = 0;
	int r = -1;

	if ((p->libraries || p->programs || p->paths) && host_cache(ctx, what, err) < 0)
		return -1;
	for (char **l = p->libraries; l && *l; l++)
		if (add_library_entry(&w, *l, l != p->libraries) < 0)
			goto out;
	for (char **l = p->programs; l && *l; l++)
		if (add_program(&w, *l) < 0)
			goto out;
	if (parse_paths(&w, p, &paths, &n_paths) < 0)
		goto out;
	if (closure_complete(&w) < 0)
		goto out;
	if (check_glibc(&w) < 0 || commit(&w, h) < 0)
		goto out;
	for (size_t i = 0; i < n_paths; i++)
		if (husk_host_add_bind(h, paths[i].src, paths[i].dst, true, what) < 0 ||
		    husk_host_add_item(h, "path", paths[i].dst, shown(ctx, paths[i].src)) < 0) {
			husk_err_set(err, errno, "%s: path '%s'", what, paths[i].src);
			goto out;
		}
	for (char **e = p->env; e && *e; e++) {
		autofree char *x = NULL;
		int er = expand(ctx, *e, &x);
		if (er > 0)
			continue;
		if (er < 0 || husk_env_put(&h->env, x) < 0) {
			husk_err_set(err, errno, "%s: env '%s'", what, *e);
			goto out;
		}
	}
	r = 0;
out:
	for (size_t i = 0; i < n_paths; i++) {
		free(paths[i].src);
		free(paths[i].dst);
	}
	free(paths);
	closure_free(&w);
	return r;
}

int husk_inject_profile(struct husk_inject *ctx, struct husk_host *h,
	const struct husk_profile *p, unsigned flags, struct husk_err *err)
{
	autofree char *what = husk_strdup_printf("profile '%s'", p->name);
	autofree char *where = p->file ? husk_strdup_printf("%s:%d", p->file, p->line) : NULL;

	if (!what)
		return husk_err_set(err, ENOMEM, "profile");
	if (inject(ctx, h, p, flags, what, err) < 0)
		return -1;
	if (husk_host_add_item(h, "profile", p->name, where) < 0)
		return husk_err_set(err, ENOMEM, "%s", what);
	return 0;
}

/* ---- --mpi=host ---------------------------------------------------------------------------- */

/* "libmpi.so.40.30.4" after "libmpi.so.40": "30.4" (libtool's age and
 * revision: a higher one has more functions); "" when the name has none. */
static const char *lib_minor(const char *real, const char *soname)
{
	const char *base = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
	size_t n = strlen(soname);

	return !strncmp(base, soname, n) && base[n] == '.' ? base + n + 1 : "";
}

static bool host_has_detect(struct husk_inject *ctx, const struct husk_profile *p)
{
	for (char **d = p->detect; d && *d; d++) {
		autofree char *full = host_path(ctx, *d);
		if (!full || access(full, F_OK) != 0)
			return false;
	}
	return true;
}

/* Does the host have profile p's MPI? Its real library path in *real. */
static bool host_has_mpi(struct husk_inject *ctx, const struct husk_profile *p, char **real)
{
	struct husk_elf e;

	*real = NULL;
	if (!p->libraries || !p->libraries[0] || !host_has_detect(ctx, p) ||
	    host_find(ctx, p->libraries[0], real, &e) != 0)
		return false;
	husk_elf_free(&e);
	return true;
}

static void list_mpi(const struct husk_conf *c, struct husk_inject *ctx, bool on_host, char *buf,
	size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < c->n_profiles; i++) {
		const struct husk_profile *p = &c->profiles[i];
		autofree char *real = NULL;
		if (p->kind != HUSK_PROFILE_MPI || !p->libraries || !p->libraries[0])
			continue;
		if (on_host && !host_has_mpi(ctx, p, &real))
			continue;
		n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s for %s", n ? ", " : "",
			p->libraries[0], p->flavour ? p->flavour : p->name);
		if (n >= size)
			break;
	}
	if (!buf[0])
		snprintf(buf, size, "none");
}

int husk_inject_mpi(struct husk_inject *ctx, struct husk_host *h, const struct husk_conf *c,
	struct husk_err *err)
{
	const char *what = "--mpi=host";
	const struct husk_profile *p = NULL;
	char image_real[PATH_MAX], known[512];
	autofree char *host_real = NULL;
	autofree char *detail = NULL;
	const char *flavour;

	for (size_t i = 0; i < c->n_profiles && !p; i++) {
		const struct husk_profile *q = &c->profiles[i];
		if (q->kind == HUSK_PROFILE_MPI && q->libraries && q->libraries[0] &&
		    image_find(ctx, q->libraries[0], image_real) == 0)
			p = q;
	}
	if (!p) {
		list_mpi(c, ctx, false, known, sizeof(known));
		husk_err_set(err, 0, "%s: image '%s' has no MPI library husk has a profile for (%s)",
			what, ctx->img->path, known);
		return husk_err_hint(err, "run it without --mpi=host (its own MPI, if any, is used), "
			"or add an MPI profile to husk.conf"), -1;
	}
	flavour = p->flavour ? p->flavour : p->name;
	if (host_cache(ctx, what, err) < 0)
		return -1;
	if (!host_has_mpi(ctx, p, &host_real)) {
		list_mpi(c, ctx, true, known, sizeof(known));
		husk_err_set(err, 0, "%s: image '%s' is built against %s (%s), but this host has no "
			"%s (host MPI: %s)", what, ctx->img->path, flavour, p->libraries[0], flavour,
			known);
		return husk_err_hint(err, "use --mpi=container, or an image built against the "
			"host's MPI"), -1;
	}
	/* Same soname: same ABI. Within it, a newer library has more functions;
	 * an application linked against a newer one than the host's may miss some. */
	if (husk_version_cmp(lib_minor(image_real, p->libraries[0]),
	    lib_minor(host_real, p->libraries[0])) > 0) {
		husk_err_set(err, 0, "%s: image '%s' has %s '%s', newer than the host's '%s': the "
			"application may call functions the host's %s lacks", what, ctx->img->path,
			flavour, image_real, shown(ctx, host_real), flavour);
		return husk_err_hint(err, "use --mpi=container, or update the host's %s", flavour), -1;
	}
	if (inject(ctx, h, p, 0, what, err) < 0)
		return -1;
	detail = husk_strdup_printf("host %s, image %s, image glibc %s (profile %s%s%s)",
		shown(ctx, host_real), image_real, ctx->glibc_state > 0 ? ctx->glibc : "?", p->name,
		p->file ? ", " : "", p->file ? p->file : "");
	if (!detail || husk_host_add_item(h, "mpi", flavour, detail) < 0)
		return husk_err_set(err, ENOMEM, "%s", what);
	return 0;
}
