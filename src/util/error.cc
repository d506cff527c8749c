#include "util/status.h"
#include "xsite/error.h"

namespace xsite {

const char* errorCategoryName(ErrorCategory category) noexcept {
  switch (category) {
    case ErrorCategory::kSystem: return "system error";
    case ErrorCategory::kInternal: return "internal error";
    case ErrorCategory::kInvalidUsage: return "invalid usage";
    case ErrorCategory::kRemote: return "remote error";
    case ErrorCategory::kTimeout: return "timeout";
    case ErrorCategory::kAborted: return "aborted";
  }
  return "unknown error";
}

Error::Error(ErrorCategory category, const std::string& message)
    : std::runtime_error(std::string("xsite ") + errorCategoryName(category) + ": " + message),
      category_(category),
      prefix_(std::char_traits<char>::length(errorCategoryName(category)) + 8) {}

void throwIfError(const Status& status) {
  if (!status) throw Error(status.category(), status.message());
}

}  // namespace xsite
