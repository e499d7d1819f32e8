/* idmap.c: the text of /proc/PID/uid_map and gid_map. */
#include "husk_config.h"
#include "husk.h"

#include <stdio.h>
#include <stdlib.h>

int husk_idmap_line(char *buf, size_t size, unsigned inside, unsigned outside)
{
	int n = snprintf(buf, size, "%u %u 1\n", inside, outside);
	return (n < 0 || (size_t)n >= size) ? -1 : n;
}

int husk_idmap_parse(const char *text, struct husk_idmap_extent *out, int max)
{
	int n = 0;
	const char *p = text;

	while (*p) {
		char *end;
		unsigned long v[3];
		int i;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			break;
		for (i = 0; i < 3; i++) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p < '0' || *p > '9')
				return -1;
			v[i] = strtoul(p, &end, 10);
			if (v[i] > 0xffffffffUL)
				return -1;
			p = end;
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p && *p != '\n')
			return -1;
		if (n >= max)
			return -1;
		out[n].inside = (unsigned)v[0];
		out[n].outside = (unsigned)v[1];
		out[n].count = (unsigned)v[2];
		if (out[n].count == 0)
			return -1;
		n++;
	}
	return n;
}
