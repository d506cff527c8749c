// The nccl-tests-style harness every xsite_*_perf program shares: nccl-tests' flags, preamble,
// columns and footer, so figures compare one to one with all_reduce_perf. One small struct per
// collective describes what differs (bench/<collective>_perf.cc).
#pragma once

#include <cstddef>

#include "common/reference.h"  // tests/common: the tests' model of inputs and results
#include "xsite/xsite.h"

namespace xsite::bench {

struct Buffers {
  const void* send;
  void* recv;
};

struct Collective {
  const char* program;  // "xsite_allreduce_perf"
  bool reduces;         // takes -o
  bool rooted;          // takes -r
  bool hasAlgorithm;    // takes -A and --codec (all-reduce)
  // nccl-tests' bus bandwidth factor for n ranks.
  double (*busFactor)(int nranks);
  // Element counts for a size column of `bytes`: what each rank sends and receives.
  void (*counts)(size_t bytes, size_t typeSize, int nranks, size_t* sendCount, size_t* recvCount);
  // Run once. `inPlace` buffers follow NCCL's in-place conventions; `options` (-A, --codec)
  // apply to all-reduce.
  void (*run)(Communicator& comm, Buffers b, size_t sendCount, size_t recvCount, DataType type,
              ReduceOp op, int root, const AllReduceOptions& options);
  // The value element i of the receive buffer must hold after one run, given each rank's input
  // x(rank, j) (rank's send element j).
  double (*expected)(const Communicator& comm, DataType type, ReduceOp op, int root,
                     size_t sendCount, size_t i);
  // The buffers of an in-place run inside one allocation, by NCCL's conventions.
  Buffers (*inPlace)(const Communicator& comm, char* base, size_t typeSize, size_t sendCount,
                     size_t recvCount);
};

// Parses argv, runs the sweep, prints the table; returns the process exit code.
int benchMain(int argc, char** argv, const Collective& coll);

// What every rank writes and what a collective must compute: tests/common/reference.h
// (testing::inputValue, testing::expectedReduction), the tests' model too.

}  // namespace xsite::bench
