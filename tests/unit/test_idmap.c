/* test_idmap.c: the text of uid_map/gid_map. */
#include "husk_config.h"
#include "husk.h"
#include "unit.h"

int main(void)
{
	char buf[64];
	struct husk_idmap_extent ext[4];
	int n;

	CHECK("idmap line for an ordinary user", husk_idmap_line(buf, sizeof(buf), 1000, 1000) > 0 &&
		!strcmp(buf, "1000 1000 1\n"));
	CHECK("idmap line for fake root", husk_idmap_line(buf, sizeof(buf), 0, 4242) > 0 &&
		!strcmp(buf, "0 4242 1\n"));
	CHECK("idmap line refuses a small buffer", husk_idmap_line(buf, 5, 1000, 1000) == -1);
	CHECK("idmap line for the largest id",
		husk_idmap_line(buf, sizeof(buf), 4294967294u, 4294967294u) > 0 &&
		!strcmp(buf, "4294967294 4294967294 1\n"));

	n = husk_idmap_parse("         0          0 4294967295\n", ext, 4);
	CHECK("parse the initial namespace's map", n == 1 && ext[0].inside == 0 &&
		ext[0].outside == 0 && ext[0].count == 4294967295u);
	n = husk_idmap_parse("0 1000 1\n1 100000 65536\n", ext, 4);
	CHECK("parse two extents", n == 2 && ext[1].inside == 1 && ext[1].outside == 100000 &&
		ext[1].count == 65536);
	CHECK("parse an empty map", husk_idmap_parse("", ext, 4) == 0);
	CHECK("reject a missing field", husk_idmap_parse("0 1000\n", ext, 4) == -1);
	CHECK("reject garbage", husk_idmap_parse("0 x 1\n", ext, 4) == -1);
	CHECK("reject a zero count", husk_idmap_parse("0 1000 0\n", ext, 4) == -1);
	CHECK("reject a trailing field", husk_idmap_parse("0 1000 1 7\n", ext, 4) == -1);
	CHECK("reject too many extents", husk_idmap_parse("0 1 1\n1 2 1\n2 3 1\n", ext, 2) == -1);
	CHECK("reject an id above 32 bits", husk_idmap_parse("0 4294967296 1\n", ext, 4) == -1);
	return unit_done();
}
