// xsite: data types, reduction operations and algorithm names. The numeric values of DataType
// and ReduceOp follow NCCL's ncclDataType_t and ncclRedOp_t so the plugin maps them one to one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace xsite {

enum class DataType : int {
  kInt8 = 0,
  kUint8 = 1,
  kInt32 = 2,
  kUint32 = 3,
  kInt64 = 4,
  kUint64 = 5,
  kFloat16 = 6,
  kFloat32 = 7,
  kFloat64 = 8,
  kBfloat16 = 9,
  kFloat8E4M3 = 10,  // storage only: moved by all-gather and broadcast, never reduced
  kFloat8E5M2 = 11,  // storage only
};
inline constexpr int kNumDataTypes = 12;

enum class ReduceOp : int { kSum = 0, kProd = 1, kMax = 2, kMin = 3, kAvg = 4 };
inline constexpr int kNumReduceOps = 5;

// All-reduce schedules. kRing is the flat ring NCCL runs on a flat network; kHierarchical is
// domain -> site -> cross-site -> site -> domain; kLatency reduces to leaders and exchanges once
// across sites; kAuto asks the cost model.
enum class Algorithm : int { kAuto = 0, kRing = 1, kHierarchical = 2, kLatency = 3 };

// What the cross-site stage of an all-reduce sends (docs/compression.md). kNone sends the
// elements; kLz4 and kZstd are lossless (byte-plane shuffle + LZ4 / zstd); the others are lossy
// (float32, bfloat16 and float16 input only): kBf16 and kFp16 casts, and block-scaled kInt8,
// kFp8 (e4m3) and kInt4. The values are the wire ids: never renumbered.
enum class Codec : uint8_t { kNone = 0, kLz4 = 1, kZstd = 2, kBf16 = 3, kFp16 = 4, kInt8 = 5, kFp8 = 6, kInt4 = 7 };
inline constexpr int kNumCodecs = 8;

size_t dataTypeSize(DataType type) noexcept;
// nccl-tests spelling: int8 uint8 int32 uint32 int64 uint64 half float double bfloat16 f8e4m3 f8e5m2
std::string_view dataTypeName(DataType type) noexcept;
std::optional<DataType> parseDataType(std::string_view name) noexcept;
bool isFloatingPoint(DataType type) noexcept;
// Whether reductions are defined for this type (the fp8 storage types are not).
bool isReducible(DataType type) noexcept;

// Element access in any data type through double (round to nearest even on the way in; fp8
// saturates to its largest finite value). For tests, checks and tools, not for hot loops.
double elementToDouble(const void* buffer, DataType type, size_t index) noexcept;
void elementFromDouble(void* buffer, DataType type, size_t index, double value) noexcept;

std::string_view reduceOpName(ReduceOp op) noexcept;  // sum prod max min avg
std::optional<ReduceOp> parseReduceOp(std::string_view name) noexcept;

std::string_view codecName(Codec codec) noexcept;  // none lz4 zstd bf16 fp16 int8 fp8 int4
std::optional<Codec> parseCodec(std::string_view name) noexcept;

std::string_view algorithmName(Algorithm algo) noexcept;  // auto ring hier latency
std::optional<Algorithm> parseAlgorithm(std::string_view name) noexcept;

}  // namespace xsite
