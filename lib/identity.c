/* identity.c: generated /etc/passwd and /etc/group, so that the user has a
 * name inside the image (ls -l, whoami, ssh, MPI launchers look it up). The
 * image's own entries are kept, except those that clash with the user's uid,
 * gid or name; the user's entry comes from the host (NSS, so LDAP users work). */
#include "husk_config.h"
#include "husk.h"
#include "ns.h"
#include "util.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

/* Does "name:x:ID:..." have field 0 == name or field 2 == id? */
static bool clashes(const char *line, size_t len, const char *name, unsigned id)
{
	const char *c1 = memchr(line, ':', len), *c2, *c3;
	size_t nl = strlen(name);

	if (!c1)
		return false;
	if ((size_t)(c1 - line) == nl && !strncmp(line, name, nl))
		return true;
	c2 = memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line));
	if (!c2)
		return false;
	c3 = c2 + 1;
	return (unsigned)strtoul(c3, NULL, 10) == id && *c3 >= '0' && *c3 <= '9';
}

static char *merge(const char *image_text, const char *name, unsigned id, const char *entry)
{
	size_t cap = (image_text ? strlen(image_text) : 0) + strlen(entry) + 2;
	char *out = malloc(cap), *o = out;
	const char *p = image_text;

	if (!out)
		return NULL;
	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len && !clashes(p, len, name, id)) {
			memcpy(o, p, len);
			o += len;
			*o++ = '\n';
		}
		p += len + (eol ? 1 : 0);
	}
	strcpy(o, entry);
	return out;
}

int husk_identity_files(struct husk_image *img, bool fake_root, uid_t uid, gid_t gid,
	const char *home, char **passwd, char **group, struct husk_err *err)
{
	autofree char *img_passwd = NULL, *img_group = NULL;
	autofree char *pw_entry = NULL, *gr_entry = NULL;
	struct passwd *pw = getpwuid(uid);
	struct group *gr = getgrgid(gid);
	char uname[64], gname[64];
	unsigned in_uid = fake_root ? 0 : (unsigned)uid, in_gid = fake_root ? 0 : (unsigned)gid;

	if (husk_image_read_file(img, "/etc/passwd", &img_passwd, NULL, 16 << 20, err) < 0 ||
	    husk_image_read_file(img, "/etc/group", &img_group, NULL, 16 << 20, err) < 0)
		return -1;
	if (fake_root) {
		snprintf(uname, sizeof(uname), "root");
		snprintf(gname, sizeof(gname), "root");
	} else {
		snprintf(uname, sizeof(uname), "%s", pw ? pw->pw_name :
			getenv("USER") ? getenv("USER") : "user");
		snprintf(gname, sizeof(gname), "%s", gr ? gr->gr_name : uname);
	}
	pw_entry = husk_strdup_printf("%s:x:%u:%u:%s:%s:/bin/sh\n", uname, in_uid, in_gid,
		pw && !fake_root ? pw->pw_gecos : uname, fake_root ? "/root" : home ? home : "/");
	gr_entry = husk_strdup_printf("%s:x:%u:\n", gname, in_gid);
	if (!pw_entry || !gr_entry)
		return husk_err_set(err, ENOMEM, "generating /etc/passwd");
	*passwd = merge(img_passwd, uname, in_uid, pw_entry);
	*group = merge(img_group, gname, in_gid, gr_entry);
	if (!*passwd || !*group)
		return husk_err_set(err, ENOMEM, "generating /etc/passwd");
	return 0;
}
