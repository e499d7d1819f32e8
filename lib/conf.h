/* conf.h: site configuration (husk.conf) and the host pieces husk adds to a
 * container (site binds, --mpi=host, --gpu, --device, interconnect,
 * --placement).
 *
 * ---- husk.conf ------------------------------------------------------------
 * One file, HUSK_SYSCONFDIR "/husk.conf" (e.g. /etc/husk/husk.conf), plus the
 * files its `include = GLOB` lines name. Declarative, one `key = value` a
 * line, `[section]` headers, `#` comments (a whole line, or after white space
 * at the end of one; no quoting, no continuation); every error names
 * `file:line` and the fix. List keys repeat; for one-value keys the last one
 * read wins. The system file, what it includes and their directories must be
 * owned by root and not writable by group or others (refused otherwise,
 * naming the fix). `--config FILE` / HUSK_CONFIG replace it (whole: its
 * binds, rules and profiles) only when it says `allow-user-config = yes`, or
 * when there is none; a user file must be the user's or root's and not
 * world-writable. Policy and defaults, not a security boundary (husk is
 * unprivileged: a user can run another binary); see doc/husk.conf.5.
 *
 *   include = GLOB                any section or none; relative to the including
 *                                 file; a glob may match nothing, a name must exist;
 *                                 8 levels at most
 *   [run]
 *   bind = SRC[:DST[:ro|rw]]      default bind, repeatable; SRC absolute; optional
 *                                 (skipped when SRC is missing); after the default
 *                                 mounts, before the user's
 *   env = NAME=VALUE              set inside every container (repeatable)
 *   hide = PATH                   masked inside every container (repeatable)
 *   forbid-bind = PATH            no --bind/HUSK_BIND may have this destination,
 *                                 one below it, or one above it (covering it)
 *   image-path = DIR              images must live below one of these, after
 *                                 realpath (repeatable; none given: anywhere)
 *   allow-user-config = yes|no    (also true/false, on/off, 1/0; default no)
 *   mpi = container|host          default for --mpi
 *   gpu = none|auto               default for --gpu
 *   placement = none|auto         default for --placement
 *
 *   [profile NAME]                what to inject for one kind of host stack;
 *                                 NAME: letters, digits, '-', '_', '.'; unique per kind
 *   kind = mpi|gpu|interconnect   required
 *   flavour = openmpi|mpich|nvidia|amd|infiniband|cxi|ucx|...
 *   detect = PATH                 the profile applies on hosts where PATH exists
 *                                 (absolute, globs allowed; repeatable)
 *   library = SONAME|GLOB         found through the host's linker cache, with the
 *                                 libraries they need (repeatable)
 *   program = NAME                a host program found in the host PATH (repeatable)
 *   device = PATH|GLOB            device nodes, absolute (repeatable)
 *   path = PATH[:DST]             host files/directories bound read-only, both
 *                                 absolute (repeatable)
 *   env = NAME=VALUE              set inside (repeatable)
 * The loader checks syntax only (absolute paths, names); what a profile's
 * entries mean on a host is up to the code that applies it.
 *
 * Profiles shipped with husk live in HUSK_DATADIR "/profiles/NAME.conf" (same
 * syntax, [profile] sections only, no include; owned by root or the user, not
 * world-writable); a site profile of the same kind and name replaces the
 * shipped one. A test build (-DHUSK_TEST_BUILD: tests/husk-testconf and
 * test_conf, never installed) reads HUSK_TEST_SYSCONFDIR and HUSK_TEST_DATADIR
 * instead of the compiled-in directories. */
#ifndef HUSK_CONF_H
#define HUSK_CONF_H

#include "husk.h"

enum husk_profile_kind { HUSK_PROFILE_MPI = 1, HUSK_PROFILE_GPU, HUSK_PROFILE_NET };

