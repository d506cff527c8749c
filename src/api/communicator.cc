#include "xsite/communicator.h"

#include <unistd.h>

#include <optional>
#include <sstream>
#include <thread>

#include "bootstrap/heartbeat.h"
#include "bootstrap/rendezvous.h"
#include "coll/bring_up.h"
#include "coll/collectives.h"
#include "coll/reduce.h"
#include "coll/settings.h"
#include "topo/env_record.h"
#include "topo/nic_assignment.h"
#include "transport/nic/nic.h"
#include "util/log.h"
#include "util/params.h"

namespace xsite {
namespace {

using params::Id;
using Ms = std::chrono::milliseconds;



std::string encode(const topo::RankRecord& r) {
  std::ostringstream o;
  o << r.rank << ' ' << r.worldSize << ' ' << r.site << ' ' << r.localRank << ' ' << r.localSize
    << ' ' << r.domain.size() << ' ' << r.domain << ' ' << r.source;
  return o.str();
}

topo::RankRecord decode(const std::string& s) {
  std::istringstream in(s);
  topo::RankRecord r;
  size_t n = 0;
  in >> r.rank >> r.worldSize >> r.site >> r.localRank >> r.localSize >> n;
  in.get();
  r.domain.resize(n);
  in.read(r.domain.data(), static_cast<std::streamsize>(n));
  in.get();
  std::getline(in, r.source);
  if (!in && !in.eof()) throw Error(ErrorCategory::kRemote, "garbled rank record in the store");
  return r;
}

// The NIC that serves `rank`'s rail (NIC discovery, then topo::assignNics over its domain's
// ranks), or nullopt when there is none. Logged at INFO.
std::optional<transport::nic::NicInfo> railNic(const params::Params& p, const topo::Topology& t,
                                               int rank) {
  const auto found = transport::nic::discoverNics(p);
  std::vector<topo::NicLocality> nics;
  for (const auto& n : found.selected.nics) nics.push_back({n.label(), n.pciPath, n.numaNode});
  const auto& place = t.place(rank);
  const auto ranks = std::vector<topo::RankLocality>(t.domainRanks(place.domain).size());
  const topo::NicChoice choice = topo::assignNics(nics, ranks).at(place.local);
  if (choice.nic < 0) return std::nullopt;
  const auto& nic = found.selected.nics[choice.nic];
  XSITE_INFO(kNet, "rank %d (rail %d) uses NIC %s (%s)", rank, choice.rail, nic.label().c_str(),
             transport::nic::kindName(nic.kind));
  return nic;
}

// A data listener on loopback reaches only the processes of its own network namespace on its own
// host (`loopbackScope()`). Every rank sees the same table ("ip scope" per rank), so all of them
// fail at once with the same names instead of timing out on connects; the loopback rank adds the
// interfaces it saw.
void checkReachable(const params::Params& p, const topo::Topology& t, int me,
                    const std::vector<std::string>& table) {
  auto ip = [&](int r) { return table[r].substr(0, table[r].find(' ')); };
  auto scope = [&](int r) { return table[r].substr(table[r].find(' ') + 1); };
  auto where = [&](int r) {
    return "rank " + std::to_string(r) + " (site " + std::to_string(t.place(r).site) + ", " + ip(r) + ")";
  };
  for (int a = 0; a < static_cast<int>(table.size()); ++a) {
    if (!sockAddrOf(ip(a), 0).loopback()) continue;
    for (int b = 0; b < static_cast<int>(table.size()); ++b) {
      if (scope(b) == scope(a)) continue;
      throw Error(ErrorCategory::kInvalidUsage,
                  where(a) + " listens on loopback, which " + where(b) +
                      " cannot reach from its host or network namespace" +
                      (a == me ? "; the interfaces rank " + std::to_string(a) +
                                     " saw: " + transport::nic::describeCandidates(p)
                               : "") +
                      ". Give that rank an interface that reaches its peers: XSITE_NICS or "
                      "NCCL_SOCKET_IFNAME (interface names), or XSITE_LISTEN_ADDR (an address)");
    }
  }
}

void checkCount(const char* what, size_t count, DataType type, const void* send, const void* recv,
                size_t multiple = 1) {
  if (static_cast<int>(type) < 0 || static_cast<int>(type) >= kNumDataTypes)
    throw Error(ErrorCategory::kInvalidUsage, std::string(what) + ": invalid data type " +
                                                  std::to_string(static_cast<int>(type)));
  size_t esize = dataTypeSize(type);
  if (count > SIZE_MAX / esize / multiple)
    throw Error(ErrorCategory::kInvalidUsage, std::string(what) + ": count " +
                                                  std::to_string(count) + " overflows the address space");
  if (count > 0 && (send == nullptr || recv == nullptr))
    throw Error(ErrorCategory::kInvalidUsage, std::string(what) + ": null buffer with count " +
                                                  std::to_string(count));
}

}  // namespace

// ---- LocalGroup -------------------------------------------------------------------------------

struct LocalGroup::Impl {
  topo::Topology topology;
  Config config;
  bootstrap::InProcessStore store;
  std::shared_ptr<transport::LoopbackHub> hub;
  uint64_t job = randomNonce();  // keeps its shared-memory names apart from another group's
};

LocalGroup::LocalGroup(const std::vector<std::vector<int>>& shape, Config config)
    : impl_(new Impl{topo::Topology::fromShape(shape), config, {}, nullptr}) {
  const auto& p = params::Params::global();
  impl_->hub = std::make_shared<transport::LoopbackHub>(static_cast<size_t>(p.integer(Id::kShmRingSize)));
}

LocalGroup::LocalGroup(int sites, int domainsPerSite, int ranksPerDomain, Config config)
    : LocalGroup(std::vector<std::vector<int>>(
                     std::max(sites, 0), std::vector<int>(std::max(domainsPerSite, 0), ranksPerDomain)),
                 config) {}

LocalGroup::~LocalGroup() = default;
int LocalGroup::size() const { return impl_->topology.size(); }

// ---- Communicator -----------------------------------------------------------------------------

struct Communicator::Impl {
  std::unique_ptr<bootstrap::Rendezvous> rendezvous;  // processes: rank 0 serves the store
  bootstrap::Store* store = nullptr;  // processes: where failures are reported (the job's store)
  std::unique_ptr<coll::Context> ctx;
  std::unique_ptr<bootstrap::Heartbeat> heartbeat;  // processes, unless XSITE_HEARTBEAT=0
  std::vector<std::string> names;                   // how errors name each rank
  coll::BackendChoice backends{transport::Backend::kLoopback, transport::Backend::kLoopback,
                               transport::Backend::kLoopback};
  bool codecLogged[kNumCodecs] = {};

