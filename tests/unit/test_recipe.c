/* test_recipe.c: the recipe language of husk build. */
#include "husk_config.h"
#include "husk.h"
#include "unit.h"

static int parse(const char *text, struct husk_recipe *r, struct husk_err *err)
{
	return husk_recipe_parse(text, strlen(text), "test", r, err);
}

static void bad(const char *text, const char *needle)
{
	struct husk_recipe r;
	struct husk_err err = { 0 };
	char name[256];
	int rc = parse(text, &r, &err);

	snprintf(name, sizeof(name), "reject: %s", needle);
	CHECK(name, rc == -1 && strstr(err.msg, needle));
	if (rc == 0 || !strstr(err.msg, needle))
		printf("# message: %s\n", err.msg);
	husk_recipe_free(&r);
}

static void words(const char *args, const struct husk_env *env, const char *want_joined)
{
	char **w = NULL;
	struct husk_err err = { 0 };
	char got[1024] = "";
	char name[300];

	if (husk_recipe_words(args, env, &w, &err) < 0) {
		snprintf(got, sizeof(got), "error: %.900s", err.msg);
	} else {
		for (char **p = w; *p; p++) {
			strncat(got, "<", sizeof(got) - strlen(got) - 1);
			strncat(got, *p, sizeof(got) - strlen(got) - 1);
			strncat(got, ">", sizeof(got) - strlen(got) - 1);
		}
		husk_strv_free(w);
	}
	snprintf(name, sizeof(name), "words of [%s]", args);
	CHECK_STR(name, got, want_joined);
}

int main(void)
{
	struct husk_recipe r;
	struct husk_err err = { 0 };
	struct husk_env env;
	char **argv = NULL;
	bool exec_form;

	CHECK("a recipe parses", parse("# comment\n\nfrom debian:bookworm\n"
		"RUN apt-get update && \\\n    apt-get install -y gcc\n"
		"  # indented comment\n"
		"ENV A=1 \\\n# a comment inside a continuation\n    B=2\r\n"
		"CMD [\"/bin/sh\"]", &r, &err) == 0);
	CHECK("four instructions", r.n == 4);
	CHECK("FROM is case-insensitive", r.n > 0 && r.steps[0].kind == HUSK_I_FROM);
	CHECK("FROM line number", r.n > 0 && r.steps[0].line == 3);
	CHECK_STR("continuation joined with one space", r.n > 1 ? r.steps[1].args : NULL,
		"apt-get update && apt-get install -y gcc");
	CHECK("RUN starts on line 4", r.n > 1 && r.steps[1].line == 4);
	CHECK_STR("comment inside a continuation dropped, CR stripped", r.n > 2 ? r.steps[2].args :
		NULL, "A=1 B=2");
	CHECK("ENV starts on line 7", r.n > 2 && r.steps[2].line == 7);
	husk_recipe_free(&r);

	CHECK("WARM parses, with its command kept whole",
		parse("FROM scratch\nwarm python3 -c 'import numpy'\n", &r, &err) == 0 && r.n == 2 &&
		r.steps[1].kind == HUSK_I_WARM && !strcmp(r.steps[1].args, "python3 -c 'import numpy'") &&
		!strcmp(husk_instr_name(HUSK_I_WARM), "WARM"));
	husk_recipe_free(&r);

	bad("FROM scratch\nFROBNICATE x\n", "line 2: unknown instruction 'FROBNICATE'");
	bad("FROM scratch\nADD a /b\n", "line 2: instruction 'ADD' is not supported");
	bad("FROM scratch\nUSER nobody\n", "'USER' is not supported");
	bad("RUN true\n", "line 1: RUN before FROM");
	bad("FROM a\nFROM b\n", "line 2: a second FROM");
	bad("FROM scratch\nRUN\n", "line 2: RUN needs an argument");
	bad("# only a comment\n", "no instructions");
	{
		static const char bin[] = "FROM scratch\n\0RUN x\n";
		CHECK("reject: binary data", husk_recipe_parse(bin, sizeof(bin) - 1, "test", &r,
			&err) == -1 && strstr(err.msg, "binary data"));
		husk_recipe_free(&r);
	}

	husk_env_init(&env);
	husk_env_set(&env, "X", "ex");
	husk_env_set(&env, "SP", "a b");
	words("a b  c", NULL, "<a><b><c>");
	words("\"a b\" 'c d' e\\ f", NULL, "<a b><c d><e f>");
	words("K=\"v w\" L='$X'", &env, "<K=v w><L=$X>");
	words("$X ${X}y \"$X\" $NOPE. $", &env, "<ex><exy><ex><.><$>");
	words("\"$SP\" $SP", &env, "<a b><a b>");
	words("'' \"\"", NULL, "<><>");
	words("\"open", NULL, "error: unterminated quote in '\"open'; close it or escape it "
		"with a backslash");

	CHECK("shell form", husk_recipe_argv("echo hi && true", &argv, &exec_form, &err) == 0 &&
		!exec_form && !strcmp(argv[0], "/bin/sh") && !strcmp(argv[1], "-c") &&
		!strcmp(argv[2], "echo hi && true") && !argv[3]);
	husk_strv_free(argv);
	CHECK("exec form", husk_recipe_argv("[\"make\", \"-j4\"]", &argv, &exec_form, &err) == 0 &&
		exec_form && !strcmp(argv[0], "make") && !strcmp(argv[1], "-j4") && !argv[2]);
	husk_strv_free(argv);
	CHECK("exec form with a number is refused",
		husk_recipe_argv("[\"sleep\", 3]", &argv, &exec_form, &err) == -1 &&
		strstr(err.msg, "element 2 is not a string"));
	CHECK("an empty exec form is refused",
		husk_recipe_argv("[]", &argv, &exec_form, &err) == -1);
	CHECK("broken JSON is refused",
		husk_recipe_argv("[\"a\"", &argv, &exec_form, &err) == -1 &&
		strstr(err.msg, "not a JSON array"));
	husk_env_free(&env);
	return unit_done();
}
