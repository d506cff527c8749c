// The one logger: levels x subsystems, printf-style. Writes to stderr by default; the NCCL
// plugin installs NCCL's logger as the sink. Configured from XSITE_DEBUG / XSITE_DEBUG_SUBSYS.
#pragma once

#include <cstdint>

namespace xsite::log {

enum class Level : int { kNone = 0, kWarn = 1, kInfo = 2, kDebug = 3, kTrace = 4 };

enum Subsys : uint32_t {
  kInit = 1u << 0,
  kBootstrap = 1u << 1,
  kTopo = 1u << 2,
  kNet = 1u << 3,
  kColl = 1u << 4,
  kEnv = 1u << 5,
  kAll = ~0u,
};

// A sink receives one formatted line (no trailing newline) with its level and subsystem.
using Sink = void (*)(Level level, uint32_t subsys, const char* line);

void setSink(Sink sink) noexcept;            // nullptr restores stderr
void setRank(int rank) noexcept;             // shown in every line once known
void configure(Level level, uint32_t subsysMask) noexcept;
bool enabled(Level level, uint32_t subsys) noexcept;
const char* subsysName(uint32_t subsys) noexcept;

void write(Level level, uint32_t subsys, const char* fmt, ...) noexcept
    __attribute__((format(printf, 3, 4)));

}  // namespace xsite::log

#define XSITE_LOG(level, subsys, ...)                                                 \
  do {                                                                                \
    if (::xsite::log::enabled(::xsite::log::Level::level, ::xsite::log::subsys))      \
      ::xsite::log::write(::xsite::log::Level::level, ::xsite::log::subsys, __VA_ARGS__); \
  } while (0)
#define XSITE_WARN(subsys, ...) XSITE_LOG(kWarn, subsys, __VA_ARGS__)
#define XSITE_INFO(subsys, ...) XSITE_LOG(kInfo, subsys, __VA_ARGS__)
#define XSITE_DEBUG(subsys, ...) XSITE_LOG(kDebug, subsys, __VA_ARGS__)
