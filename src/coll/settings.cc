#include "coll/settings.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "xsite/version.h"

namespace xsite::coll {
namespace {

using params::Id;

[[noreturn]] void bad(const std::string& what) { throw Error(ErrorCategory::kInvalidUsage, what); }

}  // namespace

std::string scheduleSignature(const Settings& s, const LinkSetup& links) {
  auto num = [](double v) {
    char b[32];
    snprintf(b, sizeof b, "%.17g", v);
    return std::string(b);
  };
  const topo::CostModel& m = s.costModel;
  const transport::FabricOptions& fo = links.fabric;
  using transport::backendName;
  return "xsite=" XSITE_VERSION_STRING "/" + std::to_string(kWireProtocolVersion) +
         " XSITE_CHUNK_SIZE=" + std::to_string(s.chunkBytes) +
         " XSITE_SLICE_SIZE=" + std::to_string(s.sliceBytes) +
         " XSITE_HEARTBEAT=" + num(static_cast<double>(s.heartbeat.count()) / 1000) +
         " XSITE_WAN_LANES=" + std::to_string(s.wanLanes) +
         " XSITE_ALGO=" + std::string(algorithmName(s.defaultAlgorithm)) +
         " XSITE_CODEC=" + std::string(codecName(s.codec)) +
         " XSITE_CODEC_BLOCK=" + std::to_string(s.codecOptions.blockSize) +
         " XSITE_CODEC_LEVEL=" + std::to_string(s.codecOptions.level) +
         " XSITE_DOMAIN_LATENCY_US=" + num(m.domain.latencyUs) +
         " XSITE_DOMAIN_RATE_MBIT=" + num(m.domain.bytesPerUs * 8) +
         " XSITE_SITE_LATENCY_US=" + num(m.site.latencyUs) +
         " XSITE_SITE_RATE_MBIT=" + num(m.site.bytesPerUs * 8) +
         " XSITE_WAN_LATENCY_US=" + num(m.wan.latencyUs) +
         " XSITE_WAN_RATE_MBIT=" + num(m.wan.bytesPerUs * 8) +
         // The transports as resolved (site `auto` is ucx or tcp by build).
         " XSITE_DOMAIN_TRANSPORT=" + backendName(links.backends.sameDomain) +
         " XSITE_SITE_TRANSPORT=" + backendName(links.backends.sameSite) + " XSITE_WAN_TRANSPORT=" +
         (links.backends.otherSite == transport::Backend::kWan ? "streams" : "tcp") +
         " XSITE_WAN_STREAMS=" + std::to_string(fo.wan.streams) +
         " XSITE_WAN_FRAME_SIZE=" + std::to_string(fo.wan.frameBytes) +
         " XSITE_WAN_TLS=" + (fo.wan.tls ? "1" : "0");
}

namespace {

// "xsite 0.1.0 (wire protocol 1)" from a signature's first token.
std::string describeBuild(const std::string& token) {
  const size_t slash = token.find('/');
  if (token.rfind("xsite=", 0) != 0 || slash == std::string::npos)
    return "an xsite of another version (its settings begin '" + token.substr(0, 64) + "')";
  return "xsite " + token.substr(6, slash - 6) + " (wire protocol " + token.substr(slash + 1) + ")";
}

}  // namespace

void checkSameSchedule(const std::string& mine, int me, const std::string& theirs, int peer) {
  if (mine == theirs) return;
  auto split = [](const std::string& s) {
    std::vector<std::string> out;
    for (size_t b = 0, e; b < s.size(); b = e + 1) {
      e = s.find(' ', b);
      if (e == std::string::npos) e = s.size();
      out.push_back(s.substr(b, e - b));
    }
    return out;
  };
  const std::vector<std::string> a = split(mine), b = split(theirs);
  // The build first: whatever else differs then follows from it.
  if (a.empty() || b.empty() || a[0] != b[0])
    throw Error(ErrorCategory::kInvalidUsage,
                "rank " + std::to_string(peer) + " runs " + describeBuild(b.empty() ? "" : b[0]) +
                    " where rank " + std::to_string(me) + " runs " +
                    describeBuild(a.empty() ? "" : a[0]) +
                    ": every rank must run the same xsite version, or their bytes on the wire "
                    "would not match");
  std::string what = "'" + theirs + "'";
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (a[i] != b[i]) {
      what = b[i] + " where rank " + std::to_string(me) + " has " + a[i];
      break;
    }
  throw Error(ErrorCategory::kInvalidUsage,
              "rank " + std::to_string(peer) + " runs with " + what +
                  " (set or config): every rank must use the same collective and transport "
                  "settings, or their schedules and their bytes on the wire would not match");
}

Settings settingsFromParams(const params::Params& p, const Config& cfg) {
  Settings s;
  if (cfg.algorithm) {
    s.defaultAlgorithm = *cfg.algorithm;
  } else {
    auto a = parseAlgorithm(p.string(Id::kAlgo));
    if (!a) bad("XSITE_ALGO='" + p.string(Id::kAlgo) + "' is not one of auto, ring, hier, latency");
    s.defaultAlgorithm = *a;
  }
  s.chunkBytes = cfg.chunkBytes.value_or(static_cast<size_t>(p.integer(Id::kChunkSize)));
  s.sliceBytes = cfg.sliceBytes.value_or(static_cast<size_t>(p.integer(Id::kSliceSize)));
  if (s.chunkBytes == 0 || s.sliceBytes == 0) bad("XSITE_CHUNK_SIZE and XSITE_SLICE_SIZE must be > 0");
  s.timeout = params::fromSeconds(cfg.timeoutSeconds.value_or(p.real(Id::kTimeout)));
  s.heartbeat = params::fromSeconds(cfg.heartbeatSeconds.value_or(p.real(Id::kHeartbeat)));
  if (s.heartbeat.count() < 0 || (s.heartbeat.count() != 0 && s.heartbeat.count() < 100))
    bad("XSITE_HEARTBEAT must be 0 (no heartbeats) or at least 0.1 seconds");
  s.wanLanes = static_cast<int>(p.integer(Id::kWanLanes));  // 0..kMaxWanLanes (params.def)
  s.costModel = topo::costModelFromParams(p);
  if (cfg.codec) {
    s.codec = *cfg.codec;
  } else {
    auto c = parseCodec(p.string(Id::kCodec));
    if (!c)
      bad("XSITE_CODEC='" + p.string(Id::kCodec) +
          "' is not one of none, lz4, zstd, bf16, fp16, int8, fp8, int4");
    s.codec = *c;
  }
  const int64_t block = cfg.codecBlockSize ? int64_t{*cfg.codecBlockSize} : p.integer(Id::kCodecBlock);
  if (block < 2 || block > 65536 || block % 2 != 0)
    bad("XSITE_CODEC_BLOCK=" + std::to_string(block) + " must be even and within 2..65536");
  s.codecOptions.blockSize = static_cast<uint32_t>(block);
  s.codecOptions.level = static_cast<int>(p.integer(Id::kCodecLevel));
  s.errorFeedback = cfg.errorFeedback.value_or(p.integer(Id::kErrorFeedback) != 0);
  s.errorFeedbackMaxBytes = static_cast<size_t>(p.integer(Id::kErrorFeedbackMaxBytes));
  return s;
}

LinkSetup linkSetupFromParams(const params::Params& p) {
  using transport::Backend;
  LinkSetup out{transport::fabricOptionsFromParams(p), {Backend::kShm, Backend::kTcp, Backend::kWan}};

  // The registry has refused any other words (params.def's XSITE_CHOICE).
  const std::string& domain = p.string(Id::kDomainTransport);
  out.backends.sameDomain = domain == "shm" ? Backend::kShm : Backend::kTcp;
  // Between domains of a site: UCX when asked for, or by default when this build has it.
  out.backends.sameSite = transport::sameSiteBackend(p);
  out.backends.otherSite = transport::otherSiteBackend(p);
  return out;
}

std::string describe(const BackendChoice& b) {
  return std::string("domain ") + transport::backendName(b.sameDomain) + ", site " +
         transport::backendName(b.sameSite) + ", between sites " + transport::backendName(b.otherSite);
}

}  // namespace xsite::coll
