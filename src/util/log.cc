#include "util/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "util/params.h"

namespace xsite::log {
namespace {

struct Names {
  uint32_t bit;
  const char* name;
};
constexpr Names kSubsysNames[] = {{kInit, "INIT"}, {kBootstrap, "BOOTSTRAP"}, {kTopo, "TOPO"},
                                  {kNet, "NET"},   {kColl, "COLL"},           {kEnv, "ENV"}};

std::atomic<Sink> gSink{nullptr};
std::atomic<int> gRank{-1};
std::atomic<int> gLevel{-1};  // -1: not configured yet, read from the params on first use
std::atomic<uint32_t> gMask{kAll};
std::once_flag gConfigOnce;

Level parseLevel(const std::string& s) {
  if (s == "NONE") return Level::kNone;
  if (s == "INFO") return Level::kInfo;
  if (s == "DEBUG") return Level::kDebug;
  if (s == "TRACE") return Level::kTrace;
  return Level::kWarn;
}

uint32_t parseMask(const std::string& s) {
  bool invert = !s.empty() && s[0] == '^';
  uint32_t mask = 0;
  size_t pos = invert ? 1 : 0;
  while (pos <= s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    std::string tok = s.substr(pos, end - pos);
    if (tok == "ALL") mask = kAll;
    for (const auto& n : kSubsysNames)
      if (tok == n.name) mask |= n.bit;
    pos = end + 1;
  }
  return invert ? ~mask : mask;
}

void configureFromParams() {
  std::call_once(gConfigOnce, [] {
    if (gLevel.load() >= 0) return;  // configured explicitly
    try {
      const auto& p = params::Params::global();
      gLevel = static_cast<int>(parseLevel(p.string(params::Id::kDebug)));
      gMask = parseMask(p.string(params::Id::kDebugSubsys));
    } catch (...) {
      gLevel = static_cast<int>(Level::kWarn);  // bad settings are reported at init, not here
    }
  });
}

const char* levelName(Level l) {
  switch (l) {
    case Level::kWarn: return "WARN";
    case Level::kInfo: return "INFO";
    case Level::kDebug: return "DEBUG";
    case Level::kTrace: return "TRACE";
    default: return "NONE";
  }
}

}  // namespace

void setSink(Sink sink) noexcept { gSink = sink; }
void setRank(int rank) noexcept { gRank = rank; }

void configure(Level level, uint32_t subsysMask) noexcept {
  gLevel = static_cast<int>(level);
  gMask = subsysMask;
}

bool enabled(Level level, uint32_t subsys) noexcept {
  if (gLevel.load(std::memory_order_relaxed) < 0) configureFromParams();
  return static_cast<int>(level) <= gLevel.load(std::memory_order_relaxed) &&
         (gMask.load(std::memory_order_relaxed) & subsys) != 0;
}

const char* subsysName(uint32_t subsys) noexcept {
  for (const auto& n : kSubsysNames)
    if (n.bit == subsys) return n.name;
  return "ALL";
}

void write(Level level, uint32_t subsys, const char* fmt, ...) noexcept {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  Sink sink = gSink.load();
  if (sink != nullptr) {
    sink(level, subsys, msg);
    return;
  }
  char host[64] = "?";
  gethostname(host, sizeof(host) - 1);
  char line[2300];
  int rank = gRank.load();
  if (rank >= 0)
    snprintf(line, sizeof(line), "%s:%d [%d] XSITE %s %s %s\n", host, getpid(), rank,
             levelName(level), subsysName(subsys), msg);
  else
    snprintf(line, sizeof(line), "%s:%d XSITE %s %s %s\n", host, getpid(), levelName(level),
             subsysName(subsys), msg);
  fputs(line, stderr);
}

}  // namespace xsite::log
