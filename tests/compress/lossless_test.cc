// The lossless codecs (lz4, zstd): bit-exact round trips for every type, the raw-or-compressed
// decision, the shuffle's paths against each other, and decode's distrust of its input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "compress/codec.h"
#include "compress/shuffle.h"
#include "compress/zero_map.h"

namespace xsite::compress {
namespace {

constexpr CodecId kLossless[] = {CodecId::kLz4, CodecId::kZstd};
enum class Kind { kRandom, kZeros, kSmooth };

std::vector<uint8_t> makeData(DataType type, size_t count, Kind kind, uint32_t seed = 1) {
  std::vector<uint8_t> v(count * dataTypeSize(type), 0);
  if (kind == Kind::kRandom) {
    std::mt19937 rng(seed);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
  } else if (kind == Kind::kSmooth) {
    for (size_t i = 0; i < count; ++i)
      elementFromDouble(v.data(), type, i, 50.0 + 50.0 * std::sin(0.001 * static_cast<double>(i)));
  }
  return v;
}

EncodedHeader headerOf(const std::vector<uint8_t>& enc) {
  EncodedHeader h;
  memcpy(&h, enc.data(), sizeof h);
  return h;
}

void setHeader(std::vector<uint8_t>& enc, const EncodedHeader& h) { memcpy(enc.data(), &h, sizeof h); }

std::vector<uint8_t> encodeOk(const Codec& codec, const std::vector<uint8_t>& in, size_t count,
                              DataType type) {
  std::vector<uint8_t> out(codec.maxEncodedBytes(count, type));
  auto r = codec.encode(in.data(), count, type, out.data(), out.size());
  EXPECT_TRUE(r) << r.status().message();
  if (!r) return {};
  EXPECT_LE(r.value(), out.size());
  out.resize(r.value());
  return out;
}

TEST(Lossless, RoundTripEveryTypeCountAndKind) {
  for (CodecId id : kLossless) {
    auto codec = makeCodec(id, CodecOptions{});
    ASSERT_NE(codec, nullptr);
    for (int t = 0; t < kNumDataTypes; ++t) {
      const auto type = static_cast<DataType>(t);
      const size_t e = dataTypeSize(type);
      for (size_t count : {size_t{0}, size_t{1}, size_t{7}, size_t{4097}, size_t{1} << 20}) {
        for (Kind kind : {Kind::kRandom, Kind::kZeros, Kind::kSmooth}) {
          SCOPED_TRACE(std::string(codecName(id)) + " " + std::string(dataTypeName(type)) + " n=" +
                       std::to_string(count) + " kind=" + std::to_string(static_cast<int>(kind)));
          const auto in = makeData(type, count, kind);
          const auto enc = encodeOk(*codec, in, count, type);
          ASSERT_GE(enc.size(), sizeof(EncodedHeader));
          const EncodedHeader h = headerOf(enc);
          EXPECT_EQ(h.count, count);
          EXPECT_EQ(h.payload, enc.size() - sizeof(EncodedHeader));
          if (kind == Kind::kRandom || (count <= 1 && kind != Kind::kZeros)) {
            EXPECT_EQ(h.flags, EncodedHeader::kRaw);  // noise does not shrink: sent raw
            EXPECT_EQ(enc.size(), sizeof(EncodedHeader) + count * e);
          } else if (count >= 4097) {
            // all zeros: zero-elided; smooth data: shuffled (integer types round a few percent
            // of it to 0, which can make the 8-byte ones zero-elided)
            if (kind == Kind::kZeros || !isFloatingPoint(type))
              EXPECT_NE(h.flags, EncodedHeader::kRaw);
            else
              EXPECT_EQ(h.flags, 0);
            if (kind == Kind::kZeros) {
              EXPECT_EQ(h.flags, EncodedHeader::kZeroMap);
            }
            EXPECT_LT(enc.size(), sizeof(EncodedHeader) + count * e);
          }
          std::vector<uint8_t> out(in.size() + 1, 0xA5);
          Status s = codec->decode(enc.data(), enc.size(), count, type, out.data());
          ASSERT_TRUE(s) << s.message();
          EXPECT_EQ(out.back(), 0xA5);  // nothing written past the elements
          out.pop_back();
          EXPECT_TRUE(out == in);
        }
      }
    }
  }
}

TEST(Lossless, ZstdLevels) {
  const auto in = makeData(DataType::kFloat32, 100000, Kind::kSmooth);
  for (int level : {-5, 1, 3, 9, 19}) {
    auto codec = makeCodec(CodecId::kZstd, CodecOptions{256, level});
    const auto enc = encodeOk(*codec, in, 100000, DataType::kFloat32);
    std::vector<uint8_t> out(in.size());
    ASSERT_TRUE(codec->decode(enc.data(), enc.size(), 100000, DataType::kFloat32, out.data()));
    EXPECT_TRUE(out == in) << "level " << level;
  }
}

TEST(Lossless, SmallOutputBufferIsInvalidUsage) {
  for (CodecId id : kLossless) {
    auto codec = makeCodec(id);
    const auto in = makeData(DataType::kFloat32, 1000, Kind::kZeros);
    std::vector<uint8_t> out(codec->maxEncodedBytes(1000, DataType::kFloat32) - 1);
    auto r = codec->encode(in.data(), 1000, DataType::kFloat32, out.data(), out.size());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.status().category(), ErrorCategory::kInvalidUsage);
  }
}

TEST(Shuffle, PathsAgreeAndInvert) {
  std::mt19937 rng(7);
  for (size_t e : {1, 2, 3, 4, 8}) {
    for (size_t count : {0, 1, 31, 32, 33, 63, 64, 65, 100, 4097, 100003}) {
      std::vector<uint8_t> in(count * e);
      for (auto& b : in) b = static_cast<uint8_t>(rng());
      std::vector<uint8_t> want(in.size());
      for (size_t i = 0; i < count; ++i)
        for (size_t b = 0; b < e; ++b) want[b * count + i] = in[i * e + b];
      for (ShuffleIsa isa : {ShuffleIsa::kScalar, ShuffleIsa::kAvx2}) {
        if (!shuffleIsaAvailable(isa)) continue;
        SCOPED_TRACE("E=" + std::to_string(e) + " n=" + std::to_string(count) +
                     (isa == ShuffleIsa::kAvx2 ? " avx2" : " scalar"));
        std::vector<uint8_t> planes(in.size() + 1, 0x5A), back(in.size() + 1, 0x5A);
        shuffleBytes(isa, in.data(), count, e, planes.data());
        EXPECT_EQ(planes.back(), 0x5A);
        planes.pop_back();
        EXPECT_TRUE(planes == want);
        unshuffleBytes(isa, planes.data(), count, e, back.data());
        EXPECT_EQ(back.back(), 0x5A);
        back.pop_back();
        EXPECT_TRUE(back == in);
      }
    }
  }
  if (!shuffleIsaAvailable(ShuffleIsa::kAvx2)) GTEST_SKIP() << "no AVX2: only the scalar path ran";
}

// One compressed and one raw encoding of 4097 float32, for the rejection tests.
struct Sample {
  std::vector<uint8_t> in, packed, raw;
};
Sample sample(const Codec& codec) {
  Sample s;
  s.in = makeData(DataType::kFloat32, 4097, Kind::kSmooth);
  s.packed = encodeOk(codec, s.in, 4097, DataType::kFloat32);
  s.raw = encodeOk(codec, makeData(DataType::kFloat32, 4097, Kind::kRandom), 4097, DataType::kFloat32);
  EXPECT_EQ(headerOf(s.packed).flags, 0);
  EXPECT_EQ(headerOf(s.raw).flags, EncodedHeader::kRaw);
  return s;
}

void expectRejected(const Codec& codec, const std::vector<uint8_t>& buf, size_t count = 4097,
                    DataType type = DataType::kFloat32) {
  std::vector<uint8_t> out(count * dataTypeSize(type) + 64, 0xA5);
  Status s = codec.decode(buf.data(), buf.size(), count, type, out.data());
  EXPECT_FALSE(s);
  if (!s) {
    EXPECT_EQ(s.category(), ErrorCategory::kRemote) << s.message();
    EXPECT_NE(s.message().find(codecName(codec.id())), std::string::npos) << s.message();
  }
  for (size_t i = count * dataTypeSize(type); i < out.size(); ++i) ASSERT_EQ(out[i], 0xA5);
}

TEST(Lossless, DecodeRejectsInconsistentBuffers) {
  for (CodecId id : kLossless) {
    SCOPED_TRACE(codecName(id));
    auto codec = makeCodec(id);
    const Sample s = sample(*codec);
    for (const auto* enc : {&s.packed, &s.raw}) {
      expectRejected(*codec, {enc->begin(), enc->end() - 1});  // truncated
      auto longer = *enc;
      longer.push_back(0);
      expectRejected(*codec, longer);  // trailing byte
      // The same with the header's payload size made to match: the codec itself must notice.
      auto cut = std::vector<uint8_t>(enc->begin(), enc->end() - 1);
      EncodedHeader h = headerOf(cut);
      h.payload -= 1;
      setHeader(cut, h);
      expectRejected(*codec, cut);
      h = headerOf(longer);
      h.payload += 1;
      setHeader(longer, h);
      expectRejected(*codec, longer);
      expectRejected(*codec, *enc, 4096);                    // wrong count
      expectRejected(*codec, *enc, 4097, DataType::kInt32);  // wrong type, same size
      auto other = makeCodec(id == CodecId::kLz4 ? CodecId::kZstd : CodecId::kLz4);
      expectRejected(*other, *enc);  // wrong codec
      for (uint8_t flags : {3, 4, 0x80}) {
        auto bad = *enc;
        h = headerOf(bad);
        h.flags = flags;
        setHeader(bad, h);
        expectRejected(*codec, bad);
      }
      auto bad = *enc;
      h = headerOf(bad);
      h.blockSize = 256;
      setHeader(bad, h);
      expectRejected(*codec, bad);
    }
    auto flip = s.packed;  // compressed data marked raw: wrong size
    EncodedHeader h = headerOf(flip);
    h.flags = EncodedHeader::kRaw;
    setHeader(flip, h);
    expectRejected(*codec, flip);
    flip = s.raw;  // raw data marked compressed: not smaller than raw
    h = headerOf(flip);
    h.flags = 0;
    setHeader(flip, h);
    expectRejected(*codec, flip);
    auto garbage = s.packed;  // a compressed payload of noise
    std::mt19937 rng(3);
    for (size_t i = sizeof(EncodedHeader); i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(rng());
    expectRejected(*codec, garbage);
  }
}

// Decodes 3000 mutations of `encoded` (4097 float32 elements), cycling through: 1..8 bytes
// flipped (mostly in the payload, sometimes in the header), the payload resized with the header
// fixed so only the codec can tell, and `extra` when given. None may crash, write past the
// output, or fail with anything but kRemote. Returns how many the decoder rejected.
int decodeMutations(const Codec& codec, const std::vector<uint8_t>& encoded, uint32_t seed,
                    const std::function<void(std::vector<uint8_t>&, std::mt19937&)>& extra = {}) {
  std::mt19937 rng(seed);
  const size_t rawBytes = 4097 * 4;
  std::vector<uint8_t> out(rawBytes + 64);
  const int modes = extra ? 5 : 4;
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto buf = encoded;
    const int mode = iter % modes;
    if (mode == 3) {
      const size_t n = sizeof(EncodedHeader) + rng() % (rawBytes + 16);
      buf.resize(n, static_cast<uint8_t>(rng()));
      EncodedHeader h = headerOf(buf);
      h.payload = static_cast<uint32_t>(n - sizeof(EncodedHeader));
      setHeader(buf, h);
    } else if (mode == 4) {
      extra(buf, rng);
    } else {
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int f = 0; f < flips; ++f) {
        const size_t at = (rng() % 16 == 0) ? rng() % sizeof(EncodedHeader) : rng() % buf.size();
        buf[at] ^= static_cast<uint8_t>(1 + rng() % 255);
      }
    }
    std::fill(out.begin(), out.end(), 0xA5);
    Status st = codec.decode(buf.data(), buf.size(), 4097, DataType::kFloat32, out.data());
    if (!st) {
      ++rejected;
      EXPECT_EQ(st.category(), ErrorCategory::kRemote) << st.message();
    }
    for (size_t i = rawBytes; i < out.size(); ++i)
      if (out[i] != 0xA5) {
        ADD_FAILURE() << "iteration " << iter << " wrote past the output";
        return rejected;
      }
  }
  return rejected;
}

