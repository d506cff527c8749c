// The host reduction kernels and the element conversions: every reducible type x op against a
// reference computed in double, aliasing, integer wraparound, the 16-bit float rounding (checked
// bit for bit), and the fp8 storage types.
#include "coll/reduce.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "util/half.h"
#include "xsite/types.h"

namespace xsite::coll {
namespace {

constexpr DataType kReducible[] = {DataType::kInt8,    DataType::kUint8,   DataType::kInt32,
                                   DataType::kUint32,  DataType::kInt64,   DataType::kUint64,
                                   DataType::kFloat16, DataType::kFloat32, DataType::kFloat64,
                                   DataType::kBfloat16};
constexpr ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMax, ReduceOp::kMin,
                             ReduceOp::kAvg};

bool isSigned(DataType t) {
  return isFloatingPoint(t) || t == DataType::kInt8 || t == DataType::kInt32 || t == DataType::kInt64;
}

// Small values whose sums and products are exact in every type (bf16 holds integers to 256).
double valueA(DataType t, size_t i) {
  return isSigned(t) ? static_cast<double>(static_cast<int>(i % 9) - 4) : static_cast<double>(i % 9);
}
double valueB(DataType t, size_t i) {
  double v = static_cast<double>((i * 7) % 11) - (isSigned(t) ? 5.0 : 0.0);
  if (isFloatingPoint(t) && i % 3 == 0) v += 0.5;
  return v;
}

double refOp(double a, double b, ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return a + b;  // avg reduces as a sum; divideInPlace divides
    case ReduceOp::kProd: return a * b;
    case ReduceOp::kMax: return std::max(a, b);
    case ReduceOp::kMin: return std::min(a, b);
  }
  return NAN;
}

std::vector<char> buffer(DataType t, size_t n, double (*gen)(DataType, size_t)) {
  std::vector<char> b(n * dataTypeSize(t));
  for (size_t i = 0; i < n; ++i) elementFromDouble(b.data(), t, i, gen(t, i));
  return b;
}

std::string label(DataType t, ReduceOp op) {
  return std::string(dataTypeName(t)) + " " + std::string(reduceOpName(op));
}

TEST(Reduce, EveryTypeAndOpMatchesTheReference) {
  constexpr size_t n = 97;
  for (DataType t : kReducible)
    for (ReduceOp op : kOps) {
      SCOPED_TRACE(label(t, op));
      const size_t es = dataTypeSize(t);
      auto a = buffer(t, n, valueA), b = buffer(t, n, valueB);
      // One guard element past the end must stay untouched.
      std::vector<char> out((n + 1) * es, '\x5a');
      reduce(out.data(), a.data(), b.data(), n, t, op);
      for (size_t i = 0; i < n; ++i) {
        double want = refOp(elementToDouble(a.data(), t, i), elementToDouble(b.data(), t, i), op);
        ASSERT_EQ(elementToDouble(out.data(), t, i), want) << "element " << i;
      }
      for (size_t k = 0; k < es; ++k) ASSERT_EQ(out[n * es + k], '\x5a') << "wrote past count";
    }
}

TEST(Reduce, OutputMayAliasEitherInput) {
  constexpr size_t n = 33;
  for (DataType t : kReducible)
    for (ReduceOp op : kOps) {
      SCOPED_TRACE(label(t, op));
      auto a = buffer(t, n, valueA), b = buffer(t, n, valueB);
      std::vector<char> expect(a.size());
      reduce(expect.data(), a.data(), b.data(), n, t, op);
      auto a1 = a;
      reduce(a1.data(), a1.data(), b.data(), n, t, op);
      EXPECT_EQ(a1, expect) << "out == a";
      auto b1 = b;
      reduce(b1.data(), a.data(), b1.data(), n, t, op);
      EXPECT_EQ(b1, expect) << "out == b";
    }
}

TEST(Reduce, ZeroCountTouchesNothing) {
  std::vector<char> a(8, 1), b(8, 2), out(8, 3);
  reduce(out.data(), a.data(), b.data(), 0, DataType::kFloat64, ReduceOp::kSum);
  EXPECT_EQ(out, std::vector<char>(8, 3));
}

