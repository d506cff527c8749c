#include "coll/context.h"

#include <algorithm>
#include <set>

#include "coll/collectives.h"
#include "util/log.h"

namespace xsite::coll {

const char* channelName(int channel) noexcept {
  static const char* kNames[] = {"ring", "domain-rs", "domain-ag", "rail-rs", "rail-ag"};
  static const char* kLanes[kMaxWanLanes] = {"wan-0", "wan-1", "wan-2", "wan-3",
                                             "wan-4", "wan-5", "wan-6", "wan-7"};
  if (channel >= 0 && channel < kChWan) return kNames[channel];
  if (channel >= kChWan && channel <= kChWanLast) return kLanes[channel - kChWan];
  return channel == kChStar ? "star" : "?";
}

RingView flatRing(const topo::Topology& t, int rank) {
  RingView v;
  for (int r = 0; r < t.size(); ++r) v.members.push_back(r);
  v.index = rank;
  return v;
}

RingView domainRing(const topo::Topology& t, int rank) {
  const auto& p = t.place(rank);
  return RingView{t.domainRanks(p.domain), p.local};
}

namespace {
int domainPos(const topo::Topology& t, int rank) {
  const auto& p = t.place(rank);
  const auto& ds = t.siteDomains(p.site);
  return static_cast<int>(std::find(ds.begin(), ds.end(), p.domain) - ds.begin());
}
}  // namespace

int shardIndex(const topo::Topology& t, int rank) {
  const auto& p = t.place(rank);
  return p.local * static_cast<int>(t.siteDomains(p.site).size()) + domainPos(t, rank);
}

RingView railRing(const topo::Topology& t, int rank) {
  const auto& p = t.place(rank);
  RingView v;
  for (int d : t.siteDomains(p.site)) v.members.push_back(t.domainRanks(d).at(p.local));
  v.index = domainPos(t, rank);
  return v;
}

RingView wanRing(const topo::Topology& t, int rank) {
  const int shard = shardIndex(t, rank);
  RingView v;
  for (int s = 0; s < t.numSites(); ++s)
    for (int r : t.siteRanks(s))
      if (shardIndex(t, r) == shard) v.members.push_back(r);
  v.index = t.place(rank).site;
  return v;
}

std::vector<transport::LinkRequest> planLinks(const topo::Topology& t, int rank,
                                              const BackendChoice& backends, int wanLanes) {
  std::set<std::pair<int, int>> want;  // (peer, channel)
  auto addRing = [&](const RingView& v, int ch) {
    if (v.size() < 2) return;
    want.insert({v.left(), ch});
    want.insert({v.right(), ch});
  };
  addRing(flatRing(t, rank), kChRing);
  addRing(domainRing(t, rank), kChDomainRs);
  addRing(domainRing(t, rank), kChDomainAg);
  if (t.isRegular()) {
    addRing(railRing(t, rank), kChRailRs);
    addRing(railRing(t, rank), kChRailAg);
    // WAN lanes join every member of the WAN group (the ring uses its neighbours, the
    // compressed exchange all of them).
    const RingView w = wanRing(t, rank);
    for (int lane = 0; lane < (wanLanes > 0 ? wanLanes : kMaxWanLanes); ++lane)
      for (int peer : w.members)
        if (peer != rank) want.insert({peer, kChWan + lane});
  }
  // Star links: every rank to the leader of every other site, to the leader of every other
  // domain of its site and to every member of its domain; symmetrized over all ranks.
  for (int a = 0; a < t.size(); ++a) {
    const auto& pa = t.place(a);
    std::vector<int> peers;
    for (int s = 0; s < t.numSites(); ++s)
      if (s != pa.site) peers.push_back(t.siteLeader(s));
    for (int d : t.siteDomains(pa.site))
      if (d != pa.domain) peers.push_back(t.domainLeader(d));
    for (int r : t.domainRanks(pa.domain)) peers.push_back(r);
    for (int b : peers) {
      if (a == b) continue;
      if (a == rank) want.insert({b, kChStar});
      if (b == rank) want.insert({a, kChStar});
    }
  }
  std::vector<transport::LinkRequest> out;
  const auto& me = t.place(rank);
  for (const auto& [peer, ch] : want) {
    const auto& p = t.place(peer);
    transport::Backend b = p.domain == me.domain ? backends.sameDomain
                           : p.site == me.site   ? backends.sameSite
                                                 : backends.otherSite;
    out.push_back({peer, ch, b, channelName(ch), /*bulk=*/ch != kChStar});
  }
  return out;
}

void Context::fail(const Error& why) noexcept {
  {
    std::lock_guard<std::mutex> lk(failureMu_);
    if (failure_) return;
    failure_.emplace(why);  // copying an exception does not allocate
  }
  failed_.store(true, std::memory_order_release);
  fabric_->abandon();
}

void Context::abort() noexcept {
  static const Error kAbortedByUser(ErrorCategory::kAborted,
                                    "the communicator was aborted (Communicator::abort())");
  fail(kAbortedByUser);
}

Error Context::failure() const {
  std::lock_guard<std::mutex> lk(failureMu_);
  if (!failure_) throw Error(ErrorCategory::kInternal, "Context::failure() with no failure");
  return *failure_;
}

Context::Context(int rank, topo::Topology topology, std::unique_ptr<transport::Fabric> fabric,
                 Settings settings)
    : rank_(rank),
      topo_(std::move(topology)),
      fabric_(std::move(fabric)),
      settings_(settings),
      errorFeedback_(settings.errorFeedbackMaxBytes) {
  learnWanLatency();
}

// Lane counts and algorithm choices come from the cost model, so without settings a 40 ms link
// would be planned as the default 5.5 ms one (one lane: a quarter of the link's rate for the
// hierarchical all-reduce). The kernel measured each WAN stream's round trip at connect; every
// rank must plan alike, so the ranks agree on the longest one-way latency any of them saw (one
// small all-reduce on the latency path, which plans nothing from the cost model).
void Context::learnWanLatency() {
  if (topo_.numSites() < 2) return;
  const double mine = fabric_->wanRttUs() / 2;
  double longest = 0;
  allReduceLatency(*this, &mine, &longest, 1, DataType::kFloat64, ReduceOp::kMax)->run();
  wan_ = WanCounters{};
  topo::LinkModel& wan = settings_.costModel.wan;
  if (!(longest > wan.latencyUs)) return;
  XSITE_INFO(kColl, "WAN path measured at %.2f ms one way (XSITE_WAN_LATENCY_US %.2f ms): "
                    "planning with the path's", longest / 1e3, wan.latencyUs / 1e3);
  wan.latencyUs = longest;
}

const compress::Codec& Context::codec(compress::CodecId id) {
  auto& c = codecs_[static_cast<size_t>(id)];
  if (!c) c = compress::makeCodec(id, settings_.codecOptions);
  return *c;
}

char* Context::scratch(int slot, size_t bytes) {
  if (slot < 0 || slot >= kNumScratch)
    throw Error(ErrorCategory::kInternal, "scratch slot " + std::to_string(slot) + " is not a Scratch");
  if (scratch_.size() <= static_cast<size_t>(slot)) scratch_.resize(slot + 1);
  auto& b = scratch_[slot];
  if (b.size() < bytes) b.resize(bytes);
  return b.data();
}

}  // namespace xsite::coll