TEST(Lossless, MutatedBuffersNeverCrash) {
  for (CodecId id : kLossless) {
    SCOPED_TRACE(codecName(id));
    auto codec = makeCodec(id);
    const Sample s = sample(*codec);
    ASSERT_EQ(s.in.size(), size_t{4097} * 4);
    // Most mutations are caught (LZ4 has no checksum: not all).
    EXPECT_GT(decodeMutations(*codec, s.packed, 11), 1000);
  }
}

// Elements of `type` with exactly round(frac * count) all-zero ones at random positions; the
// others are random bytes (never all zero) or, for every seventh, a special value: -0.0 or a NaN
// with a payload (floats), the sign bit alone (integers). Random values make a zero-map chunk's
// size predictable: only the zeros shrink.
std::vector<uint8_t> zeroData(DataType type, size_t count, double frac, uint32_t seed) {
  const size_t e = dataTypeSize(type);
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(count * e);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  for (size_t i = 0; i < count; ++i) {
    uint8_t* p = v.data() + i * e;
    if (i % 7 == 3) {
      std::fill(p, p + e, 0);
      p[e - 1] = 0x80;  // -0.0 for every float type; the sign bit alone otherwise
      if (i % 14 == 3 && e >= 2) {  // a NaN with payload bits
        std::fill(p, p + e, 0xff);
        p[0] = 0x01;
        p[e - 1] = 0x7f;
      }
    }
    if (std::all_of(p, p + e, [](uint8_t b) { return b == 0; })) p[0] = 1;
  }
  std::vector<size_t> idx(count);
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::shuffle(idx.begin(), idx.end(), rng);
  const auto zeros = static_cast<size_t>(std::llround(frac * static_cast<double>(count)));
  for (size_t k = 0; k < zeros; ++k) std::fill_n(v.data() + idx[k] * e, e, uint8_t{0});
  return v;
}

