/* error.c: filling a struct husk_err. Messages name the object in quotes,
 * then the cause (errno text), then the fix after "; ". */
#include "husk_config.h"
#include "husk.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int husk_err_set_(struct husk_err *err, const char *file, int line, int errnum,
	const char *fmt, ...)
{
	va_list ap;
	size_t n;

	if (!err)
		return -1;
	err->errnum = errnum;
	err->status = HUSK_EXIT_FAILURE;
	err->file = file;
	err->line = line;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	if (errnum && n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
	return -1;
}

void husk_err_hint(struct husk_err *err, const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(err->msg);

	if (n + 2 >= sizeof(err->msg))
		return;
	strcpy(err->msg + n, "; ");
	n += 2;
	va_start(ap, fmt);
	vsnprintf(err->msg + n, sizeof(err->msg) - n, fmt, ap);
	va_end(ap);
}
