// xsite_allreduce_perf: nccl-tests' all_reduce_perf over xsite, plus -A ring|hier|latency|auto
// and --codec NAME (the cross-site codec of the hierarchical schedule).
#include "harness.h"

using namespace xsite;
using namespace xsite::bench;

int main(int argc, char** argv) {
  Collective c{};
  c.program = "xsite_allreduce_perf";
  c.reduces = true;
  c.hasAlgorithm = true;
  c.busFactor = [](int n) { return n > 1 ? 2.0 * (n - 1) / n : 0.0; };
  c.counts = [](size_t bytes, size_t es, int, size_t* s, size_t* r) { *s = *r = bytes / es; };
  c.run = [](Communicator& comm, Buffers b, size_t count, size_t, DataType t, ReduceOp op, int,
             const AllReduceOptions& options) { comm.allReduce(b.send, b.recv, count, t, op, options); };
  c.expected = [](const Communicator& comm, DataType t, ReduceOp op, int, size_t, size_t i) {
    return testing::expectedReduction(t, op, comm.size(), i);
  };
  c.inPlace = [](const Communicator&, char* base, size_t, size_t, size_t) { return Buffers{base, base}; };
  return benchMain(argc, argv, c);
}
