/* test_env.c: environment lists and environment files. */
#include "husk_config.h"
#include "husk.h"
#include "unit.h"

static int parse(struct husk_env *env, const char *text, struct husk_err *err)
{
	return husk_env_parse(env, text, strlen(text), "test file", err);
}

static void bad(const char *text, const char *needle)
{
	struct husk_env env;
	struct husk_err err = { 0 };
	char name[256];
	int r;

	husk_env_init(&env);
	r = parse(&env, text, &err);
	snprintf(name, sizeof(name), "reject %s", needle);
	CHECK(name, r == -1 && strstr(err.msg, "test file line") && strstr(err.msg, needle));
	if (r == 0 || !strstr(err.msg, needle))
		printf("# message: %s\n", err.msg);
	husk_env_free(&env);
}

int main(void)
{
	struct husk_env env;
	struct husk_err err = { 0 };

	husk_env_init(&env);
	husk_env_set(&env, "A", "1");
	husk_env_set(&env, "B", "2");
	husk_env_set(&env, "A", "3");
	CHECK("set replaces in place", env.n == 2 && !strcmp(env.vars[0], "A=3") &&
		!strcmp(env.vars[1], "B=2") && env.vars[2] == NULL);
	husk_env_unset(&env, "A");
	CHECK("unset removes and keeps order", env.n == 1 && !strcmp(env.vars[0], "B=2") &&
		env.vars[1] == NULL);
	CHECK_STR("get", husk_env_get(&env, "B"), "2");
	CHECK("get a missing name", husk_env_get(&env, "NOPE") == NULL);
	CHECK("get does not match a prefix", husk_env_get(&env, "") == NULL);
	husk_env_free(&env);

	husk_env_init(&env);
	husk_env_set(&env, "PATH", "/usr/bin:/bin");
	husk_env_set(&env, "HOME", "/home/u");
	CHECK("parse a file", parse(&env,
		"# a comment\n"
		"\n"
		"PLAIN=value\n"
		"export EXPORTED=yes\n"
		"  INDENTED=ok   # trailing comment\n"
		"SQ='$HOME stays literal'\n"
		"DQ=\"spaces and $HOME\"\n"
		"PATH=/opt/app/bin:$PATH\n"
		"BRACED=${HOME}/data\n"
		"ESC=\\$HOME\n"
		"EMPTY=\n"
		"MISSING=[$NOPE]\n"
		"EQ=a=b\n"
		"CRLF=dos\r\n"
		"LAST=no-newline", &err) == 0);
	CHECK_STR("plain value", husk_env_get(&env, "PLAIN"), "value");
	CHECK_STR("export prefix", husk_env_get(&env, "EXPORTED"), "yes");
	CHECK_STR("indentation and comment", husk_env_get(&env, "INDENTED"), "ok");
	CHECK_STR("single quotes are literal", husk_env_get(&env, "SQ"), "$HOME stays literal");
	CHECK_STR("double quotes expand", husk_env_get(&env, "DQ"), "spaces and /home/u");
	CHECK_STR("expansion of an earlier value", husk_env_get(&env, "PATH"),
		"/opt/app/bin:/usr/bin:/bin");
	CHECK_STR("braced expansion", husk_env_get(&env, "BRACED"), "/home/u/data");
	CHECK_STR("escaped dollar", husk_env_get(&env, "ESC"), "$HOME");
	CHECK_STR("empty value", husk_env_get(&env, "EMPTY"), "");
	CHECK_STR("unset expands to nothing", husk_env_get(&env, "MISSING"), "[]");
	CHECK_STR("equals sign in value", husk_env_get(&env, "EQ"), "a=b");
	CHECK_STR("CRLF line ending", husk_env_get(&env, "CRLF"), "dos");
	CHECK_STR("last line without newline", husk_env_get(&env, "LAST"), "no-newline");
	husk_env_free(&env);

	bad("GOOD=1\nnot an assignment\n", "line 2");
	bad("1BAD=x\n", "NAME=VALUE");
	bad("A-B=x\n", "NAME=VALUE");
	bad("Q='open\n", "unterminated single quote");
	bad("Q=\"open\n", "unterminated double quote");
	bad("S=two words\n", "unquoted space");
	bad("B=${unclosed\n", "bad ${...}");

	CHECK("clean env keeps SLURM_*", husk_env_keep_clean("SLURM_JOB_ID=1"));
	CHECK("clean env keeps PMIX_*", husk_env_keep_clean("PMIX_RANK=0"));
	CHECK("clean env keeps PMI_FD", husk_env_keep_clean("PMI_FD=5"));
	CHECK("clean env keeps OMPI_*", husk_env_keep_clean("OMPI_COMM_WORLD_RANK=0"));
	CHECK("clean env keeps HOME", husk_env_keep_clean("HOME=/h"));
	CHECK("clean env keeps LC_*", husk_env_keep_clean("LC_ALL=C"));
	CHECK("clean env drops LD_LIBRARY_PATH", !husk_env_keep_clean("LD_LIBRARY_PATH=/x"));
	CHECK("clean env drops PATH", !husk_env_keep_clean("PATH=/x"));
	CHECK("clean env drops HOMEX", !husk_env_keep_clean("HOMEX=1"));
	CHECK("clean env drops HUSK_BIND", !husk_env_keep_clean("HUSK_BIND=/x"));
	CHECK("clean env drops DISPLAY", !husk_env_keep_clean("DISPLAY=:0"));
	CHECK("clean env keeps MPI_LOCALRANKID", husk_env_keep_clean("MPI_LOCALRANKID=0"));
	CHECK("name check accepts _X1", husk_env_name_ok("_X1", 3));
	CHECK("name check rejects empty", !husk_env_name_ok("", 0));
	return unit_done();
}
