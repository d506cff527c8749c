// What a rank's collectives run on: its place in the topology, its connections (one channel per
// schedule stage, so pipelined stages never share a connection) and its settings.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "compress/codec.h"
#include "compress/error_feedback.h"
#include "topo/cost_model.h"
#include "topo/topology.h"
#include "transport/fabric.h"

namespace xsite::coll {

enum Channel : int {
  kChRing = 0,     // flat ring over all ranks
  kChDomainRs,     // ring inside a domain, reduce-scatter stage
  kChDomainAg,     // ring inside a domain, all-gather stage
  kChRailRs,       // ring along a rail (same local index, domains of one site)
  kChRailAg,
  kChWan,          // ring across sites (same shard on every site), lane 0 ...
  kChWanLast = kChWan + 7,  // ... to lane 7: the WAN stage keeps up to 8 chunks in flight
  kChStar,         // leader <-> member links of the latency path and broadcast
  kNumChannels
};
inline constexpr int kMaxWanLanes = kChWanLast - kChWan + 1;
const char* channelName(int channel) noexcept;

// Context::scratch regions: one per user that can be live at once within a collective (the
// stages of one pipeline). A ring stage uses its channel's number (kChRing..kChStar); the rest
// have slots of their own past those. Collectives never overlap, so they share the slots.
enum Scratch : int {
  kScratchStar = kNumChannels,            // star stages, one per stage of a pipeline ...
  kScratchStarLast = kScratchStar + 4,    // ... up to five (the latency path's)
  kScratchExchange,                       // exchange stage of WAN lane 0 ...
  kScratchExchangeLast = kScratchExchange + kMaxWanLanes - 1,  // ... to the last lane
  kScratchReduceScatter,                  // the ring reduce-scatter's partial sums
  kNumScratch
};

// A ring of ranks as seen by one member.
struct RingView {
  std::vector<int> members;
  int index = 0;
  int size() const { return static_cast<int>(members.size()); }
  int left() const { return members[(index + size() - 1) % size()]; }
  int right() const { return members[(index + 1) % size()]; }
};

RingView flatRing(const topo::Topology& t, int rank);
RingView domainRing(const topo::Topology& t, int rank);
// Regular topologies only: the rail ring (same local index, every domain of the site) and the
// WAN ring (the rank that owns the same shard in every site).
RingView railRing(const topo::Topology& t, int rank);
RingView wanRing(const topo::Topology& t, int rank);
// The shard of a chunk a rank owns after the site reduce-scatter: local * domains + domain pos.
int shardIndex(const topo::Topology& t, int rank);

// Which backend carries a link, by where the two ranks sit.
struct BackendChoice {
  transport::Backend sameDomain;
  transport::Backend sameSite;
  transport::Backend otherSite;
};

// Every link this rank needs, symmetric across ranks; the WAN ring gets `wanLanes` channels
// (0: kMaxWanLanes, for the lane count each call chooses).
std::vector<transport::LinkRequest> planLinks(const topo::Topology& t, int rank,
                                              const BackendChoice& backends, int wanLanes);

struct Settings {
  size_t sliceBytes = 256 << 10;
  size_t chunkBytes = 4 << 20;
  std::chrono::milliseconds timeout{300000};
  std::chrono::milliseconds heartbeat{5000};  // 0: none (bootstrap/heartbeat.h)
  topo::CostModel costModel;
  Algorithm defaultAlgorithm = Algorithm::kAuto;
  int wanLanes = 0;  // chunks the cross-site stage keeps in flight (1..kMaxWanLanes; 0: auto)
  compress::CodecId codec = compress::CodecId::kNone;  // all-reduce default
  compress::CodecOptions codecOptions;
  bool errorFeedback = true;
  size_t errorFeedbackMaxBytes = size_t{1} << 30;
};

// The codec of one all-reduce's cross-site stage.
struct CodecChoice {
  compress::CodecId codec = compress::CodecId::kNone;
  bool errorFeedback = false;  // lossy codecs only
  std::string key;             // the error-feedback residual's key
};

// Bytes the cross-site stages sent: `raw` as elements, `wire` as encoded (equal uncompressed).
struct WanCounters {
  uint64_t raw = 0;
  uint64_t wire = 0;
};

class Context {
 public:
  Context(int rank, topo::Topology topology, std::unique_ptr<transport::Fabric> fabric,
          Settings settings);
  int rank() const { return rank_; }
  int size() const { return topo_.size(); }
  const topo::Topology& topology() const { return topo_; }
  const Settings& settings() const { return settings_; }
  transport::Connection& conn(int peer, int channel) const { return fabric_->connection(peer, channel); }
  // Scratch memory, grown on demand and kept; `slot` (a Scratch, or a ring stage's channel)
  // separates the users that can be live at once.
  char* scratch(int slot, size_t bytes);
  // The codec for `id` with the settings' options, created on first use.
  const compress::Codec& codec(compress::CodecId id);
  compress::ErrorFeedback& errorFeedback() { return errorFeedback_; }
  void countWan(uint64_t raw, uint64_t wire) noexcept {
    wan_.raw += raw;
    wan_.wire += wire;
  }
  const WanCounters& wanCounters() const noexcept { return wan_; }
  // Any thread: every collective running or started from now on fails with `why` (the first
  // failure recorded wins), and the fabric closes without waiting for peers. abort() records
  // kAborted (Communicator::abort()); a peer named dead by the heartbeat records its error.
  void fail(const Error& why) noexcept;
  void abort() noexcept;
  bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }
  // The first failure recorded (call only when failed()).
  Error failure() const;

 private:
  // Where the path's one-way latency, as the kernel measured the WAN streams' round trips, is
  // longer than the cost model's (XSITE_WAN_LATENCY_US is a hint), plans with the measured one.
  void learnWanLatency();
  int rank_;
  topo::Topology topo_;
  std::unique_ptr<transport::Fabric> fabric_;
  Settings settings_;
  std::vector<std::vector<char>> scratch_;
  std::unique_ptr<compress::Codec> codecs_[kNumCodecs];
  compress::ErrorFeedback errorFeedback_;
  WanCounters wan_;
  std::atomic<bool> failed_{false};
  mutable std::mutex failureMu_;
  std::optional<Error> failure_;
};

// Even split of n items into parts: the start of part i (i in 0..parts).
inline size_t splitPoint(size_t n, size_t parts, size_t i) {
  return static_cast<size_t>((static_cast<unsigned __int128>(n) * i) / parts);
}

}  // namespace xsite::coll
