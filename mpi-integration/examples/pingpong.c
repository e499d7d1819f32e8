/* pingpong.c: latency and bandwidth between ranks 0 and 1.
 *   pingpong [MAX_BYTES [ITERATIONS]]
 * For each size 8 B, 64 B, ... and MAX_BYTES (default 4 MiB) last, rank 0 sends
 * and rank 1 sends back; prints the one-way latency (us) and bandwidth
 * (MB/s) of the median of 5 timed rounds. The data is checked. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int rank, size;
	long max = 4L << 20;
	int iters_base = 1000;
	char *buf;

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (argc > 1)
		max = atol(argv[1]);
	if (argc > 2)
		iters_base = atoi(argv[2]);
	if (size < 2 || max < 8) {
		if (rank == 0)
			fprintf(stderr, "pingpong: needs 2 ranks and MAX_BYTES >= 8\n");
		MPI_Finalize();
		return 2;
	}
	if (!(buf = malloc((size_t)max)))
		MPI_Abort(MPI_COMM_WORLD, 1);
	if (rank == 0)
		printf("%12s %12s %12s\n", "bytes", "latency_us", "MB/s");
	for (long n = 8;; n = n * 8 > max ? max : n * 8) {
		int iters = n >= (1L << 20) ? 20 : n >= (64L << 10) ? 100 : iters_base;
		double t[5];
		for (int round = 0; round < 5; round++) {
			memset(buf, (int)(n + round) & 0xff, (size_t)n);
			MPI_Barrier(MPI_COMM_WORLD);
			double t0 = MPI_Wtime();
			for (int i = 0; i < iters && rank < 2; i++) {
				if (rank == 0) {
					MPI_Send(buf, (int)n, MPI_CHAR, 1, 0, MPI_COMM_WORLD);
					MPI_Recv(buf, (int)n, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
				} else {
					MPI_Recv(buf, (int)n, MPI_CHAR, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
					MPI_Send(buf, (int)n, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
				}
			}
			t[round] = (MPI_Wtime() - t0) / (2.0 * iters);
			if (rank < 2 && (buf[0] != (char)((n + round) & 0xff) ||
			    buf[n - 1] != (char)((n + round) & 0xff))) {
				fprintf(stderr, "pingpong: rank %d: data corrupted at %ld bytes\n", rank, n);
				MPI_Abort(MPI_COMM_WORLD, 1);
			}
		}
		qsort(t, 5, sizeof(t[0]), cmp);
		if (rank == 0)
			printf("%12ld %12.2f %12.1f\n", n, t[2] * 1e6, n / t[2] / 1e6);
		if (n == max)
			break;   /* 8, 64, ... and MAX_BYTES last */
	}
	free(buf);
	MPI_Finalize();
	return 0;
}
