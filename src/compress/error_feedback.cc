#include "compress/error_feedback.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "compress/element.h"

namespace xsite::compress {

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
    for (size_t i = 0; i < count; ++i) scratch[i] = element::loadFloat(type, src, i) + residual[i];
    if (type == DataType::kFloat32) {
      input = scratch;
    } else {
      for (size_t i = 0; i < count; ++i) element::storeFloat(type, decoded, i, scratch[i]);
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
      const float r = scratch[i] - element::loadFloat(type, decoded, i);
      residual[i] = std::isfinite(r) ? r : 0.0f;
    }
  }
  return n;
}

}  // namespace xsite::compress
