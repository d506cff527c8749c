#include "coll/member.h"

#include <optional>
#include <sstream>
#include <thread>

#include "coll/bring_up.h"
#include "topo/env_record.h"
#include "topo/nic_assignment.h"
#include "transport/nic/nic.h"
#include "util/log.h"
#include "util/params.h"
#include "util/socket.h"

namespace xsite::coll {
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

}  // namespace

LocalWorld::LocalWorld(const std::vector<std::vector<int>>& shape, Config c)
    : topology(topo::Topology::fromShape(shape)),
      config(c),
      hub(std::make_shared<transport::LoopbackHub>(
          static_cast<size_t>(params::Params::global().integer(Id::kShmRingSize)))),
      job(randomNonce()) {}

std::unique_ptr<Member> Member::join(LocalWorld& world, int rank) {
  if (rank < 0 || rank >= world.topology.size())
    throw Error(ErrorCategory::kInvalidUsage, "rank " + std::to_string(rank) +
                                                  " is outside the local group of " +
                                                  std::to_string(world.topology.size()));
  const auto& p = params::Params::global();
  std::unique_ptr<Member> m(new Member);
  Settings settings = settingsFromParams(p, world.config);
  LinkSetup links = linkSetupFromParams(p);
  transport::FabricOptions& fo = links.fabric;
  fo.prefix = "local";
  fo.job = world.job;
  fo.hub = world.hub;
  fo.timeout = params::fromSeconds(
      world.config.bootstrapTimeoutSeconds.value_or(p.real(Id::kBootstrapTimeout)));
  const auto loop = transport::Backend::kLoopback;
  BackendChoice& b = links.backends;
  if (!p.isSet(Id::kDomainTransport)) b.sameDomain = loop;
  if (!p.isSet(Id::kSiteTransport)) b.sameSite = loop;
  if (!p.isSet(Id::kWanTransport)) b.otherSite = loop;
  m->backends_ = b;
  m->ctx_ = connectContext(rank, world.topology, world.store, fo, b, settings);
  return m;
}

std::unique_ptr<Member> Member::join(Store* external, int rank, int size, const Config& config) {
  const auto& p = params::Params::global();
  std::unique_ptr<Member> m(new Member);
  Settings settings = settingsFromParams(p, config);
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

  m->rendezvous_ = external ? std::make_unique<bootstrap::Rendezvous>(*external, p, me.rank,
                                                                      me.worldSize, bootstrapTimeout)
                            : std::make_unique<bootstrap::Rendezvous>(p, me.rank, me.worldSize,
                                                                      bootstrapTimeout);
  // A rank that fails from here on says so as it unwinds, so that rank 0 stops serving the store
  // once every rank has left or failed (after leave() it is a no-op).
  struct AbandonUnlessLeft {
    bootstrap::Rendezvous& r;
    ~AbandonUnlessLeft() { r.abandon(); }
  } abandonUnlessLeft{*m->rendezvous_};
  bootstrap::Store* store = &m->rendezvous_->store();

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
  LinkSetup links = linkSetupFromParams(p);
  agreeOnSchedule(*store, "schedule", me.rank, me.worldSize, settings, links, bootstrapTimeout);
  topo::Topology topology = topo::Topology::fromRecords(fileRecords.empty() ? records : fileRecords);
  if (me.rank == 0) XSITE_INFO(kInit, "topology: %s", topology.describe().c_str());

  transport::FabricOptions& fo = links.fabric;
  fo.prefix = "fabric";
  fo.listenIp = m->rendezvous_->listenIp();
  if (!p.isSet(Id::kListenAddr) && me.worldSize > 1)  // interfaces the user named (NCCL's habit)
    if (std::string ip = transport::nic::listenIpFromNics(p); !ip.empty()) fo.listenIp = ip;
  if (me.worldSize > 1)
    checkReachable(p, topology, me.rank,
                   bootstrap::allGather(*store, "listen-ip", me.rank, me.worldSize,
                                        fo.listenIp + " " + loopbackScope(), bootstrapTimeout));
  fo.job = m->rendezvous_->job();
  fo.secret = m->rendezvous_->secret();
  fo.timeout = bootstrapTimeout;
  const transport::Backend site = links.backends.sameSite;
  if (me.rank == 0)
    XSITE_INFO(kInit, "transports: %s (XSITE_SITE_TRANSPORT=%s%s)", describe(links.backends).c_str(),
               p.string(Id::kSiteTransport).c_str(),
               transport::backendBuilt(transport::Backend::kUcx) ? "" : "; built without UCX");
  // UCX runs on the RDMA NIC of this rank's rail, unless the user chose with UCX_NET_DEVICES.
  if (site == transport::Backend::kUcx && !p.isSet(Id::kUcxNetDevices))
    if (auto nic = railNic(p, topology, me.rank)) fo.ucxNetDevices = transport::nic::ucxNetDevice(*nic);
  m->backends_ = links.backends;
  m->ctx_ = connectContext(me.rank, std::move(topology), *store, fo, links.backends, settings);
  const topo::Topology& placed = m->ctx_->topology();
  const bool heartbeats = settings.heartbeat.count() > 0 && me.worldSize > 1;
  if (heartbeats) bootstrap::Heartbeat::announce(*store, me.rank);
  m->rendezvous_->leave();
  const std::vector<std::string> processes = m->rendezvous_->processes();
  for (int r = 0; r < me.worldSize; ++r)
    m->names_.push_back("rank " + std::to_string(r) + " (site " +
                        std::to_string(placed.place(r).site) + ", " + processes[r] + ")");
  XSITE_INFO(kInit, "rank %d ready: site %d domain %d local %d, listening on %s", me.rank,
             placed.place(me.rank).site, placed.place(me.rank).domain,
             placed.place(me.rank).local, fo.listenIp.c_str());
  m->store_ = store;
  if (auto connection = heartbeats ? m->rendezvous_->connect(2 * settings.heartbeat) : nullptr) {
    Member* self = m.get();
    m->heartbeat_ = std::make_unique<bootstrap::Heartbeat>(
        std::move(connection), me.rank, me.worldSize, settings.heartbeat, m->names_,
        [self](const Error& e) { self->failFromHeartbeat(e); });
  }
  return m;
}

