/* conf.c: the site configuration (husk.conf) and injection profiles: find
 * the files, check who may have written them, parse them into a struct
 * husk_conf, and apply its rules (image-path, forbid-bind). The syntax is
 * described in conf.h; every error names file:line and the fix.
 *
 * husk runs unprivileged, so none of this is a security boundary: a user can
 * always run a husk of their own, or another runtime. The configuration is
 * the site's policy and defaults, applied to everyone who uses the installed
 * husk; an admin who must enforce a rule does it where root runs (the Slurm
 * SPANK plugin, the scheduler, file permissions). That is also why the
 * checks are lexical (a bind's destination is compared as written, an image
 * after realpath on the host) rather than race-free.
 *
 * Who may write the files: the system file, and what it includes, must be
 * owned by root and not writable by group or others, in a directory of the
 * same kind; otherwise anyone able to write it would set everyone's binds.
 * A user file (--config / HUSK_CONFIG) must be the user's or root's and not
 * world-writable. Shipped profiles follow the user rule, so that a personal
 * install (owned by its user) works. */
#include "husk_config.h"
#include "conf.h"
#include "util.h"

#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define CONF_MAX (1 << 20)
#define INCLUDE_DEPTH 8

/* Where the system file and the shipped profiles are. A test build (the
 * test suite's husk-testconf, never installed) may point them elsewhere, so
 * that tests/run as root can prepare root-owned files in a private stage
 * instead of writing into /etc; the husk that is installed cannot. */
static const char *sysconfdir(void)
{
#ifdef HUSK_TEST_BUILD
	const char *d = getenv("HUSK_TEST_SYSCONFDIR");
	if (d && *d)
		return d;
#endif
	return HUSK_SYSCONFDIR;
}

static const char *datadir(void)
{
#ifdef HUSK_TEST_BUILD
	const char *d = getenv("HUSK_TEST_DATADIR");
	if (d && *d)
		return d;
#endif
	return HUSK_DATADIR;
}

const char *husk_conf_dir(void)
{
	return sysconfdir();
}

enum trust { TRUST_SYSTEM, TRUST_USER };
enum section { SEC_NONE, SEC_RUN, SEC_PROFILE };

struct parse {
	struct husk_conf *c;
	const char *file;
	int line;
	enum trust trust;
	bool profiles_only;          /* a shipped profile file */
	size_t site_profiles;        /* profiles before this index come from the site */
	int depth;
	enum section sec;
	size_t prof;                 /* the current [profile]'s index */
};

/* "FILE:LINE: message" into err, as one sentence with its fix after "; ". */
static int at(struct parse *p, struct husk_err *err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int at(struct parse *p, struct husk_err *err, const char *fmt, ...)
{
	char msg[900];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return husk_err_set(err, 0, "%s:%d: %s", p->file, p->line, msg);
}

static int strv_add(char ***v, const char *s, struct husk_err *err)
{
	if (husk_host_add_str(v, s) < 0)
		return husk_err_set(err, ENOMEM, "configuration");
	return 0;
}

static void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Is path equal to or below dir (both normalised)? */
static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (!strcmp(dir, "/"))
		return true;
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

/* ---- who wrote it ------------------------------------------------------ */

static int check_owner(const struct stat *st, const char *path, const char *what,
	enum trust trust, struct husk_err *err)
{
	if (trust == TRUST_SYSTEM) {
		if (st->st_uid != 0) {
			husk_err_set(err, 0, "%s '%s' is owned by uid %u, not by root: refusing it, since "
				"its owner could set everyone's binds", what, path, (unsigned)st->st_uid);
			husk_err_hint(err, "as root: chown root: '%s' && chmod go-w '%s'", path, path);
			return -1;
		}
		if (st->st_mode & 022 && !(S_ISDIR(st->st_mode) && st->st_mode & S_ISVTX)) {
			husk_err_set(err, 0, "%s '%s' is writable by %s (mode %04o): refusing it", what,
				path, st->st_mode & 002 ? "everyone" : "its group",
				(unsigned)(st->st_mode & 07777));
			husk_err_hint(err, "as root: chmod go-w '%s'", path);
			return -1;
		}
		return 0;
	}
	if (st->st_uid != 0 && st->st_uid != getuid()) {
		husk_err_set(err, 0, "%s '%s' belongs to uid %u, neither you nor root: refusing it",
			what, path, (unsigned)st->st_uid);
		husk_err_hint(err, "use a configuration file of your own");
		return -1;
	}
	if (st->st_mode & 002) {
		husk_err_set(err, 0, "%s '%s' is writable by everyone (mode %04o): refusing it",
			what, path, (unsigned)(st->st_mode & 07777));
		husk_err_hint(err, "chmod o-w '%s'", path);
		return -1;
	}
	return 0;
}

/* The file (by its open fd) and the directory that holds it. */
static int check_trust(int fd, const char *path, enum trust trust, struct husk_err *err)
{
	const char *what = trust == TRUST_SYSTEM ? "site configuration" : "configuration";
	autofree char *copy = strdup(path);
	struct stat st;
	const char *dir;

	if (fstat(fd, &st) < 0)
		return husk_err_set(err, errno, "%s '%s'", what, path);
	if (!S_ISREG(st.st_mode)) {
		husk_err_set(err, 0, "%s '%s' is not a regular file", what, path);
		husk_err_hint(err, "give a file");
		return -1;
	}
	if (check_owner(&st, path, what, trust, err) < 0)
		return -1;
	if (!copy)
		return husk_err_set(err, ENOMEM, "%s", what);
	dir = dirname(copy);
	if (stat(dir, &st) < 0)
		return husk_err_set(err, errno, "directory '%s' of the %s", dir, what);
	return check_owner(&st, dir, trust == TRUST_SYSTEM ? "the directory of the site "
		"configuration" : "the directory of the configuration", trust, err);
}

/* ---- [run] ---------------------------------------------------------------- */

static int parse_bool(struct parse *p, const char *key, const char *v, bool *out,
	struct husk_err *err)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return at(p, err, "%s = '%s': not yes or no; write '%s = yes' or '%s = no'", key, v,
			key, key);
	return 0;
}