TEST(LosslessZeroMap, RoundTripEveryTypeAndZeroFraction) {
  for (CodecId id : kLossless) {
    auto codec = makeCodec(id, CodecOptions{});
    for (int t = 0; t < kNumDataTypes; ++t) {
      const auto type = static_cast<DataType>(t);
      const size_t e = dataTypeSize(type);
      for (size_t count : {size_t{1}, size_t{9}, size_t{4097}, size_t{100003}}) {
        for (double frac : {0.0, 0.1, 0.5, 0.99, 1.0}) {
          SCOPED_TRACE(std::string(codecName(id)) + " " + std::string(dataTypeName(type)) +
                       " n=" + std::to_string(count) + " zeros=" + std::to_string(frac));
          const auto in = zeroData(type, count, frac, static_cast<uint32_t>(t * 131 + count));
          const auto enc = encodeOk(*codec, in, count, type);
          ASSERT_GE(enc.size(), sizeof(EncodedHeader));
          const EncodedHeader h = headerOf(enc);
          const size_t zeros = static_cast<size_t>(std::llround(frac * static_cast<double>(count)));
          // The rule: the zero elements' bytes at least 4x the bitmap's.
          const bool zeroMap = zeros * e * 8 >= 4 * count;
          if (count >= 4097) {
            if (zeroMap) {
              EXPECT_EQ(h.flags, EncodedHeader::kZeroMap);
              EXPECT_LT(enc.size(), sizeof(EncodedHeader) + count * e);
            } else {
              EXPECT_NE(h.flags, EncodedHeader::kZeroMap);
            }
          }
          if (h.flags == EncodedHeader::kZeroMap) {
            uint32_t nonZero;
            memcpy(&nonZero, enc.data() + sizeof(EncodedHeader), 4);
            EXPECT_EQ(nonZero, count - zeros);
          }
          std::vector<uint8_t> out(in.size() + 1, 0xA5);
          Status s = codec->decode(enc.data(), enc.size(), count, type, out.data());
          ASSERT_TRUE(s) << s.message();
          EXPECT_EQ(out.back(), 0xA5);
          out.pop_back();
          EXPECT_TRUE(out == in);
        }
      }
    }
  }
}

