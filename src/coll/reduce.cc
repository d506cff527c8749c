#include "coll/reduce.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "util/half.h"
#include "xsite/error.h"

namespace xsite::coll {
namespace {

// Integer sums and products wrap (computed unsigned), as NCCL's do.
template <typename T, bool = std::is_integral_v<T>>
struct Arith {
  static T add(T a, T b) { return a + b; }
  static T mul(T a, T b) { return a * b; }
};
template <typename T>
struct Arith<T, true> {
  using U = std::make_unsigned_t<T>;
  static T add(T a, T b) { return static_cast<T>(static_cast<U>(a) + static_cast<U>(b)); }
  static T mul(T a, T b) { return static_cast<T>(static_cast<U>(a) * static_cast<U>(b)); }
};

template <typename T, typename F>
void loop(T* out, const T* a, const T* b, size_t n, F f) {
  for (size_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
}

template <typename T>
void reduceT(void* out, const void* a, const void* b, size_t n, ReduceOp op) {
  auto* o = static_cast<T*>(out);
  auto* x = static_cast<const T*>(a);
  auto* y = static_cast<const T*>(b);
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: loop(o, x, y, n, [](T p, T q) { return Arith<T>::add(p, q); }); break;
    case ReduceOp::kProd: loop(o, x, y, n, [](T p, T q) { return Arith<T>::mul(p, q); }); break;
    case ReduceOp::kMax: loop(o, x, y, n, [](T p, T q) { return std::max(p, q); }); break;
    case ReduceOp::kMin: loop(o, x, y, n, [](T p, T q) { return std::min(p, q); }); break;
  }
}

// 16-bit floats: widen to float, combine, round to nearest even.
template <float (*toF)(uint16_t), uint16_t (*fromF)(float)>
void reduce16(void* out, const void* a, const void* b, size_t n, ReduceOp op) {
  auto* o = static_cast<uint16_t*>(out);
  auto* x = static_cast<const uint16_t*>(a);
  auto* y = static_cast<const uint16_t*>(b);
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: loop(o, x, y, n, [](uint16_t p, uint16_t q) { return fromF(toF(p) + toF(q)); }); break;
    case ReduceOp::kProd: loop(o, x, y, n, [](uint16_t p, uint16_t q) { return fromF(toF(p) * toF(q)); }); break;
    case ReduceOp::kMax: loop(o, x, y, n, [](uint16_t p, uint16_t q) { return fromF(std::max(toF(p), toF(q))); }); break;
    case ReduceOp::kMin: loop(o, x, y, n, [](uint16_t p, uint16_t q) { return fromF(std::min(toF(p), toF(q))); }); break;
  }
}

template <typename T>
void divideT(void* buf, size_t n, int d) {
  auto* p = static_cast<T*>(buf);
  if constexpr (std::is_floating_point_v<T>) {
    for (size_t i = 0; i < n; ++i) p[i] = p[i] / static_cast<T>(d);
  } else {
    // Divide in 64 bits: the divisor (a rank count) need not fit the element type.
    using Wide = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<T>(static_cast<Wide>(p[i]) / static_cast<Wide>(d));
  }
}

template <float (*toF)(uint16_t), uint16_t (*fromF)(float)>
void divide16(void* buf, size_t n, int d) {
  auto* p = static_cast<uint16_t*>(buf);
  for (size_t i = 0; i < n; ++i) p[i] = fromF(toF(p[i]) / static_cast<float>(d));
}

}  // namespace

void reduce(void* out, const void* a, const void* b, size_t n, DataType type, ReduceOp op) noexcept {
  switch (type) {
    case DataType::kInt8: reduceT<int8_t>(out, a, b, n, op); break;
    case DataType::kUint8: reduceT<uint8_t>(out, a, b, n, op); break;
    case DataType::kInt32: reduceT<int32_t>(out, a, b, n, op); break;
    case DataType::kUint32: reduceT<uint32_t>(out, a, b, n, op); break;
    case DataType::kInt64: reduceT<int64_t>(out, a, b, n, op); break;
    case DataType::kUint64: reduceT<uint64_t>(out, a, b, n, op); break;
    case DataType::kFloat32: reduceT<float>(out, a, b, n, op); break;
    case DataType::kFloat64: reduceT<double>(out, a, b, n, op); break;
    case DataType::kFloat16: reduce16<halfToFloat, floatToHalf>(out, a, b, n, op); break;
    case DataType::kBfloat16: reduce16<bf16ToFloat, floatToBf16>(out, a, b, n, op); break;
    case DataType::kFloat8E4M3:
    case DataType::kFloat8E5M2: break;  // storage only; rejected at the API
  }
}

void divideInPlace(void* buf, size_t n, DataType type, int d) noexcept {
  switch (type) {
    case DataType::kInt8: divideT<int8_t>(buf, n, d); break;
    case DataType::kUint8: divideT<uint8_t>(buf, n, d); break;
    case DataType::kInt32: divideT<int32_t>(buf, n, d); break;
    case DataType::kUint32: divideT<uint32_t>(buf, n, d); break;
    case DataType::kInt64: divideT<int64_t>(buf, n, d); break;
    case DataType::kUint64: divideT<uint64_t>(buf, n, d); break;
    case DataType::kFloat32: divideT<float>(buf, n, d); break;
    case DataType::kFloat64: divideT<double>(buf, n, d); break;
    case DataType::kFloat16: divide16<halfToFloat, floatToHalf>(buf, n, d); break;
    case DataType::kBfloat16: divide16<bf16ToFloat, floatToBf16>(buf, n, d); break;
    case DataType::kFloat8E4M3:
    case DataType::kFloat8E5M2: break;
  }
}

void checkReduction(const char* what, int type, int op) {
  if (type < 0 || type >= kNumDataTypes)
    throw Error(ErrorCategory::kInvalidUsage,
                std::string(what) + ": invalid data type " + std::to_string(type));
  if (op < 0 || op >= kNumReduceOps)
    throw Error(ErrorCategory::kInvalidUsage,
                std::string(what) + ": invalid reduction op " + std::to_string(op));
  if (!isReducible(static_cast<DataType>(type)))
    throw Error(ErrorCategory::kInvalidUsage,
                std::string(what) + ": " + std::string(dataTypeName(static_cast<DataType>(type))) +
                    " is a storage-only type; reduce in half, bfloat16 or float instead");
}

std::string defaultErrorFeedbackKey(size_t count, DataType type) {
  return "count:" + std::to_string(count) + ":" + std::string(dataTypeName(type));
}

}  // namespace xsite::coll
