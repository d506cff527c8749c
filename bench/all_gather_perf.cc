// xsite_all_gather_perf: nccl-tests' all_gather_perf over xsite.
#include "harness.h"

using namespace xsite;
using namespace xsite::bench;

int main(int argc, char** argv) {
  Collective c{};
  c.program = "xsite_all_gather_perf";
  c.busFactor = [](int n) { return static_cast<double>(n - 1) / n; };
  c.counts = [](size_t bytes, size_t es, int n, size_t* s, size_t* r) {
    *s = bytes / es / n;
    *r = *s * n;
  };
  c.run = [](Communicator& comm, Buffers b, size_t sendCount, size_t, DataType t, ReduceOp, int,
             const AllReduceOptions&) { comm.allGather(b.send, b.recv, sendCount, t); };
  c.expected = [](const Communicator&, DataType t, ReduceOp, int, size_t sendCount, size_t i) {
    return testing::inputValue(t, ReduceOp::kSum, static_cast<int>(i / sendCount), i % sendCount);
  };
  c.inPlace = [](const Communicator& comm, char* base, size_t es, size_t sendCount, size_t) {
    return Buffers{base + comm.rank() * sendCount * es, base};
  };
  return benchMain(argc, argv, c);
}
