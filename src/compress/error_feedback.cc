#include "compress/error_feedback.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/half.h"

namespace xsite::compress {
namespace {

// Widening and narrowing between the lossy codecs' input types and float32.
void toFloat(const void* src, DataType type, size_t n, float* out) noexcept {
  if (type == DataType::kFloat32) {
    memcpy(out, src, n * 4);
  } else {
    const auto* h = static_cast<const uint16_t*>(src);
    if (type == DataType::kBfloat16)
      for (size_t i = 0; i < n; ++i) out[i] = bf16ToFloat(h[i]);
    else
      for (size_t i = 0; i < n; ++i) out[i] = halfToFloat(h[i]);
  }
}

void fromFloat(const float* in, size_t n, DataType type, void* dst) noexcept {
  if (type == DataType::kFloat32) {
    memcpy(dst, in, n * 4);
  } else {
    auto* h = static_cast<uint16_t*>(dst);
    if (type == DataType::kBfloat16)
      for (size_t i = 0; i < n; ++i) h[i] = floatToBf16(in[i]);
    else
      for (size_t i = 0; i < n; ++i) h[i] = floatToHalf(in[i]);
  }
}

}  // namespace

Result<float*> ErrorFeedback::residual(const std::string& key, size_t elements) {
  auto it = store_.find(key);
  const size_t have = it == store_.end() ? 0 : it->second.size() * sizeof(float);
  const size_t want = elements * sizeof(float);
  if (have == want && it != store_.end()) return it->second.data();
  if (bytes_ - have + want > maxBytes_)
    return Status(ErrorCategory::kInvalidUsage,
                  "error feedback for key '" + key + "' needs " + std::to_string(want) +
                      " bytes, but the residuals would then exceed XSITE_ERROR_FEEDBACK_MAX_BYTES (" +
                      std::to_string(maxBytes_) + " bytes, " + std::to_string(bytes_) +
                      " in use by " + std::to_string(store_.size()) +
                      " keys): drop keys you no longer use, or raise the bound");
  auto& v = store_[key];
  v.assign(elements, 0.0f);
  v.shrink_to_fit();
  bytes_ = bytes_ - have + want;
  return v.data();
}

void ErrorFeedback::reset(const std::string& key) {
  auto it = store_.find(key);
  if (it != store_.end()) std::fill(it->second.begin(), it->second.end(), 0.0f);
}

void ErrorFeedback::drop(const std::string& key) {
  auto it = store_.find(key);
  if (it == store_.end()) return;
  bytes_ -= it->second.size() * sizeof(float);
  store_.erase(it);
}

void ErrorFeedback::resetAll() {
  for (auto& kv : store_) std::fill(kv.second.begin(), kv.second.end(), 0.0f);
}

void ErrorFeedback::dropAll() {
  store_.clear();
  bytes_ = 0;
}

Result<size_t> encodeWithFeedback(const Codec& codec, const void* src, size_t count,
                                  DataType type, float* residual, void* dst, size_t dstBytes,
                                  void* decoded, float* scratch) noexcept {
  const void* input = src;
  if (residual != nullptr) {
    // corrected = src + residual in float32 (scratch); 16-bit types encode it rounded to their
    // type (that rounding is part of what the residual keeps).
    toFloat(src, type, count, scratch);
    for (size_t i = 0; i < count; ++i) scratch[i] += residual[i];
    if (type == DataType::kFloat32) {
      input = scratch;
    } else {
      fromFloat(scratch, count, type, decoded);
      input = decoded;
    }
  }
  Result<size_t> n = codec.encode(input, count, type, dst, dstBytes);
  if (!n) return n;
  XSITE_RETURN_IF_ERROR(codec.decode(dst, n.value(), count, type, decoded));
  if (residual != nullptr) {
    // residual = corrected - decode(encode(corrected)); a non-finite one (NaN/Inf input) is
    // dropped rather than poisoning every later step.
    for (size_t i = 0; i < count; ++i) {
      float d;
      if (type == DataType::kFloat32)
        d = static_cast<const float*>(decoded)[i];
      else if (type == DataType::kBfloat16)
        d = bf16ToFloat(static_cast<const uint16_t*>(decoded)[i]);
      else
        d = halfToFloat(static_cast<const uint16_t*>(decoded)[i]);
      const float r = scratch[i] - d;
      residual[i] = std::isfinite(r) ? r : 0.0f;
    }
  }
  return n;
}

}  // namespace xsite::compress