/* One of the words of a choice ("container|host"), or an error naming them. */
static int parse_choice(struct parse *p, const char *key, const char *v, const char *choices,
	char **out, struct husk_err *err)
{
	autofree char *copy = strdup(choices);
	char *save = NULL;

	if (!copy)
		return husk_err_set(err, ENOMEM, "configuration");
	for (char *w = strtok_r(copy, "|", &save); w; w = strtok_r(NULL, "|", &save))
		if (!strcmp(w, v)) {
			free(*out);
			if (!(*out = strdup(v)))
				return husk_err_set(err, ENOMEM, "configuration");
			return 0;
		}
	return at(p, err, "%s = '%s': unknown value; the values are %s", key, v, choices);
}

static int parse_abs(struct parse *p, const char *key, const char *v, char **out,
	struct husk_err *err)
{
	if (v[0] != '/')
		return at(p, err, "%s = '%s': not an absolute path; give a path starting with '/'",
			key, v);
	if (!(*out = husk_path_normalize(v)))
		return husk_err_set(err, ENOMEM, "configuration");
	return 0;
}

static int parse_env(struct parse *p, const char *key, const char *v, struct husk_env *env,
	char ***list, struct husk_err *err)
{
	const char *eq = strchr(v, '=');

	if (!eq || !husk_env_name_ok(v, (size_t)(eq - v)))
		return at(p, err, "%s = '%s': expected NAME=VALUE, NAME made of letters, digits and "
			"'_'", key, v);
	if (env && husk_env_put(env, v) < 0)
		return husk_err_set(err, ENOMEM, "configuration");
	return list ? strv_add(list, v, err) : 0;
}

static int add_located(struct parse *p, const char *key, const char *v, char ***list,
	char ***where, struct husk_err *err)
{
	autofree char *path = NULL;
	autofree char *loc = NULL;

	if (parse_abs(p, key, v, &path, err) < 0)
		return -1;
	if (!(loc = husk_strdup_printf("%s:%d", p->file, p->line)))
		return husk_err_set(err, ENOMEM, "configuration");
	return strv_add(list, path, err) < 0 || strv_add(where, loc, err) < 0 ? -1 : 0;
}

