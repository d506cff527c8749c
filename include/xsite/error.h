// xsite: the one error hierarchy. Setup and unrecoverable failures throw xsite::Error; the data
// path inside the library returns xsite::Status (src/util/status.h) with the same categories.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace xsite {

enum class ErrorCategory {
  kSystem,        // an OS call failed (socket, shm, fork...)
  kInternal,      // a bug in xsite
  kInvalidUsage,  // the caller passed something wrong (sizes, ranks, types, configuration)
  kRemote,        // a peer died, closed, or sent something that violates the protocol
  kTimeout,       // a bounded wait ran out
  kAborted,       // the communicator was aborted (Communicator::abort())
};

const char* errorCategoryName(ErrorCategory category) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCategory category, const std::string& message);
  ErrorCategory category() const noexcept { return category_; }
  // what() without its "xsite <category>: " prefix: for a message that wraps this one.
  const char* message() const noexcept { return what() + prefix_; }

 private:
  ErrorCategory category_;
  size_t prefix_;
};

}  // namespace xsite
