/* cmd_inspect.c: `husk inspect`: what an image is (path, kind, size,
 * digest) and what it says about itself (/.husk/metadata.json), for people
 * or, with --json, for programs. */
#include "husk_config.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { OPT_JSON = 256, OPT_HELP };

static const struct option inspect_opts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

void help_inspect(void)
{
	printf("Usage: husk inspect [--json] IMAGE\n\n"
	       "Describe IMAGE: its absolute path, kind (SquashFS file or directory),\n"
	       "size and SHA-256 digest (image files only), and what its\n"
	       "/.husk/metadata.json says: entrypoint, cmd, workdir, environment,\n"
	       "labels and how it was built. An image without metadata is fine.\n\n"
	       "Options:\n"
	       "      --json                    one JSON object: \"path\", \"kind\" (\"squashfs\"\n"
	       "                                or \"directory\"), \"size\" (bytes, or null),\n"
	       "                                \"digest\" (\"sha256:HEX\", or null) and \"metadata\"\n"
	       "                                (the metadata.json object, or null)\n"
	       "  -v, --verbose                 say more\n"
	       "  -q, --quiet                   no warnings\n"
	       "      --help                    this text\n\n"
	       "Exit status: 0; 125 if husk failed (no such image, a malformed image or\n"
	       "metadata file).\n");
}

/* What inspect found out. */
struct facts {
	struct husk_image img;
	long long size;           /* -1 for a directory */
	char digest[65];          /* "" for a directory */
	struct husk_meta meta;
	json_object *meta_obj;    /* metadata.json parsed, or NULL */
};

static int gather(const char *path, struct facts *f, struct husk_err *err)
{
	struct stat st;
	int r;

	memset(f, 0, sizeof(*f));
	f->size = -1;
	if (husk_image_open(&f->img, path, err) < 0)
		return -1;
	if (f->img.kind == HUSK_IMAGE_SQUASHFS) {
		if (fstat(f->img.fd, &st) < 0)
			return husk_err_set(err, errno, "image '%s'", path);
		f->size = (long long)st.st_size;
		if (husk_image_digest(f->img.fd, path, f->digest, err) < 0)
			return -1;
	}
	if ((r = husk_meta_read(&f->img, &f->meta, err)) < 0)
		return -1;
	/* Already checked by husk_meta_read: this parse cannot fail but on memory. */
	if (r == 0 && !(f->meta_obj = json_tokener_parse(f->meta.json)))
		return husk_err_set(err, ENOMEM, "image '%s': metadata", path);
	return 0;
}

static void facts_free(struct facts *f)
{
	json_object_put(f->meta_obj);
	husk_meta_free(&f->meta);
	husk_image_close(&f->img);
}

static int print_json(struct facts *f)
{
	json_object *o = json_object_new_object();
	const char *text;
	char digest[80];

	snprintf(digest, sizeof(digest), "sha256:%s", f->digest);
	json_object_object_add(o, "path", json_object_new_string(f->img.path));
	json_object_object_add(o, "kind", json_object_new_string(
		f->img.kind == HUSK_IMAGE_SQUASHFS ? "squashfs" : "directory"));
	json_object_object_add(o, "size", f->size < 0 ? NULL : json_object_new_int64(f->size));
	json_object_object_add(o, "digest", f->digest[0] ? json_object_new_string(digest) : NULL);
	json_object_object_add(o, "metadata", json_object_get(f->meta_obj));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
		JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text) {
		json_object_put(o);
		fprintf(stderr, "husk: inspect: out of memory\n");
		return HUSK_EXIT_FAILURE;
	}
	printf("%s\n", text);
	json_object_put(o);
	return 0;
}