template <typename T>
T reduce1(T a, T b, DataType t, ReduceOp op) {
  T out;
  reduce(&out, &a, &b, 1, t, op);
  return out;
}

TEST(Reduce, IntegersWrapAround) {
  EXPECT_EQ(reduce1<int8_t>(127, 1, DataType::kInt8, ReduceOp::kSum), -128);
  EXPECT_EQ(reduce1<int8_t>(-128, -1, DataType::kInt8, ReduceOp::kSum), 127);
  EXPECT_EQ(reduce1<int8_t>(16, 16, DataType::kInt8, ReduceOp::kProd), 0);
  EXPECT_EQ(reduce1<int8_t>(-128, -1, DataType::kInt8, ReduceOp::kProd), -128);
  EXPECT_EQ(reduce1<uint8_t>(255, 1, DataType::kUint8, ReduceOp::kSum), 0);
  EXPECT_EQ(reduce1<uint8_t>(16, 17, DataType::kUint8, ReduceOp::kProd), 16);  // 272 mod 256
  EXPECT_EQ(reduce1<int32_t>(INT32_MAX, 1, DataType::kInt32, ReduceOp::kSum), INT32_MIN);
  EXPECT_EQ(reduce1<int32_t>(65536, 65536, DataType::kInt32, ReduceOp::kProd), 0);
  EXPECT_EQ(reduce1<uint32_t>(UINT32_MAX, 2, DataType::kUint32, ReduceOp::kSum), 1u);
  EXPECT_EQ(reduce1<int64_t>(INT64_MAX, 1, DataType::kInt64, ReduceOp::kSum), INT64_MIN);
  EXPECT_EQ(reduce1<int64_t>(INT64_MIN, -1, DataType::kInt64, ReduceOp::kProd), INT64_MIN);
  EXPECT_EQ(reduce1<uint64_t>(UINT64_MAX, 1, DataType::kUint64, ReduceOp::kSum), 0u);
  EXPECT_EQ(reduce1<uint64_t>(UINT64_MAX, UINT64_MAX, DataType::kUint64, ReduceOp::kProd), 1u);
}

TEST(Reduce, MaxMinCompareInTheType) {
  // Signed types compare signed, unsigned types unsigned, wide integers exactly.
  EXPECT_EQ(reduce1<int8_t>(-5, 3, DataType::kInt8, ReduceOp::kMax), 3);
  EXPECT_EQ(reduce1<int8_t>(-5, 3, DataType::kInt8, ReduceOp::kMin), -5);
  EXPECT_EQ(reduce1<uint8_t>(200, 3, DataType::kUint8, ReduceOp::kMax), 200);
  EXPECT_EQ(reduce1<uint32_t>(0x80000000u, 1, DataType::kUint32, ReduceOp::kMax), 0x80000000u);
  EXPECT_EQ(reduce1<int64_t>(INT64_MAX, INT64_MAX - 1, DataType::kInt64, ReduceOp::kMin), INT64_MAX - 1);
  EXPECT_EQ(reduce1<uint64_t>(UINT64_MAX, UINT64_MAX - 1, DataType::kUint64, ReduceOp::kMax), UINT64_MAX);
  EXPECT_EQ(reduce1<double>(-0.5, -0.25, DataType::kFloat64, ReduceOp::kMax), -0.25);
  EXPECT_EQ(reduce1<float>(-0.5f, -0.25f, DataType::kFloat32, ReduceOp::kMin), -0.5f);
  EXPECT_EQ(reduce1<uint16_t>(floatToHalf(-2), floatToHalf(1), DataType::kFloat16, ReduceOp::kMin),
            floatToHalf(-2));
  EXPECT_EQ(reduce1<uint16_t>(floatToBf16(-2), floatToBf16(-3), DataType::kBfloat16, ReduceOp::kMax),
            floatToBf16(-2));
}

