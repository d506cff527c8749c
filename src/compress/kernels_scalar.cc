// The reference kernels (one element at a time, element.h) and the choice of the host ISA.
#include <cstring>
#include <string>

#include "compress/element.h"
#include "compress/kernels.h"
#include "compress/kernels_simd.h"
#include "util/log.h"
#include "util/params.h"

namespace xsite::compress {
namespace {

using namespace element;

void castEncode(CodecId codec, DataType type, const void* src, size_t count, void* dst) {
  const DataType out = castFormat(codec);
  if (type == out) {
    if (count > 0) memcpy(dst, src, 2 * count);
    return;
  }
  for (size_t i = 0; i < count; ++i) storeFloat(out, dst, i, loadFloat(type, src, i));
}

void castDecode(CodecId codec, const void* src, size_t count, DataType type, void* dst) {
  const DataType in = castFormat(codec);
  if (type == in) {
    if (count > 0) memcpy(dst, src, 2 * count);
    return;
  }
  for (size_t i = 0; i < count; ++i) storeFloat(type, dst, i, loadFloat(in, src, i));
}

void blockEncode(CodecId codec, DataType type, const void* src, size_t count, uint32_t blockSize,
                 void* scales, void* codes) {
  const float qmax = qmaxOf(codec);
  auto* out = static_cast<uint8_t*>(codes);
  for (size_t begin = 0, b = 0; begin < count; begin += blockSize, ++b) {
    const size_t end = count - begin < blockSize ? count : begin + blockSize;
    float amax = 0.0f;
    bool nonFinite = false;
    for (size_t i = begin; i < end; ++i) {
      const float x = loadFloat(type, src, i);
      nonFinite |= !isFinite(x);
      const float a = absolute(x);
      amax = a > amax ? a : amax;
    }
    const BlockScale s = blockScale(amax, nonFinite, qmax);
    memcpy(static_cast<char*>(scales) + 4 * b, &s.scale, 4);
    if (codec == CodecId::kInt4) {
      for (size_t i = begin; i < end; i += 2) {
        uint32_t lo = 0, hi = 0;
        if (!nonFinite) {
          lo = static_cast<uint32_t>(quantizeInt(loadFloat(type, src, i), s.inv, qmax)) & 0xfu;
          if (i + 1 < end)
            hi = static_cast<uint32_t>(quantizeInt(loadFloat(type, src, i + 1), s.inv, qmax)) & 0xfu;
        }
        out[i / 2] = static_cast<uint8_t>(lo | (hi << 4));
      }
    } else if (nonFinite) {
      memset(out + begin, 0, end - begin);
    } else if (codec == CodecId::kInt8) {
      for (size_t i = begin; i < end; ++i)
        out[i] = static_cast<uint8_t>(quantizeInt(loadFloat(type, src, i), s.inv, qmax));
    } else {
      for (size_t i = begin; i < end; ++i) out[i] = quantizeFp8(loadFloat(type, src, i), s.inv);
    }
  }
}

bool blockDecode(CodecId codec, const void* scales, const void* codes, size_t count,
                 uint32_t blockSize, DataType type, void* dst) {
  const auto* in = static_cast<const uint8_t*>(codes);
  bool ok = true;
  for (size_t begin = 0, b = 0; begin < count; begin += blockSize, ++b) {
    const size_t end = count - begin < blockSize ? count : begin + blockSize;
    float scale;
    memcpy(&scale, static_cast<const char*>(scales) + 4 * b, 4);
    for (size_t i = begin; i < end; ++i)
      storeFloat(type, dst, i, dequantize(decodeCode(codec, in, i, ok), scale));
  }
  return ok;
}

constexpr Kernels kScalar = {Isa::kScalar, "scalar", castEncode, castDecode, blockEncode,
                             blockDecode};

Isa bestIsa() noexcept {
  if (isaAvailable(Isa::kAvx512)) return Isa::kAvx512;
  if (isaAvailable(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa chooseIsa() noexcept {
  const Isa best = bestIsa();
  std::string asked = "auto";
  try {
    asked = params::Params::global().string(params::Id::kCodecIsa);
  } catch (...) {
    // a bad variable elsewhere is reported where it matters; the codecs just use the default
  }
  Isa want = best;
  if (asked == "scalar") {
    want = Isa::kScalar;
  } else if (asked == "avx2") {
    want = Isa::kAvx2;
  } else if (asked == "avx512") {
    want = Isa::kAvx512;
  } else if (asked != "auto" && !asked.empty()) {
    XSITE_WARN(kEnv, "XSITE_CODEC_ISA=%s is not one of auto, avx512, avx2, scalar; using %s",
               asked.c_str(), isaName(best));
  }
  if (static_cast<int>(want) > static_cast<int>(best)) {
    XSITE_WARN(kEnv, "XSITE_CODEC_ISA=%s: this CPU lacks it; the codecs use %s", asked.c_str(),
               isaName(best));
    want = best;
  }
  XSITE_INFO(kInit, "host codecs use %s", isaName(want));
  return want;
}

}  // namespace

const Kernels& scalarKernels() noexcept { return kScalar; }

const char* isaName(Isa isa) noexcept {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "scalar";
  }
}

bool isaAvailable(Isa isa) noexcept {
#if defined(XSITE_COMPRESS_X86)
  if (isa == Isa::kAvx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  if (isa == Isa::kAvx512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c");
#endif
  return isa == Isa::kScalar;
}

const Kernels* kernelsFor(Isa isa) noexcept {
  if (!isaAvailable(isa)) return nullptr;
#if defined(XSITE_COMPRESS_X86)
  if (isa == Isa::kAvx2) return &avx2Kernels();
  if (isa == Isa::kAvx512) return &avx512Kernels();
#endif
  return &kScalar;
}

const Kernels& activeKernels() noexcept {
  static const Kernels* const active = kernelsFor(chooseIsa());  // logs once
  return *active;
}

std::string_view codecIsa() noexcept { return activeKernels().name; }

}  // namespace xsite::compress
