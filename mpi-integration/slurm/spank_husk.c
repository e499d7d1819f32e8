/* spank_husk.c: the Slurm SPANK plugin spank_husk.so. With it,
 * `srun --husk-image=IMAGE ./app` runs every task of the step inside IMAGE,
 * through `husk run`, and the tasks of one step on one node share one husk
 * session (one user namespace, one image mount: lib/session.c keys it on
 * SLURM_JOB_ID and SLURM_STEP_ID, which every task has).
 *
 * How the task comes to exec husk. SPANK has no argv setter, and exec'ing
 * husk from slurm_spank_task_init would skip what slurmstepd still does after
 * the plugins' task_init (the task prolog, TMPDIR, the propagated resource
 * limits). So task_init, running in the forked task process as the job's
 * user just before slurmstepd's own execve(task->argv[0], task->argv, env),
 * replaces argv[0] of that process's copy of the step's argv (S_JOB_ARGV is
 * the very array slurmstepd executes, task->argv == job->argv outside
 * --multi-prog) with husk's path, and puts what goes between husk and the
 * task's arguments in the task's environment, HUSK_SPANK_ARGV: "run", the
 * options, the image, "--" and the original argv[0], separated by \x1f.
 * husk (bin/spank_task.c) rebuilds its argv from it and removes it from the
 * environment. Only this task's memory is changed: the fork already
 * separated it from slurmstepd.
 *
 * Privilege. slurmstepd runs as root. user_init runs after a mere seteuid()
 * (real uid 0, capabilities in the permitted set), so nothing is done there.
 * task_init runs after slurmstepd's become_user(): the plugin checks that the
 * real, effective and saved ids are the job's and that no capability is
 * left, drops them itself if not, and only then looks at the image (path
 * rules, existence, kind), as the user. task_init_privileged, as root,
 * only raises the task's oom_score_adj from slurmstepd's -1000 (a task
 * process is not dumpable there, so /proc/self/oom_score_adj is root's).
 *
 * Errors. Errors of user_init are not shown by srun; those of task_init are,
 * because the task's stderr is already srun's: one "husk: " line (from local
 * task 0 of each node) and exit status 125, husk's own, for the task. No
 * epilog is used, so no failure here can drain a node. */
#include "husk_config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <slurm/slurm.h>  /* SLURM_BATCH_SCRIPT and the other special step ids */
#include <slurm/spank.h>

SPANK_PLUGIN(husk, 1);

#define EXIT_HUSK 125          /* husk's own failures (husk(1)) */
#define ARG_SEP '\x1f'         /* between the fields of HUSK_SPANK_ARGV */
#define ENV_ARGV "HUSK_SPANK_ARGV"
#define ENV_TYPED "HUSK_SPANK_TYPED" /* argv[0] as typed to srun (see local_user_init) */

#ifndef HUSK_BINDIR
#define HUSK_BINDIR "/usr/bin"
#endif

/* ---- a growable string vector ------------------------------------------ */

struct strv {
	char **v;
	size_t n;
};

static int strv_add(struct strv *s, const char *str)
{
	char **v = realloc(s->v, (s->n + 2) * sizeof(*v));

	if (!v)
		return -1;
	s->v = v;
	if (!(v[s->n] = strdup(str)))
		return -1;
	v[++s->n] = NULL;
	return 0;
}

/* ---- what the user asked for (srun/salloc/sbatch options) --------------- */

static struct {
	char *image;
	struct strv binds, envs;
	char *env_file, *workdir, *mpi, *provenance;
	bool no_home, clean_env, writable_tmpfs, verbose;
} opt;

/* ---- what the administrator set (plugstack.conf arguments) -------------- */

static struct {
	char *husk;                /* husk=PATH */
	char *image_dir;           /* image_dir=DIR: where bare image names are found */
	struct strv allowed;       /* allowed_dir=DIR (repeatable): images must be below */
	struct strv binds;         /* bind=SPEC (repeatable): for every containerised task */
	int oom_score_adj;         /* oom_score_adj=N (default 0) */
} site = { .oom_score_adj = 0 };

