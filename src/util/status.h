// Status and Result<T>: how expected outcomes travel on the data path (noexcept code). Setup and
// unrecoverable failures become xsite::Error through throwIfError() at the layer that gives up.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "xsite/error.h"

namespace xsite {

class [[nodiscard]] Status {
 public:
  Status() noexcept = default;  // OK
  Status(ErrorCategory category, std::string message)
      : failed_(true), category_(category), message_(std::move(message)) {}

  static Status ok() noexcept { return Status(); }
  bool isOk() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return !failed_; }
  ErrorCategory category() const noexcept { return category_; }
  const std::string& message() const noexcept { return message_; }

 private:
  bool failed_ = false;
  ErrorCategory category_ = ErrorCategory::kInternal;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}           // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}    // NOLINT: must not be OK
  bool isOk() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return isOk(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const Status& status() const { return std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

// Throws xsite::Error when the status is an error.
void throwIfError(const Status& status);


}  // namespace xsite

#define XSITE_RETURN_IF_ERROR(expr)          \
  do {                                       \
    ::xsite::Status xsite_status_ = (expr);  \
    if (!xsite_status_) return xsite_status_; \
  } while (0)
