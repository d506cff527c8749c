// The lossless codecs (lz4, zstd): bit-exact round trips for every type, the raw-or-compressed
// decision, the shuffle's paths against each other, and decode's distrust of its input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "compress/codec.h"
#include "compress/shuffle.h"

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
          if (kind == Kind::kRandom || count <= 1) {
            EXPECT_EQ(h.flags, EncodedHeader::kRaw);  // noise does not shrink: sent raw
            EXPECT_EQ(enc.size(), sizeof(EncodedHeader) + count * e);
          } else if (count >= 4097) {
            EXPECT_EQ(h.flags, 0);  // compressed, and smaller
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
      for (uint8_t flags : {2, 3, 0x80}) {
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

TEST(Lossless, MutatedBuffersNeverCrash) {
  for (CodecId id : kLossless) {
    SCOPED_TRACE(codecName(id));
    auto codec = makeCodec(id);
    const Sample s = sample(*codec);
    std::mt19937 rng(11);
    const size_t rawBytes = s.in.size();
    std::vector<uint8_t> out(rawBytes + 64);
    int rejected = 0;
    for (int iter = 0; iter < 3000; ++iter) {
      auto buf = s.packed;
      const int mode = iter % 4;
      if (mode == 3) {  // resize the payload and fix the header so only the codec can tell
        const size_t n = sizeof(EncodedHeader) + rng() % (rawBytes + 16);
        buf.resize(n, static_cast<uint8_t>(rng()));
        EncodedHeader h = headerOf(buf);
        h.payload = static_cast<uint32_t>(n - sizeof(EncodedHeader));
        setHeader(buf, h);
      } else {  // flip 1..8 bytes, mostly in the payload, sometimes in the header
        const int flips = 1 + static_cast<int>(rng() % 8);
        for (int f = 0; f < flips; ++f) {
          const size_t at = (rng() % 16 == 0) ? rng() % sizeof(EncodedHeader) : rng() % buf.size();
          buf[at] ^= static_cast<uint8_t>(1 + rng() % 255);
        }
      }
      std::fill(out.begin(), out.end(), 0xA5);
      Status st = codec->decode(buf.data(), buf.size(), 4097, DataType::kFloat32, out.data());
      if (!st) {
        ++rejected;
        EXPECT_EQ(st.category(), ErrorCategory::kRemote) << st.message();
      }
      for (size_t i = rawBytes; i < out.size(); ++i) ASSERT_EQ(out[i], 0xA5) << "iteration " << iter;
    }
    EXPECT_GT(rejected, 1000);  // most mutations are caught (LZ4 has no checksum: not all)
  }
}

}  // namespace
}  // namespace xsite::compress