struct husk_profile {
	char *name;
	enum husk_profile_kind kind;
	char *flavour;
	char **detect, **libraries, **programs, **devices, **paths, **env; /* NULL-terminated */
	char *file;          /* where it was defined, for messages */
	int line;
};

struct husk_conf {
	char *path;          /* the main file read, or NULL when none exists */
	bool user;           /* path is --config / HUSK_CONFIG, not the system file */
	struct husk_bind *binds;   /* [run] bind, why = "husk.conf" */
	size_t n_binds;
	struct husk_env env; /* [run] env = NAME=VALUE: set inside every container */
	char **forbid_bind;  /* NULL-terminated, normalised */
	char **forbid_bind_at;     /* "file:line" of each, for messages */
	char **image_paths;  /* NULL-terminated, normalised; NULL: anywhere */
	char **image_paths_at;     /* "file:line" of each */
	char **hide;         /* [run] hide = PATH: masked in every container */
	bool allow_user_config;
	char *mpi, *gpu, *placement;  /* defaults, or NULL */
	struct husk_profile *profiles;
	size_t n_profiles;
	bool shipped;        /* the shipped profiles were added (husk_conf_load_profiles) */
};

/* Load the system file; user_path (--config or HUSK_CONFIG, NULL when
 * neither) replaces the system file when allowed. The file's own profiles
 * come with it; the shipped ones (HUSK_DATADIR/profiles) are parsed only by
 * husk_conf_load_profiles, which what needs profiles calls first (--mpi=host,
 * --gpu, --device, husk doctor): a plain launch does not read them. */
int husk_conf_load(struct husk_conf *c, const char *user_path, struct husk_err *err);
int husk_conf_load_profiles(struct husk_conf *c, struct husk_err *err);
void husk_conf_free(struct husk_conf *c);
/* The directory of the system file (HUSK_SYSCONFDIR), for messages. */
const char *husk_conf_dir(void);
/* NULL when there is no such profile. */
const struct husk_profile *husk_conf_profile(const struct husk_conf *c,
	enum husk_profile_kind kind, const char *name);
/* Refuse an image outside image-path, or a bind whose destination is
 * forbidden, naming the rule's file:line and the fix. */
int husk_conf_check_image(const struct husk_conf *c, const char *image_path, struct husk_err *err);
int husk_conf_check_bind(const struct husk_conf *c, const struct husk_bind *b, struct husk_err *err);

/* ---- host pieces added to a container ------------------------------------
 * Filled before husk_run() by the site configuration, host MPI injection,
 * GPUs/CDI devices, interconnect profiles and placement; consumed by run.c
 * (binds after the default ones, env after the image's environment and
 * before --env-file and -e) and by the provenance record. */
struct husk_host_item {      /* one line of the provenance record */
	char *what;          /* "library", "program", "device", "path", "placement", ... */
	char *name;          /* "libmpi.so.40", "/dev/nvidia0", "rank 1: cpus 2-3" */
	char *detail;        /* host path, version, or NULL */
};
struct husk_host {
	/* read-only unless said; dst may be missing in the image. Add them with
	 * husk_host_add_bind only: it copies why, which husk_host_free frees. */
	struct husk_bind *binds;
	size_t n_binds;
	struct husk_env env;         /* set inside */
	char **ld_library_path;      /* prepended to LD_LIBRARY_PATH inside, in order */
	char **path;                 /* prepended to PATH inside, in order */
	char **hide;                 /* container paths (device nodes) made unusable */
	struct husk_host_item *items;
	size_t n_items;
};
void husk_host_init(struct husk_host *h);
void husk_host_free(struct husk_host *h);
int husk_host_add_bind(struct husk_host *h, const char *src, const char *dst, bool ro,
	const char *why);
int husk_host_add_item(struct husk_host *h, const char *what, const char *name,
	const char *detail);
/* Append a copy of s to a NULL-terminated list (ld_library_path, path, hide). */
int husk_host_add_str(char ***list, const char *s);

#endif
