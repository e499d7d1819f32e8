/* site.c: `husk run`'s site configuration: load husk.conf (or the user's
 * --config / HUSK_CONFIG where the site allows one), apply its rules to the
 * plan (image-path, forbid-bind), and put its pieces (binds, variables) in
 * the plan's host pieces, where --mpi, --gpu and --placement add theirs. */
#include "husk_config.h"
#include "cli.h"
#include "conf.h"
#include "inject.h"

#include <stdio.h>
#include <stdlib.h>

/* config: --config FILE, or NULL (then HUSK_CONFIG, when set and not empty). */
int cli_site_setup(struct husk_plan *plan, const char *config, struct husk_conf *conf,
	struct husk_host *host)
{
	struct husk_err err = { 0 };
	const char *env = getenv("HUSK_CONFIG");

	if (!config && env && *env)
		config = env;
	if (husk_conf_load(conf, config, &err) < 0)
		return cli_fail(&err), -1;
	if (conf->path)
		husk_info("configuration '%s'%s", conf->path, conf->user ? " (--config or HUSK_CONFIG)" :
			"");
	if (husk_conf_check_image(conf, plan->image_path, &err) < 0)
		return cli_fail(&err), -1;
	for (size_t i = 0; i < plan->n_binds; i++)
		if (husk_conf_check_bind(conf, &plan->binds[i], &err) < 0)
			return cli_fail(&err), -1;
	for (size_t i = 0; i < conf->n_binds; i++) {
		struct husk_bind *b = &conf->binds[i];
		if (husk_host_add_bind(host, b->src, b->dst, b->ro, "husk.conf") < 0)
			goto nomem;
		host->binds[host->n_binds - 1].optional = true;
	}
	for (char **h = conf->hide; h && *h; h++)
		if (husk_host_add_str(&host->hide, *h) < 0)
			goto nomem;
	for (size_t i = 0; i < conf->env.n; i++)
		if (husk_env_put(&host->env, conf->env.vars[i]) < 0)
			goto nomem;
	if (conf->path && husk_host_add_item(host, "config", conf->path,
	    conf->user ? "--config or HUSK_CONFIG" : "site") < 0)
		goto nomem;
	plan->host = host;
	return 0;
nomem:
	fprintf(stderr, "husk: out of memory while applying the site configuration\n");
	return -1;
}

int cli_inject_begin(const struct husk_plan *plan, struct husk_image *img,
	struct husk_inject **ctx, struct husk_err *err)
{
	*ctx = NULL;
	if (husk_image_open(img, plan->image_path, err) < 0)
		return -1;
	if (husk_inject_open(ctx, img, err) < 0) {
		husk_image_close(img);
		return -1;
	}
	return 0;
}

int cli_inject_end(struct husk_plan *plan, struct husk_host *host, struct husk_image *img,
	struct husk_inject *ctx, int r, const struct husk_err *err)
{
	husk_inject_close(ctx);
	husk_image_close(img);
	if (r < 0)
		return cli_fail(err), -1;
	plan->host = host;
	return 0;
}