/* A scalar as people read it: strings bare, null as "none". */
static const char *scalar(json_object *v)
{
	if (!v)
		return "none";
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

/* An object as indented "key: value" lines; arrays as "- item" lines, an
 * object item on one line. */
static void print_tree(const char *key, json_object *v, int indent)
{
	if (json_object_is_type(v, json_type_object)) {
		printf("%*s%s:\n", indent, "", key);
		json_object_object_foreach(v, k, val)
			print_tree(k, val, indent + 2);
	} else if (json_object_is_type(v, json_type_array)) {
		printf("%*s%s:%s\n", indent, "", key, json_object_array_length(v) ? "" : " none");
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *item = json_object_array_get_idx(v, i);
			const char *sep = "";
			printf("%*s- ", indent + 2, "");
			if (!json_object_is_type(item, json_type_object)) {
				printf("%s\n", scalar(item));
				continue;
			}
			json_object_object_foreach(item, k, val) {
				printf("%s%s: %s", sep, k, scalar(val));
				sep = ", ";
			}
			printf("\n");
		}
	} else {
		printf("%*s%s: %s\n", indent, "", key, scalar(v));
	}
}

/* A command line as a JSON array, so spaces and quotes stay unambiguous. */
static void print_argv(const char *label, char **v)
{
	printf("  %-11s ", label);
	if (!v) {
		printf("none\n");
		return;
	}
	printf("[");
	for (char **a = v; *a; a++) {
		json_object *s = json_object_new_string(*a);
		printf("%s%s", a == v ? "" : ", ", json_object_to_json_string_ext(s,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(s);
	}
	printf("]\n");
}

static void print_list(const char *label, char **v)
{
	printf("  %s:%s\n", label, v && *v ? "" : " none");
	for (; v && *v; v++)
		printf("    %s\n", *v);
}

static int print_human(struct facts *f)
{
	json_object *build = NULL;

	printf("path:     %s\n", f->img.path);
	if (f->img.kind == HUSK_IMAGE_SQUASHFS) {
		printf("kind:     SquashFS image file\n");
		printf("size:     %lld bytes (%.1f MiB)\n", f->size, (double)f->size / (1 << 20));
		printf("digest:   sha256:%s\n", f->digest);
	} else {
		printf("kind:     directory\n");
		printf("size:     none (a directory)\n");
		printf("digest:   none (only an image file has a digest)\n");
	}
	if (!f->meta_obj) {
		printf("metadata: none (the image has no /.husk/metadata.json)\n");
		return 0;
	}
	printf("metadata: /.husk/metadata.json\n");
	print_argv("entrypoint:", f->meta.entrypoint);
	print_argv("cmd:", f->meta.cmd);
	printf("  %-11s %s\n", "workdir:", f->meta.workdir ? f->meta.workdir : "none");
	print_list("env", f->meta.env);
	print_list("labels", f->meta.labels);
	if (json_object_object_get_ex(f->meta_obj, "build", &build) &&
	    json_object_is_type(build, json_type_object))
		print_tree("build", build, 2);
	else
		printf("  build: none\n");
	return 0;
}

int cmd_inspect(int argc, char **argv)
{
	struct husk_err err = { 0 };
	struct facts f;
	bool json = false, quiet = false;
	int c, verbosity = 0, status;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":vq", inspect_opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON: json = true; break;
		case 'v': verbosity++; break;
		case 'q': quiet = true; break;
		case OPT_HELP:
			help_inspect();
			return 0;
		default:
			if (optopt && optopt < 256)
				return cli_usage_error("inspect", "unknown option '-%c'", optopt);
			return cli_usage_error("inspect", "unknown option '%s'", argv[optind - 1]);
		}
	}
	cli_log_setup(verbosity, quiet);
	if (optind >= argc)
		return cli_usage_error("inspect", "no image given");
	if (optind + 1 < argc)
		return cli_usage_error("inspect", "one image at a time ('%s' is one too many)",
			argv[optind + 1]);
	if (gather(argv[optind], &f, &err) < 0) {
		facts_free(&f);
		return cli_fail(&err);
	}
	status = json ? print_json(&f) : print_human(&f);
	facts_free(&f);
	return status;
}
