// coll_check: one rank of a multi-process collective test, started by xsite-run (see
// tests/coll/CMakeLists.txt). Runs every collective x algorithm x data type x op x size over
// Communicator::fromEnvironment() and checks every element against the reference and that all
// ranks hold bit-identical bytes.
//   coll_check            the matrix; exit 0 when everything matched
//   coll_check die R      rank R exits abruptly before an all-reduce; every other rank must fail
//                         with an error naming rank R, within the timeout (exit 0 when it does)
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "coll/reference.h"
#include "xsite/xsite.h"

using namespace xsite;
using namespace xsite::testing;

namespace {

int failures = 0;

void report(bool ok, const std::string& what, int rank) {
  if (!ok) {
    ++failures;
    if (failures < 20) fprintf(stderr, "rank %d: FAILED %s\n", rank, what.c_str());
  }
}

// FNV-1a of the bytes: every rank must hold the same hash.
uint64_t hashOf(const void* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<const uint8_t*>(p)[i]) * 1099511628211ull;
  return h;
}

void checkIdentical(Communicator& comm, const void* p, size_t n, const std::string& what) {
  uint64_t h = hashOf(p, n), lo = 0, hi = 0;
  comm.allReduce(&h, &lo, 1, DataType::kUint64, ReduceOp::kMin, {Algorithm::kLatency});
  comm.allReduce(&h, &hi, 1, DataType::kUint64, ReduceOp::kMax, {Algorithm::kLatency});
  report(lo == hi, what + ": ranks hold different bytes", comm.rank());
}

const size_t kCounts[] = {0, 1, 7, 1031, 8192 + 13};

void matrix(Communicator& comm) {
  const int n = comm.size(), me = comm.rank();
  for (Algorithm algo : {Algorithm::kRing, Algorithm::kHierarchical, Algorithm::kLatency})
    for (DataType t : allTypes()) {
      if (!isReducible(t)) continue;
      for (ReduceOp op : allOps())
        for (size_t count : kCounts)
          for (bool inPlace : {false, true}) {
            const size_t es = dataTypeSize(t);
            std::vector<char> in(count * es + 1), out(count * es + 1, 0x5a);
            fillInput(in.data(), t, op, me, count);
            char* dst = inPlace ? in.data() : out.data();
            comm.allReduce(in.data(), dst, count, t, op, {algo});
            std::string what = "allReduce " + std::string(algorithmName(algo)) + " " +
                               std::string(dataTypeName(t)) + " " + std::string(reduceOpName(op)) +
                               " count " + std::to_string(count) + (inPlace ? " in-place" : "");
            size_t wrong = 0;
            for (size_t i = 0; i < count; ++i)
              wrong += !matches(t, op, elementToDouble(dst, t, i), expectedReduction(t, op, n, i));
            report(wrong == 0 && (inPlace || out[count * es] == 0x5a), what, me);
            checkIdentical(comm, dst, count * es, what);
          }
    }
  for (DataType t : allTypes())
    for (size_t count : kCounts) {
      const size_t es = dataTypeSize(t);
      std::string name = std::string(dataTypeName(t)) + " count " + std::to_string(count);
      if (isReducible(t)) {
        std::vector<char> in(count * n * es), out(count * es + 1, 0x5a);
        fillInput(in.data(), t, ReduceOp::kSum, me, count * n);
        comm.reduceScatter(in.data(), out.data(), count, t, ReduceOp::kSum);
        size_t wrong = 0;
        for (size_t i = 0; i < count; ++i)
          wrong += !matches(t, ReduceOp::kSum, elementToDouble(out.data(), t, i),
                            expectedReduction(t, ReduceOp::kSum, n, me * count + i));
        report(wrong == 0 && out[count * es] == 0x5a, "reduceScatter " + name, me);
      }
      std::vector<char> mine(count * es), all(count * n * es + 1, 0x5a);
      fillInput(mine.data(), t, ReduceOp::kSum, me, count);
      comm.allGather(mine.data(), all.data(), count, t);
      size_t wrong = 0;
      for (int r = 0; r < n; ++r)
        for (size_t i = 0; i < count; ++i)
          wrong += elementToDouble(all.data(), t, r * count + i) != inputValue(t, ReduceOp::kSum, r, i);
      report(wrong == 0 && all[count * n * es] == 0x5a, "allGather " + name, me);
      for (int root : {0, n - 1}) {
        std::vector<char> buf(count * es);
        fillInput(buf.data(), t, ReduceOp::kSum, me, count);
        comm.broadcast(buf.data(), buf.data(), count, t, root);
        size_t bad = 0;
        for (size_t i = 0; i < count; ++i)
          bad += elementToDouble(buf.data(), t, i) != inputValue(t, ReduceOp::kSum, root, i);
        report(bad == 0, "broadcast root " + std::to_string(root) + " " + name, me);
      }
    }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Config cfg;
    cfg.chunkBytes = 4096;  // many chunks and slices even for small counts
    cfg.sliceBytes = 1024;
    cfg.timeoutSeconds = 30;
    Communicator comm = Communicator::fromEnvironment(cfg);
    if (argc == 3 && !strcmp(argv[1], "die")) {
      int victim = atoi(argv[2]);
      comm.barrier();
      if (comm.rank() == victim) _exit(3);  // no goodbye: sockets and rings just vanish
      std::vector<float> x(100000, 1.0f);
      try {
        for (int i = 0; i < 100; ++i)
          comm.allReduce(x.data(), x.data(), x.size(), DataType::kFloat32, ReduceOp::kSum);
      } catch (const Error& e) {
        fprintf(stderr, "rank %d: expected error: %s\n", comm.rank(), e.what());
        return 0;
      }
      fprintf(stderr, "rank %d: FAILED: no error although rank %d died\n", comm.rank(), victim);
      return 1;
    }
    matrix(comm);
    if (comm.rank() == 0)
      printf("coll_check: %s: %s\n", comm.describeTopology().c_str(), failures ? "FAILED" : "all matched");
    return failures ? 1 : 0;
  } catch (const Error& e) {
    fprintf(stderr, "coll_check: %s\n", e.what());
    return 1;
  }
}