TEST(Reduce, SixteenBitFloatsRoundToNearestEven) {
  const uint16_t h2048 = 0x6800;  // 2048: half spacing there is 2
  EXPECT_EQ(reduce1<uint16_t>(h2048, floatToHalf(1), DataType::kFloat16, ReduceOp::kSum), 0x6800);
  EXPECT_EQ(reduce1<uint16_t>(h2048, floatToHalf(3), DataType::kFloat16, ReduceOp::kSum), 0x6802);
  EXPECT_EQ(reduce1<uint16_t>(0x7bff, 0x7bff, DataType::kFloat16, ReduceOp::kSum), 0x7c00);  // inf
  EXPECT_EQ(reduce1<uint16_t>(0x7bff, floatToHalf(2), DataType::kFloat16, ReduceOp::kProd), 0x7c00);
  const uint16_t b256 = 0x4380;  // 256: bf16 spacing there is 2
  EXPECT_EQ(reduce1<uint16_t>(b256, floatToBf16(1), DataType::kBfloat16, ReduceOp::kSum), 0x4380);
  EXPECT_EQ(reduce1<uint16_t>(b256, floatToBf16(3), DataType::kBfloat16, ReduceOp::kSum), 0x4382);
}

TEST(DivideInPlace, EveryReducibleType) {
  for (DataType t : kReducible) {
    SCOPED_TRACE(std::string(dataTypeName(t)));
    const double in[] = {8, 9, 0, 100};
    std::vector<char> b(5 * dataTypeSize(t));
    for (int i = 0; i < 5; ++i) elementFromDouble(b.data(), t, i, i < 4 ? in[i] : 77);
    divideInPlace(b.data(), 4, t, 4);
    const double want[] = {2, isFloatingPoint(t) ? 2.25 : 2, 0, 25};
    for (int i = 0; i < 4; ++i) EXPECT_EQ(elementToDouble(b.data(), t, i), want[i]) << i;
    EXPECT_EQ(elementToDouble(b.data(), t, 4), 77) << "past count";
  }
}

TEST(DivideInPlace, IntegersTruncateTowardZero) {
  int32_t v[] = {7, -7, 9, -9};
  divideInPlace(v, 4, DataType::kInt32, 2);
  EXPECT_EQ(v[0], 3);
  EXPECT_EQ(v[1], -3);
  EXPECT_EQ(v[2], 4);
  EXPECT_EQ(v[3], -4);
  int64_t w[] = {INT64_MIN};
  divideInPlace(w, 1, DataType::kInt64, 3);
  EXPECT_EQ(w[0], INT64_MIN / 3);
  uint64_t u[] = {UINT64_MAX};
  divideInPlace(u, 1, DataType::kUint64, 5);
  EXPECT_EQ(u[0], UINT64_MAX / 5);
}

TEST(DivideInPlace, SixteenBitFloatsRound) {
  uint16_t h[] = {floatToHalf(1), floatToHalf(3)};
  divideInPlace(h, 2, DataType::kFloat16, 3);
  EXPECT_EQ(h[0], floatToHalf(1.0f / 3));
  EXPECT_EQ(h[0], 0x3555);
  EXPECT_EQ(h[1], 0x3c00);
  uint16_t b[] = {floatToBf16(1)};
  divideInPlace(b, 1, DataType::kBfloat16, 3);
  EXPECT_EQ(b[0], 0x3eab);  // 1/3 = 0x3eaaaaab in float; bf16 rounds up
}

TEST(DivideInPlace, DivisorWiderThanTheElementType) {
  int8_t s[] = {-128, 100};
  divideInPlace(s, 2, DataType::kInt8, 128);
  EXPECT_EQ(s[0], -1);
  EXPECT_EQ(s[1], 0);
  uint8_t u[] = {200};
  divideInPlace(u, 1, DataType::kUint8, 300);
  EXPECT_EQ(u[0], 0);
  int8_t t[] = {100};
  divideInPlace(t, 1, DataType::kInt8, 200);
  EXPECT_EQ(t[0], 0);
}

