/* launcher.c: what a job launcher's tasks need to see of the host.
 *
 * Under `srun --mpi=pmix` (and PMIx launchers generally) a task connects to
 * the PMIx server of its node through a rendezvous directory named by
 * PMIX_SERVER_TMPDIR; Slurm puts it in the slurmd spool directory
 * (SlurmdSpoolDir/pmix.JOB.STEP), typically /var/spool/slurmd, which the
 * image hides. PMIX_SYSTEM_TMPDIR names the system-level one. These are
 * bound at the same path inside, read-write (the client creates files
 * there). Slurm's PMI-2 channel is a file descriptor (PMI_FD), which husk
 * passes through as it passes every inherited descriptor. */
#include "husk_config.h"
#include "husk.h"
#include "ns.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int husk_launcher_dirs(char **out, int max)
{
	static const char *const vars[] = { "PMIX_SERVER_TMPDIR", "PMIX_SYSTEM_TMPDIR", NULL };
	int n = 0;

	for (int i = 0; vars[i] && n < max; i++) {
		const char *v = getenv(vars[i]);
		char *norm;
		struct stat st;
		bool dup = false;

		if (!v || v[0] != '/' || stat(v, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (!(norm = husk_path_normalize(v)))
			return -1;
		for (int j = 0; j < n; j++)
			dup = dup || !strcmp(out[j], norm);
		/* "/" or the host's /tmp (bound anyway) need nothing more */
		if (dup || !strcmp(norm, "/") || !strcmp(norm, "/tmp")) {
			free(norm);
			continue;
		}
		out[n++] = norm;
	}
	return n;
}
