/* test_bindspec.c: bind specifications and path normalisation. */
#include "husk_config.h"
#include "husk.h"
#include "unit.h"

#include <stdlib.h>

static void norm(const char *in, const char *want)
{
	char name[256];
	char *got = husk_path_normalize(in);

	snprintf(name, sizeof(name), "normalize '%s'", in);
	CHECK_STR(name, got, want);
	free(got);
}

static void parse_ok(const char *spec, const char *src, const char *dst, int ro)
{
	struct husk_bind b;
	struct husk_err err = { 0 };
	char name[256];
	int r = husk_bind_parse(spec, "/data/run", &b, &err);

	snprintf(name, sizeof(name), "bind '%s' parses", spec);
	CHECK(name, r == 0);
	if (r != 0) {
		printf("# error: %s\n", err.msg);
		return;
	}
	snprintf(name, sizeof(name), "bind '%s' source", spec);
	CHECK_STR(name, b.src, src);
	snprintf(name, sizeof(name), "bind '%s' destination", spec);
	CHECK_STR(name, b.dst, dst);
	snprintf(name, sizeof(name), "bind '%s' read-only flag", spec);
	CHECK(name, b.ro == ro);
	husk_bind_free(&b);
}

static void parse_bad(const char *spec, const char *needle)
{
	struct husk_bind b;
	struct husk_err err = { 0 };
	char name[256];
	int r = husk_bind_parse(spec, "/data/run", &b, &err);

	snprintf(name, sizeof(name), "bind '%s' is rejected", spec);
	CHECK(name, r == -1);
	snprintf(name, sizeof(name), "bind '%s' error names the problem", spec);
	CHECK(name, r == -1 && strstr(err.msg, needle) && strstr(err.msg, spec));
	if (r == 0)
		husk_bind_free(&b);
}

int main(void)
{
	norm("/", "/");
	norm("//a///b/", "/a/b");
	norm("/a/./b/.", "/a/b");
	norm("/a/b/../c", "/a/c");
	norm("/../../x", "/x");
	norm("/a/..", "/");
	norm("/a/b/../../..", "/");
	CHECK("normalize rejects a relative path", husk_path_normalize("a/b") == NULL);

	parse_ok("/data", "/data", "/data", 0);
	parse_ok("/data:/mnt/d", "/data", "/mnt/d", 0);
	parse_ok("/data:/mnt/d:ro", "/data", "/mnt/d", 1);
	parse_ok("/data:/mnt/d:rw", "/data", "/mnt/d", 0);
	parse_ok("/data::ro", "/data", "/data", 1);
	parse_ok("rel/x", "/data/run/rel/x", "/data/run/rel/x", 0);
	parse_ok("../up:/in", "/data/up", "/in", 0);
	parse_ok("/a//b/:/c/./d/", "/a/b", "/c/d", 0);
	parse_ok("/x:/y/../../z", "/x", "/z", 0);

	parse_bad("", "empty source");
	parse_bad(":/x", "empty source");
	parse_bad("/data:rel", "not absolute");
	parse_bad("/data:/x:rx", "unknown option");
	parse_bad("/data:/", "root");
	parse_bad("/data:/a/..", "root");
	return unit_done();
}
