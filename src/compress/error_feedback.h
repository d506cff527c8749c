// Error feedback for the lossy codecs: what a lossy encoding lost (the residual) is kept per key
// and added to the next values encoded under the same key, so the error does not accumulate
// over steps (1-bit SGD / EF-SGD). One store per communicator; its memory is bounded.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "compress/codec.h"
#include "util/status.h"

namespace xsite::compress {

class ErrorFeedback {
 public:
  explicit ErrorFeedback(size_t maxBytes) : maxBytes_(maxBytes) {}

  // The float32 residual of `key`, `elements` long: zeros when new or when its length changed.
  // Fails (kInvalidUsage) when keeping it would exceed the bound.
  Result<float*> residual(const std::string& key, size_t elements);
  void reset(const std::string& key);  // zero it (kept allocated)
  void resetAll();
  void drop(const std::string& key);   // free it
  void dropAll();
  size_t bytes() const noexcept { return bytes_; }
  size_t maxBytes() const noexcept { return maxBytes_; }
  size_t keys() const noexcept { return store_.size(); }

 private:
  size_t maxBytes_;
  size_t bytes_ = 0;
  std::map<std::string, std::vector<float>> store_;
};

// Encodes `count` elements of `type` from src with error feedback: corrected = src + residual
// (in float32, rounded to `type`) is encoded into dst, and residual becomes corrected minus its
// decoded form. `decoded` (count elements of `type`) receives that decoded form; `scratch` holds
// count floats. Returns the encoded bytes. residual == nullptr: plain encode + decode.
Result<size_t> encodeWithFeedback(const Codec& codec, const void* src, size_t count,
                                  DataType type, float* residual, void* dst, size_t dstBytes,
                                  void* decoded, float* scratch) noexcept;

}  // namespace xsite::compress