// ---- half / bfloat16 bit patterns ------------------------------------------------------------

TEST(Half, KnownBitPatterns) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(floatToHalf(0.0f), 0x0000);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(floatToHalf(0.1f), 0x2e66);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7bff);  // max
  EXPECT_EQ(floatToHalf(65519.0f), 0x7bff);  // below the midpoint to 65536
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00);  // the midpoint ties to even: inf
  EXPECT_EQ(floatToHalf(1e6f), 0x7c00);
  EXPECT_EQ(floatToHalf(-1e6f), 0xfc00);
  EXPECT_EQ(floatToHalf(INFINITY), 0x7c00);
  EXPECT_EQ(floatToHalf(-INFINITY), 0xfc00);
  uint16_t nan = floatToHalf(NAN);
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(bitsToFloat(0x7f800001u)))));  // signalling
  EXPECT_EQ(halfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(halfToFloat(0x7c00), INFINITY);
}

TEST(Half, SubnormalsAndTiesToEven) {
  const float s = std::ldexp(1.0f, -24);        // smallest subnormal half
  EXPECT_EQ(floatToHalf(s), 0x0001);
  EXPECT_EQ(floatToHalf(1023 * s), 0x03ff);     // largest subnormal
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(floatToHalf(0.5f * s), 0x0000);     // tie between 0 and 1: even
  EXPECT_EQ(floatToHalf(1.5f * s), 0x0002);     // tie between 1 and 2: even
  EXPECT_EQ(floatToHalf(2.5f * s), 0x0002);     // tie between 2 and 3: even
  EXPECT_EQ(floatToHalf(0.75f * s), 0x0001);    // above the tie
  EXPECT_EQ(floatToHalf(-1.5f * s), 0x8002);
  EXPECT_EQ(floatToHalf(1023.5f * s), 0x0400);  // rounds up into the normals
  EXPECT_EQ(halfToFloat(0x0001), s);
  EXPECT_EQ(halfToFloat(0x8003), -3 * s);
  // Normal range: 1 + 2^-11 is halfway between 0x3c00 and 0x3c01.
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11) - std::ldexp(1.0f, -20)), 0x3c00);
}

TEST(Half, EveryPatternRoundTrips) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    float f = halfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) << std::hex << h;
      continue;
    }
    ASSERT_EQ(floatToHalf(f), h) << std::hex << h;
  }
}