static int run_key(struct parse *p, const char *key, const char *v, struct husk_err *err)
{
	struct husk_conf *c = p->c;

	if (!strcmp(key, "bind")) {
		struct husk_bind b, *nb;
		if (v[0] != '/')
			return at(p, err, "bind = '%s': the source is not an absolute path; write "
				"SRC[:DST[:ro|rw]] with SRC starting with '/'", v);
		if (husk_bind_parse(v, NULL, &b, err) < 0) {
			char msg[sizeof(err->msg)];
			snprintf(msg, sizeof(msg), "%s", err->msg);
			return at(p, err, "%s", msg);
		}
		if (!(nb = realloc(c->binds, (c->n_binds + 1) * sizeof(*nb)))) {
			husk_bind_free(&b);
			return husk_err_set(err, ENOMEM, "configuration");
		}
		b.optional = true;   /* a site bind whose source is missing is skipped */
		b.why = "husk.conf";
		c->binds = nb;
		c->binds[c->n_binds++] = b;
		return 0;
	}
	if (!strcmp(key, "env"))
		return parse_env(p, key, v, &c->env, NULL, err);
	if (!strcmp(key, "forbid-bind"))
		return add_located(p, key, v, &c->forbid_bind, &c->forbid_bind_at, err);
	if (!strcmp(key, "image-path"))
		return add_located(p, key, v, &c->image_paths, &c->image_paths_at, err);
	if (!strcmp(key, "hide")) {
		autofree char *path = NULL;
		if (parse_abs(p, key, v, &path, err) < 0)
			return -1;
		return strv_add(&c->hide, path, err);
	}
	if (!strcmp(key, "allow-user-config"))
		return parse_bool(p, key, v, &c->allow_user_config, err);
	if (!strcmp(key, "mpi"))
		return parse_choice(p, key, v, "container|host", &c->mpi, err);
	if (!strcmp(key, "gpu"))
		return parse_choice(p, key, v, "none|auto", &c->gpu, err);
	if (!strcmp(key, "placement"))
		return parse_choice(p, key, v, "none|auto", &c->placement, err);
	return at(p, err, "unknown key '%s' in [run]; the keys of [run] are bind, env, hide, "
		"forbid-bind, image-path, allow-user-config, mpi, gpu, placement, include", key);
}

/* ---- [profile NAME] ----------------------------------------------------- */

static const char *kind_name(enum husk_profile_kind k)
{
	return k == HUSK_PROFILE_MPI ? "mpi" : k == HUSK_PROFILE_GPU ? "gpu" :
		k == HUSK_PROFILE_NET ? "interconnect" : "?";
}

static int profile_key(struct parse *p, const char *key, const char *v, struct husk_err *err)
{
	struct husk_profile *pr = &p->c->profiles[p->prof];

	if (!strcmp(key, "kind")) {
		if (!strcmp(v, "mpi"))
			pr->kind = HUSK_PROFILE_MPI;
		else if (!strcmp(v, "gpu"))
			pr->kind = HUSK_PROFILE_GPU;
		else if (!strcmp(v, "interconnect"))
			pr->kind = HUSK_PROFILE_NET;
		else
			return at(p, err, "kind = '%s': unknown kind; the kinds are mpi, gpu, "
				"interconnect", v);
		return 0;
	}
	if (!strcmp(key, "flavour") || !strcmp(key, "flavor")) {
		free(pr->flavour);
		if (!(pr->flavour = strdup(v)))
			return husk_err_set(err, ENOMEM, "configuration");
		return 0;
	}
	if (!strcmp(key, "detect") || !strcmp(key, "device")) {
		if (v[0] != '/')
			return at(p, err, "%s = '%s': not an absolute path; give a path starting with "
				"'/' (globs allowed)", key, v);
		return strv_add(!strcmp(key, "detect") ? &pr->detect : &pr->devices, v, err);
	}
	if (!strcmp(key, "path")) {
		const char *colon = strchr(v, ':');
		if (v[0] != '/' || (colon && colon[1] != '/'))
			return at(p, err, "path = '%s': write PATH[:DST], both absolute", v);
		return strv_add(&pr->paths, v, err);
	}
	if (!strcmp(key, "library"))
		return strv_add(&pr->libraries, v, err);
	if (!strcmp(key, "program"))
		return strv_add(&pr->programs, v, err);
	if (!strcmp(key, "env"))
		return parse_env(p, key, v, NULL, &pr->env, err);
	return at(p, err, "unknown key '%s' in [profile %s]; the keys of a profile are kind, "
		"flavour, detect, library, program, device, path, env", key, pr->name);
}

static bool name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
		    *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

