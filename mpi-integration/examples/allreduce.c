/* allreduce.c: MPI_Allreduce of N doubles (default 1 Mi), checked against the
 * closed form, timed over 20 rounds (median printed by rank 0).
 *   allreduce [N] */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int rank, size;
	long n = 1L << 20;
	double *in, *out, t[20];

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (argc > 1)
		n = atol(argv[1]);
	in = malloc(sizeof(double) * (size_t)n);
	out = malloc(sizeof(double) * (size_t)n);
	if (!in || !out || n < 1)
		MPI_Abort(MPI_COMM_WORLD, 1);
	for (long i = 0; i < n; i++)
		in[i] = (double)(rank + 1) * (double)(i % 7);
	for (int r = 0; r < 20; r++) {
		MPI_Barrier(MPI_COMM_WORLD);
		double t0 = MPI_Wtime();
		MPI_Allreduce(in, out, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
		t[r] = MPI_Wtime() - t0;
	}
	/* sum over ranks of (rank+1) * (i % 7) = size*(size+1)/2 * (i % 7) */
	for (long i = 0; i < n; i++)
		if (out[i] != (double)size * (size + 1) / 2 * (double)(i % 7)) {
			fprintf(stderr, "allreduce: rank %d: wrong sum at %ld\n", rank, i);
			MPI_Abort(MPI_COMM_WORLD, 1);
		}
	qsort(t, 20, sizeof(t[0]), cmp);
	if (rank == 0)
		printf("allreduce of %ld doubles on %d ranks: %.3f ms (median of 20), sums correct\n",
			n, size, t[10] * 1e3);
	free(in);
	free(out);
	MPI_Finalize();
	return 0;
}
