/* husk.h: the interface of libhusk, the mechanisms behind the husk command.
 *
 * libhusk never prints and never exits. A function that can fail takes a
 * `struct husk_err *` as its last argument, fills it and returns -1; the
 * command in bin/ turns it into one line on stderr and an exit status.
 * Progress and warnings go through a log sink that the caller installs. */
#ifndef HUSK_H
#define HUSK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define HUSK_API __attribute__((visibility("default")))

/* Exit statuses of the command-line contract. */
enum {
	HUSK_EXIT_FAILURE = 125,   /* husk's own failure */
	HUSK_EXIT_NOEXEC = 126,    /* command found but not executable */
	HUSK_EXIT_NOTFOUND = 127,  /* command not found */
};

/* ---- errors ------------------------------------------------------------ */

struct husk_err {
	int errnum;          /* errno behind the failure, or 0 */
	int status;          /* exit status it maps to (125, 126, 127) */
	const char *file;    /* where it was raised, shown at -v */
	int line;
	char msg[1024];      /* "what failed: 'object': cause; fix" without "husk: " */
};

/* Set *err from a format; appends ": strerror(errnum)" when errnum != 0.
 * A hint (the fix) may follow after the errno text with "; hint". */
HUSK_API int husk_err_set_(struct husk_err *err, const char *file, int line, int errnum,
	const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define husk_err_set(err, errnum, ...) husk_err_set_((err), __FILE__, __LINE__, (errnum), __VA_ARGS__)
/* Append "; hint" to an error already set. */
HUSK_API void husk_err_hint(struct husk_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- log sink ---------------------------------------------------------- */

enum husk_log_level { HUSK_LOG_WARN = 0, HUSK_LOG_INFO = 1, HUSK_LOG_DEBUG = 2 };
typedef void (*husk_log_fn)(enum husk_log_level level, const char *file, int line,
	const char *msg);
HUSK_API void husk_log_set(husk_log_fn sink, int verbosity);
HUSK_API int husk_log_verbosity(void);
HUSK_API void husk_log_(enum husk_log_level level, const char *file, int line,
	const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define husk_warn(...) husk_log_(HUSK_LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define husk_info(...) husk_log_(HUSK_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define husk_debug(...) husk_log_(HUSK_LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

/* ---- bind specifications ---------------------------------------------- */

struct husk_bind {
	char *src;           /* host path, absolute */
	char *dst;           /* container path, absolute, normalised */
	bool ro;
	bool optional;       /* a default mount: skipped (with a note) when impossible */
	bool is_file;        /* bind a file rather than a directory (decided at mount time) */
	const char *why;     /* "default", "--bind", "HUSK_BIND", "generated" */
};

/* Parse "SRC[:DST[:ro|rw]]". Relative SRC is taken from cwd; DST must be
 * absolute when given. */
HUSK_API int husk_bind_parse(const char *spec, const char *cwd, struct husk_bind *out,
	struct husk_err *err);
HUSK_API void husk_bind_free(struct husk_bind *b);
/* Normalise an absolute path lexically: collapse "//", ".", and ".." (never
 * above "/"). Returns a malloc'd string or NULL when the path is not absolute. */
HUSK_API char *husk_path_normalize(const char *path);

/* ---- environment ------------------------------------------------------- */

/* An ordered NAME=VALUE list; set replaces in place, keeping first position. */
struct husk_env {
	char **vars;         /* "NAME=VALUE", NULL-terminated */
	size_t n, cap;
};
HUSK_API void husk_env_init(struct husk_env *env);
HUSK_API void husk_env_free(struct husk_env *env);
HUSK_API int husk_env_set(struct husk_env *env, const char *name, const char *value);
HUSK_API int husk_env_put(struct husk_env *env, const char *name_eq_value);
HUSK_API void husk_env_unset(struct husk_env *env, const char *name);
HUSK_API const char *husk_env_get(const struct husk_env *env, const char *name);
HUSK_API bool husk_env_name_ok(const char *name, size_t len);
/* Parse an environment file (text) into env, expanding $NAME and ${NAME}
 * against env itself as it grows (outside single quotes). `what` names the
 * file in errors ("--env-file 'x'"), with the line number added. */
HUSK_API int husk_env_parse(struct husk_env *env, const char *text, size_t len,
	const char *what, struct husk_err *err);
/* Is this host variable kept by --clean-env? */
HUSK_API bool husk_env_keep_clean(const char *name_eq_value);

/* ---- id maps ----------------------------------------------------------- */

/* Build the line written to /proc/PID/{uid,gid}_map: "INSIDE OUTSIDE 1\n". */
HUSK_API int husk_idmap_line(char *buf, size_t size, unsigned inside, unsigned outside);
/* Parse a uid_map/gid_map text; returns the number of extents or -1. */
struct husk_idmap_extent { unsigned inside, outside, count; };
HUSK_API int husk_idmap_parse(const char *text, struct husk_idmap_extent *out, int max);

/* ---- images ------------------------------------------------------------ */

enum husk_image_kind { HUSK_IMAGE_DIR = 1, HUSK_IMAGE_SQUASHFS = 2 };
struct husk_image_fact;
struct husk_image {
	char *path;          /* absolute path as given (made absolute) */
	enum husk_image_kind kind;
	int fd;              /* O_CLOEXEC: O_RDONLY file or O_PATH|O_DIRECTORY dir */
	struct sqfs_reader *sqfs;  /* SquashFS reader (direct, no mount); see
	                            * husk_image_sqfs, which opens it when lazy */
	struct husk_image_fact *facts;   /* small files read (and missing), kept */
	size_t n_facts;
};
HUSK_API int husk_image_open(struct husk_image *img, const char *path, struct husk_err *err);
/* The same, but a SquashFS image's reader (and its checks) waits for the
 * first read: a session member may never need it (husk_image_facts_import). */
HUSK_API int husk_image_open_lazy(struct husk_image *img, const char *path,
	struct husk_err *err);
/* The SquashFS reader, opened now if it was not; NULL with err set. */
HUSK_API struct sqfs_reader *husk_image_sqfs(struct husk_image *img, struct husk_err *err);
/* What husk_image_read_file read (and found missing) in this image, as one
 * blob, and the other way round: a session server hands its members the
 * files it read (same image: the session key has its identity), so that
 * they need not open and decompress the image to plan a launch. */
HUSK_API int husk_image_facts_export(const struct husk_image *img, char **blob, size_t *len);
HUSK_API int husk_image_facts_import(struct husk_image *img, const char *blob, size_t len);
HUSK_API void husk_image_close(struct husk_image *img);
/* Does PATH exist in the image (as anything; symlinks not followed)? */
HUSK_API bool husk_image_exists(struct husk_image *img, const char *path);
/* Read a small regular file from inside the image without mounting it.
 * Returns 0 and a malloc'd buffer, 1 when the file does not exist, -1 on error. */
HUSK_API int husk_image_read_file(struct husk_image *img, const char *path, char **buf,
	size_t *len, size_t max, struct husk_err *err);

/* ---- image metadata (/.husk/ inside an image) ------------------------
 *
 * /.husk/metadata.json, written by `husk build`, read by run and inspect:
 *   {
 *     "husk_metadata": 1,
 *     "env": ["NAME=VALUE", ...],          also in /.husk/environment
 *     "labels": {"key": "value", ...},
 *     "entrypoint": ["argv0", ...] | null,
 *     "cmd": ["arg", ...] | null,
 *     "workdir": "/path" | null,
 *     "build": {                           provenance of the image
 *       "husk_version": "0.1.0",
 *       "source_date_epoch": 1700000000,   every timestamp in the image <= this
 *       "date": "2023-11-14T22:13:20Z",    the same, as a date
 *       "compression": "lz4",
 *       "source": {"kind": "recipe|directory|tar|oci-layout|oci-archive|
 *                  docker-archive|squashfs", "path": "...", "sha256": "..."|null},
 *       "inputs": [{"what": "FROM debian:bookworm", "sha256": "..."|null}, ...],
 *       "tools": {"mksquashfs": "4.5.1", "libarchive": "3.6.2", ...}
 *     }
 *   }
 * /.husk/environment: the env list again, one NAME="VALUE" a line (the
 * environment-file syntax above), so images built by other means may carry
 * only this file. /.husk/recipe: the recipe text, when built from one. */
struct husk_meta {
	char **env;               /* "NAME=VALUE", NULL-terminated; NULL when none */
	char **labels;            /* "KEY=VALUE", NULL-terminated; NULL when none */
	char **entrypoint;        /* NULL-terminated; NULL when unset */
	char **cmd;               /* NULL-terminated; NULL when unset */
	char *workdir;            /* NULL when unset */
	char *json;               /* the whole metadata.json text, or NULL */
};
/* Read /.husk/metadata.json of an image. Returns 0, 1 when the image has
 * none (*m left empty), -1 on a malformed file (naming it). */
HUSK_API int husk_meta_read(struct husk_image *img, struct husk_meta *m, struct husk_err *err);
HUSK_API void husk_meta_free(struct husk_meta *m);

/* ---- digests ------------------------------------------------------------ */

/* SHA-256 of an image file as 64 lowercase hex digits (+ NUL) in out. Uses a
 * per-user cache keyed by device, inode, size, mtime and ctime, so a large
 * image is hashed once; the fd is hashed, not the path, so what is checked is
 * what is served. */
HUSK_API int husk_image_digest(int fd, const char *what, char out[65], struct husk_err *err);

/* ---- importing sources (husk build) ------------------------------------
 *
 * These fill the root directory of an image being built (root_fd) from each
 * kind of build source. They run where `husk build` runs its worker: as root
 * of a user namespace that maps only the caller, so they may write the
 * caller's read-only directories but cannot chown or mknod. Ownership is not
 * restored (everything belongs to the caller); modes, setuid bits included,
 * and mtimes are. Nothing is ever written outside root_fd: entry names with
 * ".." or a leading "/" are refused, and no symlink inside the root is
 * followed while writing or deleting. On error, root_fd may hold part of the
 * source: the caller discards it. */

enum husk_source_kind { HUSK_SRC_DIR = 1, HUSK_SRC_TAR, HUSK_SRC_OCI_LAYOUT, HUSK_SRC_OCI_ARCHIVE,
	HUSK_SRC_DOCKER_ARCHIVE, HUSK_SRC_SQUASHFS, HUSK_SRC_RECIPE };
/* Tell a build source apart by content: a directory with an `oci-layout` file
 * and index.json is an OCI layout, any other directory a rootfs; a file
 * starting with "hsqs" is SquashFS; a tar archive (any compression libarchive
 * reads) holding `oci-layout`+`index.json` is an OCI archive, one holding
 * `manifest.json` (docker save / podman save format) a Docker archive, any
 * other tar a rootfs tar; a text file whose first instruction line (after
 * comments/blank lines) starts with FROM (case-insensitive) is a recipe. */
HUSK_API int husk_source_detect(const char *path, enum husk_source_kind *kind, struct husk_err *err);
/* "directory", "tar", "oci-layout", "oci-archive", "docker-archive",
 * "squashfs", "recipe" (the names of metadata.json's build.source.kind). */
HUSK_API const char *husk_source_kind_name(enum husk_source_kind kind);

struct husk_unpack_stats {
	unsigned long long entries, bytes;
	unsigned skipped;             /* device nodes and sockets skipped */
	char first_skipped[256];      /* the first one's path, for the warning */
};
/* Extract one tar stream from archive_fd (read from its current offset; any
 * compression libarchive reads; a pipe works) into the directory root_fd.
 * With whiteouts, OCI whiteouts are honoured: `.wh.NAME` removes NAME left by
 * earlier layers, `.wh..wh..opq` removes every entry of that directory left by
 * earlier layers (entries of the same layer stay, whatever their order in the
 * archive); whiteout files themselves never appear in the result. `what`
 * names the archive in errors, e.g. "layer 2 (sha256:ab12...) of 'app.tar'".
 * Device nodes and sockets are skipped and counted; FIFOs are made. The
 * entry for the root itself ("./") is ignored: the root's mode is the build's.
 * Relative symlink targets must stay inside the root from the link's own
 * directory; hard link targets must be earlier entries. Directory modes and
 * mtimes are applied once the whole stream is in. */
HUSK_API int husk_unpack_tar(int root_fd, int archive_fd, bool whiteouts, const char *what,
	struct husk_unpack_stats *stats, struct husk_err *err);

struct husk_oci_config {   /* from the image config; every field may be NULL */
	char **env;            /* "NAME=VALUE", NULL-terminated */
	char **entrypoint, **cmd;
	char *workdir;
	char **labels;         /* "KEY=VALUE" */
	char *manifest_digest; /* "sha256:..." (NULL for a Docker archive: it has none) */
	char *config_digest;
	unsigned n_layers;
};
/* Import an OCI layout / OCI archive / Docker archive into root_fd: pick the
 * manifest (the only one, or the one for the running architecture and linux
 * from an index; an error listing them otherwise), verify the digest of every
 * blob read against its descriptor (a Docker archive's layers against the
 * config's diff_ids; mismatch = error naming the blob), apply layers in order
 * with whiteouts. scratch_fd is a directory in which temporary files may be
 * made (an archive is extracted there); they are removed before returning,
 * on error too. *cfg is filled only on success (free it with
 * husk_oci_config_free); stats add up over the layers. */
HUSK_API int husk_oci_import(int root_fd, const char *path, enum husk_source_kind kind,
	int scratch_fd, struct husk_oci_config *cfg, struct husk_unpack_stats *stats,
	struct husk_err *err);
/* The same for the image tagged `ref` (the OCI ref.name annotation, or a
 * Docker archive's RepoTags entry, whole or its tag part); NULL: as above. */
HUSK_API int husk_oci_import_ref(int root_fd, const char *path, const char *ref,
	enum husk_source_kind kind, int scratch_fd, struct husk_oci_config *cfg,
	struct husk_unpack_stats *stats, struct husk_err *err);
HUSK_API void husk_oci_config_free(struct husk_oci_config *cfg);

/* Copy a host file or directory tree into the rootfs (a directory source,
 * and the recipe COPY instruction). src is a host path (followed if it is a
 * symlink itself): a directory is copied with its contents (symlinks inside
 * it copied as symlinks, not followed; hard links kept as hard links within
 * the copy; device nodes/sockets skipped and counted in stats); a file as a
 * file. dst is a path inside the rootfs (a relative one is taken from "/"):
 * it and the directories of the copy are resolved inside root_fd, following
 * the rootfs's symlinks as the container would, never out of it
 * (husk_resolve_create with n_allowed = -1, meaning any mount); the last
 * component of what is copied is never followed (an existing file or symlink
 * there is replaced; a directory is not replaced by a non-directory). Docker
 * COPY rules: when dst ends with '/' or is an existing directory, a src file
 * goes inside it under its basename; a src directory's *contents* go into
 * dst. Missing parents are created. Modes and mtimes are kept (those of the
 * directories the copy creates; existing ones keep theirs); ownership is not. */
HUSK_API int husk_copy_in(int root_fd, const char *src, const char *dst,
	struct husk_unpack_stats *stats, struct husk_err *err);

/* Extract a SquashFS image into root_fd (FROM img.sqfs) with libhusk's own
 * SquashFS reader (no external tool): same rules as husk_unpack_tar. root_path
 * is the path of root_fd (unused; kept for an external extractor). */
HUSK_API int husk_import_squashfs(int root_fd, const char *root_path, const char *image,
	struct husk_unpack_stats *stats, struct husk_err *err);

/* ---- recipes (husk build) ----------------------------------------------- */

enum husk_instr { HUSK_I_FROM = 1, HUSK_I_RUN, HUSK_I_COPY, HUSK_I_ENV, HUSK_I_WORKDIR,
	HUSK_I_LABEL, HUSK_I_ENTRYPOINT, HUSK_I_CMD, HUSK_I_WARM };
struct husk_recipe_step {
	enum husk_instr kind;
	int line;            /* first line of the instruction in the recipe */
	char *args;          /* the rest of the logical line, continuations joined */
	char *text;          /* the whole instruction, for messages */
};
struct husk_recipe {
	struct husk_recipe_step *steps;
	size_t n;
};
/* Parse a recipe (see recipe.c for the language); `what` names it in errors,
 * which give the line. The first step is FROM. */
HUSK_API int husk_recipe_parse(const char *text, size_t len, const char *what,
	struct husk_recipe *r, struct husk_err *err);
HUSK_API void husk_recipe_free(struct husk_recipe *r);
HUSK_API const char *husk_instr_name(enum husk_instr kind);
/* Split arguments into words: quotes, backslash escapes, $NAME and ${NAME}
 * expanded from env (NULL: no expansion). *out is NULL-terminated. */
HUSK_API int husk_recipe_words(const char *args, const struct husk_env *env, char ***out,
	struct husk_err *err);
/* RUN/ENTRYPOINT/CMD: a JSON array (exec form) or a shell command, which
 * becomes {"/bin/sh", "-c", args}. */
HUSK_API int husk_recipe_argv(const char *args, char ***out, bool *exec_form,
	struct husk_err *err);
HUSK_API void husk_strv_free(char **v);

/* ---- building images (husk build) ---------------------------------------- */

struct husk_build_opts {
	const char *source;        /* recipe, directory, tar, OCI layout/archive, Docker
	                            * archive or SquashFS image */
	const char *output;        /* the .sqfs written (replaced atomically) */
	const char *context;       /* COPY sources; NULL: the recipe's directory */
	const char *compression;   /* mksquashfs compressor; NULL: HUSK_BUILD_COMPRESSION */
	const char *mirror;        /* FROM debian:SUITE mirror; NULL: mmdebstrap's default */
	long long source_date_epoch; /* < 0: $SOURCE_DATE_EPOCH, else the source's mtime */
	bool quiet;                /* no progress from the tools */
	/* Progress lines ("step 2/5: RUN ..."), printed by the caller. */
	void (*progress)(const char *msg);
};
#define HUSK_BUILD_COMPRESSION "lz4"
/* Build the image. On success the output exists, complete, with digest in
 * digest_out (64 hex + NUL); on failure nothing is left behind. */
HUSK_API int husk_build(const struct husk_build_opts *o, char digest_out[65],
	struct husk_err *err);

/* ---- safe resolution inside a root ------------------------------------ */

/* Open PATH (absolute, as seen in the container) under root_fd so that no
 * symlink or ".." can leave root_fd: openat2(RESOLVE_IN_ROOT) when the kernel
 * has it, otherwise a component-by-component walk with the same semantics.
 * flags: O_PATH etc. Returns an fd (O_CLOEXEC) or -1 with errno set. */
HUSK_API int husk_resolve(int root_fd, const char *path, int flags);
/* Force the fallback walk (tests; HUSK_NO_OPENAT2 does the same). */
HUSK_API void husk_resolve_force_fallback(bool force);
/* Resolve PATH under root_fd, creating missing components as directories (or
 * the last one as an empty file when as_file), one component at a time. New
 * entries may only be created on a mount whose id is in allowed_mnt. Returns
 * an O_PATH fd or -1 with errno set; *created tells whether anything was. */
HUSK_API int husk_resolve_create(int root_fd, const char *path, bool as_file,
	const unsigned long long *allowed_mnt, int n_allowed, bool *created);
HUSK_API int husk_mount_id(int fd, unsigned long long *id);

/* ---- the plan ---------------------------------------------------------- */

struct husk_plan {
	const char *image_path;
	char **argv;              /* command inside; NULL-terminated */
	struct husk_bind *binds;  /* user binds, in order */
	size_t n_binds;
	struct husk_env env_cli;  /* -e, in order */
	char **env_files;         /* --env-file, in order */
	size_t n_env_files;
	bool clean_env;
	bool no_home;
	bool fake_root;
	bool writable_tmpfs;
	bool dry_run;
	const char *cwd;          /* --cwd, or NULL to keep the caller's */
	const char *shell_mode;   /* `husk shell`: the fallback when argv[0] is missing */
	int kill_grace_ms;        /* leftover processes: SIGTERM, then SIGKILL after this */
	/* IMAGE@sha256:HEX: the digest the image file must have (64 lowercase hex
	 * digits, without "sha256:"), or NULL. */
	const char *pin_digest;
	/* --provenance FILE / HUSK_PROVENANCE: append a JSON record per launch. */
	const char *provenance;
	/* --warm-record FILE (absolute): write what the command looked up, listed
	 * and read in the SquashFS image as a warm profile (see husk(1), build
	 * WARM); --no-warm / HUSK_NO_WARM: do not replay the image's own. */
	const char *warm_record;
	bool no_warm;
	/* A RUN step of `husk build`: the directory image is the root being built
	 * and is writable; no host /tmp, HOME, working directory or generated
	 * passwd/group; root emulation (chown and set*id succeed without effect). */
	bool build_step;
	/* Node-local sessions: --join=TAG (or HUSK_JOIN) names the session;
	 * without it the launcher's job step does (Slurm, PMIx, Open MPI);
	 * --no-join: never. */
	const char *join;
	bool no_join;
	/* Host pieces added to the container (site binds, --mpi=host, --gpu,
	 * --device, interconnect profiles, placement): filled by the command
	 * before husk_run, see lib/conf.h; NULL: none. */
	struct husk_host *host;
};

HUSK_API void husk_plan_init(struct husk_plan *plan);
HUSK_API void husk_plan_free(struct husk_plan *plan);

/* Refuse setuid/setgid execution and other privilege confusion. */
HUSK_API int husk_check_privilege(struct husk_err *err);

/* Run the plan. Returns the exit status the husk command should exit with
 * (the command's, 128+N, ...) or -1 with *err set (its status field says
 * which exit status to use). In dry-run mode, writes the report to `out`.
 * After a launch (not a build step) the signals husk forwards stay blocked
 * in the caller, which is expected to exit with the status returned. */
struct _IO_FILE;
HUSK_API int husk_run(struct husk_plan *plan, struct _IO_FILE *dry_run_out,
	struct husk_err *err);

HUSK_API const char *husk_version(void);

/* ---- husk doctor ---------------------------------------------------------- */

enum husk_check_level { HUSK_CHECK_OK, HUSK_CHECK_INFO, HUSK_CHECK_WARN, HUSK_CHECK_FAIL };
struct husk_check {
	enum husk_check_level level;
	const char *name;          /* "user namespaces", "FUSE (SquashFS images)", ... */
	char detail[512];          /* what was found */
	const char *fix;           /* what to do, or NULL */
};
typedef void (*husk_check_fn)(const struct husk_check *check, void *data);
/* Try what husk needs on this machine (in forked children; nothing is left
 * behind) and report each result. Returns the number of failures. */
HUSK_API int husk_doctor(husk_check_fn report, void *data);

#endif