TEST(LosslessZeroMap, NegativeZeroIsNotZero) {
  // All -0.0: no element is zero bitwise, so no zero map; the shuffle compresses it instead.
  const size_t count = 10000;
  std::vector<uint8_t> in(count * 4, 0);
  for (size_t i = 0; i < count; ++i) in[i * 4 + 3] = 0x80;
  for (CodecId id : kLossless) {
    auto codec = makeCodec(id);
    const auto enc = encodeOk(*codec, in, count, DataType::kFloat32);
    EXPECT_EQ(headerOf(enc).flags, 0);
    std::vector<uint8_t> out(in.size());
    ASSERT_TRUE(codec->decode(enc.data(), enc.size(), count, DataType::kFloat32, out.data()));
    EXPECT_TRUE(out == in);
  }
}

TEST(LosslessZeroMap, RowSparseAndReluFloatsShrink) {
  // relu-like: half the elements zero, the rest smooth; row-sparse: 3 of 4 rows of 256 zero.
  const size_t count = size_t{1} << 18;
  for (int kind = 0; kind < 2; ++kind) {
    std::vector<float> v(count);
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 0.01f);
    for (auto& x : v) x = normal(rng);
    for (size_t i = 0; i < count; ++i)
      if (kind == 0 ? rng() % 2 == 0 : (i / 256) % 4 != 0) v[i] = 0.0f;
    std::vector<uint8_t> in(count * 4);
    memcpy(in.data(), v.data(), in.size());
    for (CodecId id : kLossless) {
      auto codec = makeCodec(id);
      const auto enc = encodeOk(*codec, in, count, DataType::kFloat32);
      EXPECT_EQ(headerOf(enc).flags, EncodedHeader::kZeroMap);
      // relu: about 1.8x at least; row-sparse: about 4x
      EXPECT_LT(enc.size() * (kind == 0 ? 17 : 35), in.size() * 10) << codecName(id) << " " << kind;
      std::vector<uint8_t> out(in.size());
      ASSERT_TRUE(codec->decode(enc.data(), enc.size(), count, DataType::kFloat32, out.data()));
      EXPECT_TRUE(out == in);
    }
  }
}

