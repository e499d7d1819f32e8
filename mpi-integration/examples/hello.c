/* hello.c: each rank says who and where it is, and whether it runs inside
 * husk (HUSK_CONTAINER) and with which image. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int rank, size, len;
	char host[MPI_MAX_PROCESSOR_NAME], version[MPI_MAX_LIBRARY_VERSION_STRING];
	const char *inside = getenv("HUSK_CONTAINER");
	const char *image = getenv("HUSK_IMAGE");

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	MPI_Get_processor_name(host, &len);
	MPI_Get_library_version(version, &len);
	printf("hello from rank %d of %d on %s, uid %d, %s%s\n", rank, size, host, (int)getuid(),
		inside ? "inside husk image " : "not in husk", inside && image ? image : "");
	if (rank == 0)
		printf("library: %.60s\n", version);
	MPI_Finalize();
	return 0;
}
