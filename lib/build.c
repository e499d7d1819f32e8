/* build.c: `husk build SOURCE OUTPUT.sqfs`, unprivileged.
 *
 * The build process becomes uid 0 of a user namespace of its own (the caller
 * mapped to 0, nothing else), so it may write every file of the tree it
 * builds, all of which belong to the caller. The tree lives on a tmpfs
 * mounted in the process's private mount namespace, and the output is an
 * unnamed O_TMPFILE in the output directory until it is complete: if the
 * build fails or husk is killed, even by SIGKILL, the kernel drops both and
 * nothing is left behind. (Where the output file system lacks O_TMPFILE, a
 * hidden temporary name is used and removed on failure and on SIGINT, SIGTERM
 * and SIGHUP.)
 *
 * Steps:
 *   1. the base: a rootfs directory or tar archive, an OCI layout or archive,
 *      a Docker archive, a SquashFS image, or for a recipe's FROM
 *      debian:SUITE a tar stream from `mmdebstrap --mode=unshare`, run as the
 *      caller before the namespace exists (it needs newuidmap);
 *   2. the recipe's instructions; RUN goes through husk_run() with the tree
 *      as a writable directory image and root emulation (rootemu.c);
 *   3. volatile files removed (logs, caches, apt lists), metadata written to
 *      /.husk/, every timestamp clamped to SOURCE_DATE_EPOCH;
 *   4. mksquashfs with owners normalised to root, no xattrs, fixed time:
 *      the same inputs give the same bytes. */
#include "husk_config.h"
#include "husk.h"
#include "util.h"

#include <archive.h>
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

/* userns.c */
int husk_userns_enter(bool fake_root, uid_t uid, gid_t gid, struct husk_err *err);

#define RECIPE_MAX (4 << 20)
#define APT_CONF "/etc/apt/apt.conf.d/00husk-build"

struct build {
	const struct husk_build_opts *o;
	struct husk_err *err;
	enum husk_source_kind kind;
	char *source;              /* absolute */
	long long sde;
	const char *comp;
	/* output */
	int out_dir_fd;
	char *out_dir, *out_base;
	int out_fd;
	char *out_tmpname;         /* named temporary (no O_TMPFILE), or NULL */
	/* inputs, opened before the namespace */
	int src_fd;                /* the source (file or directory) */
	int ctx_fd;                /* recipe context directory */
	int from_fd;               /* FROM a local image */
	enum husk_source_kind from_kind;
	char *src_path;            /* the source without a ":TAG" suffix */
	char *src_ref, *from_ref;  /* the TAG of an OCI or Docker source, or NULL */
	pid_t mmdebstrap;
	int mmdebstrap_fd;
	/* the tree */
	const char *stage;
	char root_path[PATH_MAX];
	int root_fd, scratch_fd;
	/* recipe */
	char *recipe_text;
	size_t recipe_len;
	struct husk_recipe recipe;
	int step, n_steps;
	/* metadata */
	struct husk_env env, labels;
	char **entrypoint, **cmd;
	char *workdir;
	bool ran;                  /* a RUN step ran */
	bool apt_conf;             /* APT_CONF written */
	json_object *inputs, *tools;
	char mksquashfs[PATH_MAX];
};

static volatile sig_atomic_t tmp_dir_fd = -1;
static char tmp_name[NAME_MAX + 1];

