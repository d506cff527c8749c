#include "plugin/common/guard.h"

#include <atomic>

#include "util/log.h"
#include "util/params.h"

namespace xsite::plugin {
namespace {

struct Mapping {
  ErrorCategory category;
  ncclResult_t result;
};
// ext-net's advice: SystemError for network and OS failures, InternalError for misuse of the
// API by NCCL or our bugs, InvalidUsage for user and configuration errors. A bounded wait that
// ran out is a network failure as NCCL sees it.
constexpr Mapping kErrorTable[] = {
    {ErrorCategory::kSystem, ncclSystemError},        {ErrorCategory::kInternal, ncclInternalError},
    {ErrorCategory::kInvalidUsage, ncclInvalidUsage}, {ErrorCategory::kRemote, ncclRemoteError},
    {ErrorCategory::kTimeout, ncclSystemError},       {ErrorCategory::kAborted, ncclSystemError},
};

std::atomic<ncclDebugLogger_t> gLogger{nullptr};

ncclDebugLogLevel ncclLevel(log::Level level) {
  switch (level) {
    case log::Level::kWarn:
      return NCCL_LOG_WARN;
    case log::Level::kInfo:
      return NCCL_LOG_INFO;
    case log::Level::kDebug:
      return NCCL_LOG_INFO;
    case log::Level::kTrace:
      return NCCL_LOG_TRACE;
    default:
      return NCCL_LOG_NONE;
  }
}

unsigned long ncclFlags(uint32_t subsys) {
  switch (subsys) {
    case log::kInit:
      return NCCL_INIT;
    case log::kBootstrap:
      return NCCL_BOOTSTRAP;
    case log::kTopo:
      return NCCL_GRAPH;
    case log::kNet:
      return NCCL_NET;
    case log::kColl:
      return NCCL_TUNING;  // the plugin's COLL lines are the tuner's
    case log::kEnv:
      return NCCL_ENV;
    default:
      return NCCL_INIT;
  }
}

void ncclSink(log::Level level, uint32_t subsys, const char* line) {
  ncclDebugLogger_t logger = gLogger.load();
  if (logger == nullptr) return;
  logger(ncclLevel(level), ncclFlags(subsys), "xsite", 0, "XSITE %s %s", log::subsysName(subsys),
         line);
}

}  // namespace

ncclResult_t toNcclResult(ErrorCategory category) noexcept {
  for (const auto& m : kErrorTable)
    if (m.category == category) return m.result;
  return ncclInternalError;
}

ncclResult_t report(const char* what, ErrorCategory category, const char* message) noexcept {
  XSITE_WARN(kNet, "%s failed (%s): %s", what, errorCategoryName(category), message);
  return toNcclResult(category);
}

void installLogger(ncclDebugLogger_t logger) noexcept {
  if (logger == nullptr) return;
  ncclDebugLogger_t expected = nullptr;
  if (!gLogger.compare_exchange_strong(expected, logger)) return;
  try {
    if (!params::Params::global().isSet(params::Id::kDebug))
      log::configure(log::Level::kInfo, log::kAll);
  } catch (...) {
    // A bad XSITE_* variable is reported by init, which parses the params itself.
  }
  log::setSink(&ncclSink);
}

}  // namespace xsite::plugin
