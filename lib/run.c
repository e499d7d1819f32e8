/* run.c: `husk run`, from a plan to an exit status.
 *
 * A launch is three processes:
 *
 *   husk (top)      stays in the host's namespaces; forwards signals to the
 *    |              supervisor and exits with its status. It is a child
 *    |              subreaper, so if the supervisor is killed it still finds
 *    |              and kills whatever is left.
 *    +- supervisor  unshares the user and mount namespaces, mounts the image
 *        |          (serving SquashFS over FUSE in its threads), is a child
 *        |          subreaper, forwards signals to the command, and when the
 *        |          command exits, ends every leftover process (SIGTERM, then
 *        |          SIGKILL after a grace period) before exiting with its
 *        |          status. If the top process dies (even by SIGKILL) its end
 *        |          of a pipe closes, and the supervisor kills everything.
 *        +- command assembles the root, pivots into it and execs.
 *
 * The supervisor runs on the top process's memory (only a build step forks
 * it), which saves the copy of an address space and its teardown (see
 * share_memory).
 *
 * Nothing is mounted outside the launch's own mount namespace, and no file is
 * written outside its private tmpfs: when the last process is gone, the kernel
 * takes the namespace and every mount with it. */
#include "husk_config.h"
#include "husk.h"
#include "conf.h"
#include "ns.h"
#include "sqfs.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ENV_FILE_MAX (1 << 20)
/* A warm profile: a few hundred KiB for a Python stack; more is refused. */
#define WARM_FILE_MAX (16 << 20)

void husk_plan_init(struct husk_plan *plan)
{
	memset(plan, 0, sizeof(*plan));
	husk_env_init(&plan->env_cli);
	plan->kill_grace_ms = 2000;
}

void husk_plan_free(struct husk_plan *plan)
{
	for (size_t i = 0; i < plan->n_binds; i++)
		husk_bind_free(&plan->binds[i]);
	free(plan->binds);
	free(plan->env_files);
	husk_env_free(&plan->env_cli);
}

const char *husk_version(void)
{
	return PACKAGE_VERSION;
}

/* ---- planning (no system changes) ----------------------------------- */

/* Prepend dirs (in order) to the colon list NAME of env. */
static int prepend_dirs(struct husk_env *env, const char *name, char **dirs)
{
	const char *old = husk_env_get(env, name);
	autofree char *value = NULL;
	size_t len = old ? strlen(old) + 1 : 1;
	int r;

	if (!dirs || !*dirs)
		return 0;
	for (char **d = dirs; *d; d++)
		len += strlen(*d) + 1;
	if (!(value = malloc(len)))
		return -1;
	value[0] = '\0';
	for (char **d = dirs; *d; d++) {
		strcat(value, *d);
		if (d[1])
			strcat(value, ":");
	}
	if (old && *old) {
		strcat(value, ":");
		strcat(value, old);
	}
	r = husk_env_set(env, name, value);
	return r;
}

static int build_env(struct husk_setup *s, struct husk_err *err)
{
	struct husk_plan *p = s->plan;
	autofree char *text = NULL;
	size_t len;
	int r;

	husk_env_init(&s->env);
	for (char **e = environ; *e; e++)
		if (strchr(*e, '=') && (!p->clean_env || husk_env_keep_clean(*e)))
			husk_env_put(&s->env, *e);
	if (p->clean_env || !husk_env_get(&s->env, "PATH"))
		husk_env_set(&s->env, "PATH", DEFAULT_PATH);
	/* The image's own environment overrides the host's. */
	r = husk_image_read_file(&s->img, "/.husk/environment", &text, &len, ENV_FILE_MAX, err);
	if (r < 0)
		return -1;
	if (r == 0 && husk_env_parse(&s->env, text, len, "image environment "
	    "'/.husk/environment'", err) < 0)
		return -1;
	/* The host pieces' variables (site config, injection profiles) come
	 * next: the image's own values lose to them, the user's win. */
	for (size_t i = 0; p->host && i < p->host->env.n; i++)
		if (husk_env_put(&s->env, p->host->env.vars[i]) < 0)
			return husk_err_set(err, ENOMEM, "environment");
	for (size_t i = 0; i < p->n_env_files; i++) {
		autofree char *ftext = NULL;
		autofree char *what = husk_strdup_printf("--env-file '%s'", p->env_files[i]);
		if (husk_read_fileat(AT_FDCWD, p->env_files[i], &ftext, &len, ENV_FILE_MAX) < 0)
			return husk_err_set(err, errno, "--env-file '%s'", p->env_files[i]);
		if (husk_env_parse(&s->env, ftext, len, what, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < p->env_cli.n; i++)
		husk_env_put(&s->env, p->env_cli.vars[i]);
	/* Injected host libraries and programs must be found first, whatever
	 * the image or the user set: their directories go in front. */
	if (p->host && (prepend_dirs(&s->env, "LD_LIBRARY_PATH", p->host->ld_library_path) < 0 ||
	    prepend_dirs(&s->env, "PATH", p->host->path) < 0))
		return husk_err_set(err, ENOMEM, "environment");
	husk_env_set(&s->env, "HUSK_CONTAINER", "1");
	husk_env_set(&s->env, "HUSK_IMAGE", s->img.path);
	if (s->home && !p->build_step)
		husk_env_set(&s->env, "HOME", s->home);
	return 0;
}

static struct husk_mnt *add_mnt(struct husk_setup *s, const char *src, const char *dst,
	const char *why)
{
	struct husk_mnt *m, *v = realloc(s->mnts, (s->n_mnts + 1) * sizeof(*v));

	if (!v)
		return NULL;
	s->mnts = v;
	m = &v[s->n_mnts++];
	memset(m, 0, sizeof(*m));
	m->src = strdup(src);
	m->dst = husk_path_normalize(dst);
	m->src_fd = -1;
	m->nodev = true;
	m->why = why;
	return m;
}

/* Is path equal to or below dir? */
static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0' || !strcmp(dir, "/"));
}

/* Directories whose host copy must never hide the image's. */
static bool system_dir(const char *path)
{
	static const char *const sys[] = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
		"/libx32", "/etc", "/var", "/opt", "/boot", "/run", "/proc", "/sys", "/dev",
		"/srv", NULL };

	if (!strcmp(path, "/"))
		return true;
	for (int i = 0; sys[i]; i++)
		if (under(path, sys[i]))
			return true;
	return false;
}