static void on_fatal_signal(int sig)
{
	if (tmp_dir_fd >= 0 && tmp_name[0])
		unlinkat(tmp_dir_fd, tmp_name, 0);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void progress(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(struct build *b, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!b->o->progress)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	b->o->progress(msg);
}

/* ---- small helpers ------------------------------------------------------ */

/* Run argv, capture the first line of its output (stdout and stderr). */
static int tool_version(const char *const *argv, char *out, size_t size)
{
	int p[2];
	pid_t pid;
	ssize_t n;
	char buf[512];
	size_t len = 0;
	int st;

	out[0] = '\0';
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if ((pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	while (len < sizeof(buf) - 1 && (n = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(p[0]);
	waitpid(pid, &st, 0);
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(out, size, "%s", buf);
	return 0;
}

static void add_input(struct build *b, const char *what, const char *sha256)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "what", json_object_new_string(what));
	if (sha256) {
		autofree char *d = husk_strdup_printf("sha256:%s", sha256);
		json_object_object_add(o, "sha256", json_object_new_string(d));
	} else {
		json_object_object_add(o, "sha256", NULL);
	}
	json_object_array_add(b->inputs, o);
}

/* The digest of a regular file behind fd, or NULL (directories). */
static const char *file_digest(int fd, const char *what, char out[65])
{
	struct stat st;
	struct husk_err e;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return NULL;
	if (husk_image_digest(fd, what, out, &e) < 0) {
		husk_warn("%s", e.msg);
		return NULL;
	}
	return out;
}

static char *fd_path(int fd)
{
	return husk_strdup_printf("/proc/self/fd/%d", fd);
}

/* Remove a tree under dirfd without following symlinks. */
static int rm_rf_at(int parent, const char *name)
{
	struct stat st;
	int fd;
	DIR *d;
	struct dirent *e;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parent, name, 0);
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			rm_rf_at(dirfd(d), e->d_name);
	closedir(d);
	return unlinkat(parent, name, AT_REMOVEDIR);
}

/* Remove the entries of directory `dir` (inside the tree) matching pattern. */
static void remove_matching(struct build *b, const char *dir, const char *pattern)
{
	autoclose int fd = husk_resolve(b->root_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	DIR *d;
	struct dirent *e;

	if (fd < 0 || !(d = fdopendir(fd)))
		return;
	fd = -1;   /* owned by d now */
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    !fnmatch(pattern, e->d_name, FNM_PERIOD))
			if (rm_rf_at(dirfd(d), e->d_name) < 0)
				husk_warn("cannot remove '%s/%s' from the image: %s", dir, e->d_name,
					strerror(errno));
	closedir(d);
}

/* Resolve PATH in the tree, creating what is missing (directories, or the
 * last component as a file), never leaving the tree. */
static int tree_create(struct build *b, const char *path, bool as_file)
{
	unsigned long long mnt;
	bool created;

	if (husk_mount_id(b->root_fd, &mnt) < 0)
		return -1;
	return husk_resolve_create(b->root_fd, path, as_file, &mnt, 1, &created);
}

/* ---- step 0: before the namespace --------------------------------------- */

static int parse_sde(struct build *b, struct stat *src_st)
{
	const char *e = getenv("SOURCE_DATE_EPOCH");
	char *end;

	if (b->o->source_date_epoch >= 0) {
		b->sde = b->o->source_date_epoch;
		return 0;
	}
	if (e && *e) {
		errno = 0;
		b->sde = strtoll(e, &end, 10);
		if (errno || *end || b->sde < 0 || b->sde > 4102444800LL)
			return husk_err_set(b->err, 0, "SOURCE_DATE_EPOCH '%s': not a time in seconds "
				"since 1970; set it to a number such as $(git log -1 --format=%%ct)", e);
		return 0;
	}
	b->sde = src_st->st_mtim.tv_sec;
	return 0;
}

static bool is_debian_ref(const char *ref, const char **suite)
{
	if (strncmp(ref, "debian:", 7))
		return false;
	*suite = ref + 7;
	for (const char *p = *suite; *p; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-')
			return false;
	return **suite != '\0';
}

/* Ask apt how the host reaches its mirrors (proxies, Release checks) so the
 * bootstrap works where apt-get works. */
static void host_apt_options(char ***opts, size_t *n)
{
	static const char *const keys[] = { "Acquire::http::Proxy", "Acquire::https::Proxy",
		"Acquire::Check-Valid-Until", "Acquire::Check-Date", NULL };
	char line[512], path[PATH_MAX];

	if (husk_find_tool("apt-config", path, sizeof(path)) < 0)
		return;
	for (int i = 0; keys[i]; i++) {
		const char *argv[] = { path, "shell", "V", keys[i], NULL };
		char *q, *v;
		tool_version(argv, line, sizeof(line));
		/* prints V='value' when set */
		if (strncmp(line, "V='", 3) || !(q = strrchr(line + 3, '\'')))
			continue;
		*q = '\0';
		v = husk_strdup_printf("--aptopt=%s \"%s\"", keys[i], line + 3);
		char **nv = realloc(*opts, (*n + 1) * sizeof(*nv));
		if (!v || !nv) {
			free(v);
			return;
		}
		*opts = nv;
		nv[(*n)++] = v;
	}
}

/* FROM debian:SUITE: mmdebstrap writes the tree as a tar stream to a pipe. */
static int start_mmdebstrap(struct build *b, const char *suite)
{
	char tool[PATH_MAX], ver[256];
	const char *user = getenv("USER");
	char **aptopts = NULL;
	size_t n_aptopts = 0;
	int p[2];
	pid_t pid;

	if (husk_find_tool("mmdebstrap", tool, sizeof(tool)) < 0)
		return husk_err_set(b->err, 0, "FROM debian:%s needs mmdebstrap, which is not "
			"installed; install it with: apt-get install mmdebstrap uidmap", suite);
	if (!husk_has_subids("/etc/subuid", user, getuid()) || !husk_has_subids("/etc/subgid", user, getuid()))
		return husk_err_set(b->err, 0, "FROM debian:%s: mmdebstrap needs subordinate ids for "
			"'%s' in /etc/subuid and /etc/subgid; ask an administrator to run: usermod "
			"--add-subuids 100000-165535 --add-subgids 100000-165535 %s (or build FROM a "
			"local image)", suite, user ? user : "you", user ? user : "USER");
	{
		const char *argv[] = { tool, "--version", NULL };
		tool_version(argv, ver, sizeof(ver));
		json_object_object_add(b->tools, "mmdebstrap", json_object_new_string(ver));
	}
	host_apt_options(&aptopts, &n_aptopts);
	if (pipe2(p, O_CLOEXEC) < 0)
		return husk_err_set(b->err, errno, "pipe");
	if ((pid = fork()) < 0)
		return husk_err_set(b->err, errno, "fork");
	if (pid == 0) {
		char *argv[32 + 8];
		char sde[32];
		int a = 0;
		/* mmdebstrap cleans its own temporary directory on SIGTERM. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(p[1], 1);
		snprintf(sde, sizeof(sde), "%lld", b->sde);
		setenv("SOURCE_DATE_EPOCH", sde, 1);
		argv[a++] = tool;
		argv[a++] = "--mode=unshare";
		argv[a++] = "--variant=minbase";
		argv[a++] = "--format=tar";
		if (b->o->quiet)
			argv[a++] = "--quiet";
		/* Nothing of the build host in the image. */
		argv[a++] = "--customize-hook=rm -f \"$1/etc/resolv.conf\"; "
			"echo localhost > \"$1/etc/hostname\"";
		for (size_t i = 0; i < n_aptopts && a < 32; i++)
			argv[a++] = aptopts[i];
		argv[a++] = (char *)suite;
		argv[a++] = "-";
		if (b->o->mirror)
			argv[a++] = (char *)b->o->mirror;
		argv[a] = NULL;
		execv(tool, argv);
		_exit(127);
	}
	for (size_t i = 0; i < n_aptopts; i++)
		free(aptopts[i]);
	free(aptopts);
	close(p[1]);
	b->mmdebstrap = pid;
	b->mmdebstrap_fd = p[0];
	return 0;
}

static int open_output(struct build *b)
{
	autofree char *copy1 = strdup(b->o->output), *copy2 = strdup(b->o->output);
	struct stat st;

	if (!copy1 || !copy2)
		return husk_err_set(b->err, ENOMEM, "output");
	b->out_dir = strdup(dirname(copy1));
	b->out_base = strdup(basename(copy2));
	if (!b->out_dir || !b->out_base)
		return husk_err_set(b->err, ENOMEM, "output");
	if (!strcmp(b->out_base, "/") || !strcmp(b->out_base, ".") || !strcmp(b->out_base, ".."))
		return husk_err_set(b->err, 0, "output '%s': not a file name; give a path such as "
			"app.sqfs", b->o->output);
	if (stat(b->o->output, &st) == 0 && S_ISDIR(st.st_mode))
		return husk_err_set(b->err, 0, "output '%s' is a directory; give a file name such as "
			"%s/app.sqfs", b->o->output, b->o->output);
	b->out_dir_fd = open(b->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->out_dir_fd < 0) {
		husk_err_set(b->err, errno, "output directory '%s'", b->out_dir);
		husk_err_hint(b->err, "create it first");
		return -1;
	}
	b->out_fd = openat(b->out_dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
	if (b->out_fd >= 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
		husk_err_set(b->err, errno, "output directory '%s'", b->out_dir);
		if (errno == EACCES || errno == EROFS)
			husk_err_hint(b->err, "write the image somewhere you may write");
		return -1;
	}
	/* No O_TMPFILE here (NFS, some parallel file systems): a hidden name. */
	snprintf(tmp_name, sizeof(tmp_name), ".%.200s.husk-build.%d", b->out_base, (int)getpid());
	b->out_fd = openat(b->out_dir_fd, tmp_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (b->out_fd < 0)
		return husk_err_set(b->err, errno, "output directory '%s'", b->out_dir);
	b->out_tmpname = strdup(tmp_name);
	tmp_dir_fd = b->out_dir_fd;
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
	return 0;
}

/* ---- step 1: the base ---------------------------------------------------- */

static int make_tree(struct build *b)
{
	static const char *const anchors[] = { "/tmp", "/var/tmp", "/mnt", "/dev", NULL };

	if (husk_userns_enter(true, getuid(), getgid(), b->err) < 0)
		return -1;
	for (int i = 0; anchors[i]; i++) {
		if (mount("husk-build", anchors[i], "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700") < 0)
			continue;
		b->stage = anchors[i];
		snprintf(b->root_path, sizeof(b->root_path), "%s/root", anchors[i]);
		if (mkdir(b->root_path, 0755) < 0 ||
		    (b->root_fd = open(b->root_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			return husk_err_set(b->err, errno, "cannot prepare the build tree");
		{
			autofree char *s = husk_strdup_printf("%s/scratch", anchors[i]);
			if (mkdir(s, 0700) < 0 ||
			    (b->scratch_fd = open(s, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
				return husk_err_set(b->err, errno, "cannot prepare the build tree");
		}
		return 0;
	}
	return husk_err_set(b->err, errno, "cannot mount the private build tmpfs (tried /tmp, "
		"/var/tmp, /mnt, /dev)");
}

static void warn_skipped(const struct husk_unpack_stats *st, const char *what)
{
	if (st->skipped)
		husk_warn("%s: skipped %u device node%s or socket%s (first: '%s'); an ordinary user "
			"cannot create them, and husk run provides the host's /dev", what, st->skipped,
			st->skipped == 1 ? "" : "s", st->skipped == 1 ? "" : "s", st->first_skipped);
}

static int strv_dup(char ***dst, char *const *src)
{
	size_t n = 0;

	husk_strv_free(*dst);
	*dst = NULL;
	if (!src)
		return 0;
	while (src[n])
		n++;
	if (!(*dst = calloc(n + 1, sizeof(**dst))))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!((*dst)[i] = strdup(src[i])))
			return -1;
	return 0;
}

/* The base image's own metadata becomes the starting point. */
static int inherit_metadata(struct build *b)
{
	struct husk_image img;
	struct husk_meta m = { 0 };
	int r;

	if (husk_image_open(&img, b->root_path, b->err) < 0)
		return -1;
	r = husk_meta_read(&img, &m, b->err);
	if (r == 1) {
		/* No metadata.json: maybe an environment file alone. */
		autofree char *text = NULL;
		size_t len;
		r = husk_image_read_file(&img, "/.husk/environment", &text, &len, 1 << 20, b->err);
		if (r == 0 && husk_env_parse(&b->env, text, len, "the base image's "
		    "'/.husk/environment'", b->err) < 0)
			r = -1;
		husk_image_close(&img);
		return r < 0 ? -1 : 0;
	}
	husk_image_close(&img);
	if (r < 0)
		return -1;
	for (char **e = m.env; e && *e; e++)
		husk_env_put(&b->env, *e);
	for (char **l = m.labels; l && *l; l++)
		husk_env_put(&b->labels, *l);
	if (strv_dup(&b->entrypoint, m.entrypoint) < 0 || strv_dup(&b->cmd, m.cmd) < 0)
		r = -1;
	if (m.workdir) {
		free(b->workdir);
		b->workdir = strdup(m.workdir);
	}
	husk_meta_free(&m);
	return r < 0 ? husk_err_set(b->err, ENOMEM, "metadata") : 0;
}

static int import_oci(struct build *b, int fd, enum husk_source_kind kind, const char *ref,
	const char *what)
{
	struct husk_oci_config cfg = { 0 };
	struct husk_unpack_stats st = { 0 };
	autofree char *path = fd_path(fd);
	int r;

	r = husk_oci_import_ref(b->root_fd, path, ref, kind, b->scratch_fd, &cfg, &st, b->err);
	if (r == 0) {
		warn_skipped(&st, what);
		for (char **e = cfg.env; e && *e; e++)
			husk_env_put(&b->env, *e);
		for (char **l = cfg.labels; l && *l; l++)
			husk_env_put(&b->labels, *l);
		if (strv_dup(&b->entrypoint, cfg.entrypoint) < 0 || strv_dup(&b->cmd, cfg.cmd) < 0)
			r = husk_err_set(b->err, ENOMEM, "metadata");
		if (cfg.workdir && *cfg.workdir) {
			free(b->workdir);
			b->workdir = strdup(cfg.workdir);
		}
		progress(b, "  %u layer%s, manifest %s", cfg.n_layers, cfg.n_layers == 1 ? "" : "s",
			cfg.manifest_digest ? cfg.manifest_digest : "?");
	}
	husk_oci_config_free(&cfg);
	return r;
}

/* Fill the tree from a local image or source (fd opened before the namespace). */
static int import_local(struct build *b, int fd, enum husk_source_kind kind, const char *ref,
	const char *what)
{
	struct husk_unpack_stats st = { 0 };
	autofree char *path = fd_path(fd);

	switch (kind) {
	case HUSK_SRC_DIR:
		if (husk_copy_in(b->root_fd, path, "/", &st, b->err) < 0)
			return -1;
		warn_skipped(&st, what);
		return inherit_metadata(b);
	case HUSK_SRC_TAR:
		if (lseek(fd, 0, SEEK_SET) < 0 && errno != ESPIPE)
			return husk_err_set(b->err, errno, "%s", what);
		if (husk_unpack_tar(b->root_fd, fd, false, what, &st, b->err) < 0)
			return -1;
		warn_skipped(&st, what);
		return inherit_metadata(b);
	case HUSK_SRC_SQUASHFS:
		if (husk_import_squashfs(b->root_fd, b->root_path, path, &st, b->err) < 0)
			return -1;
		warn_skipped(&st, what);
		return inherit_metadata(b);
	case HUSK_SRC_OCI_LAYOUT:
	case HUSK_SRC_OCI_ARCHIVE:
	case HUSK_SRC_DOCKER_ARCHIVE:
		return import_oci(b, fd, kind, ref, what);
	default:
		return husk_err_set(b->err, 0, "%s: a recipe cannot be a base image; build it first "
			"and FROM the .sqfs", what);
	}
}

static int import_debian(struct build *b, const char *suite)
{
	struct husk_unpack_stats st = { 0 };
	autofree char *what = husk_strdup_printf("the mmdebstrap output for debian:%s", suite);
	int r, ws;

	r = husk_unpack_tar(b->root_fd, b->mmdebstrap_fd, false, what, &st, b->err);
	close(b->mmdebstrap_fd);
	b->mmdebstrap_fd = -1;
	if (r < 0)
		kill(b->mmdebstrap, SIGTERM);
	while (waitpid(b->mmdebstrap, &ws, 0) < 0 && errno == EINTR)
		;
	b->mmdebstrap = 0;
	if (r < 0)
		return -1;
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		return husk_err_set(b->err, 0, "FROM debian:%s: mmdebstrap failed (%s %d; its messages "
			"are above); check the suite name and that the mirror is reachable", suite,
			WIFEXITED(ws) ? "exit status" : "signal",
			WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));
	/* Device nodes in the stream are expected: containers use the host's /dev. */
	husk_env_set(&b->env, "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	return 0;
}

/* ---- step 2: the recipe ---------------------------------------------------- */

static int step_err(struct build *b, const struct husk_recipe_step *s)
{
	char msg[sizeof(b->err->msg)];

	snprintf(msg, sizeof(msg), "%s", b->err->msg);
	snprintf(b->err->msg, sizeof(b->err->msg), "recipe '%.200s' line %d (%s): %.780s",
		b->o->source, s->line, husk_instr_name(s->kind), msg);
	return -1;
}

static int do_env(struct build *b, const struct husk_recipe_step *s)
{
	char **w = NULL;
	const char *eq;

	if (husk_recipe_words(s->args, &b->env, &w, b->err) < 0)
		return -1;
	if (w[0] && !strchr(w[0], '=')) {
		/* ENV NAME VALUE (the old form): the value is the rest of the line. */
		const char *rest = s->args + strlen(w[0]);
		char **v = NULL;
		autofree char *val = NULL;
		size_t n = 0;
		while (*rest && isspace((unsigned char)*rest))
			rest++;
		if (!husk_env_name_ok(w[0], strlen(w[0])) || !*rest) {
			husk_strv_free(w);
			return husk_err_set(b->err, 0, "'%s': write ENV NAME=VALUE", s->args);
		}
		if (husk_recipe_words(rest, &b->env, &v, b->err) < 0) {
			husk_strv_free(w);
			return -1;
		}
		for (char **p = v; *p; p++)
			n += strlen(*p) + 1;
		val = calloc(1, n + 1);
		for (char **p = v; val && *p; p++) {
			if (p != v)
				strcat(val, " ");
			strcat(val, *p);
		}
		husk_env_set(&b->env, w[0], val ? val : "");
		husk_strv_free(v);
		husk_strv_free(w);
		return 0;
	}
	for (char **p = w; *p; p++) {
		eq = strchr(*p, '=');
		if (!eq || !husk_env_name_ok(*p, (size_t)(eq - *p))) {
			husk_err_set(b->err, 0, "'%s': not NAME=VALUE (a name is letters, digits and _)", *p);
			husk_strv_free(w);
			return -1;
		}
		if (strchr(eq, '\n')) {
			husk_err_set(b->err, 0, "'%.*s': a value with a newline cannot be stored",
				(int)(eq - *p), *p);
			husk_strv_free(w);
			return -1;
		}
		husk_env_put(&b->env, *p);
	}
	husk_strv_free(w);
	return 0;
}

static int do_label(struct build *b, const struct husk_recipe_step *s)
{
	char **w = NULL;

	if (husk_recipe_words(s->args, &b->env, &w, b->err) < 0)
		return -1;
	for (char **p = w; *p; p++) {
		const char *eq = strchr(*p, '=');
		if (!eq || eq == *p) {
			husk_err_set(b->err, 0, "'%s': write LABEL key=value", *p);
			husk_strv_free(w);
			return -1;
		}
		husk_env_put(&b->labels, *p);
	}
	husk_strv_free(w);
	return 0;
}

static int do_workdir(struct build *b, const struct husk_recipe_step *s)
{
	char **w = NULL;
	autofree char *joined = NULL;
	char *norm;
	int fd;

	if (husk_recipe_words(s->args, &b->env, &w, b->err) < 0)
		return -1;
	if (!w[0] || w[1]) {
		husk_strv_free(w);
		return husk_err_set(b->err, 0, "'%s': give one directory", s->args);
	}
	joined = w[0][0] == '/' ? strdup(w[0]) :
		husk_strdup_printf("%s/%s", b->workdir ? b->workdir : "/", w[0]);
	husk_strv_free(w);
	if (!joined || !(norm = husk_path_normalize(joined)))
		return husk_err_set(b->err, ENOMEM, "WORKDIR");
	fd = tree_create(b, norm, false);
	if (fd < 0) {
		husk_err_set(b->err, errno, "cannot create '%s' in the image", norm);
		free(norm);
		return -1;
	}
	close(fd);
	free(b->workdir);
	b->workdir = norm;
	return 0;
}

static int do_copy(struct build *b, const struct husk_recipe_step *s)
{
	char **w = NULL;
	size_t n = 0;
	int r = -1;
	bool exec_form;
	autofree char *dst = NULL;

	if (s->args[0] == '[') {
		if (husk_recipe_argv(s->args, &w, &exec_form, b->err) < 0)
			return -1;
	} else if (husk_recipe_words(s->args, &b->env, &w, b->err) < 0) {
		return -1;
	}
	/* Docker's --chown/--chmod: owners are normalised anyway. */
	while (w[0] && !strncmp(w[0], "--", 2)) {
		if (strncmp(w[0], "--chown=", 8)) {
			husk_err_set(b->err, 0, "option '%s' is not supported; husk build knows "
				"--chown (ignored: every file of the image belongs to root)", w[0]);
			husk_strv_free(w);
			return -1;
		}
		free(w[0]);
		for (char **p = w; (p[0] = p[1]); p++)   /* drop it, keep the NULL */
			;
	}
	while (w[n])
		n++;
	if (n < 2) {
		husk_strv_free(w);
		return husk_err_set(b->err, 0, "'%s': give at least a source and a destination",
			s->args);
	}
	/* A relative destination is taken from WORKDIR, as Docker does. */
	dst = w[n - 1][0] == '/' ? strdup(w[n - 1]) :
		husk_strdup_printf("%s/%s%s", b->workdir ? b->workdir : "",
			w[n - 1], w[n - 1][strlen(w[n - 1]) - 1] == '/' ? "/" : "");
	if (n > 2 && dst[strlen(dst) - 1] != '/') {
		husk_strv_free(w);
		return husk_err_set(b->err, 0, "'%s': with several sources, the destination must "
			"end with '/'", s->args);
	}
	for (size_t i = 0; i + 1 < n; i++) {
		autofree char *rel = husk_strdup_printf("/%s", w[i]);
		autofree char *norm = rel ? husk_path_normalize(rel) : NULL;
		autofree char *path = NULL;
		struct husk_unpack_stats st = { 0 };
		autoclose int fd = -1;
		char digest[65];

		/* Sources stay inside the context: resolved as in a root there. */
		fd = norm ? husk_resolve(b->ctx_fd, norm, O_PATH) : -1;
		if (fd < 0) {
			autofree char *copy = strdup(b->source);
			husk_err_set(b->err, errno, "COPY source '%s' in the build context '%s'", w[i],
				b->o->context ? b->o->context : copy ? dirname(copy) : ".");
			husk_err_hint(b->err, "sources are relative to the context and cannot leave it");
			goto out;
		}
		path = fd_path(fd);
		{
			/* The source is handed over as /proc/self/fd/N, whose name says
			 * nothing: a file going into a directory gets its name here. */
			struct stat sst;
			autofree char *target = NULL;
			autoclose int dfd = husk_resolve(b->root_fd, dst, O_PATH | O_DIRECTORY);
			if (fstat(fd, &sst) == 0 && !S_ISDIR(sst.st_mode) &&
			    (dfd >= 0 || dst[strlen(dst) - 1] == '/'))
				target = husk_strdup_printf("%s%s%s", dst, dst[strlen(dst) - 1] == '/' ? "" :
					"/", strrchr(norm, '/') + 1);
			if (husk_copy_in(b->root_fd, path, target ? target : dst, &st, b->err) < 0)
				goto out;
		}
		warn_skipped(&st, w[i]);
		{
			autoclose int rfd = husk_resolve(b->ctx_fd, norm, O_RDONLY | O_NOCTTY);
			autofree char *what = husk_strdup_printf("COPY %s", w[i]);
			add_input(b, what, rfd >= 0 ? file_digest(rfd, w[i], digest) : NULL);
		}
	}
	r = 0;
out:
	husk_strv_free(w);
	return r;
}

/* apt drops privileges to its sandbox user and checks that it worked; under
 * root emulation it did not, so it is told to stay root during the build. */
static void apt_conf(struct build *b, bool on)
{
	autoclose int dir = -1;

	if (on == b->apt_conf)
		return;
	dir = husk_resolve(b->root_fd, "/etc/apt/apt.conf.d", O_RDONLY | O_DIRECTORY);
	if (dir < 0)
		return;
	if (on) {
		autoclose int fd = openat(dir, "00husk-build", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			O_CLOEXEC, 0644);
		static const char text[] = "// written by husk build during RUN steps; not in the image\n"
			"APT::Sandbox::User \"root\";\n";
		if (fd >= 0 && husk_write_all(fd, text, sizeof(text) - 1) == 0)
			b->apt_conf = true;
	} else {
		unlinkat(dir, "00husk-build", 0);
		b->apt_conf = false;
	}
}

/* Run the step's command (shell or exec form) through husk_run() in a child
 * process, its plan set by setup; its failure becomes the build's error,
 * ending with fix. */
static int run_command(struct build *b, const struct husk_recipe_step *s,
	void (*setup)(struct build *b, struct husk_plan *plan, const void *arg), const void *arg,
	const char *fix)
{
	char **argv = NULL;
	bool exec_form;
	pid_t pid;
	int ws;

	if (husk_recipe_argv(s->args, &argv, &exec_form, b->err) < 0)
		return -1;
	fflush(NULL);
	if ((pid = fork()) < 0) {
		husk_strv_free(argv);
		return husk_err_set(b->err, errno, "fork");
	}
	if (pid == 0) {
		struct husk_plan plan;
		struct husk_err e = { 0 };
		int st;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		husk_plan_init(&plan);
		plan.argv = argv;
		plan.clean_env = true;
		plan.no_home = true;
		plan.cwd = b->workdir ? b->workdir : "/";
		setup(b, &plan, arg);
		st = husk_run(&plan, NULL, &e);
		if (st < 0) {
			fprintf(stderr, "husk: %s\n", e.msg);
			_exit(e.status ? e.status : HUSK_EXIT_FAILURE);
		}
		_exit(st);
	}
	husk_strv_free(argv);
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return husk_err_set(b->err, errno, "waitpid");
	if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
		return 0;
	if (WIFSIGNALED(ws))
		return husk_err_set(b->err, 0, "the command was killed by signal %d", WTERMSIG(ws));
	return husk_err_set(b->err, 0, "the command failed with exit status %d (its output is "
		"above); %s", WEXITSTATUS(ws), fix);
}

/* RUN: in the tree being built, writable, with root emulation. */
static void run_setup(struct build *b, struct husk_plan *plan, const void *arg)
{
	(void)arg;
	plan->image_path = b->root_path;
	plan->build_step = true;
	plan->fake_root = true;
	for (size_t i = 0; i < b->env.n; i++)
		husk_env_put(&plan->env_cli, b->env.vars[i]);
	if (!husk_env_get(&plan->env_cli, "HOME"))
		husk_env_set(&plan->env_cli, "HOME", "/root");
}

static int do_run(struct build *b, const struct husk_recipe_step *s)
{
	apt_conf(b, true);
	b->ran = true;
	return run_command(b, s, run_setup, NULL, "fix it and build again");
}

static int do_argv(struct build *b, const struct husk_recipe_step *s, char ***dst)
{
	bool exec_form;
	char **v = NULL;

	if (husk_recipe_argv(s->args, &v, &exec_form, b->err) < 0)
		return -1;
	husk_strv_free(*dst);
	*dst = v;
	/* Docker: a new ENTRYPOINT resets CMD inherited from the base. */
	if (s->kind == HUSK_I_ENTRYPOINT) {
		husk_strv_free(b->cmd);
		b->cmd = NULL;
	}
	return 0;
}

static int run_recipe(struct build *b)
{
	for (size_t i = 1; i < b->recipe.n; i++) {
		const struct husk_recipe_step *s = &b->recipe.steps[i];
		int r;

		b->step++;
		progress(b, "step %d/%d: %s %s", b->step, b->n_steps, husk_instr_name(s->kind),
			s->args);
		switch (s->kind) {
		case HUSK_I_RUN: r = do_run(b, s); break;
		case HUSK_I_COPY: r = do_copy(b, s); break;
		case HUSK_I_ENV: r = do_env(b, s); break;
		case HUSK_I_WORKDIR: r = do_workdir(b, s); break;
		case HUSK_I_LABEL: r = do_label(b, s); break;
		case HUSK_I_ENTRYPOINT: r = do_argv(b, s, &b->entrypoint); break;
		case HUSK_I_CMD: r = do_argv(b, s, &b->cmd); break;
		case HUSK_I_WARM:
			progress(b, "  (recorded once the image is built)");
			r = 0;
			break;
		default: r = husk_err_set(b->err, 0, "unexpected instruction");
		}
		if (r < 0)
			return step_err(b, s);
	}
	return 0;
}

/* ---- step 3: finishing the tree ------------------------------------------ */

/* Files that change from one build to the next without meaning anything
 * (the same list mmdebstrap cleans for reproducible output), plus apt's
 * package lists and caches, which belong to the build, not the image. */
static void remove_volatile(struct build *b)
{
	static const char *const files[][2] = {
		{ "/var/log", "dpkg.log" }, { "/var/log", "alternatives.log" },
		{ "/var/log", "bootstrap.log" }, { "/var/log/apt", "*.log" },
		{ "/var/log/apt", "eipp.log.xz" }, { "/var/cache/ldconfig", "aux-cache" },
		{ "/var/lib/dbus", "machine-id" }, { "/var/lib/apt/lists", "*" },
		{ "/var/cache/apt", "*.bin" }, { "/var/cache/apt/archives", "*.deb" },
		{ "/var/cache/apt/archives/partial", "*" }, { "/var/cache/debconf", "*-old" },
		{ "/var/lib/dpkg", "*-old" }, { "/tmp", "*" }, { "/tmp", ".*" }, { "/run", "*" },
		{ "/root", ".bash_history" }, { "/root", ".wget-hsts" }, { "/root", ".cache" },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		remove_matching(b, files[i][0], files[i][1]);
}

static int write_tree_file(struct build *b, const char *dir, const char *name, const char *text,
	size_t len)
{
	autoclose int dfd = -1, fd = -1;

	dfd = tree_create(b, dir, false);
	if (dfd >= 0) {
		close(dfd);
		dfd = husk_resolve(b->root_fd, dir, O_RDONLY | O_DIRECTORY);
	}
	if (dfd < 0)
		return husk_err_set(b->err, errno, "cannot create '%s' in the image", dir);
	unlinkat(dfd, name, 0);
	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || husk_write_all(fd, text, len) < 0)
		return husk_err_set(b->err, errno, "cannot write '%s/%s' in the image", dir, name);
	return 0;
}

static json_object *strv_json(char **v)
{
	json_object *a;

	if (!v)
		return NULL;
	a = json_object_new_array();
	for (; *v; v++)
		json_object_array_add(a, json_object_new_string(*v));
	return a;
}

static int write_metadata(struct build *b, const char *src_digest)
{
	json_object *root = json_object_new_object(), *labels = json_object_new_object();
	json_object *build = json_object_new_object(), *src = json_object_new_object();
	json_object *env = json_object_new_array();
	char date[64];
	struct tm tm;
	time_t t = (time_t)b->sde;
	const char *text;
	char *envtext = NULL;
	size_t envlen = 0;
	FILE *f;
	int r;

	for (size_t i = 0; i < b->env.n; i++)
		json_object_array_add(env, json_object_new_string(b->env.vars[i]));
	for (size_t i = 0; i < b->labels.n; i++) {
		const char *eq = strchr(b->labels.vars[i], '=');
		autofree char *k = strndup(b->labels.vars[i], (size_t)(eq - b->labels.vars[i]));
		json_object_object_add(labels, k, json_object_new_string(eq + 1));
	}
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_object_add(root, "husk_metadata", json_object_new_int(1));
	json_object_object_add(root, "env", env);
	json_object_object_add(root, "labels", labels);
	json_object_object_add(root, "entrypoint", strv_json(b->entrypoint));
	json_object_object_add(root, "cmd", strv_json(b->cmd));
	json_object_object_add(root, "workdir", b->workdir ? json_object_new_string(b->workdir) :
		NULL);
	json_object_object_add(build, "husk_version", json_object_new_string(husk_version()));
	json_object_object_add(build, "source_date_epoch", json_object_new_int64(b->sde));
	json_object_object_add(build, "date", json_object_new_string(date));
	json_object_object_add(build, "compression", json_object_new_string(b->comp));
	json_object_object_add(src, "kind", json_object_new_string(husk_source_kind_name(b->kind)));
	json_object_object_add(src, "path", json_object_new_string(b->o->source));
	if (src_digest) {
		autofree char *d = husk_strdup_printf("sha256:%s", src_digest);
		json_object_object_add(src, "sha256", json_object_new_string(d));
	} else {
		json_object_object_add(src, "sha256", NULL);
	}
	json_object_object_add(build, "source", src);
	json_object_object_add(build, "inputs", json_object_get(b->inputs));
	json_object_object_add(build, "tools", json_object_get(b->tools));
	json_object_object_add(root, "build", build);
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
		JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	r = write_tree_file(b, "/.husk", "metadata.json", text, strlen(text));
	json_object_put(root);
	if (r < 0)
		return -1;
	/* /.husk/environment: NAME="VALUE", escaped for the environment-file syntax. */
	if (!(f = open_memstream(&envtext, &envlen)))
		return husk_err_set(b->err, errno, "environment");
	fputs("# written by husk build; the image's environment (see husk(1))\n", f);
	for (size_t i = 0; i < b->env.n; i++) {
		const char *eq = strchr(b->env.vars[i], '=');
		fprintf(f, "%.*s=\"", (int)(eq - b->env.vars[i]), b->env.vars[i]);
		for (const char *p = eq + 1; *p; p++) {
			if (*p == '"' || *p == '\\' || *p == '$')
				fputc('\\', f);
			fputc(*p, f);
		}
		fputs("\"\n", f);
	}
	fclose(f);
	r = write_tree_file(b, "/.husk", "environment", envtext, envlen);
	free(envtext);
	if (r == 0 && b->recipe_text)
		r = write_tree_file(b, "/.husk", "recipe", b->recipe_text, b->recipe_len);
	return r;
}

static long long clamp_to;

static int clamp_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { clamp_to, 0 } };

	(void)flag;
	(void)ftw;
	if (st->st_mtim.tv_sec > clamp_to ||
	    (st->st_mtim.tv_sec == clamp_to && st->st_mtim.tv_nsec != 0))
		utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
	return 0;
}

static int clamp_times(struct build *b)
{
	clamp_to = b->sde;
	if (nftw(b->root_path, clamp_one, 32, FTW_PHYS | FTW_MOUNT | FTW_DEPTH) < 0)
		return husk_err_set(b->err, errno, "cannot set the timestamps of the tree");
	return 0;
}

/* ---- step 4: SquashFS --------------------------------------------------- */

static int squash(struct build *b)
{
	autofree char *dest = fd_path(b->out_fd);
	char sde[32], procs[16];
	const char *argv[32];
	int a = 0, ws;
	pid_t pid;
	bool show = !b->o->quiet && isatty(2);

	snprintf(sde, sizeof(sde), "%lld", b->sde);
	snprintf(procs, sizeof(procs), "%ld", sysconf(_SC_NPROCESSORS_ONLN) > 0 ?
		sysconf(_SC_NPROCESSORS_ONLN) : 1);
	argv[a++] = b->mksquashfs;
	argv[a++] = b->root_path;
	argv[a++] = dest;
	argv[a++] = "-noappend";
	argv[a++] = "-comp";
	argv[a++] = b->comp;
	argv[a++] = "-all-root";
	argv[a++] = "-no-xattrs";
	argv[a++] = "-mkfs-time";
	argv[a++] = sde;
	argv[a++] = "-reproducible";
	argv[a++] = "-processors";
	argv[a++] = procs;
	if (!show) {
		argv[a++] = "-no-progress";
		argv[a++] = "-quiet";
	}
	argv[a] = NULL;
	fflush(NULL);
	if ((pid = fork()) < 0)
		return husk_err_set(b->err, errno, "fork");
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* The summary table goes away; errors stay on stderr. */
		if (!show && null >= 0)
			dup2(null, 1);
		/* Times come from -mkfs-time and the clamped tree; mksquashfs would
		 * refuse both, and its SOURCE_DATE_EPOCH sets every file's time,
		 * which invalidates Python's compiled files. */
		unsetenv("SOURCE_DATE_EPOCH");
		/* The output fd must survive exec for /proc/self/fd/N. */
		fcntl(b->out_fd, F_SETFD, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return husk_err_set(b->err, errno, "waitpid");
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
		return husk_err_set(b->err, 0, "mksquashfs failed (%s %d; its messages are above); "
			"nothing was written to '%s'", WIFEXITED(ws) ? "exit status" : "signal",
			WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws), b->o->output);
	return 0;
}

/* ---- step 5: WARM ---------------------------------------------------------- */

#define WARM_PART "warm.part"   /* in the scratch directory, beside the tree */

/* WARM: in the image just written (an unnamed file: /proc/self/fd/N), as
 * the caller, as `husk run --clean-env --no-home --warm-record` would. */
struct warm_arg {
	const char *image, *record;
};

static void warm_setup(struct build *b, struct husk_plan *plan, const void *arg)
{
	const struct warm_arg *w = arg;

	(void)b;
	plan->image_path = w->image;
	plan->no_join = true;
	plan->no_warm = true;
	plan->warm_record = w->record;
}

static int warm_one(struct build *b, const struct husk_recipe_step *s, const char *record)
{
	autofree char *image = fd_path(b->out_fd);
	struct warm_arg w = { image, record };

	return run_command(b, s, warm_setup, &w,
		"a WARM command must succeed in the finished image");
}

/* The recipe's WARM commands, in order, on the image just written; their
 * profiles joined into /.husk/warm, and the image written again with it.
 * Returns 1 when there was nothing to do. */
static int warm_image(struct build *b)
{
	autofree char *record = husk_strdup_printf("%s/scratch/%s", b->stage, WARM_PART);
	char *all = NULL, *part = NULL;
	size_t n_all = 0, n_part;
	int r = 1;

	if (!record)
		return husk_err_set(b->err, ENOMEM, "WARM");
	for (size_t i = 1; i < b->recipe.n; i++) {
		const struct husk_recipe_step *s = &b->recipe.steps[i];
		const char *body;
		char *grown;

		if (s->kind != HUSK_I_WARM)
			continue;
		progress(b, "WARM %s: recording what it reads", s->args);
		unlinkat(b->scratch_fd, WARM_PART, 0);
		if (warm_one(b, s, record) < 0 ||
		    husk_read_fileat(b->scratch_fd, WARM_PART, &part, &n_part, 64 << 20) < 0) {
			r = step_err(b, s);
			goto out;
		}
		/* Each part has the header line; the whole keeps the first. */
		body = n_all && (body = strchr(part, '\n')) ? body + 1 : part;
		if (!(grown = realloc(all, n_all + strlen(body) + 1))) {
			r = husk_err_set(b->err, ENOMEM, "WARM");
			goto out;
		}
		all = grown;
		memcpy(all + n_all, body, strlen(body) + 1);
		n_all += strlen(body);
		free(part);
		part = NULL;
	}
	if (n_all == 0)
		goto out;
	progress(b, "writing %s again, with its warm profile (%zu bytes)", b->o->output, n_all);
	r = write_tree_file(b, "/.husk", "warm", all, n_all);
	if (r == 0 && (clamp_times(b) < 0 || ftruncate(b->out_fd, 0) < 0 || squash(b) < 0))
		r = -1;
out:
	unlinkat(b->scratch_fd, WARM_PART, 0);
	free(part);
	free(all);
	return r;
}

/* Give the finished output its name, replacing an older file atomically. */
static int publish(struct build *b)
{
	char tmp[NAME_MAX + 1];
	autofree char *src = fd_path(b->out_fd);

	if (fsync(b->out_fd) < 0)
		return husk_err_set(b->err, errno, "output '%s'", b->o->output);
	if (b->out_tmpname) {
		if (renameat(b->out_dir_fd, b->out_tmpname, b->out_dir_fd, b->out_base) < 0)
			return husk_err_set(b->err, errno, "output '%s'", b->o->output);
		free(b->out_tmpname);
		b->out_tmpname = NULL;
		tmp_dir_fd = -1;
		return 0;
	}
	snprintf(tmp, sizeof(tmp), ".%.200s.husk-build.%d", b->out_base, (int)getpid());
	unlinkat(b->out_dir_fd, tmp, 0);
	if (linkat(AT_FDCWD, src, b->out_dir_fd, tmp, AT_SYMLINK_FOLLOW) < 0)
		return husk_err_set(b->err, errno, "cannot name the output '%s'", b->o->output);
	if (renameat(b->out_dir_fd, tmp, b->out_dir_fd, b->out_base) < 0) {
		int e = errno;
		unlinkat(b->out_dir_fd, tmp, 0);
		return husk_err_set(b->err, e, "cannot name the output '%s'", b->o->output);
	}
	return 0;
}

/* ---- the whole build ------------------------------------------------------ */

/* "layout:TAG" or "archive.tar:TAG" picks one image of several: when PATH
 * does not exist but its part before the last ':' does, split it. */
static void split_ref(const char *path, char **base, char **ref)
{
	const char *colon = strrchr(path, ':');

	*ref = NULL;
	*base = strdup(path);
	if (access(path, F_OK) == 0 || !colon || colon == path || strchr(colon, '/') ||
	    !colon[1])
		return;
	free(*base);
	*base = strndup(path, (size_t)(colon - path));
	if (*base && access(*base, F_OK) == 0) {
		*ref = strdup(colon + 1);
		return;
	}
	free(*base);
	*base = strdup(path);
}

static bool is_oci(enum husk_source_kind k)
{
	return k == HUSK_SRC_OCI_LAYOUT || k == HUSK_SRC_OCI_ARCHIVE || k == HUSK_SRC_DOCKER_ARCHIVE;
}

static int prepare(struct build *b, const char **debian_suite, char src_digest[65],
	const char **src_digest_p)
{
	struct stat st;
	const char *from_arg = NULL, *suite = NULL;
	char ver[256];

	if (!b->o->source || !*b->o->source || !b->o->output || !*b->o->output)
		return husk_err_set(b->err, 0, "give a source and an output image");
	split_ref(b->o->source, &b->src_path, &b->src_ref);
	if (!b->src_path)
		return husk_err_set(b->err, ENOMEM, "source");
	if (husk_source_detect(b->src_path, &b->kind, b->err) < 0)
		return -1;
	if (b->src_ref && !is_oci(b->kind))
		return husk_err_set(b->err, 0, "source '%s': ':%s' picks an image by tag, but '%s' "
			"is a %s, not an OCI layout or archive or a Docker archive", b->o->source,
			b->src_ref, b->src_path, husk_source_kind_name(b->kind));
	if (!(b->source = realpath(b->src_path, NULL)) || stat(b->source, &st) < 0)
		return husk_err_set(b->err, errno, "source '%s'", b->o->source);
	if (parse_sde(b, &st) < 0)
		return -1;
	b->comp = b->o->compression ? b->o->compression : HUSK_BUILD_COMPRESSION;
	if (strcmp(b->comp, "gzip") && strcmp(b->comp, "lz4") && strcmp(b->comp, "zstd") &&
	    strcmp(b->comp, "xz") && strcmp(b->comp, "lzo"))
		return husk_err_set(b->err, 0, "compression '%s': unknown; use lz4 (the default, "
			"fastest to read), zstd, gzip, xz or lzo", b->comp);
	if (husk_find_tool("mksquashfs", b->mksquashfs, sizeof(b->mksquashfs)) < 0)
		return husk_err_set(b->err, 0, "mksquashfs not found; install it with: apt-get "
			"install squashfs-tools");
	{
		const char *argv[] = { b->mksquashfs, "-version", NULL };
		tool_version(argv, ver, sizeof(ver));
		json_object_object_add(b->tools, "mksquashfs", json_object_new_string(ver));
	}
	json_object_object_add(b->tools, "libarchive", json_object_new_string(archive_version_string()));
	b->src_fd = open(b->source, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (b->src_fd < 0)
		return husk_err_set(b->err, errno, "source '%s'", b->o->source);
	*src_digest_p = file_digest(b->src_fd, b->o->source, src_digest);
	if (open_output(b) < 0)
		return -1;
	{
		struct stat ost;
		if (fstat(b->out_fd, &ost) == 0 && ost.st_dev == st.st_dev && ost.st_ino == st.st_ino)
			return husk_err_set(b->err, 0, "output '%s' is the source", b->o->output);
	}
	if (b->kind != HUSK_SRC_RECIPE) {
		b->n_steps = 1;
		return 0;
	}
	/* A recipe: read and parse it, find its base and context. */
	if (husk_read_fd(b->src_fd, &b->recipe_text, &b->recipe_len, RECIPE_MAX) < 0)
		return husk_err_set(b->err, errno, "recipe '%s'", b->o->source);
	if (husk_recipe_parse(b->recipe_text, b->recipe_len, b->o->source, &b->recipe, b->err) < 0)
		return -1;
	b->n_steps = (int)b->recipe.n;
	{
		autofree char *copy = strdup(b->source);
		const char *ctx = b->o->context ? b->o->context : dirname(copy);
		b->ctx_fd = open(ctx, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (b->ctx_fd < 0)
			return husk_err_set(b->err, errno, "build context '%s'", ctx);
	}
	{
		char **w = NULL;
		if (husk_recipe_words(b->recipe.steps[0].args, NULL, &w, b->err) < 0)
			return step_err(b, &b->recipe.steps[0]);
		if (!w[0] || (w[1] && strcasecmp(w[1], "AS"))) {
			husk_strv_free(w);
			husk_err_set(b->err, 0, "write FROM IMAGE");
			return step_err(b, &b->recipe.steps[0]);
		}
		if (w[1]) {
			husk_strv_free(w);
			husk_err_set(b->err, 0, "named stages (FROM ... AS) are not supported; one FROM "
				"per recipe");
			return step_err(b, &b->recipe.steps[0]);
		}
		from_arg = b->recipe.steps[0].args;
		husk_strv_free(w);
	}
	{
		char **w = NULL;
		char digest[65];
		autofree char *what = NULL;
		husk_recipe_words(from_arg, NULL, &w, b->err);
		what = husk_strdup_printf("FROM %s", w[0]);
		if (!strcmp(w[0], "scratch")) {
			add_input(b, what, NULL);
		} else if (is_debian_ref(w[0], &suite) && access(w[0], F_OK) < 0) {
			add_input(b, what, NULL);
			*debian_suite = strdup(suite);
		} else {
			autofree char *joined = NULL;
			autofree char *abs = NULL;
			autofree char *copy = strdup(b->source);
			int bad;
			/* A local image, relative to the recipe's directory. */
			if (w[0][0] == '/')
				joined = strdup(w[0]);
			else
				joined = husk_strdup_printf("%s/%s", copy ? dirname(copy) : ".", w[0]);
			split_ref(joined, &abs, &b->from_ref);
			if (access(abs, F_OK) < 0) {
				husk_err_set(b->err, errno, "base image '%s'", w[0]);
				husk_err_hint(b->err, "FROM takes debian:SUITE, scratch, or a local image "
					"(directory, .sqfs, tar, OCI layout or archive) relative to the "
					"recipe; husk build does not pull from registries (use skopeo copy "
					"docker://NAME oci-archive:NAME.tar)");
				bad = -1;
			} else if (!(bad = husk_source_detect(abs, &b->from_kind, b->err) < 0) &&
			    (b->from_fd = open(abs, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
				bad = husk_err_set(b->err, errno, "base image '%s'", w[0]);
			}
			if (!bad && b->from_ref && !is_oci(b->from_kind))
				bad = husk_err_set(b->err, 0, "base image '%s': a tag picks one image of "
					"an OCI layout or archive or a Docker archive", w[0]);
			if (bad) {
				husk_strv_free(w);
				return step_err(b, &b->recipe.steps[0]);
			}
			if (b->from_kind == HUSK_SRC_RECIPE) {
				husk_err_set(b->err, 0, "'%s' is a recipe; build it and FROM the image", w[0]);
				husk_strv_free(w);
				return step_err(b, &b->recipe.steps[0]);
			}
			add_input(b, what, file_digest(b->from_fd, w[0], digest));
		}
		husk_strv_free(w);
	}
	return 0;
}

int husk_build(const struct husk_build_opts *o, char digest_out[65], struct husk_err *err)
{
	struct build b;
	const char *suite = NULL, *src_digest = NULL;
	char src_digest_buf[65];
	double t0 = husk_now_ms();
	int r = -1;
	struct stat st;

	memset(&b, 0, sizeof(b));
	b.o = o;
	b.err = err;
	b.out_dir_fd = b.out_fd = b.src_fd = b.ctx_fd = b.from_fd = -1;
	b.mmdebstrap_fd = b.root_fd = b.scratch_fd = -1;
	husk_env_init(&b.env);
	husk_env_init(&b.labels);
	b.inputs = json_object_new_array();
	b.tools = json_object_new_object();
	json_object_object_add(b.tools, "husk", json_object_new_string(husk_version()));

	if (prepare(&b, &suite, src_digest_buf, &src_digest) < 0)
		goto out;
	if (suite && start_mmdebstrap(&b, suite) < 0)
		goto out;
	if (make_tree(&b) < 0)
		goto out;
	b.step = 1;
	if (b.kind != HUSK_SRC_RECIPE) {
		autofree char *what = husk_strdup_printf("%s '%s'", husk_source_kind_name(b.kind),
			o->source);
		progress(&b, "step 1/1: import %s", what);
		if (import_local(&b, b.src_fd, b.kind, b.src_ref, what) < 0)
			goto out;
	} else if (suite) {
		progress(&b, "step 1/%d: FROM debian:%s (mmdebstrap)", b.n_steps, suite);
		if (import_debian(&b, suite) < 0) {
			step_err(&b, &b.recipe.steps[0]);
			goto out;
		}
	} else if (b.from_fd >= 0) {
		autofree char *what = husk_strdup_printf("base image '%s'", b.recipe.steps[0].args);
		progress(&b, "step 1/%d: FROM %s (%s)", b.n_steps, b.recipe.steps[0].args,
			husk_source_kind_name(b.from_kind));
		if (import_local(&b, b.from_fd, b.from_kind, b.from_ref, what) < 0) {
			step_err(&b, &b.recipe.steps[0]);
			goto out;
		}
	} else {
		progress(&b, "step 1/%d: FROM scratch", b.n_steps);
	}
	if (b.kind == HUSK_SRC_RECIPE && run_recipe(&b) < 0)
		goto out;
	apt_conf(&b, false);
	if (b.ran)
		remove_volatile(&b);
	progress(&b, "writing %s (%s)", o->output, b.comp);
	if (write_metadata(&b, src_digest) < 0 || clamp_times(&b) < 0 || squash(&b) < 0 ||
	    warm_image(&b) < 0 || publish(&b) < 0)
		goto out;
	if (husk_image_digest(b.out_fd, o->output, digest_out, err) < 0)
		goto out;
	if (fstat(b.out_fd, &st) == 0)
		progress(&b, "done in %.1f s: %s, %.1f MiB, sha256:%s", (husk_now_ms() - t0) / 1000,
			o->output, st.st_size / 1048576.0, digest_out);
	r = 0;
out:
	if (b.mmdebstrap > 0) {
		kill(b.mmdebstrap, SIGTERM);
		waitpid(b.mmdebstrap, NULL, 0);
	}
	if (b.out_tmpname) {
		unlinkat(b.out_dir_fd, b.out_tmpname, 0);
		tmp_dir_fd = -1;
		free(b.out_tmpname);
	}
	/* The tree vanishes with our mount namespace; empty it now anyway, so
	 * that memory is returned before the caller goes on. */
	if (b.root_fd >= 0)
		close(b.root_fd);
	if (b.stage)
		umount2(b.stage, MNT_DETACH);
	if (b.out_fd >= 0)
		close(b.out_fd);
	if (b.out_dir_fd >= 0)
		close(b.out_dir_fd);
	if (b.src_fd >= 0)
		close(b.src_fd);
	if (b.ctx_fd >= 0)
		close(b.ctx_fd);
	if (b.from_fd >= 0)
		close(b.from_fd);
	if (b.mmdebstrap_fd >= 0)
		close(b.mmdebstrap_fd);
	if (b.scratch_fd >= 0)
		close(b.scratch_fd);
	free(b.source);
	free(b.src_path);
	free(b.src_ref);
	free(b.from_ref);
	free(b.out_dir);
	free(b.out_base);
	free(b.recipe_text);
	free(b.workdir);
	free((char *)suite);
	husk_recipe_free(&b.recipe);
	husk_env_free(&b.env);
	husk_env_free(&b.labels);
	husk_strv_free(b.entrypoint);
	husk_strv_free(b.cmd);
	json_object_put(b.inputs);
	json_object_put(b.tools);
	return r;
}
