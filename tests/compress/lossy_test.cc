// The lossy codecs: round trips, known values, every ISA bit for bit against the scalar
// reference, and decode's checks (including a mutation fuzz loop with guard bytes).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "compress/element.h"
#include "compress/kernels.h"

namespace xsite::compress {
namespace {

const CodecId kLossy[] = {CodecId::kBf16, CodecId::kFp16, CodecId::kInt8, CodecId::kFp8,
                          CodecId::kInt4};
const DataType kTypes[] = {DataType::kFloat32, DataType::kBfloat16, DataType::kFloat16};
const size_t kCounts[] = {0, 1, 7, 255, 256, 257, 4099, size_t{1} << 20};

bool blockScaled(CodecId id) { return id == CodecId::kInt8 || id == CodecId::kFp8 || id == CodecId::kInt4; }
float qmaxOf(CodecId id) {
  return id == CodecId::kInt8 ? 127.0f : id == CodecId::kInt4 ? 7.0f : 448.0f;
}

// `values` stored as `type` (nearest even), as raw bytes.
std::vector<uint8_t> typed(const std::vector<float>& values, DataType type) {
  std::vector<uint8_t> out(values.size() * dataTypeSize(type));
  for (size_t i = 0; i < values.size(); ++i) element::storeFloat(type, out.data(), i, values[i]);
  return out;
}

std::vector<float> normal(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<uint8_t> encode(const Codec& c, const std::vector<uint8_t>& src, size_t count, DataType type) {
  std::vector<uint8_t> out(c.maxEncodedBytes(count, type));
  auto r = c.encode(src.data(), count, type, out.data(), out.size());
  EXPECT_TRUE(r) << r.status().message();
  if (r) {
    EXPECT_EQ(r.value(), out.size());
  }
  return out;
}

TEST(LossyCodec, RoundTripsWithinTheirBounds) {
  for (CodecId id : kLossy)
    for (DataType type : kTypes)
      for (size_t count : kCounts) {
        SCOPED_TRACE(std::string(codecName(id)) + " " + std::string(dataTypeName(type)) + " n=" + std::to_string(count));
        auto codec = makeCodec(id);
        const auto src = typed(normal(count, 7 + static_cast<uint32_t>(count), 3.0f), type);
        const auto enc = encode(*codec, src, count, type);
        std::vector<uint8_t> dec(count * dataTypeSize(type) + 1, 0xa5);
        auto st = codec->decode(enc.data(), enc.size(), count, type, dec.data());
        ASSERT_TRUE(st) << st.message();
        EXPECT_EQ(dec.back(), 0xa5);  // nothing past the output
        const size_t bs = 256;
        for (size_t b = 0; b * bs < count; ++b) {
          const size_t end = std::min(count, (b + 1) * bs);
          float amax = 0;
          for (size_t i = b * bs; i < end; ++i) amax = std::max(amax, std::fabs(element::loadFloat(type, src.data(), i)));
          const double step = blockScaled(id) ? amax / qmaxOf(id) : 0;
          for (size_t i = b * bs; i < end; ++i) {
            const double x = element::loadFloat(type, src.data(), i), y = element::loadFloat(type, dec.data(), i);
            double bound;  // the codec's error, plus the output type's own rounding
            if (id == CodecId::kBf16 || id == CodecId::kFp16)
              bound = std::fabs(x) * (id == CodecId::kBf16 ? 0x1p-8 : 0x1p-11) + 0x1p-24;
            else if (id == CodecId::kFp8)
              bound = std::max(std::fabs(x) * 0x1p-4, step * 0x1p-10) * 1.001;
            else
              bound = step * 0.5 * 1.001;
            if (type != DataType::kFloat32) bound += std::fabs(y) * (type == DataType::kBfloat16 ? 0x1p-8 : 0x1p-11);
            ASSERT_LE(std::fabs(x - y), bound) << "element " << i << " x=" << x << " y=" << y;
          }
        }
      }
}

TEST(LossyCodec, KnownValues) {
  auto encodeF = [](CodecId id, const std::vector<float>& v, uint32_t bs) {
    auto c = makeCodec(id, CodecOptions{bs, 1});
    return encode(*c, typed(v, DataType::kFloat32), v.size(), DataType::kFloat32);
  };
  auto scaleAt = [](const std::vector<uint8_t>& e, size_t b) {
    float s;
    memcpy(&s, e.data() + 24 + 4 * b, 4);
    return s;
  };
  // int8: amax 127 gives scale 1; 0.5 and 2.5 round to even, -2.5 to -2.
  auto e = encodeF(CodecId::kInt8, {1, -2, 127, 0.5f, 2.5f, 3.5f, -2.5f, -127}, 8);
  EXPECT_EQ(scaleAt(e, 0), 1.0f);
  EXPECT_EQ(std::vector<uint8_t>(e.begin() + 28, e.end()),
            (std::vector<uint8_t>{1, 0xfe, 127, 0, 2, 4, 0xfe, 0x81}));
  // int4: amax 7, scale 1: 7, -7, 3.5 -> 4, 1; two codes a byte, low nibble first; odd tail 0.
  e = encodeF(CodecId::kInt4, {7, -7, 3.5f, 1, 2}, 6);
  EXPECT_EQ(scaleAt(e, 0), 1.0f);
  EXPECT_EQ(std::vector<uint8_t>(e.begin() + 28, e.end()), (std::vector<uint8_t>{0x97, 0x14, 0x02}));
  // fp8 e4m3: amax 448 is code 0x7e; 1 = 0x38; ties to even: 1.0625 -> 1, 1.1875 -> 1.25;
  // -0 keeps its sign; 2^-9 is the smallest subnormal; 2^-10 ties down to 0.
  e = encodeF(CodecId::kFp8, {448, 1, 1.0625f, 1.1875f, -0.0f, 0x1p-9f, 0x1p-10f, -3 * 0x1p-10f}, 8);
  EXPECT_EQ(scaleAt(e, 0), 1.0f);
  EXPECT_EQ(std::vector<uint8_t>(e.begin() + 28, e.end()),
            (std::vector<uint8_t>{0x7e, 0x38, 0x38, 0x3a, 0x80, 0x01, 0x00, 0x82}));
  // A non-finite element makes its block's scale NaN and its codes 0; other blocks are intact.
  const float inf = std::numeric_limits<float>::infinity();
  e = encodeF(CodecId::kInt8, {1, NAN, 2, 4, -inf, 1}, 2);
  EXPECT_EQ(floatToBits(scaleAt(e, 0)), element::kScaleNaNBits);
  EXPECT_EQ(floatToBits(scaleAt(e, 2)), element::kScaleNaNBits);
  EXPECT_EQ(scaleAt(e, 1), 4.0f / 127.0f);
  std::vector<float> out(6);
  ASSERT_TRUE(makeCodec(CodecId::kInt8, {2, 1})->decode(e.data(), e.size(), 6, DataType::kFloat32, out.data()));
  EXPECT_TRUE(std::isnan(out[0]) && std::isnan(out[1]) && std::isnan(out[4]) && std::isnan(out[5]));
  EXPECT_NEAR(out[2], 2.0f, 4.0f / 127);
  EXPECT_EQ(out[3], 4.0f);
  // All zeros: scale 0, decodes to 0.
  e = encodeF(CodecId::kFp8, {0, 0}, 2);
  EXPECT_EQ(scaleAt(e, 0), 0.0f);
  // Casts: ties to even; fp16 overflows to Inf at 65520.
  e = encodeF(CodecId::kBf16, {1.00390625f, 1.01171875f}, 2);
  EXPECT_EQ(std::vector<uint8_t>(e.begin() + 24, e.end()), (std::vector<uint8_t>{0x80, 0x3f, 0x82, 0x3f}));
  e = encodeF(CodecId::kFp16, {65520.0f, 65519.0f, -0.0f}, 2);
  EXPECT_EQ(std::vector<uint8_t>(e.begin() + 24, e.end()), (std::vector<uint8_t>{0x00, 0x7c, 0xff, 0x7b, 0x00, 0x80}));
}

// floatToE4m3 against a brute-force nearest (ties to the even code) over the 254 finite codes.
TEST(LossyElement, E4m3IsNearestEvenAndSaturates) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-500.0f, 500.0f);
  std::vector<float> probes;
  for (int c = 0; c < 256; ++c)
    if (!element::isE4m3NaN(static_cast<uint8_t>(c))) {
      const float v = element::e4m3ToFloat(static_cast<uint8_t>(c));
      probes.insert(probes.end(), {v, std::nextafter(v, 1e9f), std::nextafter(v, -1e9f)});
      EXPECT_EQ(element::floatToE4m3(v), c == 0x80 ? 0x80 : c) << c;
    }
  for (int i = 0; i < 20000; ++i) probes.push_back(d(rng) * (i % 3 == 0 ? 0.01f : 1.0f));
  for (float x : probes) {
    int best = -1;
    double bestErr = 1e30;
    for (int c = 0; c < 256; ++c) {
      if (element::isE4m3NaN(static_cast<uint8_t>(c)) || (c == 0x80 && !std::signbit(x)) || (c == 0 && std::signbit(x))) continue;
      const double err = std::fabs(double(element::e4m3ToFloat(static_cast<uint8_t>(c))) - x);
      if (err < bestErr || (err == bestErr && (c & 1) == 0)) best = c, bestErr = err;
    }
    EXPECT_EQ(element::floatToE4m3(x), best) << x;
  }
}

// ---- every ISA equals the scalar reference, bit for bit ----------------------------------

std::vector<std::vector<float>> awkwardData(size_t n) {
  std::mt19937 rng(11);
  std::vector<std::vector<float>> sets;
  sets.push_back(normal(n, 1));
  auto heavy = normal(n, 2);  // Student-t-like: normal / sqrt(uniform)
  std::uniform_real_distribution<float> u(1e-6f, 1.0f);
  for (auto& x : heavy) x /= std::sqrt(u(rng)) * u(rng);
  sets.push_back(heavy);
  auto tiny = normal(n, 3);  // subnormal floats and blocks whose QMAX / amax overflows
  for (size_t i = 0; i < n; ++i) tiny[i] *= (i / 64) % 2 ? 1e-39f : 1e-30f;
  sets.push_back(tiny);
  std::vector<float> zeros(n);
  for (size_t i = 0; i < n; ++i) zeros[i] = i % 3 ? 0.0f : -0.0f;
  sets.push_back(zeros);
  auto special = normal(n, 4);
  for (size_t i = 0; i < n; i += 97) special[i] = (i / 97) % 3 == 0 ? NAN : (i / 97) % 3 == 1 ? INFINITY : -INFINITY;
  sets.push_back(special);
  std::vector<float> bits(n);  // any pattern: NaN payloads, huge values
  for (auto& x : bits) x = bitsToFloat(rng());
  sets.push_back(bits);
  return sets;
}

TEST(LossyKernels, EveryIsaMatchesScalar) {
  const Kernels& ref = scalarKernels();
  int compared = 0;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    const Kernels* k = kernelsFor(isa);
    if (k == nullptr) continue;
    ++compared;
    for (size_t n : {size_t{1}, size_t{7}, size_t{15}, size_t{17}, size_t{255}, size_t{257}, size_t{4099}, size_t{65536 + 33}})
      for (const auto& data : awkwardData(n))
        for (DataType type : kTypes) {
          auto src = typed(data, type);
          if (type != DataType::kFloat32)  // raw 16-bit patterns too
            for (size_t i = 0; i < n; i += 5) memcpy(src.data() + 2 * i, data.data() + i, 2);
          for (CodecId id : kLossy)
            for (uint32_t bs : {2u, 6u, 24u, 256u, 4098u}) {
              if (!blockScaled(id) && bs != 2u) continue;
              SCOPED_TRACE(std::string(k->name) + " " + std::string(codecName(id)) + " " + std::string(dataTypeName(type)) + " n=" + std::to_string(n) + " bs=" + std::to_string(bs));
              const size_t blocks = (n + bs - 1) / bs;
              const size_t bytes = !blockScaled(id) ? 2 * n : 4 * blocks + (id == CodecId::kInt4 ? (n + 1) / 2 : n);
              std::vector<uint8_t> a(bytes + 1, 0x5a), b(bytes + 1, 0x5a);
              if (!blockScaled(id)) {
                ref.castEncode(id, type, src.data(), n, a.data());
                k->castEncode(id, type, src.data(), n, b.data());
              } else {
                ref.blockEncode(id, type, src.data(), n, bs, a.data(), a.data() + 4 * blocks);
                k->blockEncode(id, type, src.data(), n, bs, b.data(), b.data() + 4 * blocks);
              }
              ASSERT_EQ(a, b);
              for (DataType out : kTypes) {
                std::vector<uint8_t> da(n * 4 + 1, 0x33), db(n * 4 + 1, 0x33);
                if (!blockScaled(id)) {
                  ref.castDecode(id, a.data(), n, out, da.data());
                  k->castDecode(id, a.data(), n, out, db.data());
                } else {
                  EXPECT_TRUE(ref.blockDecode(id, a.data(), a.data() + 4 * blocks, n, bs, out, da.data()));
                  EXPECT_TRUE(k->blockDecode(id, a.data(), a.data() + 4 * blocks, n, bs, out, db.data()));
                }
                ASSERT_EQ(da, db) << "decoded to " << dataTypeName(out);
              }
            }
        }
  }
  const std::string_view isa = codecIsa();
  EXPECT_TRUE(isa == "scalar" || isa == "avx2" || isa == "avx512") << isa;
  if (compared == 0) GTEST_SKIP() << "this CPU has no vector ISA to compare";
}

TEST(LossyKernels, Fp8NanCodesAreReportedOnEveryIsa) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    const Kernels* k = kernelsFor(isa);
    if (k == nullptr) continue;
    std::vector<uint8_t> scales(4 * 3, 0), codes(40, 0x38);
    std::vector<float> out(40);
    EXPECT_TRUE(k->blockDecode(CodecId::kFp8, scales.data(), codes.data(), 40, 16, DataType::kFloat32, out.data()));
    for (size_t at : {size_t{3}, size_t{39}}) {
      codes[at] = at == 3 ? 0x7f : 0xff;
      EXPECT_FALSE(k->blockDecode(CodecId::kFp8, scales.data(), codes.data(), 40, 16, DataType::kFloat32, out.data())) << k->name;
      codes[at] = 0x38;
    }
  }
}

}  // namespace
}  // namespace xsite::compress