TEST(Bf16, KnownBitPatternsAndTies) {
  EXPECT_EQ(floatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(floatToBf16(-2.0f), 0xc000);
  EXPECT_EQ(floatToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie: even
  EXPECT_EQ(floatToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie: even
  EXPECT_EQ(floatToBf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
  EXPECT_EQ(floatToBf16(bitsToFloat(0x7f7fffffu)), 0x7f80);  // FLT_MAX rounds to inf
  EXPECT_EQ(floatToBf16(INFINITY), 0x7f80);
  EXPECT_EQ(floatToBf16(-INFINITY), 0xff80);
  // NaN stays NaN, including payloads that live only in the low 16 bits.
  for (uint32_t bits : {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu}) {
    uint16_t b = floatToBf16(bitsToFloat(bits));
    EXPECT_EQ(b & 0x7f80, 0x7f80) << std::hex << bits;
    EXPECT_NE(b & 0x007f, 0) << std::hex << bits;
    EXPECT_EQ(b & 0x8000, (bits >> 16) & 0x8000) << "sign kept " << std::hex << bits;
  }
}

TEST(Bf16, EveryPatternRoundTrips) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    float f = bf16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(floatToBf16(f), h) << std::hex << h;
  }
}

// ---- elementToDouble / elementFromDouble -----------------------------------------------------

double roundTrip(DataType t, double v) {
  unsigned char b[16] = {};
  elementFromDouble(b, t, 1, v);  // index 1: the offset is per type
  for (size_t k = 0; k < dataTypeSize(t); ++k) EXPECT_EQ(b[k], 0) << "wrote before the element";
  return elementToDouble(b, t, 1);
}

TEST(Element, RoundTripsExactValuesInEveryType) {
  struct Case {
    DataType t;
    std::vector<double> values;
  };
  const Case cases[] = {
      {DataType::kInt8, {0, 1, -1, 127, -128}},
      {DataType::kUint8, {0, 1, 255}},
      {DataType::kInt32, {0, -1, 2147483647.0, -2147483648.0}},
      {DataType::kUint32, {0, 4294967295.0}},
      {DataType::kInt64, {0, -1, 9007199254740992.0, -9223372036854775808.0}},
      {DataType::kUint64, {0, 9223372036854775808.0, 18446744073709549568.0}},
      {DataType::kFloat16, {0, 1, -2.5, 65504, -65504, std::ldexp(1.0, -24), std::ldexp(1.0, -14)}},
      {DataType::kFloat32, {0, 1.5, -3.25, std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::denorm_min()}},
      {DataType::kFloat64, {0, 0.1, -1e300, std::numeric_limits<double>::denorm_min()}},
      {DataType::kBfloat16, {0, 1, -2, 256, 3.3895313892515355e38, std::ldexp(1.0, -133)}},
      {DataType::kFloat8E4M3, {0, 1, -1, 0.5, 448, -448, std::ldexp(1.0, -9), 1.125, 240}},
      {DataType::kFloat8E5M2, {0, 1, -1, 1.25, 57344, -57344, std::ldexp(1.0, -16), 49152}},
  };
  int types = 0;
  for (const auto& c : cases) {
    ++types;
    for (double v : c.values)
      EXPECT_EQ(roundTrip(c.t, v), v) << dataTypeName(c.t) << " " << v;
  }
  EXPECT_EQ(types, kNumDataTypes);
}

TEST(Element, InfinityAndNaN) {
  for (DataType t : {DataType::kFloat16, DataType::kFloat32, DataType::kFloat64, DataType::kBfloat16,
                     DataType::kFloat8E5M2}) {
    EXPECT_TRUE(std::isnan(roundTrip(t, NAN))) << dataTypeName(t);
    if (t != DataType::kFloat8E5M2) {
      EXPECT_EQ(roundTrip(t, -INFINITY), -INFINITY) << dataTypeName(t);
    }
  }
  EXPECT_TRUE(std::isnan(roundTrip(DataType::kFloat8E4M3, NAN)));
  EXPECT_TRUE(std::signbit(roundTrip(DataType::kFloat8E4M3, -0.0)));
  EXPECT_TRUE(std::signbit(roundTrip(DataType::kFloat8E5M2, -0.0)));
}

uint8_t fp8Code(DataType t, double v) {
  uint8_t b = 0;
  elementFromDouble(&b, t, 0, v);
  return b;
}

TEST(Fp8, E4M3Codes) {
  const DataType t = DataType::kFloat8E4M3;
  EXPECT_EQ(fp8Code(t, 1.0), 0x38);
  EXPECT_EQ(fp8Code(t, 448.0), 0x7e);
  EXPECT_EQ(fp8Code(t, -448.0), 0xfe);
  EXPECT_EQ(fp8Code(t, 1.0625), 0x38);  // tie between 1 and 1.125: even code
  EXPECT_EQ(fp8Code(t, 1.1875), 0x3a);  // tie between 1.125 and 1.25: even code
  EXPECT_EQ(fp8Code(t, std::ldexp(1.0, -10)), 0x00);  // half the smallest subnormal: even (zero)
  // Saturation: no infinities, never the NaN code.
  EXPECT_EQ(fp8Code(t, 464.0), 0x7e);
  EXPECT_EQ(fp8Code(t, 1000.0), 0x7e);
  EXPECT_EQ(fp8Code(t, -1e30), 0xfe);
  EXPECT_EQ(fp8Code(t, INFINITY), 0x7e);
  uint8_t nanCode = 0x7f;
  EXPECT_TRUE(std::isnan(elementToDouble(&nanCode, t, 0)));
  EXPECT_EQ(fp8Code(t, NAN) & 0x7f, 0x7f);
}

TEST(Fp8, E5M2Codes) {
  const DataType t = DataType::kFloat8E5M2;
  EXPECT_EQ(fp8Code(t, 1.0), 0x3c);
  EXPECT_EQ(fp8Code(t, 57344.0), 0x7b);
  EXPECT_EQ(fp8Code(t, 1.125), 0x3c);  // tie between 1 and 1.25: even code
  EXPECT_EQ(fp8Code(t, 1.375), 0x3e);  // tie between 1.25 and 1.5: even code
  EXPECT_EQ(fp8Code(t, 60000.0), 0x7b);
  EXPECT_EQ(fp8Code(t, -1e6), 0xfb);
  uint8_t inf = 0x7c;
  EXPECT_EQ(elementToDouble(&inf, t, 0), INFINITY);
  uint8_t nanCode = 0x7e;
  EXPECT_TRUE(std::isnan(elementToDouble(&nanCode, t, 0)));
}

TEST(Fp8, E5M2HugeAndInfiniteSaturateToTheLargestFinite) {
  EXPECT_EQ(fp8Code(DataType::kFloat8E5M2, INFINITY), 0x7b);
  EXPECT_EQ(fp8Code(DataType::kFloat8E5M2, -INFINITY), 0xfb);
  EXPECT_EQ(fp8Code(DataType::kFloat8E5M2, 1e30), 0x7b);
}

TEST(Fp8, EveryFiniteCodeRoundTrips) {
  for (DataType t : {DataType::kFloat8E4M3, DataType::kFloat8E5M2})
    for (int c = 0; c < 256; ++c) {
      uint8_t code = static_cast<uint8_t>(c);
      double v = elementToDouble(&code, t, 0);
      if (!std::isfinite(v)) continue;
      EXPECT_EQ(fp8Code(t, v), code) << dataTypeName(t) << " code " << c << " = " << v;
    }
}

// The double -> 16-bit float path goes through float first, so it rounds twice. 1 + 2^-11 +
// 2^-40 is just above the half midpoint between 0x3c00 and 0x3c01 and must round up, but the float
// step drops the 2^-40 and leaves an exact tie, which goes to even (0x3c00).
TEST(Element, SixteenBitFloatsFromDoubleRoundOnce) {
  const double above = 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40);
  uint16_t h = 0;
  elementFromDouble(&h, DataType::kFloat16, 0, above);
  EXPECT_EQ(h, 0x3c01);
  const double aboveBf = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40);
  elementFromDouble(&h, DataType::kBfloat16, 0, aboveBf);
  EXPECT_EQ(h, 0x3f81);
}

TEST(Types, SizesNamesAndParsing) {
  const size_t sizes[kNumDataTypes] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};
  for (int i = 0; i < kNumDataTypes; ++i) {
    DataType t = static_cast<DataType>(i);
    EXPECT_EQ(dataTypeSize(t), sizes[i]) << i;
    EXPECT_EQ(parseDataType(dataTypeName(t)), t) << i;
    EXPECT_EQ(isReducible(t), i < 10) << i;
  }
  EXPECT_EQ(dataTypeSize(static_cast<DataType>(12)), 0u);
  EXPECT_EQ(parseDataType("bf16"), DataType::kBfloat16);
  EXPECT_EQ(parseDataType("fp16"), DataType::kFloat16);
  EXPECT_EQ(parseDataType("nope"), std::nullopt);
  for (int i = 0; i < kNumReduceOps; ++i)
    EXPECT_EQ(parseReduceOp(reduceOpName(static_cast<ReduceOp>(i))), static_cast<ReduceOp>(i));
  EXPECT_EQ(parseAlgorithm("hierarchical"), Algorithm::kHierarchical);
  EXPECT_EQ(parseAlgorithm(algorithmName(Algorithm::kLatency)), Algorithm::kLatency);
}

}  // namespace
}  // namespace xsite::coll
