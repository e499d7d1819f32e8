/* image_arg.c: the IMAGE argument of run, shell, verify: a path, optionally
 * pinned to a content digest with "@sha256:" and 64 lowercase hex digits. A
 * path may itself contain '@'; only a last '@' followed by "sha256:" starts
 * a digest. */
#include "husk_config.h"
#include "cli.h"

#include <stdlib.h>
#include <string.h>

bool cli_is_sha256_hex(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return n == 64 && s[n] == '\0';
}

int cli_split_pin(const char *arg, const char *cmd, char **path, char **digest)
{
	const char *at = strrchr(arg, '@');

	*digest = NULL;
	if (!at || strncmp(at + 1, "sha256:", 7)) {
		if (!(*path = strdup(arg)))
			return -1;
		return 0;
	}
	if (at == arg) {
		cli_usage_error(cmd, "'%s': no image before '@'", arg);
		return -1;
	}
	if (!cli_is_sha256_hex(at + 8)) {
		cli_usage_error(cmd, "image '%s': '%s' is not a SHA-256 digest; write "
			"IMAGE@sha256: followed by 64 lowercase hex digits", arg, at + 1);
		return -1;
	}
	if (!(*path = strndup(arg, (size_t)(at - arg))) || !(*digest = strdup(at + 8))) {
		free(*path);
		return -1;
	}
	return 0;
}