enum { O_IMAGE = 1, O_BIND, O_ENV, O_ENV_FILE, O_WORKDIR, O_NO_HOME, O_MPI, O_CLEAN_ENV,
	O_WRITABLE_TMPFS, O_PROVENANCE, O_VERBOSE };

static int set_str(char **dst, const char *val)
{
	free(*dst);
	return (*dst = strdup(val ? val : "")) ? 0 : -1;
}

static bool env_name_ok(const char *s, size_t len)
{
	if (len == 0 || isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* Does s start with NAME= ? */
static bool starts_assignment(const char *s)
{
	const char *eq = strchr(s, '=');
	return eq && env_name_ok(s, (size_t)(eq - s));
}

/* --husk-env=A=1,B=x,y: a comma starts a new variable only when NAME= follows
 * it, so values may hold commas (OMP_PLACES={0,1},{2,3}). */
static int add_envs(const char *arg)
{
	const char *p = arg;

	if (!starts_assignment(p)) {
		slurm_error("husk: --husk-env '%s': expected NAME=VALUE[,NAME=VALUE...]", arg);
		return -1;
	}
	while (*p) {
		const char *end = p + strlen(p), *c = p;
		while ((c = strchr(c + 1, ','))) {
			if (starts_assignment(c + 1)) {
				end = c;
				break;
			}
		}
		char *one = strndup(p, (size_t)(end - p));
		if (!one || strv_add(&opt.envs, one) < 0) {
			free(one);
			return -1;
		}
		free(one);
		p = *end ? end + 1 : end;
	}
	return 0;
}

static int add_binds(struct strv *to, const char *arg, const char *what)
{
	char *copy = strdup(arg), *save = NULL;
	int r = 0;

	if (!copy)
		return -1;
	for (char *s = strtok_r(copy, ",", &save); s && !r; s = strtok_r(NULL, ",", &save))
		r = strv_add(to, s);
	if (!to->n) {
		slurm_error("husk: %s '%s': expected SRC[:DST[:ro|rw]][,...]", what, arg);
		r = -1;
	}
	free(copy);
	return r;
}

static int opt_cb(int val, const char *arg, int remote)
{
	(void)remote;
	switch (val) {
	case O_IMAGE:
		if (!arg || !*arg) {
			slurm_error("husk: --husk-image needs an image (a SquashFS file or a "
				"directory), or 'none'");
			return -1;
		}
		return set_str(&opt.image, arg);
	case O_BIND: return add_binds(&opt.binds, arg ? arg : "", "--husk-bind");
	case O_ENV: return add_envs(arg ? arg : "");
	case O_ENV_FILE: return set_str(&opt.env_file, arg);
	case O_WORKDIR:
		if (!arg || arg[0] != '/') {
			slurm_error("husk: --husk-workdir '%s': give an absolute path inside the "
				"image", arg ? arg : "");
			return -1;
		}
		return set_str(&opt.workdir, arg);
	case O_MPI:
		if (!arg || (strcmp(arg, "host") && strcmp(arg, "container"))) {
			slurm_error("husk: --husk-mpi '%s': expected 'host' or 'container'",
				arg ? arg : "");
			return -1;
		}
		return set_str(&opt.mpi, arg);
	case O_PROVENANCE: return set_str(&opt.provenance, arg);
	case O_NO_HOME: opt.no_home = true; return 0;
	case O_CLEAN_ENV: opt.clean_env = true; return 0;
	case O_WRITABLE_TMPFS: opt.writable_tmpfs = true; return 0;
	case O_VERBOSE: opt.verbose = true; return 0;
	}
	return -1;
}

static struct spank_option options[] = {
	{ "husk-image", "IMAGE", "run each task inside IMAGE (SquashFS file or directory, "
		"IMAGE@sha256:HEX to pin it; a bare NAME is looked up in the site's image "
		"directory; 'none': run on the host) [husk]", 1, O_IMAGE, opt_cb },
	{ "husk-bind", "SRC[:DST[:ro|rw]][,...]", "bind host paths into the image [husk]", 1,
		O_BIND, opt_cb },
	{ "husk-env", "NAME=VALUE[,...]", "set variables inside the image [husk]", 1, O_ENV,
		opt_cb },
	{ "husk-env-file", "FILE", "set variables inside from FILE (NAME=VALUE lines) [husk]",
		1, O_ENV_FILE, opt_cb },
	{ "husk-clean-env", NULL, "start from a minimal environment (keeps Slurm, PMIx and "
		"MPI variables) [husk]", 0, O_CLEAN_ENV, opt_cb },
	{ "husk-workdir", "DIR", "working directory inside the image [husk]", 1, O_WORKDIR,
		opt_cb },
	{ "husk-no-home", NULL, "do not bind $HOME into the image [husk]", 0, O_NO_HOME,
		opt_cb },
	{ "husk-mpi", "host|container", "use the host's MPI (injected) or the image's [husk]",
		1, O_MPI, opt_cb },
	{ "husk-writable-tmpfs", NULL, "writable root; changes vanish at exit [husk]", 0,
		O_WRITABLE_TMPFS, opt_cb },
	{ "husk-provenance", "FILE", "append one JSON record per task to FILE (image, digest, "
		"command) [husk]", 1, O_PROVENANCE, opt_cb },
	{ "husk-verbose", NULL, "say what husk does, with timing [husk]", 0, O_VERBOSE,
		opt_cb },
	SPANK_OPTIONS_TABLE_END
};

/* ---- plugstack.conf arguments -------------------------------------------- */

static int site_args(int ac, char **av)
{
	for (int i = 0; i < ac; i++) {
		const char *a = av[i], *eq = strchr(a, '=');
		const char *v = eq ? eq + 1 : "";
		size_t klen = eq ? (size_t)(eq - a) : strlen(a);
		int r = 0;

#define KEY(k) (klen == strlen(k) && !strncmp(a, k, klen))
		if (KEY("husk") && v[0] == '/')
			r = set_str(&site.husk, v);
		else if (KEY("image_dir") && v[0] == '/')
			r = set_str(&site.image_dir, v);
		else if (KEY("allowed_dir") && v[0] == '/')
			r = strv_add(&site.allowed, v);
		else if (KEY("bind") && *v)
			r = add_binds(&site.binds, v, "plugstack.conf bind=");
		else if (KEY("oom_score_adj") && *v) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*end || n < -1000 || n > 1000)
				r = -1;
			site.oom_score_adj = (int)n;
		} else
			r = -1;
#undef KEY
		if (r < 0) {
			slurm_error("husk: plugstack.conf argument '%s' of spank_husk.so: expected "
				"husk=/PATH, image_dir=/DIR, allowed_dir=/DIR, bind=SPEC or "
				"oom_score_adj=N (see spank_husk(8))", a);
			return -1;
		}
	}
	if (!site.husk && set_str(&site.husk, HUSK_BINDIR "/husk") < 0)
		return -1;
	return 0;
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();

	if (ctx != S_CTX_LOCAL && ctx != S_CTX_REMOTE && ctx != S_CTX_ALLOCATOR)
		return 0;
	for (struct spank_option *o = options; o->name; o++)
		if (spank_option_register(sp, o) != ESPANK_SUCCESS) {
			slurm_error("husk: cannot register option --%s", o->name);
			return -1;
		}
	return site_args(ac, av);
}

