#include "xsite/types.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "util/half.h"

namespace xsite {
namespace {

struct TypeInfo {
  const char* name;
  size_t size;
  bool floating;
  bool reducible;
};
constexpr TypeInfo kTypes[kNumDataTypes] = {
    {"int8", 1, false, true},    {"uint8", 1, false, true},     {"int32", 4, false, true},
    {"uint32", 4, false, true},  {"int64", 8, false, true},     {"uint64", 8, false, true},
    {"half", 2, true, true},     {"float", 4, true, true},      {"double", 8, true, true},
    {"bfloat16", 2, true, true}, {"f8e4m3", 1, true, false},    {"f8e5m2", 1, true, false},
};
constexpr const char* kOps[kNumReduceOps] = {"sum", "prod", "max", "min", "avg"};
constexpr const char* kAlgos[] = {"auto", "ring", "hier", "latency"};

bool valid(DataType t) { return static_cast<int>(t) >= 0 && static_cast<int>(t) < kNumDataTypes; }

// fp8: e4m3 (bias 7, no infinities, 0x7f is NaN, max 448) and e5m2 (bias 15, IEEE-like).
double fp8ToDouble(uint8_t v, bool e4m3) {
  const int mbits = e4m3 ? 3 : 2, bias = e4m3 ? 7 : 15;
  int sign = v >> 7, exp = (v >> mbits) & (e4m3 ? 0xf : 0x1f), mant = v & ((1 << mbits) - 1);
  double s = sign ? -1.0 : 1.0;
  if (e4m3 && exp == 0xf && mant == 7) return NAN;
  if (!e4m3 && exp == 0x1f) return mant ? NAN : s * INFINITY;
  if (exp == 0) return s * std::ldexp(mant, 1 - bias - mbits);
  return s * std::ldexp((1 << mbits) + mant, exp - bias - mbits);
}

uint8_t doubleToFp8(double x, bool e4m3) {
  if (std::isnan(x)) return e4m3 ? 0x7f : 0x7e;
  uint8_t sign = std::signbit(x) ? 0x80 : 0;
  double a = std::fabs(x);
  const uint8_t maxCode = e4m3 ? 0x7e : 0x7b;
  if (a >= fp8ToDouble(maxCode, e4m3)) return sign | maxCode;  // saturate (infinity included)
  // Nearest finite code, ties to the even code.
  uint8_t best = 0;
  double bestErr = INFINITY;
  for (int c = 0; c < 128; ++c) {
    double v = fp8ToDouble(static_cast<uint8_t>(c), e4m3);
    if (!std::isfinite(v)) continue;
    double err = std::fabs(v - a);
    if (err < bestErr || (err == bestErr && (c & 1) == 0)) {
      best = static_cast<uint8_t>(c);
      bestErr = err;
    }
  }
  return sign | best;
}

// double -> float rounding to odd, so that a second rounding to a 16-bit format gives the same
// result as rounding the double once.
float toFloatRoundToOdd(double v) {
  float f = static_cast<float>(v);
  if (!std::isfinite(f) || static_cast<double>(f) == v) return f;
  uint32_t bits = floatToBits(f);
  if (std::fabs(static_cast<double>(f)) > std::fabs(v)) --bits;  // step back toward zero
  return bitsToFloat(bits | 1u);
}

template <typename T>
T load(const void* b, size_t i) {
  T v;
  memcpy(&v, static_cast<const char*>(b) + i * sizeof(T), sizeof(T));
  return v;
}
template <typename T>
void store(void* b, size_t i, T v) {
  memcpy(static_cast<char*>(b) + i * sizeof(T), &v, sizeof(T));
}

}  // namespace

double elementToDouble(const void* b, DataType t, size_t i) noexcept {
  switch (t) {
    case DataType::kInt8: return load<int8_t>(b, i);
    case DataType::kUint8: return load<uint8_t>(b, i);
    case DataType::kInt32: return load<int32_t>(b, i);
    case DataType::kUint32: return load<uint32_t>(b, i);
    case DataType::kInt64: return static_cast<double>(load<int64_t>(b, i));
    case DataType::kUint64: return static_cast<double>(load<uint64_t>(b, i));
    case DataType::kFloat16: return halfToFloat(load<uint16_t>(b, i));
    case DataType::kFloat32: return load<float>(b, i);
    case DataType::kFloat64: return load<double>(b, i);
    case DataType::kBfloat16: return bf16ToFloat(load<uint16_t>(b, i));
    case DataType::kFloat8E4M3: return fp8ToDouble(load<uint8_t>(b, i), true);
    case DataType::kFloat8E5M2: return fp8ToDouble(load<uint8_t>(b, i), false);
  }
  return 0;
}

void elementFromDouble(void* b, DataType t, size_t i, double v) noexcept {
  switch (t) {
    case DataType::kInt8: store(b, i, static_cast<int8_t>(v)); break;
    case DataType::kUint8: store(b, i, static_cast<uint8_t>(v)); break;
    case DataType::kInt32: store(b, i, static_cast<int32_t>(v)); break;
    case DataType::kUint32: store(b, i, static_cast<uint32_t>(v)); break;
    case DataType::kInt64: store(b, i, static_cast<int64_t>(v)); break;
    case DataType::kUint64: store(b, i, static_cast<uint64_t>(v)); break;
    case DataType::kFloat16: store(b, i, floatToHalf(toFloatRoundToOdd(v))); break;
    case DataType::kFloat32: store(b, i, static_cast<float>(v)); break;
    case DataType::kFloat64: store(b, i, v); break;
    case DataType::kBfloat16: store(b, i, floatToBf16(toFloatRoundToOdd(v))); break;
    case DataType::kFloat8E4M3: store(b, i, doubleToFp8(v, true)); break;
    case DataType::kFloat8E5M2: store(b, i, doubleToFp8(v, false)); break;
  }
}

size_t dataTypeSize(DataType t) noexcept { return valid(t) ? kTypes[static_cast<int>(t)].size : 0; }
std::string_view dataTypeName(DataType t) noexcept {
  return valid(t) ? kTypes[static_cast<int>(t)].name : "invalid";
}
bool isFloatingPoint(DataType t) noexcept { return valid(t) && kTypes[static_cast<int>(t)].floating; }
bool isReducible(DataType t) noexcept { return valid(t) && kTypes[static_cast<int>(t)].reducible; }

std::optional<DataType> parseDataType(std::string_view name) noexcept {
  for (int i = 0; i < kNumDataTypes; ++i)
    if (name == kTypes[i].name) return static_cast<DataType>(i);
  // common aliases (nccl-tests and PyTorch spellings)
  if (name == "float32" || name == "fp32") return DataType::kFloat32;
  if (name == "float16" || name == "fp16") return DataType::kFloat16;
  if (name == "float64" || name == "fp64") return DataType::kFloat64;
  if (name == "bf16") return DataType::kBfloat16;
  return std::nullopt;
}

std::string_view reduceOpName(ReduceOp op) noexcept {
  int i = static_cast<int>(op);
  return i >= 0 && i < kNumReduceOps ? kOps[i] : "invalid";
}
std::optional<ReduceOp> parseReduceOp(std::string_view name) noexcept {
  for (int i = 0; i < kNumReduceOps; ++i)
    if (name == kOps[i]) return static_cast<ReduceOp>(i);
  return std::nullopt;
}

namespace {
constexpr std::string_view kCodecs[kNumCodecs] = {"none", "lz4", "zstd", "bf16",
                                                  "fp16", "int8", "fp8",  "int4"};
}  // namespace

std::string_view codecName(Codec c) noexcept {
  auto i = static_cast<size_t>(c);
  return i < kNumCodecs ? kCodecs[i] : std::string_view("invalid");
}
std::optional<Codec> parseCodec(std::string_view name) noexcept {
  for (int i = 0; i < kNumCodecs; ++i)
    if (name == kCodecs[i]) return static_cast<Codec>(i);
  return std::nullopt;
}

std::string_view algorithmName(Algorithm a) noexcept {
  int i = static_cast<int>(a);
  return i >= 0 && i < 4 ? kAlgos[i] : "invalid";
}
std::optional<Algorithm> parseAlgorithm(std::string_view name) noexcept {
  for (int i = 0; i < 4; ++i)
    if (name == kAlgos[i]) return static_cast<Algorithm>(i);
  if (name == "hierarchical") return Algorithm::kHierarchical;
  return std::nullopt;
}

}  // namespace xsite