static int section(struct parse *p, char *text, struct husk_err *err)
{
	struct husk_profile *v, *pr;
	char *name;

	text = trim(text);
	if (!strcmp(text, "run")) {
		if (p->profiles_only)
			return at(p, err, "[run] belongs in husk.conf, not in a profile file; this file "
				"may hold [profile NAME] sections only");
		p->sec = SEC_RUN;
		return 0;
	}
	if (strncmp(text, "profile", 7) || (text[7] != ' ' && text[7] != '\t'))
		return at(p, err, "unknown section '[%s]'; the sections are [run] and [profile NAME]",
			text);
	name = trim(text + 7);
	if (!name_ok(name))
		return at(p, err, "[profile %s]: a profile name is made of letters, digits, '-', '_' "
			"and '.'", name);
	if (!(v = realloc(p->c->profiles, (p->c->n_profiles + 1) * sizeof(*v))))
		return husk_err_set(err, ENOMEM, "configuration");
	p->c->profiles = v;
	pr = &v[p->c->n_profiles];
	memset(pr, 0, sizeof(*pr));
	pr->name = strdup(name);
	pr->file = strdup(p->file);
	pr->line = p->line;
	if (!pr->name || !pr->file) {
		free(pr->name);
		free(pr->file);
		return husk_err_set(err, ENOMEM, "configuration");
	}
	p->prof = p->c->n_profiles++;
	p->sec = SEC_PROFILE;
	return 0;
}

/* ---- files and includes -------------------------------------------------- */

static int parse_file(struct parse *p, const char *path, struct husk_err *err);

static int include(struct parse *p, const char *pattern, struct husk_err *err)
{
	autofree char *copy = strdup(p->file);
	autofree char *full = NULL;
	glob_t g;
	int r = 0;

	if (p->profiles_only)
		return at(p, err, "include is not allowed in a profile file");
	if (p->depth >= INCLUDE_DEPTH)
		return at(p, err, "include = '%s': includes nested more than %d deep (an include "
			"loop?); remove the loop", pattern, INCLUDE_DEPTH);
	if (!copy)
		return husk_err_set(err, ENOMEM, "configuration");
	full = pattern[0] == '/' ? strdup(pattern) :
		husk_strdup_printf("%s/%s", dirname(copy), pattern);
	if (!full)
		return husk_err_set(err, ENOMEM, "configuration");
	switch (glob(full, GLOB_ERR, NULL, &g)) {
	case 0:
		break;
	case GLOB_NOMATCH:
		/* A glob may match nothing (an empty conf.d); a plain name must exist. */
		if (strpbrk(pattern, "*?["))
			return 0;
		return at(p, err, "include = '%s': '%s' does not exist; create it or remove the line",
			pattern, full);
	default:
		return at(p, err, "include = '%s': cannot read the directory of '%s'", pattern, full);
	}
	for (size_t i = 0; r == 0 && i < g.gl_pathc; i++) {
		struct parse sub = *p;
		sub.depth++;
		sub.sec = SEC_NONE;
		r = parse_file(&sub, g.gl_pathv[i], err);
	}
	globfree(&g);
	return r;
}

static int parse_line(struct parse *p, char *s, struct husk_err *err)
{
	char *eq, *key, *value, *hash;

	s = trim(s);
	if (!*s || *s == '#')
		return 0;
	/* A comment may follow a value after white space: "gpu = auto  # why". */
	for (hash = s; (hash = strchr(hash, '#')); hash++)
		if (hash > s && (hash[-1] == ' ' || hash[-1] == '\t')) {
			*hash = '\0';
			s = trim(s);
			break;
		}
	if (*s == '[') {
		char *end = strchr(s, ']');
		if (!end || trim(end + 1)[0])
			return at(p, err, "'%s': a section header is '[run]' or '[profile NAME]'", s);
		*end = '\0';
		return section(p, s + 1, err);
	}
	if (!(eq = strchr(s, '=')))
		return at(p, err, "'%s': expected 'key = value', '[section]' or a '#' comment", s);
	*eq = '\0';
	key = trim(s);
	value = trim(eq + 1);
	if (!*key)
		return at(p, err, "'= %s': the key is missing", value);
	if (!*value)
		return at(p, err, "%s has no value; write '%s = VALUE' or remove the line", key, key);
	if (!strcmp(key, "include"))
		return include(p, value, err);
	switch (p->sec) {
	case SEC_RUN:
		return run_key(p, key, value, err);
	case SEC_PROFILE:
		return profile_key(p, key, value, err);
	default:
		return at(p, err, "'%s' outside a section; put it under [run] or [profile NAME]", key);
	}
}