static bool wanted(void)
{
	return opt.image && strcmp(opt.image, "none") != 0;
}

/* In slurmstepd: does this step run in the image? The batch script and the
 * job's extern and interactive steps stay on the host: the option applies
 * to the job's steps (srun within the script inherits it from sbatch). */
static bool containerised(spank_t sp)
{
	uint32_t step = 0;

	return wanted() && spank_get_item(sp, S_JOB_STEPID, &step) == ESPANK_SUCCESS &&
		step != SLURM_BATCH_SCRIPT && step != SLURM_EXTERN_CONT &&
		step != SLURM_INTERACTIVE_STEP;
}

/* ---- srun: remember the command as typed ------------------------------------
 * srun replaces a bare command name with the path where the submit host's
 * PATH finds it (`hostname` becomes /usr/bin/hostname), which need not be
 * where the image has it. srun's own argv ends with the command and its
 * arguments, so the last argc words of /proc/self/cmdline are the command as
 * typed; a bare name among them goes to the tasks in HUSK_SPANK_TYPED, and
 * husk looks it up in the image's PATH instead. */
int slurm_spank_local_user_init(spank_t sp, int ac, char **av)
{
	int argc = 0;
	char **argv = NULL, buf[65536], *words[4096];
	size_t n = 0;
	ssize_t len;
	int fd;

	(void)ac;
	(void)av;
	if (!wanted() || spank_get_item(sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS ||
	    argc < 1 || !argv || !argv[0])
		return 0;
	if ((fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0 || (size_t)len >= sizeof(buf) - 1)
		return 0;
	buf[len] = '\0';
	for (char *p = buf; p < buf + len && n < sizeof(words) / sizeof(words[0]);
	     p += strlen(p) + 1)
		words[n++] = p;
	if (n <= (size_t)argc)
		return 0;
	/* --multi-prog: each task's argv comes from the configuration file,
	 * past the plugin's reach; refuse rather than run on the host. The
	 * job's argv is then the file's name and its text, which is not on
	 * srun's command line: the option is among the words before the last
	 * argc - 1. */
	for (size_t i = 1; i <= n - (size_t)argc; i++) {
		size_t wl = strcspn(words[i], "=");
		if (wl >= 4 && !strncmp(words[i], "--multi-prog", wl)) {
			slurm_error("husk: --husk-image does not work with --multi-prog; write "
				"'husk run IMAGE -- PROGRAM ...' in the configuration file instead");
			return -1;
		}
	}
	/* The tail must be exactly the job's arguments (heterogeneous steps and
	 * --multi-prog do not have this shape: leave them alone). */
	for (int i = 1; i < argc; i++)
		if (strcmp(words[n - argc + i], argv[i]))
			return 0;
	const char *typed = words[n - argc];
	if (!strchr(typed, '/') && strcmp(typed, argv[0]))
		setenv(ENV_TYPED, typed, 1);
	else
		unsetenv(ENV_TYPED);
	return 0;
}

/* ---- slurmstepd, in the task, as root: oom_score_adj ---------------------- */

int slurm_spank_task_init_privileged(spank_t sp, int ac, char **av)
{
	char buf[32];
	int fd, cur;
	ssize_t n;

	(void)ac;
	(void)av;
	if (!containerised(sp))
		return 0;
	/* slurmstepd protects itself with -1000; its tasks must be killable like
	 * any process. Only ever raise: a site may already have set more. */
	if ((fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	cur = n > 0 ? (buf[n] = '\0', atoi(buf)) : 0;
	if (cur < site.oom_score_adj) {
		n = snprintf(buf, sizeof(buf), "%d\n", site.oom_score_adj);
		if (pwrite(fd, buf, (size_t)n, 0) < 0)
			slurm_error("husk: cannot set oom_score_adj of the task to %d: %s",
				site.oom_score_adj, strerror(errno));
	}
	close(fd);
	return 0;
}

/* ---- slurmstepd, in the task, as the user --------------------------------- */

struct task {
	spank_t sp;
	uid_t uid;
	gid_t gid;
	int local_id;
	char node[256];
	char msg[1024];
};

/* Record the error (the first one) to report. */
static int fail(struct task *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct task *t, const char *fmt, ...)
{
	va_list ap;

	if (!t->msg[0]) {
		va_start(ap, fmt);
		vsnprintf(t->msg, sizeof(t->msg), fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Capabilities left in CapPrm or CapEff of /proc/self/status? */
static bool has_caps(void)
{
	char line[256];
	bool any = false;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return true;
	while (fgets(line, sizeof(line), f))
		if ((!strncmp(line, "CapPrm:", 7) || !strncmp(line, "CapEff:", 7)) &&
		    strtoull(line + 7, NULL, 16) != 0)
			any = true;
	fclose(f);
	return any;
}

/* Be the job's user, wholly, before doing anything for them. slurmstepd's
 * become_user() normally did it already (setgid, setgroups, setuid from
 * root); if this process still holds another id or any capability, drop to
 * the job's uid, gid and supplementary groups here, and refuse otherwise. */
static int become_user(struct task *t)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;
	gid_t *gids = NULL;
	int ngids = 0;

	if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return fail(t, "cannot read the task's ids: %s", strerror(errno));
	if (r != t->uid || e != t->uid || s != t->uid || rg != t->gid || eg != t->gid ||
	    sg != t->gid || has_caps()) {
		if (spank_get_item(t->sp, S_JOB_SUPPLEMENTARY_GIDS, &gids, &ngids) !=
		    ESPANK_SUCCESS)
			gids = NULL, ngids = 0;
		if ((e != 0 && r != 0 && s != 0) || setgroups((size_t)ngids, gids) < 0 ||
		    setresgid(t->gid, t->gid, t->gid) < 0 ||
		    setresuid(t->uid, t->uid, t->uid) < 0)
			return fail(t, "cannot become the job's user (uid %u, gid %u): %s; "
				"report this to the administrators", (unsigned)t->uid,
				(unsigned)t->gid, strerror(errno));
	}
	if (getuid() != t->uid || geteuid() != t->uid || getgid() != t->gid || has_caps())
		return fail(t, "the task still holds privileges after dropping to uid %u; "
			"refusing to start it; report this to the administrators",
			(unsigned)t->uid);
	return 0;
}

/* Is the canonical path p at or below the directory d (canonicalised)? */
static bool below(const char *p, const char *d)
{
	char dir[PATH_MAX];
	size_t n;

	if (!realpath(d, dir))
		return false;
	n = strlen(dir);
	if (n == 1)
		return true;
	return !strncmp(p, dir, n) && (p[n] == '/' || p[n] == '\0');
}

/* A SquashFS 4.0 superblock that holds together: magic, version, a block
 * size that is a power of two between 4 KiB and 1 MiB matching its log, and
 * an archive no longer than the file. husk checks the rest as it reads. */
static int check_squashfs(struct task *t, int fd, const char *path, off_t size)
{
	unsigned char sb[96];
	uint32_t block, log;
	uint64_t used;

	if (pread(fd, sb, sizeof(sb), 0) != (ssize_t)sizeof(sb) || memcmp(sb, "hsqs", 4))
		return fail(t, "--husk-image '%s': not a SquashFS image nor a directory; "
			"give a .sqfs made by husk build or mksquashfs, or a directory", path);
#define LE32(o) ((uint32_t)sb[o] | (uint32_t)sb[o + 1] << 8 | (uint32_t)sb[o + 2] << 16 | \
	(uint32_t)sb[o + 3] << 24)
	block = LE32(12);
	log = (uint32_t)sb[22] | (uint32_t)sb[23] << 8;
	used = LE32(40) | (uint64_t)LE32(44) << 32;
#undef LE32
	if ((sb[28] | sb[29] << 8) != 4 || log < 12 || log > 20 || block != 1u << log ||
	    used > (uint64_t)size || used < sizeof(sb))
		return fail(t, "--husk-image '%s': corrupt SquashFS superblock (version, "
			"block size or length do not hold together); rebuild or copy the "
			"image again", path);
	return 0;
}

/* Where the image named by `name` is: a path (relative to the working
 * directory), or a bare NAME in the site's image_dir (NAME, NAME.sqfs). */
static int find_image(struct task *t, const char *name, char *out)
{
	char cand[PATH_MAX];
	struct stat st;

	if (!strchr(name, '/') && site.image_dir) {
		static const char *ext[] = { "", ".sqfs", ".squashfs" };
		for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
			snprintf(cand, sizeof(cand), "%s/%s%s", site.image_dir, name, ext[i]);
			if (stat(cand, &st) == 0 && realpath(cand, out))
				return 0;
		}
		if (stat(name, &st) < 0)
			return fail(t, "--husk-image '%s': not found in the site's image "
				"directory '%s' nor in '.'; see the images there, or give a path",
				name, site.image_dir);
	}
	if (!realpath(name, out))
		return fail(t, "--husk-image '%s': %s%s", name, strerror(errno),
			errno == ENOENT ? "; check the path (relative paths are taken from the "
			"job's working directory on the node)" : "");
	return 0;
}

static int check_image(struct task *t, const char *name, char *path)
{
	struct stat st;
	int fd, r = 0;

	if (find_image(t, name, path) < 0)
		return -1;
	if (site.allowed.n) {
		bool ok = false;
		for (size_t i = 0; i < site.allowed.n && !ok; i++)
			ok = below(path, site.allowed.v[i]);
		if (!ok)
			return fail(t, "--husk-image '%s': not allowed here: images must lie "
				"below %s%s (the site's allowed_dir); copy it there or ask the "
				"administrators", name, site.allowed.v[0],
				site.allowed.n > 1 ? " or another allowed_dir" : "");
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
		return fail(t, "--husk-image '%s': %s", name, strerror(errno));
	if (fstat(fd, &st) < 0)
		r = fail(t, "--husk-image '%s': %s", name, strerror(errno));
	else if (S_ISREG(st.st_mode))
		r = check_squashfs(t, fd, name, st.st_size);
	else if (!S_ISDIR(st.st_mode))
		r = fail(t, "--husk-image '%s': not a SquashFS image nor a directory", name);
	close(fd);
	return r;
}

/* HUSK_SPANK_ARGV: fields joined by ARG_SEP, none of which may hold it. */
static int join_arg(struct task *t, char **buf, size_t *len, const char *field)
{
	size_t n = strlen(field);
	char *b;

	if (strchr(field, ARG_SEP))
		return fail(t, "option value '%s' holds a \\x1f character", field);
	if (!(b = realloc(*buf, *len + n + 2)))
		return fail(t, "out of memory");
	if (*len)
		b[(*len)++] = ARG_SEP;
	memcpy(b + *len, field, n + 1);
	*len += n;
	*buf = b;
	return 0;
}

static int build_args(struct task *t, const char *image, const char *argv0, char **out)
{
	struct strv a = { 0 };
	size_t len = 0;
	int r = 0;

#define ADD(s) do { if (strv_add(&a, (s)) < 0) return fail(t, "out of memory"); } while (0)
	ADD("run");
	if (opt.verbose)
		ADD("-v");
	for (size_t i = 0; i < site.binds.n; i++) {
		ADD("--bind");
		ADD(site.binds.v[i]);
	}
	for (size_t i = 0; i < opt.binds.n; i++) {
		ADD("--bind");
		ADD(opt.binds.v[i]);
	}
	for (size_t i = 0; i < opt.envs.n; i++) {
		ADD("--env");
		ADD(opt.envs.v[i]);
	}
	if (opt.env_file) {
		ADD("--env-file");
		ADD(opt.env_file);
	}
	if (opt.clean_env)
		ADD("--clean-env");
	if (opt.workdir) {
		ADD("--cwd");
		ADD(opt.workdir);
	}
	if (opt.no_home)
		ADD("--no-home");
	if (opt.writable_tmpfs)
		ADD("--writable-tmpfs");
	if (opt.mpi) {
		ADD("--mpi");
		ADD(opt.mpi);
	}
	if (opt.provenance) {
		ADD("--provenance");
		ADD(opt.provenance);
	}
	ADD(image);
	ADD("--");
	ADD(argv0);
#undef ADD
	*out = NULL;
	for (size_t i = 0; i < a.n && !r; i++)
		r = join_arg(t, out, &len, a.v[i]);
	for (size_t i = 0; i < a.n; i++)
		free(a.v[i]);
	free(a.v);
	return r;
}

static int prepare(struct task *t)
{
	int argc = 0;
	char **argv = NULL, *args = NULL, path[PATH_MAX], image[PATH_MAX + 80], typed[4096];
	char *name = strdup(opt.image), *at;
	const char *argv0;

	if (!name)
		return fail(t, "out of memory");
	/* IMAGE@sha256:HEX: check the file, hand husk the pin to verify. */
	at = strstr(name, "@sha256:");
	if (at)
		*at = '\0';
	if (check_image(t, name, path) < 0) {
		free(name);
		return -1;
	}
	snprintf(image, sizeof(image), "%s%s%s", path, at ? "@" : "", at ? at + 1 : "");
	free(name);
	if (access(site.husk, X_OK) < 0)
		return fail(t, "cannot run husk at '%s' (plugstack.conf's husk=): %s; ask the "
			"administrators to install husk there or to fix husk=", site.husk,
			strerror(errno));
	if (spank_get_item(t->sp, S_JOB_ARGV, &argc, &argv) != ESPANK_SUCCESS || argc < 1 ||
	    !argv || !argv[0])
		return fail(t, "the step has no command to run in the image");
	argv0 = argv[0];
	if (spank_getenv(t->sp, ENV_TYPED, typed, sizeof(typed)) == ESPANK_SUCCESS && typed[0]) {
		const char *base = strrchr(argv[0], '/');
		/* Only when it is what srun resolved (the same name). */
		if (base && !strcmp(base + 1, typed))
			argv0 = typed;
	}
	spank_unsetenv(t->sp, ENV_TYPED);
	if (build_args(t, image, argv0, &args) < 0)
		return -1;
	if (spank_setenv(t->sp, ENV_ARGV, args, 1) != ESPANK_SUCCESS) {
		free(args);
		return fail(t, "cannot set %s in the task's environment", ENV_ARGV);
	}
	free(args);
	/* The exec: argv[0] of this task's argv, which slurmstepd executes
	 * next (see the top of this file). The old string stays: it is
	 * slurmstepd's, freed by nobody in a process about to exec. */
	if (!(argv[0] = strdup(site.husk)))
		return fail(t, "out of memory");
	return 0;
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	struct task t = { .sp = sp };

	(void)ac;
	(void)av;
	if (!containerised(sp))
		return 0;
	if (gethostname(t.node, sizeof(t.node) - 1) < 0)
		strcpy(t.node, "?");
	if (spank_get_item(sp, S_JOB_UID, &t.uid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_GID, &t.gid) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_TASK_ID, &t.local_id) != ESPANK_SUCCESS)
		fail(&t, "cannot get the job's user or the task id from Slurm");
	else if (become_user(&t) == 0)
		prepare(&t);
	if (!t.msg[0])
		return 0;
	/* One line per node, on srun's stderr; the task ends with husk's
	 * status, and so does srun. Slurm itself would add only "Failed to
	 * invoke spank plugin stack". */
	if (t.local_id == 0)
		dprintf(STDERR_FILENO, "husk: %s (node %s)\n", t.msg, t.node);
	_exit(EXIT_HUSK);
}