/* The host's /etc/hosts and /etc/resolv.conf, read-only, when it has them. */
static int add_name_service(struct husk_setup *s, struct husk_err *err)
{
	static const char *const files[] = { "/etc/hosts", "/etc/resolv.conf", NULL };

	for (int i = 0; files[i]; i++) {
		struct husk_mnt *m = add_mnt(s, files[i], files[i], "default");
		if (!m)
			return husk_err_set(err, ENOMEM, "mount list");
		m->ro = m->optional = true;
	}
	return 0;
}

static int add_bind_mnt(struct husk_setup *s, const struct husk_bind *b, const char *why,
	struct husk_err *err)
{
	struct husk_mnt *m;
	struct stat st;

	if (b->why)
		why = b->why;
	if (stat(b->src, &st) < 0) {
		if (b->optional) {
			husk_info("skipping the %s bind of '%s': %s", why, b->src, strerror(errno));
			return 0;
		}
		husk_err_set(err, errno, "bind source '%s' (%s)", b->src, why);
		husk_err_hint(err, "create it on the host or fix the bind");
		return -1;
	}
	if (!(m = add_mnt(s, b->src, b->dst, why)))
		return husk_err_set(err, ENOMEM, "mount list");
	m->ro = b->ro;
	m->optional = b->optional;
	/* Device nodes (CDI deviceNodes bound under another name, a host
	 * root's /dev) must stay usable, as in the default /dev mount. */
	m->nodev = !under(m->dst, "/dev");
	return 0;
}

/* The launcher's rendezvous directories (PMIx; launcher.c), where they exist. */
static int add_launcher_dirs(struct husk_setup *s, struct husk_err *err)
{
	char *dirs[4];
	int n = husk_launcher_dirs(dirs, 4), bad = 0;

	if (n < 0)
		return husk_err_set(err, ENOMEM, "mount list");
	for (int i = 0; i < n; i++) {
		struct husk_mnt *m = bad ? NULL : add_mnt(s, dirs[i], dirs[i], "PMIx");
		if (m)
			m->optional = true;
		else
			bad = 1;
		free(dirs[i]);
	}
	return bad ? husk_err_set(err, ENOMEM, "mount list") : 0;
}

static int build_mounts(struct husk_setup *s, struct husk_err *err)
{
	struct husk_plan *p = s->plan;
	struct husk_mnt *m;
	bool cwd_visible;

	if (!add_mnt(s, "/proc", "/proc", "default") || !add_mnt(s, "/sys", "/sys", "default"))
		return husk_err_set(err, ENOMEM, "mount list");
	if (!(m = add_mnt(s, "/dev", "/dev", "default")))
		return husk_err_set(err, ENOMEM, "mount list");
	m->nodev = false;  /* device nodes must work: /dev/null, GPUs, InfiniBand */
	if (p->build_step)
		/* A RUN step of husk build: the image's own /tmp, no host HOME or
		 * working directory, and the image's own passwd/group (which apt
		 * may rewrite); DNS and hosts from the host, for downloads. */
		return add_name_service(s, err);
	if (!(m = add_mnt(s, "/tmp", "/tmp", "default")))
		return husk_err_set(err, ENOMEM, "mount list");
	if (s->home && !p->no_home) {
		if (system_dir(s->home)) {
			husk_warn("not binding HOME '%s': it is a system directory", s->home);
		} else if (!(m = add_mnt(s, s->home, s->home, "default"))) {
			return husk_err_set(err, ENOMEM, "mount list");
		} else {
			m->optional = true;
		}
	}
	cwd_visible = under(s->host_cwd, "/tmp") ||
		(s->home && !p->no_home && under(s->host_cwd, s->home));
	if (!cwd_visible && !system_dir(s->host_cwd)) {
		if (!(m = add_mnt(s, s->host_cwd, s->host_cwd, "default")))
			return husk_err_set(err, ENOMEM, "mount list");
		m->optional = true;
	}
	if (add_name_service(s, err) < 0)
		return -1;
	if (!(m = add_mnt(s, "passwd", "/etc/passwd", "generated")))
		return husk_err_set(err, ENOMEM, "mount list");
	m->ro = m->generated = true;
	if (!(m = add_mnt(s, "group", "/etc/group", "generated")))
		return husk_err_set(err, ENOMEM, "mount list");
	m->ro = m->generated = true;
	if (add_launcher_dirs(s, err) < 0)
		return -1;
	/* The host pieces (site binds, injected libraries, devices) after the
	 * defaults, the user's binds last: they have the final word. */
	for (size_t i = 0; p->host && i < p->host->n_binds; i++)
		if (add_bind_mnt(s, &p->host->binds[i], "host", err) < 0)
			return -1;
	for (size_t i = 0; i < p->n_binds; i++)
		if (add_bind_mnt(s, &p->binds[i], "--bind", err) < 0)
			return -1;
	/* Masks go over everything, the host's /dev bind included. */
	for (char **h = p->host ? p->host->hide : NULL; h && *h; h++) {
		if (!(m = add_mnt(s, "(hidden)", *h, "hide")) || !m->dst)
			return husk_err_set(err, m ? EINVAL : ENOMEM, "hidden path '%s'", *h);
		m->ro = m->hide = true;
	}
	return 0;
}

/* A pinned image must have the pinned digest. The fd is hashed, the one the
 * SquashFS server reads later, so what was checked is what is served. */
static int check_digest(struct husk_setup *s, struct husk_err *err)
{
	struct husk_plan *p = s->plan;

	if (s->img.kind == HUSK_IMAGE_DIR) {
		if (p->pin_digest)
			return husk_err_set(err, 0, "image '%s': a directory cannot be pinned to a "
				"digest; pin a SquashFS image file, or drop '@sha256:...'", p->image_path);
		return 0;
	}
	if (!p->pin_digest && !p->provenance)
		return 0;
	if (husk_image_digest(s->img.fd, p->image_path, s->digest, err) < 0)
		return -1;
	s->have_digest = true;
	if (p->pin_digest && strcmp(s->digest, p->pin_digest)) {
		husk_err_set(err, 0, "image '%s': digest sha256:%s does not match the pinned "
			"sha256:%s", p->image_path, s->digest, p->pin_digest);
		husk_err_hint(err, "this is not the image that was pinned: use that one, or check "
			"this one and pin its digest");
		return -1;
	}
	if (p->pin_digest)
		husk_info("image digest sha256:%s matches the pin", s->digest);
	return 0;
}

