/* test_meta.c: /.husk/metadata.json: a good file, fields of the wrong type,
 * a format too new, files that are not JSON; errors name the file and the
 * field. The image is a directory made here. */
#include "husk_config.h"
#include "husk.h"
#include "unit.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[PATH_MAX];

static void put_meta(const char *text)
{
	char p[PATH_MAX + 64];
	FILE *f;

	snprintf(p, sizeof(p), "%s/.husk/metadata.json", root);
	if (!text) {
		unlink(p);
		return;
	}
	if (!(f = fopen(p, "w"))) {
		perror(p);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

/* Read the metadata of the image; r is husk_meta_read's result. */
static int read_meta(struct husk_meta *m, struct husk_err *err)
{
	struct husk_image img;
	int r;

	memset(err, 0, sizeof(*err));
	if (husk_image_open(&img, root, err) < 0) {
		printf("# cannot open the test image: %s\n", err->msg);
		exit(1);
	}
	r = husk_meta_read(&img, m, err);
	husk_image_close(&img);
	return r;
}

/* The file must be refused, with a message naming it and holding needle. */
static void refused(const char *name, const char *text, const char *needle)
{
	struct husk_meta m;
	struct husk_err err;
	int r;

	put_meta(text);
	r = read_meta(&m, &err);
	CHECK(name, r == -1 && strstr(err.msg, "/.husk/metadata.json") &&
		strstr(err.msg, needle) && m.json == NULL && m.env == NULL && m.cmd == NULL);
	if (r != -1 || !strstr(err.msg, needle))
		printf("# r=%d message: %s\n", r, err.msg);
	husk_meta_free(&m);
}

static int count(char **v)
{
	int n = 0;
	while (v && v[n])
		n++;
	return n;
}

int main(void)
{
	struct husk_meta m;
	struct husk_err err;
	char dir[PATH_MAX + 64];
	int r;

	snprintf(root, sizeof(root), "/tmp/husk-test-meta.XXXXXX");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}

	/* No /.husk at all, then an empty /.husk: both are "no metadata". */
	r = read_meta(&m, &err);
	CHECK("an image without /.husk has no metadata (1)", r == 1 && !m.json && !m.cmd &&
		!m.entrypoint && !m.workdir && !m.env && !m.labels);
	husk_meta_free(&m);
	snprintf(dir, sizeof(dir), "%s/.husk", root);
	mkdir(dir, 0755);
	r = read_meta(&m, &err);
	CHECK("an image without metadata.json has no metadata (1)", r == 1 && !m.json);
	husk_meta_free(&m);

	put_meta("{\n"
		"  \"husk_metadata\": 1,\n"
		"  \"env\": [\"PATH=/opt/app/bin:/usr/bin\", \"EMPTY=\", \"EQ=a=b\"],\n"
		"  \"labels\": {\"org.example.name\": \"app\", \"version\": \"2\"},\n"
		"  \"entrypoint\": [\"/bin/sh\", \"-c\"],\n"
		"  \"cmd\": [\"echo \\\"hi\\\" there\"],\n"
		"  \"workdir\": \"/srv/app\",\n"
		"  \"build\": {\"husk_version\": \"0.1.0\", \"source_date_epoch\": 1700000000,\n"
		"    \"date\": \"2023-11-14T22:13:20Z\", \"compression\": \"lz4\",\n"
		"    \"source\": {\"kind\": \"recipe\", \"path\": \"app.recipe\", \"sha256\": null},\n"
		"    \"inputs\": [{\"what\": \"FROM debian:bookworm\", \"sha256\": \"ab\"}],\n"
		"    \"tools\": {\"mksquashfs\": \"4.5.1\"}, \"later\": [1, 2]},\n"
		"  \"a_field_of_a_later_version\": {\"x\": [1, 2, 3]}\n"
		"}\n");
	r = read_meta(&m, &err);
	CHECK("a good file is read", r == 0);
	if (r != 0)
		printf("# message: %s\n", err.msg);
	CHECK("env, in order", count(m.env) == 3 && !strcmp(m.env[0], "PATH=/opt/app/bin:/usr/bin") &&
		!strcmp(m.env[1], "EMPTY=") && !strcmp(m.env[2], "EQ=a=b"));
	CHECK("labels as KEY=VALUE", count(m.labels) == 2 &&
		!strcmp(m.labels[0], "org.example.name=app") && !strcmp(m.labels[1], "version=2"));
	CHECK("entrypoint", count(m.entrypoint) == 2 && !strcmp(m.entrypoint[0], "/bin/sh") &&
		!strcmp(m.entrypoint[1], "-c"));
	CHECK("cmd keeps quotes and spaces", count(m.cmd) == 1 &&
		!strcmp(m.cmd[0], "echo \"hi\" there"));
	CHECK_STR("workdir", m.workdir, "/srv/app");
	CHECK("the whole text is kept", m.json && strstr(m.json, "a_field_of_a_later_version"));
	husk_meta_free(&m);
	CHECK("free clears", !m.json && !m.env && !m.cmd);

	put_meta("{\"husk_metadata\": 1, \"entrypoint\": null, \"cmd\": null, \"workdir\": null,"
		" \"env\": null, \"labels\": null, \"build\": null}");
	r = read_meta(&m, &err);
	CHECK("null fields are unset", r == 0 && !m.entrypoint && !m.cmd && !m.workdir &&
		!m.env && !m.labels && m.json);
	husk_meta_free(&m);
	put_meta("{\"husk_metadata\": 1}");
	r = read_meta(&m, &err);
	CHECK("absent fields are unset", r == 0 && !m.entrypoint && !m.cmd && !m.workdir);
	husk_meta_free(&m);
	put_meta("{\"husk_metadata\": 1, \"cmd\": []}");
	r = read_meta(&m, &err);
	CHECK("an empty cmd is an empty list", r == 0 && m.cmd && !m.cmd[0]);
	husk_meta_free(&m);

	/* Wrong types: each message names the field. */
	refused("env that is not an array", "{\"husk_metadata\": 1, \"env\": \"A=1\"}",
		"field 'env': expected an array of strings, got a string");
	refused("env with a number", "{\"husk_metadata\": 1, \"env\": [\"A=1\", 2]}",
		"field 'env[1]': expected a string, got an integer");
	refused("env without '='", "{\"husk_metadata\": 1, \"env\": [\"NOVALUE\"]}",
		"field 'env[0]': expected NAME=VALUE");
	refused("env with a bad name", "{\"husk_metadata\": 1, \"env\": [\"A-B=1\"]}",
		"field 'env[0]'");
	refused("labels that are an array", "{\"husk_metadata\": 1, \"labels\": [\"a\"]}",
		"field 'labels': expected an object of strings, got an array");
	refused("a label that is a number", "{\"husk_metadata\": 1, \"labels\": {\"n\": 1}}",
		"field 'labels.n': expected a string, got an integer");
	refused("entrypoint as a string", "{\"husk_metadata\": 1, \"entrypoint\": \"/bin/sh\"}",
		"field 'entrypoint': expected an array of strings, got a string");
	refused("cmd with a boolean", "{\"husk_metadata\": 1, \"cmd\": [\"echo\", true]}",
		"field 'cmd[1]': expected a string, got a boolean");
	refused("cmd with a NUL", "{\"husk_metadata\": 1, \"cmd\": [\"a\\u0000b\"]}",
		"field 'cmd[0]'");
	refused("workdir as a number", "{\"husk_metadata\": 1, \"workdir\": 5}",
		"field 'workdir': expected a string, got an integer");
	refused("a relative workdir", "{\"husk_metadata\": 1, \"workdir\": \"work\"}",
		"field 'workdir': 'work' is not an absolute path");
	refused("build as a string", "{\"husk_metadata\": 1, \"build\": \"yesterday\"}",
		"field 'build': expected an object");
	refused("source_date_epoch as a string",
		"{\"husk_metadata\": 1, \"build\": {\"source_date_epoch\": \"1700000000\"}}",
		"field 'build.source_date_epoch': expected an integer, got a string");
	refused("a tool version as a number",
		"{\"husk_metadata\": 1, \"build\": {\"tools\": {\"mksquashfs\": 4.5}}}",
		"field 'build.tools.mksquashfs': expected a string, got a number");
	refused("an input without a string",
		"{\"husk_metadata\": 1, \"build\": {\"inputs\": [{\"what\": 1}]}}",
		"field 'build.inputs[0].what'");
	refused("source.sha256 as a number",
		"{\"husk_metadata\": 1, \"build\": {\"source\": {\"sha256\": 12}}}",
		"field 'build.source.sha256': expected a string or null");

	/* The version. */
	refused("a format too new", "{\"husk_metadata\": 2, \"cmd\": [\"true\"]}",
		"format version 2, and this husk");
	refused("a much newer format", "{\"husk_metadata\": 99}", "use a newer husk");
	refused("version 0", "{\"husk_metadata\": 0}", "version 0 does not exist");
	refused("no version", "{\"cmd\": [\"true\"]}", "field 'husk_metadata' is missing");
	refused("a version as a string", "{\"husk_metadata\": \"1\"}",
		"field 'husk_metadata': expected an integer, got a string");
	refused("a version as a fraction", "{\"husk_metadata\": 1.5}",
		"field 'husk_metadata': expected an integer, got a number");

	/* Not JSON, or not an object. */
	refused("not JSON", "husk_metadata = 1\n", "is not valid JSON");
	refused("cut short", "{\"husk_metadata\": 1, \"cmd\": [\"a\"", "is not valid JSON");
	refused("text after the object", "{\"husk_metadata\": 1} {}", "is not valid JSON");
	refused("an array at the top", "[1, 2]", "expected an object, got an array");
	refused("an empty file", "", "is not valid JSON");

	/* A directory where the file should be is an error, not "no metadata". */
	put_meta(NULL);
	snprintf(dir, sizeof(dir), "%s/.husk/metadata.json", root);
	mkdir(dir, 0755);
	r = read_meta(&m, &err);
	CHECK("metadata.json as a directory is an error", r == -1 &&
		strstr(err.msg, "/.husk/metadata.json"));
	husk_meta_free(&m);
	rmdir(dir);

	snprintf(dir, sizeof(dir), "rm -rf '%s'", root);
	if (system(dir) != 0)
		printf("# could not remove %s\n", root);
	return unit_done();
}
