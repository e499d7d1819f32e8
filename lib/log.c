/* log.c: the log sink. libhusk reports progress and warnings through a
 * function the command installs; without one, nothing is printed. */
#include "husk_config.h"
#include "husk.h"

#include <stdarg.h>
#include <stdio.h>

static husk_log_fn log_sink;     /* set once by the command before any work */
static int log_verbosity;

void husk_log_set(husk_log_fn sink, int verbosity)
{
	log_sink = sink;
	log_verbosity = verbosity;
}

int husk_log_verbosity(void)
{
	return log_verbosity;
}

void husk_log_(enum husk_log_level level, const char *file, int line, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (!log_sink || (int)level > log_verbosity)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_sink(level, file, line, msg);
}
