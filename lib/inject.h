/* inject.h: host libraries and programs added to a container (--mpi=host,
 * GPU drivers, interconnect profiles): finding them through the host's
 * linker cache, walking what they need, checking that the image's glibc is
 * new enough, and turning them into read-only binds (struct husk_host).
 *
 * ---- layout inside the container -------------------------------------------
 *   /.husk-host/lib/SONAME   each injected library, bound read-only from the
 *                            host file the host's own loader would pick; the
 *                            directory is put first in LD_LIBRARY_PATH
 *   /.husk-host/bin/NAME     each injected program; first in PATH
 *   DST of `path = SRC:DST`  host trees (plugin directories, configuration),
 *                            read-only; SRC itself when DST is not given
 * Nothing is copied into the image and the image is never written: missing
 * destinations are made by husk's overlay at launch.
 *
 * ---- profile entries, as injection reads them ---------------------------------
 *   library = SONAME      found through the host's linker cache; the first
 *                         library of a profile must be there (for an MPI
 *                         profile it is also the library an image is matched
 *                         on), later ones are injected when the host has them
 *   library = GLOB        over the cache's sonames (libnvidia-*.so.1), or an
 *                         absolute glob over host files
 *   program = NAME        the first NAME in the host's $PATH
 *   path = SRC[:DST]      a host file or tree (SRC may hold a '*', for the
 *                         multiarch directory: its first match); the ELF
 *                         files below a tree are walked like libraries
 *   env = NAME=VALUE      VALUE may hold ${libdir:SONAME}, the host directory
 *                         of SONAME
 *
 * ---- the host ------------------------------------------------------------------
 * Every host lookup (the linker cache /etc/ld.so.cache, the libraries, the
 * programs in $PATH, `path` and `detect` entries) is made below the host
 * root: "/" normally, or $HUSK_HOST_ROOT when set -- a knob for tests (a fake
 * tree of driver libraries with a linker cache made by `ldconfig -r`) and
 * for sites that keep a vendor stack in a tree of its own.
 *
 * Libraries that glibc itself provides (libc, libm, libpthread, libdl, librt,
 * ld-linux, ...) are never injected: they come from the image. A host object
 * that needs a newer GLIBC_x.y than the image's libc.so.6 defines is refused
 * (or, with HUSK_INJECT_LEAVE_OUT, left out with a warning). */
#ifndef HUSK_INJECT_H
#define HUSK_INJECT_H

#include "husk.h"
#include "conf.h"

#include <stdint.h>

#define HUSK_HOST_DIR "/.husk-host"
#define HUSK_HOST_LIBDIR HUSK_HOST_DIR "/lib"
#define HUSK_HOST_BINDIR HUSK_HOST_DIR "/bin"

/* ---- ELF objects and linker caches (pure parsers, unit-tested) ---------- */

struct husk_elf {
	uint16_t machine;        /* e_machine */
	char *soname;            /* DT_SONAME, or NULL */
	char **needed;           /* DT_NEEDED, NULL-terminated */
	char **runpath;          /* DT_RUNPATH (or DT_RPATH) entries, NULL-terminated */
	char **vneed;            /* "FILE VERSION" of .gnu.version_r, NULL-terminated */
	char **vdef;             /* version names of .gnu.version_d, NULL-terminated */
	char glibc_needed[32];   /* highest GLIBC_x.y needed ("" when none) */
	char glibc_defined[32];  /* highest GLIBC_x.y defined ("" when none: not a libc) */
};
/* Parse a 64-bit ELF object of the host's byte order from memory. Returns 0,
 * or -1 with errno EINVAL (not such an ELF object, or malformed). */
int husk_elf_parse(const void *buf, size_t len, struct husk_elf *e);
/* The same for a file read piecewise (the ELF header, program headers,
 * dynamic segment, string and version tables only): rd reads len bytes at
 * off into dst, 0 or -1. size: the file's. */
typedef int (*husk_elf_read_fn)(void *data, uint64_t off, size_t len, void *dst);
int husk_elf_parse_sparse(husk_elf_read_fn rd, void *data, size_t size, struct husk_elf *e);
void husk_elf_free(struct husk_elf *e);
/* The e_machine of the objects this husk can inject (its own). */
uint16_t husk_elf_native_machine(void);

/* Compare two version strings such as "2.34" and "2.4" numerically:
 * <0, 0, >0. An empty string is lower than any version. */
int husk_version_cmp(const char *a, const char *b);
/* Is this soname one of the libraries glibc provides (never injected)? */
bool husk_soname_is_glibc(const char *soname);

struct husk_ldcache_entry { char *soname, *path; };
struct husk_ldcache {
	struct husk_ldcache_entry *v;   /* in the cache's order (the loader's preference) */
	size_t n;
};
/* Parse an ld.so.cache (glibc's "glibc-ld.so.cache1.1" format, alone or
 * after the old "ld.so-1.7.0" one). Entries for other hardware capability
 * subdirectories (glibc-hwcaps) are left out. -1 with errno EINVAL when it
 * is not such a cache. */
int husk_ldcache_parse(const void *buf, size_t len, struct husk_ldcache *c);
void husk_ldcache_free(struct husk_ldcache *c);
/* The first path for soname, or NULL; *pos (start 0) walks further ones. */
const char *husk_ldcache_find(const struct husk_ldcache *c, const char *soname, size_t *pos);

/* ---- injection --------------------------------------------------------- */

/* Facts about the host (root, linker cache) and the image (its libraries,
 * its glibc), gathered once per launch and shared by every profile. */
struct husk_inject;
/* img: the image the command will run (opened by the caller, kept open
 * while ctx lives). why: what asks ("--mpi=host"), for binds and messages. */
int husk_inject_open(struct husk_inject **ctx, struct husk_image *img, struct husk_err *err);
void husk_inject_close(struct husk_inject *ctx);
/* The host root in use ("" for "/"). */
const char *husk_inject_host_root(const struct husk_inject *ctx);

enum {
	/* An incompatible library (too new a glibc) or a missing one is left
	 * out with a warning instead of refusing the launch (GPU driver
	 * libraries, whose lists name more than one driver version has). */
	HUSK_INJECT_LEAVE_OUT = 1,
};
/* Inject what profile p lists: its library, program, path and env entries
 * (device entries are the caller's), with the libraries they need, into h.
 * The first library must be on the host; later ones, and globs, are
 * injected when the host has them. Refuses (-1) when the first library or a
 * program is missing on the host, when the image has no
 * glibc, or when an injected object needs a newer glibc than the image's. */
int husk_inject_profile(struct husk_inject *ctx, struct husk_host *h,
	const struct husk_profile *p, unsigned flags, struct husk_err *err);

/* --mpi=host: pick the MPI profile of c whose MPI library (its first
 * `library` entry) the image was built against, check the host has the
 * same, and inject it. Refuses with one clear line otherwise. */
int husk_inject_mpi(struct husk_inject *ctx, struct husk_host *h, const struct husk_conf *c,
	struct husk_err *err);

#endif