/* A warm profile records what husk's FUSE server is asked: SquashFS only. */
static int check_warm_record(struct husk_setup *s, struct husk_err *err)
{
	if (!s->plan->warm_record || s->img.kind == HUSK_IMAGE_SQUASHFS || s->plan->build_step)
		return 0;
	return husk_err_set(err, 0, "--warm-record: image '%s' is a directory, which the kernel "
		"serves, not husk; record with the SquashFS image", s->plan->image_path);
}

/* No command given: the image's entrypoint followed by its cmd, as Docker
 * does. A command given replaces both (exec semantics). */
static int choose_command(struct husk_setup *s, struct husk_err *err)
{
	size_t n = 0, k = 0;

	if (s->plan->argv) {
		s->argv = s->plan->argv;
		return 0;
	}
	for (char **a = s->meta.entrypoint; a && *a; a++)
		n++;
	for (char **a = s->meta.cmd; a && *a; a++)
		n++;
	if (n == 0)
		return husk_err_set(err, 0, "no command given after the image, and the image has "
			"no entrypoint or cmd; see 'husk help run'");
	if (!(s->image_argv = calloc(n + 1, sizeof(char *))))
		return husk_err_set(err, ENOMEM, "command");
	for (char **a = s->meta.entrypoint; a && *a; a++)
		s->image_argv[k++] = *a;
	for (char **a = s->meta.cmd; a && *a; a++)
		s->image_argv[k++] = *a;
	s->argv = s->image_argv;
	husk_info("no command given: running the image's %s%s%s", s->meta.entrypoint ?
		"entrypoint" : "", s->meta.entrypoint && s->meta.cmd ? " + " : "",
		s->meta.cmd ? "cmd" : "");
	return 0;
}

static int plan_launch(struct husk_setup *s, struct husk_err *err)
{
	struct husk_plan *p = s->plan;
	const char *home = getenv("HOME");
	char cwd[PATH_MAX];

	s->uid = getuid();
	s->gid = getgid();
	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "/");
	s->host_cwd = strdup(cwd);
	s->home = home && home[0] == '/' ? husk_path_normalize(home) : NULL;
	if (p->cwd && p->cwd[0] != '/')
		return husk_err_set(err, 0, "--cwd '%s': not an absolute path; give the directory "
			"as seen inside the container", p->cwd);
	s->cwd = strdup(p->cwd ? p->cwd : cwd);
	/* Lazy: a member of a running session plans with the files its server
	 * read from the image (husk_session_peek), without opening it. */
	if (husk_image_open_lazy(&s->img, p->image_path, err) < 0 || check_digest(s, err) < 0 ||
	    check_warm_record(s, err) < 0)
		return -1;
	if (husk_session_plan(s, err) < 0 || (!p->dry_run && husk_session_peek(s, err) < 0))
		return -1;
	if (husk_meta_read(&s->img, &s->meta, err) < 0 || choose_command(s, err) < 0)
		return -1;
	s->workdir = s->meta.workdir;
	if (build_env(s, err) < 0 || build_mounts(s, err) < 0)
		return -1;
	if (!p->build_step && husk_identity_files(&s->img, p->fake_root, s->uid, s->gid, s->home,
	    &s->passwd, &s->group, err) < 0)
		return -1;
	husk_session_plan_root(s);
	/* Opened now, so that a file we cannot write stops the launch before
	 * anything runs; the record is written just before exec. */
	if (p->provenance && !p->dry_run && (husk_provenance_open(s, err) < 0 ||
	    husk_provenance_prepare(s, err) < 0))
		return -1;
	if (p->warm_record && !p->dry_run && (s->warm_fd = open(p->warm_record,
	    O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0644)) < 0) {
		husk_err_set(err, errno, "warm profile '%s'", p->warm_record);
		husk_err_hint(err, "nothing was run; give a file you can write (--warm-record)");
		return -1;
	}
	return 0;
}

static void dry_run_report(struct husk_setup *s, FILE *out)
{
	struct husk_plan *p = s->plan;

	fprintf(out, "image: %s (%s, mounted read-only, nosuid, nodev)\n", s->img.path,
		s->img.kind == HUSK_IMAGE_SQUASHFS ? "SquashFS, served by husk over FUSE" :
		"directory");
	if (s->have_digest)
		fprintf(out, "digest: sha256:%s%s\n", s->digest, p->pin_digest ?
			" (pinned: it matches)" : "");
	fprintf(out, "ids inside: uid %u gid %u%s\n", p->fake_root ? 0 : (unsigned)s->uid,
		p->fake_root ? 0 : (unsigned)s->gid, p->fake_root ? " (--fake-root)" : "");
	fprintf(out, "root: %s\n", p->writable_tmpfs ? "overlay with a writable tmpfs layer" :
		"read-only (an overlay adds mount points missing from the image)");
	fprintf(out, "mounts:\n");
	for (size_t i = 0; i < s->n_mnts; i++) {
		struct husk_mnt *m = &s->mnts[i];
		if (m->hide) {
			fprintf(out, "  %-24s -> %-24s masked: an empty file or directory, mode 0  [%s]\n",
				m->src, m->dst, m->why);
			continue;
		}
		fprintf(out, "  %-24s -> %-24s %s,nosuid%s%s  [%s]\n",
			m->generated ? "(generated)" : m->src, m->dst, m->ro ? "ro" : "rw",
			m->nodev ? ",nodev" : "", m->optional ? ",optional" : "", m->why);
	}
	if (p->host && p->host->n_items) {
		fprintf(out, "host pieces:\n");
		for (size_t i = 0; i < p->host->n_items; i++) {
			struct husk_host_item *it = &p->host->items[i];
			fprintf(out, "  %-10s %s%s%s\n", it->what, it->name, it->detail ? "  " : "",
				it->detail ? it->detail : "");
		}
	}
	fprintf(out, "cwd: %s%s\n", s->cwd, p->cwd ? " (--cwd)" : "");
	if (!p->cwd && s->workdir)
		fprintf(out, "  (when it is not available inside: the image's workdir %s)\n",
			s->workdir);
	fprintf(out, "command:");
	for (char **a = s->argv; *a; a++)
		fprintf(out, " %s", *a);
	if (s->image_argv)
		fprintf(out, "  (the image's %s%s%s)", s->meta.entrypoint ? "entrypoint" : "",
			s->meta.entrypoint && s->meta.cmd ? " + " : "", s->meta.cmd ? "cmd" : "");
	if (p->provenance)
		fprintf(out, "\nprovenance: a record would be appended to %s", p->provenance);
	if (s->sess.on)
		fprintf(out, "\nsession: would join session %s (%s): one user namespace and one "
			"image mount for all its launches", s->sess.key, s->sess.launcher);
	else
		fprintf(out, "\nsession: none (%s)", p->no_join ? "--no-join" : p->build_step ?
			"a build step" : "no --join, HUSK_JOIN, Slurm step, PMIx or Open MPI job");
	fprintf(out, "\nenvironment:\n");
	for (size_t i = 0; i < s->env.n; i++)
		fprintf(out, "  %s\n", s->env.vars[i]);
}

