/* place_cli.c: --placement=auto for husk run, and the husk-place helper
 * (which alone links hwloc) for `husk topology`. */
#include "husk_config.h"
#include "cli.h"
#include "place.h"
#include "conf.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_HWLOC
/* Where husk-place is: beside this husk (a build tree, a staged copy), else
 * where make install put it. */
static void helper_path(char *out, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		snprintf(out, size, "%s/husk-place", dirname(self));
		if (access(out, X_OK) == 0)
			return;
	}
	snprintf(out, size, "%s/husk-place", HUSK_LIBEXECDIR);
}

static const char *getenv_const(const char *name)
{
	return getenv(name);
}

int cli_exec_topology(int argc, char **argv)
{
	char path[PATH_MAX + 16];
	char **args = calloc((size_t)argc + 2, sizeof(*args));

	if (!args)
		return HUSK_EXIT_FAILURE;
	args[0] = "husk-place";
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	helper_path(path, sizeof(path));
	execv(path, args);
	fprintf(stderr, "husk: cannot run '%s': %s; reinstall husk, or keep husk-place next "
		"to the husk binary\n", path, strerror(errno));
	free(args);
	return HUSK_EXIT_FAILURE;
}

/* The value of a visible-devices variable the user already gave: -e wins
 * over the host's environment (Slurm's CUDA_VISIBLE_DEVICES included). */
static char *user_value(const struct husk_plan *plan, const char *name)
{
	const char *v = husk_env_get(&plan->env_cli, name);
	char *nv;

	if (!v)
		v = getenv(name);
	if (!v || asprintf(&nv, "%s=%s", name, v) < 0)
		return NULL;
	return nv;
}

int cli_placement(struct husk_plan *plan, struct husk_host *host, struct husk_err *err)
{
	static const char *const vars[] = { "CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
		"UCX_NET_DEVICES" };
	char path[PATH_MAX + 16], *keep[4] = { NULL }, *detail = NULL, *summary = NULL;
	struct husk_placement p;
	struct husk_local l;
	int n = 0, r = -1;

	if (husk_local_from_env(getenv_const, &l, err) < 0)
		return -1;
	for (size_t i = 0; i < 3; i++)
		if ((keep[n] = user_value(plan, vars[i])))
			n++;
	helper_path(path, sizeof(path));
	husk_placement_init(&p);
	if (husk_placement_query(path, &l, keep, &p, err) < 0)
		goto out;
	if (!plan->dry_run && husk_placement_apply(&p, err) < 0)
		goto out;
	if (!p.apply)
		husk_warn("placement not bound: %s (set HWLOC_THISSYSTEM=1 when the XML describes "
			"this machine)", p.why_not ? p.why_not : "the topology is not this machine's");
	husk_info("placement (local rank from %s): %s", l.source, p.summary);
	/* The container gets the variables through the host pieces: after the
	 * image's environment, below --env-file and -e. */
	if (asprintf(&summary, "%s%s", p.summary, p.apply ? "" : " (not bound)") < 0 ||
	    asprintf(&detail, "local rank from %s%s%s", l.source, p.apply ? "" : "; not bound: ",
		p.apply ? "" : (p.why_not ? p.why_not : "")) < 0) {
		summary = detail = NULL;
		husk_err_set(err, ENOMEM, "placement");
		goto out;
	}
	for (size_t i = 0; i < p.env.n; i++) {
		const char *nv = p.env.vars[i], *eq = strchr(nv, '=');
		char name[64];
		int rc = strncmp(nv, "HUSK_PLACEMENT=", 15) ? husk_env_put(&host->env, nv) :
			husk_env_set(&host->env, "HUSK_PLACEMENT", summary);
		/* The GPU logic reads the launch's own environment (bin/gpu.c:
		 * envp = environ) to decide which device nodes appear: it must see
		 * the narrowed CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES too. */
		snprintf(name, sizeof(name), "%.*s", (int)(eq - nv), nv);
		if (rc == 0 && strcmp(name, "HUSK_PLACEMENT"))
			rc = setenv(name, eq + 1, 1);
		if (rc < 0) {
			husk_err_set(err, ENOMEM, "placement");
			goto out;
		}
	}
	if (husk_host_add_item(host, "placement", summary, detail) < 0) {
		husk_err_set(err, ENOMEM, "placement");
		goto out;
	}
	plan->host = host;
	r = 0;
out:
	for (int i = 0; i < n; i++)
		free(keep[i]);
	free(summary);
	free(detail);
	husk_placement_free(&p);
	return r;
}

#else

int cli_exec_topology(int argc, char **argv)
{
	(void)argc, (void)argv;
	fprintf(stderr, "husk: topology: this husk was built without hwloc; install "
		"libhwloc-dev (hwloc >= 2.0) and rebuild it (./configure --with-hwloc)\n");
	return HUSK_EXIT_FAILURE;
}

int cli_placement(struct husk_plan *plan, struct husk_host *host, struct husk_err *err)
{
	(void)plan, (void)host;
	return husk_err_set(err, 0, "--placement=auto: this husk was built without hwloc; "
		"install libhwloc-dev (hwloc >= 2.0) and rebuild it (./configure --with-hwloc)");
}

#endif
