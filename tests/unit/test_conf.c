/* test_conf.c: husk.conf parsing (syntax, file:line errors, includes,
 * profiles, who may write the files) and its rules (image-path,
 * forbid-bind). Built with lib/conf.c in its test form (HUSK_TEST_BUILD), so
 * HUSK_TEST_SYSCONFDIR and HUSK_TEST_DATADIR point the system file and the
 * shipped profiles at a scratch directory. Runs as any user; as root it
 * also checks what only root can make (a root-owned system file). */
#include "husk_config.h"
#include "conf.h"
#include "unit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256], none_etc[300], none_share[300];

static const char *put(const char *name, mode_t mode, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static const char *put(const char *name, mode_t mode, const char *fmt, ...)
{
	static char path[8][512];
	static int k;
	char *p = path[k++ % 8];
	va_list ap;
	FILE *f;

	snprintf(p, 512, "%s/%s", dir, name);
	f = fopen(p, "w");
	if (!f) {
		perror(p);
		exit(2);
	}
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
	chmod(p, mode);
	return p;
}

static void mkdir_in(const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	mkdir(p, 0755);
}

/* Loading `path` as a user file fails with a message holding every needle. */
static void bad(const char *name, const char *path, const char *n1, const char *n2)
{
	struct husk_conf c;
	struct husk_err err = { 0 };
	int r = husk_conf_load(&c, path, &err);

	if (r == 0 && (r = husk_conf_load_profiles(&c, &err)) < 0)
		husk_conf_free(&c);
	CHECK(name, r == -1 && strstr(err.msg, n1) && (!n2 || strstr(err.msg, n2)));
	if (r == 0 || !strstr(err.msg, n1) || (n2 && !strstr(err.msg, n2)))
		printf("# message: %s\n", r == 0 ? "(loaded)" : err.msg);
	if (r == 0)
		husk_conf_free(&c);
}

/* As bad(), with the file rel (content) added for the load, and removed
 * after it. line > 0: the message must start with "REL'S PATH:LINE: " and
 * hold n2; otherwise it must hold n1 and n2. */
static void bad_with(const char *rel, const char *content, const char *name, const char *path,
	int line, const char *n1, const char *n2)
{
	char file[512], at[600];

	snprintf(file, sizeof(file), "%s", put(rel, 0644, "%s", content));
	snprintf(at, sizeof(at), "%s:%d: ", file, line);
	bad(name, path, line > 0 ? at : n1, n2);
	unlink(file);
}

static bool strv_is(char **v, const char *a, const char *b)
{
	return v && v[0] && !strcmp(v[0], a) && (b ? v[1] && !strcmp(v[1], b) && !v[2] : !v[1]);
}

static void syntax(void)
{
	struct husk_conf c;
	struct husk_err err = { 0 };
	const struct husk_profile *pr;
	char loc[600];
	const char *f = put("syntax.conf", 0644,
		"# a comment\n"
		"\n"
		"[run]\n"
		"bind = /scratch\n"
		"  bind = /opt/site/data:/data:ro   # trailing comment\n"
		"env = SITE=1\n"
		"forbid-bind = /etc/../etc/shadow/\n"
		"image-path = /shared/images\n"
		"image-path = /home\n"
		"allow-user-config = yes\n"
		"mpi = host\n"
		"gpu = auto\n"
		"placement = none\n"
		"hide = /dev/kvm\n"
		"\n"
		"[profile ompi-4]\n"
		"kind = mpi\n"
		"flavour = openmpi\n"
		"detect = /usr/lib/x86_64-linux-gnu/libmpi.so.40\n"
		"library = libmpi.so.40\n"
		"library = libopen-*.so.*\n"
		"program = orted\n"
		"path = /etc/openmpi:/etc/openmpi\n"
		"env = OMPI_MCA_btl=^openib\n"
		"[profile nv]\n"
		"kind = gpu\n"
		"device = /dev/nvidia*\n");

	CHECK("a full file loads", husk_conf_load(&c, f, &err) == 0);
	if (err.msg[0])
		printf("# message: %s\n", err.msg);
	CHECK_STR("path", c.path, f);
	CHECK("a user file", c.user);
	CHECK("two binds, optional, from husk.conf", c.n_binds == 2 && c.binds[0].optional &&
		c.binds[1].optional && !strcmp(c.binds[0].why, "husk.conf"));
	CHECK("bind with DST and ro", c.n_binds == 2 && !strcmp(c.binds[1].src, "/opt/site/data") &&
		!strcmp(c.binds[1].dst, "/data") && c.binds[1].ro && !c.binds[0].ro &&
		!strcmp(c.binds[0].dst, "/scratch"));
	CHECK_STR("env", husk_env_get(&c.env, "SITE"), "1");
	CHECK("forbid-bind normalised", strv_is(c.forbid_bind, "/etc/shadow", NULL));
	snprintf(loc, sizeof(loc), "%s:7", f);
	CHECK("forbid-bind's file:line", strv_is(c.forbid_bind_at, loc, NULL));
	CHECK("image-path, two", strv_is(c.image_paths, "/shared/images", "/home"));
	CHECK("allow-user-config", c.allow_user_config);
	CHECK("defaults", c.mpi && !strcmp(c.mpi, "host") && c.gpu && !strcmp(c.gpu, "auto") &&
		c.placement && !strcmp(c.placement, "none"));
	CHECK("hide", strv_is(c.hide, "/dev/kvm", NULL));
	CHECK("two profiles", c.n_profiles == 2);
	pr = husk_conf_profile(&c, HUSK_PROFILE_MPI, "ompi-4");
	CHECK("profile by kind and name", pr && pr->kind == HUSK_PROFILE_MPI &&
		!strcmp(pr->flavour, "openmpi") && pr->line == 16 && !strcmp(pr->file, f));
	CHECK("profile lists", pr && strv_is(pr->libraries, "libmpi.so.40", "libopen-*.so.*") &&
		strv_is(pr->programs, "orted", NULL) &&
		strv_is(pr->paths, "/etc/openmpi:/etc/openmpi", NULL) &&
		strv_is(pr->env, "OMPI_MCA_btl=^openib", NULL) &&
		strv_is(pr->detect, "/usr/lib/x86_64-linux-gnu/libmpi.so.40", NULL) && !pr->devices);
	CHECK("no profile of another kind", !husk_conf_profile(&c, HUSK_PROFILE_GPU, "ompi-4"));
	pr = husk_conf_profile(&c, HUSK_PROFILE_GPU, "nv");
	CHECK("gpu profile devices", pr && strv_is(pr->devices, "/dev/nvidia*", NULL));
	husk_conf_free(&c);
}

static void errors(void)
{
	char want[600];
	const char *f;

#define AT(n) (snprintf(want, sizeof(want), "%s:%d: ", f, n), want)
	f = put("e1.conf", 0644, "[run]\n\nbnd = /x\n");
	bad("unknown key, with file:line and the keys", f, AT(3), "the keys of [run] are");
	f = put("e2.conf", 0644, "[runn]\n");
	bad("unknown section", f, AT(1), "unknown section '[runn]'");
	f = put("e3.conf", 0644, "[run]\nbind /x\n");
	bad("a line without '='", f, AT(2), "expected 'key = value'");
	f = put("e4.conf", 0644, "[run]\nbind =\n");
	bad("a key without a value", f, AT(2), "bind has no value");
	f = put("e5.conf", 0644, "[run]\nallow-user-config = maybe\n");
	bad("not a boolean", f, AT(2), "not yes or no");
	f = put("e6.conf", 0644, "[run]\nmpi = hostt\n");
	bad("not one of the values", f, AT(2), "the values are container|host");
	f = put("e7.conf", 0644, "[run]\nbind = scratch\n");
	bad("relative bind source", f, AT(2), "not an absolute path");
	f = put("e8.conf", 0644, "[run]\nbind = /a:b\n");
	bad("relative bind destination", f, AT(2), "not absolute");
	f = put("e9.conf", 0644, "[run]\nforbid-bind = etc\n");
	bad("relative forbid-bind", f, AT(2), "not an absolute path");
	f = put("e10.conf", 0644, "gpu = auto\n");
	bad("a key outside a section", f, AT(1), "outside a section");
	f = put("e11.conf", 0644, "[run]\n[profile p]\nflavour = x\n");
	bad("a profile without a kind", f, AT(2), "has no kind");
	f = put("e12.conf", 0644, "[profile p]\nkind = mpi\n[profile p]\nkind = mpi\n");
	bad("a profile defined twice", f, AT(3), "first at");
	f = put("e13.conf", 0644, "[profile p]\nkind = mpi\nenv = 1X=2\n");
	bad("a bad variable name", f, AT(3), "NAME=VALUE");
	f = put("e14.conf", 0644, "[profile a/b]\n");
	bad("a bad profile name", f, AT(1), "profile name");
	f = put("e15.conf", 0644, "[profile p]\nkind = fpga\n");
	bad("an unknown kind", f, AT(2), "the kinds are");
	f = put("e16.conf", 0644, "[run]\n[profile p]\nkind = gpu\ndevice = nvidia0\n");
	bad("a relative device", f, AT(4), "absolute");
	f = put("e17.conf", 0644, "[run]\ninclude = nowhere.conf\n");
	bad("include of a missing file", f, AT(2), "does not exist");
	f = put("e18.conf", 0644, "[run]\ninclude = e18.conf\n");
	bad("an include loop", f, AT(2), "nested more than");
	f = put("e19.conf", 0644, "[run\n");
	bad("an unclosed section", f, AT(1), "section header");
	f = put("e20.conf", 0644, "[run]\nenv = A=1\nhide = dev/x\n");
	bad("a relative hide", f, AT(3), "absolute");
	bad("a missing file", "/nonexistent/husk.conf", "configuration '/nonexistent/husk.conf'",
		"No such file");
#undef AT
}

static void includes(void)
{
	struct husk_conf c;
	struct husk_err err = { 0 };
	const char *f;

	mkdir_in("conf.d");
	mkdir_in("empty.d");
	put("conf.d/20-b.conf", 0644, "[run]\ngpu = auto\nenv = B=2\n");
	put("conf.d/10-a.conf", 0644, "[run]\ngpu = none\nenv = A=1\n[profile inc]\nkind = gpu\n");
	put("conf.d/notconf", 0644, "garbage\n");
	f = put("inc.conf", 0644, "[run]\nenv = MAIN=1\ninclude = conf.d/*.conf\n"
		"include = empty.d/*.conf\nbind = /after\n");
	CHECK("includes load", husk_conf_load(&c, f, &err) == 0);
	if (err.msg[0])
		printf("# message: %s\n", err.msg);
	CHECK("included in name order, the later wins", c.gpu && !strcmp(c.gpu, "auto"));
	CHECK("variables of every file, in order", c.env.n == 3 && !strcmp(c.env.vars[0], "MAIN=1") &&
		!strcmp(c.env.vars[1], "A=1") && !strcmp(c.env.vars[2], "B=2"));
	CHECK("the section continues after an include", c.n_binds == 1 &&
		!strcmp(c.binds[0].src, "/after"));
	CHECK("a profile from an included file", husk_conf_profile(&c, HUSK_PROFILE_GPU, "inc"));
	husk_conf_free(&c);

	bad_with("conf.d/30-bad.conf", "[run]\n\nnope = 1\n",
		"an error in an included file names that file", f, 3, NULL, "unknown key 'nope'");
}

static void profiles(void)
{
	struct husk_conf c;
	struct husk_err err = { 0 };
	const struct husk_profile *pr;
	char data[512];
	const char *f;

	snprintf(data, sizeof(data), "%s/share", dir);
	setenv("HUSK_TEST_DATADIR", data, 1);
	mkdir_in("share");
	mkdir_in("share/profiles");
	put("share/profiles/openmpi.conf", 0644, "[profile openmpi]\nkind = mpi\nflavour = shipped\n");
	put("share/profiles/ib.conf", 0644, "# InfiniBand\n[profile ib]\nkind = interconnect\n"
		"device = /dev/infiniband/*\n");
	put("share/profiles/README", 0644, "not a profile\n");
	f = put("site.conf", 0644, "[profile openmpi]\nkind = mpi\nflavour = site\n");
	CHECK("the site file loads", husk_conf_load(&c, f, &err) == 0);
	CHECK("the shipped profiles wait until asked for", c.n_profiles == 1 &&
		!husk_conf_profile(&c, HUSK_PROFILE_NET, "ib"));
	CHECK("shipped profiles load", husk_conf_load_profiles(&c, &err) == 0);
	CHECK("... once", husk_conf_load_profiles(&c, &err) == 0 && c.n_profiles == 2);
	if (err.msg[0])
		printf("# message: %s\n", err.msg);
	pr = husk_conf_profile(&c, HUSK_PROFILE_MPI, "openmpi");
	CHECK("the site's profile of the same name wins", pr && !strcmp(pr->flavour, "site"));
	CHECK("shipped profiles are there", c.n_profiles == 2 &&
		husk_conf_profile(&c, HUSK_PROFILE_NET, "ib"));
	husk_conf_free(&c);

	bad_with("share/profiles/zz-bad.conf", "[run]\nbind = /x\n", "[run] in a profile file", f,
		1, NULL, "belongs in husk.conf");
	bad_with("share/profiles/zz-dup.conf", "[profile ib]\nkind = interconnect\n",
		"two shipped profiles of one name", f, 0, "is defined again", "ib.conf:2");
	setenv("HUSK_TEST_DATADIR", none_share, 1);
}

static void trust(void)
{
	struct husk_conf c;
	struct husk_err err = { 0 };
	char sys[512], p[600];
	const char *f;
	int r;

	/* The system file: HUSK_TEST_SYSCONFDIR/husk.conf. */
	snprintf(sys, sizeof(sys), "%s/etc", dir);
	setenv("HUSK_TEST_SYSCONFDIR", sys, 1);
	CHECK("no system file: nothing to load", husk_conf_load(&c, NULL, &err) == 0 && !c.path);
	husk_conf_free(&c);
	f = put("mine.conf", 0644, "[run]\nenv = MINE=1\n");
	CHECK("no system file: a user file is allowed", husk_conf_load(&c, f, &err) == 0 &&
		c.path && c.user && husk_env_get(&c.env, "MINE"));
	husk_conf_free(&c);
	f = put("worldw.conf", 0666, "[run]\n");
	bad("a world-writable user file is refused", f, "writable by everyone", "chmod o-w");

	mkdir_in("etc");
	chmod(sys, 0755);
	put("etc/husk.conf", 0644, "[run]\nenv = SYS=1\n");
	snprintf(p, sizeof(p), "%s/husk.conf", sys);
	if (getuid() != 0) {
		r = husk_conf_load(&c, NULL, &err);
		CHECK("a system file owned by a user is refused", r == -1 &&
			strstr(err.msg, "not by root") && strstr(err.msg, "chown root"));
		if (r == 0)
			husk_conf_free(&c);
		printf("# (root-owned system files: tested by t_conf and when run as root)\n");
		setenv("HUSK_TEST_SYSCONFDIR", none_etc, 1);
		return;
	}
	/* As root: the real checks on root-owned files. */
	CHECK("a root-owned system file loads", husk_conf_load(&c, NULL, &err) == 0 &&
		c.path && !c.user && husk_env_get(&c.env, "SYS"));
	husk_conf_free(&c);
	f = put("user.conf", 0644, "[run]\nenv = USER=1\n");
	bad("a user file where the system file does not allow one", f, "is not allowed here",
		"allow-user-config = yes");
	put("etc/husk.conf", 0644, "[run]\nallow-user-config = yes\nenv = SYS=1\n");
	r = husk_conf_load(&c, f, &err);
	CHECK("an allowed user file replaces the system file", r == 0 && c.user &&
		husk_env_get(&c.env, "USER") && !husk_env_get(&c.env, "SYS"));
	if (r == 0)
		husk_conf_free(&c);
	chmod(p, 0664);
	bad("a group-writable system file is refused", NULL, "writable by its group", "chmod go-w");
	chmod(p, 0644);
	chown(p, 65534, 65534);
	bad("a system file owned by a user is refused", NULL, "owned by uid 65534", "chown root");
	chown(p, 0, 0);
	chmod(sys, 0777);
	bad("a system file in a world-writable directory is refused", NULL, "directory", "writable");
	chmod(sys, 0755);
	chown(f, 65534, 65534);
	put("etc/husk.conf", 0644, "[run]\ninclude = %s\n", f);
	bad("a system file including a user's file is refused", NULL, "owned by uid 65534", f);
	setenv("HUSK_TEST_SYSCONFDIR", none_etc, 1);
}

static void rules(void)
{
	struct husk_conf c;
	struct husk_err err = { 0 };
	struct husk_bind b = { .src = "/h", .why = "--bind" };
	char allowed[512], img[600], link[600], out[600];
	const char *f;

	snprintf(allowed, sizeof(allowed), "%s/images", dir);
	mkdir_in("images");
	mkdir_in("outside");
	snprintf(img, sizeof(img), "%s/images/a.sqfs", dir);
	put("images/a.sqfs", 0644, "x");
	put("outside/b.sqfs", 0644, "x");
	f = put("rules.conf", 0644, "[run]\nforbid-bind = /opt/site\nforbid-bind = /etc/shadow\n"
		"image-path = %s\n", allowed);
	CHECK("rules load", husk_conf_load(&c, f, &err) == 0);
	CHECK("an image below image-path", husk_conf_check_image(&c, img, &err) == 0);
	snprintf(out, sizeof(out), "%s/outside/b.sqfs", dir);
	CHECK("an image elsewhere is refused, naming the rule", husk_conf_check_image(&c, out,
		&err) == -1 && strstr(err.msg, "image-path") && strstr(err.msg, "rules.conf:4"));
	snprintf(link, sizeof(link), "%s/images/link.sqfs", dir);
	symlink(out, link);
	CHECK("a symlink below image-path to an image elsewhere is refused",
		husk_conf_check_image(&c, link, &err) == -1);
	snprintf(link, sizeof(link), "%s/outside/link.sqfs", dir);
	symlink(img, link);
	CHECK("a symlink elsewhere to an image below image-path is allowed",
		husk_conf_check_image(&c, link, &err) == 0);
	snprintf(link, sizeof(link), "%s/images-not/a.sqfs", dir);
	CHECK("a missing image is left to the launch", husk_conf_check_image(&c, link, &err) == 0);

	b.dst = "/opt/site";
	CHECK("a bind on a forbidden path is refused", husk_conf_check_bind(&c, &b, &err) == -1 &&
		strstr(err.msg, "forbid-bind at") && strstr(err.msg, "rules.conf:2"));
	b.dst = "/opt/site/lib";
	CHECK("a bind below it is refused", husk_conf_check_bind(&c, &b, &err) == -1);
	b.dst = "/opt";
	CHECK("a bind that covers it is refused", husk_conf_check_bind(&c, &b, &err) == -1 &&
		strstr(err.msg, "that cover"));
	b.dst = "/opt/site2";
	CHECK("a bind beside it is allowed", husk_conf_check_bind(&c, &b, &err) == 0);
	b.dst = "/etc/shadow.d";
	CHECK("a name that only starts the same is allowed", husk_conf_check_bind(&c, &b, &err) == 0);
	husk_conf_free(&c);
	memset(&c, 0, sizeof(c));
	b.dst = "/opt/site";
	CHECK("no rules: everything is allowed", husk_conf_check_bind(&c, &b, &err) == 0 &&
		husk_conf_check_image(&c, out, &err) == 0);
}

static void host(void)
{
	struct husk_host h;

	husk_host_init(&h);
	CHECK("host: add a bind", husk_host_add_bind(&h, "/usr/lib/x//libmpi.so", NULL, true,
		"--mpi=host") == 0 && h.n_binds == 1 && !strcmp(h.binds[0].dst, "/usr/lib/x/libmpi.so") &&
		h.binds[0].ro && !strcmp(h.binds[0].why, "--mpi=host"));
	CHECK("host: a relative source is refused", husk_host_add_bind(&h, "lib", NULL, true,
		"x") == -1 && h.n_binds == 1);
	CHECK("host: items", husk_host_add_item(&h, "library", "libmpi.so.40", "4.1.4") == 0 &&
		husk_host_add_item(&h, "device", "/dev/nvidia0", NULL) == 0 && h.n_items == 2 &&
		!h.items[1].detail && !strcmp(h.items[0].detail, "4.1.4"));
	CHECK("host: lists", husk_host_add_str(&h.path, "/a") == 0 &&
		husk_host_add_str(&h.path, "/b") == 0 && strv_is(h.path, "/a", "/b"));
	husk_host_free(&h);
}

int main(void)
{
	char cmd[600];

	snprintf(dir, sizeof(dir), "%s/husk-conf-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") :
		"/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	chmod(dir, 0755);
	/* Nothing installed on this machine may take part. */
	snprintf(none_etc, sizeof(none_etc), "%s/no-etc", dir);
	snprintf(none_share, sizeof(none_share), "%s/no-share", dir);
	setenv("HUSK_TEST_SYSCONFDIR", none_etc, 1);
	setenv("HUSK_TEST_DATADIR", none_share, 1);
	syntax();
	errors();
	includes();
	profiles();
	trust();
	rules();
	host();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return unit_done();
}
