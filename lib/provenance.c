/* provenance.c: `husk run --provenance FILE` appends one JSON object, on one
 * line, per launch: which image (path and digest) ran which command, where,
 * as whom, with which mounts and which changes to the environment. A later
 * reader can then prove which image a result came from.
 *
 * The file is opened O_APPEND and each record is one write(2): on a local
 * filesystem the kernel appends it whole under the inode lock, so records of
 * concurrent launches (srun -n 128) never interleave. NFS does not make
 * O_APPEND atomic across clients; give each node its own file there.
 *
 * The record holds environment values, secrets included, so a new file is
 * created mode 0600. The record is written by the command process right
 * before exec, after every step that could fail but exec itself, so a
 * record exists for every command that ran; a record whose exec then failed
 * (command not found) is possible. */
#include "husk_config.h"
#include "husk.h"
#include "conf.h"
#include "ns.h"
#include "util.h"

#include <fcntl.h>
#include <json.h>
#include <limits.h>
#include <pwd.h>
#include <string.h>
#include <time.h>
#include <uuid.h>

extern char **environ;

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *string_array(char **v)
{
	json_object *a = json_object_new_array();

	for (; a && v && *v; v++)
		json_object_array_add(a, json_object_new_string(*v));
	return a;
}

/* ---- the record's parts, in the order they appear ------------------- */

static int add_identity(struct husk_setup *s, json_object *rec)
{
	char host[HOST_NAME_MAX + 1] = "", buf[4096];
	struct passwd pw, *pwp = NULL;
	uuid_t id;
	char id_text[37];

	uuid_generate(id);
	uuid_unparse_lower(id, id_text);
	if (gethostname(host, sizeof(host)) < 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	getpwuid_r(s->uid, &pw, buf, sizeof(buf), &pwp);
	json_object_object_add(rec, "run_id", json_object_new_string(id_text));
	json_object_object_add(rec, "time", NULL);   /* filled in at exec */
	json_object_object_add(rec, "host", str_or_null(host[0] ? host : NULL));
	json_object_object_add(rec, "user", str_or_null(pwp ? pwp->pw_name : NULL));
	json_object_object_add(rec, "uid", json_object_new_int64((int64_t)s->uid));
	return 0;
}

static int add_image(struct husk_setup *s, json_object *rec)
{
	autofree char *digest = s->have_digest ? husk_strdup_printf("sha256:%s", s->digest) : NULL;

	json_object_object_add(rec, "image", json_object_new_string(s->img.path));
	json_object_object_add(rec, "image_kind", json_object_new_string(
		s->img.kind == HUSK_IMAGE_SQUASHFS ? "squashfs" : "directory"));
	json_object_object_add(rec, "digest", str_or_null(digest));
	json_object_object_add(rec, "pinned", json_object_new_boolean(s->plan->pin_digest != NULL));
	json_object_object_add(rec, "husk_version", json_object_new_string(husk_version()));
	return 0;
}

static int add_command(struct husk_setup *s, json_object *rec)
{
	json_object_object_add(rec, "command", string_array(s->argv));
	json_object_object_add(rec, "cwd", NULL);   /* filled in at exec */
	return 0;
}

/* The mounts as planned (defaults and user binds; generated files left out). */
static int add_binds(struct husk_setup *s, json_object *rec)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < s->n_mnts; i++) {
		struct husk_mnt *m = &s->mnts[i];
		json_object *b;
		if (m->generated || m->hide)
			continue;
		b = json_object_new_object();
		json_object_object_add(b, "src", json_object_new_string(m->src));
		json_object_object_add(b, "dst", json_object_new_string(m->dst));
		json_object_object_add(b, "ro", json_object_new_boolean(m->ro));
		json_object_object_add(b, "why", json_object_new_string(m->why));
		json_object_array_add(a, b);
	}
	json_object_object_add(rec, "binds", a);
	return 0;
}

/* The host's value of NAME, or NULL. */
static const char *host_value(const char *name, size_t len)
{
	for (char **e = environ; *e; e++)
		if (!strncmp(*e, name, len) && (*e)[len] == '=')
			return *e + len + 1;
	return NULL;
}

/* What differs from the host: variables set (or set to another value)
 * inside, and host variables the command does not get. */
static int add_env_changes(struct husk_setup *s, json_object *rec)
{
	json_object *changes = json_object_new_object(), *set = json_object_new_object();
	json_object *unset = json_object_new_array(), *seen = json_object_new_object();

	for (size_t i = 0; i < s->env.n; i++) {
		const char *nv = s->env.vars[i], *eq = strchr(nv, '='), *host;
		autofree char *name = NULL;
		if (!eq)
			continue;
		host = host_value(nv, (size_t)(eq - nv));
		if (host && !strcmp(host, eq + 1))
			continue;
		if ((name = strndup(nv, (size_t)(eq - nv))))
			json_object_object_add(set, name, json_object_new_string(eq + 1));
	}
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		autofree char *name = NULL;
		if (!eq || !(name = strndup(*e, (size_t)(eq - *e))) || husk_env_get(&s->env, name) ||
		    json_object_object_get_ex(seen, name, NULL))
			continue;
		json_object_object_add(seen, name, NULL);
		json_object_array_add(unset, json_object_new_string(name));
	}
	json_object_put(seen);
	json_object_object_add(changes, "set", set);
	json_object_object_add(changes, "unset", unset);
	json_object_object_add(rec, "env_changes", changes);
	return 0;
}