TEST(ZeroMap, PathsAgree) {
  const ZeroMapIsa isas[] = {ZeroMapIsa::kScalar, ZeroMapIsa::kAvx2, ZeroMapIsa::kAvx512};
  const char* names[] = {"scalar", "avx2", "avx512"};
  for (size_t e : {1, 2, 3, 4, 8}) {
    for (size_t count : {0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 4097, 100003}) {
      for (double frac : {0.0, 0.1, 0.5, 0.99, 1.0}) {
        // random bytes, with zero elements and elements with a single non-zero byte
        std::mt19937 rng(static_cast<uint32_t>(e * 1000 + count));
        std::vector<uint8_t> in(count * e);
        for (auto& b : in) b = static_cast<uint8_t>(rng());
        for (size_t i = 0; i < count; ++i) {
          if (rng() % 5 == 0) {
            std::fill_n(in.data() + i * e, e, uint8_t{0});
            in[i * e + rng() % e] = static_cast<uint8_t>(1 + rng() % 255);
          }
          if (static_cast<double>(rng() % 1000) < frac * 1000) std::fill_n(in.data() + i * e, e, uint8_t{0});
        }
        size_t wantZeros = 0;
        std::vector<uint8_t> wantBitmap(zeroMapBitmapBytes(count), 0), wantPacked;
        for (size_t i = 0; i < count; ++i) {
          const bool nz = std::any_of(in.begin() + i * e, in.begin() + (i + 1) * e,
                                      [](uint8_t b) { return b != 0; });
          if (nz) {
            wantBitmap[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
            wantPacked.insert(wantPacked.end(), in.begin() + i * e, in.begin() + (i + 1) * e);
          } else {
            ++wantZeros;
          }
        }
        for (int k = 0; k < 3; ++k) {
          if (!zeroMapIsaAvailable(isas[k])) continue;
          SCOPED_TRACE("E=" + std::to_string(e) + " n=" + std::to_string(count) + " frac=" +
                       std::to_string(frac) + " " + names[k]);
          EXPECT_EQ(countZeroElements(isas[k], in.data(), count, e), wantZeros);
          std::vector<uint8_t> bitmap(wantBitmap.size() + 1, 0x5A);
          std::vector<uint8_t> packed(count * e + kZeroMapSlack, 0x5A);
          const size_t n = packNonZero(isas[k], in.data(), count, e, bitmap.data(), packed.data());
          ASSERT_EQ(n, count - wantZeros);
          EXPECT_EQ(bitmap.back(), 0x5A);
          bitmap.pop_back();
          EXPECT_TRUE(bitmap == wantBitmap);
          EXPECT_TRUE(std::equal(wantPacked.begin(), wantPacked.end(), packed.begin()));
          std::vector<uint8_t> src(wantPacked);
          src.resize(src.size() + kZeroMapSlack, 0x77);  // slack: garbage that must not leak
          std::vector<uint8_t> out(count * e + 1, 0x5A);
          unpackNonZero(isas[k], wantBitmap.data(), src.data(), count, e, out.data());
          EXPECT_EQ(out.back(), 0x5A);
          out.pop_back();
          EXPECT_TRUE(out == in);
        }
        for (ShuffleIsa isa : {ShuffleIsa::kScalar, ShuffleIsa::kAvx2}) {
          if (!shuffleIsaAvailable(isa)) continue;
          std::vector<uint8_t> planes(in.size()), want(in.size());
          shuffleBytes(ShuffleIsa::kScalar, in.data(), count, e, want.data());
          EXPECT_EQ(shuffleBytesCountZeros(isa, in.data(), count, e, planes.data()), wantZeros);
          EXPECT_TRUE(planes == want);
        }
      }
    }
  }
  if (!zeroMapIsaAvailable(ZeroMapIsa::kAvx512)) GTEST_SKIP() << "no AVX-512: not every path ran";
}

// A zero-mapped encoding of 4097 float32 (half zero, the rest smooth) for the rejection tests.
std::vector<uint8_t> zeroMapSample(const Codec& codec, size_t count = 4097, size_t tailNonZero = 0) {
  std::vector<uint8_t> in = makeData(DataType::kFloat32, count, Kind::kSmooth);
  for (size_t i = 0; i + tailNonZero < count; i += 2) std::fill_n(in.data() + 4 * i, 4, uint8_t{0});
  auto enc = encodeOk(codec, in, count, DataType::kFloat32);
  EXPECT_EQ(headerOf(enc).flags, EncodedHeader::kZeroMap);
  return enc;
}

TEST(LosslessZeroMap, DecodeRejectsInconsistentBuffers) {
  for (CodecId id : kLossless) {
    SCOPED_TRACE(codecName(id));
    auto codec = makeCodec(id);
    const auto enc = zeroMapSample(*codec);
    std::vector<uint8_t> out(4097 * 4);
    ASSERT_TRUE(codec->decode(enc.data(), enc.size(), 4097, DataType::kFloat32, out.data()));
    expectRejected(*codec, {enc.begin(), enc.end() - 1});
    // the non-zero count: one off either way, more than count, zero
    for (uint32_t n : {2047u, 2049u, 4098u, 0xffffffffu, 0u}) {  // 2048 is right
      auto bad = enc;
      memcpy(bad.data() + sizeof(EncodedHeader), &n, 4);
      expectRejected(*codec, bad);
    }
    // only the count, or less
    for (size_t keep : {0, 3, 4}) {
      std::vector<uint8_t> cut(enc.begin(), enc.begin() + sizeof(EncodedHeader) + keep);
      EncodedHeader h = headerOf(cut);
      h.payload = static_cast<uint32_t>(keep);
      setHeader(cut, h);
      expectRejected(*codec, cut);
    }
    // bits set past the last element: 4100 elements whose last three are non-zero, passed off
    // as 4097 (the same bitmap size; the stream's size matches the count it carries)
    auto longer = zeroMapSample(*codec, 4100, 3);
    EncodedHeader h = headerOf(longer);
    h.count = 4097;
    setHeader(longer, h);
    expectRejected(*codec, longer);
    // a zero-map payload claimed as shuffled, and a shuffled one claimed as zero-mapped
    auto flip = enc;
    h = headerOf(flip);
    h.flags = 0;
    setHeader(flip, h);
    expectRejected(*codec, flip);
    flip = sample(*codec).packed;
    h = headerOf(flip);
    h.flags = EncodedHeader::kZeroMap;
    setHeader(flip, h);
    expectRejected(*codec, flip);
  }
}

TEST(LosslessZeroMap, MutatedBuffersNeverCrash) {
  for (CodecId id : kLossless) {
    SCOPED_TRACE(codecName(id));
    auto codec = makeCodec(id);
    // The zero-elided form has one more field to garble: the non-zero count.
    auto garbleCount = [](std::vector<uint8_t>& buf, std::mt19937& rng) {
      const uint32_t n = rng() % 2 ? static_cast<uint32_t>(rng()) : static_cast<uint32_t>(rng() % 4200);
      memcpy(buf.data() + sizeof(EncodedHeader), &n, 4);
    };
    EXPECT_GT(decodeMutations(*codec, zeroMapSample(*codec), 13, garbleCount), 1000);
  }
}

}  // namespace
}  // namespace xsite::compress