Member::~Member() {
  // Rank 0 serves the store: it stays until the others are done with it (bounded).
  if (heartbeat_) heartbeat_->finish(ctx_ && ctx_->rank() == 0 ? 2 * ctx_->settings().heartbeat : Ms(0));
  heartbeat_.reset();
  ctx_.reset();
  rendezvous_.reset();
}

void Member::fail(const Error& e) noexcept {
  try {
    Error cause = e;
    if (heartbeat_) {
      // Its thread reports it (its store connection gives up after two periods, where this
      // one would wait out the set-up's bound) and fails the communicator with the job's
      // first failure; waiting on it here is bounded all the same.
      heartbeat_->report(e.category(), e.message());
      const auto until = std::chrono::steady_clock::now() + 3 * ctx_->settings().heartbeat;
      while (!ctx_->failed() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(Ms(1));
      if (ctx_->failed()) return;
    } else if (store_) {
      try {
        const bootstrap::Failure first = bootstrap::reportFailure(*store_, ctx_->rank(), e.message());
        if (first.reporter != ctx_->rank())
          cause = Error(ErrorCategory::kRemote, bootstrap::describeFailure(first));
      } catch (const Error& gone) {
        if (ctx_->rank() != 0 && !(heartbeat_ && heartbeat_->rank0Done()))
          cause = Error(ErrorCategory::kRemote,
                        nameOf(0) + ", which serves the rendezvous store, is gone or cut off (" +
                            gone.message() + "); this rank then saw: " + e.message());
      }
    }
    ctx_->fail(cause);
    XSITE_WARN(kColl, "rank %d: communicator failed: %s", ctx_->rank(), cause.what());
  } catch (...) {
    ctx_->fail(e);
  }
}

void Member::failFromHeartbeat(const Error& e) noexcept {
  if (ctx_->failed()) return;
  ctx_->fail(e);
  XSITE_WARN(kColl, "rank %d: communicator failed: %s", ctx_->rank(), e.what());
}

std::string Member::nameOf(int rank) const {
  return static_cast<size_t>(rank) < names_.size() ? names_[rank] : "rank " + std::to_string(rank);
}

}  // namespace xsite::coll
