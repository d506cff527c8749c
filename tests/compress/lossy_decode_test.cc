// What the lossy codecs refuse: bad options and buffers at encode, and at decode every
// inconsistency of an untrusted buffer (kRemote), plus a mutation fuzz loop that checks decode
// never writes outside its output.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "compress/element.h"
#include "compress/kernels.h"
#include "xsite/error.h"

namespace xsite::compress {
namespace {

const CodecId kLossy[] = {CodecId::kBf16, CodecId::kFp16, CodecId::kInt8, CodecId::kFp8,
                          CodecId::kInt4};

std::vector<float> someFloats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<uint8_t> encodeFloats(const Codec& c, const std::vector<float>& v) {
  std::vector<uint8_t> out(c.maxEncodedBytes(v.size(), DataType::kFloat32));
  auto r = c.encode(v.data(), v.size(), DataType::kFloat32, out.data(), out.size());
  EXPECT_TRUE(r);
  return out;
}

Status decodeFloats(const Codec& c, const std::vector<uint8_t>& enc, size_t count) {
  std::vector<float> out(count);
  return c.decode(enc.data(), enc.size(), count, DataType::kFloat32, out.data());
}

void setScale(std::vector<uint8_t>& enc, size_t block, uint32_t bits) {
  memcpy(enc.data() + sizeof(EncodedHeader) + 4 * block, &bits, 4);
}

TEST(LossyCodecOptions, BlockSizeMustBeEvenIn2To65536) {
  for (uint32_t bad : {0u, 1u, 3u, 255u, 65537u, 65538u}) {
    try {
      (void)makeCodec(CodecId::kInt8, CodecOptions{bad, 1});
      ADD_FAILURE() << "block size " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidUsage);
    }
  }
  for (uint32_t good : {2u, 6u, 256u, 65536u}) EXPECT_NE(makeCodec(CodecId::kInt4, {good, 1}), nullptr);
  EXPECT_NE(makeCodec(CodecId::kBf16, {1, 1}), nullptr);  // the casts ignore it
}

TEST(LossyCodecEncode, RefusesWrongTypesAndSmallBuffers) {
  for (CodecId id : kLossy) {
    auto c = makeCodec(id);
    std::vector<uint8_t> out(c->maxEncodedBytes(100, DataType::kFloat32));
    std::vector<int32_t> ints(100);
    auto r = c->encode(ints.data(), 100, DataType::kInt32, out.data(), out.size());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.status().category(), ErrorCategory::kInvalidUsage);
    const auto v = someFloats(100, 1);
    r = c->encode(v.data(), 100, DataType::kFloat32, out.data(), out.size() - 1);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.status().category(), ErrorCategory::kInvalidUsage);
  }
}

