/* Open MPI baseline for bench/compare.sh: MPI_Allreduce (sum) of float32.
 *
 * Usage: mpi_allreduce [BYTES [ITERS [WARMUP]]]   (BYTES accepts K/M/G suffixes)
 * Rank 0 prints one line:
 *   RESULT impl=openmpi bytes=B ranks=N iters=I avg_us=T min_us=T max_us=T
 * where a per-iteration time is the slowest rank's time (MPI_MAX).
 * The result is checked: rank r contributes (r+1) + (i % 7), so element i sums
 * to N(N+1)/2 + N*(i % 7), exact in float32 for small N. Exit 1 on a mismatch. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t parseSize(const char* s) {
  char* end = NULL;
  double v = strtod(s, &end);
  switch (end && *end ? *end : ' ') {
    case 'G': case 'g': v *= 1024.0 * 1024.0 * 1024.0; break;
    case 'M': case 'm': v *= 1024.0 * 1024.0; break;
    case 'K': case 'k': v *= 1024.0; break;
    default: break;
  }
  return (size_t)v;
}

static void fill(float* buf, size_t count, int rank) {
  for (size_t i = 0; i < count; ++i) buf[i] = (float)(rank + 1) + (float)(i % 7);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  size_t bytes = argc > 1 ? parseSize(argv[1]) : (size_t)64 << 20;
  int iters = argc > 2 ? atoi(argv[2]) : 10;
  int warmup = argc > 3 ? atoi(argv[3]) : 2;
  size_t count = bytes / sizeof(float);
  if (count == 0 || iters < 1 || warmup < 0 || count > (size_t)0x7fffffff) {
    if (rank == 0) fprintf(stderr, "mpi_allreduce: bad arguments (bytes=%zu iters=%d warmup=%d)\n",
                           bytes, iters, warmup);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  float* sendbuf = malloc(count * sizeof(float));
  float* recvbuf = malloc(count * sizeof(float));
  if (!sendbuf || !recvbuf) {
    fprintf(stderr, "mpi_allreduce: out of memory for %zu bytes\n", bytes);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  fill(sendbuf, count, rank);

  for (int i = 0; i < warmup; ++i)
    MPI_Allreduce(sendbuf, recvbuf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);

  double total = 0.0, tmin = 1e30, tmax = 0.0;
  for (int i = 0; i < iters; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MPI_Allreduce(sendbuf, recvbuf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double dt = MPI_Wtime() - t0, slowest = 0.0;
    MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    total += slowest;
    if (slowest < tmin) tmin = slowest;
    if (slowest > tmax) tmax = slowest;
  }

  long wrong = 0;
  float base = (float)size * (float)(size + 1) / 2.0f;
  for (size_t i = 0; i < count; ++i)
    if (recvbuf[i] != base + (float)size * (float)(i % 7)) ++wrong;
  long wrongAll = 0;
  MPI_Reduce(&wrong, &wrongAll, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);

  if (rank == 0) {
    printf("RESULT impl=openmpi bytes=%zu ranks=%d iters=%d avg_us=%.1f min_us=%.1f max_us=%.1f wrong=%ld\n",
           count * sizeof(float), size, iters, total / iters * 1e6, tmin * 1e6, tmax * 1e6, wrongAll);
    fflush(stdout);
  }
  free(sendbuf);
  free(recvbuf);
  MPI_Finalize();
  return wrongAll == 0 ? 0 : 1;
}