/* host_pieces: what the host added (site configuration, injected libraries
 * with their versions, devices, placement), one object per item; hidden: the
 * container paths masked (devices of other ranks). Always present, [] when
 * none. */
static int add_host(struct husk_setup *s, json_object *rec)
{
	struct husk_host *h = s->plan->host;
	json_object *a = json_object_new_array(), *hidden = json_object_new_array();

	for (size_t i = 0; a && h && i < h->n_items; i++) {
		json_object *it = json_object_new_object();
		json_object_object_add(it, "what", json_object_new_string(h->items[i].what));
		json_object_object_add(it, "name", json_object_new_string(h->items[i].name));
		json_object_object_add(it, "detail", str_or_null(h->items[i].detail));
		json_object_array_add(a, it);
	}
	json_object_object_add(rec, "host_pieces", a);
	for (size_t i = 0; hidden && i < s->n_mnts; i++)
		if (s->mnts[i].hide)
			json_object_array_add(hidden, json_object_new_string(s->mnts[i].dst));
	json_object_object_add(rec, "hidden", hidden);
	return 0;
}

/* Each part adds its fields. Later parts of a launch (devices passed
 * through, host libraries injected, rank placement) add theirs here, one
 * function each, so a record always describes the whole launch. */
static int (*const parts[])(struct husk_setup *, json_object *) = {
	add_identity,
	add_image,
	add_command,
	add_binds,
	add_host,
	add_env_changes,
	NULL,
};

/* ---- open, prepare, write -------------------------------------------- */

int husk_provenance_open(struct husk_setup *s, struct husk_err *err)
{
	const char *path = s->plan->provenance;

	s->prov_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (s->prov_fd < 0) {
		husk_err_set(err, errno, "provenance file '%s'", path);
		husk_err_hint(err, "nothing was run; give a file you can write (--provenance or "
			"HUSK_PROVENANCE)");
		return -1;
	}
	return 0;
}

int husk_provenance_prepare(struct husk_setup *s, struct husk_err *err)
{
	if (!(s->prov = json_object_new_object()))
		return husk_err_set(err, ENOMEM, "provenance record");
	for (int i = 0; parts[i]; i++)
		if (parts[i](s, s->prov) < 0)
			return -1;
	return 0;
}

/* RFC 3339, UTC, milliseconds: 2024-05-01T12:34:56.789Z */
static void now_rfc3339(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	char sec[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03ldZ", sec, ts.tv_nsec / 1000000);
}

int husk_provenance_write(struct husk_setup *s, struct husk_err *err)
{
	char when[64], cwd[PATH_MAX];
	autofree char *line = NULL;
	const char *text;
	ssize_t w;

	if (s->prov_fd < 0 || !s->prov)
		return 0;
	now_rfc3339(when, sizeof(when));
	json_object_object_add(s->prov, "time", json_object_new_string(when));
	json_object_object_add(s->prov, "cwd", str_or_null(getcwd(cwd, sizeof(cwd))));
	if (s->sess.on) {
		json_object *sess = json_object_new_object();
		json_object_object_add(sess, "key", json_object_new_string(s->sess.key));
		json_object_object_add(sess, "started", json_object_new_boolean(s->sess.started));
		json_object_object_add(s->prov, "session", sess);
	} else {
		json_object_object_add(s->prov, "session", NULL);
	}
	text = json_object_to_json_string_ext(s->prov, JSON_C_TO_STRING_PLAIN |
		JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text || !(line = husk_strdup_printf("%s\n", text)))
		return husk_err_set(err, ENOMEM, "provenance record");
	/* One write: O_APPEND places it whole at the end (see the top). */
	do
		w = write(s->prov_fd, line, strlen(line));
	while (w < 0 && errno == EINTR);
	if (w != (ssize_t)strlen(line)) {
		if (w < 0)
			husk_err_set(err, errno, "provenance file '%s': cannot append the record",
				s->plan->provenance);
		else
			husk_err_set(err, 0, "provenance file '%s': only %zd of %zu bytes of the record "
				"were written", s->plan->provenance, w, strlen(line));
		husk_err_hint(err, "the command was not run");
		return -1;
	}
	return 0;
}

void husk_provenance_free(struct husk_setup *s)
{
	if (s->prov_fd >= 0)
		close(s->prov_fd);
	s->prov_fd = -1;
	json_object_put(s->prov);
	s->prov = NULL;
}
