// The codec registry (names, lossy or not, which types) and the none codec.
#include "compress/codec.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <vector>

namespace xsite::compress {
namespace {

constexpr const char* kAllNames[kNumCodecs] = {"none", "lz4", "zstd", "bf16",
                                               "fp16", "int8", "fp8", "int4"};

TEST(CodecRegistry, NamesRoundTrip) {
  for (int i = 0; i < kNumCodecs; ++i) {
    const auto id = static_cast<CodecId>(i);
    EXPECT_EQ(codecName(id), kAllNames[i]);
    auto parsed = parseCodec(kAllNames[i]);
    ASSERT_TRUE(parsed.has_value()) << kAllNames[i];
    EXPECT_EQ(*parsed, id);
  }
}

TEST(CodecRegistry, UnknownNames) {
  for (const char* name : {"", "LZ4", "Zstd", "gzip", "lz4 ", "int16", "fp32"})
    EXPECT_FALSE(parseCodec(name).has_value()) << '"' << name << '"';
  for (int bad : {kNumCodecs, 255}) {  // out-of-range ids get a placeholder that never parses
    const auto name = codecName(static_cast<CodecId>(bad));
    EXPECT_FALSE(name.empty());
    EXPECT_FALSE(parseCodec(name).has_value()) << name;
  }
}

TEST(CodecRegistry, Lossy) {
  EXPECT_FALSE(isLossy(CodecId::kNone));
  EXPECT_FALSE(isLossy(CodecId::kLz4));
  EXPECT_FALSE(isLossy(CodecId::kZstd));
  for (CodecId id : {CodecId::kBf16, CodecId::kFp16, CodecId::kInt8, CodecId::kFp8, CodecId::kInt4})
    EXPECT_TRUE(isLossy(id)) << codecName(id);
}

TEST(CodecRegistry, SupportedTypes) {
  for (int c = 0; c < kNumCodecs; ++c) {
    const auto id = static_cast<CodecId>(c);
    for (int t = 0; t < kNumDataTypes; ++t) {
      const auto type = static_cast<DataType>(t);
      const bool floatInput = type == DataType::kFloat32 || type == DataType::kBfloat16 ||
                              type == DataType::kFloat16;
      EXPECT_EQ(codecSupports(id, type), !isLossy(id) || floatInput)
          << codecName(id) << " " << dataTypeName(type);
    }
  }
}

TEST(CodecRegistry, LosslessFactories) {
  for (CodecId id : {CodecId::kNone, CodecId::kLz4, CodecId::kZstd}) {
    auto codec = makeCodec(id);
    ASSERT_NE(codec, nullptr) << codecName(id);
    EXPECT_EQ(codec->id(), id);
  }
}

std::vector<uint8_t> encodeNone(const Codec& codec, const std::vector<float>& in) {
  std::vector<uint8_t> out(codec.maxEncodedBytes(in.size(), DataType::kFloat32));
  auto r = codec.encode(in.data(), in.size(), DataType::kFloat32, out.data(), out.size());
  EXPECT_TRUE(r) << r.status().message();
  EXPECT_EQ(r.value(), out.size());
  return out;
}

TEST(NoneCodec, RoundTrip) {
  auto codec = makeCodec(CodecId::kNone);
  for (size_t n : {0, 1, 7, 1000}) {
    std::vector<float> in(n);
    for (size_t i = 0; i < n; ++i) in[i] = 0.5f * static_cast<float>(i) - 3.0f;
    auto enc = encodeNone(*codec, in);
    EXPECT_EQ(enc.size(), sizeof(EncodedHeader) + 4 * n);
    std::vector<float> out(n, -1.0f);
    Status s = codec->decode(enc.data(), enc.size(), n, DataType::kFloat32, out.data());
    ASSERT_TRUE(s) << s.message();
    EXPECT_EQ(out, in);
  }
}

TEST(NoneCodec, RejectsInconsistentInput) {
  auto codec = makeCodec(CodecId::kNone);
  std::vector<float> in(100, 1.5f), out(101);
  auto enc = encodeNone(*codec, in);
  auto expectRemote = [&](const std::vector<uint8_t>& buf, size_t count, DataType type) {
    Status s = codec->decode(buf.data(), buf.size(), count, type, out.data());
    EXPECT_FALSE(s);
    EXPECT_EQ(s.category(), ErrorCategory::kRemote);
    EXPECT_FALSE(s.message().empty());
  };
  expectRemote(enc, 99, DataType::kFloat32);   // wrong count
  expectRemote(enc, 100, DataType::kInt32);    // wrong type
  expectRemote({enc.begin(), enc.end() - 1}, 100, DataType::kFloat32);  // truncated
  auto longer = enc;
  longer.push_back(0);
  expectRemote(longer, 100, DataType::kFloat32);  // trailing byte
  expectRemote({enc.begin(), enc.begin() + 10}, 100, DataType::kFloat32);  // shorter than header
  auto bad = enc;
  bad[0] ^= 1;
  expectRemote(bad, 100, DataType::kFloat32);  // magic
  bad = enc;
  bad[offsetof(EncodedHeader, codec)] = static_cast<uint8_t>(CodecId::kLz4);
  expectRemote(bad, 100, DataType::kFloat32);  // codec
  bad = enc;
  bad[offsetof(EncodedHeader, reserved) + 1] = 7;
  expectRemote(bad, 100, DataType::kFloat32);  // reserved
}

TEST(NoneCodec, SmallOutputBufferIsInvalidUsage) {
  auto codec = makeCodec(CodecId::kNone);
  std::vector<float> in(10);
  std::vector<uint8_t> out(codec->maxEncodedBytes(10, DataType::kFloat32) - 1);
  auto r = codec->encode(in.data(), 10, DataType::kFloat32, out.data(), out.size());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().category(), ErrorCategory::kInvalidUsage);
}

TEST(NominalRatio, MatchesTheEncodedSizes) {
  // The planner's ratio equals what the lossy codecs really put on the wire (headers aside).
  const size_t n = 1 << 16;
  for (CodecId id : {CodecId::kBf16, CodecId::kFp16, CodecId::kInt8, CodecId::kFp8, CodecId::kInt4})
    for (DataType t : {DataType::kFloat32, DataType::kBfloat16}) {
      auto codec = makeCodec(id);
      const double wire = static_cast<double>(codec->maxEncodedBytes(n, t) - sizeof(EncodedHeader));
      EXPECT_NEAR(nominalRatio(id, t, 256), n * dataTypeSize(t) / wire, 1e-9) << codecName(id);
    }
  EXPECT_EQ(nominalRatio(CodecId::kNone, DataType::kFloat32, 256), 1.0);
  EXPECT_EQ(nominalRatio(CodecId::kLz4, DataType::kFloat32, 256), 1.0);   // data-dependent
  EXPECT_EQ(nominalRatio(CodecId::kInt8, DataType::kInt32, 256), 1.0);    // does not apply
  EXPECT_NEAR(nominalRatio(CodecId::kInt4, DataType::kFloat32, 256), 4 / (0.5 + 4.0 / 256), 1e-12);
}

}  // namespace
}  // namespace xsite::compress
