// xsite_broadcast_perf: nccl-tests' broadcast_perf over xsite.
#include "harness.h"

using namespace xsite;
using namespace xsite::bench;

int main(int argc, char** argv) {
  Collective c{};
  c.program = "xsite_broadcast_perf";
  c.rooted = true;
  c.busFactor = [](int) { return 1.0; };
  c.counts = [](size_t bytes, size_t es, int, size_t* s, size_t* r) { *s = *r = bytes / es; };
  c.run = [](Communicator& comm, Buffers b, size_t count, size_t, DataType t, ReduceOp, int root,
             const AllReduceOptions&) { comm.broadcast(b.send, b.recv, count, t, root); };
  c.expected = [](const Communicator&, DataType t, ReduceOp, int root, size_t, size_t i) {
    return testing::inputValue(t, ReduceOp::kSum, root, i);
  };
  c.inPlace = [](const Communicator&, char* base, size_t, size_t, size_t) { return Buffers{base, base}; };
  return benchMain(argc, argv, c);
}
