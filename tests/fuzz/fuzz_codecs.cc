// Every codec's decoder (src/compress/codec.h) on bytes from the wire. The first bytes choose the
// codec, the data type, the block size and the element count; the rest is the encoded buffer,
// decoded into an output of exactly count elements (ASan sees any write past it). decode() must
// return an error or succeed, never touch memory outside dst. Modes:
//   0  the rest as it is (the header too is the fuzzer's)
//   1  a well-formed EncodedHeader for the chosen codec/type/count/block, then the rest as the
//      payload (reaches the payload decoders without guessing the header)
//   2  the rest as elements: encode, then decode must succeed, and lossless codecs round-trip
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "compress/codec.h"
#include "fuzz_input.h"
#include "xsite/error.h"

namespace {

using namespace xsite::compress;
using xsite::DataType;

constexpr size_t kMaxCount = 1 << 14;

void decodeInto(const Codec& codec, const std::string& enc, size_t count, DataType type) {
  const size_t outBytes = count * xsite::dataTypeSize(type);
  // Exactly outBytes on the heap (at least 1 so the pointer is valid): no slack for overflows.
  std::unique_ptr<char[]> dst(new char[outBytes ? outBytes : 1]);
  // A copy of exactly the encoded size: reads past it are caught too.
  std::unique_ptr<char[]> src(new char[enc.size() ? enc.size() : 1]);
  memcpy(src.get(), enc.data(), enc.size());
  (void)codec.decode(src.get(), enc.size(), count, type, dst.get());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  xsite::fuzz::Input in(data, size);
  const uint8_t mode = in.u8() % 3;
  const auto id = static_cast<CodecId>(in.u8() % xsite::kNumCodecs);
  const auto type = static_cast<DataType>(in.u8() % xsite::kNumDataTypes);
  static constexpr uint32_t kBlocks[] = {2, 4, 6, 16, 32, 256, 1024, 65536};
  CodecOptions opt;
  opt.blockSize = kBlocks[in.u8() % 8];
  opt.level = 1 + in.u8() % 3;
  const size_t count = in.u16() % kMaxCount;
  std::unique_ptr<Codec> codec;
  try {
    codec = makeCodec(id, opt);
  } catch (const xsite::Error&) {
    return 0;
  }
  if (mode == 0) {
    decodeInto(*codec, in.rest(), count, type);
  } else if (mode == 1) {
    const uint8_t flags = in.u8() % 4;
    const std::string payload = in.rest();
    EncodedHeader h{};
    h.magic = EncodedHeader::kMagic;
    h.codec = static_cast<uint8_t>(id);
    h.dataType = static_cast<uint8_t>(type);
    h.flags = flags;
    h.blockSize = isLossy(id) && id != CodecId::kBf16 && id != CodecId::kFp16 ? opt.blockSize : 0;
    h.payload = static_cast<uint32_t>(payload.size());
    h.count = count;
    std::string enc(reinterpret_cast<const char*>(&h), sizeof(h));
    decodeInto(*codec, enc + payload, count, type);
  } else {
    const size_t elem = xsite::dataTypeSize(type);
    std::string raw = in.rest();
    const size_t n = std::min(raw.size() / elem, kMaxCount);
    raw.resize(n * elem);
    std::vector<char> enc(codec->maxEncodedBytes(n, type));
    auto r = codec->encode(raw.data(), n, type, enc.data(), enc.size());
    if (!r) {
      if (codecSupports(id, type)) __builtin_trap();  // a supported type must encode
      return 0;
    }
    if (r.value() > enc.size()) __builtin_trap();
    std::vector<char> out(n * elem + 1);
    const xsite::Status s = codec->decode(enc.data(), r.value(), n, type, out.data());
    if (!s) __builtin_trap();  // what encode wrote, decode takes
    if (!isLossy(id) && memcmp(out.data(), raw.data(), raw.size()) != 0) __builtin_trap();
  }
  return 0;
}
