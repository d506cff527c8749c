// xsite_reduce_scatter_perf: nccl-tests' reduce_scatter_perf over xsite.
#include "harness.h"

using namespace xsite;
using namespace xsite::bench;

int main(int argc, char** argv) {
  Collective c{};
  c.program = "xsite_reduce_scatter_perf";
  c.reduces = true;
  c.busFactor = [](int n) { return static_cast<double>(n - 1) / n; };
  c.counts = [](size_t bytes, size_t es, int n, size_t* s, size_t* r) {
    *r = bytes / es / n;
    *s = *r * n;
  };
  c.run = [](Communicator& comm, Buffers b, size_t, size_t recvCount, DataType t, ReduceOp op, int,
             const AllReduceOptions&) { comm.reduceScatter(b.send, b.recv, recvCount, t, op); };
  c.expected = [](const Communicator& comm, DataType t, ReduceOp op, int, size_t sendCount, size_t i) {
    return testing::expectedReduction(t, op, comm.size(), comm.rank() * (sendCount / comm.size()) + i);
  };
  c.inPlace = [](const Communicator& comm, char* base, size_t es, size_t, size_t recvCount) {
    return Buffers{base, base + comm.rank() * recvCount * es};
  };
  return benchMain(argc, argv, c);
}
