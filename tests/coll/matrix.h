// The collective test matrix, shared by the thread test (coll_threads_test) and the process test
// (coll_check): every collective x algorithm x data type x op x size, in and out of place.
// Each result goes to `check` (ok, description); each all-reduce output also to `identical`,
// which must verify that every rank holds the same bytes.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/reference.h"
#include "xsite/xsite.h"

namespace xsite::testing {

struct Reporter {
  std::function<void(bool ok, const std::string& what)> check;
  std::function<void(const void* data, size_t bytes, const std::string& what)> identical;
};

// 0, 1, primes and sizes that do not divide evenly; with a 4 KiB chunk and a 1 KiB slice the
// largest crosses many chunks and slices.
inline const std::vector<size_t>& matrixCounts() {
  static const std::vector<size_t> counts{0, 1, 7, 1031, 8192 + 13};
  return counts;
}

inline Config smallPipelineConfig() {
  Config c;
  c.chunkBytes = 4096;
  c.sliceBytes = 1024;
  c.timeoutSeconds = 60;
  return c;
}

inline std::string describe(const char* coll, DataType t, size_t count, bool inPlace) {
  return std::string(coll) + " " + std::string(dataTypeName(t)) + " count " + std::to_string(count) +
         (inPlace ? " in-place" : "");
}

inline void allReduceMatrix(Communicator& comm, const Reporter& rep) {
  const int n = comm.size(), me = comm.rank();
  for (Algorithm algo : {Algorithm::kRing, Algorithm::kHierarchical, Algorithm::kLatency})
    for (DataType t : allTypes()) {
      if (!isReducible(t)) continue;
      for (ReduceOp op : allOps())
        for (size_t count : matrixCounts())
          for (bool inPlace : {false, true}) {
            const size_t es = dataTypeSize(t);
            std::vector<char> in(count * es + 1), out(count * es + 1, 0x5a);
            fillInput(in.data(), t, op, me, count);
            char* dst = inPlace ? in.data() : out.data();
            comm.allReduce(in.data(), dst, count, t, op, {algo});
            std::string what = std::string("allReduce ") + std::string(algorithmName(algo)) + " " +
                               std::string(reduceOpName(op)) + " " + describe("", t, count, inPlace);
            size_t wrong = 0;
            for (size_t i = 0; i < count; ++i)
              wrong += !matches(t, op, elementToDouble(dst, t, i), expectedReduction(t, op, n, i));
            rep.check(wrong == 0, what + ": " + std::to_string(wrong) + " wrong elements");
            if (!inPlace) rep.check(out[count * es] == 0x5a, what + ": wrote past the end");
            rep.identical(dst, count * es, what);
          }
    }
}

inline void reduceScatterMatrix(Communicator& comm, const Reporter& rep) {
  const int n = comm.size(), me = comm.rank();
  for (DataType t : allTypes()) {
    if (!isReducible(t)) continue;
    for (ReduceOp op : allOps())
      for (size_t count : matrixCounts())
        for (bool inPlace : {false, true}) {
          const size_t es = dataTypeSize(t);
          std::vector<char> in(count * n * es + 1), out(count * es + 1, 0x5a);
          fillInput(in.data(), t, op, me, count * n);
          char* dst = inPlace ? in.data() + me * count * es : out.data();
          comm.reduceScatter(in.data(), dst, count, t, op);
          size_t wrong = 0;
          for (size_t i = 0; i < count; ++i)
            wrong += !matches(t, op, elementToDouble(dst, t, i), expectedReduction(t, op, n, me * count + i));
          std::string what = std::string(reduceOpName(op)) + " " + describe("reduceScatter", t, count, inPlace);
          rep.check(wrong == 0, what);
          if (!inPlace) rep.check(out[count * es] == 0x5a, what + ": wrote past the end");
        }
  }
}

inline void allGatherMatrix(Communicator& comm, const Reporter& rep) {
  const int n = comm.size(), me = comm.rank();
  for (DataType t : allTypes())
    for (size_t count : matrixCounts())
      for (bool inPlace : {false, true}) {
        const size_t es = dataTypeSize(t);
        std::vector<char> in(count * es), out(count * n * es + 1, 0x5a);
        fillInput(in.data(), t, ReduceOp::kSum, me, count);
        const void* src = in.data();
        if (inPlace) {
          std::copy(in.begin(), in.end(), out.begin() + me * count * es);
          src = out.data() + me * count * es;
        }
        comm.allGather(src, out.data(), count, t);
        size_t wrong = 0;
        for (int r = 0; r < n; ++r)
          for (size_t i = 0; i < count; ++i)
            wrong += elementToDouble(out.data(), t, r * count + i) != inputValue(t, ReduceOp::kSum, r, i);
        std::string what = describe("allGather", t, count, inPlace);
        rep.check(wrong == 0, what);
        rep.check(out[count * n * es] == 0x5a, what + ": wrote past the end");
      }
}

inline void broadcastMatrix(Communicator& comm, const Reporter& rep) {
  const int n = comm.size(), me = comm.rank();
  for (int root : {0, n - 1, n / 2})
    for (DataType t : allTypes())
      for (size_t count : matrixCounts())
        for (bool inPlace : {false, true}) {
          const size_t es = dataTypeSize(t);
          std::vector<char> in(count * es), out(count * es + 1, 0x5a);
          fillInput(in.data(), t, ReduceOp::kSum, me, count);
          char* dst = inPlace ? in.data() : out.data();
          comm.broadcast(in.data(), dst, count, t, root);
          size_t wrong = 0;
          for (size_t i = 0; i < count; ++i)
            wrong += elementToDouble(dst, t, i) != inputValue(t, ReduceOp::kSum, root, i);
          std::string what = "root " + std::to_string(root) + " " + describe("broadcast", t, count, inPlace);
          rep.check(wrong == 0, what);
          if (!inPlace) rep.check(out[count * es] == 0x5a, what + ": wrote past the end");
        }
}

}  // namespace xsite::testing
