/* test_sigrelay.c: a signal that Slurm's slurmstepd sent to the whole job
 * step reaches the command once (lib/sigrelay.c), whichever copy the
 * supervisor sees first; the PMIx directories bound for a launcher
 * (lib/launcher.c). */
#include "husk_config.h"
#include "ns.h"
#include "unit.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static void test_relay(void)
{
	struct husk_relay_state st;
	struct husk_relay plain = { SIGTERM, 0 }, marked = { SIGTERM, 4242 };
	int t;

	husk_relay_init(&st);
	CHECK("an ordinary relayed signal is passed on at once",
		husk_relay_received(&st, &plain, 0) == SIGTERM);
	t = -1;
	CHECK("nothing is pending after it", husk_relay_due(&st, 1, &t) == 0 && t == -1);

	husk_relay_init(&st);
	husk_relay_direct(&st, SIGTERM, 4242, 0);
	CHECK("slurmstepd's direct copy first: the relayed copy is dropped",
		husk_relay_received(&st, &marked, 1) == 0);
	t = -1;
	CHECK("... and nothing is pending", husk_relay_due(&st, 1000, &t) == 0 && t == -1);

	husk_relay_init(&st);
	CHECK("a relayed copy from slurmstepd first waits", husk_relay_received(&st, &marked, 0) == 0);
	t = -1;
	CHECK("... with a timeout", husk_relay_due(&st, 10, &t) == 0 && t > 0 && t <= 300);
	husk_relay_direct(&st, SIGTERM, 4242, 20);
	t = -1;
	CHECK("... and is dropped when the direct copy comes", husk_relay_due(&st, 1000, &t) == 0 && t == -1);

	husk_relay_init(&st);
	husk_relay_received(&st, &marked, 0);
	t = -1;
	CHECK("a slurmstepd that signalled husk alone: passed on after the wait",
		husk_relay_due(&st, 400, &t) == SIGTERM);
	t = -1;
	CHECK("... once", husk_relay_due(&st, 800, &t) == 0 && t == -1);

	husk_relay_init(&st);
	husk_relay_direct(&st, SIGTERM, 4242, 0);
	CHECK("a direct copy too old pairs with nothing", husk_relay_received(&st, &marked, 5000) == 0);
	t = -1;
	CHECK("... so the relayed one waits and is passed on", husk_relay_due(&st, 5400, &t) == SIGTERM);

	husk_relay_init(&st);
	husk_relay_direct(&st, SIGUSR1, 4242, 0);
	CHECK("a direct copy of another signal does not count",
		husk_relay_received(&st, &marked, 1) == 0);
	t = -1;
	CHECK("... so the relayed one is passed on after the wait", husk_relay_due(&st, 400, &t) == SIGTERM);
}

static void test_launcher_dirs(void)
{
	char *d[4];
	int n;
	char tmpl[] = "/tmp/husk-unit-pmix.XXXXXX";
	char *dir = mkdtemp(tmpl);

	unsetenv("PMIX_SERVER_TMPDIR");
	unsetenv("PMIX_SYSTEM_TMPDIR");
	CHECK("no PMIx: no directory", husk_launcher_dirs(d, 4) == 0);
	setenv("PMIX_SERVER_TMPDIR", dir ? dir : "/nonexistent", 1);
	setenv("PMIX_SYSTEM_TMPDIR", "/tmp", 1);
	n = husk_launcher_dirs(d, 4);
	CHECK("PMIX_SERVER_TMPDIR is bound, /tmp is not again", n == 1 && dir && !strcmp(d[0], dir));
	while (n > 0)
		free(d[--n]);
	setenv("PMIX_SYSTEM_TMPDIR", "relative/dir", 1);
	setenv("PMIX_SERVER_TMPDIR", "/nonexistent/husk-unit", 1);
	CHECK("relative or missing directories are ignored", husk_launcher_dirs(d, 4) == 0);
	if (dir)
		rmdir(dir);
}

int main(void)
{
	test_relay();
	test_launcher_dirs();
	return unit_done();
}