static void setup_free(struct husk_setup *s)
{
	for (size_t i = 0; i < s->n_mnts; i++) {
		free(s->mnts[i].src);
		free(s->mnts[i].dst);
		if (s->mnts[i].src_fd >= 0)
			close(s->mnts[i].src_fd);
	}
	free(s->mnts);
	husk_env_free(&s->env);
	husk_provenance_free(s);
	if (s->warm_fd >= 0)
		close(s->warm_fd);
	s->warm_fd = -1;
	free(s->image_argv);
	husk_meta_free(&s->meta);
	husk_image_close(&s->img);
	free(s->passwd);
	free(s->group);
	free(s->host_cwd);
	free(s->cwd);
	free(s->home);
	husk_session_free(&s->sess);
}

/* ---- the supervisor (inside the namespaces) ------------------------- */

/* Replace an O_PATH fd by a detached clone of its tree, when the kernel can. */
static void clone_source(int *fd, bool *detached)
{
	int tree = husk_clone_tree(*fd);

	if (tree >= 0) {
		close(*fd);
		*fd = tree;
		*detached = true;
	}
}

int husk_open_bind_sources(struct husk_setup *s, struct husk_err *err)
{
	/* Each source becomes a detached copy of its mount tree now: the staging
	 * tmpfs mounted next must not show up inside a recursive bind of, say,
	 * the host's /tmp. */
	for (size_t i = 0; i < s->n_mnts; i++) {
		struct husk_mnt *m = &s->mnts[i];
		if (m->generated || m->hide)
			continue;
		m->src_fd = open(m->src, O_PATH | O_CLOEXEC);
		if (m->src_fd < 0) {
			if (m->optional) {
				husk_debug("skipping %s mount '%s': %s", m->why, m->src, strerror(errno));
				continue;
			}
			husk_err_set(err, errno, "bind source '%s' (%s)", m->src, m->why);
			return -1;
		}
		clone_source(&m->src_fd, &m->detached);
	}
	return 0;
}

/* Open every host path we need while the host's tree is still in view (the
 * stage is mounted over one of its directories next). */
