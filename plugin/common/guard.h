// The one C-ABI boundary of the plugin: every exported entry point runs its body through
// guard(), which turns xsite's error categories into ncclResult_t through one table and logs the
// failure once, via the logger NCCL handed over (installed as xsite's log sink, lines prefixed
// XSITE). Nothing but ncclResult_t leaves: no exception crosses extern "C".
#pragma once

#include <exception>
#include <new>
#include <type_traits>

#include "plugin/abi/common.h"
#include "util/status.h"

namespace xsite::plugin {

// The mapping table (one place): system -> ncclSystemError, internal -> ncclInternalError,
// invalid usage -> ncclInvalidUsage, remote -> ncclRemoteError, timeout -> ncclSystemError.
ncclResult_t toNcclResult(ErrorCategory category) noexcept;

// Logs `what: message` once (WARN, NET) and returns the mapped code.
ncclResult_t report(const char* what, ErrorCategory category, const char* message) noexcept;

// Installs NCCL's logger as xsite's log sink (first non-null logger wins; later ones are the
// same function). Without XSITE_DEBUG in the environment, xsite's level is raised to INFO so
// that NCCL_DEBUG decides what is shown.
void installLogger(ncclDebugLogger_t logger) noexcept;

// Runs `body` (returning Status, or void) and maps what it returns or throws.
template <typename F>
ncclResult_t guard(const char* what, F&& body) noexcept {
  try {
    if constexpr (std::is_same_v<decltype(body()), void>) {
      body();
      return ncclSuccess;
    } else {
      Status s = body();
      return s ? ncclSuccess : report(what, s.category(), s.message().c_str());
    }
  } catch (const Error& e) {
    return report(what, e.category(), e.what());
  } catch (const std::bad_alloc&) {
    return report(what, ErrorCategory::kSystem, "out of memory");
  } catch (const std::exception& e) {
    return report(what, ErrorCategory::kInternal, e.what());
  } catch (...) {
    return report(what, ErrorCategory::kInternal, "unknown exception");
  }
}

}  // namespace xsite::plugin