TEST(LossyCodecDecode, RejectsInconsistentBuffers) {
  const size_t n = 301;
  for (CodecId id : kLossy) {
    SCOPED_TRACE(std::string(codecName(id)));
    auto c = makeCodec(id, {64, 1});
    const auto enc = encodeFloats(*c, someFloats(n, 2));
    ASSERT_TRUE(decodeFloats(*c, enc, n));
    auto expectRemote = [&](const std::vector<uint8_t>& bad, size_t count, const char* what) {
      Status st = decodeFloats(*c, bad, count);
      EXPECT_FALSE(st) << what;
      if (!st) {
        EXPECT_EQ(st.category(), ErrorCategory::kRemote) << what << ": " << st.message();
      }
    };
    // truncated, extra bytes (with and without the header's payload following)
    expectRemote(std::vector<uint8_t>(enc.begin(), enc.end() - 1), n, "truncated");
    expectRemote(std::vector<uint8_t>(enc.begin(), enc.begin() + 10), n, "shorter than a header");
    auto extra = enc;
    extra.push_back(0);
    expectRemote(extra, n, "extra byte");
    uint32_t payload = static_cast<uint32_t>(extra.size() - 24);
    memcpy(extra.data() + 12, &payload, 4);
    expectRemote(extra, n, "extra byte, payload adjusted");
    expectRemote(enc, n - 1, "wrong count");
    {
      std::vector<uint16_t> out(n);
      Status st = c->decode(enc.data(), enc.size(), n, DataType::kBfloat16, out.data());
      EXPECT_FALSE(st) << "wrong type";
    }
    auto flags = enc;
    flags[4] = 1;
    expectRemote(flags, n, "flags");
    // another codec's data
    const CodecId other = id == CodecId::kInt8 ? CodecId::kFp8 : CodecId::kInt8;
    const auto foreign = encodeFloats(*makeCodec(other, {64, 1}), someFloats(n, 2));
    expectRemote(foreign, n, "wrong codec");
    if (id == CodecId::kBf16 || id == CodecId::kFp16) {
      auto bs = enc;
      bs[8] = 2;
      expectRemote(bs, n, "casts carry block size 0");
      continue;
    }
    // another block size (same total size by luck or not: both rejected)
    for (uint32_t bs : {32u, 66u}) {
      const auto otherBs = encodeFloats(*makeCodec(id, {bs, 1}), someFloats(n, 2));
      expectRemote(otherBs, n, "wrong block size");
    }
    for (uint32_t bits : {0xbf800000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00001u, 0xffc00000u, 0x7f800001u}) {
      auto bad = enc;
      setScale(bad, 3, bits);
      expectRemote(bad, n, "bad scale");
    }
    auto nanScale = enc;  // the encoder's own NaN is fine
    setScale(nanScale, 2, element::kScaleNaNBits);
    EXPECT_TRUE(decodeFloats(*c, nanScale, n));
    if (id == CodecId::kInt4) {
      auto pad = enc;
      pad.back() |= 0x10;
      expectRemote(pad, n, "int4 padding");
    }
    if (id == CodecId::kFp8) {
      for (uint8_t code : {uint8_t{0x7f}, uint8_t{0xff}}) {
        auto nan = enc;
        nan[nan.size() - 50] = code;
        Status st = decodeFloats(*c, nan, n);
        ASSERT_FALSE(st);
        EXPECT_NE(st.message().find("block 3 "), std::string::npos) << st.message();
      }
    }
  }
}

// Random mutations of valid encodings: decode returns an error or succeeds, and never touches a
// byte outside its output (guard bytes around it), on every ISA's table (through the codec).
TEST(LossyCodecDecode, FuzzedBuffersNeverEscapeTheirOutput) {
  std::mt19937 rng(12345);
  const size_t kGuard = 64;
  int failures = 0, successes = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    const CodecId id = kLossy[rng() % 5];
    const uint32_t bs = 2 * (1 + rng() % 40);
    const size_t n = rng() % 300;
    const DataType type = rng() % 2 ? DataType::kFloat32 : DataType::kFloat16;
    auto c = makeCodec(id, {bs, 1});
    std::vector<float> v = someFloats(n, static_cast<uint32_t>(iter));
    std::vector<uint8_t> src(n * 2);
    if (type == DataType::kFloat16)
      for (size_t i = 0; i < n; ++i) element::storeFloat(type, src.data(), i, v[i]);
    std::vector<uint8_t> enc(c->maxEncodedBytes(n, type));
    ASSERT_TRUE(c->encode(type == DataType::kFloat32 ? static_cast<const void*>(v.data()) : src.data(), n, type,
                          enc.data(), enc.size()));
    switch (rng() % 4) {
      case 0: enc.resize(rng() % (enc.size() + 1)); break;
      case 1: enc.resize(enc.size() + 1 + rng() % 8, static_cast<uint8_t>(rng())); break;
      default:
        for (int k = 1 + rng() % 4; k > 0 && !enc.empty(); --k) enc[rng() % enc.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    }
    const size_t outBytes = n * dataTypeSize(type);
    std::vector<uint8_t> out(outBytes + 2 * kGuard, 0xcd);
    const size_t decodeCount = rng() % 8 == 0 ? rng() % 300 : n;
    if (decodeCount * dataTypeSize(type) > outBytes) continue;  // the caller sizes dst for count
    Status st = c->decode(enc.data(), enc.size(), decodeCount, type, out.data() + kGuard);
    (st ? successes : failures)++;
    if (!st) {
      EXPECT_EQ(st.category(), ErrorCategory::kRemote) << st.message();
    }
    for (size_t i = 0; i < kGuard; ++i) {
      ASSERT_EQ(out[i], 0xcd);
      ASSERT_EQ(out[kGuard + outBytes + i], 0xcd);
    }
  }
  EXPECT_GT(failures, 1000);
  EXPECT_GT(successes, 100);  // mutated codes that are still valid data
}

}  // namespace
}  // namespace xsite::compress