static int parse_file(struct parse *p, const char *path, struct husk_err *err)
{
	autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	autofree char *text = NULL;
	size_t len;
	char *line, *next;

	if (fd < 0) {
		husk_err_set(err, errno, "%s '%s'", p->trust == TRUST_SYSTEM ? "site configuration" :
			"configuration", path);
		if (errno == EACCES)
			husk_err_hint(err, "it must be readable by every user (as root: chmod 0644 '%s')",
				path);
		return -1;
	}
	if (check_trust(fd, path, p->trust, err) < 0)
		return -1;
	if (husk_read_fd(fd, &text, &len, CONF_MAX) < 0)
		return husk_err_set(err, errno, "configuration '%s'", path);
	if (memchr(text, '\0', len))
		return husk_err_set(err, 0, "configuration '%s' is not a text file (it holds NUL "
			"bytes)", path);
	p->file = path;
	p->line = 0;
	for (line = text; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		p->line++;
		if (parse_line(p, line, err) < 0)
			return -1;
	}
	return 0;
}

/* Every profile has a kind; no two of one kind share a name. Profiles from
 * index `from` on were just read. */
static int check_profiles(struct husk_conf *c, size_t from, struct husk_err *err)
{
	for (size_t i = from; i < c->n_profiles; i++) {
		struct husk_profile *pr = &c->profiles[i];
		if (!pr->kind)
			return husk_err_set(err, 0, "%s:%d: [profile %s] has no kind; add 'kind = mpi', "
				"'kind = gpu' or 'kind = interconnect'", pr->file, pr->line, pr->name);
		for (size_t j = 0; j < i; j++)
			if (c->profiles[j].kind == pr->kind && !strcmp(c->profiles[j].name, pr->name))
				return husk_err_set(err, 0, "%s:%d: %s profile '%s' is defined again (first "
					"at %s:%d); rename or remove one", pr->file, pr->line,
					kind_name(pr->kind), pr->name, c->profiles[j].file, c->profiles[j].line);
	}
	return 0;
}

static void profile_free(struct husk_profile *pr)
{
	free(pr->name);
	free(pr->flavour);
	free(pr->file);
	strv_free(pr->detect);
	strv_free(pr->libraries);
	strv_free(pr->programs);
	strv_free(pr->devices);
	strv_free(pr->paths);
	strv_free(pr->env);
}

/* HUSK_DATADIR/profiles/NAME.conf: a profile the site file also defines
 * (same kind and name) is dropped, since the site's wins. */
static int load_shipped(struct husk_conf *c, struct husk_err *err)
{
	autofree char *pattern = husk_strdup_printf("%s/profiles/*.conf", datadir());
	size_t site = c->n_profiles;
	glob_t g;
	int r = 0;

	if (!pattern)
		return husk_err_set(err, ENOMEM, "configuration");
	if (glob(pattern, 0, NULL, &g) != 0) {
		/* None installed: a husk run from its build tree (bin/husk) uses
		 * the profiles of its source tree (profiles/), as husk build finds
		 * husk-build beside husk. Not when a test build was pointed at a
		 * data directory of its own. */
		char self[PATH_MAX];
		if (strcmp(datadir(), HUSK_DATADIR))
			return 0;
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		char *slash;
		if (n <= 0)
			return 0;
		self[n] = '\0';
		if (!(slash = strrchr(self, '/')))
			return 0;
		*slash = '\0';
		free(pattern);
		if (!(pattern = husk_strdup_printf("%s/../profiles/*.conf", self)))
			return husk_err_set(err, ENOMEM, "configuration");
		if (glob(pattern, 0, NULL, &g) != 0)
			return 0;   /* none at all */
	}
	for (size_t i = 0; r == 0 && i < g.gl_pathc; i++) {
		struct parse p = { .c = c, .trust = TRUST_USER, .profiles_only = true };
		size_t from = c->n_profiles;
		r = parse_file(&p, g.gl_pathv[i], err);
		/* Overridden by the site: dropped. Otherwise, checked as usual. */
		for (size_t k = from; r == 0 && k < c->n_profiles; ) {
			bool overridden = false;
			for (size_t j = 0; j < site; j++)
				overridden |= c->profiles[j].kind == c->profiles[k].kind &&
					!strcmp(c->profiles[j].name, c->profiles[k].name);
			if (!overridden) {
				k++;
				continue;
			}
			profile_free(&c->profiles[k]);
			memmove(&c->profiles[k], &c->profiles[k + 1],
				(c->n_profiles - k - 1) * sizeof(c->profiles[0]));
			c->n_profiles--;
		}
		if (r == 0)
			r = check_profiles(c, from, err);
	}
	globfree(&g);
	return r;
}

static int load_main(struct husk_conf *c, const char *path, enum trust trust,
	struct husk_err *err)
{
	struct parse p = { .c = c, .trust = trust };

