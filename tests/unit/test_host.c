/* test_host.c: what husk run plans from the host pieces (struct husk_host),
 * read from its --dry-run report: the order of the variables, the library and
 * program directories put in front, the binds, the masks and the items. A
 * real plan of a real (empty directory) image; nothing is mounted. */
#include "husk_config.h"
#include "conf.h"
#include "unit.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char *dry_run(struct husk_plan *plan, int *ret)
{
	struct husk_err err = { 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	*ret = husk_run(plan, f, &err);
	fclose(f);
	if (*ret != 0)
		printf("# husk_run: %s\n", err.msg);
	return buf;
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, line, n) && (p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

static bool has(const char *text, const char *needle)
{
	return text && strstr(text, needle);
}

int main(void)
{
	char img[] = "/tmp/husk-host-XXXXXX", lib[300];
	char *argv[] = { "/bin/true", NULL };
	struct husk_plan plan;
	struct husk_host host;
	char *out;
	int r;

	if (!mkdtemp(img)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(lib, sizeof(lib), "%s-lib", img);
	mkdir(lib, 0755);
	setenv("LD_LIBRARY_PATH", "/host/lib", 1);
	setenv("PATH", "/usr/bin:/bin", 1);
	setenv("FROM_HOST", "host", 1);
	unsetenv("HUSK_JOIN");
	unsetenv("SLURM_JOB_ID");
	unsetenv("PMIX_NAMESPACE");
	unsetenv("OMPI_MCA_orte_ess_jobid");
	unsetenv("OMPI_MCA_ess_base_jobid");

	husk_plan_init(&plan);
	husk_host_init(&host);
	plan.image_path = img;
	plan.argv = argv;
	plan.dry_run = true;
	plan.no_join = true;
	plan.host = &host;
	husk_env_put(&host.env, "FROM_HOST=site");
	husk_env_put(&host.env, "SITE_ONLY=1");
	husk_env_put(&host.env, "CLI_WINS=site");
	husk_env_put(&plan.env_cli, "CLI_WINS=cli");
	husk_env_put(&plan.env_cli, "PATH=/user/bin");
	husk_host_add_str(&host.ld_library_path, "/inj/lib");
	husk_host_add_str(&host.ld_library_path, "/inj/lib64");
	husk_host_add_str(&host.path, "/inj/bin");
	husk_host_add_str(&host.hide, "/dev/nvidia1");
	husk_host_add_bind(&host, lib, "/opt/injected", true, "--mpi=host");
	husk_host_add_bind(&host, "/nonexistent/optional", NULL, true, "husk.conf");
	host.binds[host.n_binds - 1].optional = true;
	husk_host_add_item(&host, "library", "libmpi.so.40", "/usr/lib/libmpi.so.40.30.4");

	out = dry_run(&plan, &r);
	CHECK("dry run of a plan with host pieces", r == 0 && out);
	CHECK("host variables override the host's", has_line(out, "  FROM_HOST=site"));
	CHECK("host variables are set", has_line(out, "  SITE_ONLY=1"));
	CHECK("-e overrides host variables", has_line(out, "  CLI_WINS=cli"));
	CHECK("library directories go in front, in order",
		has_line(out, "  LD_LIBRARY_PATH=/inj/lib:/inj/lib64:/host/lib"));
	CHECK("program directories go in front even of -e PATH",
		has_line(out, "  PATH=/inj/bin:/user/bin"));
	CHECK("a host bind is planned read-only with its reason", has(out, " -> /opt/injected") &&
		has(out, "ro,nosuid,nodev  [--mpi=host]"));
	CHECK("an optional bind whose source is missing is left out",
		!has(out, "/nonexistent/optional"));
	CHECK("the mask is planned", has(out, "(hidden)") && has(out, "-> /dev/nvidia1") &&
		has(out, "masked"));
	CHECK("the items are reported", has(out, "host pieces:") &&
		has(out, "library    libmpi.so.40  /usr/lib/libmpi.so.40.30.4"));
	free(out);

	/* Host binds come after the defaults and before the user's. */
	{
		struct husk_bind ub;
		struct husk_err err = { 0 };
		char *a, *b, *c;
		husk_bind_parse(lib, NULL, &ub, &err);
		free(ub.dst);
		ub.dst = strdup("/user-bind");
		plan.binds = &ub;
		plan.n_binds = 1;
		out = dry_run(&plan, &r);
		a = out ? strstr(out, "-> /proc") : NULL;
		b = out ? strstr(out, "-> /opt/injected") : NULL;
		c = out ? strstr(out, "-> /user-bind") : NULL;
		CHECK("order: defaults, host binds, user binds", a && b && c && a < b && b < c);
		free(out);
		husk_bind_free(&ub);
		plan.binds = NULL;
		plan.n_binds = 0;
	}

	/* A missing host bind source that is not optional stops the plan. */
	husk_host_add_bind(&host, "/nonexistent/required", NULL, true, "--gpu");
	{
		struct husk_err err = { 0 };
		r = husk_run(&plan, stdout, &err);
		CHECK("a required host bind whose source is missing is an error", r == -1 &&
			strstr(err.msg, "'/nonexistent/required' (--gpu)"));
	}

	husk_host_free(&host);
	husk_plan_free(&plan);
	rmdir(lib);
	rmdir(img);
	return unit_done();
}
