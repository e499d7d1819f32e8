/* host.c: the host pieces of a launch (struct husk_host, conf.h): building
 * them, and what run.c and root.c do with them (environment, binds, hidden
 * device nodes).
 *
 * NOTE for merging: the conf branch owns the consumption of plan->host in
 * run.c; this file is the gpu branch's minimal version, so that --gpu and
 * --device work and are tested before it lands. Keep one of each. */
#include "husk_config.h"
#include "gpu.h"
#include "ns.h"
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

void husk_host_init(struct husk_host *h)
{
	memset(h, 0, sizeof(*h));
	husk_env_init(&h->env);
}

void husk_host_free(struct husk_host *h)
{
	for (size_t i = 0; i < h->n_binds; i++)
		husk_bind_free(&h->binds[i]);
	free(h->binds);
	for (size_t i = 0; i < h->n_items; i++) {
		free(h->items[i].what);
		free(h->items[i].name);
		free(h->items[i].detail);
	}
	free(h->items);
	husk_env_free(&h->env);
	husk_gpu_strv_free(h->ld_library_path);
	husk_gpu_strv_free(h->path);
	husk_gpu_strv_free(h->hide);
	memset(h, 0, sizeof(*h));
}

int husk_host_add_bind(struct husk_host *h, const char *src, const char *dst, bool ro,
	const char *why)
{
	struct husk_bind *v = realloc(h->binds, (h->n_binds + 1) * sizeof(*v)), *b;

	if (!v)
		return -1;
	h->binds = v;
	b = &v[h->n_binds];
	memset(b, 0, sizeof(*b));
	b->src = strdup(src);
	b->dst = husk_path_normalize(dst);
	b->ro = ro;
	b->why = why;
	if (!b->src || !b->dst) {
		husk_bind_free(b);
		return -1;
	}
	h->n_binds++;
	return 0;
}

int husk_host_add_item(struct husk_host *h, const char *what, const char *name,
	const char *detail)
{
	struct husk_host_item *v = realloc(h->items, (h->n_items + 1) * sizeof(*v)), *it;

	if (!v)
		return -1;
	h->items = v;
	it = &v[h->n_items];
	it->what = strdup(what);
	it->name = strdup(name);
	it->detail = detail ? strdup(detail) : NULL;
	if (!it->what || !it->name || (detail && !it->detail)) {
		free(it->what);
		free(it->name);
		free(it->detail);
		return -1;
	}
	h->n_items++;
	return 0;
}

/* ---- consumption ----------------------------------------------------------- */

static int prepend(struct husk_env *env, const char *name, char **dirs)
{
	const char *old = husk_env_get(env, name);
	size_t len = old ? strlen(old) + 1 : 1;
	char *v;
	int r;

	if (!dirs || !dirs[0])
		return 0;
	for (char **d = dirs; *d; d++)
		len += strlen(*d) + 1;
	if (!(v = calloc(1, len)))
		return -1;
	for (char **d = dirs; *d; d++) {
		strcat(v, *d);
		if (d[1] || (old && *old))
			strcat(v, ":");
	}
	if (old)
		strcat(v, old);
	r = husk_env_set(env, name, v);
	free(v);
	return r;
}

int husk_host_apply_env(const struct husk_host *h, struct husk_env *env)
{
	if (!h)
		return 0;
	for (size_t i = 0; i < h->env.n; i++)
		if (husk_env_put(env, h->env.vars[i]) < 0)
			return -1;
	if (prepend(env, "LD_LIBRARY_PATH", h->ld_library_path) < 0 ||
	    prepend(env, "PATH", h->path) < 0)
		return -1;
	return 0;
}

/* Cover a hidden device node with an empty file (mode 0), or a hidden
 * directory with an empty read-only tmpfs (mode 0), in the command's mount
 * namespace only. The runtime then cannot open it: the GPU is not there. */
int husk_host_hide(struct husk_setup *s, int root_fd, struct husk_err *err)
{
	const struct husk_host *h = s->plan->host;
	autoclose int blank = -1;

	if (!h || !h->hide)
		return 0;
	for (char **p = h->hide; *p; p++) {
		autoclose int fd = husk_resolve(root_fd, *p, O_PATH | O_NOFOLLOW);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			husk_debug("nothing to hide at '%s'", *p);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (husk_mount_tmpfs(fd, "mode=000,size=4k,nr_inodes=1") < 0)
				return husk_err_set(err, errno, "cannot hide '%s'", *p);
			close(fd);
			fd = husk_resolve(root_fd, *p, O_PATH | O_NOFOLLOW);
			if (fd < 0 || husk_setattr_fd(fd, false, true, true) < 0)
				return husk_err_set(err, errno, "cannot hide '%s'", *p);
		} else {
			if (blank < 0) {
				int w = openat(s->stage_fd, "hidden-device", O_CREAT | O_EXCL | O_WRONLY |
					O_CLOEXEC, 0);
				if (w < 0 && errno != EEXIST)
					return husk_err_set(err, errno, "cannot hide '%s'", *p);
				if (w >= 0)
					close(w);
				blank = openat(s->stage_fd, "hidden-device", O_PATH | O_CLOEXEC);
				if (blank < 0)
					return husk_err_set(err, errno, "cannot hide '%s'", *p);
			}
			if (husk_bind_fd(blank, fd, BIND_RO | BIND_NODEV, err, *p) < 0)
				return -1;
		}
		husk_debug("hid '%s'", *p);
	}
	return 0;
}
