// Inputs whose reductions are exact in every data type, and their expected results in double:
// the one model of what a collective must compute, for the tests and the nccl-tests-style
// benchmarks (bench/) alike.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "xsite/types.h"

namespace xsite::testing {

inline bool isSigned(DataType t) {
  return t != DataType::kUint8 && t != DataType::kUint32 && t != DataType::kUint64;
}

// Small integers (quarters for floats): sums of up to 16 ranks stay exact even in bfloat16;
// products use 1 and 2 only. |inputValue| never exceeds kMaxAbsInput.
inline constexpr double kMaxAbsInput = 4.75;

inline double inputValue(DataType t, ReduceOp op, int rank, size_t i) {
  if (op == ReduceOp::kProd) return ((rank + i) % 5 == 0) ? 2.0 : 1.0;
  double v = static_cast<double>((rank * 31 + i * 17) % 9);
  if (isSigned(t)) v -= 4;
  if (isFloatingPoint(t) && isReducible(t)) v += 0.25 * static_cast<double>((i + rank) % 4);
  return v;
}

inline void fillInput(void* buf, DataType t, ReduceOp op, int rank, size_t count, size_t first = 0) {
  for (size_t i = 0; i < count; ++i) elementFromDouble(buf, t, i, inputValue(t, op, rank, first + i));
}

// Element i of the reduction over ranks 0..n-1 of inputValue(.., i).
inline double expectedReduction(DataType t, ReduceOp op, int n, size_t i) {
  double acc = inputValue(t, op, 0, i);
  for (int r = 1; r < n; ++r) {
    double v = inputValue(t, op, r, i);
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg: acc += v; break;
      case ReduceOp::kProd: acc *= v; break;
      case ReduceOp::kMax: acc = std::max(acc, v); break;
      case ReduceOp::kMin: acc = std::min(acc, v); break;
    }
  }
  if (op == ReduceOp::kAvg) acc = isFloatingPoint(t) ? acc / n : std::trunc(acc / n);
  return acc;
}

// The tolerance of one result: exact for integers and for everything but a float average.
inline bool matches(DataType t, ReduceOp op, double got, double expected) {
  if (!(isFloatingPoint(t) && op == ReduceOp::kAvg)) return got == expected;
  double tol = t == DataType::kFloat16 ? 1e-3 : t == DataType::kBfloat16 ? 8e-3
             : t == DataType::kFloat32 ? 1e-6 : 1e-12;
  return std::fabs(got - expected) <= tol * std::max(1.0, std::fabs(expected));
}

inline std::vector<DataType> allTypes() {
  std::vector<DataType> v;
  for (int i = 0; i < kNumDataTypes; ++i) v.push_back(static_cast<DataType>(i));
  return v;
}

inline std::vector<ReduceOp> allOps() {
  std::vector<ReduceOp> v;
  for (int i = 0; i < kNumReduceOps; ++i) v.push_back(static_cast<ReduceOp>(i));
  return v;
}

}  // namespace xsite::testing
