/* cli.h: what the husk command's files share. Only bin/ prints and exits. */
#ifndef HUSK_CLI_H
#define HUSK_CLI_H

#include "husk.h"

/* report.c */
void cli_log_setup(int verbosity, bool quiet);
/* Print "husk: MSG" (with file:line at -v) and repeated warnings; return status. */
int cli_fail(const struct husk_err *err);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_repeat_warnings(void);

/* cmd_run.c */
int cmd_run(int argc, char **argv, bool shell);
void help_run(bool shell);

/* cmd_build.c */
int cmd_build(int argc, char **argv);
void help_build(void);

#endif