  ~Impl() {
    // Rank 0 serves the store: it stays until the others are done with it (bounded).
    if (heartbeat) heartbeat->finish(ctx && ctx->rank() == 0 ? 2 * ctx->settings().heartbeat : Ms(0));
    heartbeat.reset();
    ctx.reset();
    rendezvous.reset();
  }

  // Runs one collective. A failure other than bad arguments fails the communicator (every later
  // call throws it too) and is reported as the job's failure, or replaced by the job's first one
  // that another rank reported: a rank that dies is named by every survivor, not only by the
  // neighbour whose link to it broke (bootstrap/heartbeat.h).
  template <typename F>
  void run(F&& collective) {
    try {
      collective();
    } catch (const Error& e) {
      if (e.category() == ErrorCategory::kInvalidUsage) throw;
      if (!ctx->failed()) fail(e);
      throw ctx->failure();
    }
  }

  void fail(const Error& e) noexcept {
    try {
      Error cause = e;
      if (heartbeat) {
        // Its thread reports it (its store connection gives up after two periods, where this
        // one would wait out the set-up's bound) and fails the communicator with the job's
        // first failure; waiting on it here is bounded all the same.
        heartbeat->report(e.category(), e.message());
        const auto until = std::chrono::steady_clock::now() + 3 * ctx->settings().heartbeat;
        while (!ctx->failed() && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(Ms(1));
        if (ctx->failed()) return;
      } else if (store) {
        try {
          const bootstrap::Failure first = bootstrap::reportFailure(*store, ctx->rank(), e.message());
          if (first.reporter != ctx->rank())
            cause = Error(ErrorCategory::kRemote, bootstrap::describeFailure(first));
        } catch (const Error& gone) {
          if (ctx->rank() != 0 && !(heartbeat && heartbeat->rank0Done()))
            cause = Error(ErrorCategory::kRemote,
                          nameOf(0) + ", which serves the rendezvous store, is gone or cut off (" +
                              gone.message() + "); this rank then saw: " + e.message());
        }
      }
      ctx->fail(cause);
      XSITE_WARN(kColl, "rank %d: communicator failed: %s", ctx->rank(), cause.what());
    } catch (...) {
      ctx->fail(e);
    }
  }

  std::string nameOf(int rank) const {
    return static_cast<size_t>(rank) < names.size() ? names[rank] : "rank " + std::to_string(rank);
  }

  // A failure the heartbeat found (its thread): the job's first, already reported.
  void failFromHeartbeat(const Error& e) noexcept {
    if (ctx->failed()) return;
    ctx->fail(e);
    XSITE_WARN(kColl, "rank %d: communicator failed: %s", ctx->rank(), e.what());
  }

  // Says which codec the cross-site stage ran and what it saved: INFO the first time a codec
  // runs on this communicator, DEBUG after.
  void logCodec(Codec codec, const coll::WanCounters& before, const coll::WanCounters& after) {
    const uint64_t raw = after.raw - before.raw, wire = after.wire - before.wire;
    if (codec == Codec::kNone || raw == 0) return;
    const bool first = !codecLogged[static_cast<int>(codec)];
    codecLogged[static_cast<int>(codec)] = true;
    const std::string name(codecName(codec));
    const double ratio = static_cast<double>(raw) / static_cast<double>(std::max<uint64_t>(wire, 1));
    const auto r = static_cast<unsigned long long>(raw), w = static_cast<unsigned long long>(wire);
    const auto level = first ? log::Level::kInfo : log::Level::kDebug;
    if (log::enabled(level, log::kColl))
      log::write(level, log::kColl,
                 "all-reduce cross-site codec %s: %llu bytes sent as %llu (ratio %.2f)",
                 name.c_str(), r, w, ratio);
  }
};

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Communicator::Communicator(Communicator&&) noexcept = default;
Communicator& Communicator::operator=(Communicator&&) noexcept = default;
Communicator::~Communicator() = default;

Communicator Communicator::fromLocalGroup(LocalGroup& group, int rank) {
  auto& g = *group.impl_;
  if (rank < 0 || rank >= g.topology.size())
    throw Error(ErrorCategory::kInvalidUsage, "rank " + std::to_string(rank) +
                                                  " is outside the local group of " +
                                                  std::to_string(g.topology.size()));
  const auto& p = params::Params::global();
  auto impl = std::make_unique<Impl>();
  coll::Settings settings = coll::settingsFromParams(p, g.config);
  // In-process rings, unless XSITE_DOMAIN_TRANSPORT, XSITE_SITE_TRANSPORT or XSITE_WAN_TRANSPORT
  // names a transport for its kind of link: that kind then runs over it as between processes,
  // the threads listening on 127.0.0.1.
  coll::LinkSetup links = coll::linkSetupFromParams(p);
  transport::FabricOptions& fo = links.fabric;
  fo.prefix = "local";
  fo.job = g.job;
  fo.hub = g.hub;
  fo.timeout = params::fromSeconds(g.config.bootstrapTimeoutSeconds.value_or(p.real(Id::kBootstrapTimeout)));
  const auto loop = transport::Backend::kLoopback;
  coll::BackendChoice& b = links.backends;
  if (!p.isSet(Id::kDomainTransport)) b.sameDomain = loop;
  if (!p.isSet(Id::kSiteTransport)) b.sameSite = loop;
  if (!p.isSet(Id::kWanTransport)) b.otherSite = loop;
  impl->backends = b;
  impl->ctx = coll::connectContext(rank, g.topology, g.store, fo, b, settings);
  return Communicator(std::move(impl));
}

Communicator Communicator::fromEnvironment(const Config& config) {
  return fromRendezvous(nullptr, -1, -1, config);
}

Communicator Communicator::fromStore(Store& store, int rank, int size, const Config& config) {
  if (size < 1 || rank < 0 || rank >= size)
    throw Error(ErrorCategory::kInvalidUsage, "fromStore: rank " + std::to_string(rank) +
                                                  " is not in a world of " + std::to_string(size));
  return fromRendezvous(&store, rank, size, config);
}

Communicator Communicator::fromRendezvous(Store* external, int rank, int size, const Config& config) {
  const auto& p = params::Params::global();
  auto impl = std::make_unique<Impl>();
  coll::Settings settings = coll::settingsFromParams(p, config);
  const Ms bootstrapTimeout =
      params::fromSeconds(config.bootstrapTimeoutSeconds.value_or(p.real(Id::kBootstrapTimeout)));
  topo::RankRecord me = topo::recordFromParams(p, hostName());
  // A framework's subgroup: its ranks are not the job's, so neither the local ranks the
  // environment claims nor a topology file (indexed by the job's ranks) apply to it.
  const bool subgroup = external && size != me.worldSize;
  if (external) {  // the caller's rank and size over the environment's
    me.rank = rank;
    me.worldSize = size;
    me.source = "the caller's store (rank " + std::to_string(rank) + " of " + std::to_string(size) + ")";
  }
  if (subgroup) me.localRank = me.localSize = -1;
  log::setRank(me.rank);

  std::vector<topo::RankRecord> fileRecords;
  if (p.isSet(Id::kTopoFile) && !subgroup) {
    const std::string& path = p.string(Id::kTopoFile);
    fileRecords = topo::readTopologyFile(path);
    if (static_cast<int>(fileRecords.size()) != me.worldSize)
      throw Error(ErrorCategory::kInvalidUsage,
                  "topology file " + path + " lists " + std::to_string(fileRecords.size()) +
                      " ranks but the world size is " + std::to_string(me.worldSize) + " (" +
                      me.source + ")");
  }

  impl->rendezvous = external ? std::make_unique<bootstrap::Rendezvous>(*external, p, me.rank,
                                                                        me.worldSize, bootstrapTimeout)
                             : std::make_unique<bootstrap::Rendezvous>(p, me.rank, me.worldSize,
                                                                        bootstrapTimeout);
  // A rank that fails from here on says so as it unwinds, so that rank 0 stops serving the store
  // once every rank has left or failed (after leave() it is a no-op).
  struct AbandonUnlessLeft {
    bootstrap::Rendezvous& r;
    ~AbandonUnlessLeft() { r.abandon(); }
  } abandonUnlessLeft{*impl->rendezvous};
  bootstrap::Store* store = &impl->rendezvous->store();

  // Everyone's record, checked together: a disagreement names both sides.
  std::vector<std::string> all =
      bootstrap::allGather(*store, "record", me.rank, me.worldSize, encode(me), bootstrapTimeout);
  std::vector<topo::RankRecord> records;
  for (const auto& s : all) records.push_back(decode(s));
  for (const auto& r : records)
    if (r.worldSize != me.worldSize)
      throw Error(ErrorCategory::kInvalidUsage,
                  "rank " + std::to_string(r.rank) + " (" + r.source + ") says the world has " +
                      std::to_string(r.worldSize) + " ranks but rank " + std::to_string(me.rank) +
                      " (" + me.source + ") says " + std::to_string(me.worldSize));
  coll::LinkSetup links = coll::linkSetupFromParams(p);
  coll::agreeOnSchedule(*store, "schedule", me.rank, me.worldSize, settings, links, bootstrapTimeout);
  topo::Topology topology = topo::Topology::fromRecords(fileRecords.empty() ? records : fileRecords);
  if (me.rank == 0) XSITE_INFO(kInit, "topology: %s", topology.describe().c_str());

  transport::FabricOptions& fo = links.fabric;
  fo.prefix = "fabric";
  fo.listenIp = impl->rendezvous->listenIp();
  if (!p.isSet(Id::kListenAddr) && me.worldSize > 1)  // interfaces the user named (NCCL's habit)
    if (std::string ip = transport::nic::listenIpFromNics(p); !ip.empty()) fo.listenIp = ip;
  if (me.worldSize > 1)
    checkReachable(p, topology, me.rank,
                   bootstrap::allGather(*store, "listen-ip", me.rank, me.worldSize,
                                        fo.listenIp + " " + loopbackScope(), bootstrapTimeout));
  fo.job = impl->rendezvous->job();
  fo.secret = impl->rendezvous->secret();
  fo.timeout = bootstrapTimeout;
  const transport::Backend site = links.backends.sameSite;
  if (me.rank == 0)
    XSITE_INFO(kInit, "transports: %s (XSITE_SITE_TRANSPORT=%s%s)",
               coll::describe(links.backends).c_str(),
               p.string(Id::kSiteTransport).c_str(),
               transport::backendBuilt(transport::Backend::kUcx) ? "" : "; built without UCX");
  // UCX runs on the RDMA NIC of this rank's rail, unless the user chose with UCX_NET_DEVICES.
  if (site == transport::Backend::kUcx && !p.isSet(Id::kUcxNetDevices))
    if (auto nic = railNic(p, topology, me.rank)) fo.ucxNetDevices = transport::nic::ucxNetDevice(*nic);
  impl->backends = links.backends;
  impl->ctx = coll::connectContext(me.rank, std::move(topology), *store, fo, links.backends, settings);
  const topo::Topology& placed = impl->ctx->topology();
  const bool heartbeats = settings.heartbeat.count() > 0 && me.worldSize > 1;
  if (heartbeats) bootstrap::Heartbeat::announce(*store, me.rank);
  impl->rendezvous->leave();
  const std::vector<std::string> processes = impl->rendezvous->processes();
  for (int r = 0; r < me.worldSize; ++r)
    impl->names.push_back("rank " + std::to_string(r) + " (site " +
                          std::to_string(placed.place(r).site) + ", " + processes[r] + ")");
  XSITE_INFO(kInit, "rank %d ready: site %d domain %d local %d, listening on %s", me.rank,
             placed.place(me.rank).site, placed.place(me.rank).domain,
             placed.place(me.rank).local, fo.listenIp.c_str());
  impl->store = store;
  if (auto connection = heartbeats ? impl->rendezvous->connect(2 * settings.heartbeat) : nullptr) {
    Impl* self = impl.get();
    impl->heartbeat = std::make_unique<bootstrap::Heartbeat>(
        std::move(connection), me.rank, me.worldSize, settings.heartbeat, impl->names,
        [self](const Error& e) { self->failFromHeartbeat(e); });
  }
  return Communicator(std::move(impl));
}

void Communicator::abort() noexcept {
  if (impl_ && impl_->ctx) impl_->ctx->abort();
}

int Communicator::rank() const { return impl_->ctx->rank(); }
int Communicator::size() const { return impl_->ctx->size(); }
int Communicator::numSites() const { return impl_->ctx->topology().numSites(); }
std::string Communicator::describeTopology() const { return impl_->ctx->topology().describe(); }

std::string Communicator::describeTransports() const { return coll::describe(impl_->backends); }

Placement Communicator::placement(int rank) const {
  const auto& t = impl_->ctx->topology();
  if (rank < 0 || rank >= t.size())
    throw Error(ErrorCategory::kInvalidUsage, "placement: no rank " + std::to_string(rank));
  const auto& pl = t.place(rank);
  return Placement{pl.site, pl.domain, pl.local};
}

Algorithm Communicator::chooseAlgorithm(size_t count, DataType type, ReduceOp op,
                                        const AllReduceOptions& options) const {
  const auto& st = impl_->ctx->settings();
  const Algorithm requested =
      options.algorithm == Algorithm::kAuto ? st.defaultAlgorithm : options.algorithm;
  return coll::resolveAlgorithm(*impl_->ctx, requested, count, type, op,
                                options.codec.value_or(st.codec));
}

void Communicator::allReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                             const AllReduceOptions& options) {
  checkCount("allReduce", count, type, send, recv);
  coll::checkReduction("allReduce", static_cast<int>(type), static_cast<int>(op));
  if (count == 0) return;
  impl_->run([&] {
    switch (chooseAlgorithm(count, type, op, options)) {
      case Algorithm::kRing: coll::allReduceRing(*impl_->ctx, send, recv, count, type, op)->run(); break;
      case Algorithm::kHierarchical: {
        coll::Context& ctx = *impl_->ctx;
        coll::CodecChoice codec;
        codec.codec = options.codec.value_or(ctx.settings().codec);
        if (static_cast<int>(codec.codec) >= kNumCodecs)
          throw Error(ErrorCategory::kInvalidUsage, "allReduce: invalid codec " +
                                                        std::to_string(static_cast<int>(codec.codec)));
        codec.errorFeedback = options.errorFeedback.value_or(ctx.settings().errorFeedback);
        codec.key = !options.errorFeedbackKey.empty() ? options.errorFeedbackKey
                                                       : coll::defaultErrorFeedbackKey(count, type);
        const coll::WanCounters before = ctx.wanCounters();
        coll::allReduceHierarchical(ctx, send, recv, count, type, op, codec)->run();
        impl_->logCodec(coll::effectiveCodec(ctx, codec.codec, type, op), before, ctx.wanCounters());
        break;
      }
      case Algorithm::kLatency: coll::allReduceLatency(*impl_->ctx, send, recv, count, type, op)->run(); break;
      default:
        throw Error(ErrorCategory::kInvalidUsage,
                    "allReduce: invalid algorithm " + std::to_string(static_cast<int>(options.algorithm)));
    }
  });
}

void Communicator::reduceScatter(const void* send, void* recv, size_t recvCount, DataType type,
                                 ReduceOp op) {
  checkCount("reduceScatter", recvCount, type, send, recv, static_cast<size_t>(size()));
  coll::checkReduction("reduceScatter", static_cast<int>(type), static_cast<int>(op));
  if (recvCount == 0) return;
  impl_->run([&] { coll::reduceScatterRing(*impl_->ctx, send, recv, recvCount, type, op)->run(); });
}

void Communicator::allGather(const void* send, void* recv, size_t sendCount, DataType type) {
  checkCount("allGather", sendCount, type, send, recv, static_cast<size_t>(size()));
  if (sendCount == 0) return;
  impl_->run([&] { coll::allGatherRing(*impl_->ctx, send, recv, sendCount, type)->run(); });
}

void Communicator::broadcast(const void* send, void* recv, size_t count, DataType type, int root) {
  if (root < 0 || root >= size())
    throw Error(ErrorCategory::kInvalidUsage, "broadcast: root " + std::to_string(root) +
                                                  " is not a rank of this communicator (0.." +
                                                  std::to_string(size() - 1) + ")");
  checkCount("broadcast", count, type, rank() == root ? send : recv, recv);
  if (count == 0) return;
  impl_->run([&] { coll::broadcastTree(*impl_->ctx, send, recv, count, type, root)->run(); });
}

void Communicator::resetErrorFeedback() { impl_->ctx->errorFeedback().resetAll(); }
void Communicator::resetErrorFeedback(const std::string& key) { impl_->ctx->errorFeedback().reset(key); }
void Communicator::dropErrorFeedback() { impl_->ctx->errorFeedback().dropAll(); }
void Communicator::dropErrorFeedback(const std::string& key) { impl_->ctx->errorFeedback().drop(key); }
size_t Communicator::errorFeedbackBytes() const { return impl_->ctx->errorFeedback().bytes(); }
WanStats Communicator::wanStats() const {
  const auto& c = impl_->ctx->wanCounters();
  return WanStats{c.raw, c.wire};
}

void Communicator::barrier() {
  uint8_t in = 0, out = 0;
  impl_->run([&] { coll::allReduceLatency(*impl_->ctx, &in, &out, 1, DataType::kUint8, ReduceOp::kMax)->run(); });
}

}  // namespace xsite