	if (!(c->path = strdup(path)))
		return husk_err_set(err, ENOMEM, "configuration");
	c->user = trust == TRUST_USER;
	if (parse_file(&p, path, err) < 0 || check_profiles(c, 0, err) < 0)
		return -1;
	return 0;
}

int husk_conf_load(struct husk_conf *c, const char *user_path, struct husk_err *err)
{
	autofree char *sys = husk_strdup_printf("%s/husk.conf", sysconfdir());
	struct stat st;

	memset(c, 0, sizeof(*c));
	husk_env_init(&c->env);
	if (!sys)
		return husk_err_set(err, ENOMEM, "configuration");
	if (lstat(sys, &st) == 0 || errno != ENOENT) {
		if (load_main(c, sys, TRUST_SYSTEM, err) < 0)
			goto fail;
		if (user_path && !c->allow_user_config) {
			husk_err_set(err, 0, "configuration '%s' (--config or HUSK_CONFIG) is not allowed "
				"here: the site configuration '%s' does not say 'allow-user-config = yes'",
				user_path, sys);
			husk_err_hint(err, "drop --config and unset HUSK_CONFIG, or ask the administrators");
			goto fail;
		}
	}
	if (user_path) {
		/* It replaces the system file, which allows it (or does not exist). */
		husk_conf_free(c);
		husk_env_init(&c->env);
		if (load_main(c, user_path, TRUST_USER, err) < 0)
			goto fail;
	}
	return 0;
fail:
	husk_conf_free(c);
	return -1;
}

int husk_conf_load_profiles(struct husk_conf *c, struct husk_err *err)
{
	if (c->shipped)
		return 0;
	c->shipped = true;
	return load_shipped(c, err);
}

void husk_conf_free(struct husk_conf *c)
{
	free(c->path);
	for (size_t i = 0; i < c->n_binds; i++)
		husk_bind_free(&c->binds[i]);
	free(c->binds);
	husk_env_free(&c->env);
	strv_free(c->forbid_bind);
	strv_free(c->forbid_bind_at);
	strv_free(c->image_paths);
	strv_free(c->image_paths_at);
	strv_free(c->hide);
	free(c->mpi);
	free(c->gpu);
	free(c->placement);
	for (size_t i = 0; i < c->n_profiles; i++)
		profile_free(&c->profiles[i]);
	free(c->profiles);
	memset(c, 0, sizeof(*c));
}

const struct husk_profile *husk_conf_profile(const struct husk_conf *c,
	enum husk_profile_kind kind, const char *name)
{
	for (size_t i = 0; i < c->n_profiles; i++)
		if (c->profiles[i].kind == kind && !strcmp(c->profiles[i].name, name))
			return &c->profiles[i];
	return NULL;
}

/* ---- rules ------------------------------------------------------------------ */

int husk_conf_check_image(const struct husk_conf *c, const char *image_path,
	struct husk_err *err)
{
	autofree char *real = NULL;
	char list[600] = "";
	size_t n = 0;

	if (!c->image_paths || !c->image_paths[0])
		return 0;
	/* A missing image is reported when it is opened, as without a config. */
	if (!(real = realpath(image_path, NULL)))
		return 0;
	for (char **d = c->image_paths; *d; d++) {
		autofree char *rd = realpath(*d, NULL);
		if (under(real, rd ? rd : *d))
			return 0;
		n += (size_t)snprintf(list + n, n < sizeof(list) ? sizeof(list) - n : 0, "%s%s",
			d == c->image_paths ? "" : ", ", *d);
	}
	husk_err_set(err, 0, "image '%s' lies outside the places the site configuration allows "
		"for images (image-path: %s; %s)", image_path, list, c->image_paths_at[0]);
	husk_err_hint(err, "put the image below one of them, or ask the administrators to allow "
		"its directory");
	return -1;
}

int husk_conf_check_bind(const struct husk_conf *c, const struct husk_bind *b,
	struct husk_err *err)
{
	for (size_t i = 0; c->forbid_bind && c->forbid_bind[i]; i++) {
		const char *f = c->forbid_bind[i];
		if (!under(b->dst, f) && !under(f, b->dst))
			continue;
		husk_err_set(err, 0, "bind '%s' on '%s' (%s): the site configuration forbids binds "
			"%s '%s' (forbid-bind at %s)", b->src, b->dst, b->why ? b->why : "--bind",
			under(b->dst, f) ? "at or below" : "that cover", f, c->forbid_bind_at[i]);
		husk_err_hint(err, "choose another destination inside the container");
		return -1;
	}
	return 0;
}