static int open_sources(struct husk_setup *s, struct husk_err *err)
{
	if (s->img.kind == HUSK_IMAGE_DIR && !s->sess.on) {
		/* Opened again: a bind needs a mount of our own namespace, and the
		 * first fd was opened in the host's. */
		s->dir_image_fd = open(s->img.path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (s->dir_image_fd < 0)
			return husk_err_set(err, errno, "image '%s'", s->img.path);
		clone_source(&s->dir_image_fd, &s->dir_image_detached);
	}
	return husk_open_bind_sources(s, err);
}

/* A private tmpfs over an existing host directory, in our mount namespace
 * only: it holds the image mount point, the overlay layers and the generated
 * files, and vanishes with the namespace, so nothing is left on the host. */
static int make_stage(struct husk_setup *s, struct husk_err *err)
{
	static const char *const anchors[] = { "/tmp", "/var/tmp", "/mnt", "/dev", NULL };

	for (int i = 0; anchors[i]; i++) {
		autoclose int fd = -1;
		bool covered = false;
		/* Without detached clones (kernels before 5.2), a recursive bind of
		 * a source at or above the anchor would include the stage. */
		for (size_t j = 0; j < s->n_mnts; j++)
			if (s->mnts[j].src_fd >= 0 && !s->mnts[j].detached && !s->mnts[j].generated &&
			    under(anchors[i], s->mnts[j].src))
				covered = true;
		if (covered || (s->img.kind == HUSK_IMAGE_DIR && !s->sess.on && !s->dir_image_detached &&
		    under(anchors[i], s->img.path)))
			continue;
		if ((fd = open(anchors[i], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			continue;
		if (husk_mount_tmpfs(fd, "mode=0700") < 0)
			return husk_err_set(err, errno, "cannot mount the private staging tmpfs on '%s'",
				anchors[i]);
		s->stage_fd = open(anchors[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (s->stage_fd < 0)
			return husk_err_set(err, errno, "cannot open the staging tmpfs");
		s->stage_path = anchors[i];
		return 0;
	}
	return husk_err_set(err, 0, "no directory to hold the staging tmpfs (tried /tmp, /var/tmp, "
		"/mnt, /dev)");
}

/* What masks a hidden path: an empty file and an empty directory, mode 0,
 * in the stage. Mode 0 keeps everyone out once capabilities are dropped (a
 * device node masked so cannot be opened at all); with --fake-root, whose
 * capabilities stay, an empty regular file is all there is to open. */
static int make_masks(struct husk_setup *s, struct husk_err *err)
{
	autoclose int fd = -1;
	bool any = false;

	for (size_t i = 0; i < s->n_mnts; i++)
		any |= s->mnts[i].hide;
	if (!any)
		return 0;
	fd = openat(s->stage_fd, "masked", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0 || fchmod(fd, 0) < 0 || mkdirat(s->stage_fd, "masked-dir", 0) < 0)
		return husk_err_set(err, errno, "cannot prepare the masks of hidden paths");
	return 0;
}

static int write_generated(struct husk_setup *s, struct husk_err *err)
{
	autoclose int dir = -1;

	if (make_masks(s, err) < 0)
		return -1;
	if (!s->passwd)
		return 0;   /* a build step keeps the image's own files */
	dir = openat(s->stage_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0 || husk_write_fileat(dir, "passwd", s->passwd, 0644) < 0 ||
	    husk_write_fileat(dir, "group", s->group, 0644) < 0)
		return husk_err_set(err, errno, "cannot write the generated /etc/passwd");
	for (size_t i = 0; i < s->n_mnts; i++)
		if (s->mnts[i].generated &&
		    (s->mnts[i].src_fd = openat(dir, s->mnts[i].src, O_PATH | O_CLOEXEC)) < 0)
			return husk_err_set(err, errno, "cannot open the generated '%s'", s->mnts[i].dst);
		else if (s->mnts[i].generated)
			clone_source(&s->mnts[i].src_fd, &s->mnts[i].detached);
	return 0;
}

static int mount_image(struct husk_setup *s, struct husk_sqfs_server **srv,
	struct husk_err *err)
{
	autoclose int target = -1;
	unsigned attrs;

	if (mkdirat(s->stage_fd, "root", 0755) < 0 ||
	    (target = openat(s->stage_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return husk_err_set(err, errno, "cannot create the image mount point");
	if (s->sess.root_fd >= 0)
		/* The session's mount of the image, cloned from its server. */
		return husk_attach_tree(s->sess.root_fd, target, BIND_RO | BIND_NODEV, err,
			"the image");
	if (s->img.kind == HUSK_IMAGE_SQUASHFS)
		return husk_sqfs_server_mount(srv, s->img.fd, target, err);
	/* A build step writes into the root being built. */
	attrs = s->plan->build_step ? BIND_NODEV : BIND_RO | BIND_NODEV;
	if (s->dir_image_detached)
		return husk_attach_tree(s->dir_image_fd, target, attrs, err, "the image");
	return husk_bind_fd(s->dir_image_fd, target, attrs, err, "the image");
}

/* The session server's part of a launch: open the image (a directory image
 * only: no bind source here), a private stage, the image at STAGE/root. */
int husk_stage_image(struct husk_setup *s, struct husk_sqfs_server **srv,
	struct husk_err *err)
{
	size_t n = s->n_mnts;
	int r;

	s->n_mnts = 0;
	r = open_sources(s, err) < 0 || make_stage(s, err) < 0 || mount_image(s, srv, err) < 0;
	s->n_mnts = n;
	return r ? -1 : 0;
}

/* The session server's helper, in a child of the server (which has staged
 * the image and serves it): the root a member would assemble, in a mount
 * namespace of its own, from the bind sources the server opened before its
 * stage existed. The server keeps that namespace; members join it. */
int husk_assemble_shared_root(struct husk_setup *s, struct husk_err *err)
{
	autoclose int stage = -1, image = -1;

	/* A copy of the server's tree, where the image is at STAGE/root. */
	if (unshare(CLONE_NEWNS) < 0)
		return husk_err_set(err, errno, "cannot create a mount namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return husk_err_set(err, errno, "cannot make the mount tree private");
	stage = openat(AT_FDCWD, s->stage_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (stage >= 0)
		image = openat(stage, "root", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (image < 0 || (s->sess.root_fd = husk_clone_tree(image)) < 0)
		return husk_err_set(err, errno, "cannot take the session's image");
	if (s->stage_fd >= 0)
		close(s->stage_fd);
	s->stage_fd = -1;
	s->sess.on = true;   /* the image comes from the session (make_stage) */
	if (make_stage(s, err) < 0 || write_generated(s, err) < 0 ||
	    mount_image(s, NULL, err) < 0)
		return -1;
	return husk_container_assemble(s, err);
}

struct child_report {
	struct husk_err err;
};

static void child_main(struct husk_setup *s, int report_fd, pid_t supervisor)
{
	struct child_report rep;

	memset(&rep, 0, sizeof(rep));
	/* If the supervisor dies, so do we (and it kills the rest). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != supervisor)
		_exit(HUSK_EXIT_FAILURE);
	if (s->sess.rootns_fd >= 0)
		husk_container_start(s, &rep.err);   /* the root is the session's */
	else
		husk_container_exec(s, &rep.err);
	husk_write_all(report_fd, &rep, sizeof(rep));
	_exit(rep.err.status ? rep.err.status : HUSK_EXIT_FAILURE);
}

static int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return HUSK_EXIT_FAILURE;
}

/* Reap every child that has exited; true when `which` was one of them, with
 * its wait status in *st. */
static bool reap(pid_t which, int *st)
{
	bool found = false;
	int w;
	pid_t pid;

	while ((pid = waitpid(-1, &w, WNOHANG)) > 0)
		if (pid == which) {
			found = true;
			*st = w;
		}
	return found;
}

static int signal_fd(void)
{
	sigset_t set;
	int sigs[32], n = husk_signals_forwarded(sigs, 32);

	sigemptyset(&set);
	for (int i = 0; i < n; i++)
		sigaddset(&set, sigs[i]);
	sigaddset(&set, SIGCHLD);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Read what the child reported about a failed setup or exec, if anything. */
static void read_report(int fd, struct child_report *rep, size_t *got, bool *have, bool *eof)
{
	ssize_t r = read(fd, (char *)rep + *got, sizeof(*rep) - *got);

	if (r > 0 && (*got += (size_t)r) == sizeof(*rep))
		*have = true;
	if (r <= 0 || *have)
		*eof = true;
}

/* Wait for the command and everything it left; returns its exit status. */
static int supervise(struct husk_setup *s, pid_t cmd, int report_fd, int death_fd,
	struct husk_err *err)
{
	autoclose int sfd = signal_fd();
	bool cmd_done = false, have_report = false, report_eof = false;
	int conn = s->sess.conn_fd;
	int cmd_status = 0, phase = 0;   /* 0 running, 1 SIGTERM sent, 2 SIGKILL sent,
	                                  * 3 nothing left to end */
	double deadline = 0;
	struct child_report rep;
	size_t got = 0;
	struct husk_relay_state relay;
	int sig;

	husk_relay_init(&relay);
	if (sfd < 0)
		return husk_err_set(err, errno, "signalfd");
	for (;;) {
		struct pollfd pfd[4] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = death_fd, .events = POLLIN },
			{ .fd = report_eof ? -1 : report_fd, .events = POLLIN },
			{ .fd = conn, .events = POLLIN },
		};
		int timeout = -1;

		if (cmd_done) {
			/* A subreaper without children has no descendants at all: the
			 * common case needs no scan of /proc. */
			if (phase == 0 && waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
				phase = 3;
			if (phase == 0) {
				int n = husk_kill_descendants(s->proc_fd, getpid(), SIGTERM);
				if (n > 0)
					husk_debug("sent SIGTERM to %d leftover process(es)", n);
				phase = n > 0 ? 1 : 2;
				deadline = husk_now_ms() + s->plan->kill_grace_ms;
			}
			if (phase == 1 && husk_now_ms() >= deadline) {
				int n = husk_kill_descendants(s->proc_fd, getpid(), SIGKILL);
				if (n > 0)
					husk_debug("sent SIGKILL to %d leftover process(es)", n);
				phase = 2;
			}
			if (phase == 2)
				husk_kill_all_and_reap(s->proc_fd);
			if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD) {
				if (!report_eof)
					read_report(report_fd, &rep, &got, &have_report, &report_eof);
				if (have_report) {
					*err = rep.err;
					return -1;
				}
				husk_debug("all processes gone at %.2f ms", husk_now_ms() - s->t0);
				return status_code(cmd_status);
			}
			if (phase == 1) {
				double left = deadline - husk_now_ms();
				timeout = left > 0 ? (int)left + 1 : 0;
			}
		}
		if ((sig = husk_relay_due(&relay, husk_now_ms(), &timeout)) && !cmd_done)
			kill(cmd, sig);
		if (poll(pfd, 4, timeout) < 0 && errno != EINTR)
			return husk_err_set(err, errno, "poll");
		if (pfd[1].revents) {
			/* What the top process relays; end of file when it is gone
			 * (killed): then take everything down. */
			struct husk_relay_msg w;
			struct husk_relay m;
			if (read(death_fd, &w, sizeof(w)) != (ssize_t)sizeof(w)) {
				husk_kill_all_and_reap(s->proc_fd);
				_exit(137);
			}
			husk_relay_decode(&w, &m);
			if ((sig = husk_relay_received(&relay, &m, husk_now_ms())) && !cmd_done)
				kill(cmd, sig);
		}
		if (pfd[2].revents)
			read_report(report_fd, &rep, &got, &have_report, &report_eof);
		if (pfd[3].revents) {
			/* The server never writes after its hello: this is its end. The
			 * fd stays open (it holds no one up) but is not polled again. */
			char c;
			if (read(conn, &c, 1) <= 0) {
				if (!cmd_done)
					husk_warn("session server for image '%s' ended unexpectedly",
						s->img.path);
				conn = -1;
			}
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				/* Only what the top process relays is passed on (through
				 * the pipe); a signal sent to us directly tells whether
				 * its sender signalled the whole tree (sigrelay.c). */
				if (si.ssi_signo != SIGCHLD)
					husk_relay_direct(&relay, (int)si.ssi_signo, (pid_t)si.ssi_pid,
						husk_now_ms());
			}
		}
		if (reap(cmd, &cmd_status)) {
			cmd_done = true;
			/* The replay's lookup child goes with the command. */
			if (s->warming)
				husk_sqfs_server_warm_stop(s->warming);
			husk_debug("command exited with status %d at %.2f ms", status_code(cmd_status),
				husk_now_ms() - s->t0);
		}
	}
}

/* Start decompressing the command's executable while the child assembles
 * the root: the first thing exec does is fault its pages in. */
static void prefetch_command(struct husk_setup *s, struct husk_sqfs_server *srv)
{
	const char *cmd = s->argv[0], *path;
	autofree char *copy = NULL;
	char *save = NULL;

	if (getenv("HUSK_NO_PREFETCH") || s->plan->warm_record)
		return;   /* recording: every read the command makes is asked of us */
	if (strchr(cmd, '/')) {
		if (cmd[0] == '/')
			husk_sqfs_server_prefetch(srv, cmd);
		return;
	}
	/* The first PATH entry that has it, as exec will find it. */
	path = husk_env_get(&s->env, "PATH");
	if (!path || !(copy = strdup(path)))
		return;
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		autofree char *full = husk_strdup_printf("%s/%s", dir, cmd);
		if (dir[0] != '/' || !full)
			continue;
		if (husk_image_exists(&s->img, full)) {
			husk_sqfs_server_prefetch(srv, full);
			return;
		}
	}
}

/* Replay the image's warm profile (/.husk/warm, see sqfs_server.c) ahead of
 * the command: it starts now, while the root is being assembled, on the CPUs
 * the assembly leaves idle. */
static void warm_image(struct husk_setup *s, struct husk_sqfs_server *srv)
{
	struct husk_err e = { 0 };
	char *text = NULL;
	size_t len;
	int root;

	if (s->plan->no_warm || s->plan->warm_record ||
	    husk_image_read_file(&s->img, "/.husk/warm", &text, &len, WARM_FILE_MAX, &e) != 0)
		return;   /* none (or unreadable: then the command reads the image itself) */
	if ((root = openat(s->stage_fd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		free(text);
		return;
	}
	husk_info("replaying the image's warm profile (%zu bytes)", len);
	husk_sqfs_server_warm(srv, root, text);
	s->warming = srv;
}

/* What the command asked of the image, to --warm-record FILE. */
static void write_warm_record(struct husk_setup *s, struct husk_sqfs_server *srv)
{
	size_t len = 0;
	const char *text = husk_sqfs_server_profile(srv, &len);

	if (!text || s->warm_fd < 0)
		return;
	if (ftruncate(s->warm_fd, 0) < 0 || husk_write_all(s->warm_fd, text, len) < 0)
		husk_warn("cannot write the warm profile '%s': %s", s->plan->warm_record,
			strerror(errno));
}

/* The command's process assembles the root in a few dozen short FUSE round
 * trips (lookups, the overlay's questions, the first read of the command).
 * On a paravirtualised VM, waking a server thread on another, idle CPU costs
 * 70-200 us, a switch to one on the same CPU about 10 us (sched_switch
 * traces). So until the command execs, it (vforked from this thread) and the
 * serving threads share the CPU we are on; the speculative threads stay free
 * to decompress the command on the others. The command gets the caller's
 * CPUs back before it execs (root.c), the server when vfork returns. */
static void pin_for_assembly(struct husk_setup *s, struct husk_sqfs_server *srv)
{
	cpu_set_t one;
	unsigned cpu;

	/* The getcpu system call: libc's answer may come from the top process's
	 * rseq area, which is ours too. */
	if (syscall(SYS_getcpu, &cpu, NULL, NULL) < 0 ||
	    sched_getaffinity(0, sizeof(s->cmd_cpus), &s->cmd_cpus) < 0 ||
	    CPU_COUNT(&s->cmd_cpus) < 2 || !CPU_ISSET(cpu, &s->cmd_cpus))
		return;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof(one), &one) < 0)
		return;
	husk_sqfs_server_set_cpus(srv, &one);
	s->cpus_pinned = true;
}

static int supervisor_main(struct husk_setup *s, int death_fd, struct husk_err *err)
{
	struct husk_sqfs_server *srv = NULL;
	int report[2], ret;
	pid_t cmd;

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	s->proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->proc_fd < 0)
		return husk_err_set(err, errno, "cannot open '/proc'");
	if (s->sess.rootns_fd >= 0) {
		/* The session's assembled root: nothing to mount. */
		if (husk_session_enter_root(s, err) < 0)
			return -1;
		husk_info("namespaces (the session's root) at %.2f ms", husk_now_ms() - s->t0);
	} else {
		if (s->sess.on ? husk_session_enter(s, err) < 0 :
		    husk_userns_enter(s->plan->fake_root, s->uid, s->gid, err) < 0)
			return -1;
		husk_info("namespaces at %.2f ms", husk_now_ms() - s->t0);
		if (open_sources(s, err) < 0 ||
		    (s->sess.on && husk_session_take_image(s, err) < 0) || make_stage(s, err) < 0 ||
		    write_generated(s, err) < 0 || mount_image(s, &srv, err) < 0)
			return -1;
		husk_info("image mounted at %.2f ms", husk_now_ms() - s->t0);
	}
	if (pipe2(report, O_CLOEXEC) < 0)
		return husk_err_set(err, errno, "pipe");
	/* The FUSE threads first: they answer the command's process while it
	 * assembles the root, and start decompressing the command. */
	if (srv && s->plan->warm_record)
		husk_sqfs_server_record(srv);
	if (srv && husk_sqfs_server_start(srv, err) < 0)
		return -1;
	if (srv) {
		warm_image(s, srv);
		prefetch_command(s, srv);
		pin_for_assembly(s, srv);
	}
	/* The command's process borrows our memory until it execs (vfork: only
	 * this thread waits, the FUSE threads go on serving it). Nothing of our
	 * page tables is copied, which costs 1 to 3 ms on a paravirtualised VM
	 * (a fork, then copy-on-write faults on both sides). */
	cmd = vfork();
	if (cmd < 0)
		return husk_err_set(err, errno, "fork");
	if (cmd == 0) {
		close(report[0]);
		close(death_fd);
		child_main(s, report[1], getppid());
	}
	close(report[1]);
	if (s->cpus_pinned) {
		/* vfork returned: the command has exec'd, with the caller's CPUs. */
		sched_setaffinity(0, sizeof(s->cmd_cpus), &s->cmd_cpus);
		husk_sqfs_server_set_cpus(srv, &s->cmd_cpus);
	}
	ret = supervise(s, cmd, report[0], death_fd, err);
	if (srv) {
		char stats[256];
		husk_sqfs_server_stats(srv, stats, sizeof(stats));
		husk_info("image served: %s", stats);
		if (s->plan->warm_record)
			write_warm_record(s, srv);
	}
	return ret;
}

/* ---- the top process ---------------------------------------------- */

/* Until the supervisor is gone this only waits, relays and reaps: no
 * allocation, no stdio, and errno is set only by a write to a full relay
 * pipe (a supervisor that stopped reading). The supervisor may be running on
 * our memory, errno included (husk_run). On return, *killed says whether the
 * supervisor died of a signal. */
static int top_main(pid_t sup, int relay_fd, bool *killed, struct husk_err *err)
{
	sigset_t set;
	int sigs[32], n = husk_signals_forwarded(sigs, 32);
	int status = HUSK_EXIT_FAILURE;
	bool sup_done = false;

	sigemptyset(&set);
	for (int i = 0; i < n; i++)
		sigaddset(&set, sigs[i]);
	sigaddset(&set, SIGCHLD);
	for (;;) {
		siginfo_t si;
		if (sigwaitinfo(&set, &si) < 0) {
			int e = errno;
			if (e == EINTR)
				continue;
			/* Never leave with the supervisor alive: it may be using
			 * our stack. */
			kill(sup, SIGKILL);
			waitpid(sup, NULL, 0);
			*killed = true;
			husk_end_children();
			return husk_err_set(err, e, "cannot wait for the signals to relay (sigwaitinfo), so the container was ended");
		}
		if (si.si_signo != SIGCHLD) {
			/* Signals from the terminal went to the whole foreground
			 * process group, the command included; the supervisor sorts
			 * out those of a slurmstepd (sigrelay.c). */
			if (!sup_done && !husk_signal_from_terminal(&si))
				husk_relay_send(relay_fd, &si);
			continue;
		}
		if (reap(sup, &status)) {
			sup_done = true;
			*killed = WIFSIGNALED(status);
			status = status_code(status);
		}
		if (sup_done) {
			/* Normally nothing is left. If the supervisor was killed, its
			 * orphans came to us (we are a subreaper). */
			if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
				return status;   /* nothing left: the usual case */
			husk_end_children();
			return status;
		}
	}
}

/* The supervisor runs on our memory (clone with CLONE_VM), except for a build
 * step, which goes on afterwards. Then nothing of the address space is
 * copied: no page tables, none of the copy-on-write faults that follow a fork
 * on both sides, and no second one to tear down at its exit. On this
 * project's 2-core VM that made 32 concurrent session launches 15 to 25 %
 * faster, and a launch of a SquashFS image 15 % faster (tiny.sqfs /bin/true:
 * 22.8 -> 19.3 ms). It is safe because the top process does nothing but wait,
 * relay and reap while the supervisor lives (top_main), and touches our
 * memory again only after the supervisor exited by itself: if it was killed,
 * perhaps inside malloc, the top process ends its orphans without allocating
 * and exits at once.
 * The FUSE threads of a SquashFS image are threads of the supervisor (its
 * thread group: they die with it, in its namespaces) on that same memory.
 * libc's state that pthread_create and malloc keep (the thread list, the
 * single-threaded flag, arenas) is shared with the top process, which uses
 * none of it while they run. */
#define SUP_STACK (1u << 20)

struct sup_start {
	struct husk_setup *s;
	int death[2];
	struct husk_err *err;
	bool failed;          /* the supervisor's error is in *err */
};

static bool share_memory(const struct husk_setup *s)
{
	return !s->plan->build_step;
}

static int supervisor_on_our_memory(void *p)
{
	struct sup_start *a = p;
	int ret;

	close(a->death[1]);   /* our own fd table: the top's end stays open */
	ret = supervisor_main(a->s, a->death[0], a->err);
	if (ret < 0) {
		a->failed = true;
		ret = a->err->status ? a->err->status : HUSK_EXIT_FAILURE;
	}
	_exit(ret);
}

/* Start the supervisor: on our memory (then *stack is its stack), or forked
 * (returns 0 in the child). */
static pid_t start_supervisor(struct sup_start *a, char **stack)
{
	char *m;
	pid_t pid;

	*stack = NULL;
	if (!share_memory(a->s))
		return fork();
	m = mmap(NULL, SUP_STACK, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED || mprotect(m, 4096, PROT_NONE) < 0) {
		if (m != MAP_FAILED)
			munmap(m, SUP_STACK);
		return fork();
	}
	pid = clone(supervisor_on_our_memory, m + SUP_STACK, CLONE_VM | SIGCHLD, a);
	if (pid < 0)
		munmap(m, SUP_STACK);
	else
		*stack = m;
	return pid;
}

int husk_run(struct husk_plan *plan, FILE *dry_run_out, struct husk_err *err)
{
	struct husk_setup s;
	sigset_t block;
	int sigs[32], n, ret;
	struct sup_start start = { .s = NULL };
	bool killed = false;
	char *stack;
	pid_t sup;

	memset(&s, 0, sizeof(s));
	s.plan = plan;
	s.t0 = husk_now_ms();
	s.proc_fd = s.stage_fd = s.dir_image_fd = s.prov_fd = s.warm_fd = -1;
	s.sess.conn_fd = s.sess.userns_fd = s.sess.mntns_fd = s.sess.root_fd = -1;
	s.sess.rootns_fd = -1;
	if (husk_check_privilege(err) < 0)
		return -1;
	if (plan_launch(&s, err) < 0) {
		setup_free(&s);
		return -1;
	}
	husk_info("planned at %.2f ms", husk_now_ms() - s.t0);
	if (plan->dry_run) {
		dry_run_report(&s, dry_run_out);
		setup_free(&s);
		return 0;
	}
	/* Before we become a subreaper: the session server must not be ours. */
	if (husk_session_join(&s, err) < 0) {
		setup_free(&s);
		return -1;
	}
	sigemptyset(&block);
	n = husk_signals_forwarded(sigs, 32);
	for (int i = 0; i < n; i++)
		sigaddset(&block, sigs[i]);
	sigaddset(&block, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &block, &s.old_mask) < 0 || pipe2(start.death, O_CLOEXEC) < 0) {
		setup_free(&s);
		return husk_err_set(err, errno, "cannot prepare the launch");
	}
	/* A closed stderr must not kill husk in place of the command's status:
	 * at a Slurm time limit srun stops reading the step's output while
	 * the command may still exit with a code of its own. The command gets
	 * the caller's disposition back (root.c); the top process keeps
	 * ignoring SIGPIPE until it exits. */
	sigaction(SIGPIPE, &(struct sigaction){ .sa_handler = SIG_IGN }, &s.old_pipe);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	fflush(NULL);
	start.s = &s;
	start.err = err;
	sup = start_supervisor(&start, &stack);
	if (sup < 0) {
		setup_free(&s);
		return husk_err_set(err, errno, "fork");
	}
	if (sup == 0) {
		close(start.death[1]);
		ret = supervisor_main(&s, start.death[0], err);
		/* Returned: the status (or the error) goes back to the command. */
		return ret;
	}
	close(start.death[0]);
	/* never block on a supervisor that stopped reading */
	fcntl(start.death[1], F_SETFL, O_NONBLOCK);
	ret = top_main(sup, start.death[1], &killed, err);
	if (stack && killed) {
		/* Our memory may be half-updated (see above): no stdio, no free. */
		if (ret < 0) {
			husk_write_all(2, "husk: ", 6);
			husk_write_all(2, err->msg, strlen(err->msg));
			husk_write_all(2, "\n", 1);
			_exit(HUSK_EXIT_FAILURE);
		}
		_exit(ret);
	}
	if (stack)
		munmap(stack, SUP_STACK);
	if (start.failed)
		ret = -1;     /* the error is in *err */
	close(start.death[1]);
	/* The forwarded signals stay blocked: the husk command exits next with
	 * the command's status, and a signal that arrives now (Slurm sends
	 * SIGTERM to the step more than once at a time limit) must not kill
	 * husk in place of that status. A RUN step of husk build goes on to
	 * other work, so it gets its mask back. */
	if (plan->build_step)
		sigprocmask(SIG_SETMASK, &s.old_mask, NULL);
	setup_free(&s);
	return ret;
}
