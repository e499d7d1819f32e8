/* report.c: turning libhusk's errors and log messages into output. Errors are
 * one line on stderr starting with "husk: "; at -v, file:line and timing are
 * added. Warnings are repeated when husk exits, because the output of many
 * MPI ranks interleaves and a warning at start-up scrolls away. */
#include "husk_config.h"
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_REPEAT 16

static int verbosity;
static bool quiet;
static char *warnings[MAX_REPEAT];
static int n_warnings;
static pid_t warn_pid;

static void sink(enum husk_log_level level, const char *file, int line, const char *msg)
{
	if (level == HUSK_LOG_WARN) {
		if (quiet)
			return;
		fprintf(stderr, "husk: warning: %s\n", msg);
		if (n_warnings < MAX_REPEAT && warn_pid == getpid())
			warnings[n_warnings++] = strdup(msg);
		return;
	}
	if (verbosity >= 2)
		fprintf(stderr, "husk[%d] %s:%d: %s\n", (int)getpid(), file, line, msg);
	else
		fprintf(stderr, "husk[%d]: %s\n", (int)getpid(), msg);
}

void cli_log_setup(int v, bool q)
{
	verbosity = v;
	quiet = q;
	warn_pid = getpid();
	husk_log_set(sink, q ? -1 : v);
}

void cli_repeat_warnings(void)
{
	if (n_warnings == 0 || getpid() != warn_pid)
		return;
	/* Only worth repeating when something else may have been printed since. */
	for (int i = 0; i < n_warnings; i++)
		fprintf(stderr, "husk: warning (repeated): %s\n", warnings[i]);
}

int cli_fail(const struct husk_err *err)
{
	if (verbosity > 0 && err->file)
		fprintf(stderr, "husk: %s (%s:%d)\n", err->msg, err->file, err->line);
	else
		fprintf(stderr, "husk: %s\n", err->msg);
	return err->status ? err->status : HUSK_EXIT_FAILURE;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "husk: %s; see 'husk help %s'\n", msg, cmd);
	return HUSK_EXIT_FAILURE;
}
